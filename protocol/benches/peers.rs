//! Peer comparison: the receiver's work for one reported case (14 days of a
//! positive user's IDs) against a log of 20,000 observations, through
//!
//! * **meshtrace**: verify the certificate and the 1024-token chunk
//!   (two Ed25519 signatures), match against the token index, score;
//!   one by one, and batch-verified over a day of cases;
//! * **TCN** (the `tcn` 0.4.1 crate): verify each signed report (Ed25519),
//!   ratchet out its temporary contact numbers, look each up — as deployed,
//!   one report per 6 hours of contacts (56 reports, 141 B each = 7.9 KB),
//!   and as a single 14-day report;
//! * **GAEN v1.2** (Apple/Google Exposure Notification), derived from the
//!   public cryptography specification: for each of 14 daily temporary
//!   exposure keys, RPIK = HKDF-SHA256(TEK, salt none, info "EN-RPIK", 16 B),
//!   then RPI_j = AES-128(RPIK, "EN-RPI" ‖ 0^6 ‖ LE32(ENIN_j)) for the 144
//!   intervals of the day, each looked up. (GAEN's export file signature is
//!   one ECDSA per download batch, not per case, and is left out.)
//!
//! Every system looks its derived tokens up in the same [`TokenIndex`] of
//! 20,000 observations, so the comparison is about the protocols' own costs.
//!
//! Run: `cargo bench -p meshtrace-protocol --bench peers`. Criterion prints
//! its own figures per group; at the end a summary of medians measured in
//! this same run (CPU time of the thread, 15 sections of ≥ 50 ms) gives the
//! ratios to meshtrace.

use std::hint::black_box;
use std::time::Instant;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use criterion::{Criterion, Throughput};
use hkdf::Hkdf;
use meshtrace_protocol::*;
use meshtrace_sim::workload;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha2::Sha256;

const T0: u64 = 1_800_000_000 + 450;
/// Observations the receiver holds (DESIGN §8 reference load).
const RECEIVER_TOKENS: usize = 20_000;
/// Reported cases in the batch-verified meshtrace variant (a day's backlog).
const BATCH_CASES: usize = 256;
/// TCN reports per case as deployed: one per 6 hours for 14 days.
const TCN_REPORTS: usize = 56;
/// TCNs per 6-hour report (15-minute rotation).
const TCNS_PER_REPORT: u16 = 24;
/// GAEN: daily keys per case and 10-minute intervals per key.
const GAEN_DAYS: usize = 14;
const GAEN_INTERVALS: u32 = 144;

fn index_of(tokens: &[EncounterToken]) -> TokenIndex {
    TokenIndex::build(tokens.iter().enumerate().map(|(i, t)| (*t, i as u64)))
}

// ---------------------------------------------------------------- meshtrace

struct Ours {
    trusted: Vec<IssuerPublicKey>,
    cases: Vec<Vec<u8>>,
    index: TokenIndex,
    encounters: Vec<Encounter>,
    risk: RiskConfig,
}

impl Ours {
    fn new(rng: &mut ChaCha20Rng) -> Ours {
        let stored = workload::random_tokens(rng, RECEIVER_TOKENS);
        let encounters = stored
            .iter()
            .map(|t| Encounter {
                tokens: vec![*t],
                first_seen: UnixTime(T0 - 3600),
                last_seen: UnixTime(T0 - 2400),
                profile: vec![(50, 1200)],
                sightings: 20,
            })
            .collect();
        let issuer = IssuerSecretKey::generate(rng);
        let cases = (0..BATCH_CASES)
            .map(|c| {
                let report = ReportSecretKey::generate(rng);
                let cert = Certificate::issue(
                    &issuer,
                    CertificateParams {
                        network_id: "bench".into(),
                        report_key: report.public(),
                        valid_from: UnixTime(T0),
                        valid_until: UnixTime(T0 + 86_400),
                        window_first_day: UnixTime(T0).day().minus(13),
                        window_last_day: UnixTime(T0).day(),
                        max_tokens: 8192,
                    },
                )
                .unwrap();
                // ~900 distinct contacts in 14 days → the 1024 bucket; the
                // first case shares two of them with this receiver.
                let mut real = workload::random_tokens(rng, 898);
                if c == 0 {
                    real.push(stored[17]);
                    real.push(stored[4242]);
                }
                let mut chunks =
                    build_announcements(&report, &cert, &real, -8, UnixTime(T0), rng).unwrap();
                assert_eq!(chunks.len(), 1);
                chunks.remove(0).bytes
            })
            .collect();
        Ours {
            trusted: vec![issuer.public()],
            cases,
            index: index_of(&stored),
            encounters,
            risk: RiskConfig::default(),
        }
    }

