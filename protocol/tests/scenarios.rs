//! Protocol-level scenarios with simulated devices and clocks: a contact
//! across a rotation boundary under clock skew, a replayed key, the certified
//! window, idempotent matching.

use meshtrace_protocol::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A simulated device: its own clock offset, keys and encounter log.
struct Device {
    skew: i64,
    keys: KeySchedule,
    tracker: EncounterTracker,
    log: Vec<Encounter>,
    rng: ChaCha20Rng,
}

impl Device {
    fn new(seed: u64, skew: i64) -> Device {
        Device {
            skew,
            keys: KeySchedule::new(),
            tracker: EncounterTracker::new(0),
            log: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    fn local(&self, true_time: u64) -> UnixTime {
        UnixTime(true_time.checked_add_signed(self.skew).unwrap())
    }

    /// Rotates keys at true time `t`; returns the ID on air.
    fn tick(&mut self, t: u64) -> RotatingId {
        let now = self.local(t);
        self.keys.rotate(now, &mut self.rng);
        self.log.extend(self.tracker.poll_closed(now));
        self.keys.current(now).unwrap().public()
    }

    fn hear(&mut self, t: u64, id: RotatingId, rssi: i16) {
        let at = self.local(t);
        self.tracker
            .handle_sighting(&self.keys, Sighting { id, rssi, at })
            .unwrap();
    }

    fn finish(&mut self) {
        self.log.extend(self.tracker.close_all());
    }

    fn index(&self) -> TokenIndex {
        TokenIndex::build(
            self.log
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.tokens.iter().map(move |t| (*t, i as u64))),
        )
    }

    fn all_tokens(&self) -> Vec<EncounterToken> {
        self.log.iter().flat_map(|e| e.tokens.clone()).collect()
    }
}

const BOUNDARY: u64 = 2_000_000 * 900; // an epoch boundary (true time)

struct Deployment {
    issuer: IssuerSecretKey,
    rng: ChaCha20Rng,
}

impl Deployment {
    fn new() -> Deployment {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        Deployment {
            issuer: IssuerSecretKey::generate(&mut rng),
            rng,
        }
    }

    /// The full report flow for `dev` at true time `t`; returns the chunks.
    fn report(&mut self, dev: &Device, t: u64, window_days: u32) -> Vec<EncodedAnnouncement> {
        let now = dev.local(t);
        let report = ReportSecretKey::generate(&mut self.rng);
        let req = ReportRequest {
            network_id: "town".into(),
            report_key: report.public(),
        };
        let req = ReportRequest::from_code(&req.to_code()).unwrap();
        let cert = Certificate::issue(
            &self.issuer,
            CertificateParams {
                network_id: req.network_id,
                report_key: req.report_key,
                valid_from: now,
                valid_until: now.plus(86_400),
                window_first_day: now.day().minus(window_days),
                window_last_day: now.day(),
                max_tokens: 4096,
            },
        )
        .unwrap();
        let cert = Certificate::from_code(&cert.to_code()).unwrap();
        build_announcements(&report, &cert, &dev.all_tokens(), 0, now, &mut self.rng).unwrap()
    }

