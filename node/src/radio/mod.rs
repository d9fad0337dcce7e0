//! The radio layer: broadcasting the current frame and hearing others'.
//!
//! A [`Radio`] takes the frame to advertise and delivers [`RadioEvent`]s on a
//! bounded channel. Backends:
//!
//! * `ble` (Linux, feature `ble`): btleplug scans, BlueZ (bluer) advertises;
//! * [`udp`]: a loopback multicast "air" between processes on one machine,
//!   with virtual positions and the [`model`] propagation model;
//! * [`memory`]: an in-process air with the same model, deterministic with a
//!   seed, for tests, the demo and the simulator.
//!
//! Every backend feeds received bytes through one `FrameDecoder`, which
//! parses advertising data and service data with the protocol codec,
//! reassembles legacy halves, and counts (never panics on) malformed,
//! foreign, stale and oversized input.
//!
//! # Scan windows
//!
//! Every backend that scans also reports *when* it listened: a
//! [`RadioEvent::Scan`] when a scan window starts (with its planned end),
//! before any sighting heard in that window, for every window whether or
//! not anything is heard (docs/protocol.md §6). Windows are in whole
//! seconds of the radio's clock, like sightings: a window listening from
//! millisecond `s` for `w` ms is reported as `[floor(s / 1000),
//! floor((s + w − 1) / 1000)]`, so every sighting heard in it (stamped
//! `floor(ms / 1000)`) lies inside it. Back-to-back windows may therefore
//! share their boundary second. The simulated airs follow their
//! [`model::DutyCycle`] with a per-device phase; the BLE backend either
//! duty-cycles the scan or scans continuously and reports fixed windows of
//! the configured interval (see its module docs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meshtrace_protocol::{
    Decoded, Frame, FrameError, HalfReassembler, RSSI_UNKNOWN, ScanWindow, Sighting, UnixTime,
    decode_service_data, find_service_data,
};
use tokio::sync::mpsc;

pub mod external;
pub mod memory;
pub mod model;
pub mod udp;

#[cfg(feature = "ble")]
pub mod ble;

/// Capacity of a radio's event channel; when the node falls behind, further
/// sightings are dropped and counted (a sighting repeats every few seconds).
pub const EVENT_QUEUE: usize = 4096;

/// Shortest scan window a radio may be configured with: below a second a
/// window is shorter than the time a sighting is stamped with, and a phone
/// OS does not scan that briefly anyway.
pub const MIN_SCAN_WINDOW: Duration = Duration::from_secs(1);
/// Longest scan interval a radio may be configured with: ten minutes, past
/// the 3.5–5 minutes of Exposure Notification and far below the 5-minute
/// gap that ends an encounter several times over.
pub const MAX_SCAN_INTERVAL: Duration = Duration::from_secs(600);

/// When a scanner listens: `window` out of every `interval`. A window equal
/// to the interval is continuous scanning, reported as back-to-back windows
/// of the interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanTiming {
    /// Listening time per interval.
    pub window: Duration,
    /// Time from one window's start to the next.
    pub interval: Duration,
}

/// The scan of a PC on mains power (the BLE default): the scan runs all the
/// time and is reported as 10 s windows. Ten seconds is about the interval at
/// which BlueZ reports a device again during a continuous scan (the
/// controller filters duplicates between the kernel's scan restarts), so a
/// window rarely passes without a report of a device that is there.
pub const PC_SCAN: ScanTiming = ScanTiming {
    window: Duration::from_secs(10),
    interval: Duration::from_secs(10),
};

/// The scan of a phone that must last a day on its battery: 4 s every 60 s
/// (Exposure Notification scans about 4 s every 3.5–5 minutes; Android's
/// low-power scan listens about 10 %). The `phone` radio profile (`[radio]
/// profile = "phone"`).
pub const PHONE_SCAN: ScanTiming = ScanTiming {
    window: Duration::from_secs(4),
    interval: Duration::from_secs(60),
};

