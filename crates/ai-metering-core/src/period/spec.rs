//! [`PeriodSpec`] and [`Alignment`]: which periods a quota counts in.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::kind::PeriodKind;
use crate::error::{Error, Result};

/// Where periods start.
///
/// Serialized as `"calendar"` or `{"anchored": "2024-01-31T10:00:00Z"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    /// Periods follow the calendar of the spec's time zone: days start at local midnight,
    /// weeks on Monday, months on the 1st, years on January 1st.
    ///
    /// A rolling period of N days has no calendar of its own: calendar-aligned, it is anchored
    /// at local midnight of 1970-01-01 (so `rolling:7` weeks start on Thursdays, the weekday of
    /// that date). It still enforces: every instant belongs to one fixed N-day window.
    #[default]
    Calendar,
    /// Periods start at the anchor's local wall-clock time and step by the kind's length from
    /// it, backwards as well as forwards (for example, monthly from a subscription's start).
    ///
    /// The n-th boundary is always computed from the anchor itself: a monthly period anchored
    /// on January 31st ends on the last day of February and the next one on March 31st; a
    /// yearly period anchored on February 29th uses February 28th in common years.
    ///
    /// Boundaries are wall-clock times, resolved like every local time (see [`PeriodSpec`]):
    /// an anchor at 02:30 in Berlin gives a period that starts at 03:00 on the day the clocks
    /// skip 02:00 to 03:00, and an anchor in the repeated hour of an autumn night starts its
    /// periods at the first of the two instants showing that time.
    Anchored(DateTime<Utc>),
}

/// What periods a limit is counted in: their length, where they start and in which time zone.
///
/// The default is monthly, calendar-aligned, in UTC.
///
/// Local times that do not exist (clocks jumped forward) or exist twice (clocks went back)
/// resolve deterministically, to **the first instant at which the local clock shows that time
/// or later**: the end of the gap for a skipped time, the earlier instant for an ambiguous one.
/// A boundary that falls into a gap therefore moves to the end of the gap; a day in which the
/// clocks change lasts 23 or 25 hours (or, in Samoa on 2011-12-30, is skipped altogether: the
/// periods around it simply meet).
///
/// ```
/// use ai_metering_core::period::PeriodSpec;
///
/// let spec = PeriodSpec::daily().in_timezone(chrono_tz::Europe::Berlin);
/// let p = spec.period_at("2024-03-31T12:00:00Z".parse().unwrap()).unwrap();
/// assert_eq!(p.start.to_rfc3339(), "2024-03-30T23:00:00+00:00"); // local midnight, CET
/// assert_eq!(p.duration().num_hours(), 23); // clocks jumped from 02:00 to 03:00
/// assert_eq!(spec.next(&p).unwrap().start, p.end);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPeriodSpec", into = "RawPeriodSpec")]
pub struct PeriodSpec {
    kind: PeriodKind,
    alignment: Alignment,
    timezone: Tz,
}

impl PeriodSpec {
    /// A spec of any kind, alignment and time zone.
    ///
    /// ```
    /// use ai_metering_core::period::{Alignment, PeriodKind, PeriodSpec};
    /// let spec = PeriodSpec::new(PeriodKind::Weekly, Alignment::Calendar, chrono_tz::UTC).unwrap();
    /// assert_eq!(spec, PeriodSpec::weekly());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a rolling kind of 0 days or more than
    /// [`PeriodKind::MAX_ROLLING_DAYS`].
    pub fn new(kind: PeriodKind, alignment: Alignment, timezone: Tz) -> Result<Self> {
        Ok(Self {
            kind: kind.validate()?,
            alignment,
            timezone,
        })
    }

    fn calendar(kind: PeriodKind) -> Self {
        Self {
            kind,
            alignment: Alignment::Calendar,
            timezone: Tz::UTC,
        }
    }

    /// Calendar days in UTC.
    ///
    /// ```
    /// use ai_metering_core::period::{PeriodKind, PeriodSpec};
    /// assert_eq!(PeriodSpec::daily().kind(), PeriodKind::Daily);
    /// ```
    pub fn daily() -> Self {
        Self::calendar(PeriodKind::Daily)
    }

