//! The node's configuration file (TOML): what `meshtrace init` writes and
//! `meshtrace run` reads. Every field has a default except the network;
//! unknown keys are rejected by name, and [`Config::validate`] checks every
//! value with an error that names the setting.
//!
//! Where things live: the config file is `config.toml` in the platform
//! config directory (`~/.config/meshtrace/` on Linux) and the data in the
//! platform data directory (`~/.local/share/meshtrace/`). A node created
//! with `--data-dir D` keeps its config beside its data, in `D/config.toml`,
//! so that several nodes can live on one machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use meshtrace_protocol::{IssuerPublicKey, MAX_NETWORK_ID_LEN, RiskModel, is_valid_network_id};
use serde::{Deserialize, Serialize};

use crate::p2p::Limits;
use crate::radio::model::DutyCycle;
use crate::radio::{Carrier, PC_SCAN, PHONE_LOW_POWER_SCAN, PHONE_SCAN, ScanTiming};

mod fields;
pub use fields::parse_duration;

/// Name of the config file.
pub(crate) const CONFIG_FILE: &str = "config.toml";
/// Largest config file accepted (bytes).
pub(crate) const MAX_CONFIG_LEN: u64 = 256 * 1024;
/// Most trusted issuers.
pub(crate) const MAX_ISSUERS: usize = 64;
/// Longest issuer name (bytes).
pub(crate) const MAX_ISSUER_NAME_LEN: usize = 64;
/// Most listen or bootstrap addresses.
pub(crate) const MAX_ADDRESSES: usize = 32;
/// Most stem hops.
pub const MAX_STEM_HOPS: u32 = 8;
/// Largest RSSI correction accepted (dB, either sign): Google's calibration
/// table corrects per-model differences of up to ~30 dB.
pub const MAX_RX_CORRECTION_DB: i16 = 40;
/// Largest simulated hardware offset (dB, either sign): `udp_tx_offset_db`
/// and `udp_rx_offset_db` (the udp-sim radio's own limit).
pub(crate) const MAX_SIM_OFFSET_DB: f64 = crate::radio::udp::MAX_DEVICE_OFFSET_DB;
/// Largest coordinate of a simulated position (m, either sign).
pub(crate) const MAX_POSITION_M: f64 = 1_000_000.0;
/// Largest minimum-duration setting for reported encounters (s).
pub const MAX_MIN_REPORT_ENCOUNTER_SECONDS: u64 = 3_600;
/// Encounters shorter than this are left out of a report unless configured
/// otherwise.
pub(crate) const DEFAULT_MIN_REPORT_ENCOUNTER: Duration = Duration::from_secs(60);
/// Longest catch-up interval (`p2p.catch_up_seconds`, s): a day.
pub const MAX_CATCH_UP_SECONDS: u64 = 86_400;

/// A configuration problem, in one line naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("config {path}{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `" line N"` when known.
        line: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is out of range or malformed.
    #[error("config {path}: {setting}: {reason}")]
    Invalid {
        /// The file (or `"flags"` for command-line values).
        path: PathBuf,
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Another user could change the file (it is group- or
    /// world-writable, or not the user's): the message names the file and
    /// the fix.
    #[error("{0}")]
    Unsafe(String),
    /// The file cannot be written.
    #[error("cannot write config {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The node configuration. Every value is parsed into its type when the
/// file is read ([`Config::parse`]); [`Config::validate`] checks ranges and
/// the settings that depend on each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The deployment's network id (all nodes and the issuer agree on it).
    pub network: String,
    /// The data directory [default: the directory holding the config file
    /// when it is `DIR/config.toml` written by `init --data-dir`, else the
    /// platform data directory].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// How the store's master key is obtained.
    #[serde(default)]
    pub store: StoreSection,
    /// Issuers this deployment trusts.
    #[serde(default, rename = "issuer", skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerEntry>,
    /// The radio.
    #[serde(default)]
    pub radio: RadioSection,
    /// The mesh.
    #[serde(default)]
    pub p2p: P2pSection,
    /// Reporting rules.
    #[serde(default)]
    pub report: ReportSection,
    /// How exposure risk is estimated.
    #[serde(default)]
    pub risk: RiskSection,
    /// Commands run on events.
    #[serde(default)]
    pub hooks: HooksSection,
    /// The local web page.
    #[serde(default)]
    pub ui: UiSection,
}

/// `[store]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The master key file (owner-only) [default: `DATA_DIR/master.key`];
    /// relative paths are taken from the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Take the master key from a passphrase in this environment variable
    /// (Argon2id) instead of a key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_env: Option<String>,
}

