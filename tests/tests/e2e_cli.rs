//! The real `meshtrace` binary end to end: three `meshtrace run` daemons on
//! loopback (libp2p over TCP, sled stores, udp-sim radios on a private
//! simulated air) in accelerated time sharing one time origin.
//!
//! A and B are 1 m apart for 20 simulated minutes, C is 200 m away. A then
//! leaves (restarted at a far position: a graceful shutdown and a restart on
//! the same store), gets a certificate from an issuer and submits its report.
//! Within a bounded time B shows one high-risk exposure (and its exposure
//! hook ran), C received the report but shows none.
//!
//! The certificate's window is given in real days while the nodes record in
//! simulated days, which run ahead by at most the test's real duration × the
//! time scale: the contact starts within a few simulated minutes of the
//! test's start, so only a run started in the last minutes before midnight
//! UTC could see the contact fall on the next day.

use std::path::Path;

use meshtrace_node::protocol::{Certificate, CertificateParams, ReportRequest, UnixTime};
use meshtrace_node::store::read_key_file;
use meshtrace_tests::cli::*;
use rand_core::SeedableRng;

/// Simulated seconds per real second.
const SCALE: u64 = 60;

struct Net {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    issuer_pub: String,
    port: String,
    origin: String,
}

impl Net {
    fn new() -> Net {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let key = root.join("issuer.key");
        let o = meshtrace(&["issuer", "keygen", "--out", key.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let issuer_pub = stdout(&o).trim().to_owned();
        Net {
            _tmp: tmp,
            root,
            issuer_pub,
            port: free_udp_port().to_string(),
            origin: now_millis().to_string(),
        }
    }

    fn dir(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    fn init(&self, name: &str, x: f64) {
        let o = meshtrace(&[
            "--data-dir",
            &self.dir(name),
            "init",
            "--network",
            "e2e-town",
            "--trust-issuer",
            &format!("clinic={}", self.issuer_pub),
            "--radio",
            "udp-sim",
            "--position",
            &format!("{x},0"),
        ]);
        assert!(o.status.success(), "init {name}: {}", stderr(&o));
    }

    /// `meshtrace run` with the shared air and clock.
    fn start(&self, name: &str, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--udp-port",
            &self.port,
            "--time-scale",
            "60",
            "--time-origin",
            &self.origin,
        ];
        args.extend_from_slice(extra);
        Daemon::start(&self.root.join(name), &args)
    }

    /// Simulated time now (seconds), as the daemons compute it.
    fn sim_now(&self) -> u64 {
        let origin: u64 = self.origin.parse().unwrap();
        (origin + (now_millis() - origin) * SCALE) / 1000
    }

    fn certify(&self, request: &str, extra: &[&str]) -> std::process::Output {
        let key = self.root.join("issuer.key").display().to_string();
        let yesterday = UnixTime(now_millis() / 1000).day().minus(1).to_string();
        let mut args = vec![
            "issuer",
            "certify",
            request,
            "--key",
            &key,
            "--window-start",
            &yesterday,
        ];
        args.extend_from_slice(extra);
        meshtrace(&args)
    }
}

fn count(v: &serde_json::Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

#[test]
fn a_report_warns_the_close_contact_and_not_the_distant_one() {
    let net = Net::new();
    net.init("a", 0.0);
    net.init("b", 1.0);
    net.init("c", 200.0);
    let hook_file = net.root.join("b-exposure.json");
    let hook = format!("cat > {}", hook_file.display());

    let mut a = net.start("a", &[]);
    let a_addr = a.address();
    let b = net.start("b", &["--bootstrap", &a_addr, "--on-exposure", &hook]);
    let c = net.start("c", &["--bootstrap", &a_addr]);
    let together_from = net.sim_now();

    // 20 simulated minutes side by side (20 real seconds at ×60).
    wait_for(CLI_WAIT, "20 simulated minutes", || {
        (net.sim_now() >= together_from + 20 * 60).then_some(())
    });
    let st = b.json(&["status"]);
    assert!(
        st["radio"]["sightings"].as_u64().unwrap() > 0,
        "B heard nothing: {st}"
    );

    // A leaves: graceful stop (open encounters are closed and flushed),
    // restart far away on the same store, rejoining through B and C.
    assert!(a.stop().success(), "A did not exit cleanly: {}", a.log());
    let b_addr = b.address();
    let c_addr = c.address();
    let a = net.start(
        "a",
        &[
            "--position",
            "500,0",
            "--bootstrap",
            &b_addr,
            "--bootstrap",
            &c_addr,
        ],
    );
    let st = a.json(&["status"]);
    assert!(
        st["encounters"].as_u64().unwrap() > 0,
        "A's encounters did not survive the restart: {st}"
    );
    assert_eq!(
        c.json(&["status"])["encounters"].as_u64(),
        Some(0),
        "C is 200 m away and must have recorded nobody"
    );

    // A tests positive: request → issuer → certificate → submit.
    let request = a.json(&["report", "request"])["request"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = net.certify(&request, &["--network", "e2e-town"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cert = stdout(&o).trim().to_owned();
    let sent = a.json(&["report", "submit", &cert, "--yes"]);
    assert_eq!(sent["chunks"].as_u64(), Some(1), "{sent}");
    assert!(sent["real_tokens"].as_u64().unwrap() >= 1, "{sent}");

    // B is warned within a bounded time: one exposure, high risk. (It may
    // first appear as low risk, from the encounter that closed first, and be
    // rescored as B's later encounters with A close.)
    let exposures = wait_for(CLI_WAIT, "B's high-risk exposure", || {
        let e = b.json(&["exposures"]);
        e.as_array()
            .is_some_and(|l| l.iter().any(|x| x["high_risk"] == true))
            .then_some(e)
    });
    assert_eq!(count(&exposures), 1, "{exposures}");
    assert_eq!(exposures[0]["high_risk"], true, "{exposures}");
    // The hook received the exposure as JSON on stdin.
    let hooked = wait_for(CLI_WAIT, "the exposure hook", || {
        let text = std::fs::read_to_string(&hook_file).ok()?;
        let v = serde_json::from_str::<serde_json::Value>(&text).ok()?;
        (v["high_risk"] == true).then_some(v)
    });
    assert_eq!(hooked["report"], exposures[0]["report"]);

    // C received the report (it is gossiped to everyone) and matched nothing.
    wait_for(CLI_WAIT, "C to hold the report", || {
        let s = c.json(&["status"]);
        (s["announcements"].as_u64() >= Some(1)).then_some(())
    });
    let e = c.json(&["exposures"]);
    assert_eq!(count(&e), 0, "{e}");

    // The same certificate cannot be used twice.
    let o = a.cmd(&["report", "submit", &cert, "--yes"]);
    assert_one_line_error(&o, "already used");

    for mut d in [a, b, c] {
        let s = d.stop();
        assert!(s.success(), "exit {s}: {}", d.log());
        assert!(
            !d.data_dir.join("control.sock").exists(),
            "socket left behind"
        );
    }
    // Exposures are readable with the daemon stopped.
    let o = meshtrace(&["--data-dir", &net.dir("b"), "exposures", "--json"]);
    assert_eq!(count(&json_ok(&o)), 1);
}

/// Hash of every file under `dir` (names and contents), to show a failed
/// command left it byte-identical.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn bad_input_without_a_daemon_fails_in_one_line_and_changes_nothing() {
    let net = Net::new();
    net.init("a", 0.0);
    let a = net.dir("a");
    let before = snapshot(Path::new(&a));
    let missing = net.dir("missing");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Missing data directory / config, for every node command.
        (vec!["--data-dir", &missing, "run"], "meshtrace init"),
        (vec!["--data-dir", &missing, "status"], "meshtrace init"),
        (vec!["--data-dir", &missing, "exposures"], "meshtrace init"),
        (vec!["--data-dir", &missing, "peers"], "meshtrace init"),
        (
            vec!["--data-dir", &missing, "report", "request"],
            "meshtrace init",
        ),
        (
            vec!["--data-dir", &missing, "store", "check"],
            "no meshtrace store",
        ),
        // No daemon running.
        (
            vec!["--data-dir", &a, "status"],
            "no meshtrace daemon is running",
        ),
        (
            vec!["--data-dir", &a, "peers"],
            "no meshtrace daemon is running",
        ),
        // Malformed and truncated certificate codes.
        (
            vec!["--data-dir", &a, "report", "submit", "hello", "--yes"],
            "certificate",
        ),
        (
            vec![
                "--data-dir",
                &a,
                "report",
                "submit",
                "MTCT1:ABCDEFGH",
                "--yes",
            ],
            "certificate",
        ),
        // Malformed and truncated request codes at the issuer.
        (
            vec![
                "issuer",
                "certify",
                "MTRQ1:XYZ",
                "--key",
                "/nonexistent",
                "--window-start",
                "2026-01-01",
            ],
            "request",
        ),
        // Bad values for init and run.
        (
            vec!["--data-dir", &missing, "init", "--network", "two words"],
            "network",
        ),
        (
            vec![
                "--data-dir",
                &missing,
                "init",
                "--trust-issuer",
                "clinic=abcd",
            ],
            "issuer",
        ),
        (vec!["--data-dir", &a, "init"], "already exists"),
        (
            vec![
                "--data-dir",
                &a,
                "run",
                "--radio",
                "udp-sim",
                "--time-scale",
                "10",
                "--time-origin",
                "99999999999999",
            ],
            "time-origin is in the future",
        ),
        (
            vec!["--data-dir", &a, "run", "--bootstrap", "not-an-address"],
            "bootstrap",
        ),
        // The flag is named, not a config setting it overrides.
        (
            vec!["--data-dir", &a, "run", "--listen", "/ip4/1.2.3.4/tcpp/1"],
            "--listen: \"/ip4/1.2.3.4/tcpp/1\" is not a multiaddr",
        ),
        (
            vec![
                "--data-dir",
                &a,
                "run",
                "--radio",
                "udp-sim",
                "--time-scale",
                "-3",
            ],
            "time-scale",
        ),
        (
            vec!["--data-dir", &a, "run", "--stem-hops", "99"],
            "--stem-hops must be between 0 and 8 (got 99)",
        ),
        (
            vec![
                "--data-dir",
                &a,
                "run",
                "--min-report-encounter-seconds",
                "99999",
            ],
            "--min-report-encounter-seconds must be between 0 and 3600 (got 99999)",
        ),
        (
            vec![
                "--data-dir",
                &a,
                "run",
                "--passphrase-env",
                "MESHTRACE_TEST_UNSET_VAR",
            ],
            "is not set",
        ),
        (
            vec![
                "--data-dir",
                &a,
                "run",
                "--key-file",
                "/nonexistent/master.key",
            ],
            "key file",
        ),
    ];
    for (args, needle) in &cases {
        let o = meshtrace(args);
        assert_one_line_error(&o, needle);
    }
    assert!(
        !Path::new(&missing).exists(),
        "a failed command created {missing}"
    );
    assert_eq!(snapshot(Path::new(&a)), before, "the store changed");
}

#[test]
fn invalid_or_unreadable_config_is_named_and_changes_nothing() {
    let net = Net::new();
    net.init("a", 0.0);
    let a = net.dir("a");
    let cfg = Path::new(&a).join("config.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (good.replace("[p2p]", "[p2p]\nmdsn = false"), "mdsn"),
        (good.replace("network = ", "netwrk = "), "netwrk"),
        (good.replace("stem_hops = 2", "stem_hops = \"two\""), "line"),
        (
            good.replace("kind = \"udp-sim\"", "kind = \"wifi\""),
            "wifi",
        ),
        ("network = \"unterminated\n".to_owned(), "line 1"),
        (good.clone() + "\n[hooks]\n", "line"),
    ];
    for (text, needle) in &cases {
        std::fs::write(&cfg, text).unwrap();
        let before = snapshot(Path::new(&a));
        for cmd in [&["run"][..], &["report", "request"], &["exposures"]] {
            let mut args = vec!["--data-dir", a.as_str()];
            args.extend_from_slice(cmd);
            let o = meshtrace(&args);
            assert_one_line_error(&o, needle);
        }
        assert_eq!(snapshot(Path::new(&a)), before, "the store changed");
    }
    // A value of the wrong form is refused when the file is read, with the
    // line and the setting (issue #16: the config is parsed once into typed
    // values, not kept as strings and checked later).
    assert!(good.contains("bootstrap = []"), "{good}");
    let text = good.replace("bootstrap = []", "bootstrap = [\"/ip4/1.2.3.4/tcpp/1\"]");
    let line = 1 + text.lines().position(|l| l.contains("tcpp")).unwrap();
    std::fs::write(&cfg, &text).unwrap();
    let o = meshtrace(&["--data-dir", &a, "run"]);
    assert_one_line_error(&o, &format!("line {line}: p2p.bootstrap: "));
    // Unreadable: not UTF-8, and a directory in place of the file.

    std::fs::write(&cfg, [0xff, 0xfe, 0x00, 0x01]).unwrap();
    assert_one_line_error(&meshtrace(&["--data-dir", &a, "run"]), "UTF-8");
    std::fs::remove_file(&cfg).unwrap();
    std::fs::create_dir(&cfg).unwrap();
    assert_one_line_error(&meshtrace(&["--data-dir", &a, "run"]), "not a regular file");
    // An explicit --config that does not exist.
    let o = meshtrace(&["--config", "/nonexistent/meshtrace.toml", "status"]);
    assert_one_line_error(&o, "/nonexistent/meshtrace.toml");
}

#[test]
fn bad_certificates_are_refused_by_the_daemon_and_leave_the_report_pending() {
    let net = Net::new();
    net.init("a", 0.0);
    let a = net.start("a", &[]);
    let request = a.json(&["report", "request"])["request"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = ReportRequest::from_code(&request).unwrap();
    let issuer = {
        let seed = read_key_file(&net.root.join("issuer.key")).unwrap();
        meshtrace_node::protocol::IssuerSecretKey::from_bytes(
            &meshtrace_node::protocol::Zeroizing::new(*seed.as_bytes()),
        )
    };
    let now = UnixTime(now_millis() / 1000);
    let params = |network: &str, from: UnixTime, until: UnixTime| CertificateParams {
        network_id: network.to_owned(),
        report_key: req.report_key,
        valid_from: from,
        valid_until: until,
        window_first_day: now.day().minus(5),
        window_last_day: now.day().minus(3),
        max_tokens: 4096,
    };
    // Another network's certificate.
    let other = Certificate::issue(&issuer, params("other-town", now, now.plus(86_400)))
        .unwrap()
        .to_code();
    // An expired one (A's accelerated clock is only ahead of real time).
    let expired = Certificate::issue(
        &issuer,
        params("e2e-town", now.minus(4 * 86_400), now.minus(2 * 86_400)),
    )
    .unwrap()
    .to_code();
    // One from an issuer this node does not trust.
    let stranger = meshtrace_node::protocol::IssuerSecretKey::generate(
        &mut rand_chacha::ChaCha20Rng::from_seed([9; 32]),
    );
    let untrusted = Certificate::issue(&stranger, params("e2e-town", now, now.plus(86_400)))
        .unwrap()
        .to_code();
    // Truncated and corrupted codes of a valid certificate.
    let good = Certificate::issue(&issuer, params("e2e-town", now, now.plus(86_400)))
        .unwrap()
        .to_code();
    let truncated = good[..good.len() - 7].to_owned();
    let mut corrupted = good.clone().into_bytes();
    let i = corrupted.len() / 2;
    corrupted[i] = if corrupted[i] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(corrupted).unwrap();
    // Plain words, said once: a date rather than seconds, the issuer's key
    // in hex rather than a Rust form, a cut-off code called incomplete.
    let expired_at = format!(
        "meshtrace: certificate expired at {}",
        now.minus(2 * 86_400)
    );
    let stranger_hex = format!(
        "meshtrace: certificate issuer {} is not trusted",
        stranger.public().to_hex()
    );
    for (code, needle) in [
        (&other, "network \"other-town\""),
        (&expired, expired_at.as_str()),
        (&untrusted, stranger_hex.as_str()),
        (&truncated, "meshtrace: certificate code is incomplete"),
        (&corrupted, "certificate"),
    ] {
        let o = a.cmd(&["report", "submit", code, "--yes"]);
        assert_one_line_error(&o, needle);
    }
    // Declining the confirmation publishes nothing either.
    let dir = a.dir();
    let o = run_with_stdin(
        &["--data-dir", &dir, "report", "submit", &good],
        Some("n\n"),
    );
    assert_one_line_error(&o, "not confirmed");
    assert!(
        stdout(&o).contains("chunk"),
        "the plan was shown: {}",
        stdout(&o)
    );
    let st = a.json(&["status"]);
    assert_eq!(st["announcements"].as_u64(), Some(0), "{st}");
    assert_eq!(st["unsent_report_chunks"].as_u64(), Some(0), "{st}");

    // A second daemon on the same data directory is refused; the first keeps
    // running.
    let o = meshtrace(&[
        "--data-dir",
        &dir,
        "run",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--udp-port",
        &net.port,
    ]);
    assert_one_line_error(&o, "already running");
    // The pending request survived all of it: the good certificate works.
    let o = run_with_stdin(
        &["--data-dir", &dir, "report", "submit", &good],
        Some("y\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let st = a.json(&["status"]);
    assert_eq!(st["announcements"].as_u64(), Some(1), "{st}");
}

/// Issues a certificate for `request` with the test issuer of `net`.
fn certificate_for(net: &Net, request: &str) -> String {
    let o = net.certify(request, &["--network", "e2e-town"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_owned()
}

#[test]
fn earlier_report_requests_stay_usable_and_a_spent_certificate_says_already_used() {
    let net = Net::new();
    net.init("a", 0.0);
    let dir = net.dir("a");
    // Two requests on the stopped node, a third through the daemon.
    let request = |what: &str| {
        let o = meshtrace(&["--data-dir", &dir, "report", "request", "--json"]);
        let v = json_ok(&o);
        assert!(
            v["expires_at_utc"]
                .as_str()
                .is_some_and(|t| t.ends_with(" UTC")),
            "{what}: {v}"
        );
        v["request"].as_str().unwrap().to_owned()
    };
    let first = request("first, offline");
    let second = request("second, offline");
    let a = net.start("a", &[]);
    let third = request("third, daemon");

    // The first request's certificate is accepted after later requests.
    let cert1 = certificate_for(&net, &first);
    let sent = a.json(&["report", "submit", &cert1, "--yes"]);
    assert_eq!(sent["chunks"].as_u64(), Some(1), "{sent}");
    // Used once: the same certificate is refused as already used.
    let o = a.cmd(&["report", "submit", &cert1, "--yes"]);
    assert_one_line_error(&o, "already used");
    // The second and third are still pending: their plans are shown.
    for (name, r) in [("second", &second), ("third", &third)] {
        let cert = certificate_for(&net, r);
        let o = run_with_stdin(
            &["--data-dir", &dir, "report", "submit", &cert],
            Some("n\n"),
        );
        assert_one_line_error(&o, "not confirmed");
        assert!(stdout(&o).contains("1 chunk"), "{name}: {}", stdout(&o));
    }

    // Second, third, fourth and fifth pending: a sixth request replaces
    // the oldest (the second) and says so.
    let _fourth = request("fourth");
    let _fifth = request("fifth");
    let o = a.cmd(&["report", "request"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the oldest one (made ")
            && stderr(&o).contains("can no longer be used"),
        "{}",
        stderr(&o)
    );
    let cert2 = certificate_for(&net, &second);
    let o = a.cmd(&["report", "submit", &cert2, "--yes"]);
    assert_one_line_error(&o, "no longer holds");
    // The third still works.
    let cert3 = certificate_for(&net, &third);
    let sent = a.json(&["report", "submit", &cert3, "--yes"]);
    assert_eq!(sent["chunks"].as_u64(), Some(1), "{sent}");
}

#[test]
fn a_closed_or_full_standard_output_is_no_panic() {
    let net = Net::new();
    net.init("a", 0.0);
    let dir = net.dir("a");
    // A full disk: one line, exit status 1.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for json in [false, true] {
        let mut args = vec!["--data-dir", dir.as_str(), "exposures"];
        if json {
            args.push("--json");
        }
        let o = std::process::Command::new(meshtrace_bin())
            .args(&args)
            .stdout(full.try_clone().unwrap())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_one_line_error(&o, "cannot write to the standard output: no space left");
    }
    // A reader that has gone away: quiet, exit status 0.
    let mut child = std::process::Command::new(meshtrace_bin())
        .args(["--data-dir", &dir, "exposures"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = wait_output(child, CLI_WAIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

/// A stand-in for a daemon on `dir`'s control socket that answers the
/// connections, in order, with `replies` (one line each), then stops.
fn fake_daemon(dir: &Path, replies: Vec<String>) -> std::thread::JoinHandle<()> {
    use std::io::{BufRead, Write};
    let listener = std::os::unix::net::UnixListener::bind(dir.join("control.sock")).unwrap();
    std::thread::spawn(move || {
        for reply in replies {
            let (stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            std::io::BufReader::new(&stream)
                .read_line(&mut request)
                .unwrap();
            (&stream)
                .write_all(format!("{reply}\n").as_bytes())
                .unwrap();
        }
    })
}

/// The CLI reads the daemon's replies as typed structs: an answer that
/// lacks a field or has one of the wrong type (another version, or not a
/// meshtrace daemon) is one clear line and a failure, never zeros or
/// blanks printed as if they were the node's state.
#[test]
fn a_malformed_daemon_reply_is_one_clear_line_not_zeros() {
    let net = Net::new();
    net.init("a", 0.0);
    let a = net.dir("a");
    let cases: Vec<(&[&str], &str)> = vec![
        (&["status"], r#"{"ok":true,"result":{}}"#),
        (
            &["status", "--json"],
            r#"{"ok":true,"result":{"pid":"seven"}}"#,
        ),
        (&["peers"], r#"{"ok":true,"result":{"peer_id":5}}"#),
        (&["exposures"], r#"{"ok":true,"result":[{"report":"ab"}]}"#),
        (
            &["report", "request"],
            r#"{"ok":true,"result":{"code":"x"}}"#,
        ),
        (&["status"], r#"{"ok":true}"#),
        (&["status"], "not json"),
    ];
    let server = fake_daemon(
        Path::new(&a),
        cases.iter().map(|(_, r)| (*r).to_owned()).collect(),
    );
    for (cmd, reply) in &cases {
        let mut args = vec!["--data-dir", a.as_str()];
        args.extend_from_slice(cmd);
        let o = meshtrace(&args);
        assert_one_line_error(&o, "answer");
        assert!(stdout(&o).is_empty(), "{cmd:?} on {reply}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("same version"),
            "{cmd:?} on {reply}: {}",
            stderr(&o)
        );
    }
    server.join().unwrap();
}
