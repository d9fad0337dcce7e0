//! `meshtrace demo`: the zero-setup main job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

/// Options of `meshtrace demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of people (nodes) in the scripted day.
    #[arg(long, value_name = "N", default_value_t = 12)]
    nodes: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Keep the nodes' data directories and a summary in DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: &DemoArgs) -> Result<ExitCode> {
    let _ = (args.nodes, args.json, &args.out);
    bail!("meshtrace demo is not part of this build yet")
}
