//! Write-behind recording over the real stores: rows are stored in batches and at shutdown,
//! a store that is down keeps them (retried, in order), a full buffer is backpressure, and a
//! shutdown with the store still down gives the rows back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ai_metering_core::recorder::{RecordError, Recorder, RecorderConfig};
use ai_metering_core::store::{ReportStore, UsageFilter, UsageStore};
use ai_metering_core::{Billable, Metering, TokenUsage};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::faulty::FaultyStore;

fn entry<S: ai_metering_core::store::Store>(
    metering: &Metering<S>,
    who: &Billable,
    i: u64,
) -> ai_metering_core::store::UsageEntry {
    metering
        .meter()
        .billable(who.clone())
        .provider("openai", "gpt-4o-mini")
        .feature("background")
        .idempotency_key(format!("job-{i}"))
        .manual_usage(TokenUsage::new(100 + i, 10).unwrap())
        .entry()
        .unwrap()
}

async fn stored_tokens(store: &SeaOrmStore, who: &Billable) -> (u64, u64) {
    let sums = store
        .sum_usage(&UsageFilter::for_billable(who.clone()))
        .await
        .unwrap();
    (sums.calls, sums.total_tokens)
}

/// Waits (without sleeping) until `done` holds, yielding to the recorder's task.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_stored_in_batches_and_at_shutdown() {
    common::on_each_backend("recorder_batches", |store| async move {
        let metering = Metering::new(store.clone());
        let who = Billable::new("team", "background");
        let recorder = Recorder::start(&metering, RecorderConfig::default().batch_size(50));
        let mut expected = 0;
        for i in 0..120 {
            recorder.record(entry(&metering, &who, i)).await.unwrap();
            expected += 110 + i;
        }
        // The same key again is stored once.
        recorder.record(entry(&metering, &who, 7)).await.unwrap();
        let report = recorder.shutdown().await.unwrap();
        assert_eq!(report.stored, 121, "every row handed to the store");
        assert_eq!(report.failed_flushes, 0);
        assert_eq!(stored_tokens(&store, &who).await, (120, expected));
        // A later shutdown returns at once; the recorder takes nothing more.
        recorder.shutdown().await.unwrap();
        assert!(matches!(
            recorder.try_record(entry(&metering, &who, 500)),
            Err(RecordError::Closed(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_keeps_the_rows_until_it_is_back() {
    let store = FaultyStore::new(common::fresh_sqlite().await);
    let metering = Metering::new(store.clone());
    let who = Billable::new("team", "outage");
    let config = RecorderConfig::default()
        .batch_size(4)
        .capacity(4)
        .flush_interval(Duration::from_millis(1))
        .retry_interval(Duration::from_millis(1));
    let recorder = Recorder::start(&metering, config);
    store.set_down(true);

    // Rows are taken until the buffer and the batch in hand are full: then backpressure,
    // with the row given back.
    let mut accepted = 0_u64;
    let refused = loop {
        match recorder.try_record(entry(&metering, &who, accepted)) {
            Ok(()) => accepted += 1,
            Err(e @ RecordError::Full(..)) => break e,
            Err(other) => panic!("unexpected {other}"),
        }
        assert!(accepted <= 8, "capacity 4 + a batch of 4 at most");
        tokio::task::yield_now().await;
    };
    assert_eq!(
        refused.into_entry().idempotency_key.as_deref(),
        Some(&*format!("job-{accepted}"))
    );
    until(|| recorder.failed_flushes() > 0).await;
    assert_eq!(stored_tokens(store.inner(), &who).await.0, 0);

    // Back up: everything accepted is stored, once, in order.
    store.set_down(false);
    let report = recorder.shutdown().await.unwrap();
    assert_eq!(report.stored, accepted);
    assert!(report.failed_flushes > 0);
    assert_eq!(stored_tokens(store.inner(), &who).await.0, accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_the_store_down_gives_the_rows_back() {
    let store = FaultyStore::new(common::fresh_sqlite().await);
    let metering = Metering::new(store.clone());
    let who = Billable::new("team", "gone");
    let recorder = Recorder::start(
        &metering,
        RecorderConfig::default().retry_interval(Duration::from_millis(1)),
    );
    store.set_down(true);
    for i in 0..5 {
        recorder.record(entry(&metering, &who, i)).await.unwrap();
    }
    let err = recorder.shutdown().await.unwrap_err();
    assert_eq!(err.unstored.len(), 5);
    let keys: Vec<_> = err
        .unstored
        .iter()
        .map(|e| e.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["job-0", "job-1", "job-2", "job-3", "job-4"],
        "in order"
    );
    assert_eq!(err.report.stored, 0);

    // The app keeps them: once the store is back they go in as any batch.
    store.set_down(false);
    store
        .inner()
        .insert_usage_batch(&err.unstored)
        .await
        .unwrap();
    assert_eq!(stored_tokens(store.inner(), &who).await.0, 5);
}
