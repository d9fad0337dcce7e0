//! The app: every adopting person's phone runs the real protocol code —
//! rotating keys ([`KeySchedule`]), sightings to encounters
//! ([`EncounterTracker`], which derives the X25519 tokens), the report flow
//! (request, [`Certificate`], [`build_announcements`]), verification
//! ([`VerifiedAnnouncement::verify`]) and matching ([`TokenIndex`],
//! [`ExposureLedger`], [`RiskConfig`]).
//!
//! The radio and the mesh are modelled. Work is done where it can matter:
//! when a person reports, their phone's log and the log of every phone that
//! heard them are rebuilt from that contact history (receptions are drawn
//! from streams keyed by receiver, sender and day, so a pair's receptions
//! are the same whichever report rebuilds them). An alert only ever comes
//! from tokens shared with the reporter, so phones that never heard a
//! reporter cannot be alerted, and skipping their logs changes no result.

use std::collections::{BTreeMap, BTreeSet};

use meshtrace_node::radio::model::{CarryPosition, DutyCycle, SIM_TX_POWER_DBM};
use meshtrace_protocol::{
    Certificate, CertificateParams, Day, DayRisk, EncodedAnnouncement, Encounter, EncounterTracker,
    Epoch, EpochKey, IssuerPublicKey, IssuerSecretKey, KeySchedule, MatchOutcome, ReportRequest,
    ReportSecretKey, RiskConfig, RiskModel, RotatingId, SIGHTING_KEY_WINDOW_SECONDS, ScanWindow,
    Sighting, TokenIndex, UnixTime, VerifiedAnnouncement, VerifyContext, build_announcements,
};
use rand_chacha::ChaCha20Rng;

use super::contacts::Segment;
use super::params::{CURVE_MIN_CONFIDENCES, CURVE_THRESHOLDS_MINUTES, GossipParams, RadioParams};
use super::rng::{Purpose, chance, lognormal, normal, range, stream, unif};
use super::town::Presence;

/// Network id of the simulated deployment.
pub(crate) const NETWORK_ID: &str = "simtown";
/// Token cap an issuer grants (the `meshtrace issuer certify` default: 8 full
/// chunks).
pub(crate) const CERT_MAX_TOKENS: u32 = 16_384;
/// Encounters shorter than this are not announced (the node's default).
pub(crate) const MIN_REPORT_ENCOUNTER_SECONDS: u64 = 60;
/// Validity of a certificate (the issuer command's default, 3 days).
const CERT_VALID_SECONDS: u64 = 3 * 86_400;

/// Protocol day of simulation day 0 (minute 0 is 2026-03-02 00:00 UTC, a
/// Monday).
pub(crate) const START_DAY: u32 = 20_514;
const START_MS: i64 = START_DAY as i64 * 86_400_000;

/// Unix time of a simulation millisecond.
pub(crate) fn unix(ms: i64) -> UnixTime {
    UnixTime(((START_MS + ms) / 1000) as u64)
}

/// Protocol day of a simulation day.
pub(crate) fn proto_day(day: i32) -> Day {
    Day((START_DAY as i32 + day).max(0) as u32)
}

/// A phone's fixed properties.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Device {
    pub(crate) tx_off: f64,
    pub(crate) rx_off: f64,
    pub(crate) scan_phase: i64,
    pub(crate) adv_phase: i64,
    pub(crate) full_node: bool,
}

impl Device {
    pub(crate) fn draw(
        seed: u64,
        agent: u32,
        radio: &RadioParams,
        gossip: &GossipParams,
    ) -> Device {
        let mut rng = stream(seed, Purpose::Device, u64::from(agent), 0);
        Device {
            tx_off: radio.device_sigma_db * normal(&mut rng),
            rx_off: radio.device_sigma_db * normal(&mut rng),
            scan_phase: (unif(&mut rng) * radio.duty.scan_interval_ms as f64) as i64,
            adv_phase: (unif(&mut rng) * radio.duty.advertising_interval_ms as f64) as i64,
            full_node: chance(&mut rng, gossip.full_node_share),
        }
    }
}

/// The key a phone broadcasts in `epoch`: drawn from its own stream so the
/// same key is found whichever rebuild needs it.
fn epoch_key(seed: u64, agent: u32, epoch: u32) -> EpochKey {
    let mut rng = stream(seed, Purpose::Keys, u64::from(agent), u64::from(epoch));
    EpochKey::generate(Epoch(epoch), &mut rng)
}

/// Broadcast IDs, cached.
#[derive(Default)]
pub(crate) struct Ids(BTreeMap<(u32, u32), RotatingId>);

impl Ids {
    pub(crate) fn get(&mut self, seed: u64, agent: u32, at: UnixTime) -> RotatingId {
        let e = at.epoch().0;
        *self
            .0
            .entry((agent, e))
            .or_insert_with(|| epoch_key(seed, agent, e).public())
    }
}

/// A phone's scanner: it listens `window` ms from `phase + k · interval`
/// for every integer `k` (simulation milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scanner {
    phase: i64,
    interval: i64,
    window: i64,
}

