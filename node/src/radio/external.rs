//! The external radio: Bluetooth that belongs to a host app (Android's
//! `BluetoothLeAdvertiser`/`BluetoothLeScanner`, iOS CoreBluetooth), which
//! the node cannot reach itself. The node tells the host what to advertise
//! and when to change it; the host hands the node what it heard and when it
//! listened.
//!
//! [`ExternalRadio::new`] gives two halves:
//!
//! * the [`ExternalRadio`], a [`Radio`] the node task drives like the
//!   others: [`Radio::advertise`] stores the frame as an [`Advertisement`]
//!   (service data of both carriers, and until when it is valid) and tells
//!   the host through the [`AdvertiseNotifier`];
//! * the [`ExternalRadioHandle`], which the host (through the mobile
//!   library) calls: [`ExternalRadioHandle::scan_window`] when a scan
//!   starts, [`ExternalRadioHandle::reception`] for each meshtrace
//!   service-data entry heard, [`ExternalRadioHandle::advertisement`] to
//!   poll what to advertise.
//!
//! Receptions go through the same `FrameDecoder` as every other backend
//! (legacy halves reassembled, bad input counted); unlike the airs the
//! node owns, input from the host is also *refused* with an
//! [`ExternalRadioError`] that says what was wrong in plain words, so that
//! an app bug shows up in the app: service data that is not a meshtrace
//! frame, an RSSI outside what Bluetooth can report, a time
//! that goes back, lies ahead of the node's clock or is too old, a scan
//! window of no length or longer than [`MAX_SCAN_INTERVAL`], and any call
//! once the node has stopped. Nothing here panics.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use meshtrace_protocol::{
    EPOCH_SECONDS, Frame, SERVICE_UUID16, ScanWindow, UnixTime, decode_service_data,
};
use tokio::sync::mpsc;

use super::{
    EVENT_QUEUE, FrameDecoder, MAX_SCAN_INTERVAL, Radio, RadioCounters, RadioError, RadioEvent,
    RadioStats,
};
use crate::clock::SharedClock;

/// Weakest RSSI a Bluetooth controller reports (dBm, Core specification:
/// −127 to +20 dBm).
pub const MIN_RSSI_DBM: i16 = -127;
/// Strongest RSSI a Bluetooth controller reports (dBm).
pub const MAX_RSSI_DBM: i16 = 20;
/// The RSSI value that means "not available" (Core specification; iOS and
/// Android pass it through): taken as an unknown RSSI.
pub const RSSI_NOT_AVAILABLE: i16 = 127;
/// How far a reception or scan window may lie before the latest time the
/// host gave (ms): platforms deliver a batch of results a little out of
/// order; anything earlier is a clock or bookkeeping error in the host.
pub const MAX_REORDER_MS: u64 = 2_000;
/// How far a time may lie ahead of the node's clock (ms): the host and the
/// node read the same system clock, so more is a unit or clock error.
pub const MAX_AHEAD_MS: u64 = 10_000;
/// How old a reception or scan window may be when handed over (ms):
/// Android's batched scans deliver results up to a few minutes late; older
/// ones would land in encounters already closed
/// ([`meshtrace_protocol::ENCOUNTER_IDLE_SECONDS`]).
pub const MAX_LATE_MS: u64 = 300_000;

/// Why the node refused what the host handed it. The message is one plain
/// sentence for the app's log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExternalRadioError {
    /// The service data is not a meshtrace frame.
    #[error("the service data ({len} bytes) is not a meshtrace frame: {reason}")]
    ServiceData {
        /// Its length.
        len: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An RSSI no controller reports.
    #[error(
        "an RSSI of {0} dBm is impossible (Bluetooth reports -127 to +20 dBm, or 127 for unknown)"
    )]
    Rssi(i16),
    /// A time before one already given.
    #[error(
        "the time given is {behind_ms} ms before one given earlier: times must not go back \
         (pass the time of each reception, in milliseconds since 1970, as the platform stamped it)"
    )]
    TimeBackwards {
        /// How far back.
        behind_ms: u64,
    },
    /// A time ahead of the node's clock.
    #[error(
        "the time given is {ahead_ms} ms ahead of this device's clock: pass milliseconds since \
         1970 (UTC) from the system clock"
    )]
    TimeAhead {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// A time too long ago.
    #[error(
        "the time given is {late_s} s in the past: receptions and scan windows must be handed \
         over within {max_s} s"
    )]
    TooLate {
        /// How old, in seconds.
        late_s: u64,
        /// The limit, in seconds.
        max_s: u64,
    },
    /// A scan window of no length or too long.
    #[error(
        "a scan window of {duration_ms} ms is not possible (from 1 ms to {max_s} s; report a \
         continuous scan as consecutive windows)"
    )]
    ScanWindow {
        /// The length given.
        duration_ms: u64,
        /// The longest window, in seconds.
        max_s: u64,
    },
    /// The node has stopped: nothing is taken any more.
    #[error("the node has stopped; start it again before handing it receptions")]
    Stopped,
}

