//! Keys: per-epoch X25519 rotating IDs, the rotation schedule, and the
//! Ed25519 issuer and one-time report keys.
//!
//! Secrets zeroize on drop and print as `<redacted>`; public keys print only a
//! short prefix so logs never carry a full ID.

use core::fmt;
use std::collections::VecDeque;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::time::{Epoch, UnixTime};

/// Length of a rotating ID (an X25519 public key) in bytes.
pub const ROTATING_ID_LEN: usize = 32;
/// Length of an Ed25519 public key in bytes.
pub const ED25519_PUBLIC_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// How long (seconds) around a sighting the node's own keys count as "active"
/// for token derivation. It covers the lag between the two sides hearing each
/// other (duty-cycled scans report a device up to one scan interval late) at a
/// rotation boundary. Clock skew between devices does not enter: each side
/// uses its own clock for its own keys.
pub const SIGHTING_KEY_WINDOW_SECONDS: u64 = 300;

/// How long (seconds) after its epoch ends an epoch secret is kept: long enough
/// for sightings inside [`SIGHTING_KEY_WINDOW_SECONDS`] to be processed, then
/// the secret is destroyed (DESIGN §2.7).
pub const ROTATION_GRACE_SECONDS: u64 = SIGHTING_KEY_WINDOW_SECONDS + 60;

/// Most epoch keys a [`KeySchedule`] holds at once (current, previous ones in
/// their grace period, and one pre-generated next key).
pub const MAX_SCHEDULED_KEYS: usize = 4;

pub(crate) fn short_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

/// A rotating ID: the X25519 public key a node broadcasts during one epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RotatingId(pub [u8; ROTATING_ID_LEN]);

impl RotatingId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; ROTATING_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for RotatingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RotatingId({})", short_hex(&self.0))
    }
}

/// The secret half of one epoch's rotating ID. Zeroized on drop.
pub struct EpochKey {
    epoch: Epoch,
    secret: StaticSecret,
    public: RotatingId,
}

impl EpochKey {
    /// Draws a fresh random key pair for `epoch`. Keys are never derived from
    /// a seed, so a leaked key links nothing beyond its own epoch.
    pub fn generate<R: CryptoRng + ?Sized>(epoch: Epoch, rng: &mut R) -> EpochKey {
        let secret = StaticSecret::random_from_rng(rng);
        let public = RotatingId(PublicKey::from(&secret).to_bytes());
        EpochKey {
            epoch,
            secret,
            public,
        }
    }

    /// Rebuilds a key from its stored secret bytes (the store and test
    /// vectors use this).
    pub fn from_secret_bytes(epoch: Epoch, secret: Zeroizing<[u8; 32]>) -> EpochKey {
        let secret = StaticSecret::from(*secret);
        let public = RotatingId(PublicKey::from(&secret).to_bytes());
        EpochKey {
            epoch,
            secret,
            public,
        }
    }

    /// The secret bytes, for sealed storage only.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The epoch this key is broadcast in.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The broadcast ID.
    pub fn public(&self) -> RotatingId {
        self.public
    }

    pub(crate) fn diffie_hellman(&self, theirs: &RotatingId) -> x25519_dalek::SharedSecret {
        self.secret.diffie_hellman(&PublicKey::from(theirs.0))
    }