/// `[[issuer]]`: one trusted issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerEntry {
    /// A name for people (shown in exposures).
    pub name: String,
    /// The issuer's public key (written as 64 hex digits, from `meshtrace
    /// issuer keygen`; a weak or invalid key is refused when the file is
    /// read).
    #[serde(with = "fields::issuer_key")]
    pub key: IssuerPublicKey,
}

/// Which radio the node uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RadioKind {
    /// Bluetooth Low Energy through BlueZ (Linux).
    #[default]
    Ble,
    /// The simulated air over loopback UDP multicast (several nodes on one
    /// machine).
    UdpSim,
    /// The host app's Bluetooth (Android, iOS), through the mobile library
    /// (`meshtrace-mobile`): the app advertises what the node asks and
    /// hands it what it hears. `meshtrace run` cannot drive it.
    External,
}

impl std::fmt::Display for RadioKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RadioKind::Ble => "ble",
            RadioKind::UdpSim => "udp-sim",
            RadioKind::External => "external",
        })
    }
}

/// How frames go on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CarrierSetting {
    /// One BLE 5 extended advertisement.
    Extended,
    /// Two legacy advertisements.
    Legacy,
}

impl From<CarrierSetting> for Carrier {
    fn from(c: CarrierSetting) -> Carrier {
        match c {
            CarrierSetting::Extended => Carrier::Extended,
            CarrierSetting::Legacy => Carrier::Legacy,
        }
    }
}

/// `[radio] profile`: how often the radio listens and advertises, traded
/// against the battery (docs/mobile.md gives each one's energy per day and
/// the simulator's recall).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RadioProfile {
    /// A phone that must last a day: 4 s of scanning every 60 s
    /// ([`PHONE_SCAN`]), advertising every 250 ms (Exposure Notification
    /// advertises every 200–270 ms). The mobile library's default.
    Phone,
    /// A phone saving its battery: 4 s every 240 s
    /// ([`PHONE_LOW_POWER_SCAN`], Exposure Notification's own cadence),
    /// advertising every 1 s.
    PhoneLowPower,
    /// A PC on mains power: continuous scanning reported as 10 s windows
    /// ([`PC_SCAN`]), advertising every 100 ms. The BLE radio's default.
    Pc,
}

impl RadioProfile {
    /// The profile's scan timing.
    pub fn scan(self) -> ScanTiming {
        match self {
            RadioProfile::Phone => PHONE_SCAN,
            RadioProfile::PhoneLowPower => PHONE_LOW_POWER_SCAN,
            RadioProfile::Pc => PC_SCAN,
        }
    }

    /// How often the profile repeats its advertisement.
    pub fn advertising_interval(self) -> Duration {
        Duration::from_millis(match self {
            RadioProfile::Phone => 250,
            RadioProfile::PhoneLowPower => 1_000,
            RadioProfile::Pc => 100,
        })
    }

    /// The name written in the config file (`"phone-low-power"`).
    pub fn name(self) -> &'static str {
        match self {
            RadioProfile::Phone => "phone",
            RadioProfile::PhoneLowPower => "phone-low-power",
            RadioProfile::Pc => "pc",
        }
    }
}

