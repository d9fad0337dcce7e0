//! `meshtrace issuer keygen | pubkey | certify | serve`: the tools of the
//! person who certifies positive tests. `certify` and the clinic's page
//! (`serve`) share one code path, `meshtrace_ui::issuer::certify`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use meshtrace_node::protocol::{Day, IssuerSecretKey, Zeroizing};
use meshtrace_node::store::{create_key_file, read_key_file};
use meshtrace_ui::issuer::certify::{
    CertifyError, CertifyOrder, DEFAULT_MAX_TOKENS, DEFAULT_VALID_DAYS, certify,
};
use meshtrace_ui::issuer::words::w;
use meshtrace_ui::issuer::{IssuerServer, IssuerSettings};
use meshtrace_ui::{Lang, Tr};

use crate::now;
use crate::output::outln;

#[derive(Debug, Subcommand)]
pub(crate) enum IssuerCommand {
    /// Create an issuer key file (owner-only) and print its public key, which
    /// deployments list as trusted.
    Keygen {
        /// Where to write the key (refused if the file exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key of an existing issuer key file (the value that
    /// deployments list as trusted).
    Pubkey {
        /// The issuer key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Certify a report request code after checking the test result out of
    /// band; prints the certificate code for the user.
    Certify(CertifyArgs),
    /// Serve the clinic's page on this computer (127.0.0.1): paste or
    /// upload a request code, choose the days, get the certificate as text
    /// and QR code. Runs until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The issuer key file (owner-only; read once, at start).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to serve the page (127.0.0.1:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value_t = meshtrace_ui::issuer::default_listen())]
    listen: SocketAddr,
    /// Refuse requests for any other network.
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// The page's language unless the browser asks for another
    /// [default: the system's (LANG), else English].
    #[arg(long, value_name = "LANG", value_parser = ["en", "vi"])]
    language: Option<String>,
    /// Most tokens (padding included) a certified report may carry.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: u32,
    /// Print the one-time login link on standard output instead of opening
    /// a browser.
    #[arg(long)]
    print_url: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CertifyArgs {
    /// The request code the user's node showed (MTRQ1:…).
    request: String,
    /// The issuer key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Refuse requests for any other network.
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// First day of the contact window (YYYY-MM-DD, UTC), e.g. two days
    /// before symptom onset.
    #[arg(long, value_name = "DATE")]
    window_start: String,
    /// Last day of the contact window [default: today].
    #[arg(long, value_name = "DATE")]
    window_end: Option<String>,
    /// Days the certificate stays usable.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VALID_DAYS)]
    valid_days: u32,
    /// Most tokens (padding included) the report may carry.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: u32,
    /// Also draw the certificate as a QR code in the terminal, for the
    /// person to scan from the screen.
    #[arg(long)]
    qr: bool,
}

pub(crate) fn parse_day(s: &str) -> Result<Day> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let [y, m, d] = parts[..] else {
        bail!("{s:?} is not a date (YYYY-MM-DD)");
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) else {
        bail!("{s:?} is not a date (YYYY-MM-DD)");
    };
    Day::from_civil(y, m, d).with_context(|| format!("{s:?} is not a valid date"))
}

fn issuer_keygen(out: &Path) -> Result<ExitCode> {
    let seed = create_key_file(out).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes()));
    outln!("{}", key.public().to_hex())?;
    Ok(ExitCode::SUCCESS)
}

fn issuer_pubkey(key: &Path) -> Result<ExitCode> {
    let seed = read_key_file(key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes()));
    outln!("{}", key.public().to_hex())?;
    Ok(ExitCode::SUCCESS)
}

fn issuer_certify(a: &CertifyArgs) -> Result<ExitCode> {
    // The code is checked before the key is read: a mistyped code fails the
    // same way whatever the key.
    meshtrace_ui::issuer::certify::read_request(&a.request, a.network.as_deref())
        .map_err(certify_error)?;
    let first = parse_day(&a.window_start).context("--window-start")?;
    let last = match &a.window_end {
        Some(d) => parse_day(d).context("--window-end")?,
        None => now().day(),
    };
    let seed = read_key_file(&a.key).map_err(|e| anyhow!("{e}"))?;
    let key = IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes()));
    drop(seed);
    let order = CertifyOrder {
        request: a.request.clone(),
        network: a.network.clone(),
        first_day: first,
        last_day: last,
        valid_days: a.valid_days,
        max_tokens: a.max_tokens,
    };
    let cert = certify(&key, &order, now()).map_err(certify_error)?;
    let code = cert.to_code();
    outln!("{code}")?;
    if a.qr {
        let drawing = meshtrace_ui::qr::terminal(&code).map_err(|e| anyhow!("{e}"))?;
        outln!()?;
        for line in drawing.lines() {
            outln!("{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The certify logic's refusal as the CLI says it (its options by name).
fn certify_error(e: CertifyError) -> anyhow::Error {
    anyhow!("{e}")
}

/// How long the page may take to finish its answers after Ctrl-C.
const SERVE_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn issuer_serve(a: &ServeArgs) -> Result<ExitCode> {
    if let Some(n) = &a.network
        && !meshtrace_node::protocol::is_valid_network_id(n)
    {
        bail!("--network: {n:?} is not a network id (1–64 letters, digits, '-', '_', '.')");
    }
    if a.max_tokens == 0 || a.max_tokens > meshtrace_node::protocol::MAX_TOKENS_PER_REPORT {
        bail!(
            "--max-tokens must be between 1 and {} (got {})",
            meshtrace_node::protocol::MAX_TOKENS_PER_REPORT,
            a.max_tokens
        );
    }
    let language = a.language.as_deref().and_then(Lang::from_tag);
    let settings = IssuerSettings {
        key_file: a.key.clone(),
        listen: a.listen,
        network: a.network.clone(),
        language,
        max_tokens: a.max_tokens,
    };
    crate::node_cmd::init_logging();
    let tr = Tr(language
        .or_else(meshtrace_ui::i18n::from_env)
        .unwrap_or(Lang::En));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let server = IssuerServer::bind(&settings, meshtrace_ui::gate::system_clock())
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let link = server.login_url();
        let minutes = meshtrace_ui::auth::LOGIN_CODE_TTL_SECONDS / 60;
        tracing::info!(page = server.url(), "the clinic's page is served");
        if a.print_url || !open_browser(&link) {
            eprintln!(
                "{}",
                w(tr, "issuer-cli-link", &[("minutes", minutes.into())])
            );
            outln!("{link}")?;
        } else {
            eprintln!("{}", w(tr, "issuer-cli-opened", &[]));
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let page = tokio::spawn(server.serve(async move {
            let _ = stop_rx.await;
        }));
        wait_for_stop_signal().await?;
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(SERVE_STOP_TIMEOUT, page).await;
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(SERVE_STOP_TIMEOUT);
    Ok(ExitCode::SUCCESS)
}

/// Opens `link` in the desktop's browser; false when there is none.
fn open_browser(link: &str) -> bool {
    std::process::Command::new("xdg-open")
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_stop_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

pub(crate) fn run(cmd: &IssuerCommand) -> Result<ExitCode> {
    match cmd {
        IssuerCommand::Keygen { out } => issuer_keygen(out),
        IssuerCommand::Pubkey { key } => issuer_pubkey(key),
        IssuerCommand::Certify(a) => issuer_certify(a),
        IssuerCommand::Serve(a) => issuer_serve(a),
    }
}