impl Scanner {
    pub(crate) fn new(dev: &Device, duty: &DutyCycle) -> Scanner {
        Scanner {
            phase: dev.scan_phase,
            interval: duty.scan_interval_ms.max(1) as i64,
            window: duty.scan_window_ms as i64,
        }
    }

    /// The window that starts at or before `ms` (the one that heard a
    /// reception at `ms`).
    pub(crate) fn index(&self, ms: i64) -> i64 {
        (ms - self.phase).div_euclid(self.interval)
    }

    /// Window `k` as the radio reports it when it starts listening: its
    /// start and planned end, in whole seconds.
    pub(crate) fn window(&self, k: i64) -> ScanWindow {
        let start = self.phase + k * self.interval;
        ScanWindow {
            start: unix(start),
            end: unix(start + self.window),
        }
    }
}

/// One phone's protocol state: its key schedule, encounter tracker and
/// scanner.
pub(crate) struct Phone {
    agent: u32,
    keys: KeySchedule,
    tracker: EncounterTracker,
    rng: ChaCha20Rng,
    scanner: Scanner,
    /// Report scan windows to the tracker (off: first-to-last crediting).
    report_windows: bool,
    /// The last scan window reported to the tracker.
    last_window: Option<i64>,
    /// Scan windows reported.
    pub(crate) windows: u64,
    pub(crate) refused: u64,
}

impl Phone {
    pub(crate) fn new(seed: u64, agent: u32, scanner: Option<Scanner>) -> Phone {
        Phone {
            agent,
            keys: KeySchedule::new(),
            tracker: EncounterTracker::new(0),
            rng: stream(seed, Purpose::Keys, u64::from(agent), u64::MAX),
            scanner: scanner.unwrap_or(Scanner {
                phase: 0,
                interval: 1,
                window: 0,
            }),
            report_windows: scanner.is_some(),
            last_window: None,
            windows: 0,
            refused: 0,
        }
    }

    /// Reports the scan window that heard a reception at `ms`, after the
    /// window before it (docs/protocol.md §6: a reception's credit depends
    /// only on its own window and the one reported immediately before, so a
    /// caller that knows the schedule may skip the windows in which nothing
    /// of interest was heard). Receptions come in time order; a window is
    /// reported once.
    fn scan_up_to(&mut self, ms: i64) {
        if !self.report_windows {
            return;
        }
        let k = self.scanner.index(ms);
        let from = match self.last_window {
            Some(last) if last >= k => return,
            Some(last) if last == k - 1 => k,
            _ => k - 1,
        };
        for w in from..=k {
            self.tracker.handle_scan(self.scanner.window(w));
            self.windows += 1;
        }
        self.last_window = Some(k);
    }

    /// Hears `id` at simulation millisecond `ms`: the scan window is
    /// reported, the keys around it are in place (as on a phone that rotates
    /// every epoch), then the tracker takes the sighting.
    pub(crate) fn hear(&mut self, seed: u64, ms: i64, id: RotatingId, rssi: i16) {
        self.scan_up_to(ms);
        let at = unix(ms);
        let lo = at.minus(SIGHTING_KEY_WINDOW_SECONDS).epoch().0;
        let hi = at.plus(SIGHTING_KEY_WINDOW_SECONDS).epoch().0;
        for e in lo..=hi {
            if self.keys.get(Epoch(e)).is_none() {
                self.keys.insert(epoch_key(seed, self.agent, e));
            }
        }
        // Every key rotate would draw is in place: it only erases expired ones.
        self.keys.rotate(at, &mut self.rng);
        let s = Sighting { id, rssi, at };
        if self.tracker.handle_sighting(&self.keys, s).is_err() {
            self.refused += 1;
        }
    }

    /// Every encounter, closing the open ones.
    pub(crate) fn finish(&mut self) -> Vec<Encounter> {
        self.tracker.close_all()
    }
}

/// What one segment of a pair shares across its receptions, in both
/// directions (the channel is reciprocal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Link {
    /// Slow shadowing: a standard normal draw, scaled by the model's
    /// `shadowing_sigma_db` (orientation, surroundings, multipath).
    pub(crate) slow: f64,
    /// Carry loss at both ends (dB).
    pub(crate) carry_db: f64,
}

/// Receptions by `rx` of `tx`'s advertisements during `segs` (with their
/// links), up to `cut_ms`: at most one per scan window (the first
/// advertisement received, each with its own Rayleigh fade), as
/// `(ms, rssi)`.
pub(crate) fn receptions(
    radio: &RadioParams,
    rx: &Device,
    tx: &Device,
    segs: &[(Segment, Link)],
    rng: &mut ChaCha20Rng,
    cut_ms: i64,
    out: &mut Vec<(i64, i16)>,
) {
    let duty = &radio.duty;
    let interval = duty.scan_interval_ms as i64;
    let window = duty.scan_window_ms as i64;
    let adv = duty.advertising_interval_ms as i64;
    for (seg, link) in segs {
        let s = i64::from(seg.start) * 60_000;
        let e = (i64::from(seg.end) * 60_000).min(cut_ms);
        if e <= s {
            continue;
        }
        let offsets = tx.tx_off + rx.rx_off - f64::from(seg.wall_db) - link.carry_db;
        let mut k = (s - rx.scan_phase - window).div_euclid(interval) + 1;
        loop {
            let w0 = rx.scan_phase + k * interval;
            if w0 >= e {
                break;
            }
            k += 1;
            let (lo, hi) = (w0.max(s), (w0 + window).min(e));
            let mut m = (lo - tx.adv_phase + adv - 1).div_euclid(adv);
            loop {
                let t = tx.adv_phase + m * adv;
                if t >= hi {
                    break;
                }
                m += 1;
                if !duty.listening((t - rx.scan_phase).rem_euclid(interval) as u64) {
                    continue;
                }
                let fade = unif(rng);
                let u = unif(rng);
                if let Some(rssi) = radio.model.receive_faded(
                    f64::from(seg.dist),
                    f64::from(SIM_TX_POWER_DBM),
                    offsets,
                    link.slow,
                    fade,
                    u,
                ) {
                    out.push((t, rssi));
                    break;
                }
            }
        }
    }
}

