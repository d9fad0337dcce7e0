//! The town simulator (`meshtrace simulate`): scripted worlds with known
//! contacts give exactly the expected alerts, a replay attacker causes none,
//! no app means no alert, and the same seed gives the same results; the
//! scan windows reach the trackers so a contact is credited its true
//! minutes at any scan interval, both risk models are scored on the same
//! matches, and the new figures (estimated over true minutes, the
//! recall/precision curves) agree with the alerts.

use meshtrace_node::protocol::RiskModel;
use meshtrace_tests::sim::*;

/// Minute of the day.
fn at(h: u32, m: u32) -> u32 {
    h * 60 + m
}

/// `a` at the origin and `b` `dist` metres away, in `place`.
fn meet(a: u32, b: u32, place: u32, day: u32, from: u32, to: u32, dist: f32) -> [Stay; 2] {
    let stay = |agent, x| Stay {
        agent,
        place,
        day,
        from_minute: from,
        to_minute: to,
        x,
        y: 0.0,
    };
    [stay(a, 0.0), stay(b, dist)]
}

fn config() -> SimConfig {
    SimConfig::new(MIN_AGENTS, 1, 1.0, 7)
}

fn high(out: &ScriptOutcome) -> Vec<(u32, u32)> {
    out.alerts
        .iter()
        .filter(|a| a.high_risk)
        .map(|a| (a.reporter, a.receiver))
        .collect()
}

fn receivers(out: &ScriptOutcome) -> Vec<u32> {
    out.alerts.iter().map(|a| a.receiver).collect()
}

#[test]
fn known_contacts_give_exactly_the_expected_alerts() {
    // Person 0 tests positive on day 2; the certified window starts on day 1.
    let mut stays = Vec::new();
    // Day 0, before the window: an hour at 1 m with 6.
    stays.extend(meet(0, 6, 0, 0, at(10, 0), at(11, 0), 1.0));
    // Day 1: an hour at 1 m with 1 (the one true contact) ...
    stays.extend(meet(0, 1, 0, 1, at(10, 0), at(11, 0), 1.0));
    // ... 8 minutes at 1 m with 2 (too short) ...
    stays.extend(meet(0, 2, 0, 1, at(12, 0), at(12, 8), 1.0));
    // ... an hour at 19 m with 3 (too far) ...
    stays.extend(meet(0, 3, 0, 1, at(13, 0), at(14, 0), 19.0));
    // ... an hour at 1 m with 5, who has no app ...
    stays.extend(meet(0, 5, 0, 1, at(15, 0), at(16, 0), 1.0));
    // ... and 4 and 7 an hour together in another place.
    stays.extend(meet(4, 7, 1, 1, at(10, 0), at(11, 0), 1.0));
    let script = Script {
        people: 8,
        app: vec![0, 1, 2, 3, 4, 6, 7],
        stays,
        positives: vec![Positive {
            agent: 0,
            day: 2,
            minute: at(9, 0),
            window_first_day: 1,
        }],
        replay: None,
    };
    let out = run_script(&script, &config());
    assert_eq!(out.reports, 1);
    assert_eq!(out.reports_verified, 1);
    assert_eq!(out.refused_sightings, 0);
    assert!(out.token_derivations > 0);
    assert_eq!(high(&out), vec![(0, 1)], "{:?}", out.alerts);
    // The short and the distant contact match tokens but stay low risk; the
    // others never shared a token with the reporter in the window.
    let seen = receivers(&out);
    assert!(seen.contains(&2) && seen.contains(&3), "{:?}", out.alerts);
    for q in [4, 5, 6, 7] {
        assert!(!seen.contains(&q), "{q} matched: {:?}", out.alerts);
    }
    assert_eq!(out.replay.victims, 0);
}

#[test]
fn a_second_reporter_warns_its_own_contacts_only() {
    let mut stays = Vec::new();
    stays.extend(meet(0, 1, 0, 0, at(9, 0), at(10, 30), 0.8));
    stays.extend(meet(2, 3, 1, 0, at(9, 0), at(10, 30), 1.5));
    // 1 and 3 meet later, briefly and far: nobody's true contact.
    stays.extend(meet(1, 3, 2, 0, at(18, 0), at(18, 5), 6.0));
    let script = Script {
        people: 4,
        app: vec![0, 1, 2, 3],
        stays,
        positives: vec![
            Positive {
                agent: 0,
                day: 1,
                minute: at(8, 0),
                window_first_day: 0,
            },
            Positive {
                agent: 2,
                day: 1,
                minute: at(12, 0),
                window_first_day: 0,
            },
        ],
        replay: None,
    };
    let out = run_script(&script, &config());
    assert_eq!(out.reports, 2);
    assert_eq!(high(&out), vec![(0, 1), (2, 3)]);
}

