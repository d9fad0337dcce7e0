//! The node commands that set up and run a node: `init` and `run` (the
//! commands that ask it are in `node_query`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use meshtrace_node::config::{
    self, CarrierSetting, Config, IssuerEntry, RadioKind, parse_issuer_key, parse_multiaddr,
};
use meshtrace_node::control;
use meshtrace_node::daemon::{self, DaemonOptions, IDENTITY_FILE};
use meshtrace_node::p2p::Multiaddr;
use meshtrace_node::store::{ContactStore, KdfParams, KeySource, StoreConfig};

use std::sync::Arc;

use meshtrace_ui::i18n::cli_lang;
use meshtrace_ui::notify::Notifier;
use meshtrace_ui::{Tr, UiServer};

use crate::output::outln;
use crate::{Paths, now};

/// Options of `meshtrace init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The deployment's network id (the issuer and every node agree on it).
    #[arg(long, value_name = "NAME", default_value = "meshtrace")]
    network: String,
    /// Trust this issuer: its public key (64 hex digits), optionally named
    /// as NAME=KEY. Repeatable.
    #[arg(long = "trust-issuer", value_name = "[NAME=]KEY")]
    trust_issuer: Vec<String>,
    /// Protect the store with a passphrase read from this environment
    /// variable (Argon2id) instead of a key file.
    #[arg(long, value_name = "VAR", conflicts_with = "key_file")]
    passphrase_env: Option<String>,
    /// Keep the store's master key in this file (created owner-only)
    /// [default: DIR/master.key].
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// The radio the node will use.
    #[arg(long, value_enum, value_name = "KIND")]
    radio: Option<RadioArg>,
    /// udp-sim only: this device's position in metres, as X,Y.
    #[arg(long, value_name = "X,Y", value_parser = parse_position)]
    position: Option<[f64; 2]>,
    /// Write a config for the store already in the data directory (after
    /// config.toml was lost) instead of creating a new store; the key file
    /// or passphrase must open it.
    #[arg(long)]
    reuse_store: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The radio kinds on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RadioArg {
    /// Bluetooth Low Energy through BlueZ (Linux).
    Ble,
    /// The simulated air over loopback UDP multicast.
    UdpSim,
}

impl From<RadioArg> for RadioKind {
    fn from(r: RadioArg) -> RadioKind {
        match r {
            RadioArg::Ble => RadioKind::Ble,
            RadioArg::UdpSim => RadioKind::UdpSim,
        }
    }
}

/// Radio profiles on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RadioProfileArg {
    /// 4 s of scanning every 60 s, advertising every 250 ms.
    Phone,
    /// 4 s of scanning every 240 s, advertising every 1 s.
    PhoneLowPower,
    /// Continuous scanning, advertising every 100 ms.
    Pc,
}

/// Risk models on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RiskModelArg {
    /// The calibrated, scan-aware estimate of minutes within 2 m.
    Calibrated,
    /// The Corona-Warn-App attenuation buckets (for comparison).
    Cwa,
}

/// Presets of connection limits on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LimitsArg {
    /// Sized for a phone.
    Phone,
    /// Sized for a PC or a small server (bootstrap and relay nodes).
    Pc,
}

/// Carriers on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CarrierArg {
    /// One BLE 5 extended advertisement.
    Extended,
    /// Two legacy advertisements.
    Legacy,
}

