//! Helpers for tests on a real libp2p mesh over loopback TCP.

use std::time::{Duration, Instant};

use meshtrace_node::TrustedIssuers;
use meshtrace_node::clock::{Clock, SharedClock, SystemClock};
use meshtrace_node::p2p::Multiaddr;
use meshtrace_node::p2p::{self, P2pConfig, P2pConfigBuilder, P2pEvent, P2pHandle};
use meshtrace_protocol::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A test deployment: a network id, a trusted issuer, an RNG.
pub struct TestNet {
    /// The network id.
    pub network_id: String,
    /// The trusted issuer.
    pub issuer: IssuerSecretKey,
    /// Seeded randomness.
    pub rng: ChaCha20Rng,
}

/// Bound on every wait in the mesh tests, on an idle machine: waits use
/// [`crate::deadline`]`(WAIT)`, scaled to the machine's load.
pub const WAIT: Duration = Duration::from_secs(60);

impl TestNet {
    /// A new deployment.
    pub fn new(seed: u64) -> TestNet {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let issuer = IssuerSecretKey::generate(&mut rng);
        TestNet {
            network_id: format!("test-{seed}"),
            issuer,
            rng,
        }
    }

    /// The wall clock (announcements are verified against it).
    pub fn clock(&self) -> SharedClock {
        std::sync::Arc::new(SystemClock)
    }

    /// A mesh configuration listening on a fresh loopback TCP port, with
    /// test-speed timers.
    pub fn config(&self, light: bool) -> P2pConfig {
        self.builder(light).build().expect("valid mesh settings")
    }

    /// The builder of [`TestNet::config`], to change a setting first.
    pub fn builder(&self, light: bool) -> P2pConfigBuilder {
        let mut b = meshtrace_sim::harness::mesh_config_builder(
            &self.network_id,
            TrustedIssuers::new([self.issuer.public()]),
        );
        b.light(light);
        b
    }

    /// `n` random tokens.
    pub fn tokens(&mut self, n: usize) -> Vec<EncounterToken> {
        meshtrace_sim::workload::random_tokens(&mut self.rng, n)
    }

    /// What an issuer of this network hands a positive user for the request
    /// code `request`: a certificate valid from `now` for two days, for the
    /// contact window of the last three days, capped at 4,096 tokens.
    pub fn certify(&self, request: &str, now: UnixTime) -> Certificate {
        let request = ReportRequest::from_code(request).expect("valid request code");
        Certificate::issue(
            &self.issuer,
            CertificateParams {
                network_id: request.network_id,
                report_key: request.report_key,
                valid_from: now,
                valid_until: now.plus(2 * 86_400),
                window_first_day: now.day().minus(2),
                window_last_day: now.day(),
                max_tokens: 4096,
            },
        )
        .expect("valid certificate")
    }

    /// A certified report of `tokens`, created now: its encoded chunks.
    pub fn report(&mut self, tokens: &[EncounterToken]) -> Vec<Vec<u8>> {
        let now = SystemClock.now();
        let key = ReportSecretKey::generate(&mut self.rng);
        let cert = Certificate::issue(
            &self.issuer,
            CertificateParams {
                network_id: self.network_id.clone(),
                report_key: key.public(),
                valid_from: now.minus(60),
                valid_until: now.plus(86_400),
                window_first_day: now.day().minus(13),
                window_last_day: now.day(),
                max_tokens: 8192,
            },
        )
        .expect("valid certificate");
        build_announcements(&key, &cert, tokens, -8, now, &mut self.rng)
            .expect("report builds")
            .into_iter()
            .map(|c| c.bytes)
            .collect()
    }
}

/// A running test node.
pub struct TestNode {
    /// The mesh handle.
    pub handle: P2pHandle,
    /// Its TCP listen address, with `/p2p/<id>`.
    pub addr: Multiaddr,
}

/// Starts a node and waits (bounded) until it listens.
pub async fn start(net: &TestNet, config: P2pConfig, initial: Vec<Vec<u8>>) -> TestNode {
    start_with_key(
        net,
        config,
        initial,
        meshtrace_node::p2p::Keypair::generate_ed25519(),
    )
    .await
}

/// Starts a node with a given identity.
pub async fn start_with_key(
    net: &TestNet,
    config: P2pConfig,
    initial: Vec<Vec<u8>>,
    key: meshtrace_node::p2p::Keypair,
) -> TestNode {
    let mut handle = p2p::spawn(config, key, net.clock(), initial)
        .await
        .expect("mesh starts");
    let limit = crate::deadline(WAIT);
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, handle.events.recv()).await {
            Ok(Some(P2pEvent::Listening(a))) => {
                let addr = a.with(meshtrace_node::p2p::Protocol::P2p(handle.peer_id()));
                return TestNode { handle, addr };
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("mesh stopped before listening"),
            Err(_) => panic!("node did not listen within {limit:?}"),
        }
    }
}

/// Waits (bounded: [`WAIT`] per 100 nodes, scaled to the machine's load)
/// until every node sees at least `min` full peers, asking only the nodes
/// still short of them; every 10 s prints how many are left and their
/// full-peer counts.
pub async fn wait_for_mesh(nodes: &[&TestNode], min: usize) {
    let limit = crate::deadline(WAIT * nodes.len().div_ceil(100).max(1) as u32);
    let began = Instant::now();
    let deadline = began + limit;
    let mut short: Vec<&TestNode> = nodes.to_vec();
    let mut printed = Instant::now();
    loop {
        let mut still = Vec::new();
        let mut counts = std::collections::BTreeMap::new();
        for n in short {
            let left = deadline.saturating_duration_since(Instant::now());
            let st = tokio::time::timeout(left, n.handle.status())
                .await
                .expect("the mesh answers within the deadline")
                .expect("status");
            let full = st.peers.iter().filter(|p| p.full).count();
            if full < min {
                still.push(n);
                *counts.entry(full).or_insert(0usize) += 1;
            }
        }
        short = still;
        if short.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mesh did not form within {limit:?}: {} nodes have fewer than {min} full peers \
             (nodes by full-peer count: {counts:?})",
            short.len()
        );
        if printed.elapsed() >= Duration::from_secs(10) {
            printed = Instant::now();
            println!(
                "after {:?}: {} nodes have fewer than {min} full peers (by count: {counts:?})",
                began.elapsed(),
                short.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
