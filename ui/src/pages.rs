//! The node's pages, each answering one question: "Am I OK?", "I tested
//! positive", "Privacy" (with delete everything) and "Settings". Every
//! word comes from the Fluent files; every form posts its CSRF token (the
//! gate checks it); nothing needs JavaScript.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, FromRequest, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use meshtrace_node::control::{ControlError, ExposureReply, ReportSummaryReply, StatusReply};
use meshtrace_node::protocol::{Certificate, CertificateError, UnixTime};

use crate::auth::{LoginRefused, SESSION_COOKIE, SESSION_TTL_SECONDS};
use crate::backend::NodeApi;
use crate::gate::{Ctx, LANG_COOKIE, MAX_UPLOAD_BYTES, form_urlencoded_pairs, set_cookie};
use crate::i18n::{Lang, Tr};
use crate::layout::{Nav, login_needed, message, page, respond};
use crate::server::App;

/// How long the language cookie lasts (seconds).
pub const LANG_COOKIE_MAX_AGE: u64 = 365 * 86_400;
/// Longest certificate code accepted from a form (characters).
pub const MAX_CERTIFICATE_CODE_LEN: usize = 4 * 1024;

type AppState = State<Arc<App>>;

/// Runs a blocking node call off the async threads.
async fn ask<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&dyn NodeApi) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError> {
    let node = app.node.clone();
    tokio::task::spawn_blocking(move || f(node.as_ref()))
        .await
        .unwrap_or_else(|_| Err(ControlError::Io("the page's worker stopped".into())))
}

fn node_down(tr: Tr) -> Response {
    message(
        tr,
        StatusCode::SERVICE_UNAVAILABLE,
        &tr.t("error-title"),
        &tr.t("node-not-answering"),
        false,
    )
}

/// A control error in the person's language: a refusal carries the node's
/// own words.
fn node_error(tr: Tr, e: &ControlError) -> Response {
    match e {
        ControlError::Refused(reason) => message(
            tr,
            StatusCode::BAD_REQUEST,
            &tr.t("error-title"),
            &tr.args("err-node-refused", &[("reason", reason.clone().into())]),
            true,
        ),
        _ => node_down(tr),
    }
}

/// Reads a urlencoded body (already limited by the gate).
async fn form(req: Request) -> Vec<(String, String)> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_UPLOAD_BYTES)
        .await
        .unwrap_or_default();
    form_urlencoded_pairs(&bytes)
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn csrf_input(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

// ------------------------------------------------------------------ login

/// `GET /login?t=CODE`: a one-time code becomes a session cookie.
pub async fn login(
    State(app): AppState,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let tr = ctx.tr;
    let code = q.get("t").map(String::as_str).unwrap_or("");
    match app.gate.accept_login(code) {
        Ok(()) => {
            let now = (app.gate.clock)();
            let cookie = app.gate.secret.session_cookie(now);
            let mut r = (StatusCode::SEE_OTHER, "").into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            r.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &cookie, SESSION_TTL_SECONDS),
            );
            r
        }
        Err(LoginRefused::Invalid | LoginRefused::Busy) => {
            login_needed(tr, Some(&tr.t("login-expired")))
        }
    }
}

/// Any other path: 404.
pub async fn not_found(Extension(ctx): Extension<Ctx>) -> Response {
    let tr = ctx.tr;
    message(
        tr,
        StatusCode::NOT_FOUND,
        &tr.t("error-title"),
        &tr.t("not-found"),
        true,
    )
}

// ---------------------------------------------------------------- Am I OK?

/// The state the home page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    /// No exposure.
    None,
    /// Only low-risk exposures.
    Low,
    /// At least one high-risk exposure.
    High,
}

/// The state of a list of exposures.
pub fn risk_of(exposures: &[ExposureReply]) -> Risk {
    if exposures.iter().any(|e| e.high_risk) {
        Risk::High
    } else if exposures.is_empty() {
        Risk::None
    } else {
        Risk::Low
    }
}

/// The days of exposures in words, newest exposure first.
pub fn day_lines(tr: Tr, exposures: &[ExposureReply], high: bool) -> Vec<String> {
    exposures
        .iter()
        .filter(|e| e.high_risk == high)
        .flat_map(|e| e.days.iter())
        .map(|d| tr.exposure_day(&d.day, d.estimated_minutes))
        .collect()
}

