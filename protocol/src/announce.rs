//! Announcements: the signed, padded token lists a positive user publishes.
//!
//! The reporter's tokens are reduced to their fingerprints
//! ([`crate::token_fingerprint`]), deduplicated, padded with random dummy
//! fingerprints to a fixed bucket ([`padded_layout`]), sorted, split into
//! equal chunks of at most [`TOKENS_PER_FULL_CHUNK`] entries and
//! Golomb-Rice coded (`docs/protocol.md` §10.3). Each chunk is a self-contained
//! signed message under [`MAX_ANNOUNCEMENT_BYTES`] carrying the certificate,
//! so any single chunk can be verified and matched on its own. The only ways to
//! obtain a [`VerifiedAnnouncement`] are [`VerifiedAnnouncement::verify`] and,
//! for many at once, [`VerifiedAnnouncement::verify_batch`] (same checks, the
//! signatures batch-verified).

use std::collections::{HashMap, HashSet};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use prost::Message;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256, Sha512};

use crate::cert::{Certificate, CertificateError, MAX_CERTIFICATE_BYTES, MAX_CLOCK_SKEW_SECONDS};
use crate::gcs;
use crate::keys::{IssuerPublicKey, ReportPublicKey, ReportSecretKey, SIGNATURE_LEN, canonical_y};
use crate::time::{Day, RETENTION_DAYS, UnixTime};
use crate::token::{EncounterToken, FINGERPRINT_BITS, token_fingerprint};
use crate::wire::{
    AnnouncementBodyMsg, AnnouncementMsg, DecodeError, check_version, decode_canonical, fixed,
};

/// Bytes of randomness drawn per dummy fingerprint (the first
/// [`FINGERPRINT_BITS`] bits, big-endian, are kept).
const DUMMY_DRAW_LEN: usize = 8;

/// Version of announcement messages.
pub const ANNOUNCEMENT_VERSION: u32 = 2;
/// Largest encoded announcement chunk: the gossip message limit (64 KiB).
pub const MAX_ANNOUNCEMENT_BYTES: usize = 64 * 1024;
/// Entries (fingerprints) in a full chunk (about 12 KiB coded, well under the
/// message limit).
pub const TOKENS_PER_FULL_CHUNK: usize = 2048;
/// The allowed token counts of a single-chunk announcement. Reports with more
/// tokens use 2, 4, 8, … full chunks.
pub const SINGLE_CHUNK_BUCKETS: [usize; 6] = [64, 128, 256, 512, 1024, TOKENS_PER_FULL_CHUNK];
/// Most chunks one report may have.
pub const MAX_CHUNKS: u32 = 64;
/// Domain prefix of the report key's signature over a chunk body.
pub const ANNOUNCEMENT_SIGNING_DOMAIN: &[u8] = b"meshtrace/v2/announcement";

/// Identity of an announcement chunk: SHA-256 of its encoded bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnnouncementId(pub [u8; 32]);

impl AnnouncementId {
    /// The id of encoded announcement bytes.
    pub fn of(bytes: &[u8]) -> AnnouncementId {
        AnnouncementId(Sha256::digest(bytes).into())
    }
}

impl core::fmt::Debug for AnnouncementId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AnnouncementId({})", crate::keys::short_hex(&self.0))
    }
}

/// How real token counts map to the published size: `(tokens per chunk,
/// chunk count)`. Up to 2048 tokens: the smallest single-chunk bucket that
/// holds them; beyond: the next power of two of full chunks. `None` when the
/// count needs more than [`MAX_CHUNKS`] chunks.
pub fn padded_layout(real_tokens: usize) -> Option<(usize, u32)> {
    if let Some(&b) = SINGLE_CHUNK_BUCKETS.iter().find(|&&b| b >= real_tokens) {
        return Some((b, 1));
    }
    let chunks = real_tokens
        .div_ceil(TOKENS_PER_FULL_CHUNK)
        .checked_next_power_of_two()?;
    let chunks = u32::try_from(chunks).ok()?;
    (chunks <= MAX_CHUNKS).then_some((TOKENS_PER_FULL_CHUNK, chunks))
}