impl std::fmt::Display for RadioProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `[radio]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioSection {
    /// `"ble"` or `"udp-sim"` [default: ble].
    #[serde(default)]
    pub kind: RadioKind,
    /// `"phone"`, `"phone-low-power"` or `"pc"`: the scan interval and
    /// window and the advertising interval [default: pc for BLE, phone for
    /// the external radio, the simulated air's own duty cycle for udp-sim].
    /// `scan_interval` and `scan_window` override single values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<RadioProfile>,
    /// Calibrated TX power of this device (dBm): what its radio transmits
    /// at and what its reports carry; never on the air (docs/protocol.md
    /// §3) [default: the simulated device's for udp-sim, −8 dBm for BLE].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_power_dbm: Option<i8>,
    /// This device's RSSI correction (dB), added to the RSSI it measures:
    /// positive when it reads low (docs/protocol.md §6; `meshtrace calibrate`
    /// measures it).
    #[serde(default)]
    pub rx_correction_db: i16,
    /// `"extended"` or `"legacy"` [default: extended for udp-sim; for BLE,
    /// what the adapter supports].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<CarrierSetting>,
    /// BLE only: the adapter (e.g. `"hci0"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// udp-sim only (ignored by the ble radio): this device's position
    /// `[x, y]` in metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<[f64; 2]>,
    /// udp-sim only: the UDP port of the air (nodes on other ports do not
    /// hear each other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_port: Option<u16>,
    /// udp-sim only: the multicast group of the air.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_group: Option<Ipv4Addr>,
    /// udp-sim only: the simulated hardware's TX offset (dB, added to the
    /// RSSI others measure) [default: drawn at random at each start, σ
    /// 3 dB]. For calibration tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_tx_offset_db: Option<f64>,
    /// udp-sim only: the simulated hardware's RX offset (dB, added to the
    /// RSSI this device measures; what `rx_correction_db` compensates)
    /// [default: drawn at random at each start, σ 3 dB].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_rx_offset_db: Option<f64>,
    /// How often the scanner starts listening, e.g. `"60s"` [default: the
    /// profile's]. At most 600 s. See [`Config::scan_timing`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "fields::scan_interval"
    )]
    pub scan_interval: Option<Duration>,
    /// How long each scan listens, e.g. `"4s"` [default: the profile's,
    /// at most the interval; the whole interval when the profile scans
    /// continuously]. At least 1 s and at most the interval.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "fields::scan_window"
    )]
    pub scan_window: Option<Duration>,
}

/// BLE TX power used when none is configured (dBm): a typical phone's
/// calibrated advertising power.
pub const DEFAULT_BLE_TX_POWER_DBM: i8 = -8;

/// `[p2p]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pSection {
    /// Listen addresses.
    #[serde(default = "default_listen", with = "fields::listen")]
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (multiaddrs ending in `/p2p/<peer id>`).
    #[serde(default, with = "fields::bootstrap")]
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS.
    #[serde(default = "yes")]
    pub mdns: bool,
    /// Light mode (phones, metered links): not in the gossip mesh.
    #[serde(default)]
    pub light: bool,
    /// Relay connections for peers behind NAT.
    #[serde(default)]
    pub relay_server: bool,
    /// Stem hops before an own report is gossiped.
    #[serde(default = "default_stem_hops")]
    pub stem_hops: u32,
    /// How often to catch up with a random full peer, in seconds [default:
    /// 300]. A light node receives reports only this way, so this is its
    /// delivery delay; shorter costs a digest exchange (under 1 KB) each
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_seconds: Option<u64>,
    /// Connection and relay limits to start from: `"phone"` or `"pc"`
    /// [default: phone for a light node, pc otherwise]; the settings below
    /// override single values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsPreset>,
    /// Established connections in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Established connections with one peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_peer: Option<u32>,
    /// Inbound connections from one IP address (phones behind one
    /// carrier-grade NAT share theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<u32>,
    /// Inbound handshakes in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_incoming: Option<u32>,
    /// Relay server: reservations held in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_max_reservations: Option<u32>,
    /// Relay server: circuits open in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_max_circuits: Option<u32>,
    /// Relay server: circuits open from one peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_max_circuits_per_peer: Option<u32>,
    /// Relay server: a circuit is closed after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_circuit_seconds: Option<u64>,
    /// Relay server: a circuit is closed after relaying this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_circuit_bytes: Option<u64>,
}

