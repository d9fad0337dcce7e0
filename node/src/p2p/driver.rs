//! The mesh task: a thin loop around [`MeshState`]. Swarm events go to its
//! `handle_*` methods, a [`TICK`] timer to `handle_timeout`, and its effects
//! become swarm calls; commands come from the [`P2pHandle`].

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use meshtrace_protocol::AnnouncementId;
use tokio::sync::{mpsc, oneshot};

use super::counting::ByteCounters;
use super::state::{Effect, MeshState, Now, TICK, Token};
use super::swarm::{Behaviour, BehaviourEvent, build_swarm, check_ports_free, error_chain};
use super::{
    CHANNEL_CAPACITY, MAX_EVENT_BACKLOG, P2pConfig, P2pError, P2pEvent, P2pStatus, PublishRefused,
    StemRequest, StemResponse, SyncRequest, SyncResponse,
};
use crate::clock::SharedClock;

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

    /// Gossips raw bytes without any check (feature `test-utils`: lets a
    /// test play a misbehaving peer).
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

/// Starts the mesh. `initial` are announcements already held (from the
/// store): they seed the pool that catch-up serves.
pub async fn spawn(
    config: P2pConfig,
    keypair: Keypair,
    clock: SharedClock,
    initial: Vec<Vec<u8>>,
) -> Result<P2pHandle, P2pError> {
    let config = config.to_builder().build()?;
    let (mut swarm, topic, bytes) = build_swarm(&config, keypair)?;
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
    let now = Now {
        mono: Instant::now(),
        unix: clock.now(),
    };
    let state = MeshState::new(config, rand::random(), now, initial)?;
    let mesh = Mesh {
        swarm,
        state,
        topic,
        clock,
        bytes,
        events: ev_tx,
        backlog: VecDeque::new(),
        stem_ids: HashMap::new(),
        sync_ids: HashMap::new(),
        dialed: HashMap::new(),
        listen: Vec::new(),
    };
    let task = tokio::spawn(mesh.run(cmd_rx));
    Ok(P2pHandle {
        commands: cmd_tx,
        events: ev_rx,
        peer_id,
        task: Some(task),
    })
}

struct Mesh {
    swarm: Swarm<Behaviour>,
    state: MeshState,
    topic: IdentTopic,
    clock: SharedClock,
    bytes: ByteCounters,
    events: mpsc::Sender<P2pEvent>,
    backlog: VecDeque<P2pEvent>,
    stem_ids: HashMap<OutboundRequestId, Token>,
    sync_ids: HashMap<OutboundRequestId, Token>,
    /// The address we dialled each peer at (for Kademlia, once its identify
    /// shows it speaks Kademlia).
    dialed: HashMap<PeerId, Multiaddr>,
    listen: Vec<Multiaddr>,
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
                _ = tick.tick() => {
                    self.drain_backlog();
                    self.refresh_scores();
                    let now = self.now();
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
                Effect::Gossip { id, bytes } => {
                    let ok = match self.gossip_publish(bytes) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::debug!(error = %e, "publish deferred");
                            false
                        }
                    };
                    let now = self.now();
                    self.state.handle_published(now, id, ok);
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
                if let Err(e) = self.gossip_publish(bytes) {
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
                    .set_bytes(self.bytes.inbound(), self.bytes.outbound());
                let _ = reply.send(P2pStatus {
                    peer_id: *self.swarm.local_peer_id(),
                    listen: self.listen.clone(),
                    peers: self.state.peer_infos(),
                    pool: self.state.pool().len(),
                    outbox: self.state.outbox_len(),
                    counters: self.state.counters(),
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
                peer_id, endpoint, ..
            } => {
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    self.dialed.insert(peer_id, address.clone());
                }
                self.state.peer_connected(now, peer_id);
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
                self.dialed.remove(&peer_id);
                self.state.peer_disconnected(now, peer_id);
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
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.refresh_scores();
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
            _ => {}
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
                let acceptance = self
                    .state
                    .handle_gossip(now, propagation_source, message.data);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
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
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
            }
            Some(Rr::Response(token, response)) => {
                self.state.handle_sync_response(now, token, response);
            }
            Some(Rr::Failure(token)) => self.state.handle_sync_failure(now, token),
            None => {}
        }
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