/// The most real tokens a report under `cap` can carry.
pub fn max_real_tokens(cap: u32) -> usize {
    let cap = cap as usize;
    if cap < TOKENS_PER_FULL_CHUNK {
        return SINGLE_CHUNK_BUCKETS
            .iter()
            .copied()
            .filter(|&b| b <= cap)
            .max()
            .unwrap_or(0);
    }
    let chunks = (cap / TOKENS_PER_FULL_CHUNK).min(MAX_CHUNKS as usize);
    // Largest power of two not above `chunks`.
    let pow = 1usize << (usize::BITS - 1 - chunks.leading_zeros());
    pow * TOKENS_PER_FULL_CHUNK
}

/// Why a report could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The certificate was issued for another report key.
    #[error("certificate is for another report key")]
    WrongReportKey,
    /// The certificate is not usable at the given time.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// More tokens than the certificate's cap allows after padding.
    #[error("{tokens} tokens do not fit the certificate's cap; at most {max} can be announced")]
    TooManyTokens {
        /// Real tokens offered.
        tokens: usize,
        /// Real tokens that fit.
        max: usize,
    },
}

/// One encoded chunk ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedAnnouncement {
    /// Its identity.
    pub id: AnnouncementId,
    /// The bytes to gossip.
    pub bytes: Vec<u8>,
}

/// A summary of what a report will publish (for the user to confirm).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportPlan {
    /// Distinct real tokens.
    pub real_tokens: usize,
    /// Tokens per chunk after padding.
    pub tokens_per_chunk: usize,
    /// Number of chunks.
    pub chunks: u32,
}

/// Computes the padded layout of a report without building it.
pub fn plan_report(
    cert: &Certificate,
    tokens: &[EncounterToken],
) -> Result<ReportPlan, BuildError> {
    let real: HashSet<u64> = tokens.iter().map(token_fingerprint).collect();
    let max = max_real_tokens(cert.params().max_tokens);
    let too_many = BuildError::TooManyTokens {
        tokens: real.len(),
        max,
    };
    let (per_chunk, chunks) = padded_layout(real.len()).ok_or(too_many.clone())?;
    if per_chunk * chunks as usize > cert.params().max_tokens as usize {
        return Err(too_many);
    }
    Ok(ReportPlan {
        real_tokens: real.len(),
        tokens_per_chunk: per_chunk,
        chunks,
    })
}

/// Builds the signed, padded chunks of one report at `created_at`.
/// `tx_power` is the reporter's calibrated TX power in dBm, carried in every
/// chunk: receivers turn the levels at which they heard the reporter into
/// attenuations with it (`docs/protocol.md` §5, §10.3).
pub fn build_announcements<R: CryptoRng + ?Sized>(
    report_key: &ReportSecretKey,
    cert: &Certificate,
    tokens: &[EncounterToken],
    tx_power: i8,
    created_at: UnixTime,
    rng: &mut R,
) -> Result<Vec<EncodedAnnouncement>, BuildError> {
    if cert.params().report_key != report_key.public() {
        return Err(BuildError::WrongReportKey);
    }
    cert.check_validity_at(created_at)?;
    build_unchecked(report_key, cert, tokens, tx_power, created_at, rng)
}

/// Builds chunks without checking the certificate's validity at
/// `created_at`: only for tests that need announcements receivers must
/// reject (feature `test-utils`).
#[cfg(feature = "test-utils")]
pub fn build_announcements_unchecked<R: CryptoRng + ?Sized>(
    report_key: &ReportSecretKey,
    cert: &Certificate,
    tokens: &[EncounterToken],
    tx_power: i8,
    created_at: UnixTime,
    rng: &mut R,
) -> Result<Vec<EncodedAnnouncement>, BuildError> {
    build_unchecked(report_key, cert, tokens, tx_power, created_at, rng)
}

