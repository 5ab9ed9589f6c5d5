//! `ai_usages`: one row per metered call.

use sea_orm::entity::prelude::*;

/// One row of `ai_usages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_usages")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Billable kind.
    pub billable_type: String,
    /// Billable id.
    pub billable_id: String,
    /// Acting user.
    pub user_id: Option<String>,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Feature.
    pub feature: Option<String>,
    /// Input tokens (including cached and cache-write tokens).
    pub input_tokens: i64,
    /// Cache-read tokens.
    pub cached_input_tokens: i64,
    /// Cache-write tokens.
    pub cache_write_tokens: i64,
    /// Long-lived cache-write tokens (part of the cache writes).
    pub cache_write_long_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Reasoning tokens (part of the output).
    pub reasoning_tokens: i64,
    /// Input plus output.
    pub total_tokens: i64,
    /// Exact decimal text.
    pub input_cost: String,
    /// Exact decimal text.
    pub cached_input_cost: String,
    /// Exact decimal text.
    pub cache_write_cost: String,
    /// Exact decimal text.
    pub output_cost: String,
    /// Exact decimal text.
    pub reasoning_cost: String,
    /// Exact decimal text.
    pub total_cost: String,
    /// `total_cost` in nano-units when exact, for SQL sums.
    pub total_cost_nano: Option<i64>,
    /// ISO 4217 code.
    pub currency: String,
    /// Price catalog version.
    pub catalog_version: String,
    /// False when no price was known.
    pub priced: bool,
    /// JSON object.
    pub metadata: String,
    /// Unique per billable.
    pub idempotency_key: Option<String>,
    /// When the call happened.
    pub occurred_at: DateTimeUtc,
    /// True when the counts are an estimate.
    pub estimated: bool,
    /// When inserted.
    pub created_at: DateTimeUtc,
    /// The billable's IANA time zone when the call was made; `NULL` for UTC.
    pub time_zone: Option<String>,
    /// The billable's day of the call, `YYYY-MM-DD` in `time_zone`.
    pub local_day: String,
    /// When that day starts (`NULL` only for rows written by a version before the column).
    pub day_start: Option<DateTimeUtc>,
    /// When that day ends.
    pub day_end: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
