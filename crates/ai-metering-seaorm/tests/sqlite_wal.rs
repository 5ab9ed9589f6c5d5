//! SQLite runs in WAL mode, and the WAL stays bounded under a steady stream of writes
//! (statements with RETURNING run inside explicit transactions, so checkpoints are never
//! starved by a read left open).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::Billable;
use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::store::{CounterStore, ReserveOutcome, ReserveRequest};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::builders::settlement;
use chrono::Duration;
use common::{at, dec, entry, march};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

const WRITES: u32 = 1_500;
/// SQLite checkpoints at 1000 pages (4 MiB); without checkpoints these writes grow the WAL to
/// several times that.
const WAL_BOUND: u64 = 12 * 1024 * 1024;

#[tokio::test]
async fn journal_mode_is_wal_and_the_wal_stays_bounded() {
    let path = common::unique_sqlite_path();
    let store = SeaOrmStore::connect(&common::sqlite_url(&path))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mode = store
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(mode, "wal");

    let b = Billable::new("user", "load");
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let mut largest = 0;
    for i in 0..WRITES {
        let when = at(10, 0) + Duration::seconds(i64::from(i));
        let req = ReserveRequest::new(
            b.clone(),
            march(),
            Limits::UNLIMITED,
            UsageTotals::new(10, dec("0.001")),
            when,
            when + Duration::minutes(1),
        );
        let ReserveOutcome::Reserved { id, .. } = store.reserve(&req).await.unwrap() else {
            panic!("unlimited");
        };
        store
            .settle(&settlement(id, &entry(&b, 8, 2, dec("0.001"), when)))
            .await
            .unwrap();
        if i % 100 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    println!("largest WAL: {largest} bytes");
    assert!(largest < WAL_BOUND, "the WAL grew to {largest} bytes");
    let usage = store.period_usage(&b, &march(), at(11, 0)).await.unwrap();
    assert_eq!(usage.recorded.tokens, u64::from(WRITES) * 10);
}
