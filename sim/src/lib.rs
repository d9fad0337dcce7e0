//! The meshtrace simulator (`meshtrace simulate`): a deterministic town in which every person with the
//! app runs the real protocol code, scored against ground truth.
//!
//! * [`run`] simulates a generated town ([`SimConfig`]) with and without
//!   tracing, optionally sweeping adoption, and returns a [`SimReport`].
//! * [`run_script`] runs a hand-written [`Script`] (people, stays, positive
//!   results, a replay attacker) through the same pipeline, for tests.
//! * [`html::write_report`] renders a report as HTML with SVG plots.
//! * [`harness`] runs real nodes in one process (the demo, the end-to-end
//!   tests); [`workload`] makes the inputs the benchmarks share.
//!
//! The model, its parameters and their sources are in `docs/simulation.md`.

mod contacts;
mod disease;
mod engine;
pub mod harness;
pub mod html;
mod params;
mod report;
mod rng;
mod town;
mod tracing;
pub mod workload;

use std::collections::BTreeMap;

pub use params::*;
pub use report::*;
pub use town::TownStats;

use engine::{Mode, adopters, simulate};
use meshtrace_protocol::Day;
use town::{Layout, Presence, Room, RoomKind, Spot, Town, World};

/// Progress callback: `(stage, days done, days in the stage)`.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u32, u32) + Sync);

/// Which extra runs [`run`] makes beside the main one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweeps {
    /// One run per adoption level of [`SWEEP_LEVELS`] (`--sweep-adoption`).
    pub adoption: bool,
    /// One run per scan interval of [`SWEEP_SCAN_INTERVALS`]
    /// (`--sweep-scan`).
    pub scan: bool,
}

/// Runs the town simulation: the run at `cfg.adoption` with tracing, the
/// same town without tracing (for the epidemic curve), and the sweeps
/// asked for: one run per adoption level of [`SWEEP_LEVELS`], one per scan
/// interval of [`SWEEP_SCAN_INTERVALS`] (each the same as a main run at that
/// interval).
pub fn run(cfg: &SimConfig, sweeps: Sweeps, progress: ProgressFn<'_>) -> Result<SimReport, String> {
    cfg.validate()?;
    let world = World::Town(Town::generate(cfg.agents, &cfg.town, cfg.seed));
    let n = cfg.agents as usize;
    let stage = |label: String| move |d: u32, t: u32| progress(&label, d, t);
    let main_label = format!("adoption {:.0} %", cfg.adoption * 100.0);
    let main = simulate(
        cfg,
        &world,
        Mode {
            app: true,
            tracing: true,
        },
        adopters(cfg.seed, n, cfg.adoption),
        cfg.days,
        &stage(main_label),
    );
    let baseline = simulate(
        cfg,
        &world,
        Mode {
            app: false,
            tracing: false,
        },
        vec![false; n],
        cfg.days,
        &stage("without tracing".into()),
    );
    let mut points = Vec::new();
    if sweeps.adoption {
        for &level in SWEEP_LEVELS.iter() {
            let o = if (level - cfg.adoption).abs() < 1e-9 {
                None
            } else {
                Some(simulate(
                    cfg,
                    &world,
                    Mode {
                        app: true,
                        tracing: true,
                    },
                    adopters(cfg.seed, n, level),
                    cfg.days,
                    &stage(format!("sweep: adoption {:.0} %", level * 100.0)),
                ))
            };
            let o = o.as_ref().unwrap_or(&main);
            points.push(SweepPoint {
                adoption: level,
                reports: o.tracing.reports,
                alerts: o.tracing.alerts,
                true_contacts_both_app: o.tracing.true_contacts_both_app,
                recall: o.tracing.recall,
                population_recall: o.tracing.population_recall,
                precision: o.tracing.precision,
                infections: o.epidemic.infections,
            });
        }
    }
    let mut scan_points = Vec::new();
    if sweeps.scan {
        for &interval in SWEEP_SCAN_INTERVALS.iter() {
            let point = |o: &engine::Outcome| ScanPoint {
                scan_interval_s: interval as f64,
                tracing: o.main_score.clone(),
                tracing_baseline: o.baseline.clone(),
            };
            if interval * 1000 == cfg.radio.duty.scan_interval_ms {
                scan_points.push(point(&main));
                continue;
            }
            let c = cfg.clone().with_scan_interval(interval);
            let o = simulate(
                &c,
                &world,
                Mode {
                    app: true,
                    tracing: true,
                },
                adopters(cfg.seed, n, cfg.adoption),
                cfg.days,
                &stage(format!("sweep: scan every {interval} s")),
            );
            scan_points.push(point(&o));
        }
    }
    let World::Town(town) = &world else {
        return Err("internal: not a town".into());
    };
    let mut epidemic = main.epidemic;
    epidemic.infections_without_tracing = baseline.epidemic.infections;
    epidemic.daily_infections_without_tracing = baseline.epidemic.daily_infections;
    Ok(SimReport {
        config: ConfigEcho {
            agents: cfg.agents,
            days: cfg.days,
            adoption: cfg.adoption,
            seed: cfg.seed,
            start: Day(tracing::START_DAY).to_string(),
            contact_minutes: CONTACT_MINUTES,
            contact_distance_m: f64::from(CONTACT_DISTANCE_M),
            scan_interval_s: cfg.scan_interval_s(),
            scan_window_s: cfg.radio.duty.scan_window_ms as f64 / 1000.0,
            risk_model: model_name(cfg.risk.model()).to_owned(),
            baseline_model: model_name(cfg.baseline_risk.model()).to_owned(),
        },
        town: town.stats.clone(),
        adopters: main.adopters,
        epidemic,
        tracing: main.tracing,
        tracing_baseline: main.baseline,
        network: main.network,
        storage: main.storage,
        replay_attack: cfg.replay_attack.then_some(main.replay),
        sweep: points,
        scan_sweep: scan_points,
        alert_delays_hours: main.delays,
        stored_bytes: main.stored,
    })
}

