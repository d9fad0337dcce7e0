//! Risk scoring of matched encounters.
//!
//! Two models (docs/protocol.md §7, docs/risk.md):
//!
//! * [`RiskModel::Calibrated`] (the default): the encounters of one reporter
//!   are grouped into contacts; each contact's level (the median attenuation
//!   of its credited receptions, weighted by credited time) is compared with
//!   a log-distance path-loss model whose shadowing, body loss and device
//!   spread were fitted to measurements ([`CalibratedParams`]). That gives the
//!   confidence that the contact was within 2 m; a contact judged within 2 m
//!   adds its credited minutes to the day's estimated minutes within 2 m, and
//!   15 estimated minutes in one day warn.
//! * [`RiskModel::Cwa`]: the published European practice (Corona-Warn-App /
//!   ECDC), kept for comparison: minutes at attenuation ≥ 73 dB are dropped;
//!   minutes below 55 dB weigh 1.0, from 55 to 63 dB 0.5, from 63 to 73 dB 0;
//!   contacts shorter than 10 minutes are ignored; 15 weighted minutes in one
//!   day is a high-risk exposure.
//!
//! Every value is deployment configuration.

use crate::encounter::{Encounter, MAX_ATTENUATION_DB};
use crate::time::{Day, UnixTime};

/// One attenuation bucket: attenuations below `below_db` (and not in an
/// earlier bucket) count with `weight`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttenuationBucket {
    /// Exclusive upper bound in dB.
    pub below_db: u8,
    /// Weight of a minute in this bucket, 0.0 to 1.0.
    pub weight: f64,
}

/// Which rule turns matched encounters into a risk estimate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RiskModel {
    /// The calibrated, scan-aware estimate of minutes within 2 m
    /// (docs/risk.md; normative in docs/protocol.md §7).
    #[default]
    Calibrated,
    /// The Corona-Warn-App attenuation buckets, kept for comparison
    /// (`[risk] model = "cwa"`).
    Cwa,
}

/// Parameters of the calibrated estimator ([`RiskModel::Calibrated`]): a
/// log-distance path-loss model, `attenuation = attenuation_at_1m_db +
/// body_loss_db + 10 · path_loss_exponent · log10(distance) + contact level
/// error + reception error`. The defaults are the figures of docs/risk.md
/// (fitted to the MIT Lincoln Laboratory BLE RSSI measurements, CC BY 4.0,
/// and taken from the literature where that data has no say); every field
/// is validated by [`RiskConfigBuilder::build`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibratedParams {
    /// Mean attenuation at 1 m between unobstructed, calibrated devices (dB).
    pub attenuation_at_1m_db: f64,
    /// Path-loss exponent.
    pub path_loss_exponent: f64,
    /// Mean extra loss from where the two phones are carried (pocket, bag,
    /// body between them), both ends together (dB).
    pub body_loss_db: f64,
    /// Standard deviation of a contact's level around the model (dB): slow
    /// shadowing (orientation, surroundings), the spread of body loss, and
    /// the residual per-device offsets of sender and receiver. It does not
    /// average out over a contact's receptions.
    pub contact_sigma_db: f64,
    /// Standard deviation of one reception around its contact's level (dB):
    /// fast fading, which the median over many receptions removes.
    pub reception_sigma_db: f64,
    /// The distance that defines a close contact (m).
    pub close_distance_m: f64,
    /// A contact is judged within `close_distance_m` when the confidence
    /// reaches this probability.
    pub min_confidence: f64,
}

