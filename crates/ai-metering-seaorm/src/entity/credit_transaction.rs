//! `ai_credit_transactions`: the append-only ledger.

use sea_orm::entity::prelude::*;

/// One row of `ai_credit_transactions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_credit_transactions")]
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
    /// Positive amount, exact decimal text.
    pub amount: String,
    /// `credit` or `debit`.
    pub direction: String,
    /// Why.
    pub reason: String,
    /// Balance right after, exact decimal text.
    pub balance_after: String,
    /// JSON object.
    pub metadata: String,
    /// The grants the entry moved: a JSON array of `{"grant": id, "amount": "1.5"}`.
    pub grants: String,
    /// When.
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