fn build_unchecked<R: CryptoRng + ?Sized>(
    report_key: &ReportSecretKey,
    cert: &Certificate,
    tokens: &[EncounterToken],
    tx_power: i8,
    created_at: UnixTime,
    rng: &mut R,
) -> Result<Vec<EncodedAnnouncement>, BuildError> {
    let plan = plan_report(cert, tokens)?;
    let mut set: HashSet<u64> = tokens.iter().map(token_fingerprint).collect();
    let total = plan.tokens_per_chunk * plan.chunks as usize;
    while set.len() < total {
        let mut d = [0u8; DUMMY_DRAW_LEN];
        rng.fill_bytes(&mut d);
        set.insert(u64::from_be_bytes(d) >> (64 - FINGERPRINT_BITS));
    }
    let mut all: Vec<u64> = set.into_iter().collect();
    all.sort_unstable();
    let mut out = Vec::with_capacity(plan.chunks as usize);
    for (i, chunk) in all.chunks(plan.tokens_per_chunk).enumerate() {
        let body = AnnouncementBodyMsg {
            version: ANNOUNCEMENT_VERSION,
            network_id: cert.params().network_id.clone(),
            certificate: cert.as_bytes().to_vec(),
            chunk_index: i as u32,
            chunk_count: plan.chunks,
            created_at: created_at.0,
            fingerprints: gcs::encode(chunk),
            fingerprint_count: chunk.len() as u32,
            tx_power: i32::from(tx_power),
        }
        .encode_to_vec();
        let signature = report_key.sign(&signing_input(&body));
        let bytes = AnnouncementMsg {
            body,
            signature: signature.to_vec(),
        }
        .encode_to_vec();
        debug_assert!(bytes.len() <= MAX_ANNOUNCEMENT_BYTES);
        out.push(EncodedAnnouncement {
            id: AnnouncementId::of(&bytes),
            bytes,
        });
    }
    Ok(out)
}

/// What the report key signs: `ANNOUNCEMENT_SIGNING_DOMAIN || SHA-256(body)`.
/// Signing the digest lets Ed25519's internal SHA-512 run over 57 bytes
/// instead of up to 64 KiB; SHA-256 has hardware support on current CPUs.
fn signing_input(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ANNOUNCEMENT_SIGNING_DOMAIN.len() + 32);
    v.extend_from_slice(ANNOUNCEMENT_SIGNING_DOMAIN);
    v.extend_from_slice(&Sha256::digest(body));
    v
}

/// The local facts a receiver verifies an announcement against.
#[derive(Clone, Copy, Debug)]
pub struct VerifyContext<'a> {
    /// This deployment's network id.
    pub network_id: &'a str,
    /// Issuer keys this deployment trusts.
    pub trusted_issuers: &'a [IssuerPublicKey],
    /// The receiver's current time.
    pub now: UnixTime,
}

/// What a gossip validator should do with a refused announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Invalid: drop and penalize the sender.
    Reject,
    /// Valid once, but no longer useful (expired): drop quietly.
    Ignore,
}

/// Why an announcement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    /// The bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The attached certificate is unacceptable.
    #[error("attached certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The report key's signature does not verify.
    #[error("announcement signature is invalid")]
    BadSignature,
    /// The announcement names another network than its certificate.
    #[error("announcement network does not match its certificate")]
    NetworkMismatch,
    /// Chunk fields or token list are inconsistent.
    #[error("announcement is invalid: {0}")]
    Invalid(&'static str),
    /// Dated in the future beyond the tolerated skew.
    #[error("announcement is dated in the future ({0})")]
    FromTheFuture(UnixTime),
    /// The coded fingerprints are not the one valid coding of `n` distinct
    /// ascending fingerprints (§10.3).
    #[error("announcement fingerprints are invalid: {0}")]
    Fingerprints(gcs::GcsError),
    /// Every contact it covers is older than the retention window.
    #[error("announcement expired at {0}")]
    Expired(UnixTime),
}

impl AnnouncementError {
    /// Reject (invalid) or Ignore (expired but once valid).
    pub fn disposition(&self) -> Disposition {
        match self {
            AnnouncementError::Expired(_) => Disposition::Ignore,
            _ => Disposition::Reject,
        }
    }

    /// The stable error code of this refusal (docs/protocol.md §16): the
    /// first failing step of §10.5. A refusal of the bytes or of the attached
    /// certificate has the code of its [`DecodeError`] or [`CertificateError`].
    pub fn code(&self) -> &'static str {
        match self {
            AnnouncementError::Decode(e) => e.code(),
            AnnouncementError::Certificate(e) => e.code(),
            AnnouncementError::BadSignature => "bad_announcement_signature",
            AnnouncementError::NetworkMismatch => "network_mismatch",
            AnnouncementError::Invalid(why) => match *why {
                "certificate too large" => "certificate_too_large",
                "chunk count" => "bad_chunk_count",
                "chunk index out of range" => "chunk_index_out_of_range",
                "entry count is not a padding bucket" => "not_a_padding_bucket",
                "more entries than the certificate allows" => "over_token_cap",
                "TX power out of range" => "tx_power_out_of_range",
                // Every reason `verify` gives is listed above (a unit test
                // reads this file for them); `verify_batch` fills every
                // result, so its "not verified" placeholder never escapes.
                _ => "invalid_announcement",
            },
            AnnouncementError::FromTheFuture(_) => "from_the_future",
            AnnouncementError::Fingerprints(e) => e.code(),
            AnnouncementError::Expired(_) => "announcement_expired",
        }
    }
}

