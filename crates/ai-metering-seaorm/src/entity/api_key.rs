//! `ai_api_keys`: gateway API keys, stored with their secrets' digests only.

use sea_orm::entity::prelude::*;

/// One row of `ai_api_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_api_keys")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The key's public id (unique).
    pub key_id: String,
    /// The SHA-256 digest of the key's secret, in lowercase hex.
    pub secret_digest: String,
    /// Who pays for the key's calls: billable type.
    pub billable_type: String,
    /// Who pays for the key's calls: billable id.
    pub billable_id: String,
    /// The tenant its calls are recorded under.
    pub tenant_id: Option<String>,
    /// The models it may call, a JSON array of strings; `[]` for every model.
    pub allowed_models: String,
    /// A label for people.
    pub name: String,
    /// When it was issued.
    pub created_at: DateTimeUtc,
    /// When it was revoked.
    pub revoked_at: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