/// What the host must advertise now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// The 16-bit service UUID to put in the service-UUID list and to key
    /// the service data with (0xFCB7).
    pub service_uuid16: u16,
    /// The service data of the extended carrier (one BLE 5 extended
    /// advertisement).
    pub service_data: Vec<u8>,
    /// The service data of the two legacy halves, for devices without
    /// extended advertising: two advertising sets, one half each.
    pub legacy_halves: [Vec<u8>; 2],
    /// When the node started advertising this frame.
    pub since: UnixTime,
    /// When this frame's rotating ID ends: the node hands over a new one
    /// then (poll again, or wait for the notifier). The host must then
    /// stop and restart advertising so that the Bluetooth address changes
    /// with the ID.
    pub valid_until: UnixTime,
    /// How often to repeat the advertisement (the radio profile's).
    pub interval: Duration,
}

/// Told of every new [`Advertisement`] (it runs on the node's task: it
/// must return at once, e.g. by queueing the work).
#[derive(Clone)]
pub struct AdvertiseNotifier(pub Arc<dyn Fn(&Advertisement) + Send + Sync>);

impl std::fmt::Debug for AdvertiseNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdvertiseNotifier")
    }
}

/// How the external radio is set up.
#[derive(Clone, Debug)]
pub struct ExternalConfig {
    /// The advertising interval to tell the host.
    pub advertising_interval: Duration,
    /// Told of every new advertisement, if set.
    pub notify: Option<AdvertiseNotifier>,
}

impl Default for ExternalConfig {
    fn default() -> ExternalConfig {
        ExternalConfig {
            advertising_interval: Duration::from_millis(250),
            notify: None,
        }
    }
}

/// What a reception gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceptionOutcome {
    /// A whole frame: a sighting went to the node.
    Sighting,
    /// One legacy half, kept until its other half comes.
    HalfKept,
    /// The node is behind: the sighting was dropped and counted (a
    /// sighting repeats every few seconds).
    Dropped,
}

struct Shared {
    current: Option<Advertisement>,
    /// Latest time the host gave (ms).
    latest_ms: Option<u64>,
    decoder: FrameDecoder,
}

/// The node's side: a [`Radio`] fed by the host.
pub struct ExternalRadio {
    shared: Arc<Mutex<Shared>>,
    events: mpsc::Receiver<RadioEvent>,
    counters: Arc<RadioCounters>,
    config: ExternalConfig,
    clock: SharedClock,
}

impl std::fmt::Debug for ExternalRadio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalRadio")
    }
}

/// The host's side of an [`ExternalRadio`] (cloneable, usable from any
/// thread).
#[derive(Clone)]
pub struct ExternalRadioHandle {
    shared: Arc<Mutex<Shared>>,
    tx: mpsc::Sender<RadioEvent>,
    counters: Arc<RadioCounters>,
    clock: SharedClock,
}

impl std::fmt::Debug for ExternalRadioHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalRadioHandle")
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Every mutation under the lock completes or does nothing.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl ExternalRadio {
    /// A new external radio and the host's handle on it. `clock` is the
    /// node's: times from the host are checked against it.
    pub fn new(config: ExternalConfig, clock: SharedClock) -> (ExternalRadio, ExternalRadioHandle) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let counters = Arc::new(RadioCounters::default());
        let shared = Arc::new(Mutex::new(Shared {
            current: None,
            latest_ms: None,
            decoder: FrameDecoder::new(counters.clone()),
        }));
        let handle = ExternalRadioHandle {
            shared: shared.clone(),
            tx,
            counters: counters.clone(),
            clock: clock.clone(),
        };
        (
            ExternalRadio {
                shared,
                events: rx,
                counters,
                config,
                clock,
            },
            handle,
        )
    }
}

