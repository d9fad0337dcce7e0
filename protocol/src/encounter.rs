//! Sightings to encounters (pure state).
//!
//! The radio reports sightings (ID, RSSI, local time) and, when it knows
//! them, its scan windows ([`ScanWindow`]). Each sighting's RSSI becomes the
//! receiver's **received level** ([`received_level_db`], dB below 1 mW after
//! the receiver's own correction). Sightings of one ID are aggregated into an
//! [`Encounter`]: first and last seen, credited exposure seconds per received
//! level, and the encounter tokens derived with the node's own keys active
//! around each sighting, the **primary token** first (docs/protocol.md
//! §6.1): the token of the own epoch in which most of its sightings fell.
//!
//! The sender's TX power is not on the air (`docs/protocol.md` §3): it
//! arrives with a report, and only then does a level become an
//! **attenuation** ([`attenuation_db`], [`Encounter::attenuation_profile`]),
//! which is what the risk models score (§5, §7).
//!
//! Crediting (docs/protocol.md §6): once a window has been reported, each
//! window in which an ID was heard credits that ID's encounter with the time
//! since the previous window started (at most [`MAX_SCAN_CREDIT_SECONDS`]),
//! at the median level of the window's receptions of that ID, so the
//! credited time does not depend on the scan rate and the first sighting of
//! a new rotating ID counts in full. A tracker that never saw a window keeps
//! the first-to-last rule (gaps between sightings of at most
//! [`MAX_SIGHTING_GAP_SECONDS`]).

use std::collections::{BTreeMap, HashMap};

use crate::announce::Disposition;
use crate::keys::{KeySchedule, RotatingId, SIGHTING_KEY_WINDOW_SECONDS};
use crate::time::{Day, EPOCH_SECONDS, Epoch, UnixTime};
use crate::token::{EncounterToken, MAX_TOKENS_PER_ENCOUNTER, tokens_for_sighting};

/// Two sightings further apart than this (seconds) are not joined: the gap is
/// not counted as exposure. Five minutes matches GAEN-style duty-cycled scans.
pub const MAX_SIGHTING_GAP_SECONDS: u64 = 300;
/// An encounter with no sighting for this long is closed.
pub const ENCOUNTER_IDLE_SECONDS: u64 = MAX_SIGHTING_GAP_SECONDS;
/// An encounter spanning longer than this is closed and a new one started: a
/// genuine rotating ID is broadcast for one epoch.
pub const MAX_ENCOUNTER_SPAN_SECONDS: u64 = 2 * EPOCH_SECONDS;
/// Most encounters open at once; beyond, the least recently seen is closed.
pub const MAX_OPEN_ENCOUNTERS: usize = 4096;
/// Most seconds one scan window credits: the time since the previous window
/// started, capped here. Five minutes is the longest scan interval a phone
/// uses (Exposure Notification scans every 3.5–5 minutes); a longer silence
/// means the radio was off or the app suspended, and one reception must not
/// turn that into exposure (GAEN's "seconds since last scan" has the same
/// role).
pub const MAX_SCAN_CREDIT_SECONDS: u64 = 300;
/// A sighting up to this many seconds after a window's planned end still
/// belongs to it: times are whole seconds and a radio's report of a
/// reception may lag its window's end slightly.
pub const SCAN_WINDOW_SLACK_SECONDS: u64 = 1;
/// Most receptions of one ID kept for one window (their median is the
/// window's level); later ones in the same window are ignored. A 4 s
/// window with a 250 ms advertising interval holds 16.
pub const MAX_RECEPTIONS_PER_WINDOW: usize = 32;
/// Attenuation values are clamped to this many dB; 255 also means "not
/// measured" (an unknown level stays unknown).
pub const MAX_ATTENUATION_DB: u8 = u8::MAX;
/// Received levels are clamped to this many dB; 255 also means "not
/// measured" ([`RSSI_UNKNOWN`]).
pub const MAX_LEVEL_DB: u8 = u8::MAX;
/// RSSI value meaning "not available" (HCI LE Advertising Report); emulated
/// controllers always report it. Such a sighting proves presence but not
/// proximity: it gets the level [`MAX_LEVEL_DB`], which stays
/// [`MAX_ATTENUATION_DB`] whatever the TX power, and every risk rule drops.
pub const RSSI_UNKNOWN: i16 = 127;

/// One reception of a frame: what the radio measured, nothing the sender
/// claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// The heard rotating ID.
    pub id: RotatingId,
    /// Received signal strength in dBm, as the local radio reports it
    /// (uncorrected; [`RSSI_UNKNOWN`] when it has none).
    pub rssi: i16,
    /// Local time of reception.
    pub at: UnixTime,
}

/// The receiver's **received level** in dB: `−(rssi + rx_correction_db)`,
/// computed in wide integers and clamped to `0..=255` (`docs/protocol.md`
/// §5). `rx_correction_db` is the receiving device's known RSSI correction,
/// added to the RSSI: positive when it reads low (weaker than a reference
/// device), negative when it reads high. An RSSI of [`RSSI_UNKNOWN`] gives
/// [`MAX_LEVEL_DB`] (not measured). A level is what an encounter profile
/// stores; it becomes an attenuation only with the sender's TX power
/// ([`attenuation_db`]).
pub fn received_level_db(rssi: i16, rx_correction_db: i16) -> u8 {
    if rssi == RSSI_UNKNOWN {
        return MAX_LEVEL_DB;
    }
    let l = -(i32::from(rssi) + i32::from(rx_correction_db));
    l.clamp(0, i32::from(MAX_LEVEL_DB)) as u8
}

