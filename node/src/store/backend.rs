//! The small key-value `Store` trait and its two backends: sled on disk and
//! an in-memory map for unit tests and the simulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::meta::{hex, unhex, write_private_atomic};

/// The trees (namespaces) the contact store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// Per-day subkeys, sealed under the master-derived key.
    DayKeys,
    /// Own epoch secrets until their grace period ends.
    EpochKeys,
    /// Encounter records, grouped by an opaque per-day tag.
    Encounters,
    /// Received announcement bytes, grouped by the tag of their last day.
    Announcements,
    /// Small per-announcement metadata (id, expiry), same keys as `Announcements`.
    AnnouncementMeta,
    /// Exposures found, grouped by the tag of their latest day.
    Exposures,
    /// Trusted issuer keys.
    Issuers,
    /// Node metadata.
    Meta,
    /// The on-disk fingerprint index that stores of schema 2 wrote (keys
    /// only: day tag ‖ keyed hash of a fingerprint ‖ the announcement's
    /// record key prefix). No longer written or read: the filters are in
    /// memory (`docs/protocol.md` §15.15); its keys are deleted with their
    /// day, and recovery does not copy them.
    Fingerprints,
}

impl Tree {
    /// Every tree.
    pub(crate) const ALL: [Tree; 9] = [
        Tree::DayKeys,
        Tree::EpochKeys,
        Tree::Encounters,
        Tree::Announcements,
        Tree::AnnouncementMeta,
        Tree::Exposures,
        Tree::Issuers,
        Tree::Meta,
        Tree::Fingerprints,
    ];

    /// The tree's name on disk (also bound into every record's associated data).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tree::DayKeys => "daykeys",
            Tree::EpochKeys => "epochkeys",
            Tree::Encounters => "encounters",
            Tree::Announcements => "announcements",
            Tree::AnnouncementMeta => "annmeta",
            Tree::Exposures => "exposures",
            Tree::Issuers => "issuers",
            Tree::Meta => "meta",
            Tree::Fingerprints => "fingerprints",
        }
    }
}

/// A backend failure.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Another process holds the database.
    #[error("the store is in use by another process")]
    Locked,
    /// The database files are damaged.
    #[error("the database files are damaged: {0}")]
    Corrupt(String),
    /// An I/O error.
    #[error("storage I/O error: {0}")]
    Io(String),
}