/// The preset of connection and relay limits (`p2p.limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitsPreset {
    /// [`Limits::PHONE`].
    Phone,
    /// [`Limits::PC`].
    Pc,
}

impl P2pSection {
    /// The connection and relay limits: the preset (by default the phone
    /// one for a light node, the PC one otherwise) with the single values
    /// set here. Not yet checked ([`Config::validate`] checks them).
    pub fn limits(&self) -> Limits {
        let preset = self.limits.unwrap_or(if self.light {
            LimitsPreset::Phone
        } else {
            LimitsPreset::Pc
        });
        let mut l = match preset {
            LimitsPreset::Phone => Limits::PHONE,
            LimitsPreset::Pc => Limits::PC,
        };
        let set = |v: &mut u32, o: Option<u32>| {
            if let Some(o) = o {
                *v = o;
            }
        };
        set(&mut l.max_connections, self.max_connections);
        set(
            &mut l.max_connections_per_peer,
            self.max_connections_per_peer,
        );
        set(&mut l.max_connections_per_ip, self.max_connections_per_ip);
        set(&mut l.max_pending_incoming, self.max_pending_incoming);
        set(&mut l.relay_max_reservations, self.relay_max_reservations);
        set(&mut l.relay_max_circuits, self.relay_max_circuits);
        set(
            &mut l.relay_max_circuits_per_peer,
            self.relay_max_circuits_per_peer,
        );
        if let Some(s) = self.relay_circuit_seconds {
            l.relay_circuit_duration = Duration::from_secs(s);
        }
        if let Some(b) = self.relay_circuit_bytes {
            l.relay_circuit_bytes = b;
        }
        l
    }

    /// The catch-up interval.
    pub fn catch_up_interval(&self) -> Option<Duration> {
        self.catch_up_seconds.map(Duration::from_secs)
    }
}

/// The listen addresses unless configured otherwise: any IPv4 address, a
/// free port, TCP and QUIC.
pub(crate) fn default_listen() -> Vec<Multiaddr> {
    use libp2p::multiaddr::Protocol;
    let any = Multiaddr::empty().with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED));
    vec![
        any.clone().with(Protocol::Tcp(0)),
        any.with(Protocol::Udp(0)).with(Protocol::QuicV1),
    ]
}

fn yes() -> bool {
    true
}

fn default_stem_hops() -> u32 {
    2
}

impl Default for P2pSection {
    fn default() -> P2pSection {
        P2pSection {
            listen: default_listen(),
            bootstrap: Vec::new(),
            mdns: true,
            light: false,
            relay_server: false,
            stem_hops: default_stem_hops(),
            catch_up_seconds: None,
            limits: None,
            max_connections: None,
            max_connections_per_peer: None,
            max_connections_per_ip: None,
            max_pending_incoming: None,
            relay_max_reservations: None,
            relay_max_circuits: None,
            relay_max_circuits_per_peer: None,
            relay_circuit_seconds: None,
            relay_circuit_bytes: None,
        }
    }
}

/// `[report]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Encounters shorter than this (of exposure) are left out of a report
    /// (written as `min_encounter_seconds`).
    #[serde(
        rename = "min_encounter_seconds",
        default = "default_min_report",
        with = "fields::seconds"
    )]
    pub min_encounter: Duration,
}

fn default_min_report() -> Duration {
    DEFAULT_MIN_REPORT_ENCOUNTER
}

impl Default for ReportSection {
    fn default() -> ReportSection {
        ReportSection {
            min_encounter: default_min_report(),
        }
    }
}

/// The risk models on the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskModelSetting {
    /// The calibrated, scan-aware estimate of minutes within 2 m
    /// (docs/risk.md).
    #[default]
    Calibrated,
    /// The Corona-Warn-App attenuation buckets, kept for comparison.
    Cwa,
}