/// Default mean attenuation at 1 m (dB): −59 dBm at 1 m from a device
/// advertising a calibrated −14 dBm (docs/risk.md, "Sources").
pub const DEFAULT_ATTENUATION_AT_1M_DB: f64 = 45.0;
/// Default path-loss exponent: 2 in free space, about 3 indoors with
/// obstructions; 2.5 between them (docs/risk.md).
pub const DEFAULT_PATH_LOSS_EXPONENT: f64 = 2.5;
/// Default mean body and carry loss, both ends (dB; fitted, docs/risk.md).
pub const DEFAULT_BODY_LOSS_DB: f64 = 3.6;
/// Default contact-level standard deviation (dB; fitted, docs/risk.md).
pub const DEFAULT_CONTACT_SIGMA_DB: f64 = 8.1;
/// Default per-reception standard deviation (dB; fitted, docs/risk.md).
pub const DEFAULT_RECEPTION_SIGMA_DB: f64 = 5.0;
/// Default close-contact distance (m): ECDC's 2 m.
pub const DEFAULT_CLOSE_DISTANCE_M: f64 = 2.0;
/// Default confidence at which a contact is judged close: recall first
/// (docs/risk.md, "Operating point").
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.3;
/// Default session gap of the calibrated model (seconds): two scan intervals
/// of the longest supported interval ([`crate::MAX_SCAN_CREDIT_SECONDS`]),
/// so one missed window at a 5-minute scan interval does not split a
/// contact.
pub const DEFAULT_CALIBRATED_SESSION_GAP_SECONDS: u64 = 600;
/// Largest configurable standard deviation (dB).
pub const MAX_SIGMA_DB: f64 = 30.0;

impl Default for CalibratedParams {
    fn default() -> CalibratedParams {
        CalibratedParams {
            attenuation_at_1m_db: DEFAULT_ATTENUATION_AT_1M_DB,
            path_loss_exponent: DEFAULT_PATH_LOSS_EXPONENT,
            body_loss_db: DEFAULT_BODY_LOSS_DB,
            contact_sigma_db: DEFAULT_CONTACT_SIGMA_DB,
            reception_sigma_db: DEFAULT_RECEPTION_SIGMA_DB,
            close_distance_m: DEFAULT_CLOSE_DISTANCE_M,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
        }
    }
}

impl CalibratedParams {
    fn validate(&self) -> Result<(), RiskConfigError> {
        let bad = |name: &'static str| Err(RiskConfigError::Calibration(name));
        if !(self.attenuation_at_1m_db.is_finite()
            && (0.0..=120.0).contains(&self.attenuation_at_1m_db))
        {
            return bad("attenuation at 1 m must be within 0 to 120 dB");
        }
        if !(self.path_loss_exponent.is_finite() && (1.0..=6.0).contains(&self.path_loss_exponent))
        {
            return bad("path-loss exponent must be within 1 to 6");
        }
        if !(self.body_loss_db.is_finite() && (0.0..=40.0).contains(&self.body_loss_db)) {
            return bad("body loss must be within 0 to 40 dB");
        }
        if !(self.contact_sigma_db.is_finite()
            && self.contact_sigma_db > 0.0
            && self.contact_sigma_db <= MAX_SIGMA_DB)
        {
            return bad("contact sigma must be above 0 and at most 30 dB");
        }
        if !(self.reception_sigma_db.is_finite()
            && (0.0..=MAX_SIGMA_DB).contains(&self.reception_sigma_db))
        {
            return bad("reception sigma must be within 0 to 30 dB");
        }
        if !(self.close_distance_m.is_finite() && (0.1..=20.0).contains(&self.close_distance_m)) {
            return bad("close distance must be within 0.1 to 20 m");
        }
        if !(self.min_confidence.is_finite()
            && self.min_confidence > 0.0
            && self.min_confidence < 1.0)
        {
            return bad("minimum confidence must be strictly between 0 and 1");
        }
        Ok(())
    }

    /// Mean attenuation (dB) of a contact at exactly the close distance.
    pub fn close_level_db(&self) -> f64 {
        self.attenuation_at_1m_db
            + self.body_loss_db
            + 10.0 * self.path_loss_exponent * self.close_distance_m.log10()
    }

    /// Confidence that a contact whose median attenuation is `level_db`,
    /// measured by `sightings` receptions, was within the close distance
    /// (docs/protocol.md §7.3).
    pub fn confidence(&self, level_db: f64, sightings: u32) -> f64 {
        let n = f64::from(sightings.max(1));
        let fast = self.reception_sigma_db * self.reception_sigma_db * FRAC_PI_2 / n;
        let sigma = (self.contact_sigma_db * self.contact_sigma_db + fast).sqrt();
        normal_cdf((self.close_level_db() - level_db) / sigma)
    }
}

/// π/2: the variance of a median of `n` normal samples is `π/2 · σ²/n`.
const FRAC_PI_2: f64 = std::f64::consts::FRAC_PI_2;

