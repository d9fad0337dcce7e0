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
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::node::{NodeHandle, NodeStatus, ReportSummary};
use crate::p2p::P2pStatus;
use crate::store::StoredExposure;

/// File name of the socket in the data directory.
pub const SOCKET_FILE: &str = "control.sock";
/// Largest request line (bytes).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response line the client reads (bytes).
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// A request must arrive within this time after connecting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client waits for an answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
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
}

/// The socket of the daemon using `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
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
pub struct DaemonInfo {
    /// The data directory.
    pub data_dir: PathBuf,
    /// `"ble"` or `"udp-sim"`.
    pub radio: String,
    /// The clock's speed-up (1 = real time).
    pub time_scale: f64,
    /// The daemon's process id.
    pub pid: u32,
}

/// Binds the control socket owner-only. A socket left by a daemon that died
/// is replaced; one that answers means another daemon is running.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
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
pub async fn serve(listener: UnixListener, path: PathBuf, node: Arc<NodeHandle>, info: DaemonInfo) {
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
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &node, &info).await {
                tracing::debug!(error = %e, "control connection");
            }
        });
    }
}

async fn handle(stream: UnixStream, node: &NodeHandle, info: &DaemonInfo) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST_BYTES as u64 + 1);
    let mut line = Vec::new();
    let n = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timeout"))??;
    let response = if n > MAX_REQUEST_BYTES {
        json!({"ok": false, "error": format!("request larger than {MAX_REQUEST_BYTES} bytes")})
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Ok(req) => match answer(req, node, info).await {
                Ok(result) => json!({"ok": true, "result": result}),
                Err(e) => json!({"ok": false, "error": e}),
            },
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        }
    };
    let mut out = response.to_string();
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

async fn answer(req: Request, node: &NodeHandle, info: &DaemonInfo) -> Result<Value, String> {
    let e = |e: crate::node::NodeError| e.to_string();
    Ok(match req {
        Request::Status => status_json(&node.status().await.map_err(e)?, info),
        Request::Exposures => exposures_json(&node.exposures().await.map_err(e)?),
        Request::Peers => match node.status().await.map_err(e)?.mesh {
            Some(m) => peers_json(&m),
            None => return Err("the mesh did not answer".into()),
        },
        Request::ReportRequest => report_request_json(&node.new_report_request().await.map_err(e)?),
        Request::ReportPlan { certificate } => {
            summary_json(&node.report_plan(certificate).await.map_err(e)?)
        }
        Request::ReportSubmit { certificate } => {
            summary_json(&node.report_submit(certificate).await.map_err(e)?)
        }
    })
}

/// Sends one request to the daemon using `data_dir` and returns its result.
pub fn request(data_dir: &Path, req: &Request) -> Result<Value, ControlError> {
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
    let v: Value = serde_json::from_str(&answer)
        .map_err(|e| ControlError::Io(format!("malformed answer: {e}")))?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    } else {
        Err(ControlError::Refused(
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("the daemon refused the request")
                .to_owned(),
        ))
    }
}

