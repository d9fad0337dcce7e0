//! Mesh benchmark: N nodes (100 by default, 1,000 with `--nodes 1000`) in
//! one process on loopback TCP. For a series of reports published from
//! random nodes it measures report → delivered latency at every node
//! (p50/p99) and the bytes each node receives per announcement (transport
//! level: gossip id messages, fetches, catch-up digests, keep-alives)
//! divided by the announcement's size, the gossip amplification — printed
//! raw (every byte received while the report spread) and net of the quiet
//! mesh's own traffic (its bytes per node per second, measured over
//! `--quiet S` seconds, default 3, just before each report, times the
//! report's interval, subtracted). `--warmup W` reports (default 1) go
//! first and are printed apart: the first report after the mesh formed
//! opens each connection's fetch stream; the latency line also gives p99
//! with them. Then (`--offline-pct P`, default 10) P % of the nodes go
//! offline, more reports are published, and the offline nodes come back
//! (with what they held before) and catch up: time from their restart to
//! holding every report they missed, and the bytes they received per
//! missed byte. Run: `cargo bench -p meshtrace-tests --bench mesh`
//! (`-- --nodes N --reports R --tokens T --offline-pct P --settle S --quiet S
//! --warmup W --heartbeat-ms H --sync-s C --max-connections M --discovery 0|1
//! --dials D`
//! to change it; `--tokens` sets the real tokens per report, default 200;
//! the node's own timers by default: heartbeat 1,000 ms, catch-up every
//! 300 s). At 1,000 nodes: `-- --nodes 1000 --max-connections 12
//! --discovery 0` (a process may hold 20,000 files here: each connection
//! holds one at each end).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use meshtrace_node::p2p::P2pEvent;
use meshtrace_protocol::AnnouncementId;
use meshtrace_tests::mesh::{TestNet, TestNode, WAIT, start, wait_for_mesh};
use rand_core::Rng;
use tokio::sync::mpsc;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// (node index, announcement id, when it arrived)
type Arrival = (usize, AnnouncementId, Instant);

/// Moves a node's event stream into a task that reports every
/// announcement it delivers.
fn listen(i: usize, node: &mut TestNode, tx: &mpsc::Sender<Arrival>) {
    let (_, placeholder) = mpsc::channel(1);
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

async fn bytes_in(nodes: &[Option<TestNode>], which: &[usize]) -> Vec<u64> {
    let mut v = Vec::new();
    for &i in which {
        let node = nodes[i].as_ref().expect("online node");
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
}

/// Bytes received by all nodes between two [`bytes_in`] readings.
fn received(after: &[u64], before: &[u64]) -> u64 {
    after.iter().zip(before).map(|(a, b)| a - b).sum()
}

/// Waits until every `(node, id)` in `want` arrived; each node with its
/// latency from `since[id]`.
async fn arrivals(
    rx: &mut mpsc::Receiver<Arrival>,
    mut want: HashMap<(usize, AnnouncementId), Instant>,
    what: &str,
) -> Vec<(usize, Duration)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT * 2;
    while !want.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((i, id, at))) => {
                if let Some(since) = want.remove(&(i, id)) {
                    out.push((i, at.duration_since(since)));
                }
            }
            _ => panic!(
                "{what}: {} deliveries missing after {:?}",
                want.len(),
                WAIT * 2
            ),
        }
    }
    out
}