/// The standard normal distribution function, `Φ(z) = erfc(−z/√2) / 2`, with
/// `erfc` by the Chebyshev fit of Numerical Recipes (`erfcc`, fractional
/// error below 1.2 × 10⁻⁷): written out so that independent implementations
/// (the Python vectors) compute the same value (docs/protocol.md §7.3).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let ax = x.abs();
    let t = 1.0 / (1.0 + 0.5 * ax);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * (-ax * ax + poly).exp();
    let erfc = if x >= 0.0 { r } else { 2.0 - r };
    (0.5 * erfc).clamp(0.0, 1.0)
}

/// Most attenuation buckets a configuration may have.
pub const MAX_RISK_BUCKETS: usize = 8;

/// Risk rules.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskConfig {
    model: RiskModel,
    buckets: Vec<AttenuationBucket>,
    min_contact_minutes: u32,
    high_risk_weighted_minutes: f64,
    session_gap_seconds: u64,
    calibrated: CalibratedParams,
}

/// Why a risk configuration is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RiskConfigError {
    /// No buckets or more than [`MAX_RISK_BUCKETS`].
    #[error("risk config needs 1 to {MAX_RISK_BUCKETS} attenuation buckets")]
    BucketCount,
    /// Bucket bounds are not strictly increasing.
    #[error("attenuation bucket bounds must increase strictly")]
    BucketOrder,
    /// A weight outside 0.0..=1.0 (or NaN).
    #[error("attenuation weight {0} is outside 0.0..=1.0")]
    Weight(f64),
    /// Threshold not positive and finite.
    #[error("high-risk threshold must be a positive number of minutes")]
    Threshold,
    /// Minimum contact longer than a day.
    #[error("minimum contact duration must be at most 1440 minutes")]
    MinContact,
    /// Session gap longer than an hour.
    #[error("session gap must be at most 3600 seconds")]
    SessionGap,
    /// A parameter of the calibrated model is out of range.
    #[error("calibrated risk model: {0}")]
    Calibration(&'static str),
}

impl RiskConfigError {
    /// The stable error code of this refusal (docs/protocol.md §16).
    pub fn code(&self) -> &'static str {
        match self {
            RiskConfigError::BucketCount => "risk_bucket_count",
            RiskConfigError::BucketOrder => "risk_bucket_order",
            RiskConfigError::Weight(_) => "risk_bucket_weight",
            RiskConfigError::Threshold => "risk_threshold",
            RiskConfigError::MinContact => "risk_min_contact",
            RiskConfigError::SessionGap => "risk_session_gap",
            RiskConfigError::Calibration(_) => "risk_calibration",
        }
    }
}

