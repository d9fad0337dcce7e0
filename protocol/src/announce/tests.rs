//! Unit tests of announcement building, encoding and verification.

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
    let mut t: Vec<u64> = toks(n, 9).iter().map(token_fingerprint).collect();
    t.sort_unstable();
    AnnouncementBodyMsg {
        version: ANNOUNCEMENT_VERSION,
        network_id: "campus".into(),
        certificate: f.cert.as_bytes().to_vec(),
        chunk_index: 0,
        chunk_count,
        created_at,
        fingerprints: gcs::encode(&t),
        fingerprint_count: n as u32,
        tx_power: -8,
    }
}

#[test]
fn layout_table() {
    assert_eq!(padded_layout(0), Some((64, 1)));
    assert_eq!(padded_layout(64), Some((64, 1)));
    assert_eq!(padded_layout(65), Some((128, 1)));
    assert_eq!(padded_layout(129), Some((256, 1)));
    assert_eq!(padded_layout(300), Some((512, 1)));
    assert_eq!(padded_layout(2048), Some((2048, 1)));
    assert_eq!(padded_layout(2049), Some((2048, 2)));
    assert_eq!(padded_layout(4097), Some((2048, 4)));
    assert_eq!(padded_layout(64 * 2048), Some((2048, 64)));
    assert_eq!(padded_layout(64 * 2048 + 1), None);
    assert_eq!(max_real_tokens(100), 64);
    assert_eq!(max_real_tokens(200), 128);
    assert_eq!(max_real_tokens(4096), 4096);
    assert_eq!(max_real_tokens(6000), 4096);
    assert_eq!(max_real_tokens(10), 0);
}

#[test]
fn built_chunks_verify_and_carry_every_token() {
    let mut f = fixture(8192);
    let real = toks(3000, 1);
    let out =
        build_announcements(&f.report, &f.cert, &real, -8, UnixTime(T0 + 60), &mut f.rng).unwrap();
    assert_eq!(out.len(), 2);
    let trusted = [f.issuer.public()];
    let mut all = Vec::new();
    for (i, e) in out.iter().enumerate() {
        assert!(e.bytes.len() <= MAX_ANNOUNCEMENT_BYTES);
        let v = VerifiedAnnouncement::verify(&e.bytes, &ctx(&trusted, T0 + 120)).unwrap();
        assert_eq!(v.id(), e.id);
        assert_eq!(v.chunk_index(), i as u32);
        assert_eq!(v.fingerprints().len(), TOKENS_PER_FULL_CHUNK);
        all.extend_from_slice(v.fingerprint_slice());
    }
    assert!(all.windows(2).all(|w| w[0] < w[1]), "globally sorted");
    assert!(
        real.iter()
            .all(|t| all.binary_search(&token_fingerprint(t)).is_ok())
    );
    // Compact: a full chunk of 2048 entries is about 6 bytes an entry.
    assert!(
        out[0].bytes.len() < 2048 * 6 + 400,
        "{}",
        out[0].bytes.len()
    );
}

#[test]
fn expired_is_ignored_future_is_rejected() {
    let mut f = fixture(4096);
    let out = build_announcements(
        &f.report,
        &f.cert,
        &toks(5, 1),
        -8,
        UnixTime(T0),
        &mut f.rng,
    )
    .unwrap();
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
            "more entries than the certificate allows"
        ))
    );
    // A count that is not a padding bucket leaks the real count: refused.
    let odd = craft(&f.report, body(&f, 65, 1, T0));
    assert_eq!(
        VerifiedAnnouncement::verify(&odd, &ctx(&trusted, now)),
        Err(AnnouncementError::Invalid(
            "entry count is not a padding bucket"
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
    // A repeated fingerprint (a difference of zero).
    let mut fps: Vec<u64> = toks(64, 9).iter().map(token_fingerprint).collect();
    fps.sort_unstable();
    fps[1] = fps[0];
    b.fingerprints = gcs::encode(&fps);
    assert_eq!(
        VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)),
        Err(AnnouncementError::Fingerprints(gcs::GcsError::NotAscending))
    );
    // One byte of coded fingerprints missing.
    let mut b = body(&f, 64, 1, T0);
    b.fingerprints.pop();
    assert_eq!(
        VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)),
        Err(AnnouncementError::Fingerprints(gcs::GcsError::Truncated))
    );
    let ok = craft(&f.report, body(&f, 64, 1, T0));
    assert!(VerifiedAnnouncement::verify(&ok, &ctx(&trusted, now)).is_ok());
}

