//! A database that is down or not migrated gives a typed error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::Billable;
use ai_metering_core::store::{
    CounterStore, PlanStore, ReportStore, StoreErrorKind, UsageFilter, UsageStore,
};
use ai_metering_seaorm::SeaOrmStore;
use common::{at, dec, entry, march};

#[tokio::test]
async fn postgres_that_is_down_is_unavailable() {
    // Nothing listens on port 1.
    let err = SeaOrmStore::connect("postgres://postgres@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn sqlite_file_in_a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("store.db");
    let err = SeaOrmStore::connect(&common::sqlite_url(&path))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_store_whose_database_went_away_is_unavailable() {
    let store = common::fresh_sqlite().await;
    store.connection().clone().close().await.unwrap();
    let err = store.plans().await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn unsupported_url_is_invalid() {
    let err = SeaOrmStore::connect("mysql://localhost/x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Invalid, "{err}");
}

async fn check_not_migrated(store: SeaOrmStore) {
    assert!(!store.is_migrated().await.unwrap());
    let b = Billable::new("user", 1);
    let err = store
        .insert_usage(&entry(&b, 1, 1, dec("0.1"), at(1, 0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotMigrated, "{err}");
    assert!(err.to_string().contains("migrat"), "{err}");
    let err = store.plan("pro").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotMigrated, "{err}");
    let err = store
        .period_usage(&b, &march(), at(1, 0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotMigrated, "{err}");

    store.migrate().await.unwrap();
    assert!(store.is_migrated().await.unwrap());
    // Migrating twice is harmless.
    store.migrate().await.unwrap();
    let sums = store.sum_usage(&UsageFilter::default()).await.unwrap();
    assert_eq!(sums.calls, 0);
}

#[tokio::test]
async fn sqlite_without_migrations_is_not_migrated() {
    let path = common::unique_sqlite_path();
    let store = SeaOrmStore::connect(&common::sqlite_url(&path))
        .await
        .unwrap();
    check_not_migrated(store).await;
}

#[tokio::test]
async fn postgres_without_migrations_is_not_migrated() {
    let Some(url) = common::fresh_postgres_url("not_migrated").await else {
        return;
    };
    check_not_migrated(SeaOrmStore::connect(&url).await.unwrap()).await;
}
