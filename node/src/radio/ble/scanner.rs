//! The scan task: BlueZ discovery events in, scan windows and sightings
//! out; the discovery follows the configured scan timing (see the `ble`
//! module's docs).

use super::*;
use crate::radio::{ClockRate, ScanSchedule, real_wait_within};
use meshtrace_protocol::ScanWindow;

pub(super) type EventStream = Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;

/// However fast the clock runs, the scan task waits at least this long (real
/// time) between two looks at its schedule.
const MIN_REAL_WAIT: Duration = Duration::from_millis(5);
/// The scan task looks at the clock at least this often (real time), so
/// that a clock that jumps (a manual or scaled clock) is followed.
const MAX_REAL_WAIT: Duration = Duration::from_millis(100);

/// What the scan task must do at a moment of clock time, in this order:
/// stop or start the discovery, then (once it is on) report the windows.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ScanPlan {
    /// Stop the discovery (a duty-cycled window ended).
    pub(super) stop: bool,
    /// Start the discovery (a window started, or the adapter came back).
    pub(super) start: bool,
    /// Windows to report once the discovery is on, oldest first.
    pub(super) windows: Vec<ScanWindow>,
}

/// The scan's state machine, without I/O: when to start and stop the
/// discovery and which windows to report. Windows start at multiples of the
/// interval on the clock (phase 0).
#[derive(Debug)]
pub(super) struct ScanCycle {
    timing: ScanTiming,
    schedule: ScanSchedule,
    /// The discovery is on (as far as the task asked for it).
    scanning: bool,
    /// The adapter is powered.
    powered: bool,
    /// After a failed start: no new attempt before this clock time (ms).
    hold_until_ms: Option<u64>,
    /// A start failure was reported and no start has succeeded since.
    failure_reported: bool,
}

impl ScanCycle {
    /// A cycle for `timing` (validated) whose discovery was started once
    /// already (by [`BleRadio::start`], which reports a failure to start at
    /// once).
    pub(super) fn new(timing: ScanTiming) -> ScanCycle {
        let duty = timing.duty(crate::radio::model::DutyCycle::default());
        ScanCycle {
            timing,
            schedule: ScanSchedule::new(&duty, 0),
            scanning: true,
            powered: true,
            hold_until_ms: None,
            failure_reported: false,
        }
    }

    /// What to do at clock time `now_ms`. The caller carries it out and
    /// tells the outcome of a start with [`ScanCycle::started`].
    pub(super) fn plan(&mut self, now_ms: u64) -> ScanPlan {
        let mut plan = ScanPlan::default();
        if !self.powered {
            self.schedule.restart();
            return plan;
        }
        let want = self.timing.is_continuous() || self.schedule.listening(now_ms);
        let due = self.schedule.due(now_ms);
        if !want {
            if self.scanning {
                plan.stop = true;
                self.scanning = false;
            }
            // Windows that ended while the task was not looking were not
            // listened to.
            return plan;
        }
        if !self.scanning {
            if self.hold_until_ms.is_some_and(|h| now_ms < h) {
                self.schedule.restart();
                return plan;
            }
            plan.start = true;
        }
        plan.windows = due;
        plan
    }

    /// The outcome of the start the last plan asked for: on failure no
    /// window of the plan is reported, and the next attempt waits for the
    /// next window (or one interval, scanning continuously). True when the
    /// failure is the first in a row (to be reported once).
    pub(super) fn started(&mut self, now_ms: u64, ok: bool) -> bool {
        if ok {
            self.scanning = true;
            self.hold_until_ms = None;
            self.failure_reported = false;
            return false;
        }
        self.scanning = false;
        self.schedule.restart();
        let wait = if self.timing.is_continuous() {
            u64::try_from(self.timing.interval.as_millis()).unwrap_or(u64::MAX)
        } else {
            self.schedule.until_next(now_ms)
        };
        self.hold_until_ms = Some(now_ms.saturating_add(wait));
        !std::mem::replace(&mut self.failure_reported, true)
    }

    /// The adapter was powered off (`false`) or on. Either way BlueZ has
    /// ended the discovery: the next plan starts it again when a window
    /// calls for it.
    pub(super) fn set_powered(&mut self, on: bool) {
        self.powered = on;
        self.scanning = false;
        self.schedule.restart();
        self.hold_until_ms = None;
    }

    /// Whether a report heard now belongs to a window (the discovery is on).
    pub(super) fn accepts_sightings(&self) -> bool {
        self.powered && self.scanning
    }

