//! Scan-aware crediting and the calibrated estimator, as properties:
//! credited time does not depend on the scan rate, rotations cost nothing,
//! and no sequence of windows and sightings panics the tracker or the
//! scorer.

use meshtrace_protocol::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// An epoch start.
const T0: u64 = 2_000_000 * EPOCH_SECONDS;
/// Length of a scan window (s), as the simulator and Exposure Notification.
const WINDOW: u64 = 4;

/// A receiver's own keys for the epochs around `T0`, put in place around
/// each sighting as a rotating phone would have them.
struct Receiver {
    secrets: Vec<(Epoch, [u8; 32])>,
    keys: KeySchedule,
}

impl Receiver {
    fn new(rng: &mut ChaCha20Rng) -> Receiver {
        let e0 = UnixTime(T0).epoch().0;
        let secrets = (e0 - 2..e0 + 12)
            .map(|e| (Epoch(e), *EpochKey::generate(Epoch(e), rng).secret_bytes()))
            .collect();
        Receiver {
            secrets,
            keys: KeySchedule::new(),
        }
    }

    fn keys_at(&mut self, at: UnixTime) -> &KeySchedule {
        let lo = at.minus(SIGHTING_KEY_WINDOW_SECONDS).epoch();
        let hi = at.plus(SIGHTING_KEY_WINDOW_SECONDS).epoch();
        let needed = self.secrets.iter().filter(|(e, _)| *e >= lo && *e <= hi);
        if needed.clone().any(|(e, _)| self.keys.get(*e).is_none()) {
            // Keys are kept for a few epochs only: start afresh (the runs
            // go back in time between scan intervals).
            self.keys = KeySchedule::new();
            for (e, s) in needed {
                self.keys
                    .insert(EpochKey::from_secret_bytes(*e, Zeroizing::new(*s)));
            }
        }
        &self.keys
    }
}

/// The sender's rotating ID for each epoch around `T0`.
fn sender(rng: &mut ChaCha20Rng) -> Vec<RotatingId> {
    (0..14)
        .map(|_| EpochKey::generate(Epoch(0), rng).public())
        .collect()
}

