//! `ai_usage_limit_overrides`: per-billable limits for a time window.

use sea_orm::entity::prelude::*;

/// One row of `ai_usage_limit_overrides`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_usage_limit_overrides")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// Window start (inclusive).
    pub period_start: DateTimeUtc,
    /// Window end (exclusive).
    pub period_end: DateTimeUtc,
    /// `inherit`, `unlimited` or `set`.
    pub token_limit_mode: String,
    /// The limit when the mode is `set`.
    pub token_limit: Option<i64>,
    /// `inherit`, `unlimited` or `set`.
    pub cost_limit_mode: String,
    /// The limit when the mode is `set`, exact decimal text.
    pub cost_limit: Option<String>,
    /// When inserted.
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