impl BuildError {
    /// The stable error code of this refusal (docs/protocol.md §16). A
    /// certificate not usable at `created_at` has the code of its
    /// [`CertificateError`].
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::WrongReportKey => "wrong_report_key",
            BuildError::Certificate(e) => e.code(),
            BuildError::TooManyTokens { .. } => "too_many_tokens",
        }
    }
}

/// An announcement chunk whose whole chain verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAnnouncement {
    id: AnnouncementId,
    certificate: Certificate,
    chunk_index: u32,
    chunk_count: u32,
    created_at: UnixTime,
    fingerprints: Vec<u64>,
    tx_power: i8,
}

/// When an announcement whose window ends on `last_day` expires: once the
/// last covered day is older than the retention window.
pub fn expiry_of(last_day: Day) -> UnixTime {
    last_day.plus(RETENTION_DAYS + 1).start()
}

impl VerifiedAnnouncement {
    /// Verifies encoded announcement bytes: canonical encoding, certificate
    /// chain (trusted issuer, network, signature), the report key's signature,
    /// creation time within the certificate's validity and not in the future,
    /// chunk layout within the certificate's cap, sorted distinct tokens, and
    /// expiry.
    pub fn verify(
        bytes: &[u8],
        ctx: &VerifyContext<'_>,
    ) -> Result<VerifiedAnnouncement, AnnouncementError> {
        Unchecked::decode(bytes)?.finish(bytes, ctx, Unchecked::verify_one)
    }

