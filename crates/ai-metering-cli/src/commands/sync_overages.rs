//! `ai-metering sync-overages`: report pending overages to the billing driver.
//!
//! Each overage is marked synced only after the driver reported it (and only once), oldest
//! first, until `--limit` are synced; a failure leaves it pending for the next run without
//! holding back newer overages (the run reads on past it), and a credentials error stops
//! the run. The command exits non-zero when an overage failed, and when overages are pending
//! but no billing driver is configured (they stay pending, never silently marked as synced),
//! so that a scheduler sees the failure.

use ai_metering_billing::stripe::{MetaCustomerLookup, StripeBillingDriver, StripeMode};
use ai_metering_billing::{BillingDriver, NullBillingDriver, SyncOutcome, report_overage_now};
use ai_metering_core::Metering;
use ai_metering_core::store::{OverageRecord, OverageStore};
use serde::Serialize;

use super::{CliStore, Ctx};
use crate::cli::{Format, SyncOveragesArgs};
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};
use crate::prompt::progress;

/// What happened to one overage.
#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    billable: String,
    tokens: u64,
    amount: String,
    currency: String,
    status: &'static str,
    detail: String,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    driver: String,
    pending: usize,
    synced: u64,
    already_synced: u64,
    not_reported: u64,
    failed: u64,
    stopped_early: bool,
    overages: Vec<Row>,
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &SyncOveragesArgs) -> CliResult {
    let metering = ctx.metering().await?;
    let pending = metering
        .store()
        .pending_overages(None, page_size(args.limit))
        .await?;
    if pending.is_empty() {
        ctx.out.line("No pending overages to sync.");
        if ctx.out.format() == Format::Json {
            ctx.out.json(&Summary {
                driver: ctx.config.billing_driver.clone(),
                ..Summary::default()
            })?;
        }
        return Ok(());
    }
    match ctx.config.billing_driver.as_str() {
        "stripe" => {
            let s = &ctx.config.stripe;
            let mode = match s.mode.as_str() {
                "meter_events" => StripeMode::meter_events(&s.meter_event_name),
                _ => StripeMode::InvoiceItems,
            };
            let driver = StripeBillingDriver::builder(
                &s.secret,
                mode,
                MetaCustomerLookup::new(metering.clone()),
            )
            .base_url(&s.api_base)
            .build()
            .map_err(|e| CliError::usage(format!("invalid Stripe settings: {e}")))?;
            sync(ctx, &metering, &driver, args.limit, pending).await
        }
        _ => sync(ctx, &metering, &NullBillingDriver, args.limit, pending).await,
    }
}

/// Pending overages are read this many at a time (at most).
const PAGE: u64 = 100;

fn page_size(limit: u64) -> u64 {
    limit.clamp(1, PAGE)
}

/// Syncs `first` and the pages after it until `limit` overages are synced, every pending
/// one was tried, or a credentials error stops the run.
async fn sync<D: BillingDriver>(
    ctx: &Ctx,
    metering: &Metering<CliStore>,
    driver: &D,
    limit: u64,
    first: Vec<OverageRecord>,
) -> CliResult {
    let mut summary = Summary {
        driver: ctx.config.billing_driver.clone(),
        ..Summary::default()
    };
    let bar = progress(first.len() as u64, "Syncing");
    let mut tried: Vec<OverageRecord> = Vec::new();
    let mut page = first;
    'pages: loop {
        let full = page.len() as u64 == page_size(limit);
        let mut rows = page.into_iter();
        while let Some(o) = rows.next() {
            let attempted = attempt(metering, driver, &o, &mut summary).await;
            summary.overages.push(attempted);
            tried.push(o);
            bar.inc(1);
            if summary.stopped_early {
                // The rest of the page read is listed, not attempted.
                for o in rows.by_ref() {
                    let detail = "not attempted after a credentials error".to_owned();
                    summary.overages.push(row(&o, "skipped", detail));
                    tried.push(o);
                }
                break 'pages;
            }
            if summary.synced == limit {
                break 'pages;
            }
        }
        if !full {
            break;
        }
        page = metering
            .store()
            .pending_overages(tried.last(), page_size(limit))
            .await?;
        if page.is_empty() {
            break;
        }
        bar.inc_length(page.len() as u64);
    }
    bar.finish_and_clear();
    summary.pending = tried.len();
    print(ctx, &tried, &summary)?;

    if summary.failed > 0 || summary.stopped_early {
        return Err(CliError::failure(format!(
            "{} of {} overages failed to sync{}; they stay pending for the next run",
            summary.failed,
            summary.pending,
            if summary.stopped_early {
                " (stopped after a credentials error)"
            } else {
                ""
            }
        )));
    }
    if summary.not_reported > 0 {
        let hint = if summary.driver == "none" {
            "no billing driver is configured (set billing.driver or AI_METERING_BILLING_DRIVER)"
        } else {
            "the billing driver reported nothing"
        };
        return Err(CliError::failure(format!(
            "{} pending overages, but {hint}; nothing was synced",
            summary.not_reported
        )));
    }
    Ok(())
}

/// Reports one overage and counts the outcome in `summary`.
async fn attempt<D: BillingDriver>(
    metering: &Metering<CliStore>,
    driver: &D,
    o: &OverageRecord,
    summary: &mut Summary,
) -> Row {
    let (status, detail) =
        match report_overage_now(metering.store(), driver, o, metering.now()).await {
            Ok(SyncOutcome::Synced(id)) => {
                summary.synced += 1;
                ("synced", id.to_string())
            }
            Ok(SyncOutcome::AlreadySynced) => {
                summary.already_synced += 1;
                ("already synced", String::new())
            }
            Ok(SyncOutcome::NotReported { reason }) => {
                summary.not_reported += 1;
                ("pending", reason)
            }
            Err(e) => {
                summary.failed += 1;
                summary.stopped_early = e.is_systemic();
                ("failed", e.to_string())
            }
        };
    row(o, status, detail)
}

fn row(o: &OverageRecord, status: &'static str, detail: String) -> Row {
    let ov = &o.overage;
    Row {
        id: o.id,
        billable: ov.billable.to_string(),
        tokens: ov.tokens,
        amount: ov.amount.amount.to_string(),
        currency: ov.amount.currency.to_string(),
        status,
        detail,
    }
}

fn print(ctx: &Ctx, pending: &[OverageRecord], summary: &Summary) -> CliResult {
    let out = &ctx.out;
    if out.format() == Format::Json {
        return out.json(summary);
    }
    let rows: Vec<Vec<String>> = pending
        .iter()
        .zip(&summary.overages)
        .map(|(o, row)| {
            let ov = &o.overage;
            vec![
                o.id.to_string(),
                row.billable.clone(),
                format!(
                    "{} to {}",
                    ov.period.start.format("%Y-%m-%d"),
                    ov.period.end.format("%Y-%m-%d")
                ),
                thousands(ov.tokens),
                out.money(ov.amount.amount, ov.amount.currency),
                row.status.to_owned(),
                row.detail.clone(),
            ]
        })
        .collect();
    out.table(
        &[
            num("ID"),
            text("Billable"),
            text("Period"),
            num("Tokens"),
            num("Amount"),
            text("Status"),
            text("Detail"),
        ],
        &rows,
    )?;
    if summary.synced > 0 {
        out.success(&format!(
            "Successfully synced {} overages to {}.",
            summary.synced, summary.driver
        ));
    }
    Ok(())
}
