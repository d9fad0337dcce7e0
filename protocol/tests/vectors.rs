//! Asserts the Rust implementation against the test vectors in
//! `tests/vectors/*.json`, which an independent Python implementation
//! (`tests/vectors/generate.py`, written from `docs/protocol.md`) produced.

use std::convert::Infallible;

use meshtrace_protocol::*;
use rand_core::{TryCryptoRng, TryRng};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(v.as_str().unwrap().as_bytes())
        .unwrap()
}

fn arr32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

fn u64v(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn token_vectors() {
    let v = load("tokens.json");
    for case in v["cases"].as_array().unwrap() {
        let a = EpochKey::from_secret_bytes(Epoch(1), Zeroizing::new(arr32(&case["secret_a"])));
        let b = EpochKey::from_secret_bytes(Epoch(1), Zeroizing::new(arr32(&case["secret_b"])));
        assert_eq!(a.public().0, arr32(&case["public_a"]));
        assert_eq!(b.public().0, arr32(&case["public_b"]));
        let expected = bytes(&case["token"]);
        assert_eq!(derive_token(&a, &b.public()).unwrap().0.to_vec(), expected);
        assert_eq!(derive_token(&b, &a.public()).unwrap().0.to_vec(), expected);
    }
    let victim =
        EpochKey::from_secret_bytes(Epoch(1), Zeroizing::new(arr32(&v["low_order_secret"])));
    for pk in v["low_order_public_keys"].as_array().unwrap() {
        assert_eq!(
            derive_token(&victim, &RotatingId(arr32(pk))),
            Err(TokenError::NonContributory),
            "low-order key {pk} must be refused"
        );
    }
}

#[test]
fn frame_vectors() {
    let v = load("frames.json");
    assert_eq!(u64v(&v["service_uuid16"]), u64::from(SERVICE_UUID16));
    for case in v["cases"].as_array().unwrap() {
        assert!(case.get("tx_power").is_none(), "no TX power on the air");
        let frame = Frame {
            id: RotatingId(arr32(&case["id"])),
        };
        let ext = bytes(&case["extended_service_data"]);
        assert_eq!(frame.encode_extended().to_vec(), ext);
        assert_eq!(
            advertising_data(&ext),
            bytes(&case["extended_advertising_data"])
        );
        let (first, second) = frame.encode_legacy();
        assert_eq!(first.to_vec(), bytes(&case["legacy_first_service_data"]));
        assert_eq!(second.to_vec(), bytes(&case["legacy_second_service_data"]));
        assert_eq!(half_tag(&frame.id).to_vec(), bytes(&case["half_tag"]));
        let ad1 = bytes(&case["legacy_first_advertising_data"]);
        let ad2 = bytes(&case["legacy_second_advertising_data"]);
        assert_eq!(advertising_data(&first), ad1);
        assert_eq!(advertising_data(&second), ad2);
        // Decode from the raw advertisements.
        assert_eq!(
            decode_service_data(
                find_service_data(&bytes(&case["extended_advertising_data"]))
                    .unwrap()
                    .unwrap()
            ),
            Ok(Decoded::Full(frame))
        );
        let mut r = HalfReassembler::new();
        let half = |ad: &[u8]| match decode_service_data(find_service_data(ad).unwrap().unwrap()) {
            Ok(Decoded::Half(h)) => h,
            other => panic!("expected a half, got {other:?}"),
        };
        assert_eq!(r.push(UnixTime(5), half(&ad2)), None);
        assert_eq!(r.push(UnixTime(6), half(&ad1)), Some(frame));
    }
    for bad in v["invalid"].as_array().unwrap() {
        let err = decode_service_data(&bytes(&bad["service_data"])).unwrap_err();
        let want = bad["error"].as_str().unwrap();
        let got = match err {
            FrameError::Empty => "empty",
            FrameError::UnsupportedVersion(_) => "unsupported version",
            FrameError::UnknownKind(_) => "unknown kind",
            FrameError::WrongLength { .. } => "wrong length",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, want);
    }
}

fn params_of(v: &Value, report: ReportPublicKey) -> CertificateParams {
    CertificateParams {
        network_id: v["network_id"].as_str().unwrap().to_owned(),
        report_key: report,
        valid_from: UnixTime(u64v(&v["valid_from"])),
        valid_until: UnixTime(u64v(&v["valid_until"])),
        window_first_day: Day(u64v(&v["window_first_day"]) as u32),
        window_last_day: Day(u64v(&v["window_last_day"]) as u32),
        max_tokens: u64v(&v["max_tokens"]) as u32,
    }
}

#[test]
fn certificate_vectors() {
    let v = load("certificates.json");
    let issuer = IssuerSecretKey::from_bytes(&Zeroizing::new(arr32(&v["issuer_secret"])));
    let report = ReportSecretKey::from_bytes(&Zeroizing::new(arr32(&v["report_secret"])));
    assert_eq!(issuer.public().0, arr32(&v["issuer_public"]));
    assert_eq!(report.public().0, arr32(&v["report_public"]));
    let network = v["params"]["network_id"].as_str().unwrap();
    let req = ReportRequest {
        network_id: network.to_owned(),
        report_key: report.public(),
    };
    assert_eq!(req.to_bytes(), bytes(&v["request_bytes"]));
    assert_eq!(req.to_code(), v["request_code"].as_str().unwrap());
    assert_eq!(
        ReportRequest::from_code(v["request_code"].as_str().unwrap()),
        Ok(req)
    );

    let cert = Certificate::issue(&issuer, params_of(&v["params"], report.public())).unwrap();
    assert_eq!(cert.as_bytes(), bytes(&v["certificate_bytes"]));
    assert_eq!(
        cert.signature().to_vec(),
        bytes(&v["certificate_signature"])
    );
    assert_eq!(cert.to_code(), v["certificate_code"].as_str().unwrap());
    let parsed = Certificate::from_code(v["certificate_code"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, cert);
    assert_eq!(parsed.issuer(), issuer.public());
}

/// Yields exactly the bytes it was given, so the Rust builder draws the same
/// dummy tokens the reference implementation listed.
struct ReplayRng {
    data: Vec<u8>,
    pos: usize,
}

impl TryRng for ReplayRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let end = self.pos + dst.len();
        assert!(end <= self.data.len(), "replay RNG exhausted");
        dst.copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(())
    }
}
impl TryCryptoRng for ReplayRng {}

