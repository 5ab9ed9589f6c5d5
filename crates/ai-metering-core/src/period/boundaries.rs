//! The period arithmetic of a [`PeriodSpec`]: which period contains an instant, and the
//! periods before and after it.
//!
//! Every spec is a sequence of local wall-clock boundaries `b(n) = anchor + n × step`, for all
//! integers `n`, where the step is a number of local days (daily 1, weekly 7, rolling N) or of
//! calendar months (monthly 1, yearly 12), always counted from the anchor (so month-end
//! clamping never accumulates). Calendar alignment is the anchor 1970-01-01 00:00 local
//! (Monday 1970-01-05 for weeks). Each boundary resolves to an instant by the rule of
//! [`local_time`](super::local_time); that mapping never goes backwards, so the resolved
//! boundaries tile time. Two boundaries may resolve to the same instant only when a whole
//! period falls into a gap (Samoa's skipped day); such an empty period is never returned.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, Utc};

use super::local_time::{out_of_range, resolve, to_local};
use super::{Alignment, Period, PeriodKind, PeriodSpec};
use crate::error::{Error, Result};

/// Local midnight of 1970-01-01, the calendar anchor of days, months, years and rolling days.
const EPOCH: NaiveDateTime = DateTime::UNIX_EPOCH.naive_utc();
/// Monday 1970-01-05, the calendar anchor of weeks.
const FIRST_MONDAY: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 5) {
    Some(date) => date,
    // Evaluated at compile time: a valid date never reaches this arm.
    None => panic!("1970-01-05 is a valid date"),
};

/// How far the first guess of a period index may be from the right one before we give up.
/// The guess is off by at most one or two in practice (time-of-day, DST offsets, a skipped
/// day); the bound only guarantees termination.
const MAX_ADJUSTMENTS: u32 = 64;

/// The distance between two boundaries.
#[derive(Debug, Clone, Copy)]
enum Step {
    Days(u32),
    Months(u32),
}

impl PeriodSpec {
    /// The period that contains `t`.
    ///
    /// For an anchored spec, instants before the anchor get periods that extend backwards
    /// from it consistently.
    ///
    /// ```
    /// use ai_metering_core::period::PeriodSpec;
    ///
    /// let p = PeriodSpec::weekly().period_at("2024-01-17T09:00:00Z".parse().unwrap()).unwrap();
    /// assert_eq!(p.start.to_rfc3339(), "2024-01-15T00:00:00+00:00"); // Monday
    /// assert_eq!(p.end.to_rfc3339(), "2024-01-22T00:00:00+00:00");
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the period's boundaries fall outside the dates chrono can
    /// represent (about 262,000 years either side of year 0); never for instants of this era.
    pub fn period_at(&self, t: DateTime<Utc>) -> Result<Period> {
        let step = self.step()?;
        let anchor = self.local_anchor()?;
        let boundary = |n: i64| -> Result<DateTime<Utc>> {
            let local = local_boundary(anchor, step, n).ok_or_else(|| out_of_range(&t))?;
            resolve(local, self.timezone())
        };

        let mut n = estimate_index(anchor, step, to_local(t, self.timezone())?);
        let mut adjustments = 0;
        let mut start = boundary(n)?;
        while start > t {
            adjustments = one_more_adjustment(adjustments, &t)?;
            n = n.saturating_sub(1);
            start = boundary(n)?;
        }
        let mut end = boundary(n.saturating_add(1))?;
        while end <= t {
            adjustments = one_more_adjustment(adjustments, &t)?;
            n = n.saturating_add(1);
            start = end;
            end = boundary(n.saturating_add(1))?;
        }
        // The loops leave `start <= t < end`, so the period is never empty.
        Ok(Period { start, end })
    }

    /// The period after `period`: the one that contains `period.end`.
    ///
    /// ```
    /// use ai_metering_core::period::PeriodSpec;
    ///
    /// let spec = PeriodSpec::monthly();
    /// let jan = spec.period_at("2024-01-15T00:00:00Z".parse().unwrap()).unwrap();
    /// let feb = spec.next(&jan).unwrap();
    /// assert_eq!(feb.start, jan.end);
    /// assert_eq!(feb.end.to_rfc3339(), "2024-03-01T00:00:00+00:00");
    /// ```
    ///
    /// # Errors
    /// As [`period_at`](Self::period_at).
    pub fn next(&self, period: &Period) -> Result<Period> {
        self.period_at(period.end)
    }

