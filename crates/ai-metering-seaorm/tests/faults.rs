//! A failure between any two statements of a reservation or a settlement stores nothing
//! partial, on SQLite and PostgreSQL: the database rolls the transaction back, the caller is
//! told the truth, and a retry with the same idempotency key completes the call once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

async fn every_statement(store: ai_metering_seaorm::SeaOrmStore) {
    let (inject, pending) = (store.clone(), store.clone());
    ai_metering_testkit::money_path::fail_at_every_step(
        store,
        move |n| inject.fail_at_step(n),
        move || pending.steps_before_fault() > 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_statement_stores_nothing_partial_on_sqlite() {
    every_statement(common::fresh_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_statement_stores_nothing_partial_on_postgres() {
    if let Some(store) = common::fresh_postgres("faults").await {
        every_statement(store).await;
    }
}
