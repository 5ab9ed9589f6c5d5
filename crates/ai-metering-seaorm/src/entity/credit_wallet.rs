//! `ai_credit_wallets`: one wallet per billable and currency.

use sea_orm::entity::prelude::*;

/// One row of `ai_credit_wallets`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_credit_wallets")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Ledger balance, exact decimal text.
    pub balance: String,
    /// Sum of the holds, exact decimal text.
    pub held: String,
    /// When created.
    pub created_at: DateTimeUtc,
    /// When last changed.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
