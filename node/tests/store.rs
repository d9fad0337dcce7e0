//! The encrypted contact store on real sled files in a temporary directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use meshtrace_node::protocol::*;
use meshtrace_node::store::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const DAY0: u64 = 20_000 * DAY_SECONDS; // a UTC midnight
const NOON: u64 = DAY0 + 12 * 3600;

fn key_source(dir: &Path) -> KeySource {
    KeySource::KeyFile(dir.join("master.key"))
}

fn data_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("data")
}

fn create(tmp: &tempfile::TempDir) -> ContactStore {
    ContactStore::create(
        &data_dir(tmp),
        &key_source(tmp.path()),
        KdfParams::TEST_ONLY,
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap()
}

fn reopen(tmp: &tempfile::TempDir, now: u64) -> Result<ContactStore, StoreError> {
    ContactStore::open(
        &data_dir(tmp),
        &key_source(tmp.path()),
        StoreConfig::default(),
        UnixTime(now),
    )
}

fn encounter(rng: &mut ChaCha20Rng, start: u64) -> Encounter {
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let mut t = [0u8; 16];
        rng.fill_bytes(&mut t);
        tokens.push(EncounterToken(t));
    }
    Encounter {
        tokens,
        first_seen: UnixTime(start),
        last_seen: UnixTime(start + 700),
        profile: vec![(48, 400), (61, 300)],
        sightings: 71,
    }
}

struct World {
    rng: ChaCha20Rng,
    issuer: IssuerSecretKey,
}

impl World {
    fn new() -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let issuer = IssuerSecretKey::generate(&mut rng);
        World { rng, issuer }
    }

    fn announcement(
        &mut self,
        now: u64,
        tokens: &[EncounterToken],
    ) -> (VerifiedAnnouncement, Vec<u8>) {
        let report = ReportSecretKey::generate(&mut self.rng);
        let now = UnixTime(now);
        let cert = Certificate::issue(
            &self.issuer,
            CertificateParams {
                network_id: "store-test".into(),
                report_key: report.public(),
                valid_from: now,
                valid_until: now.plus(86_400),
                window_first_day: now.day().minus(3),
                window_last_day: now.day(),
                max_tokens: 1024,
            },
        )
        .unwrap();
        let chunk = build_announcements(&report, &cert, tokens, -8, now, &mut self.rng)
            .unwrap()
            .remove(0);
        let trusted = [self.issuer.public()];
        let v = VerifiedAnnouncement::verify(
            &chunk.bytes,
            &VerifyContext {
                network_id: "store-test",
                trusted_issuers: &trusted,
                now,
            },
        )
        .unwrap();
        (v, chunk.bytes)
    }
}

/// Every file under `dir`, path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_record_type_round_trips_through_sled() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (refs, encs, ann_id, ann_bytes, exposure, epoch_key_bytes);
    {
        let mut s = create(&tmp);
        encs = vec![
            encounter(&mut rng, NOON - 3600),
            encounter(&mut rng, NOON - 86_400),
        ];
        refs = s.add_encounters(&encs, UnixTime(NOON)).unwrap();
        let ek = EpochKey::generate(UnixTime(NOON).epoch(), &mut rng);
        epoch_key_bytes = ek.secret_bytes();
        s.put_epoch_key(&ek).unwrap();
        let (v, bytes) = w.announcement(NOON, &encs[0].tokens);
        assert!(s.put_announcement(&v, &bytes, UnixTime(NOON)).unwrap());
        assert!(
            !s.put_announcement(&v, &bytes, UnixTime(NOON)).unwrap(),
            "stored once"
        );
        ann_id = v.id();
        ann_bytes = bytes;
        let mut ledger = ExposureLedger::new();
        let idx = s.token_index().clone();
        let MatchOutcome::Exposure(e) = ledger.ingest(
            &v,
            &idx,
            |r| s.encounter(r).cloned(),
            &RiskConfig::builder()
                .min_contact_minutes(0)
                .build()
                .unwrap(),
        ) else {
            panic!("the stored encounter matches its own report");
        };
        exposure = e;
        s.put_exposure(&exposure, UnixTime(NOON)).unwrap();
        s.add_trusted_issuer(w.issuer.public(), "clinic").unwrap();
        s.set_meta("network", b"store-test").unwrap();
        s.flush().unwrap();
    }
    let mut s = reopen(&tmp, NOON + 60).unwrap();
    assert_eq!(s.encounter_count(), 2);
    for (r, e) in refs.iter().zip(&encs) {
        assert_eq!(s.encounter(*r), Some(e));
    }
    for t in encs.iter().flat_map(|e| &e.tokens) {
        assert!(s.token_index().contains(t));
    }
    let keys = s.epoch_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].secret_bytes(), epoch_key_bytes);
    assert!(s.has_announcement(&ann_id));
    assert_eq!(s.announcement_bytes(&ann_id).unwrap(), Some(ann_bytes));
    let exps = s.exposures();
    assert_eq!(exps.len(), 1);
    assert_eq!(exps[0].exposure, exposure);
    assert_eq!(exps[0].found_at, UnixTime(NOON));
    assert_eq!(
        s.trusted_issuers().unwrap(),
        vec![(w.issuer.public(), "clinic".to_string())]
    );
    assert_eq!(
        s.meta("network").unwrap().as_deref().map(|v| &v[..]),
        Some(&b"store-test"[..])
    );
    assert_eq!(s.meta("absent").unwrap(), None);
    s.remove_epoch_key(keys[0].epoch()).unwrap();
    s.remove_trusted_issuer(&w.issuer.public()).unwrap();
    assert!(s.epoch_keys().unwrap().is_empty());
    assert!(s.trusted_issuers().unwrap().is_empty());
}