    fn ctx(&self) -> VerifyContext<'_> {
        VerifyContext {
            network_id: "bench",
            trusted_issuers: &self.trusted,
            now: UnixTime(T0 + 60),
        }
    }

    fn match_one(&self, ledger: &mut ExposureLedger, v: &VerifiedAnnouncement) -> usize {
        let out = ledger.ingest(
            v,
            &self.index,
            |r| self.encounters.get(r as usize).cloned(),
            &self.risk,
        );
        usize::from(matches!(out, MatchOutcome::Exposure(_)))
    }

    /// One case, verified on its own: what a node does per gossip message.
    fn one_case(&self) -> usize {
        let v = VerifiedAnnouncement::verify(black_box(&self.cases[0]), &self.ctx()).unwrap();
        self.match_one(&mut ExposureLedger::new(), &v)
    }

    /// All cases, signatures batch-verified (a catch-up backlog).
    fn batch(&self) -> usize {
        let refs: Vec<&[u8]> = self.cases.iter().map(Vec::as_slice).collect();
        let mut ledger = ExposureLedger::new();
        VerifiedAnnouncement::verify_batch(black_box(&refs), &self.ctx())
            .into_iter()
            .map(|v| self.match_one(&mut ledger, &v.unwrap()))
            .sum()
    }
}

// ---------------------------------------------------------------------- TCN

struct Tcn {
    /// Serialized signed reports of one case.
    reports: Vec<Vec<u8>>,
    /// The same case as one report.
    single: Vec<u8>,
    index: TokenIndex,
}

fn tcn_rak(rng: &mut ChaCha20Rng) -> tcn::ReportAuthorizationKey {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    tcn::ReportAuthorizationKey::read(&b[..]).unwrap()
}

fn tcn_report(rak: &tcn::ReportAuthorizationKey, j2: u16) -> Vec<u8> {
    let signed = rak
        .create_report(tcn::MemoType::CoEpiV1, b"symptom".to_vec(), 1, j2)
        .unwrap();
    let mut out = Vec::new();
    signed.write(&mut out).unwrap();
    out
}

impl Tcn {
    fn new(rng: &mut ChaCha20Rng) -> Tcn {
        let reports: Vec<Vec<u8>> = (0..TCN_REPORTS)
            .map(|_| tcn_report(&tcn_rak(rng), TCNS_PER_REPORT))
            .collect();
        let single = tcn_report(&tcn_rak(rng), TCNS_PER_REPORT * TCN_REPORTS as u16);
        // The receiver heard two of the case's TCNs.
        let mut observed = workload::random_tokens(rng, RECEIVER_TOKENS);
        let heard = Tcn::tcns(&reports[3]);
        observed[17] = heard[5];
        observed[4242] = heard[6];
        Tcn {
            reports,
            single,
            index: index_of(&observed),
        }
    }

    /// Verifies a serialized report and ratchets out its TCNs.
    fn tcns(bytes: &[u8]) -> Vec<EncounterToken> {
        let report = tcn::SignedReport::read(bytes).unwrap().verify().unwrap();
        report
            .temporary_contact_numbers()
            .map(|t| EncounterToken(t.0))
            .collect()
    }

    fn case(&self) -> usize {
        self.reports
            .iter()
            .map(|r| self.index.count_hits(&Tcn::tcns(black_box(r))))
            .sum()
    }

    fn case_single_report(&self) -> usize {
        self.index.count_hits(&Tcn::tcns(black_box(&self.single)))
    }
}

// --------------------------------------------------------------------- GAEN

struct Gaen {
    /// 14 diagnosis keys: (TEK, rolling start interval number).
    keys: Vec<([u8; 16], u32)>,
    index: TokenIndex,
}

/// RPIs of one day from its TEK (GAEN cryptography specification v1.2).
fn gaen_rpis(tek: &[u8; 16], rolling_start: u32, out: &mut Vec<EncounterToken>) {
    let mut rpik = [0u8; 16];
    Hkdf::<Sha256>::new(None, tek)
        .expand(b"EN-RPIK", &mut rpik)
        .unwrap();
    let cipher = Aes128::new(GenericArray::from_slice(&rpik));
    let mut blocks: Vec<GenericArray<u8, _>> = (0..GAEN_INTERVALS)
        .map(|j| {
            let mut padded = [0u8; 16];
            padded[..6].copy_from_slice(b"EN-RPI");
            padded[12..].copy_from_slice(&(rolling_start + j).to_le_bytes());
            GenericArray::from(padded)
        })
        .collect();
    cipher.encrypt_blocks(&mut blocks);
    out.extend(blocks.iter().map(|b| EncounterToken((*b).into())));
}

