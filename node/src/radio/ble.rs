//! Bluetooth LE backend (Linux): btleplug scans, BlueZ advertises through
//! bluer.
//!
//! [`BleRadio::start`] connects twice to BlueZ over the D-Bus system bus:
//! once through `bluer` (the official BlueZ crate), which registers our
//! advertisements with `org.bluez.LEAdvertisingManager1`, and once through
//! `btleplug`, which is central-only and runs the discovery (scan). Both use
//! the same adapter, chosen by name ([`BleConfig::adapter`]).
//!
//! # Receiving
//!
//! The scan asks BlueZ for devices listing our service UUID
//! ([`SERVICE_UUID`], the 128-bit form of `0xFCB7`). BlueZ merges the
//! discovery filters of all applications on the bus, so advertisements of
//! other applications arrive too: every report goes through
//! `sightings_from_properties`, which keeps only service data under our
//! UUID, counts everything else as foreign, and feeds our bytes to the shared
//! `FrameDecoder` (which reassembles legacy halves by tag and counts
//! malformed, oversized and stale input). Service-data events carry no RSSI,
//! so the RSSI is read from the device's properties; HCI's "unknown" value
//! (127) becomes `None`. Reception time comes from the node's
//! [`SharedClock`].
//!
//! # Sending
//!
//! One broadcast (non-connectable, non-discoverable) advertisement per
//! carrier payload: one with the 34-byte service data for the
//! [extended](Carrier::Extended) carrier, two advertising instances with one
//! 20-byte half each for the [legacy](Carrier::Legacy) carrier (bluer cannot
//! set scan-response data, so the second half cannot go into a scan
//! response). Every [`Radio::advertise`] tears the old registrations down and
//! registers new ones, so BlueZ draws a fresh random non-resolvable address
//! together with the new rotating ID. [`Radio::advertise`] only queues the
//! frame for a background task; failures that happen there arrive as
//! [`RadioEvent::Failed`].
//!
//! Without [`BleConfig::carrier`], the extended carrier is used when BlueZ
//! reports that the adapter can advertise more than 31 bytes, and the legacy
//! carrier otherwise (or when BlueZ does not say). If BlueZ then refuses the
//! extended advertisement (some BlueZ versions refuse 16-bit-UUID service data
//! longer than 27 bytes), the radio falls back to the legacy carrier for the
//! rest of its life.
//!
//! # Proof on a real stack
//!
//! `tests/ble-vm/run.sh` (docs/ble-vm.md) runs two daemons with this backend
//! on BlueZ 5.82 in a QEMU guest, on two emulated controllers (`btvirt`):
//! each records the other's rotating IDs, both hold the same encounter
//! tokens, and every rotation shows up on the air under new addresses. Only
//! the legacy carrier can be proven there: btvirt crashes on extended
//! advertising data.
//!
//! # BlueZ facts this backend relies on
//!
//! * BlueZ builds the advertising data itself from the properties we
//!   register: the 16-bit UUID list (OS and kernel scan filters match the
//!   list, not service-data UUIDs), and the service data. With
//!   `Discoverable = false` it leaves out the Flags structure, so the bytes on
//!   the air are `docs/protocol.md` §3.4 minus its 3-byte Flags prefix;
//!   receivers do not need the flags. A legacy half then takes 28 of 31 bytes.
//! * BlueZ switches to extended advertising by itself when the data exceeds
//!   31 bytes (up to the controller's limit, 251 bytes with BLE 5).
//! * A broadcast advertisement gets a fresh random non-resolvable address each
//!   time it is registered. If the adapter itself is connectable, BlueZ may
//!   use the public address unless privacy is enabled in `main.conf`
//!   (`Privacy = device`): keep the adapter non-connectable and
//!   non-discoverable, or enable privacy.
//! * Unregistering an advertisement is asynchronous in bluer (the handle's
//!   drop spawns the D-Bus call), so after dropping the old handles we wait
//!   until BlueZ's `ActiveInstances` has gone down before registering the new
//!   ones: controllers offer few instances (the emulated one reports 3).
//! * With several instances on a controller that supports only one
//!   advertising set, the kernel rotates them (2 s each by default), so each
//!   legacy half is on the air half of the time.
//! * On BlueZ, a device's RSSI changes only when it moves by several dB, and
//!   the controller filters duplicate reports between the kernel's periodic
//!   scan restarts: expect roughly one report per device per ~10 s.
//!   Devices already in BlueZ's cache when the scan starts are reported once
//!   with their cached data.
//!
//! # Scan windows, duty cycle and battery
//!
//! The scan follows [`BleConfig::scan`] on the node's clock, in one of two
//! ways, and reports each window as a [`RadioEvent::Scan`] (see the `radio`
//! module docs):
//!
//! * **continuous** (window = interval; the default, [`super::PC_SCAN`]:
//!   a PC on mains power): the discovery runs all the time and the scanner
//!   reports back-to-back windows of the interval (10 s), aligned to
//!   multiples of the interval on the clock. Ten seconds is about how often
//!   BlueZ reports a present device again.
//! * **duty-cycled** (window < interval, e.g. [`super::PHONE_SCAN`], 4 s
//!   every 60 s): the scanner starts the discovery (btleplug `start_scan`,
//!   BlueZ `StartDiscovery`) when a window starts, reports the window once
//!   the discovery is on, and stops it (`stop_scan`) when the window ends.
//!   Reports that BlueZ delivers while the discovery is off (late D-Bus
//!   signals, cached devices) are dropped: the receiver was not listening.
//!   BlueZ invalidates a device's RSSI when a discovery stops, so the
//!   first report of a device in a window carries a fresh RSSI. Windows
//!   start at multiples of the interval on the clock, so devices with the
//!   same setting and synchronised clocks listen at the same time: a phone
//!   is heard by another only while it advertises, which it does all the
//!   time, so this costs nothing.
//!
//! No window is reported while the adapter is powered off or the discovery
//! cannot be started (the failure is reported once, and retried at the next
//! window).
//!
//! Neither btleplug nor bluer lets an application set the controller's scan
//! parameters inside a window. BlueZ's discovery is an *active* scan that the
//! kernel runs with its discovery interval and window (by default window =
//! interval, a receive duty cycle close to 100 %), restarted periodically;
//! that is the best reception and the worst battery life. A system
//! administrator can lower it in BlueZ's `main.conf`, section `[LE]`
//! (`ScanIntervalDiscovery`, `ScanWindowDiscovery`, in units of 0.625 ms):
//! halving the window roughly halves the receiver's energy and its chance to
//! catch a given advertisement. btleplug asks for the "auto" transport, so
//! on a dual-mode adapter BlueZ interleaves BR/EDR inquiry with LE scanning,
//! which costs power and LE reception time; an LE-only adapter (`btmgmt
//! bredr off`) spends the whole duty cycle on LE. Active scanning also makes
//! the receiver transmit scan requests. BlueZ's advertisement-monitor API
//! (passive scanning, possibly offloaded to the controller) would be the
//! battery-friendly way and is a later concern; the duty-cycled setting is
//! what saves battery today.
//!
//! On the sending side, [`BleConfig::advertising_interval_ms`] sets the
//! requested advertising interval (BlueZ's `MinInterval`/`MaxInterval`):
//! transmit energy is roughly proportional to the number of advertising
//! events, i.e. inversely proportional to the interval, and so is the chance
//! that a nearby scanner catches one. The default, 250 ms, is in the range
//! of the Exposure Notification system (200–270 ms). BlueZ honours the
//! interval only when it and the kernel support the extended advertising
//! management commands; otherwise the kernel's default interval (1.28 s)
//! applies. The legacy carrier needs two advertising instances, so it costs
//! twice the airtime of one advertisement, and a frame completes only when
//! both halves are caught. The advertised transmit power is requested from
//! the controller only when BlueZ reports `CanSetTxPower`.
//!
//! # Other platforms
//!
//! This backend is for Linux with BlueZ. None of it works on iOS: iOS cannot
//! put service data in advertisements and hides background advertisements in
//! an Apple-only "overflow area", so iPhones will need a GATT exchange, a
//! later concern.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use btleplug::api::{
    Central as _, CentralEvent, CentralState, Manager as _, Peripheral as _, ScanFilter,
};
use btleplug::platform::{Adapter as Central, Manager, PeripheralId};
use futures::{Stream, StreamExt};
use meshtrace_protocol::{Frame, SERVICE_UUID16, UnixTime};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    Carrier, EVENT_QUEUE, FrameDecoder, PC_SCAN, Radio, RadioCounters, RadioError, RadioEvent,
    RadioSighting, RadioStats, ScanTiming,
};
use crate::clock::SharedClock;

