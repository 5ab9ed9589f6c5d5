//! `ai_credit_holds`: credits held by calls in flight.

use sea_orm::entity::prelude::*;

/// One row of `ai_credit_holds`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_credit_holds")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The wallet.
    pub wallet_id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Held amount, exact decimal text.
    pub amount: String,
    /// The grants it took from: a JSON array of `{"grant": id, "amount": "1.5"}`.
    pub grants: String,
    /// When held.
    pub created_at: DateTimeUtc,
    /// When it may be dropped.
    pub expires_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
