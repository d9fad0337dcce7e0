//! Opening, checking and recovering an on-disk store (the sled backend).

use super::*;

pub(super) fn map_backend(dir: &Path, e: BackendError) -> StoreError {
    match e {
        BackendError::Locked => StoreError::Locked(dir.to_owned()),
        BackendError::Corrupt(d) => StoreError::Damaged {
            dir: dir.to_owned(),
            detail: d,
        },
        other => StoreError::Backend(other),
    }
}

impl ContactStore<SledStore> {
    /// Creates a new store in `dir` (created if missing, owner-only).
    pub fn create(
        dir: &Path,
        source: &KeySource,
        kdf: KdfParams,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<ContactStore<SledStore>, StoreError> {
        create_private_dir(dir)?;
        let master = meta::create_meta(dir, source, kdf)?;
        let backend = SledStore::open(&dir.join(DB_DIR)).map_err(|e| map_backend(dir, e))?;
        let mut s = ContactStore::with_backend(backend, &master, config, now)?;
        s.dir = Some(dir.to_owned());
        s.write_known_good(now)?;
        s.flush_at(now)?;
        Ok(s)
    }

    /// Opens an existing store. The key is checked before any database file
    /// is opened; damage is reported, never repaired silently. Data older
    /// than the retention window is purged, unless the clock is not trusted
    /// (see [`ContactStore::purge_hold`]). A store of an older schema that
    /// loads is moved to the current one (docs/protocol.md §15.13: schema 1
    /// → 2 rewrites `store.meta` only; its encounter profiles are read as
    /// received levels from then on).
    pub fn open(
        dir: &Path,
        source: &KeySource,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<ContactStore<SledStore>, StoreError> {
        let (master, schema) = meta::open_meta(dir, source)?;
        let backend = SledStore::open(&dir.join(DB_DIR)).map_err(|e| map_backend(dir, e))?;
        let store = ContactStore::load_in(dir, backend, &master, config, now)?;
        if schema < meta::SCHEMA_VERSION {
            // The database lock is held (the store is open): no other
            // process reads the metadata in between.
            meta::upgrade_schema(dir)?;
            tracing::info!(
                from = schema,
                to = meta::SCHEMA_VERSION,
                "store schema upgraded: stored encounter profiles are read as received levels"
            );
        }
        Ok(store)
    }

    /// Loads `backend` as the store of `dir` (damage is reported under
    /// `dir`, even when `backend` is a private copy) and purges, unless the
    /// purge is held.
    pub(super) fn load_in(
        dir: &Path,
        backend: SledStore,
        master: &MasterKey,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<ContactStore<SledStore>, StoreError> {
        let mut s = ContactStore::load(backend, master, config, now).map_err(|e| match e {
            StoreError::Damaged { detail, .. } => StoreError::Damaged {
                dir: dir.to_owned(),
                detail,
            },
            other => other,
        })?;
        s.dir = Some(dir.to_owned());
        s.purge_unless_held(now)?;
        Ok(s)
    }

    /// Repairs a damaged store: copies every record that authenticates into
    /// a fresh database and moves the damaged one aside (kept, not deleted).
    ///
    /// The damaged database is read from a copy that leaves out snapshot
    /// files sled never finished writing (a plain open fails on them); when
    /// that copy still cannot be opened, a copy without any snapshot is
    /// tried (sled rebuilds from its log). So a recovery never keeps fewer
    /// authentic records than a plain open reads. A refused recovery (wrong
    /// key, store in use) leaves no file behind.
    pub fn recover(dir: &Path, source: &KeySource) -> Result<RecoveryReport, StoreError> {
        // The schema is left as it is: the next open upgrades it.
        let (master, _) = meta::open_meta(dir, source)?;
        let keys = Keys::derive(&master);
        let db_path = dir.join(DB_DIR);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let set_aside = dir.join(format!("{DB_DIR}.damaged-{stamp}"));
        let fresh_path = dir.join(format!("{DB_DIR}.recovering"));
        let reading_path = dir.join(format!("{DB_DIR}.reading"));
        let io = |path: &Path, e: std::io::Error| StoreError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        // Held until the repaired database is in place: no daemon opens
        // the store meanwhile.
        let _lock = backend::DatabaseLock::acquire(&db_path).map_err(|e| map_backend(dir, e))?;
        for leftover in [&fresh_path, &reading_path] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(|e| io(leftover, e))?;
            }
        }
        let _cleanup = RemoveOnDrop(vec![fresh_path.clone(), reading_path.clone()]);
        let mut report = RecoveryReport {
            set_aside: set_aside.clone(),
            ..RecoveryReport::default()
        };
        {
            let fresh = SledStore::open(&fresh_path).map_err(|e| map_backend(dir, e))?;
            let mut old = None;
            for snapshots in [SnapshotFiles::FinishedOnly, SnapshotFiles::None] {
                if reading_path.exists() {
                    std::fs::remove_dir_all(&reading_path).map_err(|e| io(&reading_path, e))?;
                }
                backend::copy_database(&db_path, &reading_path, snapshots)
                    .map_err(|e| io(&reading_path, e))?;
                match SledStore::open(&reading_path) {
                    Ok(s) => {
                        old = Some(s);
                        break;
                    }
                    Err(BackendError::Io(e)) => {
                        return Err(StoreError::Io {
                            path: reading_path.clone(),
                            reason: e,
                        });
                    }
                    Err(_) => {}
                }
            }
            match old {
                Some(old) => {
                    let (kept, bad) = copy_readable(&old, &fresh, &keys)?;
                    report.kept = kept;
                    report.unreadable = bad;
                }
                // The database cannot be opened at all: nothing is readable.
                None => report.unreadable = 1,
            }
            fresh.flush()?;
        }
        if db_path.exists() {
            std::fs::rename(&db_path, &set_aside).map_err(|e| io(&db_path, e))?;
        }
        std::fs::rename(&fresh_path, &db_path).map_err(|e| io(&fresh_path, e))?;
        Ok(report)
    }

    /// Reports what the store holds and the damage found, as opening it
    /// would (retention applied by the same rule), without writing into the
    /// store: the database is read from a private copy in the system's
    /// temporary directory, removed afterwards.
    pub fn check(
        dir: &Path,
        source: &KeySource,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<CheckReport, StoreError> {
        // Writes nothing, not even a schema upgrade (the next open does it).
        let (master, _) = meta::open_meta(dir, source)?;
        let db_path = dir.join(DB_DIR);
        if !db_path.is_dir() {
            return Err(StoreError::Damaged {
                dir: dir.to_owned(),
                detail: format!("the database directory {} is missing", db_path.display()),
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let copy =
            std::env::temp_dir().join(format!("meshtrace-check-{}-{nanos}", std::process::id()));
        let _cleanup = RemoveOnDrop(vec![copy.clone()]);
        {
            let _lock =
                backend::DatabaseLock::acquire(&db_path).map_err(|e| map_backend(dir, e))?;
            backend::copy_database(&db_path, &copy, SnapshotFiles::FinishedOnly).map_err(|e| {
                StoreError::Io {
                    path: copy.clone(),
                    reason: e.to_string(),
                }
            })?;
            // Unfinished snapshots were left out of the copy; a plain open
            // would still trip over them: report it the same way.
            if let Some(name) = backend::newest_snapshot(&db_path)
                && name.ends_with(".generating")
            {
                return Err(map_backend(
                    dir,
                    backend::unfinished_snapshot(&db_path, &name),
                ));
            }
        }
        let backend = SledStore::open(&copy).map_err(|e| map_backend(dir, e))?;
        let s = ContactStore::load_in(dir, backend, &master, config, now)?;
        Ok(CheckReport {
            encounters: s.encounter_count(),
            announcements: s.announcements().count(),
            exposures: s.exposures().len(),
            days: s.days().len(),
            purge_held: s.purge_hold(),
        })
    }
}

/// What [`ContactStore::check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Encounters kept.
    pub encounters: usize,
    /// Announcements kept.
    pub announcements: usize,
    /// Exposures kept.
    pub exposures: usize,
    /// Days with data.
    pub days: usize,
    /// Set when the clock is not trusted and the purge is held.
    pub purge_held: Option<PurgeHold>,
}

/// Removes directories when dropped (scratch copies, a refused recovery's
/// half-built database).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.exists() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// Creates `dir` (and its parents) owner-only, or makes an existing one
/// owner-only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.exists() {
        // Our data directory: owner-only, whatever it was before.
        return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |e| StoreError::Io {
                path: dir.to_owned(),
                reason: e.to_string(),
            },
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Io {
            path: dir.to_owned(),
            reason: e.to_string(),
        })
}

/// Copies every authentic record from `old` to `new`; returns (kept, unreadable).
pub(super) fn copy_readable<A: Store, B: Store>(
    old: &A,
    new: &B,
    keys: &Keys,
) -> Result<(usize, usize), StoreError> {
    let mut kept = 0;
    let mut bad = 0;
    let mut day_sealers: HashMap<[u8; DAY_TAG_LEN], Sealer> = HashMap::new();
    let mut writes = Vec::new();
    for (k, v) in old.scan_prefix(Tree::DayKeys, &[])? {
        match keys
            .seal
            .open(Tree::DayKeys, &k, &v)
            .and_then(|p| DayKeyRecord::decode(&p[..]).ok())
        {
            Some(r) => {
                if let Ok(key) = <[u8; KEY_LEN]>::try_from(&r.key[..]) {
                    day_sealers.insert(keys.day_tag(r.day), Sealer::new(&key));
                }
                writes.push((Tree::DayKeys, k, Some(v)));
                kept += 1;
            }
            None => bad += 1,
        }
    }
    for tree in Tree::ALL {
        if tree == Tree::DayKeys {
            continue;
        }
        for (k, v) in old.scan_prefix(tree, &[])? {
            if tree == Tree::Fingerprints {
                // The on-disk fingerprint index of schema 2 is no longer
                // read (the filters are in memory, §15.15): not copied.
                continue;
            }
            let plain = if DAY_SCOPED.contains(&tree) {
                k.get(..DAY_TAG_LEN)
                    .and_then(|t| <[u8; DAY_TAG_LEN]>::try_from(t).ok())
                    .and_then(|t| day_sealers.get(&t))
                    .and_then(|s| s.open(tree, &k, &v))
            } else {
                keys.seal.open(tree, &k, &v)
            };
            let ok = plain.is_some_and(|p| plaintext_is_valid(tree, &p));
            if ok {
                writes.push((tree, k, Some(v)));
                kept += 1;
            } else {
                bad += 1;
            }
        }
    }
    new.apply(writes)?;
    Ok((kept, bad))
}
