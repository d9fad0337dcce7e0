//! The node's page server: binds 127.0.0.1, builds the router behind the
//! [`Gate`](crate::gate::Gate), and serves until told to stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use meshtrace_node::config::{Config, check_ui_listen};
use meshtrace_node::daemon::UI_SECRET_FILE;
use meshtrace_node::protocol::IssuerPublicKey;

use crate::auth::Secret;
use crate::backend::{ControlSocket, NodeApi};
use crate::gate::{self, Gate, GateState, WallClock};
use crate::i18n::Lang;
use crate::layout::PageRefusals;
use crate::pages;

/// What the pages show from the configuration.
#[derive(Clone, Debug)]
pub struct PageSettings {
    /// The network id.
    pub network: String,
    /// The trusted clinics: name and key.
    pub clinics: Vec<(String, IssuerPublicKey)>,
    /// The health authority's advice link.
    pub advice_url: Option<String>,
    /// Desktop notifications on.
    pub notify: bool,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The config file, when known.
    pub config_path: Option<PathBuf>,
}

impl PageSettings {
    /// The settings of a node's configuration.
    pub fn from_config(config: &Config, data_dir: &Path, config_path: Option<&Path>) -> Self {
        PageSettings {
            network: config.network.clone(),
            clinics: config
                .issuers
                .iter()
                .map(|i| (i.name.clone(), i.key))
                .collect(),
            advice_url: config.ui.advice_url.clone(),
            notify: config.ui.notify,
            data_dir: data_dir.to_owned(),
            config_path: config_path.map(Path::to_owned),
        }
    }
}

/// The page's state shared by the handlers.
pub struct App {
    /// The lock.
    pub gate: Arc<Gate>,
    /// The node.
    pub node: Arc<dyn NodeApi>,
    /// From the config.
    pub settings: PageSettings,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("gate", &self.gate)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The POST routes that take a file.
pub const UPLOAD_PATHS: [&str; 1] = ["/report/check"];

/// The page's routes behind the gate.
pub fn router(app: Arc<App>) -> Router {
    let gate_state = GateState {
        gate: app.gate.clone(),
        refusals: Arc::new(PageRefusals),
    };
    Router::new()
        .route("/", get(pages::home))
        .route("/report", get(pages::report))
        .route("/report/request", post(pages::report_request))
        .route("/report/check", post(pages::report_check))
        .route("/report/send", post(pages::report_send))
        .route("/privacy", get(pages::privacy))
        .route("/privacy/delete", post(pages::delete_ask))
        .route("/privacy/delete/confirm", post(pages::delete_confirm))
        .route("/settings", get(pages::settings))
        .route("/settings/language", post(pages::set_language))
        .route("/login", get(pages::login))
        .route("/style.css", get(|| async { crate::layout::style() }))
        .fallback(pages::not_found)
        // The gate reads bodies with its own limits.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            gate_state,
            gate::guard,
        ))
        .with_state(app)
}

/// A page server bound to its address, not yet serving.
#[derive(Debug)]
pub struct UiServer {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    url: String,
}

/// Why the page cannot start, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UiError(pub String);

impl UiServer {
    /// Binds `listen` (127.0.0.1 only) for a node of `data_dir`, with its
    /// secret (created owner-only when missing).
    pub async fn bind(
        listen: SocketAddr,
        secret_path: &Path,
        config_lang: Option<Lang>,
        node: Arc<dyn NodeApi>,
        settings: PageSettings,
        clock: WallClock,
    ) -> Result<UiServer, UiError> {
        check_ui_listen(listen).map_err(|e| UiError(format!("[ui] listen: {e}")))?;
        let secret = Secret::load_or_create(secret_path).map_err(UiError)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| UiError(format!("the page cannot listen on {listen}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| UiError(e.to_string()))?
            .port();
        let gate = Arc::new(Gate::new(secret, config_lang, clock, UPLOAD_PATHS.to_vec()));
        gate.set_port(port);
        Ok(UiServer {
            listener,
            app: Arc::new(App {
                gate,
                node,
                settings,
            }),
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The page server of a node run from `config`, talking to its daemon
    /// through the control socket in `data_dir`.
    pub async fn for_node(
        config: &Config,
        data_dir: &Path,
        config_path: Option<&Path>,
    ) -> Result<UiServer, UiError> {
        UiServer::bind(
            config.ui.listen,
            &data_dir.join(UI_SECRET_FILE),
            config.ui.language.map(Lang::from_config),
            Arc::new(ControlSocket {
                data_dir: data_dir.to_owned(),
            }),
            PageSettings::from_config(config, data_dir, config_path),
            gate::system_clock(),
        )
        .await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The shared state (tests make login codes with its secret).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `stop` completes, then finishes the requests under way.
    pub async fn serve(self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let router = router(self.app);
        if let Err(e) = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "the page server stopped");
        }
    }
}
