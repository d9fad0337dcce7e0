//! `NodeCore` without sockets, tasks or real timers: two cores on a
//! [`MemoryStore`] backend and a manual clock (plain `UnixTime`s) hear each
//! other's advertised frames; reports go from one to the other as bytes.
//! Restart, equivocation, late matching, a failed write, own reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshtrace_node::TrustedIssuers;
use meshtrace_node::protocol::{
    AnnouncementId, Certificate, CertificateParams, EncounterToken, Frame, IssuerSecretKey,
    ReportRequest, ReportSecretKey, Sighting, UnixTime, VerifiedAnnouncement, VerifyContext,
    build_announcements,
};
use meshtrace_node::radio::RadioStats;
use meshtrace_node::store::{
    BackendError, ContactStore, Entries, MasterKey, MemoryStore, Store, StoreConfig, Tree, Write,
};
use meshtrace_node::{NodeCore, NodeEffect, NodeEvent, NodeSettings};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NET: &str = "core-test";
/// Start of the scenario (a fixed date, 2027-01-15).
const T0: u64 = 1_800_000_000;
/// Step of the manual clock while two devices are together (seconds).
const STEP: u64 = 30;

/// A memory backend that survives a "restart" (shared) and can refuse the
/// next announcement writes.
#[derive(Clone, Default)]
struct Backend {
    mem: Arc<MemoryStore>,
    refuse_announcements: Arc<AtomicUsize>,
}

impl Store for Backend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.mem.get(tree, key)
    }
    fn apply(&self, writes: Vec<Write>) -> Result<(), BackendError> {
        if writes.iter().any(|(t, _, _)| *t == Tree::Announcements)
            && self
                .refuse_announcements
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(BackendError::Corrupt(
                "this write was refused (test)".into(),
            ));
        }
        self.mem.apply(writes)
    }
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, BackendError> {
        self.mem.scan_prefix(tree, prefix)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.mem.flush()
    }
    fn size_on_disk(&self) -> Result<u64, BackendError> {
        Ok(0)
    }
}

struct Device {
    core: NodeCore<Backend>,
    backend: Backend,
    master: MasterKey,
    settings: NodeSettings,
    frame: Option<Frame>,
    published: Vec<Vec<u8>>,
    events: Vec<NodeEvent>,
    rng: ChaCha20Rng,
}

impl Device {
    fn new(seed: u64, trusted: &TrustedIssuers) -> Device {
        let backend = Backend::default();
        let master = MasterKey::generate();
        let store =
            ContactStore::with_backend(backend.clone(), &master, StoreConfig::default(), at(0))
                .expect("store");
        let settings = NodeSettings::builder(NET)
            .trusted_issuers(trusted.clone())
            .build()
            .expect("settings");
        let core = NodeCore::new(settings.clone(), store, at(0)).expect("core");
        Device {
            core,
            backend,
            master,
            settings,
            frame: None,
            published: Vec::new(),
            events: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// Takes the core's effects: frames advertised, bytes published,
    /// events.
    fn drain(&mut self) {
        while let Some(e) = self.core.poll_effect() {
            match e {
                NodeEffect::Advertise(f) => self.frame = Some(f),
                NodeEffect::Publish(b) => self.published.push(b),
                NodeEffect::Event(ev) => self.events.push(ev),
                NodeEffect::Stop => panic!("the core stopped"),
            }
        }
    }

    fn tick(&mut self, now: UnixTime) {
        self.core.handle_tick(now, &mut self.rng);
        self.drain();
    }

    fn hear(&mut self, other: &Device, now: UnixTime) {
        let f = other.frame.expect("the other device advertises");
        // 45 dB of path loss from a device transmitting at the default
        // (simulated) TX power, which its report will carry.
        self.core.handle_sighting(Sighting {
            id: f.id,
            rssi: i16::from(meshtrace_node::radio::model::SIM_TX_POWER_DBM) - 45,
            at: now,
        });
    }

    /// Stops and starts again on the same backend (the store reloaded).
    fn restart(&mut self, now: UnixTime) {
        let placeholder = ContactStore::with_backend(
            Backend::default(),
            &self.master,
            StoreConfig::default(),
            now,
        )
        .expect("store");
        let placeholder = NodeCore::new(self.settings.clone(), placeholder, now).expect("core");
        let mut old = std::mem::replace(&mut self.core, placeholder);
        old.finish(now).expect("clean stop");
        drop(old);
        let store = ContactStore::load(
            self.backend.clone(),
            &self.master,
            StoreConfig::default(),
            now,
        )
        .expect("reload");
        self.core = NodeCore::new(self.settings.clone(), store, now).expect("core");
        self.published.clear();
        self.events.clear();
        self.drain();
    }

    fn exposures(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, NodeEvent::Exposure(_)))
            .count()
    }

