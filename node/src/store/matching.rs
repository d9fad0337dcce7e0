//! The token index over the stored encounters, for matching.

use super::*;

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
