//! The encrypted contact store.
//!
//! [`ContactStore`] keeps everything a node must remember — its own epoch
//! secrets (until their grace ends), encounters, received announcements (to
//! serve catch-up), exposures found, trusted issuers and metadata — sealed
//! with XChaCha20-Poly1305 on top of a small swappable [`Store`] backend
//! ([`SledStore`] on disk, [`MemoryStore`] for tests and the simulator).
//!
//! * Every value is sealed with a random nonce and bound to its tree and key;
//!   every key is a keyed hash, so the files reveal no token, key, id or time.
//! * Day-scoped records (encounters, announcements, exposures) are sealed
//!   with a random per-day key and their keys start with an opaque day tag;
//!   purging a day deletes its records and destroys its key.
//! * The master key comes from an owner-only key file or a passphrase
//!   (Argon2id) and is checked against `store.meta` before the database is
//!   opened: a wrong key changes no file.
//! * Writes are batched; [`ContactStore::flush`] makes them durable and
//!   [`ContactStore::maybe_flush`] does so at least every
//!   [`FLUSH_INTERVAL_SECONDS`]. Damage found on open is reported with the
//!   recovery command, never silently dropped.

mod backend;
mod crypto;
mod meta;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use meshtrace_protocol::{
    AnnouncementId, Day, Encounter, EncounterRef, Epoch, EpochKey, Exposure, IssuerPublicKey,
    RETENTION_DAYS, ReportPublicKey, TokenIndex, UnixTime, VerifiedAnnouncement, Zeroizing,
};
use prost::Message;

pub use backend::{
    BackendError, DatabaseLock, Entries, LOCK_RELEASE_WAIT, MemoryStore, SLED_CACHE_BYTES,
    SLED_FLUSH_EVERY_MS, SledStore, SnapshotFiles, Store, Tree, Write,
};
pub use crypto::{DAY_TAG_LEN, KEY_LEN, LOOKUP_KEY_LEN, MasterKey, NONCE_LEN, TAG_LEN};
pub use meta::{
    DB_DIR, FORMAT_NAME, KdfParams, KeySource, MAX_META_BYTES, META_FILE, SCHEMA_VERSION,
    create_key_file, read_key_file,
};

use crypto::{Keys, Sealer};
use records::{
    AnnouncementMetaRecord, DayKeyRecord, DayRiskRecord, EncounterRecord, EpochKeyRecord,
    ExposureRecord, IssuerRecord,
};

/// The durability bound: [`ContactStore::maybe_flush`] flushes pending writes
/// at least this often (seconds of the injected clock).
pub const FLUSH_INTERVAL_SECONDS: u64 = 2;
/// Longest metadata value.
pub const MAX_META_VALUE_BYTES: usize = 64 * 1024;
/// A running node whose clock is trusted records the time as known good
/// at least this often (seconds of the injected clock).
pub const KNOWN_GOOD_REFRESH_SECONDS: u64 = 3600;
/// An announcement from a peer confirms the node's date when it was created
/// at most this long before or after the node's clock.
pub const CLOCK_CONFIRM_TOLERANCE_SECONDS: u64 = meshtrace_protocol::DAY_SECONDS;
/// The running store checks at least this often (real time) that the disk
/// still has room, by writing [`SPACE_PROBE_BYTES`] to a scratch file.
pub const SPACE_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Room the store wants free on its disk: with less, it reports the disk
/// full (sled writes into space it already holds until it needs a new
/// segment or snapshot, and then fails).
pub const SPACE_PROBE_BYTES: usize = 16 * 1024;
/// The scratch file of the space check, in the data directory (removed
/// at once).
pub const SPACE_PROBE_FILE: &str = "space.probe";
/// Metadata name of the last known-good time (8 bytes, big-endian seconds).
const META_KNOWN_GOOD: &str = "known-good-time";
/// The command that repairs a damaged store (printed in errors).
pub const RECOVERY_COMMAND: &str = "meshtrace store recover --data-dir";

