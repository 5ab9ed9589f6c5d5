//! `ai-metering cleanup`: delete usage rows older than the retention period.
//!
//! It runs non-interactively with `--yes` (for scheduled cleanups), and it refuses with a
//! clear message when there is no terminal to ask and no `--yes`.

use ai_metering_core::store::{GroupBy, ReportStore, RetentionStore, UsageFilter};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use super::Ctx;
use crate::cli::{CleanupArgs, Format};
use crate::error::{CliError, CliResult};
use crate::output::thousands;
use crate::prompt::{confirm, progress};

/// Rows deleted per transaction.
const BATCH_SIZE: u64 = 1_000;

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &CleanupArgs) -> CliResult {
    ctx.out.no_csv("cleanup")?;
    let days = args.days.unwrap_or(ctx.config.prune_after_days);
    let metering = ctx.metering().await?;
    let store = metering.store();
    let now = metering.now();
    let span = i64::try_from(days)
        .ok()
        .and_then(Duration::try_days)
        .ok_or_else(|| CliError::usage(format!("--days {days} is too large")))?;
    let cutoff = now - span;
    let filter = UsageFilter {
        until: Some(cutoff),
        ..UsageFilter::default()
    };
    let per_day = store.sum_usage_grouped(&filter, GroupBy::Day).await?;
    let count: u64 = per_day.iter().map(|d| d.sums.calls).sum();
    let before = cutoff.format("%Y-%m-%d");
    let summary = |deleted: u64, dry_run: bool| {
        json!({
            "days": days,
            "cutoff": cutoff,
            "matching": count,
            "deleted": deleted,
            "dry_run": dry_run,
        })
    };
    let out = &ctx.out;
    if count == 0 {
        out.line("No old usage records to clean up.");
        return json_if(ctx, &summary(0, args.dry_run));
    }
    if args.dry_run {
        out.warn(&format!(
            "DRY RUN: Would delete {} usage records older than {days} days (before {before}).",
            thousands(count)
        ));
        out.line("Run without --dry-run (and with --yes when not on a terminal) to delete them.");
        return json_if(ctx, &summary(0, true));
    }
    let question = format!(
        "Delete {} usage records older than {days} days (before {before})?",
        thousands(count)
    );
    if !confirm(&question, args.yes)? {
        out.line("Cleanup cancelled.");
        return json_if(ctx, &summary(0, false));
    }

    // One date at a time (the billables' dates, each pruned up to the end of that UTC date),
    // oldest first: small transactions and a meaningful progress bar; the cutoff ends it.
    let bar = progress(count, "Deleting");
    let mut deleted = 0_u64;
    for day in &per_day {
        let bound = day_end(&day.key).map_or(cutoff, |end| end.min(cutoff));
        deleted = deleted.saturating_add(store.prune_usage_before(bound, BATCH_SIZE).await?.usages);
        bar.set_position(deleted.min(count));
    }
    // Rows that arrived meanwhile with an old timestamp.
    deleted = deleted.saturating_add(store.prune_usage_before(cutoff, BATCH_SIZE).await?.usages);
    bar.finish_and_clear();
    out.success(&format!(
        "Successfully deleted {} usage records.",
        thousands(deleted)
    ));
    json_if(ctx, &summary(deleted, false))
}

fn json_if(ctx: &Ctx, value: &serde_json::Value) -> CliResult {
    if ctx.out.format() == Format::Json {
        ctx.out.json(value)?;
    }
    Ok(())
}

/// The end of the UTC day keyed `YYYY-MM-DD`.
fn day_end(key: &str) -> Option<DateTime<Utc>> {
    let day = NaiveDate::parse_from_str(key, "%Y-%m-%d").ok()?;
    Some(day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_keys_end_at_the_next_utc_midnight() {
        assert_eq!(
            day_end("2024-02-28").unwrap().to_rfc3339(),
            "2024-02-29T00:00:00+00:00"
        );
        assert_eq!(day_end("not a day"), None);
    }
}
