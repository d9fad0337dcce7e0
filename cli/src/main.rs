//! `meshtrace`: the command a user runs.
//!
//! This build has the store maintenance commands (`store check`, `store
//! recover`); the node commands arrive with their issues.

mod demo;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use meshtrace_node::protocol::{
    Certificate, CertificateParams, Day, IssuerSecretKey, ReportRequest, UnixTime, Zeroizing,
};
use meshtrace_node::store::{ContactStore, KeySource, StoreConfig, create_key_file, read_key_file};
use std::path::Path;

/// meshtrace — serverless, peer-to-peer contact tracing.
///
/// This build has the store maintenance and issuer commands. The node
/// commands (init, run, status, exposures, report, peers, demo, simulate,
/// bench) are not part of it yet; see README.md.
#[derive(Debug, Parser)]
#[command(name = "meshtrace", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Maintain the encrypted store of a data directory.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Issuer tools: create an issuer key, certify a positive user's request.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// The zero-setup demonstration: real nodes on this machine, a scripted
    /// day in accelerated time, one report, the alerts and a summary.
    Demo(demo::DemoArgs),
    /// The town-scale evaluation: thousands of simulated people running the
    /// real protocol code, scored against ground truth.
    Simulate(simulate::SimulateArgs),
}

#[derive(Debug, Subcommand)]
enum IssuerCommand {
    /// Create an issuer key file (owner-only) and print its public key, which
    /// deployments list as trusted.
    Keygen {
        /// Where to write the key (refused if the file exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Certify a report request code after checking the test result out of
    /// band; prints the certificate code for the user.
    Certify(CertifyArgs),
}

#[derive(Debug, Args)]
struct CertifyArgs {
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

fn parse_day(s: &str) -> Result<Day> {
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
    println!("{}", key.public().to_hex());
    Ok(ExitCode::SUCCESS)
}

fn issuer_certify(a: &CertifyArgs) -> Result<ExitCode> {
    let request = ReportRequest::from_code(&a.request).context("the request code")?;
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
    println!("{}", cert.to_code());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Open the store (applying retention, as the node does) and report what
    /// it holds, or the damage found. Exit status 1 when it cannot be opened.
    Check(StoreArgs),
    /// Repair a damaged store: copy every record that authenticates into a
    /// fresh database and move the damaged one aside (it is kept, not deleted).
    Recover(StoreArgs),
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// The node's data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The store's key file [default: DIR/master.key].
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    key_file: Option<PathBuf>,
    /// Read the store passphrase from this environment variable instead.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl StoreArgs {
    fn key_source(&self) -> Result<KeySource> {
        if let Some(var) = &self.passphrase_env {
            let pass = std::env::var(var)
                .with_context(|| format!("environment variable {var} is not set"))?;
            if pass.is_empty() {
                bail!("environment variable {var} is empty");
            }
            return Ok(KeySource::Passphrase(Zeroizing::new(pass)));
        }
        Ok(KeySource::KeyFile(
            self.key_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("master.key")),
        ))
    }
}

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Issuer(IssuerCommand::Keygen { out }) => issuer_keygen(&out),
        Command::Issuer(IssuerCommand::Certify(a)) => issuer_certify(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Store(StoreCommand::Check(a)) => {
            let store =
                ContactStore::open(&a.data_dir, &a.key_source()?, StoreConfig::default(), now())?;
            let encounters = store.encounter_count();
            let announcements = store.announcements().count();
            let exposures = store.exposures().len();
            let days = store.days().len();
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "encounters": encounters,
                        "announcements": announcements,
                        "exposures": exposures,
                        "days": days,
                    })
                );
            } else {
                println!(
                    "store OK: {encounters} encounters, {announcements} announcements, {exposures} exposures over {days} days"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Store(StoreCommand::Recover(a)) => {
            let report = ContactStore::recover(&a.data_dir, &a.key_source()?)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "kept": report.kept,
                        "unreadable": report.unreadable,
                        "set_aside": report.set_aside,
                    })
                );
            } else {
                println!(
                    "recovered: {} records kept, {} unreadable; the damaged database is kept at {}",
                    report.kept,
                    report.unreadable,
                    report.set_aside.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshtrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
