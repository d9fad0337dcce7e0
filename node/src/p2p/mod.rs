//! The mesh: libp2p over TCP (noise + yamux) and QUIC, carrying certified
//! announcements with anonymous, validated gossipsub, Dandelion-style stem
//! hops for origin privacy, and per-day digest reconciliation so nodes that
//! were offline catch up. `docs/protocol.md` §14 specifies the names and
//! messages.
//!
//! All mesh logic lives in [`MeshState`], a sans-IO core driven with
//! explicit time and drained of [`Effect`]s. The swarm runs in its own task
//! ([`spawn`], `driver.rs`), a thin loop around that core; the node talks to
//! it through a [`P2pHandle`]: commands in, [`P2pEvent`]s out, both bounded.

mod bodies;
mod config;
mod counting;
mod driver;
mod identity;
mod limits;
mod nat;
mod pool;
mod rates;
mod state;
mod stem;
mod swarm;
mod sync;
mod verify;
mod wire;

use std::time::Duration;

use meshtrace_protocol::{AnnouncementError, AnnouncementId, VerifiedAnnouncement};

pub use bodies::{BodyRequest, MAX_BODY_REQUEST_IDS, MAX_RECENT_BODIES};
pub use config::{P2pConfig, P2pConfigBuilder};
pub use driver::{P2pHandle, spawn, spawn_with_store};
pub use identity::load_or_create_identity;
/// The libp2p types the mesh's API uses (addresses, peer ids, keys).
pub use libp2p::{
    Multiaddr, PeerId, StreamProtocol, gossipsub::MessageAcceptance, identity::Keypair,
    multiaddr::Protocol, request_response::Codec,
};
pub use limits::{Limits, MAX_LIMIT, MAX_RELAY_CIRCUIT_BYTES, MAX_RELAY_CIRCUIT_DURATION};
pub use nat::{NatCounters, NatStatus, Reachability};
pub(crate) use pool::MAX_POOL_ANNOUNCEMENTS;
pub use pool::{DayDigest, HeldAnnouncement, Pool};
pub use rates::RATE_WINDOW;
pub use state::{Effect, MeshState, Now, TICK, Token};
pub(crate) use swarm::check_ports_free;
pub use verify::{MIN_PER_THREAD, verify_on, verify_parallel};
pub use wire::{
    DayDigestMsg, ID_MESSAGE_LEN, IdMessage, IdMessageError, MAX_FETCH_IDS, MAX_IDS_PER_DAY,
    MAX_STEM_MESSAGE, MAX_STEM_RESPONSE, MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE, ProstCodec,
    StemRequest, StemResponse, SyncRequest, SyncResponse, fetch_ids, response_ids, screen_digests,
    sync_request,
};

/// Protocol version in every name (2: the topic carries announcement ids,
/// bodies are fetched by id).
pub const MESH_VERSION: u32 = 2;
/// The version before: a peer whose identify lists only its names is told
/// apart in the logs.
pub(crate) const PREVIOUS_MESH_VERSION: u32 = 1;
/// Peers a node asks for an announcement body it heard of in gossip (the
/// peer it heard the id from first, then random others) before giving up
/// and leaving it to catch-up.
pub const MAX_FETCH_ATTEMPTS: u32 = 3;
/// Most gossip fetches in flight at once; a further new id is ignored
/// (catch-up brings it later).
pub const MAX_GOSSIP_FETCHES: usize = 1024;
/// Most of those for ids heard from one peer (room for two reports of
/// [`MAX_CHUNKS`](meshtrace_protocol::MAX_CHUNKS) chunks published at
/// once); a further new id from it is ignored. Without it a peer gossiping
/// bogus ids it never serves filled every slot, and an honest report heard
/// meanwhile waited for catch-up (seen: 60 s instead of 0.3 s in the flood
/// test).
pub const MAX_GOSSIP_FETCHES_PER_PEER: usize = 2 * meshtrace_protocol::MAX_CHUNKS as usize;
/// Capacity of the command and event channels.
pub(crate) const CHANNEL_CAPACITY: usize = 1024;
/// Most announcements waiting in the outbox.
pub const MAX_OUTBOX: usize = 1024;
/// Most sync requests a peer may make per minute before being refused.
pub const SYNC_REQUESTS_PER_MINUTE: u32 = 120;
/// Most stem requests a peer may make per minute before being refused.
pub const STEM_REQUESTS_PER_MINUTE: u32 = 60;
/// Timeout of one stem or sync request.
pub(crate) const STEM_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Gossipsub's limit on one frame (its `max_transmit_size`). It bounds a
/// whole frame, not one message: a busy sender batches queued messages and
/// control entries into one frame, and a receiver drops the stream on a
/// frame over its limit. So it is gossipsub's usual 64 KiB, not one id
/// message's size (a 1,064-byte limit lost every message after a burst of
/// 17 ids); each message's data is held to [`ID_MESSAGE_LEN`] by the
/// decision rules instead.
pub(crate) const MAX_GOSSIP_FRAME: usize = 65_536;

