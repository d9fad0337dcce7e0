//! What the node knows about its reachability and connections: AutoNAT's
//! verdict, relayed peers, relay reservations, hole punches and refused
//! connections ([`NatStatus`], part of [`super::P2pStatus`]).

use libp2p::PeerId;

/// Whether other nodes can dial this one directly, as AutoNAT found by
/// asking peers to dial back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reachability {
    /// Not probed yet (or no peer could be asked).
    #[default]
    Unknown,
    /// A peer dialled one of our addresses back.
    Public,
    /// No peer could dial back: behind NAT or a firewall. The node takes a
    /// relay reservation so that others reach it.
    Private,
}

impl Reachability {
    /// `"unknown"`, `"public"` or `"private"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

/// Connections and NAT traversal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NatStatus {
    /// AutoNAT's verdict.
    pub reachability: Reachability,
    /// Established connections now (all peers, direct and relayed).
    pub connections: usize,
    /// Connected peers reached only through a relay circuit.
    pub relayed_peers: Vec<PeerId>,
    /// Relays holding a reservation for this node now.
    pub relay_reservations: usize,
    /// Counters since start.
    pub counters: NatCounters,
}

/// NAT traversal counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Inbound connections refused by the connection limits.
    pub connections_denied: u64,
    /// Relayed connections upgraded to direct ones by hole punching (DCUtR).
    pub hole_punches: u64,
    /// Hole punches that failed (the connection stays relayed).
    pub hole_punch_failures: u64,
    /// Relay server: reservations accepted.
    pub relay_reservations_served: u64,
    /// Relay server: circuits accepted.
    pub relay_circuits_served: u64,
    /// Relay server: reservations and circuits refused (limits).
    pub relay_refused: u64,
    /// Bytes received through relay circuits (inside the circuit: what the
    /// relay carried for us, without its framing).
    pub relayed_bytes_in: u64,
    /// Bytes sent through relay circuits.
    pub relayed_bytes_out: u64,
}
