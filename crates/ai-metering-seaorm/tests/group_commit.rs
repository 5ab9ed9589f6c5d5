//! The writer's batches: many callers' reservations, growths, settlements and releases in
//! one transaction keep the counter row's reserved totals equal to its reservation rows and
//! its recorded totals equal to its usage rows, also when a batch fails part-way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;

use ai_metering_core::Billable;
use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::store::{
    CounterStore, ReportStore, ReserveOutcome, ReserveRequest, StoreResult, UsageFilter,
};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::builders::settlement;
use chrono::Duration;
use common::{at, dec, entry, march};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, Statement};

const TASKS: usize = 48;

fn request(b: &Billable, tokens: u64) -> ReserveRequest {
    ReserveRequest::new(
        b.clone(),
        march(),
        Limits {
            tokens: Some(1_000_000),
            cost: None,
        },
        UsageTotals::new(tokens, dec("0.01")),
        at(10, 12),
        at(10, 12) + Duration::minutes(5),
    )
}

/// One caller: reserve, grow the reservation, then settle it (even tasks) or release it
/// (odd ones). Errors are returned, not unwrapped: a failed batch is part of the test.
async fn call(store: Arc<SeaOrmStore>, b: Billable, i: usize) -> StoreResult<()> {
    let ReserveOutcome::Reserved { id, .. } = store.reserve(&request(&b, 100)).await? else {
        panic!("the limit is far");
    };
    let grown = ReserveRequest {
        replaces: Some(id),
        ..request(&b, 300)
    };
    let ReserveOutcome::Reserved { id, usage, .. } = store.reserve(&grown).await? else {
        panic!("the limit is far");
    };
    assert!(usage.reserved.tokens >= 300, "{usage:?}");
    if i.is_multiple_of(2) {
        let e = entry(&b, 200, 50, dec("0.002"), at(10, 12));
        store.settle(&settlement(id, &e)).await?;
    } else {
        assert!(store.release(id).await?);
    }
    Ok(())
}

/// Reads a counter's row and its reservation rows straight from the database.
async fn stored(store: &SeaOrmStore, b: &Billable) -> (UsageTotals, UsageTotals, UsageTotals) {
    let db = store.connection();
    let backend = db.get_database_backend();
    let q = |sql: &str| Statement::from_string(backend, sql.to_owned());
    let counter = db
        .query_one_raw(q(&format!(
            "SELECT recorded_tokens, recorded_cost, reserved_tokens, reserved_cost \
             FROM ai_period_counters WHERE billable_id = '{}'",
            b.id
        )))
        .await
        .unwrap();
    let totals = |tokens: &str, cost: &str| match &counter {
        Some(counter) => {
            let t: i64 = counter.try_get("", tokens).unwrap();
            let c: String = counter.try_get("", cost).unwrap();
            UsageTotals::new(t as u64, Decimal::from_str(&c).unwrap())
        }
        // No batch of this billable committed yet (the first one may be the failed one).
        None => UsageTotals::ZERO,
    };
    let recorded = totals("recorded_tokens", "recorded_cost");
    let on_row = totals("reserved_tokens", "reserved_cost");
    let rows = db
        .query_all_raw(q(&format!(
            "SELECT tokens, cost FROM ai_reservations WHERE billable_id = '{}'",
            b.id
        )))
        .await
        .unwrap();
    let mut reserved = UsageTotals::ZERO;
    for r in rows {
        let t: i64 = r.try_get("", "tokens").unwrap();
        let c: String = r.try_get("", "cost").unwrap();
        reserved = reserved
            .checked_add(UsageTotals::new(t as u64, Decimal::from_str(&c).unwrap()))
            .unwrap();
    }
    (recorded, on_row, reserved)
}

