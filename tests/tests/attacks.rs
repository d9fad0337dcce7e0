//! Attacks on the radio layer, end to end with real nodes (protocol, store,
//! libp2p mesh on loopback) on a shared in-memory air and a manual clock.
//!
//! * A passive sniffer that records every frame on the air and every
//!   announcement on the mesh finds no broadcast ID in any announcement.
//! * One-way replay: frames recorded next to A and B are replayed 10
//!   minutes later next to C, 500 m away. C records encounters with the
//!   replayed IDs, yet A's report warns B (the true contact) and never C:
//!   the tokens need both sides' secret keys, and A never heard C.
//! * Two-way relay (wormhole): relaying both ways in real time makes A and C
//!   exchange IDs as if they met, so C is warned. This is the design's known
//!   limit; the test measures it (docs/threat-model.md has what bounds it).
//!
//! * Flood: a peer in its own process sends 10,000 invalid messages a second
//!   for 30 s; an honest report made meanwhile still reaches everyone before
//!   the flood ends, the attacker is graylisted (its neighbours validate only
//!   a handful of its messages), and the honest nodes' memory stays bounded.
//!
//! Fake reports (no or forged certificate, untrusted issuer, over the cap,
//! outside the window, equivocation) are rejected and relayed by nobody:
//! `mesh.rs` (`invalid_announcements_are_rejected_and_not_forwarded`,
//! `variants_of_a_published_chunk_are_neither_stored_nor_forwarded`).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use meshtrace_node::NodeEvent;
use meshtrace_node::clock::Clock;
use meshtrace_node::p2p::{self, Keypair, P2pEvent};
use meshtrace_node::radio::Radio;
use meshtrace_node::radio::memory::{DeviceConfig, DeviceId, MemoryRadio};
use meshtrace_node::radio::model::{Position, Trajectory};
use meshtrace_protocol::*;
use meshtrace_tests::deadline;
use meshtrace_tests::mesh::{TestNet, WAIT};
use meshtrace_tests::world::World;

/// The flood test measures this process's memory: the other tests here
/// (in-process nodes too) hold this lock shared, the flood test exclusively,
/// so that their allocations do not count as the flood's.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn device(w: &World, x: f64) -> MemoryRadio {
    w.air
        .add_device(DeviceConfig {
            trajectory: Trajectory::fixed(Position { x, y: 0.0 }),
            ..DeviceConfig::default()
        })
        .unwrap()
}

/// Plays back `frames` on the replayers, one distinct frame each (sorted by
/// ID, so the assignment is stable while the IDs are). A frame is the ID
/// alone: there is no TX power to forge; the replayers transmit at their
/// device's power.
fn play(replayers: &mut [MemoryRadio], frames: &BTreeSet<[u8; 32]>) {
    for (r, id) in replayers.iter_mut().zip(frames.iter()) {
        r.advertise(Frame {
            id: RotatingId(*id),
        })
        .unwrap();
    }
}

fn heard(r: &mut MemoryRadio) -> BTreeSet<[u8; 32]> {
    r.drain().into_iter().map(|s| s.frame.id.0).collect()
}

/// One simulated second: the air, every node's timer, then the attacker.
async fn step(w: &World, attacker: &mut impl FnMut(u64)) {
    w.clock.advance_millis(1000);
    w.air.step(w.clock.now_millis());
    for n in &w.nodes {
        n.tick().await.unwrap();
    }
    attacker(w.clock.now_millis());
}

/// A (node 0) tests positive and reports; returns the published chunks.
async fn report_from_a(net: &TestNet, w: &World) -> Vec<AnnouncementId> {
    let a = &w.nodes[0];
    let request = a.report_request().await.unwrap();
    let cert = net.certify(&request, w.clock.now());
    a.report_submit(cert.to_code()).await.unwrap().chunks
}

