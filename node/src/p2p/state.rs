//! [`MeshState`]: the mesh as a sans-IO core (like quinn-proto beside
//! quinn). It owns everything the mesh knows — the pool (with its "first
//! chunk per (report key, index) wins" slots), gossip-seen ids, hidden
//! entries, the outbox, stem hops in flight and pending, catch-up steps,
//! per-peer rate windows, counters and what each peer is (connected,
//! subscribed, which protocols its identify lists) — and does no I/O: no
//! swarm, no sockets, no timers, no tokio. Inputs are `handle_*` methods
//! that take the time as a value ([`Now`]); outputs are [`Effect`]s drained
//! with [`MeshState::poll_effect`]. The driver (`driver.rs`) feeds swarm
//! events and a timer in and turns effects into swarm calls; tests feed
//! several states into each other with a virtual clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageAcceptance;
use libp2p::{PeerId, StreamProtocol};
use meshtrace_protocol::{
    AnnouncementError, AnnouncementId, Disposition, UnixTime, VerifiedAnnouncement, VerifyContext,
    expiry_of,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use super::bodies::Bodies;
use super::pool::HeldAnnouncement;
use super::rates::RateWindow;
use super::sync::SyncStep;
use super::wire::{IdMessage, sync_request};
use super::{
    MAX_OUTBOX, MAX_STEM_FAILURES, Origin, P2pConfig, P2pCounters, P2pError, P2pEvent, PeerInfo,
    Pool, PublishRefused, StemRequest, SyncRequest, protocol,
};

/// How often the driver calls [`MeshState::handle_timeout`].
pub const TICK: Duration = Duration::from_millis(250);
/// Ticks between two tries of a report that is waiting: for a stem-capable
/// peer, or for a gossip mesh to publish into.
pub(crate) const RETRY_TICKS: u32 = 4;
/// A hidden entry (own report, stem hop) is revealed to catch-up at the
/// latest after this many stem timeouts, even if it never came back through
/// gossip.
pub(crate) const REVEAL_AFTER_STEM_TIMEOUTS: u32 = 3;
/// A relay whose fluff publish failed (no gossip mesh yet) tries again after
/// this fraction of the stem timeout (`stem_timeout / 4`).
pub(crate) const FLUFF_RETRY_DIVISOR: u32 = 4;

/// The time, as the core sees it: a monotonic instant for its timers and
/// the wall clock for verifying announcements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (timers, rate windows).
    pub mono: Instant,
    /// Wall-clock time (certificate and expiry checks).
    pub unix: UnixTime,
}

impl Now {
    /// This moment `d` later (both clocks; the wall clock counts whole
    /// seconds, so step from a fixed start rather than adding small steps
    /// one after another).
    pub fn plus(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            unix: UnixTime(self.unix.0 + d.as_secs()),
        }
    }
}

/// Names a request the core asked the driver to send; the driver reports
/// its outcome with the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// Something the core wants done.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Send a stem request; report the answer with
    /// [`MeshState::handle_stem_response`] or
    /// [`MeshState::handle_stem_failure`].
    SendStem {
        /// To whom.
        peer: PeerId,
        /// Names the request.
        token: Token,
        /// The request.
        request: StemRequest,
    },
    /// Send a catch-up request; report the answer with
    /// [`MeshState::handle_sync_response`] or
    /// [`MeshState::handle_sync_failure`].
    SendSync {
        /// To whom.
        peer: PeerId,
        /// Names the request.
        token: Token,
        /// The request.
        request: SyncRequest,
    },
    /// Publish an announcement's id message ([`IdMessage`]) on the gossip
    /// topic; report the outcome with [`MeshState::handle_published`].
    Gossip {
        /// The announcement's id.
        id: AnnouncementId,
        /// The encoded id message.
        message: Vec<u8>,
    },
    /// Tell gossipsub the verdict on the gossip message naming `id` that
    /// [`MeshState::handle_gossip`] left pending (its body was fetched and
    /// verified, or could not be fetched).
    Validate {
        /// The announcement id the message named.
        id: AnnouncementId,
        /// Forward (Accept), drop (Ignore) or penalise the sender (Reject).
        acceptance: MessageAcceptance,
    },
    /// Hand an event to the node.
    Emit(P2pEvent),
}

