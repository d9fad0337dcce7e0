//! The page at the HTTP level: a real server on a TCP port of 127.0.0.1,
//! real HTTP requests. Each refusal is checked to change nothing (the
//! scripted node records every call).

mod common;

use common::*;
use meshtrace_ui::i18n::Lang;

#[test]
fn the_login_link_sets_a_strict_httponly_cookie_and_opens_the_page() {
    let p = start(None);
    let a = p.get(&format!("/login?t={}", p.login_code()), &[]);
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), "/");
    let c = a.header("set-cookie");
    for part in [
        "meshtrace_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(c.contains(part), "{c}");
    }
    let cookie = c.split(';').next().unwrap();
    let home = p.get("/", &[("cookie", cookie)]);
    assert_eq!(home.status, 200);
    assert!(home.body.contains("No exposure found"), "{}", home.body);
    assert!(home.body.contains("Contacts recorded today: 3"));
    assert!(home.body.contains("Bluetooth: on"));
    // Every answer forbids scripts, framing and referrers to other sites.
    let csp = home.header("content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(home.header("referrer-policy"), "same-origin");
    assert_eq!(home.header("x-frame-options"), "DENY");
    assert!(!home.body.contains("<script"));
}

#[test]
fn a_login_code_works_once_and_not_after_it_expires() {
    let p = start(None);
    let code = p.login_code();
    assert_eq!(p.get(&format!("/login?t={code}"), &[]).status, 303);
    let again = p.get(&format!("/login?t={code}"), &[]);
    assert_eq!(again.status, 401);
    assert!(
        again.body.contains("expired or was already used"),
        "{}",
        again.body
    );
    assert!(again.header("set-cookie").is_empty());
    let late = p.login_code();
    p.clock.fetch_add(
        meshtrace_ui::auth::LOGIN_CODE_TTL_SECONDS + 1,
        std::sync::atomic::Ordering::Relaxed,
    );
    assert_eq!(p.get(&format!("/login?t={late}"), &[]).status, 401);
    assert_eq!(p.get("/login?t=garbage", &[]).status, 401);
    assert_eq!(p.get("/login", &[]).status, 401);
}

#[test]
fn without_the_cookie_every_page_is_401_and_says_how_to_open_it_in_the_chosen_language() {
    let p = start(None);
    for path in ["/", "/report", "/privacy", "/settings", "/nope"] {
        let a = p.get(path, &[]);
        assert_eq!(a.status, 401, "{path}");
        assert!(a.body.contains("meshtrace ui"), "{}", a.body);
        assert!(a.body.contains("This page is locked"));
    }
    let vi = p.get("/", &[("accept-language", "vi-VN,vi;q=0.9")]);
    assert_eq!(vi.status, 401);
    assert!(vi.body.contains("Trang này đã bị khóa"), "{}", vi.body);
    assert!(vi.body.contains("lang=\"vi\""));
    // A forged or expired cookie is no better.
    let forged = p.get("/", &[("cookie", "meshtrace_session=1.2.3")]);
    assert_eq!(forged.status, 401);
    // Nothing was asked of the node, and a POST changes nothing.
    let a = p.post_form("/report/request", "", &[("csrf", "x")]);
    assert_eq!(a.status, 401);
    assert!(p.node.calls().is_empty(), "{:?}", p.node.calls());
}

#[test]
fn a_foreign_host_or_origin_is_refused_with_403_before_anything_else() {
    let p = start(None);
    let cookie = p.login();
    let csrf = p.csrf(&cookie);
    let before = p.node.calls().len();
    let evil = [("host", "evil.example:80")];
    let a = p.get("/", &[("host", "evil.example"), ("cookie", &cookie)]);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("Refused"), "{}", a.body);
    assert_eq!(p.get("/", &evil).status, 403);
    // The rebinding name with the right port is still foreign.
    let port = p.port.to_string();
    let rebound = format!("attacker.example:{port}");
    assert_eq!(
        p.get("/", &[("host", &rebound), ("cookie", &cookie)])
            .status,
        403
    );
    // A login code sent to a foreign Host is not consumed.
    let code = p.login_code();
    assert_eq!(
        p.get(&format!("/login?t={code}"), &[("host", &rebound)])
            .status,
        403
    );
    assert_eq!(p.get(&format!("/login?t={code}"), &[]).status, 303);
    // A cross-site form post with a valid cookie and token.
    let body = format!("csrf={csrf}");
    for origin in [
        "http://evil.example",
        "null",
        &format!("https://127.0.0.1:{port}"),
    ] {
        let a = p.post(
            "/report/request",
            &[("cookie", &cookie), ("origin", origin)],
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        );
        assert_eq!(a.status, 403, "{origin}");
    }
    // The same post from the page itself goes through.
    let own = format!("http://localhost:{port}");
    let a = p.post(
        "/report/request",
        &[("cookie", &cookie), ("origin", &own)],
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(p.node.changes(), vec!["report_request"]);
    assert_eq!(p.node.calls().len(), before + 1);
}