/// Attenuation in dB of a reception at received level `level_db` from a
/// sender whose calibrated TX power is `tx_power` dBm (a report carries it,
/// `docs/protocol.md` §5, §10.3): `clamp(tx_power + level_db, 0, 255)` in
/// wide integers; an unknown level ([`MAX_LEVEL_DB`]) stays
/// [`MAX_ATTENUATION_DB`].
pub fn attenuation_db(tx_power: i8, level_db: u8) -> u8 {
    if level_db == MAX_LEVEL_DB {
        return MAX_ATTENUATION_DB;
    }
    let a = i32::from(tx_power) + i32::from(level_db);
    a.clamp(0, i32::from(MAX_ATTENUATION_DB)) as u8
}

/// A closed (or snapshot of an open) encounter with one rotating ID.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Encounter {
    /// Tokens shared with the other device (1 to [`MAX_TOKENS_PER_ENCOUNTER`]):
    /// the **primary token** first (the token of the own epoch with the
    /// most sightings, docs/protocol.md §6.1), then the others in the order
    /// they were derived.
    pub tokens: Vec<EncounterToken>,
    /// First sighting.
    pub first_seen: UnixTime,
    /// Last sighting.
    pub last_seen: UnixTime,
    /// Seconds of exposure at each received level (dB,
    /// [`received_level_db`]), ascending by level, no zero entries. Scoring
    /// turns it into attenuations with the reporter's TX power
    /// ([`Encounter::attenuation_profile`]).
    pub profile: Vec<(u8, u32)>,
    /// Number of sightings aggregated.
    pub sightings: u32,
}

impl Encounter {
    /// Whether an open encounter is over at `now`: idle for longer than
    /// [`ENCOUNTER_IDLE_SECONDS`], longer than
    /// [`MAX_ENCOUNTER_SPAN_SECONDS`], or the clock was set back to more than
    /// [`ENCOUNTER_IDLE_SECONDS`] before it began (otherwise it would stay
    /// open until the clock caught up).
    pub fn ends_at(&self, now: UnixTime) -> bool {
        now.seconds_since(self.last_seen) > ENCOUNTER_IDLE_SECONDS
            || now.seconds_since(self.first_seen) > MAX_ENCOUNTER_SPAN_SECONDS
            || self.first_seen.seconds_since(now) > ENCOUNTER_IDLE_SECONDS
    }

    /// The day the encounter started.
    pub fn day(&self) -> Day {
        self.first_seen.day()
    }

    /// Exposure seconds at any level.
    pub fn exposure_seconds(&self) -> u64 {
        self.profile.iter().map(|&(_, s)| u64::from(s)).sum()
    }

    /// The profile as attenuations for a sender whose calibrated TX power is
    /// `tx_power` dBm: each entry's level through [`attenuation_db`], entries
    /// that clamp to the same dB merged (seconds added, saturating), still
    /// ascending. This is what scoring uses, with the TX power the report
    /// carries (`docs/protocol.md` §5).
    pub fn attenuation_profile(&self, tx_power: i8) -> Vec<(u8, u32)> {
        let mut out: Vec<(u8, u32)> = Vec::with_capacity(self.profile.len());
        for &(level, secs) in &self.profile {
            let a = attenuation_db(tx_power, level);
            match out.last_mut() {
                Some(last) if last.0 == a => last.1 = last.1.saturating_add(secs),
                _ => out.push((a, secs)),
            }
        }
        out
    }

    /// A copy whose profile holds attenuations under the sender's
    /// `tx_power` ([`Encounter::attenuation_profile`]): the input of the
    /// risk models' internals.
    pub fn with_attenuations(&self, tx_power: i8) -> Encounter {
        Encounter {
            profile: self.attenuation_profile(tx_power),
            ..self.clone()
        }
    }

    /// The encounter's own median level: the lower median received level
    /// (dB) of its profile weighted by seconds, unknown levels
    /// ([`MAX_LEVEL_DB`]) left out — the smallest dB at which the running sum
    /// of seconds reaches half the total. `None` when no second was credited
    /// at a known level.
    pub fn median_level_db(&self) -> Option<u8> {
        let known = || self.profile.iter().filter(|&&(a, _)| a < MAX_LEVEL_DB);
        let total: u64 = known().map(|&(_, s)| u64::from(s)).sum();
        if total == 0 {
            return None;
        }
        let mut cum = 0u64;
        known().find_map(|&(a, s)| {
            cum += u64::from(s);
            (2 * cum >= total).then_some(a)
        })
    }

    /// Exposure seconds at a profile value (level, or attenuation after
    /// [`Encounter::with_attenuations`]) strictly below `db`.
    pub fn seconds_below(&self, db: u8) -> u64 {
        self.profile
            .iter()
            .filter(|&&(a, _)| a < db)
            .map(|&(_, s)| u64::from(s))
            .sum()
    }
}

/// Receptions of one ID in one scan window, not yet credited.
#[derive(Debug, Clone)]
struct Pending {
    /// The window's sequence number in the tracker.
    seq: u64,
    /// Seconds the window credits.
    credit: u32,
    /// Levels heard (at most [`MAX_RECEPTIONS_PER_WINDOW`]).
    levels: Vec<u8>,
}

impl Pending {
    /// The window's level: the lower median of its receptions.
    fn level(&self) -> u8 {
        let mut v = self.levels.clone();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(MAX_LEVEL_DB)
    }
}