mod advertiser;
mod errors;
mod scanner;
use advertiser::Advertiser;
use errors::{from_bluer, from_btleplug};
use scanner::{ScanCycle, Scanner};

/// Our service UUID in the 128-bit form the Bluetooth stacks use:
/// `0000fcb7-0000-1000-8000-00805f9b34fb` ([`SERVICE_UUID16`] on the
/// Bluetooth base UUID).
pub const SERVICE_UUID: Uuid =
    Uuid::from_u128(BLUETOOTH_BASE_UUID | ((SERVICE_UUID16 as u128) << 96));

const BLUETOOTH_BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;

/// Default advertising interval in milliseconds.
pub const DEFAULT_ADVERTISING_INTERVAL_MS: u32 = 250;
/// Shortest advertising interval BlueZ accepts, in milliseconds.
pub const MIN_ADVERTISING_INTERVAL_MS: u32 = 20;
/// Longest advertising interval BlueZ accepts, in milliseconds.
pub const MAX_ADVERTISING_INTERVAL_MS: u32 = 10_485_759;

/// How long [`BleRadio::start`] waits for BlueZ before giving up.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// HCI's "RSSI not available" value.
const HCI_RSSI_UNKNOWN: i16 = 127;
/// The valid HCI RSSI range, in dBm.
const HCI_RSSI_RANGE: std::ops::RangeInclusive<i16> = -127..=20;

