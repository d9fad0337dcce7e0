//! The demo's steps: set up the nodes, run the day, publish the report and
//! wait for it, collect what the nodes stored and stop them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meshtrace_node::clock::{Clock, SystemClock};
use meshtrace_node::protocol::{
    Certificate, CertificateParams, Day, IssuerSecretKey, ReportRequest, RiskConfig, RiskModel,
    UnixTime,
};
use meshtrace_node::radio::ScanTiming;
use meshtrace_node::radio::memory::MemoryAir;
use meshtrace_node::radio::model::{DutyCycle, PathLossModel};
use meshtrace_node::store::{ContactStore, KdfParams, KeySource, StoreConfig, StoredExposure};
use meshtrace_node::{NodeEvent, NodeSettings, ReportSummary};
use meshtrace_sim::harness::{self, Harness, NodeSpec};
use rand::rngs::{StdRng, SysRng};
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

use super::outcome::Watch;
use super::script::{self, Script};
use super::{
    CERT_MAX_TOKENS, CERT_WINDOW_DAYS, DELIVERY_POLL, DELIVERY_TIMEOUT, DIALS_PER_NODE,
    ISSUER_NAME, NETWORK_ID, SHUTDOWN_TIMEOUT, STARTUP_TIMEOUT, TICK_EVERY_SECONDS, secs,
};
use crate::output::{count, outln};

/// Exposure events waiting for the demo to read them, across all nodes
/// (each node sends one or two).
const ALERT_CHANNEL: usize = 256;
/// How long a certified report may be submitted.
const CERT_VALID_SECONDS: u64 = 3 * 86_400;

/// An exposure event of node `.0`, time-stamped on arrival.
type Alert = (usize, Instant, StoredExposure);

/// The running demo: the script, the nodes and the issuer.
pub(super) struct Setup {
    /// Who does what during the day.
    pub(super) script: Script,
    /// The simulated day (UTC).
    pub(super) day: Day,
    /// The day's first second (Unix time).
    pub(super) t0: u64,
    /// The radio model of the air.
    pub(super) model: PathLossModel,
    /// When the radios listen (simulated time).
    pub(super) scan: ScanTiming,
    /// The nodes' risk rules.
    pub(super) risk: RiskConfig,
    /// The clock, the air and the nodes.
    pub(super) harness: Harness,
    /// The clinic's key.
    pub(super) issuer: IssuerSecretKey,
    /// Every node's exposure events.
    pub(super) alerts: mpsc::Receiver<Alert>,
    /// Real time the set-up took.
    pub(super) took: Duration,
}

/// Starts one node per person, each with its own store in `root`, and waits
/// for the mesh to form.
pub(super) async fn set_up(
    n: usize,
    seed: u64,
    scan: ScanTiming,
    root: &Path,
    quiet: bool,
) -> Result<Setup> {
    let started = Instant::now();
    let script = Script::new(n);
    // The day is yesterday (UTC) from 07:00: a whole day in the past that
    // lies inside every retention window, so `--out` stores stay readable.
    let day = SystemClock.now().day().minus(1);
    let t0 = day.start().0 + script::DAY_START_HOUR * 3600;
    let model = PathLossModel::default();
    let mut h = Harness::new(UnixTime(t0), model, seed, STARTUP_TIMEOUT)?;
    // The harness's air scans with the default duty cycle: this one scans
    // as the demo says (no device is on the air yet).
    h.air = MemoryAir::new(model, scan.duty(DutyCycle::default()), seed)
        .map_err(|e| anyhow::anyhow!("setting up the simulated air: {e}"))?;
    let mut topology = StdRng::seed_from_u64(seed);
    let mut os_rng = StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    let issuer = IssuerSecretKey::generate(&mut os_rng);
    // What `[risk] model` gives by default: the calibrated estimate.
    let risk = RiskConfig::builder()
        .model(RiskModel::Calibrated)
        .build()
        .map_err(|e| anyhow::anyhow!("the risk rules: {e}"))?;

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
        "  a simulated Bluetooth air (path loss with {} dB shadowing); the radios scan {}",
        model.shadowing_sigma_db,
        super::scan_words(&scan)
    );
    tell!(
        quiet,
        "  every store trusts the issuer \"{ISSUER_NAME}\" {}",
        issuer.public().to_hex()
    );

    let (alert_tx, alerts) = mpsc::channel::<Alert>(ALERT_CHANNEL);
    for (i, person) in script.people.iter().enumerate() {
        let who = person.name;
        let dir = root.join(format!("{i:02}-{}", who.to_lowercase()));
        let mut store = ContactStore::create(
            &dir,
            &KeySource::KeyFile(dir.join("master.key")),
            KdfParams::DEFAULT,
            StoreConfig::default(),
            h.clock.now(),
        )
        .with_context(|| format!("creating {who}'s store"))?;
        store
            .add_trusted_issuer(issuer.public(), ISSUER_NAME)
            .with_context(|| format!("trusting the issuer in {who}'s store"))?;
        let mut dial: Vec<usize> = Vec::new();
        while dial.len() < i.min(DIALS_PER_NODE) {
            let t = topology.random_range(0..i);
            if !dial.contains(&t) {
                dial.push(t);
            }
        }
        let mut settings = NodeSettings::new(NETWORK_ID);
        settings.risk = risk.clone();
        // The demo runs the nodes' periodic work itself, on simulated time.
        settings.tick = Duration::from_secs(3600);
        h.add_node(NodeSpec {
            store,
            trajectory: script.trajectory(i, t0),
            settings,
            mesh: harness::mesh_config(NETWORK_ID, vec![issuer.public()]),
            dial,
        })
        .await
        .with_context(|| format!("starting {who}'s node"))?;
        // Exposures as they happen, time-stamped on arrival.
        let mut events = std::mem::replace(&mut h.nodes[i].events, mpsc::channel(1).1);
        let tx = alert_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let NodeEvent::Exposure(e) = ev
                    && tx.send((i, Instant::now(), e)).await.is_err()
                {
                    break;
                }
            }
        });
    }
    drop(alert_tx);
    // The mesh forms while the day runs; the gossip mesh grafts peers on
    // its heartbeats once they have subscribed.
    harness::wait_for_full_peers(
        &h.nodes,
        n.saturating_sub(1).min(DIALS_PER_NODE),
        STARTUP_TIMEOUT,
    )
    .await?;
    let took = started.elapsed();
    tell!(quiet, "  {n} nodes up in {}", secs(took));
    Ok(Setup {
        script,
        day,
        t0,
        model,
        scan,
        risk,
        harness: h,
        issuer,
        alerts,
        took,
    })
}

