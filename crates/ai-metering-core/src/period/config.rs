//! [`PeriodConfig`]: the one reader of the `period.type`, `period.alignment` and
//! `period.timezone` settings.

use chrono_tz::Tz;

use super::kind::{DEFAULT_ROLLING_DAYS, PeriodKind};
use super::spec::{Alignment, PeriodSpec, parse_timezone};
use crate::error::{Error, Result};
use crate::metering::MeteringConfig;

/// The accepted `period.type` values, for error messages.
pub const PERIOD_TYPES: &[&str] = &["monthly", "weekly", "daily", "yearly", "rolling"];
/// The accepted `period.alignment` values, for error messages.
pub const PERIOD_ALIGNMENTS: &[&str] = &["calendar", "rolling"];

/// The period rules of a configuration: the periods' length and time zone, and whether each
/// billable's periods start at its subscription's start.
///
/// This is the only parser of the period settings; the `ai-metering` CLI and applications
/// reading the same keys get the same rules. The values mean:
///
/// - `period_type`: `monthly`, `weekly`, `daily`, `yearly`, or `rolling` (windows of 30
///   days), ignoring case and surrounding spaces;
/// - `alignment`: `calendar` (periods follow the calendar of the time zone) or `rolling`
///   (periods start at each subscription's start and roll forward from it: a monthly plan
///   taken on the 15th resets on every 15th). A configuration carries no anchor, so
///   `rolling` sets [`anchor_to_subscription`](Self::anchor_to_subscription) and the spec
///   itself stays calendar-aligned; [`Metering`](crate::Metering) anchors it per billable;
/// - `timezone`: an IANA name such as `UTC` or `Europe/Berlin` (exact spelling).
///
/// Invalid values are rejected, never replaced by a default.
///
/// ```
/// use ai_metering_core::MeteringConfig;
/// use ai_metering_core::period::{PeriodConfig, PeriodKind};
///
/// let periods = PeriodConfig::from_config("monthly", "rolling", "Europe/Berlin").unwrap();
/// assert_eq!(periods.spec.kind(), PeriodKind::Monthly);
/// assert!(periods.anchor_to_subscription);
///
/// let mut config = MeteringConfig::default();
/// periods.apply_to(&mut config);
/// assert!(config.anchor_to_subscription);
/// assert_eq!(config.period.timezone(), chrono_tz::Europe::Berlin);
///
/// assert!(PeriodConfig::from_config("hourly", "calendar", "UTC").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodConfig {
    /// Length and time zone of the periods, calendar-aligned.
    pub spec: PeriodSpec,
    /// Anchor each billable's periods at its subscription's start (alignment `rolling`).
    pub anchor_to_subscription: bool,
}

impl PeriodConfig {
    /// Reads the `period.type`, `period.alignment` and `period.timezone` settings
    /// (`AI_METERING_PERIOD_TYPE`, `AI_METERING_PERIOD_ALIGNMENT`, `AI_METERING_TIMEZONE`).
    ///
    /// ```
    /// use ai_metering_core::period::{PeriodConfig, PeriodSpec};
    /// let periods = PeriodConfig::from_config("weekly", "calendar", "UTC").unwrap();
    /// assert_eq!(periods.spec, PeriodSpec::weekly());
    /// assert!(!periods.anchor_to_subscription);
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the invalid value and the accepted ones.
    pub fn from_config(period_type: &str, alignment: &str, timezone: &str) -> Result<Self> {
        let kind = parse_period_type(period_type)?;
        let anchor_to_subscription = parse_alignment(alignment)?;
        let spec = PeriodSpec::new(kind, Alignment::Calendar, parse_timezone(timezone)?)?;
        Ok(Self {
            spec,
            anchor_to_subscription,
        })
    }

    /// Writes these rules into `config` ([`MeteringConfig::period`] and
    /// [`MeteringConfig::anchor_to_subscription`]), leaving its other settings alone.
    ///
    /// ```
    /// use ai_metering_core::MeteringConfig;
    /// use ai_metering_core::period::PeriodConfig;
    /// let mut config = MeteringConfig::default();
    /// PeriodConfig::from_config("daily", "calendar", "UTC").unwrap().apply_to(&mut config);
    /// assert_eq!(config.period, ai_metering_core::PeriodSpec::daily());
    /// ```
    pub fn apply_to(self, config: &mut MeteringConfig) {
        config.period = self.spec;
        config.anchor_to_subscription = self.anchor_to_subscription;
    }

