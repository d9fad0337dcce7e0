//! `meshtrace`: the command a user runs.

/// Every `println!` of the crate goes through [`output`]: a closed pipe
/// ends the program quietly and a failed write in one line, never a panic.
/// The commands' own output uses `outln!` and returns the failure instead,
/// so that they close what they hold before exiting.
macro_rules! println {
    () => {
        $crate::output::write_line_or_exit(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line_or_exit(format_args!($($arg)*))
    };
}

mod output;

mod bench;
mod calibrate;
mod demo;
mod issuer;
mod node_cmd;
mod node_query;
mod simulate;
mod store_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{Parser, Subcommand};
use meshtrace_node::protocol::UnixTime;

/// meshtrace — serverless, peer-to-peer contact tracing.
///
/// Phones and PCs exchange rotating Bluetooth IDs, keep what they hear in an
/// encrypted store, and warn their user when someone they were close to
/// reports a certified positive test over the peer-to-peer mesh. Matching
/// happens on the device; there is no server.
///
/// Start with `meshtrace demo` (no setup), or `meshtrace init` then
/// `meshtrace run` for a real node. Logs: RUST_LOG (e.g. RUST_LOG=debug).
#[derive(Debug, Parser)]
#[command(name = "meshtrace", version, propagate_version = true)]
struct Cli {
    /// The node's data directory [default: the platform data directory,
    /// e.g. ~/.local/share/meshtrace]. A node created with
    /// `init --data-dir DIR` keeps its config in DIR/config.toml.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The config file [default: DIR/config.toml with --data-dir, else the
    /// platform config file, e.g. ~/.config/meshtrace/config.toml].
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node: its config, encrypted store and keys (owner-only).
    Init(node_cmd::InitArgs),
    /// Run the node: radio, encrypted store, mesh, matching and alerts,
    /// until SIGINT or SIGTERM.
    Run(Box<node_cmd::RunArgs>),
    /// Open the running node's page in the browser (a one-time login link).
    Ui(node_cmd::UiArgs),
    /// Show the running node's status.
    Status(node_query::ReadArgs),
    /// Show exposures found (works whether or not the node runs).
    Exposures(node_query::ReadArgs),
    /// Show the running node's mesh peers.
    Peers(node_query::ReadArgs),
    /// Measure this device's RSSI correction against a calibrated device at
    /// a known distance (stop this device's node first).
    Calibrate(calibrate::CalibrateArgs),
    /// Report a positive test: request a certificate, then submit it.
    #[command(subcommand)]
    Report(node_query::ReportCommand),
    /// Issuer tools: create an issuer key, certify a positive user's request.
    #[command(subcommand)]
    Issuer(issuer::IssuerCommand),
    /// Maintain the encrypted store of a data directory.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// The zero-setup demonstration: real nodes on this machine, a scripted
    /// day in accelerated time, one report, the alerts and a summary.
    Demo(demo::DemoArgs),
    /// The town-scale evaluation: thousands of simulated people running the
    /// real protocol code, scored against ground truth.
    Simulate(simulate::SimulateArgs),
    /// Measure this machine: token derivation, verification, matching, store ingest, idle memory.
    Bench(bench::BenchArgs),
}

/// Where a command finds its node: the data directory and config file the
/// global options name (or their defaults).
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// `--data-dir`, when given.
    pub(crate) data_dir: Option<PathBuf>,
    /// `--config`, when given.
    pub(crate) config: Option<PathBuf>,
}

pub(crate) fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

fn run(cli: Cli) -> Result<ExitCode> {
    let paths = Paths {
        data_dir: cli.data_dir,
        config: cli.config,
    };
    match cli.command {
        Command::Init(a) => node_cmd::init(&paths, &a),
        Command::Run(a) => node_cmd::run(&paths, *a),
        Command::Ui(a) => node_cmd::ui(&paths, &a),
        Command::Status(a) => node_query::status(&paths, &a),
        Command::Exposures(a) => node_query::exposures(&paths, &a),
        Command::Peers(a) => node_query::peers(&paths, &a),
        Command::Calibrate(a) => calibrate::run(&paths, &a),
        Command::Report(c) => node_query::report(&paths, &c),
        Command::Issuer(c) => issuer::run(&c),
        Command::Store(c) => store_cmd::run(&paths, &c),
        Command::Demo(a) => demo::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Bench(a) => bench::run(&a),
    }
}

/// A panic (a bug) is reported in one plain line rather than Rust's
/// debugging text; `RUST_BACKTRACE=1` keeps the full report.
fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        let msg = what.replace('\n', " ");
        eprintln!(
            "meshtrace: internal error ({msg}); please report it (RUST_BACKTRACE=1 shows details)"
        );
    }));
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(code) = output::exit_code_for(&e) {
                return code;
            }
            // One line: contexts joined by ": ", no embedded newlines.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("meshtrace: {msg}");
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

    #[test]
    fn every_subcommand_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            let name = format!("{path} {}", cmd.get_name());
            if !cmd.is_hide_set() && name.trim() != "meshtrace help" {
                assert!(
                    cmd.get_about().is_some() || path.is_empty(),
                    "{name} has no description"
                );
            }
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(a.get_help().is_some(), "{name} --{id} has no help");
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &name);
                }
            }
        }
        walk(&Cli::command(), "");
    }
}