#[test]
fn purge_forgets_days_beyond_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let old = encounter(&mut rng, NOON - 10 * 86_400);
    let recent = encounter(&mut rng, NOON - 86_400);
    let (old_tag_days, ann_id);
    {
        let mut s = create(&tmp);
        s.add_encounters(&[old.clone(), recent.clone()], UnixTime(NOON))
            .unwrap();
        let (v, bytes) = w.announcement(NOON - 10 * 86_400, &old.tokens);
        s.put_announcement(&v, &bytes, UnixTime(NOON)).unwrap();
        ann_id = v.id();
        old_tag_days = s.days();
        assert_eq!(old_tag_days.len(), 2);
        s.flush().unwrap();
    }
    // Five days later the 10-day-old records are 15 days old: beyond 14.
    let later = NOON + 5 * 86_400;
    let mut s = reopen(&tmp, later).unwrap();
    assert_eq!(s.encounter_count(), 1);
    assert!(s.token_index().contains(&recent.tokens[0]));
    assert!(!s.token_index().contains(&old.tokens[0]));
    assert!(!s.has_announcement(&ann_id));
    assert_eq!(s.days(), vec![UnixTime(recent.first_seen.0).day()]);
    // Raw trees: nothing of the old day, and its key is gone.
    let raw = s.backend();
    assert_eq!(raw.scan_prefix(Tree::Encounters, &[]).unwrap().len(), 1);
    assert!(
        raw.scan_prefix(Tree::Announcements, &[])
            .unwrap()
            .is_empty()
    );
    assert!(
        raw.scan_prefix(Tree::AnnouncementMeta, &[])
            .unwrap()
            .is_empty()
    );
    assert_eq!(raw.scan_prefix(Tree::DayKeys, &[]).unwrap().len(), 1);
    // A purge on schedule, with the injected clock jumping another 14 days.
    let report = s.purge(UnixTime(later + 14 * 86_400)).unwrap();
    assert_eq!(report.encounters, 1);
    assert_eq!(s.encounter_count(), 0);
    assert!(
        s.backend()
            .scan_prefix(Tree::DayKeys, &[])
            .unwrap()
            .is_empty()
    );
    drop(s);
    let s = reopen(&tmp, later + 14 * 86_400).unwrap();
    assert_eq!(s.encounter_count(), 0);
}

