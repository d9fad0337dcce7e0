//! The demo's result: scored against the script, printed for people or as
//! JSON.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use meshtrace_node::store::StoredExposure;
use serde::Serialize;

use super::script::{self, Role, Truth};
use super::steps::{Delivery, Setup};
use super::{SUMMARY_FILE, ms, round1};
use crate::output::{count, outln};

/// The result of a demo run (printed as JSON with `--json`, written to
/// `summary.json` with `--out`).
#[derive(Debug, Serialize)]
pub(super) struct Outcome {
    pub(super) nodes: usize,
    pub(super) seed: u64,
    /// The simulated day (UTC).
    pub(super) day: String,
    /// Who tested positive.
    pub(super) positive: String,
    /// People with ≥ 15 minutes within 2 m of the positive person.
    pub(super) true_contacts: usize,
    /// People warned (a high-risk exposure).
    pub(super) alerted: usize,
    pub(super) true_positives: usize,
    pub(super) false_positives: usize,
    pub(super) false_negatives: usize,
    /// People with a low-risk exposure (a contact below the threshold).
    pub(super) low_risk_notices: usize,
    /// Real time from submitting the report to the first and last alert.
    pub(super) report_to_first_alert_ms: Option<u64>,
    pub(super) report_to_last_alert_ms: Option<u64>,
    /// Nodes besides the reporter holding the report when the wait ended.
    pub(super) report_reached: usize,
    /// Real time until every other node held the report (checked every
    /// 25 ms).
    pub(super) report_to_all_nodes_ms: Option<u64>,
    /// Weighted minutes in a day that make an exposure high risk (the
    /// `cwa` model's threshold).
    pub(super) high_risk_weighted_minutes: f64,
    /// The risk model the nodes used (`Calibrated` or `Cwa`).
    pub(super) risk_model: String,
    /// When the radios listened (simulated time).
    pub(super) scan: ScanOut,
    pub(super) report: ReportOut,
    pub(super) people: Vec<PersonOut>,
    pub(super) simulated_minutes: u64,
    pub(super) timings_ms: Timings,
    /// Where the data directories are kept (`--out`).
    pub(super) data_dir: Option<PathBuf>,
}

/// The radios' scan timing.
#[derive(Debug, Serialize)]
pub(super) struct ScanOut {
    /// Listening time per interval (simulated seconds).
    pub(super) window_s: f64,
    /// Interval between scan starts (simulated seconds).
    pub(super) interval_s: f64,
    /// In words.
    pub(super) text: String,
}

/// What the report published.
#[derive(Debug, Serialize)]
pub(super) struct ReportOut {
    pub(super) chunks: usize,
    pub(super) real_tokens: usize,
    pub(super) tokens_per_chunk: usize,
    pub(super) padded_tokens: usize,
    pub(super) window_first_day: String,
    pub(super) window_last_day: String,
}

/// One person's line of the summary.
#[derive(Debug, Serialize)]
pub(super) struct PersonOut {
    pub(super) name: String,
    pub(super) node: usize,
    pub(super) household: usize,
    pub(super) role: &'static str,
    /// Scenes shared with the positive person.
    pub(super) met_positive_at: Vec<&'static str>,
    /// Minutes within 2 m of the positive person (script).
    pub(super) close_minutes: f64,
    pub(super) true_contact: bool,
    /// Encounters the node stored during the day.
    pub(super) encounters: usize,
    pub(super) exposure: Option<ExposureOut>,
    pub(super) alerted: bool,
    /// Real time from the report to its first high-risk exposure event.
    pub(super) alert_ms: Option<u64>,
    /// Real time from the report to its first low-risk exposure event.
    pub(super) notice_ms: Option<u64>,
    pub(super) verdict: &'static str,
}

/// The exposure a node found (its highest day).
#[derive(Debug, Serialize)]
pub(super) struct ExposureOut {
    pub(super) high_risk: bool,
    /// The day of the figures (UTC).
    pub(super) day: String,
    pub(super) weighted_minutes: f64,
    pub(super) close_minutes: f64,
    /// Estimated minutes within 2 m: what the person is told.
    pub(super) estimated_minutes: f64,
}

/// Real time spent in each phase (ms).
#[derive(Debug, Default, Serialize)]
pub(super) struct Timings {
    pub(super) setup: u64,
    pub(super) day: u64,
    pub(super) report: u64,
    pub(super) shutdown: u64,
    pub(super) total: u64,
}

/// What was seen of each node after the report was submitted.
#[derive(Debug)]
pub(super) struct Watch {
    /// When its first high-risk exposure event arrived.
    pub(super) alert_at: Vec<Option<Instant>>,
    /// When its first low-risk exposure event arrived.
    pub(super) notice_at: Vec<Option<Instant>>,
    /// When it was seen holding the whole report.
    pub(super) reached_at: Vec<Option<Instant>>,
}

