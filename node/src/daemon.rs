//! The daemon behind `meshtrace run`: opens the store, starts the radio,
//! the mesh and the node task, serves the control socket, runs the
//! exposure hook, and shuts down gracefully (open encounters closed, store
//! flushed, socket removed) on SIGINT, SIGTERM or SIGHUP (closing the
//! terminal of a daemon started with `&` sends SIGHUP).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};

use crate::clock::{Clock, ScaledClock, SharedClock, SystemClock};
use crate::config::{Config, DEFAULT_BLE_TX_POWER_DBM, RadioKind};
use crate::control::{self, DaemonInfo};
use crate::node::{self, NodeEvent, NodeSettings};
use crate::p2p::{self, P2pConfig};
use crate::radio::Radio;
use crate::radio::model::{Position, SIM_TX_POWER_DBM, Trajectory};
use crate::radio::udp::{UdpAirConfig, UdpRadio};
use crate::store::{ContactStore, KeySource, StoreConfig, StoreError};
use crate::trust::TrustedIssuers;

/// File name of the mesh identity key in the data directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// Default master key file name in the data directory.
pub const KEY_FILE: &str = "master.key";
/// An exposure hook still running after this long is killed.
pub(crate) const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest time scale accepted on the command line.
pub(crate) const MAX_TIME_SCALE: f64 = crate::clock::MAX_TIME_SCALE;

/// A daemon failure, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DaemonError(pub String);

