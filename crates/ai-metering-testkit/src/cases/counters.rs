//! Period counters, reservations and threshold claims.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::limit::{LimitKind, Limits, UsageTotals};
use ai_metering_core::store::{Page, PeriodUsage, ReservationId, ReserveOutcome, UsageFilter};
use chrono::Duration;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::reserved;
use crate::builders::{
    EntryExt, cost_limit, dec, entry, fresh_billable, fresh_name, hour, instant, month, period,
    reserve_request, settlement, token_limit, totals,
};

/// A row at a period's start belongs to it, a row at its end to the next one, for sums and
/// for counters alike (whether the counter exists before or after the row).
pub async fn period_boundaries_are_half_open<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let (march, april) = (month(2024, 3), month(2024, 4));
    let now = march.start;
    let rows = [
        entry(&who, 10, dec("1"), march.start),
        entry(&who, 5, dec("0.5"), march.end - Duration::seconds(1)),
        entry(&who, 20, dec("2"), march.end),
    ];
    store.insert_usage_batch(&rows).await.unwrap();

    let in_march = UsageFilter::for_billable(who.clone()).in_period(&march);
    let in_april = UsageFilter::for_billable(who.clone()).in_period(&april);
    assert_eq!(store.sum_usage(&in_march).await.unwrap().total_tokens, 15);
    assert_eq!(store.sum_usage(&in_april).await.unwrap().total_tokens, 20);
    let usage = store.period_usage(&who, &march, now).await.unwrap();
    assert_eq!(usage.recorded, totals(15, "1.5"));
    let usage = store.period_usage(&who, &april, now).await.unwrap();
    assert_eq!(usage.recorded, totals(20, "2"));

    // With both counters in place, new rows land in the right one.
    for p in [march, april] {
        let id = reserved(
            store
                .reserve(&reserve_request(
                    &who,
                    p,
                    Limits::UNLIMITED,
                    UsageTotals::ZERO,
                    now,
                ))
                .await
                .unwrap(),
        );
        assert!(store.release(id).await.unwrap());
    }
    store
        .insert_usage(&entry(&who, 100, dec("10"), march.end))
        .await
        .unwrap();
    store
        .insert_usage(&entry(&who, 1, dec("0.1"), march.start))
        .await
        .unwrap();
    let usage = store.period_usage(&who, &march, now).await.unwrap();
    assert_eq!(usage.recorded, totals(16, "1.6"));
    let usage = store.period_usage(&who, &april, now).await.unwrap();
    assert_eq!(usage.recorded, totals(120, "12"));
}

/// A counter created after rows were stored starts from their sum (its billable's, in its
/// window only).
pub async fn counters_are_seeded_from_existing_rows<S: ConformanceStore>(store: Arc<S>) {
    let (who, other) = (fresh_billable(), fresh_billable());
    let march = month(2024, 3);
    store
        .insert_usage_batch(&[
            entry(&who, 600, dec("6"), hour(1)),
            entry(&who, 300, dec("3"), hour(2)),
            entry(&who, 5_000, dec("50"), hour(-1)),
            entry(&other, 5_000, dec("50"), hour(3)),
        ])
        .await
        .unwrap();
    let now = hour(4);
    let before = store.period_usage(&who, &march, now).await.unwrap();
    assert_eq!(
        before,
        PeriodUsage {
            recorded: totals(900, "9"),
            reserved: UsageTotals::ZERO
        }
    );
    match store
        .reserve(&reserve_request(
            &who,
            march,
            token_limit(1_000),
            totals(101, "0"),
            now,
        ))
        .await
        .unwrap()
    {
        ReserveOutcome::Rejected { exceeded, usage } => {
            assert_eq!(exceeded, LimitKind::Tokens);
            assert_eq!(usage, before, "the new counter counts the stored rows");
        }
        other => panic!("900 + 101 exceeds 1000, got {other:?}"),
    }
    match store
        .reserve(&reserve_request(
            &who,
            march,
            token_limit(1_000),
            totals(100, "1"),
            now,
        ))
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved { usage, .. } => {
            assert_eq!(usage.recorded, totals(900, "9"));
            assert_eq!(usage.reserved, totals(100, "1"));
        }
        other => panic!("900 + 100 fits 1000, got {other:?}"),
    }
}

