//! The local web pages in a real browser, against real daemons.
//!
//! Two `meshtrace run` daemons (A and B, 1 m apart on a private udp-sim air,
//! meshed over loopback TCP, one shared simulated clock at ×60) serve their
//! pages; `meshtrace issuer serve` serves the clinic's page. One headless
//! Chromium (Debian's, through chromedriver) goes through what people do:
//!
//! 1. B's page says "no exposure"; its language switch turns every page
//!    into Vietnamese (and back);
//! 2. A tests positive, all through pages: A's request code → the clinic's
//!    page (bad input first: a garbage code, in both languages) → the
//!    certificate → A's page (what will be sent, confirm, "sent");
//! 3. B's page shows the warned banner, with how long and when;
//! 4. B's "delete everything" wipes its store and stops its daemon.
//!
//! axe-core runs in every page (no serious or critical violation) and every
//! page is photographed at 390×844 and 1280×800 into
//! `target/ui-screenshots/`, in both languages (the pages that are the
//! answer to a one-time action, "sent" and "everything is deleted", in
//! English only). Beside the browser, plain HTTP requests check
//! what a browser would never send: no cookie, a foreign `Origin` or
//! `Host`, no or a wrong CSRF token, a 10 MB upload, bad certificates — each
//! refused with a clear message and nothing changed.
//!
//! Without Chromium, chromedriver or axe-core the browser test is skipped
//! with a message, except under `CI=true`, where it fails.

use meshtrace_node::protocol::{
    Certificate, CertificateParams, IssuerSecretKey, UnixTime, Zeroizing,
};
use meshtrace_node::store::read_key_file;
use meshtrace_tests::cli::*;
use meshtrace_tests::town::Town;
use meshtrace_tests::ui::browser::{Browser, screenshot_dir};
use meshtrace_tests::ui::http::{Request, Response, hidden_field};
use meshtrace_tests::ui::{IssuerPage, session_cookie};
use meshtrace_ui::issuer::words::t as it;
use meshtrace_ui::{Lang, Tr};
use rand_core::SeedableRng;

const EN: Tr = Tr(Lang::En);
const VI: Tr = Tr(Lang::Vi);

/// The run arguments of a node whose page listens on a free port.
const PAGE_ON_FREE_PORT: [&str; 2] = ["--ui-listen", "127.0.0.1:0"];

/// The page address of a running daemon (from its status).
fn page_url(d: &Daemon) -> String {
    d.json(&["status"])["ui_url"]
        .as_str()
        .expect("the daemon serves its page")
        .to_owned()
}

/// A fresh one-time login link of a daemon's page.
fn login_link(d: &Daemon) -> String {
    let o = d.cmd(&["ui", "--print-url"]);
    assert!(
        o.status.success(),
        "meshtrace ui --print-url: {}",
        stderr(&o)
    );
    let link = stdout(&o).trim().to_owned();
    assert!(link.contains("/login?t="), "{link}");
    link
}

/// Opens a page in both languages: checks it with axe-core and photographs
/// it (the language switch of the page sets the choice).
fn check_page(b: &Browser, name: &str, tr: Tr) {
    assert_eq!(b.lang(), tr.lang().code(), "{name}: the page's language");
    b.assert_accessible(&format!("{name} ({})", tr.lang().code()));
    b.screenshots(&screenshot_dir(), &format!("{name}-{}", tr.lang().code()));
}

/// Chooses `lang` with the page's own language switch (a form).
fn switch_language(b: &Browser, lang: Lang) {
    b.js(
        "document.querySelector('select[name=lang]').value = arguments[0];",
        vec![serde_json::json!(lang.code())],
    );
    b.click("form[action$='language'] button[type=submit]");
    b.wait_until(&format!("the page in {}", lang.code()), |b| {
        (b.lang() == lang.code()).then_some(())
    });
}

