//! `meshtrace bench`: measures this machine against the DESIGN §8 targets.
//!
//! Every figure runs the real code of a node: the protocol crate for tokens,
//! verification and matching, a real encrypted sled store in a temporary
//! directory for ingest, and a real `meshtrace run` process (sled store,
//! libp2p on loopback, udp-sim radio) for idle memory and for memory with
//! 14 days of a 1,000-cases/day community held (a store generated with real
//! signed announcements, see [`rss_14d`]). Each timing is
//! repeated and the median reported; other processes on the machine add
//! noise, so compare figures measured in the same run.

use std::collections::HashSet;
use std::hint::black_box;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Args;
use meshtrace_node::protocol::{
    Certificate, CertificateParams, DAY_SECONDS, Encounter, EncounterToken, EncounterTracker,
    ExposureLedger, IssuerPublicKey, IssuerSecretKey, KeySchedule, MatchOutcome, ReportSecretKey,
    RiskConfig, Sighting, TokenIndex, UnixTime, VerifiedAnnouncement, VerifyContext,
    build_announcements, derive_token,
};
use meshtrace_node::store::{ContactStore, KdfParams, KeySource, StoreConfig};
use meshtrace_sim::workload;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

/// Options of `meshtrace bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Fewer and smaller repetitions (a few seconds; noisier figures).
    #[arg(long)]
    quick: bool,
}

/// A fixed time at noon (mid-epoch: one X25519 per new ID).
const T0: u64 = 20_000 * DAY_SECONDS + 12 * 3600 + 450;
/// Encounters in the receiver's 14-day log (DESIGN §8 reference load).
const RECEIVER_ENCOUNTERS: usize = 20_000;
/// Reported cases in one day of the reference load.
const CASES_PER_DAY: usize = 1_000;
/// Real tokens of one reported case: ~900 distinct contacts in 14 days,
/// published in the 1024-token bucket.
const TOKENS_PER_CASE: usize = 898;
/// One case in this many shares two encounters with the receiver.
const MATCHING_CASE_EVERY: usize = 50;
/// Token probes per timed batch.
const PROBES: usize = 1 << 16;
/// How the figures are timed (printed with them).
const TIMING: &str = "median of repetitions; CPU time of the measuring thread \
     (/proc/thread-self/schedstat), except ingest (it waits for the disk) and \
     per_case_batched_us (it runs on every core): wall-clock";
/// Days of held announcements in the memory figure (the retention window).
const RSS_DAYS: u32 = 14;
/// Real tokens of one case in the memory figure: one chunk of the 256-token
/// bucket (≈ 4 KiB, issue 18's size target; the protocol's builder decides
/// the bytes, so the figure follows the wire format).
const RSS_TOKENS_PER_CASE: usize = 200;
/// Announcements written to the store per batch while generating it.
const RSS_FLUSH_EVERY: usize = 500;
/// Network id of the benchmark.
const NETWORK: &str = "bench";

