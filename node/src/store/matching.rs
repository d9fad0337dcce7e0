//! Matching against the store: the token index over the stored encounters
//! (for a newly received announcement), and the fingerprint filters of the
//! held announcements, in memory at about 18 bits per entry (for encounters
//! that close later), so that no announcement's entries stay in memory
//! (`docs/protocol.md` §15.15).

use super::*;
use meshtrace_protocol::{
    EncounterToken, ExposureLedger, MatchOutcome, RiskConfig, VerifyContext, token_fingerprint,
};

impl<S: Store> ContactStore<S> {
    /// The token index over every stored encounter (rebuilt lazily after
    /// writes).
    pub fn token_index(&mut self) -> &TokenIndex {
        let encs = &self.encounters;
        self.index.get_or_insert_with(|| {
            TokenIndex::build(
                encs.iter()
                    .flat_map(|(r, e)| e.encounter.tokens.iter().map(move |t| (*t, *r))),
            )
        })
    }

    /// The stored encounters matching one announcement chunk (within its
    /// certified window), using the token index.
    pub fn match_announcement(&mut self, ann: &VerifiedAnnouncement) -> Vec<EncounterRef> {
        self.token_index();
        let encounters = &self.encounters;
        match &self.index {
            Some(index) => meshtrace_protocol::match_announcement(ann, index, |r| {
                encounters.get(&r).map(|e| e.day)
            }),
            None => Vec::new(),
        }
    }

    /// Indexes a held announcement in memory: builds the filter of its
    /// fingerprints (§15.15) unless it has one. The node calls it for every
    /// held announcement when it starts (the filters are not on disk);
    /// `false` when it is not stored.
    pub fn index_announcement(&mut self, ann: &VerifiedAnnouncement) -> bool {
        match self.announcements.get_mut(&ann.id()) {
            Some(entry) => {
                if entry.filter.is_none() {
                    entry.filter = Some(FingerprintFilter::new(ann.fingerprints()));
                }
                true
            }
            None => false,
        }
    }

    /// The stored announcements that may carry `fingerprint`: those whose
    /// filter holds it (a filter also admits, with probability about
    /// 2⁻¹⁶, one it does not hold) and those not indexed yet. Callers
    /// confirm against the announcement itself.
    pub fn chunks_with(&self, fingerprint: u64) -> Vec<AnnouncementId> {
        self.announcements
            .values()
            .filter(|a| a.filter.as_ref().is_none_or(|f| f.may_hold(fingerprint)))
            .map(|a| a.info.id)
            .collect()
    }
}

/// Bits of each filter key below its bucket: the false-positive rate of
/// a lookup is at most 2^-`FILTER_LOW_BITS` (§15.15).
const FILTER_LOW_BITS: u32 = 16;

/// A fingerprint's filter key: the top `bucket_bits + 16` bits of
/// splitmix64's finalizer of it (so that fingerprints close in value, which
/// share their top bits, fall apart).
fn filter_key(fingerprint: u64, bucket_bits: u32) -> u64 {
    let mut z = fingerprint.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z >> (64 - (bucket_bits + FILTER_LOW_BITS).min(64))
}

/// The in-memory filter of one held announcement's fingerprints
/// (`docs/protocol.md` §15.15): each fingerprint's key ([`filter_key`]:
/// `b + 16` bits, `2^b` the smallest power of two not below the entry
/// count), sorted and coded Elias–Fano style: a bit vector of `n + 2^b`
/// bits whose `i`-th set bit sits at `bucket_i + i` (a bucket is a key's
/// top `b` bits), then the keys' low 16 bits. About 18 bits per entry; a
/// lookup admits a fingerprint the announcement does not carry with
/// probability at most `n / 2^(b+16) ≤ 2^-16`, and never rejects one it
/// carries.
pub(crate) struct FingerprintFilter {
    /// `b`.
    bucket_bits: u32,
    /// Entries.
    len: u32,
    /// Words of the bit vector (bit `p` is bit `p % 64` of word `p / 64`),
    /// then the low parts, four to a word.
    data: Box<[u64]>,
}

