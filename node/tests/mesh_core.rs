//! The mesh core ([`MeshState`]) without sockets or timers: several cores
//! (and scripted peers) are wired together by a small in-test router that
//! carries effects across, with a virtual clock. Everything is seeded and
//! deterministic; nothing sleeps.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use meshtrace_node::TrustedIssuers;
use meshtrace_node::p2p::Keypair;
use meshtrace_node::p2p::MessageAcceptance;
use meshtrace_node::p2p::{
    Effect, HeldAnnouncement, ID_MESSAGE_LEN, IdMessage, MAX_FETCH_ATTEMPTS, MAX_FETCH_BATCHES,
    MAX_FETCH_IDS, MAX_GOSSIP_FETCHES_PER_PEER, MAX_STEM_FAILURES, MeshState, Now, Origin,
    P2pConfig, P2pEvent, PublishRefused, RATE_WINDOW, STEM_MARKER, STEM_REQUESTS_PER_MINUTE,
    SYNC_REQUESTS_PER_MINUTE, StemRequest, SyncRequest, SyncResponse, TICK, fetch_ids,
    sync_request,
};
use meshtrace_node::p2p::{PeerId, StreamProtocol};
use meshtrace_protocol::{
    AnnouncementId, Certificate, CertificateParams, EncounterToken, IssuerSecretKey,
    ReportSecretKey, UnixTime, VerifiedAnnouncement, VerifyContext, build_announcements,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NET: &str = "core-test";
const STEM_TIMEOUT: Duration = Duration::from_secs(10);
const SYNC_INTERVAL: Duration = Duration::from_secs(300);

/// Certified reports on one issuer, at a fixed wall-clock time.
struct Reports {
    issuer: IssuerSecretKey,
    rng: ChaCha20Rng,
    now: UnixTime,
}

impl Reports {
    fn new(seed: u64) -> Reports {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        Reports {
            issuer: IssuerSecretKey::generate(&mut rng),
            rng,
            now: UnixTime(1_800_000_000),
        }
    }

    fn certificate(&mut self) -> (ReportSecretKey, Certificate) {
        let key = ReportSecretKey::generate(&mut self.rng);
        let cert = Certificate::issue(
            &self.issuer,
            CertificateParams {
                network_id: NET.into(),
                report_key: key.public(),
                valid_from: self.now.minus(60),
                valid_until: self.now.plus(86_400),
                window_first_day: self.now.day().minus(3),
                window_last_day: self.now.day(),
                max_tokens: 1024,
            },
        )
        .expect("certificate");
        (key, cert)
    }

    /// One single-chunk report's bytes.
    fn one(&mut self) -> Vec<u8> {
        let (key, cert) = self.certificate();
        let tokens = [EncounterToken([7; 16])];
        build_announcements(&key, &cert, &tokens, -8, self.now, &mut self.rng)
            .expect("report")
            .remove(0)
            .bytes
    }

    /// Two different chunk-0 variants of one certificate's report.
    fn variants(&mut self) -> (Vec<u8>, Vec<u8>) {
        let (key, cert) = self.certificate();
        let tokens = [EncounterToken([9; 16])];
        let mut build = || {
            build_announcements(&key, &cert, &tokens, -8, self.now, &mut self.rng)
                .expect("report")
                .remove(0)
                .bytes
        };
        let (a, b) = (build(), build());
        assert_ne!(a, b);
        (a, b)
    }

    /// The gossip message naming one of this fixture's announcements.
    fn id_message(&self, bytes: &[u8]) -> IdMessage {
        IdMessage {
            id: AnnouncementId::of(bytes),
            last_day: self.now.day(),
            size: bytes.len() as u32,
        }
    }

    fn config(&self, light: bool, stem_hops: u32) -> P2pConfig {
        P2pConfig::builder(NET)
            .trusted_issuers(TrustedIssuers::new([self.issuer.public()]))
            .light(light)
            .stem_hops(stem_hops)
            .stem_timeout(STEM_TIMEOUT)
            .sync_interval(SYNC_INTERVAL)
            .build()
            .expect("valid settings")
    }
}

fn proto(what: &str) -> StreamProtocol {
    StreamProtocol::try_from_owned(format!("/meshtrace/{NET}/{what}/2")).expect("name")
}

/// What a scripted peer does with a stem request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Script {
    /// Accepts and then sits on it (never relays or gossips); answers a
    /// fetch with the bodies in [`Net::bodies`] it was given.
    Sits,
    /// Does not speak the stem protocol (a foreign libp2p client).
    Foreign,
}

enum Body {
    Core(Box<MeshState>),
    Scripted(Script),
}

struct Node {
    peer: PeerId,
    body: Body,
    light: bool,
    events: Vec<P2pEvent>,
}