    /// True when this key was broadcast at some moment within
    /// [`SIGHTING_KEY_WINDOW_SECONDS`] of `at`.
    pub fn active_around(&self, at: UnixTime) -> bool {
        let lo = at.minus(SIGHTING_KEY_WINDOW_SECONDS);
        let hi = at.plus(SIGHTING_KEY_WINDOW_SECONDS);
        self.epoch.start() <= hi && lo < self.epoch.end()
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What [`KeySchedule::rotate`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// The ID to broadcast from now on, when it changed.
    pub new_id: Option<RotatingId>,
    /// Epochs whose secrets were destroyed.
    pub erased: Vec<Epoch>,
}

/// The node's own epoch keys: the current one plus recent ones still inside
/// their grace period.
#[derive(Debug, Default)]
pub struct KeySchedule {
    keys: VecDeque<EpochKey>,
    broadcasting: Option<Epoch>,
}

impl KeySchedule {
    /// An empty schedule.
    pub fn new() -> KeySchedule {
        KeySchedule::default()
    }

    /// Makes sure a key exists for `now`'s epoch and, within
    /// [`SIGHTING_KEY_WINDOW_SECONDS`] of the next boundary, for the next
    /// epoch too (drawn from `rng`), then destroys every key whose epoch ended
    /// more than [`ROTATION_GRACE_SECONDS`] before `now`. The next key exists
    /// before it is broadcast so that a sighting just before the boundary
    /// already yields the token the other side will derive from it.
    pub fn rotate<R: CryptoRng + ?Sized>(&mut self, now: UnixTime, rng: &mut R) -> Rotation {
        let mut out = Rotation::default();
        let epoch = now.epoch();
        let ahead = now.plus(SIGHTING_KEY_WINDOW_SECONDS).epoch();
        for e in [epoch, ahead] {
            if self.get(e).is_none() {
                self.insert(EpochKey::generate(e, rng));
            }
        }
        if self.broadcasting != Some(epoch) {
            self.broadcasting = Some(epoch);
            out.new_id = self.get(epoch).map(EpochKey::public);
        }
        out.erased = self.erase_expired(now);
        out
    }

    /// Destroys keys whose grace period is over at `now`; returns their epochs.
    pub fn erase_expired(&mut self, now: UnixTime) -> Vec<Epoch> {
        let mut erased = Vec::new();
        self.keys.retain(|k| {
            let keep = k.epoch.end().plus(ROTATION_GRACE_SECONDS) > now;
            if !keep {
                erased.push(k.epoch);
            }
            keep
        });
        erased
    }

    /// Adds a key (for example one reloaded from the store). A key for an
    /// epoch already present replaces it. The oldest keys are dropped beyond
    /// [`MAX_SCHEDULED_KEYS`].
    pub fn insert(&mut self, key: EpochKey) {
        self.keys.retain(|k| k.epoch != key.epoch);
        let pos = self.keys.partition_point(|k| k.epoch < key.epoch);
        self.keys.insert(pos, key);
        while self.keys.len() > MAX_SCHEDULED_KEYS {
            self.keys.pop_front();
        }
    }

    /// The key of `epoch`, if held.
    pub fn get(&self, epoch: Epoch) -> Option<&EpochKey> {
        self.keys.iter().find(|k| k.epoch == epoch)
    }

    /// The key to broadcast at `now`, if held.
    pub fn current(&self, now: UnixTime) -> Option<&EpochKey> {
        self.get(now.epoch())
    }

    /// Keys that were broadcast around `at` (see [`EpochKey::active_around`]).
    pub fn active_around(&self, at: UnixTime) -> impl Iterator<Item = &EpochKey> {
        self.keys.iter().filter(move |k| k.active_around(at))
    }

    /// All keys held, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &EpochKey> {
        self.keys.iter()
    }
}

/// An issuer's Ed25519 signing key (a clinic or health worker). Zeroized on drop.
pub struct IssuerSecretKey(SigningKey);

impl IssuerSecretKey {
    /// Draws a fresh issuer key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> IssuerSecretKey {
        IssuerSecretKey(SigningKey::generate(rng))
    }

    /// Rebuilds the key from its 32 secret bytes.
    pub fn from_bytes(bytes: &Zeroizing<[u8; 32]>) -> IssuerSecretKey {
        IssuerSecretKey(SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes, for an owner-only key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key that deployments list as trusted.
    pub fn public(&self) -> IssuerPublicKey {
        IssuerPublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for IssuerSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerSecretKey(<redacted>, public {:?})", self.public())
    }
}

/// A one-time report key: created by the positive user's node, certified by
/// the issuer, used to sign that user's announcement. Zeroized on drop.
pub struct ReportSecretKey(SigningKey);

impl ReportSecretKey {
    /// Draws a fresh report key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> ReportSecretKey {
        ReportSecretKey(SigningKey::generate(rng))
    }

    /// Rebuilds the key from its 32 secret bytes.
    pub fn from_bytes(bytes: &Zeroizing<[u8; 32]>) -> ReportSecretKey {
        ReportSecretKey(SigningKey::from_bytes(bytes))
    }

    /// The 32 secret bytes, for sealed storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key an issuer certifies.
    pub fn public(&self) -> ReportPublicKey {
        ReportPublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }
}

impl fmt::Debug for ReportSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportSecretKey(<redacted>, public {:?})", self.public())
    }
}

/// Strict Ed25519 verification, docs/protocol.md §2.5: `A` and `R` canonical
/// encodings of points not of small order, `S < L`, and the cofactorless
/// equation with `R` compared as encoded bytes. `verify_strict` applies the
/// rules on `R` and `S`; the decoder accepts a `y` coordinate of `p` or
/// more for `A` (it reduces it), so that rule is checked here.
fn verify_ed25519(public: &[u8; 32], msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
    if !canonical_y(public) {
        return false;
    }
    let Ok(vk) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    if vk.is_weak() {
        return false;
    }
    let sig = ed25519_dalek::Signature::from_bytes(sig);
    vk.verify_strict(msg, &sig).is_ok()
}