fn time_json(t: meshtrace_protocol::UnixTime) -> Value {
    json!(t.0)
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

/// The JSON form of a new report request: the code, until when it can be
/// used, and when the older request it replaced was made (only when it
/// replaced one).
pub fn report_request_json(r: &crate::node::NewReportRequest) -> Value {
    let mut v = json!({
        "request": r.code,
        "expires_at": time_json(r.expires_at),
        "expires_at_utc": utc(r.expires_at),
    });
    if let Some(t) = r.replaced_made_at {
        v["replaced_request_made_at_utc"] = json!(utc(t));
    }
    v
}

/// The JSON form of a status snapshot.
pub fn status_json(s: &NodeStatus, info: &DaemonInfo) -> Value {
    json!({
        "network": s.network_id,
        "now": time_json(s.now),
        "now_utc": utc(s.now),
        "today": s.now.day().to_string(),
        "pid": info.pid,
        "data_dir": info.data_dir.display().to_string(),
        "radio": {
            "kind": info.radio,
            "received": s.radio.received,
            "sightings": s.radio.sightings,
            "foreign": s.radio.foreign,
            "malformed": s.radio.malformed,
            "oversized": s.radio.oversized,
            "queue_full": s.radio.queue_full,
            "failures": s.radio_failures,
            "last_failure": s.last_radio_failure.as_ref().map(|(at, error)| json!({
                "at": time_json(*at),
                "at_utc": utc(*at),
                "error": error,
            })),
        },
        "time_scale": info.time_scale,
        "encounters": s.encounters,
        "open_encounters": s.open_encounters,
        "announcements": s.announcements,
        "exposures": s.exposures,
        "high_risk": s.high_risk,
        "unsent_report_chunks": s.unsent,
        "purge_held": s.purge_held.map(|h| json!({
            "clock": time_json(h.clock),
            "clock_utc": utc(h.clock),
            "last_confirmed": time_json(h.known_good),
            "last_confirmed_utc": utc(h.known_good),
        })),
        "mesh": s.mesh.as_ref().map(peers_json),
    })
}

/// The JSON form of the mesh status.
pub fn peers_json(m: &P2pStatus) -> Value {
    json!({
        "peer_id": m.peer_id.to_string(),
        "listen": m.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "peers": m.peers.iter().map(|p| json!({
            "peer_id": p.peer.to_string(),
            "full": p.full,
            "score": p.score,
        })).collect::<Vec<_>>(),
        "announcements": m.pool,
        "outbox": m.outbox,
        "accepted": m.counters.accepted,
        "rejected": m.counters.rejected,
        "sync_rounds": m.counters.sync_rounds,
    })
}

/// The JSON form of exposures. A report is named by a short prefix of its
/// one-time key (public in the announcement; it identifies the report, not
/// the person).
pub fn exposures_json(list: &[StoredExposure]) -> Value {
    Value::Array(
        list.iter()
            .map(|e| {
                let x = &e.exposure;
                json!({
                    "report": x.report_key.to_hex()[..16].to_owned(),
                    "high_risk": x.high_risk,
                    "found_at": time_json(e.found_at),
                    "found_at_utc": utc(e.found_at),
                    "updated_at": time_json(e.updated_at),
                    "encounters": x.encounters.len(),
                    "days": x.days.iter().map(|d| json!({
                        "day": d.day.to_string(),
                        "weighted_minutes": (d.weighted_minutes * 10.0).round() / 10.0,
                        "close_minutes": (d.close_minutes * 10.0).round() / 10.0,
                        "contacts": d.contacts,
                        "high_risk": d.high_risk,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// The JSON form of a report plan or a published report.
pub fn summary_json(s: &ReportSummary) -> Value {
    json!({
        "window_first_day": s.window.0.to_string(),
        "window_last_day": s.window.1.to_string(),
        "real_tokens": s.plan.real_tokens,
        "tokens_per_chunk": s.plan.tokens_per_chunk,
        "chunks": s.plan.chunks,
        "padded_tokens": s.plan.tokens_per_chunk * s.plan.chunks as usize,
        "left_out_for_cap": s.dropped_for_cap,
        "published": s.chunks.iter().map(|c| hex_prefix(&c.0)).collect::<Vec<_>>(),
    })
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_ones_are_refused() {
        for r in [
            Request::Status,
            Request::Exposures,
            Request::Peers,
            Request::ReportRequest,
            Request::ReportPlan {
                certificate: "MTCT1:X".into(),
            },
        ] {
            let s = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format-disk"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"cmd":"report-plan","certificate":"x","y":1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"report-plan"}"#).is_err());
    }

    #[test]
    fn client_reports_a_missing_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let e = request(dir.path(), &Request::Status).unwrap_err();
        assert!(matches!(e, ControlError::NotRunning(_)), "{e}");
        assert!(e.to_string().contains("meshtrace run"));
    }

    #[tokio::test]
    async fn bind_is_owner_only_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        {
            let _l = bind(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // A live listener: a second bind is refused.
            let e = bind(&path).unwrap_err().to_string();
            assert!(e.contains("another meshtrace daemon"), "{e}");
        }
        // The listener is gone but the file stays (a crashed daemon).
        assert!(path.exists());
        let _l = bind(&path).unwrap();
    }
}