/// Every figure the command prints.
#[derive(Debug, Serialize)]
struct Report {
    /// "release" or "debug" (debug figures are meaningless).
    build_profile: &'static str,
    /// Logical CPUs available to this process.
    cores: usize,
    /// 1-minute load average when the run started (noise indicator).
    load_average_at_start: Option<f64>,
    /// Whether `--quick` was given.
    quick: bool,
    /// How sections are timed.
    timing: &'static str,
    /// Wall-clock over CPU time of the timed sections: 1.0 when the
    /// benchmark had a core to itself, 2.0 when other processes took half.
    wall_over_cpu: f64,
    /// First sightings of a new ID per second (X25519 + HKDF in the tracker).
    sighting_tokens_per_s: f64,
    /// One token derivation (X25519 + HKDF), µs.
    derive_token_us: f64,
    /// Certificate + announcement chunk (1024 tokens) verification, µs.
    verify_us: f64,
    /// Sorted announcement tokens probed against 20,000 stored per second.
    token_probes_per_s: f64,
    /// Baseline: `std::collections::HashSet<[u8; 16]>` probes per second.
    hashset_probes_per_s: f64,
    /// Physical limit: 16-byte tokens compared in a raw sequential scan per second.
    raw_scan_tokens_per_s: f64,
    /// A day of 1,000 reported cases (1024 tokens each) against 20,000
    /// encounters, verified one by one + matched + scored: µs per case.
    per_case_us: f64,
    /// The same day with signatures batch-verified on every core (the
    /// node's catch-up path), wall-clock: µs per case.
    per_case_batched_us: f64,
    /// The same batch verification on one core (CPU time): µs per case.
    per_case_batched_one_core_us: f64,
    /// Match + score only (already verified), µs per case.
    match_score_us: f64,
    /// Sightings per second into an encrypted sled store (tracker + sealing + writes + flushes).
    ingest_sightings_per_s: f64,
    /// Resident memory of an idle `meshtrace run` node (sled + libp2p + udp-sim), MB.
    idle_rss_mb: f64,
    /// Of which anonymous memory (heap, stacks), MB.
    idle_rss_anon_mb: f64,
    /// Of which file-backed pages (mostly the binary's code), MB.
    idle_rss_file_mb: f64,
    /// Seconds the node idled before its memory was read.
    idle_seconds: u64,
    /// Resident memory of a `meshtrace run` node holding 14 days of a
    /// 1,000-cases/day community (14,000 announcements; `--quick`: 1,400),
    /// MB. The store is generated (real signed announcements written by the
    /// store's own code), then the real daemon opens it.
    rss_14d_mb: f64,
    /// Of which anonymous memory, MB.
    rss_14d_anon_mb: f64,
    /// Announcements the node held for `rss_14d_mb`.
    rss_14d_announcements: usize,
    /// Size of each of them, bytes.
    rss_14d_announcement_bytes: usize,
    /// Matching one closing encounter (4 tokens, no match) against that
    /// pool: fingerprint filter lookups in memory + ledger, µs.
    match_new_encounter_us: f64,
    /// The same for an encounter that matches one held announcement (the
    /// hit is loaded and verified), µs.
    match_new_encounter_hit_us: f64,
    /// DESIGN §8 targets and whether this run met them.
    targets: Targets,
}

/// DESIGN §8 targets met by this run.
#[derive(Debug, Serialize)]
struct Targets {
    /// ≤ 60 µs per reported case (best of the one-by-one and batched paths).
    per_case_le_60_us: bool,
    /// ≥ 200 M token probes per second.
    probes_ge_200m_per_s: bool,
    /// ≥ 100 k sightings per second of encrypted ingest.
    ingest_ge_100k_per_s: bool,
    /// ≤ 20 MB idle RSS.
    idle_rss_le_20_mb: bool,
    /// ≤ 48 MB RSS with 14 days held (issue 18).
    rss_14d_le_48_mb: bool,
}

/// How many repetitions and how large each.
#[derive(Debug, Clone, Copy)]
struct Plan {
    quick: bool,
    reps: usize,
    new_ids: usize,
    cases: usize,
    ingest_ids: usize,
    idle: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                reps: 3,
                new_ids: 500,
                cases: 200,
                ingest_ids: 60,
                idle: Duration::from_secs(2),
            }
        } else {
            Plan {
                quick,
                reps: 7,
                new_ids: 2_000,
                cases: CASES_PER_DAY,
                ingest_ids: 200,
                idle: Duration::from_secs(5),
            }
        }
    }
}

pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode> {
    let plan = Plan::new(args.quick);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let progress = |what: &str| {
        if !args.json {
            eprintln!("  measuring {what} …");
        }
    };
    if !args.json {
        if profile == "debug" {
            eprintln!(
                "warning: this meshtrace is a debug build; its figures are far below a \
                 release build's (cargo build --release)"
            );
        }
        eprintln!("meshtrace bench: medians of {} repetitions", plan.reps);
    }
    let load_average_at_start = load_average();
    let mut rng = StdRng::seed_from_u64(8);

    progress("token derivation");
    let (sighting_tokens_per_s, derive_token_us) = bench_sightings(&plan, &mut rng)?;
    progress("verification, matching and scoring");
    let day = Day::new(&plan, &mut rng)?;
    let verify_us = day.verify_us(&plan)?;
    let match_score_us = day.match_score_us(&plan)?;
    let per_case_us = day.per_case_us(&plan)?;
    let per_case_batched_us = day.per_case_batched_us(&plan)?;
    let per_case_batched_one_core_us = day.per_case_batched_one_core_us(&plan)?;
    progress("token probes");
    let probes = bench_probes(&plan, &mut rng);
    progress("encrypted ingest (sled)");
    let ingest_sightings_per_s = bench_ingest(&plan, &mut rng)?;
    progress("idle node memory (meshtrace run)");
    let rss = idle_rss(&plan)?;
    let idle_rss_mb = rss.total;
    progress("memory with 14 days held (generating the store, then meshtrace run)");
    let held = rss_14d(&plan, &mut rng)?;

    let report = Report {
        build_profile: profile,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average_at_start,
        quick: args.quick,
        timing: TIMING,
        wall_over_cpu: wall_over_cpu(),
        sighting_tokens_per_s,
        derive_token_us,
        verify_us,
        token_probes_per_s: probes.index,
        hashset_probes_per_s: probes.hashset,
        raw_scan_tokens_per_s: probes.raw_scan,
        per_case_us,
        per_case_batched_us,
        per_case_batched_one_core_us,
        match_score_us,
        ingest_sightings_per_s,
        idle_rss_mb,
        idle_rss_anon_mb: rss.anon,
        idle_rss_file_mb: rss.file,
        idle_seconds: plan.idle.as_secs(),
        rss_14d_mb: held.rss.total,
        rss_14d_anon_mb: held.rss.anon,
        rss_14d_announcements: held.announcements,
        rss_14d_announcement_bytes: held.announcement_bytes,
        match_new_encounter_us: held.match_us,
        match_new_encounter_hit_us: held.match_hit_us,
        targets: Targets {
            per_case_le_60_us: per_case_us.min(per_case_batched_us) <= 60.0,
            probes_ge_200m_per_s: probes.index >= 200e6,
            ingest_ge_100k_per_s: ingest_sightings_per_s >= 100e3,
            idle_rss_le_20_mb: idle_rss_mb <= 20.0,
            rss_14d_le_48_mb: held.rss.total <= 48.0,
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &Report) {
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "meshtrace bench — {} build, {} cores{}{}",
        r.build_profile,
        r.cores,
        r.load_average_at_start
            .map(|l| format!(", load average {l:.2} at start"))
            .unwrap_or_default(),
        if r.quick { ", quick (noisier)" } else { "" }
    );
    println!("timing: {}", r.timing);
    println!(
        "wall-clock / CPU time of the timed sections: {:.2}{}",
        r.wall_over_cpu,
        if r.wall_over_cpu > 1.3 {
            " (other processes were busy: wall-clock rates would be lower)"
        } else {
            ""
        }
    );
    println!();
    println!("tokens");
    println!(
        "  first sighting of a new ID      {:>12.0} /s   ({:.1} µs per X25519 + HKDF)",
        r.sighting_tokens_per_s, r.derive_token_us
    );
    println!("reported cases (1024 tokens each; receiver holds 20,000 encounters)");
    println!("  certificate + chunk verify      {:>12.1} µs", r.verify_us);
    println!(
        "  match + score                   {:>12.1} µs",
        r.match_score_us
    );
    println!(
        "  per case, one by one            {:>12.1} µs",
        r.per_case_us
    );
    println!(
        "  per case, batch-verified        {:>12.1} µs   target ≤ 60 µs: {}   (every core, wall-clock)",
        r.per_case_batched_us,
        mark(r.targets.per_case_le_60_us)
    );
    println!(
        "  per case, batch, one core       {:>12.1} µs",
        r.per_case_batched_one_core_us
    );
    println!("token probes (sorted announcement tokens vs 20,000 stored)");
    println!(
        "  TokenIndex                      {:>12.1} M/s   target ≥ 200 M/s: {}",
        r.token_probes_per_s / 1e6,
        mark(r.targets.probes_ge_200m_per_s)
    );
    println!(
        "  std HashSet (baseline)          {:>12.1} M/s",
        r.hashset_probes_per_s / 1e6
    );
    println!(
        "  raw scan of the bytes (limit)   {:>12.1} M/s",
        r.raw_scan_tokens_per_s / 1e6
    );
    println!("store");
    println!(
        "  encrypted ingest (sled)         {:>12.0} sightings/s   target ≥ 100 k/s: {}",
        r.ingest_sightings_per_s,
        mark(r.targets.ingest_ge_100k_per_s)
    );
    println!("node");
    println!(
        "  idle RSS after {} s              {:>12.1} MB   target ≤ 20 MB: {}",
        r.idle_seconds,
        r.idle_rss_mb,
        mark(r.targets.idle_rss_le_20_mb)
    );
    println!(
        "    anonymous (heap, stacks)      {:>12.1} MB",
        r.idle_rss_anon_mb
    );
    println!(
        "    file-backed (code)            {:>12.1} MB",
        r.idle_rss_file_mb
    );
    println!(
        "  RSS holding {} announcements ({} B each, 14 days)",
        r.rss_14d_announcements, r.rss_14d_announcement_bytes
    );
    println!(
        "                                  {:>12.1} MB   target ≤ 48 MB: {}",
        r.rss_14d_mb,
        mark(r.targets.rss_14d_le_48_mb)
    );
    println!(
        "    anonymous (heap, stacks)      {:>12.1} MB",
        r.rss_14d_anon_mb
    );
    println!(
        "  a closing encounter vs that pool {:>11.1} µs   ({:.1} µs when it matches one)",
        r.match_new_encounter_us, r.match_new_encounter_hit_us
    );
}

/// The 1-minute load average, to tell a reader how busy the machine was.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Time spent on a CPU by the calling thread, in nanoseconds (Linux
/// schedstat; updated at least every scheduler tick).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

thread_local! {
    /// Wall and CPU seconds of every timed section, to tell how much other
    /// processes took the CPU away during the run.
    static TIMED: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((0.0, 0.0)) };
}

