//! `ai-metering check`: the reconciliation of [`ai_metering_core::reconcile`], per billable:
//! usage rows against counters, wallet ledgers against balances, holds against held
//! amounts and reservations, overage rows against usage rows.
//!
//! Exits 1 when records disagree (and, with `--deny-warnings`, when reservations or holds
//! were left past their expiry); the findings are printed either way.

use ai_metering_core::reconcile::{CheckOptions, Report, Severity, reconcile, reconcile_billables};
use chrono::{Duration, Utc};

use super::Ctx;
use crate::cli::{CheckArgs, Format};
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &CheckArgs) -> CliResult {
    let metering = ctx.metering().await?;
    let store = metering.store();
    let options = CheckOptions {
        now: args.now.unwrap_or_else(Utc::now),
        grace: Duration::seconds(i64::from(args.grace)),
        since: args.since,
        credit_debits: args.match_debits,
    };
    let report = match &args.billable {
        Some(b) => reconcile_billables(store, std::slice::from_ref(b), &options).await?,
        None => reconcile(store, &options).await?,
    };
    match ctx.out.format() {
        Format::Json => ctx.out.json(&report)?,
        Format::Csv => write_findings(ctx, &report)?,
        Format::Table => write_table(ctx, &report)?,
    }
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    if errors > 0 {
        return Err(CliError::failure(format!(
            "the records disagree: {errors} error(s), {warnings} warning(s)"
        )));
    }
    if warnings > 0 && args.deny_warnings {
        return Err(CliError::failure(format!(
            "{warnings} warning(s), denied by --deny-warnings"
        )));
    }
    Ok(())
}

fn write_table(ctx: &Ctx, r: &Report) -> CliResult {
    let out = &ctx.out;
    let c = &r.checked;
    out.heading("Reconciliation");
    out.heading("==============");
    out.line(&format!(
        "At {} (grace {} s{}{})",
        r.options.now.to_rfc3339(),
        r.options.grace.num_seconds(),
        r.options
            .since
            .map(|s| format!(", since {}", s.to_rfc3339()))
            .unwrap_or_default(),
        if r.options.credit_debits {
            ", usage debits matched"
        } else {
            ""
        },
    ));
    let rows = vec![
        vec!["Billables".into(), thousands(c.billables)],
        vec!["Usage rows".into(), thousands(c.usage_rows)],
        vec!["Counters".into(), thousands(c.counters)],
        vec!["Reservations".into(), thousands(c.reservations)],
        vec!["Wallets".into(), thousands(c.wallets)],
        vec!["Ledger entries".into(), thousands(c.ledger_entries)],
        vec!["Credit holds".into(), thousands(c.holds)],
        vec!["Overages".into(), thousands(c.overages)],
    ];
    out.table(&[text("Checked"), num("Records")], &rows)?;
    out.line("");
    if r.findings.is_empty() {
        out.success("Everything reconciles.");
        return Ok(());
    }
    write_findings(ctx, r)?;
    let errors = r.errors().count();
    if errors == 0 {
        out.warn("No mismatches, but records were left behind (warnings above).");
    }
    Ok(())
}

fn write_findings(ctx: &Ctx, r: &Report) -> CliResult {
    let rows: Vec<Vec<String>> = r
        .findings
        .iter()
        .map(|f| {
            vec![
                f.billable.to_string(),
                match f.severity {
                    Severity::Error => "error".into(),
                    Severity::Warning => "warning".into(),
                },
                f.kind.to_string(),
                f.subject.clone(),
                f.expected.clone(),
                f.actual.clone(),
            ]
        })
        .collect();
    ctx.out.table(
        &[
            text("billable"),
            text("severity"),
            text("kind"),
            text("subject"),
            text("expected"),
            text("actual"),
        ],
        &rows,
    )
}
