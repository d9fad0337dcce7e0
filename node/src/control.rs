//! The local control socket of a running daemon: a Unix domain socket in
//! the data directory, owner-only (the directory is 0700, the socket 0600,
//! and the server checks the peer's user id), through which `meshtrace
//! status | exposures | peers | report` talk to the node.
//!
//! The protocol is one JSON request line and one JSON response line per
//! connection: `{"cmd":"status"}` → `{"ok":true,"result":{…}}` or
//! `{"ok":false,"error":"…"}`. Requests are bounded
//! ([`MAX_REQUEST_BYTES`]) and must arrive within [`REQUEST_TIMEOUT`].

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::node::{NodeHandle, NodeStatus, ReportSummary};
use crate::p2p::P2pStatus;
use crate::store::StoredExposure;

/// File name of the socket in the data directory.
pub(crate) const SOCKET_FILE: &str = "control.sock";
/// Largest request line (bytes).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response line the client reads (bytes).
pub(crate) const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// A request must arrive within this time after connecting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client waits for an answer.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest socket path the kernel accepts (bytes, without the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Node, radio, store and mesh status.
    Status,
    /// Exposures found, newest first.
    Exposures,
    /// The mesh: own peer id, listen addresses, connected peers.
    Peers,
    /// Create a one-time report key and return its request code.
    ReportRequest,
    /// What submitting this certificate would publish.
    ReportPlan {
        /// The certificate code.
        certificate: String,
    },
    /// Build, store and publish the report.
    ReportSubmit {
        /// The certificate code.
        certificate: String,
    },
    /// Delete everything the node keeps (the store with its keys, the mesh
    /// identity, the page's secret, the config) and stop the daemon; the
    /// answer ([`DeletedReply`]) comes once the files are gone. The page
    /// asks the person to confirm first.
    DeleteEverything,
}

/// A control-socket failure, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon answers on the socket.
    #[error("no meshtrace daemon is running for {0} (start it with `meshtrace run`)")]
    NotRunning(PathBuf),
    /// The daemon refused the request.
    #[error("{0}")]
    Refused(String),
    /// The socket path is unusable.
    #[error("control socket {path}: {reason}")]
    Socket {
        /// The socket.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The exchange failed.
    #[error("talking to the daemon failed: {0}")]
    Io(String),
    /// The daemon's answer does not parse as the reply expected (another
    /// version of meshtrace, or not a meshtrace daemon).
    #[error("{0}; is the running daemon the same version of meshtrace as this command?")]
    Malformed(String),
}

/// The socket of the daemon using `data_dir`.
pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Refuses a data directory whose control socket path would be longer than
/// the kernel accepts ([`MAX_SOCKET_PATH`]): no daemon could run on it.
pub fn check_socket_path(data_dir: &Path) -> Result<(), String> {
    let path = socket_path(data_dir);
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "data directory {} is too deep: its control socket {} would be {len} bytes long, \
             and the system allows at most {MAX_SOCKET_PATH}; choose a shorter path (a directory \
             {} bytes long or less)",
            data_dir.display(),
            path.display(),
            MAX_SOCKET_PATH - SOCKET_FILE.len() - 1
        ));
    }
    Ok(())
}

/// What the daemon says about itself in `status`.
#[derive(Clone, Debug)]
pub(crate) struct DaemonInfo {
    /// The data directory.
    pub data_dir: PathBuf,
    /// `"ble"` or `"udp-sim"`.
    pub radio: String,
    /// The clock's speed-up (1 = real time).
    pub time_scale: f64,
    /// The daemon's process id.
    pub pid: u32,
    /// The local page's address (`http://127.0.0.1:PORT`), when it is
    /// served.
    pub ui_url: Option<String>,
}

/// What the control server hands the daemon for
/// [`Request::DeleteEverything`]: where to send the outcome, and a signal
/// that the answer has been written to the client (the daemon then exits).
#[derive(Debug)]
pub(crate) struct WipeOrder {
    /// The outcome.
    pub reply: tokio::sync::oneshot::Sender<Result<DeletedReply, String>>,
    /// Closed (or sent) once the answer is written.
    pub written: tokio::sync::oneshot::Receiver<()>,
}

