//! The day loop: plans → contacts → infections → tests and reports → the
//! app (real protocol code) → alerts → quarantine.

use std::collections::{BTreeMap, BTreeSet};

use meshtrace_protocol::{IssuerSecretKey, expiry_of};

use super::contacts::{Segment, heard_epochs, segments};
use super::disease::{Course, distance_factor};
use super::params::{CONTACT_DISTANCE_M, CONTACT_MINUTES, KEEP_DAYS, SimConfig, model_name};
use super::report::*;
use super::rng::{Purpose, chance, int, lognormal, range, stream, unif};
use super::town::{DAY_MIN, RoomKind, World};
use super::tracing::{
    Alert, Ctx, DayLog, Device, Relay, ReportJob, ReportOutcome, Scored, curve_grid, proto_day,
    run_report, unix,
};
use meshtrace_protocol::RiskConfig;

const MIN_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Mode {
    /// Run the app (rebuild reports, match, alert).
    pub(crate) app: bool,
    /// Alerts act: quarantine and testing.
    pub(crate) tracing: bool,
}

#[derive(Clone, Copy, Debug)]
struct Test {
    at: i32,
    result: i32,
}

#[derive(Clone, Debug)]
struct Case {
    agent: u32,
    result_ms: i64,
    notify_ms: i64,
    window_first_day: i32,
    reports: bool,
    done: bool,
}

/// Everything one run produces (before assembling the report).
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) epidemic: Epidemic,
    pub(crate) tracing: Tracing,
    /// The run's model scored against the ground truth (the same figures as
    /// `tracing`, for the scan sweep).
    pub(crate) main_score: ModelScore,
    /// The baseline model on the same matches.
    pub(crate) baseline: ModelScore,
    pub(crate) network: Network,
    pub(crate) storage: Storage,
    pub(crate) replay: ReplayAttack,
    pub(crate) delays: Vec<f64>,
    pub(crate) stored: Vec<f64>,
    pub(crate) adopters: u32,
    /// (reporter, the exposure) of every exposure.
    pub(crate) alerts: Vec<(u32, Alert)>,
}

/// Progress of a run: `done` of `total` days.
pub(crate) type Progress<'a> = &'a (dyn Fn(u32, u32) + Sync);

struct Sim<'a> {
    cfg: &'a SimConfig,
    world: &'a World,
    mode: Mode,
    n: usize,
    adopters: Vec<bool>,
    devices: Vec<Device>,
    courses: Vec<Option<Course>>,
    home: Vec<Vec<(i32, i32)>>,
    alerted: Vec<bool>,
    sym_test: Vec<Option<Test>>,
    alert_test: Vec<Option<Test>>,
    positive: Vec<bool>,
    cases: Vec<Case>,
    logs: Vec<DayLog>,
    close: Vec<(u32, Vec<Segment>, Vec<Vec<u32>>)>,
    issuer: IssuerSecretKey,
    relay: Option<Relay>,
    published: Vec<(i64, usize, i32)>,
    real_tokens: Vec<f64>,
    /// Storage calibration from the reporters' phones: encounters, their
    /// record bytes, heard (phone, epoch) pairs.
    calib: (u64, u64, u64),
    out: Outcome,
    by_place: BTreeMap<RoomKind, u32>,
    false_by_place: BTreeMap<RoomKind, u32>,
    false_closest: Vec<f64>,
    mesh_delays: Vec<f64>,
    seq: u64,
    /// The run's model and the baseline against the ground truth.
    main_acc: ModelAcc,
    base_acc: ModelAcc,
}

/// One model's alerts against the ground truth, accumulated over the cases.
#[derive(Default)]
struct ModelAcc {
    alerts: u32,
    true_alerts: u32,
    /// True contacts between app users (the recall's denominator).
    true_pairs: u32,
    /// (warned at each knob setting of the curve, true contact) of every
    /// matched pair and of every true contact between app users (never
    /// warned when not matched).
    pairs: Vec<(Vec<bool>, bool)>,
    /// Estimated over true close minutes, per true contact day.
    ratios: Vec<f64>,
    false_by_place: BTreeMap<RoomKind, u32>,
    false_closest: Vec<f64>,
    false_close_minutes: Vec<f64>,
    false_together: Vec<f64>,
    missed_by_place: BTreeMap<RoomKind, u32>,
    missed_close_minutes: Vec<f64>,
}

