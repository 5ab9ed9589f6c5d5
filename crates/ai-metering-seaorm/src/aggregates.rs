//! Daily usage aggregates: sums per UTC day, billable, tenant, provider, model, feature and
//! currency, rebuilt from the usage rows.

use std::collections::BTreeSet;

use ai_metering_core::store::{StoreResult, UsageFilter};
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
    /// the usage rows, in one transaction; returns how many aggregate rows were written.
    ///
    /// Only days that still have usage rows are replaced, so days whose rows were pruned keep
    /// their aggregates (a day pruned only in part would be replaced by what is left of it:
    /// prune at day boundaries, after aggregating).
    ///
    /// # Errors
    /// A [`ai_metering_core::store::StoreError`] when the database fails; nothing changes then.
    pub async fn rebuild_daily_aggregates(
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
        let keys = [
            day_sql(backend),
            r#""billable_type""#,
            r#""billable_id""#,
            r#"COALESCE("tenant_id", '')"#,
            r#""provider""#,
            r#""model""#,
            r#"COALESCE("feature", '')"#,
            r#""currency""#,
        ];
        let groups = grouped_sums(&txn, condition(&filter), &keys).await?;
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
                .exec_without_returning(&txn)
                .await
                .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)?;
        Ok(written)
    }
}
