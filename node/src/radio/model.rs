//! The radio propagation model shared by the simulated airs (UDP and
//! in-memory): log-distance path loss with log-normal shadowing, per-device
//! offsets, a range cutoff, random loss and receiver duty cycling.
//!
//! Defaults follow published phone measurements:
//! * **−59 dBm at 1 m** for a phone advertising at 0 dBm reference power —
//!   the iBeacon "measured power" convention and the figure reported for
//!   phones in the DP-3T and GAEN calibration work. Simulated devices
//!   advertise a calibrated TX power of **−14 dBm** (Android's low-power
//!   advertising level is −15 dBm), so the attenuation at 1 m is
//!   `−14 − (−59) = 45 dB`, close to free-space loss at 2.4 GHz (40 dB at
//!   1 m) plus antenna and body losses.
//! * **Path-loss exponent 2.5**: 2 in free space, about 3 indoors with
//!   obstructions (Leith & Farrell, "Coronavirus contact tracing: evaluating
//!   the potential of using Bluetooth received signal strength for
//!   proximity detection", 2020).
//! * **Slow shadowing σ = 6.4 dB**, **Rayleigh fast fading** and **carry
//!   (body) loss** by carry position: fitted to the MIT Lincoln Laboratory
//!   BLE RSSI measurements at 1.83 m (`scripts/fit-mitll.py`, docs/risk.md
//!   "Calibration"; data © 2020 Massachusetts Institute of Technology, CC BY
//!   4.0). Slow shadowing (orientation, surroundings) is one draw per contact;
//!   fading is one draw per reception; the carry loss is one draw per phone
//!   and stay, at each end of a link.
//! * **Per-device offsets**: TX and RX offsets drawn once per device with
//!   σ = 3 dB, after calibration (Google's calibration table corrects
//!   per-model differences of up to ~30 dB; what remains is smaller). The
//!   MIT LL data holds one receiver and cannot tell this apart.
//!
//! Two ways to draw a reception: [`PathLossModel::receive`] applies one
//! normal draw of σ [`PathLossModel::shadowing_sigma_db`] per reception (the
//! stateless airs, which have no notion of a contact);
//! [`PathLossModel::receive_faded`] takes the contact's slow shadowing and
//! a fading draw separately (the simulator), which is what the calibration
//! describes.

/// Parameters of the simulated air.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathLossModel {
    /// RSSI at 1 m for 0 dBm reference power, in dBm.
    pub rssi_at_1m_dbm: f64,
    /// Path-loss exponent.
    pub exponent: f64,
    /// Standard deviation of log-normal (slow) shadowing, dB: one draw per
    /// contact in [`PathLossModel::receive_faded`], per reception in
    /// [`PathLossModel::receive`].
    pub shadowing_sigma_db: f64,
    /// Whether [`PathLossModel::receive_faded`] applies Rayleigh fading.
    pub rayleigh_fading: bool,
    /// Receptions beyond this distance never happen (m).
    pub max_range_m: f64,
    /// Receptions weaker than this never happen (dBm).
    pub sensitivity_dbm: f64,
    /// Probability that a reception in range is lost anyway.
    pub loss_probability: f64,
}

/// Calibrated TX power simulated devices advertise (dBm).
pub const SIM_TX_POWER_DBM: i8 = -14;
/// Standard deviation of per-device TX/RX offsets (dB).
pub const DEVICE_OFFSET_SIGMA_DB: f64 = 3.0;
/// Slow shadowing σ fitted to the MIT LL data (dB): the spread of 30-second
/// collect medians at 1.83 m across environments, user rotations and repeats,
/// carry loss removed (docs/risk.md).
pub const SLOW_SHADOWING_SIGMA_DB: f64 = 6.4;
/// Share of the variance of one reception that is slow shadowing, for
/// callers that split one normal draw into a slow and a fast part: 6.4² over
/// 6.4² + 5.57² (Rayleigh fading's standard deviation in dB).
pub const SLOW_SHADOWING_SHARE: f64 = 0.57;