#[derive(Debug)]
struct Open {
    enc: Encounter,
    profile: BTreeMap<u8, u32>,
    last_level: u8,
    /// The own epoch of each token, in the order of `enc.tokens`
    /// (derivation order).
    covered: Vec<Epoch>,
    /// Sightings counted per own epoch (`at.epoch()`), saturating; only
    /// for epochs that are covered or can still be ([`Open::count`]), so
    /// at most `2 * MAX_TOKENS_PER_ENCOUNTER` entries.
    counts: Vec<(Epoch, u32)>,
    /// Windows heard but not yet credited (at most the tracker's current
    /// and previous window).
    pending: Vec<Pending>,
}

fn credit(profile: &mut BTreeMap<u8, u32>, level: u8, seconds: u32) {
    let slot = profile.entry(level).or_insert(0);
    *slot = slot.saturating_add(seconds);
}

impl Open {
    fn snapshot(&self) -> Encounter {
        let mut profile = self.profile.clone();
        for p in &self.pending {
            credit(&mut profile, p.level(), p.credit);
        }
        let mut e = self.enc.clone();
        e.profile = profile.into_iter().filter(|&(_, s)| s > 0).collect();
        // The primary token first, the others in derivation order.
        let primary = self.primary();
        if primary > 0 && primary < e.tokens.len() {
            let t = e.tokens.remove(primary);
            e.tokens.insert(0, t);
        }
        e
    }

    /// Index (derivation order) of the primary token: the covered epoch
    /// with the most counted sightings, ties to the earliest epoch; the
    /// first token when no covered epoch has a counted sighting.
    fn primary(&self) -> usize {
        self.covered
            .iter()
            .enumerate()
            .filter_map(|(i, &epoch)| {
                let n = self.counts.iter().find(|c| c.0 == epoch).map_or(0, |c| c.1);
                (n > 0).then_some((n, std::cmp::Reverse(epoch), i))
            })
            .max()
            .map_or(0, |(_, _, i)| i)
    }

    /// Counts a sighting at `at` for own epoch `at.epoch()` (after its
    /// tokens were recorded). Counts of epochs that can no longer become
    /// covered are forgotten: a later sighting joins only up to
    /// [`MAX_ENCOUNTER_SPAN_SECONDS`] after `first_seen` (which never moves
    /// later), and derives tokens only with keys that start at most
    /// [`SIGHTING_KEY_WINDOW_SECONDS`] after it; once the encounter holds
    /// [`MAX_TOKENS_PER_ENCOUNTER`] tokens no epoch can. Every counted
    /// sighting is at or after `first_seen`, so the uncovered epochs kept
    /// lie between `first_seen`'s epoch and that of `first_seen` + 2100 s:
    /// at most four, besides at most four covered ones. The result is the
    /// same as keeping every count.
    fn count(&mut self, at: UnixTime) {
        let epoch = at.epoch();
        match self.counts.iter_mut().find(|c| c.0 == epoch) {
            Some(c) => c.1 = c.1.saturating_add(1),
            None => self.counts.push((epoch, 1)),
        }
        let first = self.enc.first_seen.min(at);
        let lowest = first.epoch();
        let highest = first
            .plus(MAX_ENCOUNTER_SPAN_SECONDS)
            .plus(SIGHTING_KEY_WINDOW_SECONDS)
            .epoch();
        let full = self.enc.tokens.len() >= MAX_TOKENS_PER_ENCOUNTER;
        let covered = &self.covered;
        self.counts
            .retain(|&(e, _)| covered.contains(&e) || (!full && (lowest..=highest).contains(&e)));
        debug_assert!(self.counts.len() <= 2 * MAX_TOKENS_PER_ENCOUNTER);
    }

    /// Credits the pending windows older than `keep_from` (sequence number).
    fn settle(&mut self, keep_from: u64) {
        let (old, keep): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.seq < keep_from);
        self.pending = keep;
        for p in old {
            credit(&mut self.profile, p.level(), p.credit);
        }
    }
}

/// A window the tracker knows, with its sequence number and credit.
#[derive(Debug, Clone, Copy)]
struct KnownWindow {
    seq: u64,
    start: UnixTime,
    end: UnixTime,
    credit: u32,
}

impl KnownWindow {
    fn holds(&self, at: UnixTime) -> bool {
        at >= self.start && at.0 <= self.end.0.saturating_add(SCAN_WINDOW_SLACK_SECONDS)
    }
}

/// The last two windows reported.
#[derive(Debug, Clone, Copy)]
struct Scans {
    current: KnownWindow,
    previous: Option<KnownWindow>,
}

impl Scans {
    /// The window a sighting at `at` belongs to: the current one, else the
    /// previous one, else none.
    fn window_of(&self, at: UnixTime) -> Option<KnownWindow> {
        if self.current.holds(at) {
            Some(self.current)
        } else {
            self.previous.filter(|p| p.holds(at))
        }
    }

    /// Sequence number of the oldest window a sighting can still join.
    fn oldest_open_seq(&self) -> u64 {
        self.previous.map_or(self.current.seq, |p| p.seq)
    }
}

/// One listening period of the receiver's scanner: it listened from `start`
/// to `end` (inclusive, local time). The radio reports every window, whether
/// or not it heard anything, so that the tracker can credit each reception
/// with the time the receiver was not listening since its previous window
/// (docs/protocol.md §6, "scan-aware exposure").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanWindow {
    /// When the scanner started listening.
    pub start: UnixTime,
    /// When it stopped (`end >= start`; equal for an instantaneous scan).
    pub end: UnixTime,
}

