//! Store benchmarks: encrypted ingest (sightings → encounters → sealed
//! records) on sled and in memory, and token lookups through the store's
//! index.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use meshtrace_node::protocol::*;
use meshtrace_node::store::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const T0: u64 = 20_000 * DAY_SECONDS + 9 * 3600;
/// IDs heard in one benchmark stream.
const IDS: usize = 200;
/// Sightings per ID (one scan every 10 s for 15 minutes).
const SIGHTINGS_PER_ID: usize = 90;

/// A sighting stream: `IDS` neighbours, each heard every 10 s for 15 min,
/// arrivals staggered, in time order.
fn stream(rng: &mut ChaCha20Rng) -> Vec<Sighting> {
    let ids: Vec<RotatingId> = (0..IDS)
        .map(|_| EpochKey::generate(UnixTime(T0).epoch(), rng).public())
        .collect();
    let mut out = Vec::with_capacity(IDS * SIGHTINGS_PER_ID);
    for (i, id) in ids.iter().enumerate() {
        let start = T0 + (i as u64 % 30) * 10;
        for k in 0..SIGHTINGS_PER_ID {
            out.push(Sighting {
                id: *id,
                rssi: -50 - (rng.next_u32() % 30) as i16,
                tx_power: 0,
                at: UnixTime(start + 10 * k as u64),
            });
        }
    }
    out.sort_by_key(|s| s.at);
    out
}

fn ingest<S: Store>(
    store: &mut ContactStore<S>,
    keys: &KeySchedule,
    sightings: &[Sighting],
) -> usize {
    let mut tracker = EncounterTracker::new(0);
    let mut stored = 0;
    let mut last_poll = sightings[0].at;
    for s in sightings {
        let _ = tracker.handle_sighting(keys, *s);
        if s.at.seconds_since(last_poll) >= 60 {
            let closed = tracker.poll_closed(s.at);
            stored += store.add_encounters(&closed, s.at).unwrap().len();
            store.maybe_flush(s.at).unwrap();
            last_poll = s.at;
        }
    }
    let closed = tracker.close_all();
    stored += store.add_encounters(&closed, last_poll).unwrap().len();
    store.flush().unwrap();
    stored
}

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
    let sightings = stream(&mut rng);
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
                let n = ingest(&mut store, &keys, &sightings);
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
            |mut store| ingest(&mut store, &keys, &sightings),
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
    let encounters: Vec<Encounter> = (0..20_000)
        .map(|i| {
            let mut t = [0u8; 16];
            rng.fill_bytes(&mut t);
            Encounter {
                tokens: vec![EncounterToken(t)],
                first_seen: UnixTime(T0 - 86_400 + i),
                last_seen: UnixTime(T0 - 86_400 + i + 600),
                profile: vec![(55, 600)],
                sightings: 60,
            }
        })
        .collect();
    store.add_encounters(&encounters, UnixTime(T0)).unwrap();
    let mut queries: Vec<EncounterToken> = (0..4096)
        .map(|_| {
            let mut t = [0u8; 16];
            rng.fill_bytes(&mut t);
            EncounterToken(t)
        })
        .collect();
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