#[test]
fn the_reporters_tx_power_is_carried_and_range_checked_last() {
    let f = fixture(4096);
    let trusted = [f.issuer.public()];
    let now = T0 + 60;
    for tx in [-128, -8, 0, 127] {
        let mut b = body(&f, 64, 1, T0);
        b.tx_power = tx;
        let v = VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)).unwrap();
        assert_eq!(i32::from(v.tx_power()), tx);
    }
    for tx in [128, -129, i32::MAX, i32::MIN] {
        let mut b = body(&f, 64, 1, T0);
        b.tx_power = tx;
        let e =
            VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)).unwrap_err();
        assert_eq!(
            e,
            AnnouncementError::Invalid("TX power out of range"),
            "{tx}"
        );
        assert_eq!(e.code(), "tx_power_out_of_range");
        assert_eq!(e.disposition(), Disposition::Reject);
    }
    // Step 18 comes after step 17: bad fingerprints decide first.
    let mut b = body(&f, 64, 1, T0);
    b.tx_power = 200;
    b.fingerprints.pop();
    assert_eq!(
        VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, now)),
        Err(AnnouncementError::Fingerprints(gcs::GcsError::Truncated))
    );
    // 0 dBm is the default: the field is absent from the encoding.
    let mut b = body(&f, 64, 1, T0);
    b.tx_power = 0;
    let zero = b.encode_to_vec();
    b.tx_power = -8;
    let minus_8 = b.encode_to_vec();
    assert_eq!(minus_8.len(), zero.len() + 2);
    assert_eq!(
        &minus_8[zero.len()..],
        &[0x48, 0x0f],
        "sint32 -8 is zigzag 15"
    );
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
        build_announcements(&other, &f.cert, &toks(3, 1), -8, UnixTime(T0), &mut f.rng),
        Err(BuildError::WrongReportKey)
    );
    assert_eq!(
        build_announcements(
            &f.report,
            &f.cert,
            &toks(300, 1),
            -8,
            UnixTime(T0),
            &mut f.rng
        ),
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
            -8,
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
    b.version = 3;
    assert_eq!(
        VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, T0)),
        Err(AnnouncementError::Decode(DecodeError::UnsupportedVersion {
            what: "announcement",
            version: 3
        }))
    );
    // A version 1 announcement is refused with its own plain reason.
    let mut b = body(&f, 64, 1, T0);
    b.version = 1;
    let e = VerifiedAnnouncement::verify(&craft(&f.report, b), &ctx(&trusted, T0)).unwrap_err();
    assert_eq!(
        e,
        AnnouncementError::Decode(DecodeError::Version1 {
            what: "announcement"
        })
    );
    assert_eq!(e.disposition(), Disposition::Reject);
    assert!(e.to_string().contains("protocol version 1"), "{e}");
    assert!(matches!(
        VerifiedAnnouncement::verify(&vec![0u8; MAX_ANNOUNCEMENT_BYTES + 1], &ctx(&trusted, T0)),
        Err(AnnouncementError::Decode(DecodeError::TooLong { .. }))
    ));
}

/// A mix of good and bad announcements, each bad in another way.
fn mixed_batch(f: &mut Fixture) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    for i in 0..9u64 {
        items.push(craft(&f.report, body(f, 64, 1, T0 + i)));
    }
    // The report key's signature broken.
    let mut bad_report_sig = craft(&f.report, body(f, 256, 1, T0));
    let last = bad_report_sig.len() - 1;
    bad_report_sig[last] ^= 1;
    items.insert(3, bad_report_sig);
    // The issuer's signature broken (the chunk itself validly signed).
    let mut b = body(f, 64, 1, T0 + 20);
    let last = b.certificate.len() - 1;
    b.certificate[last] ^= 1;
    items.insert(6, craft(&f.report, b));
    // Not a padding bucket, bytes that do not decode, another network.
    items.push(craft(&f.report, body(f, 63, 1, T0)));
    items.push(vec![0xff; 40]);
    let mut b = body(f, 64, 1, T0);
    b.network_id = "elsewhere".into();
    items.push(craft(&f.report, b));
    // A chunk signed by a key its certificate does not name.
    let stranger = ReportSecretKey::generate(&mut f.rng);
    items.insert(1, craft(&stranger, body(f, 64, 1, T0 + 30)));
    // A TX power outside an int8.
    let mut b = body(f, 64, 1, T0 + 40);
    b.tx_power = 300;
    items.push(craft(&f.report, b));
    items
}

