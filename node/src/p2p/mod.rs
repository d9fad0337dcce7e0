//! The mesh: libp2p over TCP (noise + yamux) and QUIC, carrying certified
//! announcements with anonymous, validated gossipsub, Dandelion-style stem
//! hops for origin privacy, and per-day digest reconciliation so nodes that
//! were offline catch up. `docs/protocol.md` §14 specifies the names and
//! messages.
//!
//! The swarm runs in its own task ([`spawn`]); the node talks to it through
//! a [`P2pHandle`]: commands in, [`P2pEvent`]s out, both bounded.

mod pool;
mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, PublishError};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, identify, mdns, noise, ping, relay,
    tcp, yamux,
};
use meshtrace_protocol::{
    AnnouncementError, AnnouncementId, Day, Disposition, IssuerPublicKey, MAX_ANNOUNCEMENT_BYTES,
    VerifiedAnnouncement, VerifyContext,
};
use rand::seq::IndexedRandom;
use tokio::sync::{mpsc, oneshot};

use crate::clock::SharedClock;

/// The libp2p version the mesh is built on (for addresses and peer ids).
pub use libp2p;
pub use pool::{DayDigest, MAX_POOL_ANNOUNCEMENTS, Pool};
pub use wire::{
    DayDigestMsg, MAX_FETCH_IDS, MAX_IDS_PER_DAY, MAX_MESSAGE_FIELDS, MAX_STEM_MESSAGE,
    MAX_STEM_RESPONSE, MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE, ProstCodec, StemRequest, StemResponse,
    SyncRequest, SyncResponse, fetch_ids, response_ids, screen_digests, sync_request,
};

/// Protocol version in every name.
pub const MESH_VERSION: u32 = 1;
/// Capacity of the command and event channels.
pub const CHANNEL_CAPACITY: usize = 1024;
/// Most announcements waiting in the outbox.
pub const MAX_OUTBOX: usize = 1024;
/// Most sync requests a peer may make per minute before being refused.
pub const SYNC_REQUESTS_PER_MINUTE: u32 = 120;
/// Most stem requests a peer may make per minute before being refused.
pub const STEM_REQUESTS_PER_MINUTE: u32 = 60;
/// Timeout of one stem or sync request.
pub const STEM_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Gossipsub's limit: one announcement plus protobuf framing.
pub const MAX_GOSSIP_MESSAGE: usize = MAX_ANNOUNCEMENT_BYTES + 1024;

/// The gossip topic of a network.
pub fn topic_name(network_id: &str) -> String {
    format!("meshtrace/{network_id}/announcements/{MESH_VERSION}")
}

fn protocol(network_id: &str, what: &str) -> Result<StreamProtocol, P2pError> {
    StreamProtocol::try_from_owned(format!("/meshtrace/{network_id}/{what}/{MESH_VERSION}"))
        .map_err(|e| P2pError::Config(format!("protocol name: {e}")))
}

/// Mesh settings.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// The deployment's network id (topic and protocol names carry it).
    pub network_id: String,
    /// Issuer keys this deployment trusts.
    pub trusted_issuers: Vec<IssuerPublicKey>,
    /// Listen addresses (e.g. `/ip4/127.0.0.1/tcp/0`, `/ip4/0.0.0.0/udp/0/quic-v1`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (with `/p2p/<id>` to seed Kademlia).
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Light mode (phones): not in the gossip mesh; catch-up pulls and stem
    /// pushes through full peers.
    pub light: bool,
    /// Serve as a relay for peers behind NAT.
    pub relay_server: bool,
    /// Stem hops before an own report is gossiped (0 = publish directly).
    pub stem_hops: u32,
    /// A stem relay that has not seen its forwarded report in gossip after
    /// this long publishes it itself (fail-safe).
    pub stem_timeout: Duration,
    /// How often to reconcile with a random peer.
    pub sync_interval: Duration,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
}

