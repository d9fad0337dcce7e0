//! Two real processes on the `udp-sim` radio (loopback multicast): 1 m apart
//! each records the other's rotating IDs and an encounter with a shared
//! token; 30 m apart neither does. Both scenarios run at once, each pair on
//! its own port, so the whole test takes one run of the children (about
//! `DURATION / SCALE` seconds).

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Simulated time runs this many times faster than real time.
const SCALE: f64 = 60.0;
/// Simulated seconds each child runs: 20 minutes (20 s real), across a key
/// rotation.
const DURATION: u64 = 20 * 60;
/// Slack for start-up and shutdown on top of the simulated run's real time
/// (on an idle machine; scaled by `meshtrace_tests::deadline`).
const SLACK: Duration = Duration::from_secs(25);

/// What one child printed.
#[derive(Debug, Default)]
struct Report {
    own: BTreeSet<String>,
    heard: BTreeSet<String>,
    tokens: BTreeSet<String>,
    /// `air` counters by name.
    air: Vec<(String, u64)>,
}

impl Report {
    fn parse(name: &str, text: &str) -> Report {
        let mut r = Report::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let kind = words.next().unwrap_or("");
            let rest: Vec<&str> = words.collect();
            match (kind, &rest[..]) {
                ("own", [h]) => assert!(r.own.insert(h.to_string()), "{name}: {line}"),
                ("heard", [h]) => assert!(r.heard.insert(h.to_string()), "{name}: {line}"),
                ("token", [h]) => {
                    r.tokens.insert(h.to_string());
                }
                ("air", pairs) => {
                    for kv in pairs.chunks(2) {
                        let [k, v] = kv else {
                            panic!("{name}: bad air line {line:?}")
                        };
                        r.air.push((k.to_string(), v.parse().unwrap()));
                    }
                }
                _ => panic!("{name}: unexpected output line {line:?}"),
            }
        }
        for h in r.own.iter().chain(&r.heard) {
            assert_eq!(h.len(), 64, "{name}: IDs are 32 bytes: {h}");
        }
        for t in &r.tokens {
            assert_eq!(t.len(), 32, "{name}: tokens are 16 bytes: {t}");
        }
        r
    }

    fn air(&self, key: &str) -> u64 {
        self.air
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, v)| v)
            .unwrap_or_else(|| panic!("no air counter {key} in {:?}", self.air))
    }
}

/// A running child; killed (and reaped) when dropped, so a failing test
/// leaves no process behind.
struct Node {
    name: String,
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    // One message: the whole stream.
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    rx
}

impl Node {
    fn spawn(name: &str, x: f64, port: u16, seed: u64) -> Node {
        let args = [
            x.to_string(),
            "0".into(),
            port.to_string(),
            SCALE.to_string(),
            DURATION.to_string(),
            seed.to_string(),
        ];
        Node::spawn_args(name, &args)
    }

    fn spawn_args(name: &str, args: &[String]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshtrace-radio-child"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = read_all(child.stdout.take().unwrap());
        let stderr = read_all(child.stderr.take().unwrap());
        Node {
            name: name.into(),
            child,
            stdout,
            stderr,
        }
    }

    /// Waits until `deadline` for the child to print its report and exit 0.
    fn finish(self, deadline: Instant) -> Report {
        let name = self.name.clone();
        let (status, out, err) = self.outcome(deadline);
        assert!(status.success(), "{name} exited with {status}: {err}");
        Report::parse(&name, &out)
    }

    /// Waits until `deadline` for the child to exit: status, stdout, stderr.
    fn outcome(mut self, deadline: Instant) -> (ExitStatus, String, String) {
        let left = || deadline.saturating_duration_since(Instant::now());
        let Ok(out) = self.stdout.recv_timeout(left()) else {
            let _ = self.child.kill();
            let err = self.stderr.recv_timeout(Duration::from_secs(2));
            panic!(
                "{} did not finish before the deadline; killed it (stderr: {:?})",
                self.name,
                err.unwrap_or_default()
            );
        };
        // Its stdout is closed: it is exiting. Reap it, still bounded.
        let status = self.wait_exit(deadline);
        let err = self.stderr.recv_timeout(left()).unwrap_or_default();
        (status, out, err)
    }

