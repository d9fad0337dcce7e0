//! Disk space of the sled store after 14 simulated days of a busy user
//! (1,000 encounters a day, daily purge). Prints bytes per encounter; run
//! with `cargo bench -p meshtrace-node --bench store_space`.

use std::path::Path;

use meshtrace_node::protocol::*;
use meshtrace_node::store::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const DAYS: u64 = 14;
const PER_DAY: u64 = 1_000;
const DAY0: u64 = 20_000 * DAY_SECONDS;

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too.
    let quick = std::env::args().any(|a| a == "--test");
    let per_day = if quick { 50 } else { PER_DAY };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let mut store = ContactStore::create(
        &data,
        &KeySource::KeyFile(tmp.path().join("k")),
        KdfParams::TEST_ONLY,
        StoreConfig::default(),
        UnixTime(DAY0),
    )
    .unwrap();
    for day in 0..DAYS {
        let base = DAY0 + day * DAY_SECONDS + 8 * 3600;
        let batch: Vec<Encounter> = (0..per_day)
            .map(|i| {
                let mut tokens = Vec::new();
                for _ in 0..(1 + rng.next_u32() % 2) {
                    let mut t = [0u8; 16];
                    rng.fill_bytes(&mut t);
                    tokens.push(EncounterToken(t));
                }
                let start = base + i * 40;
                let secs = 60 + rng.next_u32() % 840;
                Encounter {
                    tokens,
                    first_seen: UnixTime(start),
                    last_seen: UnixTime(start + u64::from(secs)),
                    profile: (0..1 + rng.next_u32() % 6)
                        .map(|k| (45 + 5 * k as u8, secs / 3))
                        .collect(),
                    sightings: secs / 10,
                }
            })
            .collect();
        // Closed encounters arrive in small batches through the day.
        for chunk in batch.chunks(20) {
            store.add_encounters(chunk, UnixTime(base)).unwrap();
            store.maybe_flush(UnixTime(base + 3)).unwrap();
        }
        store.purge(UnixTime(base + 12 * 3600)).unwrap();
    }
    store.flush().unwrap();
    let n = store.encounter_count() as u64;
    let sled_reported = store.size_on_disk().unwrap();
    drop(store);
    let on_disk = dir_bytes(&data);
    println!(
        "store space after {DAYS} days x {per_day} encounters/day: {n} encounters, \
         {on_disk} bytes on disk ({} bytes/encounter; sled reports {sled_reported})",
        on_disk / n.max(1)
    );
}
