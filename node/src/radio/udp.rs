//! The `udp-sim` radio: a loopback multicast "air" so that several meshtrace
//! processes on one machine hear each other.
//!
//! Every [`UdpRadio`] joins one IPv4 multicast group on the loopback
//! interface (default [`DEFAULT_GROUP`]:[`DEFAULT_PORT`]) with
//! `IP_MULTICAST_TTL` 0, so nothing ever leaves the host. Each radio has a
//! virtual position ([`Trajectory`]) on a shared floor; the receiver decides
//! with the [`PathLossModel`] whether (and with which RSSI) a packet is heard.
//!
//! # Sending
//!
//! A sender task re-sends the current frame every
//! [`DutyCycle::advertising_interval_ms`] of *clock* time. Each advertising
//! event puts one packet per advertising payload on the air, exactly as
//! [`Carrier::payloads`] gives them (one for the extended carrier, two for
//! the legacy carrier), and counts one `advertised` in [`RadioStats`]. With a
//! fast clock (e.g. a `ScaledClock`) the real interval shrinks with the
//! clock's rate (measured, since a [`SharedClock`] does not reveal its
//! scale), but never below [`MIN_REAL_ADVERTISING_INTERVAL`].
//!
//! # Receiving
//!
//! For each datagram the receiver:
//!
//! 1. decodes the packet (bounded by [`MAX_PACKET_LEN`]); a malformed or
//!    oversized packet is dropped and counted (`malformed` / `oversized` in
//!    [`RadioStats`], `bad_packets` in [`UdpAirStats`]);
//! 2. drops its own packets (same `sender_id`);
//! 3. drops packets arriving outside its scan window ([`DutyCycle`], with a
//!    per-device phase drawn from the seed);
//! 4. computes the distance between the sender's position (carried in the
//!    packet, taken at send time) and its own position at receive time, and
//!    asks [`PathLossModel::receive`] for an RSSI with the sender's TX power
//!    (carried in the packet beside the position: simulated physics, not
//!    part of the frame, which carries no TX power), the sender's TX offset
//!    plus its own RX offset, and noise from its seeded RNG; no RSSI means
//!    not heard (counted in [`UdpAirStats::not_received`] only);
//! 5. feeds the advertising payload to the shared `FrameDecoder`, which
//!    reassembles legacy halves and delivers sightings on the event channel.
//!
//! # Scan windows
//!
//! The receiver reports each of its scan windows ([`DutyCycle`] window and
//! interval, the same per-device phase as step 3) as a
//! [`RadioEvent::Scan`] when it starts, heard or not: it wakes for every
//! window start of clock time (real waits follow the clock's measured rate,
//! between [`MIN_REAL_ADVERTISING_INTERVAL`] and [`MAX_REAL_POLL`]), and
//! before it handles any packet it reports the windows due by then, so a
//! window always comes before the sightings heard in it. After a stall or
//! a clock jump only the last [`super::MAX_SCAN_WINDOWS_AT_ONCE`] windows
//! are reported.
//!
//! # Packet layout
//!
//! All integers and floats are big-endian. A packet is exactly
//! `HEADER_LEN + payload length` bytes (no trailing bytes):
//!
//! | Offset | Length | Field |
//! |---|---|---|
//! | 0 | 6 | magic `b"MTAIR2"` ([`PACKET_MAGIC`]) |
//! | 6 | 8 | `sender_id` (u64) |
//! | 14 | 8 | sender `x` at send time, metres (f64, finite) |
//! | 22 | 8 | sender `y` at send time, metres (f64, finite) |
//! | 30 | 4 | sender TX offset, dB (f32, finite) |
//! | 34 | 1 | sender TX power, dBm (i8) |
//! | 35 | 2 | payload length `n` (u16), at most [`MAX_PAYLOAD_LEN`] |
//! | 37 | n | advertising payload (AD structures), as [`Carrier::payloads`] gives it |
//!
//! [`HEADER_LEN`] is 37 bytes, so a packet is at most [`MAX_PACKET_LEN`] =
//! 37 + 1650 bytes. (`MTAIR1` packets, from builds whose frames carried the
//! TX power, have no TX power field and are dropped as bad magic.)

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use meshtrace_protocol::{Frame, MAX_ADVERTISING_DATA_LEN, RotatingId, UnixTime};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::Rng;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::model::{
    DEVICE_OFFSET_SIGMA_DB, DutyCycle, PathLossModel, Position, SIM_TX_POWER_DBM, Trajectory,
};
use super::{
    Carrier, ClockRate, EVENT_QUEUE, FrameDecoder, Radio, RadioCounters, RadioError, RadioEvent,
    RadioStats, ScanSchedule, real_wait_within,
};
use crate::clock::SharedClock;