#[test]
fn database_files_hold_no_token_key_or_time_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut w = World::new();
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    {
        let mut s = create(&tmp);
        let encs: Vec<Encounter> = (0..50)
            .map(|i| encounter(&mut rng, NOON - 3600 - 60 * i))
            .collect();
        s.add_encounters(&encs, UnixTime(NOON)).unwrap();
        for e in &encs {
            for t in &e.tokens {
                needles.push(("token".into(), t.0.to_vec()));
            }
            needles.push((
                "first_seen (BE)".into(),
                e.first_seen.0.to_be_bytes().to_vec(),
            ));
            needles.push((
                "first_seen (LE)".into(),
                e.first_seen.0.to_le_bytes().to_vec(),
            ));
            // The protobuf varint of the timestamp, as a record would hold it.
            let mut v = Vec::new();
            let mut x = e.first_seen.0;
            while x >= 0x80 {
                v.push((x as u8) | 0x80);
                x >>= 7;
            }
            v.push(x as u8);
            needles.push(("first_seen (varint)".into(), v));
        }
        let ek = EpochKey::generate(UnixTime(NOON).epoch(), &mut rng);
        needles.push(("epoch secret".into(), ek.secret_bytes().to_vec()));
        needles.push(("epoch public".into(), ek.public().0.to_vec()));
        s.put_epoch_key(&ek).unwrap();
        let (v, bytes) = w.announcement(NOON, &encs[0].tokens);
        s.put_announcement(&v, &bytes, UnixTime(NOON)).unwrap();
        needles.push(("announcement id".into(), v.id().0.to_vec()));
        needles.push(("issuer key".into(), w.issuer.public().0.to_vec()));
        s.add_trusted_issuer(w.issuer.public(), "clinic").unwrap();
        s.set_meta("network", b"a-very-recognisable-network-name")
            .unwrap();
        needles.push(("meta".into(), b"a-very-recognisable-network-name".to_vec()));
        s.flush().unwrap();
    }
    let master = std::fs::read(tmp.path().join("master.key")).unwrap();
    let files = snapshot(&data_dir(&tmp));
    assert!(files.len() >= 3, "sled wrote its files: {:?}", files.keys());
    let total: usize = files.values().map(|b| b.len()).sum();
    assert!(total > 10_000, "data reached the files ({total} bytes)");
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, &master),
            "master key in {}",
            path.display()
        );
        for (what, needle) in &needles {
            assert!(
                !contains(bytes, needle),
                "{what} found in clear in {}",
                path.display()
            );
        }
    }
}

#[test]
fn wrong_key_fails_and_changes_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    {
        let mut s = create(&tmp);
        s.add_encounters(&[encounter(&mut rng, NOON - 60)], UnixTime(NOON))
            .unwrap();
        s.flush().unwrap();
    }
    let before = snapshot(&data_dir(&tmp));
    let wrong = tmp.path().join("wrong.key");
    create_key_file(&wrong).unwrap();
    let err = ContactStore::open(
        &data_dir(&tmp),
        &KeySource::KeyFile(wrong),
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::WrongKey), "{err}");
    assert!(err.to_string().contains("wrong key"));
    let err = ContactStore::open(
        &data_dir(&tmp),
        &KeySource::Passphrase(Zeroizing::new("guess".into())),
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::KeySourceMismatch(_)), "{err}");
    assert_eq!(
        snapshot(&data_dir(&tmp)),
        before,
        "files are byte-identical"
    );
    assert_eq!(reopen(&tmp, NOON).unwrap().encounter_count(), 1);
}

#[test]
fn passphrase_store_opens_only_with_its_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(&tmp);
    let pass = |p: &str| KeySource::Passphrase(Zeroizing::new(p.to_string()));
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    {
        let mut s = ContactStore::create(
            &dir,
            &pass("correct horse battery staple"),
            KdfParams::TEST_ONLY,
            StoreConfig::default(),
            UnixTime(NOON),
        )
        .unwrap();
        s.add_encounters(&[encounter(&mut rng, NOON - 60)], UnixTime(NOON))
            .unwrap();
        s.flush().unwrap();
    }
    let before = snapshot(&dir);
    let err = ContactStore::open(&dir, &pass("wrong"), StoreConfig::default(), UnixTime(NOON))
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongKey));
    assert_eq!(snapshot(&dir), before);
    let s = ContactStore::open(
        &dir,
        &pass("correct horse battery staple"),
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap();
    assert_eq!(s.encounter_count(), 1);
}

