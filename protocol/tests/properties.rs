//! Property tests: round trips, exact lengths, decoders that never panic on
//! mutated or random input, symmetric tokens, padding that hides the count,
//! and the token index against a `HashSet` model.

use std::collections::HashSet;

use meshtrace_protocol::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const T0: u64 = 1_800_000_000;

struct World {
    issuer: IssuerSecretKey,
    report: ReportSecretKey,
    cert: Certificate,
}

fn world(seed: u64, cap: u32) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let issuer = IssuerSecretKey::generate(&mut rng);
    let report = ReportSecretKey::generate(&mut rng);
    let cert = Certificate::issue(
        &issuer,
        CertificateParams {
            network_id: "prop-net".into(),
            report_key: report.public(),
            valid_from: UnixTime(T0),
            valid_until: UnixTime(T0 + 86_400),
            window_first_day: UnixTime(T0).day().minus(13),
            window_last_day: UnixTime(T0).day(),
            max_tokens: cap,
        },
    )
    .unwrap();
    World {
        issuer,
        report,
        cert,
    }
}

fn tokens(n: usize, seed: u64) -> Vec<EncounterToken> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut t = [0u8; 16];
            rand_core::Rng::fill_bytes(&mut rng, &mut t);
            EncounterToken(t)
        })
        .collect()
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Length of a proto3 scalar field (omitted when zero).
fn uint_field(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v) }
}

/// Length of a proto3 bytes/string field (omitted when empty).
fn bytes_field(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + varint_len(len as u64) + len
    }
}

/// The announcement chunk length the spec predicts.
/// Golomb-Rice coded length of ascending fingerprints (§10.3): per entry
/// `(d >> p) + 1 + p` bits, rounded up to whole bytes.
fn coded_len(fingerprints: &[u64]) -> usize {
    let p = FINGERPRINT_BITS - fingerprints.len().trailing_zeros();
    let mut prev = 0;
    let mut bits = 0u64;
    for &f in fingerprints {
        bits += ((f - prev) >> p) + 1 + u64::from(p);
        prev = f;
    }
    bits.div_ceil(8) as usize
}

/// Length of a proto3 `sint32` field: the zigzag varint (omitted when zero).
fn sint_field(v: i32) -> usize {
    uint_field(u64::from(((v << 1) ^ (v >> 31)) as u32))
}