fn tokens_of(v: &Value) -> Vec<EncounterToken> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| EncounterToken(bytes(t).try_into().unwrap()))
        .collect()
}

#[test]
fn announcement_vectors() {
    let v = load("announcements.json");
    let trusted = [IssuerPublicKey(arr32(&v["issuer_public"]))];
    let network = v["network_id"].as_str().unwrap();
    let ctx = VerifyContext {
        network_id: network,
        trusted_issuers: &trusted,
        now: UnixTime(u64v(&v["verify_at"])),
    };
    for case in v["cases"].as_array().unwrap() {
        let report = ReportSecretKey::from_bytes(&Zeroizing::new(arr32(&case["report_secret"])));
        let cert = Certificate::from_bytes(&bytes(&case["certificate_bytes"])).unwrap();
        let real = tokens_of(&case["real_tokens"]);
        let mut rng = ReplayRng {
            data: case["dummy_draws"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(bytes)
                .collect(),
            pos: 0,
        };
        let tx_power = case["tx_power"].as_i64().unwrap() as i8;
        let built = build_announcements(
            &report,
            &cert,
            &real,
            tx_power,
            UnixTime(u64v(&case["created_at"])),
            &mut rng,
        )
        .unwrap();
        assert_eq!(rng.pos, rng.data.len(), "every listed dummy was drawn");
        let chunks = case["chunks"].as_array().unwrap();
        assert_eq!(built.len(), chunks.len());
        let mut seen_real = 0;
        for (i, (b, want)) in built.iter().zip(chunks).enumerate() {
            assert_eq!(b.bytes, bytes(&want["bytes"]), "chunk {i} bytes");
            assert_eq!(b.id.0.to_vec(), bytes(&want["id"]), "chunk {i} id");
            let ver = VerifiedAnnouncement::verify(&b.bytes, &ctx).unwrap();
            assert_eq!(ver.chunk_index(), i as u32);
            assert_eq!(ver.tx_power(), tx_power, "chunk {i} TX power");
            assert_eq!(ver.chunk_count(), u64v(&case["chunk_count"]) as u32);
            let fps: Vec<u64> = want["fingerprints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| u64::from_str_radix(f.as_str().unwrap(), 16).unwrap())
                .collect();
            assert_eq!(ver.fingerprints(), fps, "chunk {i} fingerprints");
            assert_eq!(fps.len(), u64v(&case["entries_per_chunk"]) as usize);
            seen_real += real
                .iter()
                .filter(|t| ver.fingerprint_slice().contains(&token_fingerprint(t)))
                .count();
        }
        assert_eq!(seen_real, real.len(), "every real token is announced once");
        let real_fps: Vec<u64> = case["real_fingerprints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| u64::from_str_radix(f.as_str().unwrap(), 16).unwrap())
            .collect();
        let mut mine: Vec<u64> = real.iter().map(token_fingerprint).collect();
        mine.sort_unstable();
        mine.dedup();
        assert_eq!(mine, real_fps, "fingerprints of the real tokens");
    }
    for r in v["refused"].as_array().unwrap() {
        let got = VerifiedAnnouncement::verify(&bytes(&r["bytes"]), &ctx);
        match r["error"].as_str().unwrap() {
            "version 1" => assert!(
                matches!(
                    got,
                    Err(AnnouncementError::Decode(DecodeError::Version1 { .. }))
                ),
                "{got:?}"
            ),
            other => panic!("unknown error {other}"),
        }
    }
}

fn encounters_of(v: &serde_json::Value) -> Vec<Encounter> {
    v.as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, e)| Encounter {
            tokens: vec![EncounterToken([i as u8; 16])],
            first_seen: UnixTime(u64v(&e["first_seen"])),
            last_seen: UnixTime(u64v(&e["last_seen"])),
            profile: e["profile"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (u64v(&p[0]) as u8, u64v(&p[1]) as u32))
                .collect(),
            sightings: e.get("sightings").map_or(1, |s| u64v(s) as u32),
        })
        .collect()
}

fn close(a: f64, b: &serde_json::Value, what: &str) {
    let b = b.as_f64().unwrap();
    assert!((a - b).abs() < 1e-9, "{what}: {a} != {b}");
}

fn assert_days(got: &[DayRisk], want: &serde_json::Value, name: &str) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: number of days");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(u64::from(g.day.0), u64v(&w["day"]), "{name}");
        close(g.weighted_minutes, &w["weighted_minutes"], name);
        close(g.close_minutes, &w["close_minutes"], name);
        close(g.estimated_minutes, &w["estimated_minutes"], name);
        assert_eq!(u64::from(g.contacts), u64v(&w["contacts"]), "{name}");
        assert_eq!(g.high_risk, w["high_risk"].as_bool().unwrap(), "{name}");
    }
}