/// A receiver scanning `WINDOW` s every `interval` s from well before the
/// contact; the sender, at a constant level `att` (the attenuation of a
/// sender at 0 dBm), is in range from
/// `start` for `duration` s and is heard once in every window that opens
/// while it is there. `id_of(t)` is the ID on air at `t`. Returns the closed
/// encounters.
fn run_contact(
    interval: u64,
    start: u64,
    duration: u64,
    att: u8,
    id_of: &dyn Fn(u64) -> RotatingId,
    rx: &mut Receiver,
) -> Vec<Encounter> {
    let mut tr = EncounterTracker::new(0);
    let mut w = T0 - 10 * interval;
    while w < start + duration + 2 * interval {
        tr.handle_scan(ScanWindow {
            start: UnixTime(w),
            end: UnixTime(w + WINDOW),
        });
        if w >= start && w < start + duration {
            let at = UnixTime(w + 1);
            tr.handle_sighting(
                rx.keys_at(at),
                Sighting {
                    id: id_of(w),
                    rssi: -i16::from(att),
                    at,
                },
            )
            .unwrap();
        }
        w += interval;
    }
    tr.close_all()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Credited time of a constant-distance contact is within one scan
    /// interval of the true time, at 10, 60, 150 and 240 s intervals, across
    /// rotations (bound: the phase of the window grid against the contact's
    /// start and end can gain or lose at most one interval).
    #[test]
    fn credited_time_does_not_depend_on_the_scan_rate(
        seed in any::<u64>(),
        phase in 0u64..900,
        minutes in 5u64..90,
        att in 40u8..80,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut rx = Receiver::new(&mut rng);
        let ids = sender(&mut rng);
        let start = T0 + phase;
        let duration = minutes * 60;
        let id_of = |t: u64| ids[((t - T0) / EPOCH_SECONDS) as usize + 1];
        for interval in [10u64, 60, 150, 240] {
            let encs = run_contact(interval, start, duration, att, &id_of, &mut rx);
            let credited: u64 = encs.iter().map(Encounter::exposure_seconds).sum();
            prop_assert!(
                credited.abs_diff(duration) <= interval,
                "interval {interval}: credited {credited} for {duration}"
            );
            prop_assert!(encs.iter().all(|e| e.profile.iter().all(|&(a, _)| a == att)));
        }
    }

    /// A contact crossing 1, 2 or 3 rotations of the sender's ID scores as
    /// the same contact under one ID: exactly under `cwa` (crediting is per
    /// window and the scorer joins the encounters into one contact); under
    /// the calibrated model the same heard minutes and contacts, and the
    /// same estimate wherever the decision does not depend on how many
    /// receptions a part has.
    #[test]
    fn rotations_cost_nothing(
        seed in any::<u64>(),
        interval in prop_oneof![Just(10u64), Just(60), Just(150), Just(240)],
        minutes in 10u64..29,
        att in 40u8..75,
        rotations in 1usize..=3,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut rx = Receiver::new(&mut rng);
        let ids = sender(&mut rng);
        let duration = minutes * 60;
        // Rotation points spread over the contact.
        let start = T0 + 100;
        let cuts: Vec<u64> = (1..=rotations as u64)
            .map(|i| start + i * duration / (rotations as u64 + 1))
            .collect();
        let rotating = |t: u64| ids[cuts.iter().filter(|&&c| t >= c).count()];
        let fixed = |_t: u64| ids[0];
        let a = run_contact(interval, start, duration, att, &rotating, &mut rx);
        let b = run_contact(interval, start, duration, att, &fixed, &mut rx);
        // One encounter per ID heard (two cuts between the same two windows
        // leave one ID unheard).
        let heard: std::collections::BTreeSet<usize> = (0..)
            .map(|k| T0 - 10 * interval + k * interval)
            .take_while(|&w| w < start + duration)
            .filter(|&w| w >= start)
            .map(|w| cuts.iter().filter(|&&c| w >= c).count())
            .collect();
        prop_assert!(heard.len() > 1 || interval == 240);
        prop_assert_eq!((a.len(), b.len()), (heard.len(), 1), "the rotations split the contact");
        let cwa = RiskConfig::builder().model(RiskModel::Cwa).build().unwrap();
        prop_assert_eq!(cwa.score(&a, 0), cwa.score(&b, 0));
        // The calibrated model judges each encounter with its own receptions
        // (§7.3): the split parts have fewer, so their confidence differs a
        // little. The heard minutes, the contacts and, wherever the decision
        // at this level does not depend on the number of receptions, the
        // estimate and the warning are the same.
        let cal = RiskConfig::default();
        let (sa, sb) = (cal.score(&a, 0), cal.score(&b, 0));
        prop_assert_eq!(sa.len(), sb.len());
        let p = cal.calibrated();
        let level = f64::from(att);
        let robust = (p.confidence(level, 1) >= p.min_confidence)
            == (p.confidence(level, u32::MAX) >= p.min_confidence);
        for (x, y) in sa.iter().zip(&sb) {
            prop_assert_eq!((x.day, x.contacts), (y.day, y.contacts));
            prop_assert!((x.close_minutes - y.close_minutes).abs() < 1e-9);
            prop_assert!((x.weighted_minutes - y.weighted_minutes).abs() <= 0.1 * y.close_minutes);
            if robust {
                prop_assert!((x.estimated_minutes - y.estimated_minutes).abs() < 1e-9);
                prop_assert_eq!(x.high_risk, y.high_risk);
            }
        }
        let sum = |v: &[Encounter]| v.iter().map(Encounter::exposure_seconds).sum::<u64>();
        prop_assert_eq!(sum(&a), sum(&b));
    }

    /// No sequence of windows and sightings (any order, overlapping, time
    /// going backwards) panics the tracker; what it returns is consistent.
    #[test]
    fn no_sequence_of_windows_and_sightings_panics(
        seed in any::<u64>(),
        events in proptest::collection::vec(
            (0u8..4, 0u64..2400, 0u64..400, 0usize..4, any::<i16>()), 0..200),
        tx_power in any::<i8>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut rx = Receiver::new(&mut rng);
        let ids = sender(&mut rng);
        let mut tr = EncounterTracker::new(3);
        let mut out: Vec<Encounter> = Vec::new();
        for (kind, t, len, who, rssi) in events {
            let at = UnixTime(T0 - 600 + t);
            match kind {
                0 => tr.handle_scan(ScanWindow { start: at, end: UnixTime(at.0 + len).minus(200) }),
                1 | 2 => {
                    let _ = tr.handle_sighting(rx.keys_at(at), Sighting { id: ids[who], rssi, at });
                }
                _ => {
                    let _ = tr.open_snapshots();
                    out.extend(tr.poll_closed(at));
                }
            }
        }
        out.extend(tr.close_all());
        prop_assert_eq!(tr.open_count(), 0);
        for e in &out {
            prop_assert!(e.sightings >= 1);
            prop_assert!(!e.tokens.is_empty() && e.tokens.len() <= MAX_TOKENS_PER_ENCOUNTER);
            prop_assert!(e.first_seen <= e.last_seen);
            // Each sighting credits at most one window (or one gap).
            prop_assert!(e.exposure_seconds() <= u64::from(e.sightings) * MAX_SCAN_CREDIT_SECONDS);
            prop_assert!(e.profile.windows(2).all(|w| w[0].0 < w[1].0));
        }
        // The scorer takes whatever the tracker produced.
        for model in [RiskModel::Calibrated, RiskModel::Cwa] {
            let r = RiskConfig::builder().model(model).build().unwrap();
            for d in r.score(&out, tx_power) {
                prop_assert!(d.estimated_minutes >= 0.0 && d.estimated_minutes.is_finite());
            }
        }
    }

    /// The calibrated scorer on arbitrary encounters: confidences are
    /// probabilities, an estimate never exceeds the heard minutes, and the
    /// result does not depend on the order of the encounters.
    #[test]
    fn calibrated_scores_are_bounded_and_order_free(
        encs in proptest::collection::vec(
            (0u64..200_000, proptest::collection::vec((any::<u8>(), 0u32..4000), 0..6), 0u32..500), 0..12),
        tx_power in any::<i8>(),
    ) {
        let encounters: Vec<Encounter> = encs
            .iter()
            .enumerate()
            .map(|(i, (start, profile, sightings))| {
                let mut p: Vec<(u8, u32)> = profile.clone();
                p.sort();
                p.dedup_by_key(|x| x.0);
                let secs: u64 = p.iter().map(|x| u64::from(x.1)).sum();
                Encounter {
                    tokens: vec![EncounterToken([i as u8; 16])],
                    first_seen: UnixTime(T0 + start),
                    last_seen: UnixTime(T0 + start + secs),
                    profile: p,
                    sightings: *sightings,
                }
            })
            .collect();
        let r = RiskConfig::default();
        for c in r.contacts(&encounters, tx_power) {
            prop_assert!((0.0..=1.0).contains(&c.confidence));
            prop_assert!(c.estimated_minutes <= c.heard_minutes + 1e-9);
        }
        let days = r.score(&encounters, tx_power);
        for d in &days {
            prop_assert!(d.estimated_minutes <= d.close_minutes + 1e-9);
            prop_assert!(d.weighted_minutes <= d.close_minutes + 1e-9);
            prop_assert_eq!(d.high_risk, d.estimated_minutes >= r.high_risk_weighted_minutes());
        }
        let mut rev = encounters.clone();
        rev.reverse();
        prop_assert_eq!(&r.score(&rev, tx_power), &days);
        // More evidence never lowers an estimate: the encounters matched so
        // far (a report's first chunks) never give a day more estimated
        // minutes, or a warning, than all of them.
        for k in 0..encounters.len() {
            let part = r.score(&encounters[..k], tx_power);
            for d in &part {
                let all = days.iter().find(|a| a.day == d.day);
                prop_assert!(all.is_some());
                let all = all.unwrap();
                prop_assert!(d.estimated_minutes <= all.estimated_minutes + 1e-9);
                prop_assert!(d.weighted_minutes <= all.weighted_minutes + 1e-9);
                prop_assert!(!d.high_risk || all.high_risk);
            }
        }
    }
}

