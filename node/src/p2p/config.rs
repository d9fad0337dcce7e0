//! Mesh settings: [`P2pConfig`], built and checked by [`P2pConfigBuilder`]
//! (like gossipsub's `ConfigBuilder`).

use std::time::Duration;

use libp2p::Multiaddr;

use super::P2pError;
use super::limits::Limits;
use crate::config::MAX_STEM_HOPS;
use crate::trust::TrustedIssuers;

/// Default stem hops before an own report is gossiped.
pub(crate) const DEFAULT_STEM_HOPS: u32 = 2;
/// Default stem fail-safe timeout.
pub(crate) const DEFAULT_STEM_TIMEOUT: Duration = Duration::from_secs(10);
/// Default catch-up interval.
pub(crate) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(300);
/// Default gossipsub heartbeat.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default idle-connection timeout.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Mesh settings, checked when built ([`P2pConfig::builder`]).
#[derive(Clone, Debug)]
pub struct P2pConfig {
    network_id: String,
    trusted_issuers: TrustedIssuers,
    listen: Vec<Multiaddr>,
    bootstrap: Vec<Multiaddr>,
    mdns: bool,
    discovery: bool,
    light: bool,
    relay_server: bool,
    stem_hops: u32,
    stem_timeout: Duration,
    sync_interval: Duration,
    heartbeat: Duration,
    idle_timeout: Duration,
    limits: Limits,
}

impl P2pConfig {
    /// A builder with the defaults for `network_id`.
    pub fn builder(network_id: &str) -> P2pConfigBuilder {
        P2pConfigBuilder {
            config: P2pConfig {
                network_id: network_id.to_owned(),
                trusted_issuers: TrustedIssuers::default(),
                listen: Vec::new(),
                bootstrap: Vec::new(),
                mdns: false,
                discovery: true,
                light: false,
                relay_server: false,
                stem_hops: DEFAULT_STEM_HOPS,
                stem_timeout: DEFAULT_STEM_TIMEOUT,
                sync_interval: DEFAULT_SYNC_INTERVAL,
                heartbeat: DEFAULT_HEARTBEAT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                limits: Limits::PC,
            },
        }
    }

    /// A builder starting from these settings.
    pub(crate) fn to_builder(&self) -> P2pConfigBuilder {
        P2pConfigBuilder {
            config: self.clone(),
        }
    }