mod packet;
pub(crate) use packet::{AirPacket, PacketError};
pub use packet::{HEADER_LEN, MAX_PACKET_LEN, MAX_PAYLOAD_LEN, PACKET_MAGIC};

/// Default multicast group of the simulated air (administratively scoped).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 84);
/// Default UDP port of the simulated air.
pub const DEFAULT_PORT: u16 = 47784;
/// Interface the air uses: loopback only.
pub(crate) const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// However fast the clock runs, the sender waits at least this long (real
/// time) between two advertising events.
pub const MIN_REAL_ADVERTISING_INTERVAL: Duration = Duration::from_millis(5);
/// The sender looks at the clock at least this often (real time), so that a
/// clock that jumps (a manual clock) is followed.
pub(crate) const MAX_REAL_POLL: Duration = Duration::from_millis(100);
/// Socket errors in a row after which the radio reports
/// [`RadioEvent::Failed`] and stops.
pub(crate) const MAX_CONSECUTIVE_IO_ERRORS: u32 = 16;
/// Largest per-device offset accepted, dB (either sign).
pub(crate) const MAX_DEVICE_OFFSET_DB: f64 = 30.0;

/// Settings of one [`UdpRadio`].
#[derive(Clone, Debug)]
pub struct UdpAirConfig {
    /// Multicast group of the air (must be an IPv4 multicast address).
    /// Default [`DEFAULT_GROUP`].
    pub group: Ipv4Addr,
    /// UDP port of the air; radios on different ports do not hear each
    /// other. Default [`DEFAULT_PORT`].
    pub port: u16,
    /// Interface the group is joined on and packets are sent from; must be a
    /// loopback address. Default 127.0.0.1.
    pub interface: Ipv4Addr,
    /// Where this device is over time (a fixed position or a scripted path,
    /// in clock time). Default: fixed at the origin.
    pub trajectory: Trajectory,
    /// The propagation model the receiver applies.
    pub model: PathLossModel,
    /// Advertising interval (clock time) and the receiver's scan window.
    pub duty: DutyCycle,
    /// How frames are put on the air (one or two packets per event).
    pub carrier: Carrier,
    /// The TX power of this device (dBm): what the simulated air transmits
    /// at, and the calibrated value the node puts in its reports. Default
    /// [`SIM_TX_POWER_DBM`].
    pub tx_power_dbm: i8,
    /// This device's TX offset (dB), added to the RSSI others measure.
    /// `None` draws it from `seed` with σ = [`DEVICE_OFFSET_SIGMA_DB`].
    pub tx_offset_db: Option<f64>,
    /// This device's RX offset (dB), added to the RSSI it measures. `None`
    /// draws it from `seed` with σ = [`DEVICE_OFFSET_SIGMA_DB`].
    pub rx_offset_db: Option<f64>,
    /// Seed of the receiver's noise (shadowing, loss), the drawn offsets and
    /// the scan phase. Default: random.
    pub seed: u64,
    /// Identifies this device's packets (own packets are dropped on
    /// reception). Default: random; two radios must not share it.
    pub sender_id: u64,
}

impl Default for UdpAirConfig {
    fn default() -> UdpAirConfig {
        UdpAirConfig {
            group: DEFAULT_GROUP,
            port: DEFAULT_PORT,
            interface: LOOPBACK,
            trajectory: Trajectory::fixed(Position::default()),
            model: PathLossModel::default(),
            duty: DutyCycle::default(),
            carrier: Carrier::default(),
            tx_power_dbm: SIM_TX_POWER_DBM,
            tx_offset_db: None,
            rx_offset_db: None,
            seed: rand::random(),
            sender_id: rand::random(),
        }
    }
}