#[test]
fn a_post_without_the_right_csrf_token_is_refused_and_changes_nothing() {
    let p = start(None);
    let cookie = p.login();
    let other = p.login();
    let other_token = p.csrf(&other);
    for (path, fields) in [
        ("/report/request", vec![]),
        ("/report/request", vec![("csrf", "")]),
        ("/report/request", vec![("csrf", "00")]),
        ("/report/request", vec![("csrf", other_token.as_str())]),
        ("/privacy/delete/confirm", vec![("confirm", "yes")]),
        ("/settings/language", vec![("lang", "vi")]),
    ] {
        let a = p.post_form(path, &cookie, &fields);
        assert_eq!(a.status, 403, "{path} {fields:?}");
        assert!(a.body.contains("This form is out of date"), "{}", a.body);
        assert!(a.header("set-cookie").is_empty());
    }
    let (ctype, body) = multipart(&[("certificate", &good_certificate())], None);
    let a = p.post("/report/check", &[("cookie", &cookie)], &ctype, &body);
    assert_eq!(a.status, 403);
    assert!(p.node.changes().is_empty(), "{:?}", p.node.calls());
    assert!(!p.node.calls().contains(&"report_plan"));
    // GET never changes anything, even with a token.
    let token = p.csrf(&cookie);
    let a = p.get(
        &format!("/report/request?csrf={token}"),
        &[("cookie", &cookie)],
    );
    assert_eq!(a.status, 405);
    assert!(p.node.changes().is_empty());
}

#[test]
fn a_10_mb_upload_gets_a_clear_message_in_the_chosen_language_and_changes_nothing() {
    let p = start(None);
    let cookie = p.login();
    let csrf = p.csrf(&cookie);
    let big = vec![0x42u8; 10 * 1024 * 1024];
    let (ctype, body) = multipart(&[("csrf", &csrf)], Some(("photo.jpg", &big)));
    let a = p.post("/report/check", &[("cookie", &cookie)], &ctype, &body);
    assert_eq!(a.status, 413);
    assert!(
        a.body.contains("The file is too large (more than 8 MB)"),
        "{}",
        a.body
    );
    let vi = p.post(
        "/report/check",
        &[("cookie", &cookie), ("accept-language", "vi")],
        &ctype,
        &body,
    );
    assert_eq!(vi.status, 413);
    assert!(vi.body.contains("Tệp quá lớn (hơn 8 MB)"), "{}", vi.body);
    // A form is limited more tightly.
    let long = "A".repeat(meshtrace_ui::gate::MAX_FORM_BYTES + 1);
    let a = p.post_form(
        "/report/send",
        &cookie,
        &[("csrf", &csrf), ("certificate", &long)],
    );
    assert_eq!(a.status, 413);
    assert!(a.body.contains("too large"));
    assert!(
        !p.node
            .calls()
            .iter()
            .any(|c| *c == "report_plan" || *c == "report_submit"),
        "{:?}",
        p.node.calls()
    );
}

/// Posts a pasted certificate to step 2 and returns the answer.
fn check(p: &Page, cookie: &str, lang: &str, certificate: &str) -> Answer {
    let csrf = p.csrf(cookie);
    let (ctype, body) = multipart(&[("csrf", &csrf), ("certificate", certificate)], None);
    p.post(
        "/report/check",
        &[("cookie", cookie), ("accept-language", lang)],
        &ctype,
        &body,
    )
}

