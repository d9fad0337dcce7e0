//! The node: one task that drives the protocol core with the adapters —
//! key rotation and advertising, sightings into encounters, the encrypted
//! store, the mesh, matching and exposures, reports.
//!
//! [`start`] spawns the task and returns a [`NodeHandle`]; everything the
//! CLI and the control socket do goes through it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use meshtrace_protocol::{
    AnnouncementId, BuildError, Certificate, Encounter, EncounterRef, EncounterToken,
    EncounterTracker, Epoch, Exposure, Frame, KeySchedule, ReportPlan, ReportPublicKey,
    ReportRequest, ReportSecretKey, RiskConfig, TokenIndex, UnixTime, VerifiedAnnouncement,
    VerifyContext, Zeroizing, build_announcements, match_announcement, max_real_tokens,
    plan_report,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};

use crate::clock::SharedClock;
use crate::p2p::{P2pEvent, P2pHandle, P2pStatus};
use crate::radio::{Radio, RadioEvent, RadioStats};
use crate::store::{BackendError, ContactStore, PurgeHold, Store, StoreError, StoredExposure};

/// Store metadata name of the one pending report key of earlier versions
/// (taken up as a pending request, see [`META_PENDING_REPORTS`]).
pub const META_REPORT_KEY: &str = "report-key";
/// Store metadata name of the report requests waiting for a certificate:
/// for each, when it was made, until when it can be used, and its one-time
/// secret key.
pub const META_PENDING_REPORTS: &str = "pending-report-keys";
/// Most report requests kept waiting for a certificate at once; a newer
/// request replaces the oldest (and says so).
pub const MAX_PENDING_REPORT_REQUESTS: usize = 4;
/// How long a report request can be certified and used (seconds): a week
/// for the visit to the issuer.
pub const REPORT_REQUEST_LIFETIME_SECONDS: u64 = 7 * 86_400;
/// Store metadata name of the own chunks not yet confirmed sent.
pub const META_UNSENT: &str = "unsent-announcements";
/// Store metadata name of this node's own published report keys (so that
/// it never matches its own report, also after a restart).
pub const META_OWN_REPORTS: &str = "own-report-keys";
/// Capacity of the command and event channels.
pub const NODE_CHANNEL: usize = 256;

/// Node settings.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The deployment's network id.
    pub network_id: String,
    /// Calibrated TX power this device advertises (dBm).
    pub tx_power_dbm: i8,
    /// This device's RSSI correction (dB, positive when it reads high).
    pub rx_correction_db: i16,
    /// Risk rules.
    pub risk: RiskConfig,
    /// Encounters shorter than this (exposure seconds) are not announced in
    /// a report.
    pub min_report_encounter_seconds: u64,
    /// Real-time interval of the node's timer.
    pub tick: Duration,
}

impl NodeSettings {
    /// Defaults for `network_id`.
    pub fn new(network_id: &str) -> NodeSettings {
        NodeSettings {
            network_id: network_id.to_owned(),
            tx_power_dbm: crate::radio::model::SIM_TX_POWER_DBM,
            rx_correction_db: 0,
            risk: RiskConfig::default(),
            min_report_encounter_seconds: 60,
            tick: Duration::from_millis(250),
        }
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

/// One stored pending request: made at, usable until, secret key.
struct PendingReport {
    made_at: UnixTime,
    expires_at: UnixTime,
    key: Zeroizing<[u8; 32]>,
}

/// Bytes of one pending request in [`META_PENDING_REPORTS`].
const PENDING_RECORD_BYTES: usize = 8 + 8 + 32;

/// The pending requests of `store` that have not expired at `now`, oldest
/// first (with the key of earlier versions, if any, as the oldest).
fn pending_reports<S: Store>(
    store: &ContactStore<S>,
    now: UnixTime,
) -> Result<Vec<PendingReport>, NodeError> {
    let mut out = Vec::new();
    if let Some(old) = store.meta(META_REPORT_KEY)?
        && let Ok(key) = <[u8; 32]>::try_from(&old[..])
    {
        out.push(PendingReport {
            made_at: now,
            expires_at: now.plus(REPORT_REQUEST_LIFETIME_SECONDS),
            key: Zeroizing::new(key),
        });
    }
    if let Some(bytes) = store.meta(META_PENDING_REPORTS)? {
        for rec in bytes.chunks_exact(PENDING_RECORD_BYTES) {
            let (made, rest) = rec.split_at(8);
            let (until, key) = rest.split_at(8);
            let (Ok(made), Ok(until), Ok(key)) = (
                <[u8; 8]>::try_from(made),
                <[u8; 8]>::try_from(until),
                <[u8; 32]>::try_from(key),
            ) else {
                continue;
            };
            out.push(PendingReport {
                made_at: UnixTime(u64::from_le_bytes(made)),
                expires_at: UnixTime(u64::from_le_bytes(until)),
                key: Zeroizing::new(key),
            });
        }
    }
    out.retain(|p| p.expires_at > now);
    out.sort_by_key(|p| p.made_at);
    Ok(out)
}

/// Stores `pending` (not flushed) in place of the previous list.
fn save_pending_reports<S: Store>(
    store: &mut ContactStore<S>,
    pending: &[PendingReport],
) -> Result<(), NodeError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(pending.len() * PENDING_RECORD_BYTES));
    for p in pending {
        bytes.extend_from_slice(&p.made_at.0.to_le_bytes());
        bytes.extend_from_slice(&p.expires_at.0.to_le_bytes());
        bytes.extend_from_slice(p.key.as_ref());
    }
    if bytes.is_empty() {
        store.remove_meta(META_PENDING_REPORTS)?;
    } else {
        store.set_meta(META_PENDING_REPORTS, &bytes)?;
    }
    if store.meta(META_REPORT_KEY)?.is_some() {
        store.remove_meta(META_REPORT_KEY)?;
    }
    Ok(())
}

