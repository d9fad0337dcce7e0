//! `meshtrace simulate`: the town-scale evaluation.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshtrace_node::protocol::RiskModel;
use meshtrace_sim::{self as sim, ModelScore, SimConfig, SimReport, Sweeps};

/// Default town size.
const DEFAULT_AGENTS: u32 = 2_000;
/// Default run length (the retention window).
const DEFAULT_DAYS: u32 = 14;
/// Default adoption: the 50 % that public campaigns aimed for.
const DEFAULT_ADOPTION: f64 = 0.5;

/// Options of `meshtrace simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// People in the town.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_AGENTS)]
    agents: u32,
    /// Simulated days.
    #[arg(long, value_name = "D", default_value_t = DEFAULT_DAYS)]
    days: u32,
    /// Share of people running the app, 0 to 1.
    #[arg(long, value_name = "P", default_value_t = DEFAULT_ADOPTION)]
    adoption: f64,
    /// Seed: the same seed gives the same results.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Print the result as JSON (no progress bar).
    #[arg(long)]
    json: bool,
    /// Write an HTML report with plots (and the JSON) into this directory;
    /// includes the adoption sweep.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also run every adoption level from 0 to 100 % in steps of 10 %.
    #[arg(long)]
    sweep_adoption: bool,
    /// Add an attacker who records broadcasts in one shop and replays them
    /// live in another (it must cause no alert).
    #[arg(long)]
    replay_attack: bool,
    /// Phones scan for 4 seconds every SECONDS (4 to 600; the phone default
    /// is 60).
    #[arg(long, value_name = "SECONDS", default_value_t = sim::DEFAULT_SCAN_INTERVAL_S)]
    scan_interval: u64,
    /// Also run the scan intervals 10, 60, 150 and 240 s (each as its own
    /// --scan-interval run).
    #[arg(long)]
    sweep_scan: bool,
    /// The risk rule whose alerts act; the other one is scored beside it
    /// on the same matches (JSON `tracing_baseline`).
    #[arg(long, value_enum, value_name = "MODEL", default_value_t = ModelArg::Calibrated)]
    risk_model: ModelArg,
}

/// `--risk-model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModelArg {
    /// The calibrated estimate of minutes within 2 m (docs/risk.md).
    Calibrated,
    /// The Corona-Warn-App attenuation buckets (the old rule).
    Cwa,
}

impl From<ModelArg> for RiskModel {
    fn from(m: ModelArg) -> RiskModel {
        match m {
            ModelArg::Calibrated => RiskModel::Calibrated,
            ModelArg::Cwa => RiskModel::Cwa,
        }
    }
}

/// Width of the progress bar, in characters.
const BAR_WIDTH: u32 = 30;

/// A progress bar on stderr (indicatif), drawn only when stderr is a
/// terminal and the output is not JSON; otherwise hidden.
fn progress_bar(on: bool) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(&format!(
        "[{{bar:{BAR_WIDTH}}}] day {{pos}}/{{len}}  {{msg}}  {{elapsed}}"
    ))
    .map_or_else(
        |_| ProgressStyle::default_bar(),
        |s| s.progress_chars("## "),
    );
    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style)
}

