//! The clinic's one page: the form (request code or a photo of its QR
//! code, the contact window, the validity) and the certificate (text and
//! QR code), or the form again with what went wrong, in the chosen
//! language.

use std::sync::Arc;

use axum::extract::{Extension, FromRequest, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use meshtrace_node::protocol::{Certificate, Day, DecodeError, MAX_WINDOW_DAYS, UnixTime};

use super::IssuerApp;
use super::certify::{
    CertifyError, CertifyOrder, DEFAULT_VALID_DAYS, MAX_REQUEST_CODE_LEN, MAX_VALID_DAYS,
    MIN_VALID_DAYS, certify, parse_day,
};
use super::words::{t, w};
use crate::auth::{LoginRefused, SESSION_COOKIE, SESSION_TTL_SECONDS};
use crate::gate::{Ctx, LANG_COOKIE, MAX_UPLOAD_BYTES, set_cookie};
use crate::i18n::{Lang, Tr};
use crate::layout::respond;
use crate::pages::LANG_COOKIE_MAX_AGE;

type AppState = State<Arc<IssuerApp>>;

/// The style sheet: the node page's, plus the date and number fields only
/// this page has.
pub const ISSUER_CSS: &str = concat!(
    include_str!("../style.css"),
    "\ninput[type=\"date\"], input[type=\"number\"] {\n  font: inherit; padding: .5rem; border: 1px solid #666; \
     border-radius: .4rem; background: #fff; max-width: 100%;\n}\n\
     fieldset { border: 1px solid #999; border-radius: .5rem; margin: 1rem 0; padding: .25rem 1rem 1rem; }\n\
     legend { font-weight: 700; padding: 0 .25rem; }\n\
     .hint { color: #3d3d3d; font-size: .95rem; margin: .25rem 0; }\n"
);

/// The language switch (a form: the page has no script), shown where a
/// session exists (`csrf` not empty).
fn language_form(tr: Tr, csrf: &str) -> Markup {
    html! {
        form.lang method="post" action="/language" {
            input type="hidden" name="csrf" value=(csrf);
            label for="lang" { (tr.t("settings-language")) }
            select id="lang" name="lang" {
                @for l in Lang::ALL {
                    option value=(l.code()) selected[l == tr.lang()] lang=(l.code()) {
                        (Tr(l).t("lang-name"))
                    }
                }
            }
            button type="submit" { (tr.t("settings-language-save")) }
        }
    }
}

/// The page's frame: no navigation (one page), the clinic's footer.
pub fn frame(tr: Tr, title: &str, body: Markup) -> Markup {
    frame_with(tr, title, "", body)
}

/// [`frame`] with the language switch when `csrf` is not empty.
pub fn frame_with(tr: Tr, title: &str, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(tr.lang().code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (t(tr, "issuer-app-name")) }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header { p.brand { (t(tr, "issuer-app-name")) } }
                main { (body) }
                footer {
                    @if !csrf.is_empty() { (language_form(tr, csrf)) }
                    p { (t(tr, "issuer-footer")) }
                }
            }
        }
    }
}

/// What the form shows: the values the clinic typed (kept after a
/// mistake) and the mistake.
#[derive(Clone, Debug, Default)]
pub struct FormState {
    /// The request code as typed.
    pub code: String,
    /// `YYYY-MM-DD` or empty.
    pub first_day: String,
    /// `YYYY-MM-DD` or empty.
    pub last_day: String,
    /// As typed.
    pub valid_days: String,
    /// What went wrong, in words.
    pub error: Option<String>,
}

impl FormState {
    /// An empty form: the window from 2 days ago until today.
    pub fn fresh(today: Day) -> FormState {
        FormState {
            code: String::new(),
            first_day: today.minus(2).to_string(),
            last_day: today.to_string(),
            valid_days: DEFAULT_VALID_DAYS.to_string(),
            error: None,
        }
    }
}