/// The gossip topic of a network.
pub fn topic_name(network_id: &str) -> String {
    format!("meshtrace/{network_id}/announcements/{MESH_VERSION}")
}

/// The stream protocol `/meshtrace/<net>/<what>/2`.
fn protocol(network_id: &str, what: &str) -> Result<StreamProtocol, P2pError> {
    protocol_version(network_id, what, MESH_VERSION)
}

/// The stream protocol `/meshtrace/<net>/<what>/<version>`.
fn protocol_version(
    network_id: &str,
    what: &str,
    version: u32,
) -> Result<StreamProtocol, P2pError> {
    StreamProtocol::try_from_owned(format!("/meshtrace/{network_id}/{what}/{version}"))
        .map_err(|e| P2pError::Config(format!("protocol name: {e}")))
}

/// A mesh failure.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// Invalid settings.
    #[error("invalid mesh configuration: {0}")]
    Config(String),
    /// A transport or listener failure.
    #[error("network error: {0}")]
    Transport(String),
    /// The identity key file cannot be read or written.
    #[error("node identity {path}: {reason}")]
    Identity {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The mesh task has stopped.
    #[error("the mesh has stopped")]
    Stopped,
}

/// How an announcement reached this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Gossip, first copy from this peer.
    Gossip(PeerId),
    /// A stem hop from this peer.
    Stem(PeerId),
    /// Catch-up from this peer.
    Sync(PeerId),
    /// Our own report.
    Local,
}

/// What the mesh reports to the node.
#[derive(Clone, Debug)]
pub enum P2pEvent {
    /// A new valid announcement (each id once).
    Announcement {
        /// The verified chunk.
        verified: Box<VerifiedAnnouncement>,
        /// Its bytes (to store).
        bytes: Vec<u8>,
        /// How it arrived.
        origin: Origin,
    },
    /// An own report left this node (stem hop accepted, or gossiped).
    Sent {
        /// The chunk.
        id: AnnouncementId,
        /// `true` when it went through a stem hop, `false` when it had to be
        /// gossiped directly (no full peer accepted a stem hop in time).
        via_stem: bool,
    },
    /// Listening on a new address.
    Listening(Multiaddr),
}

/// Peer status (for `meshtrace peers`).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// Its gossipsub score, when scoring knows it.
    pub score: Option<f64>,
    /// Whether it is a full node (subscribed to the topic).
    pub full: bool,
}

/// Mesh status.
#[derive(Clone, Debug, PartialEq)]
pub struct P2pStatus {
    /// Our peer id.
    pub peer_id: PeerId,
    /// Addresses we listen on.
    pub listen: Vec<Multiaddr>,
    /// Connected peers.
    pub peers: Vec<PeerInfo>,
    /// Announcements held.
    pub pool: usize,
    /// Reports waiting to leave.
    pub outbox: usize,
    /// Counters.
    pub counters: P2pCounters,
    /// Connections, reachability and NAT traversal.
    pub nat: NatStatus,
}