    fn status(&self, now: UnixTime) -> meshtrace_node::NodeStatus {
        self.core.status(now, RadioStats::default(), None)
    }
}

fn at(seconds: u64) -> UnixTime {
    UnixTime(T0 + seconds)
}

struct World {
    issuer: IssuerSecretKey,
    trusted: TrustedIssuers,
    a: Device,
    b: Device,
    t: u64,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let trusted = TrustedIssuers::new([issuer.public()]);
        let a = Device::new(seed + 1, &trusted);
        let b = Device::new(seed + 2, &trusted);
        World {
            issuer,
            trusted,
            a,
            b,
            t: 0,
        }
    }

    fn now(&self) -> UnixTime {
        at(self.t)
    }

    /// A and B close together for `minutes`.
    fn together(&mut self, minutes: u64) {
        let end = self.t + minutes * 60;
        while self.t < end {
            let now = self.now();
            self.a.tick(now);
            self.b.tick(now);
            self.a.hear(&self.b, now);
            self.b.hear(&self.a, now);
            self.t += STEP;
        }
    }

    /// Apart for `minutes` (open encounters close).
    fn apart(&mut self, minutes: u64) {
        let end = self.t + minutes * 60;
        while self.t < end {
            let now = self.now();
            self.a.tick(now);
            self.b.tick(now);
            self.t += STEP;
        }
    }

    fn certify(&self, code: &str) -> String {
        let request = ReportRequest::from_code(code).expect("request");
        let now = self.now();
        Certificate::issue(
            &self.issuer,
            CertificateParams {
                network_id: request.network_id,
                report_key: request.report_key,
                valid_from: now,
                valid_until: now.plus(86_400),
                window_first_day: now.day().minus(2),
                window_last_day: now.day(),
                max_tokens: 1024,
            },
        )
        .expect("certificate")
        .to_code()
    }

    /// B reports; returns its published chunks.
    fn b_reports(&mut self) -> Vec<Vec<u8>> {
        let now = self.now();
        let request = self
            .b
            .core
            .report_request(now, &mut self.b.rng)
            .expect("request");
        let cert = self.certify(&request.code);
        let sent = self
            .b
            .core
            .report(now, &cert, true, &mut self.b.rng)
            .expect("report");
        assert_eq!(sent.chunks.len(), 1);
        self.b.drain();
        std::mem::take(&mut self.b.published)
    }

    fn verify(&self, bytes: &[u8]) -> VerifiedAnnouncement {
        let trusted = self.trusted.keys();
        VerifiedAnnouncement::verify(
            bytes,
            &VerifyContext {
                network_id: NET,
                trusted_issuers: &trusted,
                now: self.now(),
            },
        )
        .expect("verifies")
    }

    /// Delivers `bytes` to A as the mesh would.
    fn deliver_to_a(&mut self, bytes: &[u8]) {
        let v = self.verify(bytes);
        let now = self.now();
        self.a.core.handle_announcement(now, v, bytes.to_vec());
        self.a.drain();
    }
}