impl From<RiskModelSetting> for RiskModel {
    fn from(m: RiskModelSetting) -> RiskModel {
        match m {
            RiskModelSetting::Calibrated => RiskModel::Calibrated,
            RiskModelSetting::Cwa => RiskModel::Cwa,
        }
    }
}

/// `[risk]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    /// `"calibrated"` or `"cwa"` [default: calibrated].
    #[serde(default)]
    pub model: RiskModelSetting,
}

/// `[hooks]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksSection {
    /// A shell command run on each new or updated exposure, with the
    /// exposure as JSON on its standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exposure: Option<String>,
}

/// Port of the local web page unless `[ui] listen` says otherwise.
pub const DEFAULT_UI_PORT: u16 = 7390;
/// Longest `[ui] advice_url` (bytes).
pub const MAX_ADVICE_URL_LEN: usize = 512;

/// The language of the page, the CLI's notices and the notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UiLanguage {
    /// English.
    En,
    /// Vietnamese.
    Vi,
}

/// `[ui]`: the local web page served by `meshtrace run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// Serve the page (`meshtrace run --no-ui` turns it off for one run).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the page listens: 127.0.0.1 only (port 0: any free port)
    /// [default: 127.0.0.1:7390].
    #[serde(default = "default_ui_listen")]
    pub listen: SocketAddr,
    /// `"en"` or `"vi"` [default: the browser's language, else the
    /// system's (`LANG`), else English]. A choice made on the page's
    /// settings comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<UiLanguage>,
    /// A link to the health authority's advice, shown with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice_url: Option<String>,
    /// Show a desktop notification on a new or raised exposure.
    #[serde(default)]
    pub notify: bool,
}

fn default_ui_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_UI_PORT))
}

impl Default for UiSection {
    fn default() -> UiSection {
        UiSection {
            enabled: true,
            listen: default_ui_listen(),
            language: None,
            advice_url: None,
            notify: false,
        }
    }
}

/// Checks an address for the page: 127.0.0.1 only.
pub fn check_ui_listen(addr: SocketAddr) -> Result<(), String> {
    if addr.ip() != std::net::IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return Err(format!(
            "{addr} is not on 127.0.0.1: the page is for this computer only, other computers \
             must not reach it (use 127.0.0.1:PORT)"
        ));
    }
    Ok(())
}

/// Checks an advice link: an http(s) URL without spaces or quotes.
fn check_advice_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_ADVICE_URL_LEN {
        return Err(format!("is longer than {MAX_ADVICE_URL_LEN} bytes"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && !r.starts_with('/')
                && r.chars()
                    .all(|c| c.is_ascii_graphic() && !"\"'<>\\`".contains(c)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{url:?} is not a web address (https://…, without spaces or quotes)"
        )),
    }
}

/// The platform directories (`None` when the home directory is unknown).
pub fn platform_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "meshtrace")
}

