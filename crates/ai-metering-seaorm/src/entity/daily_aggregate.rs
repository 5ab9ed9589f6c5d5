//! `ai_usage_daily_aggregates`: usage sums per billable's day and key.

use sea_orm::entity::prelude::*;

/// One row of `ai_usage_daily_aggregates`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_usage_daily_aggregates")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The billable's day, `YYYY-MM-DD` in its time zone.
    pub day: String,
    /// When that day starts.
    pub day_start: Option<DateTimeUtc>,
    /// When that day ends.
    pub day_end: Option<DateTimeUtc>,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// Tenant, empty for none.
    pub tenant_id: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Feature, empty for none.
    pub feature: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Rows.
    pub calls: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Cache-read tokens.
    pub cached_input_tokens: i64,
    /// Cache-write tokens.
    pub cache_write_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Input plus output.
    pub total_tokens: i64,
    /// Exact decimal text.
    pub total_cost: String,
    /// `total_cost` in nano-units when exact.
    pub total_cost_nano: Option<i64>,
    /// When rebuilt.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
