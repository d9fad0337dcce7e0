//! The daemon behind `meshtrace run`: opens the store, starts the radio,
//! the mesh and the node task, serves the control socket, runs the
//! exposure hook, and shuts down gracefully (open encounters closed, store
//! flushed, socket removed) on SIGINT, SIGTERM or SIGHUP (closing the
//! terminal of a daemon started with `&` sends SIGHUP).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use meshtrace_protocol::RiskConfig;
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
/// The local page's secret in the data directory (owner-only): its login
/// links and session cookies are made with it.
pub const UI_SECRET_FILE: &str = "ui.key";
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
    /// The config file the daemon was started from (deleted with
    /// everything else on [`control::Request::DeleteEverything`]).
    pub config_path: Option<PathBuf>,
    /// Told of every new or updated exposure (the page's desktop
    /// notifications), besides the `on_exposure` hook.
    pub exposure_listener: Option<ExposureListener>,
}

/// Starts the local page beside the control socket (the daemon calls it
/// once the node runs and its checks have passed): given the signal to
/// stop, it binds, starts serving and returns the page's address (reported
/// in `status`, where `meshtrace ui` finds it) and its task, or why it
/// could not start (the node then runs without it).
pub type StartPage = Box<
    dyn FnOnce(
            tokio::sync::oneshot::Receiver<()>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<(String, tokio::task::JoinHandle<()>), String>,
                    > + Send,
            >,
        > + Send,
>;

/// How long the page may take to finish its answers once the node has
/// stopped (the "everything is deleted" page is one of them).
pub(crate) const PAGE_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running page: its stop signal and task.
type RunningPage = Option<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)>;

/// Stops the page, letting it finish the answers under way (bounded).
async fn stop_page(page: RunningPage) {
    if let Some((stop, task)) = page {
        let _ = stop.send(());
        let _ = tokio::time::timeout(PAGE_STOP_TIMEOUT, task).await;
    }
}

/// A function told of every new or updated exposure (it must return
/// quickly: it runs on the hook task).
#[derive(Clone)]
pub struct ExposureListener(pub Arc<dyn Fn(&control::ExposureReply) + Send + Sync>);

impl std::fmt::Debug for ExposureListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExposureListener")
    }
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

/// Starts the radio the configuration names (`[radio]`, validated), with
/// its scan timing ([`Config::scan_timing`]); returns it with the TX power
/// its frames must carry (dBm). Used by the daemon and by `meshtrace
/// calibrate`.
pub async fn start_radio(
    config: &Config,
    clock: SharedClock,
) -> Result<(Box<dyn Radio>, i8), DaemonError> {
    let r = &config.radio;
    let err = |e: crate::radio::RadioError| DaemonError(format!("radio: {e}"));
    let scan = config.scan_timing();
    match r.kind {
        RadioKind::UdpSim => {
            let mut c = UdpAirConfig::default();
            c.duty = scan.duty(c.duty);
            c.duty.advertising_interval_ms =
                u64::try_from(config.advertising_interval().as_millis()).unwrap_or(u64::MAX);
            c.tx_offset_db = r.udp_tx_offset_db;
            c.rx_offset_db = r.udp_rx_offset_db;
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
            let tx = r.tx_power_dbm.unwrap_or(DEFAULT_BLE_TX_POWER_DBM);
            let c = crate::radio::ble::BleConfig {
                adapter: r.adapter.clone(),
                carrier: r.carrier.map(Into::into),
                scan,
                tx_power_dbm: tx,
                ..Default::default()
            };
            let radio = crate::radio::ble::BleRadio::start(c, clock)
                .await
                .map_err(err)?;
            Ok((Box::new(radio), tx))
        }
        RadioKind::External => Err(DaemonError(
            "radio: the external radio is an app's Bluetooth, driven through the mobile library \
             (meshtrace-mobile); `meshtrace run` cannot use it: set [radio] kind to \"ble\" or \
             \"udp-sim\""
                .into(),
        )),
        #[cfg(not(feature = "ble"))]
        RadioKind::Ble => {
            let _ = (DEFAULT_BLE_TX_POWER_DBM, scan);
            Err(DaemonError(
                "this meshtrace was built without Bluetooth support; use --radio udp-sim".into(),
            ))
        }
    }
}