#[test]
fn files_are_owner_only_and_loose_key_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(create(&tmp));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tmp.path().join("master.key")), 0o600);
    assert_eq!(mode(&data_dir(&tmp).join(META_FILE)), 0o600);
    assert_eq!(mode(&data_dir(&tmp)), 0o700);
    std::fs::set_permissions(
        tmp.path().join("master.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = reopen(&tmp, NOON).unwrap_err();
    assert!(matches!(err, StoreError::KeyFile { .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

/// A schema 1 store (encounter profiles written as attenuations) opens,
/// keeps every encounter byte for byte, and is moved to schema 2 (profiles
/// read as received levels): `store.meta` says 2 afterwards, and a wrong
/// key changes nothing, not even the schema.
#[test]
fn a_schema_1_store_is_upgraded_to_levels_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let encs = vec![
        encounter(&mut rng, NOON - 3600),
        encounter(&mut rng, NOON - 7200),
    ];
    {
        let mut s = create(&tmp);
        s.add_encounters(&encs, UnixTime(NOON)).unwrap();
        s.flush().unwrap();
    }
    let meta_path = data_dir(&tmp).join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).unwrap();
    assert!(text.contains("\"schema\": 2"), "{text}");
    // What a build before the change wrote.
    std::fs::write(&meta_path, text.replace("\"schema\": 2", "\"schema\": 1")).unwrap();
    // A wrong key: refused before anything is written.
    let before = std::fs::read(&meta_path).unwrap();
    std::fs::write(tmp.path().join("other.key"), [9u8; 32]).unwrap();
    std::fs::set_permissions(
        tmp.path().join("other.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let err = ContactStore::open(
        &data_dir(&tmp),
        &KeySource::KeyFile(tmp.path().join("other.key")),
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::WrongKey), "{err}");
    assert_eq!(std::fs::read(&meta_path).unwrap(), before);
    // The right key: opened, upgraded, every encounter as it was.
    let s = reopen(&tmp, NOON).unwrap();
    let mut got: Vec<Encounter> = s.encounters().map(|(_, e)| e.clone()).collect();
    got.sort_by_key(|e| e.first_seen);
    let mut want = encs.clone();
    want.sort_by_key(|e| e.first_seen);
    assert_eq!(got, want);
    let after = std::fs::read_to_string(&meta_path).unwrap();
    assert!(after.contains("\"schema\": 2"), "{after}");
    assert_eq!(
        std::fs::metadata(&meta_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(s);
    // And it opens again as schema 2.
    assert_eq!(reopen(&tmp, NOON).unwrap().encounters().count(), 2);
}

#[test]
fn newer_schema_missing_store_and_second_opener_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = create(&tmp);
    // A second process (or handle) on the same store.
    let err = reopen(&tmp, NOON).unwrap_err();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    drop(s);
    let meta_path = data_dir(&tmp).join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(&meta_path, text.replace("\"schema\": 2", "\"schema\": 3")).unwrap();
    let err = reopen(&tmp, NOON).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 3,
                supported: 2
            }
        ),
        "{err}"
    );
    let err = ContactStore::open(
        &tmp.path().join("nowhere"),
        &key_source(tmp.path()),
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    std::fs::write(&meta_path, "{ not json").unwrap();
    assert!(matches!(
        reopen(&tmp, NOON).unwrap_err(),
        StoreError::BadMeta(_)
    ));
}

#[test]
fn damage_is_reported_then_recovered_without_losing_readable_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let encs: Vec<Encounter> = (0..20)
        .map(|i| encounter(&mut rng, NOON - 600 * i))
        .collect();
    {
        let mut s = create(&tmp);
        s.add_encounters(&encs, UnixTime(NOON)).unwrap();
        // Damage one record through the raw backend: flip a ciphertext byte.
        let (k, mut v) = s
            .backend()
            .scan_prefix(Tree::Encounters, &[])
            .unwrap()
            .remove(3);
        let last = v.len() - 1;
        v[last] ^= 0x40;
        s.backend()
            .apply(vec![(Tree::Encounters, k, Some(v))])
            .unwrap();
        s.flush().unwrap();
    }
    let err = reopen(&tmp, NOON).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(RECOVERY_COMMAND) && msg.contains("nothing was deleted"),
        "{msg}"
    );
    // Still damaged on a second try: nothing was silently dropped.
    assert!(matches!(
        reopen(&tmp, NOON).unwrap_err(),
        StoreError::Damaged { .. }
    ));
    let report = ContactStore::recover(&data_dir(&tmp), &key_source(tmp.path())).unwrap();
    assert_eq!(report.unreadable, 1);
    assert!(report.set_aside.exists(), "the damaged copy is kept");
    let mut s = reopen(&tmp, NOON).unwrap();
    assert_eq!(s.encounter_count(), 19);
    let kept = encs
        .iter()
        .filter(|e| s.token_index().contains(&e.tokens[0]))
        .count();
    assert_eq!(kept, 19);
}