/// The confidence falls with attenuation and rises toward 1 for very close
/// contacts; more receptions make it sharper.
#[test]
fn confidence_is_monotone_and_sharpens_with_receptions() {
    let p = CalibratedParams::default();
    let c: Vec<f64> = (30..100).map(|a| p.confidence(f64::from(a), 30)).collect();
    assert!(c.windows(2).all(|w| w[0] >= w[1]));
    assert!(c[0] > 0.95 && *c.last().unwrap() < 0.01);
    let at_close = p.close_level_db();
    assert!((p.confidence(at_close, 1000) - 0.5).abs() < 1e-6);
    assert!(p.confidence(at_close - 5.0, 100) > p.confidence(at_close - 5.0, 1));
    assert!(p.confidence(at_close + 5.0, 100) < p.confidence(at_close + 5.0, 1));
}

/// Out-of-range parameters are refused with the parameter named.
#[test]
fn invalid_calibrated_parameters_are_refused() {
    let with = |f: &dyn Fn(&mut CalibratedParams)| {
        let mut p = CalibratedParams::default();
        f(&mut p);
        RiskConfig::builder().calibrated(p).build()
    };
    assert!(with(&|_| {}).is_ok());
    for (bad, word) in [
        (with(&|p| p.path_loss_exponent = f64::NAN), "exponent"),
        (with(&|p| p.contact_sigma_db = 0.0), "contact sigma"),
        (with(&|p| p.reception_sigma_db = -1.0), "reception sigma"),
        (with(&|p| p.min_confidence = 1.0), "confidence"),
        (with(&|p| p.close_distance_m = 0.0), "distance"),
        (with(&|p| p.body_loss_db = 99.0), "body loss"),
        (with(&|p| p.attenuation_at_1m_db = f64::INFINITY), "1 m"),
    ] {
        let e = bad.unwrap_err().to_string();
        assert!(e.contains(word), "{e}");
    }
    assert_eq!(
        RiskConfig::builder().session_gap_seconds(3601).build(),
        Err(RiskConfigError::SessionGap)
    );
    assert_eq!(
        RiskConfig::builder()
            .model(RiskModel::Cwa)
            .build()
            .unwrap()
            .session_gap_seconds(),
        DEFAULT_SESSION_GAP_SECONDS
    );
    assert_eq!(
        RiskConfig::default().session_gap_seconds(),
        DEFAULT_CALIBRATED_SESSION_GAP_SECONDS
    );
}