fn replay_script(delay_minutes: u32) -> Script {
    let mut stays = Vec::new();
    // 0 and 1 really meet in place 0 on day 1; the attacker records there.
    stays.extend(meet(0, 1, 0, 1, at(10, 0), at(11, 0), 1.0));
    // 2 stands next to the attacker's transmitter in place 1 while it plays
    // 0's broadcasts back, live or a day later.
    let replay_day = 1 + delay_minutes / 1440;
    stays.push(Stay {
        agent: 2,
        place: 1,
        day: replay_day,
        from_minute: at(9, 30),
        to_minute: at(11, 30),
        x: 0.0,
        y: 0.0,
    });
    Script {
        people: 3,
        app: vec![0, 1, 2],
        stays,
        positives: vec![Positive {
            agent: 0,
            day: 3,
            minute: at(9, 0),
            window_first_day: 0,
        }],
        replay: Some(Replay {
            record_place: 0,
            replay_place: 1,
            delay_minutes,
        }),
    }
}

#[test]
fn an_attacker_replaying_recorded_keys_elsewhere_causes_no_alert() {
    for delay in [0, 1440] {
        let out = run_script(&replay_script(delay), &config());
        assert_eq!(out.reports, 1);
        // The replayed IDs were heard and became encounters on 2's phone ...
        assert_eq!(out.replay.victims, 1, "delay {delay}");
        assert!(
            out.replay.replayed_encounters >= 4,
            "delay {delay}: {:?}",
            out.replay
        );
        // ... whose tokens the reporter never had: no match at all.
        assert_eq!(out.replay.alerts, 0);
        assert_eq!(receivers(&out), vec![1], "delay {delay}: {:?}", out.alerts);
        assert_eq!(high(&out), vec![(0, 1)]);
    }
}

#[test]
fn without_the_app_nobody_is_warned() {
    let cfg = SimConfig::new(600, 10, 0.0, 11);
    let r = run(&cfg, Sweeps::default(), &|_, _, _| {}).expect("valid config");
    assert!(r.epidemic.infections_without_tracing + r.epidemic.initial_infections > 0);
    assert_eq!(r.adopters, 0);
    assert_eq!(r.tracing.reports, 0);
    assert_eq!(r.tracing.alerts, 0);
    assert_eq!(r.tracing.low_risk_exposures, 0);
    assert_eq!(r.tracing.token_derivations, 0);
    assert_eq!(r.network.announcement_bytes_per_case.count, 0);
    // With no alert acting, the runs with and without tracing are the same.
    assert_eq!(
        r.epidemic.daily_infections,
        r.epidemic.daily_infections_without_tracing
    );
}

#[test]
fn a_town_run_is_consistent_and_deterministic() {
    let mut cfg = SimConfig::new(800, 12, 0.8, 5);
    cfg.replay_attack = true;
    let a = run(&cfg, Sweeps::default(), &|_, _, _| {}).expect("valid config");
    let t = &a.tracing;
    assert_eq!(t.reports_verified, t.reports);
    assert_eq!(t.refused_sightings, 0);
    assert_eq!(t.true_alerts + t.false_alerts, t.alerts);
    assert!(t.true_contacts_both_app_warned <= t.true_contacts_both_app);
    assert!(t.true_contacts_all_warned <= t.true_contacts_all);
    assert_eq!(a.replay_attack.as_ref().map(|r| r.alerts), Some(0));
    // The same seed gives the same JSON, whatever the number of threads.
    let mut one = cfg.clone();
    one.threads = 1;
    let b = run(&one, Sweeps::default(), &|_, _, _| {}).expect("valid config");
    let ja = serde_json::to_string(&a).expect("json");
    let jb = serde_json::to_string(&b).expect("json");
    assert_eq!(ja, jb);
    // Another seed gives another town.
    let mut other = cfg.clone();
    other.seed = 6;
    let c = run(&other, Sweeps::default(), &|_, _, _| {}).expect("valid config");
    assert_ne!(ja, serde_json::to_string(&c).expect("json"));
}