/// Where `agent` carries its phone in `room` on `day` (a loss in dB): one
/// of the fitted carry positions, equally likely, drawn once per person,
/// room and day (a phone stays in one pocket or bag for a stay).
pub(crate) fn carry_loss_db(seed: u64, agent: u32, day: u32, room: u32) -> f64 {
    let mut rng = stream(
        seed,
        Purpose::Carry,
        u64::from(agent),
        (u64::from(day) << 32) | u64::from(room),
    );
    CarryPosition::draw(unif(&mut rng)).loss_db()
}

/// A pair's segments of one day, sorted, with their links: the slow
/// shadowing of each segment and the carry loss of both phones (shared by
/// both directions: the channel is reciprocal).
pub(crate) fn with_links(
    seed: u64,
    radio: &RadioParams,
    day: u32,
    mut segs: Vec<Segment>,
) -> Vec<(Segment, Link)> {
    segs.sort_by_key(|x| (x.start, x.end));
    let Some(first) = segs.first() else {
        return Vec::new();
    };
    let mut rng = stream(seed, Purpose::Shadow, first.pair_key(), u64::from(day));
    segs.into_iter()
        .map(|s| {
            let carry_db = if radio.carry_positions {
                carry_loss_db(seed, s.a, day, s.room) + carry_loss_db(seed, s.b, day, s.room)
            } else {
                0.0
            };
            let slow = normal(&mut rng);
            (s, Link { slow, carry_db })
        })
        .collect()
}

/// The receptions stream of `rx` hearing `tx` on `day`.
pub(crate) fn sight_stream(seed: u64, rx: u32, tx: u32, day: u32) -> ChaCha20Rng {
    stream(
        seed,
        Purpose::Sight,
        u64::from(rx),
        (u64::from(tx) << 32) | u64::from(day),
    )
}

/// When a node is back online after an offline spell covering `ms`, if any.
fn offline_until(seed: u64, g: &GossipParams, agent: u32, ms: i64) -> Option<i64> {
    let day = ms.div_euclid(86_400_000);
    for d in [day - 1, day] {
        let mut rng = stream(seed, Purpose::Online, u64::from(agent), d as u64);
        if chance(&mut rng, g.offline_daily) {
            let start = d * 86_400_000 + (unif(&mut rng) * 86_400_000.0) as i64;
            let len = (range(&mut rng, g.offline_hours.0, g.offline_hours.1) * 3_600_000.0) as i64;
            if ms >= start && ms < start + len {
                return Some(start + len);
            }
        }
    }
    None
}

/// When `agent`'s node receives a chunk published at `pub_ms`.
fn delivery(
    seed: u64,
    g: &GossipParams,
    dev: &Device,
    agent: u32,
    pub_ms: i64,
    rng: &mut ChaCha20Rng,
) -> i64 {
    let sync_ms = g.sync_interval_s * 1000.0;
    // The announcement reaches the gossip mesh after the stem hops.
    let in_mesh = pub_ms
        + (lognormal(rng, g.gossip_latency_median_s, g.gossip_latency_sigma) * 1000.0) as i64;
    let online_at = offline_until(seed, g, agent, in_mesh);
    let lost = chance(rng, g.gossip_loss);
    let pull = (unif(rng) * sync_ms) as i64;
    match online_at {
        // Catch-up on reconnection (first sync within 30 s).
        Some(back) => back + pull / 10,
        None if dev.full_node && !lost => in_mesh,
        None => in_mesh + pull,
    }
}

/// A report to rebuild.
#[derive(Clone, Debug)]
pub(crate) struct ReportJob {
    pub(crate) seq: u64,
    pub(crate) agent: u32,
    /// Positive result (ms).
    pub(crate) result_ms: i64,
    /// Report submitted (ms).
    pub(crate) report_ms: i64,
    pub(crate) window_first_day: i32,
    pub(crate) report_day: i32,
}

/// The one-way replay attacker: sniffers in `record_rooms` (sorted), one
/// transmitter in `replay_room`.
#[derive(Clone, Debug)]
pub(crate) struct Relay {
    pub(crate) record_rooms: Vec<u32>,
    pub(crate) replay_room: u32,
    pub(crate) delay_minutes: i32,
}

