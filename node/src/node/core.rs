//! [`NodeCore`], the node without I/O: it owns the node's state and is
//! driven by inputs (`handle_*`, commands) with the time passed in; what it
//! wants done outside (advertise, publish, tell the user, stop) is queued as
//! [`NodeEffect`]s for the driver to take with [`NodeCore::poll_effect`].
//!
//! Who owns what: the store holds everything durable; the key schedule the
//! live epoch keys; the encounter tracker the open encounters; the
//! protocol's [`ExposureLedger`] the "first chunk per (report key, index)
//! wins" rule and the matched encounters per report (no announcement's
//! entries: encounters that close later find the chunks through the store's
//! on-disk fingerprint index); the mesh (not here) the bookkeeping of the
//! announcements it serves.

use std::collections::{HashSet, VecDeque};

use meshtrace_protocol::{
    AnnouncementId, BuildError, Certificate, EncodedAnnouncement, EncounterTracker, Epoch,
    Exposure, ExposureLedger, Frame, IssuerPublicKey, KeySchedule, MatchOutcome, ReportPublicKey,
    ReportSecretKey, ScanWindow, Sighting, UnixTime, VerifiedAnnouncement, VerifyContext,
    build_announcements, plan_report, select_report_tokens,
};
use rand_core::CryptoRng;

use super::requests::{
    PendingReport, certificate_refused, create_report_request, pending_reports,
    save_pending_reports,
};
use super::{
    META_OWN_REPORTS, META_UNSENT, NewReportRequest, NodeError, NodeEvent, NodeSettings,
    NodeStatus, REPORT_REQUEST_LIFETIME_SECONDS, ReportSummary,
};
use crate::p2p::P2pStatus;
use crate::radio::RadioStats;
use crate::store::{BackendError, ContactStore, Store, StoreError, StoredExposure};
use crate::trust::TrustedIssuers;

/// What the core wants done outside it, in order.
#[derive(Clone, Debug)]
pub enum NodeEffect {
    /// Advertise this frame on the radio (a new rotating id).
    Advertise(Frame),
    /// Hand these own announcement bytes to the mesh.
    Publish(Vec<u8>),
    /// Tell the user interface.
    Event(NodeEvent),
    /// Stop the node (after the events queued before this one).
    Stop,
}

/// The node's state and rules, without I/O, timers or tasks.
pub struct NodeCore<S: Store> {
    settings: NodeSettings,
    trusted: TrustedIssuers,
    store: ContactStore<S>,
    keys: KeySchedule,
    stored_epochs: HashSet<Epoch>,
    tracker: EncounterTracker,
    ledger: ExposureLedger,
    unsent: Vec<AnnouncementId>,
    own_reports: HashSet<ReportPublicKey>,
    radio_failures: u64,
    last_radio_failure: Option<(UnixTime, String)>,
    stopped: bool,
    effects: VecDeque<NodeEffect>,
}

