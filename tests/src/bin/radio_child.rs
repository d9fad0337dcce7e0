//! Child process for `tests/tests/udp_radio.rs`: one meshtrace node on the
//! `udp-sim` radio. It runs a scaled clock, rotates its keys from it,
//! advertises the current key's frame, turns what it hears into encounters,
//! and at the end prints what happened, one fact per line:
//!
//! ```text
//! own <hex id>      every rotating ID it broadcast
//! heard <hex id>    every distinct rotating ID it heard
//! token <hex>       every token of every encounter (all closed at the end)
//! air <name> <n> …  counters of the simulated air (UdpAirStats)
//! ```
//!
//! Usage: `meshtrace-radio-child X Y PORT SCALE DURATION_SECONDS SEED`
//! (positions in metres; DURATION in simulated seconds). Bad arguments: one
//! line on stderr and exit status 2; a radio failure: exit status 1.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use meshtrace_node::clock::{MAX_TIME_SCALE, ScaledClock, SharedClock};
use meshtrace_node::protocol::*;
use meshtrace_node::radio::model::{Position, Trajectory};
use meshtrace_node::radio::udp::{MIN_REAL_ADVERTISING_INTERVAL, UdpAirConfig, UdpRadio};
use meshtrace_node::radio::{Radio, RadioEvent};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Simulated start: 300 s before an epoch boundary, so every run covers a
/// rotation (and the key drawn ahead for it).
const START: u64 = 20_500 * DAY_SECONDS + 8 * 3600 + 600;
/// Longest run accepted (simulated seconds).
const MAX_DURATION: u64 = 7 * DAY_SECONDS;
/// How often (simulated) the node rotates keys and closes encounters.
const TICK_SIM_MS: u64 = 1_000;

const USAGE: &str = "usage: meshtrace-radio-child X Y PORT SCALE DURATION_SECONDS SEED";

struct Args {
    position: Position,
    port: u16,
    scale: f64,
    duration: u64,
    seed: u64,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let [x, y, port, scale, duration, seed] = args else {
        return Err(format!("expected 6 arguments, got {}", args.len()));
    };
    let coord = |name: &str, v: &str| match v.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        _ => Err(format!(
            "{name} must be a finite number of metres, got {v:?}"
        )),
    };
    let position = Position {
        x: coord("X", x)?,
        y: coord("Y", y)?,
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("PORT must be within 1..=65535, got {port:?}")),
    };
    let scale = match scale.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_TIME_SCALE => s,
        _ => {
            return Err(format!(
                "SCALE must be within (0, {MAX_TIME_SCALE}], got {scale:?}"
            ));
        }
    };
    let duration = match duration.parse::<u64>() {
        Ok(d) if (1..=MAX_DURATION).contains(&d) => d,
        _ => {
            return Err(format!(
                "DURATION_SECONDS must be within 1..={MAX_DURATION}, got {duration:?}"
            ));
        }
    };
    let Ok(seed) = seed.parse::<u64>() else {
        return Err(format!("SEED must be an unsigned integer, got {seed:?}"));
    };
    Ok(Args {
        position,
        port,
        scale,
        duration,
        seed,
    })
}

/// What one run saw.
struct Report {
    own: Vec<RotatingId>,
    heard: BTreeSet<RotatingId>,
    tokens: Vec<EncounterToken>,
    air: meshtrace_node::radio::udp::UdpAirStats,
}

/// Rotates the key schedule; a new broadcast ID goes on the air at once.
fn rotate(
    keys: &mut KeySchedule,
    rng: &mut ChaCha20Rng,
    radio: &mut UdpRadio,
    own: &mut Vec<RotatingId>,
    now: UnixTime,
) -> Result<(), String> {
    if let Some(id) = keys.rotate(now, rng).new_id {
        radio
            .advertise(radio.frame(id))
            .map_err(|e| e.to_string())?;
        own.push(id);
    }
    Ok(())
}

async fn run(args: Args) -> Result<Report, String> {
    let Some(scaled) = ScaledClock::new(UnixTime(START), args.scale) else {
        return Err("invalid time scale".into());
    };
    let tick = scaled
        .real_duration(TICK_SIM_MS)
        .max(MIN_REAL_ADVERTISING_INTERVAL);
    let clock: SharedClock = Arc::new(scaled);
    let config = UdpAirConfig {
        port: args.port,
        trajectory: Trajectory::fixed(args.position),
        seed: args.seed,
        ..UdpAirConfig::default()
    };
    let mut radio = UdpRadio::start(config, clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    // Test keys from the seed (reproducible runs); real nodes draw them from
    // the OS.
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0x6b65_7973);
    let mut keys = KeySchedule::new();
    let mut tracker = EncounterTracker::new(0);
    let mut own = Vec::new();
    let mut heard = BTreeSet::new();
    let mut closed = Vec::new();
    let end = UnixTime(START + args.duration);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let now = clock.now();
        if now >= end {
            break;
        }
        rotate(&mut keys, &mut rng, &mut radio, &mut own, now)?;
        closed.extend(tracker.poll_closed(now));
        tokio::select! {
            ev = radio.events().recv() => match ev {
                Some(RadioEvent::Sighting(s)) => {
                    heard.insert(s.frame.id);
                    // Keys first, so the ones active at the sighting exist.
                    rotate(&mut keys, &mut rng, &mut radio, &mut own, clock.now())?;
                    let _ = tracker.handle_sighting(&keys, s.to_sighting());
                }
                Some(RadioEvent::Scan(w)) => tracker.handle_scan(w),
                Some(RadioEvent::Failed(e)) => return Err(e.to_string()),
                None => return Err("the radio stopped".into()),
            },
            _ = ticker.tick() => {}
        }
    }
    closed.extend(tracker.close_all());
    let tokens = closed.into_iter().flat_map(|e| e.tokens).collect();
    Ok(Report {
        own,
        heard,
        tokens,
        air: radio.air_stats(),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("meshtrace-radio-child: {e} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshtrace-radio-child: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = match rt.block_on(run(args)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshtrace-radio-child: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut lines = Vec::new();
    lines.extend(
        report
            .own
            .iter()
            .map(|id| format!("own {}", data_encoding::HEXLOWER.encode(&id.0))),
    );
    lines.extend(
        report
            .heard
            .iter()
            .map(|id| format!("heard {}", data_encoding::HEXLOWER.encode(&id.0))),
    );
    lines.extend(
        report
            .tokens
            .iter()
            .map(|t| format!("token {}", data_encoding::HEXLOWER.encode(&t.0))),
    );
    let a = report.air;
    lines.push(format!(
        "air packets {} own {} bad {} not_listening {} not_received {} heard {} sent {} io_errors {}",
        a.packets,
        a.own,
        a.bad_packets,
        a.not_listening,
        a.not_received,
        a.heard,
        a.packets_sent,
        a.io_errors
    ));
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
