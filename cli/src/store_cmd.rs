//! `meshtrace store check | recover`: maintenance of the encrypted store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use meshtrace_node::config::Config;
use meshtrace_node::control::utc;
use meshtrace_node::daemon::key_source;
use meshtrace_node::protocol::Zeroizing;
use meshtrace_node::store::{ContactStore, KeySource, StoreConfig};

use crate::{Paths, now};

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// Report what the store holds (after retention, as the node applies
    /// it), or the damage found, without writing into the store (it reads a
    /// private copy). Exit status 1 when it cannot be opened.
    Check(StoreArgs),
    /// Repair a damaged store: copy every record that authenticates into a
    /// fresh database and move the damaged one aside (it is kept, not deleted).
    Recover(StoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store's key file [default: from the config, else DIR/master.key].
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    key_file: Option<PathBuf>,
    /// Read the store passphrase from this environment variable instead.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The data directory and key source for store maintenance: flags first,
/// then the node's config when there is one, then the defaults.
fn locate(paths: &Paths, a: &StoreArgs) -> Result<(PathBuf, KeySource)> {
    let config_path =
        meshtrace_node::config::config_path(paths.config.as_deref(), paths.data_dir.as_deref());
    let config = match &config_path {
        Some(p) if p.exists() || paths.config.is_some() => Some(Config::load(p)?),
        _ => None,
    };
    let data_dir = crate::node_cmd::data_dir(paths, config.as_ref())?;
    if let Some(var) = &a.passphrase_env {
        let pass =
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        if pass.is_empty() {
            bail!("environment variable {var} is empty");
        }
        return Ok((data_dir, KeySource::Passphrase(Zeroizing::new(pass))));
    }
    if let Some(f) = &a.key_file {
        return Ok((data_dir, KeySource::KeyFile(f.clone())));
    }
    let source = match &config {
        Some(c) => key_source(c, &data_dir)?,
        None => KeySource::KeyFile(data_dir.join(meshtrace_node::daemon::KEY_FILE)),
    };
    Ok((data_dir, source))
}

pub(crate) fn run(paths: &Paths, cmd: &StoreCommand) -> Result<ExitCode> {
    match cmd {
        StoreCommand::Check(a) => {
            let (dir, source) = locate(paths, a)?;
            let r = ContactStore::check(&dir, &source, StoreConfig::default(), now())?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "encounters": r.encounters,
                        "announcements": r.announcements,
                        "exposures": r.exposures,
                        "days": r.days,
                        "purge_held": r.purge_held.map(|h| serde_json::json!({
                            "clock": h.clock.0,
                            "clock_utc": utc(h.clock),
                            "last_confirmed": h.known_good.0,
                            "last_confirmed_utc": utc(h.known_good),
                        })),
                    })
                );
            } else {
                println!(
                    "store OK: {} encounters, {} announcements, {} exposures over {} days",
                    r.encounters, r.announcements, r.exposures, r.days
                );
                if let Some(h) = r.purge_held {
                    println!(
                        "old data is kept for now: the clock reads {}, more than the retention \
                         period after the last date known to be right ({}); the node deletes \
                         it once a peer confirms the date or the clock is fixed",
                        utc(h.clock),
                        utc(h.known_good)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Recover(a) => {
            let (dir, source) = locate(paths, a)?;
            let report = ContactStore::recover(&dir, &source)?;
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