#[test]
fn a_record_under_an_unknown_day_tag_is_damage_not_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    {
        let mut s = create(&tmp);
        s.add_encounters(&[encounter(&mut rng, NOON - 60)], UnixTime(NOON))
            .unwrap();
        // Corrupt the 8-byte day tag of the record's key.
        let (k, v) = s
            .backend()
            .scan_prefix(Tree::Encounters, &[])
            .unwrap()
            .remove(0);
        let mut moved = k.clone();
        moved[0] ^= 0x80;
        s.backend()
            .apply(vec![
                (Tree::Encounters, k, None),
                (Tree::Encounters, moved, Some(v)),
            ])
            .unwrap();
        s.flush().unwrap();
    }
    let err = reopen(&tmp, NOON).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("unknown day"), "{err}");
}

#[test]
fn maybe_flush_bounds_unflushed_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut s = create(&tmp);
    assert!(
        !s.maybe_flush(UnixTime(NOON + 100)).unwrap(),
        "nothing pending"
    );
    s.add_encounters(&[encounter(&mut rng, NOON - 60)], UnixTime(NOON + 100))
        .unwrap();
    assert!(s.is_dirty());
    assert!(s.maybe_flush(UnixTime(NOON + 100)).unwrap());
    s.add_encounters(&[encounter(&mut rng, NOON - 30)], UnixTime(NOON + 101))
        .unwrap();
    assert!(
        !s.maybe_flush(UnixTime(NOON + 101)).unwrap(),
        "within the interval"
    );
    assert!(
        s.maybe_flush(UnixTime(NOON + 100 + FLUSH_INTERVAL_SECONDS))
            .unwrap()
    );
    assert!(!s.is_dirty());
    // The clock is set back by hours: pending writes are still flushed on
    // the next call, not held until the clock catches up.
    s.add_encounters(&[encounter(&mut rng, NOON - 20)], UnixTime(NOON + 103))
        .unwrap();
    assert!(
        s.maybe_flush(UnixTime(NOON - 3 * 3600)).unwrap(),
        "flushed after a backwards clock jump"
    );
    assert!(!s.is_dirty());
}

#[test]
fn tick_purges_once_per_day_and_flushes_on_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let mut s = create(&tmp);
    let old = encounter(&mut rng, NOON - 13 * 86_400);
    s.add_encounters(std::slice::from_ref(&old), UnixTime(NOON))
        .unwrap();
    assert_eq!(
        s.tick(UnixTime(NOON + 1)).unwrap(),
        None,
        "same day: no purge"
    );
    assert!(s.is_dirty(), "within the flush interval");
    assert_eq!(
        s.tick(UnixTime(NOON + FLUSH_INTERVAL_SECONDS)).unwrap(),
        None
    );
    assert!(!s.is_dirty(), "flushed by the timer");
    // Next day: the encounter is 14 days old, still kept.
    let r = s.tick(UnixTime(NOON + 86_400)).unwrap().unwrap();
    assert_eq!(r.encounters, 0);
    assert_eq!(s.encounter_count(), 1);
    assert_eq!(
        s.tick(UnixTime(NOON + 86_400 + 60)).unwrap(),
        None,
        "once per day"
    );
    // The day after, it is 15 days old: purged.
    let r = s.tick(UnixTime(NOON + 2 * 86_400)).unwrap().unwrap();
    assert_eq!(r.encounters, 1);
    assert_eq!(s.encounter_count(), 0);
}

#[test]
fn memory_backend_behaves_like_sled() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let master = MasterKey::generate();
    let mut s = ContactStore::with_backend(
        MemoryStore::new(),
        &master,
        StoreConfig::default(),
        UnixTime(NOON),
    )
    .unwrap();
    let e = encounter(&mut rng, NOON - 60);
    let r = s
        .add_encounters(std::slice::from_ref(&e), UnixTime(NOON))
        .unwrap();
    assert_eq!(s.encounter(r[0]), Some(&e));
    assert!(s.token_index().contains(&e.tokens[1]));
    let raw: Vec<(Vec<u8>, Vec<u8>)> = s.backend().scan_prefix(Tree::Encounters, &[]).unwrap();
    assert_eq!(raw.len(), 1);
    assert!(!contains(&raw[0].1, &e.tokens[0].0));
    s.purge(UnixTime(NOON + 20 * 86_400)).unwrap();
    assert_eq!(s.encounter_count(), 0);
}

