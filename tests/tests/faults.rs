//! Faults: a daemon killed (SIGKILL) under radio and mesh load keeps what it
//! flushed and starts again; clocks that jump hours forwards and backwards
//! do not stop a node from recording, storing, matching and warning; a full
//! disk, at start or while running, stops the daemon cleanly without damage
//! or loss of what was flushed.
//!
//! A network partition that heals is covered by `catchup.rs` (a node that
//! was offline catches up on every report it missed).

use std::time::Instant;

use meshtrace_node::NodeEvent;
use meshtrace_node::clock::Clock;
use meshtrace_tests::cli::*;
use meshtrace_tests::mesh::{TestNet, WAIT};
use meshtrace_tests::world::World;

/// `meshtrace init` of nodes `a` (at 0,0) and `b` (1 m away) in `root`, on
/// the simulated radio.
fn init_pair(root: &std::path::Path, network: &str, extra: &[&str]) {
    for (name, x) in [("a", "0,0"), ("b", "1,0")] {
        let dir = root.join(name).display().to_string();
        let mut args = vec![
            "--data-dir",
            &dir,
            "init",
            "--network",
            network,
            "--radio",
            "udp-sim",
            "--position",
            x,
        ];
        args.extend_from_slice(extra);
        let o = meshtrace(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[test]
fn a_daemon_killed_under_load_keeps_its_flushed_data_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("issuer.key");
    let o = meshtrace(&["issuer", "keygen", "--out", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let issuer = stdout(&o).trim().to_owned();
    let port = free_udp_port().to_string();
    let origin = now_millis().to_string();
    let dir = |n: &str| tmp.path().join(n).display().to_string();
    init_pair(tmp.path(), "faults", &["--trust-issuer", &issuer]);
    let run = |extra: &[&str]| {
        let mut v = vec![
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--udp-port",
            &port,
            "--time-scale",
            "60",
            "--time-origin",
            &origin,
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = run(&[]);
    let a = Daemon::start(
        &tmp.path().join("a"),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let a_addr = a.address();
    let args = run(&["--bootstrap", &a_addr]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut b = Daemon::start(&tmp.path().join("b"), &args);

    // Wait until B has stored encounters (closed at epoch rotations, i.e.
    // within about 15 simulated minutes). They are flushed by then: the
    // node's timer adds closed encounters and flushes in the same tick (the
    // last flush is a tick, at least 15 simulated seconds, ago: more than
    // the 2-second flush interval), and the status is answered between
    // ticks. No waiting for a flush, which a busy machine could delay.
    let stored = wait_for(CLI_WAIT, "B to store encounters", || {
        let n = b.json(&["status"])["encounters"].as_u64().unwrap();
        (n > 0).then_some(n)
    });
    // SIGKILL while the radio and the mesh are busy.
    b.kill();
    let o = meshtrace(&["--data-dir", &dir("b"), "store", "check", "--json"]);
    let check = json_ok(&o);
    assert_eq!(check["ok"], true);
    assert!(
        check["encounters"].as_u64().unwrap() >= stored,
        "flushed encounters lost: {check} < {stored}"
    );
    // It starts again on the same store (the stale socket is replaced).
    let b = Daemon::start(&tmp.path().join("b"), &args);
    let st = b.json(&["status"]);
    assert!(st["encounters"].as_u64().unwrap() >= stored, "{st}");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumps_forwards_and_backwards_do_not_stop_a_node() {
    let net = TestNet::new(61);
    let mut w = World::new(&net, &[0.0, 1.0]).await;
    // Sixteen minutes together, the clock jumps three hours forward, sixteen
    // more minutes, then it is set back two hours, sixteen more minutes:
    // three pieces of close contact, each long enough to be high risk on its
    // own (the jumps may cross midnight).
    w.run_for(16 * 60).await;
    w.clock.advance_millis(3 * 3600 * 1000);
    w.run_for(16 * 60).await;
    let back = w.clock.now_millis() - 2 * 3600 * 1000;
    w.clock.set_millis(back);
    w.run_for(16 * 60).await;
    // Apart, so that every encounter closes.
    w.air
        .set_enabled(meshtrace_node::radio::memory::DeviceId(1), false);
    w.run_for(10 * 60).await;
    let a = w.nodes[0].status().await.unwrap();
    let b = w.nodes[1].status().await.unwrap();
    assert!(a.encounters >= 3, "A recorded {} encounters", a.encounters);
    assert!(b.encounters >= 3, "B recorded {} encounters", b.encounters);
    assert_eq!(b.open_encounters, 0);

    // B reports; A is warned, and every piece counts.
    let b_node = &w.nodes[1];
    let request = b_node.report_request().await.unwrap();
    let cert = net.certify(&request, w.clock.now()).to_code();
    let sent = b_node.report_submit(cert).await.unwrap();
    assert_eq!(sent.chunks.len(), 1);
    // (B's handle must stay alive: dropping it stops B.)
    let a_events = &mut w.nodes[0].events;
    let limit = meshtrace_tests::deadline(WAIT);
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, a_events.recv()).await {
            Ok(Some(NodeEvent::Exposure(e))) => {
                if e.exposure.high_risk && e.exposure.encounters.len() >= 3 {
                    break;
                }
                last = Some(e);
            }
            Ok(Some(_)) => {}
            _ => panic!("A was not warned of all three pieces within {limit:?}; last: {last:?}"),
        }
    }
}

/// A full disk, approximated with a file-size limit of zero blocks
/// (`ulimit -f 0`, SIGXFSZ ignored so that writes fail with EFBIG instead of
/// killing the process): the daemon stops with one clear line and a
/// non-zero exit, the store is intact, and it runs again once space is back.
#[test]
fn a_full_disk_stops_the_daemon_cleanly_and_corrupts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").display().to_string();
    let o = meshtrace(&[
        "--data-dir",
        &dir,
        "init",
        "--network",
        "full",
        "--radio",
        "udp-sim",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let port = free_udp_port().to_string();
    let run = format!(
        "trap '' XFSZ; ulimit -f 0; exec '{}' --data-dir '{dir}' run --listen /ip4/127.0.0.1/tcp/0 --no-mdns --udp-port {port}",
        meshtrace_bin().display()
    );
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&run)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_output(child, CLI_WAIT);
    assert_one_line_error(&o, "File too large");
    // Nothing damaged.
    let check = json_ok(&meshtrace(&[
        "--data-dir",
        &dir,
        "store",
        "check",
        "--json",
    ]));
    assert_eq!(check["ok"], true);
    // Space is back: it runs.
    let mut d = Daemon::start(
        &tmp.path().join("a"),
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--udp-port",
            &port,
        ],
    );
    assert!(d.stop().success(), "{}", d.log());
}

/// A disk that fills up while the daemon runs, approximated by lowering the
/// running daemon's file-size limit to zero (`prlimit`; SIGXFSZ ignored so
/// that writes fail with EFBIG). The database refuses every write after a
/// failed one, so running on would lose everything recorded from then on:
/// the daemon stops by itself with a non-zero exit and one clear last line,
/// the store is intact and keeps every encounter flushed before, and the
/// daemon runs again once space is back.
#[test]
fn a_disk_that_fills_up_while_running_stops_the_daemon_and_keeps_what_it_flushed() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_udp_port().to_string();
    let origin = now_millis().to_string();
    let dir = |n: &str| tmp.path().join(n).display().to_string();
    init_pair(tmp.path(), "fills-up", &[]);
    let run_args = format!(
        "--listen /ip4/127.0.0.1/tcp/0 --no-mdns --udp-port {port} --time-scale 60 --time-origin {origin}"
    );
    let args: Vec<&str> = run_args.split(' ').collect();
    let _b = Daemon::start(&tmp.path().join("b"), &args);
    // A with its standard error on a pipe (a log file would be subject to
    // the same file-size limit).
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec '{}' --data-dir '{}' run {run_args}",
            meshtrace_bin().display(),
            dir("a")
        ))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let status = |d: &str| {
        let o = meshtrace(&["--data-dir", d, "status", "--json"]);
        o.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap())
    };
    // A stores encounters with B (closed at rotations, every 15 simulated
    // minutes); they are flushed in the tick that stored them (see
    // `a_daemon_killed_under_load_keeps_its_flushed_data_and_restarts`).
    let stored = wait_for(CLI_WAIT, "A to store encounters", || {
        status(&dir("a")).and_then(|s| s["encounters"].as_u64().filter(|n| *n > 0))
    });

    // The disk is full from now on.
    let o = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=0:"])
        .output()
        .expect("prlimit (util-linux)");
    assert!(o.status.success(), "prlimit: {}", stderr(&o));
    let o = wait_output(child, CLI_WAIT);
    assert!(
        !o.status.success(),
        "the daemon kept running on a full disk"
    );
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("meshtrace: the store cannot write (")
            && last.contains("File too large")
            && last.contains("start it again"),
        "last line: {last}\nall: {err}"
    );
    assert!(
        !std::path::Path::new(&dir("a"))
            .join("control.sock")
            .exists(),
        "the control socket was left behind"
    );

    // Nothing damaged, nothing flushed lost.
    let check = json_ok(&meshtrace(&[
        "--data-dir",
        &dir("a"),
        "store",
        "check",
        "--json",
    ]));
    assert_eq!(check["ok"], true);
    let kept = check["encounters"].as_u64().unwrap();
    assert!(
        kept >= stored,
        "{stored} encounters were stored, {kept} kept"
    );
    // Space is back: it runs again.
    let mut a = Daemon::start(&tmp.path().join("a"), &args);
    assert!(a.stop().success(), "{}", a.log());
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `600k`) at `at`; `None` (with a
    /// message) where mounting is not permitted.
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let o = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .ok()?;
        if !o.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a small tmpfs here (needs root): {}",
                stderr(&o)
            );
            return None;
        }
        Some(SmallDisk(at.to_owned()))
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        loop {
            if f.write_all(&block).is_err() || f.sync_all().is_err() {
                return path;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Every file name under `dir` (recursively), relative.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// A real full disk (ENOSPC, a 600 KB tmpfs) while a node records a
/// neighbour: the daemon stops by itself, as for EFBIG, with one clear last
/// line and a non-zero exit; `store check` on the full disk writes nothing
/// into the store; once there is room the store opens (or recovers) with
/// every encounter flushed before.
#[test]
fn a_really_full_disk_stops_the_daemon_and_check_and_recover_keep_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("small"), "600k") else {
        return;
    };
    let port = free_udp_port().to_string();
    let origin = now_millis().to_string();
    let a_dir = disk.0.join("a");
    let a = a_dir.display().to_string();
    for (dir, x) in [
        (a.clone(), "0,0"),
        (tmp.path().join("b").display().to_string(), "1,0"),
    ] {
        let o = meshtrace(&[
            "--data-dir",
            &dir,
            "init",
            "--network",
            "enospc",
            "--radio",
            "udp-sim",
            "--position",
            x,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let run_args = format!(
        "--listen /ip4/127.0.0.1/tcp/0 --no-mdns --udp-port {port} --time-scale 60 --time-origin {origin}"
    );
    let args: Vec<&str> = run_args.split(' ').collect();
    let _b = Daemon::start(&tmp.path().join("b"), &args);
    let child = std::process::Command::new(meshtrace_bin())
        .args(["--data-dir", &a, "run"])
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = || {
        let o = meshtrace(&["--data-dir", &a, "status", "--json"]);
        o.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap())
    };
    wait_for(CLI_WAIT, "A to store encounters", || {
        status().and_then(|s| (s["encounters"].as_u64().unwrap() > 0).then_some(()))
    });
    let s0 = status().expect("A answers");
    let stored = s0["encounters"].as_u64().unwrap();
    // The node's timer (every 250 ms of real time, 15 s of this daemon's
    // simulated time) flushes once FLUSH_INTERVAL_SECONDS have passed: wait
    // until A's clock has run through several timer periods, so the
    // encounters counted above are on disk.
    let t0 = s0["now"].as_u64().unwrap();
    let settle = 4 * 15 + meshtrace_node::store::FLUSH_INTERVAL_SECONDS;
    wait_for(CLI_WAIT, "A's clock to pass several flush periods", || {
        status().and_then(|s| (s["now"].as_u64().unwrap() >= t0 + settle).then_some(()))
    });

    let filler = disk.fill();
    let o = wait_output(child, CLI_WAIT);
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "the daemon kept running on a full disk: {err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("meshtrace: the store cannot write (")
            && last.contains("No space left on device")
            && last.contains("start it again"),
        "last line: {last}\nall: {err}"
    );

    // `store check` on the full disk leaves nothing in the store.
    let before = file_names(&a_dir.join("db"));
    let o = meshtrace(&["--data-dir", &a, "store", "check", "--json"]);
    assert!(!stderr(&o).contains("None"), "{}", stderr(&o));
    assert_eq!(
        file_names(&a_dir.join("db")),
        before,
        "store check wrote into the store"
    );

    // Room again: the store opens with everything flushed, or recovery
    // (which then must be offered) keeps it all.
    std::fs::remove_file(&filler).unwrap();
    let o = meshtrace(&["--data-dir", &a, "store", "check", "--json"]);
    if !o.status.success() {
        let e = stderr(&o);
        assert!(e.contains("store recover") && !e.contains("None"), "{e}");
        let r = json_ok(&meshtrace(&[
            "--data-dir",
            &a,
            "store",
            "recover",
            "--json",
        ]));
        assert!(r["kept"].as_u64().unwrap() > 0, "{r}");
    }
    let check = json_ok(&meshtrace(&["--data-dir", &a, "store", "check", "--json"]));
    let kept = check["encounters"].as_u64().unwrap();
    assert!(
        kept >= stored,
        "{stored} encounters were stored, {kept} kept"
    );
    let mut again = Daemon::start(&a_dir, &args);
    assert!(again.stop().success(), "{}", again.log());
}

/// A clock far in the future (2083: `--time-origin 1 --time-scale 2`) must
/// not delete the encounters: the purge is held, `status` says so in words
/// and in `--json`, and every encounter is still there after the run.
#[test]
fn a_clock_in_2083_holds_the_purge_and_the_daemon_keeps_every_encounter() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_udp_port().to_string();
    let origin = now_millis().to_string();
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    for (dir, x) in dirs.iter().zip(["0,0", "1,0"]) {
        let dir = dir.display().to_string();
        let o = meshtrace(&[
            "--data-dir",
            &dir,
            "init",
            "--network",
            "future",
            "--radio",
            "udp-sim",
            "--position",
            x,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let today = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--udp-port",
        &port,
        "--time-scale",
        "60",
        "--time-origin",
        &origin,
    ];
    let mut a = Daemon::start(&dirs[0], &today);
    let mut b = Daemon::start(&dirs[1], &today);
    wait_for(CLI_WAIT, "A to store encounters", || {
        (a.json(&["status"])["encounters"].as_u64().unwrap() > 0).then_some(())
    });
    assert!(a.stop().success(), "{}", a.log());
    assert!(b.stop().success(), "{}", b.log());
    let a_dir = dirs[0].display().to_string();
    let check = || {
        json_ok(&meshtrace(&[
            "--data-dir",
            &a_dir,
            "store",
            "check",
            "--json",
        ]))
    };
    let before = check()["encounters"].as_u64().unwrap();
    assert!(before > 0);

    // The same node, its clock now in 2083.
    let future = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--no-mdns",
        "--udp-port",
        &port,
        "--time-scale",
        "2",
        "--time-origin",
        "1",
    ];
    let mut a = Daemon::start(&dirs[0], &future);
    let s = a.json(&["status"]);
    assert!(
        s["now_utc"].as_str().unwrap().starts_with("208"),
        "the clock should read 208x: {s}"
    );
    assert!(s["purge_held"].is_object(), "purge not held: {s}");
    assert_eq!(s["encounters"].as_u64().unwrap(), before, "{s}");
    let text = stdout(&a.cmd(&["status"]));
    assert!(
        text.contains("old data") && text.contains("nothing is deleted"),
        "status does not say the purge is held: {text}"
    );
    assert!(a.stop().success(), "{}", a.log());
    assert!(
        a.log().contains("purge"),
        "the held purge is not in the log: {}",
        a.log()
    );
    assert_eq!(check()["encounters"].as_u64().unwrap(), before);
}
