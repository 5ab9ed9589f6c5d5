//! `ai-metering gdpr delete|anonymize TYPE:ID`: erase one billable;
//! `ai-metering gdpr delete-user|anonymize-user USER_ID`: erase one user's usage.
//!
//! `delete` removes every row about the billable. `anonymize` keeps usage for the totals
//! but moves it to a random tombstone billable (`anonymized:<random hex>`) and drops user
//! ids, metadata and idempotency keys. `delete-user` deletes the usage rows one user made,
//! whatever billable paid; `anonymize-user` keeps them without the user id, metadata and
//! idempotency keys. Counters and daily aggregates follow the rows left.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use ai_metering_core::Billable;
use ai_metering_core::store::{RetentionStore, RowCounts};
use serde_json::json;

use super::{Ctx, ensure_known};
use crate::cli::{Format, GdprArgs, GdprCommand, GdprUserArgs};
use crate::error::CliResult;
use crate::output::{num, text, thousands};
use crate::prompt::confirm;

/// Runs a `gdpr` subcommand.
pub async fn run(ctx: &Ctx, command: &GdprCommand) -> CliResult {
    ctx.out.no_csv("gdpr")?;
    match command {
        GdprCommand::Delete(a) => billable(ctx, a, false).await,
        GdprCommand::Anonymize(a) => billable(ctx, a, true).await,
        GdprCommand::DeleteUser(a) => user(ctx, a, false).await,
        GdprCommand::AnonymizeUser(a) => user(ctx, a, true).await,
    }
}

/// `gdpr delete|anonymize TYPE:ID`.
async fn billable(ctx: &Ctx, args: &GdprArgs, anonymize: bool) -> CliResult {
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
    let done = match &tombstone {
        Some(t) => format!(
            "Anonymised {billable}: {} rows now belong to {t}.",
            thousands(counts.total())
        ),
        None => format!(
            "Deleted {} rows about {billable}.",
            thousands(counts.total())
        ),
    };
    report(
        ctx,
        &counts,
        json!({
            "billable": billable.to_string(),
            "action": if anonymize { "anonymized" } else { "deleted" },
            "tombstone": tombstone.as_ref().map(Billable::to_string),
        }),
        &done,
    )
}

/// `gdpr delete-user|anonymize-user USER_ID`.
async fn user(ctx: &Ctx, args: &GdprUserArgs, anonymize: bool) -> CliResult {
    let metering = ctx.metering().await?;
    let store = metering.store();
    let user_id = args.user_id.as_str();
    let question = if anonymize {
        format!("Remove user {user_id:?} from every usage row (the totals stay)?")
    } else {
        format!("Delete every usage row of user {user_id:?}? This cannot be undone.")
    };
    if !confirm(&question, args.yes)? {
        ctx.out.line("Cancelled: nothing was changed.");
        return Ok(());
    }
    let counts = if anonymize {
        store.anonymize_user(user_id).await?
    } else {
        store.delete_user(user_id).await?
    };
    let done = if anonymize {
        format!(
            "Anonymised {} usage rows of user {user_id:?}.",
            thousands(counts.usages)
        )
    } else {
        format!(
            "Deleted {} usage rows of user {user_id:?}.",
            thousands(counts.usages)
        )
    };
    report(
        ctx,
        &counts,
        json!({
            "user_id": user_id,
            "action": if anonymize { "anonymized" } else { "deleted" },
        }),
        &done,
    )
}

/// Prints what changed, per table: `summary` plus the counts as JSON, or a table and `done`.
fn report(ctx: &Ctx, counts: &RowCounts, summary: serde_json::Value, done: &str) -> CliResult {
    let tables = table_counts(counts);
    if ctx.out.format() == Format::Json {
        let rows: serde_json::Map<String, serde_json::Value> = tables
            .iter()
            .map(|(t, n)| ((*t).to_owned(), json!(n)))
            .collect();
        let mut out = summary;
        out["rows"] = json!(rows);
        out["total"] = json!(counts.total());
        return ctx.out.json(&out);
    }
    let rows: Vec<Vec<String>> = tables
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| vec![(*t).to_owned(), thousands(*n)])
        .collect();
    if !rows.is_empty() {
        ctx.out.table(&[text("Table"), num("Rows")], &rows)?;
    }
    ctx.out.success(done);
    Ok(())
}

/// A tombstone that cannot be traced back to the billable: `anonymized:<random hex>`, from
/// the standard library's randomly seeded hasher.
fn tombstone_for(billable: &Billable) -> Billable {
    let a = RandomState::new().hash_one(billable);
    let b = RandomState::new().hash_one(std::time::SystemTime::now());
    Billable::new("anonymized", format!("{a:016x}{b:016x}"))
}

fn table_counts(c: &RowCounts) -> [(&'static str, u64); 13] {
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
        ("ai_api_keys", c.api_keys),
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