#[test]
fn batch_verification_agrees_with_single_verification() {
    let mut f = fixture(4096);
    let trusted = [f.issuer.public()];
    let items = mixed_batch(&mut f);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let stranger = [IssuerSecretKey::generate(&mut f.rng).public()];
    for (issuers, now) in [
        (&trusted, T0),
        (&trusted, T0 + 20 * 86_400),
        (&stranger, T0),
    ] {
        let c = ctx(issuers, now);
        let single: Vec<_> = refs
            .iter()
            .map(|b| VerifiedAnnouncement::verify(b, &c))
            .collect();
        assert_eq!(VerifiedAnnouncement::verify_batch(&refs, &c), single);
        // And on every prefix (batches of every size, splits anywhere).
        for n in 0..refs.len() {
            assert_eq!(
                VerifiedAnnouncement::verify_batch(&refs[..n], &c),
                single[..n]
            );
        }
    }
    let c = ctx(&trusted, T0);
    let accepted = VerifiedAnnouncement::verify_batch(&refs, &c)
        .iter()
        .filter(|r| r.is_ok())
        .count();
    assert_eq!(accepted, 9);
    assert!(matches!(
        VerifiedAnnouncement::verify_batch(&refs, &c)[4],
        Err(AnnouncementError::BadSignature)
    ));
    assert!(matches!(
        VerifiedAnnouncement::verify_batch(&refs, &c)[7],
        Err(AnnouncementError::Certificate(
            CertificateError::BadSignature
        ))
    ));
}

#[test]
fn batch_of_valid_announcements_is_accepted_whole() {
    let f = fixture(4096);
    let trusted = [f.issuer.public()];
    let items: Vec<Vec<u8>> = (0..40u64)
        .map(|i| craft(&f.report, body(&f, 64, 1, T0 + i)))
        .collect();
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let out = VerifiedAnnouncement::verify_batch(&refs, &ctx(&trusted, T0 + 60));
    assert_eq!(out.len(), 40);
    for (r, bytes) in out.iter().zip(&items) {
        assert_eq!(r.as_ref().unwrap().id(), AnnouncementId::of(bytes));
    }
    assert!(VerifiedAnnouncement::verify_batch(&[], &ctx(&trusted, T0)).is_empty());
}

#[test]
fn small_order_point_table_is_the_whole_torsion_subgroup() {
    let mut distinct = SMALL_ORDER_POINTS.to_vec();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8);
    for p in SMALL_ORDER_POINTS {
        assert!(canonical_y(&p));
        let k = ed25519_dalek::VerifyingKey::from_bytes(&p).unwrap();
        assert!(k.is_weak(), "{p:02x?}");
        // Canonical: decoding and encoding again gives the same bytes.
        assert_eq!(k.to_edwards().compress().to_bytes(), p);
    }
    let mut p_bytes = [0xffu8; 32];
    p_bytes[0] = 0xed;
    p_bytes[31] = 0x7f;
    assert!(!canonical_y(&p_bytes));
    p_bytes[0] = 0xec;
    assert!(canonical_y(&p_bytes));
    p_bytes[0] = 0xee;
    p_bytes[31] = 0xff;
    assert!(!canonical_y(&p_bytes));
}

