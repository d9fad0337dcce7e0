//! The node: one task that drives the protocol core with the adapters —
//! key rotation and advertising, sightings into encounters, the encrypted
//! store, the mesh, matching and exposures, reports.
//!
//! [`start`] spawns the task and returns a [`NodeHandle`]; everything the
//! CLI and the control socket do goes through it.

mod core;
mod driver;
mod requests;

use std::time::Duration;

use meshtrace_protocol::{AnnouncementId, ReportPlan, RiskConfig, UnixTime};
use tokio::sync::{mpsc, oneshot};

use crate::p2p::P2pStatus;
use crate::radio::RadioStats;
use crate::store::{PurgeHold, StoreError, StoredExposure};
use crate::trust::TrustedIssuers;

pub use self::core::{NodeCore, NodeEffect};
pub use driver::{RADIO_CLOSED, start};
pub use requests::create_report_request;

/// Store metadata name of the one pending report key of earlier versions
/// (taken up as a pending request, see [`META_PENDING_REPORTS`]).
pub(crate) const META_REPORT_KEY: &str = "report-key";
/// Store metadata name of the report requests waiting for a certificate:
/// for each, when it was made, until when it can be used, and its one-time
/// secret key.
pub(crate) const META_PENDING_REPORTS: &str = "pending-report-keys";
/// Most report requests kept waiting for a certificate at once; a newer
/// request replaces the oldest (and says so).
pub const MAX_PENDING_REPORT_REQUESTS: usize = 4;
/// How long a report request can be certified and used (seconds): a week
/// for the visit to the issuer.
pub(crate) const REPORT_REQUEST_LIFETIME_SECONDS: u64 = 7 * 86_400;
/// Store metadata name of the own chunks not yet confirmed sent.
pub(crate) const META_UNSENT: &str = "unsent-announcements";
/// Store metadata name of this node's own published report keys (so that
/// it never matches its own report, also after a restart).
pub(crate) const META_OWN_REPORTS: &str = "own-report-keys";
/// Capacity of the command and event channels.
pub(crate) const NODE_CHANNEL: usize = 256;

/// Node settings.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The deployment's network id.
    pub network_id: String,
    /// Calibrated TX power of this device (dBm): the power its radio
    /// transmits at, carried in its reports (never on the air,
    /// docs/protocol.md §3, §10.3) and the reporter's own TX power in
    /// report selection (§10.8).
    pub tx_power_dbm: i8,
    /// This device's RSSI correction (dB), added to the RSSI it measures:
    /// positive when it reads low (docs/protocol.md §6; `meshtrace calibrate`
    /// measures it).
    pub rx_correction_db: i16,
    /// Risk rules.
    pub risk: RiskConfig,
    /// Encounters shorter than this (exposure seconds) are not announced in
    /// a report.
    pub min_report_encounter_seconds: u64,
    /// Real-time interval of the node's timer.
    pub tick: Duration,
    /// The trusted issuers, shared with the mesh (see [`TrustedIssuers`]);
    /// `None`: the store's list, read once at start.
    pub trusted_issuers: Option<TrustedIssuers>,
}

impl NodeSettings {
    /// Defaults for `network_id` (not checked; [`NodeSettings::builder`]
    /// checks it).
    pub fn new(network_id: &str) -> NodeSettings {
        NodeSettings {
            network_id: network_id.to_owned(),
            tx_power_dbm: crate::radio::model::SIM_TX_POWER_DBM,
            rx_correction_db: 0,
            risk: RiskConfig::default(),
            min_report_encounter_seconds: DEFAULT_MIN_REPORT_ENCOUNTER_SECONDS,
            tick: DEFAULT_NODE_TICK,
            trusted_issuers: None,
        }
    }

    /// A builder starting from the defaults for `network_id`.
    pub fn builder(network_id: &str) -> NodeSettingsBuilder {
        NodeSettingsBuilder(NodeSettings::new(network_id))
    }
}