impl FingerprintFilter {
    /// The filter of `fingerprints` (distinct, in any order).
    pub(crate) fn new(fingerprints: Vec<u64>) -> FingerprintFilter {
        let n = fingerprints.len();
        let bucket_bits = n.max(1).next_power_of_two().trailing_zeros();
        let mut keys: Vec<u64> = fingerprints
            .iter()
            .map(|&f| filter_key(f, bucket_bits))
            .collect();
        keys.sort_unstable();
        let bit_words = (n + (1usize << bucket_bits)).div_ceil(64);
        let mut data = vec![0u64; bit_words + n.div_ceil(4)].into_boxed_slice();
        for (i, &key) in keys.iter().enumerate() {
            let p = (key >> FILTER_LOW_BITS) as usize + i;
            data[p / 64] |= 1 << (p % 64);
            let low = key & 0xffff;
            data[bit_words + i / 4] |= low << (16 * (i % 4));
        }
        FingerprintFilter {
            bucket_bits,
            len: u32::try_from(n).unwrap_or(u32::MAX),
            data,
        }
    }

    fn bit_words(&self) -> usize {
        (self.len as usize + (1usize << self.bucket_bits)).div_ceil(64)
    }

    fn low(&self, i: usize) -> u64 {
        (self.data[self.bit_words() + i / 4] >> (16 * (i % 4))) & 0xffff
    }

    /// Position of the `j`-th (from 0) clear bit of the bit vector; the
    /// vector has `2^b` of them and `j < 2^b`.
    fn zero_at(&self, j: usize) -> usize {
        let mut left = j;
        for (w, word) in self.data[..self.bit_words()].iter().enumerate() {
            let zeros = word.count_zeros() as usize;
            if left < zeros {
                let mut x = !word;
                for _ in 0..left {
                    x &= x - 1;
                }
                return w * 64 + x.trailing_zeros() as usize;
            }
            left -= zeros;
        }
        usize::MAX
    }

    /// Whether the announcement may carry `fingerprint` (never `false` for
    /// one it carries).
    pub(crate) fn may_hold(&self, fingerprint: u64) -> bool {
        if self.len == 0 {
            return false;
        }
        let key = filter_key(fingerprint, self.bucket_bits);
        let bucket = (key >> FILTER_LOW_BITS) as usize;
        if bucket >= 1usize << self.bucket_bits {
            return false;
        }
        let low = key & 0xffff;
        // The bucket's entries are the set bits after its predecessor's
        // end (the clear bit closing bucket - 1); entry index = position -
        // bucket.
        let mut p = if bucket == 0 {
            0
        } else {
            self.zero_at(bucket - 1).saturating_add(1)
        };
        let total = self.len as usize + (1usize << self.bucket_bits);
        while p < total && self.data[p / 64] & (1 << (p % 64)) != 0 {
            if self.low(p - bucket) == low {
                return true;
            }
            p += 1;
        }
        false
    }
}

impl<S: Store> ContactStore<S> {
    /// Ingests one verified chunk into `ledger`, matched against every
    /// stored encounter (see [`ExposureLedger::ingest`]).
    pub fn ingest_announcement(
        &mut self,
        ledger: &mut ExposureLedger,
        ann: &VerifiedAnnouncement,
        risk: &RiskConfig,
    ) -> MatchOutcome {
        self.token_index();
        let encounters = &self.encounters;
        let empty = TokenIndex::default();
        let index = self.index.as_ref().unwrap_or(&empty);
        ledger.ingest(
            ann,
            index,
            |r| encounters.get(&r).map(|e| e.encounter.clone()),
            risk,
        )
    }

