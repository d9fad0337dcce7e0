//! `meshtrace simulate` run as the real binary: bad input fails with one
//! clear line and a non-zero exit, the same seed prints the same JSON, the
//! scan and risk-model flags reach the run, and `--out` writes the HTML
//! report.

use std::process::{Command, Output};

fn meshtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap()
}

fn one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_is_one_clear_line() {
    one_line_error(&meshtrace(&["--agents", "0"]), "--agents");
    one_line_error(&meshtrace(&["--agents", "10000000"]), "--agents");
    one_line_error(&meshtrace(&["--days", "0"]), "--days");
    one_line_error(&meshtrace(&["--adoption", "1.5"]), "--adoption");
    one_line_error(&meshtrace(&["--adoption", "NaN"]), "--adoption");
    // A 4-second scan cannot repeat more often than every 4 seconds, and the
    // node scans at least every 10 minutes.
    one_line_error(&meshtrace(&["--scan-interval", "3"]), "--scan-interval");
    one_line_error(&meshtrace(&["--scan-interval", "601"]), "--scan-interval");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "x").unwrap();
    one_line_error(
        &meshtrace(&[
            "--agents",
            "50",
            "--days",
            "1",
            "--out",
            file.to_str().unwrap(),
        ]),
        "not a directory",
    );
}

#[test]
fn the_same_seed_prints_the_same_json() {
    let args = ["--agents", "300", "--days", "4", "--seed", "9", "--json"];
    let a = meshtrace(&args);
    assert!(a.status.success(), "{a:?}");
    // Quiet with --json: nothing on stderr (no progress bar).
    assert!(
        a.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let b = meshtrace(&args);
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["config"]["agents"], 300);
    assert_eq!(v["config"]["seed"], 9);
    for key in [
        "epidemic",
        "tracing",
        "tracing_baseline",
        "network",
        "storage",
    ] {
        assert!(v[key].is_object(), "{key} missing");
    }
    assert!(v["tracing"]["estimated_over_true_p50"].is_number());
    assert_eq!(v["config"]["scan_interval_s"], 60.0);
    // The flags reach the run: the other model and another scan interval.
    let d = meshtrace(&[
        "--agents",
        "300",
        "--days",
        "4",
        "--seed",
        "9",
        "--json",
        "--scan-interval",
        "150",
        "--risk-model",
        "cwa",
    ]);
    assert!(d.status.success(), "{d:?}");
    let w: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(w["config"]["scan_interval_s"], 150.0);
    assert_eq!(w["tracing"]["model"], "cwa");
    assert_eq!(w["tracing_baseline"]["model"], "calibrated");
    let c = meshtrace(&["--agents", "300", "--days", "4", "--seed", "10", "--json"]);
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn out_writes_the_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let o = meshtrace(&[
        "--agents",
        "120",
        "--days",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("recall"), "{text}");
    assert!(text.contains("report.html"), "{text}");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("<svg"));
    assert!(out.join("simulation.json").exists());
}