fn expected_chunk_len(
    cert_len: usize,
    index: u32,
    count: u32,
    created: u64,
    fps: &[u64],
    tx_power: i8,
) -> usize {
    let body = uint_field(2)
        + bytes_field("prop-net".len())
        + bytes_field(cert_len)
        + uint_field(u64::from(index))
        + uint_field(u64::from(count))
        + uint_field(created)
        + bytes_field(coded_len(fps))
        + uint_field(fps.len() as u64)
        + sint_field(i32::from(tx_power));
    bytes_field(body) + bytes_field(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn frames_round_trip(id in any::<[u8; 32]>()) {
        let f = Frame { id: RotatingId(id) };
        let ext = f.encode_extended();
        prop_assert_eq!(ext.len(), EXTENDED_SERVICE_DATA_LEN);
        prop_assert_eq!(decode_service_data(&ext), Ok(Decoded::Full(f)));
        let ad = advertising_data(&ext);
        prop_assert_eq!(ad.len(), 11 + EXTENDED_SERVICE_DATA_LEN);
        prop_assert_eq!(find_service_data(&ad), Ok(Some(&ext[..])));
        let (a, b) = f.encode_legacy();
        prop_assert_eq!(advertising_data(&a).len(), 11 + LEGACY_HALF_SERVICE_DATA_LEN);
        prop_assert!(advertising_data(&b).len() <= LEGACY_ADVERTISING_DATA_LEN);
        let mut r = HalfReassembler::new();
        let (Ok(Decoded::Half(ha)), Ok(Decoded::Half(hb))) = (decode_service_data(&a), decode_service_data(&b)) else {
            return Err(TestCaseError::fail("halves did not decode"));
        };
        prop_assert_eq!(r.push(UnixTime(1), ha), None);
        prop_assert_eq!(r.push(UnixTime(2), hb), Some(f));
    }

    #[test]
    fn frame_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300),
                                  ad in proptest::collection::vec(any::<u8>(), 0..1800)) {
        let _ = decode_service_data(&data);
        if let Ok(Some(sd)) = find_service_data(&ad) {
            let _ = decode_service_data(sd);
        }
    }

    #[test]
    fn reassembler_never_panics_and_stays_bounded(
        halves in proptest::collection::vec((any::<bool>(), any::<[u8; 2]>(), any::<[u8; 16]>(), 0u64..200), 0..600)
    ) {
        let mut r = HalfReassembler::new();
        let mut t = 0;
        for (first, tag, bytes, dt) in halves {
            t += dt;
            let part = if first { HalfPart::First } else { HalfPart::Second };
            if let Some(f) = r.push(UnixTime(t), Half { part, tag, bytes }) {
                // Anything produced is consistent with its tag.
                prop_assert_eq!(half_tag(&f.id), tag);
            }
            prop_assert!(r.pending() <= MAX_PENDING_HALVES);
        }
    }

    #[test]
    fn tokens_are_symmetric(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let ka = EpochKey::from_secret_bytes(Epoch(1), Zeroizing::new(a));
        let kb = EpochKey::from_secret_bytes(Epoch(1), Zeroizing::new(b));
        match (derive_token(&ka, &kb.public()), derive_token(&kb, &ka.public())) {
            (Ok(x), Ok(y)) => prop_assert_eq!(x, y),
            (Err(TokenError::OwnId), Err(TokenError::OwnId)) => prop_assert_eq!(ka.public(), kb.public()),
            other => return Err(TestCaseError::fail(format!("asymmetric result {other:?}"))),
        }
    }

    #[test]
    fn request_and_certificate_codes_round_trip(seed in any::<u64>(), cap in 1u32..=MAX_TOKENS_PER_REPORT) {
        let w = world(seed, cap);
        let req = ReportRequest { network_id: "prop-net".into(), report_key: w.report.public() };
        prop_assert_eq!(ReportRequest::from_code(&req.to_code()), Ok(req.clone()));
        prop_assert_eq!(ReportRequest::from_bytes(&req.to_bytes()), Ok(req));
        prop_assert_eq!(Certificate::from_code(&w.cert.to_code()), Ok(w.cert.clone()));
        prop_assert!(w.cert.as_bytes().len() <= MAX_CERTIFICATE_BYTES);
    }

    #[test]
    fn code_decoders_never_panic(s in "\\PC{0,400}", prefix in prop_oneof![Just("MTRQ1:"), Just("MTCT1:"), Just("")]) {
        let text = format!("{prefix}{s}");
        let _ = ReportRequest::from_code(&text);
        let _ = Certificate::from_code(&text);
    }

    #[test]
    fn mutated_certificates_never_verify(seed in any::<u64>(), pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let w = world(seed, 4096);
        let mut bytes = w.cert.as_bytes().to_vec();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(Certificate::from_bytes(&bytes).is_err());
        let truncated = &w.cert.as_bytes()[..i];
        prop_assert!(Certificate::from_bytes(truncated).is_err());
        let mut extended = w.cert.as_bytes().to_vec();
        extended.push(xor);
        prop_assert!(Certificate::from_bytes(&extended).is_err());
    }

    #[test]
    fn random_bytes_never_panic_any_decoder(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let trusted = [IssuerPublicKey([7; 32])];
        let ctx = VerifyContext { network_id: "prop-net", trusted_issuers: &trusted, now: UnixTime(T0) };
        let _ = VerifiedAnnouncement::verify(&data, &ctx);
        let _ = Certificate::from_bytes(&data);
        let _ = ReportRequest::from_bytes(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn announcements_round_trip_with_exact_lengths(seed in any::<u64>(), n in 0usize..2600, tx in any::<i8>()) {
        let w = world(seed, 8192);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 1);
        let real = tokens(n, seed);
        let created = T0 + 10;
        let out = build_announcements(&w.report, &w.cert, &real, tx, UnixTime(created), &mut rng).unwrap();
        let (per_chunk, count) = padded_layout(n).unwrap();
        prop_assert_eq!(out.len(), count as usize);
        let trusted = [w.issuer.public()];
        let ctx = VerifyContext { network_id: "prop-net", trusted_issuers: &trusted, now: UnixTime(created) };
        let mut seen = HashSet::new();
        for (i, e) in out.iter().enumerate() {
            let v = VerifiedAnnouncement::verify(&e.bytes, &ctx).unwrap();
            prop_assert_eq!(
                e.bytes.len(),
                expected_chunk_len(w.cert.as_bytes().len(), i as u32, count, created, v.fingerprint_slice(), tx)
            );
            prop_assert_eq!(v.tx_power(), tx);
            prop_assert_eq!(v.fingerprints().len(), per_chunk);
            seen.extend(v.fingerprints());
        }
        prop_assert!(real.iter().all(|t| seen.contains(&token_fingerprint(t))));
    }

    #[test]
    fn mutated_announcements_never_verify(seed in any::<u64>(), pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let w = world(seed, 4096);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let out = build_announcements(&w.report, &w.cert, &tokens(10, seed), -8, UnixTime(T0), &mut rng).unwrap();
        let trusted = [w.issuer.public()];
        let ctx = VerifyContext { network_id: "prop-net", trusted_issuers: &trusted, now: UnixTime(T0) };
        let good = &out[0].bytes;
        prop_assert!(VerifiedAnnouncement::verify(good, &ctx).is_ok());
        let i = pos.index(good.len());
        let mut bad = good.clone();
        bad[i] ^= xor;
        prop_assert!(VerifiedAnnouncement::verify(&bad, &ctx).is_err());
        prop_assert!(VerifiedAnnouncement::verify(&good[..i], &ctx).is_err());
        let mut longer = good.clone();
        longer.push(xor);
        prop_assert!(VerifiedAnnouncement::verify(&longer, &ctx).is_err());
    }

    #[test]
    fn padding_hides_the_count_within_a_bucket(seed in any::<u64>(), a in 129usize..=256, b in 129usize..=256) {
        let w = world(seed, 4096);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = build_announcements(&w.report, &w.cert, &tokens(a, seed), -8, UnixTime(T0), &mut rng).unwrap();
        let y = build_announcements(&w.report, &w.cert, &tokens(b, seed ^ 7), -8, UnixTime(T0), &mut rng).unwrap();
        prop_assert_eq!(x.len(), 1);
        prop_assert_eq!(y.len(), 1);
        let trusted = [w.issuer.public()];
        let ctx = VerifyContext { network_id: "prop-net", trusted_issuers: &trusted, now: UnixTime(T0) };
        let vx = VerifiedAnnouncement::verify(&x[0].bytes, &ctx).unwrap();
        let vy = VerifiedAnnouncement::verify(&y[0].bytes, &ctx).unwrap();
        prop_assert_eq!(vx.fingerprints().len(), 256);
        prop_assert_eq!(vy.fingerprints().len(), 256);
        // The coded length is n·(p + 1) bits plus the sum of the quotients,
        // which is below n whatever the values: the lengths of two chunks of
        // one bucket differ by less than n/8 + 1 bytes, and by the random
        // values only (real and dummy fingerprints are alike uniform).
        let (lx, ly) = (x[0].bytes.len(), y[0].bytes.len());
        prop_assert!(lx.abs_diff(ly) <= 256 / 8 + 1, "{} vs {}", lx, ly);
    }

    #[test]
    fn token_index_agrees_with_a_hash_set(seed in any::<u64>(), n in 0usize..3000, probes in 0usize..3000) {
        let stored = tokens(n, seed);
        let idx = TokenIndex::build(stored.iter().enumerate().map(|(i, t)| (*t, i as u64)));
        let model: HashSet<EncounterToken> = stored.iter().copied().collect();
        let mut queries = tokens(probes, seed ^ 0xdead);
        queries.extend(stored.iter().step_by(3).copied());
        for q in &queries {
            prop_assert_eq!(idx.contains(q), model.contains(q));
        }
        let expected = queries.iter().filter(|q| model.contains(q)).count();
        prop_assert_eq!(idx.count_hits(&queries), expected);
    }
}