#[test]
fn the_pages_in_a_real_browser_with_real_daemons() {
    let Some(b) = Browser::launch_or_skip("the_pages_in_a_real_browser_with_real_daemons") else {
        return;
    };
    // The accessibility check can fail: axe-core finds what is wrong with a
    // page known to be inaccessible.
    b.goto("data:text/html,<html><body><img src=x><input type=text></body></html>");
    let found = b.axe();
    for rule in ["image-alt", "label", "html-has-lang"] {
        assert!(
            found
                .iter()
                .any(|v| v.id == rule && (v.impact == "serious" || v.impact == "critical")),
            "axe-core missed {rule}: {found:?}"
        );
    }

    let town = Town::new("web-town");
    town.init("a", 0.0, &[]);
    town.init("b", 1.0, &[]);
    let mut a = town.start("a", &PAGE_ON_FREE_PORT);
    let a_addr = a.address();
    let b_args = [&PAGE_ON_FREE_PORT[..], &["--bootstrap", &a_addr]].concat();
    let mut node_b = town.start("b", &b_args);
    let together_from = town.sim_now();
    let mut clinic = IssuerPage::start(
        &town.issuer_key(),
        &town.root.join("clinic.log"),
        &["--network", "web-town"],
    );

    // 1. B: no exposure; every page in both languages.
    b.goto(&login_link(&node_b));
    b.wait_text(&EN.t("exposure-none-title"));
    assert!(b.cookie_names().contains(&"meshtrace_session".to_owned()));
    let b_url = page_url(&node_b);
    for lang in [Lang::En, Lang::Vi] {
        let tr = Tr(lang);
        if lang == Lang::Vi {
            b.goto(&format!("{b_url}/settings"));
            switch_language(&b, Lang::Vi);
        }
        for (path, name, heading) in [
            ("/", "home-none", "exposure-none-title"),
            ("/report", "report", "report-title"),
            ("/privacy", "privacy", "privacy-title"),
            ("/settings", "settings", "settings-title"),
        ] {
            b.goto(&format!("{b_url}{path}"));
            b.wait_text(&tr.t(heading));
            check_page(&b, name, tr);
        }
    }
    switch_language(&b, Lang::En);
    assert_eq!(b.text("h1"), EN.t("settings-title"));

    // A and B side by side for 20 simulated minutes (20 s at ×60).
    wait_for(CLI_WAIT, "20 simulated minutes together", || {
        (town.sim_now() >= together_from + 20 * 60).then_some(())
    });
    // A leaves (a graceful stop closes its encounters) and comes back far
    // away, meshed through B.
    assert!(a.stop().success(), "A did not stop cleanly: {}", a.log());
    let b_addr = node_b.address();
    let a_args = [
        &PAGE_ON_FREE_PORT[..],
        &["--position", "500,0", "--bootstrap", &b_addr],
    ]
    .concat();
    let a = town.start("a", &a_args);
    let a_url = page_url(&a);

    // 2. A tests positive: the request code on A's page, in each language
    // (the second request replaces the first: its code is the one used).
    b.goto(&login_link(&a));
    let mut request = String::new();
    for tr in [EN, VI] {
        b.goto(&format!("{a_url}/settings"));
        switch_language(&b, tr.lang());
        b.goto(&format!("{a_url}/report"));
        b.click("form[action='/report/request'] button[type=submit]");
        request = b.text("p.code");
        assert!(request.starts_with("MTRQ1:"), "{request}");
        assert_eq!(b.all("figure.qr svg").len(), 1, "the request's QR code");
        check_page(&b, "report-request-code", tr);
    }

    // The clinic's page (on "localhost": cookies do not tell ports apart,
    // and the node pages use 127.0.0.1).
    let clinic_host = clinic.url.replace("127.0.0.1", "localhost");
    b.goto(&clinic.login.replace("127.0.0.1", "localhost"));
    b.wait_text(&it(EN, "issuer-title"));
    check_page(&b, "clinic-form", EN);
    // A garbage code: a clear message, nothing certified, in each language.
    for tr in [EN, VI] {
        if tr == VI {
            switch_language(&b, Lang::Vi);
            check_page(&b, "clinic-form", VI);
        }
        b.fill("#request", "hello, this is not a code");
        b.click("form[action='/certify'] button[type=submit]");
        b.wait_text(&it(tr, "issuer-err-not-request"));
        b.wait_text(&it(tr, "issuer-nothing-issued"));
        assert!(b.all("#certificate").is_empty(), "nothing is certified");
        check_page(&b, "clinic-error", tr);
    }
    // The request certified, in each language (two certificates for one
    // request do no harm: the English one is used).
    let today = UnixTime(now_millis() / 1000).day();
    let mut certificate = String::new();
    for tr in [VI, EN] {
        b.goto(&format!("{clinic_host}/"));
        switch_language(&b, tr.lang());
        b.fill("#request", &request);
        b.set_value("#first_day", &today.minus(1).to_string());
        b.set_value("#last_day", &today.to_string());
        b.click("form[action='/certify'] button[type=submit]");
        b.wait_text(&it(tr, "issuer-done-title"));
        certificate = b.text("#certificate");
        assert!(certificate.starts_with("MTCT1:"), "{certificate}");
        assert_eq!(b.all("figure.qr svg").len(), 1, "the certificate's QR code");
        check_page(&b, "clinic-certificate", tr);
    }

    // Back on A's page: step 2, step 3 (what will be sent; in each
    // language, it changes nothing), confirm, sent.
    b.goto(&login_link(&a));
    for tr in [VI, EN] {
        b.goto(&format!("{a_url}/settings"));
        switch_language(&b, tr.lang());
        b.goto(&format!("{a_url}/report"));
        b.fill("#certificate", &certificate);
        b.click("form[action='/report/check'] button[type=submit]");
        b.wait_text(&tr.t("report-step3"));
        let plan = b.body_text();
        assert!(
            plan.contains(&tr.t("report-plan-never")),
            "the page says what is never sent: {plan}"
        );
        check_page(&b, "report-plan", tr);
    }
    b.click("form[action='/report/send'] button[type=submit]");
    b.wait_text(&EN.t("report-sent-title"));
    check_page(&b, "report-sent", EN);
    assert_eq!(
        a.json(&["status"])["unsent_report_chunks"].as_u64(),
        Some(0),
        "the report left A"
    );

    // 3. B's page warns, with how long and when.
    b.goto(&login_link(&node_b));
    b.reload_until_text(&EN.t("exposure-high-title"));
    let banner = b.text("section.state.warned");
    assert!(
        banner.contains("about ") && banner.contains("within 2 m on "),
        "{banner}"
    );
    assert!(banner.contains(&EN.t("advice-title")), "{banner}");
    check_page(&b, "home-warned", EN);
    b.goto(&format!("{b_url}/settings"));
    switch_language(&b, Lang::Vi);
    b.goto(&format!("{b_url}/"));
    let banner = b.text("section.state.warned");
    assert!(banner.contains(&VI.t("exposure-high-title")), "{banner}");
    assert!(banner.contains("trong phạm vi 2 mét"), "{banner}");
    check_page(&b, "home-warned", VI);
    b.goto(&format!("{b_url}/settings"));
    switch_language(&b, Lang::En);

    // 4. Delete everything on B: a confirmation first (in each language; it
    // changes nothing), then the store is gone and the daemon stops.
    for tr in [VI, EN] {
        b.goto(&format!("{b_url}/settings"));
        switch_language(&b, tr.lang());
        b.goto(&format!("{b_url}/privacy"));
        b.click("form[action='/privacy/delete'] button[type=submit]");
        b.wait_text(&tr.t("delete-confirm-title"));
        check_page(&b, "delete-confirm", tr);
    }
    assert!(
        node_b.try_exit_status().is_none(),
        "the confirmation step stopped nothing"
    );
    b.click("#confirm");
    b.click("form[action='/privacy/delete/confirm'] button[type=submit]");
    b.wait_text(&EN.t("delete-done-title"));
    check_page(&b, "delete-done", EN);
    let status = wait_for(CLI_WAIT, "B's daemon to stop", || node_b.try_exit_status());
    assert!(
        status.success(),
        "B stopped with {status}: {}",
        node_b.log()
    );
    let o = meshtrace(&["--data-dir", &node_b.dir(), "exposures"]);
    assert!(!o.status.success(), "B's store is gone: {}", stdout(&o));

    assert!(clinic.stop().success(), "{}", clinic.log());
    drop(a);
}