/// The advertisement of `frame` from `now` on.
fn advertisement(frame: &Frame, now: UnixTime, interval: Duration) -> Advertisement {
    let (a, b) = frame.encode_legacy();
    let next_epoch = (now.0 / EPOCH_SECONDS + 1) * EPOCH_SECONDS;
    Advertisement {
        service_uuid16: SERVICE_UUID16,
        service_data: frame.encode_extended().to_vec(),
        legacy_halves: [a.to_vec(), b.to_vec()],
        since: now,
        valid_until: UnixTime(next_epoch),
        interval,
    }
}

impl Radio for ExternalRadio {
    fn advertise(&mut self, frame: Frame) -> Result<(), RadioError> {
        let ad = advertisement(&frame, self.clock.now(), self.config.advertising_interval);
        lock(&self.shared).current = Some(ad.clone());
        self.counters.count_advertised();
        if let Some(n) = &self.config.notify {
            (n.0)(&ad);
        }
        Ok(())
    }

    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent> {
        &mut self.events
    }

    fn stats(&self) -> RadioStats {
        self.counters.snapshot()
    }
}

impl ExternalRadioHandle {
    /// What to advertise now (`None` before the node's first rotation, or
    /// once it has stopped).
    pub fn advertisement(&self) -> Result<Option<Advertisement>, ExternalRadioError> {
        self.check_running()?;
        Ok(lock(&self.shared).current.clone())
    }

    /// Counters since start.
    pub fn stats(&self) -> RadioStats {
        self.counters.snapshot()
    }

    fn check_running(&self) -> Result<(), ExternalRadioError> {
        if self.tx.is_closed() {
            return Err(ExternalRadioError::Stopped);
        }
        Ok(())
    }

