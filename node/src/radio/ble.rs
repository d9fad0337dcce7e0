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
//! [`sightings_from_properties`], which keeps only service data under our
//! UUID, counts everything else as foreign, and feeds our bytes to the shared
//! [`FrameDecoder`] (which reassembles legacy halves by tag and counts
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
//! # Duty cycle and battery
//!
//! Neither btleplug nor bluer lets an application set the scan parameters.
//! BlueZ's discovery is an *active* scan that the kernel runs with its
//! discovery interval and window (by default window = interval, a receive
//! duty cycle close to 100 %), restarted periodically; that is the best
//! reception and the worst battery life. A system administrator can lower it
//! in BlueZ's `main.conf`, section `[LE]` (`ScanIntervalDiscovery`,
//! `ScanWindowDiscovery`, in units of 0.625 ms): halving the window roughly
//! halves the receiver's energy and its chance to catch a given
//! advertisement. btleplug asks for the "auto" transport, so on a dual-mode
//! adapter BlueZ interleaves BR/EDR inquiry with LE scanning, which costs
//! power and LE reception time; an LE-only adapter (`btmgmt bredr off`)
//! spends the whole duty cycle on LE. Active scanning also makes the
//! receiver transmit scan requests. BlueZ's advertisement-monitor API
//! (passive scanning, possibly offloaded to the controller) would be the
//! battery-friendly way and is a later concern.
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
    Carrier, EVENT_QUEUE, FrameDecoder, Radio, RadioCounters, RadioError, RadioEvent,
    RadioSighting, RadioStats,
};
use crate::clock::SharedClock;

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
}