    /// The period before `period`: the one that contains the last instant before
    /// `period.start`.
    ///
    /// ```
    /// use ai_metering_core::period::PeriodSpec;
    ///
    /// let spec = PeriodSpec::yearly();
    /// let y2024 = spec.period_at("2024-06-01T00:00:00Z".parse().unwrap()).unwrap();
    /// let y2023 = spec.previous(&y2024).unwrap();
    /// assert_eq!(y2023.start.to_rfc3339(), "2023-01-01T00:00:00+00:00");
    /// assert_eq!(y2023.end, y2024.start);
    /// ```
    ///
    /// # Errors
    /// As [`period_at`](Self::period_at).
    pub fn previous(&self, period: &Period) -> Result<Period> {
        let just_before = period
            .start
            .checked_sub_signed(TimeDelta::nanoseconds(1))
            .ok_or_else(|| out_of_range(&period.start))?;
        self.period_at(just_before)
    }

    fn step(&self) -> Result<Step> {
        match self.kind() {
            PeriodKind::Daily => Ok(Step::Days(1)),
            PeriodKind::Weekly => Ok(Step::Days(7)),
            PeriodKind::Monthly => Ok(Step::Months(1)),
            PeriodKind::Yearly => Ok(Step::Months(12)),
            // Specs are validated on construction; this keeps a zero step impossible anyway.
            PeriodKind::Rolling { days: 0 } => Err(Error::InvalidInput(
                "a rolling period must last at least one day".into(),
            )),
            PeriodKind::Rolling { days } => Ok(Step::Days(days)),
        }
    }

    /// The local wall-clock time of boundary 0.
    fn local_anchor(&self) -> Result<NaiveDateTime> {
        match self.alignment() {
            Alignment::Anchored(anchor) => to_local(anchor, self.timezone()),
            Alignment::Calendar if self.kind() == PeriodKind::Weekly => {
                Ok(FIRST_MONDAY.and_time(EPOCH.time()))
            }
            Alignment::Calendar => Ok(EPOCH),
        }
    }
}

/// Boundary `n` as local wall-clock time, `None` outside chrono's range.
fn local_boundary(anchor: NaiveDateTime, step: Step, n: i64) -> Option<NaiveDateTime> {
    let count = n.unsigned_abs();
    match step {
        Step::Days(days) => {
            let days = Days::new(count.checked_mul(u64::from(days))?);
            if n >= 0 {
                anchor.checked_add_days(days)
            } else {
                anchor.checked_sub_days(days)
            }
        }
        Step::Months(months) => {
            let months = Months::new(u32::try_from(count).ok()?.checked_mul(months)?);
            if n >= 0 {
                anchor.checked_add_months(months)
            } else {
                anchor.checked_sub_months(months)
            }
        }
    }
}

/// A first guess of the index of the boundary at or before `local`, from wall-clock
/// arithmetic alone; [`PeriodSpec::period_at`] corrects it against the resolved instants.
fn estimate_index(anchor: NaiveDateTime, step: Step, local: NaiveDateTime) -> i64 {
    match step {
        Step::Days(days) => {
            let seconds = local.signed_duration_since(anchor).num_seconds();
            seconds.div_euclid(i64::from(days) * 86_400)
        }
        Step::Months(months) => {
            let elapsed = (i64::from(local.year()) - i64::from(anchor.year())) * 12
                + i64::from(local.month())
                - i64::from(anchor.month());
            elapsed.div_euclid(i64::from(months))
        }
    }
}

