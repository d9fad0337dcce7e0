//! A restarted daemon serves the announcements it holds (docs/protocol.md
//! §14.4): the real `meshtrace run` receives a report from a peer by
//! catch-up, is stopped and started again, and a fresh peer that connects
//! only to it catches up and holds the report.

use std::collections::HashSet;
use std::time::Instant;

use meshtrace_node::p2p::{Origin, P2pEvent};
use meshtrace_node::protocol::{AnnouncementId, IssuerSecretKey, Zeroizing};
use meshtrace_node::store::read_key_file;
use meshtrace_tests::cli::*;
use meshtrace_tests::mesh::{TestNet, WAIT, start};

/// Blocking work (processes, the control socket) off the async workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn held(d: &Daemon) -> u64 {
    d.json(&["status"])["announcements"]
        .as_u64()
        .expect("announcements in the status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_serves_its_stored_announcements_to_a_fresh_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    // A deployment whose issuer key the daemon trusts.
    let mut net = TestNet::new(77);
    let key_file = root.join("issuer.key");
    let o = meshtrace(&["issuer", "keygen", "--out", key_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let issuer_pub = stdout(&o).trim().to_owned();
    net.issuer = IssuerSecretKey::from_bytes(&Zeroizing::new(
        *read_key_file(&key_file).unwrap().as_bytes(),
    ));
    let dir = root.join("d");
    let dir_s = dir.display().to_string();
    json_ok(&meshtrace(&[
        "--data-dir",
        &dir_s,
        "init",
        "--network",
        &net.network_id,
        "--radio",
        "udp-sim",
        "--trust-issuer",
        &format!("clinic={issuer_pub}"),
        "--json",
    ]));
    let port = free_udp_port().to_string();
    let args = [
        "--no-mdns",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--udp-port",
        port.as_str(),
    ];
    let mut d = blocking(|| Daemon::start(&dir, &args));

    // A peer holding one report; the daemon catches up from it.
    let chunk = {
        let t = net.tokens(3);
        net.report(&t).remove(0)
    };
    let id = AnnouncementId::of(&chunk);
    let p = start(&net, net.config(false), vec![chunk]).await;
    let addr = blocking(|| d.address());
    p.handle.dial(addr.parse().unwrap()).await.unwrap();
    blocking(|| {
        wait_for(CLI_WAIT, "the daemon to store the report", || {
            (held(&d) == 1).then_some(())
        })
    });
    p.handle.shutdown().await;

    // Restart: the report is still stored ...
    blocking(|| {
        assert!(d.stop().success(), "{}", d.log());
        d = Daemon::start(&dir, &args);
        assert_eq!(held(&d), 1);
    });
    // ... and served: a fresh peer connected to the daemon only gets it.
    let mut f = start(&net, net.config(false), Vec::new()).await;
    let addr = blocking(|| d.address());
    f.handle.dial(addr.parse().unwrap()).await.unwrap();
    let limit = meshtrace_tests::deadline(WAIT);
    let deadline = Instant::now() + limit;
    let mut got = HashSet::new();
    while !got.contains(&id) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, f.handle.events.recv()).await {
            Ok(Some(P2pEvent::Announcement {
                verified, origin, ..
            })) => {
                assert!(matches!(origin, Origin::Sync(_)), "{origin:?}");
                got.insert(verified.id());
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the fresh peer's mesh stopped"),
            Err(_) => panic!(
                "the restarted daemon did not serve its stored report within {limit:?}: {}",
                d.log()
            ),
        }
    }
    f.handle.shutdown().await;
    blocking(|| assert!(d.stop().success(), "{}", d.log()));
}