async fn recorded_rows(store: &SeaOrmStore, b: &Billable) -> UsageTotals {
    let sums = store
        .sum_usage(&UsageFilter::for_billable(b.clone()).in_period(&march()))
        .await
        .unwrap();
    UsageTotals::new(sums.total_tokens, sums.cost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_growths_settlements_and_releases_keep_the_counter_exact() {
    common::on_each_backend("group_commit_exact", |store| async move {
        let store = Arc::new(store);
        let b = Billable::new("user", "batched");
        let calls: Vec<_> = (0..TASKS)
            .map(|i| tokio::spawn(call(Arc::clone(&store), b.clone(), i)))
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let (recorded, on_row, reserved) = stored(&store, &b).await;
        assert_eq!(
            reserved,
            UsageTotals::ZERO,
            "every reservation settled or released"
        );
        assert_eq!(on_row, UsageTotals::ZERO, "the counter row agrees");
        assert_eq!(
            recorded,
            UsageTotals::new(250 * TASKS as u64 / 2, dec("0.048"))
        );
        assert_eq!(recorded, recorded_rows(&store, &b).await);
    })
    .await;
}

/// A statement of some batch fails while many callers are in flight: each caller either
/// completed or got an error, and whatever was stored is consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_batch_leaves_no_partial_state() {
    common::on_each_backend("group_commit_fault", |store| async move {
        let store = Arc::new(store);
        let b = Billable::new("user", "faulty");
        for step in [1, 3, 5, 8, 13] {
            store.fail_at_step(step);
            let calls: Vec<_> = (0..TASKS)
                .map(|i| tokio::spawn(call(Arc::clone(&store), b.clone(), i)))
                .collect();
            let mut failed = 0;
            for c in calls {
                if c.await.unwrap().is_err() {
                    failed += 1;
                }
            }
            assert!(failed > 0, "the failure at step {step} reached some caller");
            store.fail_at_step(0);
            let (recorded, on_row, reserved) = stored(&store, &b).await;
            // Failed callers may leave their reservation to expire; it is counted exactly.
            assert_eq!(on_row, reserved, "after a failure at step {step}");
            assert_eq!(recorded, recorded_rows(&store, &b).await);
        }
        // The leftovers expire, and the counter goes back to zero reserved.
        let later = at(10, 12) + Duration::minutes(5);
        store.expire_reservations(later).await.unwrap();
        let (_, on_row, reserved) = stored(&store, &b).await;
        assert_eq!((on_row, reserved), (UsageTotals::ZERO, UsageTotals::ZERO));
    })
    .await;
}

/// Any number of PostgreSQL writers, fewer or more than the cores, keeps every billable's
/// counter exact: the writers split the billables, and the database locks each one. SQLite
/// refuses a second writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_number_of_postgres_writers_keeps_the_counters_exact() {
    let sqlite = common::fresh_sqlite().await;
    let error = sqlite
        .with_writers(NonZeroUsize::new(2).unwrap())
        .unwrap_err();
    assert!(error.to_string().contains("one writer"), "{error}");
    for writers in [1, 3, 8] {
        let Some(store) = common::fresh_postgres(&format!("group_commit_writers_{writers}")).await
        else {
            return;
        };
        let store = store
            .with_writers(NonZeroUsize::new(writers).unwrap())
            .unwrap();
        assert_eq!(store.writers(), writers);
        let store = Arc::new(store);
        let billables: Vec<_> = (0..6)
            .map(|i| Billable::new("user", format!("w{writers}-{i}")))
            .collect();
        let calls: Vec<_> = (0..TASKS)
            .map(|i| {
                let b = billables[i % billables.len()].clone();
                tokio::spawn(call(Arc::clone(&store), b, i))
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        for b in &billables {
            let (recorded, on_row, reserved) = stored(&store, b).await;
            assert_eq!((on_row, reserved), (UsageTotals::ZERO, UsageTotals::ZERO));
            assert_eq!(
                recorded,
                recorded_rows(&store, b).await,
                "{writers} writers"
            );
        }
        let total = billables.iter().map(|b| stored(&store, b));
        let mut tokens = 0;
        for t in total {
            tokens += t.await.0.tokens;
        }
        assert_eq!(tokens, 250 * TASKS as u64 / 2, "{writers} writers");
    }
}
