//! A page server on a real TCP port with a real HTTP client, in front of a
//! scripted node that records what it was asked (so that tests can assert
//! that a refused request changed nothing). The real daemon behind the
//! page is exercised by the CLI's tests (cli/tests/ui_cli.rs).

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshtrace_node::control::{
    ControlError, DeletedReply, ExposureDayReply, ExposureReply, PeersReply, RadioReply,
    ReportRequestReply, ReportSummaryReply, StatusReply,
};
use meshtrace_node::protocol::{
    Certificate, CertificateParams, IssuerSecretKey, ReportSecretKey, UnixTime, Zeroizing,
};
use meshtrace_ui::backend::NodeApi;
use meshtrace_ui::i18n::Lang;
use meshtrace_ui::{PageSettings, UiServer};

/// 2026-12-01 12:00 UTC: the node's (and the page's) time in these tests.
pub const NOW: u64 = 1_796_126_400;

/// What the scripted node answers, and what it was asked.
#[derive(Default)]
pub struct ScriptedNode {
    pub calls: Mutex<Vec<&'static str>>,
    pub exposures: Mutex<Vec<ExposureReply>>,
    /// When set, the node refuses report plans with these words.
    pub plan_refusal: Mutex<Option<String>>,
}

impl ScriptedNode {
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls that change something.
    pub fn changes(&self) -> Vec<&'static str> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(*c, "report_request" | "report_submit" | "delete_everything"))
            .collect()
    }

    fn log(&self, c: &'static str) {
        self.calls.lock().unwrap().push(c);
    }
}

pub fn status() -> StatusReply {
    StatusReply {
        network: "campus".into(),
        now: NOW,
        now_utc: String::new(),
        today: "2026-12-01".into(),
        pid: 1,
        data_dir: "/tmp/x".into(),
        radio: RadioReply {
            kind: "ble".into(),
            received: 0,
            sightings: 0,
            foreign: 0,
            malformed: 0,
            oversized: 0,
            queue_full: 0,
            failures: 0,
            last_failure: None,
        },
        time_scale: 1.0,
        encounters: 9,
        encounters_today: 3,
        open_encounters: 0,
        announcements: 0,
        exposures: 0,
        high_risk: 0,
        unsent_report_chunks: 0,
        purge_held: None,
        mesh: Some(PeersReply {
            peer_id: "p".into(),
            listen: vec![],
            peers: vec![],
            announcements: 0,
            outbox: 0,
            accepted: 0,
            rejected: 0,
            sync_rounds: 4,
            nat: Default::default(),
        }),
        ui_url: None,
    }
}

pub fn plan() -> ReportSummaryReply {
    ReportSummaryReply {
        window_first_day: "2026-11-25".into(),
        window_last_day: "2026-12-01".into(),
        real_tokens: 7,
        tokens_per_chunk: 2048,
        chunks: 1,
        padded_tokens: 2048,
        left_out_for_cap: 0,
        published: vec![],
    }
}

impl NodeApi for ScriptedNode {
    fn status(&self) -> Result<StatusReply, ControlError> {
        self.log("status");
        Ok(status())
    }
    fn exposures(&self) -> Result<Vec<ExposureReply>, ControlError> {
        self.log("exposures");
        Ok(self.exposures.lock().unwrap().clone())
    }
    fn report_request(&self) -> Result<ReportRequestReply, ControlError> {
        self.log("report_request");
        Ok(ReportRequestReply {
            request: request_code(),
            expires_at: NOW + 7 * 86_400,
            expires_at_utc: String::new(),
            replaced_request_made_at_utc: None,
        })
    }
    fn report_plan(&self, _: &str) -> Result<ReportSummaryReply, ControlError> {
        self.log("report_plan");
        match self.plan_refusal.lock().unwrap().clone() {
            Some(r) => Err(ControlError::Refused(r)),
            None => Ok(plan()),
        }
    }
    fn report_submit(&self, _: &str) -> Result<ReportSummaryReply, ControlError> {
        self.log("report_submit");
        Ok(plan())
    }
    fn delete_everything(&self) -> Result<DeletedReply, ControlError> {
        self.log("delete_everything");
        Ok(DeletedReply::default())
    }
}

pub fn issuer() -> IssuerSecretKey {
    IssuerSecretKey::from_bytes(&Zeroizing::new([7; 32]))
}

fn report_key() -> ReportSecretKey {
    ReportSecretKey::from_bytes(&Zeroizing::new([5; 32]))
}

