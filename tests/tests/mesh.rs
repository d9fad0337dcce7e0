//! The mesh on real TCP sockets on 127.0.0.1: delivery to every node,
//! rejection of invalid announcements, origin privacy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use meshtrace_node::p2p::{self, Origin, P2pEvent};
use meshtrace_protocol::*;
use meshtrace_tests::mesh::{TestNet, TestNode, WAIT, start, wait_for_mesh};
use rand_core::Rng;

/// Seeded sparse topology: node i dials 2 random earlier nodes.
async fn network(net: &mut TestNet, n: usize) -> Vec<TestNode> {
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..n {
        // No periodic catch-up: delivery comes from stem and gossip (and
        // the catch-up round that starts every new connection).
        let mut cfg = net.builder(false);
        cfg.sync_interval(Duration::from_secs(3600));
        // The stem fail-safe is a wall-clock timeout: on a slow machine it
        // would fire before the stem hop fluffs, and the reporter would
        // publish (and serve by catch-up) its own report. This test checks
        // the normal path, so the timeout is scaled to the machine's load.
        cfg.stem_timeout(meshtrace_tests::deadline(cfg.current_stem_timeout()));
        let node = start(net, cfg.build().expect("valid mesh settings"), Vec::new()).await;
        let mut targets: Vec<usize> = Vec::new();
        while i > 0 && targets.len() < i.min(2) {
            let t = (net.rng.next_u32() as usize) % i;
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        for t in targets {
            node.handle.dial(nodes[t].addr.clone()).await.unwrap();
        }
        nodes.push(node);
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_for_mesh(&refs, 1).await;
    nodes
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_all_receive_and_match_a_certified_report() {
    let mut net = TestNet::new(20);
    let mut nodes = network(&mut net, 20).await;
    let tokens = net.tokens(40);
    let chunks = net.report(&tokens);
    let reporter = nodes[7].handle.peer_id();
    let sent = Instant::now();
    for c in &chunks {
        nodes[7].handle.publish(c.clone()).await.unwrap().unwrap();
    }
    // Every other node receives it (arrival times taken concurrently); each
    // runs its matcher on it.
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    for (i, node) in nodes.iter_mut().enumerate() {
        if i == 7 {
            continue;
        }
        let (_, placeholder) = tokio::sync::mpsc::channel(1);
        let mut events = std::mem::replace(&mut node.handle.events, placeholder);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let P2pEvent::Announcement {
                    verified, origin, ..
                } = ev
                {
                    let _ = tx.send((i, sent.elapsed(), verified, origin)).await;
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut latencies = Vec::new();
    let mut origins = HashMap::new();
    while origins.len() < 19 {
        let Ok(Some((i, latency, verified, origin))) =
            tokio::time::timeout(meshtrace_tests::deadline(WAIT), rx.recv()).await
        else {
            panic!(
                "only {} of 19 nodes received the report within {:?}",
                origins.len(),
                meshtrace_tests::deadline(WAIT)
            );
        };
        latencies.push(latency);
        origins.insert(i, origin);
        // Each node holds one of the reported tokens as its own encounter.
        let index = TokenIndex::build([(tokens[i], 1u64)]);
        let enc = Encounter {
            tokens: vec![tokens[i]],
            first_seen: UnixTime(verified.created_at().0 - 3600),
            last_seen: UnixTime(verified.created_at().0 - 2400),
            profile: vec![(50, 1200)],
            sightings: 100,
        };
        let mut ledger = ExposureLedger::new();
        let out = ledger.ingest(
            &verified,
            &index,
            |_| Some(enc.clone()),
            &RiskConfig::default(),
        );
        assert!(
            matches!(out, MatchOutcome::Exposure(ref e) if e.high_risk),
            "node {i}: {out:?}"
        );
    }
    latencies.sort();
    println!(
        "20-node delivery: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    // Origin privacy: nobody gets the report by gossip from the reporter;
    // exactly one node (its first stem hop) hears from it, over the stem
    // protocol; nobody gets it from the reporter by catch-up. (Others may:
    // on a slow machine Kademlia still connects nodes while the report
    // spreads, and a new connection starts with a catch-up round.)
    let from_reporter_gossip = origins
        .values()
        .filter(|o| **o == Origin::Gossip(reporter))
        .count();
    let first_hops = origins
        .values()
        .filter(|o| **o == Origin::Stem(reporter))
        .count();
    assert_eq!(from_reporter_gossip, 0, "{origins:?}");
    assert_eq!(first_hops, 1, "{origins:?}");
    assert!(
        !origins.values().any(|o| *o == Origin::Sync(reporter)),
        "{origins:?}"
    );
    let by_catch_up = origins
        .values()
        .filter(|o| matches!(o, Origin::Sync(_)))
        .count();
    println!("20-node delivery: {by_catch_up} of 19 by catch-up on a new connection");
    assert!(
        by_catch_up * 2 < origins.len(),
        "most copies must travel by stem and gossip: {origins:?}"
    );
    for n in nodes {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_announcements_are_rejected_and_not_forwarded() {
    let mut net = TestNet::new(21);
    // A line: bad - a - b - c, plus a - c so the honest part is a mesh.
    let bad = start(&net, net.config(false), Vec::new()).await;
    let mut honest = Vec::new();
    for _ in 0..3 {
        honest.push(start(&net, net.config(false), Vec::new()).await);
    }
    bad.handle.dial(honest[0].addr.clone()).await.unwrap();
    honest[1].handle.dial(honest[0].addr.clone()).await.unwrap();
    honest[2].handle.dial(honest[1].addr.clone()).await.unwrap();
    honest[2].handle.dial(honest[0].addr.clone()).await.unwrap();
    let refs: Vec<&TestNode> = std::iter::once(&bad).chain(honest.iter()).collect();
    wait_for_mesh(&refs, 1).await;
    let bad_id = bad.handle.peer_id();

    // Invalid in five ways.
    let good = {
        let t = net.tokens(3);
        net.report(&t)
    }
    .remove(0);
    let mut bad_sig = good.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    let mut other = TestNet::new(99);
    other.network_id = net.network_id.clone();
    let untrusted = {
        let t = other.tokens(3);
        other.report(&t)
    }
    .remove(0);
    let oversized = vec![0x0au8; MAX_ANNOUNCEMENT_BYTES + 10];
    let random: Vec<u8> = (0..500).map(|_| net.rng.next_u32() as u8).collect();
    let expired = {
        // Signed now under a certificate whose validity ended yesterday.
        let now = UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        let key = ReportSecretKey::generate(&mut net.rng);
        let until = now.minus(86_400);
        let cert = Certificate::issue(
            &net.issuer,
            CertificateParams {
                network_id: net.network_id.clone(),
                report_key: key.public(),
                valid_from: until.minus(3600),
                valid_until: until,
                window_first_day: until.day().minus(2),
                window_last_day: until.day(),
                max_tokens: 1024,
            },
        )
        .unwrap();
        let toks = net.tokens(2);
        build_announcements_unchecked(&key, &cert, &toks, -8, now, &mut net.rng)
            .unwrap()
            .remove(0)
            .bytes
    };
    for msg in [bad_sig, untrusted, oversized, random, expired] {
        bad.handle.publish_unchecked(msg).await.unwrap();
    }
    // Then one valid report from an honest node, as a marker that gossip
    // works and everything before it has been processed.
    let marker = {
        let t = net.tokens(3);
        net.report(&t)
    }
    .remove(0);
    honest[2]
        .handle
        .publish(marker.clone())
        .await
        .unwrap()
        .unwrap();
    let marker_id = AnnouncementId::of(&marker);
    for (i, h) in honest.iter_mut().enumerate().take(2) {
        let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, h.handle.events.recv()).await {
                Ok(Some(P2pEvent::Announcement { verified, .. })) => {
                    assert_eq!(
                        verified.id(),
                        marker_id,
                        "honest node {i} accepted an invalid announcement"
                    );
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("honest node {i} did not receive the marker"),
            }
        }
    }
    // The neighbour rejected them and scores the bad peer down (one invalid
    // message already puts it below the graylist threshold, so what follows
    // is dropped unread); nodes further away never saw them.
    // (The marker travels another path than the invalid messages, so it
    // may arrive first: wait, bounded, for the rejections.)
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    let st0 = loop {
        let st = honest[0].handle.status().await.unwrap();
        if st.counters.rejected >= 1 {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the neighbour never rejected the invalid messages: {:?}",
            st.counters
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st0.pool, 1, "only the marker is stored: {st0:?}");
    let score = st0
        .peers
        .iter()
        .find(|p| p.peer == bad_id)
        .and_then(|p| p.score);
    assert!(
        score.is_some_and(|s| s < 0.0),
        "score of the misbehaving peer: {score:?}"
    );
    // (Kademlia may have connected the bad peer to more honest nodes by
    // now, on a slow machine before the invalid messages went out: those
    // are its neighbours too and judge its messages themselves.)
    for h in &honest[1..] {
        let st = h.handle.status().await.unwrap();
        let neighbour = st.peers.iter().any(|p| p.peer == bad_id);
        if !neighbour {
            assert_eq!(
                st.counters.rejected, 0,
                "invalid messages were forwarded: {:?}",
                st.counters
            );
        }
        assert_eq!(st.pool, 1, "only the marker is stored");
    }
    bad.handle.shutdown().await;
    for h in honest {
        h.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_of_a_published_chunk_are_neither_stored_nor_forwarded() {
    let mut net = TestNet::new(22);
    // reporter - a - b
    let reporter = start(&net, net.config(false), Vec::new()).await;
    let mut a = start(&net, net.config(false), Vec::new()).await;
    let mut b = start(&net, net.config(false), Vec::new()).await;
    a.handle.dial(reporter.addr.clone()).await.unwrap();
    b.handle.dial(a.addr.clone()).await.unwrap();
    wait_for_mesh(&[&reporter, &a, &b], 1).await;
    // One certificate, two different chunk-0 variants (other dummies).
    let now = UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let key = ReportSecretKey::generate(&mut net.rng);
    let cert = Certificate::issue(
        &net.issuer,
        CertificateParams {
            network_id: net.network_id.clone(),
            report_key: key.public(),
            valid_from: now.minus(60),
            valid_until: now.plus(86_400),
            window_first_day: now.day().minus(3),
            window_last_day: now.day(),
            max_tokens: 1024,
        },
    )
    .unwrap();
    let toks = net.tokens(5);
    let first = build_announcements(&key, &cert, &toks, -8, now, &mut net.rng)
        .unwrap()
        .remove(0)
        .bytes;
    let second = build_announcements(&key, &cert, &toks, -8, now, &mut net.rng)
        .unwrap()
        .remove(0)
        .bytes;
    assert_ne!(first, second);
    reporter
        .handle
        .publish(first.clone())
        .await
        .unwrap()
        .unwrap();
    let first_id = AnnouncementId::of(&first);
    for (name, node) in [("a", &mut a), ("b", &mut b)] {
        let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, node.handle.events.recv()).await {
                Ok(Some(P2pEvent::Announcement { verified, .. })) => {
                    assert_eq!(verified.id(), first_id, "{name}");
                    break;
                }
                Ok(Some(_)) => {}
                _ => panic!("{name} did not receive the first chunk"),
            }
        }
    }
    // The holder of the certificate now floods a variant.
    assert!(matches!(
        reporter.handle.publish(second.clone()).await.unwrap(),
        Err(p2p::PublishRefused::Equivocation)
    ));
    reporter.handle.publish_unchecked(second).await.unwrap();
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    loop {
        let st = a.handle.status().await.unwrap();
        if st.counters.equivocations >= 1 {
            assert_eq!(st.pool, 1, "the variant is not stored");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a never saw the variant: {:?}",
            st.counters
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = b.handle.status().await.unwrap();
    assert_eq!(st.pool, 1, "the variant was forwarded to b");
    // Unless Kademlia connected b to the reporter (on a slow machine, before
    // the variant went out), b never even saw it: a did not forward it.
    let reporter_id = reporter.handle.peer_id();
    if !st.peers.iter().any(|p| p.peer == reporter_id) {
        assert_eq!(st.counters.equivocations, 0, "{:?}", st.counters);
    }
    for n in [reporter, a, b] {
        n.handle.shutdown().await;
    }
}