#[test]
fn an_encounter_that_closes_after_the_report_arrived_is_an_exposure() {
    let mut w = World::new(10);
    w.together(20);
    assert!(w.a.status(w.now()).open_encounters > 0);
    assert_eq!(w.a.status(w.now()).encounters, 0, "nothing closed yet");
    let chunks = w.b_reports();
    // The frames B advertised carried its ID alone; its report carries its
    // calibrated TX power, which A scores its received levels with.
    assert_eq!(w.verify(&chunks[0]).tx_power(), w.b.settings.tx_power_dbm);
    w.deliver_to_a(&chunks[0]);
    assert_eq!(w.a.exposures(), 0, "no closed encounter to match yet");
    assert_eq!(w.a.status(w.now()).announcements, 1);
    w.apart(15);
    assert!(w.a.status(w.now()).encounters > 0);
    // One exposure, told as it is found and again as it grows (the
    // encounters close one by one), high risk in the end.
    assert!(w.a.exposures() >= 1, "{:?}", w.a.events);
    assert_eq!(w.a.core.exposures().len(), 1);
    let e = &w.a.core.exposures()[0].exposure;
    assert!(e.high_risk, "{e:?}");
    assert_eq!(e.encounters.len(), w.a.status(w.now()).encounters);
}

#[test]
fn the_reporter_never_counts_its_own_report_as_an_exposure() {
    let mut w = World::new(20);
    w.together(20);
    let chunks = w.b_reports();
    // Its own chunk comes back from the mesh, and its encounters close.
    let v = w.verify(&chunks[0]);
    let now = w.now();
    w.b.core.handle_announcement(now, v, chunks[0].clone());
    w.apart(15);
    assert!(w.b.status(w.now()).encounters > 0);
    assert_eq!(w.b.exposures(), 0, "{:?}", w.b.events);
    assert!(w.b.core.exposures().is_empty());
    // After a restart too.
    let now = w.now();
    w.b.restart(now);
    w.b.tick(now);
    assert!(w.b.core.exposures().is_empty());
    // The other side is warned.
    w.deliver_to_a(&chunks[0]);
    assert_eq!(w.a.exposures(), 1);
}

#[test]
fn a_second_variant_of_a_chunk_is_ignored() {
    let mut w = World::new(30);
    w.together(20);
    w.apart(15);
    let now = w.now();
    // A certificate holder signs two chunks with index 0: the first holds
    // nobody's tokens, the second A's.
    let a_tokens: Vec<EncounterToken> =
        w.a.core
            .store()
            .encounters()
            .flat_map(|(_, e)| e.tokens.clone())
            .collect();
    assert!(!a_tokens.is_empty());
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let key = ReportSecretKey::generate(&mut rng);
    let cert = Certificate::issue(
        &w.issuer,
        CertificateParams {
            network_id: NET.into(),
            report_key: key.public(),
            valid_from: now,
            valid_until: now.plus(86_400),
            window_first_day: now.day().minus(2),
            window_last_day: now.day(),
            max_tokens: 1024,
        },
    )
    .expect("certificate");
    let decoy = [EncounterToken([7; 16])];
    let first = build_announcements(&key, &cert, &decoy, -8, now, &mut rng).expect("build");
    let second = build_announcements(&key, &cert, &a_tokens, -8, now, &mut rng).expect("build");
    assert_ne!(first[0].id, second[0].id);
    w.deliver_to_a(&first[0].bytes);
    w.deliver_to_a(&second[0].bytes);
    assert_eq!(w.a.exposures(), 0, "the second variant was matched");
    assert_eq!(w.a.status(w.now()).announcements, 1);
    assert!(w.a.core.store().has_announcement(&first[0].id));
    assert!(!w.a.core.store().has_announcement(&second[0].id));
    // Also after a restart (the first one is still the one held).
    w.a.restart(now);
    w.deliver_to_a(&second[0].bytes);
    assert_eq!(w.a.exposures(), 0);
}

