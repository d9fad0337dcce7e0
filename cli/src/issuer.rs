//! `meshtrace issuer keygen | certify`: the tools of the person who
//! certifies positive tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use meshtrace_node::protocol::{
    Certificate, CertificateParams, Day, IssuerSecretKey, ReportRequest, Zeroizing,
};
use meshtrace_node::store::{create_key_file, read_key_file};

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
    #[arg(long, value_name = "N", default_value_t = 3)]
    valid_days: u32,
    /// Most tokens (padding included) the report may carry.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: u32,
}

/// Default token cap of a certificate: 8 full chunks, enough for 14 days of
/// a busy user (about 1,000 encounters a day, 1–2 tokens each).
const DEFAULT_MAX_TOKENS: u32 = 16_384;

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
    let request = ReportRequest::from_code(&a.request).map_err(|e| {
        let text = e.to_string();
        if text.contains("request") {
            anyhow::anyhow!("{text}")
        } else {
            anyhow::anyhow!("the request code: {text}")
        }
    })?;
    if let Some(n) = &a.network
        && *n != request.network_id
    {
        bail!(
            "the request is for network {:?}, not {n:?}",
            request.network_id
        );
    }
    let seed = read_key_file(&a.key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = IssuerSecretKey::from_bytes(&Zeroizing::new(*seed.as_bytes()));
    let now = now();
    let today = now.day();
    let first = parse_day(&a.window_start).context("--window-start")?;
    let last = match &a.window_end {
        Some(d) => parse_day(d).context("--window-end")?,
        None => today,
    };
    if last > today {
        bail!("the contact window ends in the future ({last})");
    }
    if first > last {
        bail!("the contact window starts ({first}) after it ends ({last})");
    }
    if !(1..=30).contains(&a.valid_days) {
        bail!("--valid-days must be between 1 and 30");
    }
    let cert = Certificate::issue(
        &key,
        CertificateParams {
            network_id: request.network_id,
            report_key: request.report_key,
            valid_from: now,
            valid_until: now.plus(u64::from(a.valid_days) * 86_400),
            window_first_day: first,
            window_last_day: last,
            max_tokens: a.max_tokens,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    outln!("{}", cert.to_code())?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(cmd: &IssuerCommand) -> Result<ExitCode> {
    match cmd {
        IssuerCommand::Keygen { out } => issuer_keygen(out),
        IssuerCommand::Pubkey { key } => issuer_pubkey(key),
        IssuerCommand::Certify(a) => issuer_certify(a),
    }
}