    /// Clock milliseconds until the plan may change (a window starts or a
    /// duty-cycled window ends), at least 1.
    pub(super) fn until_change(&self, now_ms: u64) -> u64 {
        let next = self.schedule.until_next(now_ms);
        if !self.timing.is_continuous() && self.schedule.listening(now_ms) {
            let interval = u64::try_from(self.timing.interval.as_millis()).unwrap_or(u64::MAX);
            let window = u64::try_from(self.timing.window.as_millis()).unwrap_or(u64::MAX);
            let into = interval.saturating_sub(next);
            return window.saturating_sub(into).clamp(1, next);
        }
        next
    }
}

/// The scan task: BlueZ events in, scan windows and sightings out.
pub(super) struct Scanner {
    pub(super) central: Central,
    pub(super) adapter: String,
    pub(super) decoder: FrameDecoder,
    pub(super) cycle: ScanCycle,
    pub(super) clock: SharedClock,
    pub(super) tx: mpsc::Sender<RadioEvent>,
}

impl Scanner {
    pub(super) async fn run(mut self, mut stream: EventStream, mut stop: oneshot::Receiver<()>) {
        let meter = ClockRate::start(self.clock.now_millis());
        loop {
            let now = self.clock.now_millis();
            self.follow_schedule(now).await;
            let wait = real_wait_within(
                self.cycle.until_change(now),
                meter.rate(now),
                MIN_REAL_WAIT,
                MAX_REAL_WAIT,
            );
            let event = tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(wait) => continue,
                event = stream.next() => event,
            };
            let Some(event) = event else {
                report(
                    &self.tx,
                    RadioError::NoBluetoothService(
                        "the BlueZ event stream ended (D-Bus connection lost or bluetoothd \
                         stopped); no more sightings"
                            .into(),
                    ),
                );
                return;
            };
            self.handle(event).await;
        }
        if let Err(e) = self.central.stop_scan().await {
            tracing::debug!(error = %e, "BLE radio: stopping the scan failed");
        }
    }

    /// Starts or stops the discovery as the schedule says, then reports the
    /// windows that started (before any report heard in them is handled).
    async fn follow_schedule(&mut self, now: u64) {
        let plan = self.cycle.plan(now);
        if plan.stop
            && let Err(e) = self.central.stop_scan().await
        {
            tracing::debug!(error = %e, "BLE radio: stopping the scan at the window's end failed");
        }
        if plan.start {
            let filter = ScanFilter {
                services: vec![SERVICE_UUID],
            };
            match self.central.start_scan(filter).await {
                Ok(()) => {
                    self.cycle.started(now, true);
                }
                Err(e) => {
                    if self.cycle.started(now, false) {
                        report(&self.tx, from_btleplug(&e, "starting the scan"));
                    }
                    return;
                }
            }
        }
        for w in plan.windows {
            self.decoder.deliver_scan(&self.tx, w);
        }
    }

    async fn handle(&mut self, event: CentralEvent) {
        match event {
            CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                if !self.cycle.accepts_sightings() {
                    return;
                }
                // The event carries no RSSI: read it from the device.
                let rssi = self.properties(&id).await.and_then(|p| p.rssi);
                self.sightings(&service_data, rssi);
            }
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => {
                if !self.cycle.accepts_sightings() {
                    return;
                }
                if let Some(p) = self.properties(&id).await {
                    self.sightings(&p.service_data, p.rssi);
                }
            }
            CentralEvent::StateUpdate(CentralState::PoweredOff) => {
                self.cycle.set_powered(false);
                report(
                    &self.tx,
                    RadioError::NoAdapter(format!(
                        "Bluetooth adapter {} was powered off",
                        self.adapter
                    )),
                )
            }
            CentralEvent::StateUpdate(CentralState::PoweredOn) => {
                // The schedule starts the discovery again when it should.
                tracing::info!(adapter = %self.adapter, "adapter powered on; scanning again");
                self.cycle.set_powered(true);
            }
            _ => {}
        }
    }

    async fn properties(&self, id: &PeripheralId) -> Option<btleplug::api::PeripheralProperties> {
        // The device may already be gone (BlueZ drops temporary devices).
        let peripheral = self.central.peripheral(id).await.ok()?;
        peripheral.properties().await.ok().flatten()
    }

    fn sightings(&mut self, service_data: &HashMap<Uuid, Vec<u8>>, rssi: Option<i16>) {
        let at = self.clock.now();
        for s in sightings_from_properties(service_data, rssi, at, &mut self.decoder) {
            // Counts only: what was heard stays out of the logs.
            tracing::debug!(adapter = %self.adapter, ?rssi, "BLE radio: sighting delivered by BlueZ");
            self.decoder.deliver(&self.tx, s);
        }
    }
}