/// A UNIX time in the year 2083 (a clock run at twice real speed since 1970).
const YEAR_2083: u64 = 3_566_000_000;

/// A store created at `NOON` holding `n` encounters of that morning,
/// cleanly stopped.
fn store_with_encounters(tmp: &tempfile::TempDir, n: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut s = create(tmp);
    let encs: Vec<Encounter> = (0..n)
        .map(|i| encounter(&mut rng, NOON - 3600 - 60 * i))
        .collect();
    s.add_encounters(&encs, UnixTime(NOON)).unwrap();
    s.flush_clean(UnixTime(NOON)).unwrap();
}

#[test]
fn a_node_off_for_three_weeks_purges_once_a_peer_confirms_the_date() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_encounters(&tmp, 3);
    let back = NOON + 21 * DAY_SECONDS;
    let mut s = reopen(&tmp, back).unwrap();
    // Off for longer than retention, or a clock three weeks fast: the node
    // cannot tell yet, so nothing is deleted.
    assert_eq!(s.encounter_count(), 3);
    let hold = s.purge_hold().expect("the purge is held");
    assert_eq!(hold.known_good, UnixTime(NOON));
    assert_eq!(hold.clock, UnixTime(back));
    assert_eq!(s.tick(UnixTime(back + 60)).unwrap(), None);
    assert_eq!(s.encounter_count(), 3);
    // An old announcement (created 10 days before the clock) proves nothing.
    assert_eq!(
        s.confirm_time(UnixTime(back - 10 * DAY_SECONDS), UnixTime(back + 60))
            .unwrap(),
        None
    );
    assert!(s.purge_hold().is_some());
    // A peer's announcement of an hour ago confirms the date: purge.
    let report = s
        .confirm_time(UnixTime(back - 3600), UnixTime(back + 120))
        .unwrap()
        .expect("the held purge runs");
    assert_eq!(report.encounters, 3);
    assert_eq!(s.encounter_count(), 0);
    assert_eq!(s.purge_hold(), None);
    assert_eq!(s.known_good_time(), UnixTime(back + 120));
    drop(s);
    let s = reopen(&tmp, back + 180).unwrap();
    assert_eq!(s.purge_hold(), None, "the confirmed date is remembered");
}

#[test]
fn a_clock_in_2083_holds_the_purge_and_keeps_every_encounter() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_encounters(&tmp, 22);
    {
        let mut s = reopen(&tmp, YEAR_2083).unwrap();
        assert_eq!(s.encounter_count(), 22);
        assert!(s.purge_hold().is_some());
        // Running on in 2083: ticks across days, flushes, a clean stop.
        for i in 0..3 {
            assert_eq!(s.tick(UnixTime(YEAR_2083 + i * DAY_SECONDS)).unwrap(), None);
        }
        s.flush_clean(UnixTime(YEAR_2083 + 3 * DAY_SECONDS))
            .unwrap();
        assert_eq!(s.encounter_count(), 22);
        assert_eq!(s.known_good_time(), UnixTime(NOON), "not moved by 2083");
    }
    // Still 2083 on the next start: still held.
    let s = reopen(&tmp, YEAR_2083 + 4 * DAY_SECONDS).unwrap();
    assert_eq!(s.encounter_count(), 22);
    assert!(s.purge_hold().is_some());
    drop(s);
    // The clock is fixed: nothing was lost, nothing is held.
    let s = reopen(&tmp, NOON + 3600).unwrap();
    assert_eq!(s.encounter_count(), 22);
    assert_eq!(s.purge_hold(), None);
}

#[test]
fn a_clock_jump_larger_than_retention_between_two_ticks_holds_the_purge() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_encounters(&tmp, 4);
    let mut s = reopen(&tmp, NOON + 10).unwrap();
    assert_eq!(s.tick(UnixTime(NOON + 20)).unwrap(), None);
    // Between two ticks the clock moves 15 days ahead.
    let jumped = NOON + 20 + 15 * DAY_SECONDS;
    assert_eq!(s.tick(UnixTime(jumped)).unwrap(), None);
    assert_eq!(s.encounter_count(), 4);
    assert_eq!(
        s.purge_hold().map(|h| h.known_good),
        Some(UnixTime(NOON)),
        "held"
    );
    // It comes back: the hold ends, and the ordinary purge keeps them all.
    let r = s
        .tick(UnixTime(NOON + 30))
        .unwrap()
        .expect("the purge runs");
    assert_eq!(r.encounters, 0);
    assert_eq!(s.purge_hold(), None);
    assert_eq!(s.encounter_count(), 4);
    // A day at a time, the ordinary rule still forgets old days.
    let mut t = NOON + 30;
    for _ in 0..15 {
        t += DAY_SECONDS;
        s.tick(UnixTime(t)).unwrap();
    }
    assert_eq!(s.purge_hold(), None);
    assert_eq!(s.encounter_count(), 0, "purged by the ordinary rule");
}

