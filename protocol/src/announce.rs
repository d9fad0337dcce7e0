//! Announcements: the signed, padded token lists a positive user publishes.
//!
//! The reporter's tokens are deduplicated, padded with random dummy tokens to
//! a fixed bucket ([`padded_layout`]), sorted, and split into equal chunks of
//! at most [`TOKENS_PER_FULL_CHUNK`] tokens. Each chunk is a self-contained
//! signed message under [`MAX_ANNOUNCEMENT_BYTES`] carrying the certificate,
//! so any single chunk can be verified and matched on its own. The only way to
//! obtain a [`VerifiedAnnouncement`] is [`VerifiedAnnouncement::verify`].

use std::collections::HashSet;

use prost::Message;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::cert::{Certificate, CertificateError, MAX_CERTIFICATE_BYTES, MAX_CLOCK_SKEW_SECONDS};
use crate::keys::{IssuerPublicKey, ReportPublicKey, ReportSecretKey, SIGNATURE_LEN};
use crate::time::{Day, RETENTION_DAYS, UnixTime};
use crate::token::{EncounterToken, TOKEN_LEN};
use crate::wire::{AnnouncementBodyMsg, AnnouncementMsg, DecodeError, decode_canonical, fixed};

/// Version of announcement messages.
pub const ANNOUNCEMENT_VERSION: u32 = 1;
/// Largest encoded announcement chunk: the gossip message limit (64 KiB).
pub const MAX_ANNOUNCEMENT_BYTES: usize = 64 * 1024;
/// Tokens in a full chunk (32 KiB of tokens, well under the message limit).
pub const TOKENS_PER_FULL_CHUNK: usize = 2048;
/// The allowed token counts of a single-chunk announcement. Reports with more
/// tokens use 2, 4, 8, … full chunks.
pub const SINGLE_CHUNK_BUCKETS: [usize; 4] = [64, 256, 1024, TOKENS_PER_FULL_CHUNK];
/// Most chunks one report may have.
pub const MAX_CHUNKS: u32 = 64;
/// Domain prefix of the report key's signature over a chunk body.
pub const ANNOUNCEMENT_SIGNING_DOMAIN: &[u8] = b"meshtrace/v1/announcement";

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
    let real: HashSet<EncounterToken> = tokens.iter().copied().collect();
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
pub fn build_announcements<R: CryptoRng + ?Sized>(
    report_key: &ReportSecretKey,
    cert: &Certificate,
    tokens: &[EncounterToken],
    created_at: UnixTime,
    rng: &mut R,
) -> Result<Vec<EncodedAnnouncement>, BuildError> {
    if cert.params().report_key != report_key.public() {
        return Err(BuildError::WrongReportKey);
    }
    cert.check_validity_at(created_at)?;
    build_unchecked(report_key, cert, tokens, created_at, rng)
}

/// Builds chunks without checking the certificate's validity at
/// `created_at`: only for tests that need announcements receivers must
/// reject (feature `test-utils`).
#[cfg(feature = "test-utils")]
pub fn build_announcements_unchecked<R: CryptoRng + ?Sized>(
    report_key: &ReportSecretKey,
    cert: &Certificate,
    tokens: &[EncounterToken],
    created_at: UnixTime,
    rng: &mut R,
) -> Result<Vec<EncodedAnnouncement>, BuildError> {
    build_unchecked(report_key, cert, tokens, created_at, rng)
}