/// Hops from `origin` to every node over the bench's dials (either way);
/// `usize::MAX` for a node they do not reach.
fn hops_from(dialed: &[Vec<usize>], origin: usize) -> Vec<usize> {
    let n = dialed.len();
    let mut adj = vec![Vec::new(); n];
    for (i, ts) in dialed.iter().enumerate() {
        for &t in ts {
            adj[i].push(t);
            adj[t].push(i);
        }
    }
    let mut hops = vec![usize::MAX; n];
    hops[origin] = 0;
    let mut queue = std::collections::VecDeque::from([origin]);
    while let Some(i) = queue.pop_front() {
        for &j in &adj[i] {
            if hops[j] == usize::MAX {
                hops[j] = hops[i] + 1;
                queue.push_back(j);
            }
        }
    }
    hops
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --benches` runs benches with `--test`: keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    let n = arg("--nodes", if quick { 10 } else { 100 });
    let reports = arg("--reports", if quick { 1 } else { 10 });
    let offline_pct = arg("--offline-pct", if quick { 0 } else { 10 });
    let began = Instant::now();
    let mut net = TestNet::new(100);
    let mut nodes: Vec<Option<TestNode>> = Vec::new();
    let mut addrs: Vec<meshtrace_node::p2p::Multiaddr> = Vec::new();
    // The node's own timers (gossipsub heartbeat 1 s, catch-up every
    // 300 s) unless told otherwise: the harness's test-speed timers (100 ms,
    // 2 s) multiply the background traffic and make catch-up rounds fetch
    // what gossip is still delivering. `--test` keeps the harness's.
    let heartbeat_ms = arg("--heartbeat-ms", if quick { 100 } else { 1000 }) as u64;
    let sync_s = arg("--sync-s", if quick { 2 } else { 300 }) as u64;
    // `--max-connections C`: every node's connection cap (the PC preset's
    // 1,024 by default). All nodes share 127.0.0.1, so the per-IP cap is
    // lifted. At 1,000 nodes in one process the cap keeps the sockets under
    // the process's file limit (each connection holds one at each end).
    let limits = {
        let mut l = meshtrace_node::p2p::Limits::PC;
        l.max_connections = arg("--max-connections", l.max_connections as usize) as u32;
        l.max_connections_per_ip = meshtrace_node::p2p::MAX_LIMIT;
        l.max_pending_incoming = l.max_pending_incoming.max(l.max_connections);
        l
    };
    // `--discovery 0`: no Kademlia, the mesh is the bench's dials alone. At
    // 1,000 nodes under a connection cap (the process's file limit), the
    // discovery queries' connections fill the early nodes' caps and the
    // late nodes' dials are refused.
    let discovery = arg("--discovery", 1) != 0;
    let config = |net: &TestNet| {
        net.builder(false)
            .limits(limits)
            .stem_hops(arg("--stem-hops", 2) as u32)
            .heartbeat(Duration::from_millis(heartbeat_ms))
            .sync_interval(Duration::from_secs(sync_s))
            .discovery(discovery)
            .build()
            .expect("valid mesh settings")
    };
    // Each node dials up to `dials` earlier nodes, chosen at random among
    // those that have taken fewer than half their connection cap of the
    // bench's dials (`took`): a node at its cap refuses connections, and a
    // late node whose picks were all full would start with too few peers.
    // The other half of the cap is left for the nodes' own discovery.
    // `--dials D`: how many earlier nodes each node dials (default 3).
    let dials = arg("--dials", 3).max(1);
    let max_took = (limits.max_connections as usize / 2).max(dials);
    let mut took = vec![0usize; n];
    // Whom each node dialled.
    let mut dialed: Vec<Vec<usize>> = Vec::with_capacity(n);
    let dial_some = |net: &mut TestNet, took: &mut [usize], i: usize| {
        let mut dialed = Vec::new();
        let mut tries = 0;
        while i > 0 && dialed.len() < i.min(dials) && tries < 100 {
            tries += 1;
            let t = (net.rng.next_u32() as usize) % i;
            if took[t] < max_took && !dialed.contains(&t) {
                dialed.push(t);
            }
        }
        // Few nodes left with room: take them in order.
        for (t, &count) in took.iter().enumerate().take(i) {
            if dialed.len() >= i.min(dials) {
                break;
            }
            if count < max_took && !dialed.contains(&t) {
                dialed.push(t);
            }
        }
        for &t in &dialed {
            took[t] += 1;
        }
        dialed
    };
    for i in 0..n {
        let node = start(&net, config(&net), Vec::new()).await;
        let picked = dial_some(&mut net, &mut took, i);
        for &t in &picked {
            node.handle.dial(addrs[t].clone()).await.expect("dial");
        }
        dialed.push(picked);
        addrs.push(node.addr.clone());
        nodes.push(Some(node));
        if (i + 1) % 100 == 0 && i + 1 < n {
            println!("{} nodes started after {:?}", i + 1, began.elapsed());
        }
    }
    let addrs = addrs;
    {
        let refs: Vec<&TestNode> = nodes.iter().flatten().collect();
        wait_for_mesh(&refs, 2).await;
    }
    // Let the heartbeats graft the mesh (`--settle S`, seconds).
    tokio::time::sleep(Duration::from_secs(arg("--settle", 5) as u64)).await;
    println!(
        "{n} nodes up and meshed in {:?} (heartbeat {heartbeat_ms} ms, catch-up every {sync_s} s)",
        began.elapsed()
    );

    let (tx, mut rx) = mpsc::channel(4 * n);
    for (i, node) in nodes.iter_mut().enumerate() {
        listen(i, node.as_mut().expect("online"), &tx);
    }
    let tokens = arg("--tokens", 200);
    let size = {
        let toks = net.tokens(tokens);
        net.report(&toks)[0].len()
    };
    let all: Vec<usize> = (0..n).collect();
    // The quiet mesh's own traffic before each report.
    let quiet = Duration::from_secs(arg("--quiet", if quick { 1 } else { 3 }) as u64);
    let mut latencies = Vec::new();
    let mut warm_latencies = Vec::new();
    let mut ratios = Vec::new();
    let mut net_ratios = Vec::new();
    let mut held: Vec<Vec<u8>> = Vec::new();
    let warmup = arg("--warmup", 1);
    // Delivery latencies by hops from the origin over the bench's dials.
    let mut by_hops: std::collections::BTreeMap<usize, Vec<Duration>> = Default::default();
    for r in 0..warmup + reports {
        let quiet_rate = {
            let before = bytes_in(&nodes, &all).await;
            let t0 = Instant::now();
            tokio::time::sleep(quiet).await;
            let after = bytes_in(&nodes, &all).await;
            let secs = t0.elapsed().as_secs_f64();
            received(&after, &before) as f64 / n as f64 / secs
        };
        let before = bytes_in(&nodes, &all).await;
        let t0 = Instant::now();
        let toks = net.tokens(tokens);
        let chunk = net.report(&toks).remove(0);
        held.push(chunk.clone());
        let origin = (net.rng.next_u32() as usize) % n;
        let sent = Instant::now();
        let id = nodes[origin]
            .as_ref()
            .expect("online")
            .handle
            .publish(chunk)
            .await
            .expect("mesh")
            .expect("valid");
        let want = all
            .iter()
            .filter(|i| **i != origin)
            .map(|i| ((*i, id), sent))
            .collect();
        let mine = arrivals(&mut rx, want, &format!("report {r}")).await;
        let hops = hops_from(&dialed, origin);
        for &(i, d) in &mine {
            by_hops.entry(hops[i]).or_default().push(d);
        }
        let mine: Vec<Duration> = mine.into_iter().map(|(_, d)| d).collect();
        let slowest = mine.iter().max().copied().unwrap_or_default();
        // Let gossip settle (IHAVE/IWANT, duplicates) before counting bytes.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = bytes_in(&nodes, &all).await;
        let secs = t0.elapsed().as_secs_f64();
        let total = received(&after, &before);
        let raw = total as f64 / n as f64 / size as f64;
        let net_ratio = (total as f64 / n as f64 - quiet_rate * secs) / size as f64;
        if r < warmup {
            println!(
                "warm-up report {r} (not counted): slowest {slowest:?}, amplification raw {raw:.2}, \
                 net {net_ratio:.2} (quiet mesh {quiet_rate:.0} bytes per node per second)"
            );
            warm_latencies.extend(mine);
            continue;
        }
        println!(
            "report {}: slowest {slowest:?}, amplification raw {raw:.2}, net {net_ratio:.2} \
             (quiet mesh {quiet_rate:.0} bytes per node per second)",
            r - warmup
        );
        latencies.extend(mine);
        ratios.push(raw);
        net_ratios.push(net_ratio);
    }
    let hops: Vec<String> = by_hops
        .iter_mut()
        .map(|(h, v)| {
            v.sort();
            format!("{h}: p50 {:?} ({})", pct(v, 0.5), v.len())
        })
        .collect();
    println!("delivered by hops from the origin: {}", hops.join(", "));
    latencies.sort();
    let mut with_warmup: Vec<Duration> = latencies.iter().chain(&warm_latencies).copied().collect();
    with_warmup.sort();
    ratios.sort_by(f64::total_cmp);
    net_ratios.sort_by(f64::total_cmp);
    println!(
        "mesh bench: {n} nodes, {reports} reports of {size} bytes: delivered p50 {:?}, p99 {:?}, max {:?} \
         (with the {warmup} warm-up reports: p99 {:?}, max {:?}); \
         bytes received per node per announcement / announcement size: raw median {:.2} (min {:.2}, max {:.2}), \
         net of the quiet mesh median {:.2} (min {:.2}, max {:.2})",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        pct(&with_warmup, 0.99),
        with_warmup.last().copied().unwrap_or_default(),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        net_ratios[net_ratios.len() / 2],
        net_ratios[0],
        net_ratios[net_ratios.len() - 1],
    );

    let k = n * offline_pct / 100;
    if k > 0 && n - k >= 4 {
        // The last k nodes go offline (none of them is needed to reach
        // the others: every node dialled earlier ones).
        let gone: Vec<usize> = (n - k..n).collect();
        for &i in &gone {
            if let Some(node) = nodes[i].take() {
                node.handle.shutdown().await;
            }
            for &t in &dialed[i] {
                took[t] -= 1;
            }
        }
        let online: Vec<usize> = (0..n - k).collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut missed = Vec::new();
        let mut online_lat = Vec::new();
        for r in 0..reports {
            let toks = net.tokens(tokens);
            let chunk = net.report(&toks).remove(0);
            let origin = online[(net.rng.next_u32() as usize) % online.len()];
            let sent = Instant::now();
            let id = nodes[origin]
                .as_ref()
                .expect("online")
                .handle
                .publish(chunk)
                .await
                .expect("mesh")
                .expect("valid");
            missed.push(id);
            let want = online
                .iter()
                .filter(|i| **i != origin)
                .map(|i| ((*i, id), sent))
                .collect();
            online_lat.extend(
                arrivals(&mut rx, want, &format!("offline-phase report {r}"))
                    .await
                    .into_iter()
                    .map(|(_, d)| d),
            );
        }
        online_lat.sort();
        // Back online, with what they held before going away.
        let back = Instant::now();
        for &i in &gone {
            let mut node = start(&net, config(&net), held.clone()).await;
            listen(i, &mut node, &tx);
            let picked = dial_some(&mut net, &mut took, n - k);
            for &t in &picked {
                node.handle.dial(addrs[t].clone()).await.expect("dial");
            }
            dialed[i] = picked;
            nodes[i] = Some(node);
        }
        let want = gone
            .iter()
            .flat_map(|i| missed.iter().map(move |id| ((*i, *id), back)))
            .collect();
        let mut caught: Vec<Duration> = arrivals(&mut rx, want, "catch-up")
            .await
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        caught.sort();
        let caught_in = caught.last().copied().unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got = bytes_in(&nodes, &gone).await;
        let per_node = got.iter().sum::<u64>() as f64 / k as f64;
        println!(
            "offline phase: {k} of {n} nodes ({offline_pct} %) offline for {reports} reports: \
             online nodes delivered p50 {:?}, p99 {:?}; the {k} came back and held all \
             {reports} missed reports after p50 {:?}, p99 {:?}, max {caught_in:?} (from restart: \
             dial, identify, digests, ids, fetch); bytes received per returning node / missed bytes: {:.2}",
            pct(&online_lat, 0.5),
            pct(&online_lat, 0.99),
            pct(&caught, 0.5),
            pct(&caught, 0.99),
            per_node / (reports * size) as f64,
        );
    }
    println!("mesh bench ran in {:?}", began.elapsed());
    for node in nodes.into_iter().flatten() {
        node.handle.shutdown().await;
    }
}