impl Default for RiskConfig {
    fn default() -> RiskConfig {
        RiskConfig::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

/// Builder for [`RiskConfig`]; `build` checks cross-field rules.
#[derive(Clone, Debug)]
pub struct RiskConfigBuilder {
    model: RiskModel,
    buckets: Vec<AttenuationBucket>,
    min_contact_minutes: u32,
    high_risk_weighted_minutes: f64,
    /// `None`: the model's default.
    session_gap_seconds: Option<u64>,
    calibrated: CalibratedParams,
}

/// Default attenuation buckets: `<55 dB → 1.0`, `<63 dB → 0.5`, `<73 dB → 0`.
pub const DEFAULT_BUCKETS: [AttenuationBucket; 3] = [
    AttenuationBucket {
        below_db: 55,
        weight: 1.0,
    },
    AttenuationBucket {
        below_db: 63,
        weight: 0.5,
    },
    AttenuationBucket {
        below_db: 73,
        weight: 0.0,
    },
];
/// Default minimum contact duration (minutes).
pub const DEFAULT_MIN_CONTACT_MINUTES: u32 = 10;
/// Default minutes per day for a high-risk exposure (weighted minutes under
/// [`RiskModel::Cwa`], estimated minutes within 2 m under
/// [`RiskModel::Calibrated`]).
pub const DEFAULT_HIGH_RISK_MINUTES: f64 = 15.0;
/// Encounters of one reporter at most this far apart (seconds) form one
/// contact under [`RiskModel::Cwa`] (the calibrated model's default is
/// [`DEFAULT_CALIBRATED_SESSION_GAP_SECONDS`]).
pub const DEFAULT_SESSION_GAP_SECONDS: u64 = 300;
/// Largest configurable session gap (seconds).
pub const MAX_SESSION_GAP_SECONDS: u64 = 3600;

impl RiskConfigBuilder {
    /// Sets the risk model.
    pub fn model(mut self, m: RiskModel) -> Self {
        self.model = m;
        self
    }
    /// Sets the attenuation buckets.
    pub fn buckets(mut self, b: Vec<AttenuationBucket>) -> Self {
        self.buckets = b;
        self
    }
    /// Sets the minimum contact duration in minutes.
    pub fn min_contact_minutes(mut self, m: u32) -> Self {
        self.min_contact_minutes = m;
        self
    }
    /// Sets the high-risk threshold in minutes per day (weighted minutes
    /// under [`RiskModel::Cwa`], estimated minutes within 2 m under
    /// [`RiskModel::Calibrated`]).
    pub fn high_risk_weighted_minutes(mut self, m: f64) -> Self {
        self.high_risk_weighted_minutes = m;
        self
    }
    /// Sets the gap that still joins two encounters into one contact
    /// (default: [`DEFAULT_SESSION_GAP_SECONDS`] under [`RiskModel::Cwa`],
    /// [`DEFAULT_CALIBRATED_SESSION_GAP_SECONDS`] under
    /// [`RiskModel::Calibrated`]).
    pub fn session_gap_seconds(mut self, s: u64) -> Self {
        self.session_gap_seconds = Some(s);
        self
    }
    /// Sets the parameters of the calibrated model.
    pub fn calibrated(mut self, p: CalibratedParams) -> Self {
        self.calibrated = p;
        self
    }
    /// Validates and builds.
    pub fn build(self) -> Result<RiskConfig, RiskConfigError> {
        if self.buckets.is_empty() || self.buckets.len() > MAX_RISK_BUCKETS {
            return Err(RiskConfigError::BucketCount);
        }
        if self
            .buckets
            .windows(2)
            .any(|w| w[0].below_db >= w[1].below_db)
        {
            return Err(RiskConfigError::BucketOrder);
        }
        if let Some(b) = self
            .buckets
            .iter()
            .find(|b| !(0.0..=1.0).contains(&b.weight))
        {
            return Err(RiskConfigError::Weight(b.weight));
        }
        if !(self.high_risk_weighted_minutes.is_finite() && self.high_risk_weighted_minutes > 0.0) {
            return Err(RiskConfigError::Threshold);
        }
        if self.min_contact_minutes > 1440 {
            return Err(RiskConfigError::MinContact);
        }
        let session_gap_seconds = self.session_gap_seconds.unwrap_or(match self.model {
            RiskModel::Calibrated => DEFAULT_CALIBRATED_SESSION_GAP_SECONDS,
            RiskModel::Cwa => DEFAULT_SESSION_GAP_SECONDS,
        });
        if session_gap_seconds > MAX_SESSION_GAP_SECONDS {
            return Err(RiskConfigError::SessionGap);
        }
        self.calibrated.validate()?;
        Ok(RiskConfig {
            model: self.model,
            buckets: self.buckets,
            min_contact_minutes: self.min_contact_minutes,
            high_risk_weighted_minutes: self.high_risk_weighted_minutes,
            session_gap_seconds,
            calibrated: self.calibrated,
        })
    }
}

/// The risk of one day's contacts with one reporter.
#[derive(Clone, Debug, PartialEq)]
pub struct DayRisk {
    /// The day.
    pub day: Day,
    /// [`RiskModel::Cwa`]: weighted minutes over the contacts that passed the
    /// minimum duration. [`RiskModel::Calibrated`]: the heard minutes of
    /// each encounter weighted by its confidence of being within 2 m.
    pub weighted_minutes: f64,
    /// [`RiskModel::Cwa`]: unweighted minutes at attenuation below the drop
    /// threshold, same contacts. [`RiskModel::Calibrated`]: heard (credited)
    /// minutes of all the day's contacts.
    pub close_minutes: f64,
    /// [`RiskModel::Cwa`]: contacts (sessions of adjacent encounters) that
    /// passed the minimum. [`RiskModel::Calibrated`]: contacts heard.
    pub contacts: u32,
    /// Estimated minutes within 2 m: what a person is told ("about 25
    /// minutes within 2 m"). Under [`RiskModel::Cwa`] it is the weighted
    /// minutes; under [`RiskModel::Calibrated`] the heard minutes of the
    /// encounters judged within 2 m.
    pub estimated_minutes: f64,
    /// The day's minutes reach the high-risk threshold (weighted minutes
    /// under [`RiskModel::Cwa`], estimated minutes under
    /// [`RiskModel::Calibrated`]): the person is warned.
    pub high_risk: bool,
}

/// One contact (a session of encounters with one reporter) as the
/// calibrated model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactEstimate {
    /// The day of the contact (of its first encounter).
    pub day: Day,
    /// First sighting.
    pub first_seen: UnixTime,
    /// Last sighting.
    pub last_seen: UnixTime,
    /// Credited minutes with a measured attenuation.
    pub heard_minutes: f64,
    /// The contact's level: median attenuation weighted by credited time
    /// (dB); `None` when nothing was measured.
    pub level_db: Option<u8>,
    /// Confidence that the contact as a whole was within the close distance
    /// (0 to 1), from its level: a summary, not the decision.
    pub confidence: f64,
    /// Estimated minutes within the close distance: the heard minutes of
    /// the contact's encounters judged close (each encounter's own
    /// `confidence ≥ min_confidence`), so that more matched encounters
    /// never lower them.
    pub estimated_minutes: f64,
    /// Σ over the contact's encounters of confidence × heard minutes.
    pub weighted_minutes: f64,
    /// Each encounter with a measured attenuation, as judged, in the
    /// contact's order.
    pub parts: Vec<PartEstimate>,
}

/// One encounter of a contact as the calibrated model judges it
/// (docs/protocol.md §7.3).
#[derive(Clone, Debug, PartialEq)]
pub struct PartEstimate {
    /// Credited minutes with a measured attenuation.
    pub heard_minutes: f64,
    /// The encounter's level: median attenuation weighted by credited time.
    pub level_db: u8,
    /// Confidence that the encounter was within the close distance.
    pub confidence: f64,
}

impl RiskConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RiskConfigBuilder {
        RiskConfigBuilder {
            model: RiskModel::default(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            min_contact_minutes: DEFAULT_MIN_CONTACT_MINUTES,
            high_risk_weighted_minutes: DEFAULT_HIGH_RISK_MINUTES,
            session_gap_seconds: None,
            calibrated: CalibratedParams::default(),
        }
    }