    /// The time zone of the periods.
    pub fn timezone(&self) -> Tz {
        self.spec.timezone()
    }
}

impl Default for PeriodConfig {
    /// Monthly, calendar-aligned, in UTC.
    fn default() -> Self {
        Self {
            spec: PeriodSpec::default(),
            anchor_to_subscription: false,
        }
    }
}

fn parse_period_type(text: &str) -> Result<PeriodKind> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "monthly" => PeriodKind::Monthly,
        "weekly" => PeriodKind::Weekly,
        "daily" => PeriodKind::Daily,
        "yearly" => PeriodKind::Yearly,
        "rolling" => PeriodKind::Rolling {
            days: DEFAULT_ROLLING_DAYS,
        },
        _ => {
            return Err(Error::InvalidInput(format!(
                "unknown period type {text:?}; expected one of {}",
                PERIOD_TYPES.join(", ")
            )));
        }
    })
}

/// `true` for `rolling` (anchored to the subscription), `false` for `calendar`.
fn parse_alignment(text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "calendar" => Ok(false),
        "rolling" => Ok(true),
        _ => Err(Error::InvalidInput(format!(
            "unknown period alignment {text:?}; expected one of {}",
            PERIOD_ALIGNMENTS.join(", ")
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::period::Period;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_type_and_alignment_is_read() {
        let cases = [
            ("monthly", PeriodKind::Monthly),
            ("weekly", PeriodKind::Weekly),
            ("daily", PeriodKind::Daily),
            ("yearly", PeriodKind::Yearly),
            ("rolling", PeriodKind::Rolling { days: 30 }),
            (" Monthly ", PeriodKind::Monthly),
        ];
        for (text, kind) in cases {
            for (alignment, anchored) in
                [("calendar", false), ("rolling", true), (" CALENDAR", false)]
            {
                let c = PeriodConfig::from_config(text, alignment, "UTC").unwrap();
                assert_eq!(c.spec.kind(), kind, "{text}");
                assert_eq!(c.spec.alignment(), Alignment::Calendar, "{text}");
                assert_eq!(c.anchor_to_subscription, anchored, "{alignment}");
            }
        }
        let c = PeriodConfig::from_config("daily", "calendar", "America/New_York").unwrap();
        assert_eq!(c.timezone(), chrono_tz::America::New_York);
        assert_eq!(
            PeriodConfig::from_config("monthly", "calendar", "UTC").unwrap(),
            PeriodConfig::default()
        );
    }

    /// Pins what `rolling` alignment means: periods anchored at the subscription's start,
    /// not calendar periods. The CLI's configuration test checks it gets the same rules.
    #[test]
    fn rolling_alignment_means_anchored_at_the_subscription_start() {
        let mut config = MeteringConfig::default();
        PeriodConfig::from_config("monthly", "rolling", "UTC")
            .unwrap()
            .apply_to(&mut config);
        assert!(config.anchor_to_subscription);
        // What `Metering` does with it for a subscription started on January 15th.
        let started = utc("2024-01-15T09:00:00Z");
        let spec = config.period.anchored_at(started);
        assert_eq!(
            spec.period_at(utc("2024-02-20T00:00:00Z")).unwrap(),
            Period::new(utc("2024-02-15T09:00:00Z"), utc("2024-03-15T09:00:00Z")).unwrap()
        );

        let mut calendar = MeteringConfig::default();
        PeriodConfig::from_config("monthly", "calendar", "UTC")
            .unwrap()
            .apply_to(&mut calendar);
        assert!(!calendar.anchor_to_subscription);
    }

    #[test]
    fn invalid_values_name_themselves_and_the_accepted_ones() {
        let err = PeriodConfig::from_config("hourly", "calendar", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"hourly\""), "{err}");
        assert!(
            err.contains("monthly, weekly, daily, yearly, rolling"),
            "{err}"
        );
        let err = PeriodConfig::from_config("monthly", "anchored", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"anchored\""), "{err}");
        assert!(err.contains("calendar, rolling"), "{err}");
        let err = PeriodConfig::from_config("monthly", "calendar", "Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Mars/Olympus\""), "{err}");
        assert!(PeriodConfig::from_config("", "calendar", "UTC").is_err());
        assert!(PeriodConfig::from_config("rolling:7", "calendar", "UTC").is_err());
    }
}
