//! The page through the real binary: `meshtrace run` serves it beside a
//! real daemon (udp-sim radio, libp2p on loopback, sled on disk),
//! `meshtrace ui --print-url` logs in, `--no-ui` serves nothing, "delete
//! everything" wipes the node and stops it, and the CLI's notices follow
//! the language rules.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bounded waits (real time; generous for a busy 2-core machine).
const WAIT: Duration = Duration::from_secs(180);

fn meshtrace_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meshtrace"));
    c.args(args).env_remove("LC_ALL").env_remove("LC_MESSAGES");
    c.env("LANG", "C.UTF-8");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn meshtrace(args: &[&str]) -> Output {
    meshtrace_env(args, &[])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn one_line_error(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(needle), "expected {needle:?} in {e:?}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e:?}");
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node made with `init --radio udp-sim` in a fresh directory, with
/// `ui_lines` added to the `[ui]` section init writes (`listen` replaces
/// the default one).
fn init(root: &Path, ui_lines: &str) -> PathBuf {
    let dir = root.join("node");
    let d = dir.to_str().unwrap();
    let o = meshtrace(&[
        "--data-dir",
        d,
        "init",
        "--radio",
        "udp-sim",
        "--network",
        "campus",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    if !ui_lines.is_empty() {
        let cfg = dir.join("config.toml");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        if ui_lines.starts_with("listen") {
            text = text.replace("listen = \"127.0.0.1:7390\"\n", "");
        }
        assert!(text.contains("[ui]\n"), "{text}");
        let text = text.replace("[ui]\n", &format!("[ui]\n{ui_lines}"));
        std::fs::write(&cfg, text).unwrap();
    }
    dir
}

/// A running `meshtrace run`, killed when dropped.
struct Daemon {
    child: Child,
    dir: String,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, args: &[&str]) -> Daemon {
        let log = dir.with_extension("log");
        let d = dir.to_str().unwrap().to_owned();
        let child = Command::new(env!("CARGO_BIN_EXE_meshtrace"))
            .args([
                "--data-dir",
                &d,
                "run",
                "--no-mdns",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut me = Daemon { child, dir: d, log };
        wait_for("the daemon's control socket", || {
            if let Ok(Some(s)) = me.child.try_wait() {
                panic!("the daemon exited early ({s}): {}", me.log());
            }
            me.cmd(&["status", "--json"]).status.success().then_some(())
        });
        me
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut all = vec!["--data-dir", self.dir.as_str()];
        all.extend_from_slice(args);
        meshtrace(&all)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> serde_json::Value {
        let o = self.cmd(&["status", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_for("the daemon to exit", || self.child.try_wait().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

/// GET `url` with a cookie; (status, set-cookie, body).
fn get(url: &str, cookie: &str) -> (u16, String, String) {
    let mut req = agent().get(url);
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let mut r = req.call().unwrap();
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        r.status().as_u16(),
        set,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Logs in through `meshtrace ui --print-url`; returns (base URL, cookie).
fn login(d: &Daemon) -> (String, String) {
    let o = d.cmd(&["ui", "--print-url"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let link = stdout(&o).trim().to_owned();
    assert_eq!(link.lines().count(), 1, "{link}");
    let base = link.split("/login?t=").next().unwrap().to_owned();
    let (status, set, _) = get(&link, "");
    assert_eq!(status, 303, "{}", d.log());
    let cookie = set.split(';').next().unwrap().to_owned();
    // The link works once.
    let (again, _, body) = get(&link, "");
    assert_eq!(again, 401);
    assert!(body.contains("meshtrace ui"), "{body}");
    (base, cookie)
}

#[test]
fn run_serves_the_page_and_ui_print_url_logs_in_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let d = Daemon::start(&dir, &["--ui-listen", "127.0.0.1:0"]);
    let url = d.status()["ui_url"].as_str().expect("ui_url").to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mode = std::fs::metadata(dir.join("ui.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (base, cookie) = login(&d);
    assert_eq!(base, url);
    let (status, _, body) = get(&format!("{base}/"), &cookie);
    assert_eq!(status, 200);
    assert!(body.contains("No exposure found"), "{body}");
    assert!(body.contains("Radio: simulated (udp-sim)"), "{body}");
    let (status, _, _) = get(&format!("{base}/"), "");
    assert_eq!(status, 401);
    // `status` shows where the page is.
    let o = d.cmd(&["status"]);
    assert!(
        stdout(&o).contains(&format!("page:          {url}")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn no_ui_serves_nothing_and_ui_says_so_in_one_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let dd = dir.to_str().unwrap().to_owned();
    // No daemon at all.
    one_line_error(
        &meshtrace(&["--data-dir", &dd, "ui", "--print-url"]),
        "no meshtrace daemon is running",
    );
    let d = Daemon::start(&dir, &["--no-ui"]);
    assert!(d.status().get("ui_url").is_none(), "{}", d.status());
    assert!(!dir.join("ui.key").exists());
    one_line_error(&d.cmd(&["ui", "--print-url"]), "serves no page");
    one_line_error(
        &meshtrace(&["--data-dir", &dd, "run", "--ui-listen", "0.0.0.0:7390"]),
        "this computer only",
    );
}

#[test]
fn a_non_loopback_listen_address_in_the_config_is_refused_plainly() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "listen = \"0.0.0.0:7390\"\n");
    let o = meshtrace(&["--data-dir", dir.to_str().unwrap(), "run"]);
    one_line_error(&o, "ui.listen");
    assert!(stderr(&o).contains("127.0.0.1"), "{}", stderr(&o));
}

#[test]
fn delete_everything_on_the_page_wipes_the_node_and_stops_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let mut d = Daemon::start(&dir, &["--ui-listen", "127.0.0.1:0"]);
    let (base, cookie) = login(&d);
    let (_, _, privacy) = get(&format!("{base}/privacy"), &cookie);
    let at = privacy.find("name=\"csrf\" value=\"").expect("csrf field");
    let rest = &privacy[at + "name=\"csrf\" value=\"".len()..];
    let csrf = &rest[..rest.find('"').unwrap()];
    for f in [
        "store.meta",
        "db",
        "master.key",
        "identity.key",
        "ui.key",
        "config.toml",
    ] {
        assert!(dir.join(f).exists(), "{f} before");
    }
    let mut r = agent()
        .post(&format!("{base}/privacy/delete/confirm"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}&confirm=yes"))
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.contains("Everything is deleted"), "{body}");
    let status = d.wait_exit();
    assert!(status.success(), "{status}: {}", d.log());
    for f in [
        "store.meta",
        "db",
        "master.key",
        "identity.key",
        "ui.key",
        "config.toml",
        "control.sock",
    ] {
        assert!(!dir.join(f).exists(), "{f} is still there");
    }
    // Starting over works.
    let o = meshtrace(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "init",
        "--radio",
        "udp-sim",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn the_cli_speaks_the_configured_language_then_the_systems() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let d = dir.to_str().unwrap();
    let o = meshtrace(&["--data-dir", d, "exposures"]);
    assert_eq!(stdout(&o).trim(), "No exposures found.");
    let o = meshtrace_env(&["--data-dir", d, "exposures"], &[("LANG", "vi_VN.UTF-8")]);
    assert_eq!(stdout(&o).trim(), "Không có tiếp xúc nguy cơ nào.");
    let o = meshtrace_env(
        &["--data-dir", d, "exposures"],
        &[("LANG", "vi_VN.UTF-8"), ("LC_ALL", "en_GB.UTF-8")],
    );
    assert_eq!(stdout(&o).trim(), "No exposures found.");
    // [ui] language beats the system's.
    let root2 = tempfile::tempdir().unwrap();
    let dir2 = init(root2.path(), "language = \"vi\"\n");
    let o = meshtrace_env(
        &["--data-dir", dir2.to_str().unwrap(), "exposures"],
        &[("LANG", "en_US.UTF-8")],
    );
    assert_eq!(stdout(&o).trim(), "Không có tiếp xúc nguy cơ nào.");
}

#[test]
fn report_request_qr_draws_the_code_for_the_terminal() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let o = meshtrace(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "report",
        "request",
        "--qr",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let code = lines.next().unwrap();
    assert!(code.starts_with("MTRQ1:"), "{out}");
    let drawing: Vec<&str> = lines.collect();
    assert!(drawing.len() > 10, "{out}");
    assert_eq!(
        drawing.join("\n").trim_end(),
        meshtrace_ui::qr::terminal(code).unwrap().trim_end()
    );
    assert!(stderr(&o).contains("QR code"), "{}", stderr(&o));
    let o = meshtrace(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "report",
        "request",
        "--qr",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(2), "--qr with --json is refused");
}

#[test]
fn a_busy_page_port_leaves_the_node_running_without_its_page() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let d = Daemon::start(&dir, &["--ui-listen", &addr]);
    assert!(d.status().get("ui_url").is_none(), "{}", d.status());
    assert!(
        d.log().contains("the local page is not served"),
        "{}",
        d.log()
    );
    one_line_error(&d.cmd(&["ui", "--print-url"]), "serves no page");
}

#[test]
fn a_daemon_that_fails_its_checks_starts_no_page_and_writes_no_secret() {
    let root = tempfile::tempdir().unwrap();
    let dir = init(root.path(), "");
    let o = meshtrace(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "run",
        "--passphrase-env",
        "MESHTRACE_TEST_UNSET_PASSPHRASE",
    ]);
    one_line_error(&o, "MESHTRACE_TEST_UNSET_PASSPHRASE");
    assert!(!dir.join("ui.key").exists());
}
