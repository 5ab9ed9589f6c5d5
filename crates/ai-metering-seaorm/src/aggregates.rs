//! Daily usage aggregates: sums per billable's day, billable, tenant, provider, model, feature
//! and currency, kept live and read for long ranges.
//!
//! Every usage insert adds its row to its aggregate in the same transaction (under the
//! billable's lock, which every writer of that billable's aggregates holds):
//! [`add_to_aggregates`] is one `INSERT ... ON CONFLICT DO UPDATE` on PostgreSQL (exact
//! `NUMERIC` costs); on SQLite, which has no exact decimal arithmetic, it reads the aggregate
//! rows the inserted rows fall in, then inserts the new ones in one statement and updates the
//! others in one `UPDATE ... FROM (VALUES ...)`.
//! Deleting usage rows recomputes their days ([`refresh_aggregates`]); migration
//! `m20261205_000010_live_daily_aggregates` built them for the rows stored before. So for
//! every day the aggregates equal the sums of that day's rows.
//!
//! A day is the billable's ([`UsageDay`]): a date in its time zone, and the instants it
//! starts and ends at, stored with each usage row and each aggregate. So days of billables
//! in different zones start at different instants, and [`sums`] answers a range (a pair of
//! instants) for any set of billables: from the aggregates whose day lies wholly inside it,
//! plus the rows whose day does not. Those rows lie within [`UsageDay::MAX_LENGTH`] of an
//! end of the range, which is all the rows it reads.

use std::collections::HashMap;

use ai_metering_core::Billable;
use ai_metering_core::store::UsageDay;
use ai_metering_core::store::{GroupBy, StoreResult, UsageEntry, UsageFilter, UsageSums};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement,
};

use crate::batch::update_rows;
use crate::codec::{invalid, money_from_text, money_text, nano_units, to_i64, to_u64};
use crate::entity::{daily_aggregate, usage};
use crate::error::db_err;
use crate::filter::condition;
use crate::store::SeaOrmStore;
use crate::sums::{Source, epoch_sql, group_key_sql, grouped_sums, sums_from};
use crate::usage_rows::day_text;

/// The PostgreSQL advisory lock (two-key space) that serialises concurrent rebuilds.
const REBUILD_LOCK: (i32, i32) = (0x4149_4d54, 2);
/// Rows per multi-row INSERT.
const INSERT_CHUNK: usize = 200;
/// The most aggregate keys one upsert of a batch names (PostgreSQL): a statement takes at
/// most 65,535 parameters, and a key takes 20.
const KEYS_PER_UPSERT: usize = 1_000;
/// The most aggregate keys one read of a batch names (SQLite): each is a term of one `OR`,
/// which the query builder renders recursively, term by term.
const KEYS_PER_READ: usize = 100;

impl SeaOrmStore {
    /// Recomputes the daily aggregates of the days dated `from..until` (end exclusive; each
    /// billable's dates) from the usage rows, in one transaction; returns how many aggregate
    /// rows the days hold now
    /// ([`RetentionStore::rebuild_daily_aggregates`](ai_metering_core::store::RetentionStore::rebuild_daily_aggregates)).
    ///
    /// Aggregates are kept live, so a rebuild only repairs what was changed behind the
    /// store's back. On PostgreSQL it holds off usage inserts while it reads (`SHARE` lock on
    /// `ai_usages`), so that no settlement adds to an aggregate it is replacing.
    pub(crate) async fn rebuild_aggregates(
        &self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<u64> {
        if from >= until {
            return Ok(0);
        }
        // A billable's date lies within a day of the UTC date, and its day is at most
        // `MAX_LENGTH` long: the window lets the index find the rows.
        let filter = UsageFilter {
            from: Some(midnight(from) - UsageDay::MAX_LENGTH),
            until: Some(midnight(until) + UsageDay::MAX_LENGTH),
            ..UsageFilter::default()
        };
        let picked = condition(&filter)
            .add(usage::Column::LocalDay.gte(day_text(from)))
            .add(usage::Column::LocalDay.lt(day_text(until)));
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
            txn.execute_unprepared("LOCK TABLE ai_usages IN SHARE MODE")
                .await
                .map_err(db_err)?;
        }
        let groups = grouped_sums(&txn, picked, &borrowed(&keys(backend))).await?;
        daily_aggregate::Entity::delete_many()
            .filter(daily_aggregate::Column::Day.gte(day_text(from)))
            .filter(daily_aggregate::Column::Day.lt(day_text(until)))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        let written = insert_groups(&txn, groups).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(written)
    }
}