/// Waits until node `i` holds `n` announcements.
async fn wait_held(w: &World, i: usize, n: usize) {
    let deadline = Instant::now() + deadline(WAIT);
    while w.nodes[i].status().await.unwrap().announcements < n {
        assert!(Instant::now() < deadline, "node {i} never got the report");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for node `i`'s first exposure event.
async fn wait_exposure(w: &mut World, i: usize) -> Option<meshtrace_node::store::StoredExposure> {
    let deadline = Instant::now() + deadline(WAIT);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.nodes[i].events.recv()).await {
            Ok(Some(NodeEvent::Exposure(e))) => return Some(e),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_replay_elsewhere_and_later_warns_nobody_and_a_sniffer_links_nothing() {
    let _shared = MEMORY.read().await;
    let net = TestNet::new(71);
    // A and B together; C far away.
    let mut w = World::new(&net, &[0.0, 1.0, 500.0]).await;
    let mut recorder = device(&w, 0.5);
    let mut replayers = [device(&w, 500.5), device(&w, 500.5)];
    // Sniffers everywhere record every frame on the air.
    let mut sniffers = [device(&w, 0.0), device(&w, 500.0)];
    let mut all_ids = BTreeSet::new();
    // The mesh observer receives every announcement.
    let mut observer = p2p::spawn(
        net.config(false),
        Keypair::generate_ed25519(),
        std::sync::Arc::new(w.clock.clone()),
        Vec::new(),
    )
    .await
    .unwrap();
    observer.dial(w.first_addr.clone()).await.unwrap();

    let delay_ms = 10 * 60 * 1000;
    let mut tape: VecDeque<(u64, BTreeSet<[u8; 32]>)> = VecDeque::new();
    // 30 minutes together; the replay runs from minute 10 to minute 40.
    for second in 0..40 * 60 {
        if second == 30 * 60 {
            w.air.set_enabled(DeviceId(1), false); // B leaves
            w.air.set_enabled(DeviceId(0), false); // A leaves
        }
        let mut attacker = |now: u64| {
            let ids = heard(&mut recorder);
            if !ids.is_empty() {
                tape.push_back((now, ids));
            }
            while let Some((t, ids)) = tape.front() {
                if now < t + delay_ms {
                    break;
                }
                play(&mut replayers, ids);
                tape.pop_front();
            }
            for s in sniffers.iter_mut() {
                all_ids.extend(heard(s));
            }
        };
        step(&w, &mut attacker).await;
    }
    // Replay over; let every encounter close.
    for r in &replayers {
        w.air.set_enabled(r.id(), false);
    }
    for _ in 0..10 * 60 {
        step(&w, &mut |_| {}).await;
    }
    let c = w.nodes[2].status().await.unwrap();
    assert!(
        c.encounters > 0,
        "the replay reached C's radio (C recorded {} encounters)",
        c.encounters
    );

    let sent = report_from_a(&net, &w).await;
    // B, the true contact, is warned.
    let e = wait_exposure(&mut w, 1).await.expect("B was not warned");
    assert!(!e.exposure.encounters.is_empty());
    // C receives the report and matches nothing.
    wait_held(&w, 2, sent.len()).await;
    // Give C's matching every chance: several more timer rounds.
    for _ in 0..5 {
        step(&w, &mut |_| {}).await;
    }
    assert!(
        w.nodes[2].exposures().await.unwrap().is_empty(),
        "the replayed IDs produced an exposure at C"
    );

    // The sniffer's view: every frame on the air and the announcement.
    let deadline = Instant::now() + deadline(WAIT);
    let bytes = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, observer.events.recv()).await {
            Ok(Some(P2pEvent::Announcement { bytes, .. })) => break bytes,
            Ok(Some(_)) => {}
            _ => panic!("the observer never received the announcement"),
        }
    };
    assert!(
        all_ids.len() >= 4,
        "the sniffers heard {} IDs",
        all_ids.len()
    );
    for id in &all_ids {
        for window in id.windows(8) {
            assert!(
                !bytes.windows(8).any(|b| b == window),
                "8 bytes of a broadcast ID appear in the announcement"
            );
        }
    }
    observer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_way_relay_is_the_known_limit() {
    let _shared = MEMORY.read().await;
    let net = TestNet::new(72);
    // A alone at 0, C alone at 500: they never meet.
    let mut w = World::new(&net, &[0.0, 500.0]).await;
    let mut near_a = device(&w, 0.5);
    let mut near_c = device(&w, 500.5);
    let mut to_c = [device(&w, 500.5), device(&w, 500.5)];
    let mut to_a = [device(&w, 0.5), device(&w, 0.5)];
    // 20 minutes of real-time relaying in both directions (the relays'
    // own frames are left out: they advertise only what they heard).
    let mut relayed = BTreeSet::new();
    let mut prev_a = BTreeSet::new();
    let mut prev_c = BTreeSet::new();
    for _ in 0..20 * 60 {
        let mut attacker = |_now: u64| {
            let from_a: BTreeSet<_> = heard(&mut near_a).difference(&prev_c).copied().collect();
            let from_c: BTreeSet<_> = heard(&mut near_c).difference(&prev_a).copied().collect();
            if !from_a.is_empty() {
                play(&mut to_c, &from_a);
                relayed.extend(from_a.iter().copied());
                prev_a = from_a;
            }
            if !from_c.is_empty() {
                play(&mut to_a, &from_c);
                relayed.extend(from_c.iter().copied());
                prev_c = from_c;
            }
        };
        step(&w, &mut attacker).await;
    }
    for r in to_c.iter().chain(to_a.iter()) {
        w.air.set_enabled(r.id(), false);
    }
    for _ in 0..10 * 60 {
        step(&w, &mut |_| {}).await;
    }
    assert!(!relayed.is_empty());
    let a = w.nodes[0].status().await.unwrap();
    let c = w.nodes[1].status().await.unwrap();
    assert!(a.encounters > 0 && c.encounters > 0, "{a:?} {c:?}");
    let _ = report_from_a(&net, &w).await;
    // The relay made A and C exchange IDs in real time, so their tokens
    // agree: C is warned although they were 500 m apart. Measured here
    // so that the limit stays visible (docs/threat-model.md).
    let e = wait_exposure(&mut w, 1)
        .await
        .expect("a two-way relay is expected to produce a (false) exposure");
    println!(
        "wormhole: C warned, high_risk = {}, days = {:?}",
        e.exposure.high_risk, e.exposure.days
    );
}

/// Resident memory of this process (kB), from /proc.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Publishes `bytes` from `from` and returns the real time until every node
/// in `to` delivered it (bounded by `deadline(WAIT)`).
async fn delivery_time(
    from: &meshtrace_tests::mesh::TestNode,
    to: &mut [meshtrace_tests::mesh::TestNode],
    bytes: Vec<u8>,
) -> Duration {
    let id = AnnouncementId::of(&bytes);
    let start = Instant::now();
    let limit = deadline(WAIT);
    from.handle.publish(bytes).await.unwrap().unwrap();
    for (i, n) in to.iter_mut().enumerate() {
        let deadline = start + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, n.handle.events.recv()).await {
                Ok(Some(P2pEvent::Announcement { verified, .. })) if verified.id() == id => break,
                Ok(Some(P2pEvent::Announcement { verified, .. })) => {
                    panic!("node {i} accepted something else: {:?}", verified.id())
                }
                Ok(Some(_)) => {}
                _ => panic!("node {i} did not receive the report within {limit:?}"),
            }
        }
    }
    start.elapsed()
}

