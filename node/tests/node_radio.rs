//! The node task when its radio's event channel closes (the radio task
//! died): one radio failure, kept for the status and told once, and the
//! node keeps answering and ticking (it does not spin on the closed
//! channel).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use meshtrace_node::clock::{Clock, ManualClock, SharedClock, SystemClock};
use meshtrace_node::p2p::{self, P2pConfig};
use meshtrace_node::protocol::Frame;
use meshtrace_node::radio::{Radio, RadioError, RadioEvent, RadioStats};
use meshtrace_node::store::{ContactStore, MasterKey, MemoryStore, StoreConfig};
use meshtrace_node::{NodeEvent, NodeSettings};
use tokio::sync::mpsc;

const NET: &str = "radio-closed";
/// Bound on waiting for the node (generous: the machine may be busy).
const WAIT: Duration = Duration::from_secs(60);

/// A radio whose event channel is already closed; it counts what it is
/// asked to advertise.
struct ClosedRadio {
    events: mpsc::Receiver<RadioEvent>,
    advertised: Arc<AtomicUsize>,
}

impl Radio for ClosedRadio {
    fn advertise(&mut self, _frame: Frame) -> Result<(), RadioError> {
        self.advertised.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent> {
        &mut self.events
    }
    fn stats(&self) -> RadioStats {
        RadioStats::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_radio_whose_channel_closes_is_one_failure_and_the_node_keeps_answering() {
    let clock = ManualClock::new(SystemClock.now());
    let shared: SharedClock = Arc::new(clock.clone());
    let store = ContactStore::with_backend(
        MemoryStore::new(),
        &MasterKey::generate(),
        StoreConfig::default(),
        clock.now(),
    )
    .expect("store");
    let pc = P2pConfig::builder(NET)
        .listen(vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")])
        .build()
        .expect("mesh settings");
    let keypair = p2p::Keypair::generate_ed25519();
    let mesh = p2p::spawn(pc, keypair, shared.clone(), Vec::new())
        .await
        .expect("mesh");
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    let advertised = Arc::new(AtomicUsize::new(0));
    let radio = ClosedRadio {
        events: rx,
        advertised: advertised.clone(),
    };
    let mut n = meshtrace_node::start(NodeSettings::new(NET), store, radio, mesh, shared)
        .await
        .expect("node");

    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = n.status().await.expect("the node answers");
        if s.radio_failures > 0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s.radio_failures, 1, "the closed radio is one failure");
    let (at, error) = s.last_radio_failure.expect("the failure is kept");
    assert_eq!(at, clock.now());
    assert_eq!(error, meshtrace_node::RADIO_CLOSED);

    // The node still ticks (rotates and advertises) and answers.
    for _ in 0..5 {
        clock.advance_millis(60_000);
        n.tick().await.expect("tick");
    }
    assert!(advertised.load(Ordering::SeqCst) >= 1);
    let s = n.status().await.expect("status");
    assert_eq!(s.radio_failures, 1, "still one failure");

    // Told once.
    let mut failed = 0;
    while let Ok(ev) = n.events.try_recv() {
        if matches!(ev, NodeEvent::RadioFailed(_)) {
            failed += 1;
        }
    }
    assert_eq!(failed, 1);
    n.shutdown().await.expect("clean stop");
}
