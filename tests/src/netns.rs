//! A test network of Linux network namespaces: a "public" segment, home
//! LANs behind NAT routers and a carrier-grade NAT segment, built with `ip`
//! (namespaces, veth pairs, bridges) and `nft` (masquerade), and removed
//! again when the [`Lab`] is dropped (also when the test fails).
//!
//! ```text
//!                       public segment 11.11.0.0/24 (bridge in ns "inet")
//!     ┌──────────────┬───────────┴──────┬──────────────────┬─────────────┐
//!  public hosts   nat1 .21            nat2 .22          cgnat .23
//!  .10, .11 …     port-preserving     symmetric         port-preserving
//!                 masquerade          (fully random)    masquerade (EIM)
//!                 192.168.1.0/24      192.168.2.0/24    100.64.0.0/24
//!                 hosts .10 …         hosts .10 …       phones .10 …
//! ```
//!
//! Each router drops unsolicited packets from the public side (no TCP
//! reset), as home routers and carrier NATs do.
//!
//! The public addresses come from a globally routed range on purpose:
//! AutoNAT ignores private ranges. They exist only inside the namespaces,
//! which have no link to the host's own network, so nothing is ever sent
//! to the real owners of those addresses.
//!
//! Every namespace name starts with `mt<pid>x<n>-`, so that parallel test
//! binaries never collide, and a later run removes what a killed run left
//! behind (namespaces of processes that no longer exist).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The public segment's prefix (a /24).
pub const PUBLIC_NET: &str = "11.11.0";

/// Where a host sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Directly on the public segment (a VPS, an office PC with a public
    /// address).
    Public,
    /// Home LAN 1, behind a port-preserving masquerade: endpoint-independent
    /// mapping (a connection keeps its source port), address- and
    /// port-dependent filtering (Linux conntrack): a "port-restricted cone".
    Lan1,
    /// Home LAN 2, behind a symmetric NAT: every connection gets a random
    /// source port (`masquerade random,fully-random`).
    Lan2,
    /// A carrier-grade NAT for phones: port-preserving masquerade, i.e.
    /// endpoint-independent mapping as RFC 6888 asks of a CGN.
    Cgnat,
}

impl Segment {
    /// The segment's switch namespace suffix, its /24 prefix, its router's
    /// address on it (none for the public segment) and the router's name.
    fn layout(self) -> (&'static str, &'static str, Option<&'static str>) {
        match self {
            Segment::Public => ("inet", PUBLIC_NET, None),
            Segment::Lan1 => ("lan1", "192.168.1", Some("nat1")),
            Segment::Lan2 => ("lan2", "192.168.2", Some("nat2")),
            Segment::Cgnat => ("cg", "100.64.0", Some("cgnat")),
        }
    }
}

/// The namespaces of one test, removed on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    next_host: [u8; 4],
}

/// Runs a command, returning its output (never panics).
fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program).args(args).output()
}

