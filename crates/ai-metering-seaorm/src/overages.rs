//! [`OverageStore`] for [`SeaOrmStore`].

use ai_metering_core::period::Period;
use ai_metering_core::store::{NewOverage, OverageRecord, OverageStore, StoreError, StoreResult};
use ai_metering_core::{Billable, Money};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::codec::{currency, instant, money_from_text, money_text, to_i64, to_u64};
use crate::entity::overage;
use crate::error::db_err;
use crate::store::SeaOrmStore;

impl OverageStore for SeaOrmStore {
    async fn insert_overage(&self, o: &NewOverage) -> StoreResult<OverageRecord> {
        let txn = self.begin_write().await?;
        let stored = insert_overage_in(&txn, o).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn pending_overages(
        &self,
        after: Option<&OverageRecord>,
        limit: u64,
    ) -> StoreResult<Vec<OverageRecord>> {
        let mut query = overage::Entity::find().filter(overage::Column::SyncedAt.is_null());
        if let Some(last) = after {
            let created = instant(last.overage.created_at);
            query = query.filter(
                Condition::any()
                    .add(overage::Column::CreatedAt.gt(created))
                    .add(
                        Condition::all()
                            .add(overage::Column::CreatedAt.eq(created))
                            .add(overage::Column::Id.gt(last.id)),
                    ),
            );
        }
        query
            .order_by_asc(overage::Column::CreatedAt)
            .order_by_asc(overage::Column::Id)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(to_record)
            .collect()
    }

    async fn mark_overage_synced(
        &self,
        id: i64,
        external_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = overage::Entity::update_many()
            .col_expr(overage::Column::SyncedAt, Expr::value(instant(at)))
            .col_expr(overage::Column::ExternalId, Expr::value(external_id))
            .filter(overage::Column::Id.eq(id))
            .filter(overage::Column::SyncedAt.is_null())
            .exec(self.connection())
            .await
            .map_err(db_err)?;
        if result.rows_affected > 0 {
            return Ok(true);
        }
        let exists = overage::Entity::find_by_id(id)
            .count(self.connection())
            .await
            .map_err(db_err)?
            > 0;
        if exists {
            Ok(false)
        } else {
            Err(StoreError::not_found(format!("overage {id}")))
        }
    }
}

/// Stores an overage inside `txn`, or returns the one already stored for its usage row.
pub(crate) async fn insert_overage_in<C: ConnectionTrait>(
    txn: &C,
    o: &NewOverage,
) -> StoreResult<OverageRecord> {
    let row = overage::ActiveModel {
        billable_type: Set(o.billable.kind.clone()),
        billable_id: Set(o.billable.id.clone()),
        usage_id: Set(o.usage_id),
        period_start: Set(instant(o.period.start)),
        period_end: Set(instant(o.period.end)),
        tokens: Set(to_i64("overage tokens", o.tokens)?),
        amount: Set(money_text(o.amount.amount)),
        currency: Set(o.amount.currency.as_str().to_owned()),
        created_at: Set(instant(o.created_at)),
        synced_at: Set(None),
        external_id: Set(None),
        ..Default::default()
    };
    overage::Entity::insert(row)
        .on_conflict(
            OnConflict::column(overage::Column::UsageId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(db_err)?;
    let stored = overage::Entity::find()
        .filter(overage::Column::UsageId.eq(o.usage_id))
        .one(txn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::not_found(format!("the overage of usage {}", o.usage_id)))?;
    to_record(stored)
}

pub(crate) fn to_record(m: overage::Model) -> StoreResult<OverageRecord> {
    Ok(OverageRecord {
        id: m.id,
        overage: NewOverage {
            billable: Billable::new(m.billable_type, m.billable_id),
            usage_id: m.usage_id,
            period: Period {
                start: m.period_start,
                end: m.period_end,
            },
            tokens: to_u64("ai_overages.tokens", m.tokens)?,
            amount: Money::new(
                money_from_text("ai_overages.amount", &m.amount)?,
                currency(&m.currency)?,
            ),
            created_at: m.created_at,
        },
        synced_at: m.synced_at,
        external_id: m.external_id,
    })
}
