//! Protocol benchmarks: tokens per sighting, certificate + announcement
//! verification, token probes per second, and a whole reported case
//! (verify + match) against a receiver holding 20,000 observations.

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meshtrace_protocol::*;
use meshtrace_sim::workload;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const T0: u64 = 1_800_000_000;
/// Observations a receiver holds (DESIGN §8 reference load).
const RECEIVER_TOKENS: usize = 20_000;

fn tokens_per_sighting(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let now = UnixTime(T0);
    let mut keys = KeySchedule::new();
    keys.rotate(now, &mut rng);
    let heard = EpochKey::generate(now.epoch(), &mut rng).public();
    let mut g = c.benchmark_group("sighting");
    g.throughput(Throughput::Elements(1));
    g.bench_function("derive_token (X25519 + HKDF)", |b| {
        let own = keys.current(now).unwrap();
        b.iter(|| derive_token(black_box(own), black_box(&heard)))
    });
    g.bench_function("tracker: repeat sighting of a known ID", |b| {
        let mut tr = EncounterTracker::new(0);
        let mut t = T0;
        b.iter(|| {
            t = T0 + (t - T0 + 1) % 200;
            tr.handle_sighting(
                &keys,
                Sighting {
                    id: heard,
                    rssi: -60,
                    at: UnixTime(t),
                },
            )
        })
    });
    g.bench_function("tracker: first sighting of a new ID", |b| {
        let ids: Vec<RotatingId> = (0..1024)
            .map(|_| EpochKey::generate(now.epoch(), &mut rng).public())
            .collect();
        let mut i = 0;
        let mut tr = EncounterTracker::new(0);
        b.iter(|| {
            i = (i + 1) % ids.len();
            if i == 0 {
                tr = EncounterTracker::new(0);
            }
            tr.handle_sighting(
                &keys,
                Sighting {
                    id: ids[i],
                    rssi: -60,
                    at: now,
                },
            )
        })
    });
    g.finish();
}

struct Case {
    trusted: Vec<IssuerPublicKey>,
    chunks: Vec<EncodedAnnouncement>,
}

/// The chunks of a report of `real` tokens under a fresh report key,
/// certified by `issuer`.
fn certified_report(
    rng: &mut ChaCha20Rng,
    issuer: &IssuerSecretKey,
    real: &[EncounterToken],
) -> Vec<EncodedAnnouncement> {
    let report = ReportSecretKey::generate(rng);
    let cert = Certificate::issue(
        issuer,
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
    build_announcements(&report, &cert, real, -8, UnixTime(T0), rng).unwrap()
}

fn make_case(rng: &mut ChaCha20Rng, real: &[EncounterToken]) -> Case {
    let issuer = IssuerSecretKey::generate(rng);
    let chunks = certified_report(rng, &issuer, real);
    Case {
        trusted: vec![issuer.public()],
        chunks,
    }
}

fn verification(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("verify");
    for real in [10usize, 1000, 2000] {
        let toks = workload::random_tokens(&mut rng, real);
        let case = make_case(&mut rng, &toks);
        let bytes = &case.chunks[0].bytes;
        let ctx = VerifyContext {
            network_id: "bench",
            trusted_issuers: &case.trusted,
            now: UnixTime(T0 + 60),
        };
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("certificate + announcement chunk", bytes.len()),
            bytes,
            |b, bytes| b.iter(|| VerifiedAnnouncement::verify(black_box(bytes), &ctx).unwrap()),
        );
    }
    // A backlog: single-chunk reports (64 entries each), each with its own
    // report key and certificate from the same issuer, batch-verified: two
    // signatures per report, one of them by the issuer. 512 is about what
    // each of two cores verifies of a day's 1,000 cases in `meshtrace bench`.
    let issuer = IssuerSecretKey::generate(&mut rng);
    let trusted = vec![issuer.public()];
    let ctx = VerifyContext {
        network_id: "bench",
        trusted_issuers: &trusted,
        now: UnixTime(T0 + 60),
    };
    for reports in [64usize, 512] {
        let chunks: Vec<Vec<u8>> = (0..reports)
            .map(|_| {
                let toks = workload::random_tokens(&mut rng, 40);
                let mut chunks = certified_report(&mut rng, &issuer, &toks);
                assert_eq!(chunks.len(), 1);
                chunks.remove(0).bytes
            })
            .collect();
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        g.throughput(Throughput::Elements(reports as u64));
        g.bench_with_input(
            BenchmarkId::new("verify_batch, single-chunk reports of one issuer", reports),
            &refs,
            |b, refs| {
                b.iter(|| {
                    let out = VerifiedAnnouncement::verify_batch(black_box(refs), &ctx);
                    assert!(out.iter().all(Result::is_ok));
                    out
                })
            },
        );
    }
    g.finish();
}