/// Puts a 0-byte unfinished snapshot file in the database, newer than any
/// real one: what a snapshot write interrupted by a full disk leaves.
fn add_unfinished_snapshot(tmp: &tempfile::TempDir) {
    std::fs::write(
        data_dir(tmp)
            .join(DB_DIR)
            .join("snap.7FFFFFFFFFFFFFFF.generating"),
        b"",
    )
    .unwrap();
}

fn leftovers(tmp: &tempfile::TempDir) -> Vec<String> {
    std::fs::read_dir(data_dir(tmp))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".recovering") || n.ends_with(".reading"))
        .collect()
}

#[test]
fn recovery_keeps_at_least_every_record_a_plain_open_reads() {
    type Damage = fn(&tempfile::TempDir);
    let flip_one: Damage = |tmp| {
        let s = reopen(tmp, NOON).unwrap();
        let (k, mut v) = s
            .backend()
            .scan_prefix(Tree::Encounters, &[])
            .unwrap()
            .remove(2);
        v[20] ^= 1;
        s.backend()
            .apply(vec![(Tree::Encounters, k, Some(v))])
            .unwrap();
        s.backend().flush().unwrap();
    };
    let both: Damage = |tmp| {
        let s = reopen(tmp, NOON).unwrap();
        let (k, mut v) = s
            .backend()
            .scan_prefix(Tree::Encounters, &[])
            .unwrap()
            .remove(0);
        v[20] ^= 1;
        s.backend()
            .apply(vec![(Tree::Encounters, k, Some(v))])
            .unwrap();
        s.backend().flush().unwrap();
        drop(s);
        add_unfinished_snapshot(tmp);
    };
    // (what is done to a store of 12 encounters, the encounters readable)
    let cases: [(&str, Damage, usize); 4] = [
        ("undamaged", |_| {}, 12),
        ("an unfinished snapshot", add_unfinished_snapshot, 12),
        ("one record flipped", flip_one, 11),
        ("a flipped record and an unfinished snapshot", both, 11),
    ];
    for (name, damage, readable) in cases {
        let tmp = tempfile::tempdir().unwrap();
        store_with_encounters(&tmp, 12);
        damage(&tmp);
        if let Err(e) = reopen(&tmp, NOON) {
            let msg = e.to_string();
            assert!(matches!(e, StoreError::Damaged { .. }), "{name}: {msg}");
            assert!(
                !msg.contains("None") && !msg.contains("Some("),
                "{name}: {msg}"
            );
        }
        let report = ContactStore::recover(&data_dir(&tmp), &key_source(tmp.path()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            report.set_aside.exists(),
            "{name}: the old database is kept"
        );
        assert_eq!(leftovers(&tmp), Vec::<String>::new(), "{name}");
        let s = reopen(&tmp, NOON).unwrap_or_else(|e| panic!("{name}: after recovery: {e}"));
        assert!(
            s.encounter_count() >= readable,
            "{name}: {} encounters after recovery, {readable} were readable",
            s.encounter_count()
        );
    }
}

#[test]
fn an_unfinished_snapshot_is_named_in_words_not_as_none() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_encounters(&tmp, 2);
    add_unfinished_snapshot(&tmp);
    let msg = reopen(&tmp, NOON).unwrap_err().to_string();
    assert!(
        msg.contains("unfinished snapshot file") && msg.contains(".generating"),
        "{msg}"
    );
    assert!(!msg.contains("None"), "{msg}");
}