/// What crossed a link.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Stem,
    Gossip,
    Sync,
}

#[derive(Clone, Debug)]
struct Delivery {
    from: usize,
    to: usize,
    kind: Kind,
    /// The announcement id (stem, gossip), if any.
    id: Option<AnnouncementId>,
    /// A fetch request (sync).
    fetch: bool,
    /// Size of the gossip message (gossip).
    bytes: usize,
}

/// The router: nodes, links, a virtual clock, and a log of deliveries.
struct Net {
    nodes: Vec<Node>,
    links: HashSet<(usize, usize)>,
    /// The virtual clock: `start` plus `elapsed`.
    start: Now,
    elapsed: Duration,
    now: Now,
    log: Vec<Delivery>,
    /// Gossip publishes each node made (id, accepted by gossip).
    published: Vec<(usize, AnnouncementId)>,
    /// Bodies a scripted node hands out when asked (node, id).
    bodies: HashMap<(usize, AnnouncementId), Vec<u8>>,
    /// Gossip messages waiting for their receiver's verdict.
    pending: HashMap<(usize, AnnouncementId), Vec<u8>>,
    /// Nodes each gossip message reached (gossipsub's duplicate cache).
    gossip_seen: HashMap<AnnouncementId, HashSet<usize>>,
    /// Verdicts the cores gave after fetching (node, id, verdict).
    validations: Vec<(usize, AnnouncementId, MessageAcceptance)>,
}

impl Net {
    fn new() -> Net {
        let start = Now {
            mono: Instant::now(),
            unix: UnixTime(1_800_000_000),
        };
        Net {
            nodes: Vec::new(),
            links: HashSet::new(),
            start,
            elapsed: Duration::ZERO,
            now: start,
            log: Vec::new(),
            published: Vec::new(),
            bodies: HashMap::new(),
            pending: HashMap::new(),
            gossip_seen: HashMap::new(),
            validations: Vec::new(),
        }
    }

    fn peer_of(seed: u8) -> PeerId {
        let mut secret = [0u8; 32];
        secret[0] = seed;
        secret[1] = 1;
        Keypair::ed25519_from_bytes(secret)
            .expect("key")
            .public()
            .to_peer_id()
    }

    fn add_core(&mut self, config: P2pConfig, seed: u64, initial: Vec<Vec<u8>>) -> usize {
        let light = config.light();
        let state = MeshState::new(config, seed, self.now, initial).expect("core");
        self.push(Body::Core(Box::new(state)), light)
    }

    fn add_scripted(&mut self, script: Script) -> usize {
        self.push(Body::Scripted(script), false)
    }