/// Times a section by the CPU time of this thread, so that other processes
/// competing for the cores (a shared machine, a build) do not count; falls
/// back to wall-clock time where schedstat is unavailable.
struct Stopwatch {
    wall: Instant,
    cpu_ns: Option<u64>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            cpu_ns: thread_cpu_ns(),
            wall: Instant::now(),
        }
    }

    /// Seconds since start: CPU time of this thread when known.
    fn secs(&self) -> f64 {
        let wall = self.wall.elapsed().as_secs_f64();
        let cpu = match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
            _ => None,
        };
        let secs = cpu.unwrap_or(wall);
        TIMED.with(|t| {
            let (w, c) = t.get();
            t.set((w + wall, c + secs));
        });
        secs.max(1e-9)
    }
}

/// Wall-clock time over CPU time of all timed sections so far (1.0: the
/// benchmark had a core to itself).
fn wall_over_cpu() -> f64 {
    TIMED.with(|t| {
        let (w, c) = t.get();
        if c > 0.0 { w / c } else { 1.0 }
    })
}

/// Median of `reps` runs of `f`, each returning one sample.
fn median(reps: usize, mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        samples.push(f()?);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// First sightings of new IDs through the tracker (X25519 + HKDF each), and
/// one bare token derivation.
fn bench_sightings(plan: &Plan, rng: &mut StdRng) -> Result<(f64, f64)> {
    let now = UnixTime(T0);
    let mut keys = KeySchedule::new();
    keys.rotate(now, rng);
    let own = keys
        .current(now)
        .ok_or_else(|| anyhow!("no current key after rotation"))?;
    let ids = workload::random_ids(rng, plan.new_ids, now);
    let per_s = median(plan.reps, || {
        let mut tracker = EncounterTracker::new(0);
        let start = Stopwatch::start();
        for id in &ids {
            tracker.handle_sighting(
                &keys,
                Sighting {
                    id: *id,
                    rssi: -60,
                    at: now,
                },
            )?;
        }
        let s = start.secs();
        black_box(tracker.close_all());
        Ok(ids.len() as f64 / s)
    })?;
    let derive_us = median(plan.reps, || {
        let start = Stopwatch::start();
        for id in &ids {
            black_box(derive_token(own, black_box(id))?);
        }
        Ok(start.secs() * 1e6 / ids.len() as f64)
    })?;
    Ok((per_s, derive_us))
}

/// A receiver's 14-day log and a day of reported cases.
struct Day {
    trusted: Vec<IssuerPublicKey>,
    encounters: Vec<Encounter>,
    index: TokenIndex,
    /// One encoded chunk per case (1024-token bucket).
    cases: Vec<Vec<u8>>,
    risk: RiskConfig,
}

impl Day {
    fn new(plan: &Plan, rng: &mut StdRng) -> Result<Day> {
        let now = UnixTime(T0);
        let encounters = workload::receiver_log(rng, RECEIVER_ENCOUNTERS, T0);
        let index = TokenIndex::build(
            encounters
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.tokens.iter().map(move |t| (*t, i as u64))),
        );
        let issuer = IssuerSecretKey::generate(rng);
        let mut cases = Vec::with_capacity(plan.cases);
        for c in 0..plan.cases {
            let report = ReportSecretKey::generate(rng);
            let cert = Certificate::issue(
                &issuer,
                CertificateParams {
                    network_id: NETWORK.into(),
                    report_key: report.public(),
                    valid_from: now,
                    valid_until: now.plus(DAY_SECONDS),
                    window_first_day: now.day().minus(13),
                    window_last_day: now.day(),
                    max_tokens: 8192,
                },
            )?;
            let mut real: Vec<EncounterToken> = (0..TOKENS_PER_CASE)
                .map(|_| workload::random_token(rng))
                .collect();
            if c % MATCHING_CASE_EVERY == 0 {
                for k in 0..2 {
                    let e = &encounters[(c * 7 + k * 4_111) % encounters.len()];
                    real.push(e.tokens[0]);
                }
            }
            let chunks = build_announcements(&report, &cert, &real, -8, now, rng)?;
            ensure!(chunks.len() == 1, "a case should fit one chunk");
            cases.extend(chunks.into_iter().map(|c| c.bytes));
        }
        Ok(Day {
            trusted: vec![issuer.public()],
            encounters,
            index,
            cases,
            risk: RiskConfig::default(),
        })
    }

    fn ctx(&self) -> VerifyContext<'_> {
        VerifyContext {
            network_id: NETWORK,
            trusted_issuers: &self.trusted,
            now: UnixTime(T0 + 60),
        }
    }

    fn verify_us(&self, plan: &Plan) -> Result<f64> {
        let ctx = self.ctx();
        median(plan.reps, || {
            let start = Stopwatch::start();
            for c in &self.cases {
                black_box(VerifiedAnnouncement::verify(black_box(c), &ctx)?);
            }
            Ok(start.secs() * 1e6 / self.cases.len() as f64)
        })
    }

    fn ingest(&self, ledger: &mut ExposureLedger, v: &VerifiedAnnouncement) -> usize {
        let outcome = ledger.ingest(
            v,
            &self.index,
            |r| self.encounters.get(r as usize).cloned(),
            &self.risk,
        );
        usize::from(matches!(outcome, MatchOutcome::Exposure(_)))
    }

    fn check_exposures(&self, exposures: usize) -> Result<()> {
        let expected = self.cases.len().div_ceil(MATCHING_CASE_EVERY);
        ensure!(
            exposures == expected,
            "matching found {exposures} exposures, expected {expected}"
        );
        Ok(())
    }

    fn match_score_us(&self, plan: &Plan) -> Result<f64> {
        let ctx = self.ctx();
        let verified = self
            .cases
            .iter()
            .map(|c| VerifiedAnnouncement::verify(c, &ctx))
            .collect::<Result<Vec<_>, _>>()?;
        median(plan.reps, || {
            let mut ledger = ExposureLedger::new();
            let mut exposures = 0;
            let start = Stopwatch::start();
            for v in &verified {
                exposures += self.ingest(&mut ledger, v);
            }
            let s = start.secs();
            self.check_exposures(exposures)?;
            Ok(s * 1e6 / verified.len() as f64)
        })
    }

    /// What a node does with each announcement as it arrives.
    fn per_case_us(&self, plan: &Plan) -> Result<f64> {
        let ctx = self.ctx();
        median(plan.reps, || {
            let mut ledger = ExposureLedger::new();
            let mut exposures = 0;
            let start = Stopwatch::start();
            for c in &self.cases {
                let v = VerifiedAnnouncement::verify(c, &ctx)?;
                exposures += self.ingest(&mut ledger, &v);
            }
            let s = start.secs();
            self.check_exposures(exposures)?;
            Ok(s * 1e6 / self.cases.len() as f64)
        })
    }

    /// The same day with all signatures checked in batches on every core
    /// (the node's catch-up path), wall-clock.
    fn per_case_batched_us(&self, plan: &Plan) -> Result<f64> {
        let ctx = self.ctx();
        let refs: Vec<&[u8]> = self.cases.iter().map(Vec::as_slice).collect();
        median(plan.reps, || {
            let mut ledger = ExposureLedger::new();
            let mut exposures = 0;
            let start = Instant::now();
            for v in meshtrace_node::p2p::verify_parallel(&refs, &ctx) {
                exposures += self.ingest(&mut ledger, &v?);
            }
            let s = start.elapsed().as_secs_f64();
            self.check_exposures(exposures)?;
            Ok(s * 1e6 / self.cases.len() as f64)
        })
    }

    /// The same day with all signatures checked in one batch on this
    /// thread (CPU time).
    fn per_case_batched_one_core_us(&self, plan: &Plan) -> Result<f64> {
        let ctx = self.ctx();
        let refs: Vec<&[u8]> = self.cases.iter().map(Vec::as_slice).collect();
        median(plan.reps, || {
            let mut ledger = ExposureLedger::new();
            let mut exposures = 0;
            let start = Stopwatch::start();
            for v in VerifiedAnnouncement::verify_batch(&refs, &ctx) {
                exposures += self.ingest(&mut ledger, &v?);
            }
            let s = start.secs();
            self.check_exposures(exposures)?;
            Ok(s * 1e6 / self.cases.len() as f64)
        })
    }
}

