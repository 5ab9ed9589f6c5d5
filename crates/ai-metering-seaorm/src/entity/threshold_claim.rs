//! `ai_threshold_claims`: "approaching" notices already sent.

use sea_orm::entity::prelude::*;

/// One row of `ai_threshold_claims`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_threshold_claims")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// Period start.
    pub period_start: DateTimeUtc,
    /// Period end.
    pub period_end: DateTimeUtc,
    /// Normalised decimal text of the percentage.
    pub threshold: String,
    /// When claimed.
    pub claimed_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
