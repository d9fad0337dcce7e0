//! `meshtrace calibrate`: measures this device's RSSI correction
//! (`[radio] rx_correction_db`) against a calibrated peer at a known
//! distance.
//!
//! The procedure: put this device and a calibrated one (a node already
//! running with a known-good TX power, e.g. a reference phone or PC) the
//! given distance apart, in the open, nothing between them; stop this
//! device's own node; run `meshtrace calibrate --distance 1`. The command
//! starts the configured radio with continuous scanning (whatever the
//! config's scan timing), listens for `--seconds`, groups what it hears by
//! rotating ID, and takes the strongest (by median RSSI) frame heard at
//! least [`MIN_SAMPLES`] times as the peer. Frames carry no TX power
//! (docs/protocol.md §3), so the peer's calibrated TX power is given with
//! `--peer-tx-power` (default: this device's own, from its config: devices
//! of one deployment usually share it). The peer's median attenuation
//! (TX power − RSSI, without correction) is compared with the attenuation
//! the propagation model expects at that distance
//! ([`expected_attenuation_db`]); the difference, rounded to whole dB, is
//! the correction:
//!
//! ```text
//! rx_correction_db = median(peer_tx_power − rssi) − expected_attenuation(distance)
//! ```
//!
//! so that a report from that peer scored at `peer_tx_power + level`, with
//! `level = −(rssi + rx_correction_db)` (docs/protocol.md §5), reads the
//! expected attenuation at that distance. A receiver that reads 7 dB high
//! gets −7. The median of `n` receptions with shadowing σ has a standard
//! error of about 1.25 σ / √n (0.5 dB for 240 receptions at 6 dB); the
//! peer's own TX error is not separable from ours, hence a calibrated
//! peer.
//!
//! `--write` sets the value in the config file, keeping the rest of the
//! file and its owner-only mode ([`Config::write_rx_correction`]).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use meshtrace_node::Config;
use meshtrace_node::clock::{SharedClock, SystemClock};
use meshtrace_node::config::{DEFAULT_BLE_TX_POWER_DBM, MAX_RX_CORRECTION_DB, RadioKind};
use meshtrace_node::control::{self, Request, StatusReply};
use meshtrace_node::protocol::{CalibratedParams, RotatingId};
#[cfg(test)]
use meshtrace_node::radio::model::PathLossModel;
use meshtrace_node::radio::model::SIM_TX_POWER_DBM;
use meshtrace_node::radio::{PC_SCAN, RadioEvent};
use serde::Serialize;

use crate::Paths;
use crate::output::outln;

/// Shortest distance accepted (m): closer, the antennas' near field and
/// the phones' own bodies dominate.
pub(crate) const MIN_DISTANCE_M: f64 = 0.2;
/// Longest distance accepted (m): farther, shadowing swamps the offset.
pub(crate) const MAX_DISTANCE_M: f64 = 5.0;
/// Shortest listening time (s).
pub(crate) const MIN_SECONDS: u64 = 5;
/// Longest listening time (s).
pub(crate) const MAX_SECONDS: u64 = 600;
/// Receptions a frame needs to be taken as the peer: fewer leave the
/// median more than ~2.5 dB off at 6 dB shadowing.
pub(crate) const MIN_SAMPLES: usize = 10;
/// When the second-strongest device's median is within this many dB of the
/// strongest, the result says the peer may have been mistaken.
pub(crate) const AMBIGUOUS_DB: f64 = 6.0;
/// The TX powers `--peer-tx-power` accepts (dBm): those a node's
/// `[radio] tx_power_dbm` accepts.
pub(crate) const PEER_TX_POWER_RANGE_DBM: std::ops::RangeInclusive<i8> = -100..=20;