/// Encounters with less exposure than this (seconds) are not announced in a
/// report, by default.
pub(crate) const DEFAULT_MIN_REPORT_ENCOUNTER_SECONDS: u64 = 60;
/// Default real-time interval of the node's timer.
pub(crate) const DEFAULT_NODE_TICK: Duration = Duration::from_millis(250);

/// Builds [`NodeSettings`]; [`NodeSettingsBuilder::build`] checks them.
#[derive(Clone, Debug)]
pub struct NodeSettingsBuilder(NodeSettings);

impl NodeSettingsBuilder {
    /// Calibrated TX power of this device (dBm), carried in its reports.
    pub fn tx_power_dbm(mut self, dbm: i8) -> Self {
        self.0.tx_power_dbm = dbm;
        self
    }

    /// This device's RSSI correction (dB), added to the RSSI it measures:
    /// positive when it reads low (docs/protocol.md §6; `meshtrace calibrate`
    /// measures it).
    pub fn rx_correction_db(mut self, db: i16) -> Self {
        self.0.rx_correction_db = db;
        self
    }

    /// Risk rules.
    pub fn risk(mut self, risk: RiskConfig) -> Self {
        self.0.risk = risk;
        self
    }

    /// Shortest encounter (exposure seconds) announced in a report.
    pub fn min_report_encounter_seconds(mut self, seconds: u64) -> Self {
        self.0.min_report_encounter_seconds = seconds;
        self
    }

    /// Real-time interval of the node's timer.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.0.tick = tick;
        self
    }

    /// The trusted issuers shared with the mesh.
    pub fn trusted_issuers(mut self, trusted: TrustedIssuers) -> Self {
        self.0.trusted_issuers = Some(trusted);
        self
    }

    /// The settings, or what is wrong with them in one line.
    pub fn build(self) -> Result<NodeSettings, NodeError> {
        if !meshtrace_protocol::is_valid_network_id(&self.0.network_id) {
            return Err(NodeError::Settings(format!(
                "the network id \"{}\" is not valid: use 1 to 64 lowercase letters, digits, '.', '_' or '-'",
                self.0.network_id
            )));
        }
        if self.0.tick.is_zero() {
            return Err(NodeError::Settings(
                "the node's timer interval must be longer than zero".into(),
            ));
        }
        Ok(self.0)
    }
}

/// A node failure.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A certificate or request problem, in plain words.
    #[error("{0}")]
    Report(String),
    /// The node task has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// Invalid settings, in plain words.
    #[error("{0}")]
    Settings(String),
}

/// What the node tells its user interface.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A new or updated exposure (with at least one counted contact day).
    Exposure(StoredExposure),
    /// The radio reported a failure; the node keeps running without it.
    RadioFailed(String),
    /// The store could not write (disk full, I/O error). The node has
    /// stopped rather than run on without saving: the database refuses every
    /// later write once one has failed, so only a restart (once the disk
    /// has room again) resumes recording. What was flushed before is intact.
    StoreFailed(String),
    /// The mesh task ended: the node has closed its open encounters,
    /// flushed the store and stopped (nothing can be received or sent any
    /// more).
    MeshStopped(String),
}

/// What a report will publish (for the user to confirm) or has published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportSummary {
    /// Padded layout.
    pub plan: ReportPlan,
    /// Certified window (first day, last day).
    pub window: (meshtrace_protocol::Day, meshtrace_protocol::Day),
    /// Encounters in the window that were left out for the certificate's cap.
    pub dropped_for_cap: usize,
    /// Chunk ids (empty for a plan).
    pub chunks: Vec<AnnouncementId>,
}

