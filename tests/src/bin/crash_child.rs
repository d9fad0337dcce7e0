//! Child process for `tests/tests/crash.rs`: ingests simulated sightings into
//! a real store and reports, after each flush returns, the first token of
//! every encounter that flush made durable. The parent kills it with SIGKILL
//! at random moments.
//!
//! Usage: `meshtrace-crash-child DATA_DIR KEY_FILE SEED START_UNIX`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use meshtrace_node::protocol::*;
use meshtrace_node::store::{ContactStore, KeySource, StoreConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// Simulated neighbours in radio range at once.
const NEIGHBOURS: usize = 12;
/// Simulated seconds between scans.
const SCAN_SECONDS: u64 = 10;
/// Safety stop if the parent never kills us.
const MAX_STEPS: u64 = 200_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, key, seed, start] = &args[..] else {
        eprintln!("usage: meshtrace-crash-child DATA_DIR KEY_FILE SEED START_UNIX");
        return ExitCode::from(2);
    };
    let (Ok(seed), Ok(start)) = (seed.parse::<u64>(), start.parse::<u64>()) else {
        eprintln!("SEED and START_UNIX must be integers");
        return ExitCode::from(2);
    };
    let mut now = UnixTime(start);
    let mut store = match ContactStore::open(
        &PathBuf::from(dir),
        &KeySource::KeyFile(PathBuf::from(key)),
        StoreConfig::default(),
        now,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut keys = KeySchedule::new();
    let mut tracker = EncounterTracker::new(0);
    // Each neighbour: its current ID and how many more scans it stays.
    let mut neighbours: Vec<(RotatingId, u32)> = Vec::new();
    for _ in 0..MAX_STEPS {
        let rotation = keys.rotate(now, &mut rng);
        if rotation.new_id.is_some()
            && let Some(k) = keys.current(now)
            && let Err(e) = store.put_epoch_key(k)
        {
            eprintln!("put_epoch_key: {e}");
            return ExitCode::from(1);
        }
        neighbours.retain(|(_, left)| *left > 0);
        while neighbours.len() < NEIGHBOURS {
            let id = EpochKey::generate(now.epoch(), &mut rng).public();
            let stay = 3 + (rng.next_u32() % 60);
            neighbours.push((id, stay));
        }
        for (id, left) in &mut neighbours {
            *left -= 1;
            let rssi = -50 - (rng.next_u32() % 30) as i16;
            let _ = tracker.handle_sighting(
                &keys,
                Sighting {
                    id: *id,
                    rssi,
                    at: now,
                },
            );
        }
        let closed = tracker.poll_closed(now);
        if !closed.is_empty() {
            if let Err(e) = store.add_encounters(&closed, now) {
                eprintln!("add_encounters: {e}");
                return ExitCode::from(1);
            }
            if let Err(e) = store.flush() {
                eprintln!("flush: {e}");
                return ExitCode::from(1);
            }
            for e in &closed {
                let _ = writeln!(
                    out,
                    "flushed {}",
                    data_encoding::HEXLOWER.encode(&e.tokens[0].0)
                );
            }
            let _ = out.flush();
        }
        now = now.plus(SCAN_SECONDS);
    }
    ExitCode::SUCCESS
}
