//! `ai_subscriptions.plan_changed_at`: when the plan last changed, so that the period that
//! contains the change counts the new plan's limits from that instant.

use sea_orm_migration::prelude::*;

use crate::columns::instant_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiSubscriptions {
    Table,
    PlanChangedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AiSubscriptions::Table)
                .add_column(instant_null(AiSubscriptions::PlanChangedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AiSubscriptions::Table)
                .drop_column(AiSubscriptions::PlanChangedAt)
                .to_owned(),
        )
        .await
    }
}