/// A page server's address from its URL.
fn addr_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

/// Logs in with a one-time link over plain HTTP: the link works once and
/// sets an HttpOnly, SameSite=Strict session cookie; returns `name=value`.
fn http_login(link: &str) -> String {
    let (base, query) = link.split_once("/login?").expect("a login link");
    let addr = addr_of(base);
    let path = format!("/login?{query}");
    let r = Request::get(&path).send(addr);
    assert_eq!(r.status, 303, "login: {}", r.body);
    let set = r.set_cookies().join(" | ");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let again = Request::get(&path).send(addr);
    assert_eq!(again.status, 401, "a login link works once");
    session_cookie(&r).expect("a session cookie")
}

/// The refusals every page server makes before any page runs: a foreign
/// Host or Origin (403, even with a good cookie), no cookie (401). Returns
/// the CSRF token of the form page `form_path`.
fn assert_locked(url: &str, cookie: &str, form_path: &str) -> String {
    let addr = addr_of(url);
    let port = addr.port();
    assert_eq!(
        Request::get("/").send(addr).status,
        401,
        "{url} without a cookie"
    );
    let evil_host = Request::get("/")
        .header("Host", format!("evil.example:{port}"))
        .header("Cookie", cookie)
        .send(addr);
    assert_eq!(evil_host.status, 403, "{url}: a foreign Host");
    let evil_origin = Request::get("/")
        .header("Cookie", cookie)
        .header("Origin", "http://evil.example")
        .send(addr);
    assert_eq!(evil_origin.status, 403, "{url}: a foreign Origin");
    // Without a cookie the foreign Host is still refused first.
    let r = Request::get("/")
        .header("Host", format!("evil.example:{port}"))
        .send(addr);
    assert_eq!(r.status, 403, "{url}: Host is checked before the login");
    let page = Request::get(form_path).header("Cookie", cookie).send(addr);
    assert_eq!(page.status, 200, "{url}{form_path}: {}", page.body);
    hidden_field(&page.body, "csrf").expect("a CSRF token in the page's forms")
}