    /// The calibrated model's parameters.
    pub fn calibrated(&self) -> &CalibratedParams {
        &self.calibrated
    }

    /// The gap that still joins two encounters into one contact (seconds).
    pub fn session_gap_seconds(&self) -> u64 {
        self.session_gap_seconds
    }

    /// The risk model.
    pub fn model(&self) -> RiskModel {
        self.model
    }

    /// The buckets.
    pub fn buckets(&self) -> &[AttenuationBucket] {
        &self.buckets
    }
    /// Minimum contact duration (minutes).
    pub fn min_contact_minutes(&self) -> u32 {
        self.min_contact_minutes
    }
    /// High-risk threshold (minutes per day: weighted under
    /// [`RiskModel::Cwa`], estimated under [`RiskModel::Calibrated`]).
    pub fn high_risk_weighted_minutes(&self) -> f64 {
        self.high_risk_weighted_minutes
    }

    /// Attenuation at and above which exposure is dropped.
    pub fn drop_threshold_db(&self) -> u8 {
        self.buckets.last().map(|b| b.below_db).unwrap_or(0)
    }

    /// Weight of one second at `db`.
    pub fn weight(&self, db: u8) -> f64 {
        self.buckets
            .iter()
            .find(|b| db < b.below_db)
            .map(|b| b.weight)
            .unwrap_or(0.0)
    }

    /// Weighted seconds of one encounter whose profile holds attenuations
    /// ([`Encounter::with_attenuations`]).
    fn weighted_seconds(&self, e: &Encounter) -> f64 {
        e.profile
            .iter()
            .map(|&(db, s)| self.weight(db) * f64::from(s))
            .sum()
    }