/// `GET /`: Am I OK?
pub async fn home(State(app): AppState, Extension(ctx): Extension<Ctx>) -> Response {
    let tr = ctx.tr;
    let got = ask(&app, |n| Ok((n.status()?, n.exposures()?))).await;
    let (status, exposures) = match got {
        Ok(v) => v,
        Err(_) => return node_down(tr),
    };
    let body = html! {
        @match risk_of(&exposures) {
            Risk::High => {
                section.state.warned role="alert" {
                    h1 { (tr.t("exposure-high-title")) }
                    p { (tr.t("exposure-high-lead")) }
                    ul.days { @for l in day_lines(tr, &exposures, true) { li { (l) } } }
                    h2 { (tr.t("advice-title")) }
                    p { (tr.t("advice-text")) }
                    @if let Some(u) = &app.settings.advice_url {
                        p { a href=(u) rel="noreferrer" { (tr.t("advice-link")) } }
                    }
                }
            }
            Risk::Low => {
                section.state.low {
                    h1 { (tr.t("exposure-low-title")) }
                    p { (tr.t("exposure-low-lead")) }
                    ul.days { @for l in day_lines(tr, &exposures, false) { li { (l) } } }
                    p { (tr.t("exposure-low-advice")) }
                }
            }
            Risk::None => {
                section.state.ok {
                    h1 { (tr.t("exposure-none-title")) }
                    p { (tr.t("exposure-none-lead")) }
                }
            }
        }
        (details(tr, &status))
    };
    respond(StatusCode::OK, page(tr, &tr.t("nav-home"), Nav::Home, body))
}

/// The quiet lines under the state.
fn details(tr: Tr, s: &StatusReply) -> Markup {
    let radio = match &s.radio.last_failure {
        Some(f) => tr.args(
            "radio-failed",
            &[
                ("when", tr.time(f.at).into()),
                ("error", f.error.clone().into()),
            ],
        ),
        None if s.radio.kind == "ble" => tr.t("radio-on"),
        None => tr.args("radio-sim", &[("kind", s.radio.kind.clone().into())]),
    };
    let peers = s.mesh.as_ref().map_or(0, |m| m.peers.len() as u64);
    let rounds = s.mesh.as_ref().map_or(0, |m| m.sync_rounds);
    html! {
        section.details {
            h2 { (tr.t("details-title")) }
            ul {
                li { (radio) }
                li {
                    @if peers == 0 { (tr.t("peers-none")) }
                    @else { (tr.args("peers-count", &[("count", peers.into())])) }
                }
                li { (tr.args("catch-up-count", &[("count", rounds.into())])) }
                li { (tr.args("contacts-today", &[("count", s.encounters_today.into())])) }
            }
        }
    }
}

// ------------------------------------------------------- I tested positive

/// What the report page shows above its forms.
enum ReportTop {
    Intro,
    Code(meshtrace_node::control::ReportRequestReply),
    Error(String),
}

fn report_page(tr: Tr, ctx: &Ctx, top: ReportTop, pasted: &str) -> Markup {
    let mb = (MAX_UPLOAD_BYTES / (1024 * 1024)) as u64;
    let body = html! {
        h1 { (tr.t("report-title")) }
        p { (tr.t("report-lead")) }
        @if let ReportTop::Error(e) = &top { p.notice.bad role="alert" { (e) } }
        h2 { (tr.t("report-step1")) }
        @match &top {
            ReportTop::Code(r) => {
                p.code { (r.request) }
                @if let Ok(svg) = crate::qr::svg(&r.request) {
                    figure.qr {
                        div role="img" aria-label=(tr.t("report-qr-label")) { (PreEscaped(svg)) }
                    }
                }
                p { (tr.args("report-code-shown", &[("until", tr.time(r.expires_at).into())])) }
                @if let Some(m) = &r.replaced_request_made_at_utc {
                    p.notice { (tr.args("report-code-replaced", &[("made", m.clone().into())])) }
                }
            }
            _ => {
                p { (tr.t("report-step1-text")) }
                form method="post" action="/report/request" {
                    (csrf_input(ctx))
                    button type="submit" { (tr.t("report-step1-button")) }
                }
            }
        }
        h2 { (tr.t("report-step2")) }
        p { (tr.t("report-step2-text")) }
        form method="post" action="/report/check" enctype="multipart/form-data" {
            (csrf_input(ctx))
            label for="certificate" { (tr.t("report-paste-label")) }
            textarea id="certificate" name="certificate" rows="5" spellcheck="false"
                autocomplete="off" { (pasted) }
            label for="photo" { (tr.args("report-file-label", &[("mb", mb.into())])) }
            input id="photo" type="file" name="photo" accept="image/png,image/jpeg,text/plain";
            button type="submit" { (tr.t("report-check-button")) }
        }
    };
    page(tr, &tr.t("report-title"), Nav::Report, body)
}