/// Binds the control socket owner-only. A socket left by a daemon that died
/// is replaced; one that answers means another daemon is running.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let err = |reason: String| ControlError::Socket {
        path: path.to_owned(),
        reason,
    };
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(err(format!(
            "the path is longer than {MAX_SOCKET_PATH} bytes; use a shorter data directory"
        )));
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err("another meshtrace daemon is listening on it".into()));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove a stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(e.to_string()))?;
    Ok(listener)
}

/// Serves requests until the listener fails. Connections from other users
/// are closed unanswered.
pub(crate) async fn serve(
    listener: UnixListener,
    path: PathBuf,
    node: Arc<NodeHandle>,
    info: DaemonInfo,
    wipe: tokio::sync::mpsc::Sender<WipeOrder>,
) {
    let owner = std::fs::metadata(&path).map(|m| m.uid()).ok();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        if owner.is_none() || uid != owner {
            tracing::warn!(?uid, "control connection from another user refused");
            continue;
        }
        let node = node.clone();
        let info = info.clone();
        let wipe = wipe.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &node, &info, &wipe).await {
                tracing::debug!(error = %e, "control connection");
            }
        });
    }
}

async fn handle(
    stream: UnixStream,
    node: &NodeHandle,
    info: &DaemonInfo,
    wipe: &tokio::sync::mpsc::Sender<WipeOrder>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST_BYTES as u64 + 1);
    let mut line = Vec::new();
    let n = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timeout"))??;
    let mut written = None;
    let response = if n > MAX_REQUEST_BYTES {
        Response::refused(format!("request larger than {MAX_REQUEST_BYTES} bytes"))
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Ok(Request::DeleteEverything) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                let (done, written_rx) = tokio::sync::oneshot::channel();
                written = Some(done);
                let order = WipeOrder {
                    reply,
                    written: written_rx,
                };
                match wipe.send(order).await {
                    Err(_) => Response::refused("the daemon is stopping".into()),
                    Ok(()) => match rx.await {
                        Ok(Ok(r)) => Response::answer(to_json(&r)),
                        Ok(Err(e)) => Response::refused(e),
                        Err(_) => Response::refused("the daemon is stopping".into()),
                    },
                }
            }
            Ok(req) => match answer(req, node, info).await {
                Ok(result) => Response::answer(result),
                Err(e) => Response::refused(e),
            },
            Err(e) => Response::refused(format!("bad request: {e}")),
        }
    };
    let mut out = to_json(&response).to_string();
    out.push('\n');
    let result = async {
        write.write_all(out.as_bytes()).await?;
        write.shutdown().await
    }
    .await;
    if let Some(done) = written {
        let _ = done.send(());
    }
    result
}

async fn answer(req: Request, node: &NodeHandle, info: &DaemonInfo) -> Result<Value, String> {
    let e = |e: crate::node::NodeError| e.to_string();
    Ok(match req {
        Request::Status => to_json(&StatusReply::new(&node.status().await.map_err(e)?, info)),
        Request::Exposures => to_json(&ExposureReply::list(&node.exposures().await.map_err(e)?)),
        Request::Peers => match node.status().await.map_err(e)?.mesh {
            Some(m) => to_json(&PeersReply::new(&m)),
            None => return Err("the mesh did not answer".into()),
        },
        Request::ReportRequest => to_json(&ReportRequestReply::new(
            &node.new_report_request().await.map_err(e)?,
        )),
        Request::ReportPlan { certificate } => to_json(&ReportSummaryReply::new(
            &node.report_plan(certificate).await.map_err(e)?,
        )),
        Request::ReportSubmit { certificate } => to_json(&ReportSummaryReply::new(
            &node.report_submit(certificate).await.map_err(e)?,
        )),
        // Answered by `handle`, which hands it to the daemon.
        Request::DeleteEverything => return Err("the daemon is stopping".into()),
    })
}

