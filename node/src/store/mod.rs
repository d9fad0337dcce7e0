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
mod issuers;
mod load;
mod matching;
mod meta;
mod open;
mod purge;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use meshtrace_protocol::{
    AnnouncementId, Day, Encounter, EncounterRef, Epoch, EpochKey, Exposure, IssuerPublicKey,
    RETENTION_DAYS, ReportPublicKey, TokenIndex, UnixTime, VerifiedAnnouncement, Zeroizing,
};
use prost::Message;

pub(crate) use backend::SnapshotFiles;
pub use backend::{BackendError, Entries, MemoryStore, SledStore, Store, Tree, Write};
pub use crypto::MasterKey;
pub(crate) use crypto::{DAY_TAG_LEN, KEY_LEN};
pub use meta::{DB_DIR, KdfParams, KeySource, META_FILE, create_key_file, read_key_file};

pub use open::CheckReport;
pub(crate) use open::create_private_dir;

use crypto::{Keys, Sealer};
use records::{
    AnnouncementMetaRecord, DayKeyRecord, DayRiskRecord, EncounterRecord, EpochKeyRecord,
    ExposureRecord, IssuerRecord,
};

/// The durability bound: [`ContactStore::maybe_flush`] flushes pending writes
/// at least this often (seconds of the injected clock).
pub const FLUSH_INTERVAL_SECONDS: u64 = 2;
/// Longest metadata value.
pub(crate) const MAX_META_VALUE_BYTES: usize = 64 * 1024;
/// A running node whose clock is trusted records the time as known good
/// at least this often (seconds of the injected clock).
pub const KNOWN_GOOD_REFRESH_SECONDS: u64 = 3600;
/// An announcement from a peer confirms the node's date when it was created
/// at most this long before or after the node's clock.
pub const CLOCK_CONFIRM_TOLERANCE_SECONDS: u64 = meshtrace_protocol::DAY_SECONDS;
/// The running store checks at least this often (real time) that the disk
/// still has room, by writing [`SPACE_PROBE_BYTES`] to a scratch file.
pub(crate) const SPACE_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Room the store wants free on its disk: with less, it reports the disk
/// full (sled writes into space it already holds until it needs a new
/// segment or snapshot, and then fails).
pub(crate) const SPACE_PROBE_BYTES: usize = 16 * 1024;
/// The scratch file of the space check, in the data directory (removed
/// at once).
pub(crate) const SPACE_PROBE_FILE: &str = "space.probe";
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
pub(crate) struct StoredAnnouncement {
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
    /// The filter of its fingerprints (§15.15); `None` until the node
    /// indexed it (every announcement is then a candidate).
    filter: Option<matching::FingerprintFilter>,
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

impl<S: Store> ContactStore<S> {
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
        let writes = vec![
            (Tree::Announcements, key.clone(), Some(sealed_body)),
            (Tree::AnnouncementMeta, key.clone(), Some(sealed_meta)),
        ];
        self.backend.apply(writes)?;
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
                filter: Some(matching::FingerprintFilter::new(ann.fingerprints())),
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
    pub(crate) fn announcements(&self) -> impl Iterator<Item = &StoredAnnouncement> {
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

    /// The ids of every announcement not expired at `now`, oldest received
    /// first: what the mesh serves to peers catching up after a restart
    /// (their bytes are read one at a time, never all at once).
    pub(crate) fn unexpired_announcement_ids(&self, now: UnixTime) -> Vec<AnnouncementId> {
        let mut held: Vec<&StoredAnnouncement> = self
            .announcements()
            .filter(|a| a.expires_at > now)
            .collect();
        held.sort_by_key(|a| (a.received_at, a.id.0));
        held.into_iter().map(|a| a.id).collect()
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
        Tree::Announcements | Tree::Meta | Tree::Fingerprints => true,
    }
}

/// How far back (days before the retention cutoff) an unknown day tag is
/// still recognised as a leftover of a purged day rather than damage.
pub(crate) const ORPHAN_LOOKBACK_DAYS: u32 = 60;

/// The encounter reference of a record key: 8 bytes of its keyed hash.
fn enc_ref(key: &[u8]) -> EncounterRef {
    let mut b = [0u8; 8];
    if let Some(s) = key.get(DAY_TAG_LEN..DAY_TAG_LEN + 8) {
        b.copy_from_slice(s);
    }
    u64::from_be_bytes(b)
}