    fn push(&mut self, body: Body, light: bool) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            peer: Net::peer_of(i as u8 + 1),
            body,
            light,
            events: Vec::new(),
        });
        i
    }

    fn core(&mut self, i: usize) -> &mut MeshState {
        match &mut self.nodes[i].body {
            Body::Core(s) => s,
            Body::Scripted(_) => panic!("node {i} is scripted"),
        }
    }

    fn protocols(&self, i: usize) -> Vec<StreamProtocol> {
        match self.nodes[i].body {
            Body::Core(_) | Body::Scripted(Script::Sits) => {
                vec![proto("stem"), proto("sync"), proto("kad")]
            }
            // gossipsub, identify and ping only.
            Body::Scripted(Script::Foreign) => vec![StreamProtocol::new("/ipfs/id/1.0.0")],
        }
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn neighbours(&self, a: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|b| *b != a && self.linked(a, *b))
            .collect()
    }

    /// Connects `a` and `b` as the driver would report it: connection,
    /// identify, subscription.
    fn connect(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let now = self.now;
        for (x, y) in [(a, b), (b, a)] {
            let (py, protos, full) = (self.nodes[y].peer, self.protocols(y), !self.nodes[y].light);
            if let Body::Core(s) = &mut self.nodes[x].body {
                s.peer_connected(now, py);
                s.peer_identified(now, py, &protos);
                s.peer_subscribed(now, py, full);
            }
        }
        self.pump();
    }

    fn index_of(&self, peer: PeerId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.peer == peer)
            .expect("known peer")
    }

    /// Carries effects across until none is left.
    fn pump(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(e) = match &mut self.nodes[i].body {
                    Body::Core(s) => s.poll_effect(),
                    Body::Scripted(_) => None,
                } {
                    any = true;
                    self.carry(i, e);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn carry(&mut self, i: usize, e: Effect) {
        let now = self.now;
        let from = self.nodes[i].peer;
        match e {
            Effect::SendStem {
                peer,
                token,
                request,
            } => {
                let j = self.index_of(peer);
                assert!(self.linked(i, j), "stem request over no link");
                self.log.push(Delivery {
                    from: i,
                    to: j,
                    kind: Kind::Stem,
                    id: Some(AnnouncementId::of(&request.announcement)),
                    fetch: false,
                    bytes: request.announcement.len(),
                });
                match &mut self.nodes[j].body {
                    Body::Core(s) => {
                        let resp = s.handle_stem_request(now, from, request);
                        self.core(i).handle_stem_response(now, token, resp.accepted);
                    }
                    Body::Scripted(Script::Sits) => {
                        self.core(i).handle_stem_response(now, token, true)
                    }
                    // The stream is refused: an outbound failure.
                    Body::Scripted(Script::Foreign) => self.core(i).handle_stem_failure(now, token),
                }
            }
            Effect::SendSync {
                peer,
                token,
                request,
            } => {
                let j = self.index_of(peer);
                let fetched = match &request.kind {
                    Some(sync_request::Kind::Fetch(ids)) => Some(fetch_ids(ids)),
                    _ => None,
                };
                self.log.push(Delivery {
                    from: i,
                    to: j,
                    kind: Kind::Sync,
                    id: fetched.as_ref().and_then(|f| f.first().copied()),
                    fetch: fetched.is_some(),
                    bytes: 0,
                });
                let scripted: Option<Vec<Vec<u8>>> = fetched.as_ref().and_then(|ids| {
                    ids.iter()
                        .map(|id| self.bodies.get(&(j, *id)).cloned())
                        .collect()
                });
                match &mut self.nodes[j].body {
                    Body::Core(s) => {
                        let resp = s.answer_sync(now, from, request);
                        self.core(i).handle_sync_response(now, token, resp);
                    }
                    Body::Scripted(Script::Sits) if scripted.is_some() => {
                        let resp = SyncResponse {
                            announcements: scripted.unwrap_or_default(),
                            ..Default::default()
                        };
                        self.core(i).handle_sync_response(now, token, resp);
                    }
                    Body::Scripted(_) => self.core(i).handle_sync_failure(now, token),
                }
            }
            Effect::Gossip { id, message } => {
                let full: Vec<usize> = self
                    .neighbours(i)
                    .into_iter()
                    .filter(|j| !self.nodes[*j].light)
                    .collect();
                let ok = !full.is_empty();
                if ok {
                    self.published.push((i, id));
                }
                self.core(i).handle_published(now, id, ok);
                if ok {
                    self.spread(i, message);
                }
            }
            Effect::Validate { id, acceptance } => {
                self.validations.push((i, id, acceptance));
                let message = self.pending.remove(&(i, id));
                if let (MessageAcceptance::Accept, Some(m)) = (acceptance, message) {
                    self.spread(i, m);
                }
            }
            Effect::Emit(ev) => self.nodes[i].events.push(ev),
        }
    }

    /// A scripted node gossips the id of `bytes` (whose window ends on
    /// the fixture's day) and hands the body to whoever fetches it.
    fn flood(&mut self, origin: usize, bytes: Vec<u8>, reports: &Reports) {
        let m = reports.id_message(&bytes);
        self.bodies.insert((origin, m.id), bytes);
        self.spread(origin, m.encode());
    }

    /// Gossipsub: every node receives a message once and forwards it to its
    /// full neighbours when its validator accepts it (at once, or later by
    /// an [`Effect::Validate`] after fetching the body).
    fn spread(&mut self, origin: usize, message: Vec<u8>) {
        let id = IdMessage::decode(&message)
            .map(|m| m.id)
            .unwrap_or_else(|_| AnnouncementId::of(&message));
        self.gossip_seen.entry(id).or_default().insert(origin);
        let mut queue = vec![origin];
        while let Some(x) = queue.pop() {
            for y in self.neighbours(x) {
                if self.nodes[y].light || !self.gossip_seen.entry(id).or_default().insert(y) {
                    continue;
                }
                self.log.push(Delivery {
                    from: x,
                    to: y,
                    kind: Kind::Gossip,
                    id: Some(id),
                    fetch: false,
                    bytes: message.len(),
                });
                let (now, px) = (self.now, self.nodes[x].peer);
                let verdict = match &mut self.nodes[y].body {
                    Body::Core(s) => s.handle_gossip(now, px, message.clone()),
                    Body::Scripted(_) => Some(MessageAcceptance::Ignore),
                };
                match verdict {
                    Some(MessageAcceptance::Accept) => queue.push(y),
                    Some(_) => {}
                    None => {
                        self.pending.insert((y, id), message.clone());
                    }
                }
            }
        }
    }

    /// Advances the virtual clock by `d`, one [`TICK`] at a time, running
    /// every core's timer.
    fn advance(&mut self, d: Duration) {
        let steps = d.as_millis().div_ceil(TICK.as_millis());
        for _ in 0..steps {
            self.elapsed += TICK;
            self.now = self.start.plus(self.elapsed);
            for i in 0..self.nodes.len() {
                let now = self.now;
                if let Body::Core(s) = &mut self.nodes[i].body {
                    s.handle_timeout(now);
                }
                self.pump();
            }
        }
    }

    fn publish(&mut self, i: usize, bytes: Vec<u8>) -> AnnouncementId {
        let now = self.now;
        let id = self.core(i).publish(now, bytes).expect("published");
        self.pump();
        id
    }

    fn deliveries(&self, kind: Kind, to: usize) -> Vec<&Delivery> {
        self.log
            .iter()
            .filter(|d| d.kind == kind && d.to == to)
            .collect()
    }

    fn announcements(&self, i: usize) -> Vec<(AnnouncementId, Origin)> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                P2pEvent::Announcement {
                    verified, origin, ..
                } => Some((verified.id(), *origin)),
                _ => None,
            })
            .collect()
    }

    fn sent(&self, i: usize) -> Vec<(AnnouncementId, bool)> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                P2pEvent::Sent { id, via_stem } => Some((*id, *via_stem)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_relay_whose_next_hop_sits_on_the_report_gossips_it_after_stem_timeout() {
    // The relay fluffs with probability 1 / stem_hops; find (deterministically)
    // a seed for which it forwards to the next hop instead.
    for seed in 0..64 {
        let mut r = Reports::new(1);
        let mut net = Net::new();
        let relay = net.add_core(r.config(false, 8), seed, Vec::new());
        let sink = net.add_scripted(Script::Sits);
        let observer = net.add_core(r.config(false, 8), 1000 + seed, Vec::new());
        let reporter = net.add_scripted(Script::Sits);
        net.connect(relay, sink);
        net.connect(relay, reporter);
        let bytes = r.one();
        let id = AnnouncementId::of(&bytes);
        // The reporter's stem hop, as it would arrive over the wire. The
        // observer joins only after it, so the next hop can only be the sink.
        let now = net.now;
        let from = net.nodes[reporter].peer;
        let resp = net.core(relay).handle_stem_request(
            now,
            from,
            StemRequest {
                hops_left: STEM_MARKER,
                announcement: bytes,
            },
        );
        assert!(resp.accepted);
        net.pump();
        if net.deliveries(Kind::Stem, sink).is_empty() {
            assert!(!net.published.is_empty(), "seed {seed}: fluffed at once");
            continue;
        }
        net.connect(relay, observer);
        let stem_origin = Origin::Stem(net.nodes[reporter].peer);
        assert_eq!(net.announcements(relay), vec![(id, stem_origin)]);
        // Nothing before the fail-safe: the sink sits on it.
        net.advance(STEM_TIMEOUT - TICK * 2);
        assert!(net.published.is_empty(), "gossiped before stem_timeout");
        assert!(net.announcements(observer).is_empty());
        // Then the relay publishes it itself, and it spreads.
        net.advance(TICK * 4);
        assert_eq!(net.published, vec![(relay, id)]);
        let relay_peer = net.nodes[relay].peer;
        assert_eq!(
            net.announcements(observer),
            vec![(id, Origin::Gossip(relay_peer))]
        );
        return;
    }
    panic!("no seed made the relay forward");
}

#[test]
fn the_reporters_own_fail_safe_gossips_its_report_when_the_hop_sits_on_it() {
    let mut r = Reports::new(2);
    let mut net = Net::new();
    let reporter = net.add_core(r.config(false, 2), 7, Vec::new());
    let sink = net.add_scripted(Script::Sits);
    net.connect(reporter, sink);
    let observer = net.add_core(r.config(false, 2), 8, Vec::new());
    net.connect(reporter, observer);
    // The observer is stem-capable too: make sure the sink gets the hop by
    // dropping the observer's link until the hop is out.
    net.links
        .remove(&(reporter.min(observer), reporter.max(observer)));
    let now = net.now;
    let obs_peer = net.nodes[observer].peer;
    net.core(reporter).peer_disconnected(now, obs_peer);
    let id = net.publish(reporter, r.one());
    assert_eq!(net.deliveries(Kind::Stem, sink).len(), 1);
    assert_eq!(net.sent(reporter), vec![(id, true)]);
    net.connect(reporter, observer);
    net.advance(STEM_TIMEOUT - TICK * 2);
    assert!(net.published.is_empty(), "no gossip before the fail-safe");
    assert!(!net.core(reporter).pool().is_served(&id), "still hidden");
    net.advance(TICK * 4);
    assert_eq!(net.published, vec![(reporter, id)]);
    let rp = net.nodes[reporter].peer;
    assert_eq!(net.announcements(observer), vec![(id, Origin::Gossip(rp))]);
    assert!(net.core(reporter).pool().is_served(&id), "revealed");
}

#[test]
fn catch_up_fetches_bounded_batches_and_continues_next_round() {
    let mut r = Reports::new(3);
    let per_round = MAX_FETCH_IDS * MAX_FETCH_BATCHES;
    let total = per_round + 40;
    let held: Vec<Vec<u8>> = (0..total).map(|_| r.one()).collect();
    let mut net = Net::new();
    let old = net.add_core(r.config(false, 2), 1, held.clone());
    let new = net.add_core(r.config(false, 2), 2, Vec::new());
    assert_eq!(net.core(old).pool().len(), total);
    // Connecting starts a round each way: digests, ids, then fetches.
    net.connect(old, new);
    let fetches = net.log.iter().filter(|d| d.fetch && d.from == new).count();
    assert_eq!(fetches, MAX_FETCH_BATCHES, "a bounded number of batches");
    let got = net.announcements(new);
    assert_eq!(got.len(), per_round, "first round");
    let op = net.nodes[old].peer;
    assert!(got.iter().all(|(_, o)| *o == Origin::Sync(op)));
    // The next periodic round continues where this one stopped.
    net.advance(SYNC_INTERVAL + TICK);
    let got = net.announcements(new);
    assert_eq!(got.len(), total, "second round");
    let ids: HashSet<AnnouncementId> = got.iter().map(|(id, _)| *id).collect();
    let want: HashSet<AnnouncementId> = held.iter().map(|b| AnnouncementId::of(b)).collect();
    assert_eq!(ids, want);
    // In sync now: another round fetches nothing.
    let before = net.log.iter().filter(|d| d.fetch).count();
    net.advance(SYNC_INTERVAL + TICK);
    assert_eq!(net.log.iter().filter(|d| d.fetch).count(), before);
    assert!(net.core(new).counters().sync_rounds >= 3);
}

#[test]
fn a_second_variant_of_a_chunk_is_neither_stored_nor_forwarded_nor_emitted() {
    let mut r = Reports::new(4);
    let mut net = Net::new();
    let flooder = net.add_scripted(Script::Sits);
    let a = net.add_core(r.config(false, 2), 1, Vec::new());
    let b = net.add_core(r.config(false, 2), 2, Vec::new());
    net.connect(flooder, a);
    net.connect(a, b);
    let (first, second) = r.variants();
    net.flood(flooder, first.clone(), &r);
    net.pump();
    net.flood(flooder, second.clone(), &r);
    net.pump();
    let first_id = AnnouncementId::of(&first);
    let second_id = AnnouncementId::of(&second);
    let fp = net.nodes[flooder].peer;
    let ap = net.nodes[a].peer;
    assert_eq!(net.announcements(a), vec![(first_id, Origin::Gossip(fp))]);
    assert_eq!(net.announcements(b), vec![(first_id, Origin::Gossip(ap))]);
    let to_b: Vec<_> = net
        .deliveries(Kind::Gossip, b)
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(to_b, vec![Some(first_id)], "the variant is not forwarded");
    assert_eq!(net.core(a).pool().len(), 1);
    assert_eq!(net.core(a).counters().equivocations, 1);
    // Nor taken by stem, nor published as an own report.
    let now = net.now;
    let resp = net.core(b).handle_stem_request(
        now,
        ap,
        StemRequest {
            hops_left: STEM_MARKER,
            announcement: second.clone(),
        },
    );
    assert!(!resp.accepted);
    assert_eq!(
        net.core(a).publish(now, second),
        Err(PublishRefused::Equivocation)
    );
    assert!(!net.core(b).pool().contains(&second_id));
}

#[test]
fn per_peer_rate_limits_refuse_the_excess_until_the_window_ends() {
    let r = Reports::new(5);
    let mut net = Net::new();
    let a = net.add_core(r.config(false, 2), 1, Vec::new());
    let (p, q) = (Net::peer_of(90), Net::peer_of(91));
    let digests = || SyncRequest {
        kind: Some(sync_request::Kind::Digests(true)),
    };
    let now = net.now;
    let s = net.core(a);
    let refused = (0..SYNC_REQUESTS_PER_MINUTE + 5)
        .filter(|_| !s.answer_sync(now, p, digests()).refused.is_empty())
        .count();
    assert_eq!(refused, 5);
    assert!(
        s.answer_sync(now, q, digests()).refused.is_empty(),
        "per peer"
    );
    let garbage = || StemRequest {
        hops_left: STEM_MARKER,
        announcement: vec![1, 2, 3],
    };
    for _ in 0..STEM_REQUESTS_PER_MINUTE {
        assert!(!s.handle_stem_request(now, q, garbage()).accepted);
    }
    let counted = s.counters();
    assert_eq!(counted.rate_limited, 5);
    assert_eq!(counted.rejected, u64::from(STEM_REQUESTS_PER_MINUTE));
    s.handle_stem_request(now, q, garbage());
    assert_eq!(s.counters().rate_limited, 6, "stem limit reached");
    assert_eq!(s.counters().rejected, counted.rejected, "not even verified");
    // A new window serves them again.
    let later = now.plus(RATE_WINDOW);
    assert!(s.answer_sync(later, p, digests()).refused.is_empty());
    s.handle_stem_request(later, q, garbage());
    assert_eq!(s.counters().rate_limited, 6);
}

#[test]
fn a_state_built_with_initial_announcements_serves_them_after_a_restart() {
    let mut r = Reports::new(6);
    let held: Vec<Vec<u8>> = (0..5).map(|_| r.one()).collect();
    let mut net = Net::new();
    let restarted = net.add_core(r.config(false, 2), 1, held.clone());
    let fresh = net.add_core(r.config(false, 2), 2, Vec::new());
    let now = net.now;
    let fp = net.nodes[fresh].peer;
    let digests = net.core(restarted).answer_sync(
        now,
        fp,
        SyncRequest {
            kind: Some(sync_request::Kind::Digests(true)),
        },
    );
    assert_eq!(digests.digests.iter().map(|d| d.count).sum::<u32>(), 5);
    net.connect(restarted, fresh);
    let rp = net.nodes[restarted].peer;
    let got: HashMap<AnnouncementId, Origin> = net.announcements(fresh).into_iter().collect();
    assert_eq!(got.len(), 5);
    for b in &held {
        assert_eq!(got.get(&AnnouncementId::of(b)), Some(&Origin::Sync(rp)));
    }
    // The restarted node fetched nothing: it held everything already.
    assert!(net.log.iter().all(|d| !(d.fetch && d.from == restarted)));
}

#[test]
fn a_report_waits_while_no_peer_speaks_the_stem_protocol() {
    let mut r = Reports::new(7);
    let mut net = Net::new();
    let reporter = net.add_core(r.config(false, 2), 1, Vec::new());
    let foreign = net.add_scripted(Script::Foreign);
    net.connect(reporter, foreign);
    let fp = net.nodes[foreign].peer;
    assert!(!net.core(reporter).speaks_kad(&fp));
    let id = net.publish(reporter, r.one());
    // Long enough for many more than MAX_STEM_FAILURES tries.
    net.advance(STEM_TIMEOUT * 6);
    assert!(
        net.log.iter().all(|d| d.to != foreign),
        "nothing sent to the foreign peer: {:?}",
        net.log
    );
    assert!(net.published.is_empty(), "the reporter did not gossip");
    assert!(net.sent(reporter).is_empty());
    assert_eq!(net.core(reporter).outbox_len(), 1);
    let waits = net.core(reporter).counters().stem_waits;
    assert!(waits > u64::from(MAX_STEM_FAILURES), "{waits}");
    // A meshtrace peer arrives: the report leaves through it, by stem.
    let honest = net.add_core(r.config(false, 1), 2, Vec::new());
    net.connect(reporter, honest);
    assert_eq!(net.sent(reporter), vec![(id, true)]);
    let rp = net.nodes[reporter].peer;
    assert_eq!(net.announcements(honest), vec![(id, Origin::Stem(rp))]);
    assert_eq!(net.deliveries(Kind::Stem, honest).len(), 1);
}

#[test]
fn gossip_carries_only_ids_and_every_node_fetches_the_body_once() {
    let mut r = Reports::new(8);
    let mut net = Net::new();
    // A ring of five with one chord: several paths to every node.
    let nodes: Vec<usize> = (0..5)
        .map(|i| net.add_core(r.config(false, 0), 10 + i, Vec::new()))
        .collect();
    for i in 0..5 {
        net.connect(nodes[i], nodes[(i + 1) % 5]);
    }
    net.connect(nodes[0], nodes[2]);
    let bytes = r.one();
    // No stem hops: the reporter gossips the id itself.
    let id = net.publish(nodes[0], bytes.clone());
    assert_eq!(net.published, vec![(nodes[0], id)]);
    let gossip: Vec<Delivery> = net
        .log
        .iter()
        .filter(|d| d.kind == Kind::Gossip)
        .cloned()
        .collect();
    assert!(!gossip.is_empty());
    assert!(
        gossip
            .iter()
            .all(|d| d.bytes == ID_MESSAGE_LEN && d.id == Some(id)),
        "only {ID_MESSAGE_LEN}-byte id messages on the topic"
    );
    for &n in &nodes[1..] {
        let fetches: Vec<Delivery> = net
            .log
            .iter()
            .filter(|d| d.fetch && d.from == n)
            .cloned()
            .collect();
        assert_eq!(fetches.len(), 1, "node {n} fetched the body once");
        // From the peer whose gossip message reached it.
        let heard_from = gossip.iter().find(|d| d.to == n).map(|d| d.from);
        assert_eq!(Some(fetches[0].to), heard_from);
        let fp = net.nodes[fetches[0].to].peer;
        assert_eq!(net.announcements(n), vec![(id, Origin::Gossip(fp))]);
        assert_eq!(net.core(n).counters().gossip_fetches, 1);
    }
    assert_eq!(net.core(nodes[0]).counters().gossip_fetches, 0);
    // Every receiver forwarded the id only after holding the body: each
    // verdict is an Accept, one per receiver.
    assert_eq!(net.validations.len(), 4);
    assert!(
        net.validations
            .iter()
            .all(|(_, v, a)| *v == id && *a == MessageAcceptance::Accept)
    );
}

#[test]
fn a_failed_fetch_is_retried_with_another_peer_and_given_up_after_the_bound() {
    let mut r = Reports::new(9);
    let bytes = r.one();
    let id = AnnouncementId::of(&bytes);
    let message = r.id_message(&bytes).encode();
    let mut net = Net::new();
    let node = net.add_core(r.config(false, 2), 1, Vec::new());
    let empty = net.add_scripted(Script::Sits);
    // A peer that hands the body over when asked (and does not push it by
    // catch-up on connecting).
    let holder = net.add_scripted(Script::Sits);
    net.bodies.insert((holder, id), bytes.clone());
    net.connect(node, empty);
    net.connect(node, holder);
    let now = net.now;
    let ep = net.nodes[empty].peer;
    // Heard from a peer that cannot hand the body over.
    assert_eq!(net.core(node).handle_gossip(now, ep, message.clone()), None);
    net.pump();
    let asked: Vec<usize> = net
        .log
        .iter()
        .filter(|d| d.fetch && d.from == node && d.id == Some(id))
        .map(|d| d.to)
        .collect();
    assert_eq!(asked, vec![empty, holder], "the source first, then another");
    let hp = net.nodes[holder].peer;
    assert_eq!(net.announcements(node), vec![(id, Origin::Gossip(hp))]);
    assert_eq!(net.validations, vec![(node, id, MessageAcceptance::Accept)]);
    let c = net.core(node).counters();
    assert_eq!((c.gossip_fetch_failures, c.gossip_fetches), (1, 1));

    // Nobody has it: MAX_FETCH_ATTEMPTS peers asked, then ignored.
    let other = r.one();
    let other_id = AnnouncementId::of(&other);
    let lonely = net.add_core(r.config(false, 2), 3, Vec::new());
    let empties: Vec<usize> = (0..MAX_FETCH_ATTEMPTS + 2)
        .map(|_| net.add_scripted(Script::Sits))
        .collect();
    for &e in &empties {
        net.connect(lonely, e);
    }
    let from = net.nodes[empties[0]].peer;
    let msg = r.id_message(&other).encode();
    assert_eq!(net.core(lonely).handle_gossip(now, from, msg.clone()), None);
    net.pump();
    let asked = net
        .log
        .iter()
        .filter(|d| d.fetch && d.from == lonely)
        .count();
    assert_eq!(asked, MAX_FETCH_ATTEMPTS as usize);
    assert_eq!(
        net.validations.last(),
        Some(&(lonely, other_id, MessageAcceptance::Ignore))
    );
    assert_eq!(net.core(lonely).counters().gossip_fetch_given_up, 1);
    assert!(net.announcements(lonely).is_empty());
    // The same id again is not fetched again (left to catch-up).
    assert_eq!(
        net.core(lonely).handle_gossip(now, from, msg),
        Some(MessageAcceptance::Ignore)
    );
}

#[test]
fn a_peer_gossiping_ids_it_never_serves_takes_only_its_share_of_fetches() {
    let mut r = Reports::new(11);
    let honest = r.one();
    let honest_id = AnnouncementId::of(&honest);
    let mut net = Net::new();
    let node = net.add_core(r.config(false, 2), 1, Vec::new());
    let attacker = net.add_scripted(Script::Sits);
    let holder = net.add_scripted(Script::Sits);
    net.bodies.insert((holder, honest_id), honest.clone());
    net.connect(node, attacker);
    net.connect(node, holder);
    let now = net.now;
    let ap = net.nodes[attacker].peer;
    let hp = net.nodes[holder].peer;
    let bogus = |i: usize| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        IdMessage {
            id: AnnouncementId(id),
            last_day: r.now.day(),
            size: 300,
        }
        .encode()
    };
    // Its ids are fetched up to the per-peer bound, all at once (nothing
    // answers in between)...
    for i in 0..MAX_GOSSIP_FETCHES_PER_PEER {
        assert_eq!(
            net.core(node).handle_gossip(now, ap, bogus(i)),
            None,
            "id {i}"
        );
    }
    // ...and the next is ignored, not fetched.
    let over = bogus(MAX_GOSSIP_FETCHES_PER_PEER);
    assert_eq!(
        net.core(node).handle_gossip(now, ap, over.clone()),
        Some(MessageAcceptance::Ignore)
    );
    assert_eq!(net.core(node).counters().ignored, 1);
    // An honest peer's id heard meanwhile is still fetched, and held.
    let message = r.id_message(&honest).encode();
    assert_eq!(net.core(node).handle_gossip(now, hp, message), None);
    net.pump();
    assert_eq!(
        net.announcements(node),
        vec![(honest_id, Origin::Gossip(hp))]
    );
    // The bogus fetches ended (nobody had those bodies): the attacker's
    // share is free again.
    assert_eq!(
        net.core(node).counters().gossip_fetch_given_up,
        MAX_GOSSIP_FETCHES_PER_PEER as u64
    );
    assert_eq!(
        net.core(node)
            .handle_gossip(now, ap, bogus(MAX_GOSSIP_FETCHES_PER_PEER + 1)),
        None
    );
}