impl Watch {
    pub(super) fn new(n: usize) -> Watch {
        Watch {
            alert_at: vec![None; n],
            notice_at: vec![None; n],
            reached_at: vec![None; n],
        }
    }

    /// Records when an exposure event arrived (the first of each kind).
    pub(super) fn note(&mut self, i: usize, at: Instant, e: &StoredExposure) {
        let slot = if e.exposure.high_risk {
            &mut self.alert_at[i]
        } else {
            &mut self.notice_at[i]
        };
        if slot.is_none() {
            *slot = Some(at);
        }
    }
}

/// Scores what the nodes stored against the script's ground truth.
pub(super) fn score(
    s: &Setup,
    d: &Delivery,
    stored: &[Vec<StoredExposure>],
    seed: u64,
    timings_ms: Timings,
    data_dir: Option<PathBuf>,
) -> Outcome {
    let (script, index, t0, n) = (&s.script, s.script.index, s.t0, s.script.people.len());
    let (watch, submitted, encounters) = (&d.watch, d.submitted, &d.encounters);
    let truth = script.truth(t0, s.model.max_range_m);
    let mut people = Vec::with_capacity(n);
    for (i, p) in script.people.iter().enumerate() {
        let t: Truth = truth[i];
        let exposure = stored[i]
            .iter()
            .find(|e| e.exposure.high_risk)
            .or_else(|| stored[i].first())
            .map(|e| {
                let best = e
                    .exposure
                    .days
                    .iter()
                    .max_by(|a, b| a.estimated_minutes.total_cmp(&b.estimated_minutes));
                ExposureOut {
                    high_risk: e.exposure.high_risk,
                    day: best.map_or_else(String::new, |d| d.day.to_string()),
                    weighted_minutes: round1(best.map_or(0.0, |d| d.weighted_minutes)),
                    close_minutes: round1(best.map_or(0.0, |d| d.close_minutes)),
                    estimated_minutes: round1(best.map_or(0.0, |d| d.estimated_minutes)),
                }
            });
        let alerted = stored[i].iter().any(|e| e.exposure.high_risk);
        let contact = i != index && t.is_contact();
        let verdict = match (i == index, contact, alerted) {
            (true, _, false) => "tested positive",
            (true, _, true) => "false positive (own report)",
            (false, true, true) => "true positive",
            (false, false, true) => "false positive",
            (false, true, false) => "false negative",
            (false, false, false) => "true negative",
        };
        let role = match p.role {
            _ if i == index => "tested positive",
            Role::Worker { seat: Some(_), .. } => "office, by bus",
            Role::Worker { seat: None, .. } => "office",
            Role::AtHome => "at home",
        };
        people.push(PersonOut {
            name: p.name.to_owned(),
            node: i,
            household: p.household + 1,
            role,
            met_positive_at: if i == index {
                Vec::new()
            } else {
                script.shared_places(i)
            },
            close_minutes: round1(t.close_seconds as f64 / 60.0),
            true_contact: contact,
            encounters: encounters[i],
            exposure,
            alerted,
            alert_ms: watch.alert_at[i].map(|a| ms(a.saturating_duration_since(submitted))),
            notice_ms: watch.notice_at[i].map(|a| ms(a.saturating_duration_since(submitted))),
            verdict,
        });
    }
    let count = |v: &str| people.iter().filter(|p| p.verdict == v).count();
    let alert_ms: Vec<u64> = people.iter().filter_map(|p| p.alert_ms).collect();
    let all_reached = watch
        .reached_at
        .iter()
        .copied()
        .collect::<Option<Vec<Instant>>>()
        .and_then(|v| v.into_iter().max())
        .map(|t| ms(t.saturating_duration_since(submitted)));
    Outcome {
        nodes: n,
        seed,
        day: s.day.to_string(),
        positive: script.people[index].name.to_owned(),
        true_contacts: people.iter().filter(|p| p.true_contact).count(),
        alerted: people.iter().filter(|p| p.alerted).count(),
        true_positives: count("true positive"),
        false_positives: count("false positive") + count("false positive (own report)"),
        false_negatives: count("false negative"),
        low_risk_notices: people
            .iter()
            .filter(|p| p.exposure.as_ref().is_some_and(|e| !e.high_risk))
            .count(),
        report_to_first_alert_ms: alert_ms.iter().copied().min(),
        report_to_last_alert_ms: alert_ms.iter().copied().max(),
        report_reached: watch
            .reached_at
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != index && r.is_some())
            .count(),
        report_to_all_nodes_ms: all_reached,
        high_risk_weighted_minutes: s.risk.high_risk_weighted_minutes(),
        risk_model: format!("{:?}", s.risk.model()),
        scan: ScanOut {
            window_s: s.scan.window.as_secs_f64(),
            interval_s: s.scan.interval.as_secs_f64(),
            text: super::scan_words(&s.scan),
        },
        report: ReportOut {
            chunks: d.chunks,
            real_tokens: d.sent.plan.real_tokens,
            tokens_per_chunk: d.sent.plan.tokens_per_chunk,
            padded_tokens: d.sent.plan.tokens_per_chunk * d.chunks,
            window_first_day: d.sent.window.0.to_string(),
            window_last_day: d.sent.window.1.to_string(),
        },
        people,
        simulated_minutes: script.seconds() / 60,
        timings_ms,
        data_dir,
    }
}

