//! Idempotent inserts: one row per (billable, key), whoever inserts it and however often.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::store::{Page, UsageFilter};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::builders::{EntryExt, dec, entry, fresh_billable, fresh_name, hour};

/// A second insert with a used key stores nothing and returns the first row; rows without a
/// key are never merged.
pub async fn idempotent_insert_returns_the_first_row<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let key = fresh_name("key");
    let first = entry(&who, 100, dec("0.10"), hour(1)).with_key(&key);
    let retry = entry(&who, 999, dec("9.99"), hour(2)).with_key(&key);
    let a = store.insert_usage(&first).await.unwrap();
    let b = store.insert_usage(&retry).await.unwrap();
    assert!(a.created);
    assert!(!b.created, "the key was used");
    assert_eq!(b.record, a.record, "the retry returns the first row");
    assert_eq!(
        store.usage_by_idempotency_key(&who, &key).await.unwrap(),
        Some(a.record.clone())
    );
    assert_eq!(
        store
            .usage_by_idempotency_key(&who, "never-used")
            .await
            .unwrap(),
        None
    );

    let unkeyed = entry(&who, 1, dec("0.01"), hour(3));
    let c = store.insert_usage(&unkeyed).await.unwrap();
    let d = store.insert_usage(&unkeyed).await.unwrap();
    assert!(c.created && d.created && c.record.id != d.record.id);

    let sums = store
        .sum_usage(&UsageFilter::for_billable(who))
        .await
        .unwrap();
    assert_eq!(
        (sums.calls, sums.total_tokens),
        (3, 102),
        "nothing charged twice"
    );
}

/// 20 concurrent inserts with one key store one row, and all of them return it.
pub async fn idempotent_insert_under_concurrency<S: ConformanceStore>(store: Arc<S>) {
    const TASKS: usize = 20;
    let who = fresh_billable();
    let key = fresh_name("key");
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let (store, barrier) = (store.clone(), barrier.clone());
        let e = entry(&who, 10 + i as u64, dec("0.01"), hour(1)).with_key(&key);
        tasks.spawn(async move {
            barrier.wait().await;
            store.insert_usage(&e).await.unwrap()
        });
    }
    let results = tasks.join_all().await;
    let created = results.iter().filter(|r| r.created).count();
    assert_eq!(created, 1, "exactly one caller created the row");
    let winner = results.iter().find(|r| r.created).unwrap().record.clone();
    for r in &results {
        assert_eq!(r.record, winner, "every caller gets the stored row");
    }
    let rows = store
        .query_usage(&UsageFilter::for_billable(who), Page::first(100))
        .await
        .unwrap();
    assert_eq!(rows, vec![winner]);
}

/// Keys are unique per billable: two billables may use the same key.
pub async fn idempotency_keys_are_per_billable<S: ConformanceStore>(store: Arc<S>) {
    let (a, b) = (fresh_billable(), fresh_billable());
    let key = fresh_name("shared-key");
    let ra = store
        .insert_usage(&entry(&a, 10, dec("0.1"), hour(1)).with_key(&key))
        .await
        .unwrap();
    let rb = store
        .insert_usage(&entry(&b, 20, dec("0.2"), hour(1)).with_key(&key))
        .await
        .unwrap();
    assert!(ra.created && rb.created);
    assert_ne!(ra.record.id, rb.record.id);
    assert_eq!(
        store.usage_by_idempotency_key(&a, &key).await.unwrap(),
        Some(ra.record)
    );
    assert_eq!(
        store.usage_by_idempotency_key(&b, &key).await.unwrap(),
        Some(rb.record)
    );
}

/// A batch is idempotent within itself and against earlier inserts; results follow the input
/// order.
pub async fn batch_insert_is_idempotent_within_and_across_batches<S: ConformanceStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let (k1, k2) = (fresh_name("k1"), fresh_name("k2"));
    let batch = vec![
        entry(&who, 10, dec("0.1"), hour(1)).with_key(&k1),
        entry(&who, 20, dec("0.2"), hour(2)).with_key(&k2),
        entry(&who, 30, dec("0.3"), hour(3)).with_key(&k1),
        entry(&who, 40, dec("0.4"), hour(4)),
    ];
    let first = store.insert_usage_batch(&batch).await.unwrap();
    let created: Vec<bool> = first.iter().map(|r| r.created).collect();
    assert_eq!(created, [true, true, false, true]);
    assert_eq!(first[2].record, first[0].record, "same key in one batch");
    assert_eq!(first[0].record.entry, batch[0]);
    assert_eq!(first[1].record.entry, batch[1]);
    assert_eq!(first[3].record.entry, batch[3]);

    let again = store.insert_usage_batch(&batch).await.unwrap();
    let created: Vec<bool> = again.iter().map(|r| r.created).collect();
    assert_eq!(
        created,
        [false, false, false, true],
        "only the unkeyed row is new"
    );
    assert_eq!(again[0].record, first[0].record);
    assert_eq!(again[1].record, first[1].record);

    assert!(store.insert_usage_batch(&[]).await.unwrap().is_empty());
    let sums = store
        .sum_usage(&UsageFilter::for_billable(who))
        .await
        .unwrap();
    assert_eq!((sums.calls, sums.total_tokens), (4, 110));
}