/// Whether a point encoding's `y` coordinate (its 255 low bits,
/// little-endian) is below the field prime `p = 2^255 − 19`, by its bytes
/// alone. (A canonical encoding also has sign bit 0 when `x = 0`; the only
/// such points, `y = ±1`, are of small order and refused as such.)
pub(crate) fn canonical_y(bytes: &[u8; 32]) -> bool {
    !(bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

fn is_strong_ed25519(public: &[u8; 32]) -> bool {
    match VerifyingKey::from_bytes(public) {
        Ok(vk) => !vk.is_weak() && vk.to_edwards().compress().as_bytes() == public,
        Err(_) => false,
    }
}

macro_rules! ed_public {
    ($name:ident, $what:literal) => {
        #[doc = $what]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; ED25519_PUBLIC_LEN]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; ED25519_PUBLIC_LEN] {
                &self.0
            }

            /// Strict Ed25519 verification (`verify_strict`, weak keys refused).
            pub fn verify(&self, msg: &[u8], sig: &[u8; SIGNATURE_LEN]) -> bool {
                verify_ed25519(&self.0, msg, sig)
            }

            /// Whether these bytes are a key a signature can be checked
            /// against: the canonical encoding of a curve point that is not
            /// of small order. Strict verification refuses every signature
            /// under any other key, so configuring one is a mistake (`00…00`
            /// and `ff…ff` are the usual ones).
            pub fn is_strong(&self) -> bool {
                is_strong_ed25519(&self.0)
            }

            /// Lower-case hex of the 32 bytes (how keys appear in config).
            pub fn to_hex(&self) -> String {
                self.0.iter().map(|b| format!("{b:02x}")).collect()
            }

            /// Parses 64 hex digits.
            pub fn from_hex(s: &str) -> Option<$name> {
                let s = s.trim();
                if s.len() != 64 || !s.is_ascii() {
                    return None;
                }
                let mut out = [0u8; 32];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
                }
                Some($name(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), short_hex(&self.0))
            }
        }
    };
}

ed_public!(IssuerPublicKey, "An issuer's Ed25519 public key.");
ed_public!(ReportPublicKey, "A one-time report public key.");

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn rotation_erases_after_grace() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut s = KeySchedule::new();
        let t0 = UnixTime(1_000 * 900);
        let r = s.rotate(t0, &mut rng);
        assert!(r.new_id.is_some());
        assert!(s.rotate(t0.plus(10), &mut rng).new_id.is_none());
        let next = t0.plus(900);
        let r = s.rotate(next, &mut rng);
        assert!(r.new_id.is_some());
        assert!(r.erased.is_empty(), "previous key is in its grace period");
        assert_eq!(s.keys().count(), 2);
        let r = s.rotate(next.plus(ROTATION_GRACE_SECONDS), &mut rng);
        assert_eq!(r.erased, vec![t0.epoch()]);
        assert!(s.get(t0.epoch()).is_none());
    }

    #[test]
    fn next_key_is_drawn_before_the_boundary_but_not_broadcast() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut s = KeySchedule::new();
        let boundary = UnixTime(2_000 * 900);
        let r = s.rotate(boundary.minus(SIGHTING_KEY_WINDOW_SECONDS + 1), &mut rng);
        assert_eq!(s.keys().count(), 1);
        let first = r.new_id.unwrap();
        let r = s.rotate(boundary.minus(10), &mut rng);
        assert_eq!(r.new_id, None, "still broadcasting the current key");
        let next = s.get(boundary.epoch()).unwrap().public();
        assert_ne!(next, first);
        assert_eq!(s.active_around(boundary.minus(10)).count(), 2);
        let r = s.rotate(boundary, &mut rng);
        assert_eq!(
            r.new_id,
            Some(next),
            "the pre-drawn key goes on air at the boundary"
        );
        assert!(s.keys().count() <= MAX_SCHEDULED_KEYS);
    }

    #[test]
    fn fresh_keys_are_unrelated() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = EpochKey::generate(Epoch(1), &mut rng);
        let b = EpochKey::generate(Epoch(2), &mut rng);
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn secrets_are_redacted() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let k = EpochKey::generate(Epoch(7), &mut rng);
        let secret_hex: String = k
            .secret_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains(&secret_hex[..8]));
        let full_pub: String = k.public().0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dbg.contains(&full_pub),
            "full public key must not be printed"
        );
        let ik = IssuerSecretKey::generate(&mut rng);
        let ihex: String = ik.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!format!("{ik:?}").contains(&ihex[..8]));
    }

    #[test]
    fn weak_and_invalid_public_keys_are_not_strong() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for _ in 0..16 {
            assert!(IssuerSecretKey::generate(&mut rng).public().is_strong());
        }
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // p itself: a non-canonical encoding of y = 0.
        let mut p_bytes = [0xffu8; 32];
        p_bytes[0] = 0xed;
        p_bytes[31] = 0x7f;
        for bytes in [[0u8; 32], [0xff; 32], identity, p_bytes] {
            assert!(!IssuerPublicKey(bytes).is_strong(), "{bytes:02x?}");
        }
        // Half of all 32-byte strings are no curve point at all.
        let not_points = (0u8..64)
            .filter(|i| {
                let mut b = [0x5au8; 32];
                b[0] = *i;
                VerifyingKey::from_bytes(&b).is_err()
            })
            .inspect(|i| {
                let mut b = [0x5au8; 32];
                b[0] = *i;
                assert!(!IssuerPublicKey(b).is_strong());
            })
            .count();
        assert!(not_points > 0);
    }

    #[test]
    fn hex_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let p = IssuerSecretKey::generate(&mut rng).public();
        assert_eq!(IssuerPublicKey::from_hex(&p.to_hex()), Some(p));
        assert_eq!(IssuerPublicKey::from_hex("zz"), None);
        assert_eq!(IssuerPublicKey::from_hex(&"é".repeat(32)), None);
    }
}
