//! Encounter tokens: what two devices that heard each other both hold.
//!
//! `token = HKDF-SHA256(salt = TOKEN_KDF_SALT, ikm = X25519(own_secret, their_id),
//!                      info = TOKEN_KDF_INFO || min(id_a, id_b) || max(id_a, id_b))[0..16]`
//!
//! The two public keys are ordered bytewise so both sides compute the same
//! bytes. A non-contributory shared secret (their key is a low-order point)
//! is refused: such a "key" would give the same token to everyone.

use core::fmt;

use hkdf::Hkdf;
use sha2::Sha256;

use crate::announce::Disposition;
use crate::keys::{EpochKey, KeySchedule, RotatingId, short_hex};
use crate::time::{Epoch, UnixTime};

/// Length of an encounter token in bytes (see `docs/protocol.md` §4 for why 16
/// bytes are enough).
pub const TOKEN_LEN: usize = 16;

/// HKDF salt for encounter tokens (domain separation).
pub const TOKEN_KDF_SALT: &[u8] = b"meshtrace/v2/encounter-token/salt";
/// HKDF info prefix for encounter tokens; the two ordered public keys follow.
pub const TOKEN_KDF_INFO: &[u8] = b"meshtrace/v2/encounter-token";

/// Most tokens one encounter (one heard ID) may yield: one per own epoch key
/// active around its sightings. A genuine rotating ID is heard for at most one
/// epoch plus the sighting window on both ends, which spans at most three own
/// epochs; the fourth slot absorbs a pre-generated key.
pub const MAX_TOKENS_PER_ENCOUNTER: usize = 4;

/// A 16-byte encounter token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EncounterToken(pub [u8; TOKEN_LEN]);

impl EncounterToken {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// The first 8 bytes as a big-endian integer (tokens are uniformly random,
    /// so this is a ready-made hash and sort key).
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

/// Bits of a token that a report carries (its fingerprint, §4.4).
///
/// A report carries each token's fingerprint, not the token; receivers
/// compare the fingerprints of their own tokens with the report's. 56 bits
/// keep the expected false alerts per node-year at 1,000 reports a day
/// below 10⁻³ (the arithmetic is in `docs/protocol.md` §4.4).
pub const FINGERPRINT_BITS: u32 = 56;

/// A token's fingerprint: its first [`FINGERPRINT_BITS`] bits, big-endian
/// (tokens are uniformly random, so a prefix is already a uniform hash).
pub fn token_fingerprint(token: &EncounterToken) -> u64 {
    token.prefix_u64() >> (64 - FINGERPRINT_BITS)
}

/// Splits concatenated 16-byte tokens; `None` when the length is not a
/// multiple of [`TOKEN_LEN`].
pub fn tokens_from_bytes(bytes: &[u8]) -> Option<Vec<EncounterToken>> {
    if !bytes.len().is_multiple_of(TOKEN_LEN) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(TOKEN_LEN)
            .map(|c| {
                let mut t = [0u8; TOKEN_LEN];
                t.copy_from_slice(c);
                EncounterToken(t)
            })
            .collect(),
    )
}

impl fmt::Debug for EncounterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncounterToken({})", short_hex(&self.0))
    }
}

/// Why no token could be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The heard key is a low-order point: the shared secret is all zeros.
    #[error("heard key is a low-order point (non-contributory Diffie-Hellman)")]
    NonContributory,
    /// The heard key is our own broadcast ID (an echo or a replay of it).
    #[error("heard key is our own rotating ID")]
    OwnId,
}

impl TokenError {
    /// The stable error code of this refusal (docs/protocol.md §16).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::NonContributory => "non_contributory",
            TokenError::OwnId => "own_id",
        }
    }

    /// A low-order key is hostile input ([`Disposition::Reject`]); an echo
    /// of our own ID is dropped quietly ([`Disposition::Ignore`]).
    pub fn disposition(&self) -> Disposition {
        match self {
            TokenError::NonContributory => Disposition::Reject,
            TokenError::OwnId => Disposition::Ignore,
        }
    }
}

/// Derives the token shared by the holder of `own` and the owner of `theirs`.
pub fn derive_token(own: &EpochKey, theirs: &RotatingId) -> Result<EncounterToken, TokenError> {
    let mine = own.public();
    if &mine == theirs {
        return Err(TokenError::OwnId);
    }
    let shared = own.diffie_hellman(theirs);
    if !shared.was_contributory() {
        return Err(TokenError::NonContributory);
    }
    let (lo, hi) = if mine.0 < theirs.0 {
        (&mine, theirs)
    } else {
        (theirs, &mine)
    };
    let hk = Hkdf::<Sha256>::new(Some(TOKEN_KDF_SALT), shared.as_bytes());
    let mut out = [0u8; TOKEN_LEN];
    // 16 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    let ok = hk
        .expand_multi_info(&[TOKEN_KDF_INFO, &lo.0, &hi.0], &mut out)
        .is_ok();
    debug_assert!(ok);
    Ok(EncounterToken(out))
}

/// The tokens for one sighting of `heard` at local time `at`: one per own key
/// broadcast around that moment (the current key and, near a rotation
/// boundary, the previous or next one). The result is empty when `heard` is a
/// low-order point or any of our own IDs (an echo of our previous or next key
/// must not open an encounter with ourselves).
pub fn tokens_for_sighting(
    keys: &KeySchedule,
    heard: &RotatingId,
    at: UnixTime,
) -> Vec<(Epoch, EncounterToken)> {
    if keys.keys().any(|k| &k.public() == heard) {
        return Vec::new();
    }
    keys.active_around(at)
        .filter_map(|k| derive_token(k, heard).ok().map(|t| (k.epoch(), t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn both_sides_derive_the_same_token() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        for _ in 0..20 {
            let a = EpochKey::generate(Epoch(5), &mut rng);
            let b = EpochKey::generate(Epoch(5), &mut rng);
            let ta = derive_token(&a, &b.public()).unwrap();
            let tb = derive_token(&b, &a.public()).unwrap();
            assert_eq!(ta, tb);
        }
    }

    #[test]
    fn low_order_and_own_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let a = EpochKey::generate(Epoch(5), &mut rng);
        assert_eq!(
            derive_token(&a, &RotatingId([0; 32])),
            Err(TokenError::NonContributory)
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(
            derive_token(&a, &RotatingId(one)),
            Err(TokenError::NonContributory)
        );
        assert_eq!(derive_token(&a, &a.public()), Err(TokenError::OwnId));
    }

    #[test]
    fn own_ids_never_yield_tokens_even_across_a_boundary() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let mut keys = KeySchedule::new();
        let boundary = UnixTime(3_000 * 900);
        keys.rotate(boundary.minus(30), &mut rng);
        let ids: Vec<RotatingId> = keys.keys().map(|k| k.public()).collect();
        assert_eq!(ids.len(), 2, "current and pre-drawn next key");
        for id in &ids {
            assert!(tokens_for_sighting(&keys, id, boundary.minus(30)).is_empty());
        }
    }

    #[test]
    fn third_party_gets_a_different_token() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let a = EpochKey::generate(Epoch(5), &mut rng);
        let b = EpochKey::generate(Epoch(5), &mut rng);
        let c = EpochKey::generate(Epoch(5), &mut rng);
        assert_ne!(
            derive_token(&a, &b.public()).unwrap(),
            derive_token(&c, &b.public()).unwrap()
        );
    }
}
