//! Connection and relay limits ([`Limits`], with presets for a phone and a
//! PC) and the limits applied before a connection's handshake
//! ([`EarlyLimits`]: the total cap and the per-IP cap on inbound
//! connections).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// How many connections a node accepts, and how much it relays when it is
/// a relay server. Presets: [`Limits::PHONE`] and [`Limits::PC`].
///
/// A node refuses an inbound connection beyond `max_pending_incoming`
/// handshakes in progress or beyond `max_connections_per_ip` from one
/// address (before the handshake: the attacker pays the TCP setup only), and
/// closes any connection beyond `max_connections` in all or
/// `max_connections_per_peer` with one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Established connections in all, inbound and outbound.
    pub max_connections: u32,
    /// Established connections with one peer (a direct connection beside a
    /// relayed one during hole punching, plus a simultaneous dial: 3).
    pub max_connections_per_peer: u32,
    /// Inbound connections (established or in handshake) from one IP
    /// address. Phones behind one carrier-grade NAT share an address, so a
    /// public node allows a crowd.
    pub max_connections_per_ip: u32,
    /// Inbound handshakes in progress.
    pub max_pending_incoming: u32,
    /// Relay server: reservations held in all (peers reachable through us).
    pub relay_max_reservations: u32,
    /// Relay server: reservations of one peer.
    pub relay_max_reservations_per_peer: u32,
    /// Relay server: circuits open in all.
    pub relay_max_circuits: u32,
    /// Relay server: circuits open with one peer as source.
    pub relay_max_circuits_per_peer: u32,
    /// Relay server: a circuit is closed after this long (its peers dial it
    /// again or, better, upgrade to a direct connection).
    pub relay_circuit_duration: Duration,
    /// Relay server: a circuit is closed after relaying this many bytes.
    pub relay_circuit_bytes: u64,
}

/// Largest value of any connection or relay count setting.
pub const MAX_LIMIT: u32 = 1_000_000;
/// Longest relay circuit allowed by a setting.
pub const MAX_RELAY_CIRCUIT_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Most bytes per relay circuit allowed by a setting (1 GiB).
pub const MAX_RELAY_CIRCUIT_BYTES: u64 = 1 << 30;

impl Limits {
    /// A phone: a handful of full peers is all a light node needs; it
    /// never serves as a relay, the relay values only bound a misconfigured
    /// one.
    pub const PHONE: Limits = Limits {
        max_connections: 32,
        max_connections_per_peer: 3,
        max_connections_per_ip: 8,
        max_pending_incoming: 8,
        relay_max_reservations: 8,
        relay_max_reservations_per_peer: 1,
        relay_max_circuits: 4,
        relay_max_circuits_per_peer: 2,
        relay_circuit_duration: Duration::from_secs(10 * 60),
        relay_circuit_bytes: 1 << 20,
    };

    /// A PC, an office machine or a small VPS, sized so that one serves a
    /// neighbourhood of phones and relays for the home PCs behind NAT that
    /// hole punching cannot reach (docs/deployment.md has the measured
    /// cost: a relayed full node moves well under the circuit byte limit in
    /// a circuit's lifetime at the reference load).
    pub const PC: Limits = Limits {
        max_connections: 1024,
        max_connections_per_peer: 3,
        max_connections_per_ip: 64,
        max_pending_incoming: 128,
        relay_max_reservations: 512,
        relay_max_reservations_per_peer: 2,
        relay_max_circuits: 256,
        relay_max_circuits_per_peer: 16,
        relay_circuit_duration: Duration::from_secs(60 * 60),
        relay_circuit_bytes: 16 << 20,
    };