/// The instant `day` starts at, in UTC.
fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The key of an aggregate row, as SQL over `ai_usages`: the billable's day first (its date,
/// then its start and end as Unix seconds).
fn keys(backend: DbBackend) -> [String; 10] {
    [
        r#""local_day""#,
        &epoch_sql(backend, "day_start"),
        &epoch_sql(backend, "day_end"),
        r#""billable_type""#,
        r#""billable_id""#,
        r#"COALESCE("tenant_id", '')"#,
        r#""provider""#,
        r#""model""#,
        r#"COALESCE("feature", '')"#,
        r#""currency""#,
    ]
    .map(str::to_owned)
}

fn borrowed(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

/// Recomputes the aggregates of `billable` on its day `day` from its remaining rows, if it had
/// any; returns how many aggregate rows were deleted or written. Called in the transaction
/// that deleted some of those rows, with the billable's lock held.
pub(crate) async fn refresh_aggregates<C: ConnectionTrait>(
    db: &C,
    backend: DbBackend,
    billable: &Billable,
    day: &UsageDay,
) -> StoreResult<u64> {
    use daily_aggregate::Column as A;
    let deleted = daily_aggregate::Entity::delete_many()
        .filter(A::BillableType.eq(billable.kind.as_str()))
        .filter(A::BillableId.eq(billable.id.as_str()))
        .filter(A::Day.eq(day_text(day.date)))
        .filter(A::DayStart.eq(day.period.start))
        .filter(A::DayEnd.eq(day.period.end))
        .exec(db)
        .await
        .map_err(db_err)?
        .rows_affected;
    if deleted == 0 {
        // No aggregates were kept for that day: none are made.
        return Ok(0);
    }
    let filter = UsageFilter {
        from: Some(day.period.start),
        until: Some(day.period.end),
        ..UsageFilter::for_billable(billable.clone())
    };
    let picked = condition(&filter)
        .add(usage::Column::LocalDay.eq(day_text(day.date)))
        .add(usage::Column::DayStart.eq(day.period.start))
        .add(usage::Column::DayEnd.eq(day.period.end));
    let groups = grouped_sums(db, picked, &borrowed(&keys(backend))).await?;
    let written = insert_groups(db, groups).await?;
    Ok(deleted.max(written))
}

/// The instant of a day bound read as Unix seconds.
fn from_epoch(text: &str) -> StoreResult<DateTime<Utc>> {
    text.parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| {
            invalid(format!(
                "a usage row's day bound {text:?} is not an instant"
            ))
        })
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
        let day = next();
        let day_start = from_epoch(&next())?;
        let day_end = from_epoch(&next())?;
        rows.push(daily_aggregate::ActiveModel {
            day: Set(day),
            day_start: Set(Some(day_start)),
            day_end: Set(Some(day_end)),
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
    for chunk in crate::batch::in_chunks(rows, INSERT_CHUNK) {
        daily_aggregate::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await
            .map_err(db_err)?;
    }
    Ok(written)
}

/// The key of the aggregate a usage row adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    day: String,
    day_start: DateTime<Utc>,
    day_end: DateTime<Utc>,
    billable_type: String,
    billable_id: String,
    tenant_id: String,
    provider: String,
    model: String,
    feature: String,
    currency: String,
}

impl Key {
    fn of_entry(e: &UsageEntry) -> Self {
        let day = e.day();
        Self {
            day: day_text(day.date),
            day_start: day.period.start,
            day_end: day.period.end,
            billable_type: e.billable.kind.clone(),
            billable_id: e.billable.id.clone(),
            tenant_id: e
                .tenant
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            provider: e.provider.clone(),
            model: e.model.clone(),
            feature: e.feature.clone().unwrap_or_default(),
            currency: e.cost.currency.as_str().to_owned(),
        }
    }

    fn of_row(a: &daily_aggregate::Model) -> Option<Self> {
        Some(Self {
            day: a.day.clone(),
            day_start: a.day_start?,
            day_end: a.day_end?,
            billable_type: a.billable_type.clone(),
            billable_id: a.billable_id.clone(),
            tenant_id: a.tenant_id.clone(),
            provider: a.provider.clone(),
            model: a.model.clone(),
            feature: a.feature.clone(),
            currency: a.currency.clone(),
        })
    }
}

/// The sums an aggregate row holds.
fn sums_of_row(a: &daily_aggregate::Model) -> StoreResult<UsageSums> {
    const T: &str = "ai_usage_daily_aggregates";
    Ok(UsageSums {
        calls: to_u64(T, a.calls)?,
        input_tokens: to_u64(T, a.input_tokens)?,
        cached_input_tokens: to_u64(T, a.cached_input_tokens)?,
        cache_write_tokens: to_u64(T, a.cache_write_tokens)?,
        output_tokens: to_u64(T, a.output_tokens)?,
        reasoning_tokens: to_u64(T, a.reasoning_tokens)?,
        total_tokens: to_u64(T, a.total_tokens)?,
        cost: money_from_text("ai_usage_daily_aggregates.total_cost", &a.total_cost)?,
    })
}

/// The sums as an aggregate's columns, in order: calls, the six token counts, the cost's
/// exact text and its nano-unit twin.
fn sum_values(s: &UsageSums) -> StoreResult<[sea_orm::Value; 9]> {
    Ok([
        to_i64("calls", s.calls)?.into(),
        to_i64("input tokens", s.input_tokens)?.into(),
        to_i64("cached input tokens", s.cached_input_tokens)?.into(),
        to_i64("cache-write tokens", s.cache_write_tokens)?.into(),
        to_i64("output tokens", s.output_tokens)?.into(),
        to_i64("reasoning tokens", s.reasoning_tokens)?.into(),
        to_i64("total tokens", s.total_tokens)?.into(),
        money_text(s.cost).into(),
        nano_units(s.cost).into(),
    ])
}

/// `a + b`, saturating like [`UsageSums::add`].
fn plus(a: UsageSums, b: &UsageSums) -> UsageSums {
    UsageSums {
        calls: a.calls.saturating_add(b.calls),
        input_tokens: a.input_tokens.saturating_add(b.input_tokens),
        cached_input_tokens: a.cached_input_tokens.saturating_add(b.cached_input_tokens),
        cache_write_tokens: a.cache_write_tokens.saturating_add(b.cache_write_tokens),
        output_tokens: a.output_tokens.saturating_add(b.output_tokens),
        reasoning_tokens: a.reasoning_tokens.saturating_add(b.reasoning_tokens),
        total_tokens: a.total_tokens.saturating_add(b.total_tokens),
        cost: a.cost.saturating_add(b.cost).normalize(),
    }
}

/// Adds just-inserted usage rows to their daily aggregates: one read, then at most one
/// multi-row insert and one multi-row update. Call in the transaction that inserted them,
/// with their billables' locks held.
pub(crate) async fn add_to_aggregates<C: ConnectionTrait>(
    db: &C,
    entries: &[&UsageEntry],
) -> StoreResult<()> {
    let mut deltas: HashMap<Key, UsageSums> = HashMap::new();
    for e in entries {
        deltas.entry(Key::of_entry(e)).or_default().add(e);
    }
    if deltas.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        // In key order, so that the rows are locked in one order whatever the batch.
        let mut deltas: Vec<(Key, UsageSums)> = deltas.into_iter().collect();
        deltas.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in deltas.chunks(KEYS_PER_UPSERT) {
            upsert_aggregates(db, chunk).await?;
        }
        return Ok(());
    }
    use daily_aggregate::Column as A;
    // The billables' aggregates of those days: a superset of the keys, read by the index.
    let keys: Vec<Key> = deltas.keys().cloned().collect();
    let mut updates = Vec::new();
    for chunk in keys.chunks(KEYS_PER_READ) {
        let wanted = chunk.iter().fold(Condition::any(), |any, k| {
            any.add(
                Condition::all()
                    .add(A::BillableType.eq(k.billable_type.as_str()))
                    .add(A::BillableId.eq(k.billable_id.as_str()))
                    .add(A::Day.eq(k.day.as_str()))
                    .add(A::DayStart.eq(k.day_start)),
            )
        });
        let stored = daily_aggregate::Entity::find()
            .filter(wanted)
            .all(db)
            .await
            .map_err(db_err)?;
        for row in &stored {
            let Some(delta) = Key::of_row(row).and_then(|k| deltas.remove(&k)) else {
                continue;
            };
            let s = plus(sums_of_row(row)?, &delta);
            let mut update = vec![row.id.into()];
            update.extend(sum_values(&s)?);
            updates.push(update);
        }
    }
    if !updates.is_empty() {
        update_rows(
            db,
            "ai_usage_daily_aggregates",
            &[
                ("calls", "BIGINT"),
                ("input_tokens", "BIGINT"),
                ("cached_input_tokens", "BIGINT"),
                ("cache_write_tokens", "BIGINT"),
                ("output_tokens", "BIGINT"),
                ("reasoning_tokens", "BIGINT"),
                ("total_tokens", "BIGINT"),
                ("total_cost", "TEXT"),
                ("total_cost_nano", "BIGINT"),
            ],
            updates,
        )
        .await?;
    }
    // The keys left are new; in key order, so that concurrent batches insert alike.
    let mut fresh: Vec<(Key, UsageSums)> = deltas.into_iter().collect();
    fresh.sort_by(|a, b| a.0.cmp(&b.0));
    let groups = fresh
        .into_iter()
        .map(|(k, mut s)| {
            // Normalised, as a rebuild writes it.
            s.cost = s.cost.normalize();
            let key = vec![
                k.day,
                k.day_start.timestamp().to_string(),
                k.day_end.timestamp().to_string(),
                k.billable_type,
                k.billable_id,
                k.tenant_id,
                k.provider,
                k.model,
                k.feature,
                k.currency,
            ];
            (key, s)
        })
        .collect();
    insert_groups(db, groups).await?;
    Ok(())
}