/// Why a sighting was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SightingError {
    /// No own key is active around the sighting (keys not rotated in yet).
    #[error("no own key is active around the sighting time")]
    NoActiveKey,
    /// The ID is a low-order point or our own ID: no token can exist.
    #[error("heard ID yields no encounter token (low-order point or own ID)")]
    NoToken,
}

impl SightingError {
    /// The stable error code of this refusal (docs/protocol.md §16).
    pub fn code(&self) -> &'static str {
        match self {
            SightingError::NoActiveKey => "no_active_key",
            SightingError::NoToken => "no_token",
        }
    }

    /// Both are [`Disposition::Ignore`]: the sighting is dropped quietly.
    pub fn disposition(&self) -> Disposition {
        Disposition::Ignore
    }
}

/// Aggregates sightings into encounters.
#[derive(Debug)]
pub struct EncounterTracker {
    open: HashMap<RotatingId, Open>,
    rx_correction_db: i16,
    closed: Vec<Encounter>,
    /// `None` until the radio reports its first window (first-to-last rule).
    scans: Option<Scans>,
}

impl EncounterTracker {
    /// A tracker for a receiver whose RSSI reads `rx_correction_db` low (a negative value: it reads high).
    pub fn new(rx_correction_db: i16) -> EncounterTracker {
        EncounterTracker {
            open: HashMap::new(),
            rx_correction_db,
            closed: Vec::new(),
            scans: None,
        }
    }

    /// Whether the tracker credits by scan windows (a window was reported).
    pub fn scan_aware(&self) -> bool {
        self.scans.is_some()
    }

    /// Number of encounters currently open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Records one sighting; derives tokens for own keys not yet covered.
    pub fn handle_sighting(
        &mut self,
        keys: &KeySchedule,
        s: Sighting,
    ) -> Result<(), SightingError> {
        let level = received_level_db(s.rssi, self.rx_correction_db);
        // Close a stale or over-long encounter with this ID first.
        if self.open.get(&s.id).is_some_and(|o| o.enc.ends_at(s.at))
            && let Some(o) = self.open.remove(&s.id)
        {
            self.closed.push(o.snapshot());
        }
        let new_tokens: Vec<_> = {
            let covered = self.open.get(&s.id).map(|o| &o.covered[..]).unwrap_or(&[]);
            let active: Vec<_> = keys.active_around(s.at).collect();
            if active.is_empty() && covered.is_empty() {
                return Err(SightingError::NoActiveKey);
            }
            if active.iter().all(|k| covered.contains(&k.epoch())) {
                Vec::new()
            } else {
                tokens_for_sighting(keys, &s.id, s.at)
                    .into_iter()
                    .filter(|(e, _)| !covered.contains(e))
                    .collect()
            }
        };
        if !self.open.contains_key(&s.id) {
            if new_tokens.is_empty() {
                return Err(SightingError::NoToken);
            }
            if self.open.len() >= MAX_OPEN_ENCOUNTERS {
                self.evict_least_recent();
            }
            self.open.insert(
                s.id,
                Open {
                    enc: Encounter {
                        first_seen: s.at,
                        last_seen: s.at,
                        ..Encounter::default()
                    },
                    profile: BTreeMap::new(),
                    last_level: level,
                    covered: Vec::new(),
                    counts: Vec::new(),
                    pending: Vec::new(),
                },
            );
        }
        let Some(o) = self.open.get_mut(&s.id) else {
            return Ok(());
        };
        for (epoch, token) in new_tokens {
            if o.enc.tokens.len() < MAX_TOKENS_PER_ENCOUNTER {
                o.covered.push(epoch);
                o.enc.tokens.push(token);
            }
        }
        o.enc.sightings = o.enc.sightings.saturating_add(1);
        o.count(s.at);
        if let Some(scans) = self.scans {
            // Scan-aware crediting: the sighting joins its window's
            // receptions; windows no sighting can join any more are credited.
            o.settle(scans.oldest_open_seq());
            if let Some(w) = scans.window_of(s.at) {
                match o.pending.iter_mut().find(|p| p.seq == w.seq) {
                    Some(p) => {
                        if p.levels.len() < MAX_RECEPTIONS_PER_WINDOW {
                            p.levels.push(level);
                        }
                    }
                    None => o.pending.push(Pending {
                        seq: w.seq,
                        credit: w.credit,
                        levels: vec![level],
                    }),
                }
            }
            if s.at > o.enc.last_seen {
                o.enc.last_seen = s.at;
            } else if s.at < o.enc.first_seen {
                o.enc.first_seen = s.at;
            }
            return Ok(());
        }
        if s.at > o.enc.last_seen {
            let gap = s.at.seconds_since(o.enc.last_seen);
            if gap <= MAX_SIGHTING_GAP_SECONDS {
                // Attribute the interval to the mean level of its ends.
                let mean = ((u16::from(o.last_level) + u16::from(level)).div_ceil(2)) as u8;
                let slot = o.profile.entry(mean).or_insert(0);
                *slot = slot.saturating_add(gap as u32);
            }
            o.enc.last_seen = s.at;
            o.last_level = level;
        } else if s.at < o.enc.first_seen {
            o.enc.first_seen = s.at;
        }
        Ok(())
    }