/// The scan of a phone saving its battery: 4 s every 240 s, within Exposure
/// Notification's own cadence (about 4 s every 3.5–5 minutes). The
/// `phone-low-power` radio profile.
pub const PHONE_LOW_POWER_SCAN: ScanTiming = ScanTiming {
    window: Duration::from_secs(4),
    interval: Duration::from_secs(240),
};

impl ScanTiming {
    /// Checks the timing (see [`check_scan_timing`]).
    pub fn check(&self) -> Result<(), String> {
        check_scan_timing(self.window, self.interval)
    }

    /// True for continuous scanning (window = interval).
    pub fn is_continuous(&self) -> bool {
        self.window >= self.interval
    }

    /// The simulated airs' duty cycle with this timing and `base`'s
    /// advertising interval.
    pub fn duty(&self, base: model::DutyCycle) -> model::DutyCycle {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        model::DutyCycle {
            scan_window_ms: ms(self.window),
            scan_interval_ms: ms(self.interval),
            ..base
        }
    }
}

impl std::fmt::Display for ScanTiming {
    /// "continuous, reported as 10 s windows" or "4 s every 60 s".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_continuous() {
            write!(
                f,
                "continuous, reported as {} windows",
                seconds_text(self.interval)
            )
        } else {
            write!(
                f,
                "{} every {}",
                seconds_text(self.window),
                seconds_text(self.interval)
            )
        }
    }
}

/// "4 s", "1.5 s".
fn seconds_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// Checks a scan window and interval against [`MIN_SCAN_WINDOW`],
/// [`MAX_SCAN_INTERVAL`] and `window ≤ interval`; the error is a plain
/// sentence to put after the setting's name.
pub fn check_scan_timing(window: Duration, interval: Duration) -> Result<(), String> {
    let secs = seconds_text;
    if window < MIN_SCAN_WINDOW {
        return Err(format!(
            "a scan window of {} is shorter than the {} minimum",
            secs(window),
            secs(MIN_SCAN_WINDOW)
        ));
    }
    if interval > MAX_SCAN_INTERVAL {
        return Err(format!(
            "a scan interval of {} is longer than the {} maximum",
            secs(interval),
            secs(MAX_SCAN_INTERVAL)
        ));
    }
    if window > interval {
        return Err(format!(
            "the scan window ({}) is longer than the scan interval ({}); the window is the \
             listening part of each interval",
            secs(window),
            secs(interval)
        ));
    }
    Ok(())
}

/// Most scan windows a radio reports at once when its clock has passed
/// several window starts without it looking (a stalled task, a clock that
/// jumps): the last two, i.e. the window before the current one and the
/// current one. Nothing can have been heard in the skipped windows, and
/// the credit of a reception depends only on its own window and the one
/// reported just before it (docs/protocol.md §6), so the skipped ones
/// change nothing; the bound keeps a jump of days from flooding the event
/// queue.
pub const MAX_SCAN_WINDOWS_AT_ONCE: u64 = 2;

/// How a frame is put on the air (see `docs/protocol.md` §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Carrier {
    /// One BLE 5 extended advertisement carrying the whole frame.
    #[default]
    Extended,
    /// Two legacy (31-byte) advertisements, one half each.
    Legacy,
}

impl Carrier {
    /// The advertising payloads (AD structures) that carry `frame`.
    pub fn payloads(self, frame: &Frame) -> Vec<Vec<u8>> {
        match self {
            Carrier::Extended => vec![meshtrace_protocol::advertising_data(
                &frame.encode_extended(),
            )],
            Carrier::Legacy => {
                let (a, b) = frame.encode_legacy();
                vec![
                    meshtrace_protocol::advertising_data(&a),
                    meshtrace_protocol::advertising_data(&b),
                ]
            }
        }
    }
}

/// A frame heard on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RadioSighting {
    /// The decoded frame (the sender's rotating ID; nothing else is on the
    /// air).
    pub frame: Frame,
    /// Received signal strength in dBm, when the radio reported one.
    pub rssi: Option<i16>,
    /// Local time of reception.
    pub at: UnixTime,
}

