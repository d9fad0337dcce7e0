//! Child process for `tests/tests/nat.rs`, run inside a network namespace:
//!
//! * `meshtrace-nat-child hostile NETWORK LISTEN` — a bootstrap node that
//!   looks like a full meshtrace node (identify, Kademlia, the gossip topic,
//!   the stem and sync protocols) and drops every report: it forwards no
//!   gossip, accepts stem hops and sits on them, and answers catch-up with
//!   nothing. Prints `peer <id>` once listening; runs until killed.
//! * `meshtrace-nat-child flood ADDR COUNT SECONDS` — opens COUNT
//!   connections to ADDR (a multiaddr with `/p2p/<id>`), each a full TCP +
//!   Noise + Yamux handshake with a fresh identity, holds them for SECONDS
//!   and prints `open <n>`: how many the target still keeps open.
//!
//! Bad arguments: one line on stderr and exit status 2.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt};
use libp2p::core::transport::{DialOpts, PortUse};
use libp2p::core::upgrade::Version;
use libp2p::core::{Endpoint, Transport};
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, identify, noise, tcp, yamux};
use meshtrace_node::p2p::{
    MAX_STEM_MESSAGE, MAX_STEM_RESPONSE, MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE, MESH_VERSION,
    ProstCodec, StemRequest, StemResponse, SyncRequest, SyncResponse, topic_name,
};
use meshtrace_node::protocol::{AnnouncementId, MAX_ANNOUNCEMENT_BYTES};

const USAGE: &str = "usage: meshtrace-nat-child hostile NETWORK LISTEN | flood ADDR COUNT SECONDS";
/// Most connections `flood` opens.
const MAX_FLOOD: usize = 100_000;
/// Handshakes `flood` runs at once.
const FLOOD_CONCURRENCY: usize = 256;
/// Bound on one flood handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
    match &args[..] {
        [cmd, network, listen] if cmd == "hostile" => {
            let Ok(listen) = listen.parse::<Multiaddr>() else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            rt.block_on(hostile(network, listen))
        }
        [cmd, addr, count, seconds] if cmd == "flood" => {
            let parsed = (
                addr.parse::<Multiaddr>().ok(),
                count.parse::<usize>().ok().filter(|c| *c <= MAX_FLOOD),
                seconds.parse::<u64>().ok(),
            );
            let (Some(addr), Some(count), Some(seconds)) = parsed else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            rt.block_on(flood(addr, count, Duration::from_secs(seconds)))
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[derive(NetworkBehaviour)]
struct Hostile {
    identify: identify::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    stem: request_response::Behaviour<ProstCodec<StemRequest, StemResponse>>,
    sync: request_response::Behaviour<ProstCodec<SyncRequest, SyncResponse>>,
}

fn proto(network: &str, what: &str) -> Option<StreamProtocol> {
    StreamProtocol::try_from_owned(format!("/meshtrace/{network}/{what}/{MESH_VERSION}")).ok()
}

fn build_hostile(
    network: &str,
    stem_p: StreamProtocol,
    sync_p: StreamProtocol,
    kad_p: StreamProtocol,
) -> Result<libp2p::Swarm<Hostile>, String> {
    let net = network.to_owned();
    let swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let gcfg = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                // Messages wait for a validation that never comes: none is
                // forwarded.
                .validate_messages()
                .message_id_fn(|m: &gossipsub::Message| {
                    MessageId::from(AnnouncementId::of(&m.data).0.to_vec())
                })
                .max_transmit_size(MAX_ANNOUNCEMENT_BYTES + 1024)
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gcfg)?;
            let mut kad =
                kad::Behaviour::with_config(peer, MemoryStore::new(peer), kad::Config::new(kad_p));
            kad.set_mode(Some(kad::Mode::Server));
            let rr = request_response::Config::default();
            Ok(Hostile {
                identify: identify::Behaviour::new(identify::Config::new(
                    format!("/meshtrace/{net}/{MESH_VERSION}"),
                    key.public(),
                )),
                kad,
                gossipsub,
                stem: request_response::Behaviour::with_codec(
                    ProstCodec::new(MAX_STEM_MESSAGE, MAX_STEM_RESPONSE),
                    [(stem_p, ProtocolSupport::Full)],
                    rr.clone(),
                ),
                sync: request_response::Behaviour::with_codec(
                    ProstCodec::new(MAX_SYNC_REQUEST, MAX_SYNC_RESPONSE),
                    [(sync_p, ProtocolSupport::Full)],
                    rr,
                ),
            })
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    Ok(swarm)
}

async fn hostile(network: &str, listen: Multiaddr) -> ExitCode {
    let (Some(stem_p), Some(sync_p), Some(kad_p)) = (
        proto(network, "stem"),
        proto(network, "sync"),
        proto(network, "kad"),
    ) else {
        eprintln!("bad network id");
        return ExitCode::from(2);
    };
    let topic = IdentTopic::new(topic_name(network));
    let mut swarm = match build_hostile(network, stem_p, sync_p, kad_p) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("swarm: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = swarm.behaviour_mut().gossipsub.subscribe(&topic) {
        eprintln!("subscribe: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = swarm.listen_on(listen) {
        eprintln!("listen: {e}");
        return ExitCode::FAILURE;
    }
    let mut printed = false;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { .. } if !printed => {
                println!("peer {}", swarm.local_peer_id());
                printed = true;
            }
            SwarmEvent::Behaviour(HostileEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for a in info.listen_addrs {
                    swarm.behaviour_mut().kad.add_address(&peer_id, a);
                }
            }
            // Accept the stem hop, then sit on it.
            SwarmEvent::Behaviour(HostileEvent::Stem(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            })) => {
                let _ = swarm
                    .behaviour_mut()
                    .stem
                    .send_response(channel, StemResponse { accepted: true });
            }
            // Catch-up: "I hold nothing".
            SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            })) => {
                let _ = swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, SyncResponse::default());
            }
            _ => {}
        }
    }
}

async fn flood(addr: Multiaddr, count: usize, hold: Duration) -> ExitCode {
    let open = Arc::new(AtomicUsize::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(FLOOD_CONCURRENCY));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (addr, open) = (addr.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            let key = Keypair::generate_ed25519();
            let Ok(noise) = noise::Config::new(&key) else {
                return;
            };
            let mut transport = tcp::tokio::Transport::new(tcp::Config::default())
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .map(|(peer, m), _| (peer, StreamMuxerBox::new(m)))
                .boxed();
            let dial = transport.dial(
                addr,
                DialOpts {
                    role: Endpoint::Dialer,
                    port_use: PortUse::New,
                },
            );
            let Ok(dial) = dial else { return };
            let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, dial).await;
            drop(permit);
            let Ok(Ok((_, mut muxer))) = conn else {
                return;
            };
            open.fetch_add(1, Ordering::SeqCst);
            // Hold the connection: drop the target's streams, until it
            // closes the connection.
            loop {
                let ev = futures::future::poll_fn(|cx| {
                    if let std::task::Poll::Ready(r) = muxer.poll_inbound_unpin(cx) {
                        return std::task::Poll::Ready(r.map(|_| ()));
                    }
                    muxer.poll_unpin(cx).map(|r| r.map(|_| ()))
                })
                .await;
                if ev.is_err() {
                    break;
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    tokio::time::sleep(hold).await;
    println!("open {}", open.load(Ordering::SeqCst));
    for t in tasks {
        t.abort();
    }
    ExitCode::SUCCESS
}