impl P2pConfig {
    /// Defaults for `network_id`.
    pub fn new(network_id: &str, trusted_issuers: Vec<IssuerPublicKey>) -> P2pConfig {
        P2pConfig {
            network_id: network_id.to_owned(),
            trusted_issuers,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            mdns: false,
            light: false,
            relay_server: false,
            stem_hops: 2,
            stem_timeout: Duration::from_secs(10),
            sync_interval: Duration::from_secs(300),
            heartbeat: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(300),
        }
    }
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

enum Command {
    Publish(
        Vec<u8>,
        oneshot::Sender<Result<AnnouncementId, PublishRefused>>,
    ),
    #[cfg(feature = "test-utils")]
    PublishUnchecked(Vec<u8>),
    Dial(Multiaddr),
    Status(oneshot::Sender<P2pStatus>),
    SyncNow,
    Shutdown,
}

/// The node's handle on the mesh task.
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    /// Events from the mesh (bounded).
    pub events: mpsc::Receiver<P2pEvent>,
    peer_id: PeerId,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for P2pHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pHandle")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

impl P2pHandle {
    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Hands an own report chunk to the mesh (stem hops, then gossip). It is
    /// verified and queued until a stem hop accepts it ([`P2pEvent::Sent`]);
    /// the caller keeps its own copy until then (the mesh's queue does not
    /// survive a restart).
    pub async fn publish(
        &self,
        bytes: Vec<u8>,
    ) -> Result<Result<AnnouncementId, PublishRefused>, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Publish(bytes, tx))
            .await
            .map_err(|_| P2pError::Stopped)?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// Gossips raw bytes without any check (feature `test-utils`: lets a
    /// test play a misbehaving peer).
    #[cfg(feature = "test-utils")]
    pub async fn publish_unchecked(&self, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.commands
            .send(Command::PublishUnchecked(bytes))
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.commands
            .send(Command::Dial(addr))
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Starts a catch-up round with a random peer now.
    pub async fn sync_now(&self) -> Result<(), P2pError> {
        self.commands
            .send(Command::SyncNow)
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Current status.
    pub async fn status(&self) -> Result<P2pStatus, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .await
            .map_err(|_| P2pError::Stopped)?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// Stops the mesh task and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown).await;
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for P2pHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    stem: request_response::Behaviour<ProstCodec<StemRequest, StemResponse>>,
    sync: request_response::Behaviour<ProstCodec<SyncRequest, SyncResponse>>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: Toggle<kad::Behaviour<MemoryStore>>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    relay_server: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
}

/// Loads the node's libp2p identity from `path`, or creates it (owner-only,
/// written atomically). A file that group or others can read is refused.
pub fn load_or_create_identity(path: &Path) -> Result<Keypair, P2pError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |reason: String| P2pError::Identity {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path)
                .map_err(|e| err(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "permissions {:o} let other users read it; run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| err(format!("not a valid key: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = Keypair::generate_ed25519();
            let bytes = kp.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(&bytes).map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
            std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(kp)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn gossip_config(cfg: &P2pConfig) -> Result<gossipsub::Config, P2pError> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        // Content-addressed ids: in anonymous mode the default id is constant.
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(AnnouncementId::of(&m.data).0.to_vec())
        })
        .max_transmit_size(MAX_GOSSIP_MESSAGE)
        // Origin privacy: the fluff step goes to the mesh only.
        .flood_publish(false)
        .heartbeat_interval(cfg.heartbeat)
        .duplicate_cache_time(Duration::from_secs(600))
        .build()
        .map_err(|e| P2pError::Config(format!("gossipsub: {e}")))
}

/// Peer scoring for a quiet topic: no penalties for delivering few messages
/// (P3/P3b off), a heavy penalty for invalid messages (P4), no IP
/// colocation penalty (loopback tests, carrier-grade NAT on phones).
fn score_params(
    topic: &IdentTopic,
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    let t = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        first_message_deliveries_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    };
    params.topics.insert(topic.hash(), t);
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 20.0,
    };
    (params, thresholds)
}

/// A transport error with its causes, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Refuses a listen address whose fixed TCP or UDP port another socket
/// holds. libp2p listens with `SO_REUSEPORT`, so without this check a
/// second node on the same port starts and takes half of the first node's
/// connections (dials to the first then fail with the wrong peer id). A
/// plain bind, without `SO_REUSEPORT`, fails while any socket holds the
/// port.
pub fn check_ports_free(listen: &[Multiaddr]) -> Result<(), P2pError> {
    use libp2p::multiaddr::Protocol;
    for addr in listen {
        let mut ip: Option<std::net::IpAddr> = None;
        for p in addr.iter() {
            let (port, tcp) = match p {
                Protocol::Ip4(a) => {
                    ip = Some(a.into());
                    continue;
                }
                Protocol::Ip6(a) => {
                    ip = Some(a.into());
                    continue;
                }
                Protocol::Tcp(port) => (port, true),
                Protocol::Udp(port) => (port, false),
                _ => continue,
            };
            let Some(ip) = ip else { break };
            if port == 0 {
                break;
            }
            let sa = std::net::SocketAddr::new(ip, port);
            let bound = if tcp {
                std::net::TcpListener::bind(sa).map(drop)
            } else {
                std::net::UdpSocket::bind(sa).map(drop)
            };
            match bound {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(P2pError::Transport(format!(
                        "listen address {addr}: {} port {port} is already in use \
                         (another meshtrace node?)",
                        if tcp { "TCP" } else { "UDP" }
                    )));
                }
                // Other errors (an address not on this machine, no
                // permission) are reported by libp2p's own listen.
                _ => break,
            }
        }
    }
    Ok(())
}

