//! Encryption at rest: the master key, its derived subkeys, per-day subkeys,
//! record sealing and keyed hashes for lookup keys.
//!
//! * `seal_key = HKDF-SHA256(salt = "meshtrace/v1/store", ikm = master, info = "seal")`
//!   seals records that are not tied to a day (day keys, epoch secrets,
//!   issuers, metadata);
//! * `index_key = HKDF-SHA256(…, info = "index")` keys BLAKE3 for every lookup
//!   key, so record keys reveal no token, epoch, day or id;
//! * each day has a random 32-byte **day key** (not derived: forgetting it
//!   destroys the day's records) that seals the day's encounters,
//!   announcements and exposures.
//!
//! A sealed value is `nonce[24] || XChaCha20-Poly1305(key, nonce, plaintext,
//! aad = tree_name || 0x00 || record_key)`.

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand_core::Rng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::backend::Tree;

/// Length of the master key and of every subkey.
pub(crate) const KEY_LEN: usize = 32;
/// Length of the random nonce in front of every sealed value.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a lookup key (truncated keyed BLAKE3).
pub(crate) const LOOKUP_KEY_LEN: usize = 16;
/// Length of the opaque per-day tag that prefixes day-scoped record keys.
pub(crate) const DAY_TAG_LEN: usize = 8;
const HKDF_SALT: &[u8] = b"meshtrace/v1/store";

/// The store's master key. Zeroized on drop; never printed.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// Wraps raw key bytes.
    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> MasterKey {
        MasterKey(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(k.as_mut());
        MasterKey(k)
    }

    /// The raw bytes (for writing an owner-only key file).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

fn subkey(master: &MasterKey, info: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), master.0.as_ref());
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF's limit: expand cannot fail.
    let _ = hk.expand(info.as_bytes(), out.as_mut());
    out
}

/// A sealing key (master-derived or a day key).
pub(crate) struct Sealer(XChaCha20Poly1305);

impl Sealer {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Sealer {
        Sealer(XChaCha20Poly1305::new(&(*key).into()))
    }

    fn aad(tree: Tree, key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(tree.name().len() + 1 + key.len());
        aad.extend_from_slice(tree.name().as_bytes());
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }

    /// Seals `plaintext` for `(tree, key)` with a fresh random nonce.
    pub(crate) fn seal(&self, tree: Tree, key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(tree, key);
        let ct = self
            .0
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Encryption only fails for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a sealed value; `None` when it is not authentic for `(tree, key)`.
    pub(crate) fn open(&self, tree: Tree, key: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let aad = Self::aad(tree, key);
        self.0
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .ok()
            .map(Zeroizing::new)
    }
}

/// Keys derived from the master key.
pub(crate) struct Keys {
    pub(crate) seal: Sealer,
    index: Zeroizing<[u8; KEY_LEN]>,
}

impl Keys {
    pub(crate) fn derive(master: &MasterKey) -> Keys {
        Keys {
            seal: Sealer::new(&subkey(master, "seal")),
            index: subkey(master, "index"),
        }
    }

    /// Keyed BLAKE3 of `label || 0x00 || data`.
    pub(crate) fn hash(&self, label: &str, data: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.index);
        h.update(label.as_bytes());
        h.update(&[0]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    /// A lookup key: the first 16 bytes of [`Keys::hash`].
    pub(crate) fn lookup(&self, label: &str, data: &[u8]) -> [u8; LOOKUP_KEY_LEN] {
        let h = self.hash(label, data);
        let mut out = [0u8; LOOKUP_KEY_LEN];
        out.copy_from_slice(&h[..LOOKUP_KEY_LEN]);
        out
    }

    /// The opaque tag of a day.
    pub(crate) fn day_tag(&self, day: u32) -> [u8; DAY_TAG_LEN] {
        let h = self.hash("day-tag", &day.to_be_bytes());
        let mut out = [0u8; DAY_TAG_LEN];
        out.copy_from_slice(&h[..DAY_TAG_LEN]);
        out
    }
}

/// A random day key.
pub(crate) fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    rand::rng().fill_bytes(k.as_mut());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_binds_tree_and_key() {
        let keys = Keys::derive(&MasterKey::generate());
        let sealed = keys.seal.seal(Tree::Meta, b"k1", b"secret");
        assert_eq!(
            keys.seal
                .open(Tree::Meta, b"k1", &sealed)
                .as_deref()
                .map(|v| &v[..]),
            Some(&b"secret"[..])
        );
        assert!(keys.seal.open(Tree::Meta, b"k2", &sealed).is_none());
        assert!(keys.seal.open(Tree::Issuers, b"k1", &sealed).is_none());
        let other = Keys::derive(&MasterKey::generate());
        assert!(other.seal.open(Tree::Meta, b"k1", &sealed).is_none());
        assert!(keys.seal.open(Tree::Meta, b"k1", &sealed[..30]).is_none());
        // Fresh nonce each time.
        assert_ne!(sealed, keys.seal.seal(Tree::Meta, b"k1", b"secret"));
    }

    #[test]
    fn master_key_is_redacted() {
        let k = MasterKey::generate();
        let hex: String = k.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&hex[..8]));
        assert!(dbg.contains("redacted"));
    }
}