/// A range of instants, either end open.
type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// [`add_to_aggregates`] on PostgreSQL: one `INSERT ... ON CONFLICT DO UPDATE` for every key,
/// with the costs added exactly as `NUMERIC` (and their nano-unit twins kept only while they
/// fit a `BIGINT`). SQLite has no exact decimal arithmetic, so there the sums are made here.
async fn upsert_aggregates<C: ConnectionTrait>(
    db: &C,
    deltas: &[(Key, UsageSums)],
) -> StoreResult<()> {
    const COLUMNS: &str = "day, day_start, day_end, billable_type, billable_id, tenant_id, provider, model, \
         feature, currency, calls, input_tokens, cached_input_tokens, cache_write_tokens, \
         output_tokens, reasoning_tokens, total_tokens, total_cost, total_cost_nano, updated_at";
    const TYPES: [&str; 20] = [
        "TEXT",
        "TIMESTAMPTZ",
        "TIMESTAMPTZ",
        "TEXT",
        "TEXT",
        "TEXT",
        "TEXT",
        "TEXT",
        "TEXT",
        "TEXT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "TEXT",
        "BIGINT",
        "TIMESTAMPTZ",
    ];
    let now = Utc::now();
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(deltas.len() * TYPES.len());
    let mut tuples = Vec::with_capacity(deltas.len());
    for (k, s) in deltas {
        let s = UsageSums {
            cost: s.cost.normalize(),
            ..*s
        };
        let mut row: Vec<sea_orm::Value> = vec![
            k.day.as_str().into(),
            k.day_start.into(),
            k.day_end.into(),
            k.billable_type.as_str().into(),
            k.billable_id.as_str().into(),
            k.tenant_id.as_str().into(),
            k.provider.as_str().into(),
            k.model.as_str().into(),
            k.feature.as_str().into(),
            k.currency.as_str().into(),
        ];
        row.extend(sum_values(&s)?);
        row.push(now.into());
        let cells: Vec<String> = row
            .into_iter()
            .zip(TYPES)
            .map(|(v, ty)| {
                values.push(v);
                format!("CAST(${} AS {ty})", values.len())
            })
            .collect();
        tuples.push(format!("({})", cells.join(", ")));
    }
    let add = |c: &str| format!("{c} = a.{c} + EXCLUDED.{c}");
    let sets: Vec<String> = [
        "calls",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_tokens",
    ]
    .iter()
    .map(|c| add(c))
    .collect();
    let sql = format!(
        "INSERT INTO ai_usage_daily_aggregates AS a ({COLUMNS}) VALUES {} \
         ON CONFLICT (day, day_start, day_end, billable_type, billable_id, tenant_id, provider, \
         model, feature, currency) DO UPDATE SET {}, \
         total_cost = CAST(trim_scale(CAST(a.total_cost AS NUMERIC) \
             + CAST(EXCLUDED.total_cost AS NUMERIC)) AS TEXT), \
         total_cost_nano = CASE WHEN CAST(a.total_cost_nano AS NUMERIC) \
             + EXCLUDED.total_cost_nano BETWEEN -9223372036854775808 AND 9223372036854775807 \
             THEN a.total_cost_nano + EXCLUDED.total_cost_nano END, \
         updated_at = EXCLUDED.updated_at",
        tuples.join(", "),
        sets.join(", ")
    );
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

/// How a range of usage splits between the aggregates and the rows: the aggregates of the
/// days wholly inside `range`, and the rows in `edges` (within [`UsageDay::MAX_LENGTH`] of an
/// end) whose day is not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    range: Range,
    edges: Vec<Range>,
}

