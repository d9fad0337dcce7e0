//! Matching against the store: the token index over the stored encounters
//! (for a newly received announcement), and the fingerprint index over the
//! held announcements, on disk (for encounters that close later), so that
//! no announcement's entries stay in memory (`docs/protocol.md` §15.8).

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

    /// The fingerprint index prefix of `fingerprint` under one day tag.
    fn fingerprint_prefix(&self, tag: &[u8], fingerprint: u64) -> Vec<u8> {
        let mut k = tag.to_vec();
        let h = self.keys.lookup("fingerprint", &fingerprint.to_be_bytes());
        k.extend_from_slice(&h[..INDEX_FINGERPRINT_LEN]);
        k
    }

    /// The index keys of an announcement stored under `record_key`: one per
    /// distinct fingerprint, `day tag ‖ keyed hash of the fingerprint ‖ the
    /// record key's first bytes` (no value).
    pub(super) fn fingerprint_keys(
        &self,
        ann: &VerifiedAnnouncement,
        record_key: &[u8],
    ) -> Vec<Vec<u8>> {
        let tag = record_key.get(..DAY_TAG_LEN).unwrap_or_default();
        let id = index_id(record_key);
        ann.fingerprints()
            .into_iter()
            .map(|fp| {
                let mut k = self.fingerprint_prefix(tag, fp);
                k.extend_from_slice(&id);
                k
            })
            .collect()
    }

    /// Indexes a stored announcement's fingerprints when they are missing
    /// (a store written before the index existed); `false` when it is not
    /// stored.
    pub(crate) fn ensure_indexed(
        &mut self,
        ann: &VerifiedAnnouncement,
    ) -> Result<bool, StoreError> {
        let Some(key) = self.announcements.get(&ann.id()).map(|a| a.key.clone()) else {
            return Ok(false);
        };
        let keys = self.fingerprint_keys(ann, &key);
        let Some(first) = keys.first() else {
            return Ok(true);
        };
        if self.backend.get(Tree::Fingerprints, first)?.is_none() {
            self.backend.apply(
                keys.into_iter()
                    .map(|k| (Tree::Fingerprints, k, Some(Vec::new())))
                    .collect(),
            )?;
            self.dirty = true;
        }
        Ok(true)
    }

    /// The stored announcements whose index lists `fingerprint` (every
    /// retained day's part of the index is looked up).
    pub fn chunks_with(&self, fingerprint: u64) -> Result<Vec<AnnouncementId>, StoreError> {
        let mut out = Vec::new();
        for entry in self.days.values() {
            let prefix = self.fingerprint_prefix(&entry.tag, fingerprint);
            for (k, _) in self.backend.scan_prefix(Tree::Fingerprints, &prefix)? {
                let mut id = [0u8; INDEX_ID_LEN];
                if let Some(b) = k.get(prefix.len()..prefix.len() + INDEX_ID_LEN) {
                    id.copy_from_slice(b);
                }
                if let Some(a) = self.ann_by_key.get(&id) {
                    out.push(*a);
                }
            }
        }
        Ok(out)
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
    /// fingerprints are looked up in the on-disk index, and only the
    /// announcements it names are loaded, verified with `ctx` and checked to
    /// carry the fingerprint (the index holds no secret and is not sealed:
    /// a damaged or forged entry can only cost a load).
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
            for id in self.chunks_with(fp)? {
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
