//! Matching verified announcements against the local token index, on the
//! device.
//!
//! [`TokenIndex`] is a sorted array of the local tokens with a radix directory
//! over their top bits (tokens are uniformly random, so each directory slot
//! holds about one token): a probe is a shift, two directory loads and
//! usually one 64-bit compare. [`ExposureLedger`] turns hits into scored
//! exposures per reporter, idempotently.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::announce::{AnnouncementId, VerifiedAnnouncement};
use crate::encounter::Encounter;
use crate::keys::ReportPublicKey;
use crate::risk::{DayRisk, RiskConfig};
use crate::token::EncounterToken;

/// A store's handle for one encounter record.
pub type EncounterRef = u64;

/// Largest directory of a [`TokenIndex`] (2^24 slots, 64 MiB): beyond ~16 M
/// tokens slots hold several tokens each.
pub const MAX_INDEX_DIRECTORY_BITS: u32 = 24;

/// The local token → encounter index used for matching.
#[derive(Clone, Debug, Default)]
pub struct TokenIndex {
    hi: Vec<u64>,
    lo: Vec<u64>,
    refs: Vec<EncounterRef>,
    dir: Vec<u32>,
    shift: u32,
}

fn split(t: &EncounterToken) -> (u64, u64) {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&t.0[..8]);
    b.copy_from_slice(&t.0[8..]);
    (u64::from_be_bytes(a), u64::from_be_bytes(b))
}

impl TokenIndex {
    /// Builds the index from `(token, encounter)` pairs.
    pub fn build(entries: impl IntoIterator<Item = (EncounterToken, EncounterRef)>) -> TokenIndex {
        let mut v: Vec<(u64, u64, EncounterRef)> = entries
            .into_iter()
            .map(|(t, r)| {
                let (h, l) = split(&t);
                (h, l, r)
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        let n = v.len();
        if n == 0 {
            return TokenIndex::default();
        }
        let bits = (usize::BITS - (n - 1).leading_zeros()).clamp(1, MAX_INDEX_DIRECTORY_BITS);
        let shift = 64 - bits;
        let slots = 1usize << bits;
        let mut dir = vec![0u32; slots + 1];
        let mut i = 0usize;
        for (slot, d) in dir.iter_mut().enumerate() {
            while i < n && ((v[i].0 >> shift) as usize) < slot {
                i += 1;
            }
            *d = i as u32;
        }
        TokenIndex {
            hi: v.iter().map(|e| e.0).collect(),
            lo: v.iter().map(|e| e.1).collect(),
            refs: v.iter().map(|e| e.2).collect(),
            dir,
            shift,
        }
    }

    /// Number of tokens indexed.
    pub fn len(&self) -> usize {
        self.hi.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.hi.is_empty()
    }

    #[inline]
    fn range(&self, hi: u64) -> (usize, usize) {
        let slot = (hi >> self.shift) as usize;
        (self.dir[slot] as usize, self.dir[slot + 1] as usize)
    }

    /// The encounters holding `token` (usually none, rarely more than one).
    pub fn lookup(&self, token: &EncounterToken) -> impl Iterator<Item = EncounterRef> + '_ {
        let (h, l) = split(token);
        let (a, b) = if self.is_empty() {
            (0, 0)
        } else {
            self.range(h)
        };
        (a..b)
            .filter(move |&i| self.hi[i] == h && self.lo[i] == l)
            .map(move |i| self.refs[i])
    }

    /// True when `token` is indexed.
    #[inline]
    pub fn contains(&self, token: &EncounterToken) -> bool {
        if self.is_empty() {
            return false;
        }
        let (h, l) = split(token);
        let (a, b) = self.range(h);
        (a..b).any(|i| self.hi[i] == h && self.lo[i] == l)
    }

    /// How many of `tokens` are indexed (the matching hot loop).
    pub fn count_hits(&self, tokens: &[EncounterToken]) -> usize {
        tokens.iter().filter(|t| self.contains(t)).count()
    }
}

/// The matched encounters of one announcement chunk, restricted to the
/// certified contact window, ascending and distinct.
pub fn match_announcement(
    ann: &VerifiedAnnouncement,
    index: &TokenIndex,
    encounter_day: impl Fn(EncounterRef) -> Option<crate::time::Day>,
) -> Vec<EncounterRef> {
    let (first, last) = ann.window();
    let mut hits: BTreeSet<EncounterRef> = BTreeSet::new();
    for t in ann.tokens() {
        for r in index.lookup(t) {
            if let Some(day) = encounter_day(r)
                && day >= first
                && day <= last
            {
                hits.insert(r);
            }
        }
    }
    hits.into_iter().collect()
}

/// An exposure: the local encounters that match one reporter, scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// The reporter's one-time key (identifies the report, not the person).
    pub report_key: ReportPublicKey,
    /// Matched local encounters, ascending.
    pub encounters: Vec<EncounterRef>,
    /// Per-day risk of those encounters (days with a counted contact).
    pub days: Vec<DayRisk>,
    /// True when any day is high risk.
    pub high_risk: bool,
}

