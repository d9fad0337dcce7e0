//! Tests of the BLE radio that need no Bluetooth stack.

use super::errors::payload_refused;
use super::*;
use crate::clock::SystemClock;
use meshtrace_protocol::{RotatingId, half_tag};

fn frame(b: u8) -> Frame {
    Frame {
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
    wrong_version[0] = 0x10; // a version 1 frame
    let mut unknown_kind = f.encode_extended();
    unknown_kind[0] = 0x23;
    let (a, _) = f.encode_legacy();
    let malformed: Vec<Vec<u8>> = vec![
        Vec::new(),
        wrong_version.to_vec(),
        unknown_kind.to_vec(),
        a[..10].to_vec(),
        f.encode_extended()[..32].to_vec(),
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
        // No TX Power Level (or anything else) added to the data by BlueZ.
        assert!(ad.system_includes.is_empty());
    }
    // The requested power goes to the controller, not into the frame.
    assert_eq!(legacy[0].tx_power, Some(-8));
    assert_eq!(ext[0].tx_power, None);
    assert_eq!(a.len(), 19);
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

fn timing(window: u64, interval: u64) -> ScanTiming {
    ScanTiming {
        window: Duration::from_secs(window),
        interval: Duration::from_secs(interval),
    }
}

fn win(start: u64, end: u64) -> meshtrace_protocol::ScanWindow {
    meshtrace_protocol::ScanWindow {
        start: UnixTime(start),
        end: UnixTime(end),
    }
}

#[test]
fn a_duty_cycled_scan_starts_reports_and_stops_with_each_window() {
    use scanner::ScanPlan;
    // 4 s every 60 s, windows at multiples of 60 s (B is one); the radio
    // started the discovery at B + 10 s, outside a window.
    const B: u64 = 16_667 * 60;
    let mut c = ScanCycle::new(timing(4, 60));
    let t = |s: u64| (B + s) * 1000;
    assert!(c.accepts_sightings());
    assert_eq!(
        c.plan(t(10)),
        ScanPlan {
            stop: true,
            ..ScanPlan::default()
        }
    );
    assert!(
        !c.accepts_sightings(),
        "reports between windows are dropped"
    );
    assert_eq!(c.until_change(t(10)), 50_000);
    // The window starts: discovery on, then the window.
    let p = c.plan(t(60));
    assert!(p.start && !p.stop);
    assert_eq!(p.windows, vec![win(B + 60, B + 63)]);
    assert!(!c.started(t(60), true));
    assert!(c.accepts_sightings());
    assert_eq!(c.until_change(t(61)), 3_000, "until the window ends");
    assert_eq!(c.plan(t(62)), ScanPlan::default());
    let p = c.plan(t(64));
    assert!(p.stop && !p.start && p.windows.is_empty());
    // A start that fails: no window, one failure to report, a retry at the
    // next window only.
    let p = c.plan(t(120));
    assert!(p.start);
    assert!(c.started(t(120), false), "the first failure is reported");
    assert!(!c.accepts_sightings());
    assert_eq!(c.plan(t(121)), ScanPlan::default());
    let p = c.plan(t(180));
    assert!(p.start);
    assert!(!c.started(t(180), false), "a repeated failure is not");
    let p = c.plan(t(240));
    assert!(p.start);
    c.started(t(240), true);
    assert_eq!(p.windows, vec![win(B + 240, B + 243)]);
}

#[test]
fn a_continuous_scan_reports_back_to_back_windows_and_none_while_powered_off() {
    let mut c = ScanCycle::new(timing(10, 10));
    let t = |s: u64| s * 1000;
    // Started mid-window: that window from now on.
    let p = c.plan(t(1_000_003));
    assert!(!p.start && !p.stop);
    assert_eq!(p.windows, vec![win(1_000_003, 1_000_009)]);
    assert_eq!(
        c.plan(t(1_000_010)).windows,
        vec![win(1_000_010, 1_000_019)]
    );
    assert_eq!(c.until_change(t(1_000_012)), 8_000);
    c.set_powered(false);
    assert!(!c.accepts_sightings());
    assert_eq!(c.plan(t(1_000_020)), scanner::ScanPlan::default());
    c.set_powered(true);
    // Back on: the discovery starts again and the window in progress counts
    // from now.
    let p = c.plan(t(1_000_025));
    assert!(p.start);
    c.started(t(1_000_025), true);
    assert_eq!(p.windows, vec![win(1_000_025, 1_000_029)]);
    assert_eq!(
        c.plan(t(1_000_030)).windows,
        vec![win(1_000_030, 1_000_039)]
    );
}

#[test]
fn scan_timing_is_part_of_the_config_check() {
    let bad = BleConfig {
        scan: timing(20, 10),
        ..BleConfig::default()
    };
    match bad.validate() {
        Err(RadioError::Config(m)) => assert!(m.contains("longer than the scan interval"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(BleConfig::default().scan, super::super::PC_SCAN);
}