/// A day's contact history (what the rebuilds read).
pub(crate) struct DayLog {
    pub(crate) day: u32,
    pub(crate) presences: Vec<Presence>,
    /// Segments between two adopters.
    pub(crate) app_segs: Vec<Segment>,
    /// For each agent, indices into `app_segs`.
    pub(crate) by_agent: Vec<Vec<u32>>,
    /// For each agent, the (other adopter, epoch) pairs in range: what its
    /// phone heard.
    pub(crate) heard: Vec<u32>,
}

impl DayLog {
    pub(crate) fn partners(&self, agent: u32) -> BTreeMap<u32, Vec<Segment>> {
        let mut m: BTreeMap<u32, Vec<Segment>> = BTreeMap::new();
        if let Some(ix) = self.by_agent.get(agent as usize) {
            for &i in ix {
                let s = self.app_segs[i as usize];
                m.entry(s.other(agent)).or_default().push(s);
            }
        }
        m
    }
}

/// What the rebuilds share.
pub(crate) struct Ctx<'a> {
    pub(crate) seed: u64,
    pub(crate) radio: &'a RadioParams,
    pub(crate) gossip: &'a GossipParams,
    pub(crate) risk: &'a RiskConfig,
    pub(crate) baseline: &'a RiskConfig,
    pub(crate) devices: &'a [Device],
    pub(crate) adopters: &'a [bool],
    pub(crate) logs: &'a [DayLog],
    pub(crate) issuer: &'a IssuerSecretKey,
    pub(crate) relay: Option<&'a Relay>,
}

/// An alert (or a low-risk exposure) on one phone.
#[derive(Clone, Debug)]
pub(crate) struct Alert {
    pub(crate) agent: u32,
    pub(crate) at_ms: i64,
    pub(crate) high_risk: bool,
    /// The phone heard the reporter only through the replay attacker.
    pub(crate) replay_only: bool,
    /// The exposure under the run's risk model (`high_risk` is its warning).
    pub(crate) main: Scored,
    /// The same matched encounters under the baseline model.
    pub(crate) base: Scored,
    /// Exposure seconds the tracker credited to the matched encounters.
    pub(crate) credited_seconds: u64,
}

/// How one risk model scored a phone's exposure to one reporter, over the
/// arrivals of the report's chunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scored {
    /// High risk after some chunk (the phone warned).
    pub(crate) high_risk: bool,
    /// For each setting of the model's curve knob ([`curve_grid`]): would
    /// the phone have warned after some chunk.
    pub(crate) warn_at: Vec<bool>,
    /// Estimated minutes within 2 m per day after the last chunk (what the
    /// person is told).
    pub(crate) estimated: Vec<(Day, f64)>,
}

impl Scored {
    /// Takes the exposure after one more chunk: `days` scored by `risk` on
    /// the `matched` encounters, at the report's TX power `tx_power`.
    fn add(
        &mut self,
        risk: &RiskConfig,
        grid: &[f64],
        days: &[DayRisk],
        matched: &[Encounter],
        tx_power: i8,
    ) {
        self.high_risk |= days.iter().any(|d| d.high_risk);
        let now = warns(risk, grid, days, matched, tx_power);
        if self.warn_at.len() != now.len() {
            self.warn_at = vec![false; now.len()];
        }
        for (w, n) in self.warn_at.iter_mut().zip(now) {
            *w |= n;
        }
        self.estimated = days.iter().map(|d| (d.day, d.estimated_minutes)).collect();
    }

    /// Estimated minutes on `day` (0 when the day has no counted contact).
    pub(crate) fn estimated_on(&self, day: Day) -> f64 {
        self.estimated
            .iter()
            .find(|d| d.0 == day)
            .map_or(0.0, |d| d.1)
    }
}

/// The knob that moves along a model's recall/precision curve, its values
/// (ascending: fewer warnings as it rises) and the index of the run's own
/// setting. Under the CWA rule the threshold on weighted minutes; under the
/// calibrated model the confidence at which a contact is judged within 2 m
/// (`min_confidence`), with the 15-minute threshold kept: that is the
/// estimator's own trade-off (docs/risk.md §5), where a threshold on the
/// estimated minutes would only move along contact durations.
pub(crate) fn curve_grid(risk: &RiskConfig) -> (&'static str, Vec<f64>, usize) {
    let (knob, grid, own): (&'static str, &[f64], f64) = match risk.model() {
        RiskModel::Cwa => (
            "threshold_minutes",
            &CURVE_THRESHOLDS_MINUTES,
            risk.high_risk_weighted_minutes(),
        ),
        RiskModel::Calibrated => (
            "min_confidence",
            &CURVE_MIN_CONFIDENCES,
            risk.calibrated().min_confidence,
        ),
    };
    let mut v = grid.to_vec();
    if !v.contains(&own) {
        v.push(own);
    }
    v.sort_by(f64::total_cmp);
    let at = v.iter().position(|&x| x == own).unwrap_or(0);
    (knob, v, at)
}

