//! `meshtrace`: the command a user runs.
//!
//! This build has the store maintenance commands (`store check`, `store
//! recover`); the node commands arrive with their issues.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use meshtrace_node::protocol::{UnixTime, Zeroizing};
use meshtrace_node::store::{ContactStore, KeySource, StoreConfig};

/// meshtrace — serverless, peer-to-peer contact tracing.
///
/// This build contains the protocol core and the encrypted store. The node
/// commands (init, run, status, exposures, report, issuer, peers, demo,
/// simulate, bench) are not part of it yet; see README.md.
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
