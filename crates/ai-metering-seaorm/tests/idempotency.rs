//! Idempotency keys are unique per billable: concurrent inserts with one key store one row
//! and all return it; batches are all-or-nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ai_metering_core::Billable;
use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::store::{
    CounterStore, Page, ReportStore, ReserveOutcome, ReserveRequest, UsageFilter, UsageStore,
};
use ai_metering_seaorm::SeaOrmStore;
use chrono::Duration;
use common::{at, dec, entry, march};
use sea_orm::{ConnectionTrait, DbBackend};

async fn race(store: Arc<SeaOrmStore>) {
    let b = Billable::new("user", "retry");
    // A counter exists, so a duplicate would also be counted twice.
    let req = ReserveRequest::new(
        b.clone(),
        march(),
        Limits::UNLIMITED,
        UsageTotals::ZERO,
        at(5, 0),
        at(5, 0) + Duration::minutes(1),
    );
    assert!(matches!(
        store.reserve(&req).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));

    let mut e = entry(&b, 300, 200, dec("0.0042"), at(5, 1));
    e.idempotency_key = Some("request-7".into());
    let mut handles = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        let e = e.clone();
        handles.push(tokio::spawn(async move {
            store.insert_usage(&e).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.created).count(), 1);
    let id = results[0].record.id;
    assert!(
        results
            .iter()
            .all(|r| r.record.id == id && r.record.entry == e)
    );

    let rows = store
        .query_usage(&UsageFilter::for_billable(b.clone()), Page::first(100))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let usage = store.period_usage(&b, &march(), at(5, 2)).await.unwrap();
    assert_eq!(usage.recorded, UsageTotals::new(500, dec("0.0042")));

    // The same key under another billable is another row.
    let other = Billable::new("user", "other");
    let mut e2 = e.clone();
    e2.billable = other.clone();
    assert!(store.insert_usage(&e2).await.unwrap().created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_inserts_with_one_key_store_one_row_on_sqlite() {
    race(Arc::new(common::fresh_sqlite().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_inserts_with_one_key_store_one_row_on_postgres() {
    if let Some(store) = common::fresh_postgres("idempotency_race").await {
        race(Arc::new(store)).await;
    }
}

#[tokio::test]
async fn batches_are_idempotent_and_all_or_nothing() {
    common::on_each_backend("batch_insert", |store| async move {
        let b = Billable::new("user", "batch");
        let mut first = entry(&b, 10, 0, dec("0.1"), at(7, 0));
        first.idempotency_key = Some("k1".into());
        let mut dup = first.clone();
        dup.occurred_at = at(7, 1);
        let second = entry(&b, 20, 0, dec("0.2"), at(7, 2));
        let out = store
            .insert_usage_batch(&[first.clone(), dup, second])
            .await
            .unwrap();
        assert_eq!(
            out.iter().map(|r| r.created).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(out[1].record.id, out[0].record.id);
        assert_eq!(out[1].record.entry.occurred_at, at(7, 0));

        // A batch with one row the database refuses inserts nothing.
        let refuse = match store.backend() {
            DbBackend::Postgres => {
                r#"ALTER TABLE ai_usages ADD CONSTRAINT refuse CHECK (model <> 'refused')"#
            }
            _ => {
                r#"CREATE TRIGGER refuse BEFORE INSERT ON ai_usages WHEN NEW.model = 'refused'
                   BEGIN SELECT RAISE(ABORT, 'refused'); END"#
            }
        };
        store.connection().execute_unprepared(refuse).await.unwrap();
        let good = entry(&b, 1, 0, dec("0.01"), at(7, 3));
        let mut bad = good.clone();
        bad.model = "refused".into();
        assert!(store.insert_usage_batch(&[good, bad]).await.is_err());
        let sums = store
            .sum_usage(&UsageFilter::for_billable(b.clone()))
            .await
            .unwrap();
        assert_eq!(
            sums.calls, 2,
            "the good row of the failed batch was rolled back"
        );
    })
    .await;
}