/// For each knob setting of `grid` ([`curve_grid`]), whether `days` (scored
/// by `risk` on `matched`, at the report's TX power `tx_power`) warn. The
/// run's own setting gives exactly the days' `high_risk`.
fn warns(
    risk: &RiskConfig,
    grid: &[f64],
    days: &[DayRisk],
    matched: &[Encounter],
    tx_power: i8,
) -> Vec<bool> {
    match risk.model() {
        RiskModel::Cwa => grid
            .iter()
            .map(|&t| days.iter().any(|d| d.weighted_minutes >= t))
            .collect(),
        RiskModel::Calibrated => {
            let threshold = risk.high_risk_weighted_minutes();
            // The model judges each encounter of a contact (§7.3).
            let contacts: Vec<(Day, f64, f64)> = risk
                .contacts(matched, tx_power)
                .into_iter()
                .flat_map(|c| {
                    c.parts
                        .into_iter()
                        .map(move |q| (c.day, q.confidence, q.heard_minutes))
                })
                .collect();
            grid.iter()
                .map(|&min| {
                    let mut per_day: BTreeMap<Day, f64> = BTreeMap::new();
                    for &(day, confidence, minutes) in &contacts {
                        if confidence >= min {
                            *per_day.entry(day).or_insert(0.0) += minutes;
                        }
                    }
                    per_day.values().any(|&m| m >= threshold)
                })
                .collect()
        }
    }
}

/// What one report did.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReportOutcome {
    pub(crate) chunk_bytes: Vec<usize>,
    pub(crate) real_tokens: usize,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) derivations: u64,
    pub(crate) receivers_with_tokens: u32,
    pub(crate) replay_victims: u32,
    pub(crate) replay_encounters: u64,
    pub(crate) refused_sightings: u64,
    /// Scan windows reported to the rebuilt phones' trackers.
    pub(crate) scan_windows: u64,
    pub(crate) verified: bool,
    /// The reporter's whole days: encounters, their record bytes, heard
    /// (phone, epoch) pairs.
    pub(crate) calib: (u64, u64, u64),
}

fn log_of(logs: &[DayLog], day: i32) -> Option<&DayLog> {
    logs.iter().find(|l| l.day as i32 == day)
}

/// What `rx` hears from `tx` on `day` over the pair's `segs` (up to
/// `cut_ms`), drawn from that direction's own stream, into `out`.
fn hears(
    ctx: &Ctx<'_>,
    (rx, tx): (u32, u32),
    day: u32,
    segs: &[(Segment, Link)],
    cut_ms: i64,
    out: &mut Vec<(i64, i16)>,
) {
    out.clear();
    let mut rng = sight_stream(ctx.seed, rx, tx, day);
    let (rx, tx) = (&ctx.devices[rx as usize], &ctx.devices[tx as usize]);
    receptions(ctx.radio, rx, tx, segs, &mut rng, cut_ms, out);
}

