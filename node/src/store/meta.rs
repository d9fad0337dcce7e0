//! The store's metadata file and master-key sources.
//!
//! `<dir>/store.meta` (JSON, owner-only) holds the format name, the schema
//! version, how the master key is obtained (key file, or passphrase with its
//! Argon2id salt and cost) and a key-check value sealed under the master key.
//! It is read, and the key checked, **before** the database is opened, so a
//! wrong key or passphrase leaves every file untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand_core::Rng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::StoreError;
use super::backend::Tree;
use super::crypto::{KEY_LEN, Keys, MasterKey};

/// Name of the metadata file inside the data directory.
pub const META_FILE: &str = "store.meta";
/// Name of the sled database directory inside the data directory.
pub const DB_DIR: &str = "db";
/// The on-disk schema this build writes (and reads, with every older one).
/// Schema 2: an encounter record's profile holds **received levels**
/// (docs/protocol.md §5, §15.9), where schema 1 held attenuations.
pub(crate) const SCHEMA_VERSION: u32 = 2;
/// The oldest schema read; older stores do not exist (schema 1 was the
/// first).
pub(crate) const OLDEST_SCHEMA_VERSION: u32 = 1;
/// Format name in the metadata file.
pub(crate) const FORMAT_NAME: &str = "meshtrace-store";
/// Largest metadata file read.
pub(crate) const MAX_META_BYTES: u64 = 16 * 1024;
const KEY_CHECK_PLAINTEXT: &[u8] = b"meshtrace store key check v1";
const KEY_CHECK_RECORD: &[u8] = b"key-check";

/// Argon2id cost parameters for passphrase-derived master keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// Interactive default: 64 MiB, 3 passes, 1 lane (above OWASP's minimum of
    /// 19 MiB / 2 passes).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// The cheapest accepted parameters (tests only: a stolen store with
    /// these falls quickly to guessing).
    pub const TEST_ONLY: KdfParams = KdfParams {
        m_kib: 1024,
        t: 1,
        p: 1,
    };
    /// Upper bounds accepted from a metadata file (a hostile file must not
    /// make opening allocate without limit).
    pub(crate) const MAX_M_KIB: u32 = 4 * 1024 * 1024;

    /// Refuses costs below [`KdfParams::TEST_ONLY`] or above the maxima.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let min = KdfParams::TEST_ONLY;
        if self.m_kib < min.m_kib || self.t < min.t || self.p < min.p {
            return Err(StoreError::BadMeta(
                "Argon2 parameters are below the accepted minimum".into(),
            ));
        }
        if self.m_kib > KdfParams::MAX_M_KIB
            || self.t > KdfParams::MAX_T
            || self.p > KdfParams::MAX_P
        {
            return Err(StoreError::BadMeta(
                "Argon2 parameters exceed the accepted maximum".into(),
            ));
        }
        Ok(())
    }
    /// Most passes accepted from a metadata file.
    pub(crate) const MAX_T: u32 = 64;
    /// Most lanes accepted from a metadata file.
    pub(crate) const MAX_P: u32 = 16;
}