impl UdpAirConfig {
    /// Checks the settings; the error names the offending one.
    pub(crate) fn validate(&self) -> Result<(), RadioError> {
        let err = |m: String| Err(RadioError::Config(m));
        if !self.group.is_multicast() {
            return err(format!(
                "udp-sim group {} is not an IPv4 multicast address",
                self.group
            ));
        }
        if self.port == 0 {
            return err("udp-sim port must not be 0".into());
        }
        if !self.interface.is_loopback() {
            return err(format!(
                "udp-sim interface {} is not a loopback address (the simulated air never leaves the host)",
                self.interface
            ));
        }
        self.model
            .validate()
            .map_err(|e| RadioError::Config(e.to_string()))?;
        self.duty
            .validate()
            .map_err(|e| RadioError::Config(e.to_string()))?;
        if !(-100..=20).contains(&self.tx_power_dbm) {
            return err(format!(
                "udp-sim TX power {} dBm is outside -100..=20 dBm",
                self.tx_power_dbm
            ));
        }
        for (name, v) in [("TX", self.tx_offset_db), ("RX", self.rx_offset_db)] {
            if let Some(v) = v
                && !(v.is_finite() && v.abs() <= MAX_DEVICE_OFFSET_DB)
            {
                return err(format!(
                    "udp-sim {name} offset {v} dB is not within ±{MAX_DEVICE_OFFSET_DB} dB"
                ));
            }
        }
        Ok(())
    }
}

/// Counters specific to the simulated air, since the radio started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpAirStats {
    /// Datagrams received (all of them, including own and bad ones).
    pub packets: u64,
    /// Own packets dropped (looped back to the sender).
    pub own: u64,
    /// Packets bad enough to be dropped before decoding (also counted as
    /// `malformed` or `oversized` in [`RadioStats`]).
    pub bad_packets: u64,
    /// Packets that arrived outside the scan window.
    pub not_listening: u64,
    /// Packets the propagation model did not let through (out of range,
    /// below sensitivity, or lost).
    pub not_received: u64,
    /// Packets handed to the frame decoder with an RSSI.
    pub heard: u64,
    /// Datagrams put on the air (one or two per advertising event).
    pub packets_sent: u64,
    /// Socket errors (send or receive).
    pub io_errors: u64,
}

#[derive(Debug, Default)]
struct AirCounters {
    packets: AtomicU64,
    own: AtomicU64,
    bad_packets: AtomicU64,
    not_listening: AtomicU64,
    not_received: AtomicU64,
    heard: AtomicU64,
    packets_sent: AtomicU64,
    io_errors: AtomicU64,
}

impl AirCounters {
    fn add(a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> UdpAirStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UdpAirStats {
            packets: g(&self.packets),
            own: g(&self.own),
            bad_packets: g(&self.bad_packets),
            not_listening: g(&self.not_listening),
            not_received: g(&self.not_received),
            heard: g(&self.heard),
            packets_sent: g(&self.packets_sent),
            io_errors: g(&self.io_errors),
        }
    }
}

/// A radio on the loopback multicast air. Dropping it stops its tasks.
#[derive(Debug)]
pub struct UdpRadio {
    frame_tx: watch::Sender<Option<Frame>>,
    events: mpsc::Receiver<RadioEvent>,
    counters: Arc<RadioCounters>,
    air: Arc<AirCounters>,
    tasks: Vec<JoinHandle<()>>,
    sender_id: u64,
    tx_power_dbm: i8,
    tx_offset_db: f64,
    rx_offset_db: f64,
    scan_phase_ms: u64,
}