    /// Matches the just-stored encounters `fresh` against the chunks in
    /// `ledger` (see [`ExposureLedger::match_encounters`]): their tokens'
    /// fingerprints are looked up in the held announcements' filters, and
    /// only the announcements they admit are loaded, verified with `ctx` and
    /// checked to carry the fingerprint (a filter's false positive costs a
    /// load and nothing else).
    pub fn match_new_encounters(
        &self,
        ledger: &mut ExposureLedger,
        fresh: &[EncounterRef],
        risk: &RiskConfig,
        ctx: &VerifyContext<'_>,
    ) -> Result<Vec<Exposure>, StoreError> {
        let encounters = &self.encounters;
        let tokens: Vec<(EncounterToken, EncounterRef)> = fresh
            .iter()
            .filter_map(|r| encounters.get(r).map(|e| (*r, e)))
            .flat_map(|(r, e)| e.encounter.tokens.iter().map(move |t| (*t, r)))
            .collect();
        // Index lookups and loads first (they can fail); the ledger then
        // sees only confirmed chunks.
        let mut confirmed: HashMap<u64, Vec<AnnouncementId>> = HashMap::new();
        let mut loaded: HashMap<AnnouncementId, Option<Vec<u64>>> = HashMap::new();
        for (t, _) in &tokens {
            let fp = token_fingerprint(t);
            if confirmed.contains_key(&fp) {
                continue;
            }
            let mut ids = Vec::new();
            for id in self.chunks_with(fp) {
                if let std::collections::hash_map::Entry::Vacant(slot) = loaded.entry(id) {
                    let fps = self
                        .announcement_bytes(&id)?
                        .and_then(|b| VerifiedAnnouncement::verify(&b, ctx).ok())
                        .map(|v| v.fingerprints());
                    slot.insert(fps);
                }
                if loaded
                    .get(&id)
                    .and_then(Option::as_ref)
                    .is_some_and(|fps| fps.binary_search(&fp).is_ok())
                {
                    ids.push(id);
                }
            }
            confirmed.insert(fp, ids);
        }
        Ok(ledger.match_encounters(
            &tokens,
            |fp| confirmed.get(&fp).cloned().unwrap_or_default(),
            |r| encounters.get(&r).map(|e| e.encounter.clone()),
            risk,
        ))
    }
}

#[cfg(test)]
mod filter_tests {
    use super::FingerprintFilter;
    use rand::{SeedableRng, rngs::StdRng};
    use rand_core::Rng;

    const FP_MASK: u64 = (1 << 56) - 1;

    #[test]
    fn a_filter_holds_every_fingerprint_and_admits_few_others() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut held: Vec<u64> = (0..4096).map(|_| rng.next_u64() & FP_MASK).collect();
        held.sort_unstable();
        held.dedup();
        let filter = FingerprintFilter::new(held.clone());
        assert!(held.iter().all(|&f| filter.may_hold(f)));
        // 2^-16 per lookup: about 3 of 200,000 others.
        let others = (0..200_000)
            .map(|_| rng.next_u64() & FP_MASK)
            .filter(|f| held.binary_search(f).is_err())
            .filter(|&f| filter.may_hold(f))
            .count();
        assert!(others <= 20, "{others} false positives in 200,000");
    }

    #[test]
    fn every_size_holds_its_fingerprints_and_costs_about_18_bits_each() {
        let mut rng = StdRng::seed_from_u64(8);
        for n in [1usize, 2, 3, 63, 64, 65, 200, 255, 256, 257, 1024, 4096] {
            let mut held: Vec<u64> = (0..n).map(|_| rng.next_u64() & FP_MASK).collect();
            // Neighbours that share a bucket and the extremes of the range.
            held.push(held[0] | 1);
            held.push(0);
            held.push(FP_MASK);
            held.sort_unstable();
            held.dedup();
            let filter = FingerprintFilter::new(held.clone());
            for &f in &held {
                assert!(filter.may_hold(f), "{n}: lost {f:#x}");
            }
            let bits = filter.data.len() * 64;
            assert!(
                bits <= held.len() * 18 + 3 * 64 + (held.len().next_power_of_two() * 2),
                "{n}: {bits} bits for {} entries",
                held.len()
            );
        }
        // 256 entries: 576 bytes (the binary fuse filter took 764).
        let held: Vec<u64> = {
            let mut v: Vec<u64> = (0..256).map(|_| rng.next_u64() & FP_MASK).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        assert_eq!(FingerprintFilter::new(held).data.len() * 8, 576);
    }

    proptest::proptest! {
        /// Never a false negative, whatever the set.
        #[test]
        fn a_filter_never_rejects_a_fingerprint_it_holds(
            mut held in proptest::collection::vec(0u64..(1 << 56), 0..600),
            probe in 0u64..(1 << 56),
        ) {
            held.sort_unstable();
            held.dedup();
            let filter = FingerprintFilter::new(held.clone());
            for &f in &held {
                proptest::prop_assert!(filter.may_hold(f));
            }
            if held.binary_search(&probe).is_ok() {
                proptest::prop_assert!(filter.may_hold(probe));
            }
        }
    }

    #[test]
    fn an_empty_announcement_admits_nothing() {
        let filter = FingerprintFilter::new(Vec::new());
        assert!(!filter.may_hold(0));
        assert!(!filter.may_hold(12345));
    }
}