impl Gaen {
    fn new(rng: &mut ChaCha20Rng) -> Gaen {
        let start = (T0 / 600) as u32 / GAEN_INTERVALS * GAEN_INTERVALS;
        let keys: Vec<([u8; 16], u32)> = (0..GAEN_DAYS as u32)
            .map(|d| {
                let mut tek = [0u8; 16];
                rng.fill_bytes(&mut tek);
                (tek, start - d * GAEN_INTERVALS)
            })
            .collect();
        let mut observed = workload::random_tokens(rng, RECEIVER_TOKENS);
        let mut heard = Vec::new();
        gaen_rpis(&keys[2].0, keys[2].1, &mut heard);
        observed[17] = heard[40];
        observed[4242] = heard[41];
        Gaen {
            keys,
            index: index_of(&observed),
        }
    }

    fn case(&self) -> usize {
        let mut rpis = Vec::with_capacity(GAEN_DAYS * GAEN_INTERVALS as usize);
        for (tek, start) in black_box(&self.keys) {
            gaen_rpis(tek, *start, &mut rpis);
        }
        self.index.count_hits(&rpis)
    }
}

// ------------------------------------------------------------------ running

fn benches(c: &mut Criterion, ours: &Ours, tcn: &Tcn, gaen: &Gaen) {
    let mut g = c.benchmark_group("peers: one reported case vs 20k observations");
    g.throughput(Throughput::Elements(1));
    g.bench_function("meshtrace (verify + match + score)", |b| {
        b.iter(|| ours.one_case())
    });
    g.bench_function("tcn 0.4.1 (56 reports: verify + ratchet + look up)", |b| {
        b.iter(|| tcn.case())
    });
    g.bench_function("tcn 0.4.1 (one 14-day report)", |b| {
        b.iter(|| tcn.case_single_report())
    });
    g.bench_function("GAEN v1.2 (14 TEKs: HKDF + 144 AES + look up)", |b| {
        b.iter(|| gaen.case())
    });
    g.finish();
    let mut g = c.benchmark_group("peers: a backlog of reported cases");
    g.throughput(Throughput::Elements(BATCH_CASES as u64));
    g.sample_size(20);
    g.bench_function("meshtrace, batch-verified", |b| b.iter(|| ours.batch()));
    g.finish();
}

/// CPU time of this thread in nanoseconds (Linux schedstat), so that other
/// processes competing for the cores do not count.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Median seconds of `f` over `reps` timed sections of at least ~50 ms of
/// CPU time each (thread CPU time; wall-clock where schedstat is missing).
fn median_s(reps: usize, mut f: impl FnMut() -> usize) -> f64 {
    // Calls per section, from one timed call.
    let t = Instant::now();
    black_box(f());
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let calls = ((0.05 / once).ceil() as usize).clamp(1, 100_000);
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let cpu0 = thread_cpu_ns();
            let t = Instant::now();
            for _ in 0..calls {
                black_box(f());
            }
            let wall = t.elapsed().as_secs_f64();
            let s = match (cpu0, thread_cpu_ns()) {
                (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
                _ => wall,
            };
            s / calls as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summary(ours: &Ours, tcn: &Tcn, gaen: &Gaen) {
    const REPS: usize = 15;
    let one = median_s(REPS, || ours.one_case());
    let batched = median_s(REPS, || ours.batch()) / BATCH_CASES as f64;
    let rows = [
        ("meshtrace, one by one", one),
        ("meshtrace, batch-verified", batched),
        ("tcn 0.4.1, 56 reports", median_s(REPS, || tcn.case())),
        (
            "tcn 0.4.1, one report",
            median_s(REPS, || tcn.case_single_report()),
        ),
        ("GAEN v1.2 derivation", median_s(REPS, || gaen.case())),
    ];
    println!();
    println!("Per reported case vs 20,000 observations (medians of thread CPU time, this run):");
    for (name, s) in rows {
        println!(
            "  {name:<28} {:>10.1} µs   {:>6.2}× meshtrace one-by-one   {:>6.2}× batched",
            s * 1e6,
            s / one,
            s / batched
        );
    }
}

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let ours = Ours::new(&mut rng);
    let tcn = Tcn::new(&mut rng);
    let gaen = Gaen::new(&mut rng);
    // Every system finds the two shared observations.
    assert_eq!(ours.one_case(), 1);
    assert_eq!(ours.batch(), 1);
    assert_eq!(tcn.case(), 2);
    assert_eq!(tcn.case_single_report(), 0);
    assert_eq!(gaen.case(), 2);
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &ours, &tcn, &gaen);
    c.final_summary();
    // The ratio summary only in a real benchmark run (`cargo bench`), not
    // when `cargo test --benches` runs each benchmark once.
    if std::env::args().any(|a| a == "--bench") {
        summary(&ours, &tcn, &gaen);
    }
}