#[test]
fn bad_settings_are_refused_by_name() {
    let ok = SimConfig::new(2_000, 14, 0.5, 1);
    assert!(ok.validate().is_ok());
    for seconds in [4, DEFAULT_SCAN_INTERVAL_S, MAX_SCAN_INTERVAL_S] {
        assert!(ok.clone().with_scan_interval(seconds).validate().is_ok());
    }
    let cases: [(SimConfig, &str); 9] = [
        (SimConfig::new(0, 14, 0.5, 1), "--agents"),
        (SimConfig::new(MAX_AGENTS + 1, 14, 0.5, 1), "--agents"),
        (SimConfig::new(2_000, 0, 0.5, 1), "--days"),
        (SimConfig::new(2_000, MAX_DAYS + 1, 0.5, 1), "--days"),
        (SimConfig::new(2_000, 14, 1.5, 1), "--adoption"),
        (SimConfig::new(2_000, 14, f64::NAN, 1), "--adoption"),
        // A scan interval shorter than the 4 s scan window, or over 10 minutes.
        (ok.clone().with_scan_interval(3), "--scan-interval"),
        (ok.clone().with_scan_interval(0), "--scan-interval"),
        (
            ok.clone().with_scan_interval(MAX_SCAN_INTERVAL_S + 1),
            "--scan-interval",
        ),
    ];
    for (cfg, name) in cases {
        let err = cfg.validate().expect_err("refused");
        assert!(err.contains(name), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(run(&cfg, Sweeps::default(), &|_, _, _| {}).is_err());
    }
}

#[test]
fn the_html_report_has_titled_plots() {
    let cfg = SimConfig::new(300, 5, 0.6, 2);
    let sweeps = Sweeps {
        adoption: true,
        scan: true,
    };
    let r = run(&cfg, sweeps, &|_, _, _| {}).expect("valid config");
    assert_eq!(r.sweep.len(), SWEEP_LEVELS.len());
    assert_eq!(r.sweep[0].alerts, 0, "no app, no alert");
    let intervals: Vec<f64> = r.scan_sweep.iter().map(|p| p.scan_interval_s).collect();
    assert_eq!(intervals, [10.0, 60.0, 150.0, 240.0]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = html::write_report(&r, dir.path()).expect("written");
    let page = std::fs::read_to_string(path).expect("read");
    // Four recall/precision plots (one per scan interval) and five others.
    assert_eq!(page.matches("<svg").count(), 4 + 5);
    for title in [
        "Recall against precision, scanning 4 s every 10 s",
        "Recall against precision, scanning 4 s every 60 s",
        "Recall against precision, scanning 4 s every 150 s",
        "Recall against precision, scanning 4 s every 240 s",
        "today's rule",
        "Recall and precision against adoption",
        "Time from positive test to alert",
        "Bytes received per node per day",
        "Stored bytes per node",
        "Epidemic curve with and without tracing",
        "adoption (share of people running the app, %)",
        "new infections per day",
    ] {
        assert!(page.contains(title), "missing {title:?}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("simulation.json")).expect("json written"),
    )
    .expect("valid json");
    assert_eq!(json["config"]["agents"], 300);
}

/// Person 0, positive on day 1, spent 30 minutes at `dist` metres from
/// person 1 on day 0 (10:00–10:30, crossing two 15-minute rotations).
fn thirty_minutes_at(dist: f32) -> Script {
    Script {
        people: 2,
        app: vec![0, 1],
        stays: meet(0, 1, 0, 0, at(10, 0), at(10, 30), dist).to_vec(),
        positives: vec![Positive {
            agent: 0,
            day: 1,
            minute: at(9, 0),
            window_first_day: 0,
        }],
        replay: None,
    }
}

#[test]
fn a_close_contact_is_credited_its_true_minutes_at_any_scan_interval() {
    for seconds in [10, 240] {
        let cfg = config().with_scan_interval(seconds);
        let out = run_script(&thirty_minutes_at(1.0), &cfg);
        assert_eq!(out.refused_sightings, 0);
        let [a] = out.alerts[..] else {
            panic!("{seconds} s: one exposure expected: {:?}", out.alerts);
        };
        assert_eq!((a.reporter, a.receiver), (0, 1));
        // Every scan window in the contact hears the other phone at 1 m and
        // is credited with the time since the window before it: 30 minutes,
        // give or take the window at each end of the contact (one scan
        // interval) and 30 s of second rounding.
        let bound = seconds as f64 / 60.0 + 0.5;
        assert!(
            (a.credited_minutes - 30.0).abs() <= bound,
            "{seconds} s: credited {} min, 30 ± {bound} expected",
            a.credited_minutes
        );
        assert!(a.high_risk, "{seconds} s: {a:?}");
        // The trackers were told the window of each reception and the one
        // before a run of them — about one per scan interval of the contact
        // on each of the two phones — not every window of the day.
        let per_phone = 1800 / seconds;
        let told = out.scan_windows_reported;
        assert!(
            (2 * per_phone..=2 * (per_phone + 2)).contains(&told),
            "{seconds} s: {told} windows reported, about {} expected",
            2 * (per_phone + 1)
        );
    }
}

#[test]
fn the_baseline_is_the_other_model_on_the_same_matches() {
    let script = thirty_minutes_at(3.0);
    let calibrated = run_script(&script, &config().with_risk_model(RiskModel::Calibrated));
    let cwa = run_script(&script, &config().with_risk_model(RiskModel::Cwa));
    assert_eq!(calibrated.alerts.len(), 1, "{:?}", calibrated.alerts);
    assert_eq!(cwa.alerts.len(), 1, "{:?}", cwa.alerts);
    let (c, w) = (calibrated.alerts[0], cwa.alerts[0]);
    assert_eq!(c.credited_minutes, w.credited_minutes);
    assert_eq!(c.high_risk, w.baseline_high_risk);
    assert_eq!(c.baseline_high_risk, w.high_risk);
    assert_eq!(c.estimated_minutes, w.baseline_estimated_minutes);
    assert_eq!(c.baseline_estimated_minutes, w.estimated_minutes);
}

#[test]
fn estimated_over_true_is_the_warned_phones_estimate_over_the_true_minutes() {
    let out = run_script(&thirty_minutes_at(1.0), &config());
    let a = out.alerts[0];
    // One true contact (30 minutes within 2 m on day 0).
    assert_eq!(out.estimated_over_true.count, 1);
    assert!((out.estimated_over_true.p50 - a.estimated_minutes / 30.0).abs() < 1e-3);
    assert!(
        (out.baseline_estimated_over_true.p50 - a.baseline_estimated_minutes / 30.0).abs() < 1e-3
    );
    // At 3 m nobody is a true contact: no ratio.
    let far = run_script(&thirty_minutes_at(3.0), &config());
    assert_eq!(far.estimated_over_true.count, 0);
}

#[test]
fn the_new_figures_agree_with_the_alerts() {
    let cfg = SimConfig::new(800, 12, 0.8, 5);
    let r = run(&cfg, Sweeps::default(), &|_, _, _| {}).expect("valid config");
    let json: serde_json::Value = serde_json::to_value(&r).expect("json");
    assert_eq!(json["config"]["scan_interval_s"], 60.0);
    assert_eq!(json["config"]["scan_window_s"], 4.0);
    assert_eq!(json["config"]["risk_model"], "calibrated");
    assert_eq!(json["config"]["baseline_model"], "cwa");
    assert_eq!(json["tracing"]["model"], "calibrated");
    assert_eq!(json["tracing_baseline"]["model"], "cwa");
    let t = &r.tracing;
    assert!(t.true_contacts_both_app > 0 && t.alerts > 0, "{t:?}");
    assert!(t.scan_windows_reported > 0);
    let ratio = json["tracing"]["estimated_over_true_p50"]
        .as_f64()
        .expect("a number");
    assert!(ratio.is_finite() && ratio >= 0.0, "{ratio}");
    // One ratio per true contact day: at least one per true contact.
    assert!(t.estimated_over_true.count >= u64::from(t.true_contacts_both_app));
    let b = &r.tracing_baseline;
    for x in [t.recall, t.precision, b.recall, b.precision] {
        assert!((0.0..=1.0).contains(&x), "{x}");
    }
    assert_eq!(b.true_alerts + b.false_alerts, b.alerts);
    // Each curve: thresholds ascending, fewer alerts and lower recall as the
    // threshold rises, and the point at the run's threshold is exactly what
    // the run warned.
    for (curve, recall, precision, alerts) in [
        (&t.curve, t.recall, t.precision, t.alerts),
        (&b.curve, b.recall, b.precision, b.alerts),
    ] {
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].threshold_minutes < w[1].threshold_minutes)
        );
        assert!(curve.windows(2).all(|w| w[0].alerts >= w[1].alerts));
        assert!(curve.windows(2).all(|w| w[0].recall >= w[1].recall));
        let op: Vec<_> = curve.iter().filter(|p| p.operating).collect();
        assert_eq!(op.len(), 1);
        assert_eq!(op[0].threshold_minutes, 15.0);
        assert_eq!(
            (op[0].recall, op[0].precision, op[0].alerts),
            (recall, precision, alerts)
        );
    }
    // Missed contacts are the true contacts not warned.
    assert_eq!(
        t.missed,
        t.true_contacts_both_app - t.true_contacts_both_app_warned
    );
}
