//! The raw baseline: the same logical writes as the metered `POST /chat`, by hand with sqlx,
//! so that a load run prints the store next to what the database itself allows.
//!
//! Per request: reserve the estimate with one conditional `UPDATE` (the limit is checked in
//! the statement: `used + reserved + estimate <= limit`), then settle in one transaction:
//! `INSERT` the usage row and `UPDATE` the counter (add the usage, drop the estimate). No
//! prices, no idempotency keys, no periods, no headers: the floor under the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sea_orm::sqlx::{self, Executor};

use crate::Options;

/// A pool of either database.
#[derive(Clone)]
pub enum RawPool {
    /// An SQLite file (WAL, `synchronous = NORMAL`, a busy timeout: as the store).
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
}

struct Raw {
    pool: RawPool,
    billables: Vec<String>,
    next: AtomicUsize,
    estimate: i64,
    usage: i64,
}

/// The two tables, with `{id}` and `{at}` the backend's auto-increment key and instant.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS raw_counters (billable TEXT PRIMARY KEY, used BIGINT NOT NULL, \
     reserved BIGINT NOT NULL, lim BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS raw_usage (id {id} PRIMARY KEY, billable TEXT NOT NULL, \
     tokens BIGINT NOT NULL, occurred_at {at} NOT NULL)",
];

fn schema(id: &str, at: &str) -> impl Iterator<Item = String> {
    SCHEMA
        .iter()
        .map(move |sql| sql.replace("{id}", id).replace("{at}", at))
}

/// Connects to `url` (`sqlite://...` or `postgres://...`) with the store's pool sizes.
///
/// # Errors
/// sqlx's, when the database cannot be reached.
pub async fn connect(url: &str) -> Result<RawPool, sqlx::Error> {
    if url.starts_with("sqlite:") {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let options = options
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(RawPool::Sqlite(pool))
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await?;
        Ok(RawPool::Postgres(pool))
    }
}

/// Creates the two tables and one counter per billable of `options`.
///
/// # Errors
/// sqlx's.
pub async fn prepare(pool: &RawPool, options: &Options) -> Result<(), sqlx::Error> {
    let limit = i64::try_from(options.limit).unwrap_or(i64::MAX);
    match pool {
        RawPool::Sqlite(p) => {
            for sql in schema("INTEGER", "TEXT") {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            }
            for b in options.billables() {
                sqlx::query(
                    "INSERT INTO raw_counters VALUES (?, 0, 0, ?) ON CONFLICT (billable) DO NOTHING",
                )
                .bind(b)
                .bind(limit)
                .execute(p)
                .await?;
            }
        }
        RawPool::Postgres(p) => {
            for sql in schema("BIGSERIAL", "TIMESTAMPTZ") {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            }
            for b in options.billables() {
                sqlx::query(
                    "INSERT INTO raw_counters VALUES ($1, 0, 0, $2) ON CONFLICT (billable) DO NOTHING",
                )
                .bind(b)
                .bind(limit)
                .execute(p)
                .await?;
            }
        }
    }
    Ok(())
}

/// The raw app: `GET /hello` and `POST /chat` doing the writes above.
pub fn app(pool: RawPool, options: &Options) -> Router {
    let (input, output) = options.usage;
    let raw = Arc::new(Raw {
        pool,
        billables: options.billables(),
        next: AtomicUsize::new(0),
        estimate: i64::try_from(options.estimate).unwrap_or(i64::MAX),
        usage: i64::try_from(input.saturating_add(output)).unwrap_or(i64::MAX),
    });
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/chat", post(chat))
        .with_state(raw)
}

async fn chat(State(raw): State<Arc<Raw>>) -> Result<&'static str, StatusCode> {
    let n = raw.next.fetch_add(1, Ordering::Relaxed) % raw.billables.len().max(1);
    let billable = raw.billables.get(n).map_or("", String::as_str);
    let fits = match &raw.pool {
        RawPool::Sqlite(p) => reserve_sqlite(p, billable, raw.estimate).await,
        RawPool::Postgres(p) => reserve_postgres(p, billable, raw.estimate).await,
    };
    match fits {
        Ok(true) => {}
        Ok(false) => return Err(StatusCode::TOO_MANY_REQUESTS),
        Err(_) => return Err(StatusCode::SERVICE_UNAVAILABLE),
    }
    let settled = match &raw.pool {
        RawPool::Sqlite(p) => settle_sqlite(p, billable, raw.estimate, raw.usage).await,
        RawPool::Postgres(p) => settle_postgres(p, billable, raw.estimate, raw.usage).await,
    };
    settled
        .map(|()| "hi")
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

async fn reserve_sqlite(p: &sqlx::SqlitePool, b: &str, n: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE raw_counters SET reserved = reserved + ?1 \
         WHERE billable = ?2 AND used + reserved + ?1 <= lim",
    )
    .bind(n)
    .bind(b)
    .execute(p)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn settle_sqlite(
    p: &sqlx::SqlitePool,
    b: &str,
    estimate: i64,
    usage: i64,
) -> Result<(), sqlx::Error> {
    let mut conn = p.acquire().await?;
    // As the store: take the write lock up front, never upgrade a read transaction.
    conn.execute("BEGIN IMMEDIATE").await?;
    let result = async {
        sqlx::query("INSERT INTO raw_usage (billable, tokens, occurred_at) VALUES (?, ?, ?)")
            .bind(b)
            .bind(usage)
            .bind(chrono::Utc::now())
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE raw_counters SET used = used + ?1, reserved = reserved - ?2 WHERE billable = ?3",
        )
        .bind(usage)
        .bind(estimate)
        .bind(b)
        .execute(&mut *conn)
        .await?;
        conn.execute("COMMIT").await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if result.is_err() {
        let _ = conn.execute("ROLLBACK").await;
    }
    result
}

async fn reserve_postgres(p: &sqlx::PgPool, b: &str, n: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE raw_counters SET reserved = reserved + $1 \
         WHERE billable = $2 AND used + reserved + $1 <= lim",
    )
    .bind(n)
    .bind(b)
    .execute(p)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn settle_postgres(
    p: &sqlx::PgPool,
    b: &str,
    estimate: i64,
    usage: i64,
) -> Result<(), sqlx::Error> {
    let mut txn = p.begin().await?;
    sqlx::query("INSERT INTO raw_usage (billable, tokens, occurred_at) VALUES ($1, $2, $3)")
        .bind(b)
        .bind(usage)
        .bind(chrono::Utc::now())
        .execute(&mut *txn)
        .await?;
    sqlx::query(
        "UPDATE raw_counters SET used = used + $1, reserved = reserved - $2 WHERE billable = $3",
    )
    .bind(usage)
    .bind(estimate)
    .bind(b)
    .execute(&mut *txn)
    .await?;
    txn.commit().await
}
