//! `meshtrace demo`: the zero-setup main job.
//!
//! Real nodes in one process: each with its own encrypted sled store in a
//! temporary directory (or `--out`), its own libp2p host on loopback TCP, the
//! real protocol and crypto. Only the radio and the clock are simulated: the
//! nodes share an in-memory air (log-distance path loss with shadowing noise,
//! duty-cycled scanning) and a manual clock that the demo moves through a
//! scripted day ([`script`]) much faster than real time. One person tests
//! positive, a clinic (a real issuer key) certifies the report, the person's
//! node publishes it over the mesh, and every other node matches it on its
//! own. The demo prints how long each alert took (real wall-clock time from
//! submitting the report) and compares who was warned with the script's
//! ground truth.

mod script;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use meshtrace_node::clock::{Clock, ManualClock, SharedClock, SystemClock};
use meshtrace_node::node::{self, NodeEvent, NodeHandle, NodeSettings};
use meshtrace_node::p2p::libp2p::identity::Keypair;
use meshtrace_node::p2p::libp2p::multiaddr::Protocol;
use meshtrace_node::p2p::{self, P2pConfig, P2pEvent};
use meshtrace_node::protocol::{
    Certificate, CertificateParams, IssuerSecretKey, ReportRequest, UnixTime,
};
use meshtrace_node::radio::memory::{DeviceConfig, MemoryAir};
use meshtrace_node::radio::model::{DutyCycle, PathLossModel};
use meshtrace_node::store::{ContactStore, KdfParams, KeySource, StoreConfig, StoredExposure};
use meshtrace_node::trust::TrustedIssuers;
use rand::rngs::{StdRng, SysRng};
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::output::{count, outln};
use script::{Role, Script, Truth};

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
const TICK_EVERY_SECONDS: u64 = 60;
/// Each node dials this many earlier nodes (fewer for the first ones).
const DIALS_PER_NODE: usize = 3;
/// Bound on starting a node's mesh and on the mesh forming.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the report reaching every node.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often delivery is checked while waiting.
const DELIVERY_POLL: Duration = Duration::from_millis(25);
/// Bound on each node's shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The demo's network id.
const NETWORK_ID: &str = "meshtrace-demo";
/// The issuer's name in every store's trust list.
const ISSUER_NAME: &str = "demo clinic";
/// The summary written into `--out`.
const SUMMARY_FILE: &str = "summary.json";
/// Token cap of the demo certificate.
const CERT_MAX_TOKENS: u32 = 4096;
/// Contact window of the certificate: this many days before the test.
const CERT_WINDOW_DAYS: u32 = 2;

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
}

/// The result of a demo run (printed as JSON with `--json`, written to
/// `summary.json` with `--out`).
#[derive(Debug, Serialize)]
struct Outcome {
    nodes: usize,
    seed: u64,
    /// The simulated day (UTC).
    day: String,
    /// Who tested positive.
    positive: String,
    /// People with ≥ 15 minutes within 2 m of the positive person.
    true_contacts: usize,
    /// People warned (a high-risk exposure).
    alerted: usize,
    true_positives: usize,
    false_positives: usize,
    false_negatives: usize,
    /// People with a low-risk exposure (a contact below the threshold).
    low_risk_notices: usize,
    /// Real time from submitting the report to the first and last alert.
    report_to_first_alert_ms: Option<u64>,
    report_to_last_alert_ms: Option<u64>,
    /// Nodes besides the reporter holding the report when the wait ended.
    report_reached: usize,
    /// Real time until every other node held the report (checked every
    /// 25 ms).
    report_to_all_nodes_ms: Option<u64>,
    /// Weighted minutes in a day that make an exposure high risk.
    high_risk_weighted_minutes: f64,
    report: ReportOut,
    people: Vec<PersonOut>,
    simulated_minutes: u64,
    timings_ms: Timings,
    /// Where the data directories are kept (`--out`).
    data_dir: Option<PathBuf>,
}