    /// Tells the tracker that the scanner listens during `window`.
    ///
    /// Contract (docs/protocol.md §6): a radio reports each window when it
    /// starts listening, with its planned end, before the sightings heard in
    /// it, and reports every window, heard or not. A sighting belongs to the
    /// latest of the last two reported windows that holds its time (up to
    /// [`SCAN_WINDOW_SLACK_SECONDS`] after the end). A window credits the
    /// time since the previous window started, at most
    /// [`MAX_SCAN_CREDIT_SECONDS`]; the first window, or one that starts
    /// before the previous one (the clock went back), credits its own length.
    /// A report of the window already current (same start) only extends its
    /// end. Any sequence of windows is accepted without panicking.
    pub fn handle_scan(&mut self, window: ScanWindow) {
        let end = window.end.max(window.start);
        let own_length = end.seconds_since(window.start).min(MAX_SCAN_CREDIT_SECONDS) as u32;
        self.scans = Some(match self.scans {
            None => Scans {
                current: KnownWindow {
                    seq: 0,
                    start: window.start,
                    end,
                    credit: own_length,
                },
                previous: None,
            },
            Some(mut sc) if window.start == sc.current.start => {
                sc.current.end = sc.current.end.max(end);
                sc
            }
            Some(sc) => {
                let seq = sc.current.seq.saturating_add(1);
                if window.start > sc.current.start {
                    let since = window.start.seconds_since(sc.current.start);
                    Scans {
                        current: KnownWindow {
                            seq,
                            start: window.start,
                            end,
                            credit: since.min(MAX_SCAN_CREDIT_SECONDS) as u32,
                        },
                        previous: Some(sc.current),
                    }
                } else {
                    // The clock went back: a new sequence of windows.
                    Scans {
                        current: KnownWindow {
                            seq,
                            start: window.start,
                            end,
                            credit: own_length,
                        },
                        previous: None,
                    }
                }
            }
        });
    }

    fn evict_least_recent(&mut self) {
        if let Some(id) = self
            .open
            .iter()
            .min_by_key(|(_, o)| o.enc.last_seen)
            .map(|(id, _)| *id)
            && let Some(o) = self.open.remove(&id)
        {
            self.closed.push(o.snapshot());
        }
    }