/// `GET /report`.
pub async fn report(Extension(ctx): Extension<Ctx>) -> Response {
    respond(
        StatusCode::OK,
        report_page(ctx.tr, &ctx, ReportTop::Intro, ""),
    )
}

/// `POST /report/request`: a new request code, with its QR code.
pub async fn report_request(State(app): AppState, Extension(ctx): Extension<Ctx>) -> Response {
    match ask(&app, |n| n.report_request()).await {
        Ok(r) => respond(
            StatusCode::OK,
            report_page(ctx.tr, &ctx, ReportTop::Code(r), ""),
        ),
        Err(e) => node_error(ctx.tr, &e),
    }
}

/// A certificate problem found before asking the node, in words.
fn certificate_problem(tr: Tr, app: &App, code: &str, now: UnixTime) -> Option<String> {
    let cert = match Certificate::from_code(code) {
        Ok(c) => c,
        Err(CertificateError::Decode(_)) => return Some(tr.t("err-not-certificate")),
        Err(_) => return Some(tr.t("err-certificate-damaged")),
    };
    let trusted: Vec<_> = app.settings.clinics.iter().map(|(_, k)| *k).collect();
    match cert.verify(&app.settings.network, &trusted, now) {
        Ok(()) => None,
        Err(CertificateError::WrongNetwork { found, .. }) => {
            Some(tr.args("err-wrong-network", &[("network", found.into())]))
        }
        Err(CertificateError::Expired(t)) => {
            Some(tr.args("err-expired", &[("date", tr.time(t.0).into())]))
        }
        Err(CertificateError::NotYetValid(t)) => {
            Some(tr.args("err-not-yet-valid", &[("date", tr.time(t.0).into())]))
        }
        Err(CertificateError::UntrustedIssuer(_)) => Some(tr.t("err-untrusted")),
        Err(CertificateError::Decode(_)) => Some(tr.t("err-not-certificate")),
        Err(_) => Some(tr.t("err-certificate-damaged")),
    }
}

/// The certificate text of an uploaded file: the text itself when it is a
/// code, else the QR code read from the picture.
fn code_from_file(tr: Tr, bytes: &[u8]) -> Result<String, String> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.trim_start().starts_with("MTCT")
    {
        return Ok(text.trim().to_owned());
    }
    crate::qr::read(bytes).map_err(|e| match e {
        crate::qr::QrReadError::NotImage => tr.t("err-not-image"),
        crate::qr::QrReadError::NoCode => tr.t("err-no-qr"),
    })
}

/// The node's refusal of a certificate in the person's language: the
/// common ones have their own words, others are quoted.
fn refusal_words(tr: Tr, reason: String) -> String {
    if reason.contains("already used") {
        tr.t("err-already-used")
    } else if reason.contains("no pending report request") || reason.contains("no longer holds") {
        tr.t("err-not-this-request")
    } else {
        tr.args("err-node-refused", &[("reason", reason.into())])
    }
}

/// Why a certificate cannot be used.
enum PlanError {
    /// Bad input, in words.
    Bad(String),
    /// The node does not answer.
    NodeDown,
}

/// Checks a certificate locally, then asks the node what it would publish.
async fn plan_for(
    tr: Tr,
    app: &Arc<App>,
    code: String,
) -> Result<(String, ReportSummaryReply), PlanError> {
    if code.is_empty() {
        return Err(PlanError::Bad(tr.t("err-empty")));
    }
    if code.len() > MAX_CERTIFICATE_CODE_LEN {
        return Err(PlanError::Bad(tr.t("err-not-certificate")));
    }
    let status = ask(app, |n| n.status())
        .await
        .map_err(|_| PlanError::NodeDown)?;
    if let Some(p) = certificate_problem(tr, app, &code, UnixTime(status.now)) {
        return Err(PlanError::Bad(p));
    }
    let c = code.clone();
    match ask(app, move |n| n.report_plan(&c)).await {
        Ok(plan) => Ok((code, plan)),
        Err(ControlError::Refused(reason)) => Err(PlanError::Bad(refusal_words(tr, reason))),
        Err(_) => Err(PlanError::NodeDown),
    }
}

