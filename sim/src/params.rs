//! Parameters of the simulated town, disease, radio and mesh, with their
//! sources. `docs/simulation.md` explains each choice.

use meshtrace_node::radio::model::{DutyCycle, PathLossModel};
use meshtrace_protocol::{RiskConfig, RiskModel};

/// Smallest town (`--agents`).
pub const MIN_AGENTS: u32 = 10;
/// Largest town (`--agents`): beyond this a run takes minutes and gigabytes.
pub const MAX_AGENTS: u32 = 200_000;
/// Longest run (`--days`).
pub const MAX_DAYS: u32 = 90;
/// Days a node keeps encounters (the protocol's retention window, plus the
/// report day).
pub const KEEP_DAYS: u32 = meshtrace_protocol::RETENTION_DAYS + 1;
/// Adoption levels of `--sweep-adoption`.
pub const SWEEP_LEVELS: [f64; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// A phone's scan window (ms): it listens this long every scan interval
/// (Exposure Notification scans about 4 s; the node's phone default).
pub const SCAN_WINDOW_MS: u64 = 4_000;
/// Default scan interval (`--scan-interval`, seconds): the node's phone
/// default, 4 s every 60 s.
pub const DEFAULT_SCAN_INTERVAL_S: u64 = 60;
/// Longest scan interval (`--scan-interval`, seconds): the node's own limit
/// (`[radio] scan_interval` at most 10 minutes).
pub const MAX_SCAN_INTERVAL_S: u64 = 600;
/// Scan intervals of `--sweep-scan` and of the acceptance table (seconds):
/// dense PC-like scanning, the phone default, and the 2.5–4 minutes of
/// throttled phones (Exposure Notification: 3.5–5 minutes).
pub const SWEEP_SCAN_INTERVALS: [u64; 4] = [10, 60, 150, 240];
/// Thresholds (weighted minutes) at which the CWA rule's recall/precision
/// curve is drawn; the run's own threshold is added.
pub const CURVE_THRESHOLDS_MINUTES: [f64; 22] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 25.0, 30.0, 40.0, 50.0,
    60.0, 90.0, 120.0, 180.0, 240.0,
];
/// Confidences (`min_confidence`) at which the calibrated model's
/// recall/precision curve is drawn, the 15-minute threshold kept; the run's
/// own setting is added.
pub const CURVE_MIN_CONFIDENCES: [f64; 16] = [
    0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
];
/// Ground truth: a true contact is at least this many minutes in one day ...
pub const CONTACT_MINUTES: u32 = 15;
/// ... within this distance (metres): the ECDC close-contact definition.
pub const CONTACT_DISTANCE_M: f32 = 2.0;

/// The town: who lives where, works where, goes where.
#[derive(Clone, Debug, PartialEq)]
pub struct TownParams {
    /// Household size distribution, sizes 1..=6 (shares of households;
    /// between the EU, 2.3 people per household, and South-East Asia, 3.5+:
    /// mean 2.6).
    pub household_sizes: [f64; 6],
    /// Share of adults (18–64) who go to work (EU employment rate ≈ 0.75).
    pub employment: f64,
    /// People per neighbourhood (each has its shops and a bus route).
    pub neighbourhood_size: u32,
    /// Pupils per class.
    pub class_size: u32,
    /// Residents per shop.
    pub residents_per_shop: u32,
    /// Share of commuters (workers, pupils) who take the bus.
    pub bus_share: f64,
    /// Chance that an adult at home, an elder or a worker after work visits
    /// a shop on a weekday.
    pub weekday_shop: f64,
    /// Chance of a shop visit on a weekend day.
    pub weekend_shop: f64,
    /// Chance of visiting another household on a weekend day.
    pub weekend_visit: f64,
}

impl Default for TownParams {
    fn default() -> TownParams {
        TownParams {
            household_sizes: [0.25, 0.30, 0.19, 0.17, 0.06, 0.03],
            employment: 0.75,
            neighbourhood_size: 500,
            class_size: 25,
            residents_per_shop: 150,
            bus_share: 0.35,
            weekday_shop: 0.3,
            weekend_shop: 0.5,
            weekend_visit: 0.2,
        }
    }
}

