//! The mesh task: a thin loop around [`MeshState`]. Swarm events go to its
//! `handle_*` methods, a [`TICK`] timer to `handle_timeout`, and its effects
//! become swarm calls; commands come from the [`P2pHandle`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{ConnectionId, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, dcutr, identify, mdns, relay};
use meshtrace_protocol::AnnouncementId;
use tokio::sync::{mpsc, oneshot};

use super::bodies::{BodyRequest, MAX_BODY_REQUEST_IDS};
use super::nat::{NatCounters, NatStatus, Reachability};
use super::pool::HeldAnnouncement;
use super::state::{Effect, MeshState, Now, TICK, Token};
use super::swarm::{
    Behaviour, BehaviourEvent, Counters, build_swarm, check_ports_free, error_chain,
};
use super::{
    CHANNEL_CAPACITY, MAX_EVENT_BACKLOG, MAX_FETCH_RESPONSE, P2pConfig, P2pError, P2pEvent,
    P2pStatus, PublishRefused, StemRequest, StemResponse, SyncRequest, SyncResponse,
};
use crate::clock::SharedClock;

/// First wait before dialling a lost bootstrap peer again; doubled after
/// every failed dial up to [`REDIAL_MAX`].
pub(crate) const REDIAL_MIN: Duration = Duration::from_secs(1);
/// Longest wait between dials of a lost bootstrap peer.
pub(crate) const REDIAL_MAX: Duration = Duration::from_secs(60);
/// How often a node with fewer peers than it wants asks Kademlia for more
/// (a random walk through the bootstrap peers' tables).
pub(crate) const DISCOVERY_INTERVAL: Duration = Duration::from_secs(15);
/// A full node looks for peers while it has fewer full peers than this
/// (gossipsub's lower mesh degree).
pub(crate) const DISCOVERY_TARGET_FULL: usize = 5;
/// A light node looks for peers while it has fewer full peers than this.
pub(crate) const DISCOVERY_TARGET_LIGHT: usize = 2;
/// How often the timer copies gossipsub's peer scores into the core (each
/// decision that picks a peer on a request refreshes them first): scores
/// move at gossipsub's heartbeat, and computing every peer's score on every
/// tick was a tenth of an idle node's CPU.
pub(crate) const SCORE_REFRESH: Duration = Duration::from_secs(1);
/// Requests for stored bytes waiting for the node at most.
pub(crate) const BODY_REQUESTS: usize = 64;
/// Relays a node behind NAT holds a reservation with at most.
pub(crate) const MAX_RELAY_RESERVATIONS: usize = 2;
/// How long a full peer whose last connection closed is dialled again
/// (with the bootstrap back-off) while this node is short of full peers:
/// the mesh heals after a relay or a peer restarts.
pub(crate) const LOST_PEER_TTL: Duration = Duration::from_secs(10 * 60);
/// Lost full peers remembered at most (the oldest is forgotten first).
pub(crate) const MAX_LOST_PEERS: usize = 16;
/// How often a node behind NAT asks connected relays again for a
/// reservation it does not hold (one that failed or ended while the relay
/// stayed connected).
pub(crate) const RESERVATION_RETRY: Duration = Duration::from_secs(5);

/// When a lost bootstrap peer is dialled next.
struct Redial {
    at: Instant,
    backoff: Duration,
}

/// A full peer whose last connection closed, dialled again until
/// [`LOST_PEER_TTL`] has passed.
struct Lost {
    /// The address we had dialled it at, if the connection was direct and
    /// ours; a relayed peer is dialled through the relays we hold a
    /// reservation with.
    addr: Option<Multiaddr>,
    relayed: bool,
    lost_at: Instant,
    redial: Redial,
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
    /// Requests for stored announcement bytes, from a mesh started with
    /// [`spawn_with_store`] (bounded; never sent by [`spawn`]'s).
    pub bodies: mpsc::Receiver<BodyRequest>,
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