/// One write of a batch: `None` deletes.
pub type Write = (Tree, Vec<u8>, Option<Vec<u8>>);
/// `(key, value)` pairs returned by a scan.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type Trees = BTreeMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A swappable key-value backend. Writes in one `apply` call are atomic per
/// tree and become durable, in order, at the next `flush`; the sled
/// backend writes each announcement body ([`Tree::Announcements`]) durably
/// on its own, before the call's other writes (`docs/protocol.md` §15.12).
pub trait Store: Send {
    /// Reads one value.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Applies a batch of writes.
    fn apply(&self, writes: Vec<Write>) -> Result<(), BackendError>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, BackendError>;
    /// Every key that starts with `prefix`, in key order (a backend that
    /// can list keys without reading values does).
    fn scan_keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, BackendError> {
        Ok(self
            .scan_prefix(tree, prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
    /// Makes every applied write durable.
    fn flush(&self) -> Result<(), BackendError>;
    /// Bytes used on disk (0 for memory).
    fn size_on_disk(&self) -> Result<u64, BackendError>;
}

/// In-memory backend (unit tests, simulator).
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: Mutex<Trees>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trees> {
        // A panic while holding the lock cannot leave a map half-written
        // (every mutation is a single insert/remove), so poisoning is ignored.
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.lock().get(&tree).and_then(|t| t.get(key)).cloned())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), BackendError> {
        let mut g = self.lock();
        for (tree, key, value) in writes {
            let t = g.entry(tree).or_default();
            match value {
                Some(v) => {
                    t.insert(key, v);
                }
                None => {
                    t.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, BackendError> {
        Ok(self
            .lock()
            .get(&tree)
            .map(|t| {
                t.range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, BackendError> {
        Ok(0)
    }
}

/// sled's page cache for the contact store: small on purpose (phones; sled's
/// cache otherwise grows towards the database size).
pub(crate) const SLED_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// sled's own background flush interval (ms); the store also flushes at its
/// durability points.
pub(crate) const SLED_FLUSH_EVERY_MS: u64 = 500;

/// sled 0.34 backend. Announcement bodies ([`Tree::Announcements`]) are
/// kept beside sled, one file each ([`BodyFiles`]): sled keeps every value
/// it has read in memory whatever its cache capacity (about 1.2 bytes per
/// byte read, measured), and a node reads every body it holds when it
/// starts and when a peer catches up.
pub struct SledStore {
    db: sled::Db,
    trees: Vec<(Tree, sled::Tree)>,
    bodies: BodyFiles,
    path: PathBuf,
}

/// The folder inside sled's directory that holds the announcement bodies
/// (so that the store's recovery, which copies and moves that directory,
/// takes them along).
pub(crate) const BODIES_DIR: &str = "bodies";
/// Bytes of a key that name its body's sub-folder (the day tag: a day's
/// bodies are listed and deleted together).
const BODY_FOLDER_KEY_BYTES: usize = crate::store::crypto::DAY_TAG_LEN;
/// Suffix of a body file being written (renamed when complete): the
/// temporary name [`write_private_atomic`] gives it.
const BODY_TEMP_SUFFIX: &str = ".tmp";

/// Announcement bodies as files: `bodies/<hex of the key's first
/// BODY_FOLDER_KEY_BYTES>/<hex of the rest>`, owner-only. The names are the
/// store's keys, keyed hashes that reveal nothing; the contents are the
/// store's sealed records. A body is written to a temporary file, synced and
/// renamed, and its folder synced, before the write returns: it is durable
/// before the record that names it (its metadata, applied to sled after it)
/// can be. A deleted body's file is removed only after the next flush made
/// the deletion of its metadata durable, so that a crash never leaves
/// metadata without its body; a file whose metadata is gone is a leftover
/// that its day's purge removes.
#[derive(Debug)]
struct BodyFiles {
    dir: PathBuf,
    /// Keys deleted since the last flush (their files still exist).
    deleted: Mutex<std::collections::BTreeSet<Vec<u8>>>,
}

fn io_at(path: &Path, e: &std::io::Error) -> BackendError {
    BackendError::Io(format!("{}: {e}", path.display()))
}

impl BodyFiles {
    /// The body folder in sled's directory `db`, created owner-only when
    /// missing; unfinished writes of an interrupted run are removed.
    fn open(db: &Path) -> Result<BodyFiles, BackendError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = db.join(BODIES_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&dir, &e)),
        }
        let bodies = BodyFiles {
            dir,
            deleted: Mutex::new(Default::default()),
        };
        for folder in bodies.folders()? {
            for entry in std::fs::read_dir(&folder).map_err(|e| io_at(&folder, &e))? {
                let path = entry.map_err(|e| io_at(&folder, &e))?.path();
                if path.to_string_lossy().ends_with(BODY_TEMP_SUFFIX) {
                    std::fs::remove_file(&path).map_err(|e| io_at(&path, &e))?;
                }
            }
        }
        Ok(bodies)
    }

    fn split(key: &[u8]) -> (&[u8], &[u8]) {
        key.split_at(key.len().min(BODY_FOLDER_KEY_BYTES))
    }

    fn file(&self, key: &[u8]) -> PathBuf {
        let (folder, rest) = BodyFiles::split(key);
        // A key no longer than a day tag gets the name "-" in its folder.
        let name = if rest.is_empty() {
            "-".to_owned()
        } else {
            hex(rest)
        };
        self.dir.join(hex(folder)).join(name)
    }

    fn is_deleted(&self, key: &[u8]) -> bool {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if self.is_deleted(key) {
            return Ok(None);
        }
        let path = self.file(key);
        match std::fs::read(&path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path, &e)),
        }
    }

    /// Writes one body durably (see the type's documentation).
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = self.file(key);
        let folder = path.parent().unwrap_or(&self.dir).to_owned();
        match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
            Ok(()) => sync_dir(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&folder, &e)),
        }
        // Temporary file, fsync, rename, fsync of the folder.
        write_private_atomic(&path, value).map_err(|e| io_at(&path, &e))?;
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Ok(())
    }

    /// Marks a body deleted; its file goes at the next flush.
    fn delete(&self, key: &[u8]) {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_vec());
    }