#[test]
fn risk_vectors_cwa() {
    let v = load("risk.json");
    let risk = RiskConfig::builder().model(RiskModel::Cwa).build().unwrap();
    for case in v["cwa"]["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let tx_power = case["tx_power"].as_i64().unwrap() as i8;
        let got = risk.score(&encounters_of(&case["encounters"]), tx_power);
        assert_days(&got, &case["expected"], name);
    }
}

#[test]
fn risk_vectors_calibrated() {
    let v = &load("risk.json")["calibrated"];
    let risk = RiskConfig::default();
    assert_eq!(risk.model(), RiskModel::Calibrated, "the default model");
    let p = risk.calibrated();
    let want = &v["params"];
    close(p.attenuation_at_1m_db, &want["attenuation_at_1m_db"], "A1");
    close(p.path_loss_exponent, &want["path_loss_exponent"], "n");
    close(p.body_loss_db, &want["body_loss_db"], "body");
    close(
        p.contact_sigma_db,
        &want["contact_sigma_db"],
        "contact sigma",
    );
    close(
        p.reception_sigma_db,
        &want["reception_sigma_db"],
        "reception sigma",
    );
    close(p.close_distance_m, &want["close_distance_m"], "distance");
    close(p.min_confidence, &want["min_confidence"], "min confidence");
    assert_eq!(risk.session_gap_seconds(), u64v(&v["session_gap_seconds"]));
    close(
        risk.high_risk_weighted_minutes(),
        &v["high_risk_minutes"],
        "threshold",
    );
    for z in v["normal_cdf"].as_array().unwrap() {
        close(normal_cdf(z[0].as_f64().unwrap()), &z[1], "normal_cdf");
    }
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let encounters = encounters_of(&case["encounters"]);
        let tx_power = case["tx_power"].as_i64().unwrap() as i8;
        let contacts = risk.contacts(&encounters, tx_power);
        let want = case["contacts"].as_array().unwrap();
        assert_eq!(contacts.len(), want.len(), "{name}: contacts");
        for (g, w) in contacts.iter().zip(want) {
            assert_eq!(u64::from(g.day.0), u64v(&w["day"]), "{name}");
            assert_eq!(g.first_seen.0, u64v(&w["first_seen"]), "{name}");
            assert_eq!(g.last_seen.0, u64v(&w["last_seen"]), "{name}");
            assert_eq!(g.level_db.map(u64::from), w["level_db"].as_u64(), "{name}");
            close(g.heard_minutes, &w["heard_minutes"], name);
            close(g.confidence, &w["confidence"], name);
            close(g.estimated_minutes, &w["estimated_minutes"], name);
            close(g.weighted_minutes, &w["weighted_minutes"], name);
            let parts = w["parts"].as_array().unwrap();
            assert_eq!(g.parts.len(), parts.len(), "{name}: parts");
            for (gp, wp) in g.parts.iter().zip(parts) {
                assert_eq!(u64::from(gp.level_db), u64v(&wp["level_db"]), "{name}");
                close(gp.heard_minutes, &wp["heard_minutes"], name);
                close(gp.confidence, &wp["confidence"], name);
            }
        }
        assert_days(&risk.score(&encounters, tx_power), &case["expected"], name);
    }
}

