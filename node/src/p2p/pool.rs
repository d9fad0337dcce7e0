//! The announcement pool: every valid, unexpired announcement this node
//! holds, indexed for gossip deduplication and per-day catch-up digests.
//!
//! A day digest covers the announcements whose certified window ends on
//! that day (their expiry is the same): the count and the XOR of their ids.
//! Two nodes compare digests, ask for the ids of the days that differ, and
//! fetch only the announcements they lack.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meshtrace_protocol::{AnnouncementId, Day, UnixTime, VerifiedAnnouncement};

/// Most announcements a pool holds (about 6.5 GiB at the 64 KiB maximum;
/// in practice chunks are a few KiB). Beyond, the soonest to expire go first.
pub const MAX_POOL_ANNOUNCEMENTS: usize = 100_000;

/// One day's digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayDigest {
    /// Last day of the covered windows.
    pub day: Day,
    /// Number of announcements.
    pub count: u32,
    /// XOR of their ids.
    pub xor: [u8; 32],
}

struct Entry {
    bytes: Vec<u8>,
    day: Day,
    expires_at: UnixTime,
}

/// Valid, unexpired announcements.
#[derive(Default)]
pub struct Pool {
    entries: HashMap<AnnouncementId, Entry>,
    by_day: BTreeMap<Day, BTreeSet<AnnouncementId>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Number of announcements held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `id` is held.
    pub fn contains(&self, id: &AnnouncementId) -> bool {
        self.entries.contains_key(id)
    }

    /// Adds a verified announcement; `false` when it was already held.
    pub fn insert(&mut self, ann: &VerifiedAnnouncement, bytes: &[u8]) -> bool {
        if self.entries.contains_key(&ann.id()) {
            return false;
        }
        if self.entries.len() >= MAX_POOL_ANNOUNCEMENTS {
            self.evict_soonest();
        }
        let day = ann.window().1;
        self.entries.insert(
            ann.id(),
            Entry {
                bytes: bytes.to_vec(),
                day,
                expires_at: ann.expires_at(),
            },
        );
        self.by_day.entry(day).or_default().insert(ann.id());
        true
    }

    fn evict_soonest(&mut self) {
        let first = self
            .by_day
            .iter()
            .next()
            .and_then(|(d, ids)| ids.iter().next().map(|id| (*d, *id)));
        if let Some((_, id)) = first {
            self.remove(&id);
        }
    }

    fn remove(&mut self, id: &AnnouncementId) {
        if let Some(e) = self.entries.remove(id)
            && let Some(set) = self.by_day.get_mut(&e.day)
        {
            set.remove(id);
            if set.is_empty() {
                self.by_day.remove(&e.day);
            }
        }
    }

    /// Drops everything expired at `now`; returns how many.
    pub fn expire(&mut self, now: UnixTime) -> usize {
        let gone: Vec<AnnouncementId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone.len()
    }

    /// The bytes of one announcement.
    pub fn get(&self, id: &AnnouncementId) -> Option<&[u8]> {
        self.entries.get(id).map(|e| &e.bytes[..])
    }

    /// Digests of every day held, ascending.
    pub fn digests(&self) -> Vec<DayDigest> {
        self.by_day
            .iter()
            .map(|(day, ids)| {
                let mut xor = [0u8; 32];
                for id in ids {
                    for (x, b) in xor.iter_mut().zip(id.0) {
                        *x ^= b;
                    }
                }
                DayDigest {
                    day: *day,
                    count: ids.len() as u32,
                    xor,
                }
            })
            .collect()
    }

    /// Ids held for one day, ascending.
    pub fn ids_of_day(&self, day: Day) -> Vec<AnnouncementId> {
        self.by_day
            .get(&day)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Days whose digest differs from `theirs` and that they have (so we may
    /// lack something): the days to ask ids for.
    pub fn days_to_reconcile(&self, theirs: &[DayDigest]) -> Vec<Day> {
        let ours: HashMap<Day, DayDigest> =
            self.digests().into_iter().map(|d| (d.day, d)).collect();
        theirs
            .iter()
            .filter(|t| t.count > 0 && ours.get(&t.day) != Some(t))
            .map(|t| t.day)
            .collect()
    }

    /// Of `ids`, the ones not held.
    pub fn missing(&self, ids: &[AnnouncementId]) -> Vec<AnnouncementId> {
        ids.iter()
            .filter(|id| !self.contains(id))
            .copied()
            .collect()
    }
}
