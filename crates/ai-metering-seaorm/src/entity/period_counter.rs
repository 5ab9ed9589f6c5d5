//! `ai_period_counters`: recorded and reserved usage per billable and period window.

use sea_orm::entity::prelude::*;

/// One row of `ai_period_counters`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_period_counters")]
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
    /// Tokens of the usage rows in the window.
    pub recorded_tokens: i64,
    /// Their cost, exact decimal text.
    pub recorded_cost: String,
    /// Tokens of the counter's reservations (settled, released or swept ones leave).
    pub reserved_tokens: i64,
    /// Their cost, exact decimal text.
    pub reserved_cost: String,
    /// When created.
    pub created_at: DateTimeUtc,
    /// When last changed.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
