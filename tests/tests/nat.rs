//! Real networks in Linux network namespaces (`meshtrace_tests::netns`): a
//! public segment with bootstrap/relay nodes, a home LAN behind a
//! port-preserving NAT, one behind a symmetric NAT, and a carrier-grade NAT
//! segment. Every node is the real `meshtrace run` daemon in its own
//! namespace; the test talks to it through its control socket (a file, the
//! same from every namespace).
//!
//! Each scenario builds its own namespaces (created and removed by the
//! test; a few hundred milliseconds) and skips with a message where they
//! cannot be made (not root, no `ip`/`nft`), except under `CI=true`.
//!
//! Delivery times are measured, printed (`measured: …` lines, shown with
//! `--nocapture`) and reported in docs/deployment.md; the assertions only
//! bound them with generous deadlines.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use meshtrace_node::protocol::UnixTime;
use meshtrace_tests::cli::*;
use meshtrace_tests::netns::{Host, Lab, Segment};

/// The deployment's network id.
const NETWORK: &str = "nat-town";
/// The port every node listens on (TCP and QUIC), in its own namespace.
const PORT: u16 = 4001;
/// Bound on one scenario step on an idle machine (scaled by
/// `meshtrace_tests::deadline`).
const STEP: Duration = Duration::from_secs(90);
/// Catch-up interval of the light nodes here (the default is 300 s): a
/// light node receives reports only by catch-up, so this is their delivery
/// delay.
const LIGHT_CATCH_UP_SECONDS: u64 = 10;

/// One scenario's deployment: an issuer, data directories, namespaces.
/// Fields drop in order: the namespaces go last, after every daemon (the
/// daemons live in the test's locals, dropped before this).
struct Net {
    /// Data directories and daemon logs (kept when the test fails, or
    /// always with `MESHTRACE_KEEP_LOGS=1`).
    tmp: Option<tempfile::TempDir>,
    issuer_pub: String,
    air: String,
    lab: Lab,
}

impl Drop for Net {
    fn drop(&mut self) {
        if (std::thread::panicking() || std::env::var_os("MESHTRACE_KEEP_LOGS").is_some())
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("the daemons' logs are kept in {}", tmp.keep().display());
        }
    }
}

/// A node: its host, data directory and peer id.
struct Node {
    name: String,
    host: Host,
    dir: PathBuf,
    peer_id: String,
    light: bool,
}

impl Node {
    /// Its dialable TCP address.
    fn addr(&self) -> String {
        format!("{}/p2p/{}", self.host.tcp(PORT), self.peer_id)
    }
}