/// The envelope of every answer: `{"ok":true,"result":…}` or
/// `{"ok":false,"error":"…"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The reply (one of the `*Reply` types), when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the request was refused, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A carried-out request's answer.
    pub(crate) fn answer(result: Value) -> Response {
        Response {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A refusal, in one line.
    pub(crate) fn refused(error: String) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(error),
        }
    }
}

/// The reply type of each request, for [`request`].
pub trait Reply: serde::de::DeserializeOwned {
    /// What the reply answers, for error messages (e.g. `"status"`).
    const WHAT: &'static str;
}

impl Reply for StatusReply {
    const WHAT: &'static str = "status";
}
impl Reply for PeersReply {
    const WHAT: &'static str = "peers";
}
impl Reply for Vec<ExposureReply> {
    const WHAT: &'static str = "exposures";
}
impl Reply for ReportRequestReply {
    const WHAT: &'static str = "report request";
}
impl Reply for ReportSummaryReply {
    const WHAT: &'static str = "report";
}
impl Reply for DeletedReply {
    const WHAT: &'static str = "delete everything";
}

/// The answer to [`Request::DeleteEverything`]: what was deleted. The
/// daemon has stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeletedReply {
    /// The files and directories removed.
    pub deleted: Vec<String>,
}

/// Sends one request to the daemon using `data_dir` and returns its reply
/// (`T` is the request's reply type: [`StatusReply`] for
/// [`Request::Status`], and so on). A reply that does not parse is
/// [`ControlError::Malformed`].
pub fn request<T: Reply>(data_dir: &Path, req: &Request) -> Result<T, ControlError> {
    let path = socket_path(data_dir);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        // No daemon can listen there (`bind` refuses such a path), and the
        // kernel refuses to connect to it: nothing is running.
        return Err(ControlError::NotRunning(data_dir.to_owned()));
    }
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning(data_dir.to_owned()));
        }
        Err(e) => {
            return Err(ControlError::Socket {
                path,
                reason: e.to_string(),
            });
        }
    };
    let io = |e: std::io::Error| ControlError::Io(e.to_string());
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_string(req).map_err(|e| ControlError::Io(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE_BYTES));
    let mut answer = String::new();
    reader.read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(ControlError::Io("the daemon closed the connection".into()));
    }
    let response: Response = serde_json::from_str(&answer).map_err(|e| malformed(T::WHAT, &e))?;
    if !response.ok {
        return Err(ControlError::Refused(
            response
                .error
                .unwrap_or_else(|| "the daemon refused the request".to_owned()),
        ));
    }
    let result = response
        .result
        .ok_or_else(|| ControlError::Malformed(format!("the {} answer is empty", T::WHAT)))?;
    serde_json::from_value(result).map_err(|e| malformed(T::WHAT, &e))
}

fn malformed(what: &str, e: &serde_json::Error) -> ControlError {
    ControlError::Malformed(format!(
        "the {what} answer is not understood ({})",
        e.to_string().escape_debug()
    ))
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(t: meshtrace_protocol::UnixTime) -> String {
    let s = t.0 % 86_400;
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        t.day(),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The answer to [`Request::ReportRequest`] (and what `meshtrace report
/// request` builds itself when the node is stopped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRequestReply {
    /// The request code to show the issuer.
    pub request: String,
    /// Until when it can be used (UNIX seconds).
    pub expires_at: u64,
    /// The same, as a UTC date and time.
    pub expires_at_utc: String,
    /// When the older request this one replaced was made (only when it
    /// replaced one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_request_made_at_utc: Option<String>,
}

impl ReportRequestReply {
    /// The reply for a new report request.
    pub fn new(r: &crate::node::NewReportRequest) -> ReportRequestReply {
        ReportRequestReply {
            request: r.code.clone(),
            expires_at: r.expires_at.0,
            expires_at_utc: utc(r.expires_at),
            replaced_request_made_at_utc: r.replaced_made_at.map(utc),
        }
    }
}

/// The last radio failure in [`RadioReply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RadioFailureReply {
    /// When (UNIX seconds).
    pub at: u64,
    /// The same, as a UTC date and time.
    pub at_utc: String,
    /// What went wrong.
    pub error: String,
}

/// The radio part of [`StatusReply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RadioReply {
    /// `"ble"` or `"udp-sim"`.
    pub kind: String,
    /// Frames received.
    pub received: u64,
    /// Sightings of other devices.
    pub sightings: u64,
    /// Frames of other networks.
    pub foreign: u64,
    /// Frames that did not decode.
    pub malformed: u64,
    /// Frames too large.
    pub oversized: u64,
    /// Frames dropped because the node fell behind.
    pub queue_full: u64,
    /// How often the radio failed.
    pub failures: u64,
    /// The last failure, if any.
    pub last_failure: Option<RadioFailureReply>,
}

/// Old data kept because the clock is not trusted (in [`StatusReply`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PurgeHeldReply {
    /// What the clock reads (UNIX seconds).
    pub clock: u64,
    /// The same, as a UTC date and time.
    pub clock_utc: String,
    /// The last time known to be right (UNIX seconds).
    pub last_confirmed: u64,
    /// The same, as a UTC date and time.
    pub last_confirmed_utc: String,
}