/// Runs a command and panics with its stderr when it fails.
fn must(program: &str, args: &[&str]) {
    let o = run(program, args).unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        o.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Removes namespaces of earlier runs whose process is gone.
fn remove_stale() {
    let Ok(o) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("mt") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// Why namespaces cannot be made here, or `None` when they can.
fn unavailable() -> Option<String> {
    if meshtrace_node::perms::current_uid() != Some(0) {
        return Some("not running as root".into());
    }
    for tool in ["ip", "nft"] {
        if run(tool, &["-V"]).is_err() {
            return Some(format!("`{tool}` is not installed (iproute2, nftables)"));
        }
    }
    None
}

impl Lab {
    /// Builds the public segment and the three NAT routers with their
    /// segments. `None` (after printing why) where namespaces cannot be
    /// made; with `CI=true` that is a failure instead, since CI can make
    /// them.
    pub fn new() -> Option<Lab> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        if let Some(why) = unavailable() {
            let msg = format!("network namespace tests skipped: {why}");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{msg} (CI=true: namespaces must work in CI)"
            );
            eprintln!("{msg}");
            return None;
        }
        remove_stale();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut lab = Lab {
            prefix: format!("mt{}x{n}-", std::process::id()),
            namespaces: Vec::new(),
            next_host: [10; 4],
        };
        for seg in [
            Segment::Public,
            Segment::Lan1,
            Segment::Lan2,
            Segment::Cgnat,
        ] {
            let (switch, _, _) = seg.layout();
            lab.add_ns(switch);
            let sw = lab.ns(switch);
            must("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"]);
            must("ip", &["-n", &sw, "link", "set", "br0", "up"]);
        }
        for (seg, wan, symmetric) in [
            (Segment::Lan1, 21, false),
            (Segment::Lan2, 22, true),
            (Segment::Cgnat, 23, false),
        ] {
            lab.router(seg, wan, symmetric);
        }
        Some(lab)
    }

    /// The full name of namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn add_ns(&mut self, name: &str) {
        let ns = self.ns(name);
        must("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// A veth from namespace `ns` (interface `ifname`, address `cidr`) to
    /// the bridge of switch namespace `switch`.
    fn plug(&self, ns: &str, ifname: &str, cidr: &str, switch: &str, port: &str) {
        let sw = self.ns(switch);
        must(
            "ip",
            &[
                "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", port, "netns",
                &sw,
            ],
        );
        must("ip", &["-n", &sw, "link", "set", port, "master", "br0"]);
        must("ip", &["-n", &sw, "link", "set", port, "up"]);
        must("ip", &["-n", ns, "addr", "add", cidr, "dev", ifname]);
        must("ip", &["-n", ns, "link", "set", ifname, "up"]);
    }

    fn router(&mut self, seg: Segment, wan_host: u8, symmetric: bool) {
        let (switch, lan_net, Some(name)) = seg.layout() else {
            unreachable!("the public segment has no router")
        };
        self.add_ns(name);
        let ns = self.ns(name);
        self.plug(
            &ns,
            "wan",
            &format!("{PUBLIC_NET}.{wan_host}/24"),
            "inet",
            &format!("w-{name}"),
        );
        self.plug(
            &ns,
            "lan",
            &format!("{lan_net}.1/24"),
            switch,
            &format!("r-{name}"),
        );
        must(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        );
        let flags = if symmetric {
            " random,fully-random"
        } else {
            ""
        };
        // Unsolicited packets from the outside are dropped silently, as
        // home routers and carrier NATs do (no TCP reset that would kill a
        // hole punch whose first SYN arrives before the peer's own SYN
        // opened the mapping).
        let rules = format!(
            "table ip nat {{\n chain post {{\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"wan\" masquerade{flags}\n }}\n}}\n\
             table ip filter {{\n chain input {{\n  type filter hook input priority filter; policy accept;\n  iifname \"wan\" ct state new drop\n }}\n\
             chain forward {{\n  type filter hook forward priority filter; policy accept;\n  iifname \"wan\" ct state new drop\n }}\n}}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(rules.as_bytes()).expect("nft rules");
        }
        let o = child.wait_with_output().expect("nft");
        assert!(
            o.status.success(),
            "nft in {ns}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// A new host namespace `name` on `seg`; returns its namespace and IP
    /// address. Hosts behind a router route everything through it; public
    /// hosts reach only the public segment.
    pub fn host(&mut self, name: &str, seg: Segment) -> Host {
        let (switch, net, router) = seg.layout();
        let i = seg as usize;
        let ip = format!("{net}.{}", self.next_host[i]);
        self.next_host[i] += 1;
        self.add_ns(name);
        let ns = self.ns(name);
        self.plug(
            &ns,
            "eth0",
            &format!("{ip}/24"),
            switch,
            &format!("h-{name}"),
        );
        if router.is_some() {
            must(
                "ip",
                &[
                    "-n",
                    &ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("{net}.1"),
                ],
            );
        }
        Host { ns, ip }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace removes its veths, bridges and rules.
        for ns in self.namespaces.iter().rev() {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// A host of a [`Lab`].
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its IPv4 address.
    pub ip: String,
}

impl Host {
    /// Its TCP listen multiaddr on `port`.
    pub fn tcp(&self, port: u16) -> String {
        format!("/ip4/{}/tcp/{port}", self.ip)
    }

    /// Its QUIC listen multiaddr on `port`.
    pub fn quic(&self, port: u16) -> String {
        format!("/ip4/{}/udp/{port}/quic-v1", self.ip)
    }

    /// Runs `program ARGS` inside the host's namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }
}
