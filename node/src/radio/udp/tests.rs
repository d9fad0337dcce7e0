//! Tests of the udp-sim radio.

use super::*;
use crate::clock::{ScaledClock, SystemClock};
use meshtrace_protocol::advertising_data;
use std::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

fn frame(b: u8) -> Frame {
    Frame {
        id: RotatingId([b; 32]),
    }
}

/// A port nobody on this machine is using right now (the OS picks it).
fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn always_listening() -> DutyCycle {
    DutyCycle {
        scan_window_ms: 1_000,
        scan_interval_ms: 1_000,
        advertising_interval_ms: 20,
    }
}

fn config(port: u16, x: f64, seed: u64) -> UdpAirConfig {
    UdpAirConfig {
        port,
        trajectory: Trajectory::fixed(Position { x, y: 0.0 }),
        duty: always_listening(),
        seed,
        ..UdpAirConfig::default()
    }
}

fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The next sighting within [`WAIT`] (scan windows are skipped).
async fn next_sighting(r: &mut UdpRadio) -> super::super::RadioSighting {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match r.events().recv().await {
                Some(RadioEvent::Scan(_)) => continue,
                other => return other,
            }
        }
    })
    .await;
    match found {
        Ok(Some(RadioEvent::Sighting(s))) => s,
        other => panic!("expected a sighting within {WAIT:?}, got {other:?}"),
    }
}

/// Waits (bounded) until `cond` holds on the radio's counters.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let r = tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(r.is_ok(), "timed out after {WAIT:?} waiting for {what}");
}