impl RadioSighting {
    /// The protocol sighting (unknown RSSI becomes [`RSSI_UNKNOWN`]).
    pub fn to_sighting(&self) -> Sighting {
        Sighting {
            id: self.frame.id,
            rssi: self.rssi.unwrap_or(RSSI_UNKNOWN),
            at: self.at,
        }
    }
}

/// What a radio reports.
#[derive(Clone, Debug, PartialEq)]
pub enum RadioEvent {
    /// A frame was heard.
    Sighting(RadioSighting),
    /// The scanner listened during this window (reported for every window,
    /// heard or not; docs/protocol.md §6).
    Scan(ScanWindow),
    /// The backend stopped working (adapter removed, daemon gone…).
    Failed(RadioError),
}

/// A radio failure, naming its cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RadioError {
    /// No Bluetooth adapter (or not the one named).
    #[error("no Bluetooth adapter: {0}")]
    NoAdapter(String),
    /// BlueZ or the D-Bus system bus is not reachable.
    #[error("Bluetooth service not available: {0}")]
    NoBluetoothService(String),
    /// The OS refused access.
    #[error("permission denied for Bluetooth: {0}")]
    PermissionDenied(String),
    /// A socket or I/O failure (simulated airs).
    #[error("radio I/O error: {0}")]
    Io(String),
    /// Invalid radio configuration.
    #[error("invalid radio configuration: {0}")]
    Config(String),
    /// The radio task has stopped.
    #[error("the radio has stopped")]
    Stopped,
    /// Any other backend error.
    #[error("radio error: {0}")]
    Other(String),
}

/// A radio: advertises one frame at a time and reports what it hears.
pub trait Radio: Send {
    /// Advertises `frame` from now on, replacing the previous frame. On BLE the
    /// advertisement is torn down and registered again so that the device
    /// address changes together with the rotating ID.
    fn advertise(&mut self, frame: Frame) -> Result<(), RadioError>;
    /// The event channel (bounded, [`EVENT_QUEUE`]).
    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent>;
    /// Counters since start.
    fn stats(&self) -> RadioStats;
}

impl<R: Radio + ?Sized> Radio for Box<R> {
    fn advertise(&mut self, frame: Frame) -> Result<(), RadioError> {
        (**self).advertise(frame)
    }
    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent> {
        (**self).events()
    }
    fn stats(&self) -> RadioStats {
        (**self).stats()
    }
}

/// Counters of a radio, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadioStats {
    /// Advertisements (or service-data entries) received from the backend.
    pub received: u64,
    /// Sightings delivered.
    pub sightings: u64,
    /// Advertisements without meshtrace service data.
    pub foreign: u64,
    /// Malformed input: truncated AD, wrong version or kind, wrong length.
    pub malformed: u64,
    /// Input over the size limits.
    pub oversized: u64,
    /// Legacy halves dropped because their complement came too late.
    pub stale_halves: u64,
    /// Legacy half pairs whose ID did not match their tag.
    pub mismatched_halves: u64,
    /// Events (sightings, scan windows) dropped because the node did not
    /// keep up.
    pub queue_full: u64,
    /// Frames sent (simulated airs) or advertisements registered (BLE).
    pub advertised: u64,
    /// Scan windows reported ([`RadioEvent::Scan`]).
    pub scan_windows: u64,
}

/// Shared, lock-free counters behind [`RadioStats`].
#[derive(Debug, Default)]
pub(crate) struct RadioCounters {
    received: AtomicU64,
    sightings: AtomicU64,
    foreign: AtomicU64,
    malformed: AtomicU64,
    oversized: AtomicU64,
    stale_halves: AtomicU64,
    mismatched_halves: AtomicU64,
    queue_full: AtomicU64,
    advertised: AtomicU64,
    scan_windows: AtomicU64,
}

impl RadioCounters {
    /// A snapshot.
    pub(crate) fn snapshot(&self) -> RadioStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RadioStats {
            received: g(&self.received),
            sightings: g(&self.sightings),
            foreign: g(&self.foreign),
            malformed: g(&self.malformed),
            oversized: g(&self.oversized),
            stale_halves: g(&self.stale_halves),
            mismatched_halves: g(&self.mismatched_halves),
            queue_full: g(&self.queue_full),
            advertised: g(&self.advertised),
            scan_windows: g(&self.scan_windows),
        }
    }

    /// Counts one frame sent or advertisement registered.
    pub(crate) fn count_advertised(&self) {
        self.advertised.fetch_add(1, Ordering::Relaxed);
    }

    fn add(a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }
}