    fn verify(&self, bytes: &[u8], now: UnixTime) -> VerifiedAnnouncement {
        let trusted = [self.issuer.public()];
        VerifiedAnnouncement::verify(
            bytes,
            &VerifyContext {
                network_id: "town",
                trusted_issuers: &trusted,
                now,
            },
        )
        .unwrap()
    }
}

fn exposure_of(
    dep: &Deployment,
    receiver: &Device,
    chunks: &[EncodedAnnouncement],
    t: u64,
) -> Option<Exposure> {
    let index = receiver.index();
    let mut ledger = ExposureLedger::new();
    let mut last = None;
    for c in chunks {
        let v = dep.verify(&c.bytes, receiver.local(t));
        if let MatchOutcome::Exposure(e) = ledger.ingest(
            &v,
            &index,
            |r| receiver.log.get(r as usize).cloned(),
            &RiskConfig::default(),
        ) {
            last = Some(e);
        }
    }
    last
}

/// A and B side by side for `minutes`, starting `start` seconds (true time)
/// before an epoch boundary, hearing each other every `period` seconds, with
/// B's reception lagging A's by `lag` seconds.
fn meet(a: &mut Device, b: &mut Device, start: u64, minutes: u64, period: u64, lag: u64) {
    let t_begin = BOUNDARY - start;
    let t_end = t_begin + minutes * 60;
    let mut t = t_begin;
    while t <= t_end {
        let id_b = b.tick(t);
        a.tick(t);
        a.hear(t, id_b, -50);
        if t + lag <= t_end {
            let id_a = a.tick(t + lag);
            b.tick(t + lag);
            b.hear(t + lag, id_a, -50);
        }
        t += period;
    }
}

#[test]
fn contact_across_a_rotation_boundary_with_clock_skew_is_found() {
    for skew in [-120i64, -60, 0, 60, 120] {
        for lag in [0u64, 45, 200] {
            let mut a = Device::new(1, 0);
            let mut b = Device::new(2, skew);
            meet(&mut a, &mut b, 7 * 60, 20, 60, lag);
            a.finish();
            b.finish();
            let shared = a
                .all_tokens()
                .iter()
                .filter(|t| b.all_tokens().contains(t))
                .count();
            assert!(
                shared >= 2,
                "skew {skew}, lag {lag}: {shared} shared tokens"
            );
            let mut dep = Deployment::new();
            let t_report = BOUNDARY + 3600;
            let chunks = dep.report(&b, t_report, 2);
            let exp = exposure_of(&dep, &a, &chunks, t_report)
                .unwrap_or_else(|| panic!("skew {skew}, lag {lag}: no exposure"));
            assert!(exp.high_risk, "skew {skew}, lag {lag}: {exp:?}");
            assert_eq!(exp.days.len(), 1);
            assert!(exp.days[0].estimated_minutes >= 15.0);
        }
    }
}

#[test]
fn a_glimpse_on_each_side_of_the_boundary_still_shares_a_token() {
    let mut a = Device::new(3, 0);
    let mut b = Device::new(4, 0);
    // A hears B 10 s before the boundary; B hears A only 20 s after it.
    let id_b = b.tick(BOUNDARY - 10);
    a.tick(BOUNDARY - 10);
    a.hear(BOUNDARY - 10, id_b, -50);
    let id_a = a.tick(BOUNDARY + 20);
    b.tick(BOUNDARY + 20);
    b.hear(BOUNDARY + 20, id_a, -50);
    a.finish();
    b.finish();
    assert!(a.all_tokens().iter().any(|t| b.all_tokens().contains(t)));
}

#[test]
fn a_replayed_key_never_yields_a_token_its_owner_holds() {
    // A and B really meet; an attacker records B's broadcasts and replays them
    // to C elsewhere, live and a day later.
    let mut a = Device::new(5, 0);
    let mut b = Device::new(6, 0);
    let mut c = Device::new(7, 0);
    let mut recorded = Vec::new();
    let t0 = BOUNDARY - 600;
    for i in 0..25 {
        let t = t0 + 60 * i;
        let id_b = b.tick(t);
        let id_a = a.tick(t);
        c.tick(t);
        recorded.push(id_b);
        a.hear(t, id_b, -50);
        b.hear(t, id_a, -50);
        c.hear(t, id_b, -45); // live relay, one way
    }
    for (i, id) in recorded.iter().enumerate() {
        let t = t0 + 86_400 + 60 * i as u64;
        c.tick(t);
        c.hear(t, *id, -45); // replay a day later
    }
    a.finish();
    b.finish();
    c.finish();
    assert!(!c.log.is_empty(), "C did record the replayed IDs");
    let b_tokens = b.all_tokens();
    assert!(c.all_tokens().iter().all(|t| !b_tokens.contains(t)));
    let mut dep = Deployment::new();
    let t_report = t0 + 2 * 86_400;
    let chunks = dep.report(&b, t_report, 3);
    assert!(
        exposure_of(&dep, &c, &chunks, t_report).is_none(),
        "replay caused an alert"
    );
    assert!(exposure_of(&dep, &a, &chunks, t_report).unwrap().high_risk);
}

#[test]
fn matches_outside_the_certified_window_do_not_count() {
    let mut a = Device::new(8, 0);
    let mut b = Device::new(9, 0);
    meet(&mut a, &mut b, 0, 30, 60, 0);
    a.finish();
    b.finish();
    let mut dep = Deployment::new();
    // Reported 5 days later with a window covering only the last 2 days.
    let t_report = BOUNDARY + 5 * 86_400;
    let narrow = dep.report(&b, t_report, 2);
    assert!(exposure_of(&dep, &a, &narrow, t_report).is_none());
    let wide = dep.report(&b, t_report, 6);
    assert!(exposure_of(&dep, &a, &wide, t_report).unwrap().high_risk);
}

#[test]
fn matching_is_idempotent_and_order_independent() {
    let mut a = Device::new(10, 0);
    let mut b = Device::new(11, 0);
    meet(&mut a, &mut b, 300, 25, 30, 0);
    // Pad B's log so the report spans two chunks.
    let mut extra = ChaCha20Rng::seed_from_u64(12);
    b.finish();
    for _ in 0..2100 {
        let mut t = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut extra, &mut t);
        b.log.push(Encounter {
            tokens: vec![EncounterToken(t)],
            ..Encounter::default()
        });
    }
    a.finish();
    let mut dep = Deployment::new();
    let t_report = BOUNDARY + 7200;
    let chunks = dep.report(&b, t_report, 1);
    assert_eq!(chunks.len(), 2);
    let index = a.index();
    let risk = RiskConfig::default();
    let lookup = |r: EncounterRef| a.log.get(r as usize).cloned();
    let run = |order: &[usize]| {
        let mut ledger = ExposureLedger::new();
        let mut outcomes = Vec::new();
        for &i in order {
            let v = dep.verify(&chunks[i].bytes, UnixTime(t_report));
            outcomes.push(ledger.ingest(&v, &index, lookup, &risk));
        }
        outcomes
    };
    let forward = run(&[0, 1, 0, 1]);
    assert_eq!(forward[2], MatchOutcome::Duplicate);
    assert_eq!(forward[3], MatchOutcome::Duplicate);
    let backward = run(&[1, 0]);
    let final_of = |o: &[MatchOutcome]| -> Exposure {
        let mut last = None;
        for x in o {
            if let MatchOutcome::Exposure(e) = x {
                last = Some(e.clone());
            }
        }
        last.unwrap()
    };
    assert_eq!(final_of(&forward), final_of(&backward));
    assert!(final_of(&forward).high_risk);
}