/// The config file to use: `explicit`, else `DATA_DIR/config.toml` when a
/// data directory was given, else the platform config file.
pub fn config_path(explicit: Option<&Path>, data_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    if let Some(d) = data_dir {
        return Some(d.join(CONFIG_FILE));
    }
    platform_dirs().map(|d| d.config_dir().join(CONFIG_FILE))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl Config {
    /// A configuration with defaults for `network`.
    pub fn new(network: &str) -> Config {
        Config {
            network: network.to_owned(),
            data_dir: None,
            store: StoreSection::default(),
            issuers: Vec::new(),
            radio: RadioSection::default(),
            p2p: P2pSection::default(),
            report: ReportSection::default(),
            risk: RiskSection::default(),
            hooks: HooksSection::default(),
            ui: UiSection::default(),
        }
    }

    /// The radio profile in force: `[radio] profile`, else the radio
    /// kind's default (BLE: [`RadioProfile::Pc`]; external:
    /// [`RadioProfile::Phone`]; udp-sim: none, the simulated air's own duty
    /// cycle).
    pub fn radio_profile(&self) -> Option<RadioProfile> {
        self.radio.profile.or(match self.radio.kind {
            RadioKind::Ble => Some(RadioProfile::Pc),
            RadioKind::External => Some(RadioProfile::Phone),
            RadioKind::UdpSim => None,
        })
    }

    /// When the radio listens: `[radio] scan_window` out of every
    /// `scan_interval`, each defaulting to the [`Config::radio_profile`]'s
    /// (an interval alone keeps a continuous profile continuous, and
    /// shortens a duty-cycled profile's window to at most the interval);
    /// without a profile (udp-sim), the simulated air's duty cycle
    /// ([`DutyCycle::default`], 1 s every 5 s; a window longer than the
    /// default interval alone is an error). Not validated here (see
    /// [`Config::validate`]).
    pub fn scan_timing(&self) -> ScanTiming {
        let r = &self.radio;
        let (window, interval) = match self.radio_profile() {
            Some(profile) => {
                let base = profile.scan();
                let interval = r.scan_interval.unwrap_or(base.interval);
                let window = r.scan_window.unwrap_or(if base.is_continuous() {
                    interval
                } else {
                    base.window.min(interval)
                });
                (window, interval)
            }
            None => {
                let d = DutyCycle::default();
                let interval = r
                    .scan_interval
                    .unwrap_or(Duration::from_millis(d.scan_interval_ms));
                let window = r
                    .scan_window
                    .unwrap_or(Duration::from_millis(d.scan_window_ms).min(interval));
                (window, interval)
            }
        };
        ScanTiming { window, interval }
    }

    /// How often the radio repeats its advertisement: the
    /// [`Config::radio_profile`]'s, else the simulated air's
    /// ([`DutyCycle::default`]).
    pub fn advertising_interval(&self) -> Duration {
        match self.radio_profile() {
            Some(p) => p.advertising_interval(),
            None => Duration::from_millis(DutyCycle::default().advertising_interval_ms),
        }
    }

    /// Parses TOML text; `path` names the source in errors. The result is
    /// not yet validated.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e
                .span()
                .map(|s| format!(" line {}", line_of(text, s.start)))
                .unwrap_or_default(),
            reason: e.message().trim().replace('\n', " "),
        })
    }

    /// Reads, parses and validates the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read = |reason: String| ConfigError::Read {
            path: path.to_owned(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| {
            read(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such file (create one with `meshtrace init`)".into()
                }
                _ => e.to_string(),
            })
        })?;
        if !meta.is_file() {
            return Err(read("not a regular file".into()));
        }
        if meta.len() > MAX_CONFIG_LEN {
            return Err(read(format!(
                "larger than {MAX_CONFIG_LEN} bytes; is this the right file?"
            )));
        }
        crate::perms::check_not_writable_by_others(path, "config", crate::perms::Kind::File)
            .map_err(ConfigError::Unsafe)?;
        let bytes = std::fs::read(path).map_err(|e| read(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| read("not UTF-8 text".into()))?;
        let config = Config::parse(&text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// The TOML text of this configuration, with a header comment.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self).map_err(|e| ConfigError::Write {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        Ok(format!(
            "# meshtrace node configuration; see README.md (Configuration).\n\
             # Every setting can be overridden by a flag of `meshtrace run`.\n\n{body}"
        ))
    }

    /// Writes the file owner-only; refuses to replace an existing one.
    pub fn write_new(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |reason: String| ConfigError::Write {
            path: path.to_owned(),
            reason,
        };
        let text = self.to_toml().map_err(|e| match e {
            ConfigError::Write { reason, .. } => err(reason),
            other => other,
        })?;
        // A missing parent is created owner-only; an existing one (which may
        // be shared, like /etc) keeps its mode.
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            crate::store::create_private_dir(parent).map_err(|e| err(e.to_string()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                err(match e.kind() {
                    std::io::ErrorKind::AlreadyExists => "the file already exists".into(),
                    _ => e.to_string(),
                })
            })?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| err(e.to_string()))
    }

    /// Sets `[radio] rx_correction_db` to `db` in the config file at `path`,
    /// keeping everything else in it as it is (comments, order, layout).
    /// The file must be one [`Config::load`] accepts, and the result must
    /// still be valid; it replaces the old file atomically and stays
    /// owner-only.
    pub fn write_rx_correction(path: &Path, db: i16) -> Result<(), ConfigError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let old = Config::load(path)?;
        let err = |reason: String| ConfigError::Write {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut doc = text
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                line: String::new(),
                reason: e.message().trim().replace('\n', " "),
            })?;
        doc["radio"]["rx_correction_db"] = toml_edit::value(i64::from(db));
        let new_text = doc.to_string();
        let new = Config::parse(&new_text, path)?;
        new.validate(path)?;
        let mut expected = old;
        expected.radio.rx_correction_db = db;
        if new != expected {
            return Err(err(
                "the file's layout could not be edited safely; set rx_correction_db in [radio] by hand".into(),
            ));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.new", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(new_text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e.to_string()));
        }
        Ok(())
    }

    /// Checks every value; the error names the setting.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |setting: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            setting,
            reason,
        };
        if !is_valid_network_id(&self.network) {
            return Err(bad(
                "network",
                format!(
                    "{:?} is not a network id (1–{MAX_NETWORK_ID_LEN} characters: \
                     letters, digits, '-', '_', '.')",
                    self.network
                ),
            ));
        }
        if let (Some(_), Some(_)) = (&self.store.key_file, &self.store.passphrase_env) {
            return Err(bad(
                "store",
                "set key_file or passphrase_env, not both".into(),
            ));
        }
        if let Some(v) = &self.store.passphrase_env
            && (v.is_empty() || v.contains('=') || v.contains('\0'))
        {
            return Err(bad(
                "store.passphrase_env",
                format!("{v:?} is not an environment variable name"),
            ));
        }
        if self.issuers.len() > MAX_ISSUERS {
            return Err(bad(
                "issuer",
                format!("more than {MAX_ISSUERS} trusted issuers"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for i in &self.issuers {
            if !i.key.is_strong() {
                return Err(bad("issuer.key", weak_key(&i.key.to_hex())));
            }
            if !seen.insert(i.key) {
                return Err(bad(
                    "issuer.key",
                    format!("{} is listed twice", i.key.to_hex()),
                ));
            }
            if i.name.trim().is_empty() || i.name.len() > MAX_ISSUER_NAME_LEN {
                return Err(bad(
                    "issuer.name",
                    format!("{:?} must be 1–{MAX_ISSUER_NAME_LEN} bytes", i.name),
                ));
            }
        }
        let r = &self.radio;
        if let Some(p) = r.tx_power_dbm
            && !(-100..=20).contains(&p)
        {
            return Err(bad(
                "radio.tx_power_dbm",
                format!("{p} is outside -100..=20 dBm"),
            ));
        }
        if r.rx_correction_db.abs() > MAX_RX_CORRECTION_DB {
            return Err(bad(
                "radio.rx_correction_db",
                format!(
                    "{} is outside ±{MAX_RX_CORRECTION_DB} dB",
                    r.rx_correction_db
                ),
            ));
        }
        if let Some([x, y]) = r.position
            && !(x.is_finite()
                && y.is_finite()
                && x.abs() <= MAX_POSITION_M
                && y.abs() <= MAX_POSITION_M)
        {
            return Err(bad(
                "radio.position",
                format!("[{x}, {y}] is not within ±{MAX_POSITION_M} m"),
            ));
        }
        for (setting, v) in [
            ("radio.udp_tx_offset_db", r.udp_tx_offset_db),
            ("radio.udp_rx_offset_db", r.udp_rx_offset_db),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v.abs() <= MAX_SIM_OFFSET_DB)
            {
                return Err(bad(
                    setting,
                    format!("{v} is not within ±{MAX_SIM_OFFSET_DB} dB"),
                ));
            }
        }
        let timing = self.scan_timing();
        if let Err(reason) = timing.check() {
            // The setting the user wrote (or would write) to fix it.
            let setting =
                if timing.interval > crate::radio::MAX_SCAN_INTERVAL || r.scan_window.is_none() {
                    "radio.scan_interval"
                } else {
                    "radio.scan_window"
                };
            return Err(bad(setting, reason));
        }
        if r.udp_port == Some(0) {
            return Err(bad("radio.udp_port", "must not be 0".into()));
        }
        if let Some(g) = r.udp_group
            && !g.is_multicast()
        {
            return Err(bad(
                "radio.udp_group",
                format!("{g} is not an IPv4 multicast address"),
            ));
        }
        let p = &self.p2p;
        for (setting, list) in [("p2p.listen", &p.listen), ("p2p.bootstrap", &p.bootstrap)] {
            if list.len() > MAX_ADDRESSES {
                return Err(bad(setting, format!("more than {MAX_ADDRESSES} addresses")));
            }
        }
        if p.listen.is_empty() && !p.light {
            return Err(bad(
                "p2p.listen",
                "a full node needs at least one listen address (or set light = true)".into(),
            ));
        }
        if p.stem_hops > MAX_STEM_HOPS {
            return Err(bad(
                "p2p.stem_hops",
                format!("{} is outside 0–{MAX_STEM_HOPS}", p.stem_hops),
            ));
        }
        if let Some(s) = p.catch_up_seconds
            && !(1..=MAX_CATCH_UP_SECONDS).contains(&s)
        {
            return Err(bad(
                "p2p.catch_up_seconds",
                format!("{s} is outside 1–{MAX_CATCH_UP_SECONDS} seconds"),
            ));
        }
        p.limits().check().map_err(|e| bad("p2p", e))?;
        let min_encounter = self.report.min_encounter.as_secs();
        if min_encounter > MAX_MIN_REPORT_ENCOUNTER_SECONDS {
            return Err(bad(
                "report.min_encounter_seconds",
                format!("{min_encounter} is outside 0–{MAX_MIN_REPORT_ENCOUNTER_SECONDS} seconds"),
            ));
        }
        if let Some(c) = &self.hooks.on_exposure
            && c.trim().is_empty()
        {
            return Err(bad("hooks.on_exposure", "is empty".into()));
        }
        check_ui_listen(self.ui.listen).map_err(|e| bad("ui.listen", e))?;
        if let Some(u) = &self.ui.advice_url {
            check_advice_url(u).map_err(|e| bad("ui.advice_url", e))?;
        }
        Ok(())
    }

    /// The trusted issuer keys with their names.
    pub fn trusted_issuers(&self) -> Vec<(IssuerPublicKey, String)> {
        self.issuers
            .iter()
            .map(|i| (i.key, i.name.clone()))
            .collect()
    }

    /// The listen addresses.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.p2p.listen.clone()
    }

    /// The bootstrap addresses.
    pub fn bootstrap_addrs(&self) -> Vec<Multiaddr> {
        self.p2p.bootstrap.clone()
    }
}

/// Parses an issuer public key (64 hex digits).
pub fn parse_issuer_key(s: &str) -> Result<IssuerPublicKey, String> {
    let key = IssuerPublicKey::from_hex(s.trim())
        .ok_or_else(|| format!("{s:?} is not an issuer public key (64 hex digits)"))?;
    if !key.is_strong() {
        return Err(weak_key(&format!("{s:?}")));
    }
    Ok(key)
}

fn weak_key(shown: &str) -> String {
    format!(
        "{shown} is not a usable issuer public key (not a valid Ed25519 key, or a weak one \
         that anybody could sign for); copy the key `meshtrace issuer keygen` printed"
    )
}

/// Parses a multiaddr. The error is one line: the parser's message may
/// quote part of the input, so it is escaped like the input.
pub fn parse_multiaddr(s: &str) -> Result<Multiaddr, String> {
    s.parse::<Multiaddr>().map_err(|e| {
        format!(
            "{s:?} is not a multiaddr ({})",
            e.to_string().escape_debug()
        )
    })
}

#[cfg(test)]
mod tests;
