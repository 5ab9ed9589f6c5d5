//! [`UsageStore`] for [`SeaOrmStore`]: idempotent inserts, queries and sums.

use ai_metering_core::Billable;
use ai_metering_core::store::{
    Page, Recorded, StoreResult, UsageEntry, UsageFilter, UsageRecord, UsageStore,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::aggregates::add_to_aggregates;
use crate::counters::add_to_counters;
use crate::entity::usage;
use crate::error::db_err;
use crate::filter::condition;
use crate::store::SeaOrmStore;
use crate::usage_rows::{as_stored, usage_record, usage_row};

impl UsageStore for SeaOrmStore {
    async fn insert_usage(&self, entry: &UsageEntry) -> StoreResult<Recorded> {
        self.insert_usage_batch(std::slice::from_ref(entry))
            .await?
            .pop()
            .ok_or_else(|| crate::codec::invalid("one row recorded, none returned"))
    }

    /// One transaction of a few statements whatever the number of rows (multi-row inserts,
    /// one update per counter); on SQLite it runs in the store's writer.
    async fn insert_usage_batch(&self, entries: &[UsageEntry]) -> StoreResult<Vec<Recorded>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        match self.writer() {
            Some(writer) if writer.takes_usage_inserts() => {
                writer.record_all(entries.to_vec()).await
            }
            _ => crate::batch::record_all(self, entries).await,
        }
    }

    async fn usage_by_idempotency_key(
        &self,
        billable: &Billable,
        key: &str,
    ) -> StoreResult<Option<UsageRecord>> {
        find_by_key(self.connection(), billable, key).await
    }

    async fn query_usage(&self, filter: &UsageFilter, page: Page) -> StoreResult<Vec<UsageRecord>> {
        usage::Entity::find()
            .filter(condition(filter))
            .order_by_desc(usage::Column::OccurredAt)
            .order_by_desc(usage::Column::Id)
            .offset(page.offset)
            .limit(page.limit.min(Page::MAX_LIMIT))
            .all(self.connection())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(usage_record)
            .collect()
    }
}

/// The row `billable` stored under `key`.
pub(crate) async fn find_by_key<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    key: &str,
) -> StoreResult<Option<UsageRecord>> {
    usage::Entity::find()
        .filter(usage::Column::BillableType.eq(billable.kind.as_str()))
        .filter(usage::Column::BillableId.eq(billable.id.as_str()))
        .filter(usage::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
        .map_err(db_err)?
        .map(usage_record)
        .transpose()
}

/// Inserts `entry` inside `txn` (which holds the billable's lock): returns the row stored
/// earlier under the same idempotency key if there is one, else inserts it and adds it to
/// every counter of the billable whose window contains it.
pub(crate) async fn insert_usage_in<C>(txn: &C, entry: &UsageEntry) -> StoreResult<Recorded>
where
    C: ConnectionTrait + TransactionTrait,
{
    if let Some(key) = &entry.idempotency_key
        && let Some(record) = find_by_key(txn, &entry.billable, key).await?
    {
        return Ok(Recorded {
            record,
            created: false,
        });
    }
    let row = usage_row(entry)?;
    let id = usage::Entity::insert(row)
        .exec(txn)
        .await
        .map_err(db_err)?
        .last_insert_id;
    let stored = as_stored(entry);
    add_to_counters(txn, &stored).await?;
    add_to_aggregates(txn, &[&stored]).await?;
    Ok(Recorded {
        record: UsageRecord { id, entry: stored },
        created: true,
    })
}
