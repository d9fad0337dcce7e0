//! Helpers for tests that run the real `meshtrace` binary: locating it,
//! running commands, and daemons that are stopped (SIGTERM, then SIGKILL)
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bounded wait of the CLI tests (real time, on an idle machine; the helpers
/// here scale it with [`crate::deadline`]).
pub const CLI_WAIT: Duration = Duration::from_secs(90);

/// The `meshtrace` binary of this build (`target/<profile>/meshtrace`, next
/// to the test executable's `deps/` directory). `cargo test --workspace`
/// builds it; `MESHTRACE_BIN` overrides.
pub fn meshtrace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHTRACE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps layout");
    let bin = profile_dir.join("meshtrace");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p meshtrace` (or `cargo test --workspace`) first",
        bin.display()
    );
    bin
}

/// Runs `meshtrace ARGS` to completion.
pub fn meshtrace(args: &[&str]) -> Output {
    run_with_stdin(args, None)
}

/// Runs `meshtrace ARGS` with `stdin` as standard input.
pub fn run_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(meshtrace_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshtrace");
    if let Some(mut i) = child.stdin.take()
        && let Some(text) = stdin
    {
        let _ = i.write_all(text.as_bytes());
    }
    wait_output(child, CLI_WAIT)
}

/// Waits for a child's output, killing it after `limit` (scaled by
/// [`crate::deadline`]).
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let limit = crate::deadline(limit);
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("meshtrace did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: non-zero exit and exactly one line on stderr
/// starting with `meshtrace: ` and containing `needle`.
pub fn assert_one_line_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {err:?}");
    assert!(lines[0].starts_with("meshtrace: "), "{err:?}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{needle:?} not in {err:?}"
    );
}

/// Parses standard output as JSON, asserting success.
pub fn json_ok(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Polls `f` until it returns `Some`, up to `limit` (real time, scaled by
/// [`crate::deadline`]).
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let limit = crate::deadline(limit);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({limit:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `meshtrace run`, stopped when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts `meshtrace --data-dir DIR run ARGS` (stderr to DIR/../NAME.log)
    /// and waits until its control socket answers.
    pub fn start(data_dir: &Path, args: &[&str]) -> Daemon {
        Daemon::start_with(Command::new(meshtrace_bin()), data_dir, args)
    }

    /// Like [`Daemon::start`], inside network namespace `netns` (`ip netns
    /// exec`, which runs the daemon in its own process: stopping and
    /// killing work the same).
    pub fn start_in(netns: &str, data_dir: &Path, args: &[&str]) -> Daemon {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", netns]).arg(meshtrace_bin());
        Daemon::start_with(c, data_dir, args)
    }

    fn start_with(mut command: Command, data_dir: &Path, args: &[&str]) -> Daemon {
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("run")
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn meshtrace run");
        let mut d = Daemon {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            log,
        };
        let dir = d.dir();
        wait_for(CLI_WAIT, "the daemon's control socket", || {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "the daemon exited early ({status}): {}",
                    std::fs::read_to_string(&d.log).unwrap_or_default()
                );
            }
            let o = meshtrace(&["--data-dir", &dir, "status", "--json"]);
            o.status.success().then_some(())
        });
        d
    }

    /// The data directory as a string.
    pub fn dir(&self) -> String {
        self.data_dir.display().to_string()
    }

    /// `meshtrace --data-dir DIR ARGS`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let dir = self.dir();
        let mut all = vec!["--data-dir", dir.as_str()];
        all.extend_from_slice(args);
        meshtrace(&all)
    }

    /// `meshtrace --data-dir DIR ARGS --json`, parsed, asserting success.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        json_ok(&self.cmd(&all))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A dialable address: its first TCP listen address with `/p2p/<id>`.
    pub fn address(&self) -> String {
        let p = self.json(&["peers"]);
        let id = p["peer_id"].as_str().expect("peer id").to_owned();
        let listen = p["listen"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .filter_map(|a| a.as_str())
                    .find(|a| a.contains("/tcp/"))
                    .map(str::to_owned)
            })
            .expect("a tcp listen address");
        format!("{listen}/p2p/{id}")
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns the exit
    /// status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SIGTERM through the kill command (the crate forbids unsafe code).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + crate::deadline(CLI_WAIT);
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the daemon did not stop after SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    /// Its exit status once it has exited on its own (reaped); `None` while
    /// it runs.
    pub fn try_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (a name for `kill -s`, e.g. `HUP`) and waits (bounded)
    /// for the daemon to exit; returns the exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .arg("-s")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -s {signal} failed");
        let deadline = Instant::now() + CLI_WAIT;
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the daemon did not stop after SIG{signal}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free UDP port on loopback (for a private simulated air).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// Milliseconds since the epoch (real time).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
