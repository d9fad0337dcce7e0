//! Building the libp2p swarm: the behaviour, gossipsub's settings and
//! scoring, the counting TCP and QUIC transports, and listen-port checks.

use std::time::Duration;

use libp2p::core::Transport;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Multiaddr, Swarm, autonat, connection_limits, dcutr, identify, mdns, noise, ping, quic, relay,
    tcp, yamux,
};
use meshtrace_protocol::AnnouncementId;

use super::counting::ByteCounters;
use super::limits::EarlyLimits;
use super::{
    MAX_GOSSIP_FRAME, MAX_STEM_MESSAGE, MAX_STEM_RESPONSE, MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE,
    MESH_VERSION, P2pConfig, P2pError, ProstCodec, STEM_REQUEST_TIMEOUT, StemRequest, StemResponse,
    SyncRequest, SyncResponse, protocol, topic_name,
};

/// How long gossipsub remembers a message id (and so ignores copies).
pub(crate) const GOSSIP_DUPLICATE_CACHE_TIME: Duration = Duration::from_secs(600);

/// Heartbeats in which gossip (IHAVE) tells peers outside the mesh about an
/// id it received (gossipsub's `history_gossip`; its default, 3, repeats
/// each id three times). Ids are 40 bytes and rare, the mesh delivers them,
/// and a catch-up round (protocol §14.4) backs up any loss, so one round of
/// gossip is enough (docs/performance.md, "Mesh, protocol v2").
pub(crate) const GOSSIP_HISTORY_HEARTBEATS: usize = 1;

/// Peers outside the mesh told about new ids in each heartbeat: this many
/// (`gossip_lazy`, default 6) and no share of the others (`gossip_factor`,
/// default 0.25, which sends gossip to a quarter of every other peer: about
/// eleven with the 50 connections a node keeps).
pub(crate) const GOSSIP_LAZY_PEERS: usize = 3;
/// Timeout of a Kademlia query.
pub(crate) const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most concurrent inbound and outbound streams of the stem and sync
/// protocols per connection.
pub(crate) const MAX_CONCURRENT_STREAMS: usize = 64;
/// AutoNAT's first probe, this long after start: enough for identify to
/// bring the first observed addresses (libp2p's default is 15 s).
pub(crate) const AUTONAT_BOOT_DELAY: Duration = Duration::from_secs(5);

/// An error a transport constructor may return.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every protocol the mesh runs. The limits come first: a connection they
/// refuse never reaches the others.
#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) early: EarlyLimits,
    pub(super) limits: connection_limits::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) stem: request_response::Behaviour<ProstCodec<StemRequest, StemResponse>>,
    pub(super) sync: request_response::Behaviour<ProstCodec<SyncRequest, SyncResponse>>,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) kad: Toggle<kad::Behaviour<MemoryStore>>,
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(super) relay_client: relay::client::Behaviour,
    pub(super) relay_server: Toggle<relay::Behaviour>,
    pub(super) dcutr: dcutr::Behaviour,
    pub(super) autonat: autonat::Behaviour,
}

/// The byte counters of a swarm's transports.
pub(super) struct Counters {
    /// Every direct connection (TCP and QUIC; relayed circuits run inside
    /// them).
    pub(super) all: ByteCounters,
    /// Inside relay circuits (also counted in `all` at the relay's
    /// connection).
    pub(super) relayed: ByteCounters,
}

