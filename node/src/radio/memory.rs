//! The in-memory air: simulated radios in one process, driven explicitly and
//! deterministic for a given seed (tests, the demo, the simulator).
//!
//! Each call to [`MemoryAir::step`] is one advertising round at a given
//! clock time: first every enabled device reports the scan windows that
//! started since the previous round ([`RadioEvent::Scan`], at most
//! [`super::MAX_SCAN_WINDOWS_AT_ONCE`] after a gap), then every device with
//! a frame puts its payloads on the air (one or two, by [`Carrier`]) and
//! every other device whose scanner is listening at that moment (its
//! [`DutyCycle`] window — the air's, or the device's own
//! [`DeviceConfig::duty`] — with a per-device phase) may receive each
//! payload according to the [`PathLossModel`] — distance from the devices'
//! [`Trajectory`]s, shadowing noise, per-device offsets, range cutoff and
//! loss. A window is thus always reported before the sightings heard in it;
//! a device switched off reports none, and after it is switched on again
//! only the window in progress (from that round on). Receptions go through the same `FrameDecoder` as the
//! real radios, so legacy halves are reassembled and bad input is counted
//! the same way. Devices, draws and deliveries happen in a fixed order, so
//! the same seed and the same calls give the same sightings.

use std::sync::{Arc, Mutex, MutexGuard};

use meshtrace_protocol::{Frame, UnixTime};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::Rng;
use tokio::sync::mpsc;

use super::model::{DEVICE_OFFSET_SIGMA_DB, DutyCycle, PathLossModel, Trajectory};
use super::{
    Carrier, EVENT_QUEUE, FrameDecoder, Radio, RadioCounters, RadioError, RadioEvent, RadioStats,
    ScanSchedule,
};

/// Most devices one air holds.
pub(crate) const MAX_DEVICES: usize = 4096;

struct Device {
    trajectory: Trajectory,
    frame: Option<Frame>,
    carrier: Carrier,
    tx_power_dbm: i8,
    tx_offset_db: f64,
    rx_offset_db: f64,
    scan: ScanSchedule,
    tx: mpsc::Sender<RadioEvent>,
    decoder: FrameDecoder,
    counters: Arc<RadioCounters>,
    enabled: bool,
}

struct AirState {
    devices: Vec<Device>,
    model: PathLossModel,
    duty: DutyCycle,
    rng: StdRng,
}

/// A shared in-memory air. Cloning gives another handle to the same air.
#[derive(Clone)]
pub struct MemoryAir {
    state: Arc<Mutex<AirState>>,
}

impl std::fmt::Debug for MemoryAir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAir")
            .field("devices", &self.lock().devices.len())
            .finish()
    }
}

/// Per-device settings.
#[derive(Clone, Debug, Default)]
pub struct DeviceConfig {
    /// Where the device is over time.
    pub trajectory: Trajectory,
    /// How it advertises.
    pub carrier: Carrier,
    /// The power it transmits at (dBm); `None` is
    /// [`SIM_TX_POWER_DBM`](super::model::SIM_TX_POWER_DBM). The air's
    /// physics, not part of the frame (which carries the ID alone).
    pub tx_power_dbm: Option<i8>,
    /// TX and RX offsets (dB); `None` draws them from the air's seed with
    /// σ = [`DEVICE_OFFSET_SIGMA_DB`].
    pub offsets_db: Option<(f64, f64)>,
    /// This device's scan windows (only the window and interval are used;
    /// a phone and a PC on one air); `None` takes the air's.
    pub duty: Option<DutyCycle>,
}

/// Identifies a device on a [`MemoryAir`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub usize);