/// Options of `meshtrace run`; each overrides the config file.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The radio.
    #[arg(long, value_enum, value_name = "KIND")]
    radio: Option<RadioArg>,
    /// How frames go on the air.
    #[arg(long, value_enum, value_name = "CARRIER")]
    carrier: Option<CarrierArg>,
    /// BLE only: the adapter (e.g. hci0).
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Calibrated TX power of this device (dBm), carried in its reports
    /// (frames carry none).
    #[arg(long, value_name = "DBM", allow_negative_numbers = true)]
    tx_power: Option<i8>,
    /// This device's RSSI correction (dB).
    #[arg(long, value_name = "DB", allow_negative_numbers = true)]
    rx_correction: Option<i16>,
    /// udp-sim only: this device's position in metres, as X,Y.
    #[arg(long, value_name = "X,Y", value_parser = parse_position, allow_negative_numbers = true)]
    position: Option<[f64; 2]>,
    /// udp-sim only: the UDP port of the simulated air.
    #[arg(long, value_name = "PORT")]
    udp_port: Option<u16>,
    /// Scan and advertising timing (--scan-interval and --scan-window
    /// override single values).
    #[arg(long, value_enum, value_name = "PROFILE")]
    radio_profile: Option<RadioProfileArg>,
    /// How often the radio starts a scan, e.g. 60s (at most 600s).
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    scan_interval: Option<Duration>,
    /// How long each scan listens, e.g. 4s (at least 1s, at most the
    /// interval).
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    scan_window: Option<Duration>,
    /// How exposure risk is estimated.
    #[arg(long, value_enum, value_name = "MODEL")]
    risk_model: Option<RiskModelArg>,
    /// Listen on this multiaddr (repeatable; replaces the configured list).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Also dial this peer at start (repeatable; multiaddr with /p2p/ID).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS.
    #[arg(long, conflicts_with = "no_mdns")]
    mdns: bool,
    /// Do not use mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Light mode: stay out of the gossip mesh (phones, metered links).
    #[arg(long)]
    light: bool,
    /// Stem hops before an own report is gossiped.
    #[arg(long, value_name = "N")]
    stem_hops: Option<u32>,
    /// Run this shell command on each new or updated exposure, with the
    /// exposure as JSON on its standard input.
    #[arg(long, value_name = "CMD")]
    on_exposure: Option<String>,
    /// Also trust this issuer ([NAME=]KEY; repeatable).
    #[arg(long = "trust-issuer", value_name = "[NAME=]KEY")]
    trust_issuer: Vec<String>,
    /// Serve as a relay for peers behind NAT.
    #[arg(long)]
    relay_server: bool,
    /// Connection and relay limits to start from [default: phone for a
    /// light node, pc otherwise]; single values are set in the config.
    #[arg(long, value_enum, value_name = "PRESET")]
    limits: Option<LimitsArg>,
    /// Catch up with a random full peer every N seconds (a light node's
    /// delivery delay) [default: 300].
    #[arg(long, value_name = "N")]
    catch_up_seconds: Option<u64>,
    /// Leave encounters shorter than this (seconds of exposure) out of a
    /// report.
    #[arg(long, value_name = "SECONDS")]
    min_report_encounter_seconds: Option<u64>,
    /// The store's master key file (replaces the configured key source).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    key_file: Option<PathBuf>,
    /// Read the store passphrase from this environment variable (replaces
    /// the configured key source).
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// For demos and tests: run the clock N times faster than real time, so
    /// that hours pass in minutes (with the BLE radio too, for tests of the
    /// real Bluetooth stack; never on a node people rely on).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    time_scale: Option<f64>,
    /// With --time-scale: the real UNIX time (milliseconds) at which the
    /// simulated clock equals real time [default: now]. Daemons given the
    /// same origin share one simulated time.
    #[arg(long, value_name = "MS", requires = "time_scale")]
    time_origin: Option<u64>,
    /// Do not serve the local web page this time.
    #[arg(long, conflicts_with = "ui_listen")]
    no_ui: bool,
    /// Serve the local web page on this address (127.0.0.1:PORT; port 0
    /// picks a free one) instead of the configured one.
    #[arg(long, value_name = "ADDR")]
    ui_listen: Option<std::net::SocketAddr>,
}

/// Options of `meshtrace ui`.
#[derive(Debug, Args)]
pub(crate) struct UiArgs {
    /// Print the one-time link instead of opening a browser.
    #[arg(long)]
    print_url: bool,
}

fn parse_position(s: &str) -> Result<[f64; 2], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [x, y] = parts[..] else {
        return Err(format!("{s:?} is not X,Y (metres), e.g. 1.5,0"));
    };
    match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => Ok([x, y]),
        _ => Err(format!("{s:?} is not X,Y (metres), e.g. 1.5,0")),
    }
}

fn parse_trust(s: &str) -> Result<IssuerEntry> {
    let (name, key) = match s.split_once('=') {
        Some((n, k)) => (n.trim().to_owned(), k.trim()),
        None => (String::new(), s.trim()),
    };
    let parsed = parse_issuer_key(key).map_err(|e| anyhow!("--trust-issuer: {e}"))?;
    let name = if name.is_empty() {
        format!("issuer {}", &parsed.to_hex()[..8])
    } else {
        name
    };
    Ok(IssuerEntry { name, key: parsed })
}

/// The data directory: `--data-dir`, else the config's `data_dir`, else the
/// platform data directory.
pub(crate) fn data_dir(paths: &Paths, config: Option<&Config>) -> Result<PathBuf> {
    if let Some(d) = &paths.data_dir {
        return Ok(d.clone());
    }
    if let Some(d) = config.and_then(|c| c.data_dir.clone()) {
        return Ok(d);
    }
    config::platform_dirs()
        .map(|d| d.data_dir().to_owned())
        .ok_or_else(|| anyhow!("no home directory to put the data in; pass --data-dir"))
}

