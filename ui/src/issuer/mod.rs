//! The clinic's page: `meshtrace issuer serve --key clinic.key` serves a
//! one-page certifier on 127.0.0.1. The person who certifies positive tests
//! pastes the request code a person's node shows (or uploads a photo of its
//! QR code), chooses the days of contacts to report and how long the
//! certificate stays usable, and gets the certificate as text and as a QR
//! code.
//!
//! Same lock as the node's page ([`crate::gate`]): a secret in an
//! owner-only file beside the key ([`secret_path`]), a one-time login link
//! printed at start, Host/Origin checked first (403), a session cookie, a
//! CSRF token in the form, body limits (413). The issuer key is read once,
//! at start, from its owner-only file (refused otherwise) and zeroized when
//! the server stops. Certifying goes through [`certify::certify`], the
//! code path of `meshtrace issuer certify` too.

pub mod certify;
pub mod page;
pub mod words;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use meshtrace_node::protocol::{IssuerSecretKey, Zeroizing};
use meshtrace_node::store::read_key_file;

use crate::auth::Secret;
use crate::gate::{self, Gate, GateState, WallClock};
use crate::i18n::Lang;
use crate::server::UiError;

/// The clinic page's port unless `--listen` says otherwise (the node's page
/// has 7390).
pub const DEFAULT_ISSUER_PORT: u16 = 7391;

/// The POST routes of the clinic page that take a file.
pub const ISSUER_UPLOAD_PATHS: [&str; 1] = ["/certify"];

/// Suffix of the page's secret file, beside the key: `clinic.key` →
/// `clinic.key.page-secret`.
pub const SECRET_SUFFIX: &str = ".page-secret";

/// The default listen address (`127.0.0.1:7391`).
pub fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_ISSUER_PORT))
}

/// Where the page's secret lives for an issuer key file: beside it, with
/// [`SECRET_SUFFIX`].
pub fn secret_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(SECRET_SUFFIX);
    PathBuf::from(name)
}

/// What the clinic page needs: its lock, the issuer key and its rules.
pub struct IssuerApp {
    /// The lock (shared with the node's page).
    pub gate: Arc<Gate>,
    /// The issuer key (zeroized on drop).
    pub key: IssuerSecretKey,
    /// When set, requests of other networks are refused.
    pub network: Option<String>,
    /// The token cap written into every certificate.
    pub max_tokens: u32,
}

impl std::fmt::Debug for IssuerApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerApp")
            .field("gate", &self.gate)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The clinic page's settings (from `meshtrace issuer serve`'s options).
#[derive(Clone, Debug)]
pub struct IssuerSettings {
    /// The issuer key file (owner-only).
    pub key_file: PathBuf,
    /// Where to listen (127.0.0.1 only).
    pub listen: SocketAddr,
    /// Refuse requests of any other network.
    pub network: Option<String>,
    /// The language unless the browser's or the person's choice says
    /// otherwise.
    pub language: Option<Lang>,
    /// The token cap written into every certificate.
    pub max_tokens: u32,
}

/// The routes behind the gate.
pub fn router(app: Arc<IssuerApp>) -> Router {
    let gate_state = GateState {
        gate: app.gate.clone(),
        refusals: Arc::new(page::IssuerRefusals),
    };
    Router::new()
        .route("/", get(page::home))
        .route("/certify", post(page::certify_post))
        .route("/language", post(page::set_language))
        .route("/login", get(page::login))
        .route("/style.css", get(page::style))
        .fallback(page::not_found)
        // The gate reads bodies with its own limits.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            gate_state,
            gate::guard,
        ))
        .with_state(app)
}

/// The clinic page bound to its address, not yet serving.
#[derive(Debug)]
pub struct IssuerServer {
    listener: tokio::net::TcpListener,
    app: Arc<IssuerApp>,
    url: String,
}

impl IssuerServer {
    /// Reads the issuer key (once), loads or creates the page's secret
    /// beside it and binds `listen` (127.0.0.1 only).
    pub async fn bind(
        settings: &IssuerSettings,
        clock: WallClock,
    ) -> Result<IssuerServer, UiError> {
        meshtrace_node::config::check_ui_listen(settings.listen)
            .map_err(|e| UiError(format!("--listen: {e}")))?;
        let seed = read_key_file(&settings.key_file).map_err(|e| UiError(e.to_string()))?;
        let key = IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes()));
        drop(seed);
        let secret = Secret::load_or_create(&secret_path(&settings.key_file)).map_err(UiError)?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    UiError(format!(
                        "port {} is already in use (is the clinic's page already running?); \
                         choose another with --listen 127.0.0.1:PORT",
                        settings.listen.port()
                    ))
                } else {
                    UiError(format!(
                        "the clinic's page cannot listen on {}: {e}",
                        settings.listen
                    ))
                }
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| UiError(e.to_string()))?
            .port();
        let gate = Arc::new(Gate::new(
            secret,
            settings.language,
            clock,
            ISSUER_UPLOAD_PATHS.to_vec(),
        ));
        gate.set_port(port);
        Ok(IssuerServer {
            listener,
            app: Arc::new(IssuerApp {
                gate,
                key,
                network: settings.network.clone(),
                max_tokens: settings.max_tokens,
            }),
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh one-time login link (valid
    /// [`LOGIN_CODE_TTL_SECONDS`](crate::auth::LOGIN_CODE_TTL_SECONDS)).
    pub fn login_url(&self) -> String {
        let code = self.app.gate.secret.login_code((self.app.gate.clock)());
        format!("{}/login?t={code}", self.url)
    }

    /// The shared state.
    pub fn app(&self) -> &Arc<IssuerApp> {
        &self.app
    }

    /// Serves until `stop` completes, then finishes the requests under way.
    pub async fn serve(self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let router = router(self.app);
        if let Err(e) = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "the clinic's page stopped");
        }
    }
}

#[cfg(test)]
mod tests;