/// Runs the scripted day; returns each node's stored encounters.
pub(super) async fn run_day(s: &Setup, quiet: bool) -> Result<Vec<usize>> {
    let h = &s.harness;
    // Every node's first periodic work (its first key, its first
    // advertisement) at the start of the day, whatever the scheduling.
    harness::tick_all(&h.nodes).await?;
    tell!(quiet);
    tell!(
        quiet,
        "The day: {} (UTC), {} minutes of simulated time",
        s.day,
        s.script.seconds() / 60
    );
    for (at, what) in s.script.scenes() {
        tell!(quiet, "  {at}  {what}");
    }
    let day_started = Instant::now();
    h.advance(s.script.seconds(), TICK_EVERY_SECONDS)
        .await
        .context("running the day")?;
    harness::tick_all(&h.nodes).await?;
    let mut encounters = Vec::with_capacity(h.nodes.len());
    for node in &h.nodes {
        encounters.push(node.status().await.context("node status")?.encounters);
    }
    tell!(
        quiet,
        "  simulated in {} of real time; the nodes stored {} encounters",
        secs(day_started.elapsed()),
        encounters.iter().sum::<usize>()
    );
    Ok(encounters)
}

/// What happened to the report.
pub(super) struct Delivery {
    /// What the reporter published.
    pub(super) sent: ReportSummary,
    /// Its chunks.
    pub(super) chunks: usize,
    /// When it was submitted.
    pub(super) submitted: Instant,
    /// When each node held it and was warned.
    pub(super) watch: Watch,
    /// Each node's stored encounters after the day.
    pub(super) encounters: Vec<usize>,
}

/// The report: request, certificate, plan, submit; then waits (bounded)
/// until every node holds it, recording the exposure events as they come.
pub(super) async fn report(s: &mut Setup, encounters: Vec<usize>, quiet: bool) -> Result<Delivery> {
    let index = s.script.index;
    let positive = s.script.people[index].name;
    let reporter = &s.harness.nodes[index];
    let request_code = reporter
        .report_request()
        .await
        .context("creating the report request")?;
    let request = ReportRequest::from_code(&request_code).context("the report request code")?;
    let now = s.harness.clock.now();
    let cert = Certificate::issue(
        &s.issuer,
        CertificateParams {
            network_id: request.network_id.clone(),
            report_key: request.report_key,
            valid_from: now,
            valid_until: now.plus(CERT_VALID_SECONDS),
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
    let mut watch = Watch::new(s.harness.nodes.len());
    watch.reached_at[index] = Some(submitted);

    let deadline = submitted + DELIVERY_TIMEOUT;
    let mut poll = tokio::time::interval(DELIVERY_POLL);
    loop {
        tokio::select! {
            ev = s.alerts.recv() => {
                let Some((i, at, e)) = ev else { break };
                watch.note(i, at, &e);
            }
            _ = poll.tick() => {
                for (i, h) in s.harness.nodes.iter().enumerate() {
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
    Ok(Delivery {
        sent,
        chunks,
        submitted,
        watch,
        encounters,
    })
}

/// The exposures every node stored (the record), once every event for them
/// has arrived (bounded by the delivery deadline).
pub(super) async fn collect(s: &mut Setup, d: &mut Delivery) -> Result<Vec<Vec<StoredExposure>>> {
    let mut stored: Vec<Vec<StoredExposure>> = Vec::with_capacity(s.harness.nodes.len());
    for h in &s.harness.nodes {
        stored.push(h.exposures().await.context("node exposures")?);
    }
    let missing = |w: &Watch| {
        stored.iter().enumerate().any(|(i, e)| {
            (e.iter().any(|e| e.exposure.high_risk) && w.alert_at[i].is_none())
                || (e.iter().any(|e| !e.exposure.high_risk) && w.notice_at[i].is_none())
        })
    };
    let deadline = d.submitted + DELIVERY_TIMEOUT;
    while missing(&d.watch) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.alerts.recv()).await {
            Ok(Some((i, at, e))) => d.watch.note(i, at, &e),
            _ => break,
        }
    }
    Ok(stored)
}

/// Stops every node (closing open encounters, flushing its store).
pub(super) async fn shut_down(s: &mut Setup) -> Result<()> {
    let nodes = std::mem::take(&mut s.harness.nodes);
    for (h, p) in nodes.iter().zip(&s.script.people) {
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, h.shutdown()).await {
            Ok(r) => r.with_context(|| format!("stopping {}'s node", p.name))?,
            Err(_) => bail!(
                "{}'s node did not stop within {} s",
                p.name,
                SHUTDOWN_TIMEOUT.as_secs()
            ),
        }
    }
    Ok(())
}