impl MemoryAir {
    /// A new air. Fails when the model or duty cycle is invalid.
    pub fn new(model: PathLossModel, duty: DutyCycle, seed: u64) -> Result<MemoryAir, RadioError> {
        model
            .validate()
            .map_err(|e| RadioError::Config(e.to_string()))?;
        duty.validate()
            .map_err(|e| RadioError::Config(e.to_string()))?;
        Ok(MemoryAir {
            state: Arc::new(Mutex::new(AirState {
                devices: Vec::new(),
                model,
                duty,
                rng: StdRng::seed_from_u64(seed),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, AirState> {
        // Every mutation under the lock completes or does nothing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a device and returns its radio.
    pub fn add_device(&self, config: DeviceConfig) -> Result<MemoryRadio, RadioError> {
        if let Some(d) = &config.duty {
            d.validate()
                .map_err(|e| RadioError::Config(e.to_string()))?;
        }
        let mut st = self.lock();
        if st.devices.len() >= MAX_DEVICES {
            return Err(RadioError::Config(format!(
                "an in-memory air holds at most {MAX_DEVICES} devices"
            )));
        }
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let counters = Arc::new(RadioCounters::default());
        let (tx_offset_db, rx_offset_db) = match config.offsets_db {
            Some(o) => o,
            None => {
                let a = super::model::standard_normal(&mut st.rng) * DEVICE_OFFSET_SIGMA_DB;
                let b = super::model::standard_normal(&mut st.rng) * DEVICE_OFFSET_SIGMA_DB;
                (a, b)
            }
        };
        let duty = config.duty.unwrap_or(st.duty);
        let phase_ms = st.rng.next_u64() % duty.scan_interval_ms;
        let id = DeviceId(st.devices.len());
        st.devices.push(Device {
            trajectory: config.trajectory,
            frame: None,
            carrier: config.carrier,
            tx_power_dbm: config
                .tx_power_dbm
                .unwrap_or(super::model::SIM_TX_POWER_DBM),
            tx_offset_db,
            rx_offset_db,
            scan: ScanSchedule::new(&duty, phase_ms),
            tx,
            decoder: FrameDecoder::new(counters.clone()),
            counters: counters.clone(),
            enabled: true,
        });
        Ok(MemoryRadio {
            air: self.clone(),
            id,
            events: rx,
            counters,
        })
    }

    /// Moves a device along a new trajectory.
    pub fn set_trajectory(&self, id: DeviceId, trajectory: Trajectory) {
        if let Some(d) = self.lock().devices.get_mut(id.0) {
            d.trajectory = trajectory;
        }
    }

    /// Switches a device's radio off (it neither sends nor hears) or on.
    pub fn set_enabled(&self, id: DeviceId, enabled: bool) {
        if let Some(d) = self.lock().devices.get_mut(id.0) {
            d.enabled = enabled;
        }
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.lock().devices.len()
    }

    /// True when the air has no device.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set_frame(&self, id: DeviceId, frame: Frame) {
        if let Some(d) = self.lock().devices.get_mut(id.0) {
            d.frame = Some(frame);
            d.counters.count_advertised();
        }
    }

    /// One advertising round at clock time `now_millis`.
    pub fn step(&self, now_millis: u64) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let t = now_millis as f64 / 1000.0;
        let at = UnixTime(now_millis / 1000);
        let positions: Vec<_> = st.devices.iter().map(|d| d.trajectory.at(t)).collect();
        for d in &mut st.devices {
            if !d.enabled {
                d.scan.restart();
                continue;
            }
            for w in d.scan.due(now_millis) {
                d.decoder.deliver_scan(&d.tx, w);
            }
        }
        let n = st.devices.len();
        for s in 0..n {
            let (payloads, tx_power, tx_off) = {
                let d = &st.devices[s];
                let Some(frame) = d.frame.filter(|_| d.enabled) else {
                    continue;
                };
                (d.carrier.payloads(&frame), d.tx_power_dbm, d.tx_offset_db)
            };
            for r in 0..n {
                if r == s {
                    continue;
                }
                let listening = {
                    let d = &st.devices[r];
                    d.enabled && d.scan.listening(now_millis)
                };
                if !listening {
                    continue;
                }
                let distance = positions[s].distance(&positions[r]);
                for p in &payloads {
                    // Fixed draw order: two normals' worth of uniforms, one
                    // loss uniform, per payload and pair.
                    let g = super::model::standard_normal(&mut st.rng);
                    let u = super::model::uniform(&mut st.rng);
                    let offsets = tx_off + st.devices[r].rx_offset_db;
                    let Some(rssi) = st
                        .model
                        .receive(distance, f64::from(tx_power), offsets, g, u)
                    else {
                        continue;
                    };
                    let d = &mut st.devices[r];
                    if let Some(sighting) = d.decoder.advertising_data(p, Some(rssi), at) {
                        d.decoder.deliver(&d.tx, sighting);
                    }
                }
            }
        }
    }
}

/// A device's radio on a [`MemoryAir`].
pub struct MemoryRadio {
    air: MemoryAir,
    id: DeviceId,
    events: mpsc::Receiver<RadioEvent>,
    counters: Arc<RadioCounters>,
}

impl std::fmt::Debug for MemoryRadio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRadio").field("id", &self.id).finish()
    }
}

impl MemoryRadio {
    /// This device's id on the air.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// Takes every event delivered so far, in order (non-blocking).
    pub fn drain_events(&mut self) -> Vec<RadioEvent> {
        let mut out = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            out.push(ev);
        }
        out
    }

    /// Takes every sighting delivered so far (non-blocking); other events
    /// (scan windows) are dropped.
    pub fn drain(&mut self) -> Vec<super::RadioSighting> {
        let mut out = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            if let RadioEvent::Sighting(s) = ev {
                out.push(s);
            }
        }
        out
    }
}

impl Radio for MemoryRadio {
    fn advertise(&mut self, frame: Frame) -> Result<(), RadioError> {
        self.air.set_frame(self.id, frame);
        Ok(())
    }

    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent> {
        &mut self.events
    }