/// Builds the swarm for `config` (not yet listening or dialling), with the
/// topic, and the byte counters of its transports.
pub(super) fn build_swarm(
    config: &P2pConfig,
    keypair: Keypair,
) -> Result<(Swarm<Behaviour>, IdentTopic, Counters), P2pError> {
    let topic = IdentTopic::new(topic_name(config.network_id()));
    let stem_proto = protocol(config.network_id(), "stem")?;
    let sync_proto = protocol(config.network_id(), "sync")?;
    let kad_proto = protocol(config.network_id(), "kad")?;
    let gcfg = gossip_config(config)?;
    let cfg = config.clone();
    let topic_b = topic.clone();
    let bytes = ByteCounters::default();
    let relayed_bytes = ByteCounters::default();
    let (tcp_bytes, quic_bytes, relay_bytes) =
        (bytes.clone(), bytes.clone(), relayed_bytes.clone());
    let (relay_transport, relay_client) = relay::client::new(keypair.public().to_peer_id());
    let transport_err = |e: &dyn std::fmt::Display| P2pError::Transport(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(move |key| -> Result<_, BoxError> {
            let noise = noise::Config::new(key)?;
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .map(move |(peer, muxer), _| {
                        (peer, tcp_bytes.wrap(StreamMuxerBox::new(muxer)))
                    }),
            )
        })
        .map_err(|e| transport_err(&e))?
        .with_other_transport(move |key| {
            quic::tokio::Transport::new(quic::Config::new(key))
                .map(move |(peer, muxer), _| (peer, quic_bytes.wrap(StreamMuxerBox::new(muxer))))
        })
        .map_err(|e| transport_err(&e))?
        // The relay client by hand (not `with_relay_client`), to count the
        // bytes of relayed connections apart.
        .with_other_transport(move |key| -> Result<_, BoxError> {
            let noise = noise::Config::new(key)?;
            Ok(relay_transport
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .map(move |(peer, muxer), _| (peer, relay_bytes.wrap(StreamMuxerBox::new(muxer)))))
        })
        .map_err(|e| transport_err(&e))?
        .with_dns()
        .map_err(|e| transport_err(&e))?
        .with_behaviour(move |key| {
            let peer_id = key.public().to_peer_id();
            let mut gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gcfg)?;
            let (params, thresholds) = score_params(&topic_b);
            gossipsub.with_peer_score(params, thresholds)?;
            let rr_cfg = request_response::Config::default()
                .with_request_timeout(STEM_REQUEST_TIMEOUT)
                .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS);
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
            // Listen address changes (a relay reservation) are pushed, so
            // that peers' Kademlia tables learn relayed addresses.
            let identify = identify::Behaviour::new(
                identify::Config::new(
                    format!("/meshtrace/{}/{MESH_VERSION}", cfg.network_id()),
                    key.public(),
                )
                .with_agent_version(format!("meshtrace/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
            );
            let mut kad_cfg = kad::Config::new(kad_proto);
            kad_cfg.set_query_timeout(KAD_QUERY_TIMEOUT);
            let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_cfg);
            if !cfg.light() {
                kad.set_mode(Some(kad::Mode::Server));
            }
            let mdns = if cfg.mdns() {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let limits = cfg.limits();
            // A node told to relay advertises it at once, without waiting
            // for AutoNAT to confirm an external address.
            let relay_server = cfg.relay_server().then(|| {
                let mut r = relay::Behaviour::new(peer_id, limits.relay_config());
                r.set_status(Some(relay::Status::Enable));
                r
            });
            let autonat = autonat::Behaviour::new(
                peer_id,
                autonat::Config {
                    boot_delay: AUTONAT_BOOT_DELAY,
                    ..autonat::Config::default()
                },
            );
            Ok(Behaviour {
                early: EarlyLimits::new(limits.max_connections_per_ip, limits.max_connections),
                limits: connection_limits::Behaviour::new(limits.connection_limits()),
                gossipsub,
                stem,
                sync,
                identify,
                ping: ping::Behaviour::new(ping::Config::new()),
                kad: Toggle::from(cfg.discovery().then_some(kad)),
                mdns: Toggle::from(mdns),
                relay_client,
                relay_server: Toggle::from(relay_server),
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat,
            })
        })
        .map_err(|e| P2pError::Config(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout()))
        .build();
    Ok((
        swarm,
        topic,
        Counters {
            all: bytes,
            relayed: relayed_bytes,
        },
    ))
}

fn gossip_config(cfg: &P2pConfig) -> Result<gossipsub::Config, P2pError> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        // Content-addressed ids: in anonymous mode the default id is constant.
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(AnnouncementId::of(&m.data).0.to_vec())
        })
        .max_transmit_size(MAX_GOSSIP_FRAME)
        // Origin privacy: the fluff step goes to the mesh only.
        .flood_publish(false)
        .heartbeat_interval(cfg.heartbeat())
        .duplicate_cache_time(GOSSIP_DUPLICATE_CACHE_TIME)
        .history_gossip(GOSSIP_HISTORY_HEARTBEATS)
        .gossip_lazy(GOSSIP_LAZY_PEERS)
        .gossip_factor(0.0)
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
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
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
pub(crate) fn check_ports_free(listen: &[Multiaddr]) -> Result<(), P2pError> {
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