#[test]
fn a_refused_recovery_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_encounters(&tmp, 2);
    let open = reopen(&tmp, NOON).unwrap();
    let err = ContactStore::recover(&data_dir(&tmp), &key_source(tmp.path())).unwrap_err();
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert_eq!(leftovers(&tmp), Vec::<String>::new());
    drop(open);
    // A wrong key: refused before anything is touched.
    let other = tmp.path().join("other.key");
    create_key_file(&other).unwrap();
    let before = snapshot(&data_dir(&tmp));
    let err = ContactStore::recover(&data_dir(&tmp), &KeySource::KeyFile(other)).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey), "{err}");
    assert_eq!(snapshot(&data_dir(&tmp)), before);
}

#[test]
fn check_writes_nothing_into_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_encounters(&tmp, 5);
    let before = snapshot(&data_dir(&tmp));
    let r = ContactStore::check(
        &data_dir(&tmp),
        &key_source(tmp.path()),
        StoreConfig::default(),
        UnixTime(NOON + 60),
    )
    .unwrap();
    assert_eq!(r.encounters, 5);
    assert_eq!(r.purge_held, None);
    assert_eq!(snapshot(&data_dir(&tmp)), before);
    // In 2083: reported as held, and still nothing written.
    let r = ContactStore::check(
        &data_dir(&tmp),
        &key_source(tmp.path()),
        StoreConfig::default(),
        UnixTime(YEAR_2083),
    )
    .unwrap();
    assert_eq!(r.encounters, 5);
    assert!(r.purge_held.is_some());
    // With an unfinished snapshot: damaged, named, nothing written.
    add_unfinished_snapshot(&tmp);
    let before = snapshot(&data_dir(&tmp));
    let err = ContactStore::check(
        &data_dir(&tmp),
        &key_source(tmp.path()),
        StoreConfig::default(),
        UnixTime(NOON + 60),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unfinished snapshot"), "{err}");
    assert_eq!(snapshot(&data_dir(&tmp)), before);
}

#[test]
fn the_fingerprint_filters_find_a_held_announcement_are_rebuilt_after_a_restart_and_purged_with_its_day()
 {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = World::new();
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let enc = encounter(&mut rng, NOON - 3600);
    let (v, bytes) = w.announcement(NOON, &enc.tokens[..1]);
    let fp = token_fingerprint(&enc.tokens[0]);
    {
        let mut s = create(&tmp);
        s.put_announcement(&v, &bytes, UnixTime(NOON)).unwrap();
        assert_eq!(s.chunks_with(fp), vec![v.id()]);
        assert!(s.chunks_with(fp ^ 1).is_empty());
        s.flush().unwrap();
    }
    // After a restart the filters are not on disk: until the node indexes
    // the announcement again it is a candidate for every fingerprint (never
    // missed), then only for its own.
    let mut s = reopen(&tmp, NOON + 60).unwrap();
    assert_eq!(s.chunks_with(fp ^ 1), vec![v.id()]);
    assert!(s.index_announcement(&v));
    assert_eq!(s.chunks_with(fp), vec![v.id()]);
    assert!(s.chunks_with(fp ^ 1).is_empty());
    // An encounter closing now is matched through the filters, against the
    // ledger that ingested the chunk before it closed.
    let trusted = [w.issuer.public()];
    let ctx = VerifyContext {
        network_id: "store-test",
        trusted_issuers: &trusted,
        now: UnixTime(NOON + 60),
    };
    let risk = RiskConfig::builder()
        .min_contact_minutes(0)
        .build()
        .unwrap();
    let mut ledger = ExposureLedger::new();
    assert_eq!(
        s.ingest_announcement(&mut ledger, &v, &risk),
        MatchOutcome::NoNewMatch
    );
    let refs = s.add_encounters(&[enc], UnixTime(NOON + 60)).unwrap();
    let found = s
        .match_new_encounters(&mut ledger, &refs, &risk, &ctx)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].encounters, refs);
    // The fingerprint is not in the files in clear.
    s.flush().unwrap();
    let files = snapshot(&data_dir(&tmp));
    for (path, content) in &files {
        assert!(
            !contains(content, &fp.to_be_bytes()[2..]),
            "{} holds a fingerprint in clear",
            path.display()
        );
    }
    // Once its day is forgotten, so is its filter.
    let later = NOON + 16 * DAY_SECONDS;
    s.purge(UnixTime(later)).unwrap();
    assert!(s.chunks_with(fp).is_empty());
    drop(s);
    let s = reopen(&tmp, later).unwrap();
    assert!(s.chunks_with(fp).is_empty());
}