/// A stay in a scripted world: `agent` at `(x, y)` metres in `place` on
/// `day`, from `from_minute` to `to_minute` (minutes of the day).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stay {
    /// Who.
    pub agent: u32,
    /// Where (any number; people in different places never hear each other).
    pub place: u32,
    /// Day (0 = the first simulated day).
    pub day: u32,
    /// First minute of the day.
    pub from_minute: u32,
    /// Minute of the day the stay ends.
    pub to_minute: u32,
    /// Position, metres.
    pub x: f32,
    /// Position, metres.
    pub y: f32,
}

/// A positive result in a scripted world; the person reports at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Positive {
    /// Who.
    pub agent: u32,
    /// Day of the result (and report).
    pub day: u32,
    /// Minute of the day.
    pub minute: u32,
    /// First day of the certified contact window.
    pub window_first_day: u32,
}

/// A one-way replay attacker in a scripted world: records every broadcast
/// in one place and plays it back in another, close to each person there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Replay {
    /// Where it records.
    pub record_place: u32,
    /// Where it replays.
    pub replay_place: u32,
    /// How much later (0: a live relay).
    pub delay_minutes: u32,
}

/// A hand-written world.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    /// People (ids `0..people`).
    pub people: u32,
    /// Who runs the app.
    pub app: Vec<u32>,
    /// Where everyone is.
    pub stays: Vec<Stay>,
    /// Positive results.
    pub positives: Vec<Positive>,
    /// A replay attacker.
    pub replay: Option<Replay>,
}

/// An exposure found on a phone in a scripted run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScriptAlert {
    /// The reporter.
    pub reporter: u32,
    /// The warned phone's person.
    pub receiver: u32,
    /// A high-risk exposure (an alert), not only a low-risk match.
    pub high_risk: bool,
    /// The phone heard the reporter only through the replay attacker.
    pub replay_only: bool,
    /// Exposure minutes the phone's tracker credited to the matched
    /// encounters (every attenuation).
    pub credited_minutes: f64,
    /// Estimated minutes within 2 m under the run's risk model, summed over
    /// the days.
    pub estimated_minutes: f64,
    /// High risk under the baseline model.
    pub baseline_high_risk: bool,
    /// Estimated minutes under the baseline model, summed over the days.
    pub baseline_estimated_minutes: f64,
}