/// Ranges longer than this are answered partly from the aggregates.
const ONE_DAY: Duration = Duration::days(1);

/// The split of `filter`'s range, when the aggregates can answer part of it: the filter
/// names nothing they do not keep (a user, a search), and its range is longer than a day
/// (or open at an end).
fn split(filter: &UsageFilter) -> Option<Split> {
    if filter.user_id.is_some()
        || filter.search.is_some()
        // Aggregates store "no tenant" and "no feature" as ''; a filter on '' matches no row.
        || filter.tenant.as_ref().is_some_and(|t| t.as_str().is_empty())
        || filter.feature.as_deref() == Some("")
    {
        return None;
    }
    let max = UsageDay::MAX_LENGTH;
    let edges = match (filter.from, filter.until) {
        (Some(from), Some(until)) if until - from <= ONE_DAY => return None,
        // The two windows would overlap: one covers the range.
        (Some(from), Some(until)) if until - from < max + max => vec![(Some(from), Some(until))],
        (from, until) => {
            let mut edges = Vec::new();
            if let Some(from) = from {
                edges.push((Some(from), Some(from + max)));
            }
            if let Some(until) = until {
                edges.push((Some(until - max), Some(until)));
            }
            edges
        }
    };
    Some(Split {
        range: (filter.from, filter.until),
        edges,
    })
}