    /// Verifies many announcements together, with the same checks and the
    /// same results as [`VerifiedAnnouncement::verify`] on each (one result
    /// per input, in order), but with the Ed25519 signatures (issuer's and
    /// report key's) checked in one batch, which costs much less per
    /// signature than checking them one by one. For a catch-up or any
    /// backlog of announcements.
    ///
    /// When the batch fails it is split in halves until the bad signatures
    /// are isolated and checked one by one, so a forged announcement costs
    /// the others a few extra batches, never their acceptance.
    ///
    /// The batch applies the same strict rules as single verification
    /// (canonical `s` and `R`, no small-order key or `R`). One difference is
    /// inherent to batch verification: a signature crafted by the holder of
    /// the signing key with a small-order component mixed into `R` or the key
    /// may pass a batch and fail a single check. Only the issuer or the
    /// certified reporter can craft one, and they could equally sign the same
    /// bytes validly, so no announcement is accepted that its certified
    /// signer could not have made acceptable.
    pub fn verify_batch(
        items: &[&[u8]],
        ctx: &VerifyContext<'_>,
    ) -> Vec<Result<VerifiedAnnouncement, AnnouncementError>> {
        let mut out: Vec<Option<Result<VerifiedAnnouncement, AnnouncementError>>> =
            Vec::with_capacity(items.len());
        let mut pending: Vec<(usize, Unchecked)> = Vec::new();
        for (i, bytes) in items.iter().enumerate() {
            match Unchecked::decode(bytes) {
                // Those that `verify` refuses before the report key's
                // signature (expired, another network, untrusted issuer)
                // stay out of the batch: they would only make it fail.
                Ok(u) if u.may_pass(ctx) => {
                    out.push(None);
                    pending.push((i, u));
                }
                Ok(u) => out.push(Some(u.finish(bytes, ctx, Unchecked::verify_one))),
                Err(e) => out.push(Some(Err(e))),
            }
        }
        // One issuer check per distinct certificate: the chunks of one
        // report carry the same certificate, checked once whatever their
        // count (in a batch, or one by one after a batch failed).
        let mut issuer_checked: HashMap<([u8; 32], [u8; SIGNATURE_LEN]), bool> = HashMap::new();
        let mut stack: Vec<&[(usize, Unchecked)]> = vec![&pending];
        while let Some(group) = stack.pop() {
            if group.is_empty() {
                continue;
            }
            if group.len() > 2 && batch_signatures_valid(group.iter().map(|(_, u)| u)) {
                for (i, u) in group {
                    out[*i] = Some(u.finish(items[*i], ctx, |_, _| true));
                }
            } else if group.len() > 2 {
                let (a, b) = group.split_at(group.len() / 2);
                stack.push(a);
                stack.push(b);
            } else {
                for (i, u) in group {
                    let ok = *issuer_checked
                        .entry(u.certificate_key())
                        .or_insert_with(|| u.verify_one(Signer::Issuer));
                    out[*i] = Some(u.finish(items[*i], ctx, |u, which| match which {
                        Signer::Issuer => ok,
                        Signer::Report => u.verify_one(Signer::Report),
                    }));
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or(Err(AnnouncementError::Invalid("not verified"))))
            .collect()
    }

    /// Identity (SHA-256 of the bytes).
    pub fn id(&self) -> AnnouncementId {
        self.id
    }

    /// The verified certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The report key; all chunks of one report share it.
    pub fn report_key(&self) -> ReportPublicKey {
        self.certificate.params().report_key
    }

    /// This chunk's index.
    pub fn chunk_index(&self) -> u32 {
        self.chunk_index
    }

    /// Number of chunks in the report.
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// When the reporter built it.
    pub fn created_at(&self) -> UnixTime {
        self.created_at
    }

    /// The sorted, distinct fingerprints of the chunk's entries (real and
    /// dummy alike), what matching compares with the fingerprints of the
    /// receiver's own tokens (see [`crate::token_fingerprint`]).
    pub fn fingerprints(&self) -> Vec<u64> {
        self.fingerprints.clone()
    }

    /// The same fingerprints, borrowed.
    pub fn fingerprint_slice(&self) -> &[u64] {
        &self.fingerprints
    }

    /// The reporter's calibrated TX power in dBm: what turns a receiver's
    /// received levels of the reporter into attenuations when a chunk
    /// matches (`docs/protocol.md` §5, §11.3). Every chunk of one report
    /// carries the same value.
    pub fn tx_power(&self) -> i8 {
        self.tx_power
    }

    /// Certified contact window `(first day, last day)`.
    pub fn window(&self) -> (Day, Day) {
        let p = self.certificate.params();
        (p.window_first_day, p.window_last_day)
    }

    /// When receivers drop it (and stop serving it for catch-up).
    pub fn expires_at(&self) -> UnixTime {
        expiry_of(self.certificate.params().window_last_day)
    }
}

/// Which signature of an announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signer {
    /// The issuer's, over the certificate.
    Issuer,
    /// The report key's, over the chunk body.
    Report,
}

/// A decoded announcement whose checks have not run yet.
struct Unchecked {
    certificate: Certificate,
    /// What the issuer signed.
    certificate_signed: Vec<u8>,
    /// The signed body (encoded).
    body_bytes: Vec<u8>,
    /// What the report key signed, computed when first needed (expired
    /// announcements never need it).
    body_signed: std::cell::OnceCell<Vec<u8>>,
    signature: [u8; SIGNATURE_LEN],
    body: AnnouncementBodyMsg,
}

impl Unchecked {
    /// Decoding and the checks that `verify` runs before the certificate's
    /// signature (in the same order).
    fn decode(bytes: &[u8]) -> Result<Unchecked, AnnouncementError> {
        const WHAT: &str = "announcement";
        let m: AnnouncementMsg = decode_canonical(bytes, WHAT, MAX_ANNOUNCEMENT_BYTES)?;
        let signature: [u8; SIGNATURE_LEN] = fixed(&m.signature, WHAT, "signature")?;
        let b: AnnouncementBodyMsg = decode_canonical(&m.body, WHAT, MAX_ANNOUNCEMENT_BYTES)?;
        check_version(b.version, ANNOUNCEMENT_VERSION, WHAT)?;
        if b.certificate.len() > MAX_CERTIFICATE_BYTES {
            return Err(AnnouncementError::Invalid("certificate too large"));
        }
        let (certificate, certificate_signed) = Certificate::decode_unverified(&b.certificate)?;
        Ok(Unchecked {
            certificate,
            certificate_signed,
            body_bytes: m.body,
            body_signed: std::cell::OnceCell::new(),
            signature,
            body: b,
        })
    }

    fn body_signed(&self) -> &[u8] {
        self.body_signed
            .get_or_init(|| signing_input(&self.body_bytes))
    }

    fn expires(&self) -> UnixTime {
        expiry_of(self.certificate.params().window_last_day)
    }