impl Drop for UdpRadio {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn io_err(what: &str, e: std::io::Error) -> RadioError {
    RadioError::Io(format!("udp-sim: {what}: {e}"))
}

/// The socket of the air: bound to `0.0.0.0:port` with `SO_REUSEADDR` and
/// `SO_REUSEPORT` (every process on the machine shares the port), member of
/// the group on the loopback interface, sending there with TTL 0 and
/// loopback on.
fn open_socket(config: &UdpAirConfig) -> Result<UdpSocket, RadioError> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| io_err("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| io_err("SO_REUSEADDR", e))?;
    s.set_reuse_port(true)
        .map_err(|e| io_err("SO_REUSEPORT", e))?;
    let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, config.port);
    s.bind(&SockAddr::from(bind))
        .map_err(|e| io_err(&format!("bind {bind}"), e))?;
    s.join_multicast_v4(&config.group, &config.interface)
        .map_err(|e| io_err(&format!("join {} on {}", config.group, config.interface), e))?;
    // Only the groups this socket joined, not every group joined on the
    // machine for this port.
    #[cfg(target_os = "linux")]
    s.set_multicast_all_v4(false)
        .map_err(|e| io_err("IP_MULTICAST_ALL", e))?;
    s.set_multicast_if_v4(&config.interface)
        .map_err(|e| io_err("IP_MULTICAST_IF", e))?;
    s.set_multicast_loop_v4(true)
        .map_err(|e| io_err("IP_MULTICAST_LOOP", e))?;
    s.set_multicast_ttl_v4(0)
        .map_err(|e| io_err("IP_MULTICAST_TTL", e))?;
    s.set_nonblocking(true)
        .map_err(|e| io_err("O_NONBLOCK", e))?;
    UdpSocket::from_std(std::net::UdpSocket::from(s)).map_err(|e| io_err("tokio socket", e))
}

impl UdpRadio {
    /// Validates `config`, opens the socket and starts the sender and
    /// receiver tasks on the current tokio runtime. Nothing is sent until
    /// [`Radio::advertise`] is called.
    pub async fn start(config: UdpAirConfig, clock: SharedClock) -> Result<UdpRadio, RadioError> {
        config.validate()?;
        let socket = Arc::new(open_socket(&config)?);
        let mut rng = StdRng::seed_from_u64(config.seed);
        // Fixed draw order: TX offset, RX offset, scan phase, then noise.
        let tx_draw = super::model::standard_normal(&mut rng) * DEVICE_OFFSET_SIGMA_DB;
        let rx_draw = super::model::standard_normal(&mut rng) * DEVICE_OFFSET_SIGMA_DB;
        let phase_ms = rng.next_u64() % config.duty.scan_interval_ms;
        let tx_offset_db = config.tx_offset_db.unwrap_or(tx_draw);
        let rx_offset_db = config.rx_offset_db.unwrap_or(rx_draw);

        let counters = Arc::new(RadioCounters::default());
        let air = Arc::new(AirCounters::default());
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (frame_tx, frame_rx) = watch::channel(None);
        let group = SocketAddr::V4(SocketAddrV4::new(config.group, config.port));

        let sender = Sender {
            socket: socket.clone(),
            group,
            frame_rx,
            clock: clock.clone(),
            trajectory: config.trajectory.clone(),
            interval_ms: config.duty.advertising_interval_ms,
            carrier: config.carrier,
            sender_id: config.sender_id,
            tx_offset_db: tx_offset_db as f32,
            tx_power_dbm: config.tx_power_dbm,
            counters: counters.clone(),
            air: air.clone(),
            events: events_tx.clone(),
        };
        // The receiver listens from now on: a window in progress is
        // reported at once (from now), before the task first looks.
        let mut scan = ScanSchedule::new(&config.duty, phase_ms);
        let decoder = FrameDecoder::new(counters.clone());
        for w in scan.due(clock.now_millis()) {
            decoder.deliver_scan(&events_tx, w);
        }
        let receiver = Receiver {
            socket,
            clock,
            trajectory: config.trajectory,
            model: config.model,
            scan,
            sender_id: config.sender_id,
            rx_offset_db,
            rng,
            decoder,
            air: air.clone(),
            events: events_tx,
        };
        let tasks = vec![tokio::spawn(sender.run()), tokio::spawn(receiver.run())];
        Ok(UdpRadio {
            frame_tx,
            events,
            counters,
            air,
            tasks,
            sender_id: config.sender_id,
            tx_power_dbm: config.tx_power_dbm,
            tx_offset_db,
            rx_offset_db,
            scan_phase_ms: phase_ms,
        })
    }

    /// This radio's sender ID.
    pub fn sender_id(&self) -> u64 {
        self.sender_id
    }