#[test]
fn batch_refuses_small_order_keys_like_strict_verification() {
    let f = fixture(4096);
    let trusted = [f.issuer.public()];
    // The identity point as report key, and the "signature" (R =
    // identity, s = 0) that satisfies the unstrict equation for it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let cert = Certificate::issue(
        &f.issuer,
        CertificateParams {
            report_key: ReportPublicKey(identity),
            ..f.cert.params().clone()
        },
    )
    .unwrap();
    let mut b = body(&f, 64, 1, T0);
    b.certificate = cert.as_bytes().to_vec();
    let mut signature = vec![0u8; SIGNATURE_LEN];
    signature[0] = 1;
    let forged = AnnouncementMsg {
        body: b.encode_to_vec(),
        signature,
    }
    .encode_to_vec();
    let mut items: Vec<Vec<u8>> = (0..4u64)
        .map(|i| craft(&f.report, body(&f, 64, 1, T0 + i)))
        .collect();
    items.insert(2, forged);
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let c = ctx(&trusted, T0 + 60);
    let out = VerifiedAnnouncement::verify_batch(&refs, &c);
    assert_eq!(out[2], Err(AnnouncementError::BadSignature));
    assert_eq!(out[2], VerifiedAnnouncement::verify(refs[2], &c));
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 4);
}

/// The chunks of `reports` reports, each with its own report key and
/// certificate from the fixture's issuer; the first has two chunks.
fn reports_of_one_issuer(f: &mut Fixture, reports: usize) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    for r in 0..reports {
        let report = ReportSecretKey::generate(&mut f.rng);
        let cert = Certificate::issue(
            &f.issuer,
            CertificateParams {
                report_key: report.public(),
                ..f.cert.params().clone()
            },
        )
        .unwrap();
        let n = if r == 0 {
            TOKENS_PER_FULL_CHUNK + 1
        } else {
            50
        };
        let built = build_announcements(
            &report,
            &cert,
            &toks(n, r as u8),
            -8,
            UnixTime(T0),
            &mut f.rng,
        )
        .unwrap();
        assert_eq!(built.len(), if r == 0 { 2 } else { 1 });
        chunks.extend(built.into_iter().map(|c| c.bytes));
    }
    chunks
}

fn decoded(items: &[Vec<u8>]) -> Vec<Unchecked> {
    items
        .iter()
        .map(|b| Unchecked::decode(b).unwrap())
        .collect()
}

