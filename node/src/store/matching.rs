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

/// The in-memory filter of one held announcement's fingerprints
/// (`docs/protocol.md` §15.15): a binary fuse filter with 16-bit
/// fingerprints (`xorf`), about 18 bits per entry, false-positive rate about
/// 2⁻¹⁶ per lookup; or the sorted fingerprints themselves in the rare case
/// the filter cannot be built.
pub(crate) enum FingerprintFilter {
    /// The usual case.
    Fuse(xorf::BinaryFuse16),
    /// The fingerprints, sorted (no filter could be built).
    Exact(Vec<u64>),
}

impl FingerprintFilter {
    /// The filter of `fingerprints` (sorted, distinct: as
    /// [`VerifiedAnnouncement::fingerprints`] returns them).
    pub(crate) fn new(fingerprints: Vec<u64>) -> FingerprintFilter {
        if fingerprints.is_empty() {
            return FingerprintFilter::Exact(fingerprints);
        }
        match xorf::BinaryFuse16::try_from(&fingerprints) {
            Ok(f) => FingerprintFilter::Fuse(f),
            Err(_) => FingerprintFilter::Exact(fingerprints),
        }
    }

    /// Whether the announcement may carry `fingerprint` (never `false` for
    /// one it carries).
    pub(crate) fn may_hold(&self, fingerprint: u64) -> bool {
        use xorf::Filter;
        match self {
            FingerprintFilter::Fuse(f) => f.contains(&fingerprint),
            FingerprintFilter::Exact(v) => v.binary_search(&fingerprint).is_ok(),
        }
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
        assert!(matches!(filter, FingerprintFilter::Fuse(_)));
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
    fn an_empty_announcement_admits_nothing() {
        let filter = FingerprintFilter::new(Vec::new());
        assert!(!filter.may_hold(0));
        assert!(!filter.may_hold(12345));
    }
}