/// The scan windows of a duty-cycled receiver, reported once each.
///
/// The receiver listens while `(ms + phase_ms) % interval < window` (the
/// rule of [`model::DutyCycle::listening`]); window `k` therefore starts at
/// clock millisecond `k · interval − phase_ms`.
#[derive(Clone, Debug)]
pub(crate) struct ScanSchedule {
    window_ms: u64,
    interval_ms: u64,
    phase_ms: u64,
    /// Index of the last window reported; `None` before the first report
    /// (or after [`ScanSchedule::restart`]).
    last: Option<u64>,
}

impl ScanSchedule {
    /// A schedule listening `duty.scan_window_ms` of every
    /// `duty.scan_interval_ms`, shifted by `phase_ms` (a validated duty
    /// cycle: positive interval, window ≤ interval).
    pub(crate) fn new(duty: &model::DutyCycle, phase_ms: u64) -> ScanSchedule {
        let interval_ms = duty.scan_interval_ms.max(1);
        ScanSchedule {
            window_ms: duty.scan_window_ms.clamp(1, interval_ms),
            interval_ms,
            phase_ms: phase_ms % interval_ms,
            last: None,
        }
    }

    /// True when the receiver listens at clock millisecond `ms`.
    pub(crate) fn listening(&self, ms: u64) -> bool {
        ms.wrapping_add(self.phase_ms) % self.interval_ms < self.window_ms
    }

    /// The index of the latest window started at or before `now_ms`, with
    /// its start (ms); `None` before the first one.
    fn latest(&self, now_ms: u64) -> Option<(u64, u64)> {
        let k = now_ms.checked_add(self.phase_ms)? / self.interval_ms;
        let start = (k * self.interval_ms).checked_sub(self.phase_ms)?;
        Some((k, start))
    }

    fn window(&self, start_ms: u64) -> ScanWindow {
        ScanWindow {
            start: UnixTime(start_ms / 1000),
            end: UnixTime(start_ms.saturating_add(self.window_ms - 1) / 1000),
        }
    }

