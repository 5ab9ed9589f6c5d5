//! [`PeriodKind`]: how long a period is (a day, a week, a month, a year or N days).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The length of a period.
///
/// Text form (for [`FromStr`], [`Display`](fmt::Display) and serde): `daily`, `weekly`,
/// `monthly`, `yearly` and `rolling:N` for N days. Parsing ignores case and surrounding spaces,
/// and also accepts a bare `rolling`, which means 30 days. `N` must be between 1 and [`PeriodKind::MAX_ROLLING_DAYS`].
///
/// ```
/// use ai_metering_core::period::PeriodKind;
///
/// assert_eq!("Monthly".parse::<PeriodKind>().unwrap(), PeriodKind::Monthly);
/// assert_eq!("rolling:7".parse::<PeriodKind>().unwrap(), PeriodKind::Rolling { days: 7 });
/// assert_eq!("rolling".parse::<PeriodKind>().unwrap(), PeriodKind::Rolling { days: 30 });
/// assert_eq!(PeriodKind::Rolling { days: 7 }.to_string(), "rolling:7");
/// assert!("rolling:0".parse::<PeriodKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PeriodKind {
    /// One local calendar day (23 or 25 hours across a DST change).
    Daily,
    /// Seven local days; calendar-aligned weeks run from Monday to Sunday.
    Weekly,
    /// One calendar month.
    Monthly,
    /// One calendar year.
    Yearly,
    /// A fixed number of local days.
    Rolling {
        /// The number of days, from 1 to [`PeriodKind::MAX_ROLLING_DAYS`].
        days: u32,
    },
}

/// The number of days of a bare `rolling` period type.
pub(super) const DEFAULT_ROLLING_DAYS: u32 = 30;

/// The accepted text forms, for error messages.
const ACCEPTED: &str = "daily, weekly, monthly, yearly, rolling (30 days) or rolling:N (N days)";

impl PeriodKind {
    /// The longest rolling period accepted: 3660 days, about ten years.
    pub const MAX_ROLLING_DAYS: u32 = 3660;

    /// Checks the number of days of a rolling kind.
    pub(super) fn validate(self) -> Result<Self> {
        match self {
            Self::Rolling { days } if days == 0 || days > Self::MAX_ROLLING_DAYS => {
                Err(Error::InvalidInput(format!(
                    "a rolling period must last from 1 to {} days, got {days}",
                    Self::MAX_ROLLING_DAYS
                )))
            }
            kind => Ok(kind),
        }
    }
}

impl fmt::Display for PeriodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Daily => f.write_str("daily"),
            Self::Weekly => f.write_str("weekly"),
            Self::Monthly => f.write_str("monthly"),
            Self::Yearly => f.write_str("yearly"),
            Self::Rolling { days } => write!(f, "rolling:{days}"),
        }
    }
}

impl FromStr for PeriodKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim().to_ascii_lowercase();
        let kind = match text.as_str() {
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "monthly" => Self::Monthly,
            "yearly" => Self::Yearly,
            "rolling" => Self::Rolling {
                days: DEFAULT_ROLLING_DAYS,
            },
            other => {
                let days = other
                    .strip_prefix("rolling:")
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "unknown period type {s:?}; expected {ACCEPTED}"
                        ))
                    })?;
                Self::Rolling { days }
            }
        };
        kind.validate()
    }
}

impl TryFrom<String> for PeriodKind {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<PeriodKind> for String {
    fn from(kind: PeriodKind) -> Self {
        kind.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_round_trips_through_display() {
        for kind in [
            PeriodKind::Daily,
            PeriodKind::Weekly,
            PeriodKind::Monthly,
            PeriodKind::Yearly,
            PeriodKind::Rolling { days: 1 },
            PeriodKind::Rolling { days: 7 },
            PeriodKind::Rolling {
                days: PeriodKind::MAX_ROLLING_DAYS,
            },
        ] {
            assert_eq!(kind.to_string().parse::<PeriodKind>().unwrap(), kind);
        }
        assert_eq!(
            " WEEKLY ".parse::<PeriodKind>().unwrap(),
            PeriodKind::Weekly
        );
    }

    #[test]
    fn rejects_unknown_kinds_and_bad_day_counts_naming_the_value() {
        let err = "fortnightly".parse::<PeriodKind>().unwrap_err().to_string();
        assert!(err.contains("\"fortnightly\""), "{err}");
        assert!(err.contains("rolling:N"), "{err}");
        for bad in ["rolling:0", "rolling:-1", "rolling:x", "rolling:3661", ""] {
            assert!(bad.parse::<PeriodKind>().is_err(), "{bad}");
        }
        let err = "rolling:0".parse::<PeriodKind>().unwrap_err().to_string();
        assert!(err.contains("got 0"), "{err}");
    }

    #[test]
    fn serde_uses_the_text_form_and_validates() {
        let json = serde_json::to_string(&PeriodKind::Rolling { days: 7 }).unwrap();
        assert_eq!(json, "\"rolling:7\"");
        assert_eq!(
            serde_json::from_str::<PeriodKind>("\"monthly\"").unwrap(),
            PeriodKind::Monthly
        );
        assert!(serde_json::from_str::<PeriodKind>("\"rolling:0\"").is_err());
    }
}