#[test]
fn level_and_attenuation_vectors() {
    let v = load("risk.json");
    let levels = v["levels"].as_array().unwrap();
    assert!(levels.len() >= 5);
    for c in levels {
        let rssi = c["rssi"].as_i64().unwrap() as i16;
        let corr = c["rx_correction_db"].as_i64().unwrap() as i16;
        assert_eq!(
            u64::from(received_level_db(rssi, corr)),
            u64v(&c["level_db"]),
            "level of rssi {rssi}, correction {corr}"
        );
    }
    let atts = v["attenuations"].as_array().unwrap();
    assert!(atts.len() >= 5);
    for c in atts {
        let tx = c["tx_power"].as_i64().unwrap() as i8;
        let level = u64v(&c["level_db"]) as u8;
        assert_eq!(
            u64::from(attenuation_db(tx, level)),
            u64v(&c["attenuation_db"]),
            "attenuation of level {level} at {tx} dBm"
        );
    }
}

/// An encounter as the crediting vectors name it: (ID label, first seen,
/// last seen, sightings, profile).
type NamedEncounter = (String, u64, u64, u64, Vec<(u8, u32)>);

#[test]
fn crediting_vectors() {
    use std::collections::BTreeMap;
    let v = &load("risk.json")["crediting"];
    assert_eq!(u64v(&v["max_scan_credit_seconds"]), MAX_SCAN_CREDIT_SECONDS);
    assert_eq!(
        u64v(&v["scan_window_slack_seconds"]),
        SCAN_WINDOW_SLACK_SECONDS
    );
    use rand_core::SeedableRng as _;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(17);
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let events = case["events"].as_array().unwrap();
        let t0 = UnixTime(
            events
                .iter()
                .map(|e| u64v(e.as_array().unwrap().last().unwrap()))
                .min()
                .unwrap(),
        );
        let mut keys = KeySchedule::new();
        keys.rotate(t0, &mut rng);
        let mut ids: BTreeMap<String, RotatingId> = BTreeMap::new();
        let mut tracker = EncounterTracker::new(0);
        for e in events {
            let e = e.as_array().unwrap();
            match e[0].as_str().unwrap() {
                "scan" => tracker.handle_scan(ScanWindow {
                    start: UnixTime(u64v(&e[1])),
                    end: UnixTime(u64v(&e[2])),
                }),
                _ => {
                    let label = e[1].as_str().unwrap().to_owned();
                    let id = *ids
                        .entry(label)
                        .or_insert_with(|| EpochKey::generate(t0.epoch(), &mut rng).public());
                    tracker
                        .handle_sighting(
                            &keys,
                            Sighting {
                                id,
                                rssi: -(u64v(&e[2]) as i16),
                                at: UnixTime(u64v(&e[3])),
                            },
                        )
                        .unwrap();
                }
            }
        }
        // Name each encounter by the label of the ID whose token it holds
        // (its primary token may be that of any own key held).
        let label_of: BTreeMap<EncounterToken, String> = ids
            .iter()
            .flat_map(|(l, id)| {
                keys.keys()
                    .map(move |k| (derive_token(k, id).unwrap(), l.clone()))
            })
            .collect();
        let mut got: Vec<NamedEncounter> = tracker
            .close_all()
            .into_iter()
            .map(|e| {
                (
                    label_of[&e.tokens[0]].clone(),
                    e.first_seen.0,
                    e.last_seen.0,
                    u64::from(e.sightings),
                    e.profile,
                )
            })
            .collect();
        got.sort();
        let want: Vec<NamedEncounter> = case["encounters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    u64v(&e["first_seen"]),
                    u64v(&e["last_seen"]),
                    u64v(&e["sightings"]),
                    e["profile"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (u64v(&p[0]) as u8, u64v(&p[1]) as u32))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

/// The code of a result: `None` when accepted.
fn code_of<T, E>(r: Result<T, E>, code: impl Fn(&E) -> &'static str) -> Option<&'static str> {
    r.err().map(|e| code(&e))
}

fn str_list(v: &Value) -> Vec<[u8; 32]> {
    v.as_array().unwrap().iter().map(arr32).collect()
}

/// What the Rust implementation says about one case of refusals.json.
fn refusal_of(case: &Value) -> Option<&'static str> {
    let input = || bytes(&case["input"]);
    match case["context"].as_str().unwrap() {
        "advertising_data" => {
            let ad = input();
            match find_service_data(&ad) {
                Err(e) => Some(e.code()),
                Ok(None) => None,
                Ok(Some(sd)) => code_of(decode_service_data(sd), FrameError::code),
            }
        }
        "service_data" => code_of(decode_service_data(&input()), FrameError::code),
        "token" => {
            let own =
                EpochKey::from_secret_bytes(Epoch(1), Zeroizing::new(arr32(&case["own_secret"])));
            let heard = RotatingId(arr32(&case["heard"]));
            let got = derive_token(&own, &heard);
            if let Err(e) = got {
                let expected = if e == TokenError::OwnId {
                    Disposition::Ignore
                } else {
                    Disposition::Reject
                };
                assert_eq!(e.disposition(), expected);
            }
            code_of(got, TokenError::code)
        }
        "sighting" => {
            let mut keys = KeySchedule::new();
            keys.insert(EpochKey::from_secret_bytes(
                Epoch(u64v(&case["own_epoch"]) as u32),
                Zeroizing::new(arr32(&case["own_secret"])),
            ));
            let mut tracker = EncounterTracker::new(0);
            let r = tracker.handle_sighting(
                &keys,
                Sighting {
                    id: RotatingId(arr32(&case["heard"])),
                    rssi: -50,
                    at: UnixTime(u64v(&case["at"])),
                },
            );
            if let Err(e) = r {
                assert_eq!(e.disposition(), Disposition::Ignore);
            }
            code_of(r, SightingError::code)
        }
        "report_request" => code_of(ReportRequest::from_bytes(&input()), DecodeError::code),
        "request_code" => code_of(
            ReportRequest::from_code(case["input"].as_str().unwrap()),
            DecodeError::code,
        ),
        "certificate" => code_of(Certificate::from_bytes(&input()), CertificateError::code),
        "certificate_code" => code_of(
            Certificate::from_code(case["input"].as_str().unwrap()),
            CertificateError::code,
        ),
        "certificate_use" => {
            let cert = Certificate::from_bytes(&input()).unwrap();
            let trusted: Vec<IssuerPublicKey> = str_list(&case["trusted_issuers"])
                .into_iter()
                .map(IssuerPublicKey)
                .collect();
            code_of(
                cert.verify(
                    case["network_id"].as_str().unwrap(),
                    &trusted,
                    UnixTime(u64v(&case["at"])),
                ),
                CertificateError::code,
            )
        }
        "announcement" => {
            let trusted: Vec<IssuerPublicKey> = str_list(&case["trusted_issuers"])
                .into_iter()
                .map(IssuerPublicKey)
                .collect();
            let ctx = VerifyContext {
                network_id: case["network_id"].as_str().unwrap(),
                trusted_issuers: &trusted,
                now: UnixTime(u64v(&case["now"])),
            };
            let got = VerifiedAnnouncement::verify(&input(), &ctx);
            let outcome = got.as_ref().err().map(|e| match e.disposition() {
                Disposition::Reject => "Reject",
                Disposition::Ignore => "Ignore",
            });
            assert_eq!(outcome, case["outcome"].as_str(), "{}", case["name"]);
            code_of(got, AnnouncementError::code)
        }
        "build" => {
            let report =
                ReportSecretKey::from_bytes(&Zeroizing::new(arr32(&case["report_secret"])));
            let cert = Certificate::from_bytes(&bytes(&case["certificate"])).unwrap();
            let real: Vec<EncounterToken> = (0..u64v(&case["real_tokens"]))
                .map(|i| {
                    use sha2::Digest as _;
                    let d = sha2::Sha256::digest(format!("refusals build token {i}"));
                    EncounterToken(d[..16].try_into().unwrap())
                })
                .collect();
            // Dummies, when any are needed, from a seeded generator.
            use rand_core::SeedableRng as _;
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
            code_of(
                build_announcements(
                    &report,
                    &cert,
                    &real,
                    -8,
                    UnixTime(u64v(&case["created_at"])),
                    &mut rng,
                ),
                BuildError::code,
            )
        }
        "risk_config" => {
            let cfg = &case["config"];
            let mut b = RiskConfig::builder();
            if cfg["model"] == "cwa" {
                b = b.model(RiskModel::Cwa);
            }
            if let Some(list) = cfg["buckets"].as_array() {
                b = b.buckets(
                    list.iter()
                        .map(|x| AttenuationBucket {
                            below_db: u64v(&x[0]) as u8,
                            weight: x[1].as_f64().unwrap(),
                        })
                        .collect(),
                );
            }
            if let Some(m) = cfg["high_risk_minutes"].as_f64() {
                b = b.high_risk_weighted_minutes(m);
            }
            if let Some(m) = cfg["min_contact_minutes"].as_u64() {
                b = b.min_contact_minutes(m as u32);
            }
            if let Some(g) = cfg["session_gap_seconds"].as_u64() {
                b = b.session_gap_seconds(g);
            }
            let mut p = CalibratedParams::default();
            if let Some(over) = cfg["calibrated"].as_object() {
                for (k, v) in over {
                    let v = v.as_f64().unwrap();
                    match k.as_str() {
                        "attenuation_at_1m_db" => p.attenuation_at_1m_db = v,
                        "path_loss_exponent" => p.path_loss_exponent = v,
                        "body_loss_db" => p.body_loss_db = v,
                        "contact_sigma_db" => p.contact_sigma_db = v,
                        "reception_sigma_db" => p.reception_sigma_db = v,
                        "close_distance_m" => p.close_distance_m = v,
                        "min_confidence" => p.min_confidence = v,
                        other => panic!("unknown parameter {other}"),
                    }
                }
            }
            code_of(b.calibrated(p).build(), RiskConfigError::code)
        }
        other => panic!("unknown context {other}"),
    }
}

#[test]
fn refusal_vectors() {
    let v = load("refusals.json");
    let cases = v["cases"].as_array().unwrap();
    for case in cases {
        assert_eq!(
            refusal_of(case),
            case["code"].as_str(),
            "{}: {}",
            case["context"],
            case["name"]
        );
    }
    // Batch verification gives every announcement the code it gets alone.
    let anns: Vec<&Value> = cases
        .iter()
        .filter(|c| c["context"] == "announcement")
        .collect();
    let mut by_context: std::collections::BTreeMap<(String, u64), Vec<&Value>> =
        std::collections::BTreeMap::new();
    for c in anns {
        by_context
            .entry((
                c["network_id"].as_str().unwrap().to_owned(),
                u64v(&c["now"]),
            ))
            .or_default()
            .push(c);
    }
    for ((network, now), group) in by_context {
        let trusted: Vec<IssuerPublicKey> = str_list(&group[0]["trusted_issuers"])
            .into_iter()
            .map(IssuerPublicKey)
            .collect();
        let ctx = VerifyContext {
            network_id: &network,
            trusted_issuers: &trusted,
            now: UnixTime(now),
        };
        let inputs: Vec<Vec<u8>> = group.iter().map(|c| bytes(&c["input"])).collect();
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let got = VerifiedAnnouncement::verify_batch(&refs, &ctx);
        for (c, r) in group.iter().zip(got) {
            assert_eq!(
                code_of(r, AnnouncementError::code),
                c["code"].as_str(),
                "batch: {}",
                c["name"]
            );
        }
    }
}

/// The codes of the table in docs/protocol.md §16.
fn spec_codes() -> Vec<String> {
    let path = format!("{}/../docs/protocol.md", env!("CARGO_MANIFEST_DIR"));
    let spec = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = spec.find("\n## 16. ").expect("§16");
    spec[start..]
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 5 && cells[1].starts_with('`'))
                .then(|| cells[1].trim_matches('`').to_owned())
        })
        .collect()
}

