//! The inputs the benchmarks share: `meshtrace bench` and the criterion
//! benches of the protocol, the node and the mesh build them here, so that
//! they measure the same work.

use meshtrace_node::store::{ContactStore, Store, StoreError};
use meshtrace_protocol::{
    DAY_SECONDS, Encounter, EncounterToken, EncounterTracker, EpochKey, KeySchedule, RotatingId,
    Sighting, UnixTime,
};
use rand_core::{CryptoRng, Rng};

/// Sightings of one ID in a stream: one scan every
/// [`SIGHTING_EVERY_SECONDS`] for 15 minutes.
pub const SIGHTINGS_PER_ID: usize = 90;
/// Seconds between two sightings of an ID.
pub const SIGHTING_EVERY_SECONDS: u64 = 10;
/// Arrivals in a stream are staggered over this many scans.
const STAGGER_SCANS: u64 = 30;
/// Days a receiver's log spans (the retention window).
pub const LOG_DAYS: u64 = 14;
/// How often the radio task closes encounters while ingesting.
const CLOSE_EVERY_SECONDS: u64 = 60;

/// A random encounter token.
pub fn random_token<R: Rng + ?Sized>(rng: &mut R) -> EncounterToken {
    let mut t = [0u8; 16];
    rng.fill_bytes(&mut t);
    EncounterToken(t)
}

/// `n` random encounter tokens.
pub fn random_tokens<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Vec<EncounterToken> {
    (0..n).map(|_| random_token(rng)).collect()
}

/// `n` rotating IDs of fresh epoch keys for the epoch of `now`.
pub fn random_ids<R: CryptoRng + ?Sized>(rng: &mut R, n: usize, now: UnixTime) -> Vec<RotatingId> {
    (0..n)
        .map(|_| EpochKey::generate(now.epoch(), rng).public())
        .collect()
}

/// A node's sighting stream from `t0`: `ids` neighbours, each heard every
/// 10 s for 15 minutes, arrivals staggered, in time order.
pub fn sighting_stream<R: CryptoRng + ?Sized>(rng: &mut R, ids: usize, t0: u64) -> Vec<Sighting> {
    let ids = random_ids(rng, ids, UnixTime(t0));
    let mut out = Vec::with_capacity(ids.len() * SIGHTINGS_PER_ID);
    for (i, id) in ids.iter().enumerate() {
        let start = t0 + (i as u64 % STAGGER_SCANS) * SIGHTING_EVERY_SECONDS;
        for k in 0..SIGHTINGS_PER_ID as u64 {
            out.push(Sighting {
                id: *id,
                rssi: -50 - (rng.next_u32() % 30) as i16,
                at: UnixTime(start + SIGHTING_EVERY_SECONDS * k),
            });
        }
    }
    out.sort_by_key(|s| s.at);
    out
}

/// What a node's radio task does with `sightings`: the tracker, closed
/// encounters sealed into the store every minute, flushes when due. Returns
/// the encounters stored. Sightings the tracker refuses are skipped.
pub fn ingest<S: Store>(
    store: &mut ContactStore<S>,
    keys: &KeySchedule,
    sightings: &[Sighting],
) -> Result<usize, StoreError> {
    let mut tracker = EncounterTracker::new(0);
    let mut stored = 0;
    let Some(first) = sightings.first() else {
        return Ok(0);
    };
    let mut last_poll = first.at;
    for s in sightings {
        // A refused sighting (no key for its time) is what the node skips too.
        let _ = tracker.handle_sighting(keys, *s);
        if s.at.seconds_since(last_poll) >= CLOSE_EVERY_SECONDS {
            let closed = tracker.poll_closed(s.at);
            stored += store.add_encounters(&closed, s.at)?.len();
            store.maybe_flush(s.at)?;
            last_poll = s.at;
        }
    }
    let closed = tracker.close_all();
    stored += store.add_encounters(&closed, last_poll)?.len();
    store.flush()?;
    Ok(stored)
}

/// A receiver's log of `n` one-token encounters spread over the
/// [`LOG_DAYS`] days before `now`, 5 to 30 minutes each.
pub fn receiver_log<R: Rng + ?Sized>(rng: &mut R, n: usize, now: u64) -> Vec<Encounter> {
    (0..n)
        .map(|i| {
            let start = now - LOG_DAYS * DAY_SECONDS + (i as u64 * 60) % (LOG_DAYS * DAY_SECONDS);
            let minutes = 5 + (i as u64 % 26);
            Encounter {
                tokens: vec![random_token(rng)],
                first_seen: UnixTime(start),
                last_seen: UnixTime(start + minutes * 60),
                profile: vec![(50 + (i % 30) as u8, minutes as u32 * 60)],
                sightings: minutes as u32 * 6,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn a_sighting_stream_is_in_time_order_and_complete() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let s = sighting_stream(&mut rng, 7, 1_800_000_000);
        assert_eq!(s.len(), 7 * SIGHTINGS_PER_ID);
        assert!(s.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn a_receiver_log_lies_in_the_days_before_now() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let now = 1_800_000_000;
        let log = receiver_log(&mut rng, 100, now);
        assert_eq!(log.len(), 100);
        assert!(
            log.iter()
                .all(|e| e.first_seen.0 >= now - LOG_DAYS * DAY_SECONDS
                    && e.last_seen.0 <= now + 30 * 60
                    && e.first_seen < e.last_seen)
        );
    }
}
