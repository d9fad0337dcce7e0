//! `meshtrace calibrate`, run as the real binary on the udp-sim radio: a
//! reference device (a udp-sim radio in this process, hardware offsets 0)
//! advertises 1 m away from the device being calibrated, whose simulated
//! receiver reads a known amount high; the command recovers that offset.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use meshtrace_node::clock::{SharedClock, SystemClock};
use meshtrace_node::protocol::RotatingId;
use meshtrace_node::radio::Radio;
use meshtrace_node::radio::model::{DutyCycle, Position, Trajectory};
use meshtrace_node::radio::udp::{UdpAirConfig, UdpRadio};
use serde_json::Value;

/// The simulated receiver of the device being calibrated reads this many
/// dB high.
const INJECTED_RX_OFFSET_DB: f64 = 7.0;
/// How far the recovered correction may be from −INJECTED_RX_OFFSET_DB:
/// the median of ~500 receptions at 6 dB shadowing is within ~0.35 dB of
/// the true median, plus rounding to whole dB.
const BOUND_DB: f64 = 1.0;
/// How long the command listens (real seconds).
const LISTEN_SECONDS: &str = "10";

/// A port nobody on this machine is using right now.
fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "# my calibration node\n\
         network = \"calibration\"\n\
         \n\
         [radio]\n\
         kind = \"udp-sim\" # the simulated air\n\
         position = [1.0, 0.0]\n\
         udp_port = {port}\n\
         udp_tx_offset_db = 0.0\n\
         udp_rx_offset_db = {INJECTED_RX_OFFSET_DB}\n\
         rx_correction_db = 3\n"
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

fn calibrate(dir: &Path, seconds: &str, extra: &[&str]) -> Output {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "--data-dir",
        dir,
        "calibrate",
        "--seconds",
        seconds,
        "--json",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(&args)
        .output()
        .unwrap()
}

/// The reference device: at the origin, no hardware offsets, advertising
/// every 20 ms, for as long as the returned runtime lives.
fn reference(port: u16) -> (tokio::runtime::Runtime, UdpRadio) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let mut radio = rt
        .block_on(UdpRadio::start(
            UdpAirConfig {
                port,
                trajectory: Trajectory::fixed(Position { x: 0.0, y: 0.0 }),
                duty: DutyCycle {
                    advertising_interval_ms: 20,
                    ..DutyCycle::default()
                },
                tx_offset_db: Some(0.0),
                rx_offset_db: Some(0.0),
                seed: 5,
                ..UdpAirConfig::default()
            },
            clock,
        ))
        .unwrap();
    radio
        .advertise(radio.frame(RotatingId([0x5a; 32])))
        .unwrap();
    (rt, radio)
}

#[test]
fn calibrate_recovers_an_injected_rx_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(tmp.path(), port);
    let (_rt, _reference) = reference(port);

    let out = calibrate(tmp.path(), LISTEN_SECONDS, &["--distance", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = v["rx_correction_db"].as_i64().unwrap();
    assert!(
        (c as f64 + INJECTED_RX_OFFSET_DB).abs() <= BOUND_DB,
        "recovered {c} dB for a receiver reading {INJECTED_RX_OFFSET_DB} dB high: {v}"
    );
    assert!(v["samples"].as_u64().unwrap() >= 100, "{v}");
    assert_eq!(v["devices_heard"], 1, "{v}");
    assert_eq!(v["previous_rx_correction_db"], 3, "{v}");
    assert_eq!(v["expected_attenuation_db"].as_f64(), Some(45.0), "{v}");
    assert_eq!(v["written"], false);
    assert_eq!(v["config_line"], format!("rx_correction_db = {c}"));
    // Nothing written without --write.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("rx_correction_db = 3")
    );

    // --write: the value lands under [radio], the rest of the file (its
    // comments too) is kept, and it stays owner-only.
    let out = calibrate(tmp.path(), LISTEN_SECONDS, &["--write"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = v["rx_correction_db"].as_i64().unwrap();
    assert_eq!(v["written"], true);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("rx_correction_db = {c}\n")),
        "{text}"
    );
    assert!(!text.contains("rx_correction_db = 3"), "{text}");
    assert!(text.starts_with("# my calibration node\n"), "{text}");
    assert!(
        text.contains("kind = \"udp-sim\" # the simulated air"),
        "{text}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["config.toml"], "no temporary file is left");
}

#[test]
fn calibrate_without_a_peer_or_with_bad_options_fails_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    write_config(tmp.path(), free_port());
    // Nobody advertises on this air.
    let out = calibrate(tmp.path(), "5", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("no device was heard at least 10 times in 5 s"),
        "{err}"
    );
    for (seconds, args, words) in [
        (
            "5",
            &["--distance", "0"][..],
            "--distance must be between 0.2 and 5",
        ),
        (
            "5",
            &["--distance", "nan"][..],
            "--distance must be between 0.2 and 5",
        ),
        ("1", &[][..], "--seconds must be between 5 and 600"),
    ] {
        let out = calibrate(tmp.path(), seconds, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(words), "{err}");
    }
}