fn form_page(app: &IssuerApp, ctx: &Ctx, f: &FormState, today: Day) -> Markup {
    let tr = ctx.tr;
    let mb = MAX_UPLOAD_BYTES / (1024 * 1024);
    let body = html! {
        h1 { (t(tr, "issuer-title")) }
        @if let Some(e) = &f.error {
            div.notice.bad role="alert" {
                p { (e) }
                p { (t(tr, "issuer-nothing-issued")) }
            }
        }
        p { (t(tr, "issuer-lead")) }
        @match &app.network {
            Some(n) => p.notice { (w(tr, "issuer-network", &[("network", n.clone().into())])) },
            None => p.notice { (t(tr, "issuer-any-network")) },
        }
        form method="post" action="/certify" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            label for="request" { (t(tr, "issuer-code-label")) }
            textarea id="request" name="request" rows="3" spellcheck="false"
                autocomplete="off" { (f.code) }
            label for="photo" { (w(tr, "issuer-photo-label", &[("mb", mb.into())])) }
            input id="photo" type="file" name="photo" accept="image/png,image/jpeg";
            fieldset {
                legend { (t(tr, "issuer-window-legend")) }
                p.hint id="window-hint" {
                    (w(tr, "issuer-window-hint", &[("max", MAX_WINDOW_DAYS.into())]))
                }
                label for="first_day" { (t(tr, "issuer-first-day")) }
                input id="first_day" type="date" name="first_day" value=(f.first_day)
                    max=(today.to_string()) required aria-describedby="window-hint";
                label for="last_day" { (t(tr, "issuer-last-day")) }
                input id="last_day" type="date" name="last_day" value=(f.last_day)
                    max=(today.to_string()) required aria-describedby="window-hint";
            }
            label for="valid_days" { (t(tr, "issuer-valid-label")) }
            input id="valid_days" type="number" name="valid_days" value=(f.valid_days)
                min=(MIN_VALID_DAYS) max=(MAX_VALID_DAYS) required;
            div { button type="submit" { (t(tr, "issuer-submit")) } }
        }
    };
    frame_with(tr, &t(tr, "issuer-title"), &ctx.csrf, body)
}

fn done_page(ctx: &Ctx, cert: &Certificate) -> Markup {
    let tr = ctx.tr;
    let code = cert.to_code();
    let p = cert.params();
    let qr = crate::qr::svg(&code).ok();
    let body = html! {
        h1 { (t(tr, "issuer-done-title")) }
        p { (t(tr, "issuer-done-lead")) }
        ul {
            li { (w(tr, "issuer-done-network", &[("network", p.network_id.clone().into())])) }
            li {
                (w(tr, "issuer-done-window", &[
                    ("first", tr.day(p.window_first_day).into()),
                    ("last", tr.day(p.window_last_day).into()),
                ]))
            }
            li { (w(tr, "issuer-done-until", &[("until", tr.time(p.valid_until.0).into())])) }
        }
        @if let Some(svg) = qr {
            figure.qr {
                (PreEscaped(svg))
                figcaption { (t(tr, "issuer-qr-label")) }
            }
        }
        h2 { (t(tr, "issuer-cert-label")) }
        p.code id="certificate" { (code) }
        p { a href="/" { (t(tr, "issuer-another")) } }
    };
    frame_with(tr, &t(tr, "issuer-done-title"), &ctx.csrf, body)
}

fn today(app: &IssuerApp) -> Day {
    UnixTime((app.gate.clock)()).day()
}

/// `GET /`: the empty form.
pub async fn home(State(app): AppState, Extension(ctx): Extension<Ctx>) -> Response {
    let today = today(&app);
    respond(
        StatusCode::OK,
        form_page(&app, &ctx, &FormState::fresh(today), today),
    )
}

