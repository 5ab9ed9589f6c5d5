//! `ai-metering report`: totals and the full breakdown by provider and model.
//!
//! The breakdown has one row per provider/model pair used in the period.

use ai_metering_core::period::Period;
use ai_metering_core::store::{GroupBy, ReportStore, UsageFilter, UsageSums};
use ai_metering_core::{Billable, Currency};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;

use super::{Ctx, ensure_known};
use crate::cli::{Format, Month, ReportArgs};
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};

/// The report, as written in JSON.
#[derive(Debug, Serialize)]
struct Report {
    period: Period,
    billable: Option<String>,
    currency: Currency,
    totals: Totals,
    breakdown: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Totals {
    #[serde(flatten)]
    sums: UsageSums,
    billables: u64,
}

#[derive(Debug, Serialize)]
struct Row {
    provider: String,
    model: String,
    #[serde(flatten)]
    sums: UsageSums,
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &ReportArgs) -> CliResult {
    let metering = ctx.metering().await?;
    if let Some(b) = &args.billable {
        ensure_known(&metering, &ctx.config, b).await?;
    }
    let period = match args.month {
        Some(month) => month_period(month, ctx.config.timezone)?,
        None => ctx.config.period.period_at(metering.now())?,
    };
    let filter = UsageFilter {
        billable: args.billable.clone(),
        ..UsageFilter::default()
    }
    .in_period(&period);
    let store = metering.store();
    let sums = store.sum_usage(&filter).await?;
    let billables = store
        .sum_usage_grouped(&filter, GroupBy::Billable)
        .await?
        .len();
    let breakdown = store
        .sum_usage_grouped(&filter, GroupBy::Model)
        .await?
        .into_iter()
        .map(|g| {
            let (provider, model) = g.key.split_once('/').unwrap_or((g.key.as_str(), ""));
            Row {
                provider: provider.to_owned(),
                model: model.to_owned(),
                sums: g.sums,
            }
        })
        .collect();
    let report = Report {
        period,
        billable: args.billable.as_ref().map(Billable::to_string),
        currency: metering.catalog().currency(),
        totals: Totals {
            sums,
            billables: u64::try_from(billables).unwrap_or(u64::MAX),
        },
        breakdown,
    };
    match ctx.out.format() {
        Format::Json => ctx.out.json(&report),
        Format::Csv => write_csv(ctx, &report),
        Format::Table => write_table(ctx, &report),
    }
}

/// `[first of month, first of next month)` in `tz`.
fn month_period(month: Month, tz: Tz) -> CliResult<Period> {
    let start = local_midnight(month.year, month.month, tz)?;
    let (ny, nm) = if month.month == 12 {
        (month.year + 1, 1)
    } else {
        (month.year, month.month + 1)
    };
    let end = local_midnight(ny, nm, tz)?;
    Ok(Period::new(start, end)?)
}

fn local_midnight(year: i32, month: u32, tz: Tz) -> CliResult<chrono::DateTime<chrono::Utc>> {
    let date = NaiveDate::from_ymd_opt(year, month, 1)
        .ok_or_else(|| CliError::usage(format!("no such month: {year}-{month:02}")))?;
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight may not exist on a DST day: take the first instant at or after it.
    let local = tz
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .ok_or_else(|| CliError::usage(format!("no midnight on {date} in {}", tz.name())))?;
    Ok(local.with_timezone(&chrono::Utc))
}

fn write_table(ctx: &Ctx, r: &Report) -> CliResult {
    let out = &ctx.out;
    let tz = ctx.config.timezone;
    out.heading("AI Usage Report");
    out.heading("================");
    match &r.billable {
        Some(b) => out.line(&format!("Entity: {b}")),
        None => out.line("Entity: all billables"),
    }
    out.line(&format!(
        "Period: {} to {} ({}, end exclusive)",
        r.period.start.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        r.period.end.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        tz.name()
    ));
    out.line("");
    if r.totals.sums.calls == 0 {
        out.warn("No usage found for this period.");
        return Ok(());
    }
    let s = &r.totals.sums;
    let rows = vec![
        vec!["Total Tokens".into(), thousands(s.total_tokens)],
        vec!["Input Tokens".into(), thousands(s.input_tokens)],
        vec![
            "Cached Input Tokens".into(),
            thousands(s.cached_input_tokens),
        ],
        vec!["Output Tokens".into(), thousands(s.output_tokens)],
        vec!["Reasoning Tokens".into(), thousands(s.reasoning_tokens)],
        vec!["Total Cost".into(), out.money(s.cost, r.currency)],
        vec!["API Calls".into(), thousands(s.calls)],
        vec!["Billable Entities".into(), thousands(r.totals.billables)],
    ];
    out.table(&[text("Metric"), num("Value")], &rows)?;
    out.line("");
    out.heading("Breakdown by Provider/Model");
    let rows: Vec<Vec<String>> = r
        .breakdown
        .iter()
        .map(|row| {
            vec![
                row.provider.clone(),
                row.model.clone(),
                thousands(row.sums.input_tokens),
                thousands(row.sums.output_tokens),
                thousands(row.sums.total_tokens),
                out.money(row.sums.cost, r.currency),
                thousands(row.sums.calls),
            ]
        })
        .collect();
    out.table(
        &[
            text("Provider"),
            text("Model"),
            num("Input"),
            num("Output"),
            num("Tokens"),
            num("Cost"),
            num("Calls"),
        ],
        &rows,
    )
}

/// CSV: one row per provider and model, then a `TOTAL` row; exact (unrounded) costs.
fn write_csv(ctx: &Ctx, r: &Report) -> CliResult {
    let row = |provider: &str, model: &str, s: &UsageSums| {
        vec![
            provider.to_owned(),
            model.to_owned(),
            s.calls.to_string(),
            s.input_tokens.to_string(),
            s.cached_input_tokens.to_string(),
            s.cache_write_tokens.to_string(),
            s.output_tokens.to_string(),
            s.reasoning_tokens.to_string(),
            s.total_tokens.to_string(),
            s.cost.to_string(),
            r.currency.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = r
        .breakdown
        .iter()
        .map(|b| row(&b.provider, &b.model, &b.sums))
        .collect();
    rows.push(row("TOTAL", "", &r.totals.sums));
    ctx.out.table(
        &[
            text("provider"),
            text("model"),
            num("calls"),
            num("input_tokens"),
            num("cached_input_tokens"),
            num("cache_write_tokens"),
            num("output_tokens"),
            num("reasoning_tokens"),
            num("total_tokens"),
            num("cost"),
            text("currency"),
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_the_configured_zone() {
        let p = month_period(
            Month {
                year: 2024,
                month: 12,
            },
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(p.start.to_rfc3339(), "2024-12-01T00:00:00+00:00");
        assert_eq!(p.end.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        let p = month_period(
            Month {
                year: 2024,
                month: 3,
            },
            Tz::Europe__Berlin,
        )
        .unwrap();
        assert_eq!(p.start.to_rfc3339(), "2024-02-29T23:00:00+00:00");
        assert_eq!(p.end.to_rfc3339(), "2024-03-31T22:00:00+00:00");
    }
}