/// The infection, testing and the behaviour around them.
#[derive(Clone, Debug, PartialEq)]
pub struct DiseaseParams {
    /// People infected at the start (share of the town, at least one).
    pub initial_share: f64,
    /// Transmission rate per minute at 1 m or closer, at peak
    /// infectiousness (calibrated for a household secondary attack rate of
    /// roughly 15–20 %, Madewell et al. 2020).
    pub beta_per_minute: f64,
    /// Incubation period: log-normal median in days and log sigma (Lauer et
    /// al. 2020: median 5.1 days).
    pub incubation_median_days: f64,
    /// Log-space sigma of the incubation period.
    pub incubation_sigma: f64,
    /// Infectious from this many days before symptom onset (He et al. 2020).
    pub presymptomatic_days: f64,
    /// ... until this many days after it.
    pub infectious_days_after_onset: f64,
    /// Share of infections without symptoms (Buitrago-Garcia et al. 2020:
    /// about 20–30 %).
    pub asymptomatic_share: f64,
    /// Relative infectiousness of an asymptomatic infection.
    pub asymptomatic_infectiousness: f64,
    /// Chance that a symptomatic person gets tested.
    pub test_seeking: f64,
    /// Chance that a symptomatic person stays home from the day after onset.
    pub self_isolation: f64,
    /// Days from onset to test (uniform between the two).
    pub onset_to_test_days: (f64, f64),
    /// Days from test to result (uniform between the two).
    pub test_to_result_days: (f64, f64),
    /// Hours from a positive result to the submitted report: log-normal
    /// median (getting the issuer's certificate, confirming).
    pub report_delay_median_hours: f64,
    /// Chance that an app user with a positive result reports it (the
    /// Corona-Warn-App saw about 60 % of positive users share).
    pub report_share: f64,
    /// Chance that a warned person stays home for the quarantine.
    pub quarantine_compliance: f64,
    /// Chance that a warned person gets tested.
    pub test_after_alert: f64,
    /// Quarantine and isolation length (days).
    pub quarantine_days: u32,
    /// Contact window certified by the issuer starts this many days before
    /// onset (or before the test when there are no symptoms) — ECDC.
    pub window_days_before_onset: u32,
}

impl Default for DiseaseParams {
    fn default() -> DiseaseParams {
        DiseaseParams {
            initial_share: 0.008,
            beta_per_minute: 5e-4,
            incubation_median_days: 5.1,
            incubation_sigma: 0.418,
            presymptomatic_days: 2.0,
            infectious_days_after_onset: 5.0,
            asymptomatic_share: 0.25,
            asymptomatic_infectiousness: 0.5,
            test_seeking: 0.6,
            self_isolation: 0.4,
            onset_to_test_days: (0.5, 2.5),
            test_to_result_days: (0.5, 1.5),
            report_delay_median_hours: 3.0,
            report_share: 0.6,
            quarantine_compliance: 0.7,
            test_after_alert: 0.7,
            quarantine_days: 10,
            window_days_before_onset: 2,
        }
    }
}

/// The radio: path loss, device variation, duty-cycled scanning.
#[derive(Clone, Debug, PartialEq)]
pub struct RadioParams {
    /// Path loss, slow shadowing (one draw per segment of a pair, shared by
    /// both directions) and Rayleigh fading (one draw per reception): the
    /// `meshtrace_node::radio::model` defaults, fitted to the MIT LL data
    /// (docs/risk.md §4).
    pub model: PathLossModel,
    /// Draw each phone's carry position (held, front or back pocket, bag:
    /// `CarryPosition`, equally likely) once per person, room and day, and
    /// apply its loss at both ends of every link.
    pub carry_positions: bool,
    /// The radio tells each tracker its scan windows (protocol §6.2,
    /// scan-aware credit). Off: the first-to-last crediting of trackers
    /// that never see a window (`--no-scan-windows`, for comparison).
    pub report_scan_windows: bool,
    /// Per-device TX and RX offset sigma after calibration (dB).
    pub device_sigma_db: f64,
    /// Scanning: a [`SCAN_WINDOW_MS`] window every scan interval (default
    /// [`DEFAULT_SCAN_INTERVAL_S`]), advertising every 250 ms.
    pub duty: DutyCycle,
    /// Loss through an inner wall (dB), between bedrooms.
    pub wall_db: f32,
}

