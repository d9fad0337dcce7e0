//! Tests of the config file.

use super::*;

fn p() -> &'static Path {
    Path::new("test.toml")
}

/// The error for a config text: from reading it, else from validating it.
fn error_of(text: &str) -> String {
    match Config::parse(text, p()) {
        Ok(c) => c.validate(p()).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

fn key(hex: &str) -> IssuerPublicKey {
    parse_issuer_key(hex).unwrap()
}

/// A strong issuer key (the public key of a fixed secret).
fn strong_key() -> IssuerPublicKey {
    meshtrace_protocol::IssuerSecretKey::from_bytes(&zeroize::Zeroizing::new([7; 32])).public()
}

#[test]
fn round_trip_through_toml() {
    let mut c = Config::new("campus-1");
    c.issuers.push(IssuerEntry {
        name: "clinic".into(),
        key: strong_key(),
    });
    c.p2p.bootstrap = vec![parse_multiaddr("/ip4/10.0.0.1/tcp/4001").unwrap()];
    c.report.min_encounter = Duration::from_secs(90);
    c.radio.kind = RadioKind::UdpSim;
    c.radio.position = Some([1.5, -2.0]);
    c.hooks.on_exposure = Some("notify-send hi".into());
    let text = c.to_toml().unwrap();
    let back = Config::parse(&text, p()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn defaults_apply_to_a_minimal_file() {
    let c = Config::parse("network = \"town\"\n", p()).unwrap();
    c.validate(p()).unwrap();
    assert_eq!(c.radio.kind, RadioKind::Ble);
    assert!(c.p2p.mdns);
    assert_eq!(c.p2p.listen, default_listen());
    assert_eq!(c.report.min_encounter, Duration::from_secs(60));
    let listen: Vec<String> = c.p2p.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]);
}

#[test]
fn connection_limits_start_from_the_preset_and_bad_values_are_named() {
    let c = Config::parse("network = \"town\"\n", p()).unwrap();
    assert_eq!(c.p2p.limits(), crate::p2p::Limits::PC);
    let c = Config::parse("network = \"town\"\n[p2p]\nlight = true\n", p()).unwrap();
    assert_eq!(c.p2p.limits(), crate::p2p::Limits::PHONE);
    let c = Config::parse(
        "network = \"town\"\n[p2p]\nlimits = \"phone\"\nmax_connections_per_ip = 3\n\
         relay_circuit_seconds = 90\ncatch_up_seconds = 20\n",
        p(),
    )
    .unwrap();
    c.validate(p()).unwrap();
    let l = c.p2p.limits();
    assert_eq!(l.max_connections_per_ip, 3);
    assert_eq!(l.relay_circuit_duration, Duration::from_secs(90));
    assert_eq!(l.max_connections, crate::p2p::Limits::PHONE.max_connections);
    assert_eq!(c.p2p.catch_up_interval(), Some(Duration::from_secs(20)));
    let e = error_of("network = \"t\"\n[p2p]\nmax_connections_per_ip = 0\n");
    assert!(e.contains("max_connections_per_ip is 0"), "{e}");
    let e = error_of("network = \"t\"\n[p2p]\ncatch_up_seconds = 0\n");
    assert!(e.contains("p2p.catch_up_seconds"), "{e}");
    let e = error_of("network = \"t\"\n[p2p]\nlimits = \"server\"\n");
    assert!(e.contains("line 3") && e.contains("`phone` or `pc`"), "{e}");
}

#[test]
fn unknown_keys_are_rejected_by_name_with_the_line() {
    let e = Config::parse("network = \"town\"\n\n[p2p]\nmdsn = false\n", p())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mdsn"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
    let e = Config::parse("network = \"town\"\ncolour = 1\n", p())
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn mistyped_and_missing_values_are_named() {
    let e = Config::parse("network = 5\n", p()).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
    let e = Config::parse("[radio]\nkind = \"ble\"\n", p())
        .unwrap_err()
        .to_string();
    assert!(e.contains("network"), "{e}");
    let e = Config::parse("network = \"t\"\n[radio]\nkind = \"wifi\"\n", p())
        .unwrap_err()
        .to_string();
    assert!(e.contains("wifi"), "{e}");
}

#[test]
fn invalid_values_name_the_setting() {
    let cases: Vec<(&str, &str)> = vec![
        ("network = \"has space\"\n", "network"),
        (
            "network = \"t\"\n[[issuer]]\nname = \"x\"\nkey = \"abc\"\n",
            "issuer.key",
        ),
        (
            "network = \"t\"\n[radio]\ntx_power_dbm = 50\n",
            "radio.tx_power_dbm",
        ),
        (
            "network = \"t\"\n[radio]\nkind = \"udp-sim\"\nudp_group = \"10.0.0.1\"\n",
            "radio.udp_group",
        ),
        (
            "network = \"t\"\n[p2p]\nbootstrap = [\"nope\"]\n",
            "p2p.bootstrap",
        ),
        ("network = \"t\"\n[p2p]\nstem_hops = 99\n", "p2p.stem_hops"),
        ("network = \"t\"\n[p2p]\nlisten = []\n", "p2p.listen"),
        (
            "network = \"t\"\n[store]\nkey_file = \"k\"\npassphrase_env = \"P\"\n",
            "store",
        ),
        (
            "network = \"t\"\n[hooks]\non_exposure = \" \"\n",
            "hooks.on_exposure",
        ),
    ];
    for (text, setting) in cases {
        let e = error_of(text);
        assert!(e.contains(&format!(": {setting}:")), "{text:?} → {e}");
    }
}

/// Found with the `config` fuzz target's invariant (every error is one
/// line): a duplicate issuer key and the multiaddr parser's message
/// were printed raw, so a newline in the file broke the error in two.
#[test]
fn errors_quoting_the_file_stay_on_one_line() {
    let key = strong_key().to_hex();
    let dup = format!(
        "network = \"t\"\n[[issuer]]\nname = \"a\"\nkey = \"{key}\"\n\
         [[issuer]]\nname = \"b\"\nkey = \"{key}\\n\"\n"
    );
    let bad_addr = "network = \"t\"\n[p2p]\nbootstrap = [\"/x\\ny\"]\n";
    for (text, setting) in [(&dup[..], "issuer.key"), (bad_addr, "p2p.bootstrap")] {
        let e = error_of(text);
        assert!(e.contains(&format!(": {setting}:")), "{e}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
}

#[test]
fn load_reports_missing_and_oversized_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    let e = Config::load(&missing).unwrap_err().to_string();
    assert!(e.contains("meshtrace init"), "{e}");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; MAX_CONFIG_LEN as usize + 1]).unwrap();
    assert!(
        Config::load(&big)
            .unwrap_err()
            .to_string()
            .contains("larger")
    );
    let bin = dir.path().join("bin.toml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    // (Explicitly owner-only: the umask varies.)
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(
        Config::load(&bin)
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
}

#[test]
fn weak_or_invalid_issuer_keys_are_refused() {
    let identity = format!("01{}", "00".repeat(31));
    for key in ["00".repeat(32), "ff".repeat(32), "FF".repeat(32), identity] {
        let text = format!("network = \"t\"\n[[issuer]]\nname = \"x\"\nkey = \"{key}\"\n");
        let e = error_of(&text);
        assert!(e.contains(": issuer.key:"), "{e}");
        assert!(e.contains("not a usable issuer public key"), "{e}");
        assert!(parse_issuer_key(&key).is_err());
    }
}

#[test]
fn load_refuses_a_config_other_users_can_change() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CONFIG_FILE);
    Config::new("town").write_new(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Config::load(&path).unwrap();
}

#[test]
fn write_new_leaves_an_existing_parent_directory_as_it_is() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Config::new("town")
        .write_new(&dir.path().join(CONFIG_FILE))
        .unwrap();
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn write_new_is_owner_only_and_never_replaces() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join(CONFIG_FILE);
    let c = Config::new("town");
    c.write_new(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(Config::load(&path).unwrap(), c);
    let e = c.write_new(&path).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
}

/// Issuer keys, addresses and durations are parsed once, when the file is
/// read, into their types: a bad one is refused there, with the line of
/// the file and the setting's name (on main they were strings, checked by
/// `validate` without a line and parsed again on every use).
#[test]
fn typed_values_are_parsed_when_read_and_errors_give_the_line_and_setting() {
    let cases = [
        (
            "network = \"t\"\n\n[[issuer]]\nname = \"x\"\nkey = \"abc\"\n",
            "line 5",
            "issuer.key",
        ),
        (
            "network = \"t\"\n[p2p]\nlisten = [\"/ip4/0.0.0.0/tcp/0\", \"nope\"]\n",
            "line 3",
            "p2p.listen",
        ),
        (
            "network = \"t\"\n[p2p]\nmdns = false\nbootstrap = [\"/ip4/1.2.3.4/tcpp/1\"]\n",
            "line 4",
            "p2p.bootstrap",
        ),
    ];
    for (text, line, setting) in cases {
        let e = Config::parse(text, p()).unwrap_err().to_string();
        assert!(e.contains(line), "{text:?} → {e}");
        assert!(e.contains(&format!(": {setting}:")), "{text:?} → {e}");
        assert!(e.starts_with("config test.toml"), "{e}");
    }
    let k = strong_key();
    let text = format!(
        "network = \"t\"\n[[issuer]]\nname = \"clinic\"\nkey = \"{}\"\n\
         [p2p]\nbootstrap = [\"/ip4/10.0.0.1/tcp/4001\"]\n[report]\nmin_encounter_seconds = 90\n",
        k.to_hex()
    );
    let c = Config::parse(&text, p()).unwrap();
    c.validate(p()).unwrap();
    assert_eq!(c.trusted_issuers(), vec![(k, "clinic".to_owned())]);
    assert_eq!(c.issuers[0].key, key(&k.to_hex()));
    assert_eq!(
        c.bootstrap_addrs(),
        vec![parse_multiaddr("/ip4/10.0.0.1/tcp/4001").unwrap()]
    );
    assert_eq!(c.report.min_encounter, Duration::from_secs(90));
}

#[test]
fn scan_timing_defaults_by_radio_and_reads_durations() {
    let s = Duration::from_secs;
    let c = Config::parse("network = \"t\"\n", p()).unwrap();
    assert_eq!(c.scan_timing(), crate::radio::PC_SCAN);
    assert_eq!(c.risk.model, RiskModelSetting::Calibrated);
    assert_eq!(RiskModel::from(c.risk.model), RiskModel::Calibrated);
    let phone = "network = \"t\"\n[radio]\nscan_interval = \"60s\"\nscan_window = \"4s\"\n\
                 [risk]\nmodel = \"cwa\"\n";
    let c = Config::parse(phone, p()).unwrap();
    c.validate(p()).unwrap();
    assert_eq!(c.scan_timing(), crate::radio::PHONE_SCAN);
    assert_eq!(RiskModel::from(c.risk.model), RiskModel::Cwa);
    // Written back the same way.
    let text = c.to_toml().unwrap();
    assert!(text.contains("scan_interval = \"60s\""), "{text}");
    assert!(text.contains("model = \"cwa\""), "{text}");
    assert_eq!(Config::parse(&text, p()).unwrap(), c);
    // BLE: an interval alone is continuous scanning in windows of it; a
    // window alone listens that long every 10 s.
    let only = |k: &str, v: &str| {
        Config::parse(&format!("network = \"t\"\n[radio]\n{k} = \"{v}\"\n"), p())
            .unwrap()
            .scan_timing()
    };
    assert_eq!(only("scan_interval", "30s").window, s(30));
    assert_eq!(only("scan_window", "2s").interval, s(10));
    // udp-sim: the simulated air's duty cycle unless set.
    let udp = Config::parse("network = \"t\"\n[radio]\nkind = \"udp-sim\"\n", p()).unwrap();
    let d = DutyCycle::default();
    assert_eq!(
        udp.scan_timing(),
        ScanTiming {
            window: Duration::from_millis(d.scan_window_ms),
            interval: Duration::from_millis(d.scan_interval_ms),
        }
    );
    for (text, want) in [
        ("60s", s(60)),
        ("4 s", s(4)),
        ("1.5s", Duration::from_millis(1500)),
        ("1500ms", Duration::from_millis(1500)),
        ("2min", s(120)),
        ("10m", s(600)),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        "60",
        "s",
        "-4s",
        "4 h",
        "1e3s",
        "nan s",
        "99999999999999999999s",
    ] {
        let e = parse_duration(bad).unwrap_err();
        assert!(
            e.contains("is not a duration") && e.contains("\"60s\""),
            "{bad}: {e}"
        );
    }
}

#[test]
fn scan_and_risk_errors_name_the_key_in_one_line() {
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "[radio]\nscan_interval = \"soon\"\n",
            "radio.scan_interval",
            "not a duration",
        ),
        ("[radio]\nscan_window = 4\n", "line 3", "invalid type"),
        (
            "[radio]\nscan_window = \"500ms\"\n",
            "radio.scan_window",
            "shorter than the 1 s minimum",
        ),
        (
            "[radio]\nscan_interval = \"11min\"\n",
            "radio.scan_interval",
            "longer than the 600 s maximum",
        ),
        (
            "[radio]\nscan_interval = \"60s\"\nscan_window = \"90s\"\n",
            "radio.scan_window",
            "longer than the scan interval",
        ),
        (
            "[radio]\nkind = \"udp-sim\"\nscan_interval = \"500ms\"\n",
            "radio.scan_interval",
            "shorter than the 1 s minimum",
        ),
        (
            "[radio]\nkind = \"udp-sim\"\nudp_rx_offset_db = 31.0\n",
            "radio.udp_rx_offset_db",
            "±30 dB",
        ),
        ("[risk]\nmodel = \"bayes\"\n", "bayes", "calibrated"),
        ("[risk]\nmodle = \"cwa\"\n", "modle", "model"),
    ];
    for (body, key, words) in cases {
        let text = format!("network = \"t\"\n{body}");
        let e = error_of(&text);
        assert!(e.contains(key), "{text:?} → {e}");
        assert!(e.contains(words), "{text:?} → {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[test]
fn the_ui_section_defaults_to_loopback_and_refuses_other_addresses_plainly() {
    let c = Config::parse("network = \"t\"\n", p()).unwrap();
    assert!(c.ui.enabled);
    assert_eq!(
        c.ui.listen,
        std::net::SocketAddr::from(([127, 0, 0, 1], crate::config::DEFAULT_UI_PORT))
    );
    assert!(!c.ui.notify);
    let text = "network = \"t\"\n[ui]\nlisten = \"127.0.0.1:0\"\nlanguage = \"vi\"\n\
                advice_url = \"https://health.example/close-contacts\"\nnotify = true\n";
    let c = Config::parse(text, p()).unwrap();
    c.validate(p()).unwrap();
    assert_eq!(c.ui.language, Some(crate::config::UiLanguage::Vi));
    assert!(c.ui.notify);
    for (text, setting, needle) in [
        (
            "[ui]\nlisten = \"0.0.0.0:7390\"\n",
            "ui.listen",
            "127.0.0.1",
        ),
        (
            "[ui]\nlisten = \"192.168.1.2:80\"\n",
            "ui.listen",
            "this computer only",
        ),
        ("[ui]\nlisten = \"[::1]:7390\"\n", "ui.listen", "127.0.0.1"),
        (
            "[ui]\nadvice_url = \"javascript:alert(1)\"\n",
            "ui.advice_url",
            "web address",
        ),
        (
            "[ui]\nadvice_url = \"https://a b\"\n",
            "ui.advice_url",
            "web address",
        ),
    ] {
        let c = Config::parse(&format!("network = \"t\"\n{text}"), p()).unwrap();
        let e = c.validate(p()).unwrap_err().to_string();
        assert!(e.contains(setting) && e.contains(needle), "{text:?} → {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = Config::parse("network = \"t\"\n[ui]\nlanguage = \"fr\"\n", p())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ui.language") || e.contains("`en`"), "{e}");
    let e = Config::parse("network = \"t\"\n[ui]\nlisten = \"localhost\"\n", p())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn radio_profiles_set_scan_and_advertising_and_single_values_override_them() {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    let with = |radio: &str| {
        let c = Config::parse(&format!("network = \"t\"\n[radio]\n{radio}"), p()).unwrap();
        c.validate(p()).unwrap();
        c
    };
    // Each profile, on every radio kind.
    for kind in ["ble", "udp-sim", "external"] {
        for (name, scan, adv) in [
            ("phone", crate::radio::PHONE_SCAN, ms(250)),
            ("phone-low-power", crate::radio::PHONE_LOW_POWER_SCAN, s(1)),
            ("pc", crate::radio::PC_SCAN, ms(100)),
        ] {
            let c = with(&format!("kind = \"{kind}\"\nprofile = \"{name}\"\n"));
            assert_eq!(c.radio_profile().map(RadioProfile::name), Some(name));
            assert_eq!(c.scan_timing(), scan, "{kind} {name}");
            assert_eq!(c.advertising_interval(), adv, "{kind} {name}");
            // Written back the same way.
            let text = c.to_toml().unwrap();
            assert!(text.contains(&format!("profile = \"{name}\"")), "{text}");
            assert_eq!(Config::parse(&text, p()).unwrap(), c);
        }
    }
    assert_eq!(
        crate::radio::PHONE_LOW_POWER_SCAN.to_string(),
        "4 s every 240 s"
    );
    // Defaults by kind: BLE is a PC, the external radio a phone, udp-sim
    // keeps the simulated air's duty cycle.
    assert_eq!(with("").radio_profile(), Some(RadioProfile::Pc));
    let ext = with("kind = \"external\"\n");
    assert_eq!(ext.radio_profile(), Some(RadioProfile::Phone));
    assert_eq!(ext.scan_timing(), crate::radio::PHONE_SCAN);
    let udp = with("kind = \"udp-sim\"\n");
    assert_eq!(udp.radio_profile(), None);
    assert_eq!(udp.advertising_interval(), ms(250));
    // Explicit values override single parts of the profile.
    let c = with("profile = \"phone\"\nscan_interval = \"120s\"\n");
    assert_eq!(
        c.scan_timing(),
        ScanTiming {
            window: s(4),
            interval: s(120)
        }
    );
    let c = with("profile = \"phone-low-power\"\nscan_window = \"8s\"\n");
    assert_eq!(
        c.scan_timing(),
        ScanTiming {
            window: s(8),
            interval: s(240)
        }
    );
    // A continuous profile stays continuous with another interval; a
    // phone's window never exceeds a shorter interval.
    let c = with("profile = \"pc\"\nscan_interval = \"30s\"\n");
    assert_eq!(
        c.scan_timing(),
        ScanTiming {
            window: s(30),
            interval: s(30)
        }
    );
    let c = with("profile = \"phone\"\nscan_interval = \"2s\"\n");
    assert_eq!(
        c.scan_timing(),
        ScanTiming {
            window: s(2),
            interval: s(2)
        }
    );
    // Errors name the setting, in one line.
    let e = error_of("network = \"t\"\n[radio]\nprofile = \"tablet\"\n");
    assert!(e.contains("line 3") && e.contains("tablet"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = error_of("network = \"t\"\n[radio]\nprofile = \"phone\"\nscan_window = \"90s\"\n");
    assert!(
        e.contains("radio.scan_window") && e.contains("longer than the scan interval"),
        "{e}"
    );
}
