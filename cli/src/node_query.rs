//! The commands that ask a node: `status`, `exposures`, `peers`,
//! `report request | submit`. They talk to the running daemon through its
//! control socket and read its typed replies ([`control::StatusReply`] and
//! the others); `exposures` and `report request` also work with the node
//! stopped, through the same node code the daemon runs.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use meshtrace_node::control::{
    self, ControlError, ExposureReply, PeersReply, Reply, ReportRequestReply, ReportSummaryReply,
    Request, StatusReply,
};
use meshtrace_node::daemon;
use meshtrace_node::protocol::Certificate;
use meshtrace_node::store::{ContactStore, StoreConfig, StoreError};
use meshtrace_node::{MAX_PENDING_REPORT_REQUESTS, create_report_request};
use serde::Serialize;

use crate::node_cmd::load;
use crate::output::{OutputError, count, outln, write_text};
use crate::{Paths, now};

/// Options of the read commands.
#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Create a one-time report key and print the request code to show the
    /// issuer (a clinic, a test centre) with your positive test.
    Request {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Submit the certificate code the issuer gave you: shows what will be
    /// published, asks to confirm, then publishes it through the mesh.
    Submit {
        /// The certificate code (MTCT1:…).
        certificate: String,
        /// Publish without asking.
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON (needs --yes).
        #[arg(long, requires = "yes")]
        json: bool,
    },
}

/// Sends a request to the node's daemon and reads its typed reply.
fn ask<T: Reply>(paths: &Paths, req: &Request) -> Result<T, ControlError> {
    let dir = match load(paths) {
        Ok((_, d)) => d,
        Err(e) => return Err(ControlError::Refused(format!("{e:#}"))),
    };
    control::request(&dir, req)
}

fn print_json(v: &impl Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string(v).context("writing JSON")?)?;
    Ok(())
}

pub(crate) fn status(paths: &Paths, a: &ReadArgs) -> Result<ExitCode> {
    let s: StatusReply = ask(paths, &Request::Status)?;
    if a.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_status(&s)?;
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &StatusReply) -> Result<(), OutputError> {
    outln!(
        "meshtrace running (pid {}) for network {}",
        s.pid,
        s.network
    )?;
    outln!("  data dir:      {}", s.data_dir)?;
    outln!(
        "  node time:     {}{}",
        s.now_utc,
        if s.time_scale == 1.0 {
            String::new()
        } else {
            format!(", clock ×{}", s.time_scale)
        }
    )?;
    let r = &s.radio;
    outln!(
        "  radio:         {} — {}, {} malformed",
        r.kind,
        count(r.sightings, "sighting", "sightings"),
        r.malformed
    )?;
    if let Some(f) = &r.last_failure {
        outln!(
            "  RADIO FAILED:  {}, last at {}: {}",
            count(r.failures, "time", "times"),
            f.at_utc,
            f.error
        )?;
    }
    outln!(
        "  encounters:    {} stored, {} open",
        s.encounters,
        s.open_encounters
    )?;
    outln!(
        "  reports held:  {}",
        count(s.announcements, "announcement chunk", "announcement chunks")
    )?;
    outln!(
        "  exposures:     {} ({} high risk)",
        s.exposures,
        s.high_risk
    )?;
    if let Some(m) = &s.mesh {
        outln!(
            "  mesh:          {}, peer id {}",
            count(m.peers.len() as u64, "peer", "peers"),
            m.peer_id
        )?;
    }
    if let Some(h) = &s.purge_held {
        outln!(
            "  old data:      kept for now: the clock reads {}, more than the retention \
             period after the last date known to be right ({}); nothing is deleted until \
             a peer confirms the date or the clock is fixed",
            h.clock_utc,
            h.last_confirmed_utc
        )?;
    }
    if s.unsent_report_chunks > 0 {
        outln!(
            "  your report:   {} waiting to be sent",
            count(s.unsent_report_chunks, "chunk", "chunks")
        )?;
    }
    Ok(())
}