impl Default for RadioParams {
    fn default() -> RadioParams {
        RadioParams {
            model: PathLossModel::default(),
            carry_positions: true,
            report_scan_windows: true,
            device_sigma_db: meshtrace_node::radio::model::DEVICE_OFFSET_SIGMA_DB,
            duty: DutyCycle {
                scan_window_ms: SCAN_WINDOW_MS,
                scan_interval_ms: DEFAULT_SCAN_INTERVAL_S * 1000,
                advertising_interval_ms: 250,
            },
            wall_db: 8.0,
        }
    }
}

/// The mesh: how an announcement reaches the nodes, and what it costs.
#[derive(Clone, Debug, PartialEq)]
pub struct GossipParams {
    /// Share of nodes that are full gossip peers (PCs, always-on phones);
    /// the rest are light nodes that pull by catch-up.
    pub full_node_share: f64,
    /// Median gossip latency to a full node (s), including stem hops;
    /// log-normal.
    pub gossip_latency_median_s: f64,
    /// Log sigma of that latency.
    pub gossip_latency_sigma: f64,
    /// Chance that a full node misses the gossip copy (it then gets the
    /// announcement at its next catch-up).
    pub gossip_loss: f64,
    /// Catch-up interval (s): `sync_interval` of the node, 300 s.
    pub sync_interval_s: f64,
    /// Chance that a node has an offline spell on a given day.
    pub offline_daily: f64,
    /// Length of an offline spell (hours, uniform).
    pub offline_hours: (f64, f64),
    /// Bytes a full node receives per announcement chunk besides the
    /// chunk itself (the ids from its gossip peers, IHAVE gossip, the fetch
    /// request and response framing): the mesh bench's measured figure
    /// (`cargo bench -p meshtrace-tests --bench mesh`, 100 nodes, the
    /// node's own timers, net of the quiet mesh: (amplification − 1) ×
    /// chunk size ≈ 0.6 kB for chunks of 3,383 bytes with the tuned IHAVE
    /// gossip of protocol §14.2, 2.8 kB before it; docs/performance.md).
    pub full_node_bytes_per_chunk: f64,
}

/// The mesh bench's measured bytes per chunk beyond the chunk at a full
/// node ([`GossipParams::full_node_bytes_per_chunk`]).
pub const FULL_NODE_BYTES_PER_CHUNK: f64 = 600.0;

impl Default for GossipParams {
    fn default() -> GossipParams {
        GossipParams {
            full_node_share: 0.2,
            gossip_latency_median_s: 0.5,
            gossip_latency_sigma: 0.8,
            gossip_loss: 0.02,
            sync_interval_s: 300.0,
            offline_daily: 0.3,
            offline_hours: (1.0, 8.0),
            full_node_bytes_per_chunk: FULL_NODE_BYTES_PER_CHUNK,
        }
    }
}

/// One run's configuration.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// People in the town.
    pub agents: u32,
    /// Simulated days (starting on a Monday).
    pub days: u32,
    /// Share of people running the app.
    pub adoption: f64,
    /// Seed of every random draw.
    pub seed: u64,
    /// Town parameters.
    pub town: TownParams,
    /// Disease parameters.
    pub disease: DiseaseParams,
    /// Radio parameters.
    pub radio: RadioParams,
    /// Mesh parameters.
    pub gossip: GossipParams,
    /// Risk rules of every node: the model whose alerts act (quarantine,
    /// testing) and that `tracing` reports.
    pub risk: RiskConfig,
    /// The other model, scored on the same matched encounters for
    /// comparison (`tracing_baseline`); its alerts change nothing.
    pub baseline_risk: RiskConfig,
    /// Add an attacker who records IDs in one shop and replays them live in
    /// another.
    pub replay_attack: bool,
    /// Worker threads (results do not depend on it).
    pub threads: usize,
}