impl Default for BleConfig {
    fn default() -> BleConfig {
        BleConfig {
            adapter: None,
            carrier: None,
            advertising_interval_ms: DEFAULT_ADVERTISING_INTERVAL_MS,
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
            can_set_tx_power,
            handles: Vec::new(),
            counters: counters.clone(),
            tx: events_tx,
        };
        tokio::spawn(advertiser.run(commands_rx));

        tracing::info!(adapter = %name, ?carrier, "BLE radio started");
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
pub fn sightings_from_properties(
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

/// Maps a bluer (BlueZ) error; `what` names the operation.
fn from_bluer(e: &bluer::Error, what: &str) -> RadioError {
    use bluer::{ErrorKind as K, InternalErrorKind as I};
    let text = e.to_string();
    match &e.kind {
        K::NotAuthorized
        | K::NotPermitted
        | K::AuthenticationRejected
        | K::AuthenticationFailed => {
            RadioError::PermissionDenied(format!("BlueZ refused access while {what}: {text}"))
        }
        K::Internal(I::DBusConnectionLost | I::Io(_) | I::JoinError) => {
            RadioError::NoBluetoothService(format!(
                "cannot reach BlueZ over the D-Bus system bus while {what}: {text} — is the \
                 system D-Bus and bluetoothd running?"
            ))
        }
        K::NotFound | K::DoesNotExist | K::InvalidName(_) => {
            RadioError::NoAdapter(format!("BlueZ reported {text} while {what}"))
        }
        K::NotReady => RadioError::NoAdapter(format!(
            "the Bluetooth adapter is not ready (powered off?) while {what}: {text}"
        )),
        _ => classify_dbus_text(&text, what),
    }
}

/// Maps a btleplug error, whose D-Bus details survive only in its text.
fn from_btleplug(e: &btleplug::Error, what: &str) -> RadioError {
    match e {
        btleplug::Error::PermissionDenied => RadioError::PermissionDenied(format!(
            "BlueZ refused the scanner (btleplug) access while {what}"
        )),
        btleplug::Error::NoAdapterAvailable => RadioError::NoAdapter(format!(
            "the scanner (btleplug) found no Bluetooth adapter while {what}"
        )),
        // The Debug form keeps the D-Bus error name (e.g.
        // org.freedesktop.DBus.Error.ServiceUnknown) that Display drops.
        other => classify_dbus_text(&format!("{other} [{other:?}]"), what),
    }
}

/// Classifies a D-Bus error by its name and message.
fn classify_dbus_text(text: &str, what: &str) -> RadioError {
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "AccessDenied",
        "Permission denied",
        "NotPermitted",
        "NotAuthorized",
        "AuthFailed",
    ]) {
        RadioError::PermissionDenied(format!(
            "the system D-Bus policy does not let this user use BlueZ (while {what}): {text} — run as \
             a user allowed by /etc/dbus-1/system.d/bluetooth.conf (e.g. in the `bluetooth` \
             group)"
        ))
    } else if has(&[
        "ServiceUnknown",
        "NameHasNoOwner",
        "org.bluez was not provided",
    ]) {
        RadioError::NoBluetoothService(format!(
            "BlueZ (org.bluez) is not on the D-Bus system bus (while {what}): {text} — is bluetoothd \
             running?"
        ))
    } else if has(&[
        "FileNotFound",
        "NoServer",
        "Disconnected",
        "system_bus_socket",
        "NoReply",
        "Timeout",
        "TimedOut",
        "connection lost",
    ]) {
        RadioError::NoBluetoothService(format!(
            "cannot reach BlueZ over the D-Bus system bus while {what}: {text} — is the system D-Bus \
             (dbus-daemon) running, and bluetoothd?"
        ))
    } else if has(&[
        "No Bluetooth adapters",
        "NoAdapter",
        "DoesNotExist",
        "UnknownObject",
    ]) {
        RadioError::NoAdapter(format!("BlueZ reported {text} while {what}"))
    } else {
        RadioError::Other(format!("BlueZ error while {what}: {text}"))
    }
}

/// Reports an asynchronous failure without blocking.
fn report(tx: &mpsc::Sender<RadioEvent>, e: RadioError) {
    tracing::error!(error = %e, "BLE radio failure");
    if tx.try_send(RadioEvent::Failed(e)).is_err() {
        tracing::warn!("BLE radio: event queue full or closed; failure not delivered");
    }
}

type EventStream = Pin<Box<dyn Stream<Item = CentralEvent> + Send>>;

/// The scan task: BlueZ events in, sightings out.
struct Scanner {
    central: Central,
    adapter: String,
    decoder: FrameDecoder,
    clock: SharedClock,
    tx: mpsc::Sender<RadioEvent>,
}

impl Scanner {
    async fn run(mut self, mut stream: EventStream, mut stop: oneshot::Receiver<()>) {
        loop {
            let event = tokio::select! {
                _ = &mut stop => break,
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

    async fn handle(&mut self, event: CentralEvent) {
        match event {
            CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                // The event carries no RSSI: read it from the device.
                let rssi = self.properties(&id).await.and_then(|p| p.rssi);
                self.sightings(&service_data, rssi);
            }
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => {
                if let Some(p) = self.properties(&id).await {
                    self.sightings(&p.service_data, p.rssi);
                }
            }
            CentralEvent::StateUpdate(CentralState::PoweredOff) => report(
                &self.tx,
                RadioError::NoAdapter(format!(
                    "Bluetooth adapter {} was powered off",
                    self.adapter
                )),
            ),
            CentralEvent::StateUpdate(CentralState::PoweredOn) => {
                tracing::info!(adapter = %self.adapter, "adapter powered on; restarting the scan");
                let filter = ScanFilter {
                    services: vec![SERVICE_UUID],
                };
                if let Err(e) = self.central.start_scan(filter).await {
                    report(&self.tx, from_btleplug(&e, "restarting the scan"));
                }
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

/// The advertising task: registers the current frame with BlueZ.
struct Advertiser {
    _session: bluer::Session,
    adapter: bluer::Adapter,
    carrier: Carrier,
    /// The carrier was chosen automatically (may fall back to legacy).
    auto: bool,
    interval: Duration,
    can_set_tx_power: bool,
    handles: Vec<bluer::adv::AdvertisementHandle>,
    counters: Arc<RadioCounters>,
    tx: mpsc::Sender<RadioEvent>,
}

impl Advertiser {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(mut command) = commands.recv().await {
            // Only the newest frame matters.
            while let Ok(next) = commands.try_recv() {
                command = next;
            }
            let Command::Advertise(frame) = command;
            if let Err(e) = self.rotate(&frame).await {
                report(&self.tx, e);
            }
        }
        // The radio was dropped: dropping the handles unregisters them.
        self.handles.clear();
    }

    async fn rotate(&mut self, frame: &Frame) -> Result<(), RadioError> {
        self.release().await;
        let tx_power = self.can_set_tx_power.then_some(i16::from(frame.tx_power));
        let ads = advertisements(frame, self.carrier, self.interval, tx_power);
        let result = match self.register_all(ads).await {
            Err(e) if self.auto && self.carrier == Carrier::Extended && payload_refused(&e) => {
                tracing::warn!(
                    error = %e,
                    "BlueZ refused the extended advertisement; falling back to the legacy carrier"
                );
                self.carrier = Carrier::Legacy;
                self.release().await;
                let ads = advertisements(frame, Carrier::Legacy, self.interval, tx_power);
                self.register_all(ads).await
            }
            other => other,
        };
        if result.is_ok() {
            tracing::debug!(
                adapter = %self.adapter.name(),
                carrier = ?self.carrier,
                advertisements = self.handles.len(),
                "BLE radio: new rotating ID registered with BlueZ"
            );
        }
        result.map_err(|e| match from_bluer(&e, "registering an advertisement") {
            RadioError::Other(m) => RadioError::Other(format!(
                "{m} (adapter {}, {:?} carrier)",
                self.adapter.name(),
                self.carrier
            )),
            other => other,
        })
    }

    /// Drops the current advertisements and waits (bounded) until BlueZ has
    /// released their instances.
    async fn release(&mut self) {
        let dropped = self.handles.len();
        if dropped == 0 {
            return;
        }
        let before = self.adapter.active_advertising_instances().await.ok();
        self.handles.clear();
        let Some(before) = before else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        };
        let target = usize::from(before).saturating_sub(dropped);
        let wait = async {
            loop {
                match self.adapter.active_advertising_instances().await {
                    Ok(n) if usize::from(n) <= target => break,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => break,
                }
            }
        };
        if tokio::time::timeout(UNREGISTER_WAIT, wait).await.is_err() {
            tracing::debug!("BLE radio: BlueZ is slow to release advertising instances");
        }
    }

    async fn register_all(
        &mut self,
        ads: Vec<bluer::adv::Advertisement>,
    ) -> Result<(), bluer::Error> {
        for ad in ads {
            let handle = self.register(ad).await?;
            self.handles.push(handle);
            self.counters.count_advertised();
        }
        Ok(())
    }

    /// Registers one advertisement, retrying transient refusals (such as
    /// "Maximum advertisements reached" while BlueZ releases old ones).
    async fn register(
        &self,
        ad: bluer::adv::Advertisement,
    ) -> Result<bluer::adv::AdvertisementHandle, bluer::Error> {
        use bluer::ErrorKind as K;
        let mut attempt = 1;
        loop {
            match self.adapter.advertise(ad.clone()).await {
                Ok(handle) => return Ok(handle),
                Err(e) => {
                    let permanent = matches!(
                        e.kind,
                        K::InvalidArguments
                            | K::InvalidLength
                            | K::NotSupported
                            | K::NotAuthorized
                            | K::NotPermitted
                    );
                    if permanent || attempt >= REGISTER_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, attempt, "BLE radio: advertisement refused; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// Whether BlueZ refused an advertisement because of its content (too long,
/// unsupported), rather than for lack of instances, access or a daemon.
fn payload_refused(e: &bluer::Error) -> bool {
    use bluer::ErrorKind as K;
    match e.kind {
        K::InvalidArguments | K::InvalidLength | K::NotSupported => true,
        K::Failed => !e.message.contains("Maximum"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use meshtrace_protocol::{RotatingId, half_tag};

    fn frame(b: u8) -> Frame {
        Frame {
            tx_power: -8,
            id: RotatingId([b; 32]),
        }
    }

    fn decoder() -> (Arc<RadioCounters>, FrameDecoder) {
        let c = Arc::new(RadioCounters::default());
        (c.clone(), FrameDecoder::new(c))
    }

    fn ours(data: &[u8]) -> HashMap<Uuid, Vec<u8>> {
        HashMap::from([(SERVICE_UUID, data.to_vec())])
    }

    #[test]
    fn service_uuid_is_the_16_bit_uuid_on_the_base() {
        assert_eq!(
            SERVICE_UUID.to_string(),
            "0000fcb7-0000-1000-8000-00805f9b34fb"
        );
    }

    #[test]
    fn extended_carrier_yields_a_sighting() {
        let (c, mut d) = decoder();
        let f = frame(1);
        let s = sightings_from_properties(
            &ours(&f.encode_extended()),
            Some(-67),
            UnixTime(1000),
            &mut d,
        );
        assert_eq!(
            s,
            vec![RadioSighting {
                frame: f,
                rssi: Some(-67),
                at: UnixTime(1000)
            }]
        );
        let st = c.snapshot();
        assert_eq!((st.received, st.sightings, st.foreign), (1, 1, 0));
    }

    #[test]
    fn legacy_halves_in_two_updates_are_reassembled() {
        let (c, mut d) = decoder();
        let f = frame(2);
        let (a, b) = f.encode_legacy();
        // Two instances, two random addresses: two separate reports.
        assert!(sightings_from_properties(&ours(&a), Some(-70), UnixTime(1000), &mut d).is_empty());
        let s = sightings_from_properties(&ours(&b), Some(-72), UnixTime(1005), &mut d);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].frame, f);
        assert_eq!(s[0].rssi, Some(-72));
        assert_eq!(s[0].at, UnixTime(1005));
        // Either half heard again while the other is fresh yields it again.
        let again = sightings_from_properties(&ours(&a), None, UnixTime(1010), &mut d);
        assert_eq!(again.len(), 1);
        assert_eq!(c.snapshot().sightings, 2);
    }

    #[test]
    fn stale_half_is_rejected() {
        let (c, mut d) = decoder();
        let (a, b) = frame(3).encode_legacy();
        assert!(sightings_from_properties(&ours(&a), Some(-70), UnixTime(1000), &mut d).is_empty());
        assert!(sightings_from_properties(&ours(&b), Some(-70), UnixTime(1061), &mut d).is_empty());
        let st = c.snapshot();
        assert_eq!(st.sightings, 0);
        assert_eq!(st.stale_halves, 1);
    }

    #[test]
    fn halves_of_different_frames_do_not_combine() {
        let (c, mut d) = decoder();
        let (a, _) = frame(4).encode_legacy();
        let (_, mut b) = frame(5).encode_legacy();
        // Forge the second half's tag to match the first: a mismatch.
        b[1..3].copy_from_slice(&half_tag(&RotatingId([4; 32])));
        assert!(sightings_from_properties(&ours(&a), None, UnixTime(1000), &mut d).is_empty());
        assert!(sightings_from_properties(&ours(&b), None, UnixTime(1001), &mut d).is_empty());
        assert_eq!(c.snapshot().mismatched_halves, 1);
    }

    #[test]
    fn foreign_uuids_are_ignored_and_counted() {
        let (c, mut d) = decoder();
        let f = frame(6);
        let heart_rate = Uuid::from_u128(BLUETOOTH_BASE_UUID | (0x180D_u128 << 96));
        let exposure_notification = Uuid::from_u128(BLUETOOTH_BASE_UUID | (0xFD6F_u128 << 96));
        // Our bytes under someone else's UUID are not ours.
        let other = HashMap::from([
            (heart_rate, f.encode_extended().to_vec()),
            (exposure_notification, vec![1, 2, 3]),
        ]);
        assert!(sightings_from_properties(&other, Some(-50), UnixTime(1), &mut d).is_empty());
        // A device without service data at all (DeviceDiscovered of a phone).
        assert!(sightings_from_properties(&HashMap::new(), None, UnixTime(1), &mut d).is_empty());
        // Ours among others is still found.
        let mut mixed = other.clone();
        mixed.insert(SERVICE_UUID, f.encode_extended().to_vec());
        assert_eq!(
            sightings_from_properties(&mixed, Some(-50), UnixTime(1), &mut d).len(),
            1
        );
        let st = c.snapshot();
        assert_eq!(st.foreign, 2);
        assert_eq!(st.received, 3);
        assert_eq!(st.sightings, 1);
    }

    #[test]
    fn bad_data_is_dropped_and_counted_without_panic() {
        let (c, mut d) = decoder();
        let f = frame(7);
        let t = UnixTime(1);
        let mut wrong_version = f.encode_extended();
        wrong_version[0] = 0x20;
        let mut unknown_kind = f.encode_extended();
        unknown_kind[0] = 0x13;
        let (a, _) = f.encode_legacy();
        let malformed: Vec<Vec<u8>> = vec![
            Vec::new(),
            wrong_version.to_vec(),
            unknown_kind.to_vec(),
            a[..10].to_vec(),
            f.encode_extended()[..33].to_vec(),
            [&f.encode_extended()[..], &[0]].concat(),
            vec![0x10],
        ];
        for m in &malformed {
            assert!(sightings_from_properties(&ours(m), Some(-60), t, &mut d).is_empty());
        }
        for len in [252, 400, 100_000] {
            let big = vec![0x10; len];
            assert!(sightings_from_properties(&ours(&big), Some(-60), t, &mut d).is_empty());
        }
        // Arbitrary bytes of every short length: never a panic.
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ len).collect();
            let _ = sightings_from_properties(&ours(&junk), Some(127), t, &mut d);
        }
        let st = c.snapshot();
        assert_eq!(st.oversized, 3);
        assert!(st.malformed >= malformed.len() as u64);
        assert_eq!(st.foreign, 0);
    }

    #[test]
    fn rssi_127_means_unknown() {
        let (_, mut d) = decoder();
        let f = frame(8);
        let ext = f.encode_extended();
        let s = sightings_from_properties(&ours(&ext), Some(127), UnixTime(1), &mut d);
        assert_eq!(s[0].rssi, None);
        assert_eq!(s[0].to_sighting().rssi, meshtrace_protocol::RSSI_UNKNOWN);
        let s = sightings_from_properties(&ours(&ext), None, UnixTime(1), &mut d);
        assert_eq!(s[0].rssi, None);
        let s = sightings_from_properties(&ours(&ext), Some(500), UnixTime(1), &mut d);
        assert_eq!(s[0].rssi, None);
        let s = sightings_from_properties(&ours(&ext), Some(20), UnixTime(1), &mut d);
        assert_eq!(s[0].rssi, Some(20));
        let s = sightings_from_properties(&ours(&ext), Some(-127), UnixTime(1), &mut d);
        assert_eq!(s[0].rssi, Some(-127));
    }

    #[test]
    fn advertisements_match_the_carrier() {
        let f = frame(9);
        let i = Duration::from_millis(250);
        let ext = advertisements(&f, Carrier::Extended, i, None);
        assert_eq!(ext.len(), 1);
        assert_eq!(
            ext[0].service_data.get(&SERVICE_UUID).map(Vec::as_slice),
            Some(&f.encode_extended()[..])
        );
        let legacy = advertisements(&f, Carrier::Legacy, i, Some(-8));
        let (a, b) = f.encode_legacy();
        assert_eq!(legacy.len(), 2);
        assert_eq!(legacy[0].service_data[&SERVICE_UUID], a.to_vec());
        assert_eq!(legacy[1].service_data[&SERVICE_UUID], b.to_vec());
        for ad in ext.iter().chain(&legacy) {
            assert_eq!(ad.advertisement_type, bluer::adv::Type::Broadcast);
            assert_eq!(ad.service_uuids, BTreeSet::from([SERVICE_UUID]));
            assert_eq!(ad.service_data.len(), 1);
            assert_eq!(ad.discoverable, Some(false));
            assert_eq!((ad.min_interval, ad.max_interval), (Some(i), Some(i)));
            assert!(ad.local_name.is_none() && ad.manufacturer_data.is_empty());
        }
        assert_eq!(legacy[0].tx_power, Some(-8));
        // What the receiver decodes from it.
        let (_, mut d) = decoder();
        let mut got = Vec::new();
        for ad in &legacy {
            let sd: HashMap<Uuid, Vec<u8>> = ad.service_data.clone().into_iter().collect();
            got.extend(sightings_from_properties(&sd, None, UnixTime(1), &mut d));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].frame, f);
    }

    #[test]
    fn adapter_choice() {
        let names = vec!["hci1".to_string(), "hci0".to_string()];
        assert_eq!(choose_adapter(&names, None), Ok("hci0".into()));
        assert_eq!(choose_adapter(&names, Some("hci1")), Ok("hci1".into()));
        assert_eq!(
            choose_adapter(&["hci3".into(), "hci2".into()], None),
            Ok("hci2".into())
        );
        match choose_adapter(&names, Some("hci7")) {
            Err(RadioError::NoAdapter(m)) => {
                assert!(m.contains("hci7") && m.contains("hci0, hci1"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match choose_adapter(&[], None) {
            Err(RadioError::NoAdapter(m)) => assert!(m.contains("none"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn carrier_choice() {
        assert_eq!(extended_support(Some(251), None), Some(true));
        assert_eq!(extended_support(Some(31), Some(2)), Some(false));
        assert_eq!(extended_support(None, Some(2)), Some(true));
        assert_eq!(extended_support(None, Some(0)), Some(false));
        assert_eq!(extended_support(None, None), None);
        assert_eq!(
            choose_carrier(None, Some(true), "hci0"),
            Ok(Carrier::Extended)
        );
        assert_eq!(
            choose_carrier(None, Some(false), "hci0"),
            Ok(Carrier::Legacy)
        );
        assert_eq!(choose_carrier(None, None, "hci0"), Ok(Carrier::Legacy));
        assert_eq!(
            choose_carrier(Some(Carrier::Legacy), Some(true), "hci0"),
            Ok(Carrier::Legacy)
        );
        assert_eq!(
            choose_carrier(Some(Carrier::Extended), None, "hci0"),
            Ok(Carrier::Extended)
        );
        assert!(matches!(
            choose_carrier(Some(Carrier::Extended), Some(false), "hci0"),
            Err(RadioError::Config(_))
        ));
    }

    #[test]
    fn config_is_validated() {
        assert!(BleConfig::default().validate().is_ok());
        let bad = |c: BleConfig| matches!(c.validate(), Err(RadioError::Config(_)));
        assert!(bad(BleConfig {
            advertising_interval_ms: 5,
            ..BleConfig::default()
        }));
        assert!(bad(BleConfig {
            advertising_interval_ms: u32::MAX,
            ..BleConfig::default()
        }));
        assert!(bad(BleConfig {
            adapter: Some(String::new()),
            ..BleConfig::default()
        }));
    }

    #[test]
    fn errors_are_classified() {
        use bluer::{ErrorKind as K, InternalErrorKind as I};
        let dbus = |name: &str, message: &str| bluer::Error {
            kind: K::Internal(I::DBus(name.into())),
            message: message.into(),
        };
        let no_bus = dbus(
            "org.freedesktop.DBus.Error.FileNotFound",
            "Failed to connect to socket /run/dbus/system_bus_socket: No such file or directory",
        );
        assert!(matches!(
            from_bluer(&no_bus, "x"),
            RadioError::NoBluetoothService(_)
        ));
        let no_bluez = dbus(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "The name org.bluez was not provided by any .service files",
        );
        match from_bluer(&no_bluez, "x") {
            RadioError::NoBluetoothService(m) => assert!(m.contains("bluetoothd"), "{m}"),
            other => panic!("{other:?}"),
        }
        let denied = dbus(
            "org.freedesktop.DBus.Error.AccessDenied",
            "Rejected send message",
        );
        assert!(matches!(
            from_bluer(&denied, "x"),
            RadioError::PermissionDenied(_)
        ));
        let not_authorized = bluer::Error {
            kind: K::NotAuthorized,
            message: String::new(),
        };
        assert!(matches!(
            from_bluer(&not_authorized, "x"),
            RadioError::PermissionDenied(_)
        ));
        let not_found = bluer::Error {
            kind: K::NotFound,
            message: String::new(),
        };
        assert!(matches!(
            from_bluer(&not_found, "x"),
            RadioError::NoAdapter(_)
        ));
        assert!(matches!(
            from_btleplug(&btleplug::Error::PermissionDenied, "x"),
            RadioError::PermissionDenied(_)
        ));
        assert!(matches!(
            from_btleplug(&btleplug::Error::NoAdapterAvailable, "x"),
            RadioError::NoAdapter(_)
        ));
        let wrapped = btleplug::Error::Other(Box::new(std::io::Error::other(
            "D-Bus error: The name org.bluez was not provided by any .service files \
             (org.freedesktop.DBus.Error.ServiceUnknown)",
        )));
        assert!(matches!(
            from_btleplug(&wrapped, "x"),
            RadioError::NoBluetoothService(_)
        ));
        let odd = btleplug::Error::RuntimeError("something else".into());
        assert!(matches!(from_btleplug(&odd, "x"), RadioError::Other(_)));
    }

    #[test]
    fn only_content_refusals_trigger_the_legacy_fallback() {
        use bluer::ErrorKind as K;
        let e = |kind: K, message: &str| bluer::Error {
            kind,
            message: message.into(),
        };
        assert!(payload_refused(&e(K::InvalidLength, "")));
        assert!(payload_refused(&e(K::InvalidArguments, "")));
        assert!(payload_refused(&e(
            K::Failed,
            "Failed to parse advertisement"
        )));
        assert!(!payload_refused(&e(
            K::Failed,
            "Maximum advertisements reached"
        )));
        assert!(!payload_refused(&e(K::NotAuthorized, "")));
    }

    #[test]
    fn start_without_bluetooth_fails_clearly() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                BleRadio::start(BleConfig::default(), Arc::new(SystemClock)),
            )
            .await
        });
        let result = result.expect("BleRadio::start hung");
        match result {
            Err(
                e @ (RadioError::NoBluetoothService(_)
                | RadioError::NoAdapter(_)
                | RadioError::PermissionDenied(_)),
            ) => {
                let (RadioError::NoBluetoothService(m)
                | RadioError::NoAdapter(m)
                | RadioError::PermissionDenied(m)) = &e
                else {
                    unreachable!()
                };
                assert!(!m.is_empty());
                let full = e.to_string();
                assert!(
                    ["Bluetooth", "BlueZ", "D-Bus"]
                        .iter()
                        .any(|w| m.contains(w)),
                    "{full}"
                );
                eprintln!("BleRadio::start without Bluetooth: {full}");
            }
            Err(other) => panic!("unexpected error kind: {other:?}"),
            // A developer machine with a working BlueZ and adapter: the
            // failure path cannot be exercised here.
            Ok(radio) => eprintln!(
                "BlueZ is available (adapter {}); the no-Bluetooth path was not exercised",
                radio.adapter_name()
            ),
        }
    }
}