/// Where a phone is carried, with its extra loss fitted to the MIT LL data
/// (collect medians against `held_to_ear`, averaged over environments; an
/// iPhone X receiving iPhones 1.83 m away).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CarryPosition {
    /// Held in the hand or to the ear: the reference (0 dB).
    Held,
    /// Front trouser pocket.
    FrontPocket,
    /// Back trouser pocket (the body is more often in the way).
    BackPocket,
    /// In a bag or purse.
    Bag,
}

impl CarryPosition {
    /// Every position; a phone is in each with equal probability (the
    /// data's design: it has no shares of real-life carrying).
    pub const ALL: [CarryPosition; 4] = [
        CarryPosition::Held,
        CarryPosition::FrontPocket,
        CarryPosition::BackPocket,
        CarryPosition::Bag,
    ];

    /// Extra attenuation at this end of a link (dB).
    pub fn loss_db(self) -> f64 {
        match self {
            CarryPosition::Held => 0.0,
            CarryPosition::FrontPocket => 0.6,
            CarryPosition::BackPocket => 4.7,
            CarryPosition::Bag => 1.9,
        }
    }

    /// The position for a uniform sample `u` in `[0, 1)`.
    pub fn draw(u: f64) -> CarryPosition {
        let i = (u.clamp(0.0, 1.0) * Self::ALL.len() as f64) as usize;
        Self::ALL[i.min(Self::ALL.len() - 1)]
    }
}

/// Rayleigh fading in dB for a uniform sample `u` in `[0, 1)`: the received
/// power is exponentially distributed, `10·log10(E / ln 2)` with
/// `E = −ln(1 − u)`, so its median is 0 dB; deep fades (1 % below −18 dB)
/// and a short upper tail (99 % at +8 dB), as in the MIT LL receptions
/// around their collect medians (docs/risk.md).
pub fn rayleigh_fade_db(u: f64) -> f64 {
    // Keep log finite at u = 0 (a fade of about −160 dB, i.e. lost).
    let e = (-(-u.clamp(0.0, 1.0 - f64::EPSILON)).ln_1p()).max(1e-16);
    10.0 * (e / std::f64::consts::LN_2).log10()
}

impl Default for PathLossModel {
    fn default() -> PathLossModel {
        PathLossModel {
            rssi_at_1m_dbm: -59.0,
            exponent: 2.5,
            shadowing_sigma_db: SLOW_SHADOWING_SIGMA_DB,
            rayleigh_fading: true,
            max_range_m: 20.0,
            sensitivity_dbm: -100.0,
            loss_probability: 0.0,
        }
    }
}