/// A POST refused for its CSRF token or Origin: missing, wrong, or right
/// but from a foreign Origin.
fn assert_csrf_refused(
    addr: std::net::SocketAddr,
    make: impl Fn(&str) -> Request<'static>,
    cookie: &str,
    csrf: &str,
) {
    for (token, origin, why) in [
        ("", None, "no CSRF token"),
        ("00ff", None, "a wrong CSRF token"),
        (csrf, Some("http://evil.example"), "a foreign Origin"),
    ] {
        let mut req = make(token).header("Cookie", cookie.to_owned());
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        let r = req.send(addr);
        assert_eq!(r.status, 403, "{why}: {}", r.body);
        assert!(
            !r.body.contains("MTRQ1:") && !r.body.contains("MTCT1:"),
            "{why}: {}",
            r.body
        );
    }
}

fn contains(r: &Response, text: &str) -> bool {
    // The pages escape quotes and apostrophes as HTML does.
    let html = r
        .body
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    html.contains(text)
}

/// Ten megabytes: over the pages' upload limit.
const TEN_MB: usize = 10 * 1024 * 1024;

#[test]
fn requests_a_browser_would_not_make_are_refused_and_change_nothing() {
    let town = Town::new("web-town");
    town.init("a", 0.0, &[]);
    let a = town.start("a", &PAGE_ON_FREE_PORT);
    let mut clinic = IssuerPage::start(
        &town.issuer_key(),
        &town.root.join("clinic.log"),
        &["--network", "web-town"],
    );
    let seed = read_key_file(&town.issuer_key()).unwrap();
    let issuer = IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes()));

    // ---- the node's page
    let node_url = page_url(&a);
    let node = addr_of(&node_url);
    let cookie = http_login(&login_link(&a));
    let csrf = assert_locked(&node_url, &cookie, "/settings");
    // A new report request is a state change: refused without its token.
    assert_csrf_refused(
        node,
        |t| Request::form("/report/request", &[("csrf", t)]),
        &cookie,
        &csrf,
    );
    let r = a.json(&["report", "request"]);
    assert!(
        r["replaced_request_made_at_utc"].is_null(),
        "a refused POST made a report request: {r}"
    );
    // Bad certificates: a clear message each, nothing sent.
    let now = UnixTime(now_millis() / 1000);
    let cert = |network: &str, from: UnixTime, until: UnixTime| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        Certificate::issue(
            &issuer,
            CertificateParams {
                network_id: network.into(),
                report_key: meshtrace_node::protocol::ReportSecretKey::generate(&mut rng).public(),
                valid_from: from,
                valid_until: until,
                window_first_day: from.day(),
                window_last_day: from.day(),
                max_tokens: 64,
            },
        )
        .unwrap()
        .to_code()
    };
    let elsewhere = cert("elsewhere", now, now.plus(86_400));
    let expired = cert("web-town", now.minus(10 * 86_400), now.minus(5 * 86_400));
    for (tr, lang) in [(EN, "en"), (VI, "vi")] {
        for (code, expected) in [
            ("MTCT1:GARBAGE".to_owned(), tr.t("err-not-certificate")),
            (
                elsewhere.clone(),
                tr.args("err-wrong-network", &[("network", "elsewhere".into())]),
            ),
        ] {
            let r = Request::multipart(
                "/report/check",
                &[("csrf", &csrf), ("certificate", &code)],
                None,
            )
            .header("Cookie", cookie.clone())
            .header("Accept-Language", lang)
            .send(node);
            assert_eq!(r.status, 400, "{code}: {}", r.body);
            assert!(
                contains(&r, &expected),
                "{lang}: {expected:?} not in {}",
                r.body
            );
        }
        let r = Request::multipart(
            "/report/check",
            &[("csrf", &csrf), ("certificate", &expired)],
            None,
        )
        .header("Cookie", cookie.clone())
        .header("Accept-Language", lang)
        .send(node);
        assert_eq!(r.status, 400, "expired: {}", r.body);
        let until = now.minus(5 * 86_400).0;
        let expected = tr.args("err-expired", &[("date", tr.time(until).into())]);
        assert!(
            contains(&r, &expected),
            "{lang}: {expected:?} not in {}",
            r.body
        );
        let big = vec![b'x'; TEN_MB];
        let r = Request::multipart(
            "/report/check",
            &[("csrf", &csrf)],
            Some(("photo", "photo.png", &big)),
        )
        .header("Cookie", cookie.clone())
        .header("Accept-Language", lang)
        .send(node);
        assert_eq!(r.status, 413, "10 MB: {}", r.body);
        let mb = meshtrace_ui::gate::MAX_UPLOAD_BYTES / (1024 * 1024);
        assert!(
            contains(&r, &tr.args("err-too-large", &[("mb", mb.into())])),
            "{lang}: {}",
            r.body
        );
    }
    let st = a.json(&["status"]);
    assert_eq!(st["unsent_report_chunks"].as_u64(), Some(0), "{st}");
    assert_eq!(
        st["announcements"].as_u64(),
        Some(0),
        "nothing was published: {st}"
    );

    // ---- the clinic's page
    let clinic_addr = clinic.addr();
    let cookie = http_login(&clinic.login);
    let csrf = assert_locked(&clinic.url, &cookie, "/");
    let today = now.day();
    let certify_form = |request: String, token: String| {
        let first = today.minus(1).to_string();
        let last = today.to_string();
        Request::multipart(
            "/certify",
            &[
                ("csrf", &token),
                ("request", &request),
                ("first_day", &first),
                ("last_day", &last),
                ("valid_days", "3"),
            ],
            None,
        )
    };
    let good_request = a.json(&["report", "request"])["request"]
        .as_str()
        .unwrap()
        .to_owned();
    let gr = good_request.clone();
    assert_csrf_refused(
        clinic_addr,
        move |t| {
            let gr = gr.clone();
            certify_form(gr, t.to_owned())
        },
        &cookie,
        &csrf,
    );
    let other_net = {
        let other = Town::new("elsewhere");
        other.init("x", 0.0, &[]);
        let o = meshtrace(&[
            "--data-dir",
            &other.dir("x").display().to_string(),
            "report",
            "request",
            "--json",
        ]);
        json_ok(&o)["request"].as_str().unwrap().to_owned()
    };
    for (tr, lang) in [(EN, "en"), (VI, "vi")] {
        for (request, expected) in [
            ("garbage".to_owned(), it(tr, "issuer-err-not-request")),
            (
                good_request[..good_request.len() - 6].to_owned(),
                it(tr, "issuer-err-cut"),
            ),
            (
                other_net.clone(),
                meshtrace_ui::issuer::words::w(
                    tr,
                    "issuer-err-network",
                    &[
                        ("found", "elsewhere".into()),
                        ("expected", "web-town".into()),
                    ],
                ),
            ),
        ] {
            let r = certify_form(request.clone(), csrf.clone())
                .header("Cookie", cookie.clone())
                .header("Accept-Language", lang)
                .send(clinic_addr);
            assert_eq!(r.status, 400, "{request}: {}", r.body);
            assert!(
                contains(&r, &expected),
                "{lang}: {expected:?} not in {}",
                r.body
            );
            assert!(contains(&r, &it(tr, "issuer-nothing-issued")));
            assert!(!r.body.contains("MTCT1:"), "nothing is certified");
        }
        let big = vec![b'x'; TEN_MB];
        let r = Request::multipart(
            "/certify",
            &[("csrf", &csrf)],
            Some(("photo", "qr.png", &big)),
        )
        .header("Cookie", cookie.clone())
        .header("Accept-Language", lang)
        .send(clinic_addr);
        assert_eq!(r.status, 413, "10 MB: {}", r.body);
        assert!(contains(&r, &it(tr, "issuer-nothing-issued")), "{}", r.body);
    }
    // With its token the same form certifies.
    let r = certify_form(good_request, csrf.clone())
        .header("Cookie", cookie.clone())
        .send(clinic_addr);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("MTCT1:"), "{}", r.body);
    assert!(clinic.stop().success(), "{}", clinic.log());
}