pub fn request_code() -> String {
    meshtrace_node::protocol::ReportRequest {
        network_id: "campus".into(),
        report_key: report_key().public(),
    }
    .to_code()
}

/// A certificate for `network`, valid from `from` for `days` days, signed
/// by `issuer`.
pub fn certificate(issuer: &IssuerSecretKey, network: &str, from: u64, days: u64) -> String {
    let from = UnixTime(from);
    Certificate::issue(
        issuer,
        CertificateParams {
            network_id: network.into(),
            report_key: report_key().public(),
            valid_from: from,
            valid_until: from.plus(days * 86_400),
            window_first_day: from.day().minus(5),
            window_last_day: from.day(),
            max_tokens: 4096,
        },
    )
    .unwrap()
    .to_code()
}

pub fn good_certificate() -> String {
    certificate(&issuer(), "campus", NOW - 3_600, 3)
}

/// A running page server on a free port of 127.0.0.1.
pub struct Page {
    pub base: String,
    pub port: u16,
    pub node: Arc<ScriptedNode>,
    pub server: Arc<meshtrace_ui::App>,
    pub clock: Arc<AtomicU64>,
    pub agent: ureq::Agent,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

pub fn start(config_lang: Option<Lang>) -> Page {
    start_with(config_lang, |_| {})
}

pub fn start_with(config_lang: Option<Lang>, edit: impl FnOnce(&mut PageSettings)) -> Page {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(ScriptedNode::default());
    let clock = Arc::new(AtomicU64::new(NOW));
    let c = clock.clone();
    let mut settings = PageSettings {
        network: "campus".into(),
        clinics: vec![("Campus clinic".into(), issuer().public())],
        advice_url: Some("https://health.example/close-contacts".into()),
        notify: false,
        data_dir: dir.path().to_owned(),
        config_path: None,
    };
    edit(&mut settings);
    let server = rt
        .block_on(UiServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &dir.path().join("ui.key"),
            config_lang,
            node.clone(),
            settings,
            Arc::new(move || c.load(Ordering::Relaxed)),
        ))
        .unwrap();
    let base = server.url().to_owned();
    let port = server.app().gate.port();
    let app = server.app().clone();
    rt.spawn(server.serve(std::future::pending()));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    Page {
        base,
        port,
        node,
        server: app,
        clock,
        agent,
        _rt: rt,
        _dir: dir,
    }
}

/// An answer: status, headers of interest, body text.
pub struct Answer {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("the request reached the server");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

impl Page {
    pub fn login_code(&self) -> String {
        self.server
            .gate
            .secret
            .login_code(self.clock.load(Ordering::Relaxed))
    }

    /// Logs in and returns the session cookie (`name=value`).
    pub fn login(&self) -> String {
        let a = self.get(&format!("/login?t={}", self.login_code()), &[]);
        assert_eq!(a.status, 303, "{}", a.body);
        a.header("set-cookie").split(';').next().unwrap().to_owned()
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.call())
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], ctype: &str, body: &[u8]) -> Answer {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", ctype);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.send(body))
    }

    pub fn post_form(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Answer {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        self.post(
            path,
            &[("cookie", cookie)],
            "application/x-www-form-urlencoded",
            body.join("&").as_bytes(),
        )
    }

    /// The CSRF token in the forms of a page.
    pub fn csrf(&self, cookie: &str) -> String {
        let page = self.get("/report", &[("cookie", cookie)]);
        let at = page
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A multipart body with text fields and one file.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----meshtrace-test-boundary-7MA4YWxkTrZu0gW";
    let mut out = Vec::new();
    for (k, v) in fields {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; \
                 filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

pub fn exposure(high: bool, minutes: f64) -> ExposureReply {
    ExposureReply {
        report: "0123456789abcdef".into(),
        high_risk: high,
        found_at: NOW,
        found_at_utc: String::new(),
        updated_at: NOW,
        encounters: 1,
        days: vec![ExposureDayReply {
            day: "2026-12-01".into(),
            weighted_minutes: minutes,
            close_minutes: minutes,
            estimated_minutes: minutes,
            contacts: 1,
            high_risk: high,
        }],
    }
}

/// A PNG picture of the QR code of `text`.
pub fn qr_png(text: &str) -> Vec<u8> {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let width = code.width() as u32;
    let colors = code.to_colors();
    let (scale, quiet) = (4, 4);
    let side = (width + 2 * quiet) * scale;
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (x / scale, y / scale);
        let inside = mx >= quiet && my >= quiet && mx < quiet + width && my < quiet + width;
        let dark =
            inside && colors[((my - quiet) * width + (mx - quiet)) as usize] == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}
