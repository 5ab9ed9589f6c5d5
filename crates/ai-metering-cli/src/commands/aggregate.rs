//! `ai-metering aggregate`: rebuild the daily usage rollups that feed the dashboard, one
//! day, week or month per transaction, and show the totals per period.
//!
//! Every usage insert keeps the rollups up to date; the rebuild repairs days whose rows were
//! changed behind the store's back (by hand, or by an older version).

use std::collections::BTreeMap;

use ai_metering_core::store::{GroupBy, ReportStore, RetentionStore, UsageFilter, UsageSums};
use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use super::Ctx;
use crate::cli::{AggregateArgs, AggregatePeriod, Format};
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};
use crate::prompt::progress;

#[derive(Debug, Serialize)]
struct Rollup {
    period: String,
    from: NaiveDate,
    until: NaiveDate,
    days: u64,
    #[serde(flatten)]
    sums: UsageSums,
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &AggregateArgs) -> CliResult {
    let metering = ctx.metering().await?;
    let store = metering.store();
    let today = metering.now().date_naive();
    let from = match args.days {
        Some(days) => {
            let span = i64::try_from(days)
                .ok()
                .and_then(Duration::try_days)
                .ok_or_else(|| CliError::usage(format!("--days {days} is too large")))?;
            Some(
                (today - span)
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc(),
            )
        }
        None => None,
    };
    let filter = UsageFilter {
        from,
        ..UsageFilter::default()
    };
    let per_day = store.sum_usage_grouped(&filter, GroupBy::Day).await?;
    let mut rollups: BTreeMap<NaiveDate, Rollup> = BTreeMap::new();
    for day in &per_day {
        let Ok(date) = NaiveDate::parse_from_str(&day.key, "%Y-%m-%d") else {
            continue;
        };
        let (start, until, label) = bucket(date, args.period);
        let r = rollups.entry(start).or_insert_with(|| Rollup {
            period: label,
            from: start,
            until,
            days: 0,
            sums: UsageSums::default(),
        });
        r.days += 1;
        add(&mut r.sums, &day.sums);
    }
    if rollups.is_empty() {
        ctx.out.line("No usage to aggregate.");
        if ctx.out.format() == Format::Json {
            ctx.out
                .json(&serde_json::json!({"rows_written": 0, "periods": []}))?;
        }
        return Ok(());
    }
    let bar = progress(
        u64::try_from(rollups.len()).unwrap_or(u64::MAX),
        "Aggregating",
    );
    let mut written = 0_u64;
    for r in rollups.values() {
        written = written.saturating_add(store.rebuild_daily_aggregates(r.from, r.until).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rollups: Vec<Rollup> = rollups.into_values().collect();
    if ctx.out.format() == Format::Json {
        return ctx
            .out
            .json(&serde_json::json!({"rows_written": written, "periods": rollups}));
    }
    let currency = metering.catalog().currency();
    let rows: Vec<Vec<String>> = rollups
        .iter()
        .map(|r| {
            vec![
                r.period.clone(),
                r.days.to_string(),
                thousands(r.sums.calls),
                thousands(r.sums.total_tokens),
                ctx.out.money(r.sums.cost, currency),
            ]
        })
        .collect();
    ctx.out.table(
        &[
            text("Period"),
            num("Days"),
            num("Calls"),
            num("Tokens"),
            num("Cost"),
        ],
        &rows,
    )?;
    ctx.out.success(&format!(
        "Rebuilt {} daily aggregate rows for {} day(s).",
        thousands(written),
        per_day.len()
    ));
    Ok(())
}

/// The bucket of `date`: its start, its end (exclusive) and its label.
fn bucket(date: NaiveDate, period: AggregatePeriod) -> (NaiveDate, NaiveDate, String) {
    match period {
        AggregatePeriod::Day => (
            date,
            date.succ_opt().unwrap_or(date),
            date.format("%Y-%m-%d").to_string(),
        ),
        AggregatePeriod::Week => {
            let start = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
            let week = date.iso_week();
            (
                start,
                start + Duration::days(7),
                format!("{}-W{:02}", week.year(), week.week()),
            )
        }
        AggregatePeriod::Month => {
            let start = date.with_day(1).unwrap_or(date);
            let until = start
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(start);
            (start, until, start.format("%Y-%m").to_string())
        }
    }
}

fn add(total: &mut UsageSums, s: &UsageSums) {
    total.calls = total.calls.saturating_add(s.calls);
    total.input_tokens = total.input_tokens.saturating_add(s.input_tokens);
    total.cached_input_tokens = total
        .cached_input_tokens
        .saturating_add(s.cached_input_tokens);
    total.cache_write_tokens = total
        .cache_write_tokens
        .saturating_add(s.cache_write_tokens);
    total.output_tokens = total.output_tokens.saturating_add(s.output_tokens);
    total.reasoning_tokens = total.reasoning_tokens.saturating_add(s.reasoning_tokens);
    total.total_tokens = total.total_tokens.saturating_add(s.total_tokens);
    total.cost = total.cost.saturating_add(s.cost);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_fall_into_iso_weeks_and_calendar_months() {
        let d = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
        let (start, until, label) = bucket(d, AggregatePeriod::Week);
        assert_eq!(start.to_string(), "2024-12-30");
        assert_eq!(until.to_string(), "2025-01-06");
        assert_eq!(label, "2025-W01");
        let (start, until, label) = bucket(d, AggregatePeriod::Month);
        assert_eq!(
            (start.to_string(), until.to_string(), label.as_str()),
            ("2024-12-01".into(), "2025-01-01".into(), "2024-12")
        );
        let (start, until, _) = bucket(d, AggregatePeriod::Day);
        assert_eq!(until - start, Duration::days(1));
    }
}