    /// The windows started at or before `now_ms` and not reported yet,
    /// oldest first: at most [`MAX_SCAN_WINDOWS_AT_ONCE`] (the latest
    /// ones). The first call (and the first after
    /// [`ScanSchedule::restart`]) reports only a window in progress, from
    /// `now_ms` on: the receiver was not listening before.
    pub(crate) fn due(&mut self, now_ms: u64) -> Vec<ScanWindow> {
        let Some((k, start)) = self.latest(now_ms) else {
            return Vec::new();
        };
        match self.last {
            Some(last) if k <= last => Vec::new(),
            Some(last) => {
                self.last = Some(k);
                let first = (last + 1).max(k.saturating_sub(MAX_SCAN_WINDOWS_AT_ONCE - 1));
                (first..=k)
                    .filter_map(|i| (i * self.interval_ms).checked_sub(self.phase_ms))
                    .map(|s| self.window(s))
                    .collect()
            }
            None => {
                self.last = Some(k);
                if now_ms - start < self.window_ms {
                    let mut w = self.window(start);
                    w.start = UnixTime(now_ms / 1000);
                    vec![w]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Forgets what was reported: the receiver stopped listening (radio
    /// off) and the next [`ScanSchedule::due`] starts afresh.
    pub(crate) fn restart(&mut self) {
        self.last = None;
    }

    /// Clock milliseconds from `now_ms` until the next window starts
    /// (at least 1).
    pub(crate) fn until_next(&self, now_ms: u64) -> u64 {
        let into = now_ms.wrapping_add(self.phase_ms) % self.interval_ms;
        (self.interval_ms - into).max(1)
    }
}

/// Measures how fast a [`crate::clock::SharedClock`] runs against real
/// time (it does not reveal its scale), so that a task can wait for a
/// moment of clock time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClockRate {
    real0: Instant,
    clock0: u64,
}

/// Real time during which [`ClockRate`] measures before it trusts the
/// measurement.
pub(crate) const RATE_WARMUP: Duration = Duration::from_millis(20);

impl ClockRate {
    /// Starts measuring from the clock reading `clock_ms` (now).
    pub(crate) fn start(clock_ms: u64) -> ClockRate {
        ClockRate {
            real0: Instant::now(),
            clock0: clock_ms,
        }
    }

    /// Clock milliseconds per real millisecond, once measurable.
    pub(crate) fn rate(&self, clock_ms: u64) -> Option<f64> {
        let elapsed = self.real0.elapsed();
        (elapsed >= RATE_WARMUP)
            .then(|| clock_ms.saturating_sub(self.clock0) as f64 / (elapsed.as_secs_f64() * 1000.0))
    }
}

/// Converts `left_clock_ms` of clock time into a real wait at `rate` (clock
/// ms per real ms), within `[floor, ceiling]`; `floor` while the rate is
/// unknown.
pub(crate) fn real_wait_within(
    left_clock_ms: u64,
    rate: Option<f64>,
    floor: Duration,
    ceiling: Duration,
) -> Duration {
    let Some(rate) = rate.filter(|r| r.is_finite() && *r > 0.0) else {
        return floor;
    };
    let secs = left_clock_ms as f64 / rate / 1000.0;
    if !secs.is_finite() || secs >= ceiling.as_secs_f64() {
        return ceiling;
    }
    Duration::from_secs_f64(secs.max(0.0)).max(floor)
}

/// Turns received bytes into sightings: one per backend.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    reassembler: HalfReassembler,
    counters: Arc<RadioCounters>,
    seen_stale: u64,
    seen_mismatched: u64,
}

impl FrameDecoder {
    /// A decoder that counts into `counters`.
    pub(crate) fn new(counters: Arc<RadioCounters>) -> FrameDecoder {
        FrameDecoder {
            reassembler: HalfReassembler::new(),
            counters,
            seen_stale: 0,
            seen_mismatched: 0,
        }
    }

    fn count_error(&self, e: FrameError) {
        match e {
            FrameError::TooLong(_) | FrameError::AdTooLong(_) => {
                RadioCounters::add(&self.counters.oversized)
            }
            _ => RadioCounters::add(&self.counters.malformed),
        }
    }

    /// Decodes one meshtrace service-data entry (the bytes after the UUID).
    pub(crate) fn service_data(
        &mut self,
        data: &[u8],
        rssi: Option<i16>,
        at: UnixTime,
    ) -> Option<RadioSighting> {
        RadioCounters::add(&self.counters.received);
        self.decode(data, rssi, at)
    }

    fn decode(&mut self, data: &[u8], rssi: Option<i16>, at: UnixTime) -> Option<RadioSighting> {
        let frame = match decode_service_data(data) {
            Ok(Decoded::Full(f)) => Some(f),
            Ok(Decoded::Half(h)) => {
                let f = self.reassembler.push(at, h);
                let s = self.reassembler.stats();
                self.counters
                    .stale_halves
                    .fetch_add(s.stale - self.seen_stale, Ordering::Relaxed);
                self.counters
                    .mismatched_halves
                    .fetch_add(s.mismatched - self.seen_mismatched, Ordering::Relaxed);
                self.seen_stale = s.stale;
                self.seen_mismatched = s.mismatched;
                f
            }
            Err(e) => {
                self.count_error(e);
                None
            }
        }?;
        RadioCounters::add(&self.counters.sightings);
        Some(RadioSighting { frame, rssi, at })
    }

    /// Decodes a raw advertising payload (AD structures).
    pub(crate) fn advertising_data(
        &mut self,
        ad: &[u8],
        rssi: Option<i16>,
        at: UnixTime,
    ) -> Option<RadioSighting> {
        RadioCounters::add(&self.counters.received);
        match find_service_data(ad) {
            Ok(Some(sd)) => self.decode(sd, rssi, at),
            Ok(None) => {
                RadioCounters::add(&self.counters.foreign);
                None
            }
            Err(e) => {
                self.count_error(e);
                None
            }
        }
    }

    /// Counts an advertisement that carried no meshtrace service data.
    #[cfg_attr(not(feature = "ble"), allow(dead_code))]
    pub(crate) fn count_foreign(&self) {
        RadioCounters::add(&self.counters.received);
        RadioCounters::add(&self.counters.foreign);
    }

    /// Delivers a sighting without blocking; counts it when the queue is full.
    pub(crate) fn deliver(&self, tx: &mpsc::Sender<RadioEvent>, s: RadioSighting) -> bool {
        self.send(tx, RadioEvent::Sighting(s))
    }

    /// Reports a scan window without blocking; counts it when the queue is
    /// full (as a dropped event).
    pub(crate) fn deliver_scan(&self, tx: &mpsc::Sender<RadioEvent>, w: ScanWindow) -> bool {
        RadioCounters::add(&self.counters.scan_windows);
        self.send(tx, RadioEvent::Scan(w))
    }

    fn send(&self, tx: &mpsc::Sender<RadioEvent>, ev: RadioEvent) -> bool {
        match tx.try_send(ev) {
            Ok(()) => true,
            Err(_) => {
                RadioCounters::add(&self.counters.queue_full);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtrace_protocol::{RotatingId, advertising_data};

    fn frame() -> Frame {
        Frame {
            id: RotatingId([9; 32]),
        }
    }

    #[test]
    fn decoder_counts_every_kind_of_bad_input() {
        let c = Arc::new(RadioCounters::default());
        let mut d = FrameDecoder::new(c.clone());
        let t = UnixTime(1000);
        let f = frame();
        assert_eq!(
            d.advertising_data(&advertising_data(&f.encode_extended()), Some(-60), t)
                .map(|s| s.frame),
            Some(f)
        );
        let (a, b) = f.encode_legacy();
        assert!(
            d.advertising_data(&advertising_data(&a), Some(-60), t)
                .is_none()
        );
        assert!(
            d.advertising_data(&advertising_data(&b), Some(-61), t)
                .is_some()
        );
        // Wrong version, truncated half, oversized, truncated AD, foreign.
        let mut v1 = f.encode_extended();
        v1[0] = 0x10; // a version 1 frame
        assert!(d.service_data(&v1, None, t).is_none());
        assert!(d.service_data(&a[..10], None, t).is_none());
        assert!(d.service_data(&[0x10; 400], None, t).is_none());
        assert!(d.advertising_data(&[9, 0x16, 0xb7], None, t).is_none());
        assert!(d.advertising_data(&[2, 0x01, 0x06], None, t).is_none());
        // A stale half.
        assert!(d.service_data(&a, None, UnixTime(5000)).is_none());
        assert!(d.service_data(&b, None, UnixTime(5200)).is_none());
        let s = c.snapshot();
        assert_eq!(s.sightings, 2);
        assert_eq!(s.malformed, 3);
        assert_eq!(s.oversized, 1);
        assert_eq!(s.foreign, 1);
        // The pair heard at t=1000 expires at t=5000 (2), the half heard at
        // t=5000 expires at t=5200 (1): none of them is ever combined.
        assert_eq!(s.stale_halves, 3);
        assert_eq!(s.received, 10);
    }

    fn schedule(window_ms: u64, interval_ms: u64, phase_ms: u64) -> ScanSchedule {
        let duty = model::DutyCycle {
            scan_window_ms: window_ms,
            scan_interval_ms: interval_ms,
            ..model::DutyCycle::default()
        };
        ScanSchedule::new(&duty, phase_ms)
    }

    fn w(start: u64, end: u64) -> ScanWindow {
        ScanWindow {
            start: UnixTime(start),
            end: UnixTime(end),
        }
    }

    #[test]
    fn a_schedule_reports_each_window_once_in_whole_seconds() {
        // 4 s every 60 s, phase 1.5 s: windows start at 58.5 s, 118.5 s, …
        let mut s = schedule(4_000, 60_000, 1_500);
        assert!(s.listening(58_500) && s.listening(62_499) && !s.listening(62_500));
        // Not listening at the first look: nothing to report.
        assert_eq!(s.due(10_000), vec![]);
        assert_eq!(s.due(58_499), vec![]);
        assert_eq!(s.due(58_500), vec![w(58, 62)]);
        assert_eq!(s.due(60_000), vec![]);
        assert_eq!(s.until_next(60_000), 58_500);
        assert_eq!(s.due(118_600), vec![w(118, 122)]);
        // A jump over many windows reports the last two only.
        assert_eq!(s.due(600_000), vec![w(538, 542), w(598, 602)]);
        // Back in time (a clock set back): nothing, and no panic.
        assert_eq!(s.due(1_000), vec![]);
    }

    #[test]
    fn the_first_window_in_progress_starts_when_the_radio_does() {
        let mut s = schedule(4_000, 60_000, 0);
        assert_eq!(s.due(61_700), vec![w(61, 63)]);
        assert_eq!(s.due(62_000), vec![]);
        s.restart();
        assert_eq!(s.due(125_000), vec![]);
        assert_eq!(s.due(180_000), vec![w(180, 183)]);
    }

    #[test]
    fn continuous_scanning_is_back_to_back_windows() {
        let mut s = schedule(10_000, 10_000, 0);
        assert!(s.listening(0) && s.listening(9_999) && s.listening(10_000));
        assert_eq!(s.due(5_000), vec![w(5, 9)]);
        assert_eq!(s.due(10_000), vec![w(10, 19)]);
        assert_eq!(s.due(25_000), vec![w(20, 29)]);
        // A phase off the second: neighbours share their boundary second,
        // and every sighting second of a window lies inside it.
        let mut s = schedule(10_000, 10_000, 300);
        assert_eq!(s.due(9_700), vec![w(9, 19)]);
        assert_eq!(s.due(19_700), vec![w(19, 29)]);
    }

    #[test]
    fn scan_timing_is_checked_and_told_in_words() {
        let s = Duration::from_secs;
        assert!(PC_SCAN.check().is_ok() && PHONE_SCAN.check().is_ok());
        assert_eq!(PC_SCAN.to_string(), "continuous, reported as 10 s windows");
        assert_eq!(PHONE_SCAN.to_string(), "4 s every 60 s");
        let e = check_scan_timing(Duration::from_millis(500), s(5)).unwrap_err();
        assert!(e.contains("0.5 s") && e.contains("1 s minimum"), "{e}");
        let e = check_scan_timing(s(4), s(601)).unwrap_err();
        assert!(e.contains("601 s") && e.contains("600 s maximum"), "{e}");
        let e = check_scan_timing(s(70), s(60)).unwrap_err();
        assert!(e.contains("longer than the scan interval"), "{e}");
        assert!(check_scan_timing(s(1), s(600)).is_ok());
        let d = PHONE_SCAN.duty(model::DutyCycle::default());
        assert_eq!((d.scan_window_ms, d.scan_interval_ms), (4_000, 60_000));
        assert_eq!(
            d.advertising_interval_ms,
            model::DutyCycle::default().advertising_interval_ms
        );
    }

    #[test]
    fn a_real_wait_follows_the_clock_rate_within_bounds() {
        let (lo, hi) = (Duration::from_millis(5), Duration::from_millis(100));
        assert_eq!(real_wait_within(1_000, None, lo, hi), lo);
        assert_eq!(
            real_wait_within(50, Some(1.0), lo, hi),
            Duration::from_millis(50)
        );
        assert_eq!(real_wait_within(60_000, Some(1.0), lo, hi), hi);
        assert_eq!(real_wait_within(60, Some(60.0), lo, hi), lo);
        assert_eq!(real_wait_within(1_000, Some(f64::NAN), lo, hi), lo);
    }

    #[test]
    fn unknown_rssi_maps_to_the_protocol_marker() {
        let s = RadioSighting {
            frame: frame(),
            rssi: None,
            at: UnixTime(1),
        };
        assert_eq!(s.to_sighting().rssi, RSSI_UNKNOWN);
    }
}
