//! A foreign libp2p client in the mesh (issue #16, bug 3): a bare libp2p
//! peer built here — gossipsub on the meshtrace topic, identify and ping,
//! but neither the stem nor the sync protocol — is a reporter's only
//! neighbour. The reporter must not hand it stem hops, must not count its
//! inability as stem failures, and so must never gossip its own report
//! itself; once a real meshtrace node connects, the report leaves by stem.
//! Real TCP on 127.0.0.1; bounded waits on counters, no sleeping and hoping.

use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{PeerId, SwarmBuilder, identify, noise, ping, tcp, yamux};
use meshtrace_node::p2p::{self, MAX_STEM_FAILURES, Origin, P2pEvent, P2pStatus};
use meshtrace_protocol::AnnouncementId;
use meshtrace_tests::mesh::{TestNet, TestNode, WAIT, start};
use tokio::sync::mpsc;

#[derive(NetworkBehaviour)]
struct Foreign {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Starts the foreign client, dialled to `reporter`; the ids of the gossip
/// messages it receives come out of the returned channel.
fn foreign_client(net: &TestNet, reporter: &TestNode) -> (PeerId, mpsc::Receiver<AnnouncementId>) {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .heartbeat_interval(Duration::from_millis(100))
                .build()
                .expect("gossipsub config");
            Foreign {
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    config,
                )
                .expect("gossipsub"),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/foreign/1.0.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(WAIT))
        .build();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(p2p::topic_name(&net.network_id)))
        .expect("subscribe");
    swarm.dial(reporter.addr.clone()).expect("dial");
    let id = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(ForeignEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) = swarm.select_next_some().await
                && tx.send(AnnouncementId::of(&message.data)).await.is_err()
            {
                return;
            }
        }
    });
    (id, rx)
}

/// Polls the node's status until `ok` holds (bounded).
async fn status_until(node: &TestNode, what: &str, ok: impl Fn(&P2pStatus) -> bool) -> P2pStatus {
    let limit = meshtrace_tests::deadline(WAIT);
    let deadline = Instant::now() + limit;
    loop {
        let st = node.handle.status().await.expect("status");
        if ok(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}: {st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_whose_only_neighbour_is_a_foreign_client_keeps_its_report_until_a_meshtrace_peer_comes()
 {
    let mut net = TestNet::new(61);
    let mut reporter = start(&net, net.config(false), Vec::new()).await;
    let (foreign, mut seen) = foreign_client(&net, &reporter);
    // The foreign client is connected and subscribed to the topic: on the
    // old mesh it counted as a full peer and got the stem hops.
    status_until(&reporter, "the foreign client subscribes", |st| {
        st.peers.iter().any(|p| p.peer == foreign && p.full)
    })
    .await;
    let tokens = net.tokens(3);
    let bytes = net.report(&tokens).remove(0);
    let id = reporter
        .handle
        .publish(bytes)
        .await
        .expect("mesh")
        .expect("valid report");
    // Progress: the reporter tried again and again (more often than the
    // stem failures after which it used to gossip the report itself) and
    // found no stem-capable peer each time.
    let tries = u64::from(MAX_STEM_FAILURES) + 2;
    // (It also stops waiting, to fail at once, when the report has left.)
    let st = status_until(&reporter, "repeated tries", |st| {
        st.counters.stem_waits >= tries || st.outbox == 0 || st.counters.stem_sent > 0
    })
    .await;
    assert_eq!(st.counters.stem_sent, 0, "no stem request to anyone");
    assert_eq!(st.outbox, 1, "the report is still waiting");
    if let Ok(got) = seen.try_recv() {
        panic!(
            "the foreign client received {got:?} in gossip from the reporter: its origin is exposed"
        );
    }
    while let Ok(ev) = reporter.handle.events.try_recv() {
        assert!(
            !matches!(ev, P2pEvent::Sent { .. }),
            "the report left without a stem hop: {ev:?}"
        );
    }
    // A meshtrace node connects: the report leaves through it, by stem.
    let mut honest = start(&net, net.config(false), Vec::new()).await;
    honest
        .handle
        .dial(reporter.addr.clone())
        .await
        .expect("dial");
    let limit = meshtrace_tests::deadline(WAIT);
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reporter.handle.events.recv()).await {
            Ok(Some(P2pEvent::Sent { id: sent, via_stem })) => {
                assert_eq!(sent, id);
                assert!(via_stem, "left by stem");
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("reporter stopped"),
            Err(_) => panic!("the report did not leave within {limit:?}"),
        }
    }
    let reporter_id = reporter.handle.peer_id();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, honest.handle.events.recv()).await {
            Ok(Some(P2pEvent::Announcement {
                verified, origin, ..
            })) => {
                assert_eq!(verified.id(), id);
                assert_eq!(origin, Origin::Stem(reporter_id));
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("honest node stopped"),
            Err(_) => panic!("the honest node got no stem hop within {limit:?}"),
        }
    }
    let st = reporter.handle.status().await.expect("status");
    assert_eq!(
        st.counters.stem_sent, 1,
        "one stem hop, to the meshtrace node"
    );
    // Byte counts come from the counting transport.
    assert!(
        st.counters.bytes_in > 0 && st.counters.bytes_out > 0,
        "{:?}",
        st.counters
    );
    honest.handle.shutdown().await;
    reporter.handle.shutdown().await;
}