/// The answer to [`Request::Status`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The network id.
    pub network: String,
    /// The node's time (UNIX seconds).
    pub now: u64,
    /// The same, as a UTC date and time.
    pub now_utc: String,
    /// The node's day.
    pub today: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The data directory.
    pub data_dir: String,
    /// The radio.
    pub radio: RadioReply,
    /// The clock's speed-up (1 = real time).
    pub time_scale: f64,
    /// Encounters stored.
    pub encounters: u64,
    /// Of which ended today (the node's day).
    #[serde(default)]
    pub encounters_today: u64,
    /// Encounters still open.
    pub open_encounters: u64,
    /// Announcement chunks held.
    pub announcements: u64,
    /// Exposures found.
    pub exposures: u64,
    /// Of which high risk.
    pub high_risk: u64,
    /// Chunks of the node's own report not yet sent.
    pub unsent_report_chunks: u64,
    /// Set while old data is kept because the clock is not trusted.
    pub purge_held: Option<PurgeHeldReply>,
    /// The mesh (absent when it did not answer).
    pub mesh: Option<PeersReply>,
    /// The local page's address (`http://127.0.0.1:PORT`; absent when it
    /// is off or could not start). `meshtrace ui` opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
}

impl StatusReply {
    /// The reply for a status snapshot.
    pub(crate) fn new(s: &NodeStatus, info: &DaemonInfo) -> StatusReply {
        StatusReply {
            network: s.network_id.clone(),
            now: s.now.0,
            now_utc: utc(s.now),
            today: s.now.day().to_string(),
            pid: info.pid,
            data_dir: info.data_dir.display().to_string(),
            radio: RadioReply {
                kind: info.radio.clone(),
                received: s.radio.received,
                sightings: s.radio.sightings,
                foreign: s.radio.foreign,
                malformed: s.radio.malformed,
                oversized: s.radio.oversized,
                queue_full: s.radio.queue_full,
                failures: s.radio_failures,
                last_failure: s
                    .last_radio_failure
                    .as_ref()
                    .map(|(at, error)| RadioFailureReply {
                        at: at.0,
                        at_utc: utc(*at),
                        error: error.clone(),
                    }),
            },
            time_scale: info.time_scale,
            encounters: s.encounters as u64,
            encounters_today: s.encounters_today as u64,
            open_encounters: s.open_encounters as u64,
            announcements: s.announcements as u64,
            exposures: s.exposures as u64,
            high_risk: s.high_risk as u64,
            unsent_report_chunks: s.unsent as u64,
            purge_held: s.purge_held.map(|h| PurgeHeldReply {
                clock: h.clock.0,
                clock_utc: utc(h.clock),
                last_confirmed: h.known_good.0,
                last_confirmed_utc: utc(h.known_good),
            }),
            mesh: s.mesh.as_ref().map(PeersReply::new),
            ui_url: info.ui_url.clone(),
        }
    }
}

/// One connected peer in [`PeersReply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerReply {
    /// Its peer id.
    pub peer_id: String,
    /// A full node (in the gossip mesh), not a light one.
    pub full: bool,
    /// Its gossip score, when known.
    pub score: Option<f64>,
    /// Reached only through a relay circuit (no direct connection).
    #[serde(default)]
    pub relayed: bool,
}

