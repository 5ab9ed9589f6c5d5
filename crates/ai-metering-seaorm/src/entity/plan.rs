//! `ai_plans`: plans, keyed by slug.

use sea_orm::entity::prelude::*;

/// One row of `ai_plans`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_plans")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique slug.
    #[sea_orm(unique)]
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Tokens per period; none = unlimited.
    pub token_limit: Option<i64>,
    /// Cost per period, exact decimal text; none = unlimited.
    pub cost_limit: Option<String>,
    /// Overage price per 1,000 tokens, exact decimal text.
    pub overage_price_per_1k_tokens: Option<String>,
    /// `block`, `charge` or `allow`.
    pub overage_policy: Option<String>,
    /// Inactive plans impose no limits.
    pub active: bool,
    /// When inserted.
    pub created_at: DateTimeUtc,
    /// When last replaced.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
