//! [`WebhookEventStore`] for [`SeaOrmStore`]: one row per processed event, unique by id.

use ai_metering_core::store::{StoreResult, WebhookEventStore};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::codec::instant;
use crate::entity::webhook_event;
use crate::error::db_err;
use crate::store::SeaOrmStore;

impl WebhookEventStore for SeaOrmStore {
    async fn claim_event(&self, event_id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let row = webhook_event::ActiveModel {
            event_id: Set(event_id.to_owned()),
            claimed_at: Set(instant(at)),
            ..Default::default()
        };
        // The unique index decides: of concurrent claims, exactly one inserts a row.
        let inserted = webhook_event::Entity::insert(row)
            .on_conflict(
                OnConflict::column(webhook_event::Column::EventId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.connection())
            .await
            .map_err(db_err)?;
        Ok(inserted == 1)
    }

    async fn forget_event(&self, event_id: &str) -> StoreResult<()> {
        webhook_event::Entity::delete_many()
            .filter(webhook_event::Column::EventId.eq(event_id))
            .exec(self.connection())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