/// Advertising data an adapter must accept for the extended carrier: flags,
/// UUID list and the 34-byte service data (45 bytes).
const EXTENDED_ADVERTISING_LEN: usize = 11 + meshtrace_protocol::EXTENDED_SERVICE_DATA_LEN;

/// Queued advertising commands (only the newest frame matters).
const COMMAND_QUEUE: usize = 8;
/// How long to wait for BlueZ to release the previous advertisements.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);
/// Attempts to register one advertisement before reporting a failure.
const REGISTER_ATTEMPTS: u32 = 3;

/// Configuration of the Bluetooth LE radio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BleConfig {
    /// The adapter by its BlueZ name (e.g. `"hci0"`); `None` takes `hci0` if
    /// present, else the first adapter in name order.
    pub adapter: Option<String>,
    /// How frames are put on the air; `None` picks the extended carrier when
    /// the adapter reports support for extended advertising, else legacy.
    pub carrier: Option<Carrier>,
    /// Requested advertising interval in milliseconds
    /// ([`MIN_ADVERTISING_INTERVAL_MS`]..=[`MAX_ADVERTISING_INTERVAL_MS`]).
    /// Shorter means better discovery and more battery drain (see the module
    /// documentation); BlueZ may ignore it on older kernels.
    pub advertising_interval_ms: u32,
    /// When the scanner listens (see the module documentation); default
    /// [`PC_SCAN`], continuous scanning reported as 10 s windows.
    pub scan: ScanTiming,
    /// Transmit power to request from the controller (dBm), when BlueZ says
    /// it can set one; default [`crate::config::DEFAULT_BLE_TX_POWER_DBM`].
    /// It is not put on the air (frames carry the rotating ID alone,
    /// docs/protocol.md §3): the node reports it in its announcements.
    pub tx_power_dbm: i8,
}

impl Default for BleConfig {
    fn default() -> BleConfig {
        BleConfig {
            adapter: None,
            carrier: None,
            advertising_interval_ms: DEFAULT_ADVERTISING_INTERVAL_MS,
            scan: PC_SCAN,
            tx_power_dbm: crate::config::DEFAULT_BLE_TX_POWER_DBM,
        }
    }
}

