//! The frame every page shares: the document, the navigation, the style
//! sheet (one small file from the page itself: no CDN, no web font, no
//! script), and the refusal pages.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::i18n::Tr;

/// The style sheet: readable from a 360-pixel phone screen up, system
/// fonts, strong contrast.
pub const STYLE_CSS: &str = include_str!("style.css");

/// Which navigation entry is the current page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// Am I OK?
    Home,
    /// I tested positive.
    Report,
    /// Privacy.
    Privacy,
    /// Settings.
    Settings,
    /// None (refusals, errors).
    None,
}

/// A whole page: title, navigation (unless `nav` is [`Nav::None`]), body.
pub fn page(tr: Tr, title: &str, nav: Nav, body: Markup) -> Markup {
    let entries = [
        (Nav::Home, "/", "nav-home"),
        (Nav::Report, "/report", "nav-report"),
        (Nav::Privacy, "/privacy", "nav-privacy"),
        (Nav::Settings, "/settings", "nav-settings"),
    ];
    html! {
        (DOCTYPE)
        html lang=(tr.lang().code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (tr.t("app-name")) }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header {
                    p.brand { (tr.t("app-name")) }
                    @if nav != Nav::None {
                        nav aria-label=(tr.t("nav-label")) {
                            ul {
                                @for (n, href, id) in entries {
                                    li {
                                        @if n == nav {
                                            a href=(href) aria-current="page" { (tr.t(id)) }
                                        } @else {
                                            a href=(href) { (tr.t(id)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main { (body) }
                footer { p { (tr.t("footer")) } }
            }
        }
    }
}

/// An HTML answer with a status.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A page with one message (refusals, errors), with a link home unless
/// `home` is false.
pub fn message(tr: Tr, status: StatusCode, title: &str, text: &str, home: bool) -> Response {
    respond(
        status,
        page(
            tr,
            title,
            Nav::None,
            html! {
                h1 { (title) }
                p.notice { (text) }
                @if home { p { a href="/" { (tr.t("back-home")) } } }
            },
        ),
    )
}

/// The 401 page: how to open the page.
pub fn login_needed(tr: Tr, extra: Option<&str>) -> Response {
    respond(
        StatusCode::UNAUTHORIZED,
        page(
            tr,
            &tr.t("login-title"),
            Nav::None,
            html! {
                h1 { (tr.t("login-title")) }
                @if let Some(e) = extra { p.notice.bad { (e) } }
                p { (tr.t("login-text")) }
                pre.command { code { "meshtrace ui" } }
                p { (tr.t("login-hint")) }
            },
        ),
    )
}

/// The style sheet as an answer.
pub fn style() -> Response {
    let mut r = STYLE_CSS.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

/// The gate's refusals drawn in this frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageRefusals;

impl crate::gate::Refusals for PageRefusals {
    fn forbidden(&self, tr: Tr) -> Response {
        message(
            tr,
            StatusCode::FORBIDDEN,
            &tr.t("forbidden-title"),
            &tr.t("forbidden-text"),
            false,
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
            true,
        )
    }

    fn too_large(&self, tr: Tr, upload: bool) -> Response {
        let text = if upload {
            tr.args(
                "err-too-large",
                &[("mb", (crate::gate::MAX_UPLOAD_BYTES / (1024 * 1024)).into())],
            )
        } else {
            tr.t("err-form-too-large")
        };
        message(
            tr,
            StatusCode::PAYLOAD_TOO_LARGE,
            &tr.t("error-title"),
            &text,
            true,
        )
    }
}
