//! What a run reports (serialised as `meshtrace simulate --json`).

use serde::Serialize;

use super::town::TownStats;

/// Rounds for the JSON output (4 decimals).
pub(crate) fn r4(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10_000.0).round() / 10_000.0
    } else {
        0.0
    }
}

/// Share `num / den`, or 0 when `den` is 0.
pub(crate) fn share(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        r4(num as f64 / den as f64)
    }
}

/// Count, mean and percentiles of a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `values` (any order).
    pub fn of(values: &[f64]) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Summary {
            count: v.len() as u64,
            mean: r4(v.iter().sum::<f64>() / v.len() as f64),
            p10: r4(q(0.1)),
            p50: r4(q(0.5)),
            p90: r4(q(0.9)),
            max: r4(v[v.len() - 1]),
        }
    }
}

/// The run's inputs.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigEcho {
    /// People.
    pub agents: u32,
    /// Days.
    pub days: u32,
    /// Share running the app.
    pub adoption: f64,
    /// Seed.
    pub seed: u64,
    /// First simulated day (UTC).
    pub start: String,
    /// Ground truth: minutes in one day ...
    pub contact_minutes: u32,
    /// ... within this many metres.
    pub contact_distance_m: f64,
    /// A phone scans `scan_window_s` every `scan_interval_s` seconds
    /// (`--scan-interval`).
    pub scan_interval_s: f64,
    /// Length of a scan window (seconds).
    pub scan_window_s: f64,
    /// The risk model whose alerts act and that `tracing` reports
    /// (`--risk-model`).
    pub risk_model: String,
    /// The model scored beside it on the same matches (`tracing_baseline`).
    pub baseline_model: String,
}

/// The epidemic with and without the app's alerts acting.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Epidemic {
    /// People infected at the start.
    pub initial_infections: u32,
    /// Infections during the run, with tracing.
    pub infections: u32,
    /// Infections during the run when alerts change nothing.
    pub infections_without_tracing: u32,
    /// New infections per day, with tracing.
    pub daily_infections: Vec<u32>,
    /// New infections per day, without tracing.
    pub daily_infections_without_tracing: Vec<u32>,
    /// Where infections happened (with tracing), by place.
    pub infections_by_place: Vec<(String, u32)>,
    /// Positive test results (with tracing).
    pub positive_tests: u32,
    /// Of which found by testing after an alert.
    pub positives_after_alert: u32,
    /// Person-days spent in quarantine after an alert.
    pub quarantine_person_days: u32,
}