    /// The calibrated TX power of this device (dBm): what its reports carry.
    pub fn tx_power_dbm(&self) -> i8 {
        self.tx_power_dbm
    }

    /// The frame this device advertises for `id`: the ID alone.
    pub fn frame(&self, id: RotatingId) -> Frame {
        Frame { id }
    }

    /// The TX and RX offsets in use (dB), drawn or configured.
    pub fn offsets_db(&self) -> (f64, f64) {
        (self.tx_offset_db, self.rx_offset_db)
    }

    /// The phase of this receiver's scan windows (ms, drawn from the seed):
    /// it listens while `(clock ms + phase) % interval < window`.
    pub fn scan_phase_ms(&self) -> u64 {
        self.scan_phase_ms
    }

    /// Counters of the simulated air.
    pub fn air_stats(&self) -> UdpAirStats {
        self.air.snapshot()
    }
}

impl Radio for UdpRadio {
    fn advertise(&mut self, frame: Frame) -> Result<(), RadioError> {
        if self.frame_tx.is_closed() {
            return Err(RadioError::Stopped);
        }
        self.frame_tx.send_replace(Some(frame));
        Ok(())
    }

    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent> {
        &mut self.events
    }

    fn stats(&self) -> RadioStats {
        self.counters.snapshot()
    }
}

/// Converts the clock time left until the next advertising event (or scan
/// window) into a real wait, from the clock's measured rate (clock ms per
/// real ms).
fn real_wait(left_clock_ms: u64, rate: Option<f64>) -> Duration {
    real_wait_within(
        left_clock_ms,
        rate,
        MIN_REAL_ADVERTISING_INTERVAL,
        MAX_REAL_POLL,
    )
}

struct Sender {
    socket: Arc<UdpSocket>,
    group: SocketAddr,
    frame_rx: watch::Receiver<Option<Frame>>,
    clock: SharedClock,
    trajectory: Trajectory,
    interval_ms: u64,
    carrier: Carrier,
    sender_id: u64,
    tx_offset_db: f32,
    tx_power_dbm: i8,
    counters: Arc<RadioCounters>,
    air: Arc<AirCounters>,
    events: mpsc::Sender<RadioEvent>,
}

impl Sender {
    async fn run(mut self) {
        let meter = ClockRate::start(self.clock.now_millis());
        let mut due: Option<u64> = None;
        let mut errors = 0u32;
        loop {
            let frame = *self.frame_rx.borrow_and_update();
            let Some(frame) = frame else {
                if self.frame_rx.changed().await.is_err() {
                    return;
                }
                due = None;
                continue;
            };
            let now = self.clock.now_millis();
            if due.is_none_or(|d| now >= d) {
                match self.send(&frame, now).await {
                    Ok(()) => errors = 0,
                    Err(e) => {
                        errors += 1;
                        if errors >= MAX_CONSECUTIVE_IO_ERRORS {
                            let _ = self
                                .events
                                .send(RadioEvent::Failed(io_err("send", e)))
                                .await;
                            return;
                        }
                    }
                }
                // From the actual send: after a stall the sender does not
                // burst to catch up.
                due = Some(now.saturating_add(self.interval_ms));
            }
            let left = due.map_or(self.interval_ms, |d| d.saturating_sub(now));
            tokio::select! {
                _ = tokio::time::sleep(real_wait(left, meter.rate(now))) => {}
                changed = self.frame_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A new frame goes on the air at once.
                    due = None;
                }
            }
        }
    }

    async fn send(&self, frame: &Frame, now_ms: u64) -> std::io::Result<()> {
        let position = self.trajectory.at(now_ms as f64 / 1000.0);
        let mut result = Ok(());
        for payload in self.carrier.payloads(frame) {
            let packet = AirPacket {
                sender_id: self.sender_id,
                position,
                tx_offset_db: self.tx_offset_db,
                tx_power_dbm: self.tx_power_dbm,
                payload,
            };
            // Carrier payloads are far below the limit and the numbers are
            // finite (validated config, finite trajectories).
            let Ok(bytes) = packet.encode() else {
                continue;
            };
            match self.socket.send_to(&bytes, self.group).await {
                Ok(_) => AirCounters::add(&self.air.packets_sent),
                Err(e) => {
                    AirCounters::add(&self.air.io_errors);
                    result = Err(e);
                }
            }
        }
        if result.is_ok() {
            self.counters.count_advertised();
        }
        result
    }
}

