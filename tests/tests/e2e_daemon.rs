//! The real `meshtrace` binary: how the daemon starts and stops, and what it
//! refuses — signals, ports in use, files other users could change, weak
//! issuer keys, data directories too deep for the control socket, a lost
//! config.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use meshtrace_tests::cli::*;

/// Simulated seconds per real second.
const SCALE: u64 = 60;

struct Nodes {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    port: String,
    origin: String,
}

impl Nodes {
    fn new() -> Nodes {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        Nodes {
            _tmp: tmp,
            root,
            port: free_udp_port().to_string(),
            origin: now_millis().to_string(),
        }
    }

    fn dir(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    /// `init` of a udp-sim node at (x, 0); returns its `--json` answer.
    fn init(&self, name: &str, x: f64, extra: &[&str]) -> serde_json::Value {
        let dir = self.dir(name);
        let pos = format!("{x},0");
        let mut args = vec![
            "--data-dir",
            &dir,
            "init",
            "--network",
            "daemon-town",
            "--radio",
            "udp-sim",
            "--position",
            &pos,
            "--json",
        ];
        args.extend_from_slice(extra);
        json_ok(&meshtrace(&args))
    }

    /// `run` arguments on the private air and shared clock.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--no-mdns",
            "--udp-port",
            &self.port,
            "--time-scale",
            "60",
            "--time-origin",
            &self.origin,
        ];
        args.extend_from_slice(extra);
        args
    }

    fn start(&self, name: &str, extra: &[&str]) -> Daemon {
        let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0"];
        args.extend(self.run_args(extra));
        Daemon::start(&self.root.join(name), &args)
    }

    fn sim_now(&self) -> u64 {
        let origin: u64 = self.origin.parse().unwrap();
        (origin + (now_millis() - origin) * SCALE) / 1000
    }
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

#[test]
fn sighup_stops_the_daemon_cleanly_and_keeps_its_open_encounters() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    n.init("b", 1.0, &[]);
    let mut a = n.start("a", &[]);
    let _b = n.start("b", &[]);
    let st = wait_for(CLI_WAIT, "an open encounter on A", || {
        let s = a.json(&["status"]);
        (s["open_encounters"].as_u64() > Some(0)).then_some(s)
    });
    // Give the encounter a few simulated minutes.
    let from = n.sim_now();
    wait_for(CLI_WAIT, "5 simulated minutes", || {
        (n.sim_now() >= from + 5 * 60).then_some(())
    });
    let stored_before = st["encounters"].as_u64().unwrap();

    let status = a.signal_and_wait("HUP");
    assert!(status.success(), "exit {status}: {}", a.log());
    assert!(
        a.log().contains("signal=\"SIGHUP\"") || a.log().contains("signal=SIGHUP"),
        "no shutdown line naming SIGHUP: {}",
        a.log()
    );
    assert!(
        !a.data_dir.join("control.sock").exists(),
        "socket left behind"
    );
    // Restarted far away: the encounter that was open is stored.
    let a = n.start("a", &["--position", "900,0"]);
    let st = a.json(&["status"]);
    assert!(
        st["encounters"].as_u64().unwrap() > stored_before,
        "the open encounter was lost: before {stored_before}, now {st}"
    );
}

#[test]
fn a_second_node_on_a_tcp_port_in_use_is_refused_at_start() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    n.init("b", 0.0, &[]);
    let port = free_tcp_port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let a = Daemon::start(
        &n.root.join("a"),
        &[&["--listen", &listen][..], &n.run_args(&[])].concat(),
    );
    let b = n.dir("b");
    let o = meshtrace(
        &[
            &["--data-dir", &b, "run", "--listen", &listen][..],
            &n.run_args(&[]),
        ]
        .concat(),
    );
    assert_one_line_error(&o, &format!("port {port} is already in use"));
    // The first node still answers on its port.
    assert!(a.address().contains(&format!("/tcp/{port}/")));
}

#[test]
fn a_failed_bootstrap_dial_is_logged_with_the_address_and_cause() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    let other = n.init("b", 0.0, &[]);
    let peer = other["peer_id"].as_str().unwrap();
    // Nobody listens there: the dial is refused.
    let dead = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", free_tcp_port());
    let a = n.start("a", &["--bootstrap", &dead]);
    let line = wait_for(CLI_WAIT, "the failed bootstrap dial in the log", || {
        a.log()
            .lines()
            .find(|l| l.contains("cannot reach a bootstrap peer"))
            .map(str::to_owned)
    });
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&dead), "the address: {line}");
    assert!(line.contains("cause="), "the cause: {line}");
}