/// Every insert adds to every existing counter of its billable whose window contains it.
pub async fn inserts_update_every_counter_containing_them<S: ConformanceStore>(store: Arc<S>) {
    let (who, other) = (fresh_billable(), fresh_billable());
    let march = month(2024, 3);
    let first_day = period(hour(0), hour(24));
    let now = hour(0);
    for p in [march, first_day] {
        let request = reserve_request(&who, p, Limits::UNLIMITED, UsageTotals::ZERO, now);
        let id = reserved(store.reserve(&request).await.unwrap());
        assert!(store.release(id).await.unwrap());
    }
    store
        .insert_usage(&entry(&who, 10, dec("0.1"), hour(5)))
        .await
        .unwrap();
    store
        .insert_usage(&entry(&who, 20, dec("0.2"), hour(30)))
        .await
        .unwrap();
    store
        .insert_usage(&entry(&other, 40, dec("0.4"), hour(5)))
        .await
        .unwrap();
    let key = fresh_name("key");
    let keyed = entry(&who, 80, dec("0.8"), hour(6)).with_key(&key);
    store.insert_usage(&keyed).await.unwrap();
    store.insert_usage(&keyed).await.unwrap(); // A retry adds nothing.

    let month_usage = store.period_usage(&who, &march, now).await.unwrap();
    assert_eq!(month_usage.recorded, totals(110, "1.1"));
    let day_usage = store.period_usage(&who, &first_day, now).await.unwrap();
    assert_eq!(day_usage.recorded, totals(90, "0.9"));
}

/// A reservation is made only when recorded + reserved + amount fits every limit; a refusal
/// names the limit (tokens first) and reserves nothing.
pub async fn reserve_fits_or_rejects_naming_the_limit<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let now = hour(1);
    let both = Limits {
        tokens: Some(100),
        cost: Some(dec("1.00")),
    };
    let reserve = |amount: UsageTotals, limits: Limits| {
        let store = store.clone();
        let request = reserve_request(&who, march, limits, amount, now);
        async move { store.reserve(&request).await.unwrap() }
    };

    let ReserveOutcome::Reserved { usage, .. } = reserve(totals(60, "0.30"), both).await else {
        panic!("60 tokens fit 100");
    };
    assert_eq!(
        usage.reserved,
        totals(60, "0.30"),
        "the usage includes the reservation"
    );
    assert_eq!(usage.recorded, UsageTotals::ZERO);

    let ReserveOutcome::Rejected { exceeded, usage } = reserve(totals(41, "0.10"), both).await
    else {
        panic!("60 + 41 tokens exceed 100");
    };
    assert_eq!(exceeded, LimitKind::Tokens);
    assert_eq!(
        usage.reserved,
        totals(60, "0.30"),
        "nothing reserved on refusal"
    );

    let ReserveOutcome::Rejected { exceeded, .. } = reserve(totals(10, "0.71"), both).await else {
        panic!("0.30 + 0.71 exceeds 1.00");
    };
    assert_eq!(exceeded, LimitKind::Cost);
    let ReserveOutcome::Rejected { exceeded, .. } = reserve(totals(50, "0.80"), both).await else {
        panic!("both limits exceeded");
    };
    assert_eq!(exceeded, LimitKind::Tokens, "tokens are checked first");

    let ReserveOutcome::Reserved { usage, .. } = reserve(totals(40, "0.70"), both).await else {
        panic!("landing exactly on both limits is allowed");
    };
    assert_eq!(usage.committed(), totals(100, "1.00"));

    let ReserveOutcome::Rejected { exceeded, .. } = reserve(totals(0, "0"), both).await else {
        panic!("nothing is left, even for an empty request");
    };
    assert_eq!(exceeded, LimitKind::Tokens);

    let ReserveOutcome::Reserved { usage, .. } =
        reserve(totals(1_000, "5"), Limits::UNLIMITED).await
    else {
        panic!("no limits: always reserved");
    };
    assert_eq!(usage.reserved, totals(1_100, "6.00"), "and it still counts");
    let ReserveOutcome::Rejected { exceeded, .. } = reserve(totals(0, "0"), cost_limit("6")).await
    else {
        panic!("the cost limit is reached");
    };
    assert_eq!(exceeded, LimitKind::Cost);
}