    /// Groups the encounters of one reporter into contacts: sorted by
    /// (first seen, last seen, first token), an encounter of the same day
    /// starting at most the session gap after the contact so far ended joins
    /// it.
    fn sessions<'a>(&self, encounters: &'a [Encounter]) -> Vec<Vec<&'a Encounter>> {
        let mut sorted: Vec<&Encounter> = encounters.iter().collect();
        sorted.sort_by_key(|e| (e.first_seen, e.last_seen, e.tokens.first().copied()));
        let mut out: Vec<Vec<&Encounter>> = Vec::new();
        let mut end = UnixTime(0);
        for e in sorted {
            match out.last_mut() {
                Some(s)
                    if s[0].day() == e.day()
                        && e.first_seen.0 <= end.0.saturating_add(self.session_gap_seconds) =>
                {
                    end = end.max(e.last_seen);
                    s.push(e);
                }
                _ => {
                    end = e.last_seen;
                    out.push(vec![e]);
                }
            }
        }
        out
    }

    /// The contacts of one reporter as the calibrated model sees them
    /// (docs/protocol.md §7.3), ascending by first sighting; whatever the
    /// configured model. `encounters` hold received levels (§5);
    /// `report_tx_power` is the TX power the reporter's announcement carries
    /// (§10.3), which turns them into attenuations.
    pub fn contacts(&self, encounters: &[Encounter], report_tx_power: i8) -> Vec<ContactEstimate> {
        let encounters = with_attenuations(encounters, report_tx_power);
        self.contacts_of_attenuations(&encounters)
    }

    fn contacts_of_attenuations(&self, encounters: &[Encounter]) -> Vec<ContactEstimate> {
        self.sessions(encounters)
            .iter()
            .map(|s| self.estimate(s))
            .collect()
    }

    fn estimate(&self, session: &[&Encounter]) -> ContactEstimate {
        let p = &self.calibrated;
        let mut profile: std::collections::BTreeMap<u8, u64> = std::collections::BTreeMap::new();
        let mut sightings = 0u32;
        let mut last_seen = UnixTime(0);
        let mut parts = Vec::new();
        for e in session {
            sightings = sightings.saturating_add(e.sightings);
            last_seen = last_seen.max(e.last_seen);
            let mut own: std::collections::BTreeMap<u8, u64> = std::collections::BTreeMap::new();
            for &(db, secs) in &e.profile {
                if db < MAX_ATTENUATION_DB {
                    *profile.entry(db).or_insert(0) += u64::from(secs);
                    *own.entry(db).or_insert(0) += u64::from(secs);
                }
            }
            let (total, level) = weighted_median(&own);
            if let Some(level) = level {
                parts.push(PartEstimate {
                    heard_minutes: total as f64 / 60.0,
                    level_db: level,
                    confidence: p.confidence(f64::from(level), e.sightings),
                });
            }
        }
        let (total, level) = weighted_median(&profile);
        let confidence = level.map_or(0.0, |l| p.confidence(f64::from(l), sightings));
        let estimated_minutes = parts
            .iter()
            .filter(|q| q.confidence >= p.min_confidence)
            .map(|q| q.heard_minutes)
            .sum();
        let weighted_minutes = parts.iter().map(|q| q.confidence * q.heard_minutes).sum();
        ContactEstimate {
            day: session.first().map_or(Day(0), |e| e.day()),
            first_seen: session.first().map_or(UnixTime(0), |e| e.first_seen),
            last_seen,
            heard_minutes: total as f64 / 60.0,
            level_db: level,
            confidence,
            estimated_minutes,
            weighted_minutes,
            parts,
        }
    }

    /// Scores the encounters matched for one reporter: per day, an encounter
    /// starting at most the session gap after the contact so far ended joins
    /// that contact. [`RiskModel::Cwa`]: contacts shorter than the minimum
    /// (in unweighted minutes below the drop threshold) are ignored; the rest
    /// add up to the day's weighted minutes. [`RiskModel::Calibrated`]: every
    /// contact heard counts; the minutes of those judged within 2 m add up to
    /// the day's estimated minutes. Days are returned ascending; the result
    /// does not depend on input order.
    ///
    /// `encounters` hold the receiver's received levels (§5, §6);
    /// `report_tx_power` is the reporter's calibrated TX power from its
    /// announcement (§10.3). Each profile entry is scored at the attenuation
    /// `clamp(report_tx_power + level, 0, 255)` (255, unknown, stays 255).
    pub fn score(&self, encounters: &[Encounter], report_tx_power: i8) -> Vec<DayRisk> {
        let encounters = with_attenuations(encounters, report_tx_power);
        match self.model {
            RiskModel::Calibrated => self.score_calibrated(&encounters),
            RiskModel::Cwa => self.score_cwa(&encounters),
        }
    }

    fn score_calibrated(&self, encounters: &[Encounter]) -> Vec<DayRisk> {
        let mut out: Vec<DayRisk> = Vec::new();
        for c in self.contacts_of_attenuations(encounters) {
            if c.level_db.is_none() {
                continue;
            }
            let entry = match out.last_mut() {
                Some(d) if d.day == c.day => d,
                _ => {
                    out.push(DayRisk {
                        day: c.day,
                        weighted_minutes: 0.0,
                        close_minutes: 0.0,
                        contacts: 0,
                        estimated_minutes: 0.0,
                        high_risk: false,
                    });
                    let n = out.len() - 1;
                    &mut out[n]
                }
            };
            entry.contacts += 1;
            entry.close_minutes += c.heard_minutes;
            entry.weighted_minutes += c.weighted_minutes;
            entry.estimated_minutes += c.estimated_minutes;
        }
        for d in &mut out {
            d.high_risk = d.estimated_minutes >= self.high_risk_weighted_minutes;
        }
        out
    }

    fn score_cwa(&self, encounters: &[Encounter]) -> Vec<DayRisk> {
        let mut sorted: Vec<&Encounter> = encounters.iter().collect();
        sorted.sort_by_key(|e| (e.first_seen, e.last_seen, e.tokens.first().copied()));
        let mut out: Vec<DayRisk> = Vec::new();
        let drop = self.drop_threshold_db();
        let mut i = 0;
        while i < sorted.len() {
            let day = sorted[i].day();
            // One session: encounters of the same day within the gap.
            let mut end = sorted[i].last_seen;
            let mut close = 0u64;
            let mut weighted = 0.0;
            let mut j = i;
            while j < sorted.len()
                && sorted[j].day() == day
                && sorted[j].first_seen.0 <= end.0.saturating_add(self.session_gap_seconds)
            {
                end = end.max(sorted[j].last_seen);
                close += sorted[j].seconds_below(drop);
                weighted += self.weighted_seconds(sorted[j]);
                j += 1;
            }
            i = j;
            let entry = match out.last_mut() {
                Some(d) if d.day == day => d,
                _ => {
                    out.push(DayRisk {
                        day,
                        weighted_minutes: 0.0,
                        close_minutes: 0.0,
                        contacts: 0,
                        estimated_minutes: 0.0,
                        high_risk: false,
                    });
                    let n = out.len() - 1;
                    &mut out[n]
                }
            };
            if close >= u64::from(self.min_contact_minutes) * 60 {
                entry.contacts += 1;
                entry.close_minutes += close as f64 / 60.0;
                entry.weighted_minutes += weighted / 60.0;
            }
        }
        for d in &mut out {
            d.estimated_minutes = d.weighted_minutes;
            d.high_risk = d.weighted_minutes >= self.high_risk_weighted_minutes;
        }
        out.retain(|d| d.contacts > 0);
        out
    }
}

