//! The small key-value `Store` trait and its two backends: sled on disk and
//! an in-memory map for unit tests and the simulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
/// tree and become durable, in order, at the next `flush`.
pub trait Store: Send {
    /// Reads one value.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Applies a batch of writes.
    fn apply(&self, writes: Vec<Write>) -> Result<(), BackendError>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, BackendError>;
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

/// sled 0.34 backend.
pub struct SledStore {
    db: sled::Db,
    trees: Vec<(Tree, sled::Tree)>,
    path: PathBuf,
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
        Ok(SledStore {
            db,
            trees,
            path: path.to_owned(),
        })
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        // Every `Tree` variant is opened in `open`, in `Tree::ALL` order.
        &self.trees[Tree::ALL.iter().position(|x| *x == t).unwrap_or(0)].1
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(map_sled)?
            .map(|v| v.to_vec()))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), BackendError> {
        let mut batches: BTreeMap<Tree, sled::Batch> = BTreeMap::new();
        let mut order: Vec<Tree> = Vec::new();
        for (tree, key, value) in writes {
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
        Ok(())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, BackendError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(map_sled))
            .collect()
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.db.flush().map_err(map_sled)?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, BackendError> {
        self.db.size_on_disk().map_err(map_sled)
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