pub(crate) fn run(args: &SimulateArgs) -> Result<ExitCode> {
    let mut cfg = SimConfig::new(args.agents, args.days, args.adoption, args.seed)
        .with_scan_interval(args.scan_interval)
        .with_risk_model(args.risk_model.into());
    cfg.replay_attack = args.replay_attack;
    if let Err(e) = cfg.validate() {
        bail!("{e}");
    }
    if let Some(dir) = &args.out
        && dir.exists()
        && !dir.is_dir()
    {
        bail!("--out {} exists and is not a directory", dir.display());
    }
    let bar = progress_bar(!args.json && std::io::stderr().is_terminal());
    let started = Instant::now();
    let sweeps = Sweeps {
        adoption: args.sweep_adoption || args.out.is_some(),
        scan: args.sweep_scan || args.out.is_some(),
    };
    let report = sim::run(&cfg, sweeps, &|stage: &str, done: u32, total: u32| {
        if bar.message() != stage {
            bar.set_message(stage.to_owned());
        }
        bar.set_length(u64::from(total));
        bar.set_position(u64::from(done));
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
    let elapsed = started.elapsed();
    let html = match &args.out {
        Some(dir) => Some(
            sim::html::write_report(&report, dir)
                .with_context(|| format!("writing the report into {}", dir.display()))?,
        ),
        None => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
        println!("finished in {:.1} s", elapsed.as_secs_f64());
        if let Some(h) = html {
            println!("report: {}", h.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn print_model(label: &str, m: &ModelScore) {
    println!(
        "{label} ({}): {} alerts, {} true, {} false; recall {}, precision {}; estimated / true minutes within 2 m: median {:.2}",
        m.model,
        m.alerts,
        m.true_alerts,
        m.false_alerts,
        pct(m.recall),
        pct(m.precision),
        m.estimated_over_true_p50
    );
}

fn print_text(r: &SimReport) {
    let t = &r.tracing;
    let e = &r.epidemic;
    let n = &r.network;
    let s = &r.storage;
    println!(
        "town: {} people in {} households, {} with the app ({}), {} days from {} (seed {})",
        r.config.agents,
        r.town.households,
        r.adopters,
        pct(r.config.adoption),
        r.config.days,
        r.config.start,
        r.config.seed
    );
    println!(
        "epidemic: {} initial cases; {} infections with tracing, {} without; {} positive tests, {} found after an alert",
        e.initial_infections,
        e.infections,
        e.infections_without_tracing,
        e.positive_tests,
        e.positives_after_alert
    );
    println!(
        "reports: {} of {} cases ({} had the app); {} alerts: {} true, {} false; {} low-risk matches",
        t.reports,
        t.cases,
        t.cases_with_app,
        t.alerts,
        t.true_alerts,
        t.false_alerts,
        t.low_risk_exposures
    );
    println!(
        "scanning: {:.0} s every {:.0} s; risk model: {} (beside it: {})",
        r.config.scan_window_s,
        r.config.scan_interval_s,
        r.config.risk_model,
        r.config.baseline_model
    );
    println!(
        "recall (both have the app): {} of {} true contacts; precision: {}; estimated / true minutes within 2 m: median {:.2}",
        pct(t.recall),
        t.true_contacts_both_app,
        pct(t.precision),
        t.estimated_over_true_p50
    );
    print_model("the other rule on the same matches", &r.tracing_baseline);
    println!(
        "share of all true contacts warned: {} of {}; infected contacts of reporters warned: {} of {}",
        pct(t.population_recall),
        t.true_contacts_all,
        t.infected_by_reporters_warned,
        t.infected_by_reporters
    );
    println!(
        "positive test → alert: median {:.1} h, p90 {:.1} h, max {:.1} h ({} within 24 h)",
        t.alert_delay_hours.p50,
        t.alert_delay_hours.p90,
        t.alert_delay_hours.max,
        pct(t.alerts_within_24h)
    );
    println!(
        "report → alert (the mesh): median {:.1} min, p90 {:.1} min, max {:.0} min",
        t.report_to_alert_minutes.p50, t.report_to_alert_minutes.p90, t.report_to_alert_minutes.max
    );
    if t.false_alerts > 0 {
        let places: Vec<String> = t
            .false_alerts_by_place
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "false alerts by place: {}; closest approach median {:.1} m",
            places.join(", "),
            t.false_alert_closest_m.p50
        );
    }
    println!(
        "announcement per case: {:.0} bytes on average (max {:.0}), {:.0} real tokens",
        n.announcement_bytes_per_case.mean,
        n.announcement_bytes_per_case.max,
        n.real_tokens_per_case.mean
    );
    println!(
        "received per node per day: {:.0} bytes (full node {:.0}, light node {:.0}; digests {:.0})",
        n.bytes_received_per_node_per_day,
        n.full_node_bytes_per_day,
        n.light_node_bytes_per_day,
        n.digest_bytes_per_node_per_day
    );
    println!(
        "stored per node: median {:.0} KiB, p90 {:.0} KiB ({:.0} bytes per encounter, {:.2} encounters per heard ID, from {} encounters)",
        s.stored_bytes_per_node.p50 / 1024.0,
        s.stored_bytes_per_node.p90 / 1024.0,
        s.bytes_per_encounter,
        s.encounters_per_heard_epoch,
        s.calibration_encounters
    );
    if let Some(a) = &r.replay_attack {
        println!(
            "replay attack: {} phones heard replayed IDs ({} encounters), {} alerts",
            a.victims, a.replayed_encounters, a.alerts
        );
    }
    if !r.sweep.is_empty() {
        println!("adoption  reports  alerts  recall  warned/all  precision  infections");
        for p in &r.sweep {
            println!(
                "{:>7.0} % {:>8} {:>7} {:>7} {:>11} {:>10} {:>11}",
                p.adoption * 100.0,
                p.reports,
                p.alerts,
                pct(p.recall),
                pct(p.population_recall),
                pct(p.precision),
                p.infections
            );
        }
    }
    if !r.scan_sweep.is_empty() {
        println!("scan every  model       recall  precision  estimated/true");
        for p in &r.scan_sweep {
            for m in [&p.tracing, &p.tracing_baseline] {
                println!(
                    "{:>8.0} s  {:<10} {:>7} {:>10} {:>15.2}",
                    p.scan_interval_s,
                    m.model,
                    pct(m.recall),
                    pct(m.precision),
                    m.estimated_over_true_p50
                );
            }
        }
    }
    println!(
        "token derivations (X25519 + HKDF): {}; tracker refusals: {}",
        t.token_derivations, t.refused_sightings
    );
}
