//! `SeaOrmStore` on an SQLite file: a reservation settled with the actual usage next to its
//! raw sqlx twin (the same logical writes by hand), and the recording of 1000 usage rows
//! with `insert_usage_batch` and through the write-behind `Recorder` (taken, then flushed at
//! shutdown) against raw sqlx inserts of the same rows into the same table through the same
//! connection pool, in the same run.

#![allow(missing_docs)] // criterion's macros generate undocumented items
#![allow(clippy::expect_used, clippy::panic)] // benchmark setup: failing fast is the point

use ai_metering_core::recorder::{Recorder, RecorderConfig};
use ai_metering_core::store::{CounterStore, ReserveOutcome, UsageEntry, UsageStore};
use ai_metering_core::{Billable, Metering};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::builders::{
    dec, entry, hour, month, reserve_request, settlement, token_limit, totals,
};
use chrono::{DurationRound, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

const BATCH: usize = 1000;
const COLUMNS: &str = "billable_type, billable_id, user_id, tenant_id, provider, model, feature, \
    input_tokens, cached_input_tokens, cache_write_tokens, cache_write_long_tokens, output_tokens, \
    reasoning_tokens, total_tokens, input_cost, cached_input_cost, cache_write_cost, output_cost, \
    reasoning_cost, total_cost, total_cost_nano, currency, catalog_version, priced, metadata, \
    idempotency_key, occurred_at, estimated, created_at, time_zone, local_day, day_start, day_end";

/// A one-worker runtime and a migrated store on a fresh file (the directory lives as long
/// as the returned guard).
fn setup() -> (tokio::runtime::Runtime, tempfile::TempDir, SeaOrmStore) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = runtime.block_on(open(&dir));
    (runtime, dir, store)
}

async fn open(dir: &tempfile::TempDir) -> SeaOrmStore {
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = SeaOrmStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn rows(billable: &Billable) -> Vec<UsageEntry> {
    (0..BATCH as u64)
        .map(|i| entry(billable, 1_000 + i, dec("0.00042"), hour(i as i64 % 24)))
        .collect()
}

/// One row's values as the store writes them (money as exact text, nano-units, microseconds).
struct Row<'a>(&'a UsageEntry);

impl Row<'_> {
    fn push(&self, mut b: sqlx::query_builder::Separated<'_, Sqlite, &'static str>) {
        let e = self.0;
        let c = e.usage.counts();
        let cost = &e.cost;
        let nano = (cost.total * rust_decimal::Decimal::from(1_000_000_000_i64))
            .trunc()
            .try_into()
            .ok()
            .map(|n: i64| n);
        b.push_bind(e.billable.kind.clone())
            .push_bind(e.billable.id.clone())
            .push_bind(e.user_id.clone())
            .push_bind(e.tenant.as_ref().map(|t| t.as_str().to_owned()))
            .push_bind(e.provider.clone())
            .push_bind(e.model.clone())
            .push_bind(e.feature.clone())
            .push_bind(c.input as i64)
            .push_bind(c.cached_input as i64)
            .push_bind(c.cache_write as i64)
            .push_bind(c.cache_write_long as i64)
            .push_bind(c.output as i64)
            .push_bind(c.reasoning as i64)
            .push_bind(e.usage.total_tokens() as i64)
            .push_bind(cost.input.to_string())
            .push_bind(cost.cached_input.to_string())
            .push_bind(cost.cache_write.to_string())
            .push_bind(cost.output.to_string())
            .push_bind(cost.reasoning.to_string())
            .push_bind(cost.total.to_string())
            .push_bind(nano)
            .push_bind(cost.currency.as_str().to_owned())
            .push_bind(cost.catalog_version.clone())
            .push_bind(cost.priced)
            .push_bind(serde_json::to_string(&e.metadata).expect("metadata as JSON"))
            .push_bind(e.idempotency_key.clone())
            .push_bind(
                e.occurred_at
                    .duration_trunc(TimeDelta::microseconds(1))
                    .expect("in range"),
            )
            .push_bind(e.estimated)
            .push_bind(Utc::now());
        // The row's day in its billable's zone, as the store keys its aggregates.
        let day = e.day();
        b.push_bind(e.time_zone.map(|z| z.name().to_owned()))
            .push_bind(day.date.format("%Y-%m-%d").to_string())
            .push_bind(day.period.start)
            .push_bind(day.period.end);
    }
}