/// A store failure. Every variant names its cause in plain words.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No store in the directory.
    #[error("no meshtrace store in {0}")]
    NotFound(PathBuf),
    /// A store already exists there.
    #[error("a meshtrace store already exists in {0}")]
    AlreadyExists(PathBuf),
    /// The key or passphrase does not open this store.
    #[error("wrong key or passphrase for this store (nothing was changed)")]
    WrongKey,
    /// The key source kind does not match the store.
    #[error("{0}")]
    KeySourceMismatch(&'static str),
    /// The key file is missing, unreadable, malformed or too permissive.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The metadata file is malformed.
    #[error("store metadata: {0}")]
    BadMeta(String),
    /// Written by a newer meshtrace.
    #[error(
        "store schema {found} is newer than this meshtrace supports ({supported}); upgrade meshtrace"
    )]
    NewerSchema {
        /// Schema found.
        found: u32,
        /// Newest schema supported.
        supported: u32,
    },
    /// Another process holds the store.
    #[error("the store in {0} is in use by another meshtrace process")]
    Locked(PathBuf),
    /// Damage was found. Nothing was deleted.
    #[error(
        "the store in {dir} is damaged ({detail}); nothing was deleted. Run `{RECOVERY_COMMAND} {dir}` to keep every readable record and set the damaged files aside"
    )]
    Damaged {
        /// The data directory.
        dir: PathBuf,
        /// What was found.
        detail: String,
    },
    /// An I/O failure on a file.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// A backend failure while running.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A value too large to store.
    #[error("value too large ({0} bytes)")]
    TooLarge(usize),
}

/// Store settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Days of data kept besides today (default 14).
    pub retention_days: u32,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            retention_days: RETENTION_DAYS,
        }
    }
}

/// A stored announcement's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnnouncement {
    /// Its identity.
    pub id: AnnouncementId,
    /// When it expires.
    pub expires_at: UnixTime,
    /// When this node received it.
    pub received_at: UnixTime,
}

/// An exposure as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredExposure {
    /// The scored exposure.
    pub exposure: Exposure,
    /// When it was first found.
    pub found_at: UnixTime,
    /// When it was last rescored.
    pub updated_at: UnixTime,
}

/// What a purge removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Days whose key was destroyed.
    pub days: Vec<Day>,
    /// Encounter records removed.
    pub encounters: usize,
    /// Announcements removed.
    pub announcements: usize,
    /// Exposures removed.
    pub exposures: usize,
    /// Epoch secrets removed.
    pub epoch_keys: usize,
    /// Unreadable leftovers of already-forgotten days removed.
    pub orphans: usize,
}

/// A purge held back because the clock is not trusted: it reads more than
/// the retention window past the last time known to be right, and no peer
/// has confirmed that date yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgeHold {
    /// What the clock read at the last check.
    pub clock: UnixTime,
    /// The last time known to be right (a flush or clean stop on a trusted
    /// clock, or a date confirmed by peers).
    pub known_good: UnixTime,
}

/// What a recovery kept and set aside.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records copied into the new database.
    pub kept: usize,
    /// Records that could not be authenticated (left in the set-aside copy).
    pub unreadable: usize,
    /// Where the damaged database was moved.
    pub set_aside: PathBuf,
}

struct DayEntry {
    sealer: Sealer,
    tag: [u8; DAY_TAG_LEN],
    record_key: Vec<u8>,
}

struct StoredEnc {
    day: Day,
    encounter: Encounter,
}

struct AnnEntry {
    key: Vec<u8>,
    last_day: Day,
    info: StoredAnnouncement,
}

/// The encrypted contact store over a [`Store`] backend.
pub struct ContactStore<S: Store = SledStore> {
    backend: S,
    keys: Keys,
    config: StoreConfig,
    dir: Option<PathBuf>,
    days: BTreeMap<Day, DayEntry>,
    encounters: HashMap<EncounterRef, StoredEnc>,
    index: Option<TokenIndex>,
    announcements: HashMap<AnnouncementId, AnnEntry>,
    exposures: HashMap<ReportPublicKey, (Vec<u8>, StoredExposure)>,
    orphans: Vec<(Tree, Vec<u8>)>,
    dirty: bool,
    last_flush: UnixTime,
    last_purge_day: Day,
    known_good: UnixTime,
    hold: Option<PurgeHold>,
    purge_pending: bool,
    last_space_probe: Option<std::time::Instant>,
}

impl<S: Store> std::fmt::Debug for ContactStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactStore")
            .field("dir", &self.dir)
            .field("days", &self.days.len())
            .field("encounters", &self.encounters.len())
            .field("announcements", &self.announcements.len())
            .field("exposures", &self.exposures.len())
            .finish_non_exhaustive()
    }
}

const DAY_SCOPED: [Tree; 4] = [
    Tree::Encounters,
    Tree::Announcements,
    Tree::AnnouncementMeta,
    Tree::Exposures,
];