/// The alerts of the human output, in the order they came, with the same
/// figures as the table and the JSON.
pub(super) fn print_alerts(o: &Outcome) -> Result<()> {
    outln!()?;
    outln!("Alerts (real time after the report was submitted):")?;
    let mut lines: Vec<(u64, &PersonOut, &ExposureOut)> = o
        .people
        .iter()
        .filter_map(|p| {
            let e = p.exposure.as_ref()?;
            let at = if e.high_risk { p.alert_ms } else { p.notice_ms };
            Some((at?, p, e))
        })
        .collect();
    lines.sort_by_key(|(at, p, _)| (*at, p.node));
    if lines.is_empty() {
        outln!("  nobody")?;
    }
    for (at, p, e) in lines {
        if e.high_risk {
            outln!(
                "  {:>+6} ms  {} is warned: about {:.0} minutes within 2 m on {}",
                at,
                p.name,
                e.estimated_minutes,
                e.day
            )?;
        } else {
            outln!(
                "  {:>+6} ms  {} gets a low-risk notice: about {:.0} minutes within 2 m on {}, \
                 below the warning threshold",
                at,
                p.name,
                e.estimated_minutes,
                e.day
            )?;
        }
    }
    Ok(())
}

/// The closing table of the human output.
pub(super) fn print_summary(o: &Outcome) -> Result<()> {
    outln!()?;
    outln!(
        "Who was warned, against the script (a true contact spent ≥ {} minutes within {} m of {}):",
        script::TRUE_CONTACT_MINUTES,
        script::CLOSE_M,
        o.positive
    )?;
    outln!(
        "  {:<6} {:<16} {:<18} {:>9} {:>9} {:>9}  verdict",
        "name",
        "their day",
        "met them at",
        "close min",
        "estimated",
        "alert ms"
    )?;
    for p in &o.people {
        let weighted = p
            .exposure
            .as_ref()
            .map_or("-".to_owned(), |e| format!("{:.1}", e.estimated_minutes));
        let alert = p.alert_ms.map_or("-".to_owned(), |a| a.to_string());
        let met = if p.met_positive_at.is_empty() {
            "-".to_owned()
        } else {
            p.met_positive_at.join(", ")
        };
        let verdict = match &p.exposure {
            Some(e) if !e.high_risk => format!("{} (low-risk notice)", p.verdict),
            _ => p.verdict.to_owned(),
        };
        let close = if p.verdict == "tested positive" {
            "-".to_owned()
        } else {
            format!("{:.1}", p.close_minutes)
        };
        outln!(
            "  {:<6} {:<16} {:<18} {:>9} {:>9} {:>9}  {verdict}",
            p.name,
            p.role,
            met,
            close,
            weighted,
            alert
        )?;
    }
    outln!()?;
    outln!(
        "{}, {} warned: {}, {}, {}",
        count(o.true_contacts as u64, "true contact", "true contacts"),
        o.alerted,
        count(o.true_positives as u64, "true positive", "true positives"),
        count(
            o.false_positives as u64,
            "false positive",
            "false positives"
        ),
        count(
            o.false_negatives as u64,
            "false negative",
            "false negatives"
        ),
    )?;
    outln!(
        "the radios scanned {}; risk model: {}",
        o.scan.text,
        o.risk_model.to_lowercase()
    )?;
    match (o.report_to_first_alert_ms, o.report_to_last_alert_ms) {
        (Some(first), Some(last)) => outln!(
            "report → alerts (real time): first {first} ms, last {last} ms{}",
            o.report_to_all_nodes_ms.map_or(String::new(), |a| format!(
                "; all {} held the report after {a} ms",
                count(o.report_reached as u64, "other node", "other nodes")
            ))
        )?,
        _ => outln!("no alerts")?,
    }
    outln!(
        "timings: setup {} ms, the day {} ms, report and alerts {} ms, shutdown {} ms, total {} ms",
        o.timings_ms.setup,
        o.timings_ms.day,
        o.timings_ms.report,
        o.timings_ms.shutdown,
        o.timings_ms.total
    )?;
    match &o.data_dir {
        Some(d) => outln!(
            "kept: the nodes' data directories and {SUMMARY_FILE} in {}",
            d.display()
        )?,
        None => outln!(
            "nothing kept: the temporary data directories are removed (use --out DIR to keep them)"
        )?,
    }
    Ok(())
}