impl<S: Store> std::fmt::Debug for NodeCore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore")
            .field("network_id", &self.settings.network_id)
            .field("unsent", &self.unsent.len())
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl<S: Store> NodeCore<S> {
    /// Takes up a store at `now`: its epoch keys, own reports, exposures
    /// and announcements (matched again, so that an exposure lost to a
    /// crash between storing a chunk and scoring it is found); own chunks
    /// not yet confirmed sent are queued for the mesh. The trusted issuers
    /// are the settings' list, or else the store's.
    pub fn new(
        settings: NodeSettings,
        store: ContactStore<S>,
        now: UnixTime,
    ) -> Result<NodeCore<S>, NodeError> {
        let trusted = match &settings.trusted_issuers {
            Some(t) => t.clone(),
            None => TrustedIssuers::new(store.trusted_issuers()?.into_iter().map(|(k, _)| k)),
        };
        let mut core = NodeCore {
            tracker: EncounterTracker::new(settings.rx_correction_db),
            settings,
            trusted,
            store,
            keys: KeySchedule::new(),
            stored_epochs: HashSet::new(),
            ledger: ExposureLedger::new(),
            unsent: Vec::new(),
            own_reports: HashSet::new(),
            radio_failures: 0,
            last_radio_failure: None,
            stopped: false,
            effects: VecDeque::new(),
        };
        core.resume(now)?;
        Ok(core)
    }

    fn resume(&mut self, now: UnixTime) -> Result<(), NodeError> {
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
        for e in self.store.exposures() {
            self.ledger
                .restore(e.exposure.report_key, e.exposure.encounters.iter().copied());
        }
        let trusted = self.trusted.keys();
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
                // The fingerprint filters live in memory only.
                self.store.index_announcement(&v);
                self.ingest(&v, now)?;
            }
        }
        if let Some(list) = self.store.meta(META_UNSENT)? {
            self.unsent = list
                .chunks_exact(32)
                .filter_map(|c| c.try_into().ok().map(AnnouncementId))
                .collect();
            for id in self.unsent.clone() {
                if let Some(bytes) = self.store.announcement_bytes(&id)? {
                    self.effects.push_back(NodeEffect::Publish(bytes));
                }
            }
        }
        Ok(())
    }

    /// The next thing to do outside, oldest first.
    pub fn poll_effect(&mut self) -> Option<NodeEffect> {
        self.effects.pop_front()
    }

    /// True once the core has asked to stop ([`NodeEffect::Stop`]).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The store (read-only: tests and status).
    pub fn store(&self) -> &ContactStore<S> {
        &self.store
    }

    /// Gives the store back (a restart in tests).
    pub fn into_store(self) -> ContactStore<S> {
        self.store
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    // ------------------------------------------------------------ inputs

    /// A sighting from the radio.
    pub fn handle_sighting(&mut self, sighting: Sighting) {
        let _ = self.tracker.handle_sighting(&self.keys, sighting);
    }

    /// A scan window from the radio.
    pub fn handle_scan(&mut self, window: ScanWindow) {
        self.tracker.handle_scan(window);
    }

    /// The radio failed at `now`: kept for the status and told to the user
    /// interface; the node keeps running without the radio.
    pub(crate) fn handle_radio_failure(&mut self, now: UnixTime, error: String) {
        self.radio_failures += 1;
        self.last_radio_failure = Some((now, error.clone()));
        self.effects
            .push_back(NodeEffect::Event(NodeEvent::RadioFailed(error)));
    }

    /// The mesh ended: open encounters are closed, the store flushed, and
    /// the node stops with [`NodeEvent::MeshStopped`].
    pub fn handle_mesh_stopped(&mut self, now: UnixTime) {
        let why = match self.finish(now) {
            Ok(()) => "the mesh stopped; meshtrace saved its data and stopped too".to_owned(),
            Err(e) => format!("the mesh stopped, and saving the data failed: {e}"),
        };
        tracing::error!("{why}");
        self.effects
            .push_back(NodeEffect::Event(NodeEvent::MeshStopped(why)));
        self.stop();
    }

    /// The periodic work at `now`: key rotation (a new id to advertise),
    /// closing encounters and matching them against every held chunk,
    /// retention.
    pub fn handle_tick<R: CryptoRng + ?Sized>(&mut self, now: UnixTime, rng: &mut R) {
        if let Err(e) = self.tick(now, rng) {
            self.failed(e, "node tick failed");
        }
    }

    fn tick<R: CryptoRng + ?Sized>(&mut self, now: UnixTime, rng: &mut R) -> Result<(), NodeError> {
        let rotation = self.keys.rotate(now, rng);
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
            self.effects.push_back(NodeEffect::Advertise(Frame { id }));
        }
        let closed = self.tracker.poll_closed(now);
        if !closed.is_empty() {
            let refs = self.store.add_encounters(&closed, now)?;
            // Chunks that arrived before these encounters closed, found
            // through the store's fingerprint index.
            let trusted = self.trusted.keys();
            let ctx = VerifyContext {
                network_id: &self.settings.network_id,
                trusted_issuers: &trusted,
                now,
            };
            let found = self.store.match_new_encounters(
                &mut self.ledger,
                &refs,
                &self.settings.risk,
                &ctx,
            )?;
            for exposure in found {
                self.exposure_found(exposure, now)?;
            }
        }
        if self.store.tick(now)?.is_some() {
            self.ledger.forget_expired(now);
        }
        Ok(())
    }

    /// A verified announcement from the mesh at `now`. The first chunk per
    /// (report key, index) wins; it counts as held only once it is stored,
    /// so a copy that comes again after a failed write is taken.
    pub fn handle_announcement(&mut self, now: UnixTime, v: VerifiedAnnouncement, bytes: Vec<u8>) {
        if let Err(e) = self.announcement(now, &v, &bytes) {
            self.failed(e, "storing an announcement failed");
        }
    }

    fn announcement(
        &mut self,
        now: UnixTime,
        v: &VerifiedAnnouncement,
        bytes: &[u8],
    ) -> Result<(), NodeError> {
        if self.ledger.slot(&v.report_key(), v.chunk_index()).is_some() {
            // Already held, or a second variant (equivocation): first wins.
            return Ok(());
        }
        // A peer's fresh announcement is evidence of the date: it releases
        // a purge held for an untrusted clock.
        if self.store.confirm_time(v.created_at(), now)?.is_some() {
            self.ledger.forget_expired(now);
        }
        self.store.put_announcement(v, bytes, now)?;
        self.ingest(v, now)
    }

    /// Matches a stored chunk; a grown exposure is stored and told.
    fn ingest(&mut self, v: &VerifiedAnnouncement, now: UnixTime) -> Result<(), NodeError> {
        if let MatchOutcome::Exposure(e) =
            self.store
                .ingest_announcement(&mut self.ledger, v, &self.settings.risk)
        {
            self.exposure_found(e, now)?;
        }
        Ok(())
    }

    /// Stores a grown exposure (flushed) and tells the user interface. Our
    /// own report matches our own encounters: never an exposure.
    fn exposure_found(&mut self, e: Exposure, now: UnixTime) -> Result<(), NodeError> {
        if self.own_reports.contains(&e.report_key) {
            return Ok(());
        }
        if let Some(stored) = self.store.put_exposure(&e, now)? {
            self.effects
                .push_back(NodeEffect::Event(NodeEvent::Exposure(stored)));
        }
        Ok(())
    }

    /// The stored bytes of those of `ids` the store holds (for the mesh to
    /// serve a peer's fetch); a read failure is logged and skipped.
    pub fn announcement_bodies(&self, ids: &[AnnouncementId]) -> Vec<Vec<u8>> {
        ids.iter()
            .filter_map(|id| match self.store.announcement_bytes(id) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "reading an announcement for a peer failed");
                    None
                }
            })
            .collect()
    }

    /// The mesh confirmed that own chunk `id` left this node.
    pub fn handle_sent(&mut self, id: AnnouncementId) {
        let before = self.unsent.len();
        self.unsent.retain(|x| *x != id);
        if self.unsent.len() != before {
            let r = self
                .save_unsent()
                .and_then(|()| self.store.flush().map_err(NodeError::from));
            if let Err(e) = r {
                self.failed(e, "updating the outbox failed");
            }
        }
    }

    /// Logs a failure as `what`; a store that cannot write (a full disk, a
    /// file-size limit, an I/O error) stops the node.
    fn failed(&mut self, e: NodeError, what: &str) {
        match e {
            NodeError::Store(StoreError::Backend(BackendError::Io(_)) | StoreError::Io { .. }) => {
                tracing::error!(error = %e, "the store cannot write; the node stops");
                self.effects
                    .push_back(NodeEffect::Event(NodeEvent::StoreFailed(e.to_string())));
                self.stop();
            }
            e => tracing::error!(error = %e, "{what}"),
        }
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.effects.push_back(NodeEffect::Stop);
        }
    }

    // ------------------------------------------------------------ commands

    /// A status snapshot at `now`, with the radio's counters and the mesh's
    /// status (when it answered).
    pub fn status(&self, now: UnixTime, radio: RadioStats, mesh: Option<P2pStatus>) -> NodeStatus {
        let exposures = self.store.exposures();
        NodeStatus {
            network_id: self.settings.network_id.clone(),
            now,
            encounters: self.store.encounter_count(),
            encounters_today: self
                .store
                .encounters()
                .filter(|(_, e)| e.last_seen.day() == now.day())
                .count(),
            open_encounters: self.tracker.open_count(),
            announcements: self.store.announcements().count(),
            exposures: exposures.len(),
            high_risk: exposures.iter().filter(|e| e.exposure.high_risk).count(),
            radio,
            radio_failures: self.radio_failures,
            last_radio_failure: self.last_radio_failure.clone(),
            mesh,
            unsent: self.unsent.len(),
            purge_held: self.store.purge_hold(),
        }
    }

    /// Exposures found, newest first.
    pub fn exposures(&self) -> Vec<StoredExposure> {
        self.store.exposures()
    }

    /// Closes open encounters and flushes (a clean stop).
    pub fn finish(&mut self, now: UnixTime) -> Result<(), NodeError> {
        let open = self.tracker.close_all();
        self.store.add_encounters(&open, now)?;
        self.store.flush_clean(now)?;
        Ok(())
    }

    /// A new report request (see [`create_report_request`]).
    pub fn report_request<R: CryptoRng + ?Sized>(
        &mut self,
        now: UnixTime,
        rng: &mut R,
    ) -> Result<NewReportRequest, NodeError> {
        create_report_request(&mut self.store, &self.settings.network_id, now, rng)
    }

    /// What the report certified by `code` publishes; with `submit`, builds
    /// and stores it (flushed) and queues its chunks for the mesh.
    pub fn report<R: CryptoRng + ?Sized>(
        &mut self,
        now: UnixTime,
        code: &str,
        submit: bool,
        rng: &mut R,
    ) -> Result<ReportSummary, NodeError> {
        let cert = Certificate::from_code(code).map_err(certificate_refused)?;
        let trusted = self.trusted.keys();
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
        let p = cert.params();
        let window = (p.window_first_day, p.window_last_day);
        let open = self.tracker.open_snapshots();
        let selected = select_report_tokens(
            self.store.encounters().map(|(_, e)| e).chain(open.iter()),
            window,
            self.settings.min_report_encounter_seconds,
            p.max_tokens,
            self.settings.tx_power_dbm,
        );
        let (tokens, dropped_for_cap) = (selected.tokens, selected.dropped_for_cap);
        let plan = plan_report(&cert, &tokens).map_err(|e| NodeError::Report(e.to_string()))?;
        if !submit {
            return Ok(ReportSummary {
                plan,
                window,
                dropped_for_cap,
                chunks: Vec::new(),
            });
        }
        let chunks =
            build_announcements(&key, &cert, &tokens, self.settings.tx_power_dbm, now, rng)
                .map_err(|e: BuildError| NodeError::Report(e.to_string()))?;
        // Never an exposure, from now on (also for the chunks ingested here);
        // taken back if storing them fails, so that the certificate can be
        // used again.
        self.own_reports.insert(key.public());
        let ids = match self.store_own_chunks(&chunks, &trusted, now) {
            Ok(ids) => ids,
            Err(e) => {
                self.own_reports.remove(&key.public());
                return Err(e);
            }
        };
        // Durable before anything leaves: the report survives a crash and is
        // handed to the mesh again at restart until it is confirmed sent.
        self.unsent.extend(ids.iter().copied());
        self.save_unsent()?;
        let own: Vec<u8> = self.own_reports.iter().flat_map(|k| k.0).collect();
        self.store.set_meta(META_OWN_REPORTS, &own)?;
        let left: Vec<PendingReport> = pending
            .into_iter()
            .filter(|p| ReportSecretKey::from_bytes(&p.key).public() != report_key)
            .collect();
        save_pending_reports(&mut self.store, &left)?;
        self.store.flush()?;
        for c in chunks {
            self.effects.push_back(NodeEffect::Publish(c.bytes));
        }
        Ok(ReportSummary {
            plan,
            window,
            dropped_for_cap,
            chunks: ids,
        })
    }

    /// Verifies, stores and ingests own chunks; their ids.
    fn store_own_chunks(
        &mut self,
        chunks: &[EncodedAnnouncement],
        trusted: &[IssuerPublicKey],
        now: UnixTime,
    ) -> Result<Vec<AnnouncementId>, NodeError> {
        let mut ids = Vec::new();
        for c in chunks {
            let ctx = VerifyContext {
                network_id: &self.settings.network_id,
                trusted_issuers: trusted,
                now,
            };
            let v = VerifiedAnnouncement::verify(&c.bytes, &ctx)
                .map_err(|e| NodeError::Report(e.to_string()))?;
            self.store.put_announcement(&v, &c.bytes, now)?;
            self.ingest(&v, now)?;
            ids.push(c.id);
        }
        Ok(ids)
    }

    fn save_unsent(&mut self) -> Result<(), NodeError> {
        let bytes: Vec<u8> = self.unsent.iter().flat_map(|i| i.0).collect();
        self.store.set_meta(META_UNSENT, &bytes)?;
        Ok(())
    }
}