fn one_more_adjustment(adjustments: u32, t: &DateTime<Utc>) -> Result<u32> {
    if adjustments < MAX_ADJUSTMENTS {
        Ok(adjustments + 1)
    } else {
        Err(Error::InvalidInput(format!(
            "could not locate the period containing {t}"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn period(start: &str, end: &str) -> Period {
        Period::new(utc(start), utc(end)).unwrap()
    }

    /// Mon 2024-01-15 14:30 UTC, the reference instant of these tests.
    fn reference() -> DateTime<Utc> {
        utc("2024-01-15T14:30:00Z")
    }

    fn from_config(kind: &str, alignment: &str) -> PeriodSpec {
        crate::period::PeriodConfig::from_config(kind, alignment, "UTC")
            .unwrap()
            .spec
    }

    #[test]
    fn seed_examples_with_corrected_semantics() {
        // Each kind at the reference instant, with exclusive ends that are the next
        // period's start (no one-second-short ends) and Monday weeks for both alignments.
        let month = period("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z");
        let week = period("2024-01-15T00:00:00Z", "2024-01-22T00:00:00Z");
        let day = period("2024-01-15T00:00:00Z", "2024-01-16T00:00:00Z");
        let year = period("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z");
        for alignment in ["calendar", "rolling"] {
            let at = |kind| from_config(kind, alignment).period_at(reference()).unwrap();
            assert_eq!(at("monthly"), month, "{alignment}");
            assert_eq!(at("weekly"), week, "{alignment}");
            assert_eq!(at("daily"), day, "{alignment}");
            assert_eq!(at("yearly"), year, "{alignment}");
        }
    }

    #[test]
    fn seed_rolling_type_is_a_fixed_30_day_window_not_one_starting_now() {
        // Not a window starting at "now" (past usage would never count): 30-day windows are anchored at 1970-01-01: 2023-12-19 is 19,710 = 657 × 30 days on.
        let spec = from_config("rolling", "calendar");
        let window = period("2023-12-19T00:00:00Z", "2024-01-18T00:00:00Z");
        assert_eq!(spec.period_at(reference()).unwrap(), window);
        // Two instants a day apart fall into the same window: usage accumulates.
        assert_eq!(
            spec.period_at(reference() + TimeDelta::days(1)).unwrap(),
            window
        );
        assert_eq!(window.duration(), TimeDelta::days(30));
    }

    #[test]
    fn weekly_calendar_weeks_start_on_monday() {
        let spec = PeriodSpec::weekly();
        let week = period("2024-01-15T00:00:00Z", "2024-01-22T00:00:00Z");
        // From Monday 00:00 to Sunday 23:59:59.999999999.
        for t in [
            "2024-01-15T00:00:00Z",
            "2024-01-18T12:00:00Z",
            "2024-01-21T23:59:59.999999999Z",
        ] {
            assert_eq!(spec.period_at(utc(t)).unwrap(), week, "{t}");
        }
        assert_eq!(
            spec.period_at(utc("2024-01-22T00:00:00Z")).unwrap().start,
            utc("2024-01-22T00:00:00Z")
        );
        // In a zone ahead of UTC, Monday starts on Sunday evening UTC.
        let tokyo = spec.in_timezone(chrono_tz::Asia::Tokyo);
        assert_eq!(
            tokyo.period_at(utc("2024-01-14T15:00:00Z")).unwrap().start,
            utc("2024-01-14T15:00:00Z")
        );
    }

    #[test]
    fn monthly_anchored_on_the_31st_clamps_and_returns_to_the_31st() {
        let spec = PeriodSpec::monthly().anchored_at(utc("2024-01-31T10:00:00Z"));
        let jan = spec.period_at(utc("2024-02-01T00:00:00Z")).unwrap();
        assert_eq!(jan, period("2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z"));
        let feb = spec.next(&jan).unwrap();
        assert_eq!(feb, period("2024-02-29T10:00:00Z", "2024-03-31T10:00:00Z"));
        let mar = spec.next(&feb).unwrap();
        assert_eq!(mar, period("2024-03-31T10:00:00Z", "2024-04-30T10:00:00Z"));
        let apr = spec.next(&mar).unwrap();
        assert_eq!(apr.end, utc("2024-05-31T10:00:00Z"));
        // Before the anchor, periods extend backwards the same way.
        let before = spec.previous(&jan).unwrap();
        assert_eq!(
            before,
            period("2023-12-31T10:00:00Z", "2024-01-31T10:00:00Z")
        );
        assert_eq!(
            spec.previous(&before).unwrap(),
            period("2023-11-30T10:00:00Z", "2023-12-31T10:00:00Z")
        );
    }

    #[test]
    fn monthly_anchored_uses_the_local_wall_clock_of_the_anchor() {
        // 2024-01-31T23:30Z is Feb 1st 00:30 in Berlin: periods start on the 1st at 00:30
        // local time, whatever the offset (CET in winter, CEST in summer).
        let spec = PeriodSpec::monthly()
            .in_timezone(chrono_tz::Europe::Berlin)
            .anchored_at(utc("2024-01-31T23:30:00Z"));
        let summer = spec.period_at(utc("2024-07-15T00:00:00Z")).unwrap();
        assert_eq!(
            summer,
            period("2024-06-30T22:30:00Z", "2024-07-31T22:30:00Z")
        );
    }

    #[test]
    fn yearly_anchored_on_february_29th() {
        let spec = PeriodSpec::yearly().anchored_at(utc("2024-02-29T08:00:00Z"));
        let first = spec.period_at(utc("2024-02-29T08:00:00Z")).unwrap();
        assert_eq!(
            first,
            period("2024-02-29T08:00:00Z", "2025-02-28T08:00:00Z")
        );
        let p2027 = spec.period_at(utc("2027-12-01T00:00:00Z")).unwrap();
        assert_eq!(
            p2027,
            period("2027-02-28T08:00:00Z", "2028-02-29T08:00:00Z")
        );
        // One second before the anchor belongs to the previous year's period.
        assert_eq!(
            spec.period_at(utc("2024-02-29T07:59:59Z")).unwrap(),
            period("2023-02-28T08:00:00Z", "2024-02-29T08:00:00Z")
        );
    }

    #[test]
    fn rolling_seven_days_anchored_and_calendar() {
        let spec = PeriodSpec::rolling_days(7)
            .unwrap()
            .anchored_at(utc("2024-03-06T18:00:00Z"));
        assert_eq!(
            spec.period_at(utc("2024-03-20T12:00:00Z")).unwrap(),
            period("2024-03-13T18:00:00Z", "2024-03-20T18:00:00Z")
        );
        assert_eq!(
            spec.period_at(utc("2024-03-01T00:00:00Z")).unwrap(),
            period("2024-02-28T18:00:00Z", "2024-03-06T18:00:00Z")
        );
        // Calendar-aligned 7-day windows start on Thursdays (1970-01-01 was a Thursday).
        let calendar = PeriodSpec::rolling_days(7).unwrap();
        assert_eq!(
            calendar.period_at(reference()).unwrap(),
            period("2024-01-11T00:00:00Z", "2024-01-18T00:00:00Z")
        );
    }

    #[test]
    fn daily_anchored_at_a_time_of_day() {
        let spec = PeriodSpec::daily().anchored_at(utc("2020-05-05T14:30:00Z"));
        assert_eq!(
            spec.period_at(reference()).unwrap(),
            period("2024-01-15T14:30:00Z", "2024-01-16T14:30:00Z")
        );
        assert_eq!(
            spec.period_at(utc("2024-01-15T14:29:59Z")).unwrap(),
            period("2024-01-14T14:30:00Z", "2024-01-15T14:30:00Z")
        );
    }

    #[test]
    fn berlin_spring_forward_day_lasts_23_hours_and_autumn_day_25() {
        let spec = PeriodSpec::daily().in_timezone(chrono_tz::Europe::Berlin);
        let spring = spec.period_at(utc("2024-03-31T12:00:00Z")).unwrap();
        assert_eq!(
            spring,
            period("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z")
        );
        assert_eq!(spring.duration(), TimeDelta::hours(23));
        let autumn = spec.period_at(utc("2024-10-27T12:00:00Z")).unwrap();
        assert_eq!(
            autumn,
            period("2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z")
        );
        assert_eq!(autumn.duration(), TimeDelta::hours(25));
        // The week containing the change lasts 7 × 24 − 1 hours.
        let week = PeriodSpec::weekly()
            .in_timezone(chrono_tz::Europe::Berlin)
            .period_at(utc("2024-03-31T12:00:00Z"))
            .unwrap();
        assert_eq!(week.duration(), TimeDelta::hours(167));
    }

    #[test]
    fn new_york_dst_days_and_month() {
        let spec = PeriodSpec::daily().in_timezone(chrono_tz::America::New_York);
        let spring = spec.period_at(utc("2024-03-10T12:00:00Z")).unwrap();
        assert_eq!(
            spring,
            period("2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z")
        );
        let autumn = spec.period_at(utc("2024-11-03T12:00:00Z")).unwrap();
        assert_eq!(
            autumn,
            period("2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z")
        );
        let march = PeriodSpec::monthly()
            .in_timezone(chrono_tz::America::New_York)
            .period_at(utc("2024-03-15T00:00:00Z"))
            .unwrap();
        assert_eq!(
            march,
            period("2024-03-01T05:00:00Z", "2024-04-01T04:00:00Z")
        );
    }

    #[test]
    fn a_local_midnight_that_does_not_exist_starts_the_day_at_the_end_of_the_gap() {
        // Havana, 2023-03-12: 00:00 CST jumped to 01:00 CDT (05:00 UTC).
        let spec = PeriodSpec::daily().in_timezone(chrono_tz::America::Havana);
        let day = spec.period_at(utc("2023-03-12T12:00:00Z")).unwrap();
        assert_eq!(day, period("2023-03-12T05:00:00Z", "2023-03-13T04:00:00Z"));
        assert_eq!(day.duration(), TimeDelta::hours(23));
        assert_eq!(spec.previous(&day).unwrap().end, day.start);
        // São Paulo, 2018-11-04: 00:00 -03 jumped to 01:00 -02 (03:00 UTC).
        let sao_paulo = PeriodSpec::daily().in_timezone(chrono_tz::America::Sao_Paulo);
        assert_eq!(
            sao_paulo
                .period_at(utc("2018-11-04T12:00:00Z"))
                .unwrap()
                .start,
            utc("2018-11-04T03:00:00Z")
        );
    }

    #[test]
    fn an_ambiguous_local_midnight_starts_the_day_at_the_earlier_instant() {
        // Havana, 2023-11-05: 01:00 CDT went back to 00:00 CST; midnight happened twice, first
        // at 04:00 UTC. The day lasts 25 hours.
        let spec = PeriodSpec::daily().in_timezone(chrono_tz::America::Havana);
        let day = spec.period_at(utc("2023-11-05T04:30:00Z")).unwrap();
        assert_eq!(day, period("2023-11-05T04:00:00Z", "2023-11-06T05:00:00Z"));
        // The second 00:30 (05:30 UTC) is in the same day, not a new one.
        assert_eq!(spec.period_at(utc("2023-11-05T05:30:00Z")).unwrap(), day);
    }

    #[test]
    fn samoa_skipped_day_yields_no_empty_period() {
        // Pacific/Apia skipped 2011-12-30: Dec 29 is followed directly by Dec 31.
        let spec = PeriodSpec::daily().in_timezone(chrono_tz::Pacific::Apia);
        let dec29 = spec.period_at(utc("2011-12-30T09:00:00Z")).unwrap();
        let dec31 = spec.next(&dec29).unwrap();
        assert_eq!(dec29.end, utc("2011-12-30T10:00:00Z"));
        assert_eq!(dec31.start, dec29.end);
        assert_eq!(dec31.duration(), TimeDelta::hours(24));
        assert_eq!(spec.previous(&dec31).unwrap(), dec29);
    }

    #[test]
    fn anchored_periods_in_a_half_hour_dst_zone() {
        // Lord Howe moves its clocks by 30 minutes at 02:00 local time. An anchor at 02:15
        // local falls into the gap on the spring day, which then starts at 02:30 (the end of
        // the gap), and ends at the next day's 02:15.
        let tz: Tz = chrono_tz::Australia::Lord_Howe;
        // 2024-10-05 02:15 +10:30 = 2024-10-04 15:45 UTC.
        let spec = PeriodSpec::daily()
            .in_timezone(tz)
            .anchored_at(utc("2024-10-04T15:45:00Z"));
        // 2024-10-06 02:00 +10:30 jumped to 02:30 +11:00 (15:30 UTC).
        let day = spec.period_at(utc("2024-10-05T18:00:00Z")).unwrap();
        assert_eq!(day.start, utc("2024-10-05T15:30:00Z"));
        assert_eq!(day.end, utc("2024-10-06T15:15:00Z"));
    }

    #[test]
    fn periods_near_the_end_of_chrono_range_are_errors_not_panics() {
        let min = DateTime::<Utc>::MIN_UTC;
        let max = DateTime::<Utc>::MAX_UTC;
        for spec in [
            PeriodSpec::monthly(),
            PeriodSpec::daily().in_timezone(chrono_tz::America::New_York),
            PeriodSpec::yearly().in_timezone(chrono_tz::Pacific::Kiritimati),
            PeriodSpec::rolling_days(PeriodKind::MAX_ROLLING_DAYS).unwrap(),
            PeriodSpec::weekly().anchored_at(min),
            PeriodSpec::monthly().anchored_at(max),
        ] {
            // The period containing the last representable instant would end after it.
            assert!(spec.period_at(max).is_err(), "{spec}");
            for t in [min, min + TimeDelta::days(40), max - TimeDelta::days(40)] {
                // Either an error or a correct period; never a panic.
                if let Ok(p) = spec.period_at(t) {
                    assert!(p.contains(t), "{spec} {t}");
                }
            }
            let first = Period::new(min, min + TimeDelta::days(1)).unwrap();
            if let Ok(p) = spec.previous(&first) {
                assert!(p.start < p.end);
            }
            let last = Period::new(max - TimeDelta::days(1), max).unwrap();
            assert!(spec.next(&last).is_err(), "{spec}");
        }
    }
}