    /// Checks a host time against the node's clock and the latest time
    /// given; on success it becomes the latest.
    fn check_time(shared: &mut Shared, now_ms: u64, at_ms: u64) -> Result<(), ExternalRadioError> {
        if at_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(ExternalRadioError::TimeAhead {
                ahead_ms: at_ms - now_ms,
            });
        }
        if now_ms.saturating_sub(at_ms) > MAX_LATE_MS {
            return Err(ExternalRadioError::TooLate {
                late_s: (now_ms - at_ms) / 1000,
                max_s: MAX_LATE_MS / 1000,
            });
        }
        if let Some(latest) = shared.latest_ms
            && latest.saturating_sub(at_ms) > MAX_REORDER_MS
        {
            return Err(ExternalRadioError::TimeBackwards {
                behind_ms: latest - at_ms,
            });
        }
        shared.latest_ms = Some(shared.latest_ms.map_or(at_ms, |l| l.max(at_ms)));
        Ok(())
    }

    /// The host started a scan at `start_ms` (milliseconds since 1970, UTC)
    /// listening for `duration_ms` (planned). Call it before handing over
    /// what is heard in that window, for every window, heard or not.
    pub fn scan_window(&self, start_ms: u64, duration_ms: u64) -> Result<(), ExternalRadioError> {
        self.check_running()?;
        let max_ms = u64::try_from(MAX_SCAN_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if duration_ms == 0 || duration_ms > max_ms {
            return Err(ExternalRadioError::ScanWindow {
                duration_ms,
                max_s: max_ms / 1000,
            });
        }
        let now_ms = self.clock.now_millis();
        let mut shared = lock(&self.shared);
        Self::check_time(&mut shared, now_ms, start_ms)?;
        let w = ScanWindow {
            start: UnixTime(start_ms / 1000),
            end: UnixTime(start_ms.saturating_add(duration_ms - 1) / 1000),
        };
        shared.decoder.deliver_scan(&self.tx, w);
        Ok(())
    }

    /// The host heard a meshtrace service-data entry (the bytes after the
    /// 16-bit UUID) at `at_ms` (milliseconds since 1970, UTC), with `rssi`
    /// (dBm; `None` or 127 when unknown). Nothing the sender claims about
    /// its TX power is needed: the node stores the level it received at,
    /// and the sender's TX power arrives with its report (docs/protocol.md
    /// §5).
    pub fn reception(
        &self,
        service_data: &[u8],
        rssi: Option<i16>,
        at_ms: u64,
    ) -> Result<ReceptionOutcome, ExternalRadioError> {
        self.check_running()?;
        let rssi = match rssi {
            None | Some(RSSI_NOT_AVAILABLE) => None,
            Some(r) if (MIN_RSSI_DBM..=MAX_RSSI_DBM).contains(&r) => Some(r),
            Some(r) => return Err(ExternalRadioError::Rssi(r)),
        };
        let now_ms = self.clock.now_millis();
        let mut shared = lock(&self.shared);
        Self::check_time(&mut shared, now_ms, at_ms)?;
        let at = UnixTime(at_ms / 1000);
        match shared.decoder.service_data(service_data, rssi, at) {
            Some(s) => {
                if shared.decoder.deliver(&self.tx, s) {
                    Ok(ReceptionOutcome::Sighting)
                } else if self.tx.is_closed() {
                    Err(ExternalRadioError::Stopped)
                } else {
                    Ok(ReceptionOutcome::Dropped)
                }
            }
            None => match decode_service_data(service_data) {
                Err(e) => Err(ExternalRadioError::ServiceData {
                    len: service_data.len(),
                    reason: e.to_string(),
                }),
                // A half waiting for its other half (or one that did not
                // match its tag, counted by the decoder).
                Ok(_) => Ok(ReceptionOutcome::HalfKept),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use meshtrace_protocol::RotatingId;

    fn frame(b: u8) -> Frame {
        Frame {
            id: RotatingId([b; 32]),
        }
    }

    const T0: u64 = 1_800_000_000_000;

    fn radio() -> (ExternalRadio, ExternalRadioHandle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(UnixTime(T0 / 1000)));
        let (r, h) = ExternalRadio::new(ExternalConfig::default(), clock.clone());
        (r, h, clock)
    }

    #[test]
    fn receptions_and_windows_reach_the_node_in_order() {
        let (mut r, h, _) = radio();
        let f = frame(3);
        h.scan_window(T0, 4_000).unwrap();
        let data = f.encode_extended();
        assert_eq!(
            h.reception(&data, Some(-60), T0 + 500),
            Ok(ReceptionOutcome::Sighting)
        );
        let (a, b) = f.encode_legacy();
        assert_eq!(
            h.reception(&a, Some(-61), T0 + 600),
            Ok(ReceptionOutcome::HalfKept)
        );
        assert_eq!(
            h.reception(&b, None, T0 + 700),
            Ok(ReceptionOutcome::Sighting)
        );
        let mut evs = Vec::new();
        while let Ok(e) = r.events().try_recv() {
            evs.push(e);
        }
        assert_eq!(evs.len(), 3);
        assert_eq!(
            evs[0],
            RadioEvent::Scan(ScanWindow {
                start: UnixTime(T0 / 1000),
                end: UnixTime((T0 + 3_999) / 1000)
            })
        );
        match (&evs[1], &evs[2]) {
            (RadioEvent::Sighting(s1), RadioEvent::Sighting(s2)) => {
                assert_eq!((s1.frame, s1.rssi), (f, Some(-60)));
                assert_eq!((s2.frame, s2.rssi), (f, None));
            }
            other => panic!("not two sightings: {other:?}"),
        }
        let s = h.stats();
        assert_eq!((s.sightings, s.scan_windows, s.received), (2, 1, 3));
    }

    #[test]
    fn bad_input_is_refused_in_words_and_never_reaches_the_node() {
        let (mut r, h, _) = radio();
        let good = frame(4).encode_extended();
        let e = h.reception(&[0xff, 1, 2], Some(-60), T0).unwrap_err();
        assert!(
            matches!(e, ExternalRadioError::ServiceData { len: 3, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("not a meshtrace frame"), "{e}");
        assert!(h.reception(&[], None, T0).is_err());
        assert!(h.reception(&[0x10; 400], None, T0).is_err());
        assert_eq!(
            h.reception(&good, Some(500), T0),
            Err(ExternalRadioError::Rssi(500))
        );
        assert_eq!(
            h.reception(&good, Some(-128), T0),
            Err(ExternalRadioError::Rssi(-128))
        );
        // Ahead of the clock, too old.
        assert!(matches!(
            h.reception(&good, None, T0 + MAX_AHEAD_MS + 1),
            Err(ExternalRadioError::TimeAhead { .. })
        ));
        assert!(matches!(
            h.reception(&good, None, T0 - MAX_LATE_MS - 1_000),
            Err(ExternalRadioError::TooLate { late_s: 301, .. })
        ));
        // Backwards beyond the reordering allowance; within it is fine.
        h.reception(&good, None, T0).unwrap();
        h.reception(&good, None, T0 - MAX_REORDER_MS).unwrap();
        assert_eq!(
            h.reception(&good, None, T0 - MAX_REORDER_MS - 1),
            Err(ExternalRadioError::TimeBackwards {
                behind_ms: MAX_REORDER_MS + 1
            })
        );
        assert!(matches!(
            h.scan_window(T0 - 60_000, 4_000),
            Err(ExternalRadioError::TimeBackwards { .. })
        ));
        for d in [0, 600_001] {
            let e = h.scan_window(T0, d).unwrap_err();
            assert!(e.to_string().contains(&format!("{d} ms")), "{e}");
        }
        // Only the two good receptions went through.
        let mut n = 0;
        while let Ok(ev) = r.events().try_recv() {
            assert!(matches!(ev, RadioEvent::Sighting(_)), "{ev:?}");
            n += 1;
        }
        assert_eq!(n, 2);
        // An unknown RSSI is not an error.
        assert_eq!(
            h.reception(&good, Some(RSSI_NOT_AVAILABLE), T0),
            Ok(ReceptionOutcome::Sighting)
        );
    }

    #[test]
    fn a_stopped_node_refuses_everything() {
        let (r, h, _) = radio();
        drop(r);
        let good = frame(5).encode_extended();
        assert_eq!(
            h.reception(&good, None, T0),
            Err(ExternalRadioError::Stopped)
        );
        assert_eq!(h.scan_window(T0, 1_000), Err(ExternalRadioError::Stopped));
        assert_eq!(h.advertisement(), Err(ExternalRadioError::Stopped));
    }

    #[test]
    fn the_host_learns_what_to_advertise_and_until_when() {
        let clock = Arc::new(ManualClock::new(UnixTime((T0 + 100_000) / 1000)));
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        let config = ExternalConfig {
            advertising_interval: Duration::from_millis(1_000),
            notify: Some(AdvertiseNotifier(Arc::new(move |a: &Advertisement| {
                t.lock().unwrap().push(a.clone())
            }))),
        };
        let (mut r, h) = ExternalRadio::new(config, clock.clone());
        assert_eq!(h.advertisement(), Ok(None));
        let f = frame(6);
        r.advertise(f).unwrap();
        let ad = h.advertisement().unwrap().unwrap();
        assert_eq!(ad.service_uuid16, SERVICE_UUID16);
        assert_eq!(ad.service_data, f.encode_extended().to_vec());
        let (a, b) = f.encode_legacy();
        assert_eq!(ad.legacy_halves, [a.to_vec(), b.to_vec()]);
        let now = (T0 + 100_000) / 1000;
        assert_eq!(ad.since, UnixTime(now));
        assert_eq!(ad.valid_until.0 % EPOCH_SECONDS, 0);
        assert!(ad.valid_until.0 > now && ad.valid_until.0 <= now + EPOCH_SECONDS);
        assert_eq!(ad.interval, Duration::from_millis(1_000));
        assert_eq!(*told.lock().unwrap(), vec![ad]);
        assert_eq!(r.stats().advertised, 1);
        // What the host advertises decodes as the frame on another phone.
        let (_other_radio, other, _clock) = radio();
        other
            .reception(
                &h.advertisement().unwrap().unwrap().service_data,
                Some(-50),
                T0,
            )
            .unwrap();
        assert_eq!(other.stats().sightings, 1);
    }
}