/// Options of `meshtrace calibrate`.
#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// Distance to the calibrated peer, in metres (measured; 1 m is usual),
    /// 0.2 to 5.
    #[arg(long, value_name = "METRES", default_value_t = 1.0)]
    distance: f64,
    /// How long to listen, in seconds (5 to 600).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    seconds: u64,
    /// The calibrated peer's TX power in dBm (its `[radio] tx_power_dbm`;
    /// frames do not carry it), -100 to 20. Default: this device's own.
    #[arg(long, value_name = "DBM", allow_negative_numbers = true)]
    peer_tx_power: Option<i8>,
    /// Write the correction into the config file (the rest of the file is
    /// kept; it stays owner-only).
    #[arg(long)]
    write: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What the calibration measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Calibration {
    /// The distance given (m).
    pub(crate) distance_m: f64,
    /// How long the radio listened (s).
    pub(crate) seconds: u64,
    /// Devices (rotating IDs) heard with an RSSI.
    pub(crate) devices_heard: usize,
    /// Receptions of the peer used.
    pub(crate) samples: usize,
    /// The peer's calibrated TX power (dBm), as given (or this device's).
    pub(crate) peer_tx_power_dbm: i8,
    /// Median RSSI of the peer (dBm).
    pub(crate) median_rssi_dbm: f64,
    /// Median attenuation measured, without correction (dB).
    pub(crate) measured_attenuation_db: f64,
    /// What the model expects at the distance (dB).
    pub(crate) expected_attenuation_db: f64,
    /// The correction to configure (dB).
    pub(crate) rx_correction_db: i16,
    /// The correction configured before (dB).
    pub(crate) previous_rx_correction_db: i16,
    /// The second-strongest device's median RSSI, when one was heard often
    /// enough (dBm).
    pub(crate) runner_up_rssi_dbm: Option<f64>,
    /// The config line to add under `[radio]`.
    pub(crate) config_line: String,
    /// Whether the config file was updated.
    pub(crate) written: bool,
}

/// The attenuation (dB) the calibrated risk estimator assumes between two
/// unobstructed, calibrated devices `distance_m` apart
/// ([`CalibratedParams`], docs/risk.md): `attenuation_at_1m_db + 10 ·
/// path_loss_exponent · log10(distance)`, 45 dB at 1 m. (Body and carry
/// loss are left out: the devices are calibrated in the open.) The
/// simulated airs use the same figures
/// ([`meshtrace_node::radio::model::PathLossModel::default`]).
pub(crate) fn expected_attenuation_db(distance_m: f64) -> f64 {
    let p = CalibratedParams::default();
    p.attenuation_at_1m_db + 10.0 * p.path_loss_exponent * distance_m.log10()
}

/// The median of `xs` (not empty).
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Receptions of one rotating ID: their RSSI (dBm).
type Heard = HashMap<RotatingId, Vec<i16>>;

/// This device's own calibrated TX power (dBm): its config's, else the
/// radio's default (what `meshtrace run` uses).
pub(crate) fn own_tx_power_dbm(config: &Config) -> i8 {
    config
        .radio
        .tx_power_dbm
        .unwrap_or(match config.radio.kind {
            RadioKind::UdpSim => SIM_TX_POWER_DBM,
            _ => DEFAULT_BLE_TX_POWER_DBM,
        })
}

/// Picks the peer in `heard` and computes the correction, the peer
/// transmitting at `peer_tx_power_dbm`.
pub(crate) fn compute(
    heard: &Heard,
    distance_m: f64,
    seconds: u64,
    previous: i16,
    peer_tx_power_dbm: i8,
) -> Result<Calibration> {
    let mut candidates: Vec<(f64, &Vec<i16>)> = heard
        .values()
        .filter(|v| v.len() >= MIN_SAMPLES)
        .map(|v| {
            let mut rssi: Vec<f64> = v.iter().map(|r| f64::from(*r)).collect();
            (median(&mut rssi), v)
        })
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let Some(&(median_rssi, peer)) = candidates.first() else {
        let most = heard.values().map(Vec::len).max().unwrap_or(0);
        bail!(
            "no device was heard at least {MIN_SAMPLES} times in {seconds} s (most often: \
             {most}); check that the calibrated peer's node is running and within {distance_m} m, \
             then listen longer with --seconds"
        );
    };
    let tx = peer_tx_power_dbm;
    let mut att: Vec<f64> = peer.iter().map(|r| f64::from(tx) - f64::from(*r)).collect();
    let measured = median(&mut att);
    let expected = expected_attenuation_db(distance_m);
    let correction = (measured - expected).round();
    if correction.abs() > f64::from(MAX_RX_CORRECTION_DB) {
        bail!(
            "the measured correction, {correction:.0} dB, is beyond ±{MAX_RX_CORRECTION_DB} dB \
             (median attenuation {measured:.1} dB where {expected:.1} dB is expected at \
             {distance_m} m at a peer TX power of {tx} dBm); check the distance, that nothing \
             stands between the devices, that the strongest device heard is the calibrated peer \
             and its TX power (--peer-tx-power)"
        );
    }
    let rx_correction_db = correction as i16;
    Ok(Calibration {
        distance_m,
        seconds,
        devices_heard: heard.len(),
        samples: peer.len(),
        peer_tx_power_dbm: tx,
        median_rssi_dbm: median_rssi,
        measured_attenuation_db: measured,
        expected_attenuation_db: (expected * 10.0).round() / 10.0,
        rx_correction_db,
        previous_rx_correction_db: previous,
        runner_up_rssi_dbm: candidates.get(1).map(|c| c.0),
        config_line: format!("rx_correction_db = {rx_correction_db}"),
        written: false,
    })
}