fn by_place(m: &BTreeMap<RoomKind, u32>) -> Vec<(String, u32)> {
    m.iter().map(|(k, v)| (k.name().to_owned(), *v)).collect()
}

impl ModelAcc {
    fn score(&self, risk: &RiskConfig) -> ModelScore {
        let (knob, grid, own) = curve_grid(risk);
        let curve = grid
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let warned = self.pairs.iter().filter(|p| p.0.get(i) == Some(&true));
                let (alerts, hits) =
                    warned.fold((0u64, 0u64), |(a, h), p| (a + 1, h + u64::from(p.1)));
                CurvePoint {
                    value: v,
                    alerts: alerts as u32,
                    recall: share(hits, self.true_pairs.into()),
                    precision: share(hits, alerts),
                    operating: i == own,
                }
            })
            .collect();
        let ratios = Summary::of(&self.ratios);
        let warned_true = self.true_pairs - self.missed_by_place.values().sum::<u32>();
        ModelScore {
            model: model_name(risk.model()).to_owned(),
            threshold_minutes: risk.high_risk_weighted_minutes(),
            alerts: self.alerts,
            true_alerts: self.true_alerts,
            false_alerts: self.alerts - self.true_alerts,
            recall: share(warned_true.into(), self.true_pairs.into()),
            precision: share(self.true_alerts.into(), self.alerts.into()),
            estimated_over_true_p50: ratios.p50,
            estimated_over_true: ratios,
            false_alerts_by_place: by_place(&self.false_by_place),
            false_alert_closest_m: Summary::of(&self.false_closest),
            false_alert_close_minutes: Summary::of(&self.false_close_minutes),
            false_alert_minutes_in_range: Summary::of(&self.false_together),
            missed: self.missed_by_place.values().sum(),
            missed_by_place: by_place(&self.missed_by_place),
            missed_close_minutes: Summary::of(&self.missed_close_minutes),
            curve_knob: knob.to_owned(),
            curve,
        }
    }
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig, world: &'a World, mode: Mode, adopters: Vec<bool>) -> Sim<'a> {
        let n = world.len();
        let devices = (0..n as u32)
            .map(|a| Device::draw(cfg.seed, a, &cfg.radio, &cfg.gossip))
            .collect();
        let mut rng = stream(cfg.seed, Purpose::Report, u64::MAX, 0);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let relay = match world {
            World::Town(t) if cfg.replay_attack => {
                let (record_rooms, replay_room) = t.attack_shops();
                Some(Relay {
                    record_rooms,
                    replay_room,
                    delay_minutes: 0,
                })
            }
            World::Script { relay, .. } => relay.clone(),
            World::Town(_) => None,
        };
        Sim {
            cfg,
            world,
            mode,
            n,
            devices,
            courses: vec![None; n],
            home: vec![Vec::new(); n],
            alerted: vec![false; n],
            sym_test: vec![None; n],
            alert_test: vec![None; n],
            positive: vec![false; n],
            cases: Vec::new(),
            logs: Vec::new(),
            close: Vec::new(),
            issuer,
            relay,
            published: Vec::new(),
            real_tokens: Vec::new(),
            calib: (0, 0, 0),
            out: Outcome {
                adopters: adopters.iter().filter(|a| **a).count() as u32,
                ..Outcome::default()
            },
            adopters,
            by_place: BTreeMap::new(),
            false_by_place: BTreeMap::new(),
            false_closest: Vec::new(),
            mesh_delays: Vec::new(),
            seq: 0,
            main_acc: ModelAcc::default(),
            base_acc: ModelAcc::default(),
        }
    }

    fn infect(&mut self, agent: u32, at: i32, infector: Option<u32>) {
        let p = &self.cfg.disease;
        let c = Course::draw(p, self.cfg.seed, agent, at, infector);
        if c.seeks_test {
            let t = c.onset + c.test_delay;
            self.sym_test[agent as usize] = Some(Test {
                at: t,
                result: t + c.result_delay,
            });
        }
        if c.self_isolates {
            let d = c.onset.div_euclid(DAY_MIN) + 1;
            self.home[agent as usize].push((d, d + p.quarantine_days as i32));
        }
        self.courses[agent as usize] = Some(c);
    }

    fn home_only(&self, agent: u32, day: i32) -> bool {
        self.home[agent as usize]
            .iter()
            .any(|&(a, b)| day >= a && day < b)
    }

    fn run(mut self, days: u32, progress: Progress<'_>) -> Outcome {
        let cfg = self.cfg;
        if let World::Town(_) = self.world {
            let k = ((self.n as f64 * cfg.disease.initial_share).round() as usize).max(1);
            let mut rng = stream(cfg.seed, Purpose::Infection, u64::MAX, 0);
            let mut chosen = BTreeSet::new();
            while chosen.len() < k.min(self.n) {
                chosen.insert(int(&mut rng, 0, self.n as u32 - 1));
            }
            for a in chosen {
                let at = -(range(&mut rng, 0.0, 4.0) * f64::from(DAY_MIN)) as i32;
                self.infect(a, at, None);
            }
            self.out.epidemic.initial_infections = k as u32;
        }
        self.out.epidemic.daily_infections = vec![0; days as usize];
        for day in 0..days {
            progress(day, days);
            self.day(day);
        }
        progress(days, days);
        self.finish(days);
        self.out
    }

    fn day(&mut self, day: u32) {
        let cfg = self.cfg;
        let d = day as i32;
        let mut presences = Vec::new();
        match self.world {
            World::Town(town) => {
                for a in 0..self.n as u32 {
                    let home = self.home_only(a, d);
                    town.plan(a, day, home, &cfg.town, cfg.seed, &mut presences);
                }
            }
            World::Script { days, .. } => {
                if let Some(p) = days.get(&day) {
                    presences = p.clone();
                }
            }
        }
        let segs = segments(
            self.world.rooms(),
            &presences,
            cfg.seed,
            day,
            cfg.radio.model.max_range_m as f32,
            cfg.radio.wall_db,
        );
        if let World::Town(_) = self.world {
            self.transmit(day, &segs);
        }
        // Keep what ground truth and the app need.
        let mut app_segs = Vec::new();
        let mut close_segs = Vec::new();
        for s in &segs {
            if self.mode.app && self.adopters[s.a as usize] && self.adopters[s.b as usize] {
                app_segs.push(*s);
            }
            if s.dist <= CONTACT_DISTANCE_M {
                close_segs.push(*s);
            }
        }
        drop(segs);
        let index = |segs: &[Segment]| {
            let mut by: Vec<Vec<u32>> = vec![Vec::new(); self.n];
            for (i, s) in segs.iter().enumerate() {
                by[s.a as usize].push(i as u32);
                by[s.b as usize].push(i as u32);
            }
            by
        };
        let close_by = index(&close_segs);
        self.close.push((day, close_segs, close_by));
        if self.mode.app {
            let heard = heard_epochs(self.n, &app_segs);
            let by_agent = index(&app_segs);
            let keep_presences = self.relay.is_some();
            self.logs.push(DayLog {
                day,
                presences: if keep_presences {
                    presences
                } else {
                    Vec::new()
                },
                app_segs,
                by_agent,
                heard,
            });
        }
        let cutoff = d - KEEP_DAYS as i32 - 1;
        self.logs.retain(|l| l.day as i32 >= cutoff);
        self.close.retain(|c| c.0 as i32 >= cutoff);
        self.results(d);
        self.notifications(d);
    }

    /// Infections of one day.
    fn transmit(&mut self, day: u32, segs: &[Segment]) {
        let p = &self.cfg.disease;
        let mut contrib: Vec<(u32, u32, i32, f64, RoomKind)> = Vec::new();
        for s in segs {
            for (i, j) in [(s.a, s.b), (s.b, s.a)] {
                let Some(c) = &self.courses[i as usize] else {
                    continue;
                };
                if self.courses[j as usize].is_some() {
                    continue;
                }
                let mid = (s.start + s.end) / 2;
                let w = c.infectiousness(p, mid);
                if w > 0.0 {
                    let h =
                        p.beta_per_minute * w * distance_factor(s.dist) * f64::from(s.minutes());
                    contrib.push((j, i, mid, h, s.kind));
                }
            }
        }
        contrib.sort_by_key(|c| c.0);
        let mut k = 0;
        while k < contrib.len() {
            let who = contrib[k].0;
            let mut e = k;
            while e < contrib.len() && contrib[e].0 == who {
                e += 1;
            }
            let group = &contrib[k..e];
            k = e;
            let total: f64 = group.iter().map(|c| c.3).sum();
            let mut rng = stream(
                self.cfg.seed,
                Purpose::Infection,
                u64::from(who),
                u64::from(day),
            );
            if unif(&mut rng) < 1.0 - (-total).exp() {
                let weights: Vec<f64> = group.iter().map(|c| c.3).collect();
                let c = group[super::rng::pick(&mut rng, &weights)];
                self.infect(who, c.2, Some(c.1));
                *self.by_place.entry(c.4).or_insert(0) += 1;
                if day < self.out.epidemic.daily_infections.len() as u32 {
                    self.out.epidemic.daily_infections[day as usize] += 1;
                }
            }
        }
    }

    /// Test results due by the end of `day`.
    fn results(&mut self, d: i32) {
        let end = (d + 1) * DAY_MIN;
        if let World::Script { positives, .. } = self.world {
            for &(agent, minute, first) in positives {
                if minute >= d * DAY_MIN && minute < end {
                    self.cases.push(Case {
                        agent,
                        result_ms: i64::from(minute) * MIN_MS,
                        notify_ms: i64::from(minute) * MIN_MS,
                        window_first_day: first,
                        reports: self.adopters[agent as usize],
                        done: false,
                    });
                }
            }
            return;
        }
        for a in 0..self.n {
            for from_alert in [false, true] {
                let slot = if from_alert {
                    &mut self.alert_test[a]
                } else {
                    &mut self.sym_test[a]
                };
                let Some(t) = *slot else { continue };
                if t.result >= end {
                    continue;
                }
                *slot = None;
                let Some(c) = self.courses[a] else { continue };
                if self.positive[a] || !c.detectable(t.at) {
                    continue;
                }
                self.positive[a] = true;
                self.positive_result(a as u32, t, &c, from_alert);
            }
        }
    }

    fn positive_result(&mut self, agent: u32, t: Test, c: &Course, from_alert: bool) {
        let p = &self.cfg.disease;
        self.out.epidemic.positive_tests += 1;
        if from_alert {
            self.out.epidemic.positives_after_alert += 1;
        }
        let rd = t.result.div_euclid(DAY_MIN) + 1;
        self.home[agent as usize].push((rd, rd + p.quarantine_days as i32));
        let mut rng = stream(
            self.cfg.seed,
            Purpose::Report,
            u64::from(agent),
            t.result as u64,
        );
        let delay_h = lognormal(&mut rng, p.report_delay_median_hours, 0.8).min(72.0);
        let result_ms = i64::from(t.result) * MIN_MS;
        let notify_ms = result_ms + (delay_h * 3_600_000.0) as i64;
        let anchor = if c.symptomatic { c.onset } else { t.at };
        let notify_day = notify_ms.div_euclid(DAY_MS) as i32;
        let first = (anchor.div_euclid(DAY_MIN) - p.window_days_before_onset as i32)
            .max(notify_day - meshtrace_protocol::RETENTION_DAYS as i32);
        let reports = self.adopters[agent as usize] && chance(&mut rng, p.report_share);
        self.cases.push(Case {
            agent,
            result_ms,
            notify_ms,
            window_first_day: first,
            reports,
            done: false,
        });
    }

    /// Reports (and ground truth) of the cases whose report time falls by
    /// the end of `day`.
    fn notifications(&mut self, d: i32) {
        let end_ms = i64::from(d + 1) * DAY_MS;
        let due: Vec<usize> = (0..self.cases.len())
            .filter(|&i| !self.cases[i].done && self.cases[i].notify_ms < end_ms)
            .collect();
        if due.is_empty() {
            return;
        }
        let mut jobs = Vec::new();
        for &i in &due {
            self.cases[i].done = true;
            let c = &self.cases[i];
            if c.reports && self.mode.app {
                self.seq += 1;
                jobs.push((
                    i,
                    ReportJob {
                        seq: self.seq,
                        agent: c.agent,
                        result_ms: c.result_ms,
                        report_ms: c.notify_ms,
                        window_first_day: c.window_first_day,
                        report_day: c.notify_ms.div_euclid(DAY_MS) as i32,
                    },
                ));
            }
        }
        let outcomes = self.run_jobs(&jobs);
        let mut by_case: BTreeMap<usize, ReportOutcome> = BTreeMap::new();
        for ((i, job), o) in jobs.iter().zip(outcomes) {
            self.record_report(job, &o);
            by_case.insert(*i, o);
        }
        for i in due {
            self.score_case(i, by_case.get(&i));
        }
    }

    fn run_jobs(&self, jobs: &[(usize, ReportJob)]) -> Vec<ReportOutcome> {
        let ctx = Ctx {
            seed: self.cfg.seed,
            radio: &self.cfg.radio,
            gossip: &self.cfg.gossip,
            risk: &self.cfg.risk,
            baseline: &self.cfg.baseline_risk,
            devices: &self.devices,
            adopters: &self.adopters,
            logs: &self.logs,
            issuer: &self.issuer,
            relay: self.relay.as_ref(),
        };
        let threads = self.cfg.threads.clamp(1, jobs.len().max(1));
        if threads == 1 {
            return jobs.iter().map(|(_, j)| run_report(&ctx, j)).collect();
        }
        // Longest reporters first would balance better; an even split by
        // index keeps it simple and deterministic.
        let mut results: Vec<Option<ReportOutcome>> = vec![None; jobs.len()];
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|w| {
                    let ctx = &ctx;
                    s.spawn(move || {
                        jobs.iter()
                            .enumerate()
                            .filter(|(i, _)| i % threads == w)
                            .map(|(i, (_, j))| (i, run_report(ctx, j)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                if let Ok(v) = h.join() {
                    for (i, o) in v {
                        results[i] = Some(o);
                    }
                }
            }
        });
        results.into_iter().map(Option::unwrap_or_default).collect()
    }

    fn record_report(&mut self, job: &ReportJob, o: &ReportOutcome) {
        let t = &mut self.out.tracing;
        t.reports += 1;
        t.token_derivations += o.derivations;
        t.refused_sightings += o.refused_sightings;
        t.scan_windows_reported += o.scan_windows;
        if o.verified {
            t.reports_verified += 1;
        }
        self.out.replay.victims += o.replay_victims;
        self.out.replay.replayed_encounters += o.replay_encounters;
        self.real_tokens.push(o.real_tokens as f64);
        self.calib.0 += o.calib.0;
        self.calib.1 += o.calib.1;
        self.calib.2 += o.calib.2;
        for &b in &o.chunk_bytes {
            self.published.push((job.report_ms, b, job.report_day));
        }
        for a in &o.alerts {
            self.out.alerts.push((job.agent, a.clone()));
            if !a.high_risk {
                self.out.tracing.low_risk_exposures += 1;
                continue;
            }
            if a.replay_only {
                self.out.replay.alerts += 1;
            }
            self.out
                .delays
                .push((a.at_ms - job.result_ms) as f64 / 3_600_000.0);
            self.mesh_delays
                .push((a.at_ms - job.report_ms) as f64 / 60_000.0);
            let q = a.agent as usize;
            if self.mode.tracing && !self.alerted[q] && !self.positive[q] {
                self.alerted[q] = true;
                let p = &self.cfg.disease;
                let mut rng = stream(self.cfg.seed, Purpose::Testing, q as u64, a.at_ms as u64);
                let day = a.at_ms.div_euclid(DAY_MS) as i32 + 1;
                if chance(&mut rng, p.quarantine_compliance) {
                    self.home[q].push((day, day + p.quarantine_days as i32));
                    self.out.epidemic.quarantine_person_days += p.quarantine_days;
                }
                if chance(&mut rng, p.test_after_alert) {
                    let at =
                        (a.at_ms / MIN_MS) as i32 + (range(&mut rng, 0.5, 1.5) * 1440.0) as i32;
                    let result = at
                        + (range(&mut rng, p.test_to_result_days.0, p.test_to_result_days.1)
                            * 1440.0) as i32;
                    self.alert_test[q] = Some(Test { at, result });
                }
            }
        }
    }

    /// Minutes within 2 m of the case, per person and day of the window,
    /// before the report (days with some).
    fn close_minutes(&self, c: &Case) -> BTreeMap<u32, Vec<(i32, i32)>> {
        let cut = (c.notify_ms / MIN_MS) as i32;
        let last = c.notify_ms.div_euclid(DAY_MS) as i32;
        let mut out: BTreeMap<u32, Vec<(i32, i32)>> = BTreeMap::new();
        for (day, segs, by) in &self.close {
            let day = *day as i32;
            if day < c.window_first_day || day > last {
                continue;
            }
            let mut minutes: BTreeMap<u32, i32> = BTreeMap::new();
            for &i in &by[c.agent as usize] {
                let s = &segs[i as usize];
                let m = s.end.min(cut) - s.start;
                if m > 0 {
                    *minutes.entry(s.other(c.agent)).or_insert(0) += m;
                }
            }
            for (q, m) in minutes {
                out.entry(q).or_default().push((day, m));
            }
        }
        out
    }

    /// Where a reporter and a phone spent most time in the window, and how
    /// close they came (for false alerts).
    fn closest(&self, c: &Case, q: u32) -> (RoomKind, f32) {
        let (kind, closest, _) = self.together(c, q);
        (kind, closest)
    }

    /// Where a reporter and a phone spent most time in the window, how close
    /// they came and how many minutes they spent in radio range.
    fn together(&self, c: &Case, q: u32) -> (RoomKind, f32, i32) {
        let mut minutes: BTreeMap<RoomKind, i32> = BTreeMap::new();
        let mut closest = f32::INFINITY;
        for log in &self.logs {
            let day = log.day as i32;
            if day < c.window_first_day || i64::from(day) * DAY_MS > c.notify_ms {
                continue;
            }
            for &i in &log.by_agent[c.agent as usize] {
                let s = &log.app_segs[i as usize];
                if s.other(c.agent) == q {
                    *minutes.entry(s.kind).or_insert(0) += s.minutes();
                    closest = closest.min(s.dist);
                }
            }
        }
        let kind = minutes
            .iter()
            .max_by_key(|(k, m)| (**m, std::cmp::Reverse(**k)))
            .map_or(RoomKind::Other, |(k, _)| *k);
        (kind, closest, minutes.values().sum())
    }

    fn score_case(&mut self, i: usize, outcome: Option<&ReportOutcome>) {
        let c = self.cases[i].clone();
        let close = self.close_minutes(&c);
        // Ground truth: within 2 m for the contact time on a day of the
        // window, before the report.
        let true_days = |q: u32| -> Vec<(i32, i32)> {
            close.get(&q).map_or_else(Vec::new, |d| {
                d.iter()
                    .copied()
                    .filter(|&(_, m)| m >= CONTACT_MINUTES as i32)
                    .collect()
            })
        };
        let truth: BTreeSet<u32> = close
            .keys()
            .copied()
            .filter(|&q| !true_days(q).is_empty())
            .collect();
        if let Some(o) = outcome {
            let longest = |q: u32| -> f64 {
                close
                    .get(&q)
                    .and_then(|d| d.iter().map(|x| x.1).max())
                    .map_or(0.0, f64::from)
            };
            let app: Vec<(u32, Vec<(i32, i32)>)> = truth
                .iter()
                .copied()
                .filter(|q| self.adopters[*q as usize])
                .map(|q| (q, true_days(q)))
                .collect();
            for main in [true, false] {
                let pick =
                    |a: &Alert| -> Scored { if main { a.main.clone() } else { a.base.clone() } };
                let scored: BTreeMap<u32, Scored> =
                    o.alerts.iter().map(|a| (a.agent, pick(a))).collect();
                let mut acc = std::mem::take(if main {
                    &mut self.main_acc
                } else {
                    &mut self.base_acc
                });
                for (&q, s) in &scored {
                    let is_true = truth.contains(&q);
                    acc.pairs.push((s.warn_at.clone(), is_true));
                    if s.high_risk {
                        acc.alerts += 1;
                        if is_true {
                            acc.true_alerts += 1;
                        } else {
                            let (kind, closest, together) = self.together(&c, q);
                            *acc.false_by_place.entry(kind).or_insert(0) += 1;
                            acc.false_closest.push(f64::from(closest));
                            acc.false_together.push(f64::from(together));
                            acc.false_close_minutes.push(longest(q));
                        }
                    }
                }
                for (q, days) in &app {
                    acc.true_pairs += 1;
                    let s = scored.get(q);
                    if s.is_none() {
                        acc.pairs.push((Vec::new(), true));
                    }
                    for &(day, minutes) in days {
                        let est = s.map_or(0.0, |s| s.estimated_on(proto_day(day)));
                        acc.ratios.push(est / f64::from(minutes));
                    }
                    if !s.is_some_and(|s| s.high_risk) {
                        let (kind, _) = self.closest(&c, *q);
                        *acc.missed_by_place.entry(kind).or_insert(0) += 1;
                        acc.missed_close_minutes.push(longest(*q));
                    }
                }
                *(if main {
                    &mut self.main_acc
                } else {
                    &mut self.base_acc
                }) = acc;
            }
        }
        let warned: BTreeSet<u32> = outcome
            .map(|o| {
                o.alerts
                    .iter()
                    .filter(|a| a.high_risk)
                    .map(|a| a.agent)
                    .collect()
            })
            .unwrap_or_default();
        let t = &mut self.out.tracing;
        t.cases += 1;
        if self.adopters[c.agent as usize] {
            t.cases_with_app += 1;
        }
        t.true_contacts_all += truth.len() as u32;
        t.true_contacts_all_warned += truth.intersection(&warned).count() as u32;
        if outcome.is_some() {
            for &q in warned.difference(&truth) {
                let (kind, closest) = self.closest(&c, q);
                *self.false_by_place.entry(kind).or_insert(0) += 1;
                self.false_closest.push(f64::from(closest));
            }
            let t = &mut self.out.tracing;
            t.alerts += warned.len() as u32;
            t.true_alerts += warned.intersection(&truth).count() as u32;
            let app: Vec<u32> = truth
                .iter()
                .copied()
                .filter(|q| self.adopters[*q as usize])
                .collect();
            t.true_contacts_both_app += app.len() as u32;
            t.true_contacts_both_app_warned +=
                app.iter().filter(|q| warned.contains(q)).count() as u32;
            let from = c.window_first_day * DAY_MIN;
            let cut = (c.notify_ms / MIN_MS) as i32;
            for (q, course) in self.courses.iter().enumerate() {
                if let Some(k) = course
                    && k.infector == Some(c.agent)
                    && k.infected_at >= from
                    && k.infected_at < cut
                {
                    t.infected_by_reporters += 1;
                    if warned.contains(&(q as u32)) {
                        t.infected_by_reporters_warned += 1;
                    }
                }
            }
        }
    }

    fn finish(&mut self, days: u32) {
        let cfg = self.cfg;
        self.out.epidemic.infections = self.out.epidemic.daily_infections.iter().sum();
        self.out.epidemic.infections_by_place = self
            .by_place
            .iter()
            .map(|(k, v)| (k.name().to_owned(), *v))
            .collect();
        let t = &mut self.out.tracing;
        t.false_alerts = t.alerts - t.true_alerts;
        t.recall = share(
            t.true_contacts_both_app_warned.into(),
            t.true_contacts_both_app.into(),
        );
        t.precision = share(t.true_alerts.into(), t.alerts.into());
        t.false_alerts_by_place = self
            .false_by_place
            .iter()
            .map(|(k, v)| (k.name().to_owned(), *v))
            .collect();
        t.false_alert_closest_m = Summary::of(&self.false_closest);
        t.population_recall = share(
            t.true_contacts_all_warned.into(),
            t.true_contacts_all.into(),
        );
        let main = self.main_acc.score(&cfg.risk);
        t.model = main.model.clone();
        t.estimated_over_true_p50 = main.estimated_over_true_p50;
        t.estimated_over_true = main.estimated_over_true.clone();
        t.false_alert_close_minutes = main.false_alert_close_minutes.clone();
        t.missed = main.missed;
        t.missed_by_place = main.missed_by_place.clone();
        t.missed_close_minutes = main.missed_close_minutes.clone();
        t.curve = main.curve.clone();
        t.curve_knob = main.curve_knob.clone();
        self.out.main_score = main;
        self.out.baseline = self.base_acc.score(&cfg.baseline_risk);
        let t = &mut self.out.tracing;
        t.alert_delay_hours = Summary::of(&self.out.delays);
        t.report_to_alert_minutes = Summary::of(&self.mesh_delays);
        let n = self.out.delays.len() as u64;
        t.alerts_within_1h = share(
            self.out.delays.iter().filter(|&&h| h <= 1.0).count() as u64,
            n,
        );
        t.alerts_within_24h = share(
            self.out.delays.iter().filter(|&&h| h <= 24.0).count() as u64,
            n,
        );
        if !self.mode.app {
            return;
        }
        // The mesh.
        let net = &mut self.out.network;
        let mut per_case: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
        for &(t, b, _) in &self.published {
            let e = per_case.entry(t).or_insert((0.0, 0.0));
            e.0 += b as f64;
            e.1 += 1.0;
        }
        let sizes: Vec<f64> = per_case.values().map(|v| v.0).collect();
        let chunks: Vec<f64> = per_case.values().map(|v| v.1).collect();
        net.announcement_bytes_per_case = Summary::of(&sizes);
        net.chunks_per_case = Summary::of(&chunks);
        net.real_tokens_per_case = Summary::of(&self.real_tokens);
        let end_ms = i64::from(days) * DAY_MS;
        let g = &cfg.gossip;
        let published: f64 = self
            .published
            .iter()
            .filter(|p| p.0 < end_ms)
            .map(|p| p.1 as f64)
            .sum();
        let count = self.published.iter().filter(|p| p.0 < end_ms).count() as f64;
        // A light node fetches each chunk once by catch-up: its id in an id
        // list (32 bytes) and the response framing.
        // A full node receives each chunk once (fetched by id) plus the
        // measured per-chunk overhead of the id gossip and the fetch.
        let full = (published + count * g.full_node_bytes_per_chunk) / f64::from(days);
        let light = (published + count * 40.0) / f64::from(days);
        // Digests: one per sync round while online, 42 bytes per day held.
        let online = 1.0 - g.offline_daily * (g.offline_hours.0 + g.offline_hours.1) / 48.0;
        let rounds = 86_400.0 / g.sync_interval_s * online;
        let mut digest = 0.0;
        for d in 0..days as i32 {
            let now = unix(i64::from(d) * DAY_MS + DAY_MS / 2);
            let held: BTreeSet<i32> = self
                .published
                .iter()
                .filter(|p| unix(p.0) <= now && expiry_of(proto_day(p.2)) > now)
                .map(|p| p.2)
                .collect();
            digest += rounds * (4.0 + 42.0 * held.len() as f64);
        }
        let digest = digest / f64::from(days);
        let fs = g.full_node_share;
        net.full_node_bytes_per_day = r4(full + digest);
        net.light_node_bytes_per_day = r4(light + digest);
        net.digest_bytes_per_node_per_day = r4(digest);
        net.bytes_received_per_node_per_day =
            r4(fs * (full + digest) + (1.0 - fs) * (light + digest));
        // The store.
        let keep_from = days as i32 - meshtrace_protocol::RETENTION_DAYS as i32 - 1;
        let ann_bytes: f64 = self
            .published
            .iter()
            .filter(|p| p.0 < end_ms && expiry_of(proto_day(p.2)) > unix(end_ms))
            .map(|p| p.1 as f64 + 24.0 + 40.0 + 114.0)
            .sum();
        let st = &mut self.out.storage;
        st.announcement_bytes_per_node = r4(ann_bytes);
        let (encs, bytes, heard) = self.calib;
        st.calibration_encounters = encs;
        let per_enc = if encs > 0 {
            bytes as f64 / encs as f64
        } else {
            0.0
        };
        let enc_per_heard = if heard > 0 {
            encs as f64 / heard as f64
        } else {
            0.0
        };
        st.bytes_per_encounter = r4(per_enc);
        st.encounters_per_heard_epoch = r4(enc_per_heard);
        let mut stored = Vec::new();
        for a in 0..self.n {
            if !self.adopters[a] {
                continue;
            }
            let heard: u64 = self
                .logs
                .iter()
                .filter(|l| l.day as i32 >= keep_from)
                .map(|l| u64::from(l.heard[a]))
                .sum();
            stored.push(heard as f64 * enc_per_heard * per_enc + ann_bytes);
        }
        st.stored_bytes_per_node = Summary::of(&stored);
        self.out.stored = stored;
    }
}

/// Runs one simulation.
pub(crate) fn simulate(
    cfg: &SimConfig,
    world: &World,
    mode: Mode,
    adopters: Vec<bool>,
    days: u32,
    progress: Progress<'_>,
) -> Outcome {
    Sim::new(cfg, world, mode, adopters).run(days, progress)
}

/// Who runs the app at `adoption`: nested across levels (everyone who has it
/// at 30 % has it at 40 %).
pub(crate) fn adopters(seed: u64, n: usize, adoption: f64) -> Vec<bool> {
    (0..n as u64)
        .map(|a| {
            let mut rng = stream(seed, Purpose::Adopt, a, 0);
            unif(&mut rng) < adoption
        })
        .collect()
}
