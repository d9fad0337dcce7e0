//! The announcement pool: every valid, unexpired announcement this node
//! holds, indexed for gossip deduplication and per-day catch-up digests.
//! It keeps each announcement's bookkeeping ([`HeldAnnouncement`], under a
//! hundred bytes), never its bytes: those live in the store (or, for a mesh
//! without a node, in the core's in-memory bodies).
//!
//! A day digest covers the announcements whose certified window ends on
//! that day (their expiry is the same): the count and the XOR of their ids.
//! Two nodes compare digests, ask for the ids of the days that differ, and
//! fetch only the announcements they lack.
//!
//! The pool is also where the mesh's "first chunk per (report key, index)
//! wins" rule lives: a chunk whose slot another chunk already holds is never
//! inserted ([`Pool::slot_taken`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meshtrace_protocol::{AnnouncementId, Day, ReportPublicKey, UnixTime, VerifiedAnnouncement};

use super::wire::IdMessage;

/// A chunk's slot: its report key and chunk index.
type Slot = (ReportPublicKey, u32);

/// Most announcements a pool holds (about 6.5 GiB at the 64 KiB maximum;
/// in practice chunks are a few KiB). Beyond, the soonest to expire go first.
pub(crate) const MAX_POOL_ANNOUNCEMENTS: usize = 100_000;

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
    size: u32,
    day: Day,
    expires_at: UnixTime,
    hidden: bool,
    slot: Slot,
}

/// What the mesh knows of an announcement it holds, without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldAnnouncement {
    /// Its id.
    pub id: AnnouncementId,
    /// Last day of its certified window (its catch-up day).
    pub last_day: Day,
    /// When it expires.
    pub expires_at: UnixTime,
    /// Its report key.
    pub report_key: ReportPublicKey,
    /// Its chunk index.
    pub chunk_index: u32,
    /// Its encoded size in bytes.
    pub size: u32,
}

impl HeldAnnouncement {
    /// The bookkeeping of a verified announcement of `size` bytes.
    pub fn of(ann: &VerifiedAnnouncement, size: usize) -> HeldAnnouncement {
        HeldAnnouncement {
            id: ann.id(),
            last_day: ann.window().1,
            expires_at: ann.expires_at(),
            report_key: ann.report_key(),
            chunk_index: ann.chunk_index(),
            size: u32::try_from(size).unwrap_or(u32::MAX),
        }
    }
}

/// Valid, unexpired announcements.
#[derive(Default)]
pub struct Pool {
    entries: HashMap<AnnouncementId, Entry>,
    by_day: BTreeMap<Day, BTreeSet<AnnouncementId>>,
    /// The chunk held for each (report key, chunk index): first one wins.
    slots: HashMap<Slot, AnnouncementId>,
    /// Evicted for room since the last [`Pool::take_evicted`].
    evicted: Vec<AnnouncementId>,
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
    pub(crate) fn new() -> Pool {
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

    /// True when a different chunk already holds this chunk's (report key,
    /// chunk index) slot: a variant, which is neither stored nor forwarded.
    pub(crate) fn slot_taken(&self, ann: &VerifiedAnnouncement) -> bool {
        self.slots
            .get(&(ann.report_key(), ann.chunk_index()))
            .is_some_and(|id| *id != ann.id())
    }

    /// Adds a verified announcement; `false` when it was already held or
    /// its slot is taken ([`Pool::slot_taken`]).
    pub(crate) fn insert(&mut self, ann: &HeldAnnouncement) -> bool {
        self.insert_with(ann, false)
    }

    /// Adds an announcement that catch-up must not serve yet (an own report
    /// or one received by stem, until it has been seen in gossip): serving it
    /// would point at the few nodes that hold it, i.e. at its origin.
    pub(crate) fn insert_hidden(&mut self, ann: &HeldAnnouncement) -> bool {
        self.insert_with(ann, true)
    }

    /// Lets catch-up serve a hidden announcement.
    pub(crate) fn reveal(&mut self, id: &AnnouncementId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.hidden = false;
        }
    }

