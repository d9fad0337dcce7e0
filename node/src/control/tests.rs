//! Tests of the control socket: requests, typed replies, refusals.

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
        Request::DeleteEverything,
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
    let e = request::<StatusReply>(dir.path(), &Request::Status).unwrap_err();
    assert!(matches!(e, ControlError::NotRunning(_)), "{e}");
    assert!(e.to_string().contains("meshtrace run"));
}

/// Answers the connections to `dir`'s socket, in order, with `replies`.
fn fake_daemon(dir: &Path, replies: &[&str]) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(socket_path(dir)).unwrap();
    let replies: Vec<String> = replies.iter().map(|r| format!("{r}\n")).collect();
    std::thread::spawn(move || {
        for reply in replies {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            (&stream).write_all(reply.as_bytes()).unwrap();
        }
    })
}

#[test]
fn client_reads_typed_replies_and_names_a_malformed_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = ReportRequestReply {
        request: "MTRQ1:X".into(),
        expires_at: 86_400,
        expires_at_utc: utc(meshtrace_protocol::UnixTime(86_400)),
        replaced_request_made_at_utc: None,
    };
    let good_line = to_json(&Response::answer(to_json(&good))).to_string();
    let refused = to_json(&Response::refused("no such certificate".into())).to_string();
    let server = fake_daemon(
        dir.path(),
        &[
            &good_line,
            &refused,
            r#"{"ok":true,"result":{"request":7}}"#,
            r#"{"ok":true}"#,
            "not json",
        ],
    );
    let ask = || request::<ReportRequestReply>(dir.path(), &Request::ReportRequest);
    assert_eq!(ask().unwrap(), good);
    assert!(!good_line.contains("replaced"), "{good_line}");
    let e = ask().unwrap_err();
    assert!(
        matches!(e, ControlError::Refused(ref m) if m == "no such certificate"),
        "{e}"
    );
    for _ in 0..3 {
        let e = ask().unwrap_err();
        assert!(matches!(e, ControlError::Malformed(_)), "{e}");
        let text = e.to_string();
        assert!(text.contains("report request answer"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
    server.join().unwrap();
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