fn build_unchecked<R: CryptoRng + ?Sized>(
    report_key: &ReportSecretKey,
    cert: &Certificate,
    tokens: &[EncounterToken],
    created_at: UnixTime,
    rng: &mut R,
) -> Result<Vec<EncodedAnnouncement>, BuildError> {
    let plan = plan_report(cert, tokens)?;
    let mut set: HashSet<EncounterToken> = tokens.iter().copied().collect();
    let total = plan.tokens_per_chunk * plan.chunks as usize;
    while set.len() < total {
        let mut t = [0u8; TOKEN_LEN];
        rng.fill_bytes(&mut t);
        set.insert(EncounterToken(t));
    }
    let mut all: Vec<EncounterToken> = set.into_iter().collect();
    all.sort_unstable();
    let mut out = Vec::with_capacity(plan.chunks as usize);
    for (i, chunk) in all.chunks(plan.tokens_per_chunk).enumerate() {
        let mut packed = Vec::with_capacity(chunk.len() * TOKEN_LEN);
        for t in chunk {
            packed.extend_from_slice(&t.0);
        }
        let body = AnnouncementBodyMsg {
            version: ANNOUNCEMENT_VERSION,
            network_id: cert.params().network_id.clone(),
            certificate: cert.as_bytes().to_vec(),
            chunk_index: i as u32,
            chunk_count: plan.chunks,
            created_at: created_at.0,
            tokens: packed,
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
}

/// An announcement chunk whose whole chain verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAnnouncement {
    id: AnnouncementId,
    certificate: Certificate,
    chunk_index: u32,
    chunk_count: u32,
    created_at: UnixTime,
    tokens: Vec<EncounterToken>,
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
        const WHAT: &str = "announcement";
        let m: AnnouncementMsg = decode_canonical(bytes, WHAT, MAX_ANNOUNCEMENT_BYTES)?;
        let signature: [u8; SIGNATURE_LEN] = fixed(&m.signature, WHAT, "signature")?;
        let b: AnnouncementBodyMsg = decode_canonical(&m.body, WHAT, MAX_ANNOUNCEMENT_BYTES)?;
        if b.version != ANNOUNCEMENT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: WHAT,
                version: b.version,
            }
            .into());
        }
        if b.certificate.len() > MAX_CERTIFICATE_BYTES {
            return Err(AnnouncementError::Invalid("certificate too large"));
        }
        let certificate = Certificate::from_bytes(&b.certificate)?;
        // Expired reports are dropped before the report signature is checked:
        // they are common (re-circulation, catch-up) and cost nothing to spot.
        let expires = expiry_of(certificate.params().window_last_day);
        if ctx.now >= expires {
            return Err(AnnouncementError::Expired(expires));
        }
        if b.network_id != certificate.params().network_id {
            return Err(AnnouncementError::NetworkMismatch);
        }
        certificate.check_trust(ctx.network_id, ctx.trusted_issuers)?;
        if !certificate
            .params()
            .report_key
            .verify(&signing_input(&m.body), &signature)
        {
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
        if !b.tokens.len().is_multiple_of(TOKEN_LEN) {
            return Err(AnnouncementError::Invalid(
                "token bytes are not a multiple of 16",
            ));
        }
        let n = b.tokens.len() / TOKEN_LEN;
        let layout_ok = if b.chunk_count == 1 {
            SINGLE_CHUNK_BUCKETS.contains(&n)
        } else {
            n == TOKENS_PER_FULL_CHUNK
        };
        if !layout_ok {
            return Err(AnnouncementError::Invalid(
                "token count is not a padding bucket",
            ));
        }
        if n as u64 * u64::from(b.chunk_count) > u64::from(certificate.params().max_tokens) {
            return Err(AnnouncementError::Invalid(
                "more tokens than the certificate allows",
            ));
        }
        let tokens = crate::token::tokens_from_bytes(&b.tokens).ok_or(
            AnnouncementError::Invalid("token bytes are not a multiple of 16"),
        )?;
        if tokens.windows(2).any(|w| w[0] >= w[1]) {
            return Err(AnnouncementError::Invalid(
                "tokens are not strictly ascending",
            ));
        }
        Ok(VerifiedAnnouncement {
            id: AnnouncementId::of(bytes),
            certificate,
            chunk_index: b.chunk_index,
            chunk_count: b.chunk_count,
            created_at,
            tokens,
        })
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

    /// Sorted tokens (real and dummy, indistinguishable).
    pub fn tokens(&self) -> &[EncounterToken] {
        &self.tokens
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::CertificateParams;
    use crate::keys::IssuerSecretKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const T0: u64 = 1_800_000_000;

    struct Fixture {
        rng: ChaCha20Rng,
        issuer: IssuerSecretKey,
        report: ReportSecretKey,
        cert: Certificate,
    }

    fn fixture(cap: u32) -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(40);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let report = ReportSecretKey::generate(&mut rng);
        let cert = Certificate::issue(
            &issuer,
            CertificateParams {
                network_id: "campus".into(),
                report_key: report.public(),
                valid_from: UnixTime(T0),
                valid_until: UnixTime(T0 + 2 * 86_400),
                window_first_day: UnixTime(T0).day().minus(4),
                window_last_day: UnixTime(T0).day(),
                max_tokens: cap,
            },
        )
        .unwrap();
        Fixture {
            rng,
            issuer,
            report,
            cert,
        }
    }

    fn ctx<'a>(trusted: &'a [IssuerPublicKey], now: u64) -> VerifyContext<'a> {
        VerifyContext {
            network_id: "campus",
            trusted_issuers: trusted,
            now: UnixTime(now),
        }
    }

    fn toks(n: usize, salt: u8) -> Vec<EncounterToken> {
        (0..n)
            .map(|i| {
                let d: [u8; 32] = Sha256::digest([salt, (i >> 8) as u8, i as u8]).into();
                let mut t = [0u8; 16];
                t.copy_from_slice(&d[..16]);
                EncounterToken(t)
            })
            .collect()
    }

    /// Signs an arbitrary body, bypassing the builder's checks.
    fn craft(report: &ReportSecretKey, body: AnnouncementBodyMsg) -> Vec<u8> {
        let body = body.encode_to_vec();
        let signature = report.sign(&signing_input(&body)).to_vec();
        AnnouncementMsg { body, signature }.encode_to_vec()
    }

    fn body(f: &Fixture, n: usize, chunk_count: u32, created_at: u64) -> AnnouncementBodyMsg {
        let mut t = toks(n, 9);
        t.sort();
        AnnouncementBodyMsg {
            version: ANNOUNCEMENT_VERSION,
            network_id: "campus".into(),
            certificate: f.cert.as_bytes().to_vec(),
            chunk_index: 0,
            chunk_count,
            created_at,
            tokens: t.iter().flat_map(|t| t.0).collect(),
        }
    }

    #[test]
    fn layout_table() {
        assert_eq!(padded_layout(0), Some((64, 1)));
        assert_eq!(padded_layout(64), Some((64, 1)));
        assert_eq!(padded_layout(65), Some((256, 1)));
        assert_eq!(padded_layout(2048), Some((2048, 1)));
        assert_eq!(padded_layout(2049), Some((2048, 2)));
        assert_eq!(padded_layout(4097), Some((2048, 4)));
        assert_eq!(padded_layout(64 * 2048), Some((2048, 64)));
        assert_eq!(padded_layout(64 * 2048 + 1), None);
        assert_eq!(max_real_tokens(100), 64);
        assert_eq!(max_real_tokens(4096), 4096);
        assert_eq!(max_real_tokens(6000), 4096);
        assert_eq!(max_real_tokens(10), 0);
    }

    #[test]
    fn built_chunks_verify_and_carry_every_token() {
        let mut f = fixture(8192);
        let real = toks(3000, 1);
        let out =
            build_announcements(&f.report, &f.cert, &real, UnixTime(T0 + 60), &mut f.rng).unwrap();
        assert_eq!(out.len(), 2);
        let trusted = [f.issuer.public()];
        let mut all = Vec::new();
        for (i, e) in out.iter().enumerate() {
            assert!(e.bytes.len() <= MAX_ANNOUNCEMENT_BYTES);
            let v = VerifiedAnnouncement::verify(&e.bytes, &ctx(&trusted, T0 + 120)).unwrap();
            assert_eq!(v.id(), e.id);
            assert_eq!(v.chunk_index(), i as u32);
            assert_eq!(v.tokens().len(), TOKENS_PER_FULL_CHUNK);
            all.extend_from_slice(v.tokens());
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]), "globally sorted");
        assert!(real.iter().all(|t| all.binary_search(t).is_ok()));
    }

    #[test]
    fn expired_is_ignored_future_is_rejected() {
        let mut f = fixture(4096);
        let out =
            build_announcements(&f.report, &f.cert, &toks(5, 1), UnixTime(T0), &mut f.rng).unwrap();
        let trusted = [f.issuer.public()];
        let expiry = expiry_of(f.cert.params().window_last_day);
        assert!(VerifiedAnnouncement::verify(&out[0].bytes, &ctx(&trusted, expiry.0 - 1)).is_ok());
        let e = VerifiedAnnouncement::verify(&out[0].bytes, &ctx(&trusted, expiry.0)).unwrap_err();
        assert_eq!(e, AnnouncementError::Expired(expiry));
        assert_eq!(e.disposition(), Disposition::Ignore);
        // Received by a node whose clock is far behind the reporter's.
        let e = VerifiedAnnouncement::verify(
            &out[0].bytes,
            &ctx(&trusted, T0 - MAX_CLOCK_SKEW_SECONDS - 1),
        )
        .unwrap_err();
        assert!(matches!(e, AnnouncementError::FromTheFuture(_)));
        assert_eq!(e.disposition(), Disposition::Reject);
    }

    #[test]
    fn validity_window_and_cap_cannot_be_stretched() {
        let f = fixture(2048);
        let trusted = [f.issuer.public()];
        let now = T0 + 3 * 86_400;
        // Signed after the certificate expired (back-dating is the only way in,
        // and it is bounded by the validity period).
        let late = craft(
            &f.report,
            body(&f, 64, 1, T0 + 2 * 86_400 + MAX_CLOCK_SKEW_SECONDS + 1),
        );
        assert!(matches!(
            VerifiedAnnouncement::verify(&late, &ctx(&trusted, now)),
            Err(AnnouncementError::Certificate(CertificateError::Expired(_)))
        ));
        // Two full chunks under a cap of one.
        let over = craft(&f.report, body(&f, 2048, 2, T0));
        assert_eq!(
            VerifiedAnnouncement::verify(&over, &ctx(&trusted, now)),
            Err(AnnouncementError::Invalid(
                "more tokens than the certificate allows"
            ))
        );
        // A count that is not a padding bucket leaks the real count: refused.
        let odd = craft(&f.report, body(&f, 65, 1, T0));
        assert_eq!(
            VerifiedAnnouncement::verify(&odd, &ctx(&trusted, now)),
            Err(AnnouncementError::Invalid(
                "token count is not a padding bucket"
            ))
        );
        // Chunk count not a power of two.
        let three = craft(&f.report, body(&f, 2048, 3, T0));
        assert_eq!(
            VerifiedAnnouncement::verify(&three, &ctx(&trusted, now)),
            Err(AnnouncementError::Invalid("chunk count"))
        );
        let mut b = body(&f, 64, 1, T0);
        b.chunk_index = 1;
        assert_eq!(
            VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)),
            Err(AnnouncementError::Invalid("chunk index out of range"))
        );
        let mut b = body(&f, 64, 1, T0);
        // Swap the first two tokens.
        let (x, y) = b.tokens.split_at_mut(16);
        x.swap_with_slice(&mut y[..16]);
        assert_eq!(
            VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)),
            Err(AnnouncementError::Invalid(
                "tokens are not strictly ascending"
            ))
        );
        let ok = craft(&f.report, body(&f, 64, 1, T0));
        assert!(VerifiedAnnouncement::verify(&ok, &ctx(&trusted, now)).is_ok());
    }

    #[test]
    fn wrong_signer_network_or_issuer_is_rejected() {
        let mut f = fixture(4096);
        let trusted = [f.issuer.public()];
        let other = ReportSecretKey::generate(&mut f.rng);
        let forged = craft(&other, body(&f, 64, 1, T0));
        assert_eq!(
            VerifiedAnnouncement::verify(&forged, &ctx(&trusted, T0)),
            Err(AnnouncementError::BadSignature)
        );
        let mut b = body(&f, 64, 1, T0);
        b.network_id = "elsewhere".into();
        assert_eq!(
            VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, T0)),
            Err(AnnouncementError::NetworkMismatch)
        );
        let ok = craft(&f.report, body(&f, 64, 1, T0));
        let mut c = ctx(&trusted, T0);
        c.network_id = "elsewhere";
        assert!(matches!(
            VerifiedAnnouncement::verify(&ok, &c),
            Err(AnnouncementError::Certificate(
                CertificateError::WrongNetwork { .. }
            ))
        ));
        let stranger = [IssuerSecretKey::generate(&mut f.rng).public()];
        assert!(matches!(
            VerifiedAnnouncement::verify(&ok, &ctx(&stranger, T0)),
            Err(AnnouncementError::Certificate(
                CertificateError::UntrustedIssuer(_)
            ))
        ));
    }

    #[test]
    fn builder_refuses_wrong_key_and_overflow() {
        let mut f = fixture(256);
        let other = ReportSecretKey::generate(&mut f.rng);
        assert_eq!(
            build_announcements(&other, &f.cert, &toks(3, 1), UnixTime(T0), &mut f.rng),
            Err(BuildError::WrongReportKey)
        );
        assert_eq!(
            build_announcements(&f.report, &f.cert, &toks(300, 1), UnixTime(T0), &mut f.rng),
            Err(BuildError::TooManyTokens {
                tokens: 300,
                max: 256
            })
        );
        assert!(matches!(
            build_announcements(
                &f.report,
                &f.cert,
                &toks(3, 1),
                UnixTime(T0 + 3 * 86_400),
                &mut f.rng
            ),
            Err(BuildError::Certificate(CertificateError::Expired(_)))
        ));
        // Duplicates count once.
        let mut dup = toks(200, 1);
        dup.extend(toks(200, 1));
        assert_eq!(plan_report(&f.cert, &dup).unwrap().real_tokens, 200);
    }

    #[test]
    fn wrong_version_is_a_typed_error() {
        let f = fixture(4096);
        let trusted = [f.issuer.public()];
        let mut b = body(&f, 64, 1, T0);
        b.version = 2;
        assert_eq!(
            VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, T0)),
            Err(AnnouncementError::Decode(DecodeError::UnsupportedVersion {
                what: "announcement",
                version: 2
            }))
        );
        assert!(matches!(
            VerifiedAnnouncement::verify(
                &vec![0u8; MAX_ANNOUNCEMENT_BYTES + 1],
                &ctx(&trusted, T0)
            ),
            Err(AnnouncementError::Decode(DecodeError::TooLong { .. }))
        ));
    }
}