/// Probe rates: the node's index, a `HashSet` baseline, and a raw scan.
struct Probes {
    index: f64,
    hashset: f64,
    raw_scan: f64,
}

fn bench_probes(plan: &Plan, rng: &mut StdRng) -> Probes {
    let stored: Vec<EncounterToken> = (0..RECEIVER_ENCOUNTERS)
        .map(|_| workload::random_token(rng))
        .collect();
    let index = TokenIndex::build(stored.iter().enumerate().map(|(i, t)| (*t, i as u64)));
    let hashset: HashSet<[u8; 16]> = stored.iter().map(|t| t.0).collect();
    let mut queries: Vec<EncounterToken> =
        (0..PROBES).map(|_| workload::random_token(rng)).collect();
    for (q, s) in queries.iter_mut().step_by(997).zip(&stored) {
        *q = *s;
    }
    // Verified announcements carry their tokens sorted ascending.
    queries.sort_unstable();
    let reps = plan.reps * 3;
    // Long enough sections for the CPU clock (~0.1 s for the index).
    let rounds = if plan.quick { 20 } else { 100 };
    let rate = |f: &dyn Fn() -> usize| {
        median(reps, || {
            let start = Stopwatch::start();
            for _ in 0..rounds {
                black_box(f());
            }
            Ok((PROBES * rounds) as f64 / start.secs())
        })
        .unwrap_or(0.0)
    };
    let index_rate = rate(&|| index.count_hits(black_box(&queries)));
    let hashset_rate = rate(&|| {
        black_box(&queries)
            .iter()
            .filter(|q| hashset.contains(&q.0))
            .count()
    });
    let needle = stored[0].0;
    let raw_rate = rate(&|| {
        black_box(&queries)
            .iter()
            .filter(|q| q.0 == black_box(needle))
            .count()
    });
    Probes {
        index: index_rate,
        hashset: hashset_rate,
        raw_scan: raw_rate,
    }
}

