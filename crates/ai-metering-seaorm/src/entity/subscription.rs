//! `ai_subscriptions`: a billable's plan over time.

use sea_orm::entity::prelude::*;

/// One row of `ai_subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_subscriptions")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// The plan's slug.
    pub plan_slug: Option<String>,
    /// `plan` or `credits`.
    pub billing_mode: String,
    /// Start.
    pub started_at: DateTimeUtc,
    /// Next renewal.
    pub renews_at: Option<DateTimeUtc>,
    /// End.
    pub ends_at: Option<DateTimeUtc>,
    /// End of the trial.
    pub trial_ends_at: Option<DateTimeUtc>,
    /// End of the grace period.
    pub grace_ends_at: Option<DateTimeUtc>,
    /// The plan before the last change.
    pub previous_plan_slug: Option<String>,
    /// When the plan last changed.
    pub plan_changed_at: Option<DateTimeUtc>,
    /// When the expiry was announced (claimed by one caller).
    pub expiry_claimed_at: Option<DateTimeUtc>,
    /// The billable's IANA time zone for its periods.
    pub time_zone: Option<String>,
    /// JSON object.
    pub meta: String,
    /// When inserted.
    pub created_at: DateTimeUtc,
    /// When last replaced.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
