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
use meshtrace_ui::Tr;
use meshtrace_ui::i18n::{FluentValue, cli_lang};

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
        /// Also draw the code as a QR code in the terminal, for the clinic
        /// to scan.
        #[arg(long, conflicts_with = "json")]
        qr: bool,
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

/// The words of the CLI's notices: `[ui] language`, else the system's
/// (`LC_ALL`, `LC_MESSAGES`, `LANG`), else English.
fn words(paths: &Paths) -> Tr {
    Tr(cli_lang(load(paths).ok().and_then(|(c, _)| c.ui.language)))
}

pub(crate) fn status(paths: &Paths, a: &ReadArgs) -> Result<ExitCode> {
    let s: StatusReply = ask(paths, &Request::Status)?;
    if a.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_status(words(paths), &s)?;
    Ok(ExitCode::SUCCESS)
}

fn print_status(tr: Tr, s: &StatusReply) -> Result<(), OutputError> {
    let line = |id: &str, args: &[(&str, FluentValue<'_>)]| outln!("  {}", tr.args(id, args));
    outln!(
        "{}",
        tr.args(
            "cli-status-running",
            &[("pid", s.pid.into()), ("network", s.network.clone().into())]
        )
    )?;
    line("cli-status-data", &[("dir", s.data_dir.clone().into())])?;
    if s.time_scale == 1.0 {
        line("cli-status-time", &[("time", s.now_utc.clone().into())])?;
    } else {
        line(
            "cli-status-time-scaled",
            &[
                ("time", s.now_utc.clone().into()),
                ("scale", s.time_scale.to_string().into()),
            ],
        )?;
    }
    let r = &s.radio;
    line(
        "cli-status-radio",
        &[
            ("kind", r.kind.clone().into()),
            ("sightings", r.sightings.into()),
            ("malformed", r.malformed.into()),
        ],
    )?;
    if let Some(f) = &r.last_failure {
        line(
            "cli-status-radio-failed",
            &[
                ("count", r.failures.into()),
                ("when", f.at_utc.clone().into()),
                ("error", f.error.clone().into()),
            ],
        )?;
    }
    line(
        "cli-status-encounters",
        &[
            ("stored", s.encounters.into()),
            ("open", s.open_encounters.into()),
        ],
    )?;
    line("cli-status-reports", &[("count", s.announcements.into())])?;
    line(
        "cli-status-exposures",
        &[("count", s.exposures.into()), ("high", s.high_risk.into())],
    )?;
    if let Some(m) = &s.mesh {
        line(
            "cli-status-mesh",
            &[
                ("count", (m.peers.len() as u64).into()),
                ("peer", m.peer_id.clone().into()),
            ],
        )?;
    }
    if let Some(url) = &s.ui_url {
        line("cli-status-page", &[("url", url.clone().into())])?;
    }
    if let Some(h) = &s.purge_held {
        line(
            "cli-status-purge-held",
            &[
                ("clock", h.clock_utc.clone().into()),
                ("known", h.last_confirmed_utc.clone().into()),
            ],
        )?;
    }
    if s.unsent_report_chunks > 0 {
        line(
            "cli-status-unsent",
            &[("count", s.unsent_report_chunks.into())],
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
    for line in exposure_notice(words(paths), &items) {
        outln!("{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The exposures in words (the page's words): a line per exposure, a line
/// per day ("about 25 minutes within 2 m on 1 December"), and what to do
/// when one is high risk.
pub(crate) fn exposure_notice(tr: Tr, items: &[ExposureReply]) -> Vec<String> {
    if items.is_empty() {
        return vec![tr.t("cli-no-exposures")];
    }
    let mut out = Vec::new();
    for e in items {
        let found = tr.time(e.found_at);
        out.push(tr.args(
            if e.high_risk {
                "cli-exposure-high"
            } else {
                "cli-exposure-low"
            },
            &[("found", found.into())],
        ));
        for d in &e.days {
            out.push(format!(
                "  {}",
                tr.exposure_day(&d.day, d.estimated_minutes)
            ));
        }
    }
    if items.iter().any(|e| e.high_risk) {
        out.push(tr.t("cli-advice"));
    }
    out
}

pub(crate) fn report(paths: &Paths, cmd: &ReportCommand) -> Result<ExitCode> {
    match cmd {
        ReportCommand::Request { json, qr } => {
            let answer = match ask(paths, &Request::ReportRequest) {
                Ok(v) => v,
                Err(ControlError::NotRunning(_)) => offline_request(paths)?,
                Err(e) => return Err(e.into()),
            };
            if *json {
                print_json(&answer)?;
            } else {
                outln!("{}", answer.request)?;
                if *qr {
                    let drawing =
                        meshtrace_ui::qr::terminal(&answer.request).map_err(|e| anyhow!("{e}"))?;
                    eprintln!("{}", words(paths).t("cli-request-qr"));
                    outln!("{drawing}")?;
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_node::control::ExposureDayReply;
    use meshtrace_ui::Lang;

    fn exposure(high: bool) -> ExposureReply {
        ExposureReply {
            report: "0123456789abcdef".into(),
            high_risk: high,
            // 2026-12-01 14:05 UTC
            found_at: 1_796_133_900,
            found_at_utc: String::new(),
            updated_at: 0,
            encounters: 2,
            days: vec![ExposureDayReply {
                day: "2026-12-01".into(),
                weighted_minutes: 20.0,
                close_minutes: 20.0,
                estimated_minutes: 24.6,
                contacts: 1,
                high_risk: high,
            }],
        }
    }

    #[test]
    fn the_exposure_notice_reads_the_same_as_the_page_in_both_languages() {
        assert_eq!(
            exposure_notice(Tr(Lang::En), &[exposure(true)]),
            vec![
                "HIGH RISK: you were in close contact with an infected person (found 1 December, \
                 14:05 UTC)."
                    .to_owned(),
                "  about 25 minutes within 2 m on 1 December".to_owned(),
                format!("What to do: {}", Tr(Lang::En).t("advice-text")),
            ]
        );
        assert_eq!(
            exposure_notice(Tr(Lang::Vi), &[exposure(true)]),
            vec![
                "NGUY CƠ CAO: bạn đã tiếp xúc gần với người nhiễm bệnh (phát hiện lúc ngày 1 \
                 tháng 12, 14:05 UTC)."
                    .to_owned(),
                "  khoảng 25 phút trong phạm vi 2 mét vào ngày 1 tháng 12".to_owned(),
                format!("Bạn cần làm gì: {}", Tr(Lang::Vi).t("advice-text")),
            ]
        );
        let low = exposure_notice(Tr(Lang::En), &[exposure(false)]);
        assert_eq!(low.len(), 2, "no advice for a low-risk contact: {low:?}");
        assert!(low[0].starts_with("Low risk:"));
        assert_eq!(
            exposure_notice(Tr(Lang::Vi), &[]),
            vec!["Không có tiếp xúc nguy cơ nào.".to_owned()]
        );
    }
}
