//! `meshtrace demo`, run as the real binary: with the defaults it warns the
//! true close contacts of the person who tests positive and nobody else,
//! leaves nothing behind, keeps real stores and a summary with `--out`, and
//! refuses bad input with one clear line and a non-zero exit.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bound on one demo run (debug build, two shared cores; a release build
/// takes about a second).
const DEMO_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on a run that is refused before anything starts.
const QUICK_TIMEOUT: Duration = Duration::from_secs(30);

/// The demo runs real nodes; two at once would only slow each other.
static HEAVY: Mutex<()> = Mutex::new(());

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `TMPDIR` set to `tmp`, killing it after `timeout`.
fn meshtrace(args: &[&str], tmp: &Path, timeout: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!(
                "meshtrace {args:?} did not finish within {timeout:?}; stderr: {}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn refused(run: &Run, needle: &str) {
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(needle),
        "expected {needle:?} in {:?}",
        run.stderr
    );
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "one line: {:?}",
        run.stderr
    );
}

fn number(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The acceptance run: default settings, JSON out.
#[test]
fn the_default_demo_warns_true_contacts_only_and_leaves_nothing_behind() {
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = meshtrace(&["demo", "--json"], tmp.path(), DEMO_TIMEOUT);
    eprintln!("meshtrace demo --json took {:?}", started.elapsed());
    assert!(run.status.success(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(number(&v, "nodes"), 12);
    let tp = number(&v, "true_positives");
    let fp = number(&v, "false_positives");
    let fneg = number(&v, "false_negatives");
    assert!(tp >= 1, "{v}");
    assert_eq!(fp, 0, "{v}");
    // Phone-like scanning (4 s every 60 s of simulated time) still warns
    // every true contact.
    assert_eq!(fneg, 0, "a true contact was not warned: {v}");
    assert_eq!(v["scan"]["window_s"].as_f64(), Some(4.0), "{v}");
    assert_eq!(v["scan"]["interval_s"].as_f64(), Some(60.0), "{v}");
    assert_eq!(v["risk_model"], "Calibrated", "{v}");
    assert_eq!(number(&v, "alerted"), tp + fp);
    assert_eq!(number(&v, "true_contacts"), tp + fneg);
    assert_eq!(number(&v, "report_reached"), 11, "every other node got it");
    let last = number(&v, "report_to_last_alert_ms");
    assert!(number(&v, "report_to_first_alert_ms") <= last);
    let people = v["people"].as_array().unwrap();
    assert_eq!(people.len(), 12);
    // Each verdict follows from the person's own fields.
    for p in people {
        let alerted = p["alerted"].as_bool().unwrap();
        let contact = p["true_contact"].as_bool().unwrap();
        if alerted {
            assert!(contact, "warned without a true contact: {p}");
            assert!(p["alert_ms"].as_u64().unwrap() <= last, "{p}");
            assert!(p["exposure"]["high_risk"].as_bool().unwrap(), "{p}");
        }
        if contact {
            assert!(p["close_minutes"].as_f64().unwrap() >= 15.0, "{p}");
        }
    }
    assert!(v["data_dir"].is_null());
    // Nothing left in the temporary directory the demo used.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn out_keeps_real_stores_and_the_summary() {
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("kept");
    let out_s = out.to_str().unwrap();
    let run = meshtrace(
        &["demo", "--nodes", "3", "--json", "--out", out_s],
        tmp.path(),
        DEMO_TIMEOUT,
    );
    assert!(run.status.success(), "{}", run.stderr);
    let printed: Value = serde_json::from_str(&run.stdout).unwrap();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(printed, saved);
    assert_eq!(number(&saved, "nodes"), 3);
    assert_eq!(saved["data_dir"].as_str(), Some(out_s));
    assert_eq!(number(&saved, "false_positives"), 0, "{saved}");
    // One data directory per node, each a store `meshtrace store check`
    // opens with its key file, holding the day's encounters.
    let mut dirs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    for d in &dirs {
        assert!(d.join("master.key").is_file(), "{d:?}");
        let check = meshtrace(
            &[
                "store",
                "check",
                "--data-dir",
                d.to_str().unwrap(),
                "--json",
            ],
            tmp.path(),
            QUICK_TIMEOUT,
        );
        assert!(check.status.success(), "{d:?}: {}", check.stderr);
        let c: Value = serde_json::from_str(&check.stdout).unwrap();
        assert!(number(&c, "encounters") > 0, "{d:?}: {c}");
        assert!(number(&c, "announcements") >= 1, "{d:?}: {c}");
    }
    // The same directory is not reused.
    let again = meshtrace(&["demo", "--out", out_s], tmp.path(), QUICK_TIMEOUT);
    refused(&again, "not empty");
}

#[test]
fn out_of_range_node_counts_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["0", "1", "2", "65", "1000"] {
        let run = meshtrace(&["demo", "--nodes", n], tmp.path(), QUICK_TIMEOUT);
        refused(&run, "--nodes must be between 3 and 64");
        assert!(run.stderr.contains(&format!("(got {n})")), "{}", run.stderr);
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn out_of_range_scan_intervals_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (n, words) in [
        (
            "2",
            "the scan window (4 s) is longer than the scan interval (2 s)",
        ),
        ("601", "longer than the 600 s maximum"),
    ] {
        let run = meshtrace(&["demo", "--scan-interval", n], tmp.path(), QUICK_TIMEOUT);
        refused(&run, &format!("--scan-interval {n}: "));
        assert!(run.stderr.contains(words), "{}", run.stderr);
    }
}

#[test]
fn out_must_be_a_new_or_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), b"mine").unwrap();
    let run = meshtrace(
        &["demo", "--out", full.to_str().unwrap()],
        tmp.path(),
        QUICK_TIMEOUT,
    );
    refused(&run, "is not empty");
    assert_eq!(std::fs::read(full.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);

    let file = tmp.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let run = meshtrace(
        &["demo", "--out", file.to_str().unwrap()],
        tmp.path(),
        QUICK_TIMEOUT,
    );
    refused(&run, "is not a directory");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

/// The figures of a demo run that depend only on the seed and the script
/// (not the real-time measurements, nor the date of the run).
fn figures(v: &Value) -> Value {
    let mut f = v.clone();
    let o = f.as_object_mut().unwrap();
    for key in [
        "day",
        "report_to_first_alert_ms",
        "report_to_last_alert_ms",
        "report_to_all_nodes_ms",
        "timings_ms",
        "report",
    ] {
        o.remove(key);
    }
    for p in o["people"].as_array_mut().unwrap() {
        let p = p.as_object_mut().unwrap();
        p.remove("alert_ms");
        p.remove("notice_ms");
        if let Some(e) = p.get_mut("exposure").and_then(Value::as_object_mut) {
            e.remove("day");
        }
    }
    let r = &v["report"];
    o.insert("real_tokens".into(), r["real_tokens"].clone());
    o.insert("chunks".into(), r["chunks"].clone());
    f
}

#[test]
fn the_same_seed_gives_the_same_figures_and_the_text_agrees_with_the_json() {
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let args = ["demo", "--seed", "2020", "--json"];
    let first = meshtrace(&args, tmp.path(), DEMO_TIMEOUT);
    assert!(first.status.success(), "{}", first.stderr);
    let first: Value = serde_json::from_str(&first.stdout).unwrap();
    let second = meshtrace(&args, tmp.path(), DEMO_TIMEOUT);
    assert!(second.status.success(), "{}", second.stderr);
    let second: Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(
        figures(&first),
        figures(&second),
        "two runs with one seed differ"
    );
    // Somebody was warned, so the comparison covers exposure figures.
    assert!(number(&first, "alerted") >= 1, "{first}");

    // The text tells the same numbers as the JSON.
    let text = meshtrace(&args[..3], tmp.path(), DEMO_TIMEOUT);
    assert!(text.status.success(), "{}", text.stderr);
    let out = &text.stdout;
    for p in first["people"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(e) = p["exposure"].as_object() else {
            continue;
        };
        let estimated = e["estimated_minutes"].as_f64().unwrap();
        if e["high_risk"] == true {
            let alert = format!("{name} is warned: about {estimated:.0} minutes within 2 m");
            assert!(out.contains(&alert), "{alert:?} not in:\n{out}");
        }
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no table row for {name}:\n{out}"));
        let estimated = format!("{estimated:.1}");
        assert!(
            row.split_whitespace().any(|w| w == estimated),
            "{name}'s row lacks {estimated}: {row}"
        );
    }
    let reached = number(&first, "report_reached");
    assert_eq!(reached, 11, "{first}");
    assert!(
        out.contains(&format!("all {reached} other nodes held the report")),
        "{out}"
    );
}

#[test]
fn a_closed_pipe_ends_the_demo_quietly_and_cleans_up() {
    use std::io::BufRead;
    let _heavy = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    // `meshtrace demo | head -1`
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(["demo", "--nodes", "3"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("meshtrace demo"), "{first:?}");
    // (The reader is dropped here: the pipe is closed.)
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + DEMO_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("the demo did not end after its output closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr after a closed pipe");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
