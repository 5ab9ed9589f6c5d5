//! `ai_webhook_events`: payment-provider webhook events already processed.

use sea_orm_migration::prelude::*;

use crate::columns::{id, instant, key};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiWebhookEvents {
    Table,
    Id,
    EventId,
    ClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The unique event id is what makes a redelivered event a no-op across instances.
        m.create_table(
            Table::create()
                .table(AiWebhookEvents::Table)
                .col(id(AiWebhookEvents::Id))
                .col(key(AiWebhookEvents::EventId).unique_key())
                .col(instant(AiWebhookEvents::ClaimedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_webhook_events_claimed")
                .table(AiWebhookEvents::Table)
                .col(AiWebhookEvents::ClaimedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AiWebhookEvents::Table).to_owned())
            .await
    }
}
