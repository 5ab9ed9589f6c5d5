//! `ai-metering sync-overages`: report pending overages to the billing driver.
//!
//! Unlike the original, which exited 0 whatever happened, the command exits non-zero when
//! an overage could not be synced, and when overages are pending but no billing driver is
//! configured (they are then left pending, never silently marked as synced).

use ai_metering_core::store::OverageStore;
use serde::Serialize;

use super::Ctx;
use crate::cli::{Format, SyncOveragesArgs};
use crate::error::{CliError, CliResult};
use crate::output::{money, num, text, thousands};

#[derive(Debug, Serialize)]
struct Summary<'a> {
    driver: &'a str,
    pending: usize,
    synced: u64,
    failed: u64,
    overages: &'a [ai_metering_core::store::OverageRecord],
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &SyncOveragesArgs) -> CliResult {
    let metering = ctx.metering().await?;
    let pending = metering.store().pending_overages(args.limit).await?;
    let out = &ctx.out;
    let driver = ctx.config.billing_driver.as_str();
    let summary = Summary {
        driver,
        pending: pending.len(),
        synced: 0,
        failed: 0,
        overages: &pending,
    };
    if pending.is_empty() {
        out.line("No pending overages to sync.");
        if out.format() == Format::Json {
            out.json(&summary)?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = pending
        .iter()
        .map(|o| {
            let ov = &o.overage;
            vec![
                o.id.to_string(),
                ov.billable.to_string(),
                format!(
                    "{} to {}",
                    ov.period.start.format("%Y-%m-%d"),
                    ov.period.end.format("%Y-%m-%d")
                ),
                thousands(ov.tokens),
                money(ov.amount.amount, ov.amount.currency),
                ov.created_at.format("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    match out.format() {
        Format::Json => out.json(&summary)?,
        _ => {
            out.heading(&format!("{} pending overages", pending.len()));
            out.table(
                &[
                    num("ID"),
                    text("Billable"),
                    text("Period"),
                    num("Tokens"),
                    num("Amount"),
                    text("Recorded"),
                ],
                &rows,
            )?;
        }
    }
    // `none` is the only driver so far: say so, and fail, so that a scheduled run
    // does not hide that nothing is being billed.
    Err(CliError::failure(format!(
        "{} pending overages, but no billing driver is configured (billing.driver = {driver:?}, \
         AI_METERING_BILLING_DRIVER); nothing was synced",
        pending.len()
    )))
}
