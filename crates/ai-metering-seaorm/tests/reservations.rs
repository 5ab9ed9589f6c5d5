//! Atomic reservations: many concurrent reserve + settle never exceed a limit, and expired
//! or released reservations stop counting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ai_metering_core::Billable;
use ai_metering_core::limit::{LimitKind, Limits, UsageTotals};
use ai_metering_core::store::{
    CounterStore, ReportStore, ReserveOutcome, ReserveRequest, UsageFilter, UsageStore,
};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::builders::settlement;
use chrono::Duration;
use common::{at, dec, entry, fresh_postgres, fresh_sqlite, march};
use rust_decimal::Decimal;

const TASKS: usize = 200;
const LIMIT_TOKENS: u64 = 5_000;
const PER_CALL: u64 = 60; // 50 in + 10 out

fn request(b: &Billable, tokens: u64, cost: Decimal) -> ReserveRequest {
    ReserveRequest::new(
        b.clone(),
        march(),
        Limits {
            tokens: Some(LIMIT_TOKENS),
            cost: Some(dec("1")),
        },
        UsageTotals::new(tokens, cost),
        at(10, 12),
        at(10, 12) + Duration::minutes(5),
    )
}

/// `TASKS` tasks each reserve one call and settle it; returns how many were admitted.
async fn hammer(stores: Vec<Arc<SeaOrmStore>>, b: &Billable) -> u64 {
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = Arc::clone(&stores[i % stores.len()]);
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            let cost = dec("0.003");
            match store.reserve(&request(&b, PER_CALL, cost)).await.unwrap() {
                ReserveOutcome::Reserved { id, usage, .. } => {
                    assert!(usage.committed().tokens <= LIMIT_TOKENS, "{usage:?}");
                    let e = entry(&b, 50, 10, cost, at(10, 12));
                    store.settle(&settlement(id, &e)).await.unwrap();
                    1_u64
                }
                ReserveOutcome::Rejected { exceeded, usage } => {
                    assert_eq!(exceeded, LimitKind::Tokens);
                    assert!(
                        usage.committed().tokens + PER_CALL > LIMIT_TOKENS,
                        "{usage:?}"
                    );
                    0
                }
                other => panic!("unexpected {other:?}"),
            }
        }));
    }
    let mut admitted = 0;
    for h in handles {
        admitted += h.await.unwrap();
    }
    admitted
}

