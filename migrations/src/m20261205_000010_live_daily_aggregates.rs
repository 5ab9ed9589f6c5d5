//! `ai_usage_daily_aggregates` kept live: from this version on, every usage insert adds to
//! its aggregate in the same transaction, and long ranges are summed from the aggregates.
//!
//! Before it, aggregates were rebuilt on demand (and kept for days whose rows were pruned),
//! so the migration rebuilds them all from the usage rows: for every UTC day the aggregates
//! then equal that day's rows. Sums are exact: tokens and nano-unit costs in SQL, plus the
//! exact decimal text of the few costs with no nano-unit form. Upgrade every instance
//! together: a version before this one does not add to the aggregates.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiUsageDailyAggregates {
    Table,
    Day,
    BillableType,
    BillableId,
    TenantId,
    Provider,
    Model,
    Feature,
    Currency,
    Calls,
    InputTokens,
    CachedInputTokens,
    CacheWriteTokens,
    OutputTokens,
    ReasoningTokens,
    TotalTokens,
    TotalCost,
    TotalCostNano,
    UpdatedAt,
}

/// The token columns summed, in the order of the aggregate's columns.
const TOKENS: [&str; 6] = [
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
];

/// Rows per multi-row INSERT.
const CHUNK: usize = 200;

/// One aggregate: calls, the token sums, and the cost.
#[derive(Default)]
struct Sums {
    calls: i64,
    tokens: [i64; 6],
    cost: Decimal,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let backend = db.get_database_backend();
        let day = match backend {
            DbBackend::Postgres => "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            // SQLite stores RFC 3339 text in UTC.
            _ => "substr(occurred_at, 1, 10)",
        };
        let keys = format!(
            "{day} AS day, billable_type, billable_id, COALESCE(tenant_id, '') AS tenant_id, \
             provider, model, COALESCE(feature, '') AS feature, currency"
        );
        let key_of = |row: &sea_orm_migration::sea_orm::QueryResult| -> Result<[String; 8], DbErr> {
            let mut key: [String; 8] = Default::default();
            for (slot, col) in key.iter_mut().zip([
                "day",
                "billable_type",
                "billable_id",
                "tenant_id",
                "provider",
                "model",
                "feature",
                "currency",
            ]) {
                *slot = row.try_get("", col)?;
            }
            Ok(key)
        };

        let mut groups: BTreeMap<[String; 8], Sums> = BTreeMap::new();
        let token_sums: Vec<String> = TOKENS
            .iter()
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
            .collect();
        let sql = format!(
            "SELECT {keys}, COUNT(*) AS calls, {}, \
             CAST(COALESCE(SUM(total_cost_nano), 0) AS TEXT) AS cost_nano \
             FROM ai_usages GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
            token_sums.join(", ")
        );
        for row in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await?
        {
            let mut sums = Sums {
                calls: row.try_get("", "calls")?,
                ..Sums::default()
            };
            for (slot, col) in sums.tokens.iter_mut().zip(TOKENS) {
                *slot = row.try_get("", col)?;
            }
            let nanos: String = row.try_get("", "cost_nano")?;
            sums.cost = from_nanos(&nanos)?;
            groups.insert(key_of(&row)?, sums);
        }
        // Costs with no exact nano-unit form were left out of the SQL sums: add their text.
        let sql = format!("SELECT {keys}, total_cost FROM ai_usages WHERE total_cost_nano IS NULL");
        for row in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await?
        {
            let text: String = row.try_get("", "total_cost")?;
            let cost = Decimal::from_str(&text).map_err(|e| {
                DbErr::Migration(format!(
                    "ai_usages.total_cost {text:?} is not a decimal: {e}"
                ))
            })?;
            let sums = groups.entry(key_of(&row)?).or_default();
            sums.cost += cost;
        }

        m.exec_stmt(
            Query::delete()
                .from_table(AiUsageDailyAggregates::Table)
                .to_owned(),
        )
        .await?;
        let now = chrono::Utc::now();
        let groups: Vec<([String; 8], Sums)> = groups.into_iter().collect();
        for chunk in groups.chunks(CHUNK) {
            let mut insert = Query::insert();
            insert.into_table(AiUsageDailyAggregates::Table).columns([
                AiUsageDailyAggregates::Day,
                AiUsageDailyAggregates::BillableType,
                AiUsageDailyAggregates::BillableId,
                AiUsageDailyAggregates::TenantId,
                AiUsageDailyAggregates::Provider,
                AiUsageDailyAggregates::Model,
                AiUsageDailyAggregates::Feature,
                AiUsageDailyAggregates::Currency,
                AiUsageDailyAggregates::Calls,
                AiUsageDailyAggregates::InputTokens,
                AiUsageDailyAggregates::CachedInputTokens,
                AiUsageDailyAggregates::CacheWriteTokens,
                AiUsageDailyAggregates::OutputTokens,
                AiUsageDailyAggregates::ReasoningTokens,
                AiUsageDailyAggregates::TotalTokens,
                AiUsageDailyAggregates::TotalCost,
                AiUsageDailyAggregates::TotalCostNano,
                AiUsageDailyAggregates::UpdatedAt,
            ]);
            for (key, sums) in chunk {
                let cost = sums.cost.normalize();
                let mut values: Vec<SimpleExpr> =
                    key.iter().map(|k| Expr::val(k.as_str())).collect();
                values.push(Expr::val(sums.calls));
                values.extend(sums.tokens.iter().map(|t| Expr::val(*t)));
                values.push(Expr::val(cost.to_string()));
                values.push(Expr::val(nano_units(cost)));
                values.push(Expr::val(now));
                insert
                    .values(values)
                    .map_err(|e| DbErr::Migration(e.to_string()))?;
            }
            m.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        // The aggregates stay as they are: a version before this one reads them the same way.
        Ok(())
    }
}

/// An amount from the text of an SQL sum of nano-units.
fn from_nanos(text: &str) -> Result<Decimal, DbErr> {
    let trimmed = text.trim();
    // PostgreSQL may render a NUMERIC sum as `123.0`.
    let integer = trimmed
        .split_once('.')
        .filter(|(_, frac)| frac.bytes().all(|b| b == b'0'))
        .map_or(trimmed, |(int, _)| int);
    let nanos: i128 = integer
        .parse()
        .map_err(|e| DbErr::Migration(format!("the cost sum {text:?} is not an integer: {e}")))?;
    Decimal::try_from_i128_with_scale(nanos, 9)
        .map_err(|e| DbErr::Migration(format!("a cost sum of {nanos} nano-units: {e}")))
}

/// The amount in nano-units, when that is exact and fits an `i64` (as the store writes it).
fn nano_units(amount: Decimal) -> Option<i64> {
    let n = amount.normalize();
    let scale = n.scale();
    if scale > 9 {
        return None;
    }
    let factor = 10_i128.checked_pow(9 - scale)?;
    n.mantissa()
        .checked_mul(factor)
        .and_then(|v| <i64 as TryFrom<i128>>::try_from(v).ok())
}
