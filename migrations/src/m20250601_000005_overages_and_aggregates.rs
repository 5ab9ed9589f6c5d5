//! `ai_overages` and `ai_usage_daily_aggregates`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string_len};

use crate::columns::{count, currency, id, instant, instant_null, key, key_null, money};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiOverages {
    Table,
    Id,
    BillableType,
    BillableId,
    UsageId,
    PeriodStart,
    PeriodEnd,
    Tokens,
    Amount,
    Currency,
    CreatedAt,
    SyncedAt,
    ExternalId,
}

#[derive(DeriveIden)]
enum AiUsageDailyAggregates {
    Table,
    Id,
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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to ai_usages: billing history outlives pruned usage rows.
        m.create_table(
            Table::create()
                .table(AiOverages::Table)
                .col(id(AiOverages::Id))
                .col(key(AiOverages::BillableType))
                .col(key(AiOverages::BillableId))
                .col(big_integer(AiOverages::UsageId).unique_key())
                .col(instant(AiOverages::PeriodStart))
                .col(instant(AiOverages::PeriodEnd))
                .col(count(AiOverages::Tokens))
                .col(money(AiOverages::Amount))
                .col(currency(AiOverages::Currency))
                .col(instant(AiOverages::CreatedAt))
                .col(instant_null(AiOverages::SyncedAt))
                .col(key_null(AiOverages::ExternalId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_overages_synced_created")
                .table(AiOverages::Table)
                .col(AiOverages::SyncedAt)
                .col(AiOverages::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_overages_billable_synced")
                .table(AiOverages::Table)
                .col(AiOverages::BillableType)
                .col(AiOverages::BillableId)
                .col(AiOverages::SyncedAt)
                .to_owned(),
        )
        .await?;

        // Empty strings stand for "no tenant" and "no feature", so the unique key covers them.
        m.create_table(
            Table::create()
                .table(AiUsageDailyAggregates::Table)
                .col(id(AiUsageDailyAggregates::Id))
                // The UTC day, `YYYY-MM-DD`.
                .col(string_len(AiUsageDailyAggregates::Day, 10))
                .col(key(AiUsageDailyAggregates::BillableType))
                .col(key(AiUsageDailyAggregates::BillableId))
                .col(key(AiUsageDailyAggregates::TenantId))
                .col(string_len(AiUsageDailyAggregates::Provider, 100))
                .col(string_len(AiUsageDailyAggregates::Model, 200))
                .col(string_len(AiUsageDailyAggregates::Feature, 100))
                .col(currency(AiUsageDailyAggregates::Currency))
                .col(count(AiUsageDailyAggregates::Calls))
                .col(count(AiUsageDailyAggregates::InputTokens))
                .col(count(AiUsageDailyAggregates::CachedInputTokens))
                .col(count(AiUsageDailyAggregates::CacheWriteTokens))
                .col(count(AiUsageDailyAggregates::OutputTokens))
                .col(count(AiUsageDailyAggregates::ReasoningTokens))
                .col(count(AiUsageDailyAggregates::TotalTokens))
                .col(money(AiUsageDailyAggregates::TotalCost))
                .col(big_integer_null(AiUsageDailyAggregates::TotalCostNano))
                .col(instant(AiUsageDailyAggregates::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_ai_usage_daily_aggregates_key")
                .table(AiUsageDailyAggregates::Table)
                .col(AiUsageDailyAggregates::Day)
                .col(AiUsageDailyAggregates::BillableType)
                .col(AiUsageDailyAggregates::BillableId)
                .col(AiUsageDailyAggregates::TenantId)
                .col(AiUsageDailyAggregates::Provider)
                .col(AiUsageDailyAggregates::Model)
                .col(AiUsageDailyAggregates::Feature)
                .col(AiUsageDailyAggregates::Currency)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_usage_daily_aggregates_billable_day")
                .table(AiUsageDailyAggregates::Table)
                .col(AiUsageDailyAggregates::BillableType)
                .col(AiUsageDailyAggregates::BillableId)
                .col(AiUsageDailyAggregates::Day)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AiUsageDailyAggregates::Table.into_iden(),
            AiOverages::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