fn bench_ingest(plan: &Plan, rng: &mut StdRng) -> Result<f64> {
    let sightings = workload::sighting_stream(rng, plan.ingest_ids, T0);
    let mut keys = KeySchedule::new();
    keys.rotate(UnixTime(T0), rng);
    median(plan.reps.min(5), || {
        let tmp = tempfile::tempdir().context("creating a temporary directory")?;
        let mut store = ContactStore::create(
            &tmp.path().join("data"),
            &KeySource::KeyFile(tmp.path().join("master.key")),
            KdfParams::DEFAULT,
            StoreConfig::default(),
            UnixTime(T0),
        )?;
        // Wall-clock time: the store waits for the disk at flushes.
        let start = Instant::now();
        let stored = workload::ingest(&mut store, &keys, &sightings)?;
        let s = start.elapsed().as_secs_f64();
        ensure!(stored >= plan.ingest_ids, "only {stored} encounters stored");
        drop(store);
        Ok(sightings.len() as f64 / s)
    })
}

/// Ends the child node when dropped (SIGKILL if it is still running).
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `meshtrace run` (this binary) on a fresh data directory with the
/// udp-sim radio and libp2p on loopback, lets it idle, and reads its VmRSS.
/// A separate process, so the figure holds only what a node needs, not this
/// benchmark's test data.
fn idle_rss(plan: &Plan) -> Result<Rss> {
    let exe = std::env::current_exe().context("locating the meshtrace binary")?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = tmp.path().join("node");
    let dir_s = dir
        .to_str()
        .ok_or_else(|| anyhow!("temporary path is not UTF-8"))?
        .to_owned();
    let run_cmd = |args: &[&str]| -> Result<std::process::Output> {
        Command::new(&exe)
            .arg("--data-dir")
            .arg(&dir_s)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running meshtrace {}", args.join(" ")))
    };
    let init = run_cmd(&[
        "init",
        "--network",
        NETWORK,
        "--radio",
        "udp-sim",
        "--position",
        "0,0",
    ])?;
    ensure!(
        init.status.success(),
        "meshtrace init failed: {}",
        String::from_utf8_lossy(&init.stderr).trim()
    );
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .context("finding a free UDP port")?
        .port()
        .to_string();
    let log = std::fs::File::create(tmp.path().join("node.log")).context("creating node.log")?;
    let child = Command::new(&exe)
        .arg("--data-dir")
        .arg(&dir_s)
        .args([
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--udp-port",
            &port,
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting meshtrace run")?;
    let mut node = NodeProcess(child);
    let pid = node.0.id();
    // Ready once its control socket answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = node.0.try_wait()? {
            bail!(
                "meshtrace run exited ({status}): {}",
                std::fs::read_to_string(tmp.path().join("node.log"))
                    .unwrap_or_default()
                    .trim()
            );
        }
        if run_cmd(&["status"])?.status.success() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "meshtrace run did not come up in 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(plan.idle);
    let status = Path::new("/proc").join(pid.to_string()).join("status");
    let mb = |field| status_kb(&status, field).map(|kb| kb as f64 / 1024.0);
    let rss = Rss {
        total: mb("VmRSS")?,
        anon: mb("RssAnon")?,
        file: mb("RssFile")?,
    };
    drop(node);
    Ok(rss)
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `RssAnon`, `RssFile`).
fn status_kb(status: &Path, field: &str) -> Result<u64> {
    let text =
        std::fs::read_to_string(status).with_context(|| format!("reading {}", status.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {field} in {}", status.display()))
}

/// Resident memory of an idle node, MB.
#[derive(Debug, Clone, Copy)]
struct Rss {
    total: f64,
    anon: f64,
    file: f64,
}

/// What [`rss_14d`] measured.
struct Held {
    rss: Rss,
    announcements: usize,
    announcement_bytes: usize,
    match_us: f64,
    match_hit_us: f64,
}

/// Memory of a real daemon holding 14 days of a 1,000-cases/day community.
///
/// How the pool is built (stated in the report): `meshtrace init` makes a
/// data directory trusting a generated issuer; the store is opened with the
/// node's own code and [`RSS_DAYS`] × 1,000 real announcements are written
/// into it (`--quick`: 100 a day), each built and signed by the protocol's
/// builder for a fresh report key and certificate, its window ending on one
/// of the last 14 days. Then `meshtrace run` starts on it (verifying and
/// taking up everything, like any restart) and its VmRSS is read once it
/// answers and has idled. The matching figures are taken on the same store
/// in this process before the daemon starts.
fn rss_14d(plan: &Plan, rng: &mut StdRng) -> Result<Held> {
    use meshtrace_node::config::Config;
    use meshtrace_node::daemon::key_source;
    let exe = std::env::current_exe().context("locating the meshtrace binary")?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = tmp.path().join("node");
    let dir_s = dir
        .to_str()
        .ok_or_else(|| anyhow!("temporary path is not UTF-8"))?
        .to_owned();
    let issuer = IssuerSecretKey::generate(rng);
    let run_cmd = |args: &[&str]| -> Result<std::process::Output> {
        Command::new(&exe)
            .arg("--data-dir")
            .arg(&dir_s)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running meshtrace {}", args.join(" ")))
    };
    let key_hex = issuer.public().to_hex();
    let init = run_cmd(&[
        "init",
        "--network",
        NETWORK,
        "--radio",
        "udp-sim",
        "--position",
        "0,0",
        "--trust-issuer",
        &key_hex,
    ])?;
    ensure!(
        init.status.success(),
        "meshtrace init failed: {}",
        String::from_utf8_lossy(&init.stderr).trim()
    );
    let now = meshtrace_node::clock::Clock::now(&meshtrace_node::clock::SystemClock);
    let config = Config::load(&dir.join("config.toml"))?;
    let source = key_source(&config, &dir)?;
    let per_day = if plan.quick { 100 } else { CASES_PER_DAY };
    let trusted = [issuer.public()];
    let ctx = VerifyContext {
        network_id: NETWORK,
        trusted_issuers: &trusted,
        now,
    };
    let mut store = ContactStore::open(&dir, &source, StoreConfig::default(), now)?;
    let mut ledger = ExposureLedger::new();
    let risk = RiskConfig::default();
    let mut announcements = 0;
    let mut announcement_bytes = 0;
    let mut hit_token = None;
    for d in 0..RSS_DAYS {
        let last_day = now.day().minus(d);
        for _ in 0..per_day {
            let report = ReportSecretKey::generate(rng);
            let created = now.minus(u64::from(d) * DAY_SECONDS + 600);
            let cert = Certificate::issue(
                &issuer,
                CertificateParams {
                    network_id: NETWORK.into(),
                    report_key: report.public(),
                    valid_from: created.minus(60),
                    valid_until: created.plus(DAY_SECONDS),
                    window_first_day: last_day.minus(RSS_DAYS - 1),
                    window_last_day: last_day,
                    max_tokens: 8192,
                },
            )?;
            let real = workload::random_tokens(rng, RSS_TOKENS_PER_CASE);
            if hit_token.is_none() {
                hit_token = Some(real[0]);
            }
            for chunk in build_announcements(&report, &cert, &real, -8, created, rng)? {
                let v = VerifiedAnnouncement::verify(&chunk.bytes, &ctx)?;
                store.put_announcement(&v, &chunk.bytes, now)?;
                store.ingest_announcement(&mut ledger, &v, &risk);
                announcements += 1;
                announcement_bytes = chunk.bytes.len();
                if announcements % RSS_FLUSH_EVERY == 0 {
                    store.flush()?;
                }
            }
        }
    }
    store.flush()?;
    // One closing encounter against that pool: a fresh one each time (an
    // encounter is matched once, when it closes).
    let mut closing = |token: Option<EncounterToken>, rng: &mut StdRng| -> Result<f64> {
        let mut e = workload::receiver_log(rng, 1, now.0).remove(0);
        if let Some(t) = token {
            e.tokens[0] = t;
            // Within the window of the report that announced the token
            // (its last day is today); the log's first encounter starts 14
            // days back, one day before that window.
            let span = e.last_seen.0 - e.first_seen.0;
            e.first_seen = now.minus(span + 60);
            e.last_seen = now.minus(60);
        }
        let refs = store.add_encounters(&[e], now)?;
        let start = Stopwatch::start();
        let found = store.match_new_encounters(&mut ledger, &refs, &risk, &ctx)?;
        let s = start.secs();
        ensure!(
            found.len() == usize::from(token.is_some()),
            "a closing encounter found {} exposures",
            found.len()
        );
        Ok(s * 1e6)
    };
    let match_us = median(plan.reps, || closing(None, rng))?;
    // One hit only: the same token again would be matched already.
    let match_hit_us = closing(hit_token, rng)?;
    store.flush()?;
    drop(store);
    let rss = run_node_rss(&exe, &dir_s, tmp.path(), plan.idle)?;
    Ok(Held {
        rss,
        announcements,
        announcement_bytes,
        match_us,
        match_hit_us,
    })
}

/// Starts `meshtrace run` on an initialised data directory, waits until it
/// answers `status`, lets it idle for `idle` and reads its memory.
fn run_node_rss(exe: &Path, dir: &str, tmp: &Path, idle: Duration) -> Result<Rss> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .context("finding a free UDP port")?
        .port()
        .to_string();
    let log_path = tmp.join("node-14d.log");
    let log = std::fs::File::create(&log_path).context("creating the node log")?;
    let child = Command::new(exe)
        .arg("--data-dir")
        .arg(dir)
        .args([
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--udp-port",
            &port,
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting meshtrace run")?;
    let mut node = NodeProcess(child);
    let pid = node.0.id();
    // Taking up 14 days (verifying every announcement) takes a while on a
    // busy machine.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = node.0.try_wait()? {
            bail!(
                "meshtrace run exited ({status}): {}",
                std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .trim()
            );
        }
        let up = Command::new(exe)
            .arg("--data-dir")
            .arg(dir)
            .arg("status")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .context("running meshtrace status")?;
        if up.status.success() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "meshtrace run did not come up in 300 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(idle);
    let status = Path::new("/proc").join(pid.to_string()).join("status");
    let mb = |field| status_kb(&status, field).map(|kb| kb as f64 / 1024.0);
    let rss = Rss {
        total: mb("VmRSS")?,
        anon: mb("RssAnon")?,
        file: mb("RssFile")?,
    };
    drop(node);
    Ok(rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_sample() {
        let mut v = vec![5.0, 1.0, 3.0].into_iter();
        let m = median(3, || Ok(v.next().unwrap_or(0.0))).unwrap();
        assert_eq!(m, 3.0);
    }

    #[test]
    fn reads_vm_rss() {
        let status = Path::new("/proc/self/status");
        assert!(status_kb(status, "VmRSS").unwrap() > 0);
        assert!(status_kb(status, "RssAnon").unwrap() > 0);
        assert!(status_kb(status, "VmNothing").is_err());
    }
}