impl From<StoreError> for DaemonError {
    fn from(e: StoreError) -> DaemonError {
        DaemonError(e.to_string())
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The validated configuration (flags already applied).
    pub config: Config,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Run the clock this many times faster than real time (simulated
    /// radios only).
    pub time_scale: Option<f64>,
    /// The real UNIX time (ms) at which the scaled clock agrees with real
    /// time [default: now]. Daemons given the same origin share one
    /// simulated time.
    pub time_origin_millis: Option<u64>,
}

/// The store's key source from the configuration.
pub fn key_source(config: &Config, data_dir: &Path) -> Result<KeySource, DaemonError> {
    if let Some(var) = &config.store.passphrase_env {
        let pass = std::env::var(var).map_err(|_| {
            DaemonError(format!(
                "environment variable {var} (store.passphrase_env) is not set"
            ))
        })?;
        if pass.is_empty() {
            return Err(DaemonError(format!("environment variable {var} is empty")));
        }
        return Ok(KeySource::Passphrase(meshtrace_protocol::Zeroizing::new(
            pass,
        )));
    }
    Ok(KeySource::KeyFile(match &config.store.key_file {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => data_dir.join(p),
        None => data_dir.join(KEY_FILE),
    }))
}

fn clock(opts: &DaemonOptions) -> Result<(SharedClock, f64), DaemonError> {
    match opts.time_scale {
        None => Ok((Arc::new(SystemClock), 1.0)),
        Some(scale) => {
            if opts.config.radio.kind != RadioKind::UdpSim {
                // Allowed, for tests of the real radio stack (tests/ble-vm):
                // rotations come every 15 simulated minutes.
                tracing::warn!(
                    scale,
                    "a real radio on a simulated clock: for tests only; this node's encounters \
                     are timed by the simulated clock and its rotations are {scale}x faster"
                );
            }
            if !(scale.is_finite() && scale > 0.0 && scale <= MAX_TIME_SCALE) {
                return Err(DaemonError(format!(
                    "--time-scale {scale} is outside (0, {MAX_TIME_SCALE}]"
                )));
            }
            let origin = opts
                .time_origin_millis
                .unwrap_or_else(|| SystemClock.now_millis());
            let c = ScaledClock::anchored(origin, scale)
                .ok_or_else(|| DaemonError("--time-origin is in the future".into()))?;
            Ok((Arc::new(c), scale))
        }
    }
}

async fn start_radio(
    config: &Config,
    clock: SharedClock,
) -> Result<(Box<dyn Radio>, i8), DaemonError> {
    let r = &config.radio;
    let err = |e: crate::radio::RadioError| DaemonError(format!("radio: {e}"));
    match r.kind {
        RadioKind::UdpSim => {
            let mut c = UdpAirConfig::default();
            if let Some([x, y]) = r.position {
                c.trajectory = Trajectory::fixed(Position { x, y });
            }
            if let Some(p) = r.udp_port {
                c.port = p;
            }
            if let Some(g) = r.udp_group {
                c.group = g;
            }
            if let Some(carrier) = r.carrier {
                c.carrier = carrier.into();
            }
            c.tx_power_dbm = r.tx_power_dbm.unwrap_or(SIM_TX_POWER_DBM);
            let tx = c.tx_power_dbm;
            let radio = UdpRadio::start(c, clock).await.map_err(err)?;
            Ok((Box::new(radio), tx))
        }
        #[cfg(feature = "ble")]
        RadioKind::Ble => {
            let c = crate::radio::ble::BleConfig {
                adapter: r.adapter.clone(),
                carrier: r.carrier.map(Into::into),
                ..Default::default()
            };
            let radio = crate::radio::ble::BleRadio::start(c, clock)
                .await
                .map_err(err)?;
            Ok((
                Box::new(radio),
                r.tx_power_dbm.unwrap_or(DEFAULT_BLE_TX_POWER_DBM),
            ))
        }
        #[cfg(not(feature = "ble"))]
        RadioKind::Ble => {
            let _ = DEFAULT_BLE_TX_POWER_DBM;
            Err(DaemonError(
                "this meshtrace was built without Bluetooth support; use --radio udp-sim".into(),
            ))
        }
    }
}

/// Brings the store's trusted-issuer list in line with the configuration.
fn sync_issuers<S: crate::store::Store>(
    store: &mut ContactStore<S>,
    config: &Config,
) -> Result<(), DaemonError> {
    let wanted = config.trusted_issuers();
    let have = store.trusted_issuers()?;
    for (k, _) in &have {
        if !wanted.iter().any(|(w, _)| w == k) {
            store.remove_trusted_issuer(k)?;
        }
    }
    for (k, name) in &wanted {
        if !have.iter().any(|(h, n)| h == k && n == name) {
            store.add_trusted_issuer(*k, name)?;
        }
    }
    Ok(())
}

/// Refuses a data directory, key file or hook script that another user
/// could change (see [`crate::perms`]); warns when other users can read into
/// the data directory.
pub(crate) fn check_permissions(config: &Config, data_dir: &Path) -> Result<(), DaemonError> {
    use crate::perms::{Kind, check_not_writable_by_others, hook_script};
    check_not_writable_by_others(data_dir, "data directory", Kind::Dir).map_err(DaemonError)?;
    if let Some(w) = crate::perms::readable_by_others_warning(data_dir) {
        tracing::warn!("{w}");
    }
    if let KeySource::KeyFile(k) = key_source(config, data_dir)? {
        check_not_writable_by_others(&k, "key file", Kind::File).map_err(DaemonError)?;
    }
    if let Some(script) = config.hooks.on_exposure.as_deref().and_then(hook_script) {
        check_not_writable_by_others(script, "exposure hook", Kind::Script).map_err(DaemonError)?;
    }
    Ok(())
}

/// Runs the daemon until SIGINT, SIGTERM or SIGHUP. `ready` is called once the
/// control socket answers, with the status the daemon reports.
pub async fn run(
    opts: DaemonOptions,
    ready: impl FnOnce(&control::StatusReply),
) -> Result<(), DaemonError> {
    let config = &opts.config;
    let dir = &opts.data_dir;
    if !dir.is_dir() {
        return Err(DaemonError(format!(
            "data directory {} does not exist (create it with `meshtrace init`)",
            dir.display()
        )));
    }
    control::check_socket_path(dir).map_err(DaemonError)?;
    check_permissions(config, dir)?;
    // A fixed port in use is refused before anything starts.
    p2p::check_ports_free(&config.listen_addrs()).map_err(|e| DaemonError(e.to_string()))?;
    let (clock, scale) = clock(&opts)?;
    let source = key_source(config, dir)?;
    let mut store = ContactStore::open(dir, &source, StoreConfig::default(), clock.now()).map_err(
        |e| match e {
            StoreError::Locked(d) => DaemonError(format!(
                "another meshtrace daemon is already running on {}",
                d.display()
            )),
            other => other.into(),
        },
    )?;
    // Signals are hooked before anything starts, so that an early SIGTERM
    // still ends in a clean shutdown.
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| DaemonError(e.to_string()))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| DaemonError(e.to_string()))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| DaemonError(e.to_string()))?;
    sync_issuers(&mut store, config)?;
    store.flush()?;
    let keypair = p2p::load_or_create_identity(&dir.join(IDENTITY_FILE))
        .map_err(|e| DaemonError(e.to_string()))?;
    // One list of trusted issuers, shared by the node and the mesh.
    let trusted = TrustedIssuers::new(config.trusted_issuers().into_iter().map(|(k, _)| k));
    if trusted.is_empty() {
        tracing::warn!("no trusted issuer is configured: reports from others cannot be verified");
    }
    let mut pc = P2pConfig::builder(&config.network);
    pc.trusted_issuers(trusted.clone())
        .listen(config.listen_addrs())
        .bootstrap(config.bootstrap_addrs())
        .mdns(config.p2p.mdns)
        .light(config.p2p.light)
        .relay_server(config.p2p.relay_server)
        .stem_hops(config.p2p.stem_hops)
        .limits(config.p2p.limits());
    if let Some(t) = config.p2p.catch_up_interval() {
        pc.sync_interval(t);
    }
    let pc = pc.build().map_err(|e| DaemonError(e.to_string()))?;
    let (radio, tx_power) = start_radio(config, clock.clone()).await?;
    // The mesh serves what the store holds to peers catching up, also
    // right after a restart (docs/protocol.md §14.4).
    let initial = store.unexpired_announcement_bytes(clock.now())?;
    let mesh = p2p::spawn(pc, keypair, clock.clone(), initial)
        .await
        .map_err(|e| DaemonError(e.to_string()))?;
    let settings = NodeSettings::builder(&config.network)
        .tx_power_dbm(tx_power)
        .rx_correction_db(config.radio.rx_correction_db)
        .min_report_encounter_seconds(config.report.min_encounter.as_secs())
        .trusted_issuers(trusted)
        .build()
        .map_err(|e| DaemonError(e.to_string()))?;
    let mut handle = node::start(settings, store, radio, mesh, clock.clone())
        .await
        .map_err(|e| DaemonError(e.to_string()))?;
    let events = std::mem::replace(&mut handle.events, tokio::sync::mpsc::channel(1).1);
    let handle = Arc::new(handle);

    let socket = control::socket_path(dir);
    let listener = match control::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            let _ = handle.shutdown().await;
            return Err(DaemonError(e.to_string()));
        }
    };
    let info = DaemonInfo {
        data_dir: dir.clone(),
        radio: config.radio.kind.to_string(),
        time_scale: scale,
        pid: std::process::id(),
    };
    let server = tokio::spawn(control::serve(
        listener,
        socket.clone(),
        handle.clone(),
        info.clone(),
    ));
    let (fatal_tx, mut fatal) = tokio::sync::mpsc::channel(1);
    let hook = tokio::spawn(run_hooks(
        events,
        config.hooks.on_exposure.clone(),
        fatal_tx,
    ));
    if let Ok(s) = handle.status().await {
        ready(&control::StatusReply::new(&s, &info));
    }

    let stop = tokio::select! {
        _ = sigint.recv() => Ok("SIGINT"),
        _ = sigterm.recv() => Ok("SIGTERM"),
        _ = sighup.recv() => Ok("SIGHUP"),
        Some(e) = fatal.recv() => Err(e),
    };
    server.abort();
    let _ = std::fs::remove_file(&socket);
    let result = match stop {
        Ok(signal_name) => {
            tracing::info!(signal = signal_name, "shutting down");
            handle.shutdown().await
        }
        // The node task has stopped: nothing left to flush.
        Err(e) => {
            hook.abort();
            return Err(DaemonError(e));
        }
    };
    hook.abort();
    result.map_err(|e| DaemonError(format!("shutdown: {e}")))
}