#[test]
fn a_config_other_users_can_change_is_refused_with_the_fix_to_run() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    let a = n.dir("a");
    let cfg = n.root.join("a").join("config.toml");
    set_mode(&cfg, 0o666);
    let hint = format!("chmod 600 {}", cfg.display());
    for cmd in [
        &["exposures"][..],
        &["status"],
        &["report", "request"],
        &["run"],
    ] {
        let o = meshtrace(&[&["--data-dir", a.as_str()][..], cmd].concat());
        assert_one_line_error(&o, &hint);
    }
    set_mode(&cfg, 0o620);
    assert_one_line_error(&meshtrace(&["--data-dir", &a, "exposures"]), &hint);
    set_mode(&cfg, 0o600);
    assert!(meshtrace(&["--data-dir", &a, "exposures"]).status.success());
    // Another user's config (the tests run as root in CI).
    if meshtrace_node::perms::current_uid() == Some(0) {
        std::os::unix::fs::chown(&cfg, Some(65534), None).unwrap();
        let o = meshtrace(&["--data-dir", &a, "exposures"]);
        assert_one_line_error(&o, "belongs to another user (user id 65534)");
        std::os::unix::fs::chown(&cfg, Some(0), None).unwrap();
    }
}

#[test]
fn a_data_dir_or_hook_script_other_users_can_change_is_refused_by_run() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    let a = n.dir("a");
    let dir = n.root.join("a");
    let marker = n.root.join("hook-ran");
    let script = n.root.join("hook.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    set_mode(&script, 0o777);
    let run = |extra: &[&str]| {
        meshtrace(&[&["--data-dir", a.as_str(), "run"][..], &n.run_args(extra)].concat())
    };
    let o = run(&["--on-exposure", script.to_str().unwrap()]);
    assert_one_line_error(&o, &format!("chmod go-w {}", script.display()));
    set_mode(&dir, 0o777);
    let o = run(&[]);
    assert_one_line_error(&o, &format!("chmod 700 {}", dir.display()));
    assert!(!marker.exists());

    // Readable by others: runs, with a warning.
    set_mode(&dir, 0o755);
    set_mode(&script, 0o755);
    let d = n.start("a", &["--on-exposure", script.to_str().unwrap()]);
    let line = wait_for(CLI_WAIT, "the warning", || {
        d.log()
            .lines()
            .find(|l| l.contains("open to other users"))
            .map(str::to_owned)
    });
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&format!("chmod 700 {}", dir.display())),
        "{line}"
    );
}

#[test]
fn weak_or_invalid_issuer_keys_are_refused_by_init_run_and_the_config() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    let a = n.dir("a");
    let fresh = n.dir("fresh");
    let zeros = "00".repeat(32);
    let ones = "ff".repeat(32);
    let identity = format!("01{}", "00".repeat(31));
    for key in [&zeros, &ones, &identity] {
        let trust = format!("clinic={key}");
        let o = meshtrace(&["--data-dir", &fresh, "init", "--trust-issuer", &trust]);
        assert_one_line_error(&o, "not a usable issuer public key");
        let o = meshtrace(
            &[
                &["--data-dir", a.as_str(), "run", "--trust-issuer", &trust][..],
                &n.run_args(&[]),
            ]
            .concat(),
        );
        assert_one_line_error(&o, "not a usable issuer public key");
    }
    assert!(!Path::new(&fresh).exists(), "a failed init created {fresh}");
    let cfg = n.root.join("a").join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[[issuer]]\nname = \"zero\"\nkey = \"{zeros}\"\n"),
    )
    .unwrap();
    let o = meshtrace(&["--data-dir", &a, "exposures"]);
    assert_one_line_error(&o, "issuer.key");
    assert_one_line_error(&o, "not a usable issuer public key");
}