    /// Checks every value: counts from 1 to [`MAX_LIMIT`], a circuit of 1 s
    /// to [`MAX_RELAY_CIRCUIT_DURATION`] and 1 KiB to
    /// [`MAX_RELAY_CIRCUIT_BYTES`]. The error names the setting.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_peer", self.max_connections_per_peer),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_pending_incoming", self.max_pending_incoming),
            ("relay_max_reservations", self.relay_max_reservations),
            (
                "relay_max_reservations_per_peer",
                self.relay_max_reservations_per_peer,
            ),
            ("relay_max_circuits", self.relay_max_circuits),
            (
                "relay_max_circuits_per_peer",
                self.relay_max_circuits_per_peer,
            ),
        ] {
            if !(1..=MAX_LIMIT).contains(&v) {
                return Err(format!("{name} is {v}, allowed are 1 to {MAX_LIMIT}"));
            }
        }
        if self.max_connections_per_peer > self.max_connections {
            return Err(format!(
                "max_connections_per_peer ({}) is more than max_connections ({})",
                self.max_connections_per_peer, self.max_connections
            ));
        }
        let secs = self.relay_circuit_duration.as_secs();
        if !(1..=MAX_RELAY_CIRCUIT_DURATION.as_secs()).contains(&secs) {
            return Err(format!(
                "relay_circuit_seconds is {secs}, allowed are 1 to {}",
                MAX_RELAY_CIRCUIT_DURATION.as_secs()
            ));
        }
        if !(1024..=MAX_RELAY_CIRCUIT_BYTES).contains(&self.relay_circuit_bytes) {
            return Err(format!(
                "relay_circuit_bytes is {}, allowed are 1024 to {MAX_RELAY_CIRCUIT_BYTES}",
                self.relay_circuit_bytes
            ));
        }
        Ok(())
    }

    /// The libp2p connection limits.
    pub(super) fn connection_limits(&self) -> libp2p::connection_limits::ConnectionLimits {
        libp2p::connection_limits::ConnectionLimits::default()
            .with_max_established(Some(self.max_connections))
            .with_max_established_per_peer(Some(self.max_connections_per_peer))
            .with_max_pending_incoming(Some(self.max_pending_incoming))
    }

    /// The relay server's settings.
    pub(super) fn relay_config(&self) -> libp2p::relay::Config {
        let as_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        libp2p::relay::Config {
            max_reservations: as_usize(self.relay_max_reservations),
            max_reservations_per_peer: as_usize(self.relay_max_reservations_per_peer),
            max_circuits: as_usize(self.relay_max_circuits),
            max_circuits_per_peer: as_usize(self.relay_max_circuits_per_peer),
            max_circuit_duration: self.relay_circuit_duration,
            max_circuit_bytes: self.relay_circuit_bytes,
            ..libp2p::relay::Config::default()
        }
    }
}

/// The limits that apply before a connection's handshake, a behaviour of
/// their own (`libp2p::connection_limits` decides on established
/// connections only, after both ends paid for the Noise handshake: several
/// X25519 operations and a signature each):
///
/// * **The total cap.** While this node holds `max_established`
///   established connections, a new one is refused: an outbound dial fails
///   at once, opening no socket, and an inbound connection is closed before
///   its handshake. A node at its cap that peers keep dialling (discovery
///   queries in a dense mesh) would otherwise spend its CPU on handshakes it
///   then throws away.
/// * **The per-IP cap.** An inbound connection is refused when its source
///   IP address already has `max_per_ip` inbound connections, established
///   or in handshake (`connection_limits` counts per peer id, which an
///   attacker chooses freely). Relayed connections (no IP of their own) are
///   not counted here: the relay server's circuit limits bound them. Nor
///   are loopback ones: they come from this machine (several nodes on one
///   host, the tests' meshes).
pub(super) struct EarlyLimits {
    max_per_ip: u32,
    by_ip: HashMap<IpAddr, u32>,
    conns: HashMap<ConnectionId, IpAddr>,
    max_established: u32,
    established: HashSet<ConnectionId>,
}

