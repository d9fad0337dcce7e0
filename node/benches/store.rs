//! Store benchmarks: encrypted ingest (sightings → encounters → sealed
//! records) on sled and in memory, and token lookups through the store's
//! index.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use meshtrace_node::protocol::*;
use meshtrace_node::store::*;
use meshtrace_sim::workload;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const T0: u64 = 20_000 * DAY_SECONDS + 9 * 3600;
/// IDs heard in one benchmark stream.
const IDS: usize = 200;

fn keys_for(rng: &mut ChaCha20Rng) -> KeySchedule {
    let mut keys = KeySchedule::new();
    for t in (T0 - 900..T0 + 2 * 3600).step_by(60) {
        keys.rotate(UnixTime(t), rng);
        if keys.keys().count() >= MAX_SCHEDULED_KEYS {
            break;
        }
    }
    keys.rotate(UnixTime(T0), rng);
    keys
}

fn ingest_bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sightings = workload::sighting_stream(&mut rng, IDS, T0);
    let keys = keys_for(&mut rng);
    let mut g = c.benchmark_group("encrypted ingest");
    g.throughput(Throughput::Elements(sightings.len() as u64));
    g.sample_size(10);
    g.bench_function("sightings into sled (tempdir)", |b| {
        b.iter_batched(
            || {
                let tmp = tempfile::tempdir().unwrap();
                let store = ContactStore::create(
                    &tmp.path().join("data"),
                    &KeySource::KeyFile(tmp.path().join("k")),
                    KdfParams::TEST_ONLY,
                    StoreConfig::default(),
                    UnixTime(T0),
                )
                .unwrap();
                (tmp, store)
            },
            |(tmp, mut store)| {
                let n = workload::ingest(&mut store, &keys, &sightings);
                drop(store);
                drop(tmp);
                n
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("sightings into memory backend", |b| {
        b.iter_batched(
            || {
                ContactStore::with_backend(
                    MemoryStore::new(),
                    &MasterKey::generate(),
                    StoreConfig::default(),
                    UnixTime(T0),
                )
                .unwrap()
            },
            |mut store| workload::ingest(&mut store, &keys, &sightings),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn lookup_bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut store = ContactStore::with_backend(
        MemoryStore::new(),
        &MasterKey::generate(),
        StoreConfig::default(),
        UnixTime(T0),
    )
    .unwrap();
    let encounters = workload::receiver_log(&mut rng, 20_000, T0);
    store.add_encounters(&encounters, UnixTime(T0)).unwrap();
    let mut queries = workload::random_tokens(&mut rng, 4096);
    queries.sort_unstable();
    let index = store.token_index().clone();
    let mut g = c.benchmark_group("store token lookups (20k encounters)");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("sorted announcement tokens", |b| {
        b.iter(|| index.count_hits(black_box(&queries)))
    });
    g.finish();
    let mut g = c.benchmark_group("store index rebuild (20k encounters)");
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("TokenIndex::build from the store", |b| {
        b.iter(|| {
            TokenIndex::build(
                store
                    .encounters()
                    .flat_map(|(r, e)| e.tokens.iter().map(move |t| (*t, r))),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, ingest_bench, lookup_bench);
criterion_main!(benches);