/// The seconds of a profile (dB → seconds) and its level: the smallest dB
/// at which the running sum of seconds reaches half the total (§7.3), `None`
/// when the total is 0.
fn weighted_median(profile: &std::collections::BTreeMap<u8, u64>) -> (u64, Option<u8>) {
    let total: u64 = profile.values().sum();
    let half = 0.5 * total as f64;
    let mut cum = 0u64;
    let level = profile.iter().find_map(|(&db, &secs)| {
        cum += secs;
        (total > 0 && cum as f64 >= half).then_some(db)
    });
    (total, level)
}

/// The encounters with their profiles as attenuations under `tx_power`.
fn with_attenuations(encounters: &[Encounter], tx_power: i8) -> Vec<Encounter> {
    encounters
        .iter()
        .map(|e| e.with_attenuations(tx_power))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixTime;
    use crate::token::EncounterToken;

    fn cwa() -> RiskConfig {
        RiskConfig::builder().model(RiskModel::Cwa).build().unwrap()
    }

    fn enc(start: u64, profile: Vec<(u8, u32)>) -> Encounter {
        let secs: u32 = profile.iter().map(|p| p.1).sum();
        Encounter {
            tokens: vec![EncounterToken([start as u8; 16])],
            first_seen: UnixTime(start),
            last_seen: UnixTime(start + u64::from(secs)),
            profile,
            sightings: 10,
        }
    }

    #[test]
    fn weights_follow_defaults() {
        let r = cwa();
        assert_eq!(r.weight(40), 1.0);
        assert_eq!(r.weight(54), 1.0);
        assert_eq!(r.weight(55), 0.5);
        assert_eq!(r.weight(62), 0.5);
        assert_eq!(r.weight(63), 0.0);
        assert_eq!(r.weight(73), 0.0);
        assert_eq!(r.drop_threshold_db(), 73);
    }

    #[test]
    fn fifteen_close_minutes_is_high_risk() {
        let r = cwa();
        let d = 20_000 * 86_400;
        // Two adjacent encounters (key rotation) of 8 min each at 50 dB.
        let days = r.score(&[enc(d, vec![(50, 480)]), enc(d + 480, vec![(50, 480)])], 0);
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].contacts, 1);
        assert!((days[0].weighted_minutes - 16.0).abs() < 1e-9);
        assert!(days[0].high_risk);
    }

    #[test]
    fn short_or_far_contacts_do_not_count() {
        let r = cwa();
        let d = 20_000 * 86_400;
        assert!(
            r.score(&[enc(d, vec![(50, 540)])], 0).is_empty(),
            "9 minutes"
        );
        assert!(
            r.score(&[enc(d, vec![(80, 3600)])], 0).is_empty(),
            "too far"
        );
        // 30 minutes at 60 dB weigh 15: high risk exactly at the threshold.
        let days = r.score(&[enc(d, vec![(60, 1800)])], 0);
        assert!(days[0].high_risk);
        // 20 minutes at 65 dB: counted as a contact, weight 0.
        let days = r.score(&[enc(d, vec![(65, 1200)])], 0);
        assert_eq!(days[0].weighted_minutes, 0.0);
        assert!(!days[0].high_risk);
    }

    #[test]
    fn levels_are_scored_with_the_report_tx_power() {
        let r = cwa();
        let d = 20_000 * 86_400;
        // 30 minutes at a level of 68 dB: from a reporter at −8 dBm that is
        // 60 dB (weight 0.5, exactly high risk); at 0 dBm, 68 dB (weight 0).
        let e = [enc(d, vec![(68, 1800)])];
        let at_minus_8 = r.score(&e, -8);
        assert!((at_minus_8[0].weighted_minutes - 15.0).abs() < 1e-9);
        assert!(at_minus_8[0].high_risk);
        let at_0 = r.score(&e, 0);
        assert_eq!(at_0[0].weighted_minutes, 0.0);
        // At +10 dBm, 78 dB: past the drop threshold, no contact at all.
        assert!(r.score(&e, 10).is_empty());
        // An unknown level stays unknown whatever the TX power.
        assert!(r.score(&[enc(d, vec![(255, 3600)])], -128).is_empty());
        let cal = RiskConfig::default();
        assert!(cal.score(&[enc(d, vec![(255, 3600)])], -128).is_empty());
        let c = cal.contacts(&e, -8);
        assert_eq!(c[0].level_db, Some(60));
    }

    #[test]
    fn separate_days_score_separately_and_order_does_not_matter() {
        let r = cwa();
        let d = 20_000 * 86_400;
        let a = enc(d, vec![(50, 600)]);
        let b = enc(d + 86_400, vec![(50, 1000)]);
        let s1 = r.score(&[a.clone(), b.clone()], 0);
        let s2 = r.score(&[b, a], 0);
        assert_eq!(s1, s2);
        assert_eq!(s1.len(), 2);
        assert!(!s1[0].high_risk);
        assert!(s1[1].high_risk);
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert!(RiskConfig::builder().buckets(vec![]).build().is_err());
        let b = |d, w| AttenuationBucket {
            below_db: d,
            weight: w,
        };
        assert_eq!(
            RiskConfig::builder()
                .buckets(vec![b(60, 1.0), b(50, 0.5)])
                .build(),
            Err(RiskConfigError::BucketOrder)
        );
        assert_eq!(
            RiskConfig::builder().buckets(vec![b(60, 1.5)]).build(),
            Err(RiskConfigError::Weight(1.5))
        );
        assert!(
            RiskConfig::builder()
                .high_risk_weighted_minutes(f64::NAN)
                .build()
                .is_err()
        );
    }
}
