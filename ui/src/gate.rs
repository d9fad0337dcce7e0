//! The checks every request passes before any page sees it, in this order:
//!
//! 1. **Host and Origin** (DNS rebinding): `Host` must be
//!    `127.0.0.1:PORT` or `localhost:PORT`, and an `Origin` header, when
//!    present, `http://` and one of those. Anything else: 403, before
//!    anything else is looked at.
//! 2. **Login**: a valid session cookie ([`crate::auth`]), except for
//!    `/login` and the style sheet. Without one: 401 and a page saying how
//!    to open the page (`meshtrace ui`), in the chosen language.
//! 3. **Body limits and CSRF**: a POST body is read up to its route's limit
//!    ([`MAX_FORM_BYTES`], or [`MAX_UPLOAD_BYTES`] for uploads); a larger
//!    one is read to its end (up to [`MAX_DRAIN_BYTES`], so that the browser
//!    sees the answer) and refused with 413. Then its `csrf` field must be
//!    the session's token (constant-time comparison), or 403.
//!
//! Every answer carries a strict Content-Security-Policy (no script at
//! all, styles only from the page's own style sheet), a same-origin
//! referrer policy (the login link never leaks to another site; a stricter
//! no-referrer makes Chromium send `Origin: null` with the page's own forms,
//! which the Origin check must refuse), no-store and frame denial.
//!
//! The clinic's page (`meshtrace issuer serve`) puts the same [`Gate`] in
//! front of its own routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use crate::auth::{LoginGuard, SESSION_COOKIE, Secret, Session};
use crate::i18n::{self, Lang, LangSources, Tr};

/// Largest form body (bytes): a certificate code is a few hundred.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest upload (bytes): a phone photo of a QR code.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;
/// A body over its limit is still read (and dropped) up to this size, so
/// that the browser reads the refusal instead of a reset connection.
pub const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// Name of the language cookie (the person's choice on the settings
/// page).
pub const LANG_COOKIE: &str = "meshtrace_lang";
/// Longest cookie header read (bytes).
pub const MAX_COOKIE_HEADER: usize = 4 * 1024;
/// The paths anyone on this computer may load without logging in.
pub const PUBLIC_PATHS: [&str; 2] = ["/login", "/style.css"];

/// The time source of the login rules (UNIX seconds).
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real time, for the login rules (never the node's simulated clock).
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// The lock on a local page: its secret, the one-time login rule, its port
/// and language settings.
pub struct Gate {
    /// The secret behind logins, cookies and CSRF tokens.
    pub secret: Secret,
    logins: LoginGuard,
    port: AtomicU16,
    /// `[ui] language`.
    pub config_lang: Option<Lang>,
    /// The system's language (`LANG`), read once.
    pub system_lang: Option<Lang>,
    /// The wall clock.
    pub clock: WallClock,
    upload_paths: Vec<&'static str>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("port", &self.port())
            .finish_non_exhaustive()
    }
}

/// What the gate learned about a request, for the pages.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The words of the chosen language.
    pub tr: Tr,
    /// The session's CSRF token (for forms; empty without a session).
    pub csrf: String,
}

impl Gate {
    /// A gate for a server starting now; `upload_paths` are the POST routes
    /// that take files (limit [`MAX_UPLOAD_BYTES`]).
    pub fn new(
        secret: Secret,
        config_lang: Option<Lang>,
        clock: WallClock,
        upload_paths: Vec<&'static str>,
    ) -> Gate {
        let started = clock();
        Gate {
            secret,
            logins: LoginGuard::new(started),
            port: AtomicU16::new(0),
            config_lang,
            system_lang: i18n::from_env(),
            clock,
            upload_paths,
        }
    }

    /// Sets the port the server listens on (the Host check needs it).
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Accepts a one-time login code now.
    pub fn accept_login(&self, code: &str) -> Result<(), crate::auth::LoginRefused> {
        self.logins.accept(&self.secret, code, (self.clock)())
    }

    /// The language of a request: cookie, `[ui] language`,
    /// `Accept-Language`, system, English.
    pub fn lang_for(&self, headers: &HeaderMap) -> Lang {
        i18n::choose(LangSources {
            cookie: cookie(headers, LANG_COOKIE).and_then(Lang::from_tag),
            config: self.config_lang,
            accept_language: headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
            system: self.system_lang,
        })
    }

    /// Whether `Host` (and `Origin`, when present) name this server on this
    /// computer.
    pub fn host_ok(&self, headers: &HeaderMap) -> bool {
        let port = self.port();
        let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if headers.get_all(header::HOST).iter().count() != 1
            || !hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
        {
            return false;
        }
        let origins = headers.get_all(header::ORIGIN);
        let mut n = 0;
        for o in origins {
            n += 1;
            let ok = o.to_str().ok().is_some_and(|o| {
                hosts
                    .iter()
                    .any(|h| o.eq_ignore_ascii_case(&format!("http://{h}")))
            });
            if !ok || n > 1 {
                return false;
            }
        }
        true
    }

    /// The session of a request's cookie, when valid now.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        cookie(headers, SESSION_COOKIE).and_then(|c| self.secret.session(c, (self.clock)()))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_COOKIE_HEADER)
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_seconds}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The headers every answer carries.
pub fn add_security_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
}

/// How the gate's refusals are drawn (each page set has its own look).
pub trait Refusals: Send + Sync + 'static {
    /// 403: foreign Host or Origin.
    fn forbidden(&self, tr: Tr) -> Response;
    /// 401: no valid session.
    fn login_needed(&self, tr: Tr) -> Response;
    /// 403: missing or wrong CSRF token.
    fn csrf_failed(&self, tr: Tr) -> Response;
    /// 413: the body is over its limit (`upload`: the route takes files).
    fn too_large(&self, tr: Tr, upload: bool) -> Response;
}

