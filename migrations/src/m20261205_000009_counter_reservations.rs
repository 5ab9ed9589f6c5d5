//! `ai_period_counters.reserved_tokens` and `reserved_cost`: what the counter's live
//! reservations add up to, kept on the counter row so that a reservation is checked and
//! counted with the one row it counts against instead of summing its reservations each time.
//!
//! The migration fills them from the reservations already stored. Upgrade every instance
//! together: a version before this one does not keep them up to date.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::columns::{count, money};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiPeriodCounters {
    Table,
    Id,
    ReservedTokens,
    ReservedCost,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(AiPeriodCounters::Table)
                .add_column(count(AiPeriodCounters::ReservedTokens))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AiPeriodCounters::Table)
                .add_column(money(AiPeriodCounters::ReservedCost).default("0").take())
                .to_owned(),
        )
        .await?;

        // Exact decimal sums of the text amounts, per counter.
        let db = m.get_connection();
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT counter_id, tokens, cost FROM ai_reservations",
            ))
            .await?;
        let mut sums: BTreeMap<i64, (i64, Decimal)> = BTreeMap::new();
        for row in rows {
            let counter: i64 = row.try_get("", "counter_id")?;
            let tokens: i64 = row.try_get("", "tokens")?;
            let cost: String = row.try_get("", "cost")?;
            let cost = Decimal::from_str(&cost).map_err(|e| {
                DbErr::Migration(format!(
                    "ai_reservations.cost {cost:?} is not a decimal: {e}"
                ))
            })?;
            let sum = sums.entry(counter).or_default();
            sum.0 = sum.0.saturating_add(tokens);
            sum.1 += cost;
        }
        for (counter, (tokens, cost)) in sums {
            let update = Query::update()
                .table(AiPeriodCounters::Table)
                .value(AiPeriodCounters::ReservedTokens, tokens)
                .value(AiPeriodCounters::ReservedCost, cost.to_string())
                .and_where(Expr::col(AiPeriodCounters::Id).eq(counter))
                .to_owned();
            m.exec_stmt(update).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            AiPeriodCounters::ReservedCost,
            AiPeriodCounters::ReservedTokens,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiPeriodCounters::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