/// The answer to [`Request::Peers`] (and the mesh part of [`StatusReply`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeersReply {
    /// The node's own peer id.
    pub peer_id: String,
    /// Its listen addresses.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: Vec<PeerReply>,
    /// Announcements in the mesh's pool.
    pub announcements: u64,
    /// Announcements waiting to be sent.
    pub outbox: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// Messages rejected.
    pub rejected: u64,
    /// Catch-up rounds run.
    pub sync_rounds: u64,
    /// Connections and NAT traversal (absent in replies of older daemons).
    #[serde(default)]
    pub nat: NatReply,
}

/// Connections and NAT traversal, in [`PeersReply`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatReply {
    /// AutoNAT's verdict: `"public"`, `"private"` or `"unknown"`.
    pub reachability: String,
    /// Established connections now.
    pub connections: u64,
    /// Relays holding a reservation for this node.
    pub relay_reservations: u64,
    /// Inbound connections refused by the connection limits.
    pub connections_denied: u64,
    /// Relayed connections upgraded to direct ones by hole punching.
    pub hole_punches: u64,
    /// Hole punches that failed.
    pub hole_punch_failures: u64,
    /// As a relay: reservations accepted.
    pub relay_reservations_served: u64,
    /// As a relay: circuits accepted.
    pub relay_circuits_served: u64,
    /// As a relay: reservations and circuits refused.
    pub relay_refused: u64,
    /// Bytes received through relay circuits.
    pub relayed_bytes_in: u64,
    /// Bytes sent through relay circuits.
    pub relayed_bytes_out: u64,
    /// Bytes received on all connections.
    pub bytes_in: u64,
    /// Bytes sent on all connections.
    pub bytes_out: u64,
}

impl PeersReply {
    /// The reply for a mesh status.
    pub(crate) fn new(m: &P2pStatus) -> PeersReply {
        PeersReply {
            peer_id: m.peer_id.to_string(),
            listen: m.listen.iter().map(ToString::to_string).collect(),
            peers: m
                .peers
                .iter()
                .map(|p| PeerReply {
                    peer_id: p.peer.to_string(),
                    full: p.full,
                    score: p.score,
                    relayed: m.nat.relayed_peers.contains(&p.peer),
                })
                .collect(),
            announcements: m.pool as u64,
            outbox: m.outbox as u64,
            accepted: m.counters.accepted,
            rejected: m.counters.rejected,
            sync_rounds: m.counters.sync_rounds,
            nat: NatReply {
                reachability: m.nat.reachability.as_str().to_owned(),
                connections: m.nat.connections as u64,
                relay_reservations: m.nat.relay_reservations as u64,
                connections_denied: m.nat.counters.connections_denied,
                hole_punches: m.nat.counters.hole_punches,
                hole_punch_failures: m.nat.counters.hole_punch_failures,
                relay_reservations_served: m.nat.counters.relay_reservations_served,
                relay_circuits_served: m.nat.counters.relay_circuits_served,
                relay_refused: m.nat.counters.relay_refused,
                relayed_bytes_in: m.nat.counters.relayed_bytes_in,
                relayed_bytes_out: m.nat.counters.relayed_bytes_out,
                bytes_in: m.counters.bytes_in,
                bytes_out: m.counters.bytes_out,
            },
        }
    }
}

/// One day of an exposure in [`ExposureReply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExposureDayReply {
    /// The day (`YYYY-MM-DD`).
    pub day: String,
    /// Minutes of exposure weighted by closeness (one decimal).
    pub weighted_minutes: f64,
    /// Minutes at close range (one decimal).
    pub close_minutes: f64,
    /// Estimated minutes within 2 m (one decimal): the figure people are
    /// told.
    pub estimated_minutes: f64,
    /// Distinct contacts.
    pub contacts: u32,
    /// Whether this day alone is high risk.
    pub high_risk: bool,
}

