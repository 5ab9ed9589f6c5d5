//! `ai_reservations`: usage reserved by calls in flight.

use sea_orm::entity::prelude::*;

/// One row of `ai_reservations`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_reservations")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The counter it counts against.
    pub counter_id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// Reserved tokens.
    pub tokens: i64,
    /// Reserved cost, exact decimal text.
    pub cost: String,
    /// When reserved.
    pub created_at: DateTimeUtc,
    /// When it stops counting.
    pub expires_at: DateTimeUtc,
    /// The credit hold made with it.
    pub hold_id: Option<i64>,
    /// The idempotency key it claims.
    pub idempotency_key: Option<String>,
    /// True for a billable's one unestimated call in flight.
    pub exclusive: bool,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