    fn insert_with(&mut self, ann: &HeldAnnouncement, hidden: bool) -> bool {
        let slot = (ann.report_key, ann.chunk_index);
        if self.entries.contains_key(&ann.id)
            || self.slots.get(&slot).is_some_and(|id| *id != ann.id)
        {
            return false;
        }
        if self.entries.len() >= MAX_POOL_ANNOUNCEMENTS
            && let Some(id) = self.evict_soonest()
        {
            self.evicted.push(id);
        }
        let day = ann.last_day;
        self.slots.insert(slot, ann.id);
        self.entries.insert(
            ann.id,
            Entry {
                size: ann.size,
                day,
                expires_at: ann.expires_at,
                hidden,
                slot,
            },
        );
        self.by_day.entry(day).or_default().insert(ann.id);
        true
    }

    /// Evicts the announcement that expires soonest; returns its id.
    fn evict_soonest(&mut self) -> Option<AnnouncementId> {
        let first = self
            .by_day
            .iter()
            .next()
            .and_then(|(d, ids)| ids.iter().next().map(|id| (*d, *id)));
        let (_, id) = first?;
        self.remove(&id);
        Some(id)
    }

    /// The ids evicted for room since the last call.
    pub(crate) fn take_evicted(&mut self) -> Vec<AnnouncementId> {
        std::mem::take(&mut self.evicted)
    }

    /// Forgets one announcement.
    pub(crate) fn remove(&mut self, id: &AnnouncementId) {
        let Some(e) = self.entries.remove(id) else {
            return;
        };
        if self.slots.get(&e.slot) == Some(id) {
            self.slots.remove(&e.slot);
        }
        if let Some(set) = self.by_day.get_mut(&e.day) {
            set.remove(id);
            if set.is_empty() {
                self.by_day.remove(&e.day);
            }
        }
    }

    /// Drops everything expired at `now`; returns their ids.
    pub(crate) fn expire(&mut self, now: UnixTime) -> Vec<AnnouncementId> {
        let gone: Vec<AnnouncementId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone
    }

    /// True when catch-up may serve `id` (held and not hidden).
    pub fn is_served(&self, id: &AnnouncementId) -> bool {
        self.visible(id)
    }

    /// The gossip message naming a held announcement (its id, last day
    /// and size), hidden or not.
    pub(crate) fn id_message(&self, id: &AnnouncementId) -> Option<IdMessage> {
        self.entries.get(id).map(|e| IdMessage {
            id: *id,
            last_day: e.day,
            size: e.size,
        })
    }

    fn visible(&self, id: &AnnouncementId) -> bool {
        self.entries.get(id).is_some_and(|e| !e.hidden)
    }

    /// Digests of every day held, ascending.
    pub(crate) fn digests(&self) -> Vec<DayDigest> {
        self.by_day
            .iter()
            .map(|(day, ids)| {
                let mut xor = [0u8; 32];
                let mut count = 0u32;
                for id in ids.iter().filter(|id| self.visible(id)) {
                    count += 1;
                    for (x, b) in xor.iter_mut().zip(id.0) {
                        *x ^= b;
                    }
                }
                DayDigest {
                    day: *day,
                    count,
                    xor,
                }
            })
            .filter(|d| d.count > 0)
            .collect()
    }

    /// Ids held for one day, ascending.
    pub(crate) fn ids_of_day(&self, day: Day) -> Vec<AnnouncementId> {
        self.by_day
            .get(&day)
            .map(|s| s.iter().filter(|id| self.visible(id)).copied().collect())
            .unwrap_or_default()
    }

    /// Days whose digest differs from `theirs` and that they have (so we may
    /// lack something): the days to ask ids for.
    pub(crate) fn days_to_reconcile(&self, theirs: &[DayDigest]) -> Vec<Day> {
        let ours: HashMap<Day, DayDigest> =
            self.digests().into_iter().map(|d| (d.day, d)).collect();
        theirs
            .iter()
            .filter(|t| t.count > 0 && ours.get(&t.day) != Some(t))
            .map(|t| t.day)
            .collect()
    }

