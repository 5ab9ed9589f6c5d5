//! [`Period`]: one concrete, half-open stretch of time `[start, end)`.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A half-open interval of time `[start, end)`: `start` belongs to the period, `end` belongs to
/// the next one.
///
/// Periods come from [`PeriodSpec::period_at`](super::PeriodSpec::period_at); consecutive
/// periods of one spec tile time with no gap and no overlap. Serialized as
/// `{"start": "...", "end": "..."}` in RFC 3339; deserializing checks `start < end`.
///
/// ```
/// use ai_metering_core::period::Period;
///
/// let p = Period::new(
///     "2024-01-01T00:00:00Z".parse().unwrap(),
///     "2024-02-01T00:00:00Z".parse().unwrap(),
/// )
/// .unwrap();
/// assert!(p.contains("2024-01-31T23:59:59.999Z".parse().unwrap()));
/// assert!(!p.contains(p.end));
/// assert_eq!(p.duration().num_days(), 31);
/// assert_eq!(p.to_string(), "[2024-01-01T00:00:00Z, 2024-02-01T00:00:00Z)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawPeriod")]
pub struct Period {
    /// The first instant of the period (inclusive).
    pub start: DateTime<Utc>,
    /// The first instant after the period (exclusive): the start of the next period.
    pub end: DateTime<Utc>,
}

impl Period {
    /// The period `[start, end)`.
    ///
    /// ```
    /// use ai_metering_core::period::Period;
    /// let t = "2024-01-01T00:00:00Z".parse().unwrap();
    /// assert!(Period::new(t, t).is_err()); // empty
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless `start < end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(Error::InvalidInput(format!(
                "a period must start before it ends, got start {} and end {}",
                rfc3339(&start),
                rfc3339(&end)
            )))
        }
    }

    /// Whether `t` lies in the period: `start <= t < end`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// When usage counted in this period resets: its end, the start of the next period.
    pub fn reset_at(&self) -> DateTime<Utc> {
        self.end
    }

    /// The length of the period (23 or 25 hours for a day with a DST change, 28 to 31 days for
    /// a month...).
    pub fn duration(&self) -> TimeDelta {
        self.end.signed_duration_since(self.start)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", rfc3339(&self.start), rfc3339(&self.end))
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The unchecked serialized form of a [`Period`].
#[derive(Deserialize)]
struct RawPeriod {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<RawPeriod> for Period {
    type Error = Error;
    fn try_from(raw: RawPeriod) -> Result<Self> {
        Self::new(raw.start, raw.end)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn contains_is_half_open() {
        let p = Period::new(utc("2024-01-15T00:00:00Z"), utc("2024-01-16T00:00:00Z")).unwrap();
        assert!(p.contains(p.start));
        assert!(p.contains(utc("2024-01-15T23:59:59.999999999Z")));
        assert!(!p.contains(p.end));
        assert!(!p.contains(utc("2024-01-14T23:59:59Z")));
        assert_eq!(p.reset_at(), p.end);
        assert_eq!(p.duration(), TimeDelta::hours(24));
    }

    #[test]
    fn new_rejects_empty_and_reversed_periods() {
        let a = utc("2024-01-15T00:00:00Z");
        let b = utc("2024-01-16T00:00:00Z");
        assert!(Period::new(a, a).is_err());
        let err = Period::new(b, a).unwrap_err().to_string();
        assert!(err.contains("must start before it ends"), "{err}");
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let p = Period::new(utc("2024-01-15T00:00:00Z"), utc("2024-01-16T00:00:00Z")).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"start":"2024-01-15T00:00:00Z","end":"2024-01-16T00:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), p);
        let reversed = r#"{"start":"2024-01-16T00:00:00Z","end":"2024-01-15T00:00:00Z"}"#;
        assert!(serde_json::from_str::<Period>(reversed).is_err());
    }
}