/// `POST /report/check` (multipart: `certificate` text or `photo` file):
/// step 3, what will be sent.
pub async fn report_check(
    State(app): AppState,
    Extension(ctx): Extension<Ctx>,
    req: Request,
) -> Response {
    let tr = ctx.tr;
    let bad = |text: String, pasted: &str| {
        respond(
            StatusCode::BAD_REQUEST,
            report_page(tr, &ctx, ReportTop::Error(text), pasted),
        )
    };
    let mut pasted = String::new();
    let mut file: Option<Vec<u8>> = None;
    let Ok(mut mp) = axum::extract::Multipart::from_request(req, &()).await else {
        return bad(tr.t("err-bad-form"), "");
    };
    loop {
        match mp.next_field().await {
            Ok(Some(f)) => match f.name() {
                Some("certificate") => pasted = f.text().await.unwrap_or_default(),
                Some("photo") => {
                    let bytes = f.bytes().await.unwrap_or_default();
                    if !bytes.is_empty() {
                        file = Some(bytes.to_vec());
                    }
                }
                _ => {}
            },
            Ok(None) => break,
            Err(_) => return bad(tr.t("err-bad-form"), ""),
        }
    }
    let pasted = pasted.trim().to_owned();
    let code = if !pasted.is_empty() {
        pasted.clone()
    } else if let Some(bytes) = file {
        match code_from_file(tr, &bytes) {
            Ok(c) => c,
            Err(e) => return bad(e, ""),
        }
    } else {
        String::new()
    };
    let shown = if pasted.len() <= MAX_CERTIFICATE_CODE_LEN {
        pasted.as_str()
    } else {
        ""
    };
    match plan_for(tr, &app, code).await {
        Ok((code, plan)) => respond(StatusCode::OK, plan_page(tr, &ctx, &code, &plan)),
        Err(PlanError::Bad(text)) => bad(text, shown),
        Err(PlanError::NodeDown) => node_down(tr),
    }
}

/// The plan in plain words.
pub fn plan_words(tr: Tr, p: &ReportSummaryReply) -> Vec<String> {
    let mut v = vec![tr.args(
        "report-plan",
        &[
            ("padded", p.padded_tokens.into()),
            ("chunks", p.chunks.into()),
            ("real", p.real_tokens.into()),
            ("first", tr.day_text(&p.window_first_day).into()),
            ("last", tr.day_text(&p.window_last_day).into()),
        ],
    )];
    if p.left_out_for_cap > 0 {
        v.push(tr.args("report-plan-cap", &[("count", p.left_out_for_cap.into())]));
    }
    v.push(tr.t("report-plan-never"));
    v
}

fn plan_page(tr: Tr, ctx: &Ctx, code: &str, plan: &ReportSummaryReply) -> Markup {
    let body = html! {
        h1 { (tr.t("report-title")) }
        h2 { (tr.t("report-step3")) }
        @for w in plan_words(tr, plan) { p { (w) } }
        form method="post" action="/report/send" {
            (csrf_input(ctx))
            input type="hidden" name="certificate" value=(code);
            button type="submit" { (tr.t("report-confirm-button")) }
        }
        p { a href="/report" { (tr.t("report-cancel")) } }
    };
    page(tr, &tr.t("report-title"), Nav::Report, body)
}

/// `POST /report/send`: publishes, after the same checks.
pub async fn report_send(
    State(app): AppState,
    Extension(ctx): Extension<Ctx>,
    req: Request,
) -> Response {
    let tr = ctx.tr;
    let pairs = form(req).await;
    let code = field(&pairs, "certificate").unwrap_or("").trim().to_owned();
    if let Err(e) = plan_for(tr, &app, code.clone()).await {
        return match e {
            PlanError::Bad(text) => respond(
                StatusCode::BAD_REQUEST,
                report_page(tr, &ctx, ReportTop::Error(text), ""),
            ),
            PlanError::NodeDown => node_down(tr),
        };
    }
    match ask(&app, move |n| n.report_submit(&code)).await {
        Ok(_) => respond(
            StatusCode::OK,
            page(
                tr,
                &tr.t("report-sent-title"),
                Nav::Report,
                html! {
                    section.state.ok {
                        h1 { (tr.t("report-sent-title")) }
                        p { (tr.t("report-sent-text")) }
                    }
                    p { a href="/" { (tr.t("back-home")) } }
                },
            ),
        ),
        Err(e) => node_error(tr, &e),
    }
}

// ------------------------------------------------------------------ privacy

/// `GET /privacy`.
pub async fn privacy(State(app): AppState, Extension(ctx): Extension<Ctx>) -> Response {
    let tr = ctx.tr;
    let dir = app.settings.data_dir.display().to_string();
    let days = u64::from(meshtrace_node::protocol::RETENTION_DAYS);
    let body = html! {
        h1 { (tr.t("privacy-title")) }
        dl {
            dt { (tr.t("privacy-what")) } dd { (tr.t("privacy-what-text")) }
            dt { (tr.t("privacy-how-long")) } dd { (tr.args("privacy-how-long-text", &[("days", days.into())])) }
            dt { (tr.t("privacy-where")) } dd { (tr.args("privacy-where-text", &[("dir", dir.into())])) }
            dt { (tr.t("privacy-leaves")) } dd { (tr.t("privacy-leaves-text")) }
        }
        h2 { (tr.t("delete-title")) }
        p { (tr.t("delete-text")) }
        form method="post" action="/privacy/delete" {
            (csrf_input(&ctx))
            button.danger type="submit" { (tr.t("delete-button")) }
        }
    };
    respond(
        StatusCode::OK,
        page(tr, &tr.t("privacy-title"), Nav::Privacy, body),
    )
}