/// What the report published.
#[derive(Debug, Serialize)]
struct ReportOut {
    chunks: usize,
    real_tokens: usize,
    tokens_per_chunk: usize,
    padded_tokens: usize,
    window_first_day: String,
    window_last_day: String,
}

/// One person's line of the summary.
#[derive(Debug, Serialize)]
struct PersonOut {
    name: String,
    node: usize,
    household: usize,
    role: &'static str,
    /// Scenes shared with the positive person.
    met_positive_at: Vec<&'static str>,
    /// Minutes within 2 m of the positive person (script).
    close_minutes: f64,
    true_contact: bool,
    /// Encounters the node stored during the day.
    encounters: usize,
    exposure: Option<ExposureOut>,
    alerted: bool,
    /// Real time from the report to its first high-risk exposure event.
    alert_ms: Option<u64>,
    /// Real time from the report to its first low-risk exposure event.
    notice_ms: Option<u64>,
    verdict: &'static str,
}

/// The exposure a node found (its highest day).
#[derive(Debug, Serialize)]
struct ExposureOut {
    high_risk: bool,
    /// The day of the figures (UTC).
    day: String,
    weighted_minutes: f64,
    close_minutes: f64,
}

/// Real time spent in each phase (ms).
#[derive(Debug, Default, Serialize)]
struct Timings {
    setup: u64,
    day: u64,
    report: u64,
    shutdown: u64,
    total: u64,
}

/// Runs `meshtrace demo`.
pub(crate) fn run(args: &DemoArgs) -> Result<ExitCode> {
    if !(MIN_NODES..=MAX_NODES).contains(&args.nodes) {
        bail!(
            "--nodes must be between {MIN_NODES} and {MAX_NODES} (got {})",
            args.nodes
        );
    }
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

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Prints a story line unless the output is JSON (returning from the
/// function when standard output fails, see [`crate::output`]).
macro_rules! tell {
    ($quiet:expr) => { if !$quiet { outln!()?; } };
    ($quiet:expr, $($arg:tt)*) => { if !$quiet { outln!($($arg)*)?; } };
}

/// What was seen of each node after the report was submitted.
#[derive(Debug)]
struct Watch {
    /// When its first high-risk exposure event arrived.
    alert_at: Vec<Option<Instant>>,
    /// When its first low-risk exposure event arrived.
    notice_at: Vec<Option<Instant>>,
    /// When it was seen holding the whole report.
    reached_at: Vec<Option<Instant>>,
}

impl Watch {
    fn new(n: usize) -> Watch {
        Watch {
            alert_at: vec![None; n],
            notice_at: vec![None; n],
            reached_at: vec![None; n],
        }
    }

    /// Records when an exposure event arrived (the first of each kind).
    fn note(&mut self, i: usize, at: Instant, e: &StoredExposure) {
        let slot = if e.exposure.high_risk {
            &mut self.alert_at[i]
        } else {
            &mut self.notice_at[i]
        };
        if slot.is_none() {
            *slot = Some(at);
        }
    }
}

/// The mesh settings of every demo node: loopback TCP on a free port, no
/// mDNS (the demo must not talk to the LAN), timers for a fast local mesh.
fn mesh_config(issuer: &IssuerSecretKey) -> P2pConfig {
    P2pConfig::builder(NETWORK_ID)
        .trusted_issuers(TrustedIssuers::new([issuer.public()]))
        .listen(vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|_| unreachable!("a valid multiaddr")),
        ])
        .mdns(false)
        .heartbeat(Duration::from_millis(100))
        .stem_timeout(Duration::from_secs(2))
        .sync_interval(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|_| unreachable!("valid demo mesh settings"))
}