/// Why a model is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid radio model: {0}")]
pub struct ModelError(pub &'static str);

impl PathLossModel {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.exponent.is_finite() && (1.0..=6.0).contains(&self.exponent)) {
            return Err(ModelError("exponent must be within 1.0..=6.0"));
        }
        if !(self.shadowing_sigma_db.is_finite() && (0.0..=20.0).contains(&self.shadowing_sigma_db))
        {
            return Err(ModelError("shadowing sigma must be within 0..=20 dB"));
        }
        if !(self.max_range_m.is_finite() && self.max_range_m > 0.0) {
            return Err(ModelError("range cutoff must be positive"));
        }
        if !(0.0..=1.0).contains(&self.loss_probability) {
            return Err(ModelError("loss probability must be within 0..=1"));
        }
        if !self.rssi_at_1m_dbm.is_finite() || !self.sensitivity_dbm.is_finite() {
            return Err(ModelError("RSSI figures must be finite"));
        }
        Ok(())
    }

    /// Mean RSSI (dBm) at `distance_m` for a sender advertising `tx_power`
    /// (dBm, calibrated) with device offsets, before shadowing.
    pub(crate) fn mean_rssi(&self, distance_m: f64, tx_power_dbm: f64, offsets_db: f64) -> f64 {
        let d = distance_m.max(0.1);
        // The 1 m figure is for 0 dBm reference; our devices advertise their
        // calibrated power, which the 1 m figure already accounts for at
        // SIM_TX_POWER_DBM.
        self.rssi_at_1m_dbm + (tx_power_dbm - f64::from(SIM_TX_POWER_DBM))
            - 10.0 * self.exponent * d.log10()
            + offsets_db
    }

    /// One reception: `None` when out of range, below sensitivity or lost;
    /// otherwise the RSSI in whole dBm. `gauss` is a standard normal sample,
    /// `uniform` a sample in `[0, 1)`.
    pub fn receive(
        &self,
        distance_m: f64,
        tx_power_dbm: f64,
        offsets_db: f64,
        gauss: f64,
        uniform: f64,
    ) -> Option<i16> {
        if !(distance_m.is_finite()) || distance_m > self.max_range_m {
            return None;
        }
        if uniform < self.loss_probability {
            return None;
        }
        let rssi =
            self.mean_rssi(distance_m, tx_power_dbm, offsets_db) + gauss * self.shadowing_sigma_db;
        if rssi < self.sensitivity_dbm {
            return None;
        }
        // Real radios report whole dBm below the "unknown" marker 127.
        Some(rssi.round().clamp(-127.0, 20.0) as i16)
    }

    /// One reception within a contact: `slow_gauss` is the contact's
    /// standard normal slow-shadowing draw (scaled by
    /// [`PathLossModel::shadowing_sigma_db`]), `fade_uniform` a uniform
    /// sample for this reception's Rayleigh fading (ignored without
    /// [`PathLossModel::rayleigh_fading`]), `loss_uniform` the loss draw;
    /// carry losses belong in `offsets_db` (negative: weaker). `None` when
    /// out of range, below sensitivity or lost.
    pub fn receive_faded(
        &self,
        distance_m: f64,
        tx_power_dbm: f64,
        offsets_db: f64,
        slow_gauss: f64,
        fade_uniform: f64,
        loss_uniform: f64,
    ) -> Option<i16> {
        let fade = if self.rayleigh_fading {
            rayleigh_fade_db(fade_uniform)
        } else {
            0.0
        };
        let zero_shadow = PathLossModel {
            shadowing_sigma_db: 0.0,
            ..*self
        };
        zero_shadow.receive(
            distance_m,
            tx_power_dbm,
            offsets_db + slow_gauss * self.shadowing_sigma_db + fade,
            0.0,
            loss_uniform,
        )
    }
}

/// Receiver duty cycle: the scanner listens `window` out of every
/// `interval` (both ms). Listening all the time (`window == interval`) finds
/// every advertisement but costs the most battery; Android's low-power scan
/// mode listens 512 ms every 5 s (~10 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DutyCycle {
    /// Listening time per interval (ms).
    pub scan_window_ms: u64,
    /// Interval (ms).
    pub scan_interval_ms: u64,
    /// Advertising interval (ms): how often a device repeats its frame.
    pub advertising_interval_ms: u64,
}

impl Default for DutyCycle {
    fn default() -> DutyCycle {
        // Balanced: listen 20 % (1 s of every 5 s); advertise every 250 ms
        // (GAEN advertises every 200–270 ms).
        DutyCycle {
            scan_window_ms: 1_000,
            scan_interval_ms: 5_000,
            advertising_interval_ms: 250,
        }
    }
}

impl DutyCycle {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.scan_interval_ms == 0 || self.scan_window_ms == 0 {
            return Err(ModelError("scan window and interval must be positive"));
        }
        if self.scan_window_ms > self.scan_interval_ms {
            return Err(ModelError("scan window cannot exceed the scan interval"));
        }
        if !(20..=10_240).contains(&self.advertising_interval_ms) {
            return Err(ModelError(
                "advertising interval must be within 20..=10240 ms (BLE limits)",
            ));
        }
        Ok(())
    }

    /// True when the scanner listens at `millis` (phase from the epoch).
    pub fn listening(&self, millis: u64) -> bool {
        millis % self.scan_interval_ms < self.scan_window_ms
    }
}