/// Rebuilds one report end to end with the real protocol code.
pub(crate) fn run_report(ctx: &Ctx<'_>, job: &ReportJob) -> ReportOutcome {
    let seed = ctx.seed;
    let p = job.agent;
    let from_ms = i64::from(job.window_first_day) * 86_400_000 - 3_600_000;
    let cut = job.report_ms;
    let mut ids = Ids::default();
    // (time, partner, rssi) heard by the reporter; per partner what it heard.
    let mut heard_by_p: Vec<(i64, u32, i16)> = Vec::new();
    let mut heard_from_p: BTreeMap<u32, Vec<(i64, i16, bool)>> = BTreeMap::new();
    let mut buf = Vec::new();
    for day in job.window_first_day - 1..=job.report_day {
        let Some(log) = log_of(ctx.logs, day) else {
            continue;
        };
        for (q, segs) in log.partners(p) {
            let segs = with_links(seed, ctx.radio, log.day, segs);
            hears(ctx, (p, q), log.day, &segs, cut, &mut buf);
            heard_by_p.extend(buf.iter().filter(|r| r.0 >= from_ms).map(|r| (r.0, q, r.1)));
            hears(ctx, (q, p), log.day, &segs, cut, &mut buf);
            heard_from_p.entry(q).or_default().extend(
                buf.iter()
                    .filter(|r| r.0 >= from_ms)
                    .map(|r| (r.0, r.1, false)),
            );
        }
        if let Some(relay) = ctx.relay {
            relayed(ctx, log, relay, job, from_ms, &mut heard_from_p);
        }
    }
    // The reporter's phone.
    heard_by_p.sort_unstable();
    // The scanner of a phone whose radio reports its windows.
    let scanner = |agent: u32| {
        ctx.radio
            .report_scan_windows
            .then(|| Scanner::new(&ctx.devices[agent as usize], &ctx.radio.duty))
    };
    let mut phone = Phone::new(seed, p, scanner(p));
    for &(t, q, rssi) in &heard_by_p {
        let id = ids.get(seed, q, unix(t));
        phone.hear(seed, t, id, rssi);
    }
    let mine = phone.finish();
    let mut out = ReportOutcome {
        refused_sightings: phone.refused,
        scan_windows: phone.windows,
        derivations: mine.iter().map(|e| e.tokens.len() as u64).sum(),
        ..ReportOutcome::default()
    };
    // Whole days (the report day is cut short) calibrate the store size.
    for day in job.window_first_day..job.report_day {
        if let Some(log) = log_of(ctx.logs, day) {
            let pd = proto_day(day);
            let encs = mine.iter().filter(|e| e.day() == pd);
            for e in encs {
                out.calib.0 += 1;
                out.calib.1 += encounter_record_bytes(e);
            }
            out.calib.2 += u64::from(log.heard[p as usize]);
        }
    }
    // The report flow: request → certificate → chunks.
    let report_at = unix(job.report_ms);
    let first = proto_day(job.window_first_day);
    let last = proto_day(job.report_day);
    let mut rng = stream(seed, Purpose::Report, u64::from(p), job.seq);
    let key = ReportSecretKey::generate(&mut rng);
    let request = ReportRequest {
        network_id: NETWORK_ID.into(),
        report_key: key.public(),
    };
    let Ok(request) = ReportRequest::from_code(&request.to_code()) else {
        return out;
    };
    let Ok(cert) = Certificate::issue(
        ctx.issuer,
        CertificateParams {
            network_id: request.network_id,
            report_key: request.report_key,
            valid_from: report_at.minus(600),
            valid_until: report_at.plus(CERT_VALID_SECONDS),
            window_first_day: first,
            window_last_day: last,
            max_tokens: CERT_MAX_TOKENS,
        },
    ) else {
        return out;
    };
    let Ok(cert) = Certificate::from_code(&cert.to_code()) else {
        return out;
    };
    // Every simulated phone transmits at SIM_TX_POWER_DBM (the physics
    // above) and reports that as its calibrated TX power.
    let tokens = report_tokens(&mine, first, last, SIM_TX_POWER_DBM);
    out.real_tokens = tokens.len();
    let Ok(chunks) =
        build_announcements(&key, &cert, &tokens, SIM_TX_POWER_DBM, report_at, &mut rng)
    else {
        return out;
    };
    out.chunk_bytes = chunks.iter().map(|c| c.bytes.len()).collect();
    // Every phone that heard the reporter: its tracker, index and ledger.
    let mut receivers = Vec::new();
    let mut earliest = i64::MAX;
    let mut latest = i64::MIN;
    for (q, mut heard) in heard_from_p {
        heard.sort_unstable();
        let mut phone = Phone::new(seed, q, scanner(q));
        for &(t, rssi, relayed) in &heard {
            // A relayed ID is the one broadcast when it was recorded.
            let id_at = if relayed {
                t - i64::from(ctx.relay.map_or(0, |r| r.delay_minutes)) * 60_000
            } else {
                t
            };
            let id = ids.get(seed, p, unix(id_at));
            phone.hear(seed, t, id, rssi);
        }
        out.refused_sightings += phone.refused;
        out.scan_windows += phone.windows;
        let encounters = phone.finish();
        out.derivations += encounters
            .iter()
            .map(|e| e.tokens.len() as u64)
            .sum::<u64>();
        let real = heard.iter().any(|h| !h.2);
        if !real && !encounters.is_empty() {
            out.replay_victims += 1;
            out.replay_encounters += encounters.len() as u64;
        }
        if encounters.is_empty() {
            continue;
        }
        let mut grng = stream(seed, Purpose::Gossip, job.seq, u64::from(q));
        let arrivals: Vec<i64> = chunks
            .iter()
            .map(|_| {
                delivery(
                    seed,
                    ctx.gossip,
                    &ctx.devices[q as usize],
                    q,
                    job.report_ms,
                    &mut grng,
                )
            })
            .collect();
        for &a in &arrivals {
            earliest = earliest.min(a);
            latest = latest.max(a);
        }
        receivers.push((q, encounters, arrivals, !real));
    }
    out.receivers_with_tokens = receivers.len() as u32;
    let grids = (curve_grid(ctx.risk).1, curve_grid(ctx.baseline).1);
    if receivers.is_empty() {
        earliest = job.report_ms + 1000;
        latest = earliest;
    }
    let trusted = [ctx.issuer.public()];
    let Some(verified) = verify_all(&chunks, &trusted, earliest, latest) else {
        return out;
    };
    out.verified = true;
    for (q, encounters, arrivals, replay_only) in receivers {
        let index = TokenIndex::build(
            encounters
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.tokens.iter().map(move |t| (*t, i as u64))),
        );
        let mut order: Vec<usize> = (0..chunks.len()).collect();
        order.sort_by_key(|&i| (arrivals[i], i));
        let mut ledger = meshtrace_protocol::ExposureLedger::new();
        let mut alert: Option<Alert> = None;
        let (mut main, mut base) = (Scored::default(), Scored::default());
        let mut credited_seconds = 0;
        for i in order {
            let outcome = ledger.ingest(
                &verified[i],
                &index,
                |r| encounters.get(r as usize).cloned(),
                ctx.risk,
            );
            if let MatchOutcome::Exposure(e) = outcome {
                // The other model on the same matched encounters.
                let matched: Vec<Encounter> = e
                    .encounters
                    .iter()
                    .filter_map(|&r| encounters.get(r as usize).cloned())
                    .collect();
                credited_seconds = matched.iter().map(Encounter::exposure_seconds).sum();
                let tx_power = verified[i].tx_power();
                main.add(ctx.risk, &grids.0, &e.days, &matched, tx_power);
                let days = ctx.baseline.score(&matched, tx_power);
                base.add(ctx.baseline, &grids.1, &days, &matched, tx_power);
                let a = Alert {
                    agent: q,
                    at_ms: arrivals[i],
                    high_risk: e.high_risk,
                    replay_only,
                    main: Scored::default(),
                    base: Scored::default(),
                    credited_seconds: 0,
                };
                match &alert {
                    None => alert = Some(a),
                    Some(prev) if !prev.high_risk && e.high_risk => alert = Some(a),
                    _ => {}
                }
            }
        }
        if let Some(mut a) = alert {
            a.main = main;
            a.base = base;
            a.credited_seconds = credited_seconds;
            out.alerts.push(a);
        }
    }
    out
}