#[test]
fn version_1_gossip_and_peers_are_refused() {
    let mut r = Reports::new(10);
    let mut net = Net::new();
    let node = net.add_core(r.config(false, 2), 1, Vec::new());
    let now = net.now;
    let old = Net::peer_of(77);
    // A version-1 node gossips whole announcements.
    let whole = r.one();
    assert_eq!(
        net.core(node).handle_gossip(now, old, whole),
        Some(MessageAcceptance::Reject)
    );
    assert_eq!(net.core(node).counters().rejected, 1);
    // An id message naming an impossible size is refused too.
    let another = r.one();
    let mut m = r.id_message(&another).encode();
    m[36..].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        net.core(node).handle_gossip(now, old, m),
        Some(MessageAcceptance::Reject)
    );
    // A peer whose identify lists only version-1 protocols is counted and
    // never asked for catch-up.
    net.core(node).peer_connected(now, old);
    let v1 = |what: &str| {
        StreamProtocol::try_from_owned(format!("/meshtrace/{NET}/{what}/1")).expect("name")
    };
    net.core(node)
        .peer_identified(now, old, &[v1("stem"), v1("sync"), v1("kad")]);
    net.core(node).peer_subscribed(now, old, true);
    assert_eq!(net.core(node).counters().old_version_peers, 1);
    assert!(net.core(node).poll_effect().is_none(), "nothing sent to it");
}

