//! `ai_plans`, `ai_subscriptions` and `ai_usage_limit_overrides`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer_null, boolean, string_len, string_len_null, text};

use crate::columns::{id, instant, instant_null, json_text, key, money_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiPlans {
    Table,
    Id,
    Slug,
    Name,
    TokenLimit,
    CostLimit,
    #[sea_orm(iden = "overage_price_per_1k_tokens")]
    OveragePricePer1kTokens,
    OveragePolicy,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiSubscriptions {
    Table,
    Id,
    BillableType,
    BillableId,
    PlanSlug,
    BillingMode,
    StartedAt,
    RenewsAt,
    EndsAt,
    TrialEndsAt,
    GraceEndsAt,
    PreviousPlanSlug,
    Meta,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiUsageLimitOverrides {
    Table,
    Id,
    BillableType,
    BillableId,
    PeriodStart,
    PeriodEnd,
    TokenLimitMode,
    TokenLimit,
    CostLimitMode,
    CostLimit,
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
                .table(AiPlans::Table)
                .col(id(AiPlans::Id))
                .col(string_len(AiPlans::Slug, 100).unique_key())
                .col(text(AiPlans::Name))
                .col(big_integer_null(AiPlans::TokenLimit))
                .col(money_null(AiPlans::CostLimit))
                .col(money_null(AiPlans::OveragePricePer1kTokens))
                .col(string_len_null(AiPlans::OveragePolicy, 16))
                .col(boolean(AiPlans::Active))
                .col(instant(AiPlans::CreatedAt))
                .col(instant(AiPlans::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AiSubscriptions::Table)
                .col(id(AiSubscriptions::Id))
                .col(key(AiSubscriptions::BillableType))
                .col(key(AiSubscriptions::BillableId))
                .col(string_len_null(AiSubscriptions::PlanSlug, 100))
                .col(string_len(AiSubscriptions::BillingMode, 16))
                .col(instant(AiSubscriptions::StartedAt))
                .col(instant_null(AiSubscriptions::RenewsAt))
                .col(instant_null(AiSubscriptions::EndsAt))
                .col(instant_null(AiSubscriptions::TrialEndsAt))
                .col(instant_null(AiSubscriptions::GraceEndsAt))
                .col(string_len_null(AiSubscriptions::PreviousPlanSlug, 100))
                .col(json_text(AiSubscriptions::Meta))
                .col(instant(AiSubscriptions::CreatedAt))
                .col(instant(AiSubscriptions::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_subscriptions_billable_started")
                .table(AiSubscriptions::Table)
                .col(AiSubscriptions::BillableType)
                .col(AiSubscriptions::BillableId)
                .col(AiSubscriptions::StartedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AiUsageLimitOverrides::Table)
                .col(id(AiUsageLimitOverrides::Id))
                .col(key(AiUsageLimitOverrides::BillableType))
                .col(key(AiUsageLimitOverrides::BillableId))
                .col(instant(AiUsageLimitOverrides::PeriodStart))
                .col(instant(AiUsageLimitOverrides::PeriodEnd))
                // `inherit`, `unlimited` or `set` (then the value column holds the limit).
                .col(string_len(AiUsageLimitOverrides::TokenLimitMode, 16))
                .col(big_integer_null(AiUsageLimitOverrides::TokenLimit))
                .col(string_len(AiUsageLimitOverrides::CostLimitMode, 16))
                .col(money_null(AiUsageLimitOverrides::CostLimit))
                .col(instant(AiUsageLimitOverrides::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_usage_limit_overrides_billable_period")
                .table(AiUsageLimitOverrides::Table)
                .col(AiUsageLimitOverrides::BillableType)
                .col(AiUsageLimitOverrides::BillableId)
                .col(AiUsageLimitOverrides::PeriodStart)
                .col(AiUsageLimitOverrides::PeriodEnd)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AiUsageLimitOverrides::Table.into_iden(),
            AiSubscriptions::Table.into_iden(),
            AiPlans::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