    /// Closes encounters idle or too long at `now` and returns every encounter
    /// closed since the last call.
    pub fn poll_closed(&mut self, now: UnixTime) -> Vec<Encounter> {
        let done: Vec<RotatingId> = self
            .open
            .iter()
            .filter(|(_, o)| o.enc.ends_at(now))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(o) = self.open.remove(&id) {
                self.closed.push(o.snapshot());
            }
        }
        let mut out = std::mem::take(&mut self.closed);
        out.sort_by_key(|e| (e.first_seen, e.tokens.first().copied()));
        out
    }

    /// Closes everything (shutdown) and returns all encounters not yet returned.
    pub fn close_all(&mut self) -> Vec<Encounter> {
        let ids: Vec<RotatingId> = self.open.keys().copied().collect();
        for id in ids {
            if let Some(o) = self.open.remove(&id) {
                self.closed.push(o.snapshot());
            }
        }
        self.poll_closed(UnixTime(0))
    }

    /// Snapshots of the open encounters (for matching an announcement that
    /// arrives while a contact is still going on).
    pub fn open_snapshots(&self) -> Vec<Encounter> {
        self.open.values().map(Open::snapshot).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::EpochKey;
    use crate::token::derive_token;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn levels_are_clamped() {
        // docs/protocol.md §5, the examples.
        assert_eq!(received_level_db(-60, 0), 60);
        assert_eq!(received_level_db(-60, 5), 55);
        assert_eq!(received_level_db(-60, -5), 65);
        assert_eq!(received_level_db(20, 0), 0);
        assert_eq!(received_level_db(-32768, -32768), 255);
        assert_eq!(received_level_db(i16::MAX, i16::MAX), 0);
        assert_eq!(received_level_db(RSSI_UNKNOWN, 0), MAX_LEVEL_DB);
        assert_eq!(received_level_db(RSSI_UNKNOWN, -20), MAX_LEVEL_DB);
    }

    #[test]
    fn attenuation_is_level_plus_tx_power_clamped() {
        assert_eq!(attenuation_db(0, 60), 60);
        assert_eq!(attenuation_db(-10, 55), 45);
        assert_eq!(attenuation_db(-14, 10), 0);
        assert_eq!(attenuation_db(127, 200), 255);
        assert_eq!(attenuation_db(-128, 254), 126);
        assert_eq!(
            attenuation_db(-128, 255),
            MAX_ATTENUATION_DB,
            "unknown stays unknown"
        );
        assert_eq!(attenuation_db(-8, MAX_LEVEL_DB), MAX_ATTENUATION_DB);
    }

    #[test]
    fn attenuation_profile_shifts_and_merges_clamped_entries() {
        let e = Encounter {
            profile: vec![(2, 10), (5, 20), (60, 30), (250, 40), (255, 50)],
            ..Encounter::default()
        };
        assert_eq!(e.attenuation_profile(0), e.profile);
        assert_eq!(
            e.attenuation_profile(-8),
            vec![(0, 30), (52, 30), (242, 40), (255, 50)],
            "2 and 5 dB both clamp to 0 and merge"
        );
        assert_eq!(
            e.attenuation_profile(10),
            vec![(12, 10), (15, 20), (70, 30), (255, 90)],
            "260 clamps to 255 and merges with the unknown entry"
        );
        assert_eq!(e.with_attenuations(-8).profile, e.attenuation_profile(-8));
        assert_eq!(e.with_attenuations(-8).sightings, e.sightings);
    }

    #[test]
    fn sightings_aggregate_into_one_encounter() {
        let mut rng = ChaCha20Rng::seed_from_u64(30);
        let t0 = UnixTime(10_000 * 900);
        let mut mine = KeySchedule::new();
        mine.rotate(t0, &mut rng);
        let other = EpochKey::generate(t0.epoch(), &mut rng);
        let mut tr = EncounterTracker::new(0);
        for i in 0..11 {
            tr.handle_sighting(
                &mine,
                Sighting {
                    id: other.public(),
                    rssi: -60,
                    at: t0.plus(60 * i),
                },
            )
            .unwrap();
        }
        assert!(tr.poll_closed(t0.plus(600)).is_empty());
        let closed = tr.poll_closed(t0.plus(600 + ENCOUNTER_IDLE_SECONDS + 1));
        assert_eq!(closed.len(), 1);
        let e = &closed[0];
        assert_eq!(e.exposure_seconds(), 600);
        assert_eq!(e.profile, vec![(60, 600)]);
        assert_eq!(e.sightings, 11);
        assert_eq!(
            e.tokens,
            vec![derive_token(mine.current(t0).unwrap(), &other.public()).unwrap()]
        );
    }

    #[test]
    fn gaps_are_not_counted_and_idle_closes() {
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let t0 = UnixTime(10_000 * 900);
        let mut mine = KeySchedule::new();
        mine.rotate(t0, &mut rng);
        let other = EpochKey::generate(t0.epoch(), &mut rng).public();
        let mut tr = EncounterTracker::new(0);
        let s = |at| Sighting {
            id: other,
            rssi: -50,
            at,
        };
        tr.handle_sighting(&mine, s(t0)).unwrap();
        tr.handle_sighting(&mine, s(t0.plus(100))).unwrap();
        // A gap longer than the idle limit starts a new encounter.
        tr.handle_sighting(&mine, s(t0.plus(100 + ENCOUNTER_IDLE_SECONDS + 1)))
            .unwrap();
        let all = tr.close_all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].exposure_seconds(), 100);
        assert_eq!(all[1].exposure_seconds(), 0);
    }

    #[test]
    fn low_order_ids_and_missing_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        let t0 = UnixTime(10_000 * 900);
        let mut mine = KeySchedule::new();
        let mut tr = EncounterTracker::new(0);
        let s = Sighting {
            id: RotatingId([0; 32]),
            rssi: -50,
            at: t0,
        };
        assert_eq!(
            tr.handle_sighting(&mine, s),
            Err(SightingError::NoActiveKey)
        );
        mine.rotate(t0, &mut rng);
        assert_eq!(tr.handle_sighting(&mine, s), Err(SightingError::NoToken));
        assert_eq!(tr.open_count(), 0);
    }

    /// A tracker with one own key and one heard ID at `t0`.
    fn scan_world(seed: u64) -> (KeySchedule, RotatingId, UnixTime) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let t0 = UnixTime(10_000 * 900);
        let mut mine = KeySchedule::new();
        mine.rotate(t0, &mut rng);
        let other = EpochKey::generate(t0.epoch(), &mut rng).public();
        (mine, other, t0)
    }

    fn window(start: UnixTime, len: u64) -> ScanWindow {
        ScanWindow {
            start,
            end: start.plus(len),
        }
    }

    #[test]
    fn each_heard_window_credits_the_time_since_the_previous_window() {
        let (mine, other, t0) = scan_world(40);
        let mut tr = EncounterTracker::new(0);
        assert!(!tr.scan_aware());
        let s = |at, rssi| Sighting {
            id: other,
            rssi,
            at,
        };
        // Windows of 4 s every 60 s; heard in windows 1, 2 and 4 (not 3).
        for k in 0..5u64 {
            let start = t0.plus(60 * k);
            tr.handle_scan(window(start, 4));
            match k {
                // Three receptions in one window count once, at their median.
                1 => {
                    for (i, rssi) in [-50, -70, -60].into_iter().enumerate() {
                        tr.handle_sighting(&mine, s(start.plus(i as u64), rssi))
                            .unwrap();
                    }
                }
                2 | 4 => tr.handle_sighting(&mine, s(start.plus(2), -55)).unwrap(),
                _ => {}
            }
        }
        assert!(tr.scan_aware());
        let open = tr.open_snapshots();
        assert_eq!(open[0].profile, vec![(55, 120), (60, 60)]);
        let e = &tr.close_all()[0];
        assert_eq!(e.profile, vec![(55, 120), (60, 60)]);
        assert_eq!(e.exposure_seconds(), 180, "three heard windows × 60 s");
        assert_eq!(e.sightings, 5);
        assert_eq!((e.first_seen, e.last_seen), (t0.plus(60), t0.plus(242)));
    }

    #[test]
    fn the_first_window_credits_its_length_and_long_silences_are_capped() {
        let (mine, other, t0) = scan_world(41);
        let mut tr = EncounterTracker::new(0);
        let s = |at| Sighting {
            id: other,
            rssi: -50,
            at,
        };
        tr.handle_scan(window(t0, 4));
        tr.handle_sighting(&mine, s(t0.plus(1))).unwrap();
        // The radio was off for 400 s: the next window credits the cap.
        tr.handle_scan(window(t0.plus(400), 4));
        tr.handle_sighting(&mine, s(t0.plus(400))).unwrap();
        let all = tr.close_all();
        assert_eq!(all.len(), 2, "idle for 400 s: two encounters");
        assert_eq!(all[0].exposure_seconds(), 4);
        assert_eq!(all[1].exposure_seconds(), MAX_SCAN_CREDIT_SECONDS);
    }

    #[test]
    fn sightings_outside_the_known_windows_credit_nothing() {
        let (mine, other, t0) = scan_world(42);
        let mut tr = EncounterTracker::new(0);
        let s = |at| Sighting {
            id: other,
            rssi: -50,
            at,
        };
        tr.handle_scan(window(t0, 4));
        tr.handle_scan(window(t0.plus(60), 4));
        // Late delivery for the previous window still counts (credit 4 s,
        // the first window's own length); the slack second too.
        tr.handle_sighting(&mine, s(t0.plus(5))).unwrap();
        // Outside both windows: presence only.
        tr.handle_sighting(&mine, s(t0.plus(30))).unwrap();
        tr.handle_sighting(&mine, s(t0.plus(66))).unwrap();
        let e = &tr.close_all()[0];
        assert_eq!(e.exposure_seconds(), 4);
        assert_eq!(e.sightings, 3);
        assert_eq!(e.last_seen, t0.plus(66));
    }

    #[test]
    fn a_window_reported_twice_or_backwards_is_handled() {
        let (mine, other, t0) = scan_world(43);
        let mut tr = EncounterTracker::new(0);
        let s = |at| Sighting {
            id: other,
            rssi: -50,
            at,
        };
        tr.handle_scan(window(t0, 4));
        tr.handle_scan(window(t0.plus(30), 4));
        // The same window again, longer: the end moves, the credit stays.
        tr.handle_scan(window(t0.plus(30), 10));
        tr.handle_sighting(&mine, s(t0.plus(38))).unwrap();
        // The clock went back 20 s: a new sequence, crediting its own length.
        tr.handle_scan(window(t0.plus(10), 6));
        tr.handle_sighting(&mine, s(t0.plus(12))).unwrap();
        // A window with its end before its start is instantaneous.
        tr.handle_scan(ScanWindow {
            start: t0.plus(100),
            end: t0.plus(90),
        });
        tr.handle_sighting(&mine, s(t0.plus(100))).unwrap();
        let e = &tr.close_all()[0];
        assert_eq!(e.profile, vec![(50, 30 + 6 + 90)]);
    }

    #[test]
    fn without_windows_the_first_to_last_rule_holds() {
        let (mine, other, t0) = scan_world(44);
        let mut tr = EncounterTracker::new(0);
        for k in 0..4 {
            tr.handle_sighting(
                &mine,
                Sighting {
                    id: other,
                    rssi: -50,
                    at: t0.plus(60 * k),
                },
            )
            .unwrap();
        }
        assert_eq!(tr.close_all()[0].exposure_seconds(), 180);
    }

    #[test]
    fn many_receptions_in_one_window_are_bounded() {
        let (mine, other, t0) = scan_world(45);
        let mut tr = EncounterTracker::new(0);
        tr.handle_scan(window(t0, 4));
        tr.handle_scan(window(t0.plus(60), 4));
        for i in 0..1000 {
            let rssi = if i < MAX_RECEPTIONS_PER_WINDOW {
                -40
            } else {
                -90
            };
            tr.handle_sighting(
                &mine,
                Sighting {
                    id: other,
                    rssi: rssi as i16,
                    at: t0.plus(60 + (i as u64 % 4)),
                },
            )
            .unwrap();
        }
        let e = &tr.close_all()[0];
        assert_eq!(e.profile, vec![(40, 60)], "only the first receptions count");
        assert_eq!(e.sightings, 1000);
    }

    /// Own keys drawn by rotating at each of `rotations` (offsets from
    /// `t0`, an epoch start), and one heard ID.
    fn rotating_world(seed: u64, rotations: &[u64]) -> (KeySchedule, RotatingId, UnixTime) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let t0 = UnixTime(10_000 * 900);
        let mut mine = KeySchedule::new();
        for &r in rotations {
            mine.rotate(t0.plus(r), &mut rng);
        }
        let other = EpochKey::generate(t0.epoch(), &mut rng).public();
        (mine, other, t0)
    }

    /// Records a sighting of `id` at `at` (received at −50 dBm), which the
    /// tracker must accept.
    fn hear(tr: &mut EncounterTracker, keys: &KeySchedule, id: RotatingId, at: UnixTime) {
        tr.handle_sighting(keys, Sighting { id, rssi: -50, at })
            .unwrap();
    }

    fn token_of(keys: &KeySchedule, epoch: Epoch, heard: &RotatingId) -> EncounterToken {
        derive_token(keys.get(epoch).unwrap(), heard).unwrap()
    }

    #[test]
    fn the_primary_token_is_that_of_the_epoch_with_most_sightings() {
        // Heard from 200 s before an own rotation to 180 s after it: one
        // sighting in epoch E derives both tokens, three in E + 1 derive
        // none but count for E + 1.
        let (mine, other, t0) = rotating_world(50, &[600]);
        let e = t0.epoch();
        let mut tr = EncounterTracker::new(0);
        for at in [700, 960, 1020, 1080] {
            hear(&mut tr, &mine, other, t0.plus(at));
        }
        let (te, te1) = (
            token_of(&mine, e, &other),
            token_of(&mine, e.next(), &other),
        );
        assert_eq!(tr.open.values().next().unwrap().enc.tokens, vec![te, te1]);
        assert_eq!(tr.open_snapshots()[0].tokens, vec![te1, te], "snapshot");
        assert_eq!(tr.close_all()[0].tokens, vec![te1, te], "closed");
    }

    /// Records the token of every own key held with `heard` (keys are
    /// destroyed as the schedule rotates on).
    fn record_tokens(
        keys: &KeySchedule,
        heard: &RotatingId,
        into: &mut BTreeMap<Epoch, EncounterToken>,
    ) {
        for k in keys.keys() {
            into.insert(k.epoch(), derive_token(k, heard).unwrap());
        }
    }

    #[test]
    fn a_tie_goes_to_the_earlier_epoch() {
        // Own epochs E, E + 1, E + 2: the first sighting (in E + 1, within
        // 300 s of E) derives E's and E + 1's tokens, the third E + 2's.
        // E has no sighting; E + 1 and E + 2 have three each.
        let (mut mine, other, t0) = rotating_world(51, &[600, 900]);
        let e = t0.epoch();
        let mut rng = ChaCha20Rng::seed_from_u64(52);
        let mut tokens = BTreeMap::new();
        let mut tr = EncounterTracker::new(0);
        for at in [1000, 1250, 1500, 1800, 2050, 2300] {
            mine.rotate(t0.plus(at), &mut rng);
            record_tokens(&mine, &other, &mut tokens);
            hear(&mut tr, &mine, other, t0.plus(at));
        }
        let t = |k: u32| tokens[&Epoch(e.0 + k)];
        assert_eq!(
            tr.open.values().next().unwrap().enc.tokens,
            vec![t(0), t(1), t(2)]
        );
        assert_eq!(tr.close_all()[0].tokens, vec![t(1), t(0), t(2)]);
    }

    #[test]
    fn a_whole_epoch_encounter_puts_the_same_epoch_token_first() {
        // The other device's ID for epoch E, heard every 60 s from E's
        // first second to its last: our keys E − 1 (still active for
        // 300 s), E and E + 1 (from 300 s before the end) all yield tokens;
        // the one both sides hold, of the two keys of epoch E, comes first.
        let mut rng = ChaCha20Rng::seed_from_u64(53);
        let t0 = UnixTime(10_000 * 900);
        let e = t0.epoch();
        let mut mine = KeySchedule::new();
        mine.rotate(t0.minus(300), &mut rng);
        let theirs = EpochKey::generate(e, &mut rng);
        let mut tokens = BTreeMap::new();
        let mut tr = EncounterTracker::new(0);
        for k in 0..=15u64 {
            let at = t0.plus(60 * k).min(e.end().minus(1));
            mine.rotate(at, &mut rng);
            record_tokens(&mine, &theirs.public(), &mut tokens);
            hear(&mut tr, &mine, theirs.public(), at);
        }
        let closed = tr.close_all();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].first_seen, closed[0].last_seen),
            (t0, e.end().minus(1))
        );
        let t = |ep: Epoch| tokens[&ep];
        assert_eq!(
            closed[0].tokens,
            vec![t(e), t(Epoch(e.0 - 1)), t(e.next())],
            "E first, then E − 1 and E + 1 in derivation order"
        );
        assert_eq!(
            t(e),
            derive_token(&theirs, &mine.get(e).unwrap().public()).unwrap(),
            "the other side holds it too"
        );
    }

    #[test]
    fn sightings_count_before_their_epochs_token_exists() {
        // A fresh node holds only E + 1's key. Two sightings in E + 1, then
        // two in E (no key of E yet: they derive nothing but count for E),
        // then the clock goes back, E's key is drawn and one more sighting
        // in E derives its token: E has 3 sightings against 2.
        let (mut mine, other, t0) = rotating_world(54, &[1000]);
        let e = t0.epoch();
        let mut rng = ChaCha20Rng::seed_from_u64(55);
        let mut tr = EncounterTracker::new(0);
        for at in [1000, 1010, 850, 800, 790] {
            if at == 790 {
                mine.rotate(t0.plus(at), &mut rng);
            }
            hear(&mut tr, &mine, other, t0.plus(at));
        }
        let (te, te1) = (
            token_of(&mine, e, &other),
            token_of(&mine, e.next(), &other),
        );
        assert_eq!(tr.close_all()[0].tokens, vec![te, te1]);
    }

    #[test]
    fn epoch_counts_stay_bounded_when_the_clock_keeps_going_back() {
        // Each sighting 300 s before the encounter's first_seen keeps it
        // open; its epochs are unbounded, the counts kept are not.
        let (mine, other, t0) = rotating_world(56, &[450]);
        let mut tr = EncounterTracker::new(0);
        let start = t0.plus(450);
        for k in 0..200u64 {
            hear(&mut tr, &mine, other, start.minus(300 * k));
            let o = tr.open.values().next().unwrap();
            assert!(o.counts.len() <= 2 * MAX_TOKENS_PER_ENCOUNTER);
        }
        let o = tr.open.values().next().unwrap();
        assert_eq!(o.enc.first_seen, start.minus(300 * 199));
        assert_eq!(o.covered, vec![t0.epoch()]);
        assert_eq!(tr.close_all()[0].sightings, 200);
    }

    #[test]
    fn an_encounter_ends_when_the_clock_is_set_back() {
        let e = Encounter {
            first_seen: UnixTime(10_000),
            last_seen: UnixTime(10_100),
            ..Encounter::default()
        };
        assert!(!e.ends_at(UnixTime(10_200)));
        assert!(
            !e.ends_at(UnixTime(10_000 - ENCOUNTER_IDLE_SECONDS)),
            "small step back"
        );
        assert!(e.ends_at(UnixTime(10_000 - ENCOUNTER_IDLE_SECONDS - 1)));
        assert!(e.ends_at(UnixTime(10_100 + ENCOUNTER_IDLE_SECONDS + 1)));
    }
}
