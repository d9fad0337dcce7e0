//! Retention (the purge, held while the clock is not trusted) and
//! durability (flushes, the disk-space probe).

use super::*;

impl<S: Store> ContactStore<S> {
    // ------------------------------------------------------------ retention, durability

    /// Forgets every day older than the retention window: its encounters,
    /// announcements and exposures are deleted and its day key destroyed;
    /// epoch secrets older than a day are erased too. Flushes.
    pub fn purge(&mut self, now: UnixTime) -> Result<PurgeReport, StoreError> {
        let cutoff = self.cutoff(now);
        let mut report = PurgeReport::default();
        let old_days: Vec<Day> = self.days.range(..cutoff).map(|(d, _)| *d).collect();
        let mut writes = Vec::new();
        for day in &old_days {
            let Some(entry) = self.days.get(day) else {
                continue;
            };
            for tree in DAY_SCOPED.into_iter().chain([Tree::Fingerprints]) {
                for k in self.backend.scan_keys(tree, &entry.tag)? {
                    match tree {
                        Tree::Encounters => report.encounters += 1,
                        Tree::Announcements => report.announcements += 1,
                        Tree::Exposures => report.exposures += 1,
                        _ => {}
                    }
                    writes.push((tree, k, None));
                }
            }
        }
        report.orphans = self.orphans.len();
        for (tree, k) in self.orphans.drain(..) {
            writes.push((tree, k, None));
        }
        // Records first, then (in a later batch) the day keys.
        self.backend.apply(writes)?;
        self.backend.flush()?;
        let mut key_writes = Vec::new();
        for day in &old_days {
            if let Some(entry) = self.days.remove(day) {
                key_writes.push((Tree::DayKeys, entry.record_key, None));
                report.days.push(*day);
            }
        }
        let stale_epoch = now.minus(meshtrace_protocol::DAY_SECONDS).epoch();
        for key in self.epoch_keys()? {
            if key.epoch() < stale_epoch {
                let k = self
                    .keys
                    .lookup("epoch-key", &key.epoch().0.to_be_bytes())
                    .to_vec();
                key_writes.push((Tree::EpochKeys, k, None));
                report.epoch_keys += 1;
            }
        }
        self.backend.apply(key_writes)?;
        self.encounters.retain(|_, e| e.day >= cutoff);
        self.announcements.retain(|_, a| a.last_day >= cutoff);
        let days = &self.days;
        self.exposures
            .retain(|_, (k, _)| days.values().any(|d| k.starts_with(&d.tag)));
        self.index = None;
        self.flush_at(now)?;
        tracing::info!(
            today = %now.day(),
            days = report.days.len(),
            encounters = report.encounters,
            announcements = report.announcements,
            exposures = report.exposures,
            epoch_keys = report.epoch_keys,
            leftovers = report.orphans,
            "purged the data older than the retention window"
        );
        Ok(report)
    }

