//! Time windows: the current period, and a window's usage day by day.

use std::collections::HashMap;

use ai_metering_core::Metering;
use ai_metering_core::period::Period;
use ai_metering_core::store::{GroupBy, GroupedSums, ReportStore, Store, UsageFilter, UsageSums};
use chrono::{Days, NaiveDate, TimeDelta};
use serde::Serialize;

use crate::error::DashboardError;

/// The most days a daily series holds (the latest ones are kept).
pub(crate) const MAX_DAYS: u64 = 366;

/// The metering period that contains "now" (by the metering's clock and period rules).
pub(crate) fn current_period<S: Store + ReportStore>(
    metering: &Metering<S>,
) -> Result<Period, DashboardError> {
    Ok(metering.config().period.period_at(metering.now())?)
}

/// One day's usage (the billables' own days: a billable in Tokyo counts in Tokyo's dates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DayUsage {
    /// The day.
    pub(crate) day: NaiveDate,
    /// Its sums.
    #[serde(flatten)]
    pub(crate) sums: UsageSums,
}

/// Every day that `window` touches, zeros included, at most [`MAX_DAYS`] (the last). Days
/// are the billables' dates: a billable east or west of UTC may have a day just before or
/// after the window's UTC dates, which is shown too.
pub(crate) async fn daily<S: Store + ReportStore>(
    metering: &Metering<S>,
    filter: &UsageFilter,
    window: &Period,
) -> Result<Vec<DayUsage>, DashboardError> {
    let groups = metering
        .store()
        .sum_usage_grouped(filter, GroupBy::Day)
        .await?;
    Ok(fill_days(groups, window))
}

fn fill_days(groups: Vec<GroupedSums>, window: &Period) -> Vec<DayUsage> {
    if window.end <= window.start {
        return Vec::new();
    }
    let mut by_day: HashMap<NaiveDate, UsageSums> = groups
        .into_iter()
        .filter_map(|g| {
            NaiveDate::parse_from_str(&g.key, "%Y-%m-%d")
                .ok()
                .map(|d| (d, g.sums))
        })
        .collect();
    // The end is exclusive: the last day is the one holding the instant just before it.
    let last_utc = window
        .end
        .checked_sub_signed(TimeDelta::nanoseconds(1))
        .unwrap_or(window.start)
        .date_naive();
    let first = by_day
        .keys()
        .copied()
        .chain([window.start.date_naive()])
        .min()
        .unwrap_or(last_utc);
    let last = by_day
        .keys()
        .copied()
        .chain([last_utc])
        .max()
        .unwrap_or(last_utc);
    let span = u64::try_from((last - first).num_days()).unwrap_or(0);
    let first = if span >= MAX_DAYS {
        last.checked_sub_days(Days::new(MAX_DAYS - 1))
            .unwrap_or(first)
    } else {
        first
    };
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|day| DayUsage {
            day,
            sums: by_day.remove(&day).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn sums(tokens: u64) -> UsageSums {
        UsageSums {
            calls: 1,
            total_tokens: tokens,
            ..UsageSums::default()
        }
    }

    #[test]
    fn days_are_filled_with_zeros_and_the_end_is_exclusive() {
        let w = Period {
            start: Utc.with_ymd_and_hms(2024, 2, 27, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
        };
        let day = |key: &str, tokens| GroupedSums {
            key: key.into(),
            sums: sums(tokens),
        };
        let shown = |groups| -> Vec<(String, u64)> {
            fill_days(groups, &w)
                .iter()
                .map(|d| (d.day.to_string(), d.sums.total_tokens))
                .collect()
        };
        assert_eq!(
            shown(vec![day("2024-02-28", 5)]),
            [
                ("2024-02-27".into(), 0),
                ("2024-02-28".into(), 5),
                ("2024-02-29".into(), 0)
            ]
        );
        // A billable east of UTC called on its March 1st, still inside the window: its day
        // is shown, not dropped.
        assert_eq!(
            shown(vec![day("2024-02-28", 5), day("2024-03-01", 9)]),
            [
                ("2024-02-27".into(), 0),
                ("2024-02-28".into(), 5),
                ("2024-02-29".into(), 0),
                ("2024-03-01".into(), 9)
            ]
        );
    }

    #[test]
    fn empty_and_huge_windows_are_bounded() {
        let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert!(fill_days(vec![], &Period { start: t, end: t }).is_empty());
        let w = Period {
            start: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
            end: t,
        };
        let days = fill_days(vec![], &w);
        assert_eq!(days.len() as u64, MAX_DAYS);
        assert_eq!(days.last().unwrap().day.to_string(), "2023-12-31");
    }
}