/// A report waiting to leave.
pub(super) struct Outgoing {
    pub(super) id: AnnouncementId,
    pub(super) bytes: Vec<u8>,
    /// Stem hops that failed or were refused.
    pub(super) failures: u32,
    pub(super) next_try: Instant,
    /// The last try found no stem-capable peer (a new one is tried at once).
    pub(super) waiting: bool,
}

/// A stem hop in flight: what to do if it fails.
pub(super) struct StemOut {
    pub(super) id: AnnouncementId,
    pub(super) own: bool,
}

/// A stem message this node relayed and has not yet seen in gossip.
pub(super) struct StemPending {
    pub(super) bytes: Vec<u8>,
    pub(super) deadline: Instant,
}

/// A body being fetched after its id came in gossip.
pub(super) struct GossipFetch {
    /// Peers asked so far, the first one being the gossip source.
    pub(super) tried: Vec<PeerId>,
}

/// What the core knows of a connected peer.
#[derive(Clone, Debug, Default)]
pub(super) struct Peer {
    /// Subscribed to the topic (a full node).
    pub(super) subscribed: bool,
    /// Its identify lists our stem protocol.
    pub(super) stem: bool,
    /// Its identify lists our sync protocol.
    pub(super) sync: bool,
    /// Its identify lists our kad protocol.
    pub(super) kad: bool,
    /// Its gossipsub score, as the driver last reported it.
    pub(super) score: Option<f64>,
}

/// The mesh's state machine (see the module docs).
pub struct MeshState {
    pub(super) config: P2pConfig,
    stem_proto: StreamProtocol,
    sync_proto: StreamProtocol,
    kad_proto: StreamProtocol,
    /// The previous version's sync protocol (to name old peers in logs).
    old_sync_proto: StreamProtocol,
    pub(super) pool: Pool,
    /// The bytes of what the pool holds (in memory, or in the store).
    pub(super) bodies: Bodies,
    /// Ids a fetch answer wants from the store ([`MeshState::take_store_reads`]).
    pub(super) store_reads: Vec<AnnouncementId>,
    /// Bytes gossiped without any check (feature `test-utils`: a test
    /// playing a misbehaving peer), served to whoever fetches them.
    #[cfg(feature = "test-utils")]
    pub(super) unchecked: HashMap<AnnouncementId, Vec<u8>>,
    pub(super) outbox: VecDeque<Outgoing>,
    pub(super) stem_pending: HashMap<AnnouncementId, StemPending>,
    /// Hidden pool entries and when they are revealed at the latest.
    pub(super) hidden: HashMap<AnnouncementId, Instant>,
    /// Ids seen in gossip (the first gossip copy of anything else is
    /// accepted and forwarded).
    pub(super) gossip_seen: HashSet<AnnouncementId>,
    /// Relay publishes in flight and how long to wait before retrying one
    /// that fails.
    pub(super) publishing: HashMap<AnnouncementId, (Vec<u8>, Duration)>,
    pub(super) stem_out: HashMap<Token, StemOut>,
    pub(super) sync_out: HashMap<Token, (PeerId, SyncStep)>,
    /// Bodies being fetched for ids heard in gossip (their gossip
    /// message awaits a verdict).
    pub(super) gossip_fetches: HashMap<AnnouncementId, GossipFetch>,
    /// How many of `gossip_fetches` each gossip source's ids account for.
    pub(super) fetches_per_source: HashMap<PeerId, usize>,
    pub(super) peers: HashMap<PeerId, Peer>,
    pub(super) rate: HashMap<PeerId, RateWindow>,
    pub(super) counters: P2pCounters,
    effects: VecDeque<Effect>,
    next_token: u64,
    next_sync: Instant,
    pub(super) rng: StdRng,
}

impl std::fmt::Debug for MeshState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshState")
            .field("pool", &self.pool.len())
            .field("outbox", &self.outbox.len())
            .field("peers", &self.peers.len())
            .finish()
    }
}