/// Runs `meshtrace calibrate`.
pub(crate) fn run(paths: &Paths, args: &CalibrateArgs) -> Result<ExitCode> {
    if !(args.distance.is_finite() && (MIN_DISTANCE_M..=MAX_DISTANCE_M).contains(&args.distance)) {
        bail!(
            "--distance must be between {MIN_DISTANCE_M} and {MAX_DISTANCE_M} metres (got {})",
            args.distance
        );
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&args.seconds) {
        bail!(
            "--seconds must be between {MIN_SECONDS} and {MAX_SECONDS} (got {})",
            args.seconds
        );
    }
    let (config, dir) = crate::node_cmd::load(paths)?;
    let peer_tx = args
        .peer_tx_power
        .unwrap_or_else(|| own_tx_power_dbm(&config));
    if !PEER_TX_POWER_RANGE_DBM.contains(&peer_tx) {
        bail!(
            "--peer-tx-power must be between {} and {} dBm (got {peer_tx})",
            PEER_TX_POWER_RANGE_DBM.start(),
            PEER_TX_POWER_RANGE_DBM.end()
        );
    }
    // This device's own frames would be the loudest heard.
    if control::request::<StatusReply>(&dir, &Request::Status).is_ok() {
        bail!(
            "this device's node is running on {}; stop it first (its own frames would be \
             heard louder than the peer's), calibrate, then start it again",
            dir.display()
        );
    }
    let path =
        meshtrace_node::config::config_path(paths.config.as_deref(), paths.data_dir.as_deref())
            .context("no home directory for the config; pass --data-dir or --config")?;
    let previous = config.radio.rx_correction_db;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let heard = runtime.block_on(listen(&config, args))?;
    let mut result = compute(&heard, args.distance, args.seconds, previous, peer_tx)?;
    if args.write {
        Config::write_rx_correction(&path, result.rx_correction_db)?;
        result.written = true;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&result).context("encoding the result")?
        )?;
    } else {
        print(&result, &path)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Listens with the configured radio, scanning continuously, for the
/// requested time; returns what was heard with an RSSI.
async fn listen(config: &Config, args: &CalibrateArgs) -> Result<Heard> {
    let mut config = config.clone();
    // Continuous scanning: the most receptions in the time given.
    config.radio.scan_interval = Some(PC_SCAN.interval);
    config.radio.scan_window = Some(PC_SCAN.interval);
    let clock: SharedClock = Arc::new(SystemClock);
    let (mut radio, _) = meshtrace_node::daemon::start_radio(&config, clock).await?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut heard = Heard::new();
    if !args.json {
        outln!(
            "Listening for {} s with the {} radio; keep both devices {} m apart and still…",
            args.seconds,
            config.radio.kind,
            args.distance
        )?;
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, radio.events().recv()).await {
            Err(_) => break,
            Ok(None) => bail!("the radio stopped while listening"),
            Ok(Some(RadioEvent::Failed(e))) => bail!("radio: {e}"),
            Ok(Some(RadioEvent::Sighting(s))) => {
                if let Some(rssi) = s.rssi {
                    heard.entry(s.frame.id).or_default().push(rssi);
                }
            }
            Ok(Some(RadioEvent::Scan(_))) => {}
        }
    }
    Ok(heard)
}