impl SimConfig {
    /// The defaults of `meshtrace simulate`.
    pub fn new(agents: u32, days: u32, adoption: f64, seed: u64) -> SimConfig {
        SimConfig {
            agents,
            days,
            adoption,
            seed,
            town: TownParams::default(),
            disease: DiseaseParams::default(),
            radio: RadioParams::default(),
            gossip: GossipParams::default(),
            risk: risk_config(RiskModel::default()),
            baseline_risk: risk_config(other_model(RiskModel::default())),
            replay_attack: false,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8),
        }
    }

    /// Selects the risk model whose alerts act (`--risk-model`); the other
    /// model becomes the baseline. Both use the protocol's defaults.
    pub fn with_risk_model(mut self, model: RiskModel) -> SimConfig {
        self.risk = risk_config(model);
        self.baseline_risk = risk_config(other_model(model));
        self
    }

    /// Sets the scan interval (`--scan-interval`, seconds); the scan window
    /// stays [`SCAN_WINDOW_MS`]. [`SimConfig::validate`] checks the bounds.
    pub fn with_scan_interval(mut self, seconds: u64) -> SimConfig {
        self.radio.duty.scan_interval_ms = seconds.saturating_mul(1000);
        self
    }

    /// The scan interval in seconds.
    pub fn scan_interval_s(&self) -> f64 {
        self.radio.duty.scan_interval_ms as f64 / 1000.0
    }

    /// Checks the user-facing bounds; the message names the option.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_AGENTS..=MAX_AGENTS).contains(&self.agents) {
            return Err(format!(
                "--agents must be between {MIN_AGENTS} and {MAX_AGENTS} (got {})",
                self.agents
            ));
        }
        if !(1..=MAX_DAYS).contains(&self.days) {
            return Err(format!(
                "--days must be between 1 and {MAX_DAYS} (got {})",
                self.days
            ));
        }
        if !(self.adoption.is_finite() && (0.0..=1.0).contains(&self.adoption)) {
            return Err(format!(
                "--adoption must be a share between 0 and 1 (got {})",
                self.adoption
            ));
        }
        self.radio
            .model
            .validate()
            .map_err(|e| format!("radio model: {e}"))?;
        let duty = &self.radio.duty;
        if duty.scan_interval_ms < duty.scan_window_ms
            || duty.scan_interval_ms > MAX_SCAN_INTERVAL_S * 1000
        {
            return Err(format!(
                "--scan-interval must be between {} and {MAX_SCAN_INTERVAL_S} seconds: a phone scans {} s every SECONDS (got {} s)",
                duty.scan_window_ms.div_ceil(1000),
                duty.scan_window_ms as f64 / 1000.0,
                duty.scan_interval_ms as f64 / 1000.0
            ));
        }
        self.radio
            .duty
            .validate()
            .map_err(|e| format!("radio duty cycle: {e}"))?;
        Ok(())
    }
}

/// The protocol's default risk rules under `model`.
pub fn risk_config(model: RiskModel) -> RiskConfig {
    RiskConfig::builder()
        .model(model)
        .build()
        .unwrap_or_else(|_| RiskConfig::default())
}

/// The model a run scores beside `model`.
pub fn other_model(model: RiskModel) -> RiskModel {
    match model {
        RiskModel::Calibrated => RiskModel::Cwa,
        RiskModel::Cwa => RiskModel::Calibrated,
    }
}

/// The model's name as `--risk-model` and the JSON spell it.
pub fn model_name(model: RiskModel) -> &'static str {
    match model {
        RiskModel::Calibrated => "calibrated",
        RiskModel::Cwa => "cwa",
    }
}