    async fn send(&self, c: Command) -> Result<(), P2pError> {
        self.commands.send(c).await.map_err(|_| P2pError::Stopped)
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
        self.send(Command::Publish(bytes, tx)).await?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// Gossips the id of raw bytes and serves them to whoever fetches
    /// them, without any check (feature `test-utils`: lets a test play a
    /// misbehaving peer).
    #[cfg(feature = "test-utils")]
    pub async fn publish_unchecked(&self, bytes: Vec<u8>) -> Result<(), P2pError> {
        self.send(Command::PublishUnchecked(bytes)).await
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.send(Command::Dial(addr)).await
    }

    /// Starts a catch-up round with a random peer now.
    pub async fn sync_now(&self) -> Result<(), P2pError> {
        self.send(Command::SyncNow).await
    }

    /// Current status.
    pub async fn status(&self) -> Result<P2pStatus, P2pError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Status(tx)).await?;
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

/// Starts a mesh that keeps announcement bytes in memory (no node beside
/// it: tests, benchmarks, the simulator). `initial` are announcements
/// already held: they seed the pool that catch-up serves.
pub async fn spawn(
    config: P2pConfig,
    keypair: Keypair,
    clock: SharedClock,
    initial: Vec<Vec<u8>>,
) -> Result<P2pHandle, P2pError> {
    let now = Now {
        mono: Instant::now(),
        unix: clock.now(),
    };
    let config = config.to_builder().build()?;
    let state = MeshState::new(config.clone(), rand::random(), now, initial)?;
    spawn_state(config, state, keypair, clock).await
}

/// Starts a mesh beside a node whose store holds the announcement bytes:
/// the pool holds `held` (bookkeeping only), and the bytes a peer fetches
/// are asked of the node through [`P2pHandle::bodies`], which the node
/// must answer (`docs/protocol.md` §15).
pub async fn spawn_with_store(
    config: P2pConfig,
    keypair: Keypair,
    clock: SharedClock,
    held: Vec<HeldAnnouncement>,
) -> Result<P2pHandle, P2pError> {
    let now = Now {
        mono: Instant::now(),
        unix: clock.now(),
    };
    let config = config.to_builder().build()?;
    let state = MeshState::with_store(config.clone(), rand::random(), now, held)?;
    spawn_state(config, state, keypair, clock).await
}

async fn spawn_state(
    config: P2pConfig,
    state: MeshState,
    keypair: Keypair,
    clock: SharedClock,
) -> Result<P2pHandle, P2pError> {
    let (mut swarm, topic, bytes) = build_swarm(&config, keypair)?;
    let started = Instant::now();
    if !config.light() {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| P2pError::Config(format!("subscribe: {e}")))?;
    }
    check_ports_free(config.listen())?;
    for addr in config.listen() {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| P2pError::Transport(format!("listen on {addr}: {e}")))?;
    }
    for addr in config.bootstrap() {
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
    let (body_tx, body_rx) = mpsc::channel(BODY_REQUESTS);
    let mesh = Mesh {
        body_requests: body_tx,
        answering: FuturesUnordered::new(),
        swarm,
        state,
        topic,
        clock,
        bytes,
        events: ev_tx,
        backlog: VecDeque::new(),
        stem_ids: HashMap::new(),
        sync_ids: HashMap::new(),
        validating: HashMap::new(),
        dialed: HashMap::new(),
        listen: Vec::new(),
        conns: HashMap::new(),
        reachability: Reachability::Unknown,
        relays: HashMap::new(),
        reserved: HashSet::new(),
        relay_candidates: HashMap::new(),
        nat: NatCounters::default(),
        redial: HashMap::new(),
        lost: HashMap::new(),
        next_reservation: started + RESERVATION_RETRY,
        next_discovery: started + DISCOVERY_INTERVAL,
        next_score_refresh: started,
    };
    // Every line the mesh task logs names the node (several meshes share a
    // process in tests and the simulator). A debug span: free at the
    // default log level.
    let span = tracing::debug_span!("mesh", peer = %mesh.swarm.local_peer_id());
    let task = tokio::spawn(tracing::Instrument::instrument(mesh.run(cmd_rx), span));
    Ok(P2pHandle {
        commands: cmd_tx,
        events: ev_rx,
        bodies: body_rx,
        peer_id,
        task: Some(task),
    })
}