/// Mesh counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct P2pCounters {
    /// Gossip messages accepted.
    pub accepted: u64,
    /// Gossip messages ignored (known or expired).
    pub ignored: u64,
    /// Gossip or stem messages rejected as invalid.
    pub rejected: u64,
    /// Sync rounds completed.
    pub sync_rounds: u64,
    /// Bytes received in sync responses.
    pub sync_bytes_in: u64,
    /// Requests refused by rate limits.
    pub rate_limited: u64,
    /// Bytes received on all connections (transport level, all protocols).
    pub bytes_in: u64,
    /// Bytes sent on all connections.
    pub bytes_out: u64,
    /// Valid chunks dropped because the same report key already had a
    /// different chunk with that index (a certificate holder flooding
    /// variants): first one wins, the rest are neither stored nor forwarded.
    pub equivocations: u64,
    /// Stem requests sent (own reports and relayed ones).
    pub stem_sent: u64,
    /// Times an own report was due but no connected peer speaks the stem
    /// protocol, so it kept waiting (no failure is counted for that).
    pub stem_waits: u64,
    /// Announcement bodies fetched by id after their id came in gossip.
    pub gossip_fetches: u64,
    /// Gossip fetches that failed at one peer (retried with another).
    pub gossip_fetch_failures: u64,
    /// Ids heard in gossip whose body no peer handed over within
    /// [`MAX_FETCH_ATTEMPTS`] (left to catch-up).
    pub gossip_fetch_given_up: u64,
    /// Peers that speak only the previous mesh version (refused).
    pub old_version_peers: u64,
}

/// Why the mesh refused an own report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    /// It does not verify.
    #[error(transparent)]
    Invalid(#[from] AnnouncementError),
    /// [`MAX_OUTBOX`] reports are already waiting; the node keeps its copy
    /// and hands it over again later.
    #[error("the mesh outbox is full")]
    OutboxFull,
    /// The mesh already holds a different chunk with the same report key
    /// and index.
    #[error("a different chunk of this report with the same index is already published")]
    Equivocation,
}

/// Each stem relay publishes to gossip with this probability instead of
/// forwarding (Dandelion++): the expected stem length is `1 / p` hops, and
/// every stem request looks the same whoever sent it.
pub(crate) fn fluff_probability(stem_hops: u32) -> f64 {
    if stem_hops == 0 {
        1.0
    } else {
        1.0 / f64::from(stem_hops)
    }
}
/// The value of `StemRequest.hops_left` on the wire: always the same, so a
/// receiver cannot tell an originator from a relay by it.
pub const STEM_MARKER: u32 = 1;
/// Own stem hops that may fail before a full node gossips its report itself.
pub const MAX_STEM_FAILURES: u32 = 5;
/// Most events held back while the node does not read them.
pub(crate) const MAX_EVENT_BACKLOG: usize = MAX_POOL_ANNOUNCEMENTS;
/// Most digest days considered from one peer (the retention window plus
/// slack for clock skew).
pub const MAX_SYNC_DAYS: usize = 20;
/// Most fetch batches started per reconciled day and round.
pub const MAX_FETCH_BATCHES: usize = 4;
/// Largest fetch response this node sends (bytes), bodies read from the
/// store included.
pub const MAX_FETCH_RESPONSE: usize = 1024 * 1024;
/// Response bytes one peer may pull per minute.
pub(crate) const SYNC_BYTES_PER_MINUTE: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_network_id() {
        assert_eq!(topic_name("campus"), "meshtrace/campus/announcements/2");
        assert_eq!(
            protocol("campus", "stem").unwrap().as_ref(),
            "/meshtrace/campus/stem/2"
        );
    }
}