    /// Whether the checks between the two signatures in `verify` pass.
    fn may_pass(&self, ctx: &VerifyContext<'_>) -> bool {
        ctx.now < self.expires()
            && self.body.network_id == self.certificate.params().network_id
            && self
                .certificate
                .check_trust(ctx.network_id, ctx.trusted_issuers)
                .is_ok()
    }

    /// What identifies a certificate for de-duplication: the SHA-256 of
    /// the bytes its issuer signed, and its signature (identical
    /// certificates share both; a different one cannot share the hash).
    fn certificate_key(&self) -> ([u8; 32], [u8; SIGNATURE_LEN]) {
        let digest: [u8; 32] = Sha256::digest(&self.certificate_signed).into();
        (digest, *self.certificate.signature())
    }

    /// Checks one signature on its own (strict Ed25519).
    fn verify_one(&self, which: Signer) -> bool {
        match which {
            Signer::Issuer => self
                .certificate
                .issuer()
                .verify(&self.certificate_signed, self.certificate.signature()),
            Signer::Report => self
                .certificate
                .params()
                .report_key
                .verify(self.body_signed(), &self.signature),
        }
    }

    /// The rest of the checks, in `verify`'s order; `signature_ok` is asked
    /// about each signature when `verify` would check it.
    fn finish(
        &self,
        bytes: &[u8],
        ctx: &VerifyContext<'_>,
        signature_ok: impl Fn(&Unchecked, Signer) -> bool,
    ) -> Result<VerifiedAnnouncement, AnnouncementError> {
        if !signature_ok(self, Signer::Issuer) {
            return Err(CertificateError::BadSignature.into());
        }
        let certificate = &self.certificate;
        let b = &self.body;
        // Expired reports are dropped before the report signature is checked:
        // they are common (re-circulation, catch-up) and cost nothing to spot.
        let expires = self.expires();
        if ctx.now >= expires {
            return Err(AnnouncementError::Expired(expires));
        }
        if b.network_id != certificate.params().network_id {
            return Err(AnnouncementError::NetworkMismatch);
        }
        certificate.check_trust(ctx.network_id, ctx.trusted_issuers)?;
        if !signature_ok(self, Signer::Report) {
            return Err(AnnouncementError::BadSignature);
        }
        let created_at = UnixTime(b.created_at);
        certificate.check_validity_at(created_at)?;
        if created_at > ctx.now.plus(MAX_CLOCK_SKEW_SECONDS) {
            return Err(AnnouncementError::FromTheFuture(created_at));
        }
        if b.chunk_count == 0 || b.chunk_count > MAX_CHUNKS || !b.chunk_count.is_power_of_two() {
            return Err(AnnouncementError::Invalid("chunk count"));
        }
        if b.chunk_index >= b.chunk_count {
            return Err(AnnouncementError::Invalid("chunk index out of range"));
        }
        let n = b.fingerprint_count as usize;
        let layout_ok = if b.chunk_count == 1 {
            SINGLE_CHUNK_BUCKETS.contains(&n)
        } else {
            n == TOKENS_PER_FULL_CHUNK
        };
        if !layout_ok {
            return Err(AnnouncementError::Invalid(
                "entry count is not a padding bucket",
            ));
        }
        if n as u64 * u64::from(b.chunk_count) > u64::from(certificate.params().max_tokens) {
            return Err(AnnouncementError::Invalid(
                "more entries than the certificate allows",
            ));
        }
        let fingerprints =
            gcs::decode(&b.fingerprints, n).map_err(AnnouncementError::Fingerprints)?;
        let Ok(tx_power) = i8::try_from(b.tx_power) else {
            return Err(AnnouncementError::Invalid("TX power out of range"));
        };
        Ok(VerifiedAnnouncement {
            id: AnnouncementId::of(bytes),
            certificate: certificate.clone(),
            chunk_index: b.chunk_index,
            chunk_count: b.chunk_count,
            created_at,
            fingerprints,
            tx_power,
        })
    }
}

/// The canonical encodings of the eight points of small order (the torsion
/// subgroup of Curve25519 in Edwards form).
const SMALL_ORDER_POINTS: [[u8; 32]; 8] = {
    const fn hex(s: &[u8; 64]) -> [u8; 32] {
        const fn nibble(c: u8) -> u8 {
            if c >= b'a' { c - b'a' + 10 } else { c - b'0' }
        }
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
            i += 1;
        }
        out
    }
    [
        hex(b"0100000000000000000000000000000000000000000000000000000000000000"),
        hex(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        hex(b"0000000000000000000000000000000000000000000000000000000000000000"),
        hex(b"0000000000000000000000000000000000000000000000000000000000000080"),
        hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
        hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    ]
};

/// Batch-verifies both signatures of every announcement in `group`. `false`
/// when any signature is bad or is refused by a rule of strict single
/// verification that the batch equation does not apply: the caller then
/// narrows the group down to single verification, so the result of an
/// announcement never depends on the batch beyond its soundness.
fn batch_signatures_valid<'a>(group: impl Iterator<Item = &'a Unchecked>) -> bool {
    signatures_valid_in_batch(batch_triples(group))
}

