//! The in-memory air: simulated radios in one process, driven explicitly and
//! deterministic for a given seed (tests, the demo, the simulator).
//!
//! Each call to [`MemoryAir::step`] is one advertising round at a given
//! clock time: every device with a frame puts its payloads on the air (one
//! or two, by [`Carrier`]) and every other device whose scanner is listening
//! at that moment (its [`DutyCycle`] window, with a per-device phase) may
//! receive each payload according to the [`PathLossModel`] — distance from
//! the devices' [`Trajectory`]s, shadowing noise, per-device offsets, range
//! cutoff and loss. Receptions go through the same `FrameDecoder` as the
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
};

/// Most devices one air holds.
pub(crate) const MAX_DEVICES: usize = 4096;

struct Device {
    trajectory: Trajectory,
    frame: Option<Frame>,
    carrier: Carrier,
    tx_offset_db: f64,
    rx_offset_db: f64,
    phase_ms: u64,
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
    /// TX and RX offsets (dB); `None` draws them from the air's seed with
    /// σ = [`DEVICE_OFFSET_SIGMA_DB`].
    pub offsets_db: Option<(f64, f64)>,
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
        let phase_ms = st.rng.next_u64() % st.duty.scan_interval_ms;
        let id = DeviceId(st.devices.len());
        st.devices.push(Device {
            trajectory: config.trajectory,
            frame: None,
            carrier: config.carrier,
            tx_offset_db,
            rx_offset_db,
            phase_ms,
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
        let n = st.devices.len();
        for s in 0..n {
            let (payloads, tx_power, tx_off) = {
                let d = &st.devices[s];
                let Some(frame) = d.frame.filter(|_| d.enabled) else {
                    continue;
                };
                (d.carrier.payloads(&frame), frame.tx_power, d.tx_offset_db)
            };
            for r in 0..n {
                if r == s {
                    continue;
                }
                let listening = {
                    let d = &st.devices[r];
                    d.enabled && st.duty.listening(now_millis.wrapping_add(d.phase_ms))
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

    /// Takes every sighting delivered so far (non-blocking).
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
    use meshtrace_protocol::{EncounterTracker, KeySchedule, RotatingId};

    fn at(x: f64) -> DeviceConfig {
        DeviceConfig {
            trajectory: Trajectory::fixed(Position { x, y: 0.0 }),
            ..DeviceConfig::default()
        }
    }

    fn frame(b: u8) -> Frame {
        Frame {
            tx_power: super::super::model::SIM_TX_POWER_DBM,
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
                ra.advertise(Frame { tx_power: -14, id }).unwrap();
            }
            if let Some(id) = kb.rotate(now, &mut rng).new_id {
                rb.advertise(Frame { tx_power: -14, id }).unwrap();
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