/// ed25519-dalek's own batch verification of the same triples.
fn dalek_batch_valid(triples: &[([u8; 32], &[u8], &[u8; SIGNATURE_LEN])]) -> bool {
    let messages: Vec<&[u8]> = triples.iter().map(|t| t.1).collect();
    let signatures: Vec<ed25519_dalek::Signature> = triples
        .iter()
        .map(|t| ed25519_dalek::Signature::from_bytes(t.2))
        .collect();
    let Ok(keys) = triples
        .iter()
        .map(|t| ed25519_dalek::VerifyingKey::from_bytes(&t.0))
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// Whether every triple passes strict single verification.
fn all_single_valid(triples: &[([u8; 32], &[u8], &[u8; SIGNATURE_LEN])]) -> bool {
    triples
        .iter()
        .all(|(key, msg, sig)| ReportPublicKey(*key).verify(msg, sig))
}

/// `s + ℓ` as 32 bytes (`s` < ℓ < 2^253, so no overflow): the same scalar,
/// not canonically encoded.
fn plus_group_order(s: &[u8]) -> [u8; 32] {
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ELL[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// `s + 1 mod ℓ`.
fn plus_one(s: &[u8]) -> [u8; 32] {
    let s = curve25519_dalek::scalar::Scalar::from_bytes_mod_order(s.try_into().unwrap());
    (s + curve25519_dalek::scalar::Scalar::ONE).to_bytes()
}

#[test]
fn batch_of_several_reports_passes_and_agrees_with_ed25519_dalek() {
    let mut f = fixture(2 * TOKENS_PER_FULL_CHUNK as u32);
    let items = reports_of_one_issuer(&mut f, 7);
    let us = decoded(&items);
    assert!(batch_signatures_valid(us.iter()));
    let triples = batch_triples(us.iter());
    // 7 certificates (the two chunks of the first report share one) and
    // 8 chunk bodies.
    assert_eq!(triples.len(), 7 + 8);
    assert_eq!(
        triples
            .iter()
            .filter(|t| t.0 == f.issuer.public().0)
            .count(),
        7
    );
    assert!(all_single_valid(&triples));
    assert!(dalek_batch_valid(&triples));
    assert!(signatures_valid_in_batch(triples.iter().copied()));
    // And through the public path.
    let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    let out = VerifiedAnnouncement::verify_batch(&refs, &ctx(&[f.issuer.public()], T0 + 60));
    assert!(out.iter().all(Result::is_ok));
}

#[test]
fn one_forged_signature_among_many_fails_the_batch() {
    let mut f = fixture(2 * TOKENS_PER_FULL_CHUNK as u32);
    let valid = reports_of_one_issuer(&mut f, 12);
    assert!(batch_signatures_valid(decoded(&valid).iter()));
    let victim = AnnouncementMsg::decode(valid[5].as_slice()).unwrap();
    let other = AnnouncementMsg::decode(valid[8].as_slice()).unwrap();
    let with =
        |body: Vec<u8>, signature: Vec<u8>| AnnouncementMsg { body, signature }.encode_to_vec();
    let mut forgeries: Vec<(&str, Vec<u8>)> = Vec::new();
    // A body byte changed under the report key's signature (its creation
    // time, so that it still decodes).
    let mut b = AnnouncementBodyMsg::decode(victim.body.as_slice()).unwrap();
    b.created_at += 1;
    forgeries.push(("body", with(b.encode_to_vec(), victim.signature.clone())));
    // s changed (still canonical).
    let mut sig = victim.signature.clone();
    let s = plus_one(&sig[32..]);
    sig[32..].copy_from_slice(&s);
    forgeries.push(("s", with(victim.body.clone(), sig)));
    // R of another signature (a valid point of large order).
    let mut sig = victim.signature.clone();
    sig[..32].copy_from_slice(&other.signature[..32]);
    forgeries.push(("R", with(victim.body.clone(), sig)));
    // Signed by a key its certificate does not name.
    let stranger = ReportSecretKey::generate(&mut f.rng);
    forgeries.push((
        "key",
        with(
            victim.body.clone(),
            stranger.sign(&signing_input(&victim.body)).to_vec(),
        ),
    ));
    // The issuer's signature on the certificate broken.
    let mut b = AnnouncementBodyMsg::decode(victim.body.as_slice()).unwrap();
    let last = b.certificate.len() - 1;
    b.certificate[last] ^= 1;
    forgeries.push(("certificate", craft(&f.report, b)));
    for (what, forged) in forgeries {
        let mut items = valid.clone();
        items[5] = forged;
        let us = decoded(&items);
        assert!(!batch_signatures_valid(us.iter()), "{what}");
        let triples = batch_triples(us.iter());
        assert!(!all_single_valid(&triples), "{what}");
        assert!(!dalek_batch_valid(&triples), "{what}");
    }
}

#[test]
fn non_canonical_s_fails_the_batch() {
    let mut f = fixture(2 * TOKENS_PER_FULL_CHUNK as u32);
    let mut items = reports_of_one_issuer(&mut f, 6);
    let mut m = AnnouncementMsg::decode(items[3].as_slice()).unwrap();
    let s = plus_group_order(&m.signature[32..]);
    // The same scalar, encoded with s ≥ ℓ.
    assert_eq!(
        curve25519_dalek::scalar::Scalar::from_bytes_mod_order(s).to_bytes(),
        m.signature[32..]
    );
    m.signature[32..].copy_from_slice(&s);
    items[3] = m.encode_to_vec();
    let us = decoded(&items);
    assert!(!batch_signatures_valid(us.iter()));
    let triples = batch_triples(us.iter());
    assert!(!all_single_valid(&triples));
    assert!(!dalek_batch_valid(&triples));
}

#[test]
fn two_forgeries_that_cancel_under_known_coefficients_fail_the_batch() {
    use curve25519_dalek::scalar::Scalar;
    let mut f = fixture(2 * TOKENS_PER_FULL_CHUNK as u32);
    let items = reports_of_one_issuer(&mut f, 8);
    let us = decoded(&items);
    let triples = batch_triples(us.iter());
    let (terms, keys) = batch_terms(triples.iter().copied()).unwrap();
    let z = batch_coefficients(&terms);
    // Move s_a by δ and s_b by −z_a δ / z_b: both signatures become invalid,
    // and the sum with these coefficients does not change. An attacker who
    // could predict the coefficients (were they not derived from every s)
    // would pass the batch this way.
    let (a, b) = (3, 9);
    let delta = Scalar::from(0x1234_5678_u64);
    let mut sigs: Vec<[u8; SIGNATURE_LEN]> = triples.iter().map(|t| *t.2).collect();
    let s_a = terms[a].s + delta;
    let s_b = terms[b].s - z[a] * delta * z[b].invert();
    sigs[a][32..].copy_from_slice(s_a.as_bytes());
    sigs[b][32..].copy_from_slice(s_b.as_bytes());
    let forged: Vec<([u8; 32], &[u8], &[u8; SIGNATURE_LEN])> = triples
        .iter()
        .zip(&sigs)
        .map(|(t, sig)| (t.0, t.1, sig))
        .collect();
    assert!(!ReportPublicKey(forged[a].0).verify(forged[a].1, forged[a].2));
    assert!(!ReportPublicKey(forged[b].0).verify(forged[b].1, forged[b].2));
    let (forged_terms, forged_keys) = batch_terms(forged.iter().copied()).unwrap();
    assert!(batch_equation_holds(&forged_terms, forged_keys, &z));
    assert!(batch_equation_holds(&terms, keys, &z));
    // The batch's own coefficients for the forged set are new ones.
    assert!(!signatures_valid_in_batch(forged.iter().copied()));
    assert!(!dalek_batch_valid(&forged));
}

/// How a property-test triple is spoiled.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    Message,
    SPlusOne,
    SPlusEll,
    OtherR,
    WrongKey,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Random sets of signatures from a few keys (so that keys repeat and
    /// their terms merge), some spoiled: the batch passes exactly when every
    /// signature passes strict single verification, as ed25519-dalek's
    /// batch does.
    #[test]
    fn batch_result_is_all_single_verifications(
        seeds in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 1..4),
        signed in proptest::collection::vec(
            (
                proptest::prelude::any::<proptest::sample::Index>(),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
            ),
            3..14,
        ),
        spoiled in proptest::collection::vec(
            (
                proptest::prelude::any::<proptest::sample::Index>(),
                proptest::prop_oneof![
                    proptest::strategy::Just(Spoil::Message),
                    proptest::strategy::Just(Spoil::SPlusOne),
                    proptest::strategy::Just(Spoil::SPlusEll),
                    proptest::strategy::Just(Spoil::OtherR),
                    proptest::strategy::Just(Spoil::WrongKey),
                ],
            ),
            0..3,
        ),
    ) {
        let keys: Vec<ed25519_dalek::SigningKey> =
            seeds.iter().map(ed25519_dalek::SigningKey::from_bytes).collect();
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        // (key, message, signature) owned.
        let mut owned: Vec<([u8; 32], Vec<u8>, [u8; SIGNATURE_LEN])> = signed
            .iter()
            .map(|(k, msg)| {
                use ed25519_dalek::Signer as _;
                let k = k.get(&keys);
                (k.verifying_key().to_bytes(), msg.clone(), k.sign(msg).to_bytes())
            })
            .collect();
        for (at, how) in &spoiled {
            let i = at.index(owned.len());
            let other_r: [u8; 32] = owned[(i + 1) % owned.len()].2[..32].try_into().unwrap();
            let t = &mut owned[i];
            match how {
                Spoil::Message => match t.1.first_mut() {
                    Some(b) => *b ^= 1,
                    None => t.1.push(0),
                },
                Spoil::SPlusOne => {
                    let s = plus_one(&t.2[32..]);
                    t.2[32..].copy_from_slice(&s);
                }
                Spoil::SPlusEll => {
                    let s = plus_group_order(&t.2[32..]);
                    t.2[32..].copy_from_slice(&s);
                }
                Spoil::OtherR => t.2[..32].copy_from_slice(&other_r),
                Spoil::WrongKey => {
                    use ed25519_dalek::Signer as _;
                    t.2 = stranger.sign(&t.1).to_bytes();
                }
            }
        }
        let triples: Vec<([u8; 32], &[u8], &[u8; SIGNATURE_LEN])> =
            owned.iter().map(|(k, m, s)| (*k, m.as_slice(), s)).collect();
        let single = all_single_valid(&triples);
        proptest::prop_assert_eq!(signatures_valid_in_batch(triples.iter().copied()), single);
        proptest::prop_assert_eq!(dalek_batch_valid(&triples), single);
        if spoiled.is_empty() {
            proptest::prop_assert!(single);
        }
    }
}
