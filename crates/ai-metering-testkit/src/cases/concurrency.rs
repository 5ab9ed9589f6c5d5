//! Many concurrent calls against one limit: reservations must never let them overspend.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::limit::{LimitKind, Limits, UsageTotals};
use ai_metering_core::store::{Page, ReserveOutcome, UsageFilter};
use rust_decimal::Decimal;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::builders::{
    EntryExt, cost_limit, dec, entry, fresh_billable, hour, month, reserve_request, settlement,
    token_limit, totals,
};

const CALLS: usize = 200;

/// What one simulated call did.
enum Call {
    /// Reserved, then settled with this usage.
    Settled(UsageTotals),
    /// Refused on this limit.
    Rejected(LimitKind),
}

/// Runs `CALLS` concurrent calls of one billable: each reserves `estimate` under `limits`, and
/// when reserved, settles with `actual` usage under its own idempotency key.
async fn run_calls<S: ConformanceStore>(
    store: &Arc<S>,
    limits: Limits,
    estimate: UsageTotals,
    actual: (u64, Decimal),
) -> (ai_metering_core::Billable, Vec<Call>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let barrier = Arc::new(Barrier::new(CALLS));
    let mut tasks = JoinSet::new();
    for i in 0..CALLS {
        let (store, barrier) = (store.clone(), barrier.clone());
        let request = reserve_request(&who, march, limits, estimate, hour(1));
        let usage = entry(&who, actual.0, actual.1, hour(1)).with_key(format!("call-{i}"));
        tasks.spawn(async move {
            barrier.wait().await;
            match store.reserve(&request).await.unwrap() {
                ReserveOutcome::Reserved {
                    id, usage: seen, ..
                } => {
                    let committed = seen.committed();
                    assert!(
                        limits.tokens.is_none_or(|l| committed.tokens <= l)
                            && limits.cost.is_none_or(|l| committed.cost <= l),
                        "a reservation took the period over its limits: {seen:?}"
                    );
                    let recorded = store
                        .settle(&settlement(id, &usage))
                        .await
                        .unwrap()
                        .recorded;
                    assert!(recorded.created);
                    Call::Settled(usage.totals())
                }
                ReserveOutcome::Rejected { exceeded, .. } => Call::Rejected(exceeded),
                other => panic!("unexpected {other:?}"),
            }
        });
    }
    (who, tasks.join_all().await)
}

/// Checks that the rows, the sums and the counter agree with what the calls did; returns
/// the number of settled calls and their total.
async fn check_nothing_lost<S: ConformanceStore>(
    store: &Arc<S>,
    who: &ai_metering_core::Billable,
    calls: &[Call],
    rejected_on: LimitKind,
) -> (usize, UsageTotals) {
    let mut settled = 0;
    let mut total = UsageTotals::ZERO;
    for call in calls {
        match call {
            Call::Settled(t) => {
                settled += 1;
                total = total.checked_add(*t).unwrap();
            }
            Call::Rejected(kind) => assert_eq!(*kind, rejected_on),
        }
    }
    let filter = UsageFilter::for_billable(who.clone());
    let sums = store.sum_usage(&filter).await.unwrap();
    assert_eq!(sums.calls, settled as u64, "one row per settled call");
    assert_eq!((sums.total_tokens, sums.cost), (total.tokens, total.cost));
    let rows = store
        .query_usage(&filter, Page::first(1_000))
        .await
        .unwrap();
    assert_eq!(rows.len(), settled);
    let usage = store
        .period_usage(who, &month(2024, 3), hour(1))
        .await
        .unwrap();
    assert_eq!(usage.recorded, total, "the counter agrees with the rows");
    assert_eq!(
        usage.reserved,
        UsageTotals::ZERO,
        "every reservation settled"
    );
    (settled, total)
}

/// 200 concurrent calls of 10 tokens under a 1,000-token limit: exactly 100 get through, and
/// exactly 1,000 tokens are recorded.
pub async fn concurrent_reservations_respect_a_token_limit<S: ConformanceStore>(store: Arc<S>) {
    let (who, calls) = run_calls(
        &store,
        token_limit(1_000),
        totals(10, "0"),
        (10, dec("0.001")),
    )
    .await;
    let (settled, total) = check_nothing_lost(&store, &who, &calls, LimitKind::Tokens).await;
    assert_eq!(settled, 100);
    assert_eq!(total, totals(1_000, "0.1"));
}

/// 200 concurrent calls reserving $0.10 and spending $0.05 under a $10 limit: at least 100 get
/// through (settling frees room), and the recorded cost never passes the limit.
pub async fn concurrent_reservations_respect_a_cost_limit<S: ConformanceStore>(store: Arc<S>) {
    let (who, calls) = run_calls(
        &store,
        cost_limit("10"),
        totals(0, "0.10"),
        (7, dec("0.05")),
    )
    .await;
    let (settled, total) = check_nothing_lost(&store, &who, &calls, LimitKind::Cost).await;
    assert!(settled >= 100, "only {settled} calls got through");
    assert!(
        total.cost <= dec("10"),
        "recorded {} over a $10 limit",
        total.cost
    );
    assert_eq!(total.cost, dec("0.05") * Decimal::from(settled));
}