fn config_path(paths: &Paths) -> Result<PathBuf> {
    config::config_path(paths.config.as_deref(), paths.data_dir.as_deref())
        .ok_or_else(|| anyhow!("no home directory for the config; pass --data-dir or --config"))
}

/// Loads the node's config and data directory.
pub(crate) fn load(paths: &Paths) -> Result<(Config, PathBuf)> {
    let path = config_path(paths)?;
    if !path.exists()
        && let Some(dir) = &paths.data_dir
        && dir.join(meshtrace_node::store::META_FILE).exists()
    {
        // The store is there but its config is gone: say how to get it back.
        bail!(
            "config {} is missing, but the store in {} is intact; write a new config for it \
             with `meshtrace {}init --reuse-store --network NAME` (plus the --trust-issuer \
             and --key-file or --passphrase-env options it was created with)",
            path.display(),
            dir.display(),
            global_flags(paths)
        );
    }
    let config = Config::load(&path)?;
    let dir = data_dir(paths, Some(&config))?;
    Ok((config, dir))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}", p.display()))
}

pub(crate) fn init(paths: &Paths, a: &InitArgs) -> Result<ExitCode> {
    let cfg_path = absolute(&config_path(paths)?)?;
    let dir = absolute(&data_dir(paths, None)?)?;
    let mut config = Config::new(&a.network);
    config.data_dir = Some(dir.clone());
    for t in &a.trust_issuer {
        config.issuers.push(parse_trust(t)?);
    }
    if let Some(r) = a.radio {
        config.radio.kind = r.into();
    }
    config.radio.position = a.position;
    if let Some(f) = &a.key_file {
        config.store.key_file = Some(absolute(f)?);
    }
    config.store.passphrase_env = a.passphrase_env.clone();
    config.validate(Path::new("(flags)"))?;
    // Refuse before creating anything.
    if cfg_path.exists() {
        bail!(
            "{} already exists; this node is initialised (remove it to start over)",
            cfg_path.display()
        );
    }
    control::check_socket_path(&dir).map_err(|e| anyhow!(e))?;
    // An existing directory keeps its owner; one another user could change
    // is refused (the store makes it 0700).
    meshtrace_node::perms::check_not_writable_by_others(
        &dir,
        "data directory",
        meshtrace_node::perms::Kind::Dir,
    )
    .map_err(|e| anyhow!(e))?;
    let has_store = dir.join(meshtrace_node::store::META_FILE).exists();
    if has_store && !a.reuse_store {
        bail!(
            "a meshtrace store already exists in {}; to write a new config for it, add \
             --reuse-store (with the same --network, --trust-issuer and key options as before)",
            dir.display()
        );
    }
    if !has_store && a.reuse_store {
        bail!(
            "--reuse-store: there is no meshtrace store in {}",
            dir.display()
        );
    }
    let source = daemon::key_source(&config, &dir)?;
    if has_store {
        // The key must open it; nothing is written to it.
        let store = ContactStore::open(&dir, &source, StoreConfig::default(), now())?;
        drop(store);
    } else {
        if let KeySource::KeyFile(k) = &source
            && k.exists()
            && a.key_file.is_none()
        {
            bail!(
                "{} already exists; pass --key-file to use an existing key",
                k.display()
            );
        }
        let store = ContactStore::create(
            &dir,
            &source,
            KdfParams::DEFAULT,
            StoreConfig::default(),
            now(),
        )?;
        drop(store);
    }
    let identity = meshtrace_node::p2p::load_or_create_identity(&dir.join(IDENTITY_FILE))?;
    config.write_new(&cfg_path)?;
    let peer_id = identity.public().to_peer_id();
    let key_desc = match &source {
        KeySource::KeyFile(k) => format!("key file {}", k.display()),
        KeySource::Passphrase(_) => format!(
            "passphrase from ${}",
            a.passphrase_env.as_deref().unwrap_or("")
        ),
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "config": cfg_path,
                "data_dir": dir,
                "network": config.network,
                "peer_id": peer_id.to_string(),
                "trusted_issuers": config.issuers.len(),
            })
        );
    } else {
        println!(
            "initialised a meshtrace node for network {:?}",
            config.network
        );
        println!("  config:    {}", cfg_path.display());
        println!(
            "  data:      {} (store sealed with {key_desc})",
            dir.display()
        );
        println!("  peer id:   {peer_id}");
        println!("  issuers:   {} trusted", config.issuers.len());
        if config.issuers.is_empty() {
            println!(
                "  note: add your community's issuer as [[issuer]] in the config, or pass --trust-issuer to run"
            );
        }
        println!("start it with: meshtrace {}run", global_flags(paths));
    }
    Ok(ExitCode::SUCCESS)
}