/// Runs every node's periodic work at the current simulated time, all
/// nodes at once, and waits for them.
async fn tick_all(handles: &[NodeHandle]) -> Result<()> {
    let mut pending: Vec<_> = handles.iter().map(|h| Box::pin(h.tick())).collect();
    let mut failed = None;
    std::future::poll_fn(|cx| {
        pending.retain_mut(|f| match f.as_mut().poll(cx) {
            Poll::Ready(r) => {
                if let Err(e) = r {
                    failed = Some(e);
                }
                false
            }
            Poll::Pending => true,
        });
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    match failed {
        Some(e) => Err(e).context("a node stopped during the day"),
        None => Ok(()),
    }
}

/// Waits (bounded) until every node has `min` full peers (subscribed to
/// the announcements topic) in the mesh.
async fn wait_for_mesh(handles: &[NodeHandle], min: usize) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    for h in handles {
        loop {
            let st = h.status().await.context("node status")?;
            if st
                .mesh
                .as_ref()
                .is_some_and(|m| m.peers.iter().filter(|p| p.full).count() >= min)
            {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "the local mesh did not form within {} s",
                    STARTUP_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(DELIVERY_POLL).await;
        }
    }
    Ok(())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

async fn demo(args: &DemoArgs, root: &Path) -> Result<Outcome> {
    let quiet = args.json;
    let started = Instant::now();
    let script = Script::new(args.nodes);
    let n = script.people.len();
    let index = script.index;
    let positive = script.people[index].name;

    // The day is yesterday (UTC) from 07:00: a whole day in the past that
    // lies inside every retention window, so `--out` stores stay readable.
    let yesterday = SystemClock.now().day().minus(1);
    let t0 = yesterday.start().0 + script::DAY_START_HOUR * 3600;
    let clock = ManualClock::new(UnixTime(t0));
    let shared: SharedClock = Arc::new(clock.clone());
    let model = PathLossModel::default();
    let air = MemoryAir::new(model, DutyCycle::default(), args.seed)
        .context("setting up the simulated air")?;
    let mut topology = StdRng::seed_from_u64(args.seed);
    let mut os_rng = StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    let issuer = IssuerSecretKey::generate(&mut os_rng);

    tell!(
        quiet,
        "meshtrace demo: {n} people, each with a real node on this machine"
    );
    tell!(
        quiet,
        "  libp2p on 127.0.0.1, an encrypted sled store each, in {}",
        root.display()
    );
    tell!(
        quiet,
        "  a simulated Bluetooth air (path loss with {} dB shadowing, duty-cycled scans)",
        model.shadowing_sigma_db
    );
    tell!(
        quiet,
        "  every store trusts the issuer \"{ISSUER_NAME}\" {}",
        issuer.public().to_hex()
    );

    // Nodes: store, radio, mesh, node task.
    let mut handles: Vec<NodeHandle> = Vec::with_capacity(n);
    let mut addrs: Vec<p2p::libp2p::Multiaddr> = Vec::with_capacity(n);
    let (alert_tx, mut alerts) = mpsc::unbounded_channel::<(usize, Instant, StoredExposure)>();
    for (i, person) in script.people.iter().enumerate() {
        let who = person.name;
        let dir = root.join(format!("{i:02}-{}", who.to_lowercase()));
        let mut store = ContactStore::create(
            &dir,
            &KeySource::KeyFile(dir.join("master.key")),
            KdfParams::DEFAULT,
            StoreConfig::default(),
            clock.now(),
        )
        .with_context(|| format!("creating {who}'s store"))?;
        store
            .add_trusted_issuer(issuer.public(), ISSUER_NAME)
            .with_context(|| format!("trusting the issuer in {who}'s store"))?;
        let radio = air
            .add_device(DeviceConfig {
                trajectory: script.trajectory(i, t0),
                ..DeviceConfig::default()
            })
            .context("adding a simulated radio")?;
        let mut mesh = p2p::spawn(
            mesh_config(&issuer),
            Keypair::generate_ed25519(),
            shared.clone(),
            Vec::new(),
        )
        .await
        .with_context(|| format!("starting {who}'s mesh"))?;
        let addr = loop {
            match tokio::time::timeout(STARTUP_TIMEOUT, mesh.events.recv()).await {
                Ok(Some(P2pEvent::Listening(a))) => break a.with(Protocol::P2p(mesh.peer_id())),
                Ok(Some(_)) => {}
                Ok(None) => bail!("{who}'s mesh stopped before listening"),
                Err(_) => bail!(
                    "{who}'s mesh did not listen on 127.0.0.1 within {} s",
                    STARTUP_TIMEOUT.as_secs()
                ),
            }
        };
        let mut dialed: Vec<usize> = Vec::new();
        while dialed.len() < i.min(DIALS_PER_NODE) {
            let t = topology.random_range(0..i);
            if !dialed.contains(&t) {
                dialed.push(t);
                mesh.dial(addrs[t].clone())
                    .await
                    .with_context(|| format!("{who}'s mesh"))?;
            }
        }
        addrs.push(addr);
        let mut settings = NodeSettings::new(NETWORK_ID);
        // The demo runs the nodes' periodic work itself, on simulated time.
        settings.tick = Duration::from_secs(3600);
        let mut handle = node::start(settings, store, radio, mesh, shared.clone())
            .await
            .with_context(|| format!("starting {who}'s node"))?;
        // Exposures as they happen, time-stamped on arrival.
        let mut events = std::mem::replace(&mut handle.events, mpsc::channel(1).1);
        let tx = alert_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let NodeEvent::Exposure(e) = ev {
                    let _ = tx.send((i, Instant::now(), e));
                }
            }
        });
        handles.push(handle);
    }
    drop(alert_tx);
    // The mesh forms while the day runs; the gossip mesh grafts peers on
    // its heartbeats once they have subscribed.
    wait_for_mesh(&handles, n.saturating_sub(1).min(DIALS_PER_NODE)).await?;
    let setup = started.elapsed();
    tell!(quiet, "  {n} nodes up in {}", secs(setup));
    // Every node's first periodic work (its first key, its first
    // advertisement) at the start of the day, whatever the scheduling.
    tick_all(&handles).await?;

    // The day.
    tell!(quiet);
    tell!(
        quiet,
        "The day: {yesterday} (UTC), {} minutes of simulated time",
        script.seconds() / 60
    );
    for (at, what) in script.scenes() {
        tell!(quiet, "  {at}  {what}");
    }
    let day_started = Instant::now();
    for s in 1..=script.seconds() {
        clock.set_millis((t0 + s) * 1000);
        if s % TICK_EVERY_SECONDS == 0 {
            tick_all(&handles).await?;
        }
        air.step(clock.now_millis());
    }
    tick_all(&handles).await?;
    let mut encounters = Vec::with_capacity(n);
    for h in &handles {
        encounters.push(h.status().await.context("node status")?.encounters);
    }
    let day = day_started.elapsed();
    tell!(
        quiet,
        "  simulated in {} of real time; the nodes stored {} encounters",
        secs(day),
        encounters.iter().sum::<usize>()
    );

    // The report: request, certificate, plan, submit.
    let report_started = Instant::now();
    let reporter = &handles[index];
    let request_code = reporter
        .report_request()
        .await
        .context("creating the report request")?;
    let request = ReportRequest::from_code(&request_code).context("the report request code")?;
    let now = clock.now();
    let cert = Certificate::issue(
        &issuer,
        CertificateParams {
            network_id: request.network_id.clone(),
            report_key: request.report_key,
            valid_from: now,
            valid_until: now.plus(3 * 86_400),
            window_first_day: now.day().minus(CERT_WINDOW_DAYS),
            window_last_day: now.day(),
            max_tokens: CERT_MAX_TOKENS,
        },
    )
    .map_err(|e| anyhow::anyhow!("certifying the report: {e}"))?;
    let plan = reporter
        .report_plan(cert.to_code())
        .await
        .context("planning the report")?;
    tell!(quiet);
    tell!(quiet, "The report:");
    tell!(
        quiet,
        "  {positive}'s node makes a one-time report key and shows the request code {request_code}"
    );
    tell!(
        quiet,
        "  \"{ISSUER_NAME}\" checks the test result and certifies it: contact window {} to {}",
        plan.window.0,
        plan.window.1
    );
    tell!(
        quiet,
        "  {positive}'s node publishes {}, padded to {} of {} tokens,",
        count(
            plan.plan.real_tokens as u64,
            "encounter token",
            "encounter tokens"
        ),
        count(plan.plan.chunks as u64, "chunk", "chunks"),
        plan.plan.tokens_per_chunk
    );
    tell!(
        quiet,
        "  through two stem hops (hiding who published it), then gossip; each node matches it on its own"
    );
    let submitted = Instant::now();
    let sent = reporter
        .report_submit(cert.to_code())
        .await
        .context("submitting the report")?;
    let chunks = sent.chunks.len();
    let mut watch = Watch::new(n);
    watch.reached_at[index] = Some(submitted);

    // Wait (bounded) until every node holds the whole report, recording the
    // exposure events as they arrive.
    let deadline = submitted + DELIVERY_TIMEOUT;
    let mut poll = tokio::time::interval(DELIVERY_POLL);
    loop {
        tokio::select! {
            ev = alerts.recv() => {
                let Some((i, at, e)) = ev else { break };
                watch.note(i, at, &e);
            }
            _ = poll.tick() => {
                for (i, h) in handles.iter().enumerate() {
                    if watch.reached_at[i].is_none()
                        && h.status().await.context("node status")?.announcements >= chunks
                    {
                        watch.reached_at[i] = Some(Instant::now());
                    }
                }
                if watch.reached_at.iter().all(Option::is_some) || Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    // The stores are the record. A node that matched before the wait ended
    // has sent its event; wait (bounded) for any still on its way.
    let mut stored: Vec<Vec<StoredExposure>> = Vec::with_capacity(n);
    for h in &handles {
        stored.push(h.exposures().await.context("node exposures")?);
    }
    let missing = |w: &Watch| {
        stored.iter().enumerate().any(|(i, s)| {
            (s.iter().any(|e| e.exposure.high_risk) && w.alert_at[i].is_none())
                || (s.iter().any(|e| !e.exposure.high_risk) && w.notice_at[i].is_none())
        })
    };
    while missing(&watch) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, alerts.recv()).await {
            Ok(Some((i, at, e))) => watch.note(i, at, &e),
            _ => break,
        }
    }
    let report = report_started.elapsed();

    // Shut down: close open encounters, flush, stop.
    let shutdown_started = Instant::now();
    for (h, p) in handles.iter().zip(&script.people) {
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, h.shutdown()).await {
            Ok(r) => r.with_context(|| format!("stopping {}'s node", p.name))?,
            Err(_) => bail!(
                "{}'s node did not stop within {} s",
                p.name,
                SHUTDOWN_TIMEOUT.as_secs()
            ),
        }
    }
    drop(handles);
    let shutdown = shutdown_started.elapsed();

    // Score against the script.
    let truth = script.truth(t0, model.max_range_m);
    let mut people = Vec::with_capacity(n);
    for (i, p) in script.people.iter().enumerate() {
        let t: Truth = truth[i];
        let exposure = stored[i]
            .iter()
            .find(|e| e.exposure.high_risk)
            .or_else(|| stored[i].first())
            .map(|e| {
                let best = e
                    .exposure
                    .days
                    .iter()
                    .max_by(|a, b| a.weighted_minutes.total_cmp(&b.weighted_minutes));
                ExposureOut {
                    high_risk: e.exposure.high_risk,
                    day: best.map_or_else(String::new, |d| d.day.to_string()),
                    weighted_minutes: round1(best.map_or(0.0, |d| d.weighted_minutes)),
                    close_minutes: round1(best.map_or(0.0, |d| d.close_minutes)),
                }
            });
        let alerted = stored[i].iter().any(|e| e.exposure.high_risk);
        let contact = i != index && t.is_contact();
        let verdict = match (i == index, contact, alerted) {
            (true, _, false) => "tested positive",
            (true, _, true) => "false positive (own report)",
            (false, true, true) => "true positive",
            (false, false, true) => "false positive",
            (false, true, false) => "false negative",
            (false, false, false) => "true negative",
        };
        let role = match p.role {
            _ if i == index => "tested positive",
            Role::Worker { seat: Some(_), .. } => "office, by bus",
            Role::Worker { seat: None, .. } => "office",
            Role::AtHome => "at home",
        };
        people.push(PersonOut {
            name: p.name.to_owned(),
            node: i,
            household: p.household + 1,
            role,
            met_positive_at: if i == index {
                Vec::new()
            } else {
                script.shared_places(i)
            },
            close_minutes: round1(t.close_seconds as f64 / 60.0),
            true_contact: contact,
            encounters: encounters[i],
            exposure,
            alerted,
            alert_ms: watch.alert_at[i].map(|a| ms(a.saturating_duration_since(submitted))),
            notice_ms: watch.notice_at[i].map(|a| ms(a.saturating_duration_since(submitted))),
            verdict,
        });
    }
    let count = |v: &str| people.iter().filter(|p| p.verdict == v).count();
    let alert_ms: Vec<u64> = people.iter().filter_map(|p| p.alert_ms).collect();
    let all_reached = watch
        .reached_at
        .iter()
        .copied()
        .collect::<Option<Vec<Instant>>>()
        .and_then(|v| v.into_iter().max())
        .map(|t| ms(t.saturating_duration_since(submitted)));
    Ok(Outcome {
        nodes: n,
        seed: args.seed,
        day: yesterday.to_string(),
        positive: positive.to_owned(),
        true_contacts: people.iter().filter(|p| p.true_contact).count(),
        alerted: people.iter().filter(|p| p.alerted).count(),
        true_positives: count("true positive"),
        false_positives: count("false positive") + count("false positive (own report)"),
        false_negatives: count("false negative"),
        low_risk_notices: people
            .iter()
            .filter(|p| p.exposure.as_ref().is_some_and(|e| !e.high_risk))
            .count(),
        report_to_first_alert_ms: alert_ms.iter().copied().min(),
        report_to_last_alert_ms: alert_ms.iter().copied().max(),
        report_reached: watch
            .reached_at
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != index && r.is_some())
            .count(),
        report_to_all_nodes_ms: all_reached,
        high_risk_weighted_minutes: NodeSettings::new(NETWORK_ID)
            .risk
            .high_risk_weighted_minutes(),
        report: ReportOut {
            chunks,
            real_tokens: sent.plan.real_tokens,
            tokens_per_chunk: sent.plan.tokens_per_chunk,
            padded_tokens: sent.plan.tokens_per_chunk * chunks,
            window_first_day: sent.window.0.to_string(),
            window_last_day: sent.window.1.to_string(),
        },
        people,
        simulated_minutes: script.seconds() / 60,
        timings_ms: Timings {
            setup: ms(setup),
            day: ms(day),
            report: ms(report),
            shutdown: ms(shutdown),
            total: ms(started.elapsed()),
        },
        data_dir: args.out.clone(),
    })
}

