//! `ai_overages`: usage beyond a limit, waiting to be billed.

use sea_orm::entity::prelude::*;

/// One row of `ai_overages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_overages")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// The usage row (unique).
    pub usage_id: i64,
    /// Period start.
    pub period_start: DateTimeUtc,
    /// Period end.
    pub period_end: DateTimeUtc,
    /// Tokens beyond the limit.
    pub tokens: i64,
    /// Amount to charge, exact decimal text.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    /// When recorded.
    pub created_at: DateTimeUtc,
    /// When reported to billing.
    pub synced_at: Option<DateTimeUtc>,
    /// The billing provider's id.
    pub external_id: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