/// Makes a one-time report key, keeps it sealed in `store` (flushed) next
/// to the other pending requests, and returns the request code. At most
/// [`MAX_PENDING_REPORT_REQUESTS`] are kept; a new one beyond that replaces
/// the oldest. The running node and `meshtrace report request` on a stopped
/// node both come here.
pub fn create_report_request<S, R>(
    store: &mut ContactStore<S>,
    network_id: &str,
    now: UnixTime,
    rng: &mut R,
) -> Result<NewReportRequest, NodeError>
where
    S: Store,
    R: rand_core::CryptoRng + ?Sized,
{
    let mut pending = pending_reports(store, now)?;
    let mut replaced_made_at = None;
    while pending.len() >= MAX_PENDING_REPORT_REQUESTS {
        replaced_made_at = Some(pending.remove(0).made_at);
    }
    let key = ReportSecretKey::generate(rng);
    let expires_at = now.plus(REPORT_REQUEST_LIFETIME_SECONDS);
    pending.push(PendingReport {
        made_at: now,
        expires_at,
        key: key.to_bytes(),
    });
    save_pending_reports(store, &pending)?;
    store.flush()?;
    Ok(NewReportRequest {
        code: ReportRequest {
            network_id: network_id.to_owned(),
            report_key: key.public(),
        }
        .to_code(),
        expires_at,
        replaced_made_at,
    })
}

