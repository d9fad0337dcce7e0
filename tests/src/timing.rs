//! Deadlines that hold on a busy machine.
//!
//! Every bounded wait in the end-to-end tests goes through [`deadline`]: its
//! base duration (generous for an idle machine) is multiplied by the
//! [`slowdown`] of this run. The slowdown is the larger of
//! `MESHTRACE_TEST_SLOWDOWN` (a factor set by whoever runs the tests beside
//! other work) and one measured at the first wait: a fixed CPU workload is
//! run on the calling thread, and the kernel's scheduler statistics
//! (`/proc/thread-self/schedstat`) tell how long the thread sat runnable but
//! waiting for a CPU. On an idle machine that is nearly nothing (factor 1);
//! with two other CPU hogs on two cores the thread runs about a third of the
//! time (factor about 3).
//!
//! Only deadlines are scaled: a wait still ends as soon as its condition
//! holds, so a slowdown never makes a passing test slower.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Environment variable with a slowdown factor (a number ≥ 1) for every
/// deadline, e.g. `MESHTRACE_TEST_SLOWDOWN=4` beside a heavy build.
pub const SLOWDOWN_ENV: &str = "MESHTRACE_TEST_SLOWDOWN";

/// Largest slowdown applied (measured or given): beyond it a test would wait
/// for tens of minutes, and a hung test should still end.
pub const MAX_SLOWDOWN: f64 = 10.0;

/// Wall-clock length of the CPU workload the slowdown is measured with.
const PROBE: Duration = Duration::from_millis(300);

/// The factor every deadline of this test process is multiplied by (at least
/// 1, at most [`MAX_SLOWDOWN`]); measured once, on first use.
pub fn slowdown() -> f64 {
    static FACTOR: OnceLock<f64> = OnceLock::new();
    *FACTOR.get_or_init(|| {
        let given = std::env::var(SLOWDOWN_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite());
        let measured = measure_slowdown();
        let factor = given
            .unwrap_or(1.0)
            .max(measured.unwrap_or(1.0))
            .clamp(1.0, MAX_SLOWDOWN);
        eprintln!(
            "test deadlines ×{factor:.1} ({SLOWDOWN_ENV}: {}, measured: {})",
            given.map_or("unset".into(), |g| format!("{g}")),
            measured.map_or("unavailable".into(), |m| format!("{m:.2}")),
        );
        factor
    })
}

/// `base` scaled by this run's [`slowdown`]: the bound for one wait.
pub fn deadline(base: Duration) -> Duration {
    base.mul_f64(slowdown())
}

/// Runs a CPU-bound loop for [`PROBE`] of wall time and returns wall time ÷
/// time on a CPU, from the scheduler's statistics of this thread; `None`
/// where the kernel does not provide them.
pub fn measure_slowdown() -> Option<f64> {
    let before = thread_cpu_ns()?;
    let start = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while start.elapsed() < PROBE {
        for _ in 0..10_000 {
            // xorshift: cheap work the optimiser cannot drop.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
    }
    let wall = start.elapsed().as_nanos() as f64;
    let on_cpu = thread_cpu_ns()?.saturating_sub(before) as f64;
    (on_cpu > 0.0).then(|| wall / on_cpu)
}

/// Nanoseconds this thread has spent on a CPU (first field of
/// `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_never_shorter_than_their_base() {
        let f = slowdown();
        assert!((1.0..=MAX_SLOWDOWN).contains(&f), "{f}");
        let base = Duration::from_secs(60);
        assert!(deadline(base) >= base);
        assert!(deadline(base) <= base.mul_f64(MAX_SLOWDOWN));
    }

    #[test]
    fn the_probe_reads_this_threads_cpu_time() {
        // Linux with scheduler statistics (every kernel the tests run on).
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            let m = measure_slowdown().expect("a measurement");
            assert!(m >= 0.9, "wall time below CPU time: {m}");
        }
    }
}
