//! Catch-up on real TCP sockets on 127.0.0.1: a node that was offline gets
//! everything it missed from its peers without anyone republishing; a round
//! between nodes in sync costs little; a light node receives by catch-up
//! and reports through a full node.

use std::collections::HashSet;
use std::time::Instant;

use meshtrace_node::p2p::Keypair;
use meshtrace_node::p2p::{Origin, P2pEvent};
use meshtrace_protocol::AnnouncementId;
use meshtrace_tests::mesh::{TestNet, TestNode, WAIT, start, start_with_key, wait_for_mesh};

async fn collect(node: &mut TestNode, want: &HashSet<AnnouncementId>, what: &str) -> Vec<Origin> {
    let mut got = HashSet::new();
    let mut origins = Vec::new();
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, node.handle.events.recv()).await {
            Ok(Some(P2pEvent::Announcement {
                verified, origin, ..
            })) => {
                if want.contains(&verified.id()) {
                    got.insert(verified.id());
                    origins.push(origin);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: mesh stopped"),
            Err(_) => panic!(
                "{what}: got {} of {} within {:?}",
                got.len(),
                want.len(),
                meshtrace_tests::deadline(WAIT)
            ),
        }
    }
    origins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_catches_up_on_everything_it_missed() {
    let mut net = TestNet::new(30);
    let mut a = start(&net, net.config(false), Vec::new()).await;
    // B gossips directly (no stem phase), so every report is servable by
    // catch-up as soon as A holds it; stem hiding is tested in the pool.
    let b_cfg = net.builder(false).stem_hops(0).build().unwrap();
    let b = start(&net, b_cfg, Vec::new()).await;
    b.handle.dial(a.addr.clone()).await.unwrap();
    let x_key = Keypair::generate_ed25519();
    let x = start_with_key(&net, net.config(false), Vec::new(), x_key.clone()).await;
    x.handle.dial(a.addr.clone()).await.unwrap();
    wait_for_mesh(&[&a, &b, &x], 1).await;
    // X goes offline.
    x.handle.shutdown().await;
    // 50 announcements are published while it is away.
    let mut want = HashSet::new();
    for i in 0..50 {
        let toks = net.tokens(1 + i % 5);
        let chunk = net.report(&toks).remove(0);
        want.insert(AnnouncementId::of(&chunk));
        b.handle.publish(chunk).await.unwrap().unwrap();
    }
    // Everything has reached A (so nothing is still on its way anywhere).
    collect(&mut a, &want, "A before X returns").await;
    // X comes back (same identity, nothing held) and reconnects to A only.
    let mut x = start_with_key(&net, net.config(false), Vec::new(), x_key).await;
    x.handle.dial(a.addr.clone()).await.unwrap();
    let t = Instant::now();
    let origins = collect(&mut x, &want, "offline node").await;
    assert!(
        origins.iter().all(|o| matches!(o, Origin::Sync(_))),
        "{origins:?}"
    );
    println!("catch-up: 50 missed announcements in {:?}", t.elapsed());
    // In sync now: one more round costs a few KB at most.
    let before = x.handle.status().await.unwrap().counters;
    x.handle.sync_now().await.unwrap();
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    let after = loop {
        let c = x.handle.status().await.unwrap().counters;
        if c.sync_rounds > before.sync_rounds {
            break c;
        }
        assert!(Instant::now() < deadline, "no sync round completed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let cost = after.sync_bytes_in - before.sync_bytes_in;
    println!("in-sync reconciliation round: {cost} bytes received");
    assert!(cost < 4096, "{cost} bytes");
    for n in [a, b, x] {
        n.handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_node_catches_up_and_reports_through_a_full_node() {
    let mut net = TestNet::new(31);
    let mut full = start(&net, net.config(false), Vec::new()).await;
    let mut other = start(&net, net.config(false), Vec::new()).await;
    other.handle.dial(full.addr.clone()).await.unwrap();
    wait_for_mesh(&[&full, &other], 1).await;
    let mut light = start(&net, net.config(true), Vec::new()).await;
    light.handle.dial(full.addr.clone()).await.unwrap();
    wait_for_mesh(&[&light], 1).await;
    // Published in the mesh: the light node (not in the gossip mesh) gets it
    // by catch-up.
    let chunk = {
        let t = net.tokens(4);
        net.report(&t)
    }
    .remove(0);
    let id = AnnouncementId::of(&chunk);
    other.handle.publish(chunk).await.unwrap().unwrap();
    let origins = collect(&mut light, &HashSet::from([id]), "light node").await;
    assert!(matches!(origins[0], Origin::Sync(_)), "{origins:?}");
    let st = light.handle.status().await.unwrap();
    assert_eq!(st.counters.accepted, 0, "a light node receives no gossip");
    // The light node reports: it goes through the full node to the mesh.
    let own = {
        let t = net.tokens(6);
        net.report(&t)
    }
    .remove(0);
    let own_id = AnnouncementId::of(&own);
    let light_id = light.handle.peer_id();
    light.handle.publish(own).await.unwrap().unwrap();
    // Both full nodes get it (the light node may have found `other` through
    // Kademlia, so its stem hop goes to either); exactly one of them hears it
    // from the light node, over the stem protocol, never by gossip.
    let mut origins = collect(&mut other, &HashSet::from([own_id]), "full node `other`").await;
    origins.extend(collect(&mut full, &HashSet::from([own_id]), "full node `full`").await);
    assert_eq!(
        origins
            .iter()
            .filter(|o| **o == Origin::Stem(light_id))
            .count(),
        1,
        "{origins:?}"
    );
    assert!(!origins.contains(&Origin::Gossip(light_id)), "{origins:?}");
    // And the light node learns that it left.
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, light.handle.events.recv()).await {
            Ok(Some(P2pEvent::Sent { id, via_stem })) if id == own_id => {
                assert!(via_stem, "a light node never gossips");
                break;
            }
            Ok(Some(_)) => {}
            _ => panic!("the light node's report was not confirmed sent"),
        }
    }
    for n in [full, other, light] {
        n.handle.shutdown().await;
    }
}