/// The limit holds, and the counter, the rows and the admitted calls all agree.
async fn check_totals(store: &SeaOrmStore, b: &Billable, admitted: u64) {
    // 5000 / 60 = 83 calls fit; every rejected call was turned away only when full.
    assert_eq!(admitted, LIMIT_TOKENS / PER_CALL);
    let usage = store.period_usage(b, &march(), at(10, 13)).await.unwrap();
    assert_eq!(usage.reserved, UsageTotals::ZERO);
    assert_eq!(usage.recorded.tokens, admitted * PER_CALL);
    assert!(usage.recorded.tokens <= LIMIT_TOKENS);
    assert_eq!(usage.recorded.cost, dec("0.003") * Decimal::from(admitted));
    let sums = store
        .sum_usage(&UsageFilter::for_billable(b.clone()).in_period(&march()))
        .await
        .unwrap();
    assert_eq!(sums.calls, admitted);
    assert_eq!(sums.total_tokens, usage.recorded.tokens);
    assert_eq!(sums.cost, usage.recorded.cost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_exceed_the_limit_on_sqlite() {
    let store = Arc::new(fresh_sqlite().await);
    let b = Billable::new("user", "concurrent");
    let admitted = hammer(vec![Arc::clone(&store)], &b).await;
    check_totals(&store, &b, admitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_exceed_the_limit_on_postgres() {
    let Some(store) = fresh_postgres("concurrent_reservations").await else {
        return;
    };
    let store = Arc::new(store);
    let b = Billable::new("user", "concurrent");
    let admitted = hammer(vec![Arc::clone(&store)], &b).await;
    check_totals(&store, &b, admitted).await;
}

/// Two separate connection pools, as two app instances would have, share one PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_postgres_never_exceed_the_limit() {
    let Some(url) = common::fresh_postgres_url("two_instances").await else {
        return;
    };
    let first = SeaOrmStore::connect(&url).await.unwrap();
    let second = SeaOrmStore::connect(&url).await.unwrap();
    // Both instances migrate at start-up, at the same time.
    let (a, b_) = tokio::join!(first.migrate(), second.migrate());
    a.unwrap();
    b_.unwrap();
    let stores = vec![Arc::new(first), Arc::new(second)];
    let b = Billable::new("team", "shared");
    let admitted = hammer(stores.clone(), &b).await;
    for store in &stores {
        check_totals(store, &b, admitted).await;
    }
}

/// Credits across two instances: 60 reservations holding credits from several grants (one
/// expired) and an ungranted top-up, spread over two pools on one PostgreSQL, admit exactly
/// what the usable credits pay for and spend every grant exactly; every instance reads the
/// same grants and ledger, and they reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_postgres_draw_grants_without_overspending() {
    let Some(url) = common::fresh_postgres_url("two_instances_grants").await else {
        return;
    };
    let first = SeaOrmStore::connect(&url).await.unwrap();
    first.migrate().await.unwrap();
    let second = SeaOrmStore::connect(&url).await.unwrap();
    ai_metering_testkit::cases::reservations_drawing_from_grants_on_several_instances(vec![
        Arc::new(first),
        Arc::new(second),
    ])
    .await;
}

#[tokio::test]
async fn expired_and_released_reservations_stop_counting() {
    common::on_each_backend("reservation_lifecycle", |store| async move {
        let b = Billable::new("user", "lifecycle");
        let mut req = request(&b, 4_000, dec("0.5"));
        let ReserveOutcome::Reserved {
            id: first, usage, ..
        } = store.reserve(&req).await.unwrap()
        else {
            panic!("first reservation must fit");
        };
        assert_eq!(usage.reserved, UsageTotals::new(4_000, dec("0.5")));

        // 4000 + 4000 > 5000 tokens while the first one is live.
        let rejected = store.reserve(&req).await.unwrap();
        assert!(matches!(
            rejected,
            ReserveOutcome::Rejected {
                exceeded: LimitKind::Tokens,
                ..
            }
        ));
        // The cost limit is checked after the tokens: 0.5 + 0.6 > 1.
        let costly = ReserveRequest {
            amount: UsageTotals::new(1, dec("0.6")),
            ..req.clone()
        };
        assert!(matches!(
            store.reserve(&costly).await.unwrap(),
            ReserveOutcome::Rejected {
                exceeded: LimitKind::Cost,
                ..
            }
        ));

        // Once the first expires it no longer counts, and a reserve drops it.
        let later = req.expires_at;
        let usage = store.period_usage(&b, &march(), later).await.unwrap();
        assert_eq!(usage.reserved, UsageTotals::ZERO);
        req.now = later;
        req.expires_at = later + Duration::minutes(5);
        let ReserveOutcome::Reserved { id: second, .. } = store.reserve(&req).await.unwrap() else {
            panic!("the expired reservation must not count");
        };
        assert!(!store.release(first).await.unwrap(), "dropped on expiry");
        assert!(store.release(second).await.unwrap());
        assert!(!store.release(second).await.unwrap());

        // Settling an expired reservation still records the usage: the money was spent.
        let recorded = store
            .settle(&settlement(
                first,
                &entry(&b, 100, 20, dec("0.01"), at(10, 12)),
            ))
            .await
            .unwrap()
            .recorded;
        assert!(recorded.created);
        let usage = store.period_usage(&b, &march(), later).await.unwrap();
        assert_eq!(usage.recorded, UsageTotals::new(120, dec("0.01")));

        // expire_reservations drops every reservation expired by then.
        store.reserve(&req).await.unwrap();
        assert_eq!(store.expire_reservations(req.now).await.unwrap(), 0);
        assert_eq!(store.expire_reservations(req.expires_at).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_new_counter_starts_from_the_rows_already_in_its_window() {
    common::on_each_backend("counter_seed", |store| async move {
        let b = Billable::new("user", "seeded");
        store
            .insert_usage(&entry(&b, 1_000, 500, dec("0.2"), at(2, 0)))
            .await
            .unwrap();
        // Outside March: not counted.
        store
            .insert_usage(&entry(&b, 7, 0, dec("9"), at(1, 0) - Duration::seconds(1)))
            .await
            .unwrap();
        let req = request(&b, 10, dec("0.01"));
        let ReserveOutcome::Reserved { usage, .. } = store.reserve(&req).await.unwrap() else {
            panic!("fits");
        };
        assert_eq!(usage.recorded, UsageTotals::new(1_500, dec("0.2")));
        // A row inserted later is added to the existing counter.
        store
            .insert_usage(&entry(&b, 100, 0, dec("0.05"), at(20, 0)))
            .await
            .unwrap();
        let usage = store.period_usage(&b, &march(), at(10, 12)).await.unwrap();
        assert_eq!(usage.recorded, UsageTotals::new(1_600, dec("0.25")));
        assert_eq!(usage.reserved, UsageTotals::new(10, dec("0.01")));
    })
    .await;
}