impl MeshState {
    /// A core for `config` at `now`, with randomness from `seed`, that keeps
    /// announcement bytes in memory (a mesh without a node: tests,
    /// benchmarks, the simulator). `initial` are announcements already held:
    /// they seed the pool that catch-up serves (those that do not verify are
    /// skipped).
    pub fn new(
        config: P2pConfig,
        seed: u64,
        now: Now,
        initial: Vec<Vec<u8>>,
    ) -> Result<MeshState, P2pError> {
        let mut s = MeshState::empty(config, seed, now, Bodies::Memory(HashMap::new()))?;
        for bytes in initial {
            if let Ok(v) = s.verify(now, &bytes) {
                s.pool.insert(&HeldAnnouncement::of(&v, bytes.len()));
                s.bodies.put(v.id(), &bytes);
            }
        }
        Ok(s)
    }

    /// A core whose announcement bytes live in the node's store: the pool
    /// holds `held` (their bookkeeping only), a fetch answer asks the node
    /// for the bytes ([`MeshState::take_store_reads`]), and only the latest
    /// [`MAX_RECENT_BODIES`](super::MAX_RECENT_BODIES) accepted bodies stay
    /// in memory.
    pub fn with_store(
        config: P2pConfig,
        seed: u64,
        now: Now,
        held: Vec<HeldAnnouncement>,
    ) -> Result<MeshState, P2pError> {
        let bodies = Bodies::Store {
            recent: HashMap::new(),
            order: VecDeque::new(),
        };
        let mut s = MeshState::empty(config, seed, now, bodies)?;
        for h in held.iter().filter(|h| h.expires_at > now.unix) {
            s.pool.insert(h);
        }
        Ok(s)
    }

    fn empty(
        config: P2pConfig,
        seed: u64,
        now: Now,
        bodies: Bodies,
    ) -> Result<MeshState, P2pError> {
        let net = config.network_id().to_owned();
        let s = MeshState {
            stem_proto: protocol(&net, "stem")?,
            sync_proto: protocol(&net, "sync")?,
            kad_proto: protocol(&net, "kad")?,
            old_sync_proto: super::protocol_version(&net, "sync", super::PREVIOUS_MESH_VERSION)?,
            next_sync: now.mono + config.sync_interval(),
            config,
            pool: Pool::new(),
            bodies,
            store_reads: Vec::new(),
            #[cfg(feature = "test-utils")]
            unchecked: HashMap::new(),
            outbox: VecDeque::new(),
            stem_pending: HashMap::new(),
            hidden: HashMap::new(),
            gossip_seen: HashSet::new(),
            publishing: HashMap::new(),
            stem_out: HashMap::new(),
            sync_out: HashMap::new(),
            gossip_fetches: HashMap::new(),
            fetches_per_source: HashMap::new(),
            peers: HashMap::new(),
            rate: HashMap::new(),
            counters: P2pCounters::default(),
            effects: VecDeque::new(),
            next_token: 0,
            rng: StdRng::seed_from_u64(seed),
        };
        Ok(s)
    }

    /// Ids of announcements that the last [`MeshState::answer_sync`] would
    /// have served but whose bytes are in the store: the driver asks the
    /// node for them and adds them to the answer.
    pub fn take_store_reads(&mut self) -> Vec<AnnouncementId> {
        std::mem::take(&mut self.store_reads)
    }

    /// The id message a misbehaving peer gossips for `bytes`, which it then
    /// serves unchecked to whoever fetches them (feature `test-utils`). The
    /// message names today as the last day and the bytes' length as the
    /// size, without any check.
    #[cfg(feature = "test-utils")]
    pub fn unchecked_message(&mut self, now: Now, bytes: Vec<u8>) -> Vec<u8> {
        let id = AnnouncementId::of(&bytes);
        let mut message = id.0.to_vec();
        message.extend_from_slice(&now.unix.day().0.to_be_bytes());
        message.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.unchecked.insert(id, bytes);
        message
    }

    /// Announcement bodies held in memory (all of them without a store, the
    /// latest few with one).
    pub fn bodies_in_memory(&self) -> usize {
        self.bodies.len()
    }