    fn wait_exit(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    panic!(
                        "{} closed its output but did not exit; killed it",
                        self.name
                    );
                }
                Err(e) => panic!("wait for {}: {e}", self.name),
            }
        }
    }
}

/// A UDP port nobody on this machine is using right now (the OS picks it),
/// so parallel test runs do not share an air.
fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn common<'a>(a: &'a BTreeSet<String>, b: &'a BTreeSet<String>) -> Vec<&'a String> {
    a.intersection(b).collect()
}

#[test]
fn one_metre_apart_meet_thirty_metres_apart_do_not() {
    let started = Instant::now();
    let (near_port, far_port) = loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            break (a, b);
        }
    };
    let near_a = Node::spawn("near A (0,0)", 0.0, near_port, 1);
    let near_b = Node::spawn("near B (1,0)", 1.0, near_port, 2);
    let far_a = Node::spawn("far A (0,0)", 0.0, far_port, 3);
    let far_b = Node::spawn("far B (30,0)", 30.0, far_port, 4);
    let deadline = started
        + Duration::from_secs_f64(DURATION as f64 / SCALE)
        + meshtrace_tests::deadline(SLACK);
    let (na, nb) = (near_a.finish(deadline), near_b.finish(deadline));
    let (fa, fb) = (far_a.finish(deadline), far_b.finish(deadline));
    eprintln!("children finished after {:?}", started.elapsed());

    // Every run crosses one rotation: two broadcast IDs each.
    for (name, r) in [
        ("near A", &na),
        ("near B", &nb),
        ("far A", &fa),
        ("far B", &fb),
    ] {
        assert!(r.own.len() >= 2, "{name} broadcast {:?}", r.own);
        assert!(r.air("sent") > 0, "{name} sent nothing: {:?}", r.air);
    }

    // 1 m: each heard the other's IDs, and they share encounter tokens.
    assert!(
        !common(&na.heard, &nb.own).is_empty(),
        "A heard none of B's IDs: heard {:?}, B's {:?}, air {:?}",
        na.heard,
        nb.own,
        na.air
    );
    assert!(
        !common(&nb.heard, &na.own).is_empty(),
        "B heard none of A's IDs: heard {:?}, A's {:?}, air {:?}",
        nb.heard,
        na.own,
        nb.air
    );
    assert!(
        !common(&na.tokens, &nb.tokens).is_empty(),
        "no shared encounter token: A {:?}, B {:?}",
        na.tokens,
        nb.tokens
    );
    // Only each other on that air: every heard ID belongs to the peer.
    assert!(na.heard.is_subset(&nb.own), "{:?} ⊄ {:?}", na.heard, nb.own);
    assert!(nb.heard.is_subset(&na.own), "{:?} ⊄ {:?}", nb.heard, na.own);

    // 30 m: the packets arrived (the model refused them), nothing was heard.
    for (name, r, other) in [("far A", &fa, &fb), ("far B", &fb, &fa)] {
        assert!(
            r.air("not_received") > 0,
            "{name} never judged a packet from its peer, so the test proves nothing: {:?}",
            r.air
        );
        assert_eq!(r.air("heard"), 0, "{name}: {:?}", r.air);
        assert!(
            common(&r.heard, &other.own).is_empty(),
            "{name} heard its peer at 30 m: {:?}",
            r.heard
        );
        assert!(r.heard.is_empty(), "{name} heard {:?}", r.heard);
        assert!(r.tokens.is_empty(), "{name} has tokens {:?}", r.tokens);
    }
    assert!(common(&fa.tokens, &fb.tokens).is_empty());
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        vec![],
        vec!["0", "0", "0", "60", "1200", "1"],
        vec!["x", "0", "4000", "60", "1200", "1"],
        vec!["0", "0", "4000", "0", "1200", "1"],
        vec!["0", "0", "4000", "60", "0", "1"],
        vec!["0", "0", "4000", "60", "1200", "-1"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let node = Node::spawn_args(&format!("child {args:?}"), &args);
        let (status, out, err) =
            node.outcome(Instant::now() + meshtrace_tests::deadline(Duration::from_secs(10)));
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(out.is_empty(), "{args:?}");
    }
}