#[test]
fn bad_certificates_get_clear_messages_in_both_languages_and_nothing_is_sent() {
    let p = start(None);
    let cookie = p.login();
    let stranger = meshtrace_node::protocol::IssuerSecretKey::from_bytes(
        &meshtrace_node::protocol::Zeroizing::new([3; 32]),
    );
    let cases = [
        (
            "MTCT1:garbage!!".to_owned(),
            "This is not a certificate code",
            "Đây không phải là mã giấy xác nhận",
        ),
        (
            "hello".to_owned(),
            "This is not a certificate code",
            "Đây không phải là mã giấy xác nhận",
        ),
        (
            certificate(&issuer(), "campus", NOW - 10 * 86_400, 2),
            "This certificate expired on 23 November, 12:00 UTC",
            "Giấy xác nhận này đã hết hạn vào ngày 23 tháng 11, 12:00 UTC",
        ),
        (
            certificate(&issuer(), "other-town", NOW - 3_600, 3),
            "This certificate is for another network (“other-town”)",
            "Giấy xác nhận này dành cho một mạng khác (“other-town”)",
        ),
        (
            certificate(&stranger, "campus", NOW - 3_600, 3),
            "comes from a clinic this computer does not trust",
            "do một cơ sở y tế mà máy tính này không tin cậy cấp",
        ),
        (
            String::new(),
            "Paste the certificate, or choose a photo",
            "Hãy dán giấy xác nhận",
        ),
    ];
    for (code, en, vi) in &cases {
        let a = check(&p, &cookie, "en", code);
        assert_eq!(a.status, 400, "{code}");
        assert!(a.body.contains(en), "{code}: {}", a.body);
        let a = check(&p, &cookie, "vi", code);
        assert_eq!(a.status, 400);
        assert!(a.body.contains(vi), "{code}: {}", a.body);
        // The same checks guard the final step.
        let csrf = p.csrf(&cookie);
        let a = p.post_form(
            "/report/send",
            &cookie,
            &[("csrf", &csrf), ("certificate", code)],
        );
        assert_eq!(a.status, 400);
        assert!(a.body.contains(en), "{}", a.body);
    }
    assert!(p.node.changes().is_empty(), "{:?}", p.node.calls());
    assert!(!p.node.calls().contains(&"report_plan"));
}

#[test]
fn uploaded_pictures_are_read_or_refused_plainly() {
    let p = start(None);
    let cookie = p.login();
    let csrf = p.csrf(&cookie);
    let post = |name: &str, bytes: &[u8]| {
        let (ctype, body) = multipart(&[("csrf", &csrf)], Some((name, bytes)));
        p.post("/report/check", &[("cookie", &cookie)], &ctype, &body)
    };
    let a = post("cert.png", &qr_png(&good_certificate()));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Step 3"), "{}", a.body);
    assert!(
        a.body.contains("2048 anonymous codes in one message"),
        "{}",
        a.body
    );
    let a = post("notes.txt", b"\x00\x01binary junk");
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("not a picture meshtrace can read"),
        "{}",
        a.body
    );
    let a = post("blank.png", &qr_png("not a certificate"));
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("This is not a certificate code"),
        "{}",
        a.body
    );
    let a = post("cert.txt", good_certificate().as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(p.node.changes().is_empty());
}

#[test]
fn the_positive_test_flow_shows_the_code_and_qr_then_the_plan_then_sends_once() {
    let p = start(None);
    let cookie = p.login();
    let csrf = p.csrf(&cookie);
    let a = p.post_form("/report/request", &cookie, &[("csrf", &csrf)]);
    assert_eq!(a.status, 200);
    assert!(a.body.contains(&request_code()), "{}", a.body);
    assert!(a.body.contains("<svg"), "the QR code is on the page");
    assert!(
        a.body
            .contains("It can be used until 8 December, 12:00 UTC"),
        "{}",
        a.body
    );
    let plan = check(&p, &cookie, "en", &good_certificate());
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert!(plan.body.contains("No name, no place, no phone number"));
    assert!(
        plan.body
            .contains("7 of them come from your contacts between 25 November and 1 December"),
        "{}",
        plan.body
    );
    assert_eq!(p.node.changes(), vec!["report_request"]);
    let sent = p.post_form(
        "/report/send",
        &cookie,
        &[("csrf", &csrf), ("certificate", &good_certificate())],
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("Sent"));
    assert_eq!(p.node.changes(), vec!["report_request", "report_submit"]);
}

#[test]
fn the_warned_banner_says_when_how_long_how_close_and_what_to_do() {
    let p = start(None);
    p.node.exposures.lock().unwrap().push(exposure(true, 24.6));
    let cookie = p.login();
    let a = p.get("/", &[("cookie", &cookie)]);
    assert!(
        a.body
            .contains("You were in close contact with an infected person")
    );
    assert!(
        a.body.contains("about 25 minutes within 2 m on 1 December"),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("href=\"https://health.example/close-contacts\"")
    );
    let vi = p.get("/", &[("cookie", &cookie), ("accept-language", "vi")]);
    assert!(vi.body.contains("Bạn đã tiếp xúc gần với người nhiễm bệnh"));
    assert!(
        vi.body
            .contains("khoảng 25 phút trong phạm vi 2 mét vào ngày 1 tháng 12")
    );
    *p.node.exposures.lock().unwrap() = vec![exposure(false, 4.0)];
    let low = p.get("/", &[("cookie", &cookie)]);
    assert!(
        low.body.contains("A brief or distant contact"),
        "{}",
        low.body
    );
    assert!(!low.body.contains("infected person"));
}