impl BleConfig {
    fn validate(&self) -> Result<(), RadioError> {
        let range = MIN_ADVERTISING_INTERVAL_MS..=MAX_ADVERTISING_INTERVAL_MS;
        if !range.contains(&self.advertising_interval_ms) {
            return Err(RadioError::Config(format!(
                "advertising interval {} ms is outside {}..={} ms",
                self.advertising_interval_ms,
                MIN_ADVERTISING_INTERVAL_MS,
                MAX_ADVERTISING_INTERVAL_MS
            )));
        }
        self.scan.check().map_err(RadioError::Config)?;
        if let Some(name) = &self.adapter
            && (name.is_empty() || name.chars().any(char::is_whitespace))
        {
            return Err(RadioError::Config(format!(
                "invalid Bluetooth adapter name {name:?} (expected e.g. \"hci0\")"
            )));
        }
        Ok(())
    }
}

/// The Bluetooth LE radio: scans with btleplug and advertises through BlueZ.
///
/// Dropping it stops the scan and unregisters the advertisements.
#[derive(Debug)]
pub struct BleRadio {
    events: mpsc::Receiver<RadioEvent>,
    commands: mpsc::Sender<Command>,
    counters: Arc<RadioCounters>,
    adapter: String,
    carrier: Carrier,
    _stop_scan: oneshot::Sender<()>,
}

#[derive(Debug)]
enum Command {
    Advertise(Frame),
}

