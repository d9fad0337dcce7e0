//! Unit tests of the token index, the exposure ledger and report-token
//! selection.

use super::*;

fn tok(i: u64) -> EncounterToken {
    // Spread tokens over the whole space like random ones.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&h.to_be_bytes());
    t[8..].copy_from_slice(&i.to_be_bytes());
    EncounterToken(t)
}

#[test]
fn index_finds_exactly_what_was_inserted() {
    for n in [0u64, 1, 2, 3, 100, 1000] {
        let idx = TokenIndex::build((0..n).map(|i| (tok(i), i)));
        assert_eq!(idx.len(), n as usize);
        for i in 0..n {
            assert!(idx.contains(&tok(i)));
            assert_eq!(idx.lookup(&tok(i)).collect::<Vec<_>>(), vec![i]);
        }
        for i in n..n + 1000 {
            assert!(!idx.contains(&tok(i)));
        }
        // Same prefix, different tail: a miss.
        let mut t = tok(0);
        t.0[15] ^= 1;
        assert!(!idx.contains(&t));
    }
}

#[test]
fn extreme_tokens() {
    let lo = EncounterToken([0; 16]);
    let hi = EncounterToken([0xff; 16]);
    let idx = TokenIndex::build([(lo, 1), (hi, 2)]);
    assert_eq!(idx.lookup(&lo).collect::<Vec<_>>(), vec![1]);
    assert_eq!(idx.lookup(&hi).collect::<Vec<_>>(), vec![2]);
    assert_eq!(idx.count_hits(&[lo, hi, tok(5)]), 2);
}

#[test]
fn duplicate_token_maps_to_all_its_encounters() {
    let idx = TokenIndex::build([(tok(1), 10), (tok(1), 11), (tok(2), 12)]);
    assert_eq!(idx.lookup(&tok(1)).collect::<Vec<_>>(), vec![10, 11]);
}

mod ledger {
    use super::tok;
    use crate::announce::{
        AnnouncementId, VerifiedAnnouncement, VerifyContext, build_announcements,
    };
    use crate::cert::{Certificate, CertificateParams};
    use crate::encounter::Encounter;
    use crate::encounter::MAX_ATTENUATION_DB;
    use crate::keys::{IssuerSecretKey, ReportSecretKey};
    use crate::matching::{
        EncounterRef, ExposureLedger, MAX_SAMPLING_SHIFT, MatchOutcome,
        REPORT_ASSUMED_PEER_TX_POWER_DBM, REPORT_MAX_ATTENUATION_DB, REPORT_SAMPLE_ABOVE_DB,
        REPORT_TARGET_ENTRIES, TokenIndex, assumed_peer_tx_power, is_interior, kept_by_sampling,
        select_report_tokens,
    };
    use crate::risk::{RiskConfig, RiskModel};
    use crate::time::UnixTime;
    use crate::token::{EncounterToken, token_fingerprint};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use std::collections::HashMap;

    const T0: u64 = 1_800_000_000;

    /// An encounter of `minutes` at 50 dB ending at T0, with `tokens`.
    fn enc(tokens: &[EncounterToken], minutes: u32) -> Encounter {
        Encounter {
            tokens: tokens.to_vec(),
            first_seen: UnixTime(T0 - u64::from(minutes) * 60),
            last_seen: UnixTime(T0),
            profile: vec![(50, minutes * 60)],
            sightings: minutes,
        }
    }

    /// A one-chunk report announcing `tokens`, verified.
    fn report(seed: u64, tokens: &[EncounterToken]) -> VerifiedAnnouncement {
        report_chunks(seed, seed, tokens, -8, 1024).remove(0)
    }