/// The condition on `ai_usage_daily_aggregates` for `filter`, over the days wholly inside
/// `range`.
fn aggregate_condition(filter: &UsageFilter, range: Range) -> Condition {
    use daily_aggregate::Column as A;
    let mut c = Condition::all();
    if let Some(b) = &filter.billable {
        c = c
            .add(A::BillableType.eq(b.kind.as_str()))
            .add(A::BillableId.eq(b.id.as_str()));
    }
    if let Some(tenant) = &filter.tenant {
        c = c.add(A::TenantId.eq(tenant.as_str()));
    }
    if let Some(provider) = &filter.provider {
        c = c.add(A::Provider.eq(provider.as_str()));
    }
    if let Some(model) = &filter.model {
        c = c.add(A::Model.eq(model.as_str()));
    }
    if let Some(feature) = &filter.feature {
        c = c.add(A::Feature.eq(feature.as_str()));
    }
    if let Some(from) = range.0 {
        c = c.add(A::DayStart.gte(from));
    }
    if let Some(until) = range.1 {
        c = c.add(A::DayEnd.lte(until));
    }
    c
}

/// The rows of an edge window whose day is not wholly inside `range` (the others are in the
/// aggregates).
fn outside_whole_days(range: Range) -> Condition {
    let mut any = Condition::any();
    if let Some(from) = range.0 {
        any = any.add(usage::Column::DayStart.lt(from));
    }
    if let Some(until) = range.1 {
        any = any.add(usage::Column::DayEnd.gt(until));
    }
    any
}

