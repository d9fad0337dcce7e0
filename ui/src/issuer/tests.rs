//! The clinic page's server on a real loopback socket: its key and secret
//! files, the login, and certifying from a pasted code and from a photo of
//! the QR code. (The refusals and bad input against the real binary are in
//! tests/tests/web_ui.rs.)

use std::io::Cursor;
use std::os::unix::fs::PermissionsExt;

use meshtrace_node::protocol::{
    Certificate, IssuerSecretKey, ReportPublicKey, ReportRequest, UnixTime, Zeroizing,
};

use super::*;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// A key file (owner-only) in a fresh directory.
fn key_file(dir: &Path) -> PathBuf {
    let p = dir.join("clinic.key");
    meshtrace_node::store::create_key_file(&p).unwrap();
    p
}

fn settings(key: &Path) -> IssuerSettings {
    IssuerSettings {
        key_file: key.to_owned(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        network: Some("town".into()),
        language: None,
        max_tokens: certify::DEFAULT_MAX_TOKENS,
    }
}

/// A running server on its own runtime thread; returns (login link, base
/// URL, the stop handle).
fn serve(key: &Path) -> (String, String, tokio::sync::oneshot::Sender<()>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(IssuerServer::bind(&settings(key), gate::system_clock()))
        .unwrap();
    let (link, url) = (server.login_url(), server.url().to_owned());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        rt.block_on(server.serve(async move {
            let _ = rx.await;
        }))
    });
    (link, url, tx)
}

fn login(link: &str) -> String {
    let r = agent().get(link).call().unwrap();
    assert_eq!(r.status(), 303);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("meshtrace_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// A multipart body with text fields and at most one file.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let b = "issuer-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"qr.png\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

/// A PNG of the QR code of `text`, 4 pixels per module, with its quiet zone.
fn qr_png(text: &str) -> Vec<u8> {
    let c = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let width = c.width() as u32;
    let (quiet, scale) = (4, 4);
    let colors = c.to_colors();
    let side = (width + 2 * quiet) * scale;
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (x / scale, y / scale);
        let dark = mx >= quiet
            && my >= quiet
            && mx < quiet + width
            && my < quiet + width
            && colors[((my - quiet) * width + (mx - quiet)) as usize] == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn request_code(network: &str) -> String {
    ReportRequest {
        network_id: network.into(),
        report_key: ReportPublicKey([5; 32]),
    }
    .to_code()
}

#[test]
fn a_pasted_code_and_a_photo_of_its_qr_code_both_give_a_certificate_of_this_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let public = {
        let seed = read_key_file(&key).unwrap();
        IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes())).public()
    };
    let (link, url, stop) = serve(&key);
    // The page's secret: beside the key, owner-only.
    let secret = secret_path(&key);
    assert_eq!(secret, dir.path().join("clinic.key.page-secret"));
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let cookie = login(&link);
    let page = agent()
        .get(&format!("{url}/"))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let csrf = csrf_of(&page);
    let today = UnixTime(gate::system_clock()()).day();
    let (first, last) = (today.minus(3).to_string(), today.to_string());
    let code = request_code("town");
    let png = qr_png(&code);
    for (pasted, photo) in [(code.as_str(), None), ("", Some(("photo", png.as_slice())))] {
        let fields = [
            ("csrf", csrf.as_str()),
            ("request", pasted),
            ("first_day", first.as_str()),
            ("last_day", last.as_str()),
            ("valid_days", "2"),
        ];
        let (ctype, body) = multipart(&fields, photo);
        let mut r = agent()
            .post(&format!("{url}/certify"))
            .header("Cookie", &cookie)
            .header("Content-Type", &ctype)
            .send(&body[..])
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.body_mut().read_to_string().unwrap();
        let at = html.find("MTCT1:").expect("a certificate code");
        let len = html[at..].find('<').unwrap();
        let cert = Certificate::from_code(&html[at..at + len]).unwrap();
        let now = UnixTime(gate::system_clock()());
        cert.verify("town", &[public], now).unwrap();
        let p = cert.params();
        assert_eq!(
            (p.window_first_day, p.window_last_day),
            (today.minus(3), today)
        );
        assert_eq!(p.report_key, ReportPublicKey([5; 32]));
        assert!(p.valid_until.seconds_since(p.valid_from) == 2 * 86_400);
        assert!(html.contains("<svg"), "the QR code of the certificate");
    }
    let _ = stop.send(());
}

#[test]
fn a_key_file_other_users_can_read_is_refused_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(IssuerServer::bind(&settings(&key), gate::system_clock()))
        .unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    assert!(
        !secret_path(&key).exists(),
        "no secret is made for a refused key"
    );
    // Only 127.0.0.1.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut s = settings(&key);
    s.listen = "0.0.0.0:0".parse().unwrap();
    let e = rt
        .block_on(IssuerServer::bind(&s, gate::system_clock()))
        .unwrap_err();
    assert!(e.to_string().starts_with("--listen"), "{e}");
}
