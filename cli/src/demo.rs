//! `meshtrace demo`: the zero-setup main job.
//!
//! Real nodes in one process: each with its own encrypted sled store in a
//! temporary directory (or `--out`), its own libp2p host on loopback TCP, the
//! real protocol and crypto. Only the radio and the clock are simulated: the
//! nodes share an in-memory air (log-distance path loss with shadowing noise,
//! duty-cycled scanning) and a manual clock that the demo moves through a
//! scripted day ([`script`]) much faster than real time. The radios scan
//! like phones: 4 s every 60 s of *simulated* time by default
//! ([`PHONE_SCAN`]; `--scan-interval`), so a node hears its neighbours in
//! one short window a minute, as a phone in a pocket would, however fast
//! the demo runs in real time. One person tests
//! positive, a clinic (a real issuer key) certifies the report, the person's
//! node publishes it over the mesh, and every other node matches it on its
//! own. The demo prints how long each alert took (real wall-clock time from
//! submitting the report) and compares who was warned with the script's
//! ground truth.

//!
//! The nodes run in [`meshtrace_sim::harness`], as in the end-to-end tests;
//! the steps are in [`steps`], the scoring and printing in [`outcome`].

/// Prints a story line unless the output is JSON (returning from the
/// function when standard output fails, see [`crate::output`]).
macro_rules! tell {
    ($quiet:expr) => { if !$quiet { outln!()?; } };
    ($quiet:expr, $($arg:tt)*) => { if !$quiet { outln!($($arg)*)?; } };
}

mod outcome;
mod script;
mod steps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use meshtrace_node::radio::{PHONE_SCAN, ScanTiming};

use crate::output::outln;
use outcome::{Outcome, Timings, print_alerts, print_summary};

/// Fewest people the demo runs with.
pub(crate) const MIN_NODES: usize = 3;
/// Most people the demo runs with (one process, two cores).
pub(crate) const MAX_NODES: usize = script::NAMES.len();
/// People by default.
pub(crate) const DEFAULT_NODES: usize = 12;
/// Seed of the simulated radio noise and of the mesh topology by default.
pub(crate) const DEFAULT_SEED: u64 = 2020;

/// The nodes' periodic work (key rotation, closing idle encounters, store
/// upkeep) runs every this many simulated seconds: it divides the 15-minute
/// key epoch, so rotations happen on time, and an encounter closes within a
/// minute of its 5-minute idle limit. Sightings flow all the time.
pub(super) const TICK_EVERY_SECONDS: u64 = 60;
/// Each node dials this many earlier nodes (fewer for the first ones).
pub(super) const DIALS_PER_NODE: usize = 3;
/// Bound on starting a node's mesh and on the mesh forming.
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the report reaching every node.
pub(super) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often delivery is checked while waiting.
pub(super) const DELIVERY_POLL: Duration = Duration::from_millis(25);
/// Bound on each node's shutdown.
pub(super) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The demo's network id.
pub(super) const NETWORK_ID: &str = "meshtrace-demo";
/// The issuer's name in every store's trust list.
pub(super) const ISSUER_NAME: &str = "demo clinic";
/// The summary written into `--out`.
pub(super) const SUMMARY_FILE: &str = "summary.json";
/// Token cap of the demo certificate.
pub(super) const CERT_MAX_TOKENS: u32 = 4096;
/// Contact window of the certificate: this many days before the test.
pub(super) const CERT_WINDOW_DAYS: u32 = 2;

/// Options of `meshtrace demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of people (nodes) in the scripted day, 3 to 64.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NODES)]
    nodes: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Keep the nodes' data directories and a summary in DIR (new or empty).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of the simulated radio noise and the mesh topology.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// The radios scan 4 s every this many simulated seconds (4 to 600;
    /// 60 is a phone saving its battery, 4 scans all the time).
    #[arg(long, value_name = "SECONDS", default_value_t = PHONE_SCAN.interval.as_secs())]
    scan_interval: u64,
}