/// Announcements the store holds, unexpired at `now` and verifying
/// against `trusted`, as the mesh's pool holds them (bookkeeping only).
/// Read and verified in batches of [`HELD_BATCH`] (on every core), so that
/// at most one batch of bytes is in memory at a time.
pub fn held_announcements<S: crate::store::Store>(
    store: &ContactStore<S>,
    trusted: &TrustedIssuers,
    network: &str,
    now: meshtrace_protocol::UnixTime,
) -> Result<Vec<p2p::HeldAnnouncement>, StoreError> {
    let keys = trusted.keys();
    let ctx = meshtrace_protocol::VerifyContext {
        network_id: network,
        trusted_issuers: &keys,
        now,
    };
    let mut out = Vec::new();
    for ids in store.unexpired_announcement_ids(now).chunks(HELD_BATCH) {
        let mut batch = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(bytes) = store.announcement_bytes(id)? {
                batch.push(bytes);
            }
        }
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        for (v, bytes) in p2p::verify_parallel(&refs, &ctx).into_iter().zip(&batch) {
            if let Ok(v) = v {
                out.push(p2p::HeldAnnouncement::of(&v, bytes.len()));
            }
        }
    }
    Ok(out)
}

/// Announcements read and verified at once when the daemon starts.
const HELD_BATCH: usize = 256;

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

/// Runs the daemon until SIGINT, SIGTERM or SIGHUP (or until the page asks
/// it to delete everything). `page`, when given, starts the local page
/// beside the control socket; it is stopped with the daemon. `ready` is
/// called once the control socket answers, with the status the daemon
/// reports.
pub async fn run(
    opts: DaemonOptions,
    page: Option<StartPage>,
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
    // right after a restart (docs/protocol.md §14.4); the bytes stay in the
    // store (§15), the mesh holds their bookkeeping.
    let held = held_announcements(&store, &trusted, &config.network, clock.now())?;
    let mesh = p2p::spawn_with_store(pc, keypair, clock.clone(), held)
        .await
        .map_err(|e| DaemonError(e.to_string()))?;
    let risk = RiskConfig::builder()
        .model(config.risk.model.into())
        .build()
        .map_err(|e| DaemonError(format!("risk: {e}")))?;
    tracing::info!(
        scan = %config.scan_timing(),
        risk_model = ?risk.model(),
        "radio scan timing and risk model"
    );
    let settings = NodeSettings::builder(&config.network)
        .tx_power_dbm(tx_power)
        .rx_correction_db(config.radio.rx_correction_db)
        .risk(risk)
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
    let mut running_page: RunningPage = None;
    let mut ui_url = None;
    if let Some(start) = page {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        match start(stopped).await {
            Ok((url, task)) => {
                ui_url = Some(url);
                running_page = Some((stop, task));
            }
            Err(e) => tracing::warn!("the local page is not served: {e}"),
        }
    }
    let info = DaemonInfo {
        data_dir: dir.clone(),
        radio: config.radio.kind.to_string(),
        time_scale: scale,
        pid: std::process::id(),
        ui_url,
    };
    let (wipe_tx, mut wipe) = tokio::sync::mpsc::channel(1);
    let server = tokio::spawn(control::serve(
        listener,
        socket.clone(),
        handle.clone(),
        info.clone(),
        wipe_tx,
    ));
    let (fatal_tx, mut fatal) = tokio::sync::mpsc::channel(1);
    let hook = tokio::spawn(run_hooks(
        events,
        config.hooks.on_exposure.clone(),
        opts.exposure_listener.clone(),
        fatal_tx,
    ));
    if let Ok(s) = handle.status().await {
        ready(&control::StatusReply::new(&s, &info));
    }

    let stop = tokio::select! {
        _ = sigint.recv() => Ok("SIGINT"),
        _ = sigterm.recv() => Ok("SIGTERM"),
        _ = sighup.recv() => Ok("SIGHUP"),
        Some(order) = wipe.recv() => Err(Stop::Wipe(order)),
        Some(e) = fatal.recv() => Err(Stop::Fatal(e)),
    };
    server.abort();
    let _ = std::fs::remove_file(&socket);
    let result = match stop {
        Err(Stop::Wipe(order)) => {
            tracing::warn!("deleting everything this node keeps, as asked on its page");
            hook.abort();
            let stopped = handle.shutdown().await;
            let outcome = match stopped {
                Err(e) => Err(format!("the node did not stop ({e}); nothing was deleted")),
                Ok(()) => delete_everything(&opts, dir),
            };
            let failed = outcome.as_ref().err().cloned();
            let _ = order.reply.send(outcome);
            // The answer reaches the page before the daemon exits.
            let _ = tokio::time::timeout(WIPE_ANSWER_TIMEOUT, order.written).await;
            stop_page(running_page).await;
            return match failed {
                None => Ok(()),
                Some(e) => Err(DaemonError(e)),
            };
        }
        Ok(signal_name) => {
            tracing::info!(signal = signal_name, "shutting down");
            stop_page(running_page).await;
            handle.shutdown().await
        }
        // The node task has stopped: nothing left to flush.
        Err(Stop::Fatal(e)) => {
            hook.abort();
            stop_page(running_page).await;
            return Err(DaemonError(e));
        }
    };
    hook.abort();
    result.map_err(|e| DaemonError(format!("shutdown: {e}")))
}