pub(crate) fn peers(paths: &Paths, a: &ReadArgs) -> Result<ExitCode> {
    let p: PeersReply = ask(paths, &Request::Peers)?;
    if a.json {
        print_json(&p)?;
        return Ok(ExitCode::SUCCESS);
    }
    let id = &p.peer_id;
    outln!("peer id: {id}")?;
    for l in &p.listen {
        outln!("reachable at {l}/p2p/{id}")?;
    }
    outln!("{} connected", count(p.peers.len() as u64, "peer", "peers"))?;
    for peer in &p.peers {
        outln!(
            "  {} ({})",
            peer.peer_id,
            if peer.full { "full" } else { "light" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn exposures(paths: &Paths, a: &ReadArgs) -> Result<ExitCode> {
    let items: Vec<ExposureReply> = match ask(paths, &Request::Exposures) {
        Ok(v) => v,
        Err(ControlError::NotRunning(_)) => {
            // No daemon: read the store directly.
            let (config, dir) = load(paths)?;
            let source = daemon::key_source(&config, &dir)?;
            let store = ContactStore::open(&dir, &source, StoreConfig::default(), now())?;
            ExposureReply::list(&store.exposures())
        }
        Err(e) => return Err(e.into()),
    };
    if a.json {
        print_json(&items)?;
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        outln!("No exposures found.")?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &items {
        outln!(
            "{} — report {}, found {}",
            if e.high_risk {
                "HIGH RISK: a person you were close to for 15 minutes or more has reported a positive test"
            } else {
                "Low risk: a brief or distant contact has reported a positive test"
            },
            e.report,
            e.found_at_utc
        )?;
        for d in &e.days {
            outln!(
                "  {}: {:.1} weighted minutes ({:.1} close), {}{}",
                d.day,
                d.weighted_minutes,
                d.close_minutes,
                count(u64::from(d.contacts), "contact", "contacts"),
                if d.high_risk { " — high risk" } else { "" }
            )?;
        }
    }
    if items.iter().any(|e| e.high_risk) {
        outln!("Follow your health authority's advice for close contacts.")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn report(paths: &Paths, cmd: &ReportCommand) -> Result<ExitCode> {
    match cmd {
        ReportCommand::Request { json } => {
            let answer = match ask(paths, &Request::ReportRequest) {
                Ok(v) => v,
                Err(ControlError::NotRunning(_)) => offline_request(paths)?,
                Err(e) => return Err(e.into()),
            };
            if *json {
                print_json(&answer)?;
            } else {
                outln!("{}", answer.request)?;
                eprintln!(
                    "Show this code to your issuer with your positive test. \
                     It carries only the network name and a one-time key, \
                     and can be used until {}.",
                    answer.expires_at_utc
                );
            }
            if let Some(made) = &answer.replaced_request_made_at_utc {
                eprintln!(
                    "Note: this node keeps at most {MAX_PENDING_REPORT_REQUESTS} requests; \
                     the oldest one (made {made}) can no longer be used."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Submit {
            certificate,
            yes,
            json,
        } => submit(paths, certificate.trim(), *yes, *json),
    }
}

/// `report request` without a running daemon: the node's own
/// [`create_report_request`] (what the daemon runs) keeps the one-time key
/// in the store, and the reply is the daemon's.
fn offline_request(paths: &Paths) -> Result<ReportRequestReply> {
    let (config, dir) = load(paths)?;
    let source = daemon::key_source(&config, &dir)?;
    let mut store =
        ContactStore::open(&dir, &source, StoreConfig::default(), now()).map_err(|e| match e {
            StoreError::Locked(_) => {
                anyhow!("the node is starting or stopping; try again in a moment")
            }
            e => e.into(),
        })?;
    let made = create_report_request(&mut store, &config.network, now(), &mut rand::rng())?;
    Ok(ReportRequestReply::new(&made))
}

/// What a report publishes, in words.
fn describe_plan(plan: &ReportSummaryReply) -> String {
    format!(
        "This publishes {}, {} padded to {} (nobody can tell how many are real), for your contacts from {} to {}.",
        count(plan.chunks, "chunk", "chunks"),
        count(plan.real_tokens, "encounter token", "encounter tokens"),
        plan.padded_tokens,
        plan.window_first_day,
        plan.window_last_day,
    )
}

/// Asks on the terminal; anything but yes refuses.
fn confirm(plan: &ReportSummaryReply) -> Result<()> {
    outln!("{}", describe_plan(plan))?;
    match plan.left_out_for_cap {
        0 => {}
        1 => outln!("1 short encounter is left out: the certificate allows fewer tokens.")?,
        n => outln!("{n} short encounters are left out: the certificate allows fewer tokens.")?,
    }
    outln!(
        "Only these random tokens and the issuer's certificate are published: no IDs, no times, no places."
    )?;
    write_text(format_args!("Publish now? [y/N] "))?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer")?;
    if !matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        bail!("not confirmed; nothing was published");
    }
    Ok(())
}

fn submit(paths: &Paths, certificate: &str, yes: bool, json: bool) -> Result<ExitCode> {
    // Check the code locally first: a typo gets a precise message even
    // when the daemon is down.
    Certificate::from_code(certificate).map_err(|e| {
        let text = e.to_string();
        if text.contains("certificate") {
            anyhow!("{text}")
        } else {
            anyhow!("the certificate code: {text}")
        }
    })?;
    let plan: ReportSummaryReply = ask(
        paths,
        &Request::ReportPlan {
            certificate: certificate.to_owned(),
        },
    )?;
    if !yes {
        confirm(&plan)?;
    }
    let sent: ReportSummaryReply = ask(
        paths,
        &Request::ReportSubmit {
            certificate: certificate.to_owned(),
        },
    )?;
    if json {
        print_json(&sent)?;
    } else {
        outln!(
            "Published {} through the mesh. Thank you: your contacts will be warned without learning who you are.",
            count(sent.chunks, "chunk", "chunks")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
