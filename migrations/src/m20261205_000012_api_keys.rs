//! `ai_api_keys`: API keys for a metering gateway. The public id finds the row; the secret
//! is never stored, only its SHA-256 digest. Each key bills one billable, optionally under a
//! tenant, and may be limited to some models (a JSON array, `[]` for every model).

use sea_orm_migration::prelude::*;

use crate::columns::{id, instant, instant_null, json_text, key, key_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiApiKeys {
    Table,
    Id,
    KeyId,
    SecretDigest,
    BillableType,
    BillableId,
    TenantId,
    AllowedModels,
    Name,
    CreatedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiApiKeys::Table)
                .col(id(AiApiKeys::Id))
                .col(key(AiApiKeys::KeyId).unique_key())
                .col(key(AiApiKeys::SecretDigest))
                .col(key(AiApiKeys::BillableType))
                .col(key(AiApiKeys::BillableId))
                .col(key_null(AiApiKeys::TenantId))
                .col(json_text(AiApiKeys::AllowedModels))
                .col(key(AiApiKeys::Name))
                .col(instant(AiApiKeys::CreatedAt))
                .col(instant_null(AiApiKeys::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_api_keys_billable")
                .table(AiApiKeys::Table)
                .col(AiApiKeys::BillableType)
                .col(AiApiKeys::BillableId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AiApiKeys::Table).to_owned())
            .await
    }
}