fn print(c: &Calibration, path: &std::path::Path) -> Result<()> {
    outln!(
        "Heard {} device{}; the strongest, taken as the calibrated peer: {} receptions, \
         median RSSI {:.1} dBm from a TX power of {} dBm",
        c.devices_heard,
        if c.devices_heard == 1 { "" } else { "s" },
        c.samples,
        c.median_rssi_dbm,
        c.peer_tx_power_dbm
    )?;
    outln!(
        "Median attenuation {:.1} dB; the model expects {:.1} dB at {} m",
        c.measured_attenuation_db,
        c.expected_attenuation_db,
        c.distance_m
    )?;
    if let Some(r) = c.runner_up_rssi_dbm
        && c.median_rssi_dbm - r < AMBIGUOUS_DB
    {
        outln!(
            "Warning: another device was heard almost as strongly ({r:.1} dBm): move other \
             devices away (or switch them off) and calibrate again"
        )?;
    }
    outln!(
        "This device's RSSI correction: {} dB (was {} dB)",
        c.rx_correction_db,
        c.previous_rx_correction_db
    )?;
    if c.written {
        outln!("Written to {} under [radio].", path.display())?;
    } else {
        outln!(
            "Add this line under [radio] in {} (or run again with --write):",
            path.display()
        )?;
        outln!("  {}", c.config_line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> RotatingId {
        RotatingId([b; 32])
    }

    #[test]
    fn the_model_expects_45_db_at_one_metre() {
        assert!((expected_attenuation_db(1.0) - 45.0).abs() < 1e-9);
        assert!((expected_attenuation_db(2.0) - 52.53).abs() < 0.01);
        // The simulated airs agree with the estimator at every distance.
        let m = PathLossModel::default();
        for d in [0.5, 1.0, 2.0, 4.0] {
            let sim =
                f64::from(SIM_TX_POWER_DBM) - m.rssi_at_1m_dbm + 10.0 * m.exponent * f64::log10(d);
            assert!((expected_attenuation_db(d) - sim).abs() < 1e-9, "{d} m");
        }
    }

    #[test]
    fn the_strongest_device_heard_often_enough_is_the_peer() {
        let mut heard = Heard::new();
        // The peer: attenuation 38 dB (TX −14, RSSI −52) where 45 is
        // expected at 1 m: it reads 7 dB high, correction −7.
        heard.insert(id(1), (0..21).map(|i| -52 + (i % 3) - 1).collect());
        // Stronger, but heard too rarely to count.
        heard.insert(id(2), vec![-30; MIN_SAMPLES - 1]);
        // Weaker.
        heard.insert(id(3), vec![-80; 40]);
        // The same receptions from a peer said to transmit at −8 dBm: 6 dB
        // more attenuation measured, so the receiver reads 1 dB high.
        let c = compute(&heard, 1.0, 60, 2, -8).unwrap();
        assert_eq!(c.rx_correction_db, -1);
        assert_eq!(c.peer_tx_power_dbm, -8);
        let c = compute(&heard, 1.0, 60, 2, -14).unwrap();
        assert_eq!(c.rx_correction_db, -7);
        assert_eq!(c.peer_tx_power_dbm, -14);
        assert_eq!(c.samples, 21);
        assert_eq!(c.devices_heard, 3);
        assert_eq!(c.median_rssi_dbm, -52.0);
        assert_eq!(c.runner_up_rssi_dbm, Some(-80.0));
        assert_eq!(c.config_line, "rx_correction_db = -7");
        assert_eq!(c.previous_rx_correction_db, 2);
    }

    #[test]
    fn too_few_receptions_or_an_absurd_correction_are_refused_in_words() {
        let mut heard = Heard::new();
        heard.insert(id(1), vec![-50; 3]);
        let e = compute(&heard, 1.0, 30, 0, -14).unwrap_err().to_string();
        assert!(
            e.contains("at least 10 times in 30 s") && e.contains("most often: 3"),
            "{e}"
        );
        heard.insert(id(2), vec![-5; 20]);
        let e = compute(&heard, 1.0, 30, 0, -14).unwrap_err().to_string();
        assert!(e.contains("beyond ±40 dB") && !e.contains('\n'), "{e}");
    }
}