/// How well the alerts match the ground truth.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tracing {
    /// Positive results (with a report time inside the run).
    pub cases: u32,
    /// Cases who had the app.
    pub cases_with_app: u32,
    /// Reports published.
    pub reports: u32,
    /// High-risk alerts raised (one per reporter and warned phone).
    pub alerts: u32,
    /// Alerts to a true contact of the reporter.
    pub true_alerts: u32,
    /// Alerts to anyone else.
    pub false_alerts: u32,
    /// Where the false alerts' pairs spent most of their time.
    pub false_alerts_by_place: Vec<(String, u32)>,
    /// How close the false alerts' pairs came (metres).
    pub false_alert_closest_m: Summary,
    /// Low-risk exposures (a match that did not reach the threshold).
    pub low_risk_exposures: u32,
    /// True contacts of reporters who have the app too.
    pub true_contacts_both_app: u32,
    /// Of those, warned.
    pub true_contacts_both_app_warned: u32,
    /// Warned share of true contacts when both have the app (the
    /// protocol's own recall).
    pub recall: f64,
    /// Alerts that went to a true contact.
    pub precision: f64,
    /// True contacts of all cases (app or not).
    pub true_contacts_all: u32,
    /// Of those, warned.
    pub true_contacts_all_warned: u32,
    /// Warned share of all cases' true contacts (both people need the app,
    /// and the case must report).
    pub population_recall: f64,
    /// People infected by a reporter within the certified window.
    pub infected_by_reporters: u32,
    /// Of those, warned.
    pub infected_by_reporters_warned: u32,
    /// Hours from the reporter's positive result to the alert.
    pub alert_delay_hours: Summary,
    /// Minutes from the submitted report to the alert (the mesh's part:
    /// gossip, catch-up, offline phones).
    pub report_to_alert_minutes: Summary,
    /// Alerts within one hour of the positive result.
    pub alerts_within_1h: f64,
    /// Alerts within 24 hours.
    pub alerts_within_24h: f64,
    /// Encounter tokens derived (X25519 + HKDF) by the rebuilt phone logs.
    pub token_derivations: u64,
    /// Sightings the tracker refused (should be 0).
    pub refused_sightings: u64,
    /// Reports whose chunks all verified (should equal `reports`).
    pub reports_verified: u32,
    /// Scan windows reported to the rebuilt phones' trackers (the window
    /// of each reception and the one before it).
    pub scan_windows_reported: u64,
    /// The risk model these alerts come from.
    pub model: String,
    /// Median over the true contacts between two app users (each day on
    /// which the pair spent at least the contact time within the contact
    /// distance, for the pairs the recall counts) of the estimated minutes
    /// within 2 m the warned phone holds for that reporter and day (0 when
    /// none) divided by the true minutes within 2 m that day.
    pub estimated_over_true_p50: f64,
    /// The whole distribution of that ratio.
    pub estimated_over_true: Summary,
    /// How many minutes within 2 m the false alerts' pairs spent on their
    /// closest day (below the contact time, by definition).
    pub false_alert_close_minutes: Summary,
    /// True contacts between app users that were not warned.
    pub missed: u32,
    /// Where the missed contacts' pairs spent most of their time.
    pub missed_by_place: Vec<(String, u32)>,
    /// Minutes within 2 m of the missed contacts on their longest day.
    pub missed_close_minutes: Summary,
    /// Recall and precision when the warning threshold moves (the run's
    /// threshold is marked `operating: true`).
    pub curve: Vec<CurvePoint>,
}

/// One point of a recall/precision curve: what a threshold on the model's
/// warning score (estimated minutes within 2 m under `calibrated`,
/// weighted minutes under `cwa`) would have warned, from the same matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Minutes (of the model's score) that warn.
    pub threshold_minutes: f64,
    /// Pairs (reporter, phone) warned.
    pub alerts: u32,
    /// Share of true contacts between app users warned.
    pub recall: f64,
    /// Share of those alerts that went to a true contact.
    pub precision: f64,
    /// The threshold the run used.
    pub operating: bool,
}

/// One risk model's alerts against the ground truth, over the same matched
/// encounters as the run's own model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelScore {
    /// `calibrated` or `cwa`.
    pub model: String,
    /// Score that warns (minutes).
    pub threshold_minutes: f64,
    /// High-risk alerts (one per reporter and warned phone).
    pub alerts: u32,
    /// Alerts to a true contact of the reporter.
    pub true_alerts: u32,
    /// Alerts to anyone else.
    pub false_alerts: u32,
    /// Warned share of true contacts when both have the app.
    pub recall: f64,
    /// Alerts that went to a true contact.
    pub precision: f64,
    /// See [`Tracing::estimated_over_true_p50`].
    pub estimated_over_true_p50: f64,
    /// The whole distribution of that ratio.
    pub estimated_over_true: Summary,
    /// Where the false alerts' pairs spent most of their time.
    pub false_alerts_by_place: Vec<(String, u32)>,
    /// How close the false alerts' pairs came (metres).
    pub false_alert_closest_m: Summary,
    /// Minutes within 2 m of the false alerts' pairs on their closest day.
    pub false_alert_close_minutes: Summary,
    /// True contacts between app users that were not warned.
    pub missed: u32,
    /// Where the missed contacts' pairs spent most of their time.
    pub missed_by_place: Vec<(String, u32)>,
    /// Minutes within 2 m of the missed contacts on their longest day.
    pub missed_close_minutes: Summary,
    /// Recall and precision when the threshold moves.
    pub curve: Vec<CurvePoint>,
}