/// A sync answer waiting for bytes from the store.
type Answering = futures::future::BoxFuture<
    'static,
    (
        PeerId,
        request_response::ResponseChannel<SyncResponse>,
        SyncResponse,
        Vec<Vec<u8>>,
    ),
>;

struct Mesh {
    /// Requests for stored bytes, to the node.
    body_requests: mpsc::Sender<BodyRequest>,
    /// Sync answers waiting for the node's bytes.
    answering: FuturesUnordered<Answering>,
    swarm: Swarm<Behaviour>,
    state: MeshState,
    topic: IdentTopic,
    clock: SharedClock,
    bytes: Counters,
    events: mpsc::Sender<P2pEvent>,
    backlog: VecDeque<P2pEvent>,
    stem_ids: HashMap<OutboundRequestId, Token>,
    sync_ids: HashMap<OutboundRequestId, Token>,
    /// Gossip messages whose verdict waits for their body (at most
    /// [`super::MAX_GOSSIP_FETCHES`]: one per fetch in the core).
    validating: HashMap<AnnouncementId, (gossipsub::MessageId, PeerId)>,
    /// The address we dialled each peer at (for Kademlia, once its identify
    /// shows it speaks Kademlia).
    dialed: HashMap<PeerId, Multiaddr>,
    listen: Vec<Multiaddr>,
    /// Open connections per peer, and whether each is relayed.
    conns: HashMap<PeerId, HashMap<ConnectionId, bool>>,
    /// AutoNAT's verdict.
    reachability: Reachability,
    /// Relays we listen through (a reservation each).
    relays: HashMap<PeerId, ListenerId>,
    /// Relays that accepted our reservation.
    reserved: HashSet<PeerId>,
    /// Connected peers that offer to relay, with the address we reach them
    /// at (used when AutoNAT finds us private).
    relay_candidates: HashMap<PeerId, Multiaddr>,
    nat: NatCounters,
    /// Bootstrap peers not connected: when to dial them again.
    redial: HashMap<PeerId, Redial>,
    /// Full peers lost lately (at most [`MAX_LOST_PEERS`]).
    lost: HashMap<PeerId, Lost>,
    /// When missing relay reservations are next asked for.
    next_reservation: Instant,
    /// When Kademlia is next asked for peers (while below the target).
    next_discovery: Instant,
    /// When the timer next refreshes the peer scores.
    next_score_refresh: Instant,
}

