//! Loading a store's records into memory, and the per-day keys.

use super::*;

impl<S: Store> ContactStore<S> {
    /// A new, empty store over `backend` (in-memory stores, tests).
    pub fn with_backend(
        backend: S,
        master: &MasterKey,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<ContactStore<S>, StoreError> {
        ContactStore::load(backend, master, config, now)
    }

    /// Loads every record from `backend`, authenticating each one.
    pub fn load(
        backend: S,
        master: &MasterKey,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<ContactStore<S>, StoreError> {
        let keys = Keys::derive(master);
        let mut s = ContactStore {
            backend,
            keys,
            config,
            dir: None,
            days: BTreeMap::new(),
            encounters: HashMap::new(),
            index: None,
            announcements: HashMap::new(),
            exposures: HashMap::new(),
            orphans: Vec::new(),
            dirty: false,
            last_flush: now,
            last_purge_day: now.day(),
            known_good: now,
            hold: None,
            purge_pending: false,
            last_space_probe: None,
        };
        s.load_all(now)?;
        s.known_good = match s.meta(META_KNOWN_GOOD)? {
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(|b| UnixTime(u64::from_be_bytes(b)))
                .map_err(|_| s.damaged("the last known-good time has a bad length".into()))?,
            // A store written before this record existed: the newest time
            // it recorded, or (when it holds nothing to lose) now.
            None => s.latest_record_time().unwrap_or(now),
        };
        Ok(s)
    }

    pub(super) fn damaged(&self, detail: String) -> StoreError {
        StoreError::Damaged {
            dir: self.dir.clone().unwrap_or_default(),
            detail,
        }
    }

    pub(super) fn load_all(&mut self, now: UnixTime) -> Result<(), StoreError> {
        let mut bad: Vec<String> = Vec::new();
        for (k, v) in self.backend.scan_prefix(Tree::DayKeys, &[])? {
            let rec = self
                .keys
                .seal
                .open(Tree::DayKeys, &k, &v)
                .and_then(|p| DayKeyRecord::decode(&p[..]).ok());
            let Some(rec) = rec else {
                bad.push("a day key".into());
                continue;
            };
            let Ok(key) = <[u8; KEY_LEN]>::try_from(&rec.key[..]) else {
                bad.push("a day key".into());
                continue;
            };
            let key = Zeroizing::new(key);
            self.days.insert(
                Day(rec.day),
                DayEntry {
                    sealer: Sealer::new(&key),
                    tag: self.keys.day_tag(rec.day),
                    record_key: k,
                },
            );
        }
        let by_tag: HashMap<[u8; DAY_TAG_LEN], Day> =
            self.days.iter().map(|(d, e)| (e.tag, *d)).collect();
        // Tags of days that retention has already forgotten: records under
        // them are leftovers of an interrupted purge. Any other unknown tag
        // is damage.
        let cutoff = self.cutoff(now);
        let purged_tags: std::collections::HashSet<[u8; DAY_TAG_LEN]> =
            (cutoff.minus(ORPHAN_LOOKBACK_DAYS).0..cutoff.0)
                .map(|d| self.keys.day_tag(d))
                .collect();
        for tree in DAY_SCOPED {
            // Announcement bodies are listed by key and read one at a time
            // below (all of them at once would be the size of the pool);
            // other records come with their values.
            let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = if tree == Tree::Announcements {
                let keys = self.backend.scan_keys(tree, &[])?;
                keys.into_iter().map(|k| (k, None)).collect()
            } else {
                let entries = self.backend.scan_prefix(tree, &[])?;
                entries.into_iter().map(|(k, v)| (k, Some(v))).collect()
            };
            for (k, v) in records {
                let day = k
                    .get(..DAY_TAG_LEN)
                    .and_then(|t| <[u8; DAY_TAG_LEN]>::try_from(t).ok())
                    .and_then(|t| by_tag.get(&t).copied());
                let Some(day) = day else {
                    let tag = k
                        .get(..DAY_TAG_LEN)
                        .and_then(|t| <[u8; DAY_TAG_LEN]>::try_from(t).ok());
                    if tag.is_some_and(|t| purged_tags.contains(&t)) {
                        // A leftover of a forgotten day: unreadable by
                        // design, removed by the next purge.
                        self.orphans.push((tree, k));
                    } else {
                        bad.push(format!("a record in {} under an unknown day", tree.name()));
                    }
                    continue;
                };
                let v = match v {
                    Some(v) => v,
                    None => match self.backend.get(tree, &k)? {
                        Some(v) => v,
                        // Deleted since it was listed: nothing to check.
                        None => continue,
                    },
                };
                let Some(plain) = self
                    .days
                    .get(&day)
                    .and_then(|e| e.sealer.open(tree, &k, &v))
                else {
                    bad.push(format!("a record in {}", tree.name()));
                    continue;
                };
                if !self.load_day_record(tree, day, k, &plain) {
                    bad.push(format!("a record in {}", tree.name()));
                }
            }
        }
        for tree in [Tree::EpochKeys, Tree::Issuers, Tree::Meta] {
            for (k, v) in self.backend.scan_prefix(tree, &[])? {
                if self.keys.seal.open(tree, &k, &v).is_none() {
                    bad.push(format!("a record in {}", tree.name()));
                }
            }
        }
        if !bad.is_empty() {
            return Err(self.damaged(format!(
                "{} record(s) failed authentication, first: {}",
                bad.len(),
                bad[0]
            )));
        }
        Ok(())
    }

    pub(super) fn load_day_record(
        &mut self,
        tree: Tree,
        day: Day,
        key: Vec<u8>,
        plain: &[u8],
    ) -> bool {
        match tree {
            Tree::Encounters => {
                let Some(e) = EncounterRecord::decode(plain)
                    .ok()
                    .and_then(|r| r.to_encounter())
                else {
                    return false;
                };
                let r = enc_ref(&key);
                self.encounters.insert(r, StoredEnc { day, encounter: e });
                true
            }
            Tree::AnnouncementMeta => {
                let Ok(m) = AnnouncementMetaRecord::decode(plain) else {
                    return false;
                };
                let Ok(id) = <[u8; 32]>::try_from(&m.id[..]) else {
                    return false;
                };
                self.announcements.insert(
                    AnnouncementId(id),
                    AnnEntry {
                        key,
                        last_day: Day(m.last_day),
                        info: StoredAnnouncement {
                            id: AnnouncementId(id),
                            expires_at: UnixTime(m.expires_at),
                            received_at: UnixTime(m.received_at),
                        },
                        filter: None,
                    },
                );
                true
            }
            Tree::Exposures => {
                let Ok(r) = ExposureRecord::decode(plain) else {
                    return false;
                };
                let Ok(rk) = <[u8; 32]>::try_from(&r.report_key[..]) else {
                    return false;
                };
                let exposure = Exposure {
                    report_key: ReportPublicKey(rk),
                    encounters: r.encounters.clone(),
                    days: r.days.iter().map(DayRiskRecord::to_risk).collect(),
                    high_risk: r.high_risk,
                };
                self.exposures.insert(
                    ReportPublicKey(rk),
                    (
                        key,
                        StoredExposure {
                            exposure,
                            found_at: UnixTime(r.found_at),
                            updated_at: UnixTime(r.updated_at),
                        },
                    ),
                );
                true
            }
            // Announcement bodies are read on demand.
            _ => true,
        }
    }

    pub(super) fn cutoff(&self, now: UnixTime) -> Day {
        now.day().minus(self.config.retention_days)
    }

    /// The day entry for `day`, creating (and durably writing) its key first.
    pub(super) fn day_entry(&mut self, day: Day) -> Result<&DayEntry, StoreError> {
        if !self.days.contains_key(&day) {
            let key = crypto::random_key();
            let record_key = self.keys.lookup("day-key", &day.0.to_be_bytes()).to_vec();
            let rec = DayKeyRecord {
                day: day.0,
                key: key.to_vec(),
            };
            let plain = Zeroizing::new(rec.encode_to_vec());
            let sealed = self.keys.seal.seal(Tree::DayKeys, &record_key, &plain);
            self.backend
                .apply(vec![(Tree::DayKeys, record_key.clone(), Some(sealed))])?;
            // The key must be durable before any record sealed with it.
            self.backend.flush()?;
            self.days.insert(
                day,
                DayEntry {
                    sealer: Sealer::new(&key),
                    tag: self.keys.day_tag(day.0),
                    record_key,
                },
            );
        }
        self.days
            .get(&day)
            .ok_or_else(|| StoreError::BadMeta("day key vanished".into()))
    }

    pub(super) fn day_key_for(
        &mut self,
        day: Day,
        lookup: &[u8],
    ) -> Result<(Vec<u8>, &Sealer), StoreError> {
        let entry = self.day_entry(day)?;
        let mut k = entry.tag.to_vec();
        k.extend_from_slice(lookup);
        Ok((k, &entry.sealer))
    }
}