#[test]
fn equivocating_chunks_are_ignored() {
    let mut a = Device::new(13, 0);
    let mut b = Device::new(14, 0);
    meet(&mut a, &mut b, 0, 20, 60, 0);
    a.finish();
    b.finish();
    let mut dep = Deployment::new();
    let now = b.local(BOUNDARY + 3600);
    let report = ReportSecretKey::generate(&mut dep.rng);
    let cert = Certificate::issue(
        &dep.issuer,
        CertificateParams {
            network_id: "town".into(),
            report_key: report.public(),
            valid_from: now,
            valid_until: now.plus(86_400),
            window_first_day: now.day().minus(1),
            window_last_day: now.day(),
            max_tokens: 4096,
        },
    )
    .unwrap();
    // The holder of the report key signs two different versions of chunk 0:
    // B's real report, and one with only a single token of it.
    let honest =
        build_announcements(&report, &cert, &b.all_tokens(), 0, now, &mut dep.rng).unwrap();
    let other =
        build_announcements(&report, &cert, &b.all_tokens()[..1], 0, now, &mut dep.rng).unwrap();
    let v_honest = dep.verify(&honest[0].bytes, now);
    let v_other = dep.verify(&other[0].bytes, now);
    assert_ne!(v_honest.id(), v_other.id());
    let idx = a.index();
    let risk = RiskConfig::default();
    let lookup = |r: EncounterRef| a.log.get(r as usize).cloned();
    let mut ledger = ExposureLedger::new();
    let MatchOutcome::Exposure(first) = ledger.ingest(&v_honest, &idx, lookup, &risk) else {
        panic!("the honest chunk matches");
    };
    assert_eq!(
        ledger.ingest(&v_other, &idx, lookup, &risk),
        MatchOutcome::Conflict
    );
    // The cap cannot be stretched by signing more chunks under one certificate:
    // the second chunk 0 changed nothing.
    assert_eq!(
        ledger.ingest(&v_honest, &idx, lookup, &risk),
        MatchOutcome::Duplicate
    );
    assert!(first.high_risk);
}