/// Every chunk verifies at the first and at the last delivery time. Each
/// check of `verify` that depends on the receiver's clock (expiry, not from
/// the future) is monotone in it, so the chunk verifies at every delivery in
/// between: one real verification stands for all receivers.
fn verify_all(
    chunks: &[EncodedAnnouncement],
    trusted: &[IssuerPublicKey],
    earliest: i64,
    latest: i64,
) -> Option<Vec<VerifiedAnnouncement>> {
    let mut out = Vec::new();
    for c in chunks {
        let mut v = None;
        for t in [earliest, latest] {
            let ctx = VerifyContext {
                network_id: NETWORK_ID,
                trusted_issuers: trusted,
                now: unix(t),
            };
            v = Some(VerifiedAnnouncement::verify(&c.bytes, &ctx).ok()?);
        }
        out.push(v?);
    }
    Some(out)
}

/// The tokens a node announces: encounters in the certified window with at
/// least a minute of exposure, near enough for the reporter's TX power
/// `tx_power`, longest first, within the certificate's cap (the protocol's
/// selection, as `meshtrace_node`'s report).
fn report_tokens(
    encounters: &[Encounter],
    first: Day,
    last: Day,
    tx_power: i8,
) -> Vec<meshtrace_protocol::EncounterToken> {
    meshtrace_protocol::select_report_tokens(
        encounters,
        (first, last),
        MIN_REPORT_ENCOUNTER_SECONDS,
        CERT_MAX_TOKENS,
        tx_power,
    )
    .tokens
}

/// The attacker records the reporter's broadcasts in one room and plays them
/// back (same bytes, `delay` later) in another, close to whoever is there.
fn relayed(
    ctx: &Ctx<'_>,
    log: &DayLog,
    relay: &Relay,
    job: &ReportJob,
    from_ms: i64,
    heard_from_p: &mut BTreeMap<u32, Vec<(i64, i16, bool)>>,
) {
    let delay = relay.delay_minutes;
    // What the attacker recorded (any day), shifted to when it plays it.
    let recorded: Vec<(i32, i32)> = ctx
        .logs
        .iter()
        .flat_map(|l| l.presences.iter())
        .filter(|x| x.agent == job.agent && relay.record_rooms.binary_search(&x.room).is_ok())
        .map(|x| (x.start + delay, x.end + delay))
        .collect();
    if recorded.is_empty() {
        return;
    }
    let transmitter = Device {
        tx_off: 0.0,
        rx_off: 0.0,
        scan_phase: 0,
        adv_phase: 0,
        full_node: false,
    };
    let mut victims: BTreeSet<(u32, i32, i32)> = BTreeSet::new();
    for x in &log.presences {
        if x.room != relay.replay_room || x.agent == job.agent || !ctx.adopters[x.agent as usize] {
            continue;
        }
        for &(s, e) in &recorded {
            let (s, e) = (s.max(x.start), e.min(x.end));
            if s < e {
                victims.insert((x.agent, s, e));
            }
        }
    }
    let mut buf = Vec::new();
    for (q, s, e) in victims {
        let mut rng = stream(ctx.seed, Purpose::Attack, u64::from(q), s as u64);
        let seg = Segment {
            a: q,
            b: q,
            start: s,
            end: e,
            // The attacker's transmitter is close to its victims.
            dist: range(&mut rng, 0.5, 2.0) as f32,
            wall_db: 0.0,
            kind: super::town::RoomKind::Shop,
            room: relay.replay_room,
        };
        // The transmitter is in the open; the victim's phone is where it
        // is carried.
        let link = Link {
            slow: normal(&mut rng),
            carry_db: if ctx.radio.carry_positions {
                carry_loss_db(ctx.seed, q, log.day, relay.replay_room)
            } else {
                0.0
            },
        };
        buf.clear();
        receptions(
            ctx.radio,
            &ctx.devices[q as usize],
            &transmitter,
            &[(seg, link)],
            &mut rng,
            job.report_ms,
            &mut buf,
        );
        heard_from_p.entry(q).or_default().extend(
            buf.iter()
                .filter(|r| r.0 >= from_ms)
                .map(|r| (r.0, r.1, true)),
        );
    }
}