impl Mesh {
    fn now(&self) -> Now {
        Now {
            mono: Instant::now(),
            unix: self.clock.now(),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(c) => self.on_command(c),
                },
                Some((peer, channel, resp, stored)) = self.answering.next(),
                    if !self.answering.is_empty() => {
                    self.send_with_stored(peer, channel, resp, stored);
                }
                _ = tick.tick() => {
                    self.drain_backlog();
                    self.redial_bootstrap();
                    self.redial_lost();
                    self.retry_reservations();
                    self.discover();
                    let now = self.now();
                    if now.mono >= self.next_score_refresh {
                        self.next_score_refresh = now.mono + SCORE_REFRESH;
                        self.refresh_scores();
                    }
                    self.state.handle_timeout(now);
                }
            }
            self.apply_effects();
        }
    }

    /// Carries out the core's effects.
    fn apply_effects(&mut self) {
        while let Some(e) = self.state.poll_effect() {
            match e {
                Effect::SendStem {
                    peer,
                    token,
                    request,
                } => {
                    let rid = self.swarm.behaviour_mut().stem.send_request(&peer, request);
                    self.stem_ids.insert(rid, token);
                }
                Effect::SendSync {
                    peer,
                    token,
                    request,
                } => {
                    let rid = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.sync_ids.insert(rid, token);
                }
                Effect::Gossip { id, message } => {
                    let ok = match self.gossip_publish(message) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(error = %e, "publish deferred");
                            false
                        }
                    };
                    let now = self.now();
                    self.state.handle_published(now, id, ok);
                }
                Effect::Validate { id, acceptance } => {
                    if let Some((message_id, source)) = self.validating.remove(&id) {
                        self.swarm
                            .behaviour_mut()
                            .gossipsub
                            .report_message_validation_result(&message_id, &source, acceptance);
                    }
                }
                Effect::Emit(ev) => self.emit(ev),
            }
        }
    }

    /// Tells the core every connected peer's gossipsub score (stem hops
    /// avoid penalised peers).
    fn refresh_scores(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let score = self.swarm.behaviour().gossipsub.peer_score(&p);
            self.state.peer_scored(p, score);
        }
    }

    fn gossip_publish(&mut self, bytes: Vec<u8>) -> Result<(), PublishError> {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
        {
            Ok(_) | Err(PublishError::Duplicate) => Ok(()),
            Err(e) => Err(e),
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

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Publish(bytes, reply) => {
                self.refresh_scores();
                let now = self.now();
                let _ = reply.send(self.state.publish(now, bytes));
            }
            #[cfg(feature = "test-utils")]
            Command::PublishUnchecked(bytes) => {
                let now = self.now();
                let message = self.state.unchecked_message(now, bytes);
                if let Err(e) = self.gossip_publish(message) {
                    tracing::warn!(error = %e, "unchecked publish failed");
                }
            }
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, error = %e, "dial failed");
                }
            }
            Command::Status(reply) => {
                self.refresh_scores();
                self.state
                    .set_bytes(self.bytes.all.inbound(), self.bytes.all.outbound());
                let nat = self.nat_status();
                let _ = reply.send(P2pStatus {
                    peer_id: *self.swarm.local_peer_id(),
                    listen: self.listen.clone(),
                    peers: self.state.peer_infos(),
                    pool: self.state.pool().len(),
                    outbox: self.state.outbox_len(),
                    counters: self.state.counters(),
                    nat,
                });
            }
            Command::SyncNow => {
                let now = self.now();
                self.state.start_sync(now, None);
            }
            Command::Shutdown => {}
        }
    }

    /// A failed dial of a bootstrap peer is logged at the default level
    /// with the address and the cause (other dials fail routinely).
    fn on_dial_failed(&self, peer: PeerId, error: &libp2p::swarm::DialError) {
        let addresses: Vec<String> = self
            .state
            .config()
            .bootstrap()
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

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        let now = self.now();
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                self.listen.push(address.clone());
                self.emit(P2pEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                if let ConnectedPoint::Dialer { address, .. } = &endpoint
                    && !endpoint.is_relayed()
                {
                    self.dialed.insert(peer_id, address.clone());
                }
                self.conns
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, endpoint.is_relayed());
                if let Some(r) = self.redial.get_mut(&peer_id) {
                    r.backoff = REDIAL_MIN;
                }
                self.state.peer_connected(now, peer_id);
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                self.nat.connections_denied += 1;
                tracing::debug!(from = %send_back_addr, %cause, "connection refused");
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let reserved = &mut self.reserved;
                self.relays.retain(|peer, id| {
                    let keep = *id != listener_id;
                    if !keep {
                        reserved.remove(peer);
                        // Taken again by `retry_reservations` while the
                        // relay stays connected.
                        match &reason {
                            Ok(()) => tracing::debug!(relay = %peer, "relay reservation ended"),
                            Err(e) => tracing::debug!(
                                relay = %peer,
                                error = %error_chain(e),
                                "relay reservation failed"
                            ),
                        }
                    }
                    keep
                });
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => self.on_dial_failed(peer, &error),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                if let Some(c) = self.conns.get_mut(&peer_id) {
                    c.remove(&connection_id);
                }
                if num_established == 0 {
                    self.remember_lost(peer_id, endpoint.is_relayed());
                    self.conns.remove(&peer_id);
                    self.dialed.remove(&peer_id);
                    self.relay_candidates.remove(&peer_id);
                    // The reservation died with the connection (the relay
                    // client's listener does not always close by itself):
                    // a new one is taken when the relay is back.
                    if let Some(id) = self.relays.remove(&peer_id) {
                        self.swarm.remove_listener(id);
                    }
                    self.reserved.remove(&peer_id);
                    self.state.peer_disconnected(now, peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip(now, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Stem(ev)) => self.on_stem(now, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(now, ev),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    if !self.state.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            // Also a peer's pushed update (a new relayed address).
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.refresh_scores();
                self.maybe_reserve(peer_id, &info);
                self.state.peer_identified(now, peer_id, &info.protocols);
                // Only a peer that speaks our Kademlia goes into the table.
                if self.state.speaks_kad(&peer_id)
                    && let Some(k) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    let dialed = self.dialed.get(&peer_id).cloned();
                    for a in info.listen_addrs.into_iter().chain(dialed) {
                        k.add_address(&peer_id, a);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged {
                new,
                ..
            })) => self.on_reachability(new),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => {
                    self.nat.hole_punches += 1;
                    tracing::info!(peer = %remote_peer_id, "direct connection by hole punching");
                }
                Err(e) => {
                    self.nat.hole_punch_failures += 1;
                    tracing::debug!(peer = %remote_peer_id, error = %e, "hole punching failed");
                }
            },
            // A renewal too: after a relay restarts, the reservation taken
            // on the new connection may come as one.
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => {
                if !self.reserved.insert(relay_peer_id) {
                    return;
                }
                tracing::info!(relay = %relay_peer_id, "reachable through a relay");
                // Peers lost through a relay are tried through it at once.
                let now = Instant::now();
                for l in self.lost.values_mut().filter(|l| l.relayed) {
                    l.redial = Redial {
                        at: now,
                        backoff: REDIAL_MIN,
                    };
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(ev)) => {
                tracing::debug!(event = ?ev, "relay client");
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayServer(ev)) => match ev {
                relay::Event::ReservationReqAccepted { .. } => {
                    self.nat.relay_reservations_served += 1;
                }
                relay::Event::CircuitReqAccepted { .. } => self.nat.relay_circuits_served += 1,
                relay::Event::ReservationReqDenied { .. }
                | relay::Event::CircuitReqDenied { .. } => {
                    self.nat.relay_refused += 1;
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Dials every bootstrap peer that is not connected, each after its
    /// own back-off (doubling from [`REDIAL_MIN`] to [`REDIAL_MAX`]): a
    /// restarted bootstrap or relay node is found again.
    fn redial_bootstrap(&mut self) {
        let now = Instant::now();
        let peers: Vec<(PeerId, Multiaddr)> = self
            .state
            .config()
            .bootstrap()
            .iter()
            .filter_map(|a| match a.iter().last() {
                Some(Protocol::P2p(p)) => Some((p, a.clone())),
                _ => None,
            })
            .collect();
        for (peer, addr) in peers {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            let r = self.redial.entry(peer).or_insert(Redial {
                at: now + REDIAL_MIN,
                backoff: REDIAL_MIN,
            });
            if now < r.at {
                continue;
            }
            r.backoff = (r.backoff * 2).min(REDIAL_MAX);
            r.at = now + r.backoff;
            tracing::debug!(%addr, "dialling a bootstrap peer again");
            let _ = self.swarm.dial(addr);
        }
    }

    /// Remembers a full peer whose last connection just closed (before the
    /// bookkeeping of the connection is dropped), so that
    /// [`Self::redial_lost`] dials it again. Bootstrap peers have their own
    /// redial.
    fn remember_lost(&mut self, peer: PeerId, relayed: bool) {
        let full = self
            .state
            .peer_infos()
            .iter()
            .any(|p| p.peer == peer && p.full);
        let bootstrap = self
            .state
            .config()
            .bootstrap()
            .iter()
            .any(|a| a.iter().last() == Some(Protocol::P2p(peer)));
        if !full || bootstrap {
            return;
        }
        let now = Instant::now();
        if self.lost.len() >= MAX_LOST_PEERS
            && !self.lost.contains_key(&peer)
            && let Some(oldest) = self
                .lost
                .iter()
                .min_by_key(|(_, l)| l.lost_at)
                .map(|(p, _)| *p)
        {
            self.lost.remove(&oldest);
        }
        let addr = if relayed {
            None
        } else {
            self.dialed.get(&peer).cloned()
        };
        self.lost.insert(
            peer,
            Lost {
                addr,
                relayed,
                lost_at: now,
                redial: Redial {
                    at: now + REDIAL_MIN,
                    backoff: REDIAL_MIN,
                },
            },
        );
    }

    /// Dials lost full peers again while this node has fewer full peers
    /// than it wants: a direct peer at the address we had dialled, a
    /// relayed one through every relay we hold a reservation with. Each
    /// with its own back-off, for [`LOST_PEER_TTL`].
    fn redial_lost(&mut self) {
        let now = Instant::now();
        self.lost
            .retain(|_, l| now.duration_since(l.lost_at) < LOST_PEER_TTL);
        let connected: Vec<PeerId> = self
            .lost
            .keys()
            .filter(|p| self.swarm.is_connected(p))
            .copied()
            .collect();
        for p in connected {
            self.lost.remove(&p);
        }
        if self.full_peers() >= self.discovery_target() {
            return;
        }
        let relays: Vec<Multiaddr> = self
            .reserved
            .iter()
            .filter_map(|r| self.relay_candidates.get(r).cloned())
            .collect();
        let mut dials = Vec::new();
        for (peer, l) in &mut self.lost {
            if now < l.redial.at {
                continue;
            }
            l.redial.at = now + l.redial.backoff;
            l.redial.backoff = (l.redial.backoff * 2).min(REDIAL_MAX);
            if let Some(a) = &l.addr {
                dials.push(a.clone());
            }
            if l.relayed || l.addr.is_none() {
                for r in &relays {
                    dials.push(
                        r.clone()
                            .with(Protocol::P2pCircuit)
                            .with(Protocol::P2p(*peer)),
                    );
                }
            }
        }
        for addr in dials {
            tracing::debug!(%addr, "dialling a lost peer again");
            let _ = self.swarm.dial(addr);
        }
    }

    fn discovery_target(&self) -> usize {
        if self.state.config().light() {
            DISCOVERY_TARGET_LIGHT
        } else {
            DISCOVERY_TARGET_FULL
        }
    }

    fn full_peers(&self) -> usize {
        self.state.peer_infos().iter().filter(|p| p.full).count()
    }

    /// While this node has fewer full peers than it wants, asks Kademlia
    /// for more every [`DISCOVERY_INTERVAL`].
    fn discover(&mut self) {
        let now = Instant::now();
        if now < self.next_discovery {
            return;
        }
        self.next_discovery = now + DISCOVERY_INTERVAL;
        if self.full_peers() < self.discovery_target()
            && let Some(k) = self.swarm.behaviour_mut().kad.as_mut()
        {
            // Fails only with an empty routing table; the bootstrap
            // peers refill it when they come back.
            let _ = k.bootstrap();
        }
    }

    /// A peer that offers to relay (identify lists the relay hop
    /// protocol): a full node that is not known to be public listens
    /// through it, so that peers behind other NATs reach it (and hole
    /// punching can start from the relayed connection).
    fn maybe_reserve(&mut self, peer: PeerId, info: &identify::Info) {
        if !info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
            return;
        }
        let Some(addr) = self.dialed.get(&peer).cloned().or_else(|| {
            info.listen_addrs
                .iter()
                .find(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
                .cloned()
        }) else {
            return;
        };
        let mut addr: Multiaddr = addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        addr.push(Protocol::P2p(peer));
        self.relay_candidates.insert(peer, addr);
        self.reserve();
    }

    /// Every [`RESERVATION_RETRY`], asks connected relays again for the
    /// reservations this node lacks (a reservation can fail or end while
    /// its relay stays connected, and nothing else would ask again).
    fn retry_reservations(&mut self) {
        let now = Instant::now();
        if now < self.next_reservation {
            return;
        }
        self.next_reservation = now + RESERVATION_RETRY;
        if self.relays.len() < MAX_RELAY_RESERVATIONS
            && self
                .relay_candidates
                .keys()
                .any(|p| !self.relays.contains_key(p))
        {
            self.reserve();
        }
    }

    /// Takes reservations with known relays, up to
    /// [`MAX_RELAY_RESERVATIONS`], unless this node is light, a relay
    /// itself, or public.
    fn reserve(&mut self) {
        let cfg = self.state.config();
        if cfg.light() || cfg.relay_server() || self.reachability == Reachability::Public {
            return;
        }
        let mut candidates: Vec<(PeerId, Multiaddr)> = self
            .relay_candidates
            .iter()
            .filter(|(p, _)| !self.relays.contains_key(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        candidates.sort();
        for (peer, addr) in candidates {
            if self.relays.len() >= MAX_RELAY_RESERVATIONS {
                break;
            }
            let circuit = addr.with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit.clone()) {
                Ok(id) => {
                    tracing::debug!(%circuit, "asking a relay for a reservation");
                    self.relays.insert(peer, id);
                }
                Err(e) => tracing::debug!(%circuit, error = %e, "cannot listen through a relay"),
            }
        }
    }

    /// AutoNAT's verdict changed: a public node drops its reservations, a
    /// private one takes them.
    fn on_reachability(&mut self, new: autonat::NatStatus) {
        self.reachability = match new {
            autonat::NatStatus::Public(_) => Reachability::Public,
            autonat::NatStatus::Private => Reachability::Private,
            autonat::NatStatus::Unknown => Reachability::Unknown,
        };
        tracing::info!(
            reachability = self.reachability.as_str(),
            "reachability found by AutoNAT"
        );
        if self.reachability == Reachability::Public {
            for (_, id) in self.relays.drain() {
                self.swarm.remove_listener(id);
            }
            self.reserved.clear();
        } else {
            self.reserve();
        }
    }

    fn nat_status(&self) -> NatStatus {
        let mut relayed_peers: Vec<PeerId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_empty() && c.values().all(|relayed| *relayed))
            .map(|(p, _)| *p)
            .collect();
        relayed_peers.sort();
        NatStatus {
            reachability: self.reachability,
            connections: self.conns.values().map(HashMap::len).sum(),
            relayed_peers,
            relay_reservations: self.reserved.len(),
            counters: NatCounters {
                relayed_bytes_in: self.bytes.relayed.inbound(),
                relayed_bytes_out: self.bytes.relayed.outbound(),
                ..self.nat
            },
        }
    }

    fn on_gossip(&mut self, now: Now, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.topic.hash() => {
                self.refresh_scores();
                self.state.peer_subscribed(now, peer_id, true);
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } if topic == self.topic.hash() => {
                self.state.peer_subscribed(now, peer_id, false);
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let id = meshtrace_protocol::AnnouncementId(
                    message
                        .data
                        .get(..32)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 32]),
                );
                match self
                    .state
                    .handle_gossip(now, propagation_source, message.data)
                {
                    Some(acceptance) => {
                        self.swarm
                            .behaviour_mut()
                            .gossipsub
                            .report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                acceptance,
                            );
                    }
                    // The body is being fetched: the verdict comes later
                    // as an `Effect::Validate`.
                    None => {
                        self.validating.insert(id, (message_id, propagation_source));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_stem(&mut self, now: Now, ev: request_response::Event<StemRequest, StemResponse>) {
        match classify(ev, &mut self.stem_ids) {
            Some(Rr::Request(peer, request, channel)) => {
                self.refresh_scores();
                let resp = self.state.handle_stem_request(now, peer, request);
                let _ = self.swarm.behaviour_mut().stem.send_response(channel, resp);
            }
            Some(Rr::Response(token, response)) => {
                self.state
                    .handle_stem_response(now, token, response.accepted);
            }
            Some(Rr::Failure(token)) => self.state.handle_stem_failure(now, token),
            None => {}
        }
    }

    fn on_sync(&mut self, now: Now, ev: request_response::Event<SyncRequest, SyncResponse>) {
        match classify(ev, &mut self.sync_ids) {
            Some(Rr::Request(peer, request, channel)) => {
                let resp = self.state.answer_sync(now, peer, request);
                let mut ids = self.state.take_store_reads();
                ids.truncate(MAX_BODY_REQUEST_IDS);
                if ids.is_empty() {
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
                    return;
                }
                // Bytes in the store: the node reads them; the swarm goes
                // on meanwhile. A node too busy to take the request gets
                // the answer without them (the peer asks someone else).
                let (reply, stored) = oneshot::channel();
                match self.body_requests.try_send(BodyRequest { ids, reply }) {
                    Ok(()) => self.answering.push(Box::pin(async move {
                        let stored = stored.await.unwrap_or_default();
                        (peer, channel, resp, stored)
                    })),
                    Err(_) => {
                        let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
                    }
                }
            }
            Some(Rr::Response(token, response)) => {
                self.state.handle_sync_response(now, token, response);
            }
            Some(Rr::Failure(token)) => self.state.handle_sync_failure(now, token),
            None => {}
        }
    }
}

impl Mesh {
    /// Sends a sync answer completed with bytes the node read from its
    /// store, within the same [`MAX_FETCH_RESPONSE`] bound.
    fn send_with_stored(
        &mut self,
        peer: PeerId,
        channel: request_response::ResponseChannel<SyncResponse>,
        mut resp: SyncResponse,
        stored: Vec<Vec<u8>>,
    ) {
        let mut total: usize = resp.announcements.iter().map(Vec::len).sum();
        let mut added = 0;
        for b in stored {
            if total + b.len() > MAX_FETCH_RESPONSE {
                break;
            }
            total += b.len();
            added += b.len();
            resp.announcements.push(b);
        }
        let now = self.now();
        self.state.served_from_store(now, peer, added);
        let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
    }
}

/// A request-response event, as the core sees it.
enum Rr<Req, Resp> {
    /// A peer asks; answer on the channel.
    Request(PeerId, Req, request_response::ResponseChannel<Resp>),
    /// The answer to our request `Token`.
    Response(Token, Resp),
    /// Our request `Token` failed.
    Failure(Token),
}

/// Sorts a request-response event, mapping our request ids to the core's
/// tokens (and forgetting them once answered or failed).
fn classify<Req, Resp>(
    ev: request_response::Event<Req, Resp>,
    ids: &mut HashMap<OutboundRequestId, Token>,
) -> Option<Rr<Req, Resp>> {
    use request_response::{Event, Message};
    match ev {
        Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } => Some(Rr::Request(peer, request, channel)),
        Event::Message {
            message:
                Message::Response {
                    request_id,
                    response,
                },
            ..
        } => ids
            .remove(&request_id)
            .map(|token| Rr::Response(token, response)),
        Event::OutboundFailure { request_id, .. } => ids.remove(&request_id).map(Rr::Failure),
        _ => None,
    }
}
