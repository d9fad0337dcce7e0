//! The real `meshtrace` binary on a real store: `store check` reports damage
//! with the recovery command and a non-zero exit; `store recover` repairs it.

use std::path::Path;
use std::process::{Command, Output};

use meshtrace_node::protocol::{Encounter, EncounterToken, UnixTime};
use meshtrace_node::store::{ContactStore, KdfParams, KeySource, Store, StoreConfig, Tree};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn meshtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `meshtrace ARGS`, asserts success and parses its JSON output.
fn json_ok(args: &[&str]) -> serde_json::Value {
    let out = meshtrace(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `meshtrace ARGS`, asserts exit code 1 and returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = meshtrace(args);
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn make_store(dir: &Path, damage: bool) {
    let mut s = ContactStore::create(
        dir,
        &KeySource::KeyFile(dir.join("master.key")),
        KdfParams::TEST_ONLY,
        StoreConfig::default(),
        UnixTime(now()),
    )
    .unwrap();
    let encs: Vec<Encounter> = (0..5u8)
        .map(|i| Encounter {
            tokens: vec![EncounterToken([i; 16])],
            first_seen: UnixTime(now() - 3600 + u64::from(i)),
            last_seen: UnixTime(now() - 3000),
            profile: vec![(50, 600)],
            sightings: 10,
        })
        .collect();
    s.add_encounters(&encs, UnixTime(now())).unwrap();
    if damage {
        let (k, mut v) = s
            .backend()
            .scan_prefix(Tree::Encounters, &[])
            .unwrap()
            .remove(0);
        v[30] ^= 1;
        s.backend()
            .apply(vec![(Tree::Encounters, k, Some(v))])
            .unwrap();
    }
    s.flush().unwrap();
}

#[test]
fn check_reports_damage_and_recover_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_store(&dir, true);
    let d = dir.to_str().unwrap();
    let err = fails(&["store", "check", "--data-dir", d]);
    assert!(
        err.contains("damaged") && err.contains("meshtrace store recover --data-dir"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    let report = json_ok(&["store", "recover", "--data-dir", d, "--json"]);
    assert_eq!(report["unreadable"], 1);
    assert!(Path::new(report["set_aside"].as_str().unwrap()).exists());
    let v = json_ok(&["store", "check", "--data-dir", d, "--json"]);
    assert_eq!(v["encounters"], 4);
}

#[test]
fn bad_arguments_and_missing_stores_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let out = meshtrace(&["store", "check", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no meshtrace store"));
    let dir = tmp.path().join("data");
    make_store(&dir, false);
    let out = Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args([
            "store",
            "check",
            "--data-dir",
            dir.to_str().unwrap(),
            "--passphrase-env",
            "MT_TEST_UNSET_VAR",
        ])
        .env_remove("MT_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MT_TEST_UNSET_VAR is not set"));
    let out = meshtrace(&["store", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = meshtrace(&["--version"]);
    assert!(out.status.success());
}

/// Every file under `dir`, path → bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn check_writes_nothing_and_recover_ignores_an_unfinished_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_store(&dir, false);
    let d = dir.to_str().unwrap();
    let before = files(&dir);
    json_ok(&["store", "check", "--data-dir", d, "--json"]);
    assert_eq!(files(&dir), before, "store check wrote into the store");
    // What a snapshot write cut short by a full disk leaves behind.
    std::fs::write(dir.join("db").join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
    let before = files(&dir);
    let err = fails(&["store", "check", "--data-dir", d]);
    assert!(
        err.contains("unfinished snapshot file") && err.contains("store recover"),
        "{err}"
    );
    assert!(!err.contains("None"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert_eq!(files(&dir), before, "store check wrote into the store");
    let report = json_ok(&["store", "recover", "--data-dir", d, "--json"]);
    assert_eq!(report["unreadable"], 0, "{report}");
    let v = json_ok(&["store", "check", "--data-dir", d, "--json"]);
    assert_eq!(v["encounters"], 5, "every encounter kept");
}

#[test]
fn a_refused_recover_leaves_no_half_built_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_store(&dir, false);
    // The store is in use.
    let held = ContactStore::open(
        &dir,
        &KeySource::KeyFile(dir.join("master.key")),
        StoreConfig::default(),
        UnixTime(now()),
    )
    .unwrap();
    let err = fails(&["store", "recover", "--data-dir", dir.to_str().unwrap()]);
    assert!(err.contains("in use"), "{err}");
    assert!(
        !dir.join("db.recovering").exists(),
        "db.recovering left behind"
    );
    drop(held);
}