#[test]
fn every_code_has_a_refusal_vector() {
    let v = load("refusals.json");
    let covered: std::collections::BTreeSet<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    let codes = spec_codes();
    assert!(codes.len() >= 40);
    for code in &codes {
        assert!(covered.contains(code.as_str()), "no vector for {code}");
    }
    for code in &covered {
        assert!(codes.iter().any(|c| c == code), "{code} is not in §16");
    }
}

#[test]
fn strict_ed25519_vectors() {
    let v = load("refusals.json");
    let cases = v["ed25519"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["valid"] == true));
    for c in cases {
        let msg = bytes(&c["message"]);
        let sig: [u8; 64] = bytes(&c["signature"]).try_into().unwrap();
        let want = c["valid"].as_bool().unwrap();
        let name = c["name"].as_str().unwrap();
        assert_eq!(
            IssuerPublicKey(arr32(&c["public"])).verify(&msg, &sig),
            want,
            "{name}"
        );
        assert_eq!(
            ReportPublicKey(arr32(&c["public"])).verify(&msg, &sig),
            want,
            "{name}"
        );
    }
}

fn encounters_json(list: Vec<Encounter>) -> Value {
    Value::Array(
        list.into_iter()
            .map(|e| {
                serde_json::json!({
                    "tokens": e.tokens.iter().map(|t| data_encoding::HEXLOWER.encode(&t.0)).collect::<Vec<_>>(),
                    "first_seen": e.first_seen.0,
                    "last_seen": e.last_seen.0,
                    "sightings": e.sightings,
                    "day": e.day().0,
                })
            })
            .collect(),
    )
}