fn global_flags(paths: &Paths) -> String {
    let mut s = String::new();
    if let Some(d) = &paths.data_dir {
        s.push_str(&format!("--data-dir {} ", d.display()));
    }
    if let Some(c) = &paths.config {
        s.push_str(&format!("--config {} ", c.display()));
    }
    s
}

/// `value` of `flag` when it is at most `max`.
fn at_most<T: PartialOrd + std::fmt::Display>(flag: &str, value: T, max: T) -> Result<T> {
    if value > max {
        bail!("{flag} must be between 0 and {max} (got {value})");
    }
    Ok(value)
}

/// The multiaddrs given with `flag`.
fn multiaddrs(flag: &str, list: &[String]) -> Result<Vec<Multiaddr>> {
    list.iter()
        .map(|a| parse_multiaddr(a).map_err(|e| anyhow!("{flag}: {e}")))
        .collect()
}

fn apply_run_flags(config: &mut Config, a: &RunArgs) -> Result<()> {
    let r = &mut config.radio;
    if let Some(k) = a.radio {
        r.kind = k.into();
    }
    if let Some(c) = a.carrier {
        r.carrier = Some(match c {
            CarrierArg::Extended => CarrierSetting::Extended,
            CarrierArg::Legacy => CarrierSetting::Legacy,
        });
    }
    if a.adapter.is_some() {
        r.adapter = a.adapter.clone();
    }
    if a.tx_power.is_some() {
        r.tx_power_dbm = a.tx_power;
    }
    if let Some(c) = a.rx_correction {
        r.rx_correction_db = c;
    }
    if a.position.is_some() {
        r.position = a.position;
    }
    if a.udp_port.is_some() {
        r.udp_port = a.udp_port;
    }
    if let Some(p) = a.radio_profile {
        r.profile = Some(match p {
            RadioProfileArg::Phone => config::RadioProfile::Phone,
            RadioProfileArg::PhoneLowPower => config::RadioProfile::PhoneLowPower,
            RadioProfileArg::Pc => config::RadioProfile::Pc,
        });
    }
    if a.scan_interval.is_some() {
        r.scan_interval = a.scan_interval;
    }
    if a.scan_window.is_some() {
        r.scan_window = a.scan_window;
    }
    if let Some(m) = a.risk_model {
        config.risk.model = match m {
            RiskModelArg::Calibrated => config::RiskModelSetting::Calibrated,
            RiskModelArg::Cwa => config::RiskModelSetting::Cwa,
        };
    }
    let p = &mut config.p2p;
    if !a.listen.is_empty() {
        p.listen = multiaddrs("--listen", &a.listen)?;
    }
    p.bootstrap.extend(multiaddrs("--bootstrap", &a.bootstrap)?);
    if a.mdns {
        p.mdns = true;
    }
    if a.no_mdns {
        p.mdns = false;
    }
    if a.light {
        p.light = true;
    }
    if let Some(h) = a.stem_hops {
        p.stem_hops = at_most("--stem-hops", h, config::MAX_STEM_HOPS)?;
    }
    if a.relay_server {
        p.relay_server = true;
    }
    if let Some(l) = a.limits {
        p.limits = Some(match l {
            LimitsArg::Phone => config::LimitsPreset::Phone,
            LimitsArg::Pc => config::LimitsPreset::Pc,
        });
    }
    if let Some(s) = a.catch_up_seconds {
        if !(1..=config::MAX_CATCH_UP_SECONDS).contains(&s) {
            bail!(
                "--catch-up-seconds must be between 1 and {} (got {s})",
                config::MAX_CATCH_UP_SECONDS
            );
        }
        p.catch_up_seconds = Some(s);
    }
    if let Some(m) = a.min_report_encounter_seconds {
        config.report.min_encounter = Duration::from_secs(at_most(
            "--min-report-encounter-seconds",
            m,
            config::MAX_MIN_REPORT_ENCOUNTER_SECONDS,
        )?);
    }
    if let Some(f) = &a.key_file {
        config.store.key_file = Some(absolute(f)?);
        config.store.passphrase_env = None;
    }
    if let Some(v) = &a.passphrase_env {
        config.store.passphrase_env = Some(v.clone());
        config.store.key_file = None;
    }
    if a.on_exposure.is_some() {
        config.hooks.on_exposure = a.on_exposure.clone();
    }
    for t in &a.trust_issuer {
        let e = parse_trust(t)?;
        if !config.issuers.iter().any(|i| i.key == e.key) {
            config.issuers.push(e);
        }
    }
    if a.no_ui {
        config.ui.enabled = false;
    }
    if let Some(l) = a.ui_listen {
        config::check_ui_listen(l).map_err(|e| anyhow!("--ui-listen: {e}"))?;
        config.ui.listen = l;
    }
    Ok(())
}

