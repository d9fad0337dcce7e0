//! Child process for `tests/tests/attacks.rs`: a malicious mesh peer in its
//! own process (so that the test measures the honest nodes' memory alone).
//! It joins the deployment's topic, dials the given peers and publishes
//! distinct random invalid messages at a fixed rate.
//!
//! Usage: `meshtrace-flood-child NETWORK ISSUER_HEX RATE_PER_S SECONDS ADDR…`.
//! It floods for at least SECONDS and until its stdin closes (at most
//! [`MAX_FLOOD`]), so that a test decides when the flood may end. It prints
//! `peer <id>` when it listens, and `sent <n>` at the end. Bad arguments:
//! one line on stderr and exit status 2.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meshtrace_node::clock::SystemClock;
use meshtrace_node::p2p::{self, Keypair, P2pConfig, P2pEvent};
use meshtrace_node::protocol::IssuerPublicKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const USAGE: &str = "usage: meshtrace-flood-child NETWORK ISSUER_HEX RATE_PER_S SECONDS ADDR…";
/// Largest rate accepted (messages per second).
const MAX_RATE: u64 = 1_000_000;
/// Longest flood, whatever stdin does.
const MAX_FLOOD: Duration = Duration::from_secs(600);
/// Size of each invalid message (bytes).
const MESSAGE_LEN: usize = 300;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| {
        let [network, issuer, rate, seconds, addrs @ ..] = &args[..] else {
            return None;
        };
        let issuer = IssuerPublicKey::from_hex(issuer)?;
        let rate: u64 = rate.parse().ok().filter(|r| (1..=MAX_RATE).contains(r))?;
        let seconds: u64 = seconds.parse().ok()?;
        let addrs: Option<Vec<p2p::Multiaddr>> = addrs.iter().map(|a| a.parse().ok()).collect();
        Some((network.clone(), issuer, rate, seconds, addrs?))
    })();
    let Some((network, issuer, rate, seconds, addrs)) = parsed else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // Stdin closed (or unreadable): the test allows the flood to end.
    let released = Arc::new(AtomicBool::new(false));
    {
        let released = released.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            released.store(true, Ordering::Relaxed);
        });
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let config = match P2pConfig::builder(&network)
            .trusted_issuers(meshtrace_node::TrustedIssuers::new([issuer]))
            .listen(vec![
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
            ])
            .heartbeat(Duration::from_millis(100))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mesh: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut handle = match p2p::spawn(
            config,
            Keypair::generate_ed25519(),
            Arc::new(SystemClock),
            Vec::new(),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("mesh: {e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            match handle.events.recv().await {
                Some(P2pEvent::Listening(_)) => break,
                Some(_) => {}
                None => return ExitCode::FAILURE,
            }
        }
        println!("peer {}", handle.peer_id());
        for a in addrs {
            let _ = handle.dial(a).await;
        }
        // Give the mesh a moment to form before flooding.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = (rate / 100).max(1);
        let mut sent = 0u64;
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        while (Instant::now() < end || !released.load(Ordering::Relaxed))
            && start.elapsed() < MAX_FLOOD
        {
            tick.tick().await;
            for _ in 0..per_tick {
                let mut msg = vec![0u8; MESSAGE_LEN];
                rng.fill_bytes(&mut msg);
                if handle.publish_unchecked(msg).await.is_err() {
                    break;
                }
                sent += 1;
            }
            while handle.events.try_recv().is_ok() {}
        }
        println!("sent {sent}");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}