/// Recorded rows count against limits like reservations do.
pub async fn recorded_usage_counts_against_limits<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    store
        .insert_usage(&entry(&who, 90, dec("0.9"), hour(1)))
        .await
        .unwrap();
    let limits = token_limit(100);
    let over = reserve_request(&who, march, limits, totals(11, "0"), hour(2));
    assert!(matches!(
        store.reserve(&over).await.unwrap(),
        ReserveOutcome::Rejected {
            exceeded: LimitKind::Tokens,
            ..
        }
    ));
    let fits = reserve_request(&who, march, limits, totals(10, "0"), hour(2));
    reserved(store.reserve(&fits).await.unwrap());
    // Rows recorded after the counter exists count too.
    let who2 = fresh_billable();
    let first = reserve_request(&who2, march, limits, totals(10, "0"), hour(2));
    let id = reserved(store.reserve(&first).await.unwrap());
    assert!(store.release(id).await.unwrap());
    store
        .insert_usage(&entry(&who2, 95, dec("0"), hour(3)))
        .await
        .unwrap();
    let again = reserve_request(&who2, march, limits, totals(10, "0"), hour(4));
    assert!(matches!(
        store.reserve(&again).await.unwrap(),
        ReserveOutcome::Rejected { .. }
    ));
}

/// Reservations expired by `now` (expiry at or before it) count neither in the period's usage
/// nor against limits.
pub async fn expired_reservations_do_not_count<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let limits = token_limit(100);
    let first = reserve_request(&who, march, limits, totals(80, "0.8"), hour(0));
    assert_eq!(first.expires_at, hour(1));
    reserved(store.reserve(&first).await.unwrap());

    let just_before = hour(1) - Duration::seconds(1);
    let usage = store.period_usage(&who, &march, just_before).await.unwrap();
    assert_eq!(usage.reserved, totals(80, "0.8"));
    let blocked = reserve_request(&who, march, limits, totals(80, "0"), just_before);
    assert!(matches!(
        store.reserve(&blocked).await.unwrap(),
        ReserveOutcome::Rejected { .. }
    ));

    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(
        usage.reserved,
        UsageTotals::ZERO,
        "expired at `now` exactly"
    );
    let after = reserve_request(&who, march, limits, totals(80, "0"), hour(1));
    let ReserveOutcome::Reserved { usage, .. } = store.reserve(&after).await.unwrap() else {
        panic!("the expired reservation no longer counts");
    };
    assert_eq!(usage.reserved, totals(80, "0"));
}

/// `expire_reservations` drops exactly the reservations expired by `now` and says how many.
pub async fn expire_reservations_returns_the_count<S: ConformanceStore>(store: Arc<S>) {
    // Instants long before any other case's, so that the global sweep sees only ours.
    let t = |m: u32| instant(1989, m, 1, 0, 0, 0);
    store.expire_reservations(t(12)).await.unwrap(); // leftovers of interrupted runs
    let (who, other) = (fresh_billable(), fresh_billable());
    let p = month(1989, 1);
    let mut ids = Vec::new();
    for (b, expires) in [(&who, t(6)), (&who, t(7)), (&other, t(6))] {
        let mut request = reserve_request(b, p, token_limit(1_000), totals(10, "0"), t(1));
        request.expires_at = expires;
        ids.push(reserved(store.reserve(&request).await.unwrap()));
    }
    assert_eq!(store.expire_reservations(t(5)).await.unwrap(), 0);
    assert_eq!(
        store.expire_reservations(t(6)).await.unwrap(),
        2,
        "expiry at `now` included"
    );
    assert!(!store.release(ids[0]).await.unwrap(), "dropped");
    assert!(!store.release(ids[2]).await.unwrap(), "dropped");
    let usage = store.period_usage(&who, &p, t(1)).await.unwrap();
    assert_eq!(usage.reserved, totals(10, "0"), "the later one remains");
    assert_eq!(store.expire_reservations(t(7)).await.unwrap(), 1);
    assert_eq!(store.expire_reservations(t(12)).await.unwrap(), 0);
    let usage = store.period_usage(&who, &p, t(1)).await.unwrap();
    assert_eq!(usage.reserved, UsageTotals::ZERO);
}

