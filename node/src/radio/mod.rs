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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meshtrace_protocol::{
    Decoded, Frame, FrameError, HalfReassembler, RSSI_UNKNOWN, ScanWindow, Sighting, UnixTime,
    decode_service_data, find_service_data,
};
use tokio::sync::mpsc;

pub mod memory;
pub mod model;
pub mod udp;

#[cfg(feature = "ble")]
pub mod ble;

/// Capacity of a radio's event channel; when the node falls behind, further
/// sightings are dropped and counted (a sighting repeats every few seconds).
pub const EVENT_QUEUE: usize = 4096;

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
    /// The decoded frame (the sender's ID and advertised TX power).
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
            tx_power: self.frame.tx_power,
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
    /// Sightings dropped because the node did not keep up.
    pub queue_full: u64,
    /// Frames sent (simulated airs) or advertisements registered (BLE).
    pub advertised: u64,
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
    pub(crate) fn count_foreign(&self) {
        RadioCounters::add(&self.counters.received);
        RadioCounters::add(&self.counters.foreign);
    }

    /// Delivers a sighting without blocking; counts it when the queue is full.
    pub(crate) fn deliver(&self, tx: &mpsc::Sender<RadioEvent>, s: RadioSighting) -> bool {
        match tx.try_send(RadioEvent::Sighting(s)) {
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
            tx_power: -14,
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
        let mut v2 = f.encode_extended();
        v2[0] = 0x20;
        assert!(d.service_data(&v2, None, t).is_none());
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