/// A refusal of the certify logic in the chosen language.
pub fn explain(tr: Tr, e: &CertifyError, today: Day) -> String {
    match e {
        CertifyError::Empty => t(tr, "issuer-err-empty"),
        CertifyError::TooLong => t(tr, "issuer-err-too-long"),
        CertifyError::CertificateGiven => t(tr, "issuer-err-certificate-given"),
        CertifyError::BadCode(d) => match d {
            DecodeError::WrongPrefix(_) | DecodeError::BadBase32(_) => {
                t(tr, "issuer-err-not-request")
            }
            DecodeError::Truncated(_) => t(tr, "issuer-err-cut"),
            DecodeError::BadChecksum(_) => t(tr, "issuer-err-typo"),
            _ => t(tr, "issuer-err-unreadable"),
        },
        CertifyError::WrongNetwork { found, expected } => w(
            tr,
            "issuer-err-network",
            &[
                ("found", found.clone().into()),
                ("expected", expected.clone().into()),
            ],
        ),
        CertifyError::WindowInFuture { .. } => {
            w(tr, "issuer-err-future", &[("today", tr.day(today).into())])
        }
        CertifyError::WindowReversed { first, last } => w(
            tr,
            "issuer-err-reversed",
            &[
                ("first", tr.day(*first).into()),
                ("last", tr.day(*last).into()),
            ],
        ),
        CertifyError::WindowTooLong { days } => w(
            tr,
            "issuer-err-window-long",
            &[("days", (*days).into()), ("max", MAX_WINDOW_DAYS.into())],
        ),
        CertifyError::ValidDays(_) => w(
            tr,
            "issuer-err-valid",
            &[
                ("min", MIN_VALID_DAYS.into()),
                ("max", MAX_VALID_DAYS.into()),
            ],
        ),
        CertifyError::MaxTokens(_) | CertifyError::Refused(_) => w(
            tr,
            "issuer-err-refused",
            &[("reason", e.to_string().into())],
        ),
    }
}

/// `POST /certify` (multipart: `request` text or `photo` file, `first_day`,
/// `last_day`, `valid_days`): the certificate, or the form with what went
/// wrong (400) — nothing is signed then.
pub async fn certify_post(
    State(app): AppState,
    Extension(ctx): Extension<Ctx>,
    req: Request,
) -> Response {
    let tr = ctx.tr;
    let today = today(&app);
    let mut f = FormState::default();
    let mut photo: Option<Vec<u8>> = None;
    let bad = |mut f: FormState, text: String| {
        if f.code.len() > MAX_REQUEST_CODE_LEN {
            f.code.clear();
        }
        f.error = Some(text);
        respond(StatusCode::BAD_REQUEST, form_page(&app, &ctx, &f, today))
    };
    let Ok(mut mp) = axum::extract::Multipart::from_request(req, &()).await else {
        return bad(FormState::fresh(today), t(tr, "issuer-err-form"));
    };
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return bad(FormState::fresh(today), t(tr, "issuer-err-form"));
                };
                let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
                match name.as_str() {
                    "request" => f.code = text(),
                    "first_day" => f.first_day = text(),
                    "last_day" => f.last_day = text(),
                    "valid_days" => f.valid_days = text(),
                    "photo" if !bytes.is_empty() => photo = Some(bytes.to_vec()),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(_) => return bad(FormState::fresh(today), t(tr, "issuer-err-form")),
        }
    }
    let (Some(first_day), Some(last_day)) = (parse_day(&f.first_day), parse_day(&f.last_day))
    else {
        return bad(f, t(tr, "issuer-err-date"));
    };
    let Ok(valid_days) = f.valid_days.parse::<u32>() else {
        let text = explain(tr, &CertifyError::ValidDays(0), today);
        return bad(f, text);
    };
    // The pasted text wins; a photo is read only when nothing was pasted.
    let request = if f.code.is_empty()
        && let Some(bytes) = photo
    {
        match crate::qr::read(&bytes) {
            Ok(code) => code,
            Err(crate::qr::QrReadError::NotImage) => {
                return bad(f, t(tr, "issuer-err-not-image"));
            }
            Err(crate::qr::QrReadError::NoCode) => return bad(f, t(tr, "issuer-err-no-qr")),
        }
    } else {
        f.code.clone()
    };
    let order = CertifyOrder {
        request,
        network: app.network.clone(),
        first_day,
        last_day,
        valid_days,
        max_tokens: app.max_tokens,
    };
    let now = UnixTime((app.gate.clock)());
    match certify(&app.key, &order, now) {
        Ok(cert) => {
            tracing::info!(
                network = %cert.params().network_id,
                first_day = %first_day,
                last_day = %last_day,
                valid_days,
                "certified a report request"
            );
            respond(StatusCode::OK, done_page(&ctx, &cert))
        }
        Err(e) => {
            let text = explain(tr, &e, today);
            bad(f, text)
        }
    }
}

