//! Protocol time: Unix seconds, 15-minute epochs and UTC days.
//!
//! The protocol never reads a clock. Every function that depends on time takes
//! `now` (or the time of an observation) as a [`UnixTime`] argument.

use core::fmt;

/// Length of one epoch (one rotating ID) in seconds: 15 minutes.
pub const EPOCH_SECONDS: u64 = 900;
/// Length of one protocol day in seconds (UTC days).
pub const DAY_SECONDS: u64 = 86_400;
/// Number of epochs in one day.
pub const EPOCHS_PER_DAY: u64 = DAY_SECONDS / EPOCH_SECONDS;
/// Default retention window in days: encounters, tokens and announcements
/// older than this are forgotten (DESIGN §2.7, 14 days).
pub const RETENTION_DAYS: u32 = 14;

/// A point in time, in whole seconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The epoch this instant falls in: `floor(seconds / 900)`.
    pub fn epoch(self) -> Epoch {
        Epoch((self.0 / EPOCH_SECONDS) as u32)
    }

    /// The UTC day this instant falls in: `floor(seconds / 86400)`.
    pub fn day(self) -> Day {
        Day((self.0 / DAY_SECONDS) as u32)
    }

    /// `self + secs`, saturating at the maximum.
    pub fn plus(self, secs: u64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// `self - secs`, saturating at zero.
    pub fn minus(self, secs: u64) -> UnixTime {
        UnixTime(self.0.saturating_sub(secs))
    }

    /// Seconds from `earlier` to `self`, or zero when `earlier` is later.
    pub fn seconds_since(self, earlier: UnixTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The UTC date and time, to the minute: `2026-12-02 14:05 UTC` (people
/// read it in messages; the protocol never shows raw seconds).
impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0 % DAY_SECONDS;
        write!(f, "{} {:02}:{:02} UTC", self.day(), s / 3600, s / 60 % 60)
    }
}

/// A 15-minute interval: `floor(unix_seconds / 900)`. One rotating ID is
/// broadcast per epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u32);

impl Epoch {
    /// First second of the epoch.
    pub fn start(self) -> UnixTime {
        UnixTime(u64::from(self.0) * EPOCH_SECONDS)
    }

    /// First second after the epoch.
    pub fn end(self) -> UnixTime {
        UnixTime((u64::from(self.0) + 1) * EPOCH_SECONDS)
    }

    /// The UTC day the epoch belongs to.
    pub fn day(self) -> Day {
        self.start().day()
    }

    /// The next epoch.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

/// A UTC day: `floor(unix_seconds / 86400)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Day(pub u32);

impl Day {
    /// First second of the day.
    pub fn start(self) -> UnixTime {
        UnixTime(u64::from(self.0) * DAY_SECONDS)
    }

    /// First second after the day.
    pub fn end(self) -> UnixTime {
        UnixTime((u64::from(self.0) + 1) * DAY_SECONDS)
    }

    /// `self + days`, saturating.
    pub fn plus(self, days: u32) -> Day {
        Day(self.0.saturating_add(days))
    }

    /// `self - days`, saturating at zero.
    pub fn minus(self, days: u32) -> Day {
        Day(self.0.saturating_sub(days))
    }

    /// The civil date (year, month, day) of this UTC day.
    pub fn to_civil(self) -> (i64, u32, u32) {
        civil_from_days(i64::from(self.0))
    }

    /// The day of a civil (proleptic Gregorian) date, or `None` when the date
    /// is invalid or before 1970-01-01.
    pub fn from_civil(year: i64, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        u32::try_from(days).ok().map(Day)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.to_civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_day_boundaries() {
        assert_eq!(UnixTime(0).to_string(), "1970-01-01 00:00 UTC");
        assert_eq!(UnixTime(1_796_259_744).to_string(), "2026-12-03 01:02 UTC");
        assert_eq!(
            UnixTime(951_782_400 + 3_599).to_string(),
            "2000-02-29 00:59 UTC"
        );
        assert_eq!(UnixTime(899).epoch(), Epoch(0));
        assert_eq!(UnixTime(900).epoch(), Epoch(1));
        assert_eq!(Epoch(3).start(), UnixTime(2700));
        assert_eq!(Epoch(3).end(), UnixTime(3600));
        assert_eq!(UnixTime(86_399).day(), Day(0));
        assert_eq!(UnixTime(86_400).day(), Day(1));
        assert_eq!(Epoch(96).day(), Day(1));
        assert_eq!(Epoch(95).day(), Day(0));
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(
            Day::from_civil(2026, 11, 27)
                .map(|d| d.to_string())
                .as_deref(),
            Some("2026-11-27")
        );
        // 2024-02-29 exists, 2026-02-29 does not.
        assert!(Day::from_civil(2024, 2, 29).is_some());
        assert!(Day::from_civil(2026, 2, 29).is_none());
        assert!(Day::from_civil(1969, 12, 31).is_none());
        for d in (0..40_000).step_by(37) {
            let (y, m, dd) = Day(d).to_civil();
            assert_eq!(Day::from_civil(y, m, dd), Some(Day(d)));
        }
        // 2020-03-01 is day 18322 (independently: 50 years incl. 12 leap days + 31 + 29).
        assert_eq!(Day::from_civil(2020, 3, 1), Some(Day(18_322)));
    }
}