fn probes(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let stored = workload::random_tokens(&mut rng, RECEIVER_TOKENS);
    let index = TokenIndex::build(stored.iter().enumerate().map(|(i, t)| (*t, i as u64)));
    let hashset: HashSet<[u8; 16]> = stored.iter().map(|t| t.0).collect();
    let mut queries = workload::random_tokens(&mut rng, 1 << 16);
    // A few real hits, as in a real announcement.
    for (q, s) in queries.iter_mut().step_by(997).zip(&stored) {
        *q = *s;
    }
    // Verified announcements carry their tokens sorted ascending.
    let mut sorted = queries.clone();
    sorted.sort_unstable();
    let mut g = c.benchmark_group("probe (20k stored tokens)");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("TokenIndex::count_hits, announcement order (sorted)", |b| {
        b.iter(|| index.count_hits(black_box(&sorted)))
    });
    g.bench_function("TokenIndex::count_hits, random order", |b| {
        b.iter(|| index.count_hits(black_box(&queries)))
    });
    g.bench_function("baseline std HashSet<[u8;16]>", |b| {
        b.iter(|| {
            black_box(&queries)
                .iter()
                .filter(|q| hashset.contains(&q.0))
                .count()
        })
    });
    g.finish();
}

fn reported_case(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let stored = workload::random_tokens(&mut rng, RECEIVER_TOKENS);
    let encounters: Vec<Encounter> = stored
        .iter()
        .map(|t| Encounter {
            tokens: vec![*t],
            first_seen: UnixTime(T0 - 3600),
            last_seen: UnixTime(T0 - 2400),
            profile: vec![(50, 1200)],
            sightings: 20,
        })
        .collect();
    let index = TokenIndex::build(stored.iter().enumerate().map(|(i, t)| (*t, i as u64)));
    // A reported case: 14 days of a typical user's tokens (~900 distinct
    // contacts → the 1024 bucket), two of them shared with this receiver.
    let mut real = workload::random_tokens(&mut rng, 898);
    real.push(stored[17]);
    real.push(stored[4242]);
    let case = make_case(&mut rng, &real);
    let ctx = VerifyContext {
        network_id: "bench",
        trusted_issuers: &case.trusted,
        now: UnixTime(T0 + 60),
    };
    let risk = RiskConfig::default();
    let mut g = c.benchmark_group("reported case (1024 tokens vs 20k stored)");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify + match + score", |b| {
        b.iter(|| {
            let v = VerifiedAnnouncement::verify(black_box(&case.chunks[0].bytes), &ctx).unwrap();
            let mut ledger = ExposureLedger::new();
            ledger.ingest(&v, &index, |r| encounters.get(r as usize).cloned(), &risk)
        })
    });
    let v = VerifiedAnnouncement::verify(&case.chunks[0].bytes, &ctx).unwrap();
    g.bench_function("match + score only (already verified)", |b| {
        b.iter(|| {
            let mut ledger = ExposureLedger::new();
            ledger.ingest(
                black_box(&v),
                &index,
                |r| encounters.get(r as usize).cloned(),
                &risk,
            )
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    tokens_per_sighting,
    verification,
    probes,
    reported_case
);
criterion_main!(benches);
