//! A small deployment of real `meshtrace run` daemons on one machine: an
//! issuer key, nodes on a private udp-sim air (their own UDP port) and one
//! shared simulated clock (`--time-scale` with a common `--time-origin`),
//! meshed over loopback TCP — the set-up of the end-to-end daemon tests,
//! for tests that need it beside other things (the web pages).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::cli::{Daemon, free_udp_port, json_ok, meshtrace, now_millis, stderr, stdout};

/// Simulated seconds per real second of a [`Town`]'s daemons.
pub const TIME_SCALE: u64 = 60;

/// A deployment in a temporary directory, removed when dropped.
#[derive(Debug)]
pub struct Town {
    _tmp: tempfile::TempDir,
    /// Its directory: the issuer key and one data directory per node.
    pub root: PathBuf,
    /// The network id every node shares.
    pub network: String,
    /// The issuer's public key (64 hex digits), trusted by every node.
    pub issuer_pub: String,
    port: String,
    origin: String,
}

impl Town {
    /// A new deployment on network `network`, with a fresh issuer key
    /// (`ROOT/issuer.key`).
    pub fn new(network: &str) -> Town {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let root = tmp.path().to_owned();
        let key = root.join("issuer.key");
        let o = meshtrace(&["issuer", "keygen", "--out", &key.display().to_string()]);
        assert!(o.status.success(), "issuer keygen: {}", stderr(&o));
        Town {
            _tmp: tmp,
            root,
            network: network.to_owned(),
            issuer_pub: stdout(&o).trim().to_owned(),
            port: free_udp_port().to_string(),
            origin: now_millis().to_string(),
        }
    }

    /// The issuer key file.
    pub fn issuer_key(&self) -> PathBuf {
        self.root.join("issuer.key")
    }

    /// The data directory of node `name`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `meshtrace init` of node `name`, trusting the issuer, on the udp-sim
    /// radio at (x, 0), with `extra` arguments; returns its `--json` answer.
    pub fn init(&self, name: &str, x: f64, extra: &[&str]) -> serde_json::Value {
        let dir = self.dir(name).display().to_string();
        let trust = format!("clinic={}", self.issuer_pub);
        let pos = format!("{x},0");
        let mut args = vec![
            "--data-dir",
            &dir,
            "init",
            "--network",
            &self.network,
            "--trust-issuer",
            &trust,
            "--radio",
            "udp-sim",
            "--position",
            &pos,
            "--json",
        ];
        args.extend_from_slice(extra);
        json_ok(&meshtrace(&args))
    }

    /// The `run` arguments that put a node on this town's air and clock,
    /// listening on a loopback TCP port, followed by `extra`.
    pub fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
            "--udp-port",
            &self.port,
            "--time-scale",
            "60",
            "--time-origin",
            &self.origin,
        ];
        args.extend_from_slice(extra);
        args
    }

    /// Starts node `name` (`meshtrace run` with [`Town::run_args`]).
    pub fn start(&self, name: &str, extra: &[&str]) -> Daemon {
        Daemon::start(&self.dir(name), &self.run_args(extra))
    }

    /// Simulated time now (seconds), as the daemons compute it.
    pub fn sim_now(&self) -> u64 {
        let origin: u64 = self.origin.parse().expect("a time origin");
        (origin + (now_millis() - origin) * TIME_SCALE) / 1000
    }

    /// `meshtrace issuer certify REQUEST` with the town's key and network,
    /// for a window from yesterday (real days; see the end-to-end tests on
    /// why that covers the simulated contacts), with `extra` arguments.
    pub fn certify(&self, request: &str, extra: &[&str]) -> Output {
        let key = self.issuer_key().display().to_string();
        let yesterday = meshtrace_node::protocol::UnixTime(now_millis() / 1000)
            .day()
            .minus(1)
            .to_string();
        let mut args = vec![
            "issuer",
            "certify",
            request,
            "--key",
            &key,
            "--network",
            &self.network,
            "--window-start",
            &yesterday,
        ];
        args.extend_from_slice(extra);
        meshtrace(&args)
    }
}

/// The path as a `String` (for argument lists).
pub fn s(p: &Path) -> String {
    p.display().to_string()
}
