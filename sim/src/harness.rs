//! In-process nodes: each runs the real protocol, a real encrypted store
//! (in memory or on disk), the libp2p mesh on loopback TCP and a device on
//! one shared in-memory radio air, all driven by one manual clock.
//!
//! The one way the demo (`meshtrace demo`) and the end-to-end tests'
//! `World` build such nodes: [`Harness`] holds the clock, the air and the
//! nodes; [`mesh_config`] is the fast local mesh they all use.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use meshtrace_node::TrustedIssuers;
use meshtrace_node::clock::{Clock, ManualClock, SharedClock};
use meshtrace_node::p2p::Keypair;
use meshtrace_node::p2p::Multiaddr;
use meshtrace_node::p2p::Protocol;
use meshtrace_node::p2p::{self, P2pConfig, P2pConfigBuilder, P2pEvent, P2pHandle};
use meshtrace_node::radio::memory::{DeviceConfig, MemoryAir};
use meshtrace_node::radio::model::{DutyCycle, PathLossModel, Trajectory};
use meshtrace_node::store::{ContactStore, MasterKey, MemoryStore, Store, StoreConfig};
use meshtrace_node::{NodeHandle, NodeSettings};
use meshtrace_protocol::{IssuerPublicKey, UnixTime};

/// Gossipsub heartbeat of the local mesh.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// How long a stem hop waits before the fail-safe gossips it.
pub const STEM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a node reconciles with a random peer.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// How often [`wait_for_full_peers`] looks again.
pub const PEER_POLL: Duration = Duration::from_millis(25);

/// The mesh settings of an in-process node: loopback TCP on a free port, no
/// mDNS (nothing talks to the LAN), timers for a fast local mesh.
pub fn mesh_config(network_id: &str, trusted_issuers: Vec<IssuerPublicKey>) -> P2pConfig {
    mesh_config_builder(network_id, TrustedIssuers::new(trusted_issuers))
        .build()
        .unwrap_or_else(|e| unreachable!("the harness mesh settings are valid: {e}"))
}

/// The builder of [`mesh_config`], to change a setting before building.
pub fn mesh_config_builder(network_id: &str, trusted_issuers: TrustedIssuers) -> P2pConfigBuilder {
    let mut b = P2pConfig::builder(network_id);
    b.trusted_issuers(trusted_issuers)
        .listen(vec![
            Multiaddr::empty()
                .with(Protocol::Ip4([127, 0, 0, 1].into()))
                .with(Protocol::Tcp(0)),
        ])
        .mdns(false)
        .heartbeat(HEARTBEAT)
        .stem_timeout(STEM_TIMEOUT)
        .sync_interval(SYNC_INTERVAL);
    b
}

/// Starts a mesh with a fresh identity and waits (at most `limit`) until it
/// listens; returns it with its dialable address (ending in `/p2p/<id>`).
pub async fn listening_mesh(
    config: P2pConfig,
    clock: SharedClock,
    limit: Duration,
) -> Result<(P2pHandle, Multiaddr)> {
    let mut mesh = p2p::spawn(config, Keypair::generate_ed25519(), clock, Vec::new())
        .await
        .context("starting the mesh")?;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, mesh.events.recv()).await {
            Ok(Some(P2pEvent::Listening(a))) => {
                let addr = a.with(Protocol::P2p(mesh.peer_id()));
                return Ok((mesh, addr));
            }
            Ok(Some(_)) => {}
            Ok(None) => bail!("the mesh stopped before listening"),
            Err(_) => bail!(
                "the mesh did not listen on 127.0.0.1 within {} s",
                limit.as_secs()
            ),
        }
    }
}

/// An empty encrypted store in memory with a fresh key, opened at `start`.
pub fn memory_store(start: UnixTime) -> Result<ContactStore<MemoryStore>> {
    ContactStore::with_backend(
        MemoryStore::new(),
        &MasterKey::generate(),
        StoreConfig::default(),
        start,
    )
    .context("creating a store in memory")
}