#[test]
fn a_store_backed_core_holds_no_bodies_and_asks_the_store_for_a_fetch() {
    let mut r = Reports::new(11);
    let stored: Vec<Vec<u8>> = (0..3).map(|_| r.one()).collect();
    let trusted = [r.issuer.public()];
    let ctx = VerifyContext {
        network_id: NET,
        trusted_issuers: &trusted,
        now: r.now,
    };
    let held: Vec<HeldAnnouncement> = stored
        .iter()
        .map(|b| {
            HeldAnnouncement::of(
                &VerifiedAnnouncement::verify(b, &ctx).expect("valid"),
                b.len(),
            )
        })
        .collect();
    let net = Net::new();
    let now = net.now;
    let mut s = MeshState::with_store(r.config(false, 2), 1, now, held).expect("core");
    assert_eq!(s.pool().len(), 3);
    assert_eq!(s.bodies_in_memory(), 0, "the bytes stay in the store");
    let peer = Net::peer_of(50);
    let digests = s.answer_sync(
        now,
        peer,
        SyncRequest {
            kind: Some(sync_request::Kind::Digests(true)),
        },
    );
    assert_eq!(digests.digests.iter().map(|d| d.count).sum::<u32>(), 3);
    assert!(s.take_store_reads().is_empty());
    let ids: Vec<AnnouncementId> = stored.iter().map(|b| AnnouncementId::of(b)).collect();
    let mut unknown = ids.clone();
    unknown.push(AnnouncementId([5; 32]));
    let fetch = s.answer_sync(
        now,
        peer,
        SyncRequest {
            kind: Some(sync_request::Kind::Fetch(
                unknown.iter().flat_map(|i| i.0).collect(),
            )),
        },
    );
    assert!(fetch.announcements.is_empty(), "nothing in memory");
    assert_eq!(
        s.take_store_reads(),
        ids,
        "held ones asked of the store, in order"
    );
    assert!(s.take_store_reads().is_empty());
    // An own report's body stays in memory among the latest few (hidden:
    // not served until it is seen in gossip).
    let own = r.one();
    let own_id = s.publish(now, own).expect("published");
    assert_eq!(s.bodies_in_memory(), 1);
    assert!(!s.pool().is_served(&own_id));
}