#[test]
fn delete_everything_asks_first_and_needs_the_box_ticked() {
    let p = start(None);
    let cookie = p.login();
    let csrf = p.csrf(&cookie);
    let ask = p.post_form("/privacy/delete", &cookie, &[("csrf", &csrf)]);
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("Delete everything?"));
    assert!(p.node.changes().is_empty());
    let unticked = p.post_form("/privacy/delete/confirm", &cookie, &[("csrf", &csrf)]);
    assert_eq!(unticked.status, 400);
    assert!(unticked.body.contains("Tick the box to confirm"));
    assert!(p.node.changes().is_empty());
    let done = p.post_form(
        "/privacy/delete/confirm",
        &cookie,
        &[("csrf", &csrf), ("confirm", "yes")],
    );
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Everything is deleted"));
    assert_eq!(p.node.changes(), vec!["delete_everything"]);
}

#[test]
fn the_language_is_the_cookie_then_config_then_browser_then_system() {
    // [ui] language = vi beats the browser's English.
    let p = start(Some(Lang::Vi));
    let cookie = p.login();
    let a = p.get("/", &[("cookie", &cookie), ("accept-language", "en")]);
    assert!(a.body.contains("lang=\"vi\"") && a.body.contains("Tôi có sao không?"));
    // The person's choice on the settings page beats the config.
    let csrf = p.csrf(&cookie);
    let set = p.post_form(
        "/settings/language",
        &cookie,
        &[("csrf", &csrf), ("lang", "en")],
    );
    assert_eq!(set.status, 303);
    let lang_cookie = set.header("set-cookie");
    assert!(lang_cookie.contains("meshtrace_lang=en") && lang_cookie.contains("SameSite=Strict"));
    let both = format!("{cookie}; {}", lang_cookie.split(';').next().unwrap());
    let a = p.get("/settings", &[("cookie", &both), ("accept-language", "vi")]);
    assert!(a.body.contains("lang=\"en\"") && a.body.contains("Clinics this computer trusts"));
    assert!(a.body.contains("Campus clinic"));
    let bad = p.post_form(
        "/settings/language",
        &cookie,
        &[("csrf", &csrf), ("lang", "fr")],
    );
    assert_eq!(bad.status, 400);
    // Without config and cookie, the browser decides.
    let p = start(None);
    let cookie = p.login();
    let a = p.get(
        "/",
        &[
            ("cookie", &cookie),
            ("accept-language", "fr, vi;q=0.8, en;q=0.5"),
        ],
    );
    assert!(a.body.contains("lang=\"vi\""), "{}", a.body);
}

#[test]
fn privacy_says_what_is_kept_where_and_for_how_long() {
    let p = start(None);
    let cookie = p.login();
    let a = p.get("/privacy", &[("cookie", &cookie)]);
    assert_eq!(a.status, 200);
    assert!(
        a.body
            .contains("14 days. Older records are deleted automatically.")
    );
    assert!(a.body.contains("Only on this computer, encrypted"));
    let style = p.get("/style.css", &[]);
    assert_eq!(style.status, 200);
    assert!(style.header("content-type").starts_with("text/css"));
}

#[test]
fn the_nodes_common_refusals_are_said_in_the_persons_language() {
    let p = start(None);
    let cookie = p.login();
    for (reason, en, vi) in [
        (
            "this certificate was already used: its report has been published, and a \
             certificate works only once",
            "This certificate was already used",
            "Giấy xác nhận này đã được dùng",
        ),
        (
            "no pending report request on this node (run `meshtrace report request` first)",
            "is not for a request code made on this computer",
            "không dành cho mã yêu cầu tạo trên máy tính này",
        ),
        (
            "the disk is on fire",
            "meshtrace refused: the disk is on fire",
            "meshtrace từ chối: the disk is on fire",
        ),
    ] {
        *p.node.plan_refusal.lock().unwrap() = Some(reason.to_owned());
        let a = check(&p, &cookie, "en", &good_certificate());
        assert_eq!(a.status, 400);
        assert!(a.body.contains(en), "{}", a.body);
        let a = check(&p, &cookie, "vi", &good_certificate());
        assert!(a.body.contains(vi), "{}", a.body);
    }
    assert!(p.node.changes().is_empty());
}