/// A position on the simulated floor, in metres.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Position {
    /// East, m.
    pub x: f64,
    /// North, m.
    pub y: f64,
}

impl Position {
    /// Distance to `other` in metres.
    pub fn distance(&self, other: &Position) -> f64 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2)).sqrt()
    }
}

/// Where a simulated device is over time: waypoints `(unix seconds,
/// position)`, linearly interpolated, constant before the first and after the
/// last. A single waypoint is a fixed position.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Trajectory {
    waypoints: Vec<(u64, Position)>,
}

impl Trajectory {
    /// A device that never moves.
    pub fn fixed(p: Position) -> Trajectory {
        Trajectory {
            waypoints: vec![(0, p)],
        }
    }

    /// A scripted path; waypoints are sorted by time. `None` when empty or
    /// when a coordinate is not finite.
    pub fn new(mut waypoints: Vec<(u64, Position)>) -> Option<Trajectory> {
        if waypoints.is_empty()
            || waypoints
                .iter()
                .any(|(_, p)| !p.x.is_finite() || !p.y.is_finite())
        {
            return None;
        }
        waypoints.sort_by_key(|w| w.0);
        Some(Trajectory { waypoints })
    }

    /// The position at `t` (unix seconds, fractional).
    pub fn at(&self, t: f64) -> Position {
        let Some(first) = self.waypoints.first() else {
            return Position::default();
        };
        if t <= first.0 as f64 {
            return first.1;
        }
        for w in self.waypoints.windows(2) {
            let (t0, p0) = (w[0].0 as f64, w[0].1);
            let (t1, p1) = (w[1].0 as f64, w[1].1);
            if t <= t1 {
                let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
                return Position {
                    x: p0.x + f * (p1.x - p0.x),
                    y: p0.y + f * (p1.y - p0.y),
                };
            }
        }
        self.waypoints.last().map(|w| w.1).unwrap_or_default()
    }
}