fn map_backend(dir: &Path, e: BackendError) -> StoreError {
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
    /// (see [`ContactStore::purge_hold`]).
    pub fn open(
        dir: &Path,
        source: &KeySource,
        config: StoreConfig,
        now: UnixTime,
    ) -> Result<ContactStore<SledStore>, StoreError> {
        let master = meta::open_meta(dir, source)?;
        let backend = SledStore::open(&dir.join(DB_DIR)).map_err(|e| map_backend(dir, e))?;
        ContactStore::load_in(dir, backend, &master, config, now)
    }

    /// Loads `backend` as the store of `dir` (damage is reported under
    /// `dir`, even when `backend` is a private copy) and purges, unless the
    /// purge is held.
    fn load_in(
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
        let master = meta::open_meta(dir, source)?;
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
        let master = meta::open_meta(dir, source)?;
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
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
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
fn copy_readable<A: Store, B: Store>(
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

    fn damaged(&self, detail: String) -> StoreError {
        StoreError::Damaged {
            dir: self.dir.clone().unwrap_or_default(),
            detail,
        }
    }

    fn load_all(&mut self, now: UnixTime) -> Result<(), StoreError> {
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
            for (k, v) in self.backend.scan_prefix(tree, &[])? {
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

    fn load_day_record(&mut self, tree: Tree, day: Day, key: Vec<u8>, plain: &[u8]) -> bool {
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

    fn cutoff(&self, now: UnixTime) -> Day {
        now.day().minus(self.config.retention_days)
    }

    /// The day entry for `day`, creating (and durably writing) its key first.
    fn day_entry(&mut self, day: Day) -> Result<&DayEntry, StoreError> {
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

    fn day_key_for(&mut self, day: Day, lookup: &[u8]) -> Result<(Vec<u8>, &Sealer), StoreError> {
        let entry = self.day_entry(day)?;
        let mut k = entry.tag.to_vec();
        k.extend_from_slice(lookup);
        Ok((k, &entry.sealer))
    }

    // ------------------------------------------------------------ epoch keys

    /// Stores an own epoch secret (until [`ContactStore::remove_epoch_key`]).
    pub fn put_epoch_key(&mut self, key: &EpochKey) -> Result<(), StoreError> {
        let k = self
            .keys
            .lookup("epoch-key", &key.epoch().0.to_be_bytes())
            .to_vec();
        let rec = EpochKeyRecord {
            epoch: key.epoch().0,
            secret: key.secret_bytes().to_vec(),
        };
        let plain = Zeroizing::new(rec.encode_to_vec());
        let sealed = self.keys.seal.seal(Tree::EpochKeys, &k, &plain);
        self.backend
            .apply(vec![(Tree::EpochKeys, k, Some(sealed))])?;
        self.dirty = true;
        Ok(())
    }

    /// Erases an own epoch secret.
    pub fn remove_epoch_key(&mut self, epoch: Epoch) -> Result<(), StoreError> {
        let k = self
            .keys
            .lookup("epoch-key", &epoch.0.to_be_bytes())
            .to_vec();
        self.backend.apply(vec![(Tree::EpochKeys, k, None)])?;
        self.dirty = true;
        Ok(())
    }

    /// Every stored epoch secret, oldest first.
    pub fn epoch_keys(&self) -> Result<Vec<EpochKey>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.backend.scan_prefix(Tree::EpochKeys, &[])? {
            let rec = self
                .keys
                .seal
                .open(Tree::EpochKeys, &k, &v)
                .and_then(|p| EpochKeyRecord::decode(&p[..]).ok())
                .ok_or_else(|| self.damaged("an epoch key failed authentication".into()))?;
            let secret = <[u8; 32]>::try_from(&rec.secret[..])
                .map_err(|_| self.damaged("an epoch key has a bad length".into()))?;
            out.push(EpochKey::from_secret_bytes(
                Epoch(rec.epoch),
                Zeroizing::new(secret),
            ));
        }
        out.sort_by_key(|k| k.epoch());
        Ok(out)
    }

    // ------------------------------------------------------------ encounters

    /// Stores closed encounters (one batch). Encounters older than the
    /// retention window are skipped. Returns their references.
    pub fn add_encounters(
        &mut self,
        encounters: &[Encounter],
        now: UnixTime,
    ) -> Result<Vec<EncounterRef>, StoreError> {
        let cutoff = self.cutoff(now);
        let mut writes = Vec::with_capacity(encounters.len());
        let mut refs = Vec::with_capacity(encounters.len());
        let mut fresh = Vec::with_capacity(encounters.len());
        for e in encounters {
            let day = e.day();
            if day < cutoff || e.tokens.is_empty() {
                continue;
            }
            let mut id = Vec::with_capacity(16 + 8);
            id.extend_from_slice(&e.tokens[0].0);
            id.extend_from_slice(&e.first_seen.0.to_be_bytes());
            let lookup = self.keys.lookup("encounter", &id);
            let plain = Zeroizing::new(EncounterRecord::from_encounter(e).encode_to_vec());
            let (key, sealer) = self.day_key_for(day, &lookup)?;
            let sealed = sealer.seal(Tree::Encounters, &key, &plain);
            let r = enc_ref(&key);
            writes.push((Tree::Encounters, key, Some(sealed)));
            refs.push(r);
            fresh.push((r, day, e.clone()));
        }
        self.backend.apply(writes)?;
        for (r, day, encounter) in fresh {
            self.encounters.insert(r, StoredEnc { day, encounter });
        }
        if !refs.is_empty() {
            self.index = None;
            self.dirty = true;
        }
        Ok(refs)
    }

    /// One stored encounter.
    pub fn encounter(&self, r: EncounterRef) -> Option<&Encounter> {
        self.encounters.get(&r).map(|e| &e.encounter)
    }

    /// Number of stored encounters.
    pub fn encounter_count(&self) -> usize {
        self.encounters.len()
    }

    /// All stored encounters with their references (unordered).
    pub fn encounters(&self) -> impl Iterator<Item = (EncounterRef, &Encounter)> {
        self.encounters.iter().map(|(r, e)| (*r, &e.encounter))
    }

    /// The token index over every stored encounter (rebuilt lazily after
    /// writes).
    pub fn token_index(&mut self) -> &TokenIndex {
        let encs = &self.encounters;
        self.index.get_or_insert_with(|| {
            TokenIndex::build(
                encs.iter()
                    .flat_map(|(r, e)| e.encounter.tokens.iter().map(move |t| (*t, *r))),
            )
        })
    }

    /// The stored encounters matching one announcement chunk (within its
    /// certified window), using the token index.
    pub fn match_announcement(&mut self, ann: &VerifiedAnnouncement) -> Vec<EncounterRef> {
        self.token_index();
        let encounters = &self.encounters;
        match &self.index {
            Some(index) => meshtrace_protocol::match_announcement(ann, index, |r| {
                encounters.get(&r).map(|e| e.day)
            }),
            None => Vec::new(),
        }
    }

    // ------------------------------------------------------------ announcements

    /// Stores a verified announcement's bytes for catch-up; `false` when it
    /// was already stored.
    pub fn put_announcement(
        &mut self,
        ann: &VerifiedAnnouncement,
        bytes: &[u8],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        if self.announcements.contains_key(&ann.id()) {
            return Ok(false);
        }
        let last_day = ann.window().1;
        if last_day < self.cutoff(now) {
            return Ok(false);
        }
        let lookup = self.keys.lookup("announcement", &ann.id().0);
        let meta = AnnouncementMetaRecord {
            id: ann.id().0.to_vec(),
            expires_at: ann.expires_at().0,
            last_day: last_day.0,
            received_at: now.0,
        }
        .encode_to_vec();
        let (key, sealer) = self.day_key_for(last_day, &lookup)?;
        let sealed_body = sealer.seal(Tree::Announcements, &key, bytes);
        let sealed_meta = sealer.seal(Tree::AnnouncementMeta, &key, &meta);
        self.backend.apply(vec![
            (Tree::Announcements, key.clone(), Some(sealed_body)),
            (Tree::AnnouncementMeta, key.clone(), Some(sealed_meta)),
        ])?;
        self.announcements.insert(
            ann.id(),
            AnnEntry {
                key,
                last_day,
                info: StoredAnnouncement {
                    id: ann.id(),
                    expires_at: ann.expires_at(),
                    received_at: now,
                },
            },
        );
        self.dirty = true;
        Ok(true)
    }

    /// True when the announcement is stored.
    pub fn has_announcement(&self, id: &AnnouncementId) -> bool {
        self.announcements.contains_key(id)
    }

    /// Bookkeeping of every stored announcement.
    pub fn announcements(&self) -> impl Iterator<Item = &StoredAnnouncement> {
        self.announcements.values().map(|a| &a.info)
    }

    /// The stored bytes of one announcement.
    pub fn announcement_bytes(&self, id: &AnnouncementId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(entry) = self.announcements.get(id) else {
            return Ok(None);
        };
        let Some(sealed) = self.backend.get(Tree::Announcements, &entry.key)? else {
            return Err(self.damaged("an announcement body is missing".into()));
        };
        let sealer = &self
            .days
            .get(&entry.last_day)
            .ok_or_else(|| self.damaged("an announcement's day key is missing".into()))?
            .sealer;
        sealer
            .open(Tree::Announcements, &entry.key, &sealed)
            .map(|p| Some(p.to_vec()))
            .ok_or_else(|| self.damaged("an announcement failed authentication".into()))
    }

    // ------------------------------------------------------------ exposures

    /// Stores (or updates) the exposure to one report and flushes. Returns
    /// what was stored; `None` when there was nothing to keep (no counted
    /// contact day, or only days beyond retention).
    pub fn put_exposure(
        &mut self,
        e: &Exposure,
        now: UnixTime,
    ) -> Result<Option<StoredExposure>, StoreError> {
        let Some(latest) = e.days.iter().map(|d| d.day).max() else {
            // No day with a counted contact: nothing to warn about or keep.
            return Ok(None);
        };
        if latest < self.cutoff(now) {
            return Ok(None);
        }
        let found_at = self
            .exposures
            .get(&e.report_key)
            .map(|(_, s)| s.found_at)
            .unwrap_or(now);
        let rec = ExposureRecord {
            report_key: e.report_key.0.to_vec(),
            encounters: e.encounters.clone(),
            days: e.days.iter().map(DayRiskRecord::from_risk).collect(),
            high_risk: e.high_risk,
            found_at: found_at.0,
            updated_at: now.0,
        };
        let lookup = self.keys.lookup("exposure", &e.report_key.0);
        let plain = Zeroizing::new(rec.encode_to_vec());
        let (key, sealer) = self.day_key_for(latest, &lookup)?;
        let sealed = sealer.seal(Tree::Exposures, &key, &plain);
        let mut writes = vec![(Tree::Exposures, key.clone(), Some(sealed))];
        if let Some((old_key, _)) = self.exposures.get(&e.report_key)
            && *old_key != key
        {
            writes.push((Tree::Exposures, old_key.clone(), None));
        }
        self.backend.apply(writes)?;
        let stored = StoredExposure {
            exposure: e.clone(),
            found_at,
            updated_at: now,
        };
        self.exposures.insert(e.report_key, (key, stored.clone()));
        // An exposure found is a durability point: flush now.
        self.flush_at(now)?;
        Ok(Some(stored))
    }

    /// Every stored exposure, newest first.
    pub fn exposures(&self) -> Vec<StoredExposure> {
        let mut v: Vec<StoredExposure> = self.exposures.values().map(|(_, s)| s.clone()).collect();
        v.sort_by(|a, b| {
            b.found_at
                .cmp(&a.found_at)
                .then(a.exposure.report_key.cmp(&b.exposure.report_key))
        });
        v
    }

    // ------------------------------------------------------------ issuers, meta

    /// Adds (or relabels) a trusted issuer.
    pub fn add_trusted_issuer(
        &mut self,
        key: IssuerPublicKey,
        label: &str,
    ) -> Result<(), StoreError> {
        let k = self.keys.lookup("issuer", &key.0).to_vec();
        let rec = IssuerRecord {
            key: key.0.to_vec(),
            label: label.to_owned(),
        }
        .encode_to_vec();
        let sealed = self.keys.seal.seal(Tree::Issuers, &k, &rec);
        self.backend.apply(vec![(Tree::Issuers, k, Some(sealed))])?;
        self.dirty = true;
        Ok(())
    }

    /// Removes a trusted issuer.
    pub fn remove_trusted_issuer(&mut self, key: &IssuerPublicKey) -> Result<(), StoreError> {
        let k = self.keys.lookup("issuer", &key.0).to_vec();
        self.backend.apply(vec![(Tree::Issuers, k, None)])?;
        self.dirty = true;
        Ok(())
    }

    /// Trusted issuers with their labels, ordered by key.
    pub fn trusted_issuers(&self) -> Result<Vec<(IssuerPublicKey, String)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.backend.scan_prefix(Tree::Issuers, &[])? {
            let rec = self
                .keys
                .seal
                .open(Tree::Issuers, &k, &v)
                .and_then(|p| IssuerRecord::decode(&p[..]).ok())
                .ok_or_else(|| self.damaged("an issuer record failed authentication".into()))?;
            let key = <[u8; 32]>::try_from(&rec.key[..])
                .map_err(|_| self.damaged("an issuer record has a bad key".into()))?;
            out.push((IssuerPublicKey(key), rec.label));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Sets a metadata value.
    pub fn set_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > MAX_META_VALUE_BYTES {
            return Err(StoreError::TooLarge(value.len()));
        }
        let k = self.keys.lookup("meta", name.as_bytes()).to_vec();
        let sealed = self.keys.seal.seal(Tree::Meta, &k, value);
        self.backend.apply(vec![(Tree::Meta, k, Some(sealed))])?;
        self.dirty = true;
        Ok(())
    }

    /// Reads a metadata value.
    pub fn meta(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let k = self.keys.lookup("meta", name.as_bytes()).to_vec();
        match self.backend.get(Tree::Meta, &k)? {
            None => Ok(None),
            Some(v) => self
                .keys
                .seal
                .open(Tree::Meta, &k, &v)
                .map(Some)
                .ok_or_else(|| self.damaged(format!("metadata {name:?} failed authentication"))),
        }
    }

    /// Deletes a metadata value.
    pub fn remove_meta(&mut self, name: &str) -> Result<(), StoreError> {
        let k = self.keys.lookup("meta", name.as_bytes()).to_vec();
        self.backend.apply(vec![(Tree::Meta, k, None)])?;
        self.dirty = true;
        Ok(())
    }

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
            for tree in DAY_SCOPED {
                for (k, _) in self.backend.scan_prefix(tree, &entry.tag)? {
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
    fn probe_space(&mut self) -> Result<(), StoreError> {
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

    fn flush_at(&mut self, now: UnixTime) -> Result<(), StoreError> {
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

    fn write_known_good(&mut self, now: UnixTime) -> Result<(), StoreError> {
        self.set_meta(META_KNOWN_GOOD, &now.0.to_be_bytes())?;
        self.known_good = now;
        Ok(())
    }

    /// True when `now` is at most the retention window past the last
    /// known-good time.
    fn within_window(&self, now: UnixTime) -> bool {
        let window = u64::from(self.config.retention_days) * meshtrace_protocol::DAY_SECONDS;
        now.0 <= self.known_good.0.saturating_add(window)
    }

    /// The newest time any record holds (encounters seen, announcements
    /// received, exposures updated).
    fn latest_record_time(&self) -> Option<UnixTime> {
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
    fn clock_trusted(&mut self, now: UnixTime) -> bool {
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
    pub fn purge_unless_held(&mut self, now: UnixTime) -> Result<Option<PurgeReport>, StoreError> {
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

/// True when authenticated plaintext decodes as its tree's record type (the
/// same check loading applies).
fn plaintext_is_valid(tree: Tree, plain: &[u8]) -> bool {
    match tree {
        Tree::DayKeys => DayKeyRecord::decode(plain).is_ok_and(|r| r.key.len() == KEY_LEN),
        Tree::EpochKeys => EpochKeyRecord::decode(plain).is_ok_and(|r| r.secret.len() == 32),
        Tree::Encounters => EncounterRecord::decode(plain)
            .ok()
            .and_then(|r| r.to_encounter())
            .is_some(),
        Tree::AnnouncementMeta => {
            AnnouncementMetaRecord::decode(plain).is_ok_and(|r| r.id.len() == 32)
        }
        Tree::Exposures => ExposureRecord::decode(plain).is_ok_and(|r| r.report_key.len() == 32),
        Tree::Issuers => IssuerRecord::decode(plain).is_ok_and(|r| r.key.len() == 32),
        Tree::Announcements | Tree::Meta => true,
    }
}

/// How far back (days before the retention cutoff) an unknown day tag is
/// still recognised as a leftover of a purged day rather than damage.
pub const ORPHAN_LOOKBACK_DAYS: u32 = 60;

/// The encounter reference of a record key: 8 bytes of its keyed hash.
fn enc_ref(key: &[u8]) -> EncounterRef {
    let mut b = [0u8; 8];
    if let Some(s) = key.get(DAY_TAG_LEN..DAY_TAG_LEN + 8) {
        b.copy_from_slice(s);
    }
    u64::from_be_bytes(b)
}