    /// Checks, at most every [`SPACE_PROBE_INTERVAL`], that the data
    /// directory's disk has [`SPACE_PROBE_BYTES`] free, by writing them to
    /// [`SPACE_PROBE_FILE`] (removed at once; not synced, so the check costs
    /// no disk write). A full disk is an I/O error naming the file.
    pub(super) fn probe_space(&mut self) -> Result<(), StoreError> {
        use std::io::Write;
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if self
            .last_space_probe
            .is_some_and(|t| t.elapsed() < SPACE_PROBE_INTERVAL)
        {
            return Ok(());
        }
        self.last_space_probe = Some(std::time::Instant::now());
        let path = dir.join(SPACE_PROBE_FILE);
        let written = std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; SPACE_PROBE_BYTES]));
        let _ = std::fs::remove_file(&path);
        written.map_err(|e| StoreError::Io {
            path,
            reason: e.to_string(),
        })
    }

    /// Makes every write durable and, when the clock is trusted, records
    /// `now` as the last known-good time: the node's clean stop.
    pub fn flush_clean(&mut self, now: UnixTime) -> Result<(), StoreError> {
        if now > self.known_good && self.hold.is_none() && self.within_window(now) {
            self.write_known_good(now)?;
        }
        self.flush_at(now)
    }

    /// Makes every write durable now.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.backend.flush()?;
        self.dirty = false;
        Ok(())
    }

    pub(super) fn flush_at(&mut self, now: UnixTime) -> Result<(), StoreError> {
        if now.seconds_since(self.known_good) >= KNOWN_GOOD_REFRESH_SECONDS
            && self.hold.is_none()
            && self.within_window(now)
        {
            self.write_known_good(now)?;
        }
        self.flush()?;
        self.last_flush = now;
        Ok(())
    }

    pub(super) fn write_known_good(&mut self, now: UnixTime) -> Result<(), StoreError> {
        self.set_meta(META_KNOWN_GOOD, &now.0.to_be_bytes())?;
        self.known_good = now;
        Ok(())
    }

    /// True when `now` is at most the retention window past the last
    /// known-good time.
    pub(super) fn within_window(&self, now: UnixTime) -> bool {
        let window = u64::from(self.config.retention_days) * meshtrace_protocol::DAY_SECONDS;
        now.0 <= self.known_good.0.saturating_add(window)
    }

    /// The newest time any record holds (encounters seen, announcements
    /// received, exposures updated).
    pub(super) fn latest_record_time(&self) -> Option<UnixTime> {
        let e = self.encounters.values().map(|e| e.encounter.last_seen);
        let a = self.announcements.values().map(|a| a.info.received_at);
        let x = self.exposures.values().map(|(_, x)| x.updated_at);
        e.chain(a).chain(x).max()
    }

    /// Decides whether the clock is trusted for a purge at `now`: it is
    /// while `now` is within the retention window of the last known-good
    /// time. Past it (a node switched off for longer than the window, or a
    /// clock that is wrong, or jumped while running) the purge is held, and
    /// logged once, until peers confirm the date
    /// ([`ContactStore::confirm_time`]) or the clock comes back.
    pub(super) fn clock_trusted(&mut self, now: UnixTime) -> bool {
        if self.within_window(now) {
            if let Some(h) = self.hold.take() {
                tracing::info!(
                    clock = %now.day(),
                    last_confirmed = %h.known_good.day(),
                    "the clock is back within the retention window of the last confirmed date: \
                     the held purge resumes"
                );
            }
            return true;
        }
        if self.hold.is_none() {
            tracing::warn!(
                clock = %now.day(),
                last_confirmed = %self.known_good.day(),
                days_ahead = now.seconds_since(self.known_good) / meshtrace_protocol::DAY_SECONDS,
                "the clock reads more than the retention window past the last date known to be \
                 right: nothing is purged until a peer confirms the date (or the clock is fixed)"
            );
        }
        self.hold = Some(PurgeHold {
            clock: now,
            known_good: self.known_good,
        });
        self.purge_pending = true;
        false
    }

    /// Purges as [`ContactStore::purge`] does when the clock is trusted;
    /// otherwise holds the purge (see [`ContactStore::purge_hold`]) and
    /// returns `None`.
    pub(crate) fn purge_unless_held(
        &mut self,
        now: UnixTime,
    ) -> Result<Option<PurgeReport>, StoreError> {
        if !self.clock_trusted(now) {
            return Ok(None);
        }
        let report = self.purge(now)?;
        self.purge_pending = false;
        self.last_purge_day = now.day();
        Ok(Some(report))
    }

    /// Set while the purge is held because the clock is not trusted.
    pub fn purge_hold(&self) -> Option<PurgeHold> {
        self.hold
    }

    /// The last time known to be right.
    pub fn known_good_time(&self) -> UnixTime {
        self.known_good
    }

    /// Evidence of the date from outside: a peer's authenticated
    /// announcement created at `created_at`. When it is within
    /// [`CLOCK_CONFIRM_TOLERANCE_SECONDS`] of `now`, the clock is confirmed:
    /// `now` becomes the known-good time and a held purge runs (its report
    /// is returned).
    pub fn confirm_time(
        &mut self,
        created_at: UnixTime,
        now: UnixTime,
    ) -> Result<Option<PurgeReport>, StoreError> {
        if now.0.abs_diff(created_at.0) > CLOCK_CONFIRM_TOLERANCE_SECONDS {
            return Ok(None);
        }
        let held = self.hold.take();
        if held.is_some() || now.seconds_since(self.known_good) >= KNOWN_GOOD_REFRESH_SECONDS {
            self.write_known_good(now)?;
        }
        if held.is_none() {
            return Ok(None);
        }
        tracing::info!(
            today = %now.day(),
            "a peer's announcement confirms the date: the held purge runs"
        );
        let report = self.purge(now)?;
        self.purge_pending = false;
        self.last_purge_day = now.day();
        Ok(Some(report))
    }

    /// The store's periodic duty, for the node's timer: purges once per new
    /// day of the injected clock (unless the clock is not trusted: see
    /// [`ContactStore::purge_hold`]), records a trusted clock's time as known
    /// good at least every [`KNOWN_GOOD_REFRESH_SECONDS`] and flushes
    /// pending writes at least every [`FLUSH_INTERVAL_SECONDS`]. Returns the
    /// purge report when it purged.
    pub fn tick(&mut self, now: UnixTime) -> Result<Option<PurgeReport>, StoreError> {
        self.probe_space()?;
        let trusted = self.clock_trusted(now);
        if trusted && (now.day() != self.last_purge_day || self.purge_pending) {
            return self.purge_unless_held(now);
        }
        if trusted && now.seconds_since(self.known_good) >= KNOWN_GOOD_REFRESH_SECONDS {
            self.write_known_good(now)?;
        }
        self.maybe_flush(now)?;
        Ok(None)
    }

    /// Flushes when there are pending writes and the last flush is at least
    /// [`FLUSH_INTERVAL_SECONDS`] old — or the clock went back past it (a
    /// clock set backwards must not hold writes back until it catches up).
    /// Returns whether it flushed.
    pub fn maybe_flush(&mut self, now: UnixTime) -> Result<bool, StoreError> {
        let due =
            now < self.last_flush || now.seconds_since(self.last_flush) >= FLUSH_INTERVAL_SECONDS;
        if self.dirty && due {
            self.flush_at(now)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// True when writes are pending a flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Bytes used on disk by the database.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.backend.size_on_disk()?)
    }

    /// Days whose key is held, ascending.
    pub fn days(&self) -> Vec<Day> {
        self.days.keys().copied().collect()
    }

    /// The backend (for raw inspection in tests and tools).
    pub fn backend(&self) -> &S {
        &self.backend
    }
}