/// The first IP address of a multiaddr, unless it goes through a relay.
fn source_ip(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

impl EarlyLimits {
    pub(super) fn new(max_per_ip: u32, max_established: u32) -> EarlyLimits {
        EarlyLimits {
            max_per_ip,
            by_ip: HashMap::new(),
            conns: HashMap::new(),
            max_established,
            established: HashSet::new(),
        }
    }

    fn check_cap(&self) -> Result<(), ConnectionDenied> {
        if self.established.len() >= self.max_established as usize {
            return Err(ConnectionDenied::new(AtConnectionCap {
                max: self.max_established,
            }));
        }
        Ok(())
    }

    fn release(&mut self, id: ConnectionId) {
        if let Some(ip) = self.conns.remove(&id)
            && let Some(n) = self.by_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }
}

/// An inbound connection refused by the per-IP cap of [`EarlyLimits`].
#[derive(Debug, thiserror::Error)]
#[error("more than {max} inbound connections from {ip}")]
pub(super) struct TooManyFromIp {
    ip: IpAddr,
    max: u32,
}

/// A connection refused by the total cap of [`EarlyLimits`].
#[derive(Debug, thiserror::Error)]
#[error("this node already holds its maximum of {max} connections")]
pub(super) struct AtConnectionCap {
    max: u32,
}

impl NetworkBehaviour for EarlyLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check_cap()?;
        let Some(ip) = source_ip(remote).filter(|ip| !ip.is_loopback()) else {
            return Ok(());
        };
        let n = self.by_ip.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return Err(ConnectionDenied::new(TooManyFromIp {
                ip,
                max: self.max_per_ip,
            }));
        }
        *n += 1;
        self.conns.insert(id, ip);
        Ok(())
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.check_cap()?;
        Ok(Vec::new())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { connection_id, .. }) => {
                self.established.insert(connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.established.remove(&connection_id);
                self.release(connection_id)
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn presets_pass_their_own_checks_and_bad_values_are_named() {
        assert_eq!(Limits::PHONE.check(), Ok(()));
        assert_eq!(Limits::PC.check(), Ok(()));
        let e = Limits {
            max_connections_per_ip: 0,
            ..Limits::PC
        }
        .check()
        .unwrap_err();
        assert!(e.contains("max_connections_per_ip"), "{e}");
        let e = Limits {
            max_connections_per_peer: 2000,
            ..Limits::PC
        }
        .check()
        .unwrap_err();
        assert!(e.contains("max_connections_per_peer"), "{e}");
        let e = Limits {
            relay_circuit_bytes: 10,
            ..Limits::PC
        }
        .check()
        .unwrap_err();
        assert!(e.contains("relay_circuit_bytes"), "{e}");
    }

    #[test]
    fn per_ip_limit_refuses_beyond_max_and_frees_on_close() {
        let mut l = EarlyLimits::new(2, u32::MAX);
        let local = addr("/ip4/10.0.0.1/tcp/4001");
        let a = addr("/ip4/10.0.0.2/tcp/5000");
        let b = addr("/ip4/10.0.0.3/tcp/5000");
        let ids: Vec<ConnectionId> = (1..=4).map(ConnectionId::new_unchecked).collect();
        assert!(
            l.handle_pending_inbound_connection(ids[0], &local, &a)
                .is_ok()
        );
        assert!(
            l.handle_pending_inbound_connection(ids[1], &local, &a)
                .is_ok()
        );
        assert!(
            l.handle_pending_inbound_connection(ids[2], &local, &a)
                .is_err()
        );
        // Another address is counted on its own.
        assert!(
            l.handle_pending_inbound_connection(ids[3], &local, &b)
                .is_ok()
        );
        // A relayed connection has no IP of its own.
        let relayed = addr(
            "/ip4/10.0.0.2/tcp/5000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        assert!(
            l.handle_pending_inbound_connection(ConnectionId::new_unchecked(99), &local, &relayed)
                .is_ok()
        );
        // Nor one from this machine.
        let lo = addr("/ip4/127.0.0.1/tcp/5000");
        for i in 0..5 {
            assert!(
                l.handle_pending_inbound_connection(
                    ConnectionId::new_unchecked(200 + i),
                    &local,
                    &lo
                )
                .is_ok()
            );
        }
        l.release(ids[0]);
        assert!(
            l.handle_pending_inbound_connection(ids[2], &local, &a)
                .is_ok()
        );
        assert!(
            l.handle_pending_inbound_connection(ConnectionId::new_unchecked(50), &local, &a)
                .is_err()
        );
    }

    #[test]
    fn early_cap_refuses_before_the_handshake_at_the_cap_and_frees_on_close() {
        use libp2p::core::ConnectedPoint;
        let mut l = EarlyLimits::new(u32::MAX, 2);
        let local = addr("/ip4/10.0.0.1/tcp/4001");
        let remote = addr("/ip4/10.0.0.2/tcp/5000");
        let endpoint = ConnectedPoint::Listener {
            local_addr: local.clone(),
            send_back_addr: remote.clone(),
        };
        let peer = PeerId::random();
        let id = ConnectionId::new_unchecked;
        let pending_in =
            |l: &mut EarlyLimits, n| l.handle_pending_inbound_connection(id(n), &local, &remote);
        let pending_out = |l: &mut EarlyLimits, n| {
            l.handle_pending_outbound_connection(id(n), None, &[], Endpoint::Dialer)
        };
        for n in 1..=2 {
            assert!(pending_in(&mut l, n).is_ok());
            l.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: id(n),
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established: 0,
            }));
        }
        let e = pending_in(&mut l, 3).expect_err("at the cap");
        let cause = e
            .downcast_ref::<AtConnectionCap>()
            .expect("refused by the cap");
        assert!(
            cause.to_string().contains("maximum of 2 connections"),
            "{cause}"
        );
        assert!(pending_out(&mut l, 4).is_err());
        l.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: id(1),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 1,
        }));
        assert!(pending_in(&mut l, 5).is_ok());
        assert!(pending_out(&mut l, 6).is_ok());
    }
}