/// Settling drops the reservation and records the actual usage, which may differ from the
/// estimate.
pub async fn settle_records_the_row_and_replaces_the_reservation<S: ConformanceStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let request = reserve_request(&who, march, token_limit(100), totals(50, "0.5"), hour(1));
    let id = reserved(store.reserve(&request).await.unwrap());
    let actual = entry(&who, 30, dec("0.3"), hour(1));
    let recorded = store
        .settle(&settlement(id, &actual))
        .await
        .unwrap()
        .recorded;
    assert!(recorded.created);
    assert_eq!(recorded.record.entry, actual);
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(
        usage,
        PeriodUsage {
            recorded: totals(30, "0.3"),
            reserved: UsageTotals::ZERO
        }
    );
    let rows = store
        .query_usage(&UsageFilter::for_billable(who.clone()), Page::default())
        .await
        .unwrap();
    assert_eq!(rows, vec![recorded.record]);
    assert!(
        !store.release(id).await.unwrap(),
        "settled reservations are gone"
    );
    // 70 tokens are left.
    let rest = reserve_request(&who, march, token_limit(100), totals(70, "0"), hour(1));
    reserved(store.reserve(&rest).await.unwrap());
}

/// Settling with a used idempotency key records nothing new but still drops the reservation.
pub async fn settle_is_idempotent<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let key = fresh_name("key");
    let actual = entry(&who, 40, dec("0.4"), hour(1)).with_key(&key);
    let mut results = Vec::new();
    for _ in 0..2 {
        let request = reserve_request(&who, march, token_limit(100), totals(40, "0"), hour(1));
        let id = reserved(store.reserve(&request).await.unwrap());
        results.push(
            store
                .settle(&settlement(id, &actual))
                .await
                .unwrap()
                .recorded,
        );
    }
    assert!(results[0].created && !results[1].created);
    assert_eq!(results[0].record, results[1].record);
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(usage.recorded, totals(40, "0.4"), "charged once");
    assert_eq!(
        usage.reserved,
        UsageTotals::ZERO,
        "both reservations dropped"
    );
}

/// A released or expired reservation does not stop its usage from being recorded.
pub async fn settle_after_release_or_expiry_still_records<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let request = reserve_request(&who, march, token_limit(100), totals(20, "0"), hour(1));
    let released = reserved(store.reserve(&request).await.unwrap());
    assert!(store.release(released).await.unwrap());
    let r = store
        .settle(&settlement(released, &entry(&who, 20, dec("0.2"), hour(1))))
        .await
        .unwrap()
        .recorded;
    assert!(r.created);

    let expired = reserved(store.reserve(&request).await.unwrap());
    // A later reservation, two hours on, drops the expired one from the counter.
    let later = reserve_request(&who, march, token_limit(100), totals(5, "0"), hour(3));
    let later_id = reserved(store.reserve(&later).await.unwrap());
    let r = store
        .settle(&settlement(expired, &entry(&who, 30, dec("0.3"), hour(2))))
        .await
        .unwrap()
        .recorded;
    assert!(r.created);

    let usage = store.period_usage(&who, &march, hour(3)).await.unwrap();
    assert_eq!(usage.recorded, totals(50, "0.5"));
    assert_eq!(usage.reserved, totals(5, "0"), "only the later reservation");
    assert!(store.release(later_id).await.unwrap());
}

/// `release` is true for the one call that dropped the reservation.
pub async fn release_is_true_once<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let request = reserve_request(&who, march, token_limit(100), totals(60, "0"), hour(1));
    let id = reserved(store.reserve(&request).await.unwrap());
    assert!(store.release(id).await.unwrap());
    assert!(!store.release(id).await.unwrap());
    assert!(!store.release(ReservationId(i64::MAX)).await.unwrap());
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(usage.reserved, UsageTotals::ZERO);
    // The released amount is available again.
    reserved(store.reserve(&request).await.unwrap());
}

/// A threshold is claimed once per billable and period, even by 20 concurrent callers.
pub async fn claim_threshold_once_under_concurrency<S: ConformanceStore>(store: Arc<S>) {
    const TASKS: usize = 20;
    let who = fresh_billable();
    let march = month(2024, 3);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, barrier, who) = (store.clone(), barrier.clone(), who.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store
                .claim_threshold(&who, &march, dec("80"))
                .await
                .unwrap()
        });
    }
    let winners = tasks.join_all().await.into_iter().filter(|w| *w).count();
    assert_eq!(winners, 1);
    assert!(
        !store
            .claim_threshold(&who, &march, dec("80.00"))
            .await
            .unwrap(),
        "80.00 is the same threshold as 80"
    );
    assert!(
        store
            .claim_threshold(&who, &march, dec("90"))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_threshold(&who, &month(2024, 4), dec("80"))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_threshold(&fresh_billable(), &march, dec("80"))
            .await
            .unwrap()
    );
}