/// A uniform sample in `[0, 1)` with 53 random bits.
pub fn uniform(rng: &mut impl rand_core::Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal sample drawn from `rng` (`rand_distr`'s ziggurat
/// sampler: deterministic for a seeded `rng`).
pub fn standard_normal<R: rand_core::Rng + ?Sized>(rng: &mut R) -> f64 {
    use rand_distr::Distribution as _;
    rand_distr::StandardNormal.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attenuation_at_reference_distances() {
        let m = PathLossModel::default();
        let tx = f64::from(SIM_TX_POWER_DBM);
        let att = |d: f64| tx - m.mean_rssi(d, tx, 0.0);
        assert!((att(1.0) - 45.0).abs() < 1e-9);
        assert!((att(2.0) - 52.53).abs() < 0.01);
        assert!((att(10.0) - 70.0).abs() < 1e-9);
    }

    #[test]
    fn cutoffs_apply() {
        let m = PathLossModel::default();
        let tx = f64::from(SIM_TX_POWER_DBM);
        assert!(m.receive(30.0, tx, 0.0, 0.0, 0.5).is_none(), "beyond range");
        assert!(m.receive(1.0, tx, 0.0, 0.0, 0.5).is_some());
        let lossy = PathLossModel {
            loss_probability: 0.3,
            ..m
        };
        assert!(lossy.receive(1.0, tx, 0.0, 0.0, 0.2).is_none());
        assert!(lossy.receive(1.0, tx, 0.0, 0.0, 0.4).is_some());
        let deaf = PathLossModel {
            sensitivity_dbm: -60.0,
            ..m
        };
        assert!(deaf.receive(5.0, tx, 0.0, 0.0, 0.5).is_none());
    }

    #[test]
    fn duty_cycle_and_validation() {
        let d = DutyCycle::default();
        assert!(d.validate().is_ok());
        assert!(d.listening(0));
        assert!(d.listening(999));
        assert!(!d.listening(1_000));
        assert!(d.listening(5_000));
        let bad = DutyCycle {
            scan_window_ms: 6_000,
            ..d
        };
        assert!(bad.validate().is_err());
        assert!(PathLossModel::default().validate().is_ok());
        let bad = PathLossModel {
            exponent: f64::NAN,
            ..PathLossModel::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn rayleigh_fading_matches_its_quantiles() {
        // Quantiles of 10·log10(E / ln 2), E ~ Exp(1): docs/risk.md.
        assert!(rayleigh_fade_db(0.5).abs() < 1e-9, "median 0 dB");
        assert!((rayleigh_fade_db(0.01) - -18.4).abs() < 0.1);
        assert!((rayleigh_fade_db(0.99) - 8.2).abs() < 0.1);
        assert!(rayleigh_fade_db(0.0).is_finite());
        assert!(rayleigh_fade_db(1.0).is_finite());
        // Monotone.
        let q: Vec<f64> = (1..100)
            .map(|i| rayleigh_fade_db(f64::from(i) / 100.0))
            .collect();
        assert!(q.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn faded_receptions_follow_the_slow_draw_and_carry_loss() {
        let m = PathLossModel::default();
        let tx = f64::from(SIM_TX_POWER_DBM);
        let base = m.receive_faded(1.0, tx, 0.0, 0.0, 0.5, 0.5).unwrap();
        assert_eq!(base, -59, "median fade, no shadowing: the 1 m figure");
        let slow = m.receive_faded(1.0, tx, 0.0, 1.0, 0.5, 0.5).unwrap();
        assert_eq!(slow, (-59.0 + SLOW_SHADOWING_SIGMA_DB).round() as i16);
        let pocket = -CarryPosition::BackPocket.loss_db();
        let worse = m.receive_faded(1.0, tx, pocket, 0.0, 0.5, 0.5).unwrap();
        assert_eq!(worse, (-59.0 - 4.7_f64).round() as i16);
        assert!(m.receive_faded(30.0, tx, 0.0, 0.0, 0.5, 0.5).is_none());
        assert_eq!(CarryPosition::draw(0.0), CarryPosition::Held);
        assert_eq!(CarryPosition::draw(0.99), CarryPosition::Bag);
        assert_eq!(CarryPosition::draw(1.0), CarryPosition::Bag);
    }

    #[test]
    fn trajectories_interpolate() {
        let p = |x, y| Position { x, y };
        let t = Trajectory::new(vec![(200, p(10.0, 0.0)), (100, p(0.0, 0.0))]).unwrap();
        assert_eq!(t.at(50.0), p(0.0, 0.0));
        assert_eq!(t.at(150.0), p(5.0, 0.0));
        assert_eq!(t.at(500.0), p(10.0, 0.0));
        assert!(Trajectory::new(vec![]).is_none());
        assert!(Trajectory::new(vec![(0, p(f64::NAN, 0.0))]).is_none());
        assert_eq!(p(0.0, 0.0).distance(&p(3.0, 4.0)), 5.0);
    }

    #[test]
    fn standard_normal_has_the_right_moments() {
        use rand_core::SeedableRng as _;
        // Standard errors for N draws: mean 1/sqrt(N) ≈ 0.0032, variance
        // sqrt(2/N) ≈ 0.0045, share beyond ±1.96 sqrt(0.05 * 0.95 / N) ≈
        // 0.0007; each bound is about 4–5 of them.
        const N: usize = 100_000;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let xs: Vec<f64> = (0..N).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / N as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / N as f64;
        let tails = xs.iter().filter(|x| x.abs() > 1.96).count() as f64 / N as f64;
        assert!(mean.abs() < 0.015, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        assert!((tails - 0.05).abs() < 0.003, "{tails}");
        // The same seed gives the same samples.
        let mut again = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        assert!(xs[..100].iter().all(|&x| x == standard_normal(&mut again)));
    }
}
