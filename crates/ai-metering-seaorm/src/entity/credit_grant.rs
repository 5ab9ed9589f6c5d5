//! `ai_credit_grants`: the blocks of credits that partition a wallet's balance.

use sea_orm::entity::prelude::*;

/// One row of `ai_credit_grants`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_credit_grants")]
pub struct Model {
    /// Row id: the grant's id.
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
    /// The amount granted, exact decimal text.
    pub amount: String,
    /// What is left of it, exact decimal text.
    pub remaining: String,
    /// What calls in flight hold of `remaining`, exact decimal text.
    pub held: String,
    /// Burn-down priority: lower burns first.
    pub priority: i64,
    /// From when it counts.
    pub effective_at: DateTimeUtc,
    /// When it stops counting; `None` for never.
    pub expires_at: Option<DateTimeUtc>,
    /// The rollover rule's minimum, exact decimal text; `None` without a rule.
    pub rollover_min: Option<String>,
    /// The rollover rule's maximum, exact decimal text; `None` without a rule.
    pub rollover_max: Option<String>,
    /// When added.
    pub created_at: DateTimeUtc,
    /// When last changed.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
