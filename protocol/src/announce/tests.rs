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