/// What a scripted run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScriptOutcome {
    /// Every exposure, sorted.
    #[serde(skip)]
    pub alerts: Vec<ScriptAlert>,
    /// Reports published.
    pub reports: u32,
    /// Reports whose chunks verified.
    pub reports_verified: u32,
    /// The replay attack.
    pub replay: ReplayAttack,
    /// Tokens derived.
    pub token_derivations: u64,
    /// Sightings the tracker refused.
    pub refused_sightings: u64,
    /// Scan windows reported to the trackers.
    pub scan_windows_reported: u64,
    /// Estimated over true minutes within 2 m of the true contacts between
    /// app users, under the run's model (`tracing.estimated_over_true`).
    pub estimated_over_true: Summary,
    /// The same under the baseline model.
    pub baseline_estimated_over_true: Summary,
}

use serde::Serialize;

/// Runs a scripted world through the app pipeline (no infection model:
/// the positives are given). Radio, mesh and risk come from `cfg`.
pub fn run_script(script: &Script, cfg: &SimConfig) -> ScriptOutcome {
    let places = script.stays.iter().map(|s| s.place + 1).max().unwrap_or(0);
    let rooms = (0..places)
        .map(|_| Room {
            layout: Layout::Fixed,
            kind: RoomKind::Other,
        })
        .collect();
    let mut days: BTreeMap<u32, Vec<Presence>> = BTreeMap::new();
    for s in &script.stays {
        let base = s.day as i32 * town::DAY_MIN;
        days.entry(s.day).or_default().push(Presence {
            agent: s.agent,
            room: s.place,
            start: base + s.from_minute as i32,
            end: base + s.to_minute as i32,
            spot: Spot::At(s.x, s.y),
        });
    }
    let last = script
        .stays
        .iter()
        .map(|s| s.day)
        .chain(script.positives.iter().map(|p| p.day))
        .max()
        .unwrap_or(0);
    // Ids beyond `people` still count as people.
    let people = script
        .stays
        .iter()
        .map(|s| s.agent + 1)
        .chain(script.positives.iter().map(|p| p.agent + 1))
        .chain(script.app.iter().map(|a| a + 1))
        .fold(script.people, u32::max);
    let world = World::Script {
        rooms,
        people,
        days,
        positives: script
            .positives
            .iter()
            .map(|p| {
                (
                    p.agent,
                    p.day as i32 * town::DAY_MIN + p.minute as i32,
                    p.window_first_day as i32,
                )
            })
            .collect(),
        relay: script.replay.map(|r| tracing::Relay {
            record_rooms: vec![r.record_place],
            replay_room: r.replay_place,
            delay_minutes: r.delay_minutes as i32,
        }),
    };
    let mut app = vec![false; people as usize];
    for &a in &script.app {
        if let Some(x) = app.get_mut(a as usize) {
            *x = true;
        }
    }
    let o = simulate(
        cfg,
        &world,
        Mode {
            app: true,
            tracing: false,
        },
        app,
        last + 1,
        &|_, _| {},
    );
    let total = |s: &tracing::Scored| s.estimated.iter().map(|d| d.1).sum::<f64>();
    let mut alerts: Vec<ScriptAlert> = o
        .alerts
        .iter()
        .map(|(reporter, a)| ScriptAlert {
            reporter: *reporter,
            receiver: a.agent,
            high_risk: a.high_risk,
            replay_only: a.replay_only,
            credited_minutes: a.credited_seconds as f64 / 60.0,
            estimated_minutes: total(&a.main),
            baseline_high_risk: a.base.high_risk,
            baseline_estimated_minutes: total(&a.base),
        })
        .collect();
    alerts.sort_by_key(|a| (a.reporter, a.receiver, a.high_risk, a.replay_only));
    ScriptOutcome {
        alerts,
        reports: o.tracing.reports,
        reports_verified: o.tracing.reports_verified,
        replay: o.replay,
        token_derivations: o.tracing.token_derivations,
        refused_sightings: o.tracing.refused_sightings,
        scan_windows_reported: o.tracing.scan_windows_reported,
        estimated_over_true: o.main_score.estimated_over_true.clone(),
        baseline_estimated_over_true: o.baseline.estimated_over_true.clone(),
    }
}