    /// The deployment's network id (topic and protocol names carry it).
    pub(crate) fn network_id(&self) -> &str {
        &self.network_id
    }
    /// The issuers this deployment trusts (a shared handle).
    pub(crate) fn trusted_issuers(&self) -> &TrustedIssuers {
        &self.trusted_issuers
    }
    /// Listen addresses.
    pub(crate) fn listen(&self) -> &[Multiaddr] {
        &self.listen
    }
    /// Peers dialled at start.
    pub(crate) fn bootstrap(&self) -> &[Multiaddr] {
        &self.bootstrap
    }
    /// Whether peers on the LAN are discovered with mDNS.
    pub(crate) fn mdns(&self) -> bool {
        self.mdns
    }
    /// Whether peers are discovered through Kademlia.
    pub(crate) fn discovery(&self) -> bool {
        self.discovery
    }
    /// Light mode (phones): not in the gossip mesh.
    pub fn light(&self) -> bool {
        self.light
    }
    /// Whether this node relays for peers behind NAT.
    pub(crate) fn relay_server(&self) -> bool {
        self.relay_server
    }
    /// Stem hops before an own report is gossiped (0 = publish directly).
    pub(crate) fn stem_hops(&self) -> u32 {
        self.stem_hops
    }
    /// The stem fail-safe timeout.
    pub(crate) fn stem_timeout(&self) -> Duration {
        self.stem_timeout
    }
    /// How often to reconcile with a random peer.
    pub(crate) fn sync_interval(&self) -> Duration {
        self.sync_interval
    }
    /// Gossipsub heartbeat.
    pub(crate) fn heartbeat(&self) -> Duration {
        self.heartbeat
    }
    /// Idle connections are closed after this long.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
    /// Connection and relay limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// Builds a [`P2pConfig`]; [`P2pConfigBuilder::build`] checks it.
#[derive(Clone, Debug)]
pub struct P2pConfigBuilder {
    config: P2pConfig,
}

impl P2pConfigBuilder {
    /// The issuers to trust (a shared handle: later changes reach the mesh).
    pub fn trusted_issuers(&mut self, trusted: TrustedIssuers) -> &mut Self {
        self.config.trusted_issuers = trusted;
        self
    }
    /// Listen addresses (e.g. `/ip4/127.0.0.1/tcp/0`, `/ip4/0.0.0.0/udp/0/quic-v1`).
    pub fn listen(&mut self, addrs: Vec<Multiaddr>) -> &mut Self {
        self.config.listen = addrs;
        self
    }
    /// Peers to dial at start (with `/p2p/<id>` to seed Kademlia).
    pub fn bootstrap(&mut self, addrs: Vec<Multiaddr>) -> &mut Self {
        self.config.bootstrap = addrs;
        self
    }
    /// Discover peers on the LAN with mDNS.
    pub fn mdns(&mut self, on: bool) -> &mut Self {
        self.config.mdns = on;
        self
    }
    /// Discover peers through Kademlia (on by default). Off, a node knows
    /// only its bootstrap peers, its mDNS peers and the peers that dial it:
    /// for a deployment with a fixed topology, or a test that sets one.
    pub fn discovery(&mut self, on: bool) -> &mut Self {
        self.config.discovery = on;
        self
    }
    /// Light mode (phones): not in the gossip mesh; catch-up pulls and stem
    /// pushes through full peers.
    pub fn light(&mut self, on: bool) -> &mut Self {
        self.config.light = on;
        self
    }
    /// Serve as a relay for peers behind NAT.
    pub(crate) fn relay_server(&mut self, on: bool) -> &mut Self {
        self.config.relay_server = on;
        self
    }
    /// Stem hops before an own report is gossiped (0 = publish directly; at
    /// most [`MAX_STEM_HOPS`]).
    pub fn stem_hops(&mut self, hops: u32) -> &mut Self {
        self.config.stem_hops = hops;
        self
    }
    /// A stem relay that has not seen its forwarded report in gossip after
    /// this long publishes it itself (fail-safe).
    pub fn stem_timeout(&mut self, t: Duration) -> &mut Self {
        self.config.stem_timeout = t;
        self
    }
    /// How often to reconcile with a random peer.
    pub fn sync_interval(&mut self, t: Duration) -> &mut Self {
        self.config.sync_interval = t;
        self
    }
    /// Gossipsub heartbeat.
    pub fn heartbeat(&mut self, t: Duration) -> &mut Self {
        self.config.heartbeat = t;
        self
    }
    /// Idle connections are closed after this long.
    pub fn idle_timeout(&mut self, t: Duration) -> &mut Self {
        self.config.idle_timeout = t;
        self
    }
    /// Connection and relay limits [default: [`Limits::PC`]].
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.config.limits = limits;
        self
    }

    /// The current stem timeout (to scale it before setting it again).
    pub fn current_stem_timeout(&self) -> Duration {
        self.config.stem_timeout
    }

    /// Checks the settings: a valid network id, at most [`MAX_STEM_HOPS`]
    /// stem hops, every timer longer than zero, limits within their ranges
    /// ([`Limits::check`]).
    pub fn build(&self) -> Result<P2pConfig, P2pError> {
        let c = &self.config;
        if !meshtrace_protocol::is_valid_network_id(&c.network_id) {
            return Err(P2pError::Config(format!(
                "the network id \"{}\" is not valid (use lower-case letters, digits, dots, dashes and underscores)",
                c.network_id.escape_default()
            )));
        }
        if c.stem_hops > MAX_STEM_HOPS {
            return Err(P2pError::Config(format!(
                "stem hops is {}, at most {MAX_STEM_HOPS} are allowed",
                c.stem_hops
            )));
        }
        for (name, t) in [
            ("stem timeout", c.stem_timeout),
            ("catch-up interval", c.sync_interval),
            ("heartbeat", c.heartbeat),
            ("idle timeout", c.idle_timeout),
        ] {
            if t.is_zero() {
                return Err(P2pError::Config(format!(
                    "the {name} must be longer than zero"
                )));
            }
        }
        c.limits
            .check()
            .map_err(|e| P2pError::Config(format!("limits: {e}")))?;
        Ok(c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_refuses_bad_network_ids_hops_and_zero_timers() {
        assert!(P2pConfig::builder("campus").build().is_ok());
        assert!(P2pConfig::builder("Not Valid!").build().is_err());
        assert!(
            P2pConfig::builder("campus")
                .stem_hops(MAX_STEM_HOPS + 1)
                .build()
                .is_err()
        );
        let e = P2pConfig::builder("campus")
            .stem_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("stem timeout"), "{e}");
        let c = P2pConfig::builder("campus")
            .stem_hops(0)
            .light(true)
            .build()
            .unwrap();
        assert_eq!((c.stem_hops(), c.light()), (0, true));
        assert_eq!(c.to_builder().build().unwrap().network_id(), "campus");
        let e = P2pConfig::builder("campus")
            .limits(Limits {
                max_connections: 0,
                ..Limits::PHONE
            })
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("max_connections"), "{e}");
    }
}
