//! `ai-metering gdpr delete|anonymize TYPE:ID`: erase one billable.
//!
//! `delete` removes every row about the billable. `anonymize` keeps usage for the totals
//! but moves it to a random tombstone billable (`anonymized:<random hex>`) and drops user
//! ids, metadata and idempotency keys.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use ai_metering_core::Billable;
use ai_metering_seaorm::RowCounts;
use serde_json::json;

use super::{Ctx, ensure_known};
use crate::cli::{Format, GdprCommand};
use crate::error::CliResult;
use crate::output::{num, text, thousands};
use crate::prompt::confirm;

/// Runs a `gdpr` subcommand.
pub async fn run(ctx: &Ctx, command: &GdprCommand) -> CliResult {
    ctx.out.no_csv("gdpr")?;
    let (args, anonymize) = match command {
        GdprCommand::Delete(a) => (a, false),
        GdprCommand::Anonymize(a) => (a, true),
    };
    let metering = ctx.metering().await?;
    let billable = &args.billable;
    ensure_known(&metering, &ctx.config, billable).await?;
    let question = if anonymize {
        format!("Anonymise everything stored about {billable}? This cannot be undone.")
    } else {
        format!("Delete everything stored about {billable}? This cannot be undone.")
    };
    if !confirm(&question, args.yes)? {
        ctx.out.line("Cancelled: nothing was changed.");
        return Ok(());
    }
    let store = metering.store();
    let (counts, tombstone) = if anonymize {
        let tombstone = tombstone_for(billable);
        (
            store.anonymize_billable(billable, &tombstone).await?,
            Some(tombstone),
        )
    } else {
        (store.delete_billable(billable).await?, None)
    };
    let tables = table_counts(&counts);
    if ctx.out.format() == Format::Json {
        let rows: serde_json::Map<String, serde_json::Value> = tables
            .iter()
            .map(|(t, n)| ((*t).to_owned(), json!(n)))
            .collect();
        return ctx.out.json(&json!({
            "billable": billable.to_string(),
            "action": if anonymize { "anonymized" } else { "deleted" },
            "tombstone": tombstone.as_ref().map(Billable::to_string),
            "rows": rows,
            "total": counts.total(),
        }));
    }
    let rows: Vec<Vec<String>> = tables
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| vec![(*t).to_owned(), thousands(*n)])
        .collect();
    if !rows.is_empty() {
        ctx.out.table(&[text("Table"), num("Rows")], &rows)?;
    }
    match tombstone {
        Some(t) => ctx.out.success(&format!(
            "Anonymised {billable}: {} rows now belong to {t}.",
            thousands(counts.total())
        )),
        None => ctx.out.success(&format!(
            "Deleted {} rows about {billable}.",
            thousands(counts.total())
        )),
    }
    Ok(())
}

/// A tombstone that cannot be traced back to the billable: `anonymized:<random hex>`, from
/// the standard library's randomly seeded hasher.
fn tombstone_for(billable: &Billable) -> Billable {
    let a = RandomState::new().hash_one(billable);
    let b = RandomState::new().hash_one(std::time::SystemTime::now());
    Billable::new("anonymized", format!("{a:016x}{b:016x}"))
}

fn table_counts(c: &RowCounts) -> [(&'static str, u64); 12] {
    [
        ("ai_usages", c.usages),
        ("ai_subscriptions", c.subscriptions),
        ("ai_usage_limit_overrides", c.limit_overrides),
        ("ai_period_counters", c.counters),
        ("ai_reservations", c.reservations),
        ("ai_threshold_claims", c.threshold_claims),
        ("ai_credit_wallets", c.wallets),
        ("ai_credit_transactions", c.credit_transactions),
        ("ai_credit_holds", c.credit_holds),
        ("ai_credit_grants", c.credit_grants),
        ("ai_overages", c.overages),
        ("ai_usage_daily_aggregates", c.aggregates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_differ_from_the_billable_and_from_each_other() {
        let b = Billable::new("user", 42);
        let t1 = tombstone_for(&b);
        let t2 = tombstone_for(&b);
        assert_eq!(t1.kind, "anonymized");
        assert_ne!(t1, t2);
        assert_eq!(t1.id.len(), 32);
    }
}