/// The usage `filter` matches, summed per `group_by` key (one group with an empty key
/// without it): from the daily aggregates for the days wholly inside a long range, from the
/// rows for the rest.
pub(crate) async fn sums<C: ConnectionTrait>(
    db: &C,
    filter: &UsageFilter,
    group_by: Option<GroupBy>,
) -> StoreResult<Vec<(String, UsageSums)>> {
    let row_key: Vec<&str> = group_by.map(group_key_sql).into_iter().collect();
    let Some(split) = split(filter) else {
        let groups = grouped_sums(db, condition(filter), &row_key).await?;
        return Ok(flatten(groups));
    };
    let aggregate_key: Vec<&str> = group_by
        .map(|g| match g {
            GroupBy::Day => r#""day""#,
            other => group_key_sql(other),
        })
        .into_iter()
        .collect();
    let mut merged: Vec<(String, UsageSums)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut merge = |groups: Vec<(Vec<String>, UsageSums)>| {
        for (key, sums) in flatten(groups) {
            match index.get(&key) {
                Some(&i) => merged[i].1 = plus(merged[i].1, &sums),
                None => {
                    index.insert(key.clone(), merged.len());
                    merged.push((key, sums));
                }
            }
        }
    };
    let cond = aggregate_condition(filter, split.range);
    merge(sums_from(db, Source::Aggregates, cond, &aggregate_key).await?);
    for (from, until) in split.edges {
        let edge = UsageFilter {
            from,
            until,
            ..filter.clone()
        };
        let picked = condition(&edge).add(outside_whole_days(split.range));
        merge(grouped_sums(db, picked, &row_key).await?);
    }
    if group_by.is_some() {
        // Groups that only the edges or only the days had may be empty elsewhere: drop the
        // empty ones the SQL never returns for rows.
        merged.retain(|(_, s)| s.calls > 0);
    }
    Ok(merged)
}

/// Groups keyed by one expression (or none), as (key, sums).
fn flatten(groups: Vec<(Vec<String>, UsageSums)>) -> Vec<(String, UsageSums)> {
    groups
        .into_iter()
        .map(|(mut key, sums)| (key.pop().unwrap_or_default(), sums))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
    }

    fn range(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> UsageFilter {
        UsageFilter {
            from,
            until,
            ..UsageFilter::default()
        }
    }

    #[test]
    fn a_long_range_reads_the_rows_only_near_its_ends() {
        let s = split(&range(Some(at(1, 6)), Some(at(9, 18)))).unwrap();
        assert_eq!(s.range, (Some(at(1, 6)), Some(at(9, 18))));
        assert_eq!(
            s.edges,
            [
                (Some(at(1, 6)), Some(at(3, 6))),
                (Some(at(7, 18)), Some(at(9, 18)))
            ]
        );
        // Shorter than two windows: one window, the whole range.
        let s = split(&range(Some(at(1, 0)), Some(at(4, 0)))).unwrap();
        assert_eq!(s.edges, [(Some(at(1, 0)), Some(at(4, 0)))]);
        // Open ends need no window on that side.
        let s = split(&range(None, Some(at(3, 12)))).unwrap();
        assert_eq!(s.edges, [(Some(at(1, 12)), Some(at(3, 12)))]);
        assert!(split(&UsageFilter::default()).unwrap().edges.is_empty());
    }

    #[test]
    fn short_ranges_and_filters_the_aggregates_lack_read_the_rows() {
        assert_eq!(split(&range(Some(at(1, 0)), Some(at(2, 0)))), None);
        assert_eq!(split(&range(Some(at(1, 6)), Some(at(2, 6)))), None);
        assert!(split(&range(Some(at(1, 6)), Some(at(2, 7)))).is_some());
        assert!(split(&range(Some(at(1, 0)), Some(at(3, 0)))).is_some());
        for filter in [
            UsageFilter {
                user_id: Some("u".into()),
                ..UsageFilter::default()
            },
            UsageFilter {
                search: Some("gpt".into()),
                ..UsageFilter::default()
            },
            UsageFilter {
                feature: Some(String::new()),
                ..UsageFilter::default()
            },
        ] {
            assert_eq!(split(&filter), None);
        }
    }
}