#[derive(Clone, Debug, Default)]
struct ReportState {
    chunks: BTreeMap<u32, AnnouncementId>,
    matched: BTreeSet<EncounterRef>,
}

/// What ingesting one announcement chunk changed.
#[derive(Clone, Debug, PartialEq)]
pub enum MatchOutcome {
    /// This exact chunk was ingested before: nothing changed.
    Duplicate,
    /// A different chunk with the same report key and index was already
    /// ingested (the reporter equivocated): ignored, first one wins.
    Conflict,
    /// New chunk, no new matching encounter.
    NoNewMatch,
    /// New matches: the reporter's exposure, rescored over all its chunks.
    Exposure(Exposure),
}

/// Per-reporter matching state. Ingesting the same chunk twice, or the chunks
/// of a report in any order, gives the same exposures. When a reporter
/// equivocates (two different chunks with one index), the first one ingested
/// wins, so that case depends on arrival order.
#[derive(Clone, Debug, Default)]
pub struct ExposureLedger {
    reports: HashMap<ReportPublicKey, ReportState>,
}

impl ExposureLedger {
    /// An empty ledger.
    pub fn new() -> ExposureLedger {
        ExposureLedger::default()
    }

    /// Matches one verified chunk. `encounter` resolves a reference to the
    /// stored encounter (a closed or still-open one).
    pub fn ingest(
        &mut self,
        ann: &VerifiedAnnouncement,
        index: &TokenIndex,
        encounter: impl Fn(EncounterRef) -> Option<Encounter>,
        risk: &RiskConfig,
    ) -> MatchOutcome {
        let state = self.reports.entry(ann.report_key()).or_default();
        match state.chunks.get(&ann.chunk_index()) {
            Some(id) if *id == ann.id() => return MatchOutcome::Duplicate,
            Some(_) => return MatchOutcome::Conflict,
            None => {}
        }
        state.chunks.insert(ann.chunk_index(), ann.id());
        let hits = match_announcement(ann, index, |r| encounter(r).map(|e| e.day()));
        let before = state.matched.len();
        state.matched.extend(hits);
        if state.matched.len() == before {
            return MatchOutcome::NoNewMatch;
        }
        let refs: Vec<EncounterRef> = state.matched.iter().copied().collect();
        let encounters: Vec<Encounter> = refs.iter().filter_map(|&r| encounter(r)).collect();
        let days = risk.score(&encounters);
        let high_risk = days.iter().any(|d| d.high_risk);
        MatchOutcome::Exposure(Exposure {
            report_key: ann.report_key(),
            encounters: refs,
            days,
            high_risk,
        })
    }

    /// Forgets reports whose announcements expired (the caller tracks expiry).
    pub fn forget(&mut self, report: &ReportPublicKey) {
        self.reports.remove(report);
    }

    /// Reports with any ingested chunk.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// True when no report was ingested.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }
}

#[cfg(test)]
mod tests {
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
}