struct Receiver {
    socket: Arc<UdpSocket>,
    clock: SharedClock,
    trajectory: Trajectory,
    model: PathLossModel,
    scan: ScanSchedule,
    sender_id: u64,
    rx_offset_db: f64,
    rng: StdRng,
    decoder: FrameDecoder,
    air: Arc<AirCounters>,
    events: mpsc::Sender<RadioEvent>,
}

/// An advertising payload that the decoder counts as malformed (an AD
/// structure running past the end).
const MALFORMED_AD: [u8; 1] = [2];

impl Receiver {
    async fn run(mut self) {
        // One byte more than the limit: a longer datagram is truncated by
        // the kernel to this size and recognised as oversized.
        let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
        let mut errors = 0u32;
        let meter = ClockRate::start(self.clock.now_millis());
        loop {
            let now = self.clock.now_millis();
            self.report_windows(now);
            let wait = real_wait(self.scan.until_next(now), meter.rate(now));
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                _ = tokio::time::sleep(wait) => continue,
            };
            match received {
                Ok((n, _)) => {
                    errors = 0;
                    let n = n.min(buf.len());
                    self.handle(&buf[..n]);
                }
                Err(e) => {
                    AirCounters::add(&self.air.io_errors);
                    errors += 1;
                    if errors >= MAX_CONSECUTIVE_IO_ERRORS {
                        let _ = self
                            .events
                            .send(RadioEvent::Failed(io_err("receive", e)))
                            .await;
                        return;
                    }
                }
            }
        }
    }

    /// Counts a bad packet in the radio's counters through the decoder (the
    /// only way in): an oversized packet as an over-long payload, anything
    /// else as a truncated AD structure.
    fn count_bad(&mut self, e: PacketError) {
        AirCounters::add(&self.air.bad_packets);
        let at = self.clock.now();
        match e {
            PacketError::Oversized(_) => {
                let big = [0u8; MAX_ADVERTISING_DATA_LEN + 1];
                let _ = self.decoder.advertising_data(&big, None, at);
            }
            _ => {
                let _ = self.decoder.advertising_data(&MALFORMED_AD, None, at);
            }
        }
    }

    /// Reports the scan windows started by `now_ms` (clock time).
    fn report_windows(&mut self, now_ms: u64) {
        for w in self.scan.due(now_ms) {
            self.decoder.deliver_scan(&self.events, w);
        }
    }

    fn handle(&mut self, bytes: &[u8]) {
        AirCounters::add(&self.air.packets);
        let packet = match AirPacket::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.count_bad(e);
                return;
            }
        };
        if packet.sender_id == self.sender_id {
            AirCounters::add(&self.air.own);
            return;
        }
        let now_ms = self.clock.now_millis();
        // The window this packet may fall in goes first.
        self.report_windows(now_ms);
        if !self.scan.listening(now_ms) {
            AirCounters::add(&self.air.not_listening);
            return;
        }
        let here = self.trajectory.at(now_ms as f64 / 1000.0);
        let distance = here.distance(&packet.position);
        // The sender's TX power (packet header, simulated physics) drives
        // the model; the frame carries none.
        let tx_power = packet.tx_power_dbm;
        // Fixed draw order per packet: one normal, one loss uniform.
        let g = super::model::standard_normal(&mut self.rng);
        let u = super::model::uniform(&mut self.rng);
        let offsets = f64::from(packet.tx_offset_db) + self.rx_offset_db;
        let Some(rssi) = self
            .model
            .receive(distance, f64::from(tx_power), offsets, g, u)
        else {
            AirCounters::add(&self.air.not_received);
            return;
        };
        AirCounters::add(&self.air.heard);
        let at = UnixTime(now_ms / 1000);
        if let Some(s) = self
            .decoder
            .advertising_data(&packet.payload, Some(rssi), at)
        {
            self.decoder.deliver(&self.events, s);
        }
    }
}

#[cfg(test)]
mod tests;