/// The `(key, message, signature)` triples of `group`: the issuer's
/// signature on the certificate and the report key's on the body of each
/// announcement, identical certificates (the chunks of one report) once.
fn batch_triples<'a>(
    group: impl Iterator<Item = &'a Unchecked>,
) -> Vec<([u8; 32], &'a [u8], &'a [u8; SIGNATURE_LEN])> {
    let mut triples = Vec::new();
    let mut certificates: HashSet<([u8; 32], [u8; SIGNATURE_LEN])> = HashSet::new();
    for u in group {
        if certificates.insert(u.certificate_key()) {
            triples.push((
                u.certificate.issuer().0,
                u.certificate_signed.as_slice(),
                u.certificate.signature(),
            ));
        }
        triples.push((
            u.certificate.params().report_key.0,
            u.body_signed(),
            &u.signature,
        ));
    }
    triples
}

/// Domain separation of the batch coefficients' seed.
const BATCH_COEFFICIENT_DOMAIN: &[u8] = b"meshtrace batch verification";

/// Checks Ed25519 signatures `(key, message, signature)` in one batch:
/// `true` only when (but for a negligible chance, and the exception that
/// `VerifiedAnnouncement::verify_batch` documents) every one would pass
/// strict single verification.
///
/// The equation is ed25519-dalek's `verify_batch` (cofactorless, `s` must be
/// canonical), with one change: the key terms of signatures that share a key
/// are merged into one term per distinct key. For every signature `i`, with
/// `k_i = SHA-512(R_i ‖ A_i ‖ M_i) mod ℓ` and a random 128-bit `z_i`
/// ([`batch_coefficients`]):
///
/// `(−Σ z_i s_i) B + Σ z_i R_i + Σ_A (Σ_{i: A_i = A} z_i k_i) A = identity`
///
/// which is the sum of the single equations `s_i B = R_i + k_i A_i`, each
/// multiplied by `z_i`. Nearly every announcement carries a certificate of
/// the same issuer, so a batch of `n` single-chunk announcements is one
/// multiscalar multiplication of `3n + 2` points instead of `4n + 1`.
fn signatures_valid_in_batch<'a>(
    triples: impl IntoIterator<Item = ([u8; 32], &'a [u8], &'a [u8; SIGNATURE_LEN])>,
) -> bool {
    let Some((terms, keys)) = batch_terms(triples) else {
        return false;
    };
    let z = batch_coefficients(&terms);
    batch_equation_holds(&terms, keys, &z)
}

/// One signature of a batch, decoded.
struct BatchTerm {
    /// Index of its key among the batch's distinct keys.
    key: usize,
    r: EdwardsPoint,
    s: Scalar,
    /// `SHA-512(R ‖ A ‖ M)`, not yet reduced.
    hram: [u8; 64],
}

