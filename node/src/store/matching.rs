//! The token index over the stored encounters, for matching.

use super::*;
use meshtrace_protocol::{ExposureLedger, MatchOutcome, RiskConfig};

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
}

impl<S: Store> ContactStore<S> {
    /// Ingests one verified chunk into `ledger`, matched against every
    /// stored encounter (see [`ExposureLedger::ingest`]).
    pub(crate) fn ingest_announcement(
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

    /// Matches the just-stored encounters `fresh` against every chunk in
    /// `ledger` (see [`ExposureLedger::match_encounters`]).
    pub(crate) fn match_new_encounters(
        &self,
        ledger: &mut ExposureLedger,
        fresh: &[EncounterRef],
        risk: &RiskConfig,
    ) -> Vec<Exposure> {
        let encounters = &self.encounters;
        let index = TokenIndex::build(
            fresh
                .iter()
                .filter_map(|r| encounters.get(r).map(|e| (*r, e)))
                .flat_map(|(r, e)| e.encounter.tokens.iter().map(move |t| (*t, r))),
        );
        ledger.match_encounters(
            &index,
            |r| encounters.get(&r).map(|e| e.encounter.clone()),
            risk,
        )
    }
}