    /// Every chunk of a report by the report key drawn from `key_seed`
    /// (the issuer from `seed`), announcing `tokens` with TX power
    /// `tx_power` under a cap of `max_tokens`, verified.
    fn report_chunks(
        seed: u64,
        key_seed: u64,
        tokens: &[EncounterToken],
        tx_power: i8,
        max_tokens: u32,
    ) -> Vec<VerifiedAnnouncement> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let key = ReportSecretKey::generate(&mut ChaCha20Rng::seed_from_u64(key_seed));
        let cert = Certificate::issue(
            &issuer,
            CertificateParams {
                network_id: "campus".into(),
                report_key: key.public(),
                valid_from: UnixTime(T0),
                valid_until: UnixTime(T0 + 86_400),
                window_first_day: UnixTime(T0).day().minus(4),
                window_last_day: UnixTime(T0).day(),
                max_tokens,
            },
        )
        .unwrap();
        let chunks =
            build_announcements(&key, &cert, tokens, tx_power, UnixTime(T0), &mut rng).unwrap();
        let trusted = [issuer.public()];
        chunks
            .iter()
            .map(|c| {
                let v = VerifiedAnnouncement::verify(
                    &c.bytes,
                    &VerifyContext {
                        network_id: "campus",
                        trusted_issuers: &trusted,
                        now: UnixTime(T0),
                    },
                )
                .unwrap();
                assert_eq!(v.tx_power(), tx_power);
                v
            })
            .collect()
    }

    #[test]
    fn matches_are_scored_with_the_reports_tx_power() {
        // 30 minutes heard at a level of 68 dB. Under `cwa`, from a reporter
        // at −8 dBm that is 60 dB (weight 0.5: 15 weighted minutes, high
        // risk); from one at +4 dBm, 72 dB (weight 0, not high risk).
        let cwa = RiskConfig::builder().model(RiskModel::Cwa).build().unwrap();
        let mut e = enc(&[tok(1)], 30);
        e.profile = vec![(68, 30 * 60)];
        let encs: HashMap<EncounterRef, Encounter> = [(1, e)].into();
        let idx = index(&encs);
        for (tx, weighted, high) in [(-8i8, 15.0, true), (4, 0.0, false)] {
            let ann =
                report_chunks(3, 30 + tx.unsigned_abs() as u64, &[tok(1)], tx, 1024).remove(0);
            let mut ledger = ExposureLedger::new();
            let MatchOutcome::Exposure(x) =
                ledger.ingest(&ann, &idx, |r| encs.get(&r).cloned(), &cwa)
            else {
                panic!("tx {tx}: expected an exposure");
            };
            assert!(
                (x.days[0].weighted_minutes - weighted).abs() < 1e-9,
                "tx {tx}"
            );
            assert_eq!(x.high_risk, high, "tx {tx}");
        }
    }

    #[test]
    fn a_chunk_with_another_tx_power_than_its_report_is_a_conflict() {
        let risk = RiskConfig::default();
        let tokens: Vec<EncounterToken> = (0..3000).map(tok).collect();
        // Two 2-chunk reports by the same report key, at −8 and at +4 dBm.
        let a = report_chunks(4, 40, &tokens, -8, 4096);
        let b = report_chunks(4, 40, &tokens, 4, 4096);
        assert_eq!((a.len(), b.len()), (2, 2));
        assert_eq!(a[0].report_key(), b[1].report_key());
        // The token with the largest fingerprint: at least 2999 entries
        // sort below it, so it is in chunk 1 (entries 2048..4096).
        let last = *tokens.iter().max_by_key(|t| token_fingerprint(t)).unwrap();
        let mut encs: HashMap<EncounterRef, Encounter> = HashMap::new();
        encs.insert(1, enc(&[last], 20));
        let idx = index(&encs);
        let get = |r| encs.get(&r).cloned();
        let mut ledger = ExposureLedger::new();
        assert_eq!(
            ledger.ingest(&a[0], &idx, get, &risk),
            MatchOutcome::NoNewMatch
        );
        // Chunk 1 of the other variant: a free index, but another TX power.
        assert_eq!(
            ledger.ingest(&b[1], &idx, get, &risk),
            MatchOutcome::Conflict
        );
        assert_eq!(ledger.slot(&a[0].report_key(), 1), None);
        // The report's own chunk 1 still counts, scored at −8 dBm.
        assert!(matches!(
            ledger.ingest(&a[1], &idx, get, &risk),
            MatchOutcome::Exposure(_)
        ));
    }

    fn index(encs: &HashMap<EncounterRef, Encounter>) -> TokenIndex {
        TokenIndex::build(
            encs.iter()
                .flat_map(|(r, e)| e.tokens.iter().map(move |t| (*t, *r))),
        )
    }

    #[test]
    fn an_encounter_closing_after_the_chunk_arrived_is_matched_once() {
        let risk = RiskConfig::default();
        let ann = report(1, &[tok(1), tok(2)]);
        let mut ledger = ExposureLedger::new();
        let mut encs: HashMap<EncounterRef, Encounter> = HashMap::new();
        // The chunk arrives before any encounter closed: no match yet.
        let out = ledger.ingest(&ann, &index(&encs), |r| encs.get(&r).cloned(), &risk);
        assert_eq!(out, MatchOutcome::NoNewMatch);
        // The device's fingerprint index: fingerprint -> chunks.
        let held = |fp: u64| -> Vec<AnnouncementId> {
            if ann.fingerprints().binary_search(&fp).is_ok() {
                vec![ann.id()]
            } else {
                Vec::new()
            }
        };
        // Then the encounter holding tok(2) closes.
        encs.insert(7, enc(&[tok(2)], 30));
        let fresh = [(tok(2), 7)];
        let found = ledger.match_encounters(&fresh, held, |r| encs.get(&r).cloned(), &risk);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].report_key, ann.report_key());
        assert_eq!(found[0].encounters, vec![7]);
        assert!(found[0].high_risk);
        // Matching it again finds nothing new; nor does an unrelated one.
        assert!(
            ledger
                .match_encounters(&fresh, held, |r| encs.get(&r).cloned(), &risk)
                .is_empty()
        );
        encs.insert(8, enc(&[tok(99)], 30));
        let other = [(tok(99), 8)];
        assert!(
            ledger
                .match_encounters(&other, held, |r| encs.get(&r).cloned(), &risk)
                .is_empty()
        );
        // An index naming a chunk that was never ingested (or naming it for
        // an encounter outside its window) finds nothing.
        let stranger = report(9, &[tok(5)]);
        encs.insert(9, enc(&[tok(5)], 30));
        assert!(
            ledger
                .match_encounters(
                    &[(tok(5), 9)],
                    |_| vec![stranger.id()],
                    |r| encs.get(&r).cloned(),
                    &risk
                )
                .is_empty()
        );
        // Re-ingesting the chunk is a duplicate.
        let out = ledger.ingest(&ann, &index(&encs), |r| encs.get(&r).cloned(), &risk);
        assert_eq!(out, MatchOutcome::Duplicate);
    }

    #[test]
    fn a_restored_exposure_is_not_found_again_and_expired_chunks_are_forgotten() {
        let risk = RiskConfig::default();
        let ann = report(2, &[tok(1)]);
        let mut encs: HashMap<EncounterRef, Encounter> = HashMap::new();
        encs.insert(3, enc(&[tok(1)], 30));
        let mut ledger = ExposureLedger::new();
        ledger.restore(ann.report_key(), [3]);
        let out = ledger.ingest(&ann, &index(&encs), |r| encs.get(&r).cloned(), &risk);
        assert_eq!(out, MatchOutcome::NoNewMatch);
        assert_eq!(ledger.slot(&ann.report_key(), 0), Some(ann.id()));
        assert_eq!(ledger.forget_expired(UnixTime(T0)), 0);
        assert_eq!(ledger.forget_expired(ann.expires_at()), 1);
        assert!(ledger.is_empty());
        assert_eq!(ledger.slot(&ann.report_key(), 0), None);
    }

    #[test]
    fn report_tokens_are_the_primary_tokens_of_the_longest_encounters_under_the_cap() {
        let day = UnixTime(T0).day();
        let short = enc(&[tok(1)], 0); // no exposure seconds
        let long = enc(&[tok(10), tok(11)], 40);
        let mid = enc(&[tok(20)], 20);
        let mut old = enc(&[tok(200)], 30);
        old.first_seen = UnixTime(T0 - 10 * 86_400);
        old.last_seen = old.first_seen;
        let all = [short, mid, long, old];
        // One token per encounter, its primary (first) one, longest first.
        let sel = select_report_tokens(&all, (day.minus(4), day), 60, 64, -8);
        assert_eq!(sel.tokens, vec![tok(10), tok(20)]);
        assert_eq!((sel.dropped_for_cap, sel.sampling_shift), (0, 0));
        // 70 encounters under a cap of 64: the 64 longest.
        let many: Vec<Encounter> = (0..70)
            .map(|i| enc(&[tok(1000 + i)], 2 + i as u32))
            .collect();
        let sel = select_report_tokens(&many, (day.minus(4), day), 60, 64, -8);
        let want: Vec<EncounterToken> = (6..70).rev().map(|i| tok(1000 + i)).collect();
        assert_eq!(sel.tokens, want);
        assert_eq!(sel.dropped_for_cap, 6);
    }

    /// An interior encounter of 15 minutes whose estimated attenuation
    /// (level + the assumed −21 dBm) is `estimate` dB.
    fn interior(i: u64, estimate: u8) -> Encounter {
        let mut e = enc(&[tok(i), tok(i + 100_000), tok(i + 200_000)], 15);
        e.profile = vec![(estimate + 21, 15 * 60)];
        e
    }

    #[test]
    fn far_interior_encounters_are_sampled_to_the_target_and_the_rest_are_kept() {
        let day = UnixTime(T0).day();
        let w = (day.minus(4), day);
        let sampled_db = REPORT_SAMPLE_ABOVE_DB + 1;
        // 600 far interior encounters, 100 near interior ones, 100 far
        // edges (2 tokens: not interior).
        let far: Vec<Encounter> = (0..600u64)
            .map(|i| interior(1000 + i, sampled_db))
            .collect();
        let near: Vec<Encounter> = (0..100u64)
            .map(|i| interior(5000 + i, REPORT_SAMPLE_ABOVE_DB))
            .collect();
        let edges: Vec<Encounter> = (0..100u64)
            .map(|i| {
                let mut e = enc(&[tok(20_000 + i), tok(30_000 + i)], 10);
                e.profile = vec![(sampled_db + 21, 600)];
                e
            })
            .collect();
        assert!(far.iter().chain(&near).all(is_interior) && !edges.iter().any(is_interior));
        let all: Vec<Encounter> = far.iter().chain(&near).chain(&edges).cloned().collect();
        // 800 > 512. Shift 1 keeps the far interior ones whose primary
        // token's last byte is even (tok(i) ends with i's low byte): 300 +
        // 100 + 100 = 500.
        let sel = select_report_tokens(&all, w, 60, 4096, -8);
        assert_eq!(sel.sampling_shift, 1);
        assert_eq!(sel.dropped_by_sampling, 300);
        assert!(sel.tokens.len() <= REPORT_TARGET_ENTRIES);
        let mut got = sel.tokens.clone();
        got.sort();
        let mut want: Vec<EncounterToken> = (0..600u64)
            .filter(|i| (1000 + i) % 2 == 0)
            .map(|i| tok(1000 + i))
            .chain((0..100u64).map(|i| tok(5000 + i)))
            .chain((0..100u64).map(|i| tok(20_000 + i)))
            .collect();
        want.sort();
        assert_eq!(got, want);
        // The rule tests the low bits of the last byte only.
        let mut t = tok(7);
        t.0[15] = 0b1000;
        assert!(kept_by_sampling(&t, 3) && !kept_by_sampling(&t, 4));
        assert!(kept_by_sampling(&tok(3), 0));
        // Few enough encounters: nothing is sampled.
        let sel = select_report_tokens(&all[..500], w, 60, 4096, -8);
        assert_eq!((sel.sampling_shift, sel.dropped_by_sampling), (0, 0));
        assert_eq!(sel.tokens.len(), 500);
        // Near encounters are never sampled, even when they alone exceed
        // the target; far ones then go down to the largest shift.
        let crowd: Vec<Encounter> = (0..600u64)
            .map(|i| interior(40_000 + i, REPORT_SAMPLE_ABOVE_DB))
            .chain((0..160u64).map(|i| interior(50_000 + i * 16, sampled_db)))
            .collect();
        let sel = select_report_tokens(&crowd, w, 60, 4096, -8);
        assert_eq!(sel.sampling_shift, MAX_SAMPLING_SHIFT);
        // tok(50_000 + 16 i) ends with a multiple of 16: all kept.
        assert_eq!((sel.tokens.len(), sel.dropped_by_sampling), (760, 0));
    }

    #[test]
    fn report_selection_leaves_out_encounters_measured_far_but_keeps_unknown_ones() {
        let day = UnixTime(T0).day();
        // The reporter transmits at 0 dBm: it assumes −21 dBm for the
        // other side, so a level of 85 + 21 = 106 dB is the furthest kept.
        let edge_level = REPORT_MAX_ATTENUATION_DB + 21;
        let near = enc(&[tok(1)], 20);
        let mut edge = enc(&[tok(2)], 20);
        edge.profile = vec![(edge_level, 20 * 60)];
        let mut far = enc(&[tok(3)], 20);
        far.profile = vec![(edge_level + 1, 20 * 60)];
        // Mostly far, with some near seconds: the median decides (far).
        let mut mostly_far = enc(&[tok(4)], 20);
        mostly_far.profile = vec![(50, 9 * 60), (110, 11 * 60)];
        // The radio could not measure RSSI: kept (nothing says it was far).
        let mut unknown = enc(&[tok(5)], 20);
        unknown.profile = vec![(MAX_ATTENUATION_DB, 20 * 60)];
        let all = [near, edge, far, mostly_far, unknown];
        let sel = select_report_tokens(&all, (day.minus(4), day), 60, 4096, 0);
        assert_eq!(sel.tokens, vec![tok(1), tok(2), tok(5)]);
        assert_eq!(sel.dropped_as_far, 2);
        assert_eq!(all[3].median_level_db(), Some(110));
        assert_eq!(all[4].median_level_db(), None);
        // A reporter configured below −21 dBm assumes its own TX power for
        // the other side: at −30 dBm the edge moves 9 dB further out, to
        // 115 dB, and keeps the levels of 107 and 110 dB too.
        let sel = select_report_tokens(&all, (day.minus(4), day), 60, 4096, -30);
        assert_eq!(sel.tokens, vec![tok(1), tok(2), tok(3), tok(4), tok(5)]);
        assert_eq!(sel.dropped_as_far, 0);
        let sel = select_report_tokens(&all, (day.minus(4), day), 60, 4096, -35);
        assert_eq!(sel.tokens.len(), 5);
    }

    #[test]
    fn report_selection_leaves_out_no_more_than_knowing_the_peer_tx_power_would() {
        // With the other side's TX power `peer` known (as it was when frames
        // carried it), an encounter was kept when peer + level ≤ 85 dB. The
        // estimate keeps every such encounter for any peer at or above the
        // assumed TX power, whatever the reporter's own (the config's
        // range, −100..=20 dBm).
        for own in -100i8..=20 {
            let assumed = assumed_peer_tx_power(own);
            assert!(assumed <= REPORT_ASSUMED_PEER_TX_POWER_DBM && assumed <= own);
            for level in 0u8..255 {
                let mut e = enc(&[tok(1)], 20);
                e.profile = vec![(level, 20 * 60)];
                let day = UnixTime(T0).day();
                let kept = !select_report_tokens([&e], (day, day), 60, 64, own)
                    .tokens
                    .is_empty();
                for peer in assumed..=20 {
                    let known_keeps =
                        i32::from(peer) + i32::from(level) <= i32::from(REPORT_MAX_ATTENUATION_DB);
                    assert!(
                        kept || !known_keeps,
                        "own {own}, peer {peer}, level {level}"
                    );
                }
            }
        }
    }

    #[test]
    fn fingerprint_lookup_finds_every_token_with_that_prefix_and_no_other() {
        let a = tok(7);
        let mut same_prefix = a;
        same_prefix.0[7] ^= 0xff; // bits 56..63: outside the fingerprint
        same_prefix.0[15] ^= 1;
        let mut other = a;
        other.0[6] ^= 1; // inside the fingerprint
        let idx = TokenIndex::build([(a, 1), (same_prefix, 2), (other, 3), (tok(8), 4)]);
        let f = token_fingerprint(&a);
        assert_eq!(token_fingerprint(&same_prefix), f);
        let mut hits: Vec<EncounterRef> = idx.lookup_fingerprint(f).collect();
        hits.sort_unstable();
        assert_eq!(hits, vec![1, 2]);
        assert_eq!(
            idx.lookup_fingerprint(token_fingerprint(&other))
                .collect::<Vec<_>>(),
            vec![3]
        );
        assert_eq!(idx.lookup_fingerprint(f ^ 0x100).count(), 0);
        assert_eq!(idx.lookup_fingerprint(u64::MAX).count(), 0, "out of range");
        assert_eq!(TokenIndex::default().lookup_fingerprint(f).count(), 0);
    }
}
