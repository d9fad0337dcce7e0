//! In-process nodes for end-to-end tests: each has the real protocol, an
//! encrypted store (in memory), the libp2p mesh on loopback TCP and a device
//! on one shared in-memory radio air, all driven by one manual clock.

use std::sync::Arc;

use meshtrace_node::clock::{Clock, ManualClock, SharedClock, SystemClock};
use meshtrace_node::node::{self, NodeHandle, NodeSettings};
use meshtrace_node::p2p::{self, libp2p::identity::Keypair};
use meshtrace_node::protocol::UnixTime;
use meshtrace_node::radio::memory::{DeviceConfig, MemoryAir};
use meshtrace_node::radio::model::{DutyCycle, PathLossModel, Position, Trajectory};
use meshtrace_node::store::{ContactStore, MasterKey, MemoryStore, StoreConfig};

use crate::mesh::{TestNet, WAIT};

/// Nodes on one air and one manual clock.
pub struct World {
    /// The nodes, in the order of their positions.
    pub nodes: Vec<NodeHandle>,
    /// The clock every node and the air read.
    pub clock: ManualClock,
    /// The shared air.
    pub air: MemoryAir,
    /// The first node's dialable mesh address.
    pub first_addr: p2p::libp2p::Multiaddr,
}

impl World {
    /// One node per x position (metres, on a line), the clock at the real
    /// time now. Every node dials the first.
    pub async fn new(net: &TestNet, positions: &[f64]) -> World {
        let start = SystemClock.now();
        let clock = ManualClock::new(start);
        let shared: SharedClock = Arc::new(clock.clone());
        let air =
            MemoryAir::new(PathLossModel::default(), DutyCycle::default(), 42).expect("valid air");
        let mut nodes = Vec::new();
        let mut first_addr = None;
        for x in positions {
            let mut store = memory_store(start);
            store
                .add_trusted_issuer(net.issuer.public(), "clinic")
                .expect("trust");
            let radio = air
                .add_device(DeviceConfig {
                    trajectory: Trajectory::fixed(Position { x: *x, y: 0.0 }),
                    ..DeviceConfig::default()
                })
                .expect("device");
            let mut mesh = spawn_mesh(net, shared.clone()).await;
            let addr = loop {
                match tokio::time::timeout(crate::deadline(WAIT), mesh.events.recv()).await {
                    Ok(Some(p2p::P2pEvent::Listening(a))) => break a,
                    Ok(Some(_)) => {}
                    _ => panic!("mesh did not listen"),
                }
            };
            match &first_addr {
                None => {
                    first_addr =
                        Some(addr.with(p2p::libp2p::multiaddr::Protocol::P2p(mesh.peer_id())))
                }
                Some(a) => mesh.dial(a.clone()).await.expect("dial"),
            }
            let handle = node::start(
                NodeSettings::new(&net.network_id),
                store,
                radio,
                mesh,
                shared.clone(),
            )
            .await
            .expect("node");
            nodes.push(handle);
        }
        World {
            nodes,
            clock,
            air,
            first_addr: first_addr.expect("at least one node"),
        }
    }

    /// Advances the clock second by second, running the air and every
    /// node's timer.
    pub async fn run_for(&self, seconds: u64) {
        for _ in 0..seconds {
            self.clock.advance_millis(1000);
            self.air.step(self.clock.now_millis());
            for n in &self.nodes {
                n.tick().await.expect("tick");
            }
        }
    }
}

/// An empty encrypted store in memory, opened at `start`.
pub fn memory_store(start: UnixTime) -> ContactStore<MemoryStore> {
    ContactStore::with_backend(
        MemoryStore::new(),
        &MasterKey::generate(),
        StoreConfig::default(),
        start,
    )
    .expect("store")
}

/// A full node's mesh for `net` on loopback TCP, with a fresh identity.
pub async fn spawn_mesh(net: &TestNet, clock: SharedClock) -> p2p::P2pHandle {
    p2p::spawn(
        net.config(false),
        Keypair::generate_ed25519(),
        clock,
        Vec::new(),
    )
    .await
    .expect("mesh")
}