#[test]
fn an_announcement_whose_write_failed_is_taken_when_it_comes_again() {
    let mut w = World::new(40);
    w.together(20);
    w.apart(15);
    let chunks = w.b_reports();
    w.a.backend.refuse_announcements.store(1, Ordering::SeqCst);
    w.deliver_to_a(&chunks[0]);
    assert_eq!(w.a.status(w.now()).announcements, 0, "the write failed");
    assert_eq!(w.a.exposures(), 0);
    assert!(
        !w.a.core.is_stopped(),
        "a refused write does not stop the node"
    );
    // The same chunk again (a catch-up round): now stored and matched.
    w.deliver_to_a(&chunks[0]);
    assert_eq!(w.a.status(w.now()).announcements, 1);
    assert_eq!(w.a.exposures(), 1, "{:?}", w.a.events);
}

#[test]
fn after_a_restart_exposures_and_unsent_reports_are_taken_up_and_the_unsent_published_once() {
    let mut w = World::new(50);
    w.together(20);
    w.apart(15);
    let chunks = w.b_reports();
    let id = w.verify(&chunks[0]).id();
    w.deliver_to_a(&chunks[0]);
    assert_eq!(w.a.exposures(), 1);
    let now = w.now();

    // A: the exposure is kept; matching the stored chunk again on start
    // and receiving it again tell nothing new.
    w.a.restart(now);
    assert_eq!(w.a.core.exposures().len(), 1);
    assert_eq!(w.a.exposures(), 0, "{:?}", w.a.events);
    w.deliver_to_a(&chunks[0]);
    w.a.tick(now);
    assert_eq!(w.a.exposures(), 0);

    // B: the report was never confirmed sent: handed over again, once.
    assert_eq!(w.b.status(now).unsent, 1);
    w.b.restart(now);
    assert_eq!(w.b.published, chunks, "the unsent chunk is published again");
    w.b.tick(now);
    assert_eq!(w.b.published.len(), 1, "published once");
    assert_eq!(w.b.status(now).unsent, 1);
    // Confirmed sent: not published at the next start.
    w.b.core.handle_sent(id);
    w.b.core.handle_sent(AnnouncementId([0; 32]));
    assert_eq!(w.b.status(now).unsent, 0);
    w.b.restart(now);
    assert!(w.b.published.is_empty());
}

#[test]
fn when_the_mesh_stops_the_node_saves_its_encounters_and_stops_with_a_clear_event() {
    let mut w = World::new(60);
    w.together(10);
    assert!(w.a.status(w.now()).open_encounters > 0);
    let now = w.now();
    w.a.core.handle_mesh_stopped(now);
    let mut effects = Vec::new();
    while let Some(e) = w.a.core.poll_effect() {
        effects.push(e);
    }
    assert_eq!(effects.len(), 2, "{effects:?}");
    match &effects[0] {
        NodeEffect::Event(NodeEvent::MeshStopped(why)) => {
            assert!(why.contains("the mesh stopped"), "{why}");
            assert!(!why.contains('\n'), "{why}");
        }
        other => panic!("expected MeshStopped, got {other:?}"),
    }
    assert!(matches!(effects[1], NodeEffect::Stop));
    assert!(w.a.core.is_stopped());
    let s = w.a.status(now);
    assert_eq!(s.open_encounters, 0);
    assert!(s.encounters > 0, "the open encounters were saved");
}

#[test]
fn settings_with_a_bad_network_id_are_refused_in_one_plain_line() {
    let e = NodeSettings::builder("Not A Network!")
        .build()
        .expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("Not A Network!"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    let ok = NodeSettings::builder(NET)
        .min_report_encounter_seconds(120)
        .tx_power_dbm(-4)
        .build()
        .expect("valid");
    assert_eq!(ok.min_report_encounter_seconds, 120);
    assert_eq!(ok.tx_power_dbm, -4);
    assert!(ok.trusted_issuers.is_none());
}