pub(crate) fn run(paths: &Paths, a: RunArgs) -> Result<ExitCode> {
    let (mut config, dir) = load(paths)?;
    apply_run_flags(&mut config, &a)?;
    config.validate(Path::new("(after command-line flags)"))?;
    init_logging();
    let config_path = absolute(&config_path(paths)?)?;
    let notifier = Arc::new(Notifier::new(
        Tr(cli_lang(config.ui.language)),
        config.ui.notify,
    ));
    let listener = notifier.clone();
    let opts = DaemonOptions {
        config,
        data_dir: dir,
        time_scale: a.time_scale,
        time_origin_millis: a.time_origin,
        config_path: Some(config_path),
        exposure_listener: Some(daemon::ExposureListener(Arc::new(move |e| {
            listener.on_exposure(e)
        }))),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_with_page(opts, notifier))?;
    // The runtime's remaining tasks (mesh, radio) are dropped with it.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

/// How the daemon starts the page beside its control socket (unless the
/// page is off).
fn page_starter(opts: &DaemonOptions) -> Option<daemon::StartPage> {
    if !opts.config.ui.enabled {
        return None;
    }
    let config = opts.config.clone();
    let dir = opts.data_dir.clone();
    let config_path = opts.config_path.clone();
    Some(Box::new(move |stop| {
        Box::pin(async move {
            let server = UiServer::for_node(&config, &dir, config_path.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let url = server.url().to_owned();
            let task = tokio::spawn(server.serve(async move {
                let _ = stop.await;
            }));
            Ok((url, task))
        })
    }))
}

/// Runs the daemon with its page (the daemon starts it once its checks
/// pass, and stops it with the node) and the notifier, which learns the
/// exposures already known once the node answers.
async fn run_with_page(opts: DaemonOptions, notifier: Arc<Notifier>) -> Result<()> {
    let page = page_starter(&opts);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    // Exposures already known are not announced again.
    let data_dir = opts.data_dir.clone();
    let seed = tokio::spawn(async move {
        if ready_rx.await.is_ok()
            && let Ok(Ok(known)) = tokio::task::spawn_blocking(move || {
                control::request::<Vec<control::ExposureReply>>(
                    &data_dir,
                    &control::Request::Exposures,
                )
            })
            .await
        {
            notifier.seed(&known);
        }
    });
    let result = daemon::run(opts, page, |status| {
        let _ = ready_tx.send(());
        let (peer_id, listen) = status
            .mesh
            .as_ref()
            .map(|m| (m.peer_id.as_str(), m.listen.join(" ")))
            .unwrap_or(("?", String::new()));
        tracing::info!(
            network = %status.network,
            peer_id = %peer_id,
            listen = %listen,
            radio = %status.radio.kind,
            page = status.ui_url.as_deref().unwrap_or("off"),
            "meshtrace is running"
        );
    })
    .await;
    seed.abort();
    Ok(result?)
}

/// `meshtrace ui`: opens the running node's page in the browser with a
/// one-time login link (or prints the link).
pub(crate) fn ui(paths: &Paths, a: &UiArgs) -> Result<ExitCode> {
    let (config, dir) = load(paths)?;
    let tr = Tr(cli_lang(config.ui.language));
    let status: control::StatusReply = control::request(&dir, &control::Request::Status)?;
    let Some(url) = status.ui_url else {
        bail!(
            "the running node serves no page (it was started with --no-ui or [ui] enabled = \
             false, or its address was in use: see its log); restart it with the page on"
        );
    };
    let secret = meshtrace_ui::auth::Secret::load(&dir.join(daemon::UI_SECRET_FILE))
        .map_err(|e| anyhow!(e))?;
    let link = format!("{url}/login?t={}", secret.login_code(now().0));
    drop(secret);
    let minutes = meshtrace_ui::auth::LOGIN_CODE_TTL_SECONDS / 60;
    if a.print_url {
        outln!("{link}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let opened = std::process::Command::new("xdg-open")
        .arg(&link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if opened {
        eprintln!(
            "{}",
            tr.args("cli-ui-opened", &[("minutes", minutes.into())])
        );
    } else {
        eprintln!(
            "{}",
            tr.args("cli-ui-no-browser", &[("minutes", minutes.into())])
        );
        outln!("{link}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,libp2p_kad=error,libp2p_swarm=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
