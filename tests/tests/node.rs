//! The node task end to end, in one process: three nodes with the real
//! protocol, encrypted stores, the libp2p mesh on loopback TCP and a shared
//! in-memory radio air, driven by a manual clock. A and B spend 20 minutes
//! 1 m apart, C is 40 m away; B tests positive, an issuer certifies, B
//! reports: A is warned (high risk), C is not.

use std::time::{Duration, Instant};

use meshtrace_node::NodeEvent;
use meshtrace_node::clock::Clock;
use meshtrace_tests::mesh::{TestNet, WAIT};
use meshtrace_tests::world::World;

async fn setup(net: &TestNet, positions: &[f64]) -> World {
    World::new(net, positions).await
}

async fn run_for(s: &World, seconds: u64) {
    s.run_for(seconds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_contact_is_warned_and_a_distant_one_is_not() {
    let mut net = TestNet::new(50);
    let mut s = setup(&net, &[0.0, 1.0, 40.0]).await;
    // 20 minutes together, then 10 minutes for the encounters to close.
    run_for(&s, 20 * 60).await;
    s.air
        .set_enabled(meshtrace_node::radio::memory::DeviceId(1), false);
    run_for(&s, 10 * 60).await;
    for (i, n) in s.nodes.iter().enumerate() {
        let st = n.status().await.unwrap();
        println!(
            "node {i}: {} encounters, radio {:?}",
            st.encounters, st.radio
        );
    }
    assert!(s.nodes[0].status().await.unwrap().encounters > 0);
    assert_eq!(
        s.nodes[2].status().await.unwrap().encounters,
        0,
        "C heard nobody"
    );

    // B tests positive: request → issuer → certificate → submit.
    let b = &s.nodes[1];
    let request = b.report_request().await.unwrap();
    let cert = net.certify(&request, s.clock.now());
    let plan = b.report_plan(cert.to_code()).await.unwrap();
    assert!(plan.plan.real_tokens > 0, "{plan:?}");
    let sent = b.report_submit(cert.to_code()).await.unwrap();
    assert_eq!(sent.chunks.len(), 1);
    // The same certificate cannot be used twice (the one-time key is gone).
    assert!(b.report_submit(cert.to_code()).await.is_err());

    // A is warned within a bounded time.
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    let exposure = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.nodes[0].events.recv()).await {
            Ok(Some(NodeEvent::Exposure(e))) => break e,
            Ok(Some(_)) => {}
            _ => panic!(
                "A was not warned within {:?}",
                meshtrace_tests::deadline(WAIT)
            ),
        }
    };
    assert!(exposure.exposure.high_risk, "{exposure:?}");
    assert_eq!(s.nodes[0].exposures().await.unwrap().len(), 1);
    // C received the announcement too, and has no exposure.
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    loop {
        if s.nodes[2].status().await.unwrap().announcements >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "C never received the report");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.nodes[2].exposures().await.unwrap().is_empty());
    for n in &s.nodes {
        n.shutdown().await.unwrap();
    }
    let _ = &mut net;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_never_warns_itself() {
    let net = TestNet::new(52);
    let mut w = World::new(&net, &[0.0, 1.0]).await;
    // Together for 20 minutes; B reports while its encounters with A are
    // still open (they go into the report), then they close afterwards.
    w.run_for(20 * 60).await;
    let b = &w.nodes[1];
    assert!(b.status().await.unwrap().open_encounters > 0);
    let request = b.report_request().await.unwrap();
    let cert = net.certify(&request, w.clock.now());
    b.report_submit(cert.to_code()).await.unwrap();
    w.air
        .set_enabled(meshtrace_node::radio::memory::DeviceId(1), false);
    w.run_for(10 * 60).await;
    // A is warned (so the report did go round) ...
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.nodes[0].events.recv()).await {
            Ok(Some(NodeEvent::Exposure(e))) if e.exposure.high_risk => break,
            Ok(Some(_)) => {}
            _ => panic!(
                "A was not warned within {:?}",
                meshtrace_tests::deadline(WAIT)
            ),
        }
    }
    // ... and B, whose closed encounters hold the same tokens, is not.
    let st = w.nodes[1].status().await.unwrap();
    assert_eq!(st.open_encounters, 0);
    assert!(
        w.nodes[1].exposures().await.unwrap().is_empty(),
        "the reporter warned itself"
    );
}

/// A radio that refuses to advertise and whose event channel the test holds.
struct BrokenRadio {
    events: tokio::sync::mpsc::Receiver<meshtrace_node::radio::RadioEvent>,
}

impl meshtrace_node::radio::Radio for BrokenRadio {
    fn advertise(
        &mut self,
        _frame: meshtrace_node::protocol::Frame,
    ) -> Result<(), meshtrace_node::radio::RadioError> {
        Err(meshtrace_node::radio::RadioError::NoAdapter(
            "adapter unplugged".into(),
        ))
    }
    fn events(&mut self) -> &mut tokio::sync::mpsc::Receiver<meshtrace_node::radio::RadioEvent> {
        &mut self.events
    }
    fn stats(&self) -> meshtrace_node::radio::RadioStats {
        Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radio_failures_are_kept_for_the_status_and_the_node_keeps_running() {
    use meshtrace_node::NodeSettings;
    use meshtrace_node::clock::{ManualClock, SharedClock, SystemClock};
    use meshtrace_node::radio::{RadioError, RadioEvent};
    use meshtrace_tests::world::{memory_store, spawn_mesh};
    use std::sync::Arc;

    let net = TestNet::new(91);
    let start = SystemClock.now();
    let clock = ManualClock::new(start);
    let shared: SharedClock = Arc::new(clock.clone());
    let store = memory_store(start);
    let mesh = spawn_mesh(&net, shared.clone()).await;
    let (radio_tx, radio_rx) = tokio::sync::mpsc::channel(8);
    let mut n = meshtrace_node::start(
        NodeSettings::new(&net.network_id),
        store,
        BrokenRadio { events: radio_rx },
        mesh,
        shared,
    )
    .await
    .expect("node");

    // The first tick rotates in a key and fails to advertise it.
    clock.advance_millis(1000);
    n.tick().await.expect("tick");
    let s = n.status().await.expect("status");
    assert_eq!(s.radio_failures, 1);
    let (at, error) = s.last_radio_failure.expect("the failure is kept");
    assert_eq!(at, clock.now());
    assert!(error.contains("adapter unplugged"), "{error}");

    // A failure the radio reports later (the scan died) replaces it.
    clock.advance_millis(5000);
    radio_tx
        .send(RadioEvent::Failed(RadioError::Io("scan stopped".into())))
        .await
        .expect("send");
    let deadline = Instant::now() + meshtrace_tests::deadline(WAIT);
    let s = loop {
        let s = n.status().await.expect("the node still answers");
        if s.radio_failures == 2 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s.radio_failures, 2);
    let (at, error) = s.last_radio_failure.expect("the failure is kept");
    assert_eq!(at, clock.now());
    assert!(error.contains("scan stopped"), "{error}");

    // Both were passed on as events.
    let mut failed = 0;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), n.events.recv()).await
    {
        if matches!(ev, NodeEvent::RadioFailed(_)) {
            failed += 1;
        }
    }
    assert_eq!(failed, 2);
}