/// A refused certificate in one phrase: the protocol's messages name the
/// certificate already; the others get it as a prefix.
fn certificate_refused(e: meshtrace_protocol::CertificateError) -> NodeError {
    let text = e.to_string();
    NodeError::Report(if text.contains("certificate") {
        text
    } else {
        format!("certificate: {text}")
    })
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
    pub async fn new_report_request(&self) -> Result<NewReportRequest, NodeError> {
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

struct Node<S: Store, R: Radio> {
    settings: NodeSettings,
    store: ContactStore<S>,
    radio: R,
    p2p: P2pHandle,
    clock: SharedClock,
    rng: StdRng,
    keys: KeySchedule,
    stored_epochs: HashSet<Epoch>,
    tracker: EncounterTracker,
    anns: HashMap<AnnouncementId, VerifiedAnnouncement>,
    chunk_owner: HashMap<(ReportPublicKey, u32), AnnouncementId>,
    matched: HashMap<ReportPublicKey, BTreeSet<EncounterRef>>,
    unsent: Vec<AnnouncementId>,
    own_reports: HashSet<ReportPublicKey>,
    radio_failures: u64,
    last_radio_failure: Option<(UnixTime, String)>,
    /// Set when the node must stop: its store cannot write.
    store_failure: Option<String>,
    events: mpsc::Sender<NodeEvent>,
}

/// Starts the node task. Stored epoch keys, announcements and exposures are
/// taken up again; own chunks not yet confirmed sent are handed to the mesh.
pub async fn start<S, R>(
    settings: NodeSettings,
    store: ContactStore<S>,
    radio: R,
    p2p: P2pHandle,
    clock: SharedClock,
) -> Result<NodeHandle, NodeError>
where
    S: Store + 'static,
    R: Radio + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(NODE_CHANNEL);
    let (ev_tx, ev_rx) = mpsc::channel(NODE_CHANNEL);
    let mut node = Node {
        tracker: EncounterTracker::new(settings.rx_correction_db),
        settings,
        store,
        radio,
        p2p,
        clock,
        rng: StdRng::from_rng(&mut rand::rng()),
        keys: KeySchedule::new(),
        stored_epochs: HashSet::new(),
        anns: HashMap::new(),
        chunk_owner: HashMap::new(),
        matched: HashMap::new(),
        unsent: Vec::new(),
        own_reports: HashSet::new(),
        radio_failures: 0,
        last_radio_failure: None,
        store_failure: None,
        events: ev_tx,
    };
    node.resume().await?;
    tokio::spawn(node.run(cmd_rx));
    Ok(NodeHandle {
        commands: cmd_tx,
        events: ev_rx,
    })
}

impl<S: Store, R: Radio> Node<S, R> {
    fn trusted(&self) -> Result<Vec<meshtrace_protocol::IssuerPublicKey>, NodeError> {
        Ok(self
            .store
            .trusted_issuers()?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Keeps a radio failure for the status and passes it on.
    fn radio_failed(&mut self, e: String) {
        self.radio_failures += 1;
        self.last_radio_failure = Some((self.clock.now(), e.clone()));
        let _ = self.events.try_send(NodeEvent::RadioFailed(e));
    }

    async fn resume(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        for k in self.store.epoch_keys()? {
            self.stored_epochs.insert(k.epoch());
            self.keys.insert(k);
        }
        if let Some(keys) = self.store.meta(META_OWN_REPORTS)? {
            self.own_reports = keys
                .chunks_exact(32)
                .filter_map(|c| c.try_into().ok().map(ReportPublicKey))
                .collect();
        }
        let trusted = self.trusted()?;
        let ids: Vec<AnnouncementId> = self.store.announcements().map(|a| a.id).collect();
        for id in ids {
            let Some(bytes) = self.store.announcement_bytes(&id)? else {
                continue;
            };
            let ctx = VerifyContext {
                network_id: &self.settings.network_id,
                trusted_issuers: &trusted,
                now,
            };
            if let Ok(v) = VerifiedAnnouncement::verify(&bytes, &ctx) {
                self.chunk_owner
                    .insert((v.report_key(), v.chunk_index()), v.id());
                self.anns.insert(v.id(), v);
            }
        }
        for e in self.store.exposures() {
            self.matched.insert(
                e.exposure.report_key,
                e.exposure.encounters.iter().copied().collect(),
            );
        }
        if let Some(list) = self.store.meta(META_UNSENT)? {
            self.unsent = list
                .chunks_exact(32)
                .filter_map(|c| c.try_into().ok().map(AnnouncementId))
                .collect();
            for id in self.unsent.clone() {
                if let Some(bytes) = self.store.announcement_bytes(&id)? {
                    let _ = self.p2p.publish(bytes).await;
                }
            }
        }
        Ok(())
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.on_tick().await {
                        self.tick_failed(e);
                    }
                }
                ev = self.radio.events().recv() => {
                    if let Some(ev) = ev {
                        self.on_radio_event(ev);
                    }
                }
                ev = self.p2p.events.recv() => match ev {
                    Some(P2pEvent::Announcement { verified, bytes, .. }) => {
                        if let Err(e) = self.on_announcement(*verified, bytes).await {
                            self.failed(e, "storing an announcement failed");
                        }
                    }
                    Some(P2pEvent::Sent { id, .. }) => {
                        if let Err(e) = self.mark_sent(id) {
                            tracing::error!(error = %e, "updating the outbox failed");
                        }
                    }
                    Some(P2pEvent::Listening(_)) | None => {}
                },
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    if let Command::Shutdown(reply) = cmd {
                        let r = self.finish();
                        let _ = reply.send(r);
                        break;
                    }
                    self.on_command(cmd).await;
                }
            }
            if let Some(e) = self.store_failure.take() {
                // Waits for room in the channel: the daemon must learn it.
                let _ = self.events.send(NodeEvent::StoreFailed(e)).await;
                break;
            }
        }
    }

    fn on_radio_event(&mut self, ev: RadioEvent) {
        match ev {
            RadioEvent::Sighting(s) => {
                let _ = self.tracker.handle_sighting(&self.keys, s.to_sighting());
            }
            RadioEvent::Failed(e) => self.radio_failed(e.to_string()),
        }
    }

    /// Logs a failed tick; a store that cannot write stops the node.
    fn tick_failed(&mut self, e: NodeError) {
        self.failed(e, "node tick failed");
    }

    /// Logs a failure as `what`; a store that cannot write (a full disk,
    /// a file-size limit, an I/O error) stops the node.
    fn failed(&mut self, e: NodeError, what: &str) {
        match e {
            NodeError::Store(StoreError::Backend(BackendError::Io(_)) | StoreError::Io { .. }) => {
                tracing::error!(error = %e, "the store cannot write; the node stops");
                self.store_failure = Some(e.to_string());
            }
            e => tracing::error!(error = %e, "{what}"),
        }
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        let open = self.tracker.close_all();
        self.store.add_encounters(&open, now)?;
        self.store.flush_clean(now)?;
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Tick(reply) => {
                // What the radio delivered before this tick was asked for
                // is handled first, so that the tick's work (closing
                // encounters, rotating keys) depends on what was heard,
                // not on how the tasks happened to be scheduled: a demo or
                // simulation on a manual clock gives the same figures
                // every run.
                while let Ok(ev) = self.radio.events().try_recv() {
                    self.on_radio_event(ev);
                }
                if let Err(e) = self.on_tick().await {
                    self.tick_failed(e);
                }
                if self.store_failure.is_none() {
                    // (Dropped otherwise: the caller learns the node stopped.)
                    let _ = reply.send(());
                }
            }
            Command::Status(reply) => {
                let mesh = self.p2p.status().await.ok();
                let exposures = self.store.exposures();
                let _ = reply.send(NodeStatus {
                    network_id: self.settings.network_id.clone(),
                    now: self.clock.now(),
                    encounters: self.store.encounter_count(),
                    open_encounters: self.tracker.open_count(),
                    announcements: self.store.announcements().count(),
                    exposures: exposures.len(),
                    high_risk: exposures.iter().filter(|e| e.exposure.high_risk).count(),
                    radio: self.radio.stats(),
                    radio_failures: self.radio_failures,
                    last_radio_failure: self.last_radio_failure.clone(),
                    mesh,
                    unsent: self.unsent.len(),
                    purge_held: self.store.purge_hold(),
                });
            }
            Command::Exposures(reply) => {
                let _ = reply.send(self.store.exposures());
            }
            Command::ReportRequest(reply) => {
                let _ = reply.send(self.report_request());
            }
            Command::ReportPlan(code, reply) => {
                let _ = reply.send(self.report(&code, false).await);
            }
            Command::ReportSubmit(code, reply) => {
                let _ = reply.send(self.report(&code, true).await);
            }
            Command::Shutdown(_) => {}
        }
    }

    async fn on_tick(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        let rotation = self.keys.rotate(now, &mut self.rng);
        // Persist new keys (current and pre-drawn next), erase old ones.
        let fresh: Vec<Epoch> = self
            .keys
            .keys()
            .map(|k| k.epoch())
            .filter(|e| !self.stored_epochs.contains(e))
            .collect();
        for e in fresh {
            if let Some(k) = self.keys.get(e) {
                self.store.put_epoch_key(k)?;
                self.stored_epochs.insert(e);
            }
        }
        for e in rotation.erased {
            self.store.remove_epoch_key(e)?;
            self.stored_epochs.remove(&e);
        }
        if let Some(id) = rotation.new_id {
            let frame = Frame {
                tx_power: self.settings.tx_power_dbm,
                id,
            };
            if let Err(e) = self.radio.advertise(frame) {
                self.radio_failed(e.to_string());
            }
        }
        let closed = self.tracker.poll_closed(now);
        if !closed.is_empty() {
            let refs = self.store.add_encounters(&closed, now)?;
            // Announcements that arrived before these encounters closed.
            let store = &self.store;
            let index = TokenIndex::build(
                refs.iter()
                    .filter_map(|r| store.encounter(*r).map(|e| (*r, e)))
                    .flat_map(|(r, e)| e.tokens.iter().map(move |t| (*t, r))),
            );
            let found: Vec<(ReportPublicKey, Vec<EncounterRef>)> = self
                .anns
                .values()
                .map(|a| {
                    let hits =
                        match_announcement(a, &index, |r| store.encounter(r).map(|e| e.day()));
                    (a.report_key(), hits)
                })
                .filter(|(_, hits)| !hits.is_empty())
                .collect();
            for (report_key, hits) in found {
                self.add_hits(report_key, hits, now).await?;
            }
        }
        if self.store.tick(now)?.is_some() {
            self.forget_expired(now);
        }
        Ok(())
    }

    /// After a purge: forgets the announcements held in memory that expired.
    fn forget_expired(&mut self, now: UnixTime) {
        let expired: Vec<AnnouncementId> = self
            .anns
            .iter()
            .filter(|(_, a)| a.expires_at() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(a) = self.anns.remove(&id) {
                self.chunk_owner.remove(&(a.report_key(), a.chunk_index()));
                self.matched.remove(&a.report_key());
            }
        }
    }

    async fn on_announcement(
        &mut self,
        v: VerifiedAnnouncement,
        bytes: Vec<u8>,
    ) -> Result<(), NodeError> {
        let now = self.clock.now();
        let slot = (v.report_key(), v.chunk_index());
        match self.chunk_owner.get(&slot) {
            Some(id) if *id != v.id() => return Ok(()), // equivocation: first wins
            Some(_) => return Ok(()),                   // already held
            None => {}
        }
        self.chunk_owner.insert(slot, v.id());
        // A peer's fresh announcement is evidence of the date: it releases
        // a purge held for an untrusted clock.
        if self.store.confirm_time(v.created_at(), now)?.is_some() {
            self.forget_expired(now);
        }
        self.store.put_announcement(&v, &bytes, now)?;
        let hits = self.store.match_announcement(&v);
        self.add_hits(v.report_key(), hits, now).await?;
        self.anns.insert(v.id(), v);
        Ok(())
    }

    /// Matches one chunk against `index`; on new hits rescores the report's
    /// exposure, stores it (flushed) and tells the user interface.
    /// Adds matched encounters to a report's exposure; when the set grows,
    /// rescores it, stores it (flushed) and tells the user interface.
    async fn add_hits(
        &mut self,
        report_key: ReportPublicKey,
        hits: Vec<EncounterRef>,
        now: UnixTime,
    ) -> Result<(), NodeError> {
        // Our own report matches our own encounters: never an exposure.
        if hits.is_empty() || self.own_reports.contains(&report_key) {
            return Ok(());
        }
        let set = self.matched.entry(report_key).or_default();
        let before = set.len();
        set.extend(hits);
        if set.len() == before {
            return Ok(());
        }
        let refs: Vec<EncounterRef> = set.iter().copied().collect();
        let encs: Vec<Encounter> = refs
            .iter()
            .filter_map(|r| self.store.encounter(*r).cloned())
            .collect();
        let days = self.settings.risk.score(&encs);
        if days.is_empty() {
            return Ok(());
        }
        let exposure = Exposure {
            report_key,
            encounters: refs,
            high_risk: days.iter().any(|d| d.high_risk),
            days,
        };
        if let Some(stored) = self.store.put_exposure(&exposure, now)? {
            let _ = self.events.send(NodeEvent::Exposure(stored)).await;
        }
        Ok(())
    }

    fn report_request(&mut self) -> Result<NewReportRequest, NodeError> {
        let now = self.clock.now();
        create_report_request(
            &mut self.store,
            &self.settings.network_id,
            now,
            &mut self.rng,
        )
    }

    /// The tokens to announce for `cert`: every stored or open encounter in
    /// the certified window with enough exposure, longest first, capped.
    fn report_tokens(&self, cert: &Certificate) -> (Vec<EncounterToken>, usize) {
        let p = cert.params();
        let mut encs: Vec<Encounter> = self.store.encounters().map(|(_, e)| e.clone()).collect();
        encs.extend(self.tracker.open_snapshots());
        encs.retain(|e| {
            e.day() >= p.window_first_day
                && e.day() <= p.window_last_day
                && e.exposure_seconds() >= self.settings.min_report_encounter_seconds
        });
        encs.sort_by_key(|e| std::cmp::Reverse(e.exposure_seconds()));
        let max = max_real_tokens(p.max_tokens);
        let mut tokens = Vec::new();
        let mut dropped = 0;
        for e in &encs {
            if tokens.len() + e.tokens.len() > max {
                dropped += 1;
                continue;
            }
            tokens.extend(e.tokens.iter().copied());
        }
        (tokens, dropped)
    }

    async fn report(&mut self, code: &str, submit: bool) -> Result<ReportSummary, NodeError> {
        let now = self.clock.now();
        let cert = Certificate::from_code(code).map_err(certificate_refused)?;
        let trusted = self.trusted()?;
        cert.check_trust(&self.settings.network_id, &trusted)
            .map_err(certificate_refused)?;
        let report_key = cert.params().report_key;
        if self.own_reports.contains(&report_key) {
            return Err(NodeError::Report(
                "this certificate was already used: its report has been published, and a certificate works only once".into(),
            ));
        }
        cert.check_validity_at(now).map_err(certificate_refused)?;
        let pending = pending_reports(&self.store, now)?;
        if pending.is_empty() {
            return Err(NodeError::Report(
                "no pending report request on this node (run `meshtrace report request` first)"
                    .into(),
            ));
        }
        let key = pending
            .iter()
            .map(|p| ReportSecretKey::from_bytes(&p.key))
            .find(|k| k.public() == report_key)
            .ok_or_else(|| {
                NodeError::Report(format!(
                    "this certificate is for a report request this node no longer holds \
                     (older than {} days, replaced by newer requests, or made on another node); \
                     run `meshtrace report request` and ask the issuer again",
                    REPORT_REQUEST_LIFETIME_SECONDS / 86_400
                ))
            })?;
        let (tokens, dropped_for_cap) = self.report_tokens(&cert);
        let plan = plan_report(&cert, &tokens).map_err(|e| NodeError::Report(e.to_string()))?;
        let window = (
            cert.params().window_first_day,
            cert.params().window_last_day,
        );
        if !submit {
            return Ok(ReportSummary {
                plan,
                window,
                dropped_for_cap,
                chunks: Vec::new(),
            });
        }
        let chunks = build_announcements(&key, &cert, &tokens, now, &mut self.rng)
            .map_err(|e: BuildError| NodeError::Report(e.to_string()))?;
        let ctx_trusted = trusted;
        let mut ids = Vec::new();
        for c in &chunks {
            let ctx = VerifyContext {
                network_id: &self.settings.network_id,
                trusted_issuers: &ctx_trusted,
                now,
            };
            let v = VerifiedAnnouncement::verify(&c.bytes, &ctx)
                .map_err(|e| NodeError::Report(e.to_string()))?;
            self.store.put_announcement(&v, &c.bytes, now)?;
            self.chunk_owner
                .insert((v.report_key(), v.chunk_index()), v.id());
            self.anns.insert(v.id(), v);
            ids.push(c.id);
        }
        // Durable before anything leaves: the report survives a crash and is
        // handed to the mesh again at restart until it is confirmed sent.
        self.unsent.extend(ids.iter().copied());
        self.save_unsent()?;
        self.own_reports.insert(key.public());
        let own: Vec<u8> = self.own_reports.iter().flat_map(|k| k.0).collect();
        self.store.set_meta(META_OWN_REPORTS, &own)?;
        let left: Vec<PendingReport> = pending
            .into_iter()
            .filter(|p| ReportSecretKey::from_bytes(&p.key).public() != report_key)
            .collect();
        save_pending_reports(&mut self.store, &left)?;
        self.store.flush()?;
        for c in chunks {
            let _ = self.p2p.publish(c.bytes).await;
        }
        Ok(ReportSummary {
            plan,
            window,
            dropped_for_cap,
            chunks: ids,
        })
    }

    fn save_unsent(&mut self) -> Result<(), NodeError> {
        let bytes: Vec<u8> = self.unsent.iter().flat_map(|i| i.0).collect();
        self.store.set_meta(META_UNSENT, &bytes)?;
        Ok(())
    }

    fn mark_sent(&mut self, id: AnnouncementId) -> Result<(), NodeError> {
        let before = self.unsent.len();
        self.unsent.retain(|x| *x != id);
        if self.unsent.len() != before {
            self.save_unsent()?;
            self.store.flush()?;
        }
        Ok(())
    }
}
