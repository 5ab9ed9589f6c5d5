//! Shared helpers of the integration tests: fresh stores on each backend, and entries.
//!
//! Every test gets its own database: a new SQLite file in a temporary directory, and (when
//! `AI_METERING_TEST_POSTGRES_URL` is set) a new PostgreSQL database named after the test,
//! dropped and recreated on each run. Whether a missing server skips or fails is decided by
//! `ai_metering_test_env`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use ai_metering_core::period::Period;
use ai_metering_core::store::UsageEntry;
use ai_metering_core::{Billable, TokenCounts, TokenUsage};
use ai_metering_seaorm::SeaOrmStore;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

/// A fresh, migrated store on a new SQLite file. The file is left in Cargo's temporary
/// directory for integration tests (`target/tmp`, removed by `cargo clean`), not in the
/// system's: a store may outlive any guard a test could hold.
pub async fn fresh_sqlite() -> SeaOrmStore {
    let store = SeaOrmStore::connect(&sqlite_url(&unique_sqlite_path()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A new SQLite file path, unique to this process and call.
pub fn unique_sqlite_path() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = tempfile::Builder::new()
        .prefix("ai-metering-seaorm-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    dir.join(format!("store-{}.db", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// The `sqlite://` URL of a path.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The PostgreSQL server URL, or `None` when this test may skip its PostgreSQL part (the
/// skip is reported; under CI a missing server fails the test instead).
pub fn postgres_server(test: &str) -> Option<String> {
    ai_metering_test_env::postgres_url(test)
}

/// The URL of a new, empty PostgreSQL database named after `test` (recreated on each run).
pub async fn fresh_postgres_url(test: &str) -> Option<String> {
    let name = format!(
        "aim_{}",
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    ai_metering_test_env::fresh_postgres_database(test, &name).await
}

/// A fresh, migrated store on a new PostgreSQL database, or `None` when not configured.
pub async fn fresh_postgres(test: &str) -> Option<SeaOrmStore> {
    let url = fresh_postgres_url(test).await?;
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// Runs `body` on a fresh SQLite store, then on a fresh PostgreSQL store when configured.
pub async fn on_each_backend<F, Fut>(test: &str, body: F)
where
    F: Fn(SeaOrmStore) -> Fut,
    Fut: Future<Output = ()>,
{
    body(fresh_sqlite().await).await;
    if let Some(store) = fresh_postgres(test).await {
        body(store).await;
    }
}

/// A decimal from text.
pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// 2025-03-`day` at `hour`:00 UTC.
pub fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, hour, 0, 0).unwrap()
}

/// March 2025, UTC.
pub fn march() -> Period {
    Period {
        start: at(1, 0),
        end: Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap(),
    }
}

/// An OpenAI call of `input` + `output` tokens costing `total`, at `when`.
pub fn entry(
    billable: &Billable,
    input: u64,
    output: u64,
    total: Decimal,
    when: DateTime<Utc>,
) -> UsageEntry {
    UsageEntry {
        billable: billable.clone(),
        user_id: None,
        tenant: None,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        feature: None,
        usage: TokenUsage::try_from(TokenCounts {
            input,
            output,
            ..TokenCounts::default()
        })
        .unwrap(),
        cost: ai_metering_testkit::builders::cost(total),
        metadata: serde_json::Map::new(),
        idempotency_key: None,
        occurred_at: when,
        estimated: false,
        time_zone: None,
    }
}