    /// Of `ids`, the ones not held.
    pub(crate) fn missing(&self, ids: &[AnnouncementId]) -> Vec<AnnouncementId> {
        ids.iter()
            .filter(|id| !self.contains(id))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_protocol::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn chunks(n: usize, last_day_offset: u32) -> (Vec<(HeldAnnouncement, Vec<u8>)>, UnixTime) {
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(last_day_offset) + n as u64);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let now = UnixTime(1_800_000_000);
        let mut out = Vec::new();
        for _ in 0..n {
            let key = ReportSecretKey::generate(&mut rng);
            let cert = Certificate::issue(
                &issuer,
                CertificateParams {
                    network_id: "pool".into(),
                    report_key: key.public(),
                    valid_from: now.minus(86_400 * 5),
                    valid_until: now,
                    window_first_day: now.day().minus(last_day_offset + 2),
                    window_last_day: now.day().minus(last_day_offset),
                    max_tokens: 64,
                },
            )
            .unwrap();
            let c = build_announcements(&key, &cert, &[], -8, now.minus(60), &mut rng)
                .unwrap()
                .remove(0);
            let trusted = [issuer.public()];
            let v = VerifiedAnnouncement::verify(
                &c.bytes,
                &VerifyContext {
                    network_id: "pool",
                    trusted_issuers: &trusted,
                    now,
                },
            )
            .unwrap();
            out.push((HeldAnnouncement::of(&v, c.bytes.len()), c.bytes));
        }
        (out, now)
    }

    #[test]
    fn digests_find_exactly_the_days_that_differ() {
        let (a, _) = chunks(3, 0);
        let (b, _) = chunks(2, 4);
        let mut full = Pool::new();
        let mut partial = Pool::new();
        for (v, _) in a.iter().chain(&b) {
            assert!(full.insert(v));
            assert!(!full.insert(v), "held once");
        }
        for (v, _) in &a {
            partial.insert(v);
        }
        let days = partial.days_to_reconcile(&full.digests());
        assert_eq!(days, vec![b[0].0.last_day], "only the day it lacks");
        assert!(
            full.days_to_reconcile(&partial.digests()).is_empty(),
            "superset needs nothing"
        );
        let ids = full.ids_of_day(days[0]);
        assert_eq!(partial.missing(&ids).len(), 2);
        assert!(partial.days_to_reconcile(&partial.digests()).is_empty());
    }

    #[test]
    fn hidden_announcements_are_not_served_until_revealed() {
        let (a, _) = chunks(2, 1);
        let mut p = Pool::new();
        p.insert(&a[0].0);
        p.insert_hidden(&a[1].0);
        assert_eq!(p.digests()[0].count, 1);
        assert_eq!(p.ids_of_day(a[0].0.last_day), vec![a[0].0.id]);
        assert!(!p.is_served(&a[1].0.id));
        assert!(p.contains(&a[1].0.id), "still held for gossip dedupe");
        assert_eq!(
            p.id_message(&a[1].0.id).map(|m| m.size as usize),
            Some(a[1].1.len())
        );
        p.reveal(&a[1].0.id);
        assert_eq!(p.digests()[0].count, 2);
        assert!(p.is_served(&a[1].0.id));
    }

    #[test]
    fn expiry_drops_old_days() {
        let (old, now) = chunks(2, 14);
        let (recent, _) = chunks(1, 0);
        let mut p = Pool::new();
        for (v, _) in old.iter().chain(&recent) {
            p.insert(v);
        }
        assert!(p.expire(now).is_empty());
        // One day later the 14-day-old window has expired.
        assert_eq!(p.expire(now.plus(86_400)).len(), 2);
        assert_eq!(p.len(), 1);
        assert_eq!(p.digests().len(), 1);
    }
}