/// Where the master key comes from.
pub enum KeySource {
    /// A 32-byte key file, created owner-only (0600) when the store is created.
    KeyFile(PathBuf),
    /// A passphrase stretched with Argon2id.
    Passphrase(Zeroizing<String>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
            KeySource::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum KeyKind {
    KeyFile,
    Passphrase {
        salt: String,
        m_kib: u32,
        t: u32,
        p: u32,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    format: String,
    schema: u32,
    key: KeyKind,
    check: String,
}

/// Lowercase hex of `b`.
pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex `s`; `None` for anything else.
pub(super) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Writes `bytes` to `path` owner-only, atomically (temp file, fsync, rename).
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates a new random key file, owner-only; fails if it exists.
pub fn create_key_file(path: &Path) -> Result<MasterKey, StoreError> {
    let key = MasterKey::generate();
    let err = |e: std::io::Error| StoreError::KeyFile {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(key.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(key)
}

/// Reads a key file: exactly 32 bytes, not readable by group or others.
pub fn read_key_file(path: &Path) -> Result<MasterKey, StoreError> {
    let bad = |reason: String| StoreError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let mut f = File::open(path).map_err(|e| bad(e.to_string()))?;
    let mode = f
        .metadata()
        .map_err(|e| bad(e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "permissions {:o} let other users read it; run `chmod 600 {}`",
            mode & 0o777,
            path.display()
        )));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    Read::by_ref(&mut f)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    let arr: [u8; KEY_LEN] = buf[..]
        .try_into()
        .map_err(|_| bad(format!("must hold exactly {KEY_LEN} bytes")))?;
    Ok(MasterKey::from_bytes(Zeroizing::new(arr)))
}

fn derive_passphrase(pass: &str, salt: &[u8], p: KdfParams) -> Result<MasterKey, StoreError> {
    let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(KEY_LEN))
        .map_err(|e| StoreError::BadMeta(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    argon
        .hash_password_into(pass.as_bytes(), salt, out.as_mut())
        .map_err(|e| StoreError::BadMeta(format!("Argon2: {e}")))?;
    Ok(MasterKey::from_bytes(out))
}

/// Creates the metadata file for a new store and returns the master key.
pub(crate) fn create_meta(
    dir: &Path,
    source: &KeySource,
    kdf: KdfParams,
) -> Result<MasterKey, StoreError> {
    let meta_path = dir.join(META_FILE);
    if meta_path.exists() {
        return Err(StoreError::AlreadyExists(dir.to_owned()));
    }
    let (master, key) = match source {
        KeySource::KeyFile(path) => {
            let master = if path.exists() {
                read_key_file(path)?
            } else {
                create_key_file(path)?
            };
            (master, KeyKind::KeyFile)
        }
        KeySource::Passphrase(pass) => {
            if pass.is_empty() {
                return Err(StoreError::BadMeta("the passphrase is empty".into()));
            }
            kdf.check()?;
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            (
                derive_passphrase(pass, &salt, kdf)?,
                KeyKind::Passphrase {
                    salt: hex(&salt),
                    m_kib: kdf.m_kib,
                    t: kdf.t,
                    p: kdf.p,
                },
            )
        }
    };
    let check = Keys::derive(&master)
        .seal
        .seal(Tree::Meta, KEY_CHECK_RECORD, KEY_CHECK_PLAINTEXT);
    let meta = MetaFile {
        format: FORMAT_NAME.into(),
        schema: SCHEMA_VERSION,
        key,
        check: hex(&check),
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| StoreError::BadMeta(e.to_string()))?;
    write_private_atomic(&meta_path, &json).map_err(|e| StoreError::Io {
        path: meta_path,
        reason: e.to_string(),
    })?;
    Ok(master)
}

/// Reads the metadata file, checks the schema, derives and checks the key.
/// Returns the master key and the schema the store is at.
pub(crate) fn open_meta(dir: &Path, source: &KeySource) -> Result<(MasterKey, u32), StoreError> {
    let meta = read_meta(dir)?;
    if meta.schema > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: meta.schema,
            supported: SCHEMA_VERSION,
        });
    }
    if meta.schema < OLDEST_SCHEMA_VERSION {
        return Err(StoreError::BadMeta(format!(
            "{} names schema {}, which no meshtrace wrote",
            dir.join(META_FILE).display(),
            meta.schema
        )));
    }
    Ok((check_key(&meta, source)?, meta.schema))
}

/// Reads and parses `store.meta` (bounded), checking its format name.
fn read_meta(dir: &Path) -> Result<MetaFile, StoreError> {
    let meta_path = dir.join(META_FILE);
    let f = match File::open(&meta_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(dir.to_owned()));
        }
        Err(e) => {
            return Err(StoreError::Io {
                path: meta_path,
                reason: e.to_string(),
            });
        }
    };
    let mut text = Vec::new();
    f.take(MAX_META_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| StoreError::Io {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
    if text.len() as u64 > MAX_META_BYTES {
        return Err(StoreError::BadMeta(format!(
            "{} is larger than {MAX_META_BYTES} bytes",
            meta_path.display()
        )));
    }
    let meta: MetaFile = serde_json::from_slice(&text)
        .map_err(|e| StoreError::BadMeta(format!("{}: {e}", meta_path.display())))?;
    if meta.format != FORMAT_NAME {
        return Err(StoreError::BadMeta(format!(
            "{} is not a meshtrace store (format {:?})",
            meta_path.display(),
            meta.format
        )));
    }
    Ok(meta)
}

/// Moves a store whose key checked and whose database loaded from an older
/// schema to [`SCHEMA_VERSION`] by rewriting `store.meta` (atomically; the
/// database is not touched). Schema 1 → 2 changes what an encounter
/// profile's dB mean (attenuations → received levels) without changing a
/// byte of them: an attenuation read as a level is exact for a sender that
/// advertised 0 dBm and otherwise lower by the TX power that sender
/// advertised (docs/protocol.md §15.13). Call it only while holding the
/// database lock.
pub(crate) fn upgrade_schema(dir: &Path) -> Result<(), StoreError> {
    let mut meta = read_meta(dir)?;
    if meta.schema >= SCHEMA_VERSION {
        return Ok(());
    }
    meta.schema = SCHEMA_VERSION;
    let meta_path = dir.join(META_FILE);
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| StoreError::BadMeta(e.to_string()))?;
    write_private_atomic(&meta_path, &json).map_err(|e| StoreError::Io {
        path: meta_path,
        reason: e.to_string(),
    })
}

/// Derives the master key from `source` for `meta` and checks it.
fn check_key(meta: &MetaFile, source: &KeySource) -> Result<MasterKey, StoreError> {
    let master = match (&meta.key, source) {
        (KeyKind::KeyFile, KeySource::KeyFile(path)) => read_key_file(path)?,
        (KeyKind::Passphrase { salt, m_kib, t, p }, KeySource::Passphrase(pass)) => {
            let params = KdfParams {
                m_kib: *m_kib,
                t: *t,
                p: *p,
            };
            params.check()?;
            let salt = unhex(salt).ok_or_else(|| StoreError::BadMeta("salt is not hex".into()))?;
            derive_passphrase(pass, &salt, params)?
        }
        (KeyKind::KeyFile, KeySource::Passphrase(_)) => {
            return Err(StoreError::KeySourceMismatch(
                "this store is protected by a key file, not a passphrase",
            ));
        }
        (KeyKind::Passphrase { .. }, KeySource::KeyFile(_)) => {
            return Err(StoreError::KeySourceMismatch(
                "this store is protected by a passphrase, not a key file",
            ));
        }
    };
    let check = unhex(&meta.check).ok_or_else(|| StoreError::BadMeta("check is not hex".into()))?;
    match Keys::derive(&master)
        .seal
        .open(Tree::Meta, KEY_CHECK_RECORD, &check)
    {
        Some(p) if &p[..] == KEY_CHECK_PLAINTEXT => Ok(master),
        _ => Err(StoreError::WrongKey),
    }
}
