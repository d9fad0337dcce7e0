//! Clocks: the only place the node reads time. The protocol core takes `now`
//! as an argument; the node passes it from one of these.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use meshtrace_protocol::UnixTime;

/// A source of the current time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime {
        UnixTime(self.now_millis() / 1000)
    }
}

/// A clock shared between tasks.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that runs `scale` times faster than real time from a start point
/// (simulated radios only: demos and tests cover hours in seconds).
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: Instant,
    start_millis: u64,
    scale: f64,
}

/// Largest accepted time scale.
pub const MAX_TIME_SCALE: f64 = 10_000.0;

impl ScaledClock {
    /// Starts at `start` and runs `scale` times real time. `scale` must be in
    /// `(0, MAX_TIME_SCALE]`.
    pub fn new(start: UnixTime, scale: f64) -> Option<ScaledClock> {
        (scale > 0.0 && scale <= MAX_TIME_SCALE).then(|| ScaledClock {
            origin: Instant::now(),
            start_millis: start.0.saturating_mul(1000),
            scale,
        })
    }

    /// A scaled clock that agrees with every other clock anchored at the same
    /// `origin_millis` (a real UNIX time): it reads `origin + (real − origin)
    /// × scale`, so processes started at different moments share one
    /// simulated time. `None` when `scale` is out of range or the origin
    /// is in the future.
    pub(crate) fn anchored(origin_millis: u64, scale: f64) -> Option<ScaledClock> {
        let real = SystemClock.now_millis();
        if real < origin_millis {
            return None;
        }
        let sim = origin_millis as f64 + (real - origin_millis) as f64 * scale;
        let mut c = ScaledClock::new(UnixTime(0), scale)?;
        c.start_millis = sim as u64;
        Some(c)
    }

    /// The scale factor.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Converts a simulated duration in milliseconds to real time.
    pub fn real_duration(&self, sim_millis: u64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(sim_millis as f64 / 1000.0 / self.scale)
    }
}

impl Clock for ScaledClock {
    fn now_millis(&self) -> u64 {
        let real = self.origin.elapsed().as_secs_f64();
        self.start_millis + (real * self.scale * 1000.0) as u64
    }
}

/// A clock that moves only when told (tests, simulator).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: UnixTime) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(start.0.saturating_mul(1000))))
    }

    /// Sets the time.
    pub fn set_millis(&self, millis: u64) {
        self.0.store(millis, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance_millis(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(UnixTime(100));
        assert_eq!(c.now(), UnixTime(100));
        c.advance_millis(1500);
        assert_eq!(c.now_millis(), 101_500);
        assert_eq!(c.now(), UnixTime(101));
    }

    #[test]
    fn scaled_clock_rejects_bad_scales() {
        assert!(ScaledClock::new(UnixTime(0), 0.0).is_none());
        assert!(ScaledClock::new(UnixTime(0), -1.0).is_none());
        assert!(ScaledClock::new(UnixTime(0), MAX_TIME_SCALE * 2.0).is_none());
        let c = ScaledClock::new(UnixTime(1000), 60.0).unwrap();
        assert!(c.now() >= UnixTime(1000));
        assert_eq!(c.real_duration(60_000), std::time::Duration::from_secs(1));
    }
}