/// Runs every node's periodic work at the current time, all nodes at once,
/// and waits for them all.
pub async fn tick_all(handles: &[NodeHandle]) -> Result<()> {
    let mut pending: Vec<_> = handles.iter().map(|h| Box::pin(h.tick())).collect();
    let mut failed = None;
    std::future::poll_fn(|cx| {
        pending.retain_mut(|f| match f.as_mut().poll(cx) {
            Poll::Ready(r) => {
                if let Err(e) = r {
                    failed = Some(e);
                }
                false
            }
            Poll::Pending => true,
        });
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    match failed {
        Some(e) => Err(e).context("a node stopped"),
        None => Ok(()),
    }
}

/// Waits (at most `limit`) until every node has `min` full peers (subscribed
/// to the announcements topic) in its mesh.
pub async fn wait_for_full_peers(
    handles: &[NodeHandle],
    min: usize,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    for h in handles {
        loop {
            let st = h.status().await.context("node status")?;
            if st
                .mesh
                .as_ref()
                .is_some_and(|m| m.peers.iter().filter(|p| p.full).count() >= min)
            {
                break;
            }
            if Instant::now() >= deadline {
                bail!("the local mesh did not form within {} s", limit.as_secs());
            }
            tokio::time::sleep(PEER_POLL).await;
        }
    }
    Ok(())
}

/// One node to add to a [`Harness`].
pub struct NodeSpec<S: Store> {
    /// Its store (opened, trusting the issuers it needs).
    pub store: ContactStore<S>,
    /// Where its radio is over time.
    pub trajectory: Trajectory,
    /// The node's settings.
    pub settings: NodeSettings,
    /// Its mesh settings (see [`mesh_config`]).
    pub mesh: P2pConfig,
    /// Indices of earlier nodes its mesh dials.
    pub dial: Vec<usize>,
}

/// Nodes on one air and one manual clock.
pub struct Harness {
    /// The clock every node and the air read.
    pub clock: ManualClock,
    /// The same clock, shared with the nodes.
    pub shared: SharedClock,
    /// The shared air.
    pub air: MemoryAir,
    /// The nodes, in the order they were added.
    pub nodes: Vec<NodeHandle>,
    /// Each node's dialable mesh address (with `/p2p/<id>`).
    pub addrs: Vec<Multiaddr>,
    /// Bound on a mesh starting to listen.
    pub startup_limit: Duration,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("now_millis", &self.clock.now_millis())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// No nodes yet; the clock at `start`, the air with `model`, default
    /// duty-cycled scanning and noise seeded by `seed`.
    pub fn new(
        start: UnixTime,
        model: PathLossModel,
        seed: u64,
        startup_limit: Duration,
    ) -> Result<Harness> {
        let clock = ManualClock::new(start);
        let shared: SharedClock = Arc::new(clock.clone());
        let air = MemoryAir::new(model, DutyCycle::default(), seed)
            .map_err(|e| anyhow!("setting up the simulated air: {e}"))?;
        Ok(Harness {
            clock,
            shared,
            air,
            nodes: Vec::new(),
            addrs: Vec::new(),
            startup_limit,
        })
    }

    /// Starts a node (radio on the air, mesh listening and dialing the
    /// given earlier nodes); returns its index.
    pub async fn add_node<S: Store + 'static>(&mut self, spec: NodeSpec<S>) -> Result<usize> {
        let radio = self
            .air
            .add_device(DeviceConfig {
                trajectory: spec.trajectory,
                ..DeviceConfig::default()
            })
            .map_err(|e| anyhow!("adding a simulated radio: {e}"))?;
        let (mesh, addr) =
            listening_mesh(spec.mesh, self.shared.clone(), self.startup_limit).await?;
        for &t in &spec.dial {
            let to = self
                .addrs
                .get(t)
                .with_context(|| format!("no node {t} to dial"))?;
            mesh.dial(to.clone()).await.context("dialing a node")?;
        }
        let handle =
            meshtrace_node::start(spec.settings, spec.store, radio, mesh, self.shared.clone())
                .await
                .context("starting the node")?;
        self.nodes.push(handle);
        self.addrs.push(addr);
        Ok(self.nodes.len() - 1)
    }

    /// Moves the clock on `seconds` seconds, one at a time: the air delivers
    /// what was heard each second, and every `tick_every` seconds every
    /// node runs its periodic work (all at once, waited for).
    pub async fn advance(&self, seconds: u64, tick_every: u64) -> Result<()> {
        let start = self.clock.now_millis() / 1000;
        for s in 1..=seconds {
            self.clock.set_millis((start + s) * 1000);
            if tick_every > 0 && s % tick_every == 0 {
                tick_all(&self.nodes).await?;
            }
            self.air.step(self.clock.now_millis());
        }
        Ok(())
    }
}