    /// Calendar weeks, Monday to Sunday, in UTC.
    ///
    /// ```
    /// use ai_metering_core::period::{PeriodKind, PeriodSpec};
    /// assert_eq!(PeriodSpec::weekly().kind(), PeriodKind::Weekly);
    /// ```
    pub fn weekly() -> Self {
        Self::calendar(PeriodKind::Weekly)
    }

    /// Calendar months in UTC (the default).
    ///
    /// ```
    /// use ai_metering_core::period::PeriodSpec;
    /// assert_eq!(PeriodSpec::monthly(), PeriodSpec::default());
    /// ```
    pub fn monthly() -> Self {
        Self::calendar(PeriodKind::Monthly)
    }

    /// Calendar years in UTC.
    ///
    /// ```
    /// use ai_metering_core::period::{PeriodKind, PeriodSpec};
    /// assert_eq!(PeriodSpec::yearly().kind(), PeriodKind::Yearly);
    /// ```
    pub fn yearly() -> Self {
        Self::calendar(PeriodKind::Yearly)
    }

    /// Windows of `days` days, calendar-aligned in UTC (anchored at 1970-01-01, see
    /// [`Alignment::Calendar`]); usually combined with [`anchored_at`](Self::anchored_at).
    ///
    /// ```
    /// use ai_metering_core::period::{PeriodKind, PeriodSpec};
    /// let spec = PeriodSpec::rolling_days(7).unwrap();
    /// assert_eq!(spec.kind(), PeriodKind::Rolling { days: 7 });
    /// assert!(PeriodSpec::rolling_days(0).is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for 0 days or more than [`PeriodKind::MAX_ROLLING_DAYS`].
    pub fn rolling_days(days: u32) -> Result<Self> {
        Self::new(PeriodKind::Rolling { days }, Alignment::Calendar, Tz::UTC)
    }

    /// The same spec with boundaries computed in `timezone`.
    ///
    /// ```
    /// use ai_metering_core::period::PeriodSpec;
    /// let spec = PeriodSpec::daily().in_timezone(chrono_tz::Asia::Kolkata);
    /// assert_eq!(spec.timezone(), chrono_tz::Asia::Kolkata);
    /// ```
    pub fn in_timezone(mut self, timezone: Tz) -> Self {
        self.timezone = timezone;
        self
    }

    /// The same spec with periods anchored at `anchor` (typically a subscription's start), see
    /// [`Alignment::Anchored`].
    ///
    /// ```
    /// use ai_metering_core::period::PeriodSpec;
    /// use chrono::{DateTime, Utc};
    ///
    /// let started: DateTime<Utc> = "2024-01-31T10:00:00Z".parse().unwrap();
    /// let spec = PeriodSpec::monthly().anchored_at(started);
    /// let feb = spec.next(&spec.period_at(started).unwrap()).unwrap();
    /// assert_eq!(feb.start.to_rfc3339(), "2024-02-29T10:00:00+00:00");
    /// assert_eq!(feb.end.to_rfc3339(), "2024-03-31T10:00:00+00:00");
    /// ```
    pub fn anchored_at(mut self, anchor: DateTime<Utc>) -> Self {
        self.alignment = Alignment::Anchored(anchor);
        self
    }

    /// The length of the periods.
    pub fn kind(&self) -> PeriodKind {
        self.kind
    }

    /// Where the periods start.
    pub fn alignment(&self) -> Alignment {
        self.alignment
    }

    /// The time zone the boundaries are computed in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
}

impl Default for PeriodSpec {
    /// Monthly, calendar-aligned, in UTC.
    fn default() -> Self {
        Self::monthly()
    }
}

impl fmt::Display for PeriodSpec {
    /// For example `monthly, calendar-aligned, in UTC` or
    /// `rolling:7, anchored at 2024-01-31T10:00:00Z, in Europe/Berlin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.alignment {
            Alignment::Calendar => write!(f, "{}, calendar-aligned", self.kind)?,
            Alignment::Anchored(anchor) => write!(
                f,
                "{}, anchored at {}",
                self.kind,
                anchor.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            )?,
        }
        write!(f, ", in {}", self.timezone.name())
    }
}

