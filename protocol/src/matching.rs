//! Matching verified announcements against the local token index, on the
//! device.
//!
//! [`TokenIndex`] is a sorted array of the local tokens with a radix directory
//! over their top bits (tokens are uniformly random, so each directory slot
//! holds about one token): a probe is a shift, two directory loads and
//! usually one 64-bit compare. [`ExposureLedger`] turns hits into scored
//! exposures per reporter, idempotently.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::announce::{AnnouncementId, VerifiedAnnouncement, max_real_tokens};
use crate::encounter::Encounter;
use crate::keys::ReportPublicKey;
use crate::risk::{DayRisk, RiskConfig};
use crate::time::{Day, UnixTime};
use crate::token::{EncounterToken, FINGERPRINT_BITS};

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

    /// The encounters holding a token whose fingerprint is `fingerprint`
    /// (see [`crate::token_fingerprint`]): what an announcement's entry
    /// matches.
    pub fn lookup_fingerprint(&self, fingerprint: u64) -> impl Iterator<Item = EncounterRef> + '_ {
        let shift = 64 - FINGERPRINT_BITS;
        // Every token with this fingerprint has `hi` in `[lo_hi, hi_hi]`; the
        // directory keys on at most the top 24 bits, so they share a slot.
        let lo_hi = fingerprint.checked_shl(shift).unwrap_or(0);
        let (a, b) = if self.is_empty() || fingerprint >> FINGERPRINT_BITS != 0 {
            (0, 0)
        } else {
            self.range(lo_hi)
        };
        (a..b)
            .filter(move |&i| self.hi[i] >> shift == fingerprint)
            .map(move |i| self.refs[i])
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
    encounter_day: impl Fn(EncounterRef) -> Option<Day>,
) -> Vec<EncounterRef> {
    let (first, last) = ann.window();
    let mut hits: BTreeSet<EncounterRef> = BTreeSet::new();
    for &f in ann.fingerprint_slice() {
        for r in index.lookup_fingerprint(f) {
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

/// One ingested chunk: who holds the slot, its window and expiry. Its
/// entries are not kept: encounters closing later find the chunks that may
/// hold them through the caller's fingerprint index
/// ([`ExposureLedger::match_encounters`]).
#[derive(Clone, Debug)]
struct ChunkState {
    id: AnnouncementId,
    window: (Day, Day),
    expires_at: UnixTime,
}

/// A report's ingested chunks by index, ascending: a sorted vector, since
/// almost every report has one chunk and a map's node would cost ten times
/// its entry (a node holds 14,000 reports' bookkeeping for 14 days).
#[derive(Clone, Debug, Default)]
struct Chunks(Vec<(u32, ChunkState)>);

impl Chunks {
    fn get(&self, index: &u32) -> Option<&ChunkState> {
        self.0
            .binary_search_by_key(index, |(i, _)| *i)
            .ok()
            .map(|at| &self.0[at].1)
    }

    /// Adds the chunk at `index` (the caller checked the slot is free).
    fn insert(&mut self, index: u32, chunk: ChunkState) {
        match self.0.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => self.0[at].1 = chunk,
            Err(at) => {
                // Exactly one more: a report's chunks come one at a time
                // and are few (at most `MAX_CHUNKS`).
                self.0.reserve_exact(1);
                self.0.insert(at, (index, chunk));
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&ChunkState) -> bool) {
        self.0.retain(|(_, c)| keep(c));
        self.0.shrink_to_fit();
    }

    fn values(&self) -> impl Iterator<Item = &ChunkState> {
        self.0.iter().map(|(_, c)| c)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Debug, Default)]
struct ReportState {
    chunks: Chunks,
    matched: BTreeSet<EncounterRef>,
    /// The report's TX power: that of the first chunk ingested (every chunk
    /// of a report carries the same; a chunk with another is a conflict).
    /// `None` for a report restored with no chunk ingested yet.
    tx_power: Option<i8>,
}

impl ReportState {
    /// Adds `hits`; when the set grew, the report's exposure rescored with
    /// the report's TX power.
    fn add(
        &mut self,
        report_key: ReportPublicKey,
        hits: impl IntoIterator<Item = EncounterRef>,
        encounter: &impl Fn(EncounterRef) -> Option<Encounter>,
        risk: &RiskConfig,
    ) -> Option<Exposure> {
        let before = self.matched.len();
        self.matched.extend(hits);
        if self.matched.len() == before {
            return None;
        }
        // Hits come only through an ingested chunk, which set the TX power.
        let tx_power = self.tx_power?;
        let refs: Vec<EncounterRef> = self.matched.iter().copied().collect();
        let encounters: Vec<Encounter> = refs.iter().filter_map(|&r| encounter(r)).collect();
        let days = risk.score(&encounters, tx_power);
        let high_risk = days.iter().any(|d| d.high_risk);
        Some(Exposure {
            report_key,
            encounters: refs,
            days,
            high_risk,
        })
    }
}

/// What ingesting one announcement chunk changed.
#[derive(Clone, Debug, PartialEq)]
pub enum MatchOutcome {
    /// This exact chunk was ingested before: nothing changed.
    Duplicate,
    /// A different chunk with the same report key and index was already
    /// ingested, or a chunk of the report with another TX power (the
    /// reporter equivocated): ignored, first one wins.
    Conflict,
    /// New chunk, no new matching encounter.
    NoNewMatch,
    /// New matches: the reporter's exposure, rescored over all its chunks.
    Exposure(Exposure),
}

/// Per-reporter matching state: the one place that decides "first chunk per
/// (report key, index) wins" on a device. Ingesting the same chunk twice, or
/// the chunks of a report in any order, gives the same exposures; encounters
/// that close after a chunk arrived are matched against it with
/// [`ExposureLedger::match_encounters`]. When a reporter equivocates (two
/// different chunks with one index), the first one ingested wins, so that
/// case depends on arrival order.
#[derive(Clone, Debug, Default)]
pub struct ExposureLedger {
    reports: HashMap<ReportPublicKey, ReportState>,
    /// Each ingested chunk's slot, by id.
    by_id: HashMap<AnnouncementId, (ReportPublicKey, u32)>,
}

impl ExposureLedger {
    /// An empty ledger.
    pub fn new() -> ExposureLedger {
        ExposureLedger::default()
    }

    /// The chunk holding slot `(report_key, chunk_index)`, if any was
    /// ingested.
    pub fn slot(&self, report_key: &ReportPublicKey, chunk_index: u32) -> Option<AnnouncementId> {
        self.reports
            .get(report_key)
            .and_then(|r| r.chunks.get(&chunk_index))
            .map(|c| c.id)
    }

    /// Takes up the matched encounters of an exposure found before (a
    /// restart): later chunks and encounters only add to them, and
    /// re-ingesting the report's chunks reports no new match.
    pub fn restore(
        &mut self,
        report_key: ReportPublicKey,
        matched: impl IntoIterator<Item = EncounterRef>,
    ) {
        self.reports
            .entry(report_key)
            .or_default()
            .matched
            .extend(matched);
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
            Some(c) if c.id == ann.id() => return MatchOutcome::Duplicate,
            Some(_) => return MatchOutcome::Conflict,
            None => {}
        }
        // One TX power per report: the first chunk's. A chunk that carries
        // another cannot be scored consistently with its siblings.
        if state.tx_power.is_some_and(|t| t != ann.tx_power()) {
            return MatchOutcome::Conflict;
        }
        state.tx_power = Some(ann.tx_power());
        state.chunks.insert(
            ann.chunk_index(),
            ChunkState {
                id: ann.id(),
                window: ann.window(),
                expires_at: ann.expires_at(),
            },
        );
        self.by_id
            .insert(ann.id(), (ann.report_key(), ann.chunk_index()));
        let hits = match_announcement(ann, index, |r| encounter(r).map(|e| e.day()));
        match state.add(ann.report_key(), hits, &encounter, risk) {
            Some(e) => MatchOutcome::Exposure(e),
            None => MatchOutcome::NoNewMatch,
        }
    }

    /// Matches encounters that closed after chunks arrived against the
    /// ingested chunks. `fresh` are the new encounters' tokens;
    /// `chunks_with(fingerprint)` names the held chunks whose fingerprints
    /// ([`VerifiedAnnouncement::fingerprints`]) include a token's
    /// fingerprint ([`crate::token_fingerprint`]) — the device's index, on
    /// disk, so that no chunk's entries stay in memory. A named chunk counts
    /// only when it was ingested (its slot's chunk) and the encounter's day
    /// is in its window. Returns the exposures that grew, rescored over all
    /// their matched encounters, in report-key order.
    pub fn match_encounters(
        &mut self,
        fresh: &[(EncounterToken, EncounterRef)],
        chunks_with: impl Fn(u64) -> Vec<AnnouncementId>,
        encounter: impl Fn(EncounterRef) -> Option<Encounter>,
        risk: &RiskConfig,
    ) -> Vec<Exposure> {
        let mut hits: BTreeMap<ReportPublicKey, BTreeSet<EncounterRef>> = BTreeMap::new();
        for (token, r) in fresh {
            for id in chunks_with(crate::token_fingerprint(token)) {
                let Some((key, index)) = self.by_id.get(&id) else {
                    continue;
                };
                let Some(chunk) = self.reports.get(key).and_then(|s| s.chunks.get(index)) else {
                    continue;
                };
                let (first, last) = chunk.window;
                if chunk.id == id
                    && encounter(*r).is_some_and(|e| e.day() >= first && e.day() <= last)
                {
                    hits.entry(*key).or_default().insert(*r);
                }
            }
        }
        let mut out = Vec::new();
        for (key, refs) in hits {
            if let Some(state) = self.reports.get_mut(&key)
                && let Some(e) = state.add(key, refs, &encounter, risk)
            {
                out.push(e);
            }
        }
        out
    }

    /// Forgets the chunks that expired at `now`, and the reports whose
    /// chunks all expired. Returns how many chunks were forgotten.
    pub fn forget_expired(&mut self, now: UnixTime) -> usize {
        let mut forgotten = 0;
        let by_id = &mut self.by_id;
        self.reports.retain(|_, r| {
            if r.chunks.is_empty() {
                return true; // restored, no chunk seen yet
            }
            let before = r.chunks.len();
            r.chunks.retain(|c| {
                let keep = c.expires_at > now;
                if !keep {
                    by_id.remove(&c.id);
                }
                keep
            });
            forgotten += before - r.chunks.len();
            !r.chunks.is_empty()
        });
        forgotten
    }

    /// Forgets one report.
    pub fn forget(&mut self, report: &ReportPublicKey) {
        if let Some(r) = self.reports.remove(report) {
            for c in r.chunks.values() {
                self.by_id.remove(&c.id);
            }
        }
    }

    /// Reports with any ingested chunk or restored match.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// True when no report was ingested.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }
}

/// Furthest **estimated attenuation** an encounter a report includes may
/// have (`docs/protocol.md` §10.8): 73 dB, the furthest attenuation that
/// counts for anything under either default risk model (the `cwa` drop
/// threshold; the calibrated model stops counting at about 61.5 dB), plus
/// [`REPORT_ASYMMETRY_MARGIN_DB`] for the difference between what the
/// reporter and the receiver measure of the same contact.
pub const REPORT_MAX_ATTENUATION_DB: u8 = 73 + REPORT_ASYMMETRY_MARGIN_DB;

/// Margin (dB) between the two directions of one contact that report
/// selection allows for: the receiver may measure the contact this much
/// closer than the reporter did (§10.8).
pub const REPORT_ASYMMETRY_MARGIN_DB: u8 = 12;

/// The TX power (dBm) report selection assumes for the other side of an
/// encounter when the reporter's own is higher: −21 dBm, the lowest
/// advertising power Android offers (`TX_POWER_ULTRA_LOW`). The other
/// side's TX power is not on the air (§3), and the path loss the receiver
/// will score is the reporter's received level plus the other side's TX
/// power, so assuming a low one estimates the contact closer than it was
/// and leaves nothing out that a higher one would keep (§10.8).
pub const REPORT_ASSUMED_PEER_TX_POWER_DBM: i8 = -21;

/// The TX power report selection assumes for every other device: the lower
/// of the reporter's own and [`REPORT_ASSUMED_PEER_TX_POWER_DBM`] (devices
/// of one deployment usually run the same configuration, so a reporter
/// configured lower than −21 dBm assumes its own).
pub fn assumed_peer_tx_power(own_tx_power: i8) -> i8 {
    own_tx_power.min(REPORT_ASSUMED_PEER_TX_POWER_DBM)
}

/// The reporter's estimate of the attenuation the other side of `e` will
/// score (§10.8): its own median received level
/// ([`Encounter::median_level_db`]) plus [`assumed_peer_tx_power`], in wide
/// integers. `None` when the encounter has no known level.
pub fn estimated_peer_attenuation_db(e: &Encounter, own_tx_power: i8) -> Option<i32> {
    e.median_level_db()
        .map(|l| i32::from(l) + i32::from(assumed_peer_tx_power(own_tx_power)))
}

/// The real entries a report aims to fit by sampling its far interior
/// encounters (§10.8): one 512-entry chunk, about 3.4 KB coded.
pub const REPORT_TARGET_ENTRIES: usize = 512;

/// Interior encounters whose estimated attenuation
/// ([`estimated_peer_attenuation_db`]) is above this (dB) may be sampled
/// (§10.8): the calibrated model's default 2 m level (56.1 dB), rounded
/// down. Nearer encounters are always announced.
pub const REPORT_SAMPLE_ABOVE_DB: u8 = 56;

/// The largest sampling shift: far interior encounters kept down to 1 in 16
/// (§10.8).
pub const MAX_SAMPLING_SHIFT: u8 = 4;

/// Whether an encounter is **interior** (§10.8): it holds at least 3 tokens,
/// i.e. its ID was heard near both rotations around its own epoch, so the
/// contact went on before and after it.
pub fn is_interior(e: &Encounter) -> bool {
    e.tokens.len() >= 3
}

/// Whether a sampled encounter whose primary token is `primary` is kept at
/// sampling shift `shift` (§10.8): the low `shift` bits of the token's last
/// byte, which its fingerprint does not include, are all zero.
pub fn kept_by_sampling(primary: &EncounterToken, shift: u8) -> bool {
    let mask = ((1u16 << u16::from(shift.min(8))) - 1) as u8;
    primary.0[crate::token::TOKEN_LEN - 1] & mask == 0
}

/// Report-token selection: what a report announces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportTokens {
    /// The tokens to announce (each selected encounter's primary token),
    /// longest encounter first.
    pub tokens: Vec<EncounterToken>,
    /// The sampling shift used (§10.8): far interior encounters were kept
    /// with probability `2^−shift`; 0 when none was left out.
    pub sampling_shift: u8,
    /// Encounters in the window that were left out for the cap.
    pub dropped_for_cap: usize,
    /// Encounters in the window, long enough, left out because their
    /// estimated attenuation ([`estimated_peer_attenuation_db`]) is above
    /// [`REPORT_MAX_ATTENUATION_DB`].
    pub dropped_as_far: usize,
    /// Far interior encounters left out by sampling.
    pub dropped_by_sampling: usize,
}

/// The tokens a report announces (§10.8): of every encounter in the
/// certified window `(first, last)` with at least `min_exposure_seconds` of
/// exposure and an estimated attenuation ([`estimated_peer_attenuation_db`],
/// from the reporter's own TX power `own_tx_power`) of at most
/// [`REPORT_MAX_ATTENUATION_DB`] (or no known level: an RSSI the radio could
/// not measure), the primary token (`tokens[0]`). Interior encounters
/// ([`is_interior`]) estimated beyond [`REPORT_SAMPLE_ABOVE_DB`] are
/// sampled ([`kept_by_sampling`]) with the smallest shift, at most
/// [`MAX_SAMPLING_SHIFT`], that brings the count to
/// [`REPORT_TARGET_ENTRIES`]; then as many as fit under the certificate's
/// token cap `max_tokens` (see [`max_real_tokens`]) are taken, longest
/// first. Those that do not fit are counted in
/// [`ReportTokens::dropped_for_cap`], the far ones in
/// [`ReportTokens::dropped_as_far`], the sampled-out ones in
/// [`ReportTokens::dropped_by_sampling`]. Ties keep input order.
pub fn select_report_tokens<'a>(
    encounters: impl IntoIterator<Item = &'a Encounter>,
    window: (Day, Day),
    min_exposure_seconds: u64,
    max_tokens: u32,
    own_tx_power: i8,
) -> ReportTokens {
    let (first, last) = window;
    let mut out = ReportTokens::default();
    let mut encs: Vec<(&Encounter, bool)> = encounters
        .into_iter()
        .filter(|e| {
            !e.tokens.is_empty()
                && e.day() >= first
                && e.day() <= last
                && e.exposure_seconds() >= min_exposure_seconds
        })
        .filter_map(|e| {
            let estimate = estimated_peer_attenuation_db(e, own_tx_power);
            if estimate.is_some_and(|a| a > i32::from(REPORT_MAX_ATTENUATION_DB)) {
                out.dropped_as_far += 1;
                return None;
            }
            let sampled =
                is_interior(e) && estimate.is_some_and(|a| a > i32::from(REPORT_SAMPLE_ABOVE_DB));
            Some((e, sampled))
        })
        .collect();
    let kept =
        |&(e, sampled): &(&Encounter, bool), k: u8| !sampled || kept_by_sampling(&e.tokens[0], k);
    let shift = (0..=MAX_SAMPLING_SHIFT)
        .find(|&k| encs.iter().filter(|x| kept(x, k)).count() <= REPORT_TARGET_ENTRIES)
        .unwrap_or(MAX_SAMPLING_SHIFT);
    out.sampling_shift = shift;
    let before = encs.len();
    encs.retain(|x| kept(x, shift));
    out.dropped_by_sampling = before - encs.len();
    encs.sort_by_key(|(e, _)| std::cmp::Reverse(e.exposure_seconds()));
    let max = max_real_tokens(max_tokens);
    for (e, _) in encs {
        if out.tokens.len() >= max {
            out.dropped_for_cap += 1;
            continue;
        }
        out.tokens.push(e.tokens[0]);
    }
    out
}

#[cfg(test)]
mod tests;