    /// The next effect to carry out, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    pub(super) fn push(&mut self, e: Effect) {
        self.effects.push_back(e);
    }

    pub(super) fn emit(&mut self, ev: P2pEvent) {
        self.push(Effect::Emit(ev));
    }

    pub(super) fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    /// The settings.
    pub(crate) fn config(&self) -> &P2pConfig {
        &self.config
    }

    /// The announcements held.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Reports waiting to leave.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The counters.
    pub fn counters(&self) -> P2pCounters {
        self.counters
    }

    /// Adds transport-level byte totals to the counters.
    pub(crate) fn set_bytes(&mut self, bytes_in: u64, bytes_out: u64) {
        self.counters.bytes_in = bytes_in;
        self.counters.bytes_out = bytes_out;
    }

    /// Connected peers, as `meshtrace peers` shows them.
    pub(crate) fn peer_infos(&self) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|(p, k)| PeerInfo {
                peer: *p,
                score: k.score,
                full: k.subscribed,
            })
            .collect()
    }

    /// True when `peer` is connected.
    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// True when `peer`'s identify lists our Kademlia protocol (only such
    /// peers' addresses go into the routing table).
    pub fn speaks_kad(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.kad)
    }

    pub(super) fn verify(
        &self,
        now: Now,
        bytes: &[u8],
    ) -> Result<VerifiedAnnouncement, AnnouncementError> {
        let trusted = self.config.trusted_issuers().keys();
        VerifiedAnnouncement::verify(
            bytes,
            &VerifyContext {
                network_id: self.config.network_id(),
                trusted_issuers: &trusted,
                now: now.unix,
            },
        )
    }

    // ----- peers -----

    /// A first connection to `peer` is up.
    pub fn peer_connected(&mut self, _now: Now, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// The last connection to `peer` closed.
    pub fn peer_disconnected(&mut self, _now: Now, peer: PeerId) {
        self.peers.remove(&peer);
        self.rate.remove(&peer);
    }

    /// `peer`'s identify arrived, listing `protocols`. Catch-up starts with
    /// a peer the first time it lists the sync protocol; stem hops and
    /// catch-up only ever go to peers that list them.
    pub fn peer_identified(&mut self, now: Now, peer: PeerId, protocols: &[StreamProtocol]) {
        let stem = protocols.contains(&self.stem_proto);
        let sync = protocols.contains(&self.sync_proto);
        let kad = protocols.contains(&self.kad_proto);
        if !sync && protocols.contains(&self.old_sync_proto) {
            self.counters.old_version_peers += 1;
            tracing::warn!(
                %peer,
                "a peer speaks mesh protocol version {} only; this node speaks version {} \
                 and refuses its messages: upgrade meshtrace on that node",
                super::PREVIOUS_MESH_VERSION,
                super::MESH_VERSION
            );
        }
        let p = self.peers.entry(peer).or_default();
        let new_sync = sync && !p.sync;
        (p.stem, p.sync, p.kad) = (stem, sync, kad);
        if new_sync {
            // Catch up with every new peer (light nodes too).
            self.start_sync(now, Some(peer));
        }
        if stem {
            self.new_stem_peer(now);
        }
    }

    /// `peer` subscribed to (`true`) or left (`false`) the topic.
    pub fn peer_subscribed(&mut self, now: Now, peer: PeerId, subscribed: bool) {
        self.peers.entry(peer).or_default().subscribed = subscribed;
        if subscribed {
            self.new_stem_peer(now);
        }
    }

    /// A peer may have become a stem hop: reports waiting for one try now.
    fn new_stem_peer(&mut self, now: Now) {
        let mut any = false;
        for o in self.outbox.iter_mut().filter(|o| o.waiting) {
            o.next_try = now.mono;
            any = true;
        }
        if any {
            self.flush_outbox(now);
        }
    }

    /// `peer`'s gossipsub score (`None` when scoring does not know it).
    pub(crate) fn peer_scored(&mut self, peer: PeerId, score: Option<f64>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.score = score;
        }
    }

    /// A random connected full peer whose identify lists the stem protocol
    /// (or, with `sync`, the sync protocol), never one that gossip scoring
    /// has penalised (negative score: it sent invalid messages), so a
    /// flooding peer is not handed reports to sit on.
    pub(super) fn random_peer(&mut self, except: Option<PeerId>, sync: bool) -> Option<PeerId> {
        let mut candidates: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                p.subscribed
                    && (if sync { p.sync } else { p.stem })
                    && Some(**id) != except
                    && p.score.is_none_or(|s| s >= 0.0)
            })
            .map(|(id, _)| *id)
            .collect();
        // HashMap order is random per process: sort, so that the seeded
        // choice is deterministic.
        candidates.sort();
        candidates.choose(&mut self.rng).copied()
    }

    // ----- pool, hidden entries -----

    pub(super) fn hide(&mut self, now: Now, id: AnnouncementId) {
        let until = now.mono + self.config.stem_timeout() * REVEAL_AFTER_STEM_TIMEOUTS;
        self.hidden.insert(id, until);
    }

    pub(super) fn reveal(&mut self, id: &AnnouncementId) {
        if self.hidden.remove(id).is_some() {
            self.pool.reveal(id);
        }
    }

    fn reveal_due(&mut self, now: Now) {
        let due: Vec<AnnouncementId> = self
            .hidden
            .iter()
            .filter(|(_, t)| **t <= now.mono)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.reveal(&id);
        }
    }

    fn expire(&mut self, now: Now) {
        for id in self.pool.expire(now.unix) {
            self.bodies.remove(&id);
        }
        let pool = &self.pool;
        self.gossip_seen.retain(|id| pool.contains(id));
        self.hidden.retain(|id, _| pool.contains(id));
    }

    /// Stores a new valid announcement (hidden when it came by stem or is
    /// ours) and tells the node; a variant of a held chunk is counted and
    /// dropped.
    pub(super) fn accept_new(
        &mut self,
        now: Now,
        v: VerifiedAnnouncement,
        bytes: Vec<u8>,
        origin: Origin,
    ) {
        if self.pool.slot_taken(&v) {
            self.counters.equivocations += 1;
            return;
        }
        let hidden = matches!(origin, Origin::Stem(_) | Origin::Local);
        let id = v.id();
        let held = HeldAnnouncement::of(&v, bytes.len());
        let inserted = if hidden {
            self.pool.insert_hidden(&held)
        } else {
            self.pool.insert(&held)
        };
        if inserted {
            self.bodies.put(id, &bytes);
            self.forget_evicted();
            if hidden {
                self.hide(now, id);
            }
            self.emit(P2pEvent::Announcement {
                verified: Box::new(v),
                bytes,
                origin,
            });
        }
    }

    /// Drops the bodies of what the pool evicted for room.
    fn forget_evicted(&mut self) {
        for id in self.pool.take_evicted() {
            self.bodies.remove(&id);
        }
    }

    // ----- timer -----

    /// Periodic work: due outbox entries, stem fail-safes, reveals, and a
    /// catch-up round every `sync_interval`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.flush_outbox(now);
        self.stem_failsafe(now);
        self.reveal_due(now);
        if now.mono >= self.next_sync {
            self.next_sync = now.mono + self.config.sync_interval();
            self.expire(now);
            self.start_sync(now, None);
        }
    }

    // ----- gossip -----

    /// A gossip message from `from` (an [`IdMessage`]): whether gossipsub
    /// should accept (forward), ignore or reject it, or `None` while the
    /// body is fetched from `from` (the verdict then comes as an
    /// [`Effect::Validate`]). A node forwards an id only once it holds the
    /// verified body, so whoever hears an id from it can fetch from it.
    pub fn handle_gossip(
        &mut self,
        now: Now,
        from: PeerId,
        bytes: Vec<u8>,
    ) -> Option<MessageAcceptance> {
        let msg = match IdMessage::decode(&bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = %from, error = %e, "rejected gossip");
                self.counters.rejected += 1;
                return Some(MessageAcceptance::Reject);
            }
        };
        let id = msg.id;
        // Seen in gossip: a pending stem hop has fluffed, and catch-up may
        // serve it now.
        self.stem_pending.remove(&id);
        self.reveal(&id);
        if self.gossip_seen.contains(&id) || self.gossip_fetches.contains_key(&id) {
            self.counters.ignored += 1;
            return Some(MessageAcceptance::Ignore);
        }
        if self.pool.contains(&id) {
            // Held from a stem hop, catch-up or our own report, but this is
            // its first gossip copy: forward it, so a stem relay whose
            // neighbours only reach it through us still spreads it.
            self.gossip_seen.insert(id);
            self.counters.accepted += 1;
            return Some(MessageAcceptance::Accept);
        }
        if expiry_of(msg.last_day) <= now.unix
            || self.gossip_fetches.len() >= super::MAX_GOSSIP_FETCHES
            || self.fetches_per_source.get(&from).copied().unwrap_or(0)
                >= super::MAX_GOSSIP_FETCHES_PER_PEER
        {
            // Expired (nothing to fetch), or too many fetches at once, in
            // all or for this peer's ids (catch-up brings it later).
            self.counters.ignored += 1;
            return Some(MessageAcceptance::Ignore);
        }
        self.gossip_fetches
            .insert(id, GossipFetch { tried: vec![from] });
        *self.fetches_per_source.entry(from).or_default() += 1;
        self.send_sync(
            from,
            sync_request::Kind::Fetch(id.0.to_vec()),
            SyncStep::Gossip(id),
        );
        None
    }

    /// The body of gossip id `id` arrived from `peer` (or `None`: the peer
    /// did not have it, refused, or the request failed): verified and
    /// stored, or asked of another peer, up to
    /// [`MAX_FETCH_ATTEMPTS`](super::MAX_FETCH_ATTEMPTS).
    pub(super) fn gossip_body(
        &mut self,
        now: Now,
        id: AnnouncementId,
        peer: PeerId,
        body: Option<Vec<u8>>,
    ) {
        let Some(bytes) = body else {
            self.counters.gossip_fetch_failures += 1;
            self.retry_gossip_fetch(id);
            return;
        };
        if let Some(f) = self.gossip_fetches.remove(&id) {
            self.fetch_done(&f);
        }
        self.counters.gossip_fetches += 1;
        let acceptance = match self.verify(now, &bytes) {
            Ok(v) if self.pool.slot_taken(&v) => {
                // Valid, but a variant of a chunk we hold: neither stored
                // nor forwarded.
                self.counters.equivocations += 1;
                MessageAcceptance::Ignore
            }
            Ok(v) => {
                self.counters.accepted += 1;
                self.accept_new(now, v, bytes, Origin::Gossip(peer));
                MessageAcceptance::Accept
            }
            Err(e) if e.disposition() == Disposition::Ignore => {
                self.counters.ignored += 1;
                MessageAcceptance::Ignore
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "rejected a fetched announcement");
                self.counters.rejected += 1;
                MessageAcceptance::Reject
            }
        };
        self.gossip_seen.insert(id);
        self.push(Effect::Validate { id, acceptance });
    }

    /// A gossip fetch ended: its source's count goes down.
    fn fetch_done(&mut self, f: &GossipFetch) {
        let Some(source) = f.tried.first() else {
            return;
        };
        if let Some(n) = self.fetches_per_source.get_mut(source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.fetches_per_source.remove(source);
            }
        }
    }

    /// Asks another full peer for a gossip id's body, or gives up after
    /// [`MAX_FETCH_ATTEMPTS`](super::MAX_FETCH_ATTEMPTS) peers (the gossip
    /// message is ignored; catch-up brings the announcement later).
    fn retry_gossip_fetch(&mut self, id: AnnouncementId) {
        let Some(mut f) = self.gossip_fetches.remove(&id) else {
            return;
        };
        let next = if f.tried.len() < super::MAX_FETCH_ATTEMPTS as usize {
            let mut candidates: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(p, k)| {
                    k.subscribed
                        && k.sync
                        && !f.tried.contains(p)
                        && k.score.is_none_or(|s| s >= 0.0)
                })
                .map(|(p, _)| *p)
                .collect();
            // HashMap order is random per process: sort for the seeded pick.
            candidates.sort();
            candidates.choose(&mut self.rng).copied()
        } else {
            None
        };
        match next {
            Some(peer) => {
                f.tried.push(peer);
                self.gossip_fetches.insert(id, f);
                self.send_sync(
                    peer,
                    sync_request::Kind::Fetch(id.0.to_vec()),
                    SyncStep::Gossip(id),
                );
            }
            None => {
                // Not fetched again from gossip (catch-up brings it).
                self.fetch_done(&f);
                self.gossip_seen.insert(id);
                self.counters.gossip_fetch_given_up += 1;
                self.push(Effect::Validate {
                    id,
                    acceptance: MessageAcceptance::Ignore,
                });
            }
        }
    }

    /// Publishes the id message of held announcement `id` (nothing when it
    /// is no longer held: expired).
    pub(super) fn gossip_id(&mut self, id: AnnouncementId) {
        if let Some(m) = self.pool.id_message(&id) {
            self.push(Effect::Gossip {
                id,
                message: m.encode(),
            });
        }
    }

    /// The outcome of an [`Effect::Gossip`]: `ok` when gossipsub took it
    /// (or already had it), `false` when it could not publish (no mesh yet).
    pub fn handle_published(&mut self, now: Now, id: AnnouncementId, ok: bool) {
        let relay = self.publishing.remove(&id);
        let own = self.outbox.iter().position(|o| o.id == id);
        if ok {
            self.gossip_seen.insert(id);
            self.reveal(&id);
            if let Some(pos) = own {
                self.outbox.remove(pos);
                self.emit(P2pEvent::Sent {
                    id,
                    via_stem: false,
                });
            }
            return;
        }
        if let Some(pos) = own {
            self.outbox[pos].next_try = now.mono + TICK * RETRY_TICKS;
        } else if let Some((bytes, retry)) = relay {
            // No mesh yet: try again later.
            self.stem_pending.insert(
                id,
                StemPending {
                    bytes,
                    deadline: now.mono + retry,
                },
            );
        }
    }

    // ----- own reports -----

    /// Hands an own report chunk to the mesh: verified, held hidden, and
    /// queued until a stem hop accepts it.
    pub fn publish(&mut self, now: Now, bytes: Vec<u8>) -> Result<AnnouncementId, PublishRefused> {
        if self.outbox.len() >= MAX_OUTBOX {
            return Err(PublishRefused::OutboxFull);
        }
        let v = self.verify(now, &bytes)?;
        if self.pool.slot_taken(&v) {
            return Err(PublishRefused::Equivocation);
        }
        let id = v.id();
        if self
            .pool
            .insert_hidden(&HeldAnnouncement::of(&v, bytes.len()))
        {
            self.bodies.put(id, &bytes);
            self.forget_evicted();
            self.hide(now, id);
        }
        // The reporter never forwards its own report in gossip: to its
        // neighbours it must not be the first to hand it on.
        self.gossip_seen.insert(id);
        if self.outbox.iter().all(|o| o.id != id) {
            self.outbox.push_back(Outgoing {
                id,
                bytes,
                failures: 0,
                next_try: now.mono,
                waiting: false,
            });
        }
        self.flush_outbox(now);
        Ok(id)
    }

    /// Sends every due report as a stem hop to a random stem-capable full
    /// peer. A full node whose stem hops keep failing (or with stem
    /// disabled) gossips the report itself; a light node keeps trying stem
    /// hops. With no stem-capable peer a report waits, and no failure is
    /// counted: a peer that does not speak the stem protocol is never
    /// asked, so its refusal cannot expose the reporter.
    pub(super) fn flush_outbox(&mut self, now: Now) {
        let mut keep = VecDeque::new();
        while let Some(mut o) = self.outbox.pop_front() {
            if o.next_try > now.mono {
                keep.push_back(o);
                continue;
            }
            o.waiting = false;
            let direct = !self.config.light()
                && (self.config.stem_hops() == 0 || o.failures >= MAX_STEM_FAILURES);
            if direct {
                // Kept until the publish succeeds (handle_published).
                o.next_try = now.mono + TICK * RETRY_TICKS;
                self.gossip_id(o.id);
                keep.push_back(o);
                continue;
            }
            match self.random_peer(None, false) {
                Some(peer) => {
                    let token = self.token();
                    self.push(Effect::SendStem {
                        peer,
                        token,
                        request: StemRequest {
                            hops_left: super::STEM_MARKER,
                            announcement: o.bytes.clone(),
                        },
                    });
                    self.counters.stem_sent += 1;
                    self.stem_out.insert(
                        token,
                        StemOut {
                            id: o.id,
                            own: true,
                        },
                    );
                    // Kept until the hop is acknowledged; the request itself
                    // times out before the next try.
                    o.next_try = now.mono + super::STEM_REQUEST_TIMEOUT + TICK;
                }
                None => {
                    o.waiting = true;
                    self.counters.stem_waits += 1;
                    o.next_try = now.mono + TICK * RETRY_TICKS;
                }
            }
            keep.push_back(o);
        }
        self.outbox = keep;
    }
}