/// One exposure: the answer to [`Request::Exposures`] is a list of them,
/// newest first, and the exposure hook gets one on its standard input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExposureReply {
    /// The report, named by a short prefix of its one-time key (public in
    /// the announcement; it identifies the report, not the person).
    pub report: String,
    /// Whether the exposure is high risk.
    pub high_risk: bool,
    /// When it was found (UNIX seconds).
    pub found_at: u64,
    /// The same, as a UTC date and time.
    pub found_at_utc: String,
    /// When it last changed (UNIX seconds).
    pub updated_at: u64,
    /// Encounters that matched.
    pub encounters: u64,
    /// Per day.
    pub days: Vec<ExposureDayReply>,
}

/// Digits of a report key shown to people.
pub(crate) const REPORT_PREFIX_DIGITS: usize = 16;

impl ExposureReply {
    /// The reply for a stored exposure.
    pub(crate) fn new(e: &StoredExposure) -> ExposureReply {
        let x = &e.exposure;
        let tenth = |m: f64| (m * 10.0).round() / 10.0;
        ExposureReply {
            report: x.report_key.to_hex()[..REPORT_PREFIX_DIGITS].to_owned(),
            high_risk: x.high_risk,
            found_at: e.found_at.0,
            found_at_utc: utc(e.found_at),
            updated_at: e.updated_at.0,
            encounters: x.encounters.len() as u64,
            days: x
                .days
                .iter()
                .map(|d| ExposureDayReply {
                    day: d.day.to_string(),
                    weighted_minutes: tenth(d.weighted_minutes),
                    close_minutes: tenth(d.close_minutes),
                    estimated_minutes: tenth(d.estimated_minutes),
                    contacts: d.contacts,
                    high_risk: d.high_risk,
                })
                .collect(),
        }
    }

    /// The replies for a list of exposures, in its order.
    pub fn list(list: &[StoredExposure]) -> Vec<ExposureReply> {
        list.iter().map(ExposureReply::new).collect()
    }
}

/// The answer to [`Request::ReportPlan`] and [`Request::ReportSubmit`]:
/// what the report publishes (or published).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSummaryReply {
    /// The first day of contacts covered.
    pub window_first_day: String,
    /// The last day of contacts covered.
    pub window_last_day: String,
    /// Real encounter tokens.
    pub real_tokens: u64,
    /// Tokens in each chunk (with padding).
    pub tokens_per_chunk: u64,
    /// Chunks.
    pub chunks: u64,
    /// All tokens published, padding included.
    pub padded_tokens: u64,
    /// Short encounters left out because the certificate allows fewer tokens.
    pub left_out_for_cap: u64,
    /// The published chunks' ids (short prefixes; empty for a plan).
    pub published: Vec<String>,
}

/// Digits of an announcement id shown to people.
pub(crate) const ANNOUNCEMENT_PREFIX_DIGITS: usize = 16;

impl ReportSummaryReply {
    /// The reply for a report plan or a published report.
    pub(crate) fn new(s: &ReportSummary) -> ReportSummaryReply {
        let tokens_per_chunk = s.plan.tokens_per_chunk as u64;
        ReportSummaryReply {
            window_first_day: s.window.0.to_string(),
            window_last_day: s.window.1.to_string(),
            real_tokens: s.plan.real_tokens as u64,
            tokens_per_chunk,
            chunks: u64::from(s.plan.chunks),
            padded_tokens: tokens_per_chunk * u64::from(s.plan.chunks),
            left_out_for_cap: s.dropped_for_cap as u64,
            published: s
                .chunks
                .iter()
                .map(|c| {
                    c.0.iter()
                        .take(ANNOUNCEMENT_PREFIX_DIGITS / 2)
                        .map(|x| format!("{x:02x}"))
                        .collect()
                })
                .collect(),
        }
    }
}

/// The JSON form of exposures (a list of [`ExposureReply`]).
pub(crate) fn exposures_json(list: &[StoredExposure]) -> Value {
    to_json(&ExposureReply::list(list))
}

/// A reply as JSON. (The replies hold only strings, numbers, booleans and
/// lists: serialising them cannot fail; a non-finite number becomes null.)
fn to_json(reply: &impl Serialize) -> Value {
    serde_json::to_value(reply).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
