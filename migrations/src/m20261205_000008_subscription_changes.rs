//! `ai_subscriptions.plan_changed_at`: when the plan last changed, so that the period that
//! contains the change counts the new plan's limits from that instant; and
//! `expiry_claimed_at`: when the subscription's expiry was announced, so that it is
//! announced once; and `time_zone`: the billable's own zone for its periods.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema;

use crate::columns::instant_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiSubscriptions {
    Table,
    PlanChangedAt,
    ExpiryClaimedAt,
    TimeZone,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            AiSubscriptions::PlanChangedAt,
            AiSubscriptions::ExpiryClaimedAt,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiSubscriptions::Table)
                    .add_column(instant_null(column))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(AiSubscriptions::Table)
                .add_column(schema::string_len_null(AiSubscriptions::TimeZone, 64))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            AiSubscriptions::TimeZone,
            AiSubscriptions::ExpiryClaimedAt,
            AiSubscriptions::PlanChangedAt,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiSubscriptions::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