#[test]
fn state_machine_vectors() {
    let v = load("state_machine.json");
    let c = &v["constants"];
    assert_eq!(u64v(&c["epoch_seconds"]), EPOCH_SECONDS);
    assert_eq!(u64v(&c["day_seconds"]), DAY_SECONDS);
    assert_eq!(
        u64v(&c["sighting_key_window_seconds"]),
        SIGHTING_KEY_WINDOW_SECONDS
    );
    assert_eq!(u64v(&c["rotation_grace_seconds"]), ROTATION_GRACE_SECONDS);
    assert_eq!(u64v(&c["max_scheduled_keys"]) as usize, MAX_SCHEDULED_KEYS);
    assert_eq!(
        u64v(&c["max_tokens_per_encounter"]) as usize,
        MAX_TOKENS_PER_ENCOUNTER
    );
    assert_eq!(u64v(&c["encounter_idle_seconds"]), ENCOUNTER_IDLE_SECONDS);
    assert_eq!(
        u64v(&c["max_encounter_span_seconds"]),
        MAX_ENCOUNTER_SPAN_SECONDS
    );
    for t in v["time"].as_array().unwrap() {
        let at = UnixTime(u64v(&t["t"]));
        assert_eq!(u64::from(at.epoch().0), u64v(&t["epoch"]), "{t}");
        assert_eq!(u64::from(at.day().0), u64v(&t["day"]), "{t}");
        assert_eq!(at.epoch().start().0, u64v(&t["epoch_start"]), "{t}");
    }
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let draws = case["key_draws"].as_array().unwrap();
        let mut rng = ReplayRng {
            data: draws.iter().flat_map(|d| arr32(&d["secret"])).collect(),
            pos: 0,
        };
        let mut keys = KeySchedule::new();
        let mut tracker = EncounterTracker::new(0);
        for (i, step) in case["events"].as_array().unwrap().iter().enumerate() {
            let ev = step["event"].as_array().unwrap();
            let want = &step["expect"];
            let what = format!("{name}, event {i} {ev:?}");
            match ev[0].as_str().unwrap() {
                "rotate" => {
                    let r = keys.rotate(UnixTime(u64v(&ev[1])), &mut rng);
                    let got = serde_json::json!({
                        "new_id": r.new_id.map(|id| data_encoding::HEXLOWER.encode(&id.0)),
                        "erased": r.erased.iter().map(|e| e.0).collect::<Vec<_>>(),
                        "held": keys.keys().map(|k| k.epoch().0).collect::<Vec<_>>(),
                    });
                    assert_eq!(&got, want, "{what}");
                    for k in keys.keys() {
                        let d = draws
                            .iter()
                            .find(|d| arr32(&d["public"]) == k.public().0)
                            .unwrap_or_else(|| panic!("{what}: a key that was not drawn"));
                        assert_eq!(u64::from(k.epoch().0), u64v(&d["epoch"]), "{what}");
                    }
                }
                "scan" => tracker.handle_scan(ScanWindow {
                    start: UnixTime(u64v(&ev[1])),
                    end: UnixTime(u64v(&ev[2])),
                }),
                "sighting" => {
                    let id = RotatingId(arr32(&case["ids"][ev[1].as_str().unwrap()]));
                    let r = tracker.handle_sighting(
                        &keys,
                        Sighting {
                            id,
                            rssi: -(u64v(&ev[2]) as i16),
                            at: UnixTime(u64v(&ev[3])),
                        },
                    );
                    assert_eq!(r.err().map(|e| e.code()), want.as_str(), "{what}");
                }
                "poll" => {
                    let got = encounters_json(tracker.poll_closed(UnixTime(u64v(&ev[1]))));
                    assert_eq!(&got, &strip_epochs(want), "{what}");
                }
                _ => {
                    let got = encounters_json(tracker.close_all());
                    assert_eq!(&got, &strip_epochs(want), "{what}");
                }
            }
        }
        assert_eq!(
            rng.pos,
            rng.data.len(),
            "{name}: every listed key was drawn"
        );
    }
}

/// The vectors also name the own epoch of each token, for readers; the
/// tracker does not expose it, and the token bytes (one key per epoch)
/// already pin it.
fn strip_epochs(v: &Value) -> Value {
    let mut v = v.clone();
    for e in v.as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("token_epochs");
    }
    v
}
