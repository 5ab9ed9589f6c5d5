//! The single-operation path: a store without its writer, where every reservation,
//! settlement and release is a transaction of its own. The writer falls back to it for the
//! calls a batch does not cover, so it must keep every guarantee the batch keeps: the whole
//! conformance suite runs on it here, and a failure at each of its statements (the
//! integration tests run both through the writer).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::SeaOrmStore;

/// A migrated store on `url`, without its writer.
async fn single_path(url: &str) -> SeaOrmStore {
    let store = SeaOrmStore::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let single = store.without_writer();
    assert!(single.writer().is_none());
    single
}

mod sqlite {
    /// A fresh store on a new SQLite file (WAL, a pool of connections).
    async fn store() -> crate::SeaOrmStore {
        let dir = tempfile::Builder::new()
            .prefix("ai-metering-single-path-")
            .tempdir()
            .unwrap()
            // A store may outlive any guard the test could hold.
            .keep();
        super::single_path(&format!("sqlite://{}", dir.join("store.db").display())).await
    }

    ai_metering_testkit::store_conformance_tests!(async { store().await });
}

mod postgres {
    use super::*;

    /// One database for the suite, made once per run: every case uses billables of its own.
    async fn store() -> Option<SeaOrmStore> {
        static URL: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
        let url = URL
            .get_or_init(|| {
                ai_metering_test_env::fresh_postgres_database("single_path", "aim_single_path")
            })
            .await
            .clone()?;
        Some(single_path(&url).await)
    }

    ai_metering_testkit::store_conformance_tests!(optional: store());
}

/// A failure between any two statements of the single path's reservation or settlement
/// stores nothing partial, and a retry with the same idempotency key completes the call once
/// (`fail_at_every_step`, which the integration tests run through the writer).
async fn every_statement(store: SeaOrmStore) {
    let (inject, pending) = (store.clone(), store.clone());
    ai_metering_testkit::money_path::fail_at_every_step(
        store,
        move |n| inject.fail_at_step(n),
        move || pending.steps_before_fault() > 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_statement_of_the_single_path_stores_nothing_partial_on_sqlite() {
    let dir = tempfile::tempdir().unwrap().keep();
    every_statement(single_path(&format!("sqlite://{}", dir.join("faults.db").display())).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_statement_of_the_single_path_stores_nothing_partial_on_postgres() {
    // A database of its own: the scenario sweeps expired reservations, which is global.
    if let Some(url) = ai_metering_test_env::fresh_postgres_database(
        "single_path_faults",
        "aim_single_path_faults",
    )
    .await
    {
        every_statement(single_path(&url).await).await;
    }
}