/// Raw sqlx, one prepared INSERT per row inside one transaction (the store's shape).
async fn raw_per_row(pool: &SqlitePool, entries: &[UsageEntry]) {
    let mut txn = pool.begin().await.expect("begin");
    for e in entries {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO ai_usages ({COLUMNS}) VALUES ("));
        Row(e).push(q.separated(", "));
        q.push(")");
        q.build().execute(&mut *txn).await.expect("insert");
    }
    txn.commit().await.expect("commit");
}

/// Raw sqlx, multi-row INSERTs of 500 rows inside one transaction (the fastest plain form).
async fn raw_multi_row(pool: &SqlitePool, entries: &[UsageEntry]) {
    let mut txn = pool.begin().await.expect("begin");
    for chunk in entries.chunks(500) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO ai_usages ({COLUMNS}) "));
        q.push_values(chunk, |b, e| Row(e).push(b));
        q.build().execute(&mut *txn).await.expect("insert");
    }
    txn.commit().await.expect("commit");
}

fn reserve_settle(c: &mut Criterion) {
    let (runtime, _dir, store) = setup();
    let billable = Billable::new("user", 1);
    let request = reserve_request(
        &billable,
        month(2025, 6),
        token_limit(u64::MAX / 4),
        totals(2_000, "0"),
        hour(1),
    );
    let row = entry(&billable, 1_550, dec("0.00042"), hour(1));
    c.bench_function("sqlite_store/reserve_settle", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ReserveOutcome::Reserved { id, .. } =
                    store.reserve(&request).await.expect("reserve")
                else {
                    panic!("refused: the limit is effectively unlimited");
                };
                store.settle(&settlement(id, &row)).await.expect("settle")
            })
        })
    });
}

/// The raw twin of `reserve_settle`: the same logical writes by hand on the same pool, a
/// conditional counter `UPDATE` to reserve, then `INSERT` usage + counter `UPDATE` in one
/// `BEGIN IMMEDIATE` transaction to settle.
async fn raw_reserve_settle(pool: &SqlitePool, e: &UsageEntry) {
    let done = sqlx::query(
        "UPDATE raw_counters SET reserved = reserved + 2000 \
         WHERE id = 1 AND used + reserved + 2000 <= lim",
    )
    .execute(pool)
    .await
    .expect("reserve");
    assert_eq!(
        done.rows_affected(),
        1,
        "refused: the limit is effectively unlimited"
    );
    let mut conn = pool.acquire().await.expect("a connection");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .expect("begin");
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("INSERT INTO ai_usages ({COLUMNS}) VALUES ("));
    Row(e).push(q.separated(", "));
    q.push(")");
    q.build().execute(&mut *conn).await.expect("insert");
    sqlx::query("UPDATE raw_counters SET used = used + ?, reserved = reserved - 2000 WHERE id = 1")
        .bind(i64::try_from(e.usage.total_tokens()).expect("tokens fit"))
        .execute(&mut *conn)
        .await
        .expect("count");
    sqlx::raw_sql("COMMIT")
        .execute(&mut *conn)
        .await
        .expect("commit");
}

fn raw_twin(c: &mut Criterion) {
    let (runtime, _dir, store) = setup();
    let pool = store.connection().get_sqlite_connection_pool().clone();
    runtime.block_on(async {
        sqlx::raw_sql(
            "CREATE TABLE raw_counters (id INTEGER PRIMARY KEY, used BIGINT NOT NULL, \
             reserved BIGINT NOT NULL, lim BIGINT NOT NULL); \
             INSERT INTO raw_counters VALUES (1, 0, 0, 4611686018427387903)",
        )
        .execute(&pool)
        .await
        .expect("the raw counter");
    });
    let row = entry(&Billable::new("user", 1), 1_550, dec("0.00042"), hour(1));
    c.bench_function("raw_sqlx/reserve_settle", |b| {
        b.iter(|| runtime.block_on(raw_reserve_settle(&pool, &row)))
    });
}

fn batch(c: &mut Criterion) {
    let (runtime, _dir, store) = setup();
    let pool = store.connection().get_sqlite_connection_pool().clone();
    let entries = rows(&Billable::new("team", "batch"));

    let mut group = c.benchmark_group("record_1000_rows");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("store_insert_usage_batch", |b| {
        b.iter(|| {
            runtime
                .block_on(store.insert_usage_batch(&entries))
                .expect("batch")
        })
    });
    let metering = Metering::new(store.clone());
    group.bench_function("recorder_write_behind", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let recorder = Recorder::start(&metering, RecorderConfig::default());
                for e in &entries {
                    recorder.record(e.clone()).await.expect("taken");
                }
                recorder.shutdown().await.expect("stored")
            })
        })
    });
    group.bench_function("raw_sqlx_insert_per_row", |b| {
        b.iter_batched(
            || (),
            |()| runtime.block_on(raw_per_row(&pool, &entries)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("raw_sqlx_multi_row_insert", |b| {
        b.iter_batched(
            || (),
            |()| runtime.block_on(raw_multi_row(&pool, &entries)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, reserve_settle, raw_twin, batch);
criterion_main!(benches);
