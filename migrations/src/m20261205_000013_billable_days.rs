//! Each usage row counts in its billable's own day: `ai_usages` gains the billable's time
//! zone when the call was made (`time_zone`, `NULL` for UTC), the date of the call in that
//! zone (`local_day`) and the instants that day starts and ends at (`day_start`, `day_end`);
//! `ai_usage_daily_aggregates` gains `day_start` and `day_end`, and its key becomes the day
//! with its instants, so that two billables in different zones have different days.
//!
//! Rows stored before had no zone: they keep the UTC day they were aggregated in, and the
//! migration fills their columns so. Upgrade every instance together: a version before this
//! one writes rows without a day.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, string_len_null};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::columns::instant_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiUsages {
    Table,
    TimeZone,
    LocalDay,
    DayStart,
    DayEnd,
}

#[derive(DeriveIden)]
enum AiUsageDailyAggregates {
    Table,
    Day,
    DayStart,
    DayEnd,
    BillableType,
    BillableId,
    TenantId,
    Provider,
    Model,
    Feature,
    Currency,
}

/// The aggregate key before this migration, and after it.
const OLD_KEY: &str = "uq_ai_usage_daily_aggregates_key";
const NEW_KEY: &str = "uq_ai_usage_daily_aggregates_day_key";
/// Ranges of instants read the aggregates by their start.
const BY_START: &str = "idx_ai_usage_daily_aggregates_start";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for col in [
            string_len_null(AiUsages::TimeZone, 64),
            string_len(AiUsages::LocalDay, 10).default("").take(),
            instant_null(AiUsages::DayStart),
            instant_null(AiUsages::DayEnd),
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiUsages::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        for col in [
            instant_null(AiUsageDailyAggregates::DayStart),
            instant_null(AiUsageDailyAggregates::DayEnd),
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiUsageDailyAggregates::Table)
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
        }
        let db = m.get_connection();
        let (usages, aggregates) = match db.get_database_backend() {
            DbBackend::Postgres => (
                "UPDATE ai_usages SET \
                 local_day = to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), \
                 day_start = date_trunc('day', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', \
                 day_end = (date_trunc('day', occurred_at AT TIME ZONE 'UTC') + INTERVAL '1 day') \
                     AT TIME ZONE 'UTC'",
                "UPDATE ai_usage_daily_aggregates SET \
                 day_start = CAST(day AS TIMESTAMP) AT TIME ZONE 'UTC', \
                 day_end = (CAST(day AS TIMESTAMP) + INTERVAL '1 day') AT TIME ZONE 'UTC'",
            ),
            // SQLite stores instants as RFC 3339 text in UTC, as the store writes them.
            _ => (
                "UPDATE ai_usages SET \
                 local_day = substr(occurred_at, 1, 10), \
                 day_start = substr(occurred_at, 1, 10) || 'T00:00:00+00:00', \
                 day_end = date(substr(occurred_at, 1, 10), '+1 day') || 'T00:00:00+00:00'",
                "UPDATE ai_usage_daily_aggregates SET \
                 day_start = day || 'T00:00:00+00:00', \
                 day_end = date(day, '+1 day') || 'T00:00:00+00:00'",
            ),
        };
        db.execute_unprepared(usages).await?;
        db.execute_unprepared(aggregates).await?;

        m.drop_index(
            Index::drop()
                .name(OLD_KEY)
                .table(AiUsageDailyAggregates::Table)
                .to_owned(),
        )
        .await?;
        m.create_index(aggregate_key(NEW_KEY, true)).await?;
        m.create_index(
            Index::create()
                .name(BY_START)
                .table(AiUsageDailyAggregates::Table)
                .col(AiUsageDailyAggregates::DayStart)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in [BY_START, NEW_KEY] {
            m.drop_index(
                Index::drop()
                    .name(name)
                    .table(AiUsageDailyAggregates::Table)
                    .to_owned(),
            )
            .await?;
        }
        for col in [
            AiUsageDailyAggregates::DayStart,
            AiUsageDailyAggregates::DayEnd,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiUsageDailyAggregates::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        for col in [
            AiUsages::TimeZone,
            AiUsages::LocalDay,
            AiUsages::DayStart,
            AiUsages::DayEnd,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiUsages::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        // The version before keys aggregates by UTC day: rebuild them all so.
        crate::m20261205_000010_live_daily_aggregates::Migration
            .up(m)
            .await?;
        m.create_index(aggregate_key(OLD_KEY, false)).await
    }
}

/// The unique key `name` of the aggregates: the day (with its instants when `bounds`), the
/// billable, tenant, provider, model, feature and currency.
fn aggregate_key(name: &str, bounds: bool) -> IndexCreateStatement {
    use AiUsageDailyAggregates as A;
    let mut index = Index::create();
    index.name(name).table(A::Table).col(A::Day).unique();
    if bounds {
        index.col(A::DayStart).col(A::DayEnd);
    }
    for col in [
        A::BillableType,
        A::BillableId,
        A::TenantId,
        A::Provider,
        A::Model,
        A::Feature,
        A::Currency,
    ] {
        index.col(col);
    }
    index.to_owned()
}