#[test]
fn packet_round_trip_and_layout() {
    for carrier in [Carrier::Extended, Carrier::Legacy] {
        for payload in carrier.payloads(&frame(7)) {
            let p = AirPacket {
                sender_id: 0x0102_0304_0506_0708,
                position: Position { x: 1.5, y: -2.25 },
                tx_offset_db: -1.75,
                tx_power_dbm: -14,
                payload: payload.clone(),
            };
            let bytes = p.encode().unwrap();
            assert_eq!(bytes.len(), HEADER_LEN + payload.len());
            assert_eq!(&bytes[..6], b"MTAIR2");
            assert_eq!(&bytes[6..14], &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(&bytes[14..22], &1.5f64.to_be_bytes());
            assert_eq!(&bytes[22..30], &(-2.25f64).to_be_bytes());
            assert_eq!(&bytes[30..34], &(-1.75f32).to_be_bytes());
            assert_eq!(bytes[34], 0xf2, "TX power -14 dBm");
            assert_eq!(&bytes[35..37], &(payload.len() as u16).to_be_bytes());
            assert_eq!(&bytes[37..], &payload[..]);
            assert_eq!(AirPacket::decode(&bytes).unwrap(), p);
        }
    }
    // The largest payload fits exactly.
    let max = AirPacket {
        sender_id: 1,
        position: Position::default(),
        tx_offset_db: 0.0,
        tx_power_dbm: 20,
        payload: vec![0; MAX_PAYLOAD_LEN],
    };
    let bytes = max.encode().unwrap();
    assert_eq!(bytes.len(), MAX_PACKET_LEN);
    assert_eq!(AirPacket::decode(&bytes).unwrap(), max);
}

#[test]
fn malformed_packets_are_refused() {
    let good = AirPacket {
        sender_id: 9,
        position: Position { x: 1.0, y: 2.0 },
        tx_offset_db: 0.5,
        tx_power_dbm: -8,
        payload: advertising_data(&frame(3).encode_extended()),
    }
    .encode()
    .unwrap();
    assert_eq!(AirPacket::decode(&[]), Err(PacketError::Short(0)));
    assert_eq!(
        AirPacket::decode(&good[..HEADER_LEN - 1]),
        Err(PacketError::Short(HEADER_LEN - 1))
    );
    let mut magic = good.clone();
    magic[5] = b'1';
    assert_eq!(
        AirPacket::decode(&magic),
        Err(PacketError::BadMagic),
        "an MTAIR1 packet (a build whose frames carried the TX power)"
    );
    assert!(matches!(
        AirPacket::decode(&good[..good.len() - 1]),
        Err(PacketError::Truncated { .. })
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        AirPacket::decode(&trailing),
        Err(PacketError::TrailingBytes(1))
    );
    let mut declared = good.clone();
    declared[35..37].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(
        AirPacket::decode(&declared),
        Err(PacketError::Oversized(_))
    ));
    assert!(matches!(
        AirPacket::decode(&vec![0; MAX_PACKET_LEN + 1]),
        Err(PacketError::Oversized(_))
    ));
    let mut nan = good.clone();
    nan[14..22].copy_from_slice(&f64::NAN.to_be_bytes());
    assert_eq!(AirPacket::decode(&nan), Err(PacketError::NonFinite));
    let too_big = AirPacket {
        sender_id: 1,
        position: Position::default(),
        tx_offset_db: 0.0,
        tx_power_dbm: 0,
        payload: vec![0; MAX_PAYLOAD_LEN + 1],
    };
    assert!(matches!(too_big.encode(), Err(PacketError::Oversized(_))));
    // Every prefix of a good packet is refused without a panic.
    for n in 0..good.len() {
        assert!(AirPacket::decode(&good[..n]).is_err());
    }
}

#[test]
fn config_validation_names_the_problem() {
    assert!(UdpAirConfig::default().validate().is_ok());
    let bad = |c: UdpAirConfig, needle: &str| match c.validate() {
        Err(RadioError::Config(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a config error about {needle}, got {other:?}"),
    };
    bad(
        UdpAirConfig {
            group: Ipv4Addr::new(10, 0, 0, 1),
            ..UdpAirConfig::default()
        },
        "multicast",
    );
    bad(
        UdpAirConfig {
            port: 0,
            ..UdpAirConfig::default()
        },
        "port",
    );
    bad(
        UdpAirConfig {
            interface: Ipv4Addr::new(192, 168, 1, 2),
            ..UdpAirConfig::default()
        },
        "loopback",
    );
    bad(
        UdpAirConfig {
            tx_offset_db: Some(f64::NAN),
            ..UdpAirConfig::default()
        },
        "TX offset",
    );
    bad(
        UdpAirConfig {
            rx_offset_db: Some(40.0),
            ..UdpAirConfig::default()
        },
        "RX offset",
    );
    bad(
        UdpAirConfig {
            duty: DutyCycle {
                advertising_interval_ms: 5,
                ..DutyCycle::default()
            },
            ..UdpAirConfig::default()
        },
        "advertising interval",
    );
    bad(
        UdpAirConfig {
            tx_power_dbm: 21,
            ..UdpAirConfig::default()
        },
        "TX power",
    );
}

#[test]
fn real_wait_follows_the_clock_rate_within_bounds() {
    // Before the rate is known: poll at the minimum.
    assert_eq!(real_wait(250, None), MIN_REAL_ADVERTISING_INTERVAL);
    // Real time: 50 ms of clock is 50 ms.
    assert_eq!(real_wait(50, Some(1.0)), Duration::from_millis(50));
    // 60×: 600 ms of clock is 10 ms.
    assert_eq!(real_wait(600, Some(60.0)), Duration::from_millis(10));
    // 10 000×: never below the floor.
    assert_eq!(
        real_wait(250, Some(10_000.0)),
        MIN_REAL_ADVERTISING_INTERVAL
    );
    // A stopped clock is still looked at.
    assert_eq!(real_wait(250, Some(0.0)), MIN_REAL_ADVERTISING_INTERVAL);
    assert_eq!(real_wait(250, Some(0.001)), MAX_REAL_POLL);
}

#[tokio::test]
async fn malformed_packets_are_counted_not_fatal() {
    let port = free_port();
    let mut radio = UdpRadio::start(config(port, 0.0, 1), system())
        .await
        .unwrap();
    let raw = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    raw.set_multicast_if_v4(&LOOPBACK).unwrap();
    raw.set_multicast_ttl_v4(0).unwrap();
    raw.bind(&SockAddr::from(SocketAddrV4::new(LOOPBACK, 0)))
        .unwrap();
    let raw = std::net::UdpSocket::from(raw);
    let to = SocketAddrV4::new(DEFAULT_GROUP, port);
    let good = |id: u8| {
        AirPacket {
            sender_id: 77,
            position: Position { x: 1.0, y: 0.0 },
            tx_offset_db: 0.0,
            tx_power_dbm: SIM_TX_POWER_DBM,
            payload: advertising_data(&frame(id).encode_extended()),
        }
        .encode()
        .unwrap()
    };
    let g = good(5);
    let mut bad_magic = g.clone();
    bad_magic[0] = b'X';
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        b"MTAIR2".to_vec(),
        bad_magic,
        g[..g.len() - 3].to_vec(),
        vec![0xff; 4000],
    ];
    for b in &bad {
        raw.send_to(b, to).unwrap();
    }
    // A good packet from the same socket arrives after the bad ones.
    raw.send_to(&good(5), to).unwrap();
    let s = next_sighting(&mut radio).await;
    assert_eq!(s.frame, frame(5));
    let stats = radio.stats();
    let air = radio.air_stats();
    assert_eq!(air.bad_packets, 5, "{air:?}");
    assert_eq!(stats.malformed, 4, "{stats:?}");
    assert_eq!(stats.oversized, 1, "{stats:?}");
    assert_eq!(stats.sightings, 1, "{stats:?}");
    // Still alive: a second good packet is heard too.
    raw.send_to(&good(6), to).unwrap();
    assert_eq!(next_sighting(&mut radio).await.frame, frame(6));
}

/// The sender's TX power travels in the packet header (the frame carries
/// none) and drives the received power: without shadowing or offsets, a
/// sender 20 dB louder is received exactly 20 dB stronger.
#[tokio::test]
async fn the_packets_tx_power_drives_the_rssi() {
    let port = free_port();
    let mut radio = UdpRadio::start(
        UdpAirConfig {
            model: PathLossModel {
                shadowing_sigma_db: 0.0,
                ..PathLossModel::default()
            },
            tx_offset_db: Some(0.0),
            rx_offset_db: Some(0.0),
            ..config(port, 0.0, 3)
        },
        system(),
    )
    .await
    .unwrap();
    let raw = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    raw.set_multicast_if_v4(&LOOPBACK).unwrap();
    raw.set_multicast_ttl_v4(0).unwrap();
    raw.bind(&SockAddr::from(SocketAddrV4::new(LOOPBACK, 0)))
        .unwrap();
    let raw = std::net::UdpSocket::from(raw);
    let to = SocketAddrV4::new(DEFAULT_GROUP, port);
    for (id, tx_power_dbm, rssi) in [(1u8, SIM_TX_POWER_DBM, -59), (2, 6, -39)] {
        let packet = AirPacket {
            sender_id: 50 + u64::from(id),
            position: Position { x: 1.0, y: 0.0 },
            tx_offset_db: 0.0,
            tx_power_dbm,
            payload: advertising_data(&frame(id).encode_extended()),
        }
        .encode()
        .unwrap();
        raw.send_to(&packet, to).unwrap();
        let s = next_sighting(&mut radio).await;
        assert_eq!(s.frame, frame(id));
        assert_eq!(s.rssi, Some(rssi), "sent at {tx_power_dbm} dBm, 1 m away");
    }
}

#[tokio::test]
async fn one_metre_apart_hear_each_other() {
    for carrier in [Carrier::Extended, Carrier::Legacy] {
        let port = free_port();
        let mut a = UdpRadio::start(
            UdpAirConfig {
                carrier,
                ..config(port, 0.0, 11)
            },
            system(),
        )
        .await
        .unwrap();
        let mut b = UdpRadio::start(
            UdpAirConfig {
                carrier,
                ..config(port, 1.0, 12)
            },
            system(),
        )
        .await
        .unwrap();
        a.advertise(a.frame(RotatingId([0xaa; 32]))).unwrap();
        b.advertise(b.frame(RotatingId([0xbb; 32]))).unwrap();
        let sa = next_sighting(&mut a).await;
        let sb = next_sighting(&mut b).await;
        assert_eq!(sa.frame.id, RotatingId([0xbb; 32]), "{carrier:?}");
        assert_eq!(sb.frame.id, RotatingId([0xaa; 32]), "{carrier:?}");
        // About 45 dB of attenuation at 1 m, give or take the noise.
        for (s, sender) in [(sa, &b), (sb, &a)] {
            let att = i32::from(sender.tx_power_dbm()) - i32::from(s.rssi.unwrap());
            assert!((15..=75).contains(&att), "attenuation {att} dB at 1 m");
        }
        // Own packets were looped back and dropped, never heard.
        assert!(a.air_stats().own > 0);
        assert!(a.stats().advertised > 0 && b.stats().advertised > 0);
    }
}

#[tokio::test]
async fn thirty_metres_apart_hear_nothing() {
    const ROUNDS: u64 = 30;
    let port = free_port();
    let mut a = UdpRadio::start(config(port, 0.0, 21), system())
        .await
        .unwrap();
    let mut b = UdpRadio::start(config(port, 30.0, 22), system())
        .await
        .unwrap();
    a.advertise(a.frame(RotatingId([0xaa; 32]))).unwrap();
    b.advertise(b.frame(RotatingId([0xbb; 32]))).unwrap();
    // Each side has sent more than ROUNDS advertising events and each
    // receiver has judged at least ROUNDS of the other's packets.
    wait_until(
        "30 advertising events each, judged by the other side",
        || {
            a.stats().advertised > ROUNDS
                && b.stats().advertised > ROUNDS
                && a.air_stats().not_received >= ROUNDS
                && b.air_stats().not_received >= ROUNDS
        },
    )
    .await;
    for r in [&mut a, &mut b] {
        assert_eq!(r.stats().sightings, 0);
        assert_eq!(r.air_stats().heard, 0);
        while let Ok(ev) = r.events().try_recv() {
            assert!(
                matches!(ev, RadioEvent::Scan(_)),
                "nothing but scan windows is delivered: {ev:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_fast_clock_does_not_advertise_faster_than_the_floor() {
    let clock: SharedClock = Arc::new(ScaledClock::new(UnixTime(1_000_000), 5_000.0).unwrap());
    let port = free_port();
    let mut a = UdpRadio::start(config(port, 0.0, 31), clock).await.unwrap();
    let start = Instant::now();
    a.advertise(frame(1)).unwrap();
    wait_until("10 advertising events", || a.stats().advertised >= 10).await;
    // 20 ms of clock is 4 µs real at 5000×: the floor spaces events.
    assert!(
        start.elapsed() >= MIN_REAL_ADVERTISING_INTERVAL * 9,
        "10 events in {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn advertise_fails_once_the_radio_stopped() {
    let mut a = UdpRadio::start(config(free_port(), 0.0, 41), system())
        .await
        .unwrap();
    for t in &a.tasks {
        t.abort();
    }
    for t in std::mem::take(&mut a.tasks) {
        let _ = t.await;
    }
    assert_eq!(a.advertise(frame(1)), Err(RadioError::Stopped));
}

/// The next event within [`WAIT`].
async fn next_event(r: &mut UdpRadio) -> RadioEvent {
    match tokio::time::timeout(WAIT, r.events().recv()).await {
        Ok(Some(ev)) => ev,
        other => panic!("expected an event within {WAIT:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn each_scan_window_is_reported_once_on_the_clock_and_before_its_sightings() {
    use crate::clock::ManualClock;
    use meshtrace_protocol::ScanWindow;
    const WINDOW: u64 = 1_000;
    const INTERVAL: u64 = 5_000;
    const SECONDS: u64 = 60;
    let t0 = 1_800_000_000_000u64;
    let clock = ManualClock::new(UnixTime(t0 / 1000));
    let port = free_port();
    let mut r = UdpRadio::start(
        UdpAirConfig {
            duty: DutyCycle {
                scan_window_ms: WINDOW,
                scan_interval_ms: INTERVAL,
                advertising_interval_ms: 250,
            },
            ..config(port, 0.0, 51)
        },
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let phase = r.scan_phase_ms();
    let listening = |ms: u64| (ms + phase) % INTERVAL < WINDOW;
    let window = |start: u64| ScanWindow {
        start: UnixTime(start / 1000),
        end: UnixTime((start + WINDOW - 1) / 1000),
    };
    // Starting inside a window: that window, from the start on.
    let mut reported = 0u64;
    if listening(t0) {
        let start = t0 - (t0 + phase) % INTERVAL;
        let expected = ScanWindow {
            start: UnixTime(t0 / 1000),
            ..window(start)
        };
        assert_eq!(next_event(&mut r).await, RadioEvent::Scan(expected));
        reported += 1;
    }
    // One second at a time: each window that starts is reported, in order.
    let mut windows = 0;
    for s in 1..=SECONDS {
        let (from, to) = (t0 + (s - 1) * 1000, t0 + s * 1000);
        clock.set_millis(to);
        for ms in (from + 1)..=to {
            if (ms + phase) % INTERVAL == 0 {
                assert_eq!(next_event(&mut r).await, RadioEvent::Scan(window(ms)));
                windows += 1;
            }
        }
    }
    assert_eq!(windows, SECONDS * 1000 / INTERVAL, "12 windows a minute");
    // A packet heard inside the next window comes after that window, and
    // nothing else was reported in between.
    let end = t0 + SECONDS * 1000;
    let next = end + (INTERVAL - (end + phase) % INTERVAL);
    clock.set_millis(next + 300);
    let raw = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    raw.set_multicast_if_v4(&LOOPBACK).unwrap();
    raw.set_multicast_ttl_v4(0).unwrap();
    raw.bind(&SockAddr::from(SocketAddrV4::new(LOOPBACK, 0)))
        .unwrap();
    let raw = std::net::UdpSocket::from(raw);
    let packet = AirPacket {
        sender_id: 99,
        position: Position { x: 1.0, y: 0.0 },
        tx_offset_db: 0.0,
        tx_power_dbm: SIM_TX_POWER_DBM,
        payload: advertising_data(&frame(7).encode_extended()),
    }
    .encode()
    .unwrap();
    raw.send_to(&packet, SocketAddrV4::new(DEFAULT_GROUP, port))
        .unwrap();
    assert_eq!(next_event(&mut r).await, RadioEvent::Scan(window(next)));
    match next_event(&mut r).await {
        RadioEvent::Sighting(s) => {
            assert_eq!(s.frame, frame(7));
            assert_eq!(s.at, UnixTime((next + 300) / 1000));
        }
        other => panic!("expected the sighting, got {other:?}"),
    }
    assert_eq!(r.stats().scan_windows, reported + windows + 1);
}
