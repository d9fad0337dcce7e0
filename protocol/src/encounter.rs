//! Sightings to encounters (pure state).
//!
//! The radio reports sightings (ID, RSSI, advertised TX power, local time).
//! Sightings of one ID are aggregated into an [`Encounter`]: first and last
//! seen, exposure seconds per attenuation value, and the encounter tokens
//! derived with the node's own keys active around each sighting.

use std::collections::{BTreeMap, HashMap};

use crate::keys::{KeySchedule, RotatingId};
use crate::time::{Day, EPOCH_SECONDS, UnixTime};
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
/// Attenuation values are clamped to this many dB.
pub const MAX_ATTENUATION_DB: u8 = u8::MAX;
/// RSSI value meaning "not available" (HCI LE Advertising Report); emulated
/// controllers always report it. Such a sighting proves presence but not
/// proximity: it gets [`MAX_ATTENUATION_DB`], which every risk rule drops.
pub const RSSI_UNKNOWN: i16 = 127;

/// One reception of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// The heard rotating ID.
    pub id: RotatingId,
    /// Received signal strength in dBm.
    pub rssi: i16,
    /// The sender's advertised TX power in dBm.
    pub tx_power: i8,
    /// Local time of reception.
    pub at: UnixTime,
}

/// Attenuation in dB: advertised TX power − RSSI − receiver correction,
/// clamped to `0..=255`. `rx_correction_db` is the receiving device's known
/// RSSI offset (positive when it reads high). An RSSI of [`RSSI_UNKNOWN`]
/// gives [`MAX_ATTENUATION_DB`].
pub fn attenuation_db(tx_power: i8, rssi: i16, rx_correction_db: i16) -> u8 {
    if rssi == RSSI_UNKNOWN {
        return MAX_ATTENUATION_DB;
    }
    let a = i32::from(tx_power) - i32::from(rssi) - i32::from(rx_correction_db);
    a.clamp(0, i32::from(MAX_ATTENUATION_DB)) as u8
}

/// A closed (or snapshot of an open) encounter with one rotating ID.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Encounter {
    /// Tokens shared with the other device (1 to [`MAX_TOKENS_PER_ENCOUNTER`]).
    pub tokens: Vec<EncounterToken>,
    /// First sighting.
    pub first_seen: UnixTime,
    /// Last sighting.
    pub last_seen: UnixTime,
    /// Seconds of exposure at each attenuation (dB), ascending by attenuation.
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

    /// Exposure seconds at any attenuation.
    pub fn exposure_seconds(&self) -> u64 {
        self.profile.iter().map(|&(_, s)| u64::from(s)).sum()
    }

    /// Exposure seconds at attenuation strictly below `db`.
    pub fn seconds_below(&self, db: u8) -> u64 {
        self.profile
            .iter()
            .filter(|&&(a, _)| a < db)
            .map(|&(_, s)| u64::from(s))
            .sum()
    }
}

#[derive(Debug)]
struct Open {
    enc: Encounter,
    profile: BTreeMap<u8, u32>,
    last_att: u8,
    covered: Vec<crate::time::Epoch>,
}

impl Open {
    fn snapshot(&self) -> Encounter {
        let mut e = self.enc.clone();
        e.profile = self.profile.iter().map(|(&a, &s)| (a, s)).collect();
        e
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

/// Aggregates sightings into encounters.
#[derive(Debug)]
pub struct EncounterTracker {
    open: HashMap<RotatingId, Open>,
    rx_correction_db: i16,
    closed: Vec<Encounter>,
}

impl EncounterTracker {
    /// A tracker for a receiver whose RSSI reads `rx_correction_db` high.
    pub fn new(rx_correction_db: i16) -> EncounterTracker {
        EncounterTracker {
            open: HashMap::new(),
            rx_correction_db,
            closed: Vec::new(),
        }
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
        let att = attenuation_db(s.tx_power, s.rssi, self.rx_correction_db);
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
                    last_att: att,
                    covered: Vec::new(),
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
        if s.at > o.enc.last_seen {
            let gap = s.at.seconds_since(o.enc.last_seen);
            if gap <= MAX_SIGHTING_GAP_SECONDS {
                // Attribute the interval to the mean attenuation of its ends.
                let mean = ((u16::from(o.last_att) + u16::from(att)).div_ceil(2)) as u8;
                let slot = o.profile.entry(mean).or_insert(0);
                *slot = slot.saturating_add(gap as u32);
            }
            o.enc.last_seen = s.at;
            o.last_att = att;
        } else if s.at < o.enc.first_seen {
            o.enc.first_seen = s.at;
        }
        Ok(())
    }

    /// Tells the tracker that the scanner listened during `window`.
    ///
    /// Contract (the crediting itself is specified in docs/protocol.md §6):
    /// call it once per window, in time order, with the sightings of that
    /// window given to [`EncounterTracker::handle_sighting`] before or after
    /// it; any sequence of windows (overlapping, backwards, empty) is
    /// accepted without panicking.
    pub fn handle_scan(&mut self, window: ScanWindow) {
        let _ = window;
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
    fn attenuation_is_clamped() {
        assert_eq!(attenuation_db(0, -60, 0), 60);
        assert_eq!(attenuation_db(-10, -60, 5), 45);
        assert_eq!(attenuation_db(10, 20, 0), 0);
        assert_eq!(attenuation_db(127, -32768, -32768), 255);
        assert_eq!(attenuation_db(0, RSSI_UNKNOWN, 0), MAX_ATTENUATION_DB);
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
                    tx_power: 0,
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
            tx_power: 0,
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
            tx_power: 0,
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
