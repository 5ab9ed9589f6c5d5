//! Exact sums over `ai_usages`, optionally grouped, on both backends.
//!
//! Token sums are cast to `BIGINT` in SQL. The cost is the sum of `total_cost_nano` (cast to
//! text, because PostgreSQL sums a `BIGINT` as `NUMERIC` and SQLite as an integer), plus the
//! exact text of the few rows whose cost has no exact nano-unit form.

use std::collections::HashMap;

use ai_metering_core::store::{GroupBy, StoreResult, UsageSums};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend};

use crate::codec::{from_nano_sum_text, money_from_text, to_u64};
use crate::error::db_err;

/// The SQL expression of the group key of `group_by` (see [`GroupBy::key_of`]).
pub(crate) fn group_key_sql(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Provider => r#""provider""#,
        GroupBy::Model => r#""provider" || '/' || "model""#,
        GroupBy::Feature => r#"COALESCE("feature", '')"#,
        GroupBy::Billable => r#""billable_type" || ':' || "billable_id""#,
        GroupBy::Tenant => r#"COALESCE("tenant_id", '')"#,
        // The billable's day, stored with the row.
        GroupBy::Day => r#""local_day""#,
    }
}

/// An instant column as the text of its Unix time in whole seconds (the days' bounds are
/// whole seconds).
pub(crate) fn epoch_sql(backend: DbBackend, column: &'static str) -> String {
    match backend {
        DbBackend::Postgres => {
            format!(r#"CAST(CAST(EXTRACT(EPOCH FROM "{column}") AS BIGINT) AS TEXT)"#)
        }
        // SQLite stores RFC 3339 text, which its date functions read.
        _ => format!(r#"strftime('%s', "{column}")"#),
    }
}

const TOKEN_COLUMNS: [&str; 6] = [
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
];

/// What sums are read from: the usage rows, or the daily aggregates (the same token and cost
/// columns, plus a count of calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `ai_usages`: a row is a call.
    Usage,
    /// `ai_usage_daily_aggregates`: a row holds `calls` calls.
    Aggregates,
}

impl Source {
    fn table(self) -> &'static str {
        match self {
            Source::Usage => "ai_usages",
            Source::Aggregates => "ai_usage_daily_aggregates",
        }
    }

    fn calls(self) -> &'static str {
        match self {
            Source::Usage => "COUNT(*)",
            Source::Aggregates => r#"CAST(COALESCE(SUM("calls"), 0) AS BIGINT)"#,
        }
    }
}

/// Sums of the usage rows matching `cond`, one entry per distinct value of the `keys`
/// expressions (a single entry with an empty key when `keys` is empty, even without rows).
pub(crate) async fn grouped_sums<C: ConnectionTrait>(
    db: &C,
    cond: Condition,
    keys: &[&str],
) -> StoreResult<Vec<(Vec<String>, UsageSums)>> {
    sums_from(db, Source::Usage, cond, keys).await
}

/// [`grouped_sums`] over the rows of `source`.
pub(crate) async fn sums_from<C: ConnectionTrait>(
    db: &C,
    source: Source,
    cond: Condition,
    keys: &[&str],
) -> StoreResult<Vec<(Vec<String>, UsageSums)>> {
    let mut q = Query::select();
    q.from(Alias::new(source.table()));
    select_keys(&mut q, keys);
    q.expr_as(Expr::cust(source.calls()), Alias::new("calls"));
    for col in TOKEN_COLUMNS {
        q.expr_as(
            Expr::cust(format!(r#"CAST(COALESCE(SUM("{col}"), 0) AS BIGINT)"#)),
            Alias::new(col),
        );
    }
    q.expr_as(
        Expr::cust(r#"CAST(COALESCE(SUM("total_cost_nano"), 0) AS TEXT)"#),
        Alias::new("cost_nano"),
    );
    q.cond_where(cond.clone());
    if !keys.is_empty() {
        q.add_group_by(keys.iter().map(|k| Expr::cust(k.to_string())));
    }
    let rows = db.query_all(&q).await.map_err(db_err)?;

    let mut groups: Vec<(Vec<String>, UsageSums)> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Vec<String>, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        let key = read_keys(&row, keys.len())?;
        let get = |col: &str| -> StoreResult<u64> {
            let v: i64 = row.try_get("", col).map_err(db_err)?;
            to_u64(col, v)
        };
        let cost_text: String = row.try_get("", "cost_nano").map_err(db_err)?;
        let sums = UsageSums {
            calls: get("calls")?,
            input_tokens: get("input_tokens")?,
            cached_input_tokens: get("cached_input_tokens")?,
            cache_write_tokens: get("cache_write_tokens")?,
            output_tokens: get("output_tokens")?,
            reasoning_tokens: get("reasoning_tokens")?,
            total_tokens: get("total_tokens")?,
            cost: from_nano_sum_text(&cost_text)?,
        };
        index.insert(key.clone(), groups.len());
        groups.push((key, sums));
    }

    // Rows whose cost has no exact nano-unit form: add their exact text.
    let mut q = Query::select();
    q.from(Alias::new(source.table()));
    select_keys(&mut q, keys);
    q.column(Alias::new("total_cost"));
    q.cond_where(cond.add(Expr::col(Alias::new("total_cost_nano")).is_null()));
    for row in db.query_all(&q).await.map_err(db_err)? {
        let key = read_keys(&row, keys.len())?;
        let text: String = row.try_get("", "total_cost").map_err(db_err)?;
        let cost = money_from_text(source.table(), &text)?;
        let slot = match index.get(&key) {
            Some(&i) => i,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, UsageSums::default()));
                groups.len() - 1
            }
        };
        if let Some((_, sums)) = groups.get_mut(slot) {
            sums.cost = sums.cost.saturating_add(cost);
        }
    }
    for (_, sums) in &mut groups {
        sums.cost = sums.cost.normalize();
    }
    Ok(groups)
}

fn select_keys(q: &mut sea_orm::sea_query::SelectStatement, keys: &[&str]) {
    for (i, k) in keys.iter().enumerate() {
        q.expr_as(Expr::cust(k.to_string()), Alias::new(format!("k{i}")));
    }
}

fn read_keys(row: &sea_orm::QueryResult, n: usize) -> StoreResult<Vec<String>> {
    (0..n)
        .map(|i| row.try_get::<String>("", &format!("k{i}")).map_err(db_err))
        .collect()
}