/// `POST /language` (`lang=en|vi`): keeps the choice in a cookie (the
/// node page's) and goes back to the form.
pub async fn set_language(Extension(ctx): Extension<Ctx>, req: Request) -> Response {
    let tr = ctx.tr;
    let bytes = axum::body::to_bytes(req.into_body(), crate::gate::MAX_FORM_BYTES)
        .await
        .unwrap_or_default();
    let chosen = crate::gate::form_urlencoded_field(&bytes, "lang")
        .and_then(|l| Lang::ALL.into_iter().find(|x| x.code() == l));
    let Some(lang) = chosen else {
        return message(
            tr,
            StatusCode::BAD_REQUEST,
            &tr.t("error-title"),
            &t(tr, "issuer-err-form"),
        );
    };
    let mut r = (StatusCode::SEE_OTHER, "").into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LANG_COOKIE, lang.code(), LANG_COOKIE_MAX_AGE),
    );
    r
}

/// `GET /login?t=CODE`: the one-time link sets the session cookie.
pub async fn login(
    State(app): AppState,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let code = q.get("t").map(String::as_str).unwrap_or("");
    match app.gate.accept_login(code) {
        Ok(()) => {
            let cookie = app.gate.secret.session_cookie((app.gate.clock)());
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
            login_needed(ctx.tr, Some(&ctx.tr.t("login-expired")))
        }
    }
}

/// The 401 page: how to get a login link.
pub fn login_needed(tr: Tr, extra: Option<&str>) -> Response {
    respond(
        StatusCode::UNAUTHORIZED,
        frame(
            tr,
            &t(tr, "issuer-login-title"),
            html! {
                h1 { (t(tr, "issuer-login-title")) }
                @if let Some(e) = extra { p.notice.bad { (e) } }
                p { (t(tr, "issuer-login-text")) }
                pre.command { code { "meshtrace issuer serve --key FILE" } }
            },
        ),
    )
}

/// A page with one message (refusals, errors).
pub fn message(tr: Tr, status: StatusCode, title: &str, text: &str) -> Response {
    respond(
        status,
        frame(
            tr,
            title,
            html! {
                h1 { (title) }
                p.notice { (text) }
                p { a href="/" { (t(tr, "issuer-title")) } }
            },
        ),
    )
}

/// Any other path: 404.
pub async fn not_found(Extension(ctx): Extension<Ctx>) -> Response {
    let tr = ctx.tr;
    message(
        tr,
        StatusCode::NOT_FOUND,
        &tr.t("error-title"),
        &tr.t("not-found"),
    )
}

/// `GET /style.css`.
pub async fn style() -> Response {
    let mut r = ISSUER_CSS.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

/// The gate's refusals drawn in the clinic page's frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct IssuerRefusals;

impl crate::gate::Refusals for IssuerRefusals {
    fn forbidden(&self, tr: Tr) -> Response {
        respond(
            StatusCode::FORBIDDEN,
            frame(
                tr,
                &tr.t("forbidden-title"),
                html! { h1 { (tr.t("forbidden-title")) } p.notice { (tr.t("forbidden-text")) } },
            ),
        )
    }

    fn login_needed(&self, tr: Tr) -> Response {
        login_needed(tr, None)
    }

    fn csrf_failed(&self, tr: Tr) -> Response {
        message(
            tr,
            StatusCode::FORBIDDEN,
            &tr.t("error-title"),
            &tr.t("csrf-failed"),
        )
    }

    fn too_large(&self, tr: Tr, upload: bool) -> Response {
        let text = if upload {
            tr.args(
                "err-too-large",
                &[("mb", (MAX_UPLOAD_BYTES / (1024 * 1024)).into())],
            )
        } else {
            tr.t("err-form-too-large")
        };
        let text = format!("{text} {}", t(tr, "issuer-nothing-issued"));
        message(
            tr,
            StatusCode::PAYLOAD_TOO_LARGE,
            &tr.t("error-title"),
            &text,
        )
    }
}