/// One scan interval of `--sweep-scan`: the run at that interval, scored
/// under both models.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanPoint {
    /// Seconds between the starts of two scan windows.
    pub scan_interval_s: f64,
    /// The run's risk model.
    pub tracing: ModelScore,
    /// The other model.
    pub tracing_baseline: ModelScore,
}

/// Bytes on the mesh.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Network {
    /// Announcement bytes of one report (all chunks).
    pub announcement_bytes_per_case: Summary,
    /// Real tokens per report.
    pub real_tokens_per_case: Summary,
    /// Chunks per report.
    pub chunks_per_case: Summary,
    /// Mean bytes a node receives per day: announcements (with gossip
    /// overhead on full nodes) and catch-up digests.
    pub bytes_received_per_node_per_day: f64,
    /// Same, full gossip nodes.
    pub full_node_bytes_per_day: f64,
    /// Same, light nodes.
    pub light_node_bytes_per_day: f64,
    /// Of the mean, catch-up digest exchanges.
    pub digest_bytes_per_node_per_day: f64,
}

/// Bytes stored by a node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Storage {
    /// Encounters of the reporters' phones (every encounter of the rebuilt
    /// days, real tracker output) used to calibrate the two ratios below.
    pub calibration_encounters: u64,
    /// Record bytes per encounter (record key + sealed protobuf value).
    pub bytes_per_encounter: f64,
    /// Encounters per (heard phone, epoch) pair in range.
    pub encounters_per_heard_epoch: f64,
    /// Every node at the end of the run: its (heard phone, epoch) pairs of
    /// the retention window × the two ratios, plus the announcements held.
    pub stored_bytes_per_node: Summary,
    /// Announcements held per node at the end (bytes, with record overhead).
    pub announcement_bytes_per_node: f64,
}

/// The one-way replay attack.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplayAttack {
    /// Phones that heard a reporter only through the attacker.
    pub victims: u32,
    /// Encounters they recorded from replayed IDs.
    pub replayed_encounters: u64,
    /// Alerts on those phones (must be 0).
    pub alerts: u32,
}

/// One adoption level of the sweep.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepPoint {
    /// Share running the app.
    pub adoption: f64,
    /// Reports.
    pub reports: u32,
    /// Alerts.
    pub alerts: u32,
    /// True contacts of reporters who have the app too.
    pub true_contacts_both_app: u32,
    /// Recall when both have the app.
    pub recall: f64,
    /// Share of all true contacts warned.
    pub population_recall: f64,
    /// Precision.
    pub precision: f64,
    /// Infections during the run.
    pub infections: u32,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// Inputs.
    pub config: ConfigEcho,
    /// The town.
    pub town: TownStats,
    /// People running the app.
    pub adopters: u32,
    /// The epidemic.
    pub epidemic: Epidemic,
    /// Alerts against ground truth (the run's risk model).
    pub tracing: Tracing,
    /// The other risk model scored on the same matches (its alerts change
    /// nothing in the run).
    pub tracing_baseline: ModelScore,
    /// The mesh.
    pub network: Network,
    /// The store.
    pub storage: Storage,
    /// The replay attack, when simulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_attack: Option<ReplayAttack>,
    /// The adoption sweep, when run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepPoint>,
    /// The scan-interval sweep, when run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scan_sweep: Vec<ScanPoint>,
    /// Every alert delay (hours), for the plots.
    #[serde(skip)]
    pub alert_delays_hours: Vec<f64>,
    /// Stored bytes of every node, for the plots.
    #[serde(skip)]
    pub stored_bytes: Vec<f64>,
}