/// The alerts of the human output, in the order they came, with the same
/// figures as the table and the JSON.
fn print_alerts(o: &Outcome) -> Result<()> {
    outln!()?;
    outln!("Alerts (real time after the report was submitted):")?;
    let mut lines: Vec<(u64, &PersonOut, &ExposureOut)> = o
        .people
        .iter()
        .filter_map(|p| {
            let e = p.exposure.as_ref()?;
            let at = if e.high_risk { p.alert_ms } else { p.notice_ms };
            Some((at?, p, e))
        })
        .collect();
    lines.sort_by_key(|(at, p, _)| (*at, p.node));
    if lines.is_empty() {
        outln!("  nobody")?;
    }
    for (at, p, e) in lines {
        if e.high_risk {
            outln!(
                "  {:>+6} ms  {} is warned: high-risk exposure, {:.1} weighted minutes on {}",
                at,
                p.name,
                e.weighted_minutes,
                e.day
            )?;
        } else {
            outln!(
                "  {:>+6} ms  {} gets a low-risk notice: {:.1} weighted minutes on {}, below the threshold of {}",
                at,
                p.name,
                e.weighted_minutes,
                e.day,
                o.high_risk_weighted_minutes
            )?;
        }
    }
    Ok(())
}

/// The closing table of the human output.
fn print_summary(o: &Outcome) -> Result<()> {
    outln!()?;
    outln!(
        "Who was warned, against the script (a true contact spent ≥ {} minutes within {} m of {}):",
        script::TRUE_CONTACT_MINUTES,
        script::CLOSE_M,
        o.positive
    )?;
    outln!(
        "  {:<6} {:<16} {:<18} {:>9} {:>9} {:>9}  verdict",
        "name",
        "their day",
        "met them at",
        "close min",
        "weighted",
        "alert ms"
    )?;
    for p in &o.people {
        let weighted = p
            .exposure
            .as_ref()
            .map_or("-".to_owned(), |e| format!("{:.1}", e.weighted_minutes));
        let alert = p.alert_ms.map_or("-".to_owned(), |a| a.to_string());
        let met = if p.met_positive_at.is_empty() {
            "-".to_owned()
        } else {
            p.met_positive_at.join(", ")
        };
        let verdict = match &p.exposure {
            Some(e) if !e.high_risk => format!("{} (low-risk notice)", p.verdict),
            _ => p.verdict.to_owned(),
        };
        let close = if p.verdict == "tested positive" {
            "-".to_owned()
        } else {
            format!("{:.1}", p.close_minutes)
        };
        outln!(
            "  {:<6} {:<16} {:<18} {:>9} {:>9} {:>9}  {verdict}",
            p.name,
            p.role,
            met,
            close,
            weighted,
            alert
        )?;
    }
    outln!()?;
    outln!(
        "{}, {} warned: {}, {}, {}",
        count(o.true_contacts as u64, "true contact", "true contacts"),
        o.alerted,
        count(o.true_positives as u64, "true positive", "true positives"),
        count(
            o.false_positives as u64,
            "false positive",
            "false positives"
        ),
        count(
            o.false_negatives as u64,
            "false negative",
            "false negatives"
        ),
    )?;
    match (o.report_to_first_alert_ms, o.report_to_last_alert_ms) {
        (Some(first), Some(last)) => outln!(
            "report → alerts (real time): first {first} ms, last {last} ms{}",
            o.report_to_all_nodes_ms.map_or(String::new(), |a| format!(
                "; all {} held the report after {a} ms",
                count(o.report_reached as u64, "other node", "other nodes")
            ))
        )?,
        _ => outln!("no alerts")?,
    }
    outln!(
        "timings: setup {} ms, the day {} ms, report and alerts {} ms, shutdown {} ms, total {} ms",
        o.timings_ms.setup,
        o.timings_ms.day,
        o.timings_ms.report,
        o.timings_ms.shutdown,
        o.timings_ms.total
    )?;
    match &o.data_dir {
        Some(d) => outln!(
            "kept: the nodes' data directories and {SUMMARY_FILE} in {}",
            d.display()
        )?,
        None => outln!(
            "nothing kept: the temporary data directories are removed (use --out DIR to keep them)"
        )?,
    }
    Ok(())
}
