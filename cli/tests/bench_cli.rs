//! `meshtrace bench --quick --json`, run as the real binary: every figure is
//! present and positive, and the machine and build are named. No timing is
//! asserted (this machine is shared and a test build may be unoptimised).

use std::process::Command;

#[test]
fn bench_json_has_every_figure() {
    let o = Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(["bench", "--quick", "--json"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "meshtrace bench failed: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    for field in [
        "per_case_us",
        "per_case_batched_us",
        "verify_us",
        "match_score_us",
        "token_probes_per_s",
        "hashset_probes_per_s",
        "raw_scan_tokens_per_s",
        "sighting_tokens_per_s",
        "derive_token_us",
        "ingest_sightings_per_s",
        "idle_rss_mb",
        "idle_rss_anon_mb",
        "idle_rss_file_mb",
        "wall_over_cpu",
    ] {
        let x = v[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing or not a number: {v}"));
        assert!(x > 0.0 && x.is_finite(), "{field} = {x}");
    }
    assert!(v["cores"].as_u64().unwrap() >= 1);
    let profile = v["build_profile"].as_str().unwrap();
    assert!(profile == "release" || profile == "debug", "{profile}");
    assert_eq!(v["quick"], true);
    for target in [
        "per_case_le_60_us",
        "probes_ge_200m_per_s",
        "ingest_ge_100k_per_s",
        "idle_rss_le_20_mb",
    ] {
        assert!(v["targets"][target].is_boolean(), "targets.{target}: {v}");
    }
}

#[test]
fn bench_rejects_unknown_options() {
    let o = Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(["bench", "--frobnicate"])
        .output()
        .unwrap();
    assert!(!o.status.success());
}
