//! Per-peer rate limits of [`MeshState`]: requests and response bytes per
//! window.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::state::{MeshState, Now};
use super::{STEM_REQUESTS_PER_MINUTE, SYNC_BYTES_PER_MINUTE, SYNC_REQUESTS_PER_MINUTE};

/// Length of a rate window: the per-minute limits count within it.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// One peer's use of this node in the current window.
pub(super) struct RateWindow {
    start: Instant,
    stem: u32,
    sync: u32,
    pub(super) bytes_out: usize,
}

impl RateWindow {
    fn new(start: Instant) -> RateWindow {
        RateWindow {
            start,
            stem: 0,
            sync: 0,
            bytes_out: 0,
        }
    }
}

impl MeshState {
    /// Per-peer limits: requests per minute and response bytes per minute.
    /// A refusal is counted in `rate_limited`.
    pub(super) fn allow(&mut self, now: Now, peer: PeerId, stem: bool) -> bool {
        let w = self.window(now, peer);
        let ok = if stem {
            w.stem += 1;
            w.stem <= STEM_REQUESTS_PER_MINUTE
        } else {
            w.sync += 1;
            w.sync <= SYNC_REQUESTS_PER_MINUTE && w.bytes_out < SYNC_BYTES_PER_MINUTE
        };
        if !ok {
            self.counters.rate_limited += 1;
        }
        ok
    }

    /// `peer`'s current window (a new one when the last has run out).
    pub(super) fn window(&mut self, now: Now, peer: PeerId) -> &mut RateWindow {
        let w = self
            .rate
            .entry(peer)
            .or_insert_with(|| RateWindow::new(now.mono));
        if now.mono.duration_since(w.start) >= RATE_WINDOW {
            *w = RateWindow::new(now.mono);
        }
        w
    }
}