pub(super) fn parse_timezone(name: &str) -> Result<Tz> {
    name.trim().parse::<Tz>().map_err(|_| {
        Error::InvalidInput(format!(
            "unknown time zone {name:?}; expected an IANA name such as UTC or Europe/Berlin"
        ))
    })
}

/// The serialized form of a [`PeriodSpec`]: `{"kind": "monthly", "alignment": "calendar",
/// "timezone": "UTC"}`; `alignment` and `timezone` may be left out.
#[derive(Serialize, Deserialize)]
struct RawPeriodSpec {
    kind: PeriodKind,
    #[serde(default)]
    alignment: Alignment,
    #[serde(default = "utc_name")]
    timezone: String,
}

fn utc_name() -> String {
    Tz::UTC.name().to_owned()
}

impl TryFrom<RawPeriodSpec> for PeriodSpec {
    type Error = Error;
    fn try_from(raw: RawPeriodSpec) -> Result<Self> {
        Self::new(raw.kind, raw.alignment, parse_timezone(&raw.timezone)?)
    }
}

impl From<PeriodSpec> for RawPeriodSpec {
    fn from(spec: PeriodSpec) -> Self {
        Self {
            kind: spec.kind,
            alignment: spec.alignment,
            timezone: spec.timezone.name().to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;

    #[test]
    fn default_is_monthly_calendar_utc_like_the_original() {
        let spec = PeriodSpec::default();
        assert_eq!(spec.kind(), PeriodKind::Monthly);
        assert_eq!(spec.alignment(), Alignment::Calendar);
        assert_eq!(spec.timezone(), Tz::UTC);
        assert_eq!(spec.to_string(), "monthly, calendar-aligned, in UTC");
    }

    #[test]
    fn rolling_days_rejects_zero_and_absurd_lengths() {
        for bad in [0, PeriodKind::MAX_ROLLING_DAYS + 1, u32::MAX] {
            let err = PeriodSpec::rolling_days(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
        assert!(PeriodSpec::rolling_days(1).is_ok());
        assert!(
            PeriodSpec::new(
                PeriodKind::Rolling { days: 0 },
                Alignment::Calendar,
                Tz::UTC
            )
            .is_err()
        );
    }

    #[test]
    fn builders_set_time_zone_and_anchor() {
        let anchor: DateTime<Utc> = "2024-01-31T10:00:00Z".parse().unwrap();
        let spec = PeriodSpec::monthly()
            .in_timezone(chrono_tz::Europe::Berlin)
            .anchored_at(anchor);
        assert_eq!(spec.alignment(), Alignment::Anchored(anchor));
        assert_eq!(spec.timezone(), chrono_tz::Europe::Berlin);
        assert_eq!(
            spec.to_string(),
            "monthly, anchored at 2024-01-31T10:00:00Z, in Europe/Berlin"
        );
    }

    #[test]
    fn serde_round_trips_with_defaults_and_validation() {
        let anchor: DateTime<Utc> = "2024-01-31T10:00:00Z".parse().unwrap();
        let spec = PeriodSpec::rolling_days(7)
            .unwrap()
            .in_timezone(chrono_tz::Australia::Lord_Howe)
            .anchored_at(anchor);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"rolling:7","alignment":{"anchored":"2024-01-31T10:00:00Z"},"timezone":"Australia/Lord_Howe"}"#
        );
        assert_eq!(serde_json::from_str::<PeriodSpec>(&json).unwrap(), spec);

        let minimal: PeriodSpec = serde_json::from_str(r#"{"kind":"weekly"}"#).unwrap();
        assert_eq!(minimal, PeriodSpec::weekly());

        assert!(serde_json::from_str::<PeriodSpec>(r#"{"kind":"rolling:0"}"#).is_err());
        assert!(
            serde_json::from_str::<PeriodSpec>(r#"{"kind":"daily","timezone":"Nowhere"}"#).is_err()
        );
    }
}