/// Decodes every signature of a batch, and the distinct keys once each.
/// `None` when a signature is refused by a rule of strict single
/// verification that the batch equation does not apply (small-order key or
/// `R`, non-canonical key, `R` or `s`): checks on the encodings that only
/// decide which path the caller takes.
fn batch_terms<'a>(
    triples: impl IntoIterator<Item = ([u8; 32], &'a [u8], &'a [u8; SIGNATURE_LEN])>,
) -> Option<(Vec<BatchTerm>, Vec<EdwardsPoint>)> {
    let triples = triples.into_iter();
    let mut terms = Vec::with_capacity(triples.size_hint().0);
    // Each distinct key decoded once: its index in `keys`.
    let mut key_index: HashMap<[u8; 32], usize> = HashMap::new();
    let mut keys: Vec<EdwardsPoint> = Vec::new();
    for (key, msg, sig) in triples {
        let mut r = [0u8; 32];
        r.copy_from_slice(&sig[..32]);
        if !canonical_y(&r) || SMALL_ORDER_POINTS.contains(&r) {
            return None;
        }
        let key_at = match key_index.get(&key) {
            Some(&at) => at,
            None => {
                if !canonical_y(&key) {
                    return None;
                }
                let k = ed25519_dalek::VerifyingKey::from_bytes(&key).ok()?;
                if k.is_weak() {
                    return None;
                }
                keys.push(k.to_edwards());
                key_index.insert(key, keys.len() - 1);
                keys.len() - 1
            }
        };
        let mut s = [0u8; 32];
        s.copy_from_slice(&sig[32..]);
        let s: Scalar = Scalar::from_canonical_bytes(s).into_option()?;
        let r_point = CompressedEdwardsY(r).decompress()?;
        let hram: [u8; 64] = Sha512::new()
            .chain_update(r)
            .chain_update(key)
            .chain_update(msg)
            .finalize()
            .into();
        terms.push(BatchTerm {
            key: key_at,
            r: r_point,
            s,
            hram,
        });
    }
    Some((terms, keys))
}

/// The batch's random coefficients `z_i`, 128 bits each (little-endian):
/// `z_4j … z_4j+3` are the four quarters of `SHA-512(seed ‖ j as u64 LE)`,
/// where `seed` is `SHA-512(domain ‖ every SHA-512(R ‖ A ‖ M) ‖ every s)`.
///
/// Why derived coefficients are sound (Fiat–Shamir, as ed25519-dalek derives
/// its own): they depend on every input, the hashes binding each
/// signature's `R`, key and message, and each `s` itself. Whoever submits
/// signatures has fixed them all before the coefficients exist, and any
/// change to any of them gives unrelated coefficients. When a single
/// equation fails by a point `D_j` of large order, the sum is the identity
/// for at most one value of `z_j` below `2^128 < ℓ` once the others are set,
/// so each attempt (one evaluation of the hash) succeeds with a chance of
/// about `2^-128`. Without `s` in the seed, anyone could move one `s` and
/// cancel it with another (a test does exactly that). The protocol crate
/// has no RNG to draw the coefficients from, and needs none. (A `D_j` of
/// small order, a torsion component only the signing key's holder can put
/// into a signature, is the exception `verify_batch` documents.)
fn batch_coefficients(terms: &[BatchTerm]) -> Vec<Scalar> {
    let mut seed = Sha512::new();
    seed.update(BATCH_COEFFICIENT_DOMAIN);
    for t in terms {
        seed.update(t.hram);
    }
    for t in terms {
        seed.update(t.s.as_bytes());
    }
    let seed = seed.finalize();
    // Four coefficients per block of output.
    let mut z = Vec::with_capacity(terms.len());
    for block in 0..terms.len().div_ceil(4) as u64 {
        let digest = Sha512::new()
            .chain_update(seed)
            .chain_update(block.to_le_bytes())
            .finalize();
        for quarter in digest.chunks_exact(16).take(terms.len() - z.len()) {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(quarter);
            z.push(Scalar::from(u128::from_le_bytes(bytes)));
        }
    }
    z
}

/// Whether `(−Σ z_i s_i) B + Σ z_i R_i + Σ_A (Σ_{i: A_i = A} z_i k_i) A` is
/// the identity (no cofactor multiplication, as in ed25519-dalek). Public
/// data only: variable time.
fn batch_equation_holds(terms: &[BatchTerm], keys: Vec<EdwardsPoint>, z: &[Scalar]) -> bool {
    debug_assert_eq!(terms.len(), z.len());
    let mut scalars: Vec<Scalar> = Vec::with_capacity(1 + terms.len() + keys.len());
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(scalars.capacity());
    let mut basepoint = Scalar::ZERO;
    let mut key_coefficients = vec![Scalar::ZERO; keys.len()];
    for (t, z) in terms.iter().zip(z) {
        basepoint += z * t.s;
        key_coefficients[t.key] += z * Scalar::from_bytes_mod_order_wide(&t.hram);
        scalars.push(*z);
        points.push(t.r);
    }
    scalars.push(-basepoint);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.extend(key_coefficients);
    points.extend(keys);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

#[cfg(test)]
mod tests;
