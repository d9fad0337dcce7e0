//! The infection: natural history of one infection, infectiousness over
//! time, and the chance of transmission in a contact.

use super::params::DiseaseParams;
use super::rng::{Purpose, chance, lognormal, range, stream};

/// Minutes per day.
const DAY: f64 = 1440.0;

/// What happens to one infected person (drawn once per person, so the runs
/// with and without tracing agree on it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Course {
    pub(crate) infected_at: i32,
    pub(crate) infector: Option<u32>,
    /// Symptom onset (for asymptomatic infections: when it would have been).
    pub(crate) onset: i32,
    pub(crate) symptomatic: bool,
    /// Gets tested after onset (symptomatic only).
    pub(crate) seeks_test: bool,
    /// Stays home from the day after onset.
    pub(crate) self_isolates: bool,
    /// Onset → test (minutes).
    pub(crate) test_delay: i32,
    /// Test → result (minutes).
    pub(crate) result_delay: i32,
}

impl Course {
    /// Draws the course of `agent`'s infection at `at`.
    pub(crate) fn draw(
        p: &DiseaseParams,
        seed: u64,
        agent: u32,
        at: i32,
        infector: Option<u32>,
    ) -> Course {
        let mut rng = stream(seed, Purpose::Disease, u64::from(agent), 0);
        let incubation =
            lognormal(&mut rng, p.incubation_median_days, p.incubation_sigma).clamp(1.0, 21.0);
        let symptomatic = !chance(&mut rng, p.asymptomatic_share);
        let seeks_test = symptomatic && chance(&mut rng, p.test_seeking);
        let self_isolates = symptomatic && chance(&mut rng, p.self_isolation);
        let test_delay = range(&mut rng, p.onset_to_test_days.0, p.onset_to_test_days.1) * DAY;
        let result_delay = range(&mut rng, p.test_to_result_days.0, p.test_to_result_days.1) * DAY;
        Course {
            infected_at: at,
            infector,
            onset: at + (incubation * DAY) as i32,
            symptomatic,
            seeks_test,
            self_isolates,
            test_delay: test_delay as i32,
            result_delay: result_delay as i32,
        }
    }

    /// Infectiousness at minute `t`, 0 to 1: rising from half at the start
    /// of the presymptomatic phase to 1 at onset, then falling to 0.2 at the
    /// end; at least one day after infection; scaled for asymptomatic
    /// infections.
    pub(crate) fn infectiousness(&self, p: &DiseaseParams, t: i32) -> f64 {
        let start = (self.onset as f64 - p.presymptomatic_days * DAY)
            .max(f64::from(self.infected_at) + DAY);
        let end = self.onset as f64 + p.infectious_days_after_onset * DAY;
        let t = f64::from(t);
        if t < start || t >= end {
            return 0.0;
        }
        let rel = (t - self.onset as f64) / DAY;
        let w = if rel < 0.0 {
            0.5 + 0.5 * (rel + p.presymptomatic_days) / p.presymptomatic_days
        } else {
            1.0 - 0.8 * rel / p.infectious_days_after_onset
        };
        if self.symptomatic {
            w
        } else {
            w * p.asymptomatic_infectiousness
        }
    }

    /// A test at `t` is positive: from two days after infection until ten
    /// days after onset (PCR).
    pub(crate) fn detectable(&self, t: i32) -> bool {
        t >= self.infected_at + 2 * DAY as i32 && t < self.onset + 10 * DAY as i32
    }
}

/// Relative transmission by distance: 1 within 1 m, inverse-square beyond.
pub(crate) fn distance_factor(d: f32) -> f64 {
    let d = f64::from(d).max(1.0);
    1.0 / (d * d)
}