impl BleRadio {
    /// Connects to BlueZ, picks the adapter, starts scanning and the
    /// advertising task. Nothing is advertised until [`Radio::advertise`].
    ///
    /// Must be called inside a tokio runtime. Fails with
    /// [`RadioError::NoBluetoothService`] when the D-Bus system bus or
    /// bluetoothd cannot be reached, [`RadioError::NoAdapter`] when there is no
    /// (such) adapter or it is powered off, [`RadioError::PermissionDenied`]
    /// when the system refuses access, and [`RadioError::Config`] for an
    /// invalid configuration. Gives up after [`START_TIMEOUT`].
    pub async fn start(config: BleConfig, clock: SharedClock) -> Result<BleRadio, RadioError> {
        config.validate()?;
        match tokio::time::timeout(START_TIMEOUT, Self::start_inner(config, clock)).await {
            Ok(result) => result,
            Err(_) => Err(RadioError::NoBluetoothService(format!(
                "BlueZ did not answer over the D-Bus system bus within {} s — is bluetoothd \
                 running and responsive?",
                START_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn start_inner(config: BleConfig, clock: SharedClock) -> Result<BleRadio, RadioError> {
        // Advertising side (bluer): its errors are structured, so it goes
        // first and names the cause when BlueZ is out of reach.
        let session = bluer::Session::new()
            .await
            .map_err(|e| from_bluer(&e, "connecting"))?;
        let names = session
            .adapter_names()
            .await
            .map_err(|e| from_bluer(&e, "listing Bluetooth adapters"))?;
        let name = choose_adapter(&names, config.adapter.as_deref())?;
        let adapter = session
            .adapter(&name)
            .map_err(|e| from_bluer(&e, "opening the Bluetooth adapter"))?;
        let powered = adapter
            .is_powered()
            .await
            .map_err(|e| from_bluer(&e, "reading the adapter's power state"))?;
        if !powered {
            return Err(RadioError::NoAdapter(format!(
                "Bluetooth adapter {name} is powered off (try `bluetoothctl power on`)"
            )));
        }
        let instances = adapter
            .supported_advertising_instances()
            .await
            .map_err(
                |e| match from_bluer(&e, "reading advertising capabilities") {
                    e @ (RadioError::PermissionDenied(_) | RadioError::NoBluetoothService(_)) => e,
                    _ => RadioError::NoAdapter(format!(
                        "Bluetooth adapter {name} offers no LE advertising through BlueZ \
                     (org.bluez.LEAdvertisingManager1): {e}"
                    )),
                },
            )?;
        let extended = extended_support(
            adapter
                .supported_advertising_capabilities()
                .await
                .ok()
                .flatten()
                .map(|c| c.max_advertisement_length),
            adapter
                .supported_advertising_secondary_channels()
                .await
                .ok()
                .flatten()
                .map(|c| c.len()),
        );
        let carrier = choose_carrier(config.carrier, extended, &name)?;
        let can_set_tx_power = adapter
            .supported_advertising_features()
            .await
            .ok()
            .flatten()
            .is_some_and(|f| f.contains(&bluer::adv::PlatformFeature::CanSetTxPower));
        if carrier == Carrier::Legacy && instances < 2 {
            tracing::warn!(
                adapter = %name,
                available = instances,
                "the legacy carrier needs two advertising instances; BlueZ reports fewer free"
            );
        }

        // Scanning side (btleplug).
        let manager = Manager::new()
            .await
            .map_err(|e| from_btleplug(&e, "connecting"))?;
        let central = find_central(&manager, &name).await?;
        let stream = central
            .events()
            .await
            .map_err(|e| from_btleplug(&e, "subscribing to BlueZ events"))?;
        central
            .start_scan(ScanFilter {
                services: vec![SERVICE_UUID],
            })
            .await
            .map_err(|e| from_btleplug(&e, "starting the scan"))?;

        let counters = Arc::new(RadioCounters::default());
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (stop_scan, stop_rx) = oneshot::channel();
        let scanner = Scanner {
            central,
            adapter: name.clone(),
            decoder: FrameDecoder::new(counters.clone()),
            cycle: ScanCycle::new(config.scan),
            clock,
            tx: events_tx.clone(),
        };
        tokio::spawn(scanner.run(stream, stop_rx));

        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let advertiser = Advertiser {
            _session: session,
            adapter,
            carrier,
            auto: config.carrier.is_none(),
            interval: Duration::from_millis(u64::from(config.advertising_interval_ms)),
            tx_power: can_set_tx_power.then_some(i16::from(config.tx_power_dbm)),
            handles: Vec::new(),
            counters: counters.clone(),
            tx: events_tx,
        };
        tokio::spawn(advertiser.run(commands_rx));

        tracing::info!(adapter = %name, ?carrier, scan = %config.scan, "BLE radio started");
        Ok(BleRadio {
            events,
            commands,
            counters,
            adapter: name,
            carrier,
            _stop_scan: stop_scan,
        })
    }

    /// The BlueZ name of the adapter in use (e.g. `"hci0"`).
    pub fn adapter_name(&self) -> &str {
        &self.adapter
    }

    /// The carrier chosen at start. With automatic choice the radio may still
    /// fall back to [`Carrier::Legacy`] if BlueZ refuses the extended
    /// advertisement.
    pub fn carrier(&self) -> Carrier {
        self.carrier
    }
}

impl Radio for BleRadio {
    fn advertise(&mut self, frame: Frame) -> Result<(), RadioError> {
        match self.commands.try_send(Command::Advertise(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(RadioError::Other(
                "the BLE advertising task is behind (BlueZ is slow to register \
                 advertisements); frame not queued"
                    .into(),
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RadioError::Stopped),
        }
    }

    fn events(&mut self) -> &mut mpsc::Receiver<RadioEvent> {
        &mut self.events
    }

    fn stats(&self) -> RadioStats {
        self.counters.snapshot()
    }
}

/// Turns the service data and RSSI of one advertising report (a BlueZ
/// device's properties) into sightings.
///
/// Only the entry under [`SERVICE_UUID`] is decoded; a report without one is
/// counted as foreign. Malformed, oversized and wrong-version data is dropped
/// and counted by `decoder`, which also reassembles legacy halves arriving in
/// separate reports. An RSSI of 127 (HCI's "unknown") or outside HCI's range
/// becomes `None`. Never panics.
pub(crate) fn sightings_from_properties(
    service_data: &HashMap<Uuid, Vec<u8>>,
    rssi: Option<i16>,
    at: UnixTime,
    decoder: &mut FrameDecoder,
) -> Vec<RadioSighting> {
    match service_data.get(&SERVICE_UUID) {
        Some(data) => decoder
            .service_data(data, rssi.and_then(normalize_rssi), at)
            .into_iter()
            .collect(),
        None => {
            decoder.count_foreign();
            Vec::new()
        }
    }
}

fn normalize_rssi(rssi: i16) -> Option<i16> {
    (rssi != HCI_RSSI_UNKNOWN && HCI_RSSI_RANGE.contains(&rssi)).then_some(rssi)
}

/// Picks the adapter: the one named, else `hci0`, else the first by name.
fn choose_adapter(found: &[String], wanted: Option<&str>) -> Result<String, RadioError> {
    let mut sorted = found.to_vec();
    sorted.sort();
    let list = if sorted.is_empty() {
        "none".to_string()
    } else {
        sorted.join(", ")
    };
    match wanted {
        Some(w) if sorted.iter().any(|n| n == w) => Ok(w.to_string()),
        Some(w) => Err(RadioError::NoAdapter(format!(
            "BlueZ has no Bluetooth adapter named {w:?}; adapters found: {list}"
        ))),
        None if sorted.iter().any(|n| n == "hci0") => Ok("hci0".to_string()),
        None => sorted.into_iter().next().ok_or_else(|| {
            RadioError::NoAdapter(
                "BlueZ reports no Bluetooth adapter (adapters found: none)".to_string(),
            )
        }),
    }
}

/// Whether the adapter can send the extended carrier, from BlueZ's
/// `SupportedCapabilities.MaxAdvLen` and `SupportedSecondaryChannels` (listed
/// only by controllers with extended advertising); `None` when BlueZ does not
/// say.
fn extended_support(max_adv_len: Option<u8>, secondary_channels: Option<usize>) -> Option<bool> {
    if let Some(len) = max_adv_len {
        return Some(usize::from(len) >= EXTENDED_ADVERTISING_LEN);
    }
    secondary_channels.map(|n| n > 0)
}

fn choose_carrier(
    requested: Option<Carrier>,
    extended: Option<bool>,
    adapter: &str,
) -> Result<Carrier, RadioError> {
    match (requested, extended) {
        (Some(Carrier::Extended), Some(false)) => Err(RadioError::Config(format!(
            "Bluetooth adapter {adapter} does not support extended advertising (BlueZ reports \
             at most 31 bytes of advertising data); use the legacy carrier"
        ))),
        (Some(Carrier::Extended), None) => {
            tracing::warn!(
                adapter,
                "BlueZ does not say whether the adapter supports extended advertising; \
                 trying the extended carrier as configured"
            );
            Ok(Carrier::Extended)
        }
        (Some(c), _) => Ok(c),
        (None, Some(true)) => Ok(Carrier::Extended),
        (None, _) => Ok(Carrier::Legacy),
    }
}

/// The advertisements that carry `frame`: one (extended) or two (legacy).
/// `tx_power` is the power requested from the controller; BlueZ adds no TX
/// Power Level structure to the data (no `system_includes`), so nothing but
/// the frame is on the air.
fn advertisements(
    frame: &Frame,
    carrier: Carrier,
    interval: Duration,
    tx_power: Option<i16>,
) -> Vec<bluer::adv::Advertisement> {
    let service_data: Vec<Vec<u8>> = match carrier {
        Carrier::Extended => vec![frame.encode_extended().to_vec()],
        Carrier::Legacy => {
            let (a, b) = frame.encode_legacy();
            vec![a.to_vec(), b.to_vec()]
        }
    };
    service_data
        .into_iter()
        .map(|data| bluer::adv::Advertisement {
            advertisement_type: bluer::adv::Type::Broadcast,
            service_uuids: BTreeSet::from([SERVICE_UUID]),
            service_data: BTreeMap::from([(SERVICE_UUID, data)]),
            discoverable: Some(false),
            min_interval: Some(interval),
            max_interval: Some(interval),
            tx_power,
            ..Default::default()
        })
        .collect()
}

async fn find_central(manager: &Manager, name: &str) -> Result<Central, RadioError> {
    let centrals = manager
        .adapters()
        .await
        .map_err(|e| from_btleplug(&e, "listing Bluetooth adapters"))?;
    let mut found = Vec::new();
    for central in centrals {
        // On BlueZ the info reads "hci0 (usb:v1D6Bp0246d0552)".
        let info = central
            .adapter_info()
            .await
            .map_err(|e| from_btleplug(&e, "reading adapter information"))?;
        let first = info
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if first == name {
            return Ok(central);
        }
        found.push(first);
    }
    Err(RadioError::NoAdapter(format!(
        "the scanner (btleplug) sees no Bluetooth adapter named {name:?}; adapters found: {}",
        if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        }
    )))
}

/// Reports an asynchronous failure without blocking.
fn report(tx: &mpsc::Sender<RadioEvent>, e: RadioError) {
    tracing::error!(error = %e, "BLE radio failure");
    if tx.try_send(RadioEvent::Failed(e)).is_err() {
        tracing::warn!("BLE radio: event queue full or closed; failure not delivered");
    }
}

#[cfg(test)]
mod tests;
