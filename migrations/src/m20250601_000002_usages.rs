//! `ai_usages`: one row per metered call.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, boolean, string_len, string_len_null};

use crate::columns::{count, currency, id, instant, json_text, key, key_null, money};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiUsages {
    Table,
    Id,
    BillableType,
    BillableId,
    UserId,
    TenantId,
    Provider,
    Model,
    Feature,
    InputTokens,
    CachedInputTokens,
    CacheWriteTokens,
    CacheWriteLongTokens,
    OutputTokens,
    ReasoningTokens,
    TotalTokens,
    InputCost,
    CachedInputCost,
    CacheWriteCost,
    OutputCost,
    ReasoningCost,
    TotalCost,
    TotalCostNano,
    Currency,
    CatalogVersion,
    Priced,
    Metadata,
    IdempotencyKey,
    OccurredAt,
    Estimated,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiUsages::Table)
                .col(id(AiUsages::Id))
                .col(key(AiUsages::BillableType))
                .col(key(AiUsages::BillableId))
                .col(key_null(AiUsages::UserId))
                .col(key_null(AiUsages::TenantId))
                .col(string_len(AiUsages::Provider, 100))
                .col(string_len(AiUsages::Model, 200))
                .col(string_len_null(AiUsages::Feature, 100))
                .col(count(AiUsages::InputTokens))
                .col(count(AiUsages::CachedInputTokens))
                .col(count(AiUsages::CacheWriteTokens))
                .col(count(AiUsages::CacheWriteLongTokens))
                .col(count(AiUsages::OutputTokens))
                .col(count(AiUsages::ReasoningTokens))
                .col(count(AiUsages::TotalTokens))
                .col(money(AiUsages::InputCost))
                .col(money(AiUsages::CachedInputCost))
                .col(money(AiUsages::CacheWriteCost))
                .col(money(AiUsages::OutputCost))
                .col(money(AiUsages::ReasoningCost))
                .col(money(AiUsages::TotalCost))
                // Nano-units of `total_cost` when exact, else NULL (see the crate docs).
                .col(big_integer_null(AiUsages::TotalCostNano))
                .col(currency(AiUsages::Currency))
                .col(string_len(AiUsages::CatalogVersion, 100))
                .col(boolean(AiUsages::Priced))
                .col(json_text(AiUsages::Metadata))
                .col(key_null(AiUsages::IdempotencyKey))
                .col(instant(AiUsages::OccurredAt))
                .col(boolean(AiUsages::Estimated))
                .col(instant(AiUsages::CreatedAt))
                .to_owned(),
        )
        .await?;

        // NULL keys are distinct on both backends, so rows without a key never collide.
        m.create_index(
            Index::create()
                .name("uq_ai_usages_billable_idempotency_key")
                .table(AiUsages::Table)
                .col(AiUsages::BillableType)
                .col(AiUsages::BillableId)
                .col(AiUsages::IdempotencyKey)
                .unique()
                .to_owned(),
        )
        .await?;
        let indexes: [(&str, Vec<AiUsages>); 5] = [
            (
                "idx_ai_usages_billable_occurred",
                vec![
                    AiUsages::BillableType,
                    AiUsages::BillableId,
                    AiUsages::OccurredAt,
                ],
            ),
            (
                "idx_ai_usages_tenant_occurred",
                vec![AiUsages::TenantId, AiUsages::OccurredAt],
            ),
            (
                "idx_ai_usages_provider_model",
                vec![AiUsages::Provider, AiUsages::Model],
            ),
            (
                "idx_ai_usages_feature_occurred",
                vec![AiUsages::Feature, AiUsages::OccurredAt],
            ),
            ("idx_ai_usages_occurred", vec![AiUsages::OccurredAt]),
        ];
        for (name, cols) in indexes {
            let mut index = Index::create();
            index.name(name).table(AiUsages::Table);
            for col in cols {
                index.col(col);
            }
            m.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AiUsages::Table).to_owned())
            .await
    }
}