#[test]
fn init_refuses_a_data_dir_too_deep_for_the_control_socket() {
    let n = Nodes::new();
    let deep = n.root.join("d".repeat(120));
    let d = deep.display().to_string();
    let o = meshtrace(&["--data-dir", &d, "init"]);
    assert_one_line_error(&o, "too deep");
    assert!(!deep.exists(), "a failed init created {d}");
}

#[test]
fn exposures_work_with_the_node_stopped_whatever_the_path_length() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    // Moved afterwards to a path too long for a socket.
    let deep = n.root.join("e".repeat(120));
    std::fs::rename(n.root.join("a"), &deep).unwrap();
    let d = deep.display().to_string();
    let o = meshtrace(&["--data-dir", &d, "exposures"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("No exposures found."), "{}", stdout(&o));
    let o = meshtrace(&["--data-dir", &d, "status"]);
    assert_one_line_error(&o, "no meshtrace daemon is running");
    let o = meshtrace(&[&["--data-dir", d.as_str(), "run"][..], &n.run_args(&[])].concat());
    assert_one_line_error(&o, "too deep");
}

#[test]
fn a_lost_config_is_written_again_for_the_existing_store_with_reuse_store() {
    let n = Nodes::new();
    let first = n.init("a", 0.0, &[]);
    let a = n.dir("a");
    std::fs::remove_file(n.root.join("a").join("config.toml")).unwrap();
    let o = meshtrace(&["--data-dir", &a, "exposures"]);
    assert_one_line_error(&o, "init --reuse-store");
    let o = meshtrace(&["--data-dir", &a, "init", "--network", "daemon-town"]);
    assert_one_line_error(&o, "--reuse-store");
    let again = n.init("a", 0.0, &["--reuse-store"]);
    assert_eq!(again["peer_id"], first["peer_id"], "same identity");
    let o = meshtrace(&["--data-dir", &a, "exposures"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // --reuse-store where there is no store.
    let o = meshtrace(&["--data-dir", &n.dir("none"), "init", "--reuse-store"]);
    assert_one_line_error(&o, "no meshtrace store");
}

#[test]
fn range_errors_give_the_allowed_range() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    let a = n.dir("a");
    let o = meshtrace(&["--data-dir", &a, "run", "--stem-hops", "99"]);
    assert_one_line_error(&o, "--stem-hops must be between 0 and 8 (got 99)");
    let o = meshtrace(&[
        "--data-dir",
        &a,
        "run",
        "--min-report-encounter-seconds",
        "99999",
    ]);
    assert_one_line_error(
        &o,
        "--min-report-encounter-seconds must be between 0 and 3600 (got 99999)",
    );
}

#[test]
fn scan_timing_and_risk_model_reach_the_daemon_and_bad_ones_are_refused() {
    let n = Nodes::new();
    n.init("a", 0.0, &[]);
    let dir = n.dir("a");
    let o = meshtrace(&[
        "--data-dir",
        &dir,
        "run",
        "--scan-interval",
        "60s",
        "--scan-window",
        "90s",
    ]);
    assert_one_line_error(
        &o,
        "radio.scan_window: the scan window (90 s) is longer than the scan interval (60 s)",
    );
    let o = meshtrace(&["--data-dir", &dir, "run", "--scan-window", "500ms"]);
    assert_one_line_error(
        &o,
        "radio.scan_window: a scan window of 0.5 s is shorter than the 1 s minimum",
    );
    let o = meshtrace(&["--data-dir", &dir, "run", "--scan-interval", "11min"]);
    assert_one_line_error(
        &o,
        "radio.scan_interval: a scan interval of 660 s is longer than the 600 s maximum",
    );
    // A phone's timing and the baseline model: the daemon says what it uses.
    let mut a = n.start(
        "a",
        &[
            "--scan-interval",
            "60s",
            "--scan-window",
            "4s",
            "--risk-model",
            "cwa",
        ],
    );
    let log = a.log();
    assert!(log.contains("scan=4 s every 60 s"), "{log}");
    assert!(log.contains("risk_model=Cwa"), "{log}");
    assert!(a.stop().success(), "{}", a.log());
    // The defaults of a udp-sim node: the simulated air's duty cycle and the
    // calibrated model.
    let a = n.start("a", &[]);
    let log = a.log();
    assert!(log.contains("scan=1 s every 5 s"), "{log}");
    assert!(log.contains("risk_model=Calibrated"), "{log}");
}