/// Invalid messages per second the flooding peer sends.
const FLOOD_RATE: u64 = 10_000;
/// Least time it floods; it goes on until the test releases it (closes its
/// stdin), so the honest report always goes out during the flood however
/// slowly the flood reached the neighbours on a busy machine.
const FLOOD_SECONDS: u64 = 30;
/// Fewest flood messages for the test to mean something: one second's worth
/// at the full rate. (The attacker shares the CPU: on an idle machine it
/// sends all 300,000; beside other work, a tenth of that was seen.)
const MIN_FLOOD_MESSAGES: u64 = FLOOD_RATE;
/// Lines of the flood child's output queued for the test (it prints its
/// peer id, then one count when it stops).
const CHILD_LINES: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invalid_messages_does_not_delay_an_honest_report() {
    use meshtrace_tests::mesh::{start, wait_for_mesh};
    use std::io::BufRead;
    let _alone = MEMORY.write().await;
    let mut net = TestNet::new(73);
    let mut honest = Vec::new();
    for _ in 0..5 {
        honest.push(start(&net, net.config(false), Vec::new()).await);
    }
    for i in 1..honest.len() {
        let addr = honest[i - 1].addr.clone();
        honest[i].handle.dial(addr).await.unwrap();
    }
    let addr = honest[0].addr.clone();
    honest[4].handle.dial(addr).await.unwrap();
    {
        let refs: Vec<_> = honest.iter().collect();
        wait_for_mesh(&refs, 2).await;
    }
    let (origin, rest) = honest.split_first_mut().unwrap();
    // Normal latency first.
    let t = net.tokens(5);
    let normal = delivery_time(origin, rest, net.report(&t).remove(0)).await;
    let rss_before = rss_kb();

    // The attacker, in its own process, next to nodes 1 and 3.
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("meshtrace-flood-child");
    let mut child = std::process::Command::new(&bin)
        .args([
            net.network_id.clone(),
            net.issuer.public().to_hex(),
            FLOOD_RATE.to_string(),
            FLOOD_SECONDS.to_string(),
            rest[0].addr.to_string(),
            rest[2].addr.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    // Its output, line by line, read on a thread of its own.
    let (line_tx, mut lines) = tokio::sync::mpsc::channel(CHILD_LINES);
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let limit = deadline(WAIT);
    let line = tokio::time::timeout(limit, lines.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the flood child did not start within {limit:?}"));
    let attacker: p2p::PeerId = line
        .trim()
        .strip_prefix("peer ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("flood child said {line:?}"));
    // It forms its mesh, then floods: wait until both its neighbours have
    // rejected some of it, so that the honest report goes out during the
    // flood however slowly the child started.
    let child_ready = Instant::now();
    let flood_deadline = child_ready + limit;
    for i in [0, 2] {
        loop {
            let st = rest[i].handle.status().await.unwrap();
            if st.counters.rejected >= 1 {
                break;
            }
            assert!(
                Instant::now() < flood_deadline,
                "the flood did not reach node {} within {limit:?}: {:?}; the attacker {}",
                i + 1,
                st.counters,
                match st.peers.iter().find(|p| p.peer == attacker) {
                    Some(p) => format!("is connected (score {:?}, full: {})", p.score, p.full),
                    None => "is not connected".to_string(),
                }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let flood_reached = child_ready.elapsed();
    let t = net.tokens(5);
    let flooded = delivery_time(origin, rest, net.report(&t).remove(0)).await;
    // Order, not speed: every honest node had the report while the attacker
    // was still flooding (it prints its count only when it stops, and it
    // stops only once released, or after its ten-minute cap), so the report
    // did not wait for the flood to end.
    assert!(
        lines.try_recv().is_err(),
        "the honest report arrived only after the flood ended: the flood reached both \
         neighbours {flood_reached:?} after the attacker started, the report took {flooded:?}"
    );
    // The attacker's score at its neighbours, mid-flood (printed).
    let mut scores = Vec::new();
    for i in [0, 2] {
        let st = rest[i].handle.status().await.unwrap();
        scores.push(
            st.peers
                .iter()
                .find(|p| p.peer == attacker)
                .and_then(|p| p.score),
        );
    }
    // Release the attacker: it stops once it has flooded FLOOD_SECONDS.
    drop(child.stdin.take());
    let limit = deadline(Duration::from_secs(FLOOD_SECONDS) + WAIT);
    let last = tokio::time::timeout(limit, lines.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the flood child did not end within {limit:?}"));
    let sent: u64 = last
        .trim()
        .strip_prefix("sent ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("flood child ended with {last:?}"));
    let status =
        tokio::task::spawn_blocking(move || meshtrace_tests::cli::wait_output(child, WAIT).status)
            .await
            .unwrap();
    assert!(status.success(), "flood child: {status}");
    let rss_after = rss_kb();
    println!(
        "flood: {sent} invalid messages in {FLOOD_SECONDS} s; honest report delivered to all in {normal:?} normally, {flooded:?} during the flood; attacker scores {scores:?}; honest nodes' RSS {} → {} MB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        sent >= MIN_FLOOD_MESSAGES,
        "the attacker managed only {sent} messages"
    );
    // The neighbours graylisted the attacker: one invalid message costs
    // -100, below the -80 graylist threshold, and a graylisted peer's
    // messages are dropped unread. So they validated (and rejected) only a
    // handful of the flood — each time the penalty had decayed (10 % a
    // second) above the threshold — not the hundreds of thousands sent.
    for i in [0, 2] {
        let st = rest[i].handle.status().await.unwrap();
        assert!(st.counters.rejected >= 1, "{:?}", st.counters);
        assert!(
            st.counters.rejected * 100 < sent,
            "node {} validated {} of {sent} flood messages: not graylisted",
            i + 1,
            st.counters.rejected
        );
    }
    for n in honest.iter() {
        let st = n.handle.status().await.unwrap();
        assert_eq!(st.pool, 2, "only the two honest reports are held");
    }
    // Memory stays bounded: the attacker sent 2 × 90 MB; the honest nodes
    // keep none of it.
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} kB to {rss_after} kB"
    );
    for h in honest {
        h.handle.shutdown().await;
    }
}
