//! Periods: the stretches of time a quota is counted in.
//!
//! A [`PeriodSpec`] says how long periods are ([`PeriodKind`]: daily, weekly, monthly, yearly
//! or rolling N days), where they start ([`Alignment`]: on the calendar, or anchored at an
//! instant such as a subscription's start) and in which IANA time zone. It maps any instant to
//! the [`Period`] containing it, a half-open interval `[start, end)`, and steps to the next and
//! previous periods. Consecutive periods tile time exactly, across DST changes and month ends.
//!
//! ```
//! use ai_metering_core::period::PeriodSpec;
//! use chrono::{DateTime, Utc};
//!
//! // A subscription started on January 31st: its monthly quota resets on the last day of
//! // shorter months, and on the 31st again when the month has one.
//! let started: DateTime<Utc> = "2024-01-31T10:00:00Z".parse().unwrap();
//! let spec = PeriodSpec::monthly().anchored_at(started);
//!
//! let now: DateTime<Utc> = "2024-03-05T08:00:00Z".parse().unwrap();
//! let period = spec.period_at(now).unwrap();
//! assert_eq!(period.start.to_rfc3339(), "2024-02-29T10:00:00+00:00");
//! assert_eq!(period.reset_at().to_rfc3339(), "2024-03-31T10:00:00+00:00");
//! ```
//!
//! [`PeriodConfig`] reads the `period.*` settings of a configuration file into a spec and
//! the subscription anchoring of [`MeteringConfig`](crate::MeteringConfig).
//!
//! # Rules
//!
//! - Ends are exclusive and equal to the next period's start.
//! - Weeks run from Monday to Sunday for every alignment.
//! - A rolling period is a fixed N-day window (anchored at 1970-01-01 when calendar-aligned),
//!   so usage accumulates in it.
//! - [`PeriodSpec::next`] and [`PeriodSpec::previous`] move by one period.
//! - Invalid period types, alignments and time zones are errors, not a silent monthly period.

mod boundaries;
mod config;
mod interval;
mod kind;
mod local_time;
mod spec;

pub use config::{PERIOD_ALIGNMENTS, PERIOD_TYPES, PeriodConfig};
pub use interval::Period;
pub use kind::PeriodKind;
pub use spec::{Alignment, PeriodSpec};
