//! In-process nodes for end-to-end tests: each has the real protocol, an
//! encrypted store (in memory), the libp2p mesh on loopback TCP and a device
//! on one shared in-memory radio air, all driven by one manual clock
//! ([`meshtrace_sim::harness`]).

use meshtrace_node::clock::{Clock, ManualClock, SharedClock, SystemClock};
use meshtrace_node::p2p;
use meshtrace_node::protocol::UnixTime;
use meshtrace_node::radio::memory::MemoryAir;
use meshtrace_node::radio::model::{PathLossModel, Position, Trajectory};
use meshtrace_node::store::{ContactStore, MemoryStore};
use meshtrace_node::{NodeHandle, NodeSettings};
use meshtrace_sim::harness::{self, Harness, NodeSpec};

use crate::mesh::{TestNet, WAIT};

/// Seed of the air's noise.
const AIR_SEED: u64 = 42;

/// Nodes on one air and one manual clock.
pub struct World {
    /// The nodes, in the order of their positions.
    pub nodes: Vec<NodeHandle>,
    /// The clock every node and the air read.
    pub clock: ManualClock,
    /// The shared air.
    pub air: MemoryAir,
    /// The first node's dialable mesh address.
    pub first_addr: p2p::Multiaddr,
}

impl World {
    /// One node per x position (metres, on a line), the clock at the real
    /// time now. Every node dials the first.
    pub async fn new(net: &TestNet, positions: &[f64]) -> World {
        let start = SystemClock.now();
        let mut h = Harness::new(
            start,
            PathLossModel::default(),
            AIR_SEED,
            crate::deadline(WAIT),
        )
        .expect("valid air");
        for x in positions {
            let mut store = memory_store(start);
            store
                .add_trusted_issuer(net.issuer.public(), "clinic")
                .expect("trust");
            let dial = if h.nodes.is_empty() { vec![] } else { vec![0] };
            h.add_node(NodeSpec {
                store,
                trajectory: Trajectory::fixed(Position { x: *x, y: 0.0 }),
                settings: NodeSettings::new(&net.network_id),
                mesh: net.config(false),
                dial,
            })
            .await
            .expect("node");
        }
        let nodes = std::mem::take(&mut h.nodes);
        let first_addr = h.addrs.first().cloned().expect("at least one node");
        World {
            nodes,
            clock: h.clock,
            air: h.air,
            first_addr,
        }
    }

    /// Advances the clock second by second, running the air and every
    /// node's timer.
    pub async fn run_for(&self, seconds: u64) {
        for _ in 0..seconds {
            self.clock.advance_millis(1000);
            self.air.step(self.clock.now_millis());
            harness::tick_all(&self.nodes).await.expect("tick");
        }
    }
}

/// An empty encrypted store in memory, opened at `start`.
pub fn memory_store(start: UnixTime) -> ContactStore<MemoryStore> {
    harness::memory_store(start).expect("store")
}

/// A full node's mesh for `net` on loopback TCP, with a fresh identity.
pub async fn spawn_mesh(net: &TestNet, clock: SharedClock) -> p2p::P2pHandle {
    harness::listening_mesh(net.config(false), clock, crate::deadline(WAIT))
        .await
        .expect("mesh")
        .0
}
