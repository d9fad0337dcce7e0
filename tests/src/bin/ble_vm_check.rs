//! The verdict of `tests/ble-vm/run.sh` (run on the host, after the guest
//! powered off): reads the two daemons' stopped stores and the guest's HCI
//! trace, prints what they hold, and exits 0 only if
//!
//! * each daemon holds encounters with at least two of the other's rotating
//!   IDs (it heard the other before and after a rotation),
//! * the two stores share an encounter token (both sides derived the same
//!   token from the same meeting),
//! * each controller heard at least two rotating IDs on the air, and no
//!   advertising address ever carried two IDs (the address changed with
//!   every rotation).
//!
//! Usage: `meshtrace-ble-vm-check --btmon BTMON.txt DATA_DIR_A DATA_DIR_B`
//! (each data dir holds its store and its `master.key`). Exit status 1 when
//! a check fails, 2 on bad arguments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use meshtrace_node::daemon::KEY_FILE;
use meshtrace_node::protocol::{EncounterToken, UnixTime};
use meshtrace_node::store::{ContactStore, KeySource, StoreConfig};
use meshtrace_tests::ble_vm::{air_views, check_addresses, parse_btmon};

/// Rotating IDs each side must have recorded of the other, and each
/// controller must have heard on the air: at least one rotation.
const MIN_IDS: usize = 2;

struct Side {
    name: String,
    encounters: usize,
    tokens: BTreeSet<EncounterToken>,
}

fn read_store(dir: &Path) -> Result<Side, String> {
    // Far in the future of the scaled clock the daemons ran on: retention
    // must not drop what they recorded, so "now" is the real time.
    let now = UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs(),
    );
    let source = KeySource::KeyFile(dir.join(KEY_FILE));
    let store = ContactStore::open(dir, &source, StoreConfig::default(), now)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tokens = BTreeSet::new();
    for (_, e) in store.encounters() {
        println!(
            "  {}: encounter {}..{} s, {} sightings, {} token(s)",
            dir.display(),
            e.first_seen.0,
            e.last_seen.0,
            e.sightings,
            e.tokens.len()
        );
        tokens.extend(e.tokens.iter().copied());
    }
    Ok(Side {
        name: dir.display().to_string(),
        encounters: store.encounter_count(),
        tokens,
    })
}

fn run(btmon: &Path, a: &Path, b: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let sides = [read_store(a)?, read_store(b)?];
    for s in &sides {
        println!(
            "store {}: {} encounter(s), {} token(s)",
            s.name,
            s.encounters,
            s.tokens.len()
        );
        if s.encounters < MIN_IDS {
            problems.push(format!(
                "{} recorded {} encounter(s) (one per rotating ID heard), expected at least \
                 {MIN_IDS}",
                s.name, s.encounters
            ));
        }
    }
    let shared = sides[0].tokens.intersection(&sides[1].tokens).count();
    println!("tokens held by both: {shared}");
    if shared == 0 {
        problems.push("the two stores share no encounter token".into());
    }

    let text = std::fs::read_to_string(btmon)
        .map_err(|e| format!("cannot read {}: {e}", btmon.display()))?;
    let reports = parse_btmon(&text);
    let views = air_views(&reports);
    for hci in ["hci0", "hci1"] {
        let Some(v) = views.get(hci) else {
            problems.push(format!(
                "the HCI trace holds no advertising report with our service data received by \
                 {hci}"
            ));
            continue;
        };
        println!(
            "air at {hci}: {} report(s) with our service data ({} undecodable), {} rotating \
             ID(s)",
            v.reports,
            v.undecodable,
            v.addresses_by_id.len()
        );
        for (tag, addresses) in &v.addresses_by_id {
            let list: Vec<&str> = addresses.iter().map(String::as_str).collect();
            println!(
                "  ID tag {} from {}",
                data_encoding::HEXLOWER.encode(tag),
                list.join(", ")
            );
        }
        if let Err(p) = check_addresses(hci, v, MIN_IDS) {
            problems.push(p.0);
        }
    }
    Ok(problems)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (btmon, a, b) = match args.as_slice() {
        [flag, t, a, b] if flag == "--btmon" => {
            (PathBuf::from(t), PathBuf::from(a), PathBuf::from(b))
        }
        _ => {
            eprintln!("usage: meshtrace-ble-vm-check --btmon BTMON.txt DATA_DIR_A DATA_DIR_B");
            return ExitCode::from(2);
        }
    };
    match run(&btmon, &a, &b) {
        Ok(problems) if problems.is_empty() => {
            println!("ble-vm check: passed");
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            for p in problems {
                eprintln!("ble-vm check: {p}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("ble-vm check: {e}");
            ExitCode::from(1)
        }
    }
}