/// The gate and how its refusals look: the middleware's state.
#[derive(Clone)]
pub struct GateState {
    /// The gate.
    pub gate: Arc<Gate>,
    /// Its refusal pages.
    pub refusals: Arc<dyn Refusals>,
}

/// The middleware: Host/Origin, login, body limit, CSRF, then the page.
pub async fn guard(State(s): State<GateState>, req: Request, next: Next) -> Response {
    let gate = &s.gate;
    let tr = Tr(gate.lang_for(req.headers()));
    let mut resp = guarded(&s, tr, req, next).await;
    add_security_headers(resp.headers_mut());
    resp
}

async fn guarded(s: &GateState, tr: Tr, req: Request, next: Next) -> Response {
    let gate = &s.gate;
    if !gate.host_ok(req.headers()) {
        return s.refusals.forbidden(tr);
    }
    let public = PUBLIC_PATHS.contains(&req.uri().path());
    let Some(session) = gate.session(req.headers()) else {
        if public {
            let mut req = req;
            req.extensions_mut().insert(Ctx {
                tr,
                csrf: String::new(),
            });
            return next.run(req).await;
        }
        return s.refusals.login_needed(tr);
    };
    let csrf = gate.secret.csrf_token(&session);
    let mut req = req;
    if req.method() == Method::POST {
        let upload = gate.upload_paths.contains(&req.uri().path());
        let limit = if upload {
            MAX_UPLOAD_BYTES
        } else {
            MAX_FORM_BYTES
        };
        let (parts, body) = req.into_parts();
        let bytes = match read_limited(body, limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return s.refusals.too_large(tr, upload),
            Err(BodyError::Broken) => return StatusCode::BAD_REQUEST.into_response(),
        };
        let given = csrf_field(&parts.headers, &bytes).await;
        if !given.is_some_and(|g| gate.secret.check_csrf(&session, &g)) {
            return s.refusals.csrf_failed(tr);
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Ctx { tr, csrf });
    next.run(req).await
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Broken,
}

/// Reads a body up to `limit` bytes; a longer one is drained up to
/// [`MAX_DRAIN_BYTES`] and refused.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        total = total.saturating_add(chunk.len());
        if total > MAX_DRAIN_BYTES {
            return Err(BodyError::TooLarge);
        }
        if total <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if total > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(buf))
}

/// The `csrf` field of a urlencoded or multipart form body.
async fn csrf_field(headers: &HeaderMap, body: &Bytes) -> Option<String> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded_field(body, "csrf");
    }
    if ctype.starts_with("multipart/form-data") {
        let req = Request::builder()
            .header(header::CONTENT_TYPE, ctype)
            .body(Body::from(body.clone()))
            .ok()?;
        let mut mp = axum::extract::Multipart::from_request(req, &())
            .await
            .ok()?;
        while let Ok(Some(field)) = mp.next_field().await {
            if field.name() == Some("csrf") {
                return field.text().await.ok();
            }
        }
    }
    None
}

/// One field of a urlencoded body.
pub fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The pairs of a urlencoded body (`+` is a space, `%XX` a byte; bad
/// escapes are kept as written).
pub fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = s.get(i + 1..i + 3).and_then(|h| {
                        std::str::from_utf8(h)
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    });
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.splitn(2, |b| *b == b'=');
            let k = decode(it.next().unwrap_or(b""));
            let v = decode(it.next().unwrap_or(b""));
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(port: u16) -> Gate {
        let g = Gate::new(Secret::from_bytes([1; 32]), None, system_clock(), vec![]);
        g.set_port(port);
        g
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_this_computers_own_names_and_port_pass() {
        let g = gate(7390);
        assert!(g.host_ok(&headers(&[("host", "127.0.0.1:7390")])));
        assert!(g.host_ok(&headers(&[("host", "LOCALHOST:7390")])));
        assert!(g.host_ok(&headers(&[
            ("host", "localhost:7390"),
            ("origin", "http://localhost:7390")
        ])));
        for bad in [
            vec![],
            vec![("host", "evil.example:7390")],
            vec![("host", "127.0.0.1:7391")],
            vec![("host", "127.0.0.1")],
            vec![("host", "127.0.0.1:7390"), ("host", "127.0.0.1:7390")],
            vec![
                ("host", "127.0.0.1:7390"),
                ("origin", "http://evil.example"),
            ],
            vec![("host", "127.0.0.1:7390"), ("origin", "null")],
            vec![
                ("host", "127.0.0.1:7390"),
                ("origin", "https://127.0.0.1:7390"),
            ],
            vec![
                ("host", "127.0.0.1:7390"),
                ("origin", "http://127.0.0.1:7390"),
                ("origin", "http://127.0.0.1:7390"),
            ],
        ] {
            assert!(!g.host_ok(&headers(&bad)), "{bad:?}");
        }
    }

    #[test]
    fn cookies_and_form_fields_are_read_exactly() {
        let h = headers(&[("cookie", "a=1; meshtrace_lang=vi ; b=2")]);
        assert_eq!(cookie(&h, LANG_COOKIE), Some("vi"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            form_urlencoded_field(b"csrf=ab%20c+d&x=%zz&y", "csrf").as_deref(),
            Some("ab c d")
        );
        assert_eq!(form_urlencoded_field(b"x=%zz", "x").as_deref(), Some("%zz"));
        assert_eq!(form_urlencoded_field(b"x=%4", "x").as_deref(), Some("%4"));
        assert_eq!(form_urlencoded_field(b"y", "y").as_deref(), Some(""));
    }
}
