//! `ai_webhook_events`: webhook events already processed.

use sea_orm::entity::prelude::*;

/// One row of `ai_webhook_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_webhook_events")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The provider's event id (unique).
    pub event_id: String,
    /// When it was claimed for processing.
    pub claimed_at: DateTimeUtc,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