#[test]
fn issuer_certify_qr_draws_the_certificate_as_a_code_that_scans() {
    let town = Town::new("qr-town");
    town.init("a", 0.0, &[]);
    let request = json_ok(&meshtrace(&[
        "--data-dir",
        &town.dir("a").display().to_string(),
        "report",
        "request",
        "--json",
    ]))["request"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = town.certify(&request, &["--qr"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    let code = lines.next().unwrap().to_owned();
    assert!(code.starts_with("MTCT1:"), "{code}");
    assert_eq!(lines.next(), Some(""), "a blank line before the drawing");
    let drawing: Vec<&str> = lines.collect();
    // Half blocks: each character is two modules, top and bottom; light
    // modules are drawn (for dark terminals), so a drawn half is light.
    let width = drawing[0].chars().count();
    let mut pixels = Vec::new();
    for line in &drawing {
        assert_eq!(line.chars().count(), width, "a rectangular drawing");
        let mut top = Vec::new();
        let mut bottom = Vec::new();
        for c in line.chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("not a half block: {other:?}"),
            };
            top.push(t);
            bottom.push(b);
        }
        pixels.push(top);
        pixels.push(bottom);
    }
    // Scale each module to 4×4 pixels for the detector.
    let scale = 4;
    let (w, h) = (width * scale, pixels.len() * scale);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        if pixels[y / scale][x / scale] { 255 } else { 0 }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the drawing");
    let (_, text) = grids[0].decode().expect("the drawing decodes");
    assert_eq!(text, code, "the QR code is the certificate");
}
