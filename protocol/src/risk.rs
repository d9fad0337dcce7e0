//! Risk scoring of matched encounters.
//!
//! Defaults follow the published European practice (Corona-Warn-App /
//! ECDC): minutes at attenuation ≥ 73 dB are dropped; minutes below 55 dB
//! weigh 1.0, from 55 to 63 dB 0.5, from 63 to 73 dB 0; contacts shorter than
//! 10 minutes are ignored; 15 weighted minutes in one day is a high-risk
//! exposure. Every value is deployment configuration.

use crate::encounter::Encounter;
use crate::time::Day;

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
    Calibrated,
    /// The Corona-Warn-App attenuation buckets, kept for comparison
    /// (`[risk] model = "cwa"`).
    #[default]
    Cwa,
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
    session_gap_seconds: u64,
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
/// Default weighted minutes per day for a high-risk exposure.
pub const DEFAULT_HIGH_RISK_MINUTES: f64 = 15.0;
/// Encounters of one reporter at most this far apart (seconds) form one contact.
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
    /// Sets the high-risk threshold in weighted minutes per day.
    pub fn high_risk_weighted_minutes(mut self, m: f64) -> Self {
        self.high_risk_weighted_minutes = m;
        self
    }
    /// Sets the gap that still joins two encounters into one contact.
    pub fn session_gap_seconds(mut self, s: u64) -> Self {
        self.session_gap_seconds = s;
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
        if self.session_gap_seconds > MAX_SESSION_GAP_SECONDS {
            return Err(RiskConfigError::SessionGap);
        }
        Ok(RiskConfig {
            model: self.model,
            buckets: self.buckets,
            min_contact_minutes: self.min_contact_minutes,
            high_risk_weighted_minutes: self.high_risk_weighted_minutes,
            session_gap_seconds: self.session_gap_seconds,
        })
    }
}

/// The risk of one day's contacts with one reporter.
#[derive(Clone, Debug, PartialEq)]
pub struct DayRisk {
    /// The day.
    pub day: Day,
    /// Weighted minutes over the contacts that passed the minimum duration.
    pub weighted_minutes: f64,
    /// Unweighted minutes at attenuation below the drop threshold, same contacts.
    pub close_minutes: f64,
    /// Contacts (sessions of adjacent encounters) that passed the minimum.
    pub contacts: u32,
    /// Estimated minutes within 2 m over the same contacts: what a person
    /// is told ("about 25 minutes within 2 m"). Under [`RiskModel::Cwa`] it
    /// is the weighted minutes.
    pub estimated_minutes: f64,
    /// `weighted_minutes ≥` the high-risk threshold.
    pub high_risk: bool,
}

impl RiskConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RiskConfigBuilder {
        RiskConfigBuilder {
            model: RiskModel::default(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            min_contact_minutes: DEFAULT_MIN_CONTACT_MINUTES,
            high_risk_weighted_minutes: DEFAULT_HIGH_RISK_MINUTES,
            session_gap_seconds: DEFAULT_SESSION_GAP_SECONDS,
        }
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
    /// High-risk threshold (weighted minutes per day).
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

    /// Weighted seconds of one encounter.
    pub fn weighted_seconds(&self, e: &Encounter) -> f64 {
        e.profile
            .iter()
            .map(|&(db, s)| self.weight(db) * f64::from(s))
            .sum()
    }

    /// Scores the encounters matched for one reporter: per day, an encounter
    /// starting at most the session gap after the contact so far ended joins
    /// that contact; contacts shorter
    /// than the minimum (in unweighted minutes below the drop threshold) are
    /// ignored; the rest add up to the day's weighted minutes. Days are
    /// returned ascending; the result does not depend on input order.
    pub fn score(&self, encounters: &[Encounter]) -> Vec<DayRisk> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixTime;
    use crate::token::EncounterToken;

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
        let r = RiskConfig::default();
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
        let r = RiskConfig::default();
        let d = 20_000 * 86_400;
        // Two adjacent encounters (key rotation) of 8 min each at 50 dB.
        let days = r.score(&[enc(d, vec![(50, 480)]), enc(d + 480, vec![(50, 480)])]);
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].contacts, 1);
        assert!((days[0].weighted_minutes - 16.0).abs() < 1e-9);
        assert!(days[0].high_risk);
    }

    #[test]
    fn short_or_far_contacts_do_not_count() {
        let r = RiskConfig::default();
        let d = 20_000 * 86_400;
        assert!(r.score(&[enc(d, vec![(50, 540)])]).is_empty(), "9 minutes");
        assert!(r.score(&[enc(d, vec![(80, 3600)])]).is_empty(), "too far");
        // 30 minutes at 60 dB weigh 15: high risk exactly at the threshold.
        let days = r.score(&[enc(d, vec![(60, 1800)])]);
        assert!(days[0].high_risk);
        // 20 minutes at 65 dB: counted as a contact, weight 0.
        let days = r.score(&[enc(d, vec![(65, 1200)])]);
        assert_eq!(days[0].weighted_minutes, 0.0);
        assert!(!days[0].high_risk);
    }

    #[test]
    fn separate_days_score_separately_and_order_does_not_matter() {
        let r = RiskConfig::default();
        let d = 20_000 * 86_400;
        let a = enc(d, vec![(50, 600)]);
        let b = enc(d + 86_400, vec![(50, 1000)]);
        let s1 = r.score(&[a.clone(), b.clone()]);
        let s2 = r.score(&[b, a]);
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