impl Net {
    /// `None` where namespaces cannot be made (the test is skipped).
    fn new() -> Option<Net> {
        let lab = Lab::new()?;
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("issuer.key");
        let o = meshtrace(&["issuer", "keygen", "--out", key.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        Some(Net {
            issuer_pub: stdout(&o).trim().to_owned(),
            air: free_udp_port().to_string(),
            tmp: Some(tmp),
            lab,
        })
    }

    /// The directory of data directories and logs.
    fn root(&self) -> &std::path::Path {
        self.tmp.as_ref().expect("until dropped").path()
    }

    /// A new host on `seg` with an initialised node (light or full).
    fn node(&mut self, name: &str, seg: Segment, light: bool) -> Node {
        let host = self.lab.host(name, seg);
        let dir = self.root().join(name);
        let d = dir.display().to_string();
        let v = json_ok(&meshtrace(&[
            "--data-dir",
            &d,
            "init",
            "--network",
            NETWORK,
            "--radio",
            "udp-sim",
            "--trust-issuer",
            &format!("clinic={}", self.issuer_pub),
            "--json",
        ]));
        Node {
            name: name.to_owned(),
            host,
            dir,
            peer_id: v["peer_id"].as_str().expect("peer id").to_owned(),
            light,
        }
    }

    /// Starts `node` in its namespace, listening on its address, with
    /// `extra` flags (`--bootstrap …`, `--relay-server`, `--mdns`).
    fn start(&self, node: &Node, extra: &[&str]) -> Daemon {
        let (tcp, quic) = (node.host.tcp(PORT), node.host.quic(PORT));
        let catch_up = LIGHT_CATCH_UP_SECONDS.to_string();
        let mut args = vec!["--listen", &tcp, "--listen", &quic, "--udp-port", &self.air];
        if node.light {
            args.extend(["--light", "--catch-up-seconds", &catch_up]);
        }
        if !extra.contains(&"--mdns") {
            args.push("--no-mdns");
        }
        args.extend_from_slice(extra);
        Daemon::start_in(&node.host.ns, &node.dir, &args)
    }

    /// `node` reports positive (request → issuer → certificate → submit);
    /// returns the number of chunks sent and when the submit command
    /// started (delivery times count from there).
    fn report(&self, d: &Daemon) -> (u64, Instant) {
        let request = d.json(&["report", "request"])["request"]
            .as_str()
            .expect("request code")
            .to_owned();
        let key = self.root().join("issuer.key").display().to_string();
        let yesterday = UnixTime(now_millis() / 1000).day().minus(1).to_string();
        let o = meshtrace(&[
            "issuer",
            "certify",
            &request,
            "--key",
            &key,
            "--window-start",
            &yesterday,
            "--network",
            NETWORK,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let cert = stdout(&o).trim().to_owned();
        let submitted = Instant::now();
        let sent = d.json(&["report", "submit", &cert, "--yes"]);
        eprintln!(
            "measured: report of {} chunk(s), {} tokens per chunk",
            sent["chunks"], sent["tokens_per_chunk"]
        );
        (sent["chunks"].as_u64().expect("chunks"), submitted)
    }
}

/// Announcements a daemon holds.
fn held(d: &Daemon) -> u64 {
    d.json(&["status"])["announcements"].as_u64().unwrap_or(0)
}

/// The daemon's mesh status (`peers --json`).
fn peers(d: &Daemon) -> serde_json::Value {
    d.json(&["peers"])
}

/// Whether `d` is connected to `peer_id`, and whether only through a relay.
fn link(d: &Daemon, peer_id: &str) -> Option<bool> {
    peers(d)["peers"].as_array().and_then(|l| {
        l.iter()
            .find(|p| p["peer_id"] == peer_id)
            .map(|p| p["relayed"] == true)
    })
}

/// Waits until every node holds at least `n` announcements; returns each
/// node's delivery time counted from `from` (an upper bound: the time of
/// the poll that first saw it).
fn delivery(
    nodes: &[(&Node, &Daemon)],
    n: u64,
    from: Instant,
    limit: Duration,
) -> Vec<(String, Duration)> {
    let mut got: Vec<Option<Duration>> = vec![None; nodes.len()];
    wait_for(limit, &format!("{n} announcements on every node"), || {
        for (i, (_, d)) in nodes.iter().enumerate() {
            if got[i].is_none() && held(d) >= n {
                got[i] = Some(from.elapsed());
            }
        }
        got.iter().all(Option::is_some).then_some(())
    });
    nodes
        .iter()
        .zip(got)
        .map(|((node, _), t)| (node.name.clone(), t.unwrap_or_default()))
        .collect()
}

fn print_times(scenario: &str, times: &[(String, Duration)]) {
    for (name, t) in times {
        eprintln!(
            "measured: {scenario}: {name} held the report after {} ms",
            t.as_millis()
        );
    }
}

#[test]
fn nodes_behind_nat_meet_through_the_relay_and_hole_punch_where_the_nat_allows() {
    let Some(mut net) = Net::new() else { return };
    let r = net.node("relay", Segment::Public, false);
    let a = net.node("home1", Segment::Lan1, false);
    let b = net.node("home2", Segment::Lan2, false);
    let c = net.node("mobile", Segment::Cgnat, false);
    let rd = net.start(&r, &["--relay-server"]);
    let boot = r.addr();
    let started = Instant::now();
    let ad = net.start(&a, &["--bootstrap", &boot]);
    let bd = net.start(&b, &["--bootstrap", &boot]);
    let cd = net.start(&c, &["--bootstrap", &boot]);

    // AutoNAT: the relay is public, everyone behind NAT private.
    for (name, d, want) in [
        ("relay", &rd, "public"),
        ("home1", &ad, "private"),
        ("home2", &bd, "private"),
        ("mobile", &cd, "private"),
    ] {
        wait_for(STEP, &format!("AutoNAT to find {name} {want}"), || {
            (peers(d)["nat"]["reachability"] == want).then_some(())
        });
    }
    // Every node behind NAT holds a reservation with the relay.
    for d in [&ad, &bd, &cd] {
        wait_for(STEP, "a relay reservation", || {
            (peers(d)["nat"]["relay_reservations"].as_u64() >= Some(1)).then_some(())
        });
    }
    eprintln!(
        "measured: AutoNAT verdicts and relay reservations {} ms after the NATed nodes started",
        started.elapsed().as_millis()
    );
    // The two port-preserving NATs: a relayed connection upgraded to a
    // direct one by hole punching.
    wait_for(STEP, "home1 and mobile connected directly", || {
        (link(&ad, &c.peer_id) == Some(false) && link(&cd, &a.peer_id) == Some(false)).then_some(())
    });
    eprintln!(
        "measured: hole punch: home1–mobile direct {} ms after the NATed nodes started",
        started.elapsed().as_millis()
    );
    let punched = [&ad, &cd]
        .iter()
        .map(|d| peers(d)["nat"]["hole_punches"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(punched >= 1, "the direct connection came from DCUtR");
    // The symmetric NAT: connected, but only through the relay.
    wait_for(STEP, "home2 connected to home1 and mobile", || {
        (link(&bd, &a.peer_id).is_some() && link(&bd, &c.peer_id).is_some()).then_some(())
    });
    wait_for(STEP, "hole punching to give up on home2", || {
        let failures: u64 = [&ad, &bd, &cd]
            .iter()
            .map(|d| peers(d)["nat"]["hole_punch_failures"].as_u64().unwrap_or(0))
            .sum();
        (failures >= 1).then_some(())
    });
    assert_eq!(link(&bd, &a.peer_id), Some(true), "home2–home1 is relayed");
    assert_eq!(link(&bd, &c.peer_id), Some(true), "home2–mobile is relayed");
    let served = peers(&rd)["nat"]["relay_circuits_served"]
        .as_u64()
        .unwrap_or(0);
    assert!(served >= 2, "the relay carried the circuits ({served})");
}

/// Full nodes connected to `d` (by peer id).
fn full_peers(d: &Daemon) -> Vec<String> {
    peers(d)["peers"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|p| p["full"] == true)
                .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Relayed bytes (in + out) of `d` so far.
fn relayed_bytes(d: &Daemon) -> u64 {
    let n = &peers(d)["nat"];
    n["relayed_bytes_in"].as_u64().unwrap_or(0) + n["relayed_bytes_out"].as_u64().unwrap_or(0)
}

#[test]
fn a_report_from_behind_nat_reaches_every_node_and_an_offline_node_catches_up() {
    let Some(mut net) = Net::new() else { return };
    let r = net.node("relay", Segment::Public, false);
    let a = net.node("home1", Segment::Lan1, false);
    let b = net.node("home2", Segment::Lan2, false);
    let p1 = net.node("phone1", Segment::Cgnat, true);
    let p2 = net.node("phone2", Segment::Cgnat, true);
    let rd = net.start(&r, &["--relay-server"]);
    let boot = r.addr();
    let ad = net.start(&a, &["--bootstrap", &boot]);
    let mut bd = net.start(&b, &["--bootstrap", &boot]);
    let p1d = net.start(&p1, &["--bootstrap", &boot]);
    let p2d = net.start(&p2, &["--bootstrap", &boot]);
    // The mesh: home2 (symmetric NAT) reaches home1 through the relay.
    wait_for(STEP, "home1 and home2 connected through the relay", || {
        (link(&bd, &a.peer_id) == Some(true)).then_some(())
    });
    let circuit_up = Instant::now();
    // The mesh is idle until phone1 has run two periodic catch-up rounds
    // beyond the first ones (one per new peer, within seconds of the
    // start): two rounds span at least one interval, over which home2's
    // circuits cost what they cost every hour of a quiet day (pings,
    // gossipsub heartbeats). The report below then reaches the phones by a
    // periodic round.
    let rounds = |d: &Daemon| peers(d)["sync_rounds"].as_u64().unwrap_or(0);
    let settled = Instant::now() + Duration::from_secs(LIGHT_CATCH_UP_SECONDS);
    let start_rounds = wait_for(STEP, "phone1's first rounds to pass", || {
        (Instant::now() >= settled).then(|| rounds(&p1d))
    });
    let (idle_from, idle_start) = (relayed_bytes(&bd), Instant::now());
    wait_for(STEP, "two more periodic catch-up rounds", || {
        (rounds(&p1d) >= start_rounds + 2).then_some(())
    });
    let idle = relayed_bytes(&bd) - idle_from;
    let idle_ms = idle_start.elapsed().as_millis().max(1);
    eprintln!(
        "measured: relay cost: home2's idle circuits: {idle} bytes in {idle_ms} ms \
         ({} bytes/hour)",
        u128::from(idle) * 3_600_000 / idle_ms
    );
    let relayed_before = relayed_bytes(&bd);

    // home1 (behind NAT) reports: every node holds it.
    let (chunks, from) = net.report(&ad);
    assert!(chunks >= 1);
    let full = delivery(&[(&r, &rd), (&b, &bd)], chunks, from, STEP);
    print_times("report from home1, full nodes", &full);
    let light = delivery(&[(&p1, &p1d), (&p2, &p2d)], chunks, from, STEP);
    print_times(
        &format!("report from home1, light nodes (catch-up every {LIGHT_CATCH_UP_SECONDS} s)"),
        &light,
    );
    let relayed_after = relayed_bytes(&bd);
    let links = peers(&bd)["peers"]
        .as_array()
        .map_or(0, |l| l.iter().filter(|p| p["relayed"] == true).count());
    eprintln!(
        "measured: relay cost: home2 ({links} relayed peer(s)) moved {} bytes through relay \
         circuits while one report of {chunks} chunk(s) was delivered; {} bytes since the \
         circuit came up {} ms before",
        relayed_after - relayed_before,
        relayed_after,
        circuit_up.elapsed().as_millis(),
    );

    // home2 goes offline; home1 reports again; home2 catches up on return.
    assert!(bd.stop().success(), "{}", bd.log());
    let (chunks2, _) = net.report(&ad);
    let total = chunks + chunks2;
    delivery(&[(&r, &rd)], total, Instant::now(), STEP);
    let from = Instant::now();
    let bd = net.start(&b, &["--bootstrap", &boot]);
    let back = delivery(&[(&b, &bd)], total, from, STEP);
    print_times("home2 (symmetric NAT) back online, catching up", &back);
    let light = delivery(&[(&p1, &p1d), (&p2, &p2d)], total, from, STEP);
    assert_eq!(light.len(), 2);
}

#[test]
fn kademlia_finds_the_mesh_from_one_bootstrap_peer() {
    let Some(mut net) = Net::new() else { return };
    let r1 = net.node("boot1", Segment::Public, false);
    let r2 = net.node("boot2", Segment::Public, false);
    let a = net.node("home1", Segment::Lan1, false);
    let b = net.node("home2", Segment::Lan2, false);
    let r1d = net.start(&r1, &["--relay-server"]);
    let boot1 = r1.addr();
    let _r2d = net.start(&r2, &["--relay-server", "--bootstrap", &boot1]);
    // Each home node knows only boot1.
    let ad = net.start(&a, &["--bootstrap", &boot1]);
    let bd = net.start(&b, &["--bootstrap", &boot1]);
    let from = Instant::now();
    for (name, d, others) in [
        ("home1", &ad, [&r2.peer_id, &b.peer_id]),
        ("home2", &bd, [&r2.peer_id, &a.peer_id]),
    ] {
        wait_for(
            STEP,
            &format!("{name} to find boot2 and the other home"),
            || {
                let p = full_peers(d);
                others.iter().all(|o| p.contains(o)).then_some(())
            },
        );
        eprintln!(
            "measured: Kademlia: {name} connected to the whole mesh {} ms after start",
            from.elapsed().as_millis()
        );
    }
    assert_eq!(full_peers(&r1d).len(), 3, "boot1 sees the three others");
}

#[test]
fn mdns_finds_peers_on_one_lan_without_bootstrap() {
    let Some(mut net) = Net::new() else { return };
    let a = net.node("lan-a", Segment::Lan1, false);
    let b = net.node("lan-b", Segment::Lan1, false);
    let ad = net.start(&a, &["--mdns"]);
    let bd = net.start(&b, &["--mdns"]);
    let from = Instant::now();
    wait_for(STEP, "the two LAN nodes to find each other by mDNS", || {
        (link(&ad, &b.peer_id) == Some(false) && link(&bd, &a.peer_id) == Some(false)).then_some(())
    });
    eprintln!(
        "measured: mDNS: peers connected {} ms after start",
        from.elapsed().as_millis()
    );
    let (chunks, from) = net.report(&ad);
    let t = delivery(&[(&b, &bd)], chunks, from, STEP);
    print_times("mDNS LAN, report from lan-a", &t);
}

#[test]
fn the_mesh_heals_when_the_relay_restarts_and_nothing_is_lost() {
    let Some(mut net) = Net::new() else { return };
    let r = net.node("relay", Segment::Public, false);
    let a = net.node("home1", Segment::Lan1, false);
    let b = net.node("home2", Segment::Lan2, false);
    let p = net.node("phone", Segment::Cgnat, true);
    let mut rd = net.start(&r, &["--relay-server"]);
    let boot = r.addr();
    let ad = net.start(&a, &["--bootstrap", &boot]);
    let bd = net.start(&b, &["--bootstrap", &boot]);
    let pd = net.start(&p, &["--bootstrap", &boot]);
    wait_for(STEP, "home1 and home2 connected through the relay", || {
        (link(&bd, &a.peer_id) == Some(true)).then_some(())
    });
    let (first, _) = net.report(&ad);
    delivery(
        &[(&r, &rd), (&b, &bd), (&p, &pd)],
        first,
        Instant::now(),
        STEP,
    );

    // The relay stops: home2, behind the symmetric NAT, is cut off.
    assert!(rd.stop().success(), "{}", rd.log());
    wait_for(STEP, "home2 to lose its peers", || {
        full_peers(&bd).is_empty().then_some(())
    });
    // A report made meanwhile waits in home2's outbox.
    let (second, _) = net.report(&bd);
    let st = bd.json(&["status"]);
    assert!(
        st["unsent_report_chunks"].as_u64() >= Some(1) || st["mesh"]["outbox"].as_u64() >= Some(1),
        "the report waits while home2 has no peer: {st}"
    );
    // The relay comes back on the same store, identity and address.
    let from = Instant::now();
    let rd = net.start(&r, &["--relay-server"]);
    assert!(held(&rd) >= first, "the relay kept the first report");
    let total = first + second;
    let healed = delivery(
        &[(&r, &rd), (&a, &ad), (&b, &bd), (&p, &pd)],
        total,
        from,
        STEP,
    );
    print_times("relay restarted, report made while it was down", &healed);
    wait_for(STEP, "home1 and home2 through the relay again", || {
        (link(&bd, &a.peer_id).is_some()).then_some(())
    });
    eprintln!(
        "measured: relay restarted: home1–home2 circuit back {} ms after the restart command",
        from.elapsed().as_millis()
    );
    let st = bd.json(&["status"]);
    assert_eq!(st["unsent_report_chunks"].as_u64(), Some(0), "{st}");
}

/// `meshtrace-nat-child` (built beside `meshtrace`).
fn child_bin() -> PathBuf {
    meshtrace_bin().with_file_name("meshtrace-nat-child")
}

/// Lines of a child's output waiting to be read.
const CHILD_LINES: usize = 64;

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `child`'s standard output line by line (bounded) until one starts
/// with `prefix`; returns the rest of that line.
fn read_line(child: &mut Child, prefix: &str, limit: Duration) -> String {
    use std::io::BufRead;
    let out = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::sync_channel(CHILD_LINES);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let limit = meshtrace_tests::deadline(limit);
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.trim().to_owned();
                }
            }
            Err(_) => panic!("no {prefix:?} line from the child within {limit:?}"),
        }
    }
}

#[test]
fn a_hostile_bootstrap_node_delays_delivery_but_does_not_stop_it() {
    let Some(mut net) = Net::new() else { return };
    let evil = net.lab.host("evil", Segment::Public);
    let mut hostile = Child(
        evil.command(&child_bin())
            .args(["hostile", NETWORK, &evil.tcp(PORT)])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the hostile node"),
    );
    let evil_id = read_line(&mut hostile, "peer ", STEP);
    let evil_addr = format!("{}/p2p/{evil_id}", evil.tcp(PORT));
    let r = net.node("relay", Segment::Public, false);
    let a = net.node("home1", Segment::Lan1, false);
    let b = net.node("home2", Segment::Lan2, false);
    let p = net.node("phone", Segment::Cgnat, true);
    // The relay and the phone know the hostile node first; home1 knows only
    // the hostile node, and finds the rest through its Kademlia table.
    let rd = net.start(&r, &["--relay-server", "--bootstrap", &evil_addr]);
    let boot = r.addr();
    let ad = net.start(&a, &["--bootstrap", &evil_addr]);
    let bd = net.start(&b, &["--bootstrap", &evil_addr, "--bootstrap", &boot]);
    let pd = net.start(&p, &["--bootstrap", &evil_addr, "--bootstrap", &boot]);
    wait_for(STEP, "home1 connected to the hostile node", || {
        full_peers(&ad).contains(&evil_id).then_some(())
    });
    // Reports from home1 while the hostile node is among its peers: a stem
    // hop it takes is dropped, and home1's fail-safe publishes it itself.
    let mut expected = 0;
    for round in 1..=3 {
        let (chunks, from) = net.report(&ad);
        expected += chunks;
        let t = delivery(&[(&r, &rd), (&b, &bd), (&p, &pd)], expected, from, STEP);
        print_times(&format!("hostile bootstrap, report {round} from home1"), &t);
    }
    assert!(
        full_peers(&ad).contains(&evil_id),
        "the hostile node stayed connected throughout"
    );
}

#[test]
fn a_peer_opening_1000_connections_is_capped_and_the_honest_report_still_arrives() {
    const COUNT: usize = 1000;
    let per_ip = meshtrace_node::p2p::Limits::PC.max_connections_per_ip as usize;
    let Some(mut net) = Net::new() else { return };
    let r = net.node("relay", Segment::Public, false);
    let a = net.node("home1", Segment::Lan1, false);
    let b = net.node("home2", Segment::Lan2, false);
    let p = net.node("phone", Segment::Cgnat, true);
    let rd = net.start(&r, &["--relay-server"]);
    let boot = r.addr();
    let ad = net.start(&a, &["--bootstrap", &boot]);
    let bd = net.start(&b, &["--bootstrap", &boot]);
    let pd = net.start(&p, &["--bootstrap", &boot]);
    for d in [&ad, &bd, &pd] {
        wait_for(STEP, "the nodes connected to the relay", || {
            full_peers(d).contains(&r.peer_id).then_some(())
        });
    }
    // The attacker, on the public segment, opens 1,000 connections to the
    // relay (each a full handshake with a fresh identity) and holds them.
    let attacker = net.lab.host("flood", Segment::Public);
    let hold = meshtrace_tests::deadline(Duration::from_secs(15));
    let mut flood = Child(
        attacker
            .command(&child_bin())
            .args([
                "flood",
                &r.addr(),
                &COUNT.to_string(),
                &hold.as_secs().to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the flood"),
    );
    wait_for(STEP, "the relay to refuse the flood", || {
        (peers(&rd)["nat"]["connections_denied"].as_u64() >= Some((COUNT - per_ip) as u64))
            .then_some(())
    });
    let conns = peers(&rd)["nat"]["connections"].as_u64().unwrap_or(0) as usize;
    assert!(
        conns <= per_ip + 4 * 3,
        "the relay holds {conns} connections: at most {per_ip} from the attacker's address"
    );
    // The honest report arrives during the flood.
    let (chunks, from) = net.report(&ad);
    let t = delivery(&[(&r, &rd), (&b, &bd), (&p, &pd)], chunks, from, STEP);
    print_times("1,000-connection flood on the relay, report from home1", &t);
    let open: usize = read_line(&mut flood, "open ", hold + STEP)
        .parse()
        .expect("a count");
    assert!(
        open <= per_ip,
        "the attacker kept {open} connections, more than {per_ip}"
    );
    eprintln!(
        "measured: flood: {COUNT} connections tried, {open} kept, {} refused by the relay",
        peers(&rd)["nat"]["connections_denied"]
    );
}
