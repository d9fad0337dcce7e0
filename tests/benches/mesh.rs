//! Mesh benchmark: 100 nodes in one process on loopback TCP. For a series of
//! reports published from random nodes it measures report → delivered
//! latency at every node (p50/p99) and the bytes each node receives per
//! announcement (transport level, everything included) divided by the
//! announcement's size. Run: `cargo bench -p meshtrace-tests --bench mesh`
//! (`-- --nodes N --reports R` to change the size).

use std::time::{Duration, Instant};

use meshtrace_node::p2p::P2pEvent;
use meshtrace_tests::mesh::{TestNet, TestNode, WAIT, start, wait_for_mesh};
use rand_core::Rng;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --benches` runs benches with `--test`: keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    let n = arg("--nodes", if quick { 10 } else { 100 });
    let reports = arg("--reports", if quick { 1 } else { 10 });
    let mut net = TestNet::new(100);
    let mut nodes: Vec<TestNode> = Vec::new();
    let t_start = Instant::now();
    for i in 0..n {
        let cfg = net
            .builder(false)
            .stem_hops(arg("--stem-hops", 2) as u32)
            .build()
            .expect("valid mesh settings");
        let node = start(&net, cfg, Vec::new()).await;
        let mut dialed = Vec::new();
        while i > 0 && dialed.len() < i.min(3) {
            let t = (net.rng.next_u32() as usize) % i;
            if !dialed.contains(&t) {
                dialed.push(t);
                node.handle.dial(nodes[t].addr.clone()).await.expect("dial");
            }
        }
        nodes.push(node);
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_for_mesh(&refs, 2).await;
    // Let the heartbeats graft the mesh (`--settle S`, seconds).
    tokio::time::sleep(Duration::from_secs(arg("--settle", 5) as u64)).await;
    println!("{n} nodes up and meshed in {:?}", t_start.elapsed());

    // Listen on every node concurrently.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4 * n);
    for (i, node) in nodes.iter_mut().enumerate() {
        let (_, placeholder) = tokio::sync::mpsc::channel(1);
        let mut events = std::mem::replace(&mut node.handle.events, placeholder);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let P2pEvent::Announcement { verified, .. } = ev {
                    let _ = tx.send((i, verified.id(), Instant::now())).await;
                }
            }
        });
    }
    let mut latencies = Vec::new();
    let mut ratios = Vec::new();
    for r in 0..reports {
        let before: Vec<u64> = {
            let mut v = Vec::new();
            for node in &nodes {
                v.push(
                    node.handle
                        .status()
                        .await
                        .expect("status")
                        .counters
                        .bytes_in,
                );
            }
            v
        };
        let toks = net.tokens(200);
        let chunk = net.report(&toks).remove(0);
        let size = chunk.len();
        let origin = (net.rng.next_u32() as usize) % n;
        let sent = Instant::now();
        let id = nodes[origin]
            .handle
            .publish(chunk)
            .await
            .expect("mesh")
            .expect("valid");
        let mut got = 0;
        let deadline = Instant::now() + WAIT;
        while got < n - 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((i, aid, at))) if aid == id && i != origin => {
                    latencies.push(at.duration_since(sent));
                    got += 1;
                }
                Ok(Some(_)) => {}
                _ => panic!("report {r}: {got} of {} nodes within {WAIT:?}", n - 1),
            }
        }
        let mine = &latencies[latencies.len() - (n - 1)..];
        let slowest = mine.iter().max().copied().unwrap_or_default();
        let slow = mine
            .iter()
            .filter(|d| **d > Duration::from_millis(200))
            .count();
        println!("report {r}: slowest {slowest:?}, {slow} nodes over 200 ms");
        // Let gossip settle (IHAVE/IWANT, duplicates) before counting bytes.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut total = 0u64;
        for (node, b) in nodes.iter().zip(&before) {
            total += node
                .handle
                .status()
                .await
                .expect("status")
                .counters
                .bytes_in
                - b;
        }
        let per_node = total as f64 / n as f64;
        ratios.push(per_node / size as f64);
    }
    // The first report meets cold connections (new gossip streams, lazy
    // initialisation); report it apart from the steady state.
    let mut steady: Vec<Duration> = latencies[(n - 1).min(latencies.len())..].to_vec();
    steady.sort();
    if !steady.is_empty() {
        println!(
            "steady state (reports 2..{reports}): delivered p50 {:?}, p99 {:?}",
            pct(&steady, 0.5),
            pct(&steady, 0.99)
        );
    }
    latencies.sort();
    ratios.sort_by(f64::total_cmp);
    println!(
        "mesh bench: {n} nodes, {reports} reports of {} bytes: delivered p50 {:?}, p99 {:?}, max {:?}; \
         bytes received per node per announcement / announcement size: median {:.2} (min {:.2}, max {:.2})",
        {
            let mut t = TestNet::new(1);
            let k = t.tokens(200);
            t.report(&k)[0].len()
        },
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies.last().expect("deliveries"),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
    for node in nodes {
        node.handle.shutdown().await;
    }
}
