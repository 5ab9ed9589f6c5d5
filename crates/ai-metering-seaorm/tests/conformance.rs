//! The shared store conformance suite of `ai-metering-testkit`, run against this store.
//!
//! The suite is being written alongside this crate; once `ai-metering-testkit` exports
//! `store_conformance_tests!`, add it to `[dev-dependencies]` and enable the line below (and
//! the PostgreSQL variant, which skips itself without `AI_METERING_TEST_POSTGRES_URL`). Until
//! then `store_basics.rs` covers every trait on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

// ai_metering_testkit::store_conformance_tests!(async { common::fresh_sqlite().await });

#[tokio::test]
async fn fresh_stores_for_the_suite_are_migrated_and_empty() {
    use ai_metering_core::store::{PlanStore, UsageFilter, UsageStore};
    let store = common::fresh_sqlite().await;
    assert!(store.is_migrated().await.unwrap());
    assert!(store.plans().await.unwrap().is_empty());
    assert_eq!(
        store
            .sum_usage(&UsageFilter::default())
            .await
            .unwrap()
            .calls,
        0
    );
    if let Some(store) = common::fresh_postgres("conformance_fresh").await {
        assert!(store.is_migrated().await.unwrap());
        assert_eq!(
            store
                .sum_usage(&UsageFilter::default())
                .await
                .unwrap()
                .calls,
            0
        );
    }
}