/// Why the daemon stops other than by a signal.
enum Stop {
    /// Delete everything, then stop.
    Wipe(control::WipeOrder),
    /// The node cannot go on.
    Fatal(String),
}

/// How long the daemon waits, after deleting everything, for the answer to
/// reach the one who asked.
pub(crate) const WIPE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Deletes what the node keeps: the store (database and metadata), its key
/// file, the mesh identity, the page's secret and the config file. Key
/// files are overwritten with zeros before they are removed. Only files
/// meshtrace made are touched (never the whole data directory, which a
/// person may have pointed at a folder holding other files).
fn delete_everything(opts: &DaemonOptions, dir: &Path) -> Result<control::DeletedReply, String> {
    use crate::store::{DB_DIR, META_FILE};
    let mut targets: Vec<(PathBuf, bool)> = vec![
        (dir.join(META_FILE), false),
        (dir.join(DB_DIR), false),
        (dir.join(IDENTITY_FILE), true),
        (dir.join(UI_SECRET_FILE), true),
        (dir.join(crate::store::SPACE_PROBE_FILE), false),
    ];
    if let Ok(KeySource::KeyFile(k)) = key_source(&opts.config, dir) {
        targets.push((k, true));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&format!("{DB_DIR}.damaged-")))
            {
                targets.push((e.path(), false));
            }
        }
    }
    if let Some(c) = &opts.config_path {
        targets.push((c.clone(), false));
    }
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for (path, secret) in targets {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let r = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            if secret && meta.is_file() {
                overwrite_with_zeros(&path, meta.len());
            }
            std::fs::remove_file(&path)
        };
        match r {
            Ok(()) => deleted.push(path.display().to_string()),
            Err(e) => failed.push(format!("{} ({e})", path.display())),
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "meshtrace stopped but could not delete {}; delete them by hand",
            failed.join(", ")
        ));
    }
    tracing::warn!(files = deleted.len(), "everything deleted; stopping");
    Ok(control::DeletedReply { deleted })
}

/// Best effort: the file's bytes replaced by zeros on disk before it is
/// removed (the key no longer opens anything even if the file is
/// recovered).
fn overwrite_with_zeros(path: &Path, len: u64) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 20)];
        let _ = f.write_all(&zeros).and_then(|()| f.sync_all());
    }
}

async fn run_hooks(
    mut events: tokio::sync::mpsc::Receiver<NodeEvent>,
    command: Option<String>,
    listener: Option<ExposureListener>,
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
                if let Some(l) = &listener {
                    (l.0)(&control::ExposureReply::new(&e));
                }
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
