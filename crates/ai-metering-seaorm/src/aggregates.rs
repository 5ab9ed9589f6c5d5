//! Daily usage aggregates: sums per UTC day, billable, tenant, provider, model, feature and
//! currency, rebuilt from the usage rows.

use std::collections::BTreeSet;

use ai_metering_core::Billable;
use ai_metering_core::store::{StoreResult, UsageFilter, UsageSums};
use chrono::{NaiveDate, NaiveTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement,
};

use crate::codec::{money_text, nano_units, to_i64};
use crate::entity::daily_aggregate;
use crate::error::db_err;
use crate::filter::condition;
use crate::store::SeaOrmStore;
use crate::sums::{day_sql, grouped_sums};

/// The PostgreSQL advisory lock (two-key space) that serialises concurrent rebuilds.
const REBUILD_LOCK: (i32, i32) = (0x4149_4d54, 2);
/// Rows per multi-row INSERT.
const INSERT_CHUNK: usize = 200;

impl SeaOrmStore {
    /// Recomputes the daily aggregates of the UTC days `from..until` (end exclusive) from
    /// the usage rows, in one transaction; returns how many aggregate rows were written
    /// ([`RetentionStore::rebuild_daily_aggregates`](ai_metering_core::store::RetentionStore::rebuild_daily_aggregates)).
    ///
    /// Only days that still have usage rows are replaced, so days whose rows were pruned
    /// before aggregates were kept for them have none.
    pub(crate) async fn rebuild_aggregates(
        &self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<u64> {
        if from >= until {
            return Ok(0);
        }
        let filter = UsageFilter {
            from: Some(from.and_time(NaiveTime::MIN).and_utc()),
            until: Some(until.and_time(NaiveTime::MIN).and_utc()),
            ..UsageFilter::default()
        };
        let backend = self.backend();
        let txn = self.begin_write().await?;
        if backend == DbBackend::Postgres {
            let (a, b) = REBUILD_LOCK;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1, $2)",
                [a.into(), b.into()],
            ))
            .await
            .map_err(db_err)?;
        }
        let groups = grouped_sums(&txn, condition(&filter), &keys(backend)).await?;
        let days: BTreeSet<String> = groups
            .iter()
            .filter_map(|(k, _)| k.first().cloned())
            .collect();
        let days: Vec<String> = days.into_iter().collect();
        for chunk in days.chunks(INSERT_CHUNK) {
            daily_aggregate::Entity::delete_many()
                .filter(daily_aggregate::Column::Day.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await
                .map_err(db_err)?;
        }
        let written = insert_groups(&txn, groups).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(written)
    }
}

/// The key of an aggregate row, as SQL over `ai_usages`: the UTC day first.
fn keys(backend: DbBackend) -> [&'static str; 8] {
    [
        day_sql(backend),
        r#""billable_type""#,
        r#""billable_id""#,
        r#"COALESCE("tenant_id", '')"#,
        r#""provider""#,
        r#""model""#,
        r#"COALESCE("feature", '')"#,
        r#""currency""#,
    ]
}

/// Recomputes the aggregates of `billable` on `day` (`YYYY-MM-DD`, UTC) from its remaining
/// rows, if it had any; returns how many aggregate rows were deleted or written. Called in
/// the transaction that deleted some of those rows, with the billable's lock held.
pub(crate) async fn refresh_aggregates<C: ConnectionTrait>(
    db: &C,
    backend: DbBackend,
    billable: &Billable,
    day: NaiveDate,
) -> StoreResult<u64> {
    use daily_aggregate::Column as A;
    let deleted = daily_aggregate::Entity::delete_many()
        .filter(A::BillableType.eq(billable.kind.as_str()))
        .filter(A::BillableId.eq(billable.id.as_str()))
        .filter(A::Day.eq(day.format("%Y-%m-%d").to_string()))
        .exec(db)
        .await
        .map_err(db_err)?
        .rows_affected;
    if deleted == 0 {
        // No aggregates were kept for that day: none are made.
        return Ok(0);
    }
    let start = day.and_time(NaiveTime::MIN).and_utc();
    let filter = UsageFilter {
        from: Some(start),
        until: Some(start + chrono::Duration::days(1)),
        ..UsageFilter::for_billable(billable.clone())
    };
    let groups = grouped_sums(db, condition(&filter), &keys(backend)).await?;
    let written = insert_groups(db, groups).await?;
    Ok(deleted.max(written))
}

/// Inserts one aggregate row per group of [`keys`]; returns how many.
async fn insert_groups<C: ConnectionTrait>(
    db: &C,
    groups: Vec<(Vec<String>, UsageSums)>,
) -> StoreResult<u64> {
    let now = Utc::now();
    let mut rows = Vec::with_capacity(groups.len());
    for (key, s) in groups {
        let mut k = key.into_iter();
        let mut next = || k.next().unwrap_or_default();
        rows.push(daily_aggregate::ActiveModel {
            day: Set(next()),
            billable_type: Set(next()),
            billable_id: Set(next()),
            tenant_id: Set(next()),
            provider: Set(next()),
            model: Set(next()),
            feature: Set(next()),
            currency: Set(next()),
            calls: Set(to_i64("calls", s.calls)?),
            input_tokens: Set(to_i64("input tokens", s.input_tokens)?),
            cached_input_tokens: Set(to_i64("cached input tokens", s.cached_input_tokens)?),
            cache_write_tokens: Set(to_i64("cache-write tokens", s.cache_write_tokens)?),
            output_tokens: Set(to_i64("output tokens", s.output_tokens)?),
            reasoning_tokens: Set(to_i64("reasoning tokens", s.reasoning_tokens)?),
            total_tokens: Set(to_i64("total tokens", s.total_tokens)?),
            total_cost: Set(money_text(s.cost)),
            total_cost_nano: Set(nano_units(s.cost)),
            updated_at: Set(now),
            ..Default::default()
        });
    }
    let written = rows.len() as u64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(INSERT_CHUNK).collect();
        daily_aggregate::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await
            .map_err(db_err)?;
    }
    Ok(written)
}