/// Starts the mesh. `initial` are announcements already held (from the
/// store): they seed the pool that catch-up serves.
pub async fn spawn(
    config: P2pConfig,
    keypair: Keypair,
    clock: SharedClock,
    initial: Vec<Vec<u8>>,
) -> Result<P2pHandle, P2pError> {
    if !meshtrace_protocol::is_valid_network_id(&config.network_id) {
        return Err(P2pError::Config(format!(
            "invalid network id {:?}",
            config.network_id
        )));
    }
    let topic = IdentTopic::new(topic_name(&config.network_id));
    let stem_proto = protocol(&config.network_id, "stem")?;
    let sync_proto = protocol(&config.network_id, "sync")?;
    let kad_proto = protocol(&config.network_id, "kad")?;
    let gcfg = gossip_config(&config)?;
    let cfg = config.clone();
    let topic_b = topic.clone();
    let mut registry = libp2p::metrics::Registry::default();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_quic()
        .with_dns()
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_bandwidth_metrics(&mut registry)
        .with_behaviour(move |key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gcfg)?;
            let (params, thresholds) = score_params(&topic_b);
            gossipsub.with_peer_score(params, thresholds)?;
            let rr_cfg = request_response::Config::default()
                .with_request_timeout(STEM_REQUEST_TIMEOUT)
                .with_max_concurrent_streams(64);
            let stem = request_response::Behaviour::with_codec(
                ProstCodec::new(MAX_STEM_MESSAGE, MAX_STEM_RESPONSE),
                [(stem_proto, ProtocolSupport::Full)],
                rr_cfg.clone(),
            );
            let sync = request_response::Behaviour::with_codec(
                ProstCodec::new(MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE),
                [(sync_proto, ProtocolSupport::Full)],
                rr_cfg,
            );
            let identify = identify::Behaviour::new(
                identify::Config::new(
                    format!("/meshtrace/{}/{MESH_VERSION}", cfg.network_id),
                    key.public(),
                )
                .with_agent_version(format!("meshtrace/{}", env!("CARGO_PKG_VERSION"))),
            );
            let mut kad_cfg = kad::Config::new(kad_proto);
            kad_cfg.set_query_timeout(Duration::from_secs(30));
            let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_cfg);
            if !cfg.light {
                kad.set_mode(Some(kad::Mode::Server));
            }
            let mdns = if cfg.mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let relay_server = cfg
                .relay_server
                .then(|| relay::Behaviour::new(peer_id, relay::Config::default()));
            Ok(Behaviour {
                gossipsub,
                stem,
                sync,
                identify,
                ping: ping::Behaviour::new(ping::Config::new()),
                kad: Toggle::from(Some(kad)),
                mdns: Toggle::from(mdns),
                relay_client,
                relay_server: Toggle::from(relay_server),
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
            })
        })
        .map_err(|e| P2pError::Config(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();

    if !config.light {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| P2pError::Config(format!("subscribe: {e}")))?;
    }
    check_ports_free(&config.listen)?;
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| P2pError::Transport(format!("listen on {addr}: {e}")))?;
    }
    for addr in &config.bootstrap {
        if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last()
            && let Some(k) = swarm.behaviour_mut().kad.as_mut()
        {
            k.add_address(&peer, addr.clone());
        }
        swarm
            .dial(addr.clone())
            .map_err(|e| P2pError::Transport(format!("dial {addr}: {e}")))?;
    }
    let peer_id = *swarm.local_peer_id();
    let (cmd_tx, cmd_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (ev_tx, ev_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let mut state = Mesh {
        swarm,
        config,
        topic,
        clock,
        pool: Pool::new(),
        events: ev_tx,
        backlog: VecDeque::new(),
        outbox: VecDeque::new(),
        stem_pending: HashMap::new(),
        hidden: HashMap::new(),
        slots: HashMap::new(),
        gossip_seen: HashSet::new(),
        stem_out: HashMap::new(),
        sync_out: HashMap::new(),
        full_peers: HashSet::new(),
        connected: HashSet::new(),
        rate: HashMap::new(),
        listen: Vec::new(),
        counters: P2pCounters::default(),
        registry,
        rng: rand::SeedableRng::from_rng(&mut rand::rng()),
    };
    for bytes in initial {
        if let Ok(v) = state.verify(&bytes)
            && !state.slot_taken(&v)
            && state.pool.insert(&v, &bytes)
        {
            state
                .slots
                .insert((v.report_key(), v.chunk_index()), v.id());
        }
    }
    let task = tokio::spawn(state.run(cmd_rx));
    Ok(P2pHandle {
        commands: cmd_tx,
        events: ev_rx,
        peer_id,
        task: Some(task),
    })
}

/// A report waiting to leave.
struct Outgoing {
    id: AnnouncementId,
    bytes: Vec<u8>,
    /// Stem hops that failed or were refused.
    failures: u32,
    next_try: tokio::time::Instant,
}

/// A stem hop in flight: what to do if it fails.
struct StemOut {
    id: AnnouncementId,
    own: bool,
}

/// A stem message this node relayed and has not yet seen in gossip.
struct StemPending {
    bytes: Vec<u8>,
    deadline: tokio::time::Instant,
}

enum SyncStep {
    Digests,
    Ids,
    Fetch(HashSet<AnnouncementId>),
}

struct RateWindow {
    start: tokio::time::Instant,
    stem: u32,
    sync: u32,
    bytes_out: usize,
}

/// Each stem relay publishes to gossip with this probability instead of
/// forwarding (Dandelion++): the expected stem length is `1 / p` hops, and
/// every stem request looks the same whoever sent it.
pub fn fluff_probability(stem_hops: u32) -> f64 {
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
pub const MAX_EVENT_BACKLOG: usize = MAX_POOL_ANNOUNCEMENTS;
/// Most digest days considered from one peer (the retention window plus
/// slack for clock skew).
pub const MAX_SYNC_DAYS: usize = 20;
/// Most fetch batches started per reconciled day and round.
pub const MAX_FETCH_BATCHES: usize = 4;
/// Largest fetch response this node sends (bytes).
pub const MAX_FETCH_RESPONSE: usize = 1024 * 1024;
/// Response bytes one peer may pull per minute.
pub const SYNC_BYTES_PER_MINUTE: usize = 16 * 1024 * 1024;

struct Mesh {
    swarm: Swarm<Behaviour>,
    config: P2pConfig,
    topic: IdentTopic,
    clock: SharedClock,
    pool: Pool,
    events: mpsc::Sender<P2pEvent>,
    backlog: VecDeque<P2pEvent>,
    outbox: VecDeque<Outgoing>,
    stem_pending: HashMap<AnnouncementId, StemPending>,
    /// Hidden pool entries and when they are revealed at the latest.
    hidden: HashMap<AnnouncementId, tokio::time::Instant>,
    /// The chunk held for each (report key, chunk index): first one wins.
    slots: HashMap<(meshtrace_protocol::ReportPublicKey, u32), AnnouncementId>,
    /// Ids seen in gossip (the first gossip copy of anything else is
    /// accepted and forwarded).
    gossip_seen: HashSet<AnnouncementId>,
    stem_out: HashMap<OutboundRequestId, StemOut>,
    sync_out: HashMap<OutboundRequestId, SyncStep>,
    full_peers: HashSet<PeerId>,
    connected: HashSet<PeerId>,
    rate: HashMap<PeerId, RateWindow>,
    listen: Vec<Multiaddr>,
    counters: P2pCounters,
    registry: libp2p::metrics::Registry,
    rng: rand::rngs::StdRng,
}

const TICK: Duration = Duration::from_millis(250);

impl Mesh {
    /// A failed dial of a bootstrap peer is logged at the default level
    /// with the address and the cause (other dials fail routinely).
    fn on_dial_failed(&self, peer: PeerId, error: &libp2p::swarm::DialError) {
        let addresses: Vec<String> = self
            .config
            .bootstrap
            .iter()
            .filter(|a| a.iter().last() == Some(libp2p::multiaddr::Protocol::P2p(peer)))
            .map(ToString::to_string)
            .collect();
        if addresses.is_empty() {
            tracing::debug!(%peer, error = %error, "dial failed");
            return;
        }
        let cause = match error {
            libp2p::swarm::DialError::WrongPeerId { obtained, address } => format!(
                "another node (peer id {obtained}) answers at {address}: the bootstrap \
                 address is out of date, or another node took its port"
            ),
            libp2p::swarm::DialError::Transport(errors) => errors
                .iter()
                .map(|(a, e)| format!("{a}: {}", error_chain(e)))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        tracing::warn!(
            address = %addresses.join(", "),
            cause = %cause.escape_debug(),
            "cannot reach a bootstrap peer"
        );
    }

    /// Transport-level byte totals (inbound, outbound) from the bandwidth
    /// metrics.
    fn bandwidth(&self) -> (u64, u64) {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return (0, 0);
        }
        let (mut inbound, mut outbound) = (0u64, 0u64);
        for line in text
            .lines()
            .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total"))
        {
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            if line.contains("direction=\"Inbound\"") {
                inbound += value;
            } else if line.contains("direction=\"Outbound\"") {
                outbound += value;
            }
        }
        (inbound, outbound)
    }

    fn verify(&self, bytes: &[u8]) -> Result<VerifiedAnnouncement, AnnouncementError> {
        VerifiedAnnouncement::verify(
            bytes,
            &VerifyContext {
                network_id: &self.config.network_id,
                trusted_issuers: &self.config.trusted_issuers,
                now: self.clock.now(),
            },
        )
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_sync = tokio::time::Instant::now() + self.config.sync_interval;
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.on_command(c),
                },
                _ = tick.tick() => {
                    self.drain_backlog();
                    self.flush_outbox();
                    self.stem_failsafe();
                    self.reveal_due();
                    if tokio::time::Instant::now() >= next_sync {
                        next_sync = tokio::time::Instant::now() + self.config.sync_interval;
                        self.expire();
                        self.start_sync(None);
                    }
                }
            }
        }
    }

    /// Never blocks the swarm: when the node is not reading, events wait in
    /// a bounded backlog (each announcement is delivered once; the pool holds
    /// them anyway).
    fn emit(&mut self, ev: P2pEvent) {
        if !self.backlog.is_empty() {
            self.drain_backlog();
        }
        if self.backlog.is_empty() {
            if let Err(mpsc::error::TrySendError::Full(ev)) = self.events.try_send(ev) {
                self.backlog.push_back(ev);
            }
        } else if self.backlog.len() < MAX_EVENT_BACKLOG {
            self.backlog.push_back(ev);
        } else {
            tracing::warn!("event backlog full: the node is not reading mesh events");
        }
    }

    fn drain_backlog(&mut self) {
        while let Some(ev) = self.backlog.pop_front() {
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => {
                    self.backlog.push_front(ev);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    fn expire(&mut self) {
        self.pool.expire(self.clock.now());
        let pool = &self.pool;
        self.gossip_seen.retain(|id| pool.contains(id));
        self.hidden.retain(|id, _| pool.contains(id));
        self.slots.retain(|_, id| pool.contains(id));
    }

    /// True when a different chunk already holds this chunk's slot.
    fn slot_taken(&self, v: &VerifiedAnnouncement) -> bool {
        self.slots
            .get(&(v.report_key(), v.chunk_index()))
            .is_some_and(|id| *id != v.id())
    }

    fn hide(&mut self, id: AnnouncementId) {
        let until = tokio::time::Instant::now() + self.config.stem_timeout * 3;
        self.hidden.insert(id, until);
    }

    fn reveal(&mut self, id: &AnnouncementId) {
        if self.hidden.remove(id).is_some() {
            self.pool.reveal(id);
        }
    }

    fn reveal_due(&mut self) {
        let now = tokio::time::Instant::now();
        let due: Vec<AnnouncementId> = self
            .hidden
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.reveal(&id);
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Publish(bytes, reply) => {
                if self.outbox.len() >= MAX_OUTBOX {
                    let _ = reply.send(Err(PublishRefused::OutboxFull));
                    return;
                }
                let v = match self.verify(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = reply.send(Err(PublishRefused::Invalid(e)));
                        return;
                    }
                };
                if self.slot_taken(&v) {
                    let _ = reply.send(Err(PublishRefused::Equivocation));
                    return;
                }
                let id = v.id();
                let _ = reply.send(Ok(id));
                if self.pool.insert_hidden(&v, &bytes) {
                    self.hide(id);
                    self.slots.insert((v.report_key(), v.chunk_index()), id);
                }
                // The reporter never forwards its own report in gossip: to
                // its neighbours it must not be the first to hand it on.
                self.gossip_seen.insert(id);
                if self.outbox.iter().all(|o| o.id != id) {
                    self.outbox.push_back(Outgoing {
                        id,
                        bytes,
                        failures: 0,
                        next_try: tokio::time::Instant::now(),
                    });
                }
                self.flush_outbox();
            }
            #[cfg(feature = "test-utils")]
            Command::PublishUnchecked(bytes) => {
                if let Err(e) = self.gossip_publish(&bytes) {
                    tracing::warn!(error = %e, "unchecked publish failed");
                }
            }
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, error = %e, "dial failed");
                }
            }
            Command::Status(reply) => {
                let (bytes_in, bytes_out) = self.bandwidth();
                self.counters.bytes_in = bytes_in;
                self.counters.bytes_out = bytes_out;
                let g = &self.swarm.behaviour().gossipsub;
                let peers = self
                    .connected
                    .iter()
                    .map(|p| PeerInfo {
                        peer: *p,
                        score: g.peer_score(p),
                        full: self.full_peers.contains(p),
                    })
                    .collect();
                let _ = reply.send(P2pStatus {
                    peer_id: *self.swarm.local_peer_id(),
                    listen: self.listen.clone(),
                    peers,
                    pool: self.pool.len(),
                    outbox: self.outbox.len(),
                    counters: self.counters,
                });
            }
            Command::SyncNow => self.start_sync(None),
            Command::Shutdown => {}
        }
    }

    /// A random connected full peer for a stem hop, never one that gossip
    /// scoring has penalised (negative score: it sent invalid messages), so
    /// a flooding peer is not handed reports to sit on.
    fn random_full_peer(&mut self, except: &[PeerId]) -> Option<PeerId> {
        let gossip = &self.swarm.behaviour().gossipsub;
        let candidates: Vec<PeerId> = self
            .full_peers
            .iter()
            .filter(|p| self.connected.contains(p) && !except.contains(p))
            .filter(|p| gossip.peer_score(p).is_none_or(|s| s >= 0.0))
            .copied()
            .collect();
        candidates.choose(&mut self.rng).copied()
    }

    /// Sends every due report as a stem hop to a random full peer. A full
    /// node whose stem hops keep failing (or with stem disabled) gossips the
    /// report itself; a light node keeps trying stem hops.
    fn flush_outbox(&mut self) {
        let now = tokio::time::Instant::now();
        let mut keep = VecDeque::new();
        while let Some(mut o) = self.outbox.pop_front() {
            if o.next_try > now {
                keep.push_back(o);
                continue;
            }
            let direct = !self.config.light
                && (self.config.stem_hops == 0 || o.failures >= MAX_STEM_FAILURES);
            if direct {
                match self.gossip_publish(&o.bytes) {
                    Ok(()) => {
                        self.reveal(&o.id);
                        self.gossip_seen.insert(o.id);
                        self.emit(P2pEvent::Sent {
                            id: o.id,
                            via_stem: false,
                        });
                        continue;
                    }
                    Err(e) => tracing::debug!(error = %e, "publish deferred"),
                }
                o.next_try = now + TICK * 4;
                keep.push_back(o);
                continue;
            }
            match self.random_full_peer(&[]) {
                Some(peer) => {
                    let req = StemRequest {
                        hops_left: STEM_MARKER,
                        announcement: o.bytes.clone(),
                    };
                    let rid = self.swarm.behaviour_mut().stem.send_request(&peer, req);
                    self.stem_out.insert(
                        rid,
                        StemOut {
                            id: o.id,
                            own: true,
                        },
                    );
                    // Kept until the hop is acknowledged; the request itself
                    // times out before the next try.
                    o.next_try = now + STEM_REQUEST_TIMEOUT + TICK;
                }
                // No full peer yet: wait without counting a failure.
                None => o.next_try = now + TICK * 4,
            }
            keep.push_back(o);
        }
        self.outbox = keep;
    }

    fn gossip_publish(&mut self, bytes: &[u8]) -> Result<(), PublishError> {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes.to_vec())
        {
            Ok(_) | Err(PublishError::Duplicate) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Fail-safe of Dandelion: a stem message we relayed that has not come
    /// back through gossip in time is published by us.
    fn stem_failsafe(&mut self) {
        if self.config.light {
            self.stem_pending.clear();
            return;
        }
        let now = tokio::time::Instant::now();
        let due: Vec<AnnouncementId> = self
            .stem_pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.stem_pending.remove(&id) {
                if self.gossip_publish(&p.bytes).is_ok() {
                    self.gossip_seen.insert(id);
                    self.reveal(&id);
                } else {
                    // No mesh yet: try again later.
                    self.stem_pending.insert(
                        id,
                        StemPending {
                            bytes: p.bytes,
                            deadline: now + self.config.stem_timeout,
                        },
                    );
                }
            }
        }
    }

    /// Per-peer limits: requests per minute and response bytes per minute.
    fn allow(&mut self, peer: PeerId, stem: bool) -> bool {
        let w = self.window(peer);
        let ok = if stem {
            w.stem += 1;
            w.stem <= STEM_REQUESTS_PER_MINUTE
        } else {
            w.sync += 1;
            w.sync <= SYNC_REQUESTS_PER_MINUTE && w.bytes_out < SYNC_BYTES_PER_MINUTE
        };
        if !ok {
            self.counters.rate_limited += 1;
        }
        ok
    }

    fn window(&mut self, peer: PeerId) -> &mut RateWindow {
        let now = tokio::time::Instant::now();
        let w = self.rate.entry(peer).or_insert(RateWindow {
            start: now,
            stem: 0,
            sync: 0,
            bytes_out: 0,
        });
        if now.duration_since(w.start) >= Duration::from_secs(60) {
            *w = RateWindow {
                start: now,
                stem: 0,
                sync: 0,
                bytes_out: 0,
            };
        }
        w
    }

    fn start_sync(&mut self, with: Option<PeerId>) {
        let peer = match with {
            Some(p) => Some(p),
            None => self.random_full_peer(&[]),
        };
        if let Some(p) = peer {
            let rid = self.swarm.behaviour_mut().sync.send_request(
                &p,
                SyncRequest {
                    kind: Some(sync_request::Kind::Digests(true)),
                },
            );
            self.sync_out.insert(rid, SyncStep::Digests);
        }
    }

    fn accept_new(&mut self, v: VerifiedAnnouncement, bytes: Vec<u8>, origin: Origin) {
        if self.slot_taken(&v) {
            self.counters.equivocations += 1;
            return;
        }
        let hidden = matches!(origin, Origin::Stem(_) | Origin::Local);
        let id = v.id();
        self.slots.insert((v.report_key(), v.chunk_index()), id);
        let inserted = if hidden {
            self.pool.insert_hidden(&v, &bytes)
        } else {
            self.pool.insert(&v, &bytes)
        };
        if inserted {
            if hidden {
                self.hide(id);
            }
            self.emit(P2pEvent::Announcement {
                verified: Box::new(v),
                bytes,
                origin,
            });
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                self.listen.push(address.clone());
                self.emit(P2pEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let new = self.connected.insert(peer_id);
                if let (ConnectedPoint::Dialer { address, .. }, Some(k)) =
                    (&endpoint, self.swarm.behaviour_mut().kad.as_mut())
                {
                    k.add_address(&peer_id, address.clone());
                }
                // Catch up with every new peer (light nodes too).
                if new {
                    self.start_sync(Some(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => self.on_dial_failed(peer, &error),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.full_peers.remove(&peer_id);
                self.rate.remove(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Stem(ev)) => self.on_stem(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    if !self.connected.contains(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in info.listen_addrs {
                        k.add_address(&peer_id, a);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.topic.hash() => {
                self.full_peers.insert(peer_id);
                if !self.outbox.is_empty() {
                    self.flush_outbox();
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } if topic == self.topic.hash() => {
                self.full_peers.remove(&peer_id);
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let id = AnnouncementId::of(&message.data);
                // Seen in gossip: a pending stem hop has fluffed, and
                // catch-up may serve it now.
                self.stem_pending.remove(&id);
                self.reveal(&id);
                let acceptance = if self.gossip_seen.contains(&id) {
                    self.counters.ignored += 1;
                    MessageAcceptance::Ignore
                } else if self.pool.contains(&id) {
                    // Held from a stem hop, catch-up or our own report, but
                    // this is its first gossip copy: forward it, so a stem
                    // relay whose neighbours only reach it through us still
                    // spreads it.
                    self.gossip_seen.insert(id);
                    self.counters.accepted += 1;
                    MessageAcceptance::Accept
                } else {
                    match self.verify(&message.data) {
                        Ok(v) if self.slot_taken(&v) => {
                            // Valid, but a variant of a chunk we hold:
                            // neither stored nor forwarded.
                            self.gossip_seen.insert(id);
                            self.counters.equivocations += 1;
                            MessageAcceptance::Ignore
                        }
                        Ok(v) => {
                            self.gossip_seen.insert(id);
                            self.counters.accepted += 1;
                            self.accept_new(v, message.data, Origin::Gossip(propagation_source));
                            MessageAcceptance::Accept
                        }
                        Err(e) if e.disposition() == Disposition::Ignore => {
                            self.counters.ignored += 1;
                            MessageAcceptance::Ignore
                        }
                        Err(e) => {
                            tracing::debug!(peer = %propagation_source, error = %e, "rejected gossip");
                            self.counters.rejected += 1;
                            MessageAcceptance::Reject
                        }
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            _ => {}
        }
    }

    fn on_stem(&mut self, ev: request_response::Event<StemRequest, StemResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if self.config.light || !self.allow(peer, true) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .stem
                        .send_response(channel, StemResponse { accepted: false });
                    return;
                }
                let verified = self.verify(&request.announcement);
                // A loop in the stem, already fluffed, or a variant of a
                // chunk we hold: refuse, so that the sender fluffs at once
                // instead of waiting for its fail-safe timer.
                let held = verified
                    .as_ref()
                    .is_ok_and(|v| self.pool.contains(&v.id()) || self.slot_taken(v));
                let accepted = verified.is_ok() && !held;
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .stem
                    .send_response(channel, StemResponse { accepted });
                let Ok(v) = verified else {
                    self.counters.rejected += 1;
                    return;
                };
                let id = v.id();
                if held {
                    return;
                }
                let bytes = request.announcement;
                self.accept_new(v, bytes.clone(), Origin::Stem(peer));
                self.relay_stem(id, bytes, peer);
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(out) = self.stem_out.remove(&request_id) else {
                    return;
                };
                if out.own {
                    if response.accepted {
                        // The Dandelion++ fail-safe covers the reporter too:
                        // if no copy comes back through gossip within
                        // `stem_timeout` (a hop that sits on it, or one
                        // whose gossip nobody accepts), we publish it.
                        if let Some(pos) = self.outbox.iter().position(|o| o.id == out.id)
                            && let Some(o) = self.outbox.remove(pos)
                        {
                            self.stem_pending.insert(
                                out.id,
                                StemPending {
                                    bytes: o.bytes,
                                    deadline: tokio::time::Instant::now()
                                        + self.config.stem_timeout,
                                },
                            );
                        }
                        self.outbox.retain(|o| o.id != out.id);
                        self.emit(P2pEvent::Sent {
                            id: out.id,
                            via_stem: true,
                        });
                    } else {
                        self.own_stem_failed(out.id);
                    }
                } else if !response.accepted
                    && let Some(p) = self.stem_pending.get_mut(&out.id)
                {
                    // The next hop refused: fluff now.
                    p.deadline = tokio::time::Instant::now();
                }
            }
            Event::OutboundFailure { request_id, .. } => {
                if let Some(out) = self.stem_out.remove(&request_id) {
                    if out.own {
                        self.own_stem_failed(out.id);
                    } else if let Some(p) = self.stem_pending.get_mut(&out.id) {
                        // The next hop failed: fluff now.
                        p.deadline = tokio::time::Instant::now();
                    }
                }
            }
            _ => {}
        }
    }

    fn own_stem_failed(&mut self, id: AnnouncementId) {
        if let Some(o) = self.outbox.iter_mut().find(|o| o.id == id) {
            o.failures += 1;
            o.next_try = tokio::time::Instant::now();
        }
    }

    /// Dandelion++ step of a relay: fluff with probability `1 / stem_hops`,
    /// otherwise forward to a random full peer other than the sender; keep a
    /// fail-safe either way.
    fn relay_stem(&mut self, id: AnnouncementId, bytes: Vec<u8>, from: PeerId) {
        let now = tokio::time::Instant::now();
        let fluff = rand::RngExt::random_bool(
            &mut self.rng,
            fluff_probability(self.config.stem_hops).clamp(0.0, 1.0),
        );
        let next = if fluff {
            None
        } else {
            self.random_full_peer(&[from])
        };
        if let Some(next) = next {
            let rid = self.swarm.behaviour_mut().stem.send_request(
                &next,
                StemRequest {
                    hops_left: STEM_MARKER,
                    announcement: bytes.clone(),
                },
            );
            self.stem_out.insert(rid, StemOut { id, own: false });
            self.stem_pending.insert(
                id,
                StemPending {
                    bytes,
                    deadline: now + self.config.stem_timeout,
                },
            );
        } else if self.gossip_publish(&bytes).is_ok() {
            self.gossip_seen.insert(id);
            self.reveal(&id);
        } else {
            self.stem_pending.insert(
                id,
                StemPending {
                    bytes,
                    deadline: now + self.config.stem_timeout / 4,
                },
            );
        }
    }

    fn on_sync(&mut self, ev: request_response::Event<SyncRequest, SyncResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let resp = if !self.allow(peer, false) {
                    SyncResponse {
                        refused: "rate limited".into(),
                        ..Default::default()
                    }
                } else {
                    self.answer_sync(request)
                };
                let size = prost::Message::encoded_len(&resp);
                self.window(peer).bytes_out += size;
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(step) = self.sync_out.remove(&request_id) else {
                    return;
                };
                self.counters.sync_bytes_in += prost::Message::encoded_len(&response) as u64;
                if !response.refused.is_empty() {
                    return;
                }
                self.on_sync_response(peer, step, response);
            }
            Event::OutboundFailure { request_id, .. } => {
                self.sync_out.remove(&request_id);
            }
            _ => {}
        }
    }

    fn on_sync_response(&mut self, peer: PeerId, step: SyncStep, response: SyncResponse) {
        match step {
            SyncStep::Digests => {
                // Only days that can hold unexpired announcements, each
                // once, and a bounded number of them.
                let theirs = wire::screen_digests(&response.digests, self.clock.now().day());
                let days = self.pool.days_to_reconcile(&theirs);
                if days.is_empty() {
                    self.counters.sync_rounds += 1;
                }
                for day in days {
                    let rid = self.swarm.behaviour_mut().sync.send_request(
                        &peer,
                        SyncRequest {
                            kind: Some(sync_request::Kind::Ids(day.0)),
                        },
                    );
                    self.sync_out.insert(rid, SyncStep::Ids);
                }
            }
            SyncStep::Ids => {
                let ids = wire::response_ids(&response.ids);
                let missing = self.pool.missing(&ids);
                if missing.is_empty() {
                    self.counters.sync_rounds += 1;
                }
                // A bounded number of batches per round; the next round
                // continues where this one stopped.
                for batch in missing.chunks(MAX_FETCH_IDS).take(MAX_FETCH_BATCHES) {
                    let rid = self.swarm.behaviour_mut().sync.send_request(
                        &peer,
                        SyncRequest {
                            kind: Some(sync_request::Kind::Fetch(
                                batch.iter().flat_map(|i| i.0).collect(),
                            )),
                        },
                    );
                    self.sync_out
                        .insert(rid, SyncStep::Fetch(batch.iter().copied().collect()));
                }
            }
            SyncStep::Fetch(asked) => {
                for bytes in response.announcements {
                    let id = AnnouncementId::of(&bytes);
                    if !asked.contains(&id) {
                        // Not what we asked for.
                        self.counters.rejected += 1;
                        continue;
                    }
                    match self.verify(&bytes) {
                        Ok(v) => self.accept_new(v, bytes, Origin::Sync(peer)),
                        Err(e) if e.disposition() == Disposition::Reject => {
                            self.counters.rejected += 1
                        }
                        Err(_) => {}
                    }
                }
                self.counters.sync_rounds += 1;
            }
        }
    }

    fn answer_sync(&self, request: SyncRequest) -> SyncResponse {
        match request.kind {
            Some(sync_request::Kind::Digests(_)) => SyncResponse {
                digests: self
                    .pool
                    .digests()
                    .into_iter()
                    .map(|d| DayDigestMsg {
                        day: d.day.0,
                        count: d.count,
                        xor: d.xor.to_vec(),
                    })
                    .collect(),
                ..Default::default()
            },
            Some(sync_request::Kind::Ids(day)) => SyncResponse {
                ids: self
                    .pool
                    .ids_of_day(Day(day))
                    .iter()
                    .take(MAX_IDS_PER_DAY)
                    .flat_map(|i| i.0)
                    .collect(),
                ..Default::default()
            },
            Some(sync_request::Kind::Fetch(ids)) => {
                let mut total = 0usize;
                let mut out = Vec::new();
                for id in wire::fetch_ids(&ids) {
                    if let Some(b) = self.pool.get(&id) {
                        if total + b.len() > MAX_FETCH_RESPONSE {
                            break;
                        }
                        total += b.len();
                        out.push(b.to_vec());
                    }
                }
                SyncResponse {
                    announcements: out,
                    ..Default::default()
                }
            }
            None => SyncResponse {
                refused: "empty request".into(),
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identity_is_created_owner_only_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p2p.key");
        let a = load_or_create_identity(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create_identity(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_identity(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            load_or_create_identity(&path),
            Err(P2pError::Identity { .. })
        ));
    }

    #[test]
    fn names_carry_the_network_id() {
        assert_eq!(topic_name("campus"), "meshtrace/campus/announcements/1");
        assert_eq!(
            protocol("campus", "stem").unwrap().as_ref(),
            "/meshtrace/campus/stem/1"
        );
    }
}