fn delete_confirm_page(tr: Tr, ctx: &Ctx, error: Option<String>) -> Markup {
    let body = html! {
        h1 { (tr.t("delete-confirm-title")) }
        @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
        p { (tr.t("delete-text")) }
        form method="post" action="/privacy/delete/confirm" {
            (csrf_input(ctx))
            label.check for="confirm" {
                input id="confirm" type="checkbox" name="confirm" value="yes" required;
                span { (tr.t("delete-confirm-check")) }
            }
            button.danger type="submit" { (tr.t("delete-confirm-button")) }
        }
        p { a href="/privacy" { (tr.t("report-cancel")) } }
    };
    page(tr, &tr.t("delete-confirm-title"), Nav::Privacy, body)
}

/// `POST /privacy/delete`: the confirmation step (changes nothing).
pub async fn delete_ask(Extension(ctx): Extension<Ctx>) -> Response {
    respond(StatusCode::OK, delete_confirm_page(ctx.tr, &ctx, None))
}

/// `POST /privacy/delete/confirm` with `confirm=yes`: deletes everything
/// and stops the node.
pub async fn delete_confirm(
    State(app): AppState,
    Extension(ctx): Extension<Ctx>,
    req: Request,
) -> Response {
    let tr = ctx.tr;
    let pairs = form(req).await;
    if field(&pairs, "confirm") != Some("yes") {
        return respond(
            StatusCode::BAD_REQUEST,
            delete_confirm_page(tr, &ctx, Some(tr.t("err-confirm"))),
        );
    }
    match ask(&app, |n| n.delete_everything()).await {
        Ok(_) => message(
            tr,
            StatusCode::OK,
            &tr.t("delete-done-title"),
            &tr.t("delete-done-text"),
            false,
        ),
        Err(e) => node_error(tr, &e),
    }
}

// ----------------------------------------------------------------- settings

/// `GET /settings`.
pub async fn settings(State(app): AppState, Extension(ctx): Extension<Ctx>) -> Response {
    let tr = ctx.tr;
    let s = &app.settings;
    let path = s
        .config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config.toml".into());
    let body = html! {
        h1 { (tr.t("settings-title")) }
        form method="post" action="/settings/language" {
            (csrf_input(&ctx))
            label for="lang" { (tr.t("settings-language")) }
            select id="lang" name="lang" {
                @for l in Lang::ALL {
                    option value=(l.code()) selected[l == tr.lang()] lang=(l.code()) { (Tr(l).t("lang-name")) }
                }
            }
            button type="submit" { (tr.t("settings-language-save")) }
        }
        h2 { (tr.t("settings-clinics")) }
        @if s.clinics.is_empty() {
            p.notice { (tr.t("settings-clinics-none")) }
        } @else {
            ul { @for (name, _) in &s.clinics { li { (name) } } }
        }
        h2 { (tr.t("settings-network")) }
        p.code { (s.network) }
        h2 { (tr.t("settings-notify")) }
        p { (if s.notify { tr.t("settings-notify-on") } else { tr.t("settings-notify-off") }) }
        p.notice { (tr.args("settings-readonly", &[("path", path.into())])) }
    };
    respond(
        StatusCode::OK,
        page(tr, &tr.t("settings-title"), Nav::Settings, body),
    )
}

/// `POST /settings/language` (`lang=en|vi`): stores the choice in a
/// cookie and goes back to the settings.
pub async fn set_language(Extension(ctx): Extension<Ctx>, req: Request) -> Response {
    let tr = ctx.tr;
    let pairs = form(req).await;
    let Some(lang) =
        field(&pairs, "lang").and_then(|l| Lang::ALL.into_iter().find(|x| x.code() == l))
    else {
        return message(
            tr,
            StatusCode::BAD_REQUEST,
            &tr.t("error-title"),
            &tr.t("err-bad-form"),
            true,
        );
    };
    let mut r = (StatusCode::SEE_OTHER, Body::empty()).into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/settings"));
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LANG_COOKIE, lang.code(), LANG_COOKIE_MAX_AGE),
    );
    r
}