/// A node's stored bytes for one encounter record (docs/protocol.md §15.8
/// and §15.9): a 24-byte record key and the sealed protobuf
/// `EncounterRecord` (plaintext + 24-byte nonce + 16-byte tag).
pub(crate) fn encounter_record_bytes(e: &Encounter) -> u64 {
    fn varint(v: u64) -> u64 {
        u64::from((64 - v.max(1).leading_zeros()).div_ceil(7))
    }
    fn field_bytes(len: u64) -> u64 {
        if len == 0 { 0 } else { 1 + varint(len) + len }
    }
    let tokens = 16 * e.tokens.len() as u64;
    let profile = 5 * e.profile.len() as u64;
    let plain = 1
        + varint(e.first_seen.0)
        + 1
        + varint(e.last_seen.0)
        + field_bytes(tokens)
        + field_bytes(profile)
        + if e.sightings > 0 {
            1 + varint(u64::from(e.sightings))
        } else {
            0
        };
    24 + plain + 40
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{RadioParams, SCAN_WINDOW_MS};

    fn scanner(interval_s: u64, phase_ms: i64) -> Scanner {
        let duty = DutyCycle {
            scan_window_ms: SCAN_WINDOW_MS,
            scan_interval_ms: interval_s * 1000,
            advertising_interval_ms: 250,
        };
        let dev = Device {
            tx_off: 0.0,
            rx_off: 0.0,
            scan_phase: phase_ms,
            adv_phase: 0,
            full_node: false,
        };
        Scanner::new(&dev, &duty)
    }

    #[test]
    fn a_reception_falls_in_the_window_that_heard_it() {
        let s = scanner(60, 1_500);
        // Listening 1.5–5.5 s, 61.5–65.5 s, ...
        assert_eq!(s.index(1_500), 0);
        assert_eq!(s.index(5_499), 0);
        assert_eq!(s.index(61_500), 1);
        assert_eq!(s.index(1_499), -1);
        let w = s.window(1);
        assert_eq!(w.start, unix(61_500));
        assert_eq!(w.end, unix(65_500));
        // Every reception inside a window is within its reported bounds.
        for ms in [61_500, 63_000, 65_499] {
            let at = unix(ms);
            assert!(w.start <= at && at <= w.end, "{ms}");
        }
    }

    #[test]
    fn a_phone_reports_each_heard_window_once_after_the_one_before() {
        let mut phone = Phone::new(1, 0, Some(scanner(10, 0)));
        // Receptions in windows 5, 5 (again), 6, then 9: windows 4, 5, 6,
        // then 8 and 9.
        for ms in [50_500, 51_000, 60_100, 90_200] {
            phone.scan_up_to(ms);
        }
        assert_eq!(phone.windows, 5);
        assert_eq!(phone.last_window, Some(9));
        // Time going back reports nothing.
        phone.scan_up_to(10_000);
        assert_eq!(phone.windows, 5);
    }

    #[test]
    fn carry_positions_are_fixed_per_person_room_and_day_and_fitted() {
        let a = carry_loss_db(3, 7, 2, 11);
        assert_eq!(a, carry_loss_db(3, 7, 2, 11));
        let losses: Vec<f64> = CarryPosition::ALL.iter().map(|c| c.loss_db()).collect();
        let mut seen = [0u32; 4];
        for agent in 0..2_000 {
            let l = carry_loss_db(3, agent, 2, 11);
            let i = losses.iter().position(|&x| x == l).expect("a fitted loss");
            seen[i] += 1;
        }
        // Equally likely: each position within 400–600 of 2,000.
        assert!(seen.iter().all(|&n| (400..=600).contains(&n)), "{seen:?}");
        // Both ends of a link, shared by both directions.
        let seg = Segment {
            a: 7,
            b: 8,
            start: 600,
            end: 630,
            dist: 1.0,
            wall_db: 0.0,
            kind: crate::town::RoomKind::Work,
            room: 11,
        };
        let links = with_links(3, &RadioParams::default(), 2, vec![seg]);
        let both = carry_loss_db(3, 7, 2, 11) + carry_loss_db(3, 8, 2, 11);
        assert_eq!(links[0].1.carry_db, both);
        let off = RadioParams {
            carry_positions: false,
            ..RadioParams::default()
        };
        assert_eq!(with_links(3, &off, 2, vec![seg])[0].1.carry_db, 0.0);
    }

    #[test]
    fn each_curve_holds_the_runs_own_setting() {
        for model in [RiskModel::Calibrated, RiskModel::Cwa] {
            let risk = crate::params::risk_config(model);
            let (knob, grid, own) = curve_grid(&risk);
            assert!(grid.windows(2).all(|w| w[0] < w[1]), "{knob}");
            let expected = match model {
                RiskModel::Cwa => risk.high_risk_weighted_minutes(),
                RiskModel::Calibrated => risk.calibrated().min_confidence,
            };
            assert_eq!(grid[own], expected, "{knob}");
        }
        // A setting off the grid is added in order.
        let risk = RiskConfig::builder()
            .model(RiskModel::Cwa)
            .high_risk_weighted_minutes(15.5)
            .build()
            .expect("valid");
        let (_, grid, own) = curve_grid(&risk);
        assert_eq!(grid[own], 15.5);
        assert!(grid.windows(2).all(|w| w[0] < w[1]));
    }
}
