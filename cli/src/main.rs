//! `meshtrace`: the command a user runs.
//!
//! The daemon, the report flow and the demo arrive with their issues; this
//! build knows `--help` and `--version` and refuses everything else with a
//! clear message and a non-zero exit.

use std::process::ExitCode;

const HELP: &str = "\
meshtrace — serverless, peer-to-peer contact tracing

USAGE:
    meshtrace [--help | --version]

This build contains the protocol core only (keys, BLE frames, encounter
tokens, certificates, announcements, matching). The node commands (init, run,
status, exposures, report, issuer, peers, demo, simulate, bench) are not part
of this build yet; see README.md.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("-V") | Some("--version") => {
            println!(
                "meshtrace {} (protocol v{})",
                env!("CARGO_PKG_VERSION"),
                meshtrace_protocol::FRAME_VERSION
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "meshtrace: `{other}` is not available in this build (only --help and --version are); see README.md"
            );
            ExitCode::from(2)
        }
    }
}