impl DemoArgs {
    /// The radios' scan timing: [`PHONE_SCAN`]'s window every
    /// `--scan-interval` seconds.
    fn scan(&self) -> Result<ScanTiming> {
        let scan = ScanTiming {
            window: PHONE_SCAN.window,
            interval: Duration::from_secs(self.scan_interval),
        };
        scan.check()
            .map_err(|e| anyhow::anyhow!("--scan-interval {}: {e}", self.scan_interval))?;
        Ok(scan)
    }
}

/// Runs `meshtrace demo`.
pub(crate) fn run(args: &DemoArgs) -> Result<ExitCode> {
    if !(MIN_NODES..=MAX_NODES).contains(&args.nodes) {
        bail!(
            "--nodes must be between {MIN_NODES} and {MAX_NODES} (got {})",
            args.nodes
        );
    }
    args.scan()?;
    let temp;
    let root = match &args.out {
        Some(dir) => {
            prepare_out(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("meshtrace-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Ctrl-C ends the demo cleanly: the nodes stop and the temporary
    // directory is removed.
    let result = runtime.block_on(async {
        tokio::select! {
            r = demo(args, &root) => r,
            _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Stops what is left (mesh tasks) before the directory goes away.
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    let outcome = result?;
    if let Some(dir) = &args.out {
        let path = dir.join(SUMMARY_FILE);
        let json = serde_json::to_vec_pretty(&outcome).context("encoding the summary")?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&outcome).context("encoding the summary")?
        )?;
    } else {
        print_alerts(&outcome)?;
        print_summary(&outcome)?;
    }
    if outcome.report_reached + 1 < outcome.nodes {
        bail!(
            "the report reached only {} of {} other nodes within {} s",
            outcome.report_reached,
            outcome.nodes - 1,
            DELIVERY_TIMEOUT.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C (never, when the signal cannot be watched).
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Accepts a new or empty directory for `--out` (created if missing).
fn prepare_out(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(dir)
                .with_context(|| format!("--out {}: cannot read it", dir.display()))?;
            if entries.next().is_some() {
                bail!(
                    "--out {}: the directory is not empty (give a new or empty one)",
                    dir.display()
                );
            }
            Ok(())
        }
        Ok(_) => bail!("--out {}: exists and is not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)
            .with_context(|| format!("--out {}: cannot create it", dir.display())),
        Err(e) => bail!("--out {}: {e}", dir.display()),
    }
}

/// How the radios scan, in words: "4 s every 60 s of simulated time, like
/// phones saving their batteries" or "all the time".
pub(super) fn scan_words(scan: &ScanTiming) -> String {
    if scan.is_continuous() {
        "all the time".to_owned()
    } else {
        format!("{scan} of simulated time, like phones saving their batteries")
    }
}

pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The demo's steps: set up, run the day, report, collect, stop, score.
async fn demo(args: &DemoArgs, root: &Path) -> Result<Outcome> {
    let quiet = args.json;
    let started = Instant::now();
    let mut s = steps::set_up(args.nodes, args.seed, args.scan()?, root, quiet).await?;
    let day_started = Instant::now();
    let encounters = steps::run_day(&s, quiet).await?;
    let day = day_started.elapsed();
    let report_started = Instant::now();
    let mut delivery = steps::report(&mut s, encounters, quiet).await?;
    let stored = steps::collect(&mut s, &mut delivery).await?;
    let report = report_started.elapsed();
    let shutdown_started = Instant::now();
    steps::shut_down(&mut s).await?;
    let shutdown = shutdown_started.elapsed();
    let timings = Timings {
        setup: ms(s.took),
        day: ms(day),
        report: ms(report),
        shutdown: ms(shutdown),
        total: ms(started.elapsed()),
    };
    Ok(outcome::score(
        &s,
        &delivery,
        &stored,
        args.seed,
        timings,
        args.out.clone(),
    ))
}
