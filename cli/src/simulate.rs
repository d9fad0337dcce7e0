//! `meshtrace simulate`: the town-scale evaluation.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

/// Options of `meshtrace simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &SimulateArgs) -> Result<ExitCode> {
    let _ = args.json;
    bail!("meshtrace simulate is not part of this build yet")
}