async fn run_hooks(
    mut events: tokio::sync::mpsc::Receiver<NodeEvent>,
    command: Option<String>,
    fatal: tokio::sync::mpsc::Sender<String>,
) {
    while let Some(ev) = events.recv().await {
        match ev {
            NodeEvent::Exposure(e) => {
                let v = control::exposures_json(std::slice::from_ref(&e));
                let one = v.get(0).cloned().unwrap_or_default();
                tracing::warn!(
                    high_risk = e.exposure.high_risk,
                    "exposure: a reported person's encounter matches yours"
                );
                if let Some(cmd) = &command
                    && let Err(err) = run_hook(cmd, &one).await
                {
                    tracing::error!(error = %err, "the on-exposure hook failed");
                }
            }
            NodeEvent::RadioFailed(e) => tracing::error!(error = %e, "radio failed"),
            NodeEvent::StoreFailed(e) => {
                let _ = fatal
                    .send(format!(
                        "the store cannot write ({e}); meshtrace stopped rather than run \
                         without saving. Everything flushed before is intact; free space (or \
                         fix the disk) and start it again"
                    ))
                    .await;
            }
            NodeEvent::MeshStopped(e) => {
                let _ = fatal.send(e).await;
            }
        }
    }
}

/// Runs `sh -c cmd` with `input` as JSON on stdin; killed after
/// [`HOOK_TIMEOUT`].
async fn run_hook(cmd: &str, input: &serde_json::Value) -> Result<(), String> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = input.to_string();
        text.push('\n');
        // A hook that ignores its input may close stdin early; not an error.
        let _ = stdin.write_all(text.as_bytes()).await;
    }
    match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("exited with {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("still running after {HOOK_TIMEOUT:?}; killed")),
    }
}