/// A report request just made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReportRequest {
    /// The code to show the issuer (`MTRQ1:…`).
    pub code: String,
    /// Until when a certificate for it can be submitted.
    pub expires_at: UnixTime,
    /// When the request that made room for this one was made, if the
    /// node already held [`MAX_PENDING_REPORT_REQUESTS`] requests (that
    /// older code can no longer be used).
    pub replaced_made_at: Option<UnixTime>,
}

/// A snapshot of the node.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// Network id.
    pub network_id: String,
    /// Node clock.
    pub now: UnixTime,
    /// Stored encounters.
    pub encounters: usize,
    /// Of which ended today (by the node's clock): the page's "contacts
    /// recorded today".
    pub encounters_today: usize,
    /// Encounters still open.
    pub open_encounters: usize,
    /// Stored announcements.
    pub announcements: usize,
    /// Exposures found.
    pub exposures: usize,
    /// Of which high risk.
    pub high_risk: usize,
    /// Radio counters.
    pub radio: RadioStats,
    /// Radio failures since start (the node keeps running without the
    /// radio: nothing new is recorded until it works again).
    pub radio_failures: u64,
    /// The latest radio failure: when, and what.
    pub last_radio_failure: Option<(UnixTime, String)>,
    /// Mesh status, when the mesh answered.
    pub mesh: Option<P2pStatus>,
    /// Own chunks not yet confirmed sent.
    pub unsent: usize,
    /// Set while the retention purge is held because the clock is not
    /// trusted (see [`crate::store::ContactStore::purge_hold`]).
    pub purge_held: Option<PurgeHold>,
}

enum Command {
    Tick(oneshot::Sender<()>),
    Status(oneshot::Sender<NodeStatus>),
    Exposures(oneshot::Sender<Vec<StoredExposure>>),
    ReportRequest(oneshot::Sender<Result<NewReportRequest, NodeError>>),
    ReportPlan(String, oneshot::Sender<Result<ReportSummary, NodeError>>),
    ReportSubmit(String, oneshot::Sender<Result<ReportSummary, NodeError>>),
    Shutdown(oneshot::Sender<Result<(), NodeError>>),
}

/// The handle on a running node.
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    /// Exposures and failures, as they happen (bounded).
    pub events: mpsc::Receiver<NodeEvent>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeHandle")
    }
}

macro_rules! ask {
    ($self:ident, $variant:ident $(, $arg:expr)*) => {{
        let (tx, rx) = oneshot::channel();
        $self
            .commands
            .send(Command::$variant($($arg,)* tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }};
}

impl NodeHandle {
    /// Runs the node's periodic work now (tests and simulations with a
    /// manual clock) and waits for it.
    pub async fn tick(&self) -> Result<(), NodeError> {
        ask!(self, Tick)
    }

    /// A status snapshot.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        ask!(self, Status)
    }

    /// Exposures found, newest first.
    pub async fn exposures(&self) -> Result<Vec<StoredExposure>, NodeError> {
        ask!(self, Exposures)
    }

    /// Creates a one-time report key (kept sealed in the store, see
    /// [`create_report_request`]) and returns the request code to show the
    /// issuer.
    pub async fn report_request(&self) -> Result<String, NodeError> {
        Ok(self.new_report_request().await?.code)
    }

    /// As [`NodeHandle::report_request`], with the request's expiry and
    /// whether it replaced an older pending request.
    pub(crate) async fn new_report_request(&self) -> Result<NewReportRequest, NodeError> {
        ask!(self, ReportRequest)?
    }

    /// What submitting this certificate would publish.
    pub async fn report_plan(&self, certificate_code: String) -> Result<ReportSummary, NodeError> {
        ask!(self, ReportPlan, certificate_code)?
    }

    /// Builds, stores and publishes the report certified by this code.
    pub async fn report_submit(
        &self,
        certificate_code: String,
    ) -> Result<ReportSummary, NodeError> {
        ask!(self, ReportSubmit, certificate_code)?
    }

    /// Closes open encounters, flushes the store and stops the node.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        ask!(self, Shutdown)?
    }
}