    fn stats(&self) -> RadioStats {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Position;
    use super::*;
    use meshtrace_protocol::{EncounterTracker, KeySchedule, RotatingId, ScanWindow};

    fn at(x: f64) -> DeviceConfig {
        DeviceConfig {
            trajectory: Trajectory::fixed(Position { x, y: 0.0 }),
            ..DeviceConfig::default()
        }
    }

    fn frame(b: u8) -> Frame {
        Frame {
            id: RotatingId([b; 32]),
        }
    }

    fn run(
        seed: u64,
        carrier: Carrier,
    ) -> (
        Vec<super::super::RadioSighting>,
        Vec<super::super::RadioSighting>,
    ) {
        let air = MemoryAir::new(PathLossModel::default(), DutyCycle::default(), seed).unwrap();
        let mut a = air.add_device(DeviceConfig { carrier, ..at(0.0) }).unwrap();
        let mut b = air.add_device(DeviceConfig { carrier, ..at(1.0) }).unwrap();
        let mut c = air
            .add_device(DeviceConfig {
                carrier,
                ..at(30.0)
            })
            .unwrap();
        a.advertise(frame(1)).unwrap();
        b.advertise(frame(2)).unwrap();
        c.advertise(frame(3)).unwrap();
        let t0 = 1_800_000_000_000u64;
        for i in 0..600 {
            air.step(t0 + i * 1000);
        }
        let heard_by_a = a.drain();
        let heard_by_c = c.drain();
        (heard_by_a, heard_by_c)
    }

    /// The device's own TX power drives what others receive (the frame
    /// carries none): without shadowing or offsets, a device 20 dB louder is
    /// received exactly 20 dB stronger at the same distance.
    #[test]
    fn a_devices_tx_power_drives_what_others_receive() {
        let model = PathLossModel {
            shadowing_sigma_db: 0.0,
            ..PathLossModel::default()
        };
        let always = DutyCycle {
            scan_window_ms: 1_000,
            scan_interval_ms: 1_000,
            advertising_interval_ms: 1_000,
        };
        let air = MemoryAir::new(model, always, 5).unwrap();
        let quiet = |x, tx| DeviceConfig {
            tx_power_dbm: tx,
            offsets_db: Some((0.0, 0.0)),
            ..at(x)
        };
        let mut rx = air.add_device(quiet(0.0, None)).unwrap();
        let mut soft = air.add_device(quiet(1.0, None)).unwrap();
        let mut loud = air.add_device(quiet(-1.0, Some(6))).unwrap();
        soft.advertise(frame(1)).unwrap();
        loud.advertise(frame(2)).unwrap();
        air.step(1_800_000_000_000);
        let heard = rx.drain();
        let rssi_of = |f: Frame| {
            heard
                .iter()
                .find(|s| s.frame == f)
                .and_then(|s| s.rssi)
                .unwrap()
        };
        assert_eq!(rssi_of(frame(1)), -59, "SIM_TX_POWER_DBM at 1 m");
        assert_eq!(rssi_of(frame(2)), -39, "+6 dBm at 1 m");
    }

    #[test]
    fn near_devices_hear_each_other_far_ones_do_not() {
        for carrier in [Carrier::Extended, Carrier::Legacy] {
            let (a, c) = run(1, carrier);
            assert!(a.iter().any(|s| s.frame == frame(2)), "{carrier:?}");
            assert!(
                a.iter().all(|s| s.frame != frame(3)),
                "30 m is out of range"
            );
            assert!(c.is_empty(), "{carrier:?}: C is 30 m from both");
            // Duty cycle 1 s of every 5 s, one round per second: about a
            // fifth of the 600 rounds hear B. With the legacy carrier each
            // half report completes the pair again, so twice as many.
            let expected = match carrier {
                Carrier::Extended => 80..=160,
                Carrier::Legacy => 160..=320,
            };
            assert!(expected.contains(&a.len()), "{carrier:?}: {}", a.len());
            let mean: f64 =
                a.iter().map(|s| f64::from(s.rssi.unwrap())).sum::<f64>() / a.len() as f64;
            assert!((-66.0..=-52.0).contains(&mean), "mean RSSI at 1 m: {mean}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_air() {
        assert_eq!(run(7, Carrier::Extended), run(7, Carrier::Extended));
        assert_ne!(run(7, Carrier::Extended).0, run(8, Carrier::Extended).0);
    }

    #[test]
    fn an_encounter_with_a_shared_token_forms_at_one_metre() {
        let air = MemoryAir::new(PathLossModel::default(), DutyCycle::default(), 3).unwrap();
        let mut ra = air.add_device(at(0.0)).unwrap();
        let mut rb = air.add_device(at(1.0)).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let (mut ka, mut kb) = (KeySchedule::new(), KeySchedule::new());
        let (mut ta, mut tb) = (EncounterTracker::new(0), EncounterTracker::new(0));
        let t0 = 1_800_000_000u64;
        for s in 0..(20 * 60) {
            let now = UnixTime(t0 + s);
            if let Some(id) = ka.rotate(now, &mut rng).new_id {
                ra.advertise(Frame { id }).unwrap();
            }
            if let Some(id) = kb.rotate(now, &mut rng).new_id {
                rb.advertise(Frame { id }).unwrap();
            }
            air.step(now.0 * 1000);
            for x in ra.drain() {
                let _ = ta.handle_sighting(&ka, x.to_sighting());
            }
            for x in rb.drain() {
                let _ = tb.handle_sighting(&kb, x.to_sighting());
            }
        }
        let ea = ta.close_all();
        let eb = tb.close_all();
        let tokens_b: Vec<_> = eb.iter().flat_map(|e| e.tokens.clone()).collect();
        assert!(
            ea.iter()
                .flat_map(|e| &e.tokens)
                .any(|t| tokens_b.contains(t))
        );
    }

    /// The scan windows and sightings of `events`, checking that every
    /// sighting lies in the window reported last before it (`before`: the
    /// last one reported earlier).
    fn windows_after(
        before: Option<ScanWindow>,
        events: &[RadioEvent],
    ) -> (Vec<ScanWindow>, usize) {
        let mut windows: Vec<ScanWindow> = before.into_iter().collect();
        let skip = windows.len();
        let mut sightings = 0;
        for ev in events {
            match ev {
                RadioEvent::Scan(w) => windows.push(*w),
                RadioEvent::Sighting(s) => {
                    let w = windows.last().expect("a window before the first sighting");
                    assert!(
                        w.start <= s.at && s.at <= w.end,
                        "sighting at {:?} outside the last window {w:?}",
                        s.at
                    );
                    sightings += 1;
                }
                RadioEvent::Failed(e) => panic!("{e}"),
            }
        }
        (windows.split_off(skip), sightings)
    }

    fn windows_in_order(events: &[RadioEvent]) -> (Vec<ScanWindow>, usize) {
        windows_after(None, events)
    }

    const PHONE: DutyCycle = DutyCycle {
        scan_window_ms: 4_000,
        scan_interval_ms: 60_000,
        advertising_interval_ms: 250,
    };
    const PC: DutyCycle = DutyCycle {
        scan_window_ms: 10_000,
        scan_interval_ms: 10_000,
        advertising_interval_ms: 250,
    };

    #[test]
    fn every_window_is_reported_before_its_sightings_at_the_configured_rate() {
        const MINUTES: u64 = 10;
        let air = MemoryAir::new(PathLossModel::default(), PHONE, 11).unwrap();
        let mut phone = air.add_device(at(0.0)).unwrap();
        let mut pc = air
            .add_device(DeviceConfig {
                duty: Some(PC),
                ..at(1.0)
            })
            .unwrap();
        // A third device that nobody hears still reports its windows.
        let mut alone = air.add_device(at(500.0)).unwrap();
        phone.advertise(frame(1)).unwrap();
        pc.advertise(frame(2)).unwrap();
        let t0 = 1_800_000_000_000u64;
        air.step(t0);
        // At the first round a window in progress is reported from then on.
        let first: Vec<_> = [&mut phone, &mut pc, &mut alone]
            .into_iter()
            .map(|r| windows_in_order(&r.drain_events()).0)
            .collect();
        assert_eq!(first[1].len(), 1, "a PC always listens");
        assert_eq!(first[1][0].start, UnixTime(t0 / 1000));
        for i in 1..=MINUTES * 60 {
            air.step(t0 + i * 1000);
        }
        let (pw, ps) = windows_after(first[0].last().copied(), &phone.drain_events());
        let (cw, cs) = windows_after(first[1].last().copied(), &pc.drain_events());
        let (aw, a_heard) = windows_after(first[2].last().copied(), &alone.drain_events());
        // One window per interval: 4 s every 60 s, and back-to-back 10 s.
        assert_eq!(pw.len() as u64, MINUTES, "{pw:?}");
        assert_eq!(aw.len() as u64, MINUTES, "{aw:?}");
        assert_eq!(cw.len() as u64, MINUTES * 6, "{cw:?}");
        for (ws, gap, len) in [(&pw, 60, 3..=4), (&cw, 10, 9..=10)] {
            for pair in ws.windows(2) {
                assert_eq!(pair[1].start.0 - pair[0].start.0, gap);
            }
            for w in ws.iter() {
                assert!(len.contains(&(w.end.0 - w.start.0)), "{w:?}");
            }
        }
        // The phone hears the PC only in its windows: 4 rounds a minute;
        // the PC hears the phone every round.
        assert!(ps > 0 && ps as u64 <= 4 * MINUTES + 4, "{ps}");
        assert!(cs as u64 >= MINUTES * 60 * 9 / 10, "{cs}");
        assert_eq!(a_heard, 0);
        assert_eq!(phone.stats().scan_windows, first[0].len() as u64 + MINUTES);
    }

    #[test]
    fn a_device_switched_off_reports_no_window_and_a_jump_reports_two() {
        let air = MemoryAir::new(PathLossModel::default(), PC, 12).unwrap();
        let mut a = air.add_device(at(0.0)).unwrap();
        let t0 = 1_800_000_000_000u64;
        air.step(t0);
        a.drain_events();
        air.set_enabled(a.id(), false);
        for i in 1..=100 {
            air.step(t0 + i * 1000);
        }
        assert!(a.drain_events().is_empty());
        air.set_enabled(a.id(), true);
        air.step(t0 + 101_000);
        // Back on: only the window in progress, from now on.
        let (w, _) = windows_in_order(&a.drain_events());
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].start, UnixTime(t0 / 1000 + 101));
        // A day later in one round: the last two windows only.
        air.step(t0 + 86_400_000);
        let (w, _) = windows_in_order(&a.drain_events());
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[1].start.0 - w[0].start.0, 10);
        assert!(w[1].start.0 <= t0 / 1000 + 86_400 && t0 / 1000 + 86_400 <= w[1].end.0);
        // An invalid duty cycle of a device is refused.
        let bad = DutyCycle {
            scan_window_ms: 2,
            scan_interval_ms: 1,
            ..PC
        };
        assert!(
            air.add_device(DeviceConfig {
                duty: Some(bad),
                ..at(0.0)
            })
            .is_err()
        );
    }

    #[test]
    fn disabled_devices_neither_send_nor_hear() {
        let air = MemoryAir::new(PathLossModel::default(), DutyCycle::default(), 5).unwrap();
        let mut a = air.add_device(at(0.0)).unwrap();
        let mut b = air.add_device(at(1.0)).unwrap();
        a.advertise(frame(1)).unwrap();
        b.advertise(frame(2)).unwrap();
        air.set_enabled(b.id(), false);
        for i in 0..100 {
            air.step(1_000_000 + i * 1000);
        }
        assert!(a.drain().is_empty());
        assert!(b.drain().is_empty());
        assert!(
            MemoryAir::new(
                PathLossModel {
                    exponent: 0.0,
                    ..PathLossModel::default()
                },
                DutyCycle::default(),
                1
            )
            .is_err()
        );
    }
}