    /// Removes the files of the bodies deleted before the flush that just
    /// completed (and their folders once empty).
    fn remove_deleted(&self) -> Result<(), BackendError> {
        let keys = std::mem::take(&mut *self.deleted.lock().unwrap_or_else(|p| p.into_inner()));
        let mut folders = std::collections::BTreeSet::new();
        for key in &keys {
            let path = self.file(key);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path, &e)),
            }
            if let Some(f) = path.parent() {
                folders.insert(f.to_owned());
            }
        }
        for f in folders {
            // Fails while the folder still holds bodies: kept then.
            let _ = std::fs::remove_dir(&f);
        }
        Ok(())
    }

    fn folders(&self) -> Result<Vec<PathBuf>, BackendError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io_at(&self.dir, &e))? {
            let entry = entry.map_err(|e| io_at(&self.dir, &e))?;
            if entry
                .file_type()
                .map_err(|e| io_at(&entry.path(), &e))?
                .is_dir()
            {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    /// The keys of the bodies whose key starts with `prefix`, ascending;
    /// no file is read.
    fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, BackendError> {
        let (want_folder, _) = BodyFiles::split(prefix);
        let mut out = Vec::new();
        for folder in self.folders()? {
            let Some(folder_key) = folder.file_name().and_then(|n| n.to_str()).and_then(unhex)
            else {
                continue;
            };
            if !folder_key.starts_with(want_folder) {
                continue;
            }
            for entry in std::fs::read_dir(&folder).map_err(|e| io_at(&folder, &e))? {
                let entry = entry.map_err(|e| io_at(&folder, &e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let rest = if name == "-" {
                    Some(Vec::new())
                } else {
                    unhex(name)
                };
                // Anything else (a write in progress) is not a body.
                let Some(rest) = rest else { continue };
                let mut key = folder_key.clone();
                key.extend_from_slice(&rest);
                if key.starts_with(prefix) && !self.is_deleted(&key) {
                    out.push(key);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, BackendError> {
        let mut out = Vec::new();
        for key in self.scan_keys(prefix)? {
            // One removed meanwhile by a flush is not there any more.
            if let Some(v) = self.get(&key)? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    fn size(&self) -> Result<u64, BackendError> {
        let mut total = 0;
        for folder in self.folders()? {
            for entry in std::fs::read_dir(&folder).map_err(|e| io_at(&folder, &e))? {
                let entry = entry.map_err(|e| io_at(&folder, &e))?;
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok(total)
    }
}

/// Makes a folder's entries (a new or renamed file) durable.
fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_at(dir, &e))
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

fn map_sled(e: sled::Error) -> BackendError {
    match e {
        // sled reports a held file lock as an `Other` I/O error with this text.
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock") =>
        {
            BackendError::Locked
        }
        sled::Error::Io(io) => BackendError::Io(io_text(&io.to_string())),
        sled::Error::Corruption { at, .. } => BackendError::Corrupt(match at {
            Some(ptr) => format!("the database log is damaged at byte {}", ptr.lid()),
            None => "a database file is damaged".to_owned(),
        }),
        // sled turns an I/O error of its background writer into a bug
        // report in some paths: a full disk must still read as one.
        other if storage_full_text(&other.to_string()) => {
            BackendError::Io(io_text(&other.to_string()))
        }
        other => BackendError::Corrupt(other.to_string()),
    }
}

/// True when an error text (sled passes on I/O errors in their `Debug`
/// form) is a full disk or a file-size limit: ENOSPC (28), EFBIG (27) or
/// EDQUOT (122).
fn storage_full_text(text: &str) -> bool {
    [
        "code: 28,",
        "code: 27,",
        "code: 122,",
        "StorageFull",
        "FileTooLarge",
        "QuotaExceeded",
    ]
    .iter()
    .any(|m| text.contains(m))
        || ["os error 28)", "os error 27)", "os error 122)"]
            .iter()
            .any(|m| text.contains(m))
}

/// Prefix of sled's snapshot files inside the database directory.
const SNAPSHOT_PREFIX: &str = "snap.";
/// Suffix of a snapshot file sled was still writing (renamed when done).
const UNFINISHED_SNAPSHOT_SUFFIX: &str = ".generating";
/// The database file inside sled's directory (sled locks it while open).
const SLED_DB_FILE: &str = "db";

/// The snapshot sled would read on open: the last `snap.*` name in
/// sorted order (sled 0.34 does not skip unfinished ones).
pub(crate) fn newest_snapshot(path: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(SNAPSHOT_PREFIX) && !n.ends_with(".in___motion"))
        .collect();
    names.sort();
    names.pop()
}

/// The damage a snapshot file sled never finished writing causes.
pub(crate) fn unfinished_snapshot(path: &Path, name: &str) -> BackendError {
    BackendError::Corrupt(format!(
        "an unfinished snapshot file {} was left by an interrupted write",
        path.join(name).display()
    ))
}

/// Which files of a sled directory [`copy_database`] leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SnapshotFiles {
    /// Every file but snapshots sled never finished writing.
    FinishedOnly,
    /// No snapshot at all: sled rebuilds its state from the log.
    None,
}

/// A lock on a sled directory taken the way sled takes it (an exclusive
/// `flock` of its `db` file): while held, no meshtrace process opens it.
#[derive(Debug)]
pub(crate) struct DatabaseLock {
    _file: Option<std::fs::File>,
}

impl DatabaseLock {
    /// Locks the database in `path` (nothing to lock when it has no
    /// database file yet). Opens the file read-only: writes nothing. A lock
    /// about to be released is waited for, as [`SledStore::open`] does.
    pub(crate) fn acquire(path: &Path) -> Result<DatabaseLock, BackendError> {
        retry_while_locked(|| DatabaseLock::acquire_once(path))
    }

    fn acquire_once(path: &Path) -> Result<DatabaseLock, BackendError> {
        let file = match std::fs::File::open(path.join(SLED_DB_FILE)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DatabaseLock { _file: None });
            }
            Err(e) => {
                return Err(BackendError::Io(format!(
                    "{}: {e}",
                    path.join(SLED_DB_FILE).display()
                )));
            }
        };
        match fs2::FileExt::try_lock_exclusive(&file) {
            Ok(()) => Ok(DatabaseLock { _file: Some(file) }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(BackendError::Locked),
            Err(e) => Err(BackendError::Io(format!(
                "{}: {e}",
                path.join(SLED_DB_FILE).display()
            ))),
        }
    }
}

/// Copies the sled directory `from` into `to` (created owner-only; it must
/// not exist), leaving out the snapshot files `snapshots` says. Reads `from`
/// only.
pub(crate) fn copy_database(
    from: &Path,
    to: &Path,
    snapshots: SnapshotFiles,
) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(to)?;
    if !from.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let is_snapshot = text.starts_with(SNAPSHOT_PREFIX);
        let skip = match snapshots {
            SnapshotFiles::FinishedOnly => {
                is_snapshot && text.ends_with(UNFINISHED_SNAPSHOT_SUFFIX)
            }
            SnapshotFiles::None => is_snapshot,
        };
        if skip {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_database(&src, &dst, snapshots)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// sled hands on the errors of its background flusher in their `Debug`
/// form (`Os { code: 28, kind: StorageFull, message: "No space left on
/// device" }`): keep the message.
fn io_text(text: &str) -> String {
    match text.split_once("message: \"") {
        Some((_, rest)) => rest.split('"').next().unwrap_or(rest).to_owned(),
        None => text.to_owned(),
    }
}

/// How long an open waits for a lock that is about to be released. sled
/// keeps its `db` file (and so its lock) open in background threads for a
/// moment after the last handle is dropped, e.g. while the snapshot written
/// at open finishes: a reopen in the same process right after a close would
/// otherwise read as "in use". A store held by a running daemon is still
/// refused, after this wait.
pub(crate) const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs `attempt` again while it fails with [`BackendError::Locked`], for
/// at most [`LOCK_RELEASE_WAIT`].
fn retry_while_locked<T>(
    mut attempt: impl FnMut() -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let start = std::time::Instant::now();
    loop {
        match attempt() {
            Err(BackendError::Locked) if start.elapsed() < LOCK_RELEASE_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl SledStore {
    /// Opens (or creates) the database in `path`. A lock still held by a
    /// store of this process that was just closed is waited for (at most
    /// [`LOCK_RELEASE_WAIT`]).
    pub(crate) fn open(path: &Path) -> Result<SledStore, BackendError> {
        retry_while_locked(|| SledStore::open_once(path))
    }

    fn open_once(path: &Path) -> Result<SledStore, BackendError> {
        // sled 0.34 reads a snapshot it never finished writing (an
        // interrupted write, e.g. on a full disk) and fails without naming
        // it: name it, so that the recovery (which leaves it out) is offered.
        if let Some(name) = newest_snapshot(path)
            && name.ends_with(UNFINISHED_SNAPSHOT_SUFFIX)
        {
            return Err(unfinished_snapshot(path, &name));
        }
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_BYTES)
            .flush_every_ms(Some(SLED_FLUSH_EVERY_MS))
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(map_sled)?;
        let mut trees = Vec::new();
        for t in Tree::ALL {
            trees.push((t, db.open_tree(t.name()).map_err(map_sled)?));
        }
        let store = SledStore {
            db,
            trees,
            bodies: BodyFiles::open(path)?,
            path: path.to_owned(),
        };
        store.move_bodies_out_of_sled()?;
        Ok(store)
    }

    /// Stores written before the bodies left sled hold them in its
    /// `announcements` tree: each is written to its file (durably), then
    /// the tree is emptied and flushed. Run again after an interruption, it
    /// finishes the move.
    fn move_bodies_out_of_sled(&self) -> Result<(), BackendError> {
        let tree = self.tree(Tree::Announcements);
        if tree.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for kv in tree.iter() {
            let (k, v) = kv.map_err(map_sled)?;
            self.bodies.put(&k, &v)?;
            batch.remove(k);
        }
        tree.apply_batch(batch).map_err(map_sled)?;
        self.db.flush().map_err(map_sled)?;
        Ok(())
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        // Every `Tree` variant is opened in `open`, in `Tree::ALL` order.
        &self.trees[Tree::ALL.iter().position(|x| *x == t).unwrap_or(0)].1
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if tree == Tree::Announcements {
            return self.bodies.get(key);
        }
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(map_sled)?
            .map(|v| v.to_vec()))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), BackendError> {
        let mut batches: BTreeMap<Tree, sled::Batch> = BTreeMap::new();
        let mut order: Vec<Tree> = Vec::new();
        let mut deleted_bodies = Vec::new();
        for (tree, key, value) in writes {
            if tree == Tree::Announcements {
                // A body is durable before the records after it reach sled;
                // a deleted one goes at the next flush.
                match value {
                    Some(v) => self.bodies.put(&key, &v)?,
                    None => deleted_bodies.push(key),
                }
                continue;
            }
            if !order.contains(&tree) {
                order.push(tree);
            }
            let b = batches.entry(tree).or_default();
            match value {
                Some(v) => b.insert(key, v),
                None => b.remove(key),
            }
        }
        // Trees in first-written order, so a day key written before its
        // records reaches the log first.
        for tree in order {
            if let Some(b) = batches.remove(&tree) {
                self.tree(tree).apply_batch(b).map_err(map_sled)?;
            }
        }
        for key in deleted_bodies {
            self.bodies.delete(&key);
        }
        Ok(())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, BackendError> {
        if tree == Tree::Announcements {
            return self.bodies.scan_prefix(prefix);
        }
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(map_sled))
            .collect()
    }

    fn scan_keys(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, BackendError> {
        if tree == Tree::Announcements {
            return self.bodies.scan_keys(prefix);
        }
        self.tree(tree)
            .scan_prefix(prefix)
            .keys()
            .map(|r| r.map(|k| k.to_vec()).map_err(map_sled))
            .collect()
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.db.flush().map_err(map_sled)?;
        // The deletions of the records naming them are durable now.
        self.bodies.remove_deleted()
    }

    fn size_on_disk(&self) -> Result<u64, BackendError> {
        Ok(self.db.size_on_disk().map_err(map_sled)? + self.bodies.size()?)
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const DAY: [u8; 8] = [7; 8];

    fn key(n: u8) -> Vec<u8> {
        let mut k = DAY.to_vec();
        k.extend_from_slice(&[n; 32]);
        k
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn bodies_are_owner_only_files_beside_sled_and_outlive_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        {
            let s = SledStore::open(&path).unwrap();
            s.apply(vec![
                (Tree::Announcements, key(1), Some(b"body one".to_vec())),
                (Tree::AnnouncementMeta, key(1), Some(b"meta one".to_vec())),
                (Tree::Announcements, key(2), Some(b"body two".to_vec())),
            ])
            .unwrap();
            assert_eq!(
                s.get(Tree::Announcements, &key(1)).unwrap(),
                Some(b"body one".to_vec())
            );
            // Not in sled's tree: in a file named by the key.
            assert!(s.tree(Tree::Announcements).is_empty());
            let file = path.join(BODIES_DIR).join(hex(&DAY)).join(hex(&[1; 32]));
            assert_eq!(std::fs::read(&file).unwrap(), b"body one");
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(file.parent().unwrap()), 0o700);
            assert_eq!(mode(&path.join(BODIES_DIR)), 0o700);
            s.flush().unwrap();
        }
        let s = SledStore::open(&path).unwrap();
        assert_eq!(
            s.scan_prefix(Tree::Announcements, &DAY).unwrap(),
            vec![
                (key(1), b"body one".to_vec()),
                (key(2), b"body two".to_vec())
            ]
        );
        assert_eq!(
            s.scan_keys(Tree::Announcements, &[]).unwrap(),
            vec![key(1), key(2)]
        );
        assert!(
            s.scan_keys(Tree::Announcements, &[8; 8])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.get(Tree::AnnouncementMeta, &key(1)).unwrap(),
            Some(b"meta one".to_vec())
        );
        assert!(s.size_on_disk().unwrap() >= 16);
    }

    #[test]
    fn a_deleted_body_is_gone_at_once_and_its_file_after_the_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let s = SledStore::open(&path).unwrap();
        s.apply(vec![(Tree::Announcements, key(1), Some(b"b".to_vec()))])
            .unwrap();
        s.flush().unwrap();
        let file = path.join(BODIES_DIR).join(hex(&DAY)).join(hex(&[1; 32]));
        s.apply(vec![(Tree::Announcements, key(1), None)]).unwrap();
        assert_eq!(s.get(Tree::Announcements, &key(1)).unwrap(), None);
        assert!(s.scan_keys(Tree::Announcements, &[]).unwrap().is_empty());
        // The file waits for the flush that makes the deletion of the
        // records naming it durable.
        assert!(file.exists());
        s.flush().unwrap();
        assert!(!file.exists());
        assert!(
            !file.parent().unwrap().exists(),
            "the empty day folder goes too"
        );
        // Written again before a flush: kept.
        s.apply(vec![(Tree::Announcements, key(2), Some(b"c".to_vec()))])
            .unwrap();
        s.apply(vec![(Tree::Announcements, key(2), None)]).unwrap();
        s.apply(vec![(Tree::Announcements, key(2), Some(b"d".to_vec()))])
            .unwrap();
        s.flush().unwrap();
        assert_eq!(
            s.get(Tree::Announcements, &key(2)).unwrap(),
            Some(b"d".to_vec())
        );
    }

    #[test]
    fn bodies_a_store_kept_in_sled_move_to_files_when_it_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        {
            // The layout of stores written before: bodies in sled's tree.
            let db = sled::Config::new().path(&path).open().unwrap();
            let t = db.open_tree(Tree::Announcements.name()).unwrap();
            t.insert(key(1), b"old body".to_vec()).unwrap();
            t.insert(key(2), b"other".to_vec()).unwrap();
            db.flush().unwrap();
        }
        {
            let s = SledStore::open(&path).unwrap();
            assert!(s.tree(Tree::Announcements).is_empty());
            assert_eq!(
                s.get(Tree::Announcements, &key(1)).unwrap(),
                Some(b"old body".to_vec())
            );
        }
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.scan_keys(Tree::Announcements, &[]).unwrap().len(), 2);
    }

    #[test]
    fn an_unfinished_write_is_not_a_body_and_is_cleared_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        drop(SledStore::open(&path).unwrap());
        let folder = path.join(BODIES_DIR).join(hex(&DAY));
        std::fs::create_dir(&folder).unwrap();
        let partial = folder.join(format!("{}{BODY_TEMP_SUFFIX}", hex(&[3; 32])));
        std::fs::write(&partial, b"half").unwrap();
        let s = SledStore::open(&path).unwrap();
        assert!(!partial.exists());
        assert!(s.scan_keys(Tree::Announcements, &[]).unwrap().is_empty());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn io_errors_read_plainly() {
        assert_eq!(
            super::io_text(
                "Os { code: 28, kind: StorageFull, message: \"No space left on device\" }"
            ),
            "No space left on device"
        );
        assert_eq!(
            super::io_text("File too large (os error 27)"),
            "File too large (os error 27)"
        );
    }
}
