//! Credit wallets, holds and the ledger.

use crate::ConformanceStore;
use std::collections::BTreeSet;
use std::sync::Arc;

use ai_metering_core::store::{
    CreditOutcome, CreditTransaction, Direction, HoldId, Overdraft, Page, StoreErrorKind,
};
use ai_metering_core::{Billable, Currency};
use chrono::Duration;
use rust_decimal::Decimal;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::done;
use crate::builders::{dec, eur, fresh_billable, hour, usd};

/// The whole USD ledger of `who`, newest first, read page by page.
async fn ledger<S: ConformanceStore>(store: &S, who: &Billable) -> Vec<CreditTransaction> {
    let mut all = Vec::new();
    for n in 0.. {
        let page = store
            .credit_transactions(who, Currency::USD, Page::number(n, 7))
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
    all
}

async fn balance<S: ConformanceStore>(store: &S, who: &Billable) -> (Decimal, Decimal) {
    let w = store.wallet(who, Currency::USD).await.unwrap();
    (w.balance, w.held)
}

/// The available balance reported by a refused credit operation.
fn refused_with<T: std::fmt::Debug>(outcome: CreditOutcome<T>) -> Decimal {
    match outcome {
        CreditOutcome::Insufficient { available } => available,
        CreditOutcome::Done(value) => panic!("expected a refusal, got {value:?}"),
    }
}

/// A top-up's metadata (a payment id) is stored with its ledger entry and read back.
pub async fn top_ups_keep_their_metadata<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let mut metadata = serde_json::Map::new();
    metadata.insert("payment_id".into(), serde_json::json!("pi_123"));
    let tx = store
        .add_credits_with_metadata(&who, usd("10"), "top-up", &metadata, hour(1))
        .await
        .unwrap();
    assert_eq!(tx.metadata, metadata);
    let plain = store
        .add_credits(&who, usd("1"), "top-up", hour(2))
        .await
        .unwrap();
    assert!(plain.metadata.is_empty());
    let ledger = store
        .credit_transactions(&who, Currency::USD, Page::first(10))
        .await
        .unwrap();
    let stored = ledger.iter().find(|t| t.id == tx.id).unwrap();
    assert_eq!(stored.metadata, metadata, "kept in the ledger");
}

/// Every ledger entry records the balance right after it.
pub async fn credits_chain_balance_after<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    assert_eq!(
        balance(&*store, &who).await,
        (Decimal::ZERO, Decimal::ZERO),
        "no wallet yet"
    );
    let d = Overdraft::Disallowed;
    let t1 = store
        .add_credits(&who, usd("10"), "top-up", hour(1))
        .await
        .unwrap();
    assert_eq!(
        (
            t1.direction,
            t1.amount,
            t1.balance_after,
            t1.reason.as_str()
        ),
        (Direction::Credit, usd("10"), dec("10"), "top-up")
    );
    assert_eq!((&t1.billable, t1.created_at), (&who, hour(1)));
    let t2 = done(
        store
            .deduct_credits(&who, usd("3.25"), "usage", d, hour(2))
            .await
            .unwrap(),
    );
    assert_eq!(
        (t2.direction, t2.amount, t2.balance_after),
        (Direction::Debit, usd("3.25"), dec("6.75"))
    );
    let t3 = store
        .add_credits(&who, usd("0.000000001"), "refund", hour(3))
        .await
        .unwrap();
    assert_eq!(t3.balance_after, dec("6.750000001"));
    let t4 = done(
        store
            .deduct_credits(&who, usd("6.750000001"), "usage", d, hour(4))
            .await
            .unwrap(),
    );
    assert_eq!(
        t4.balance_after,
        Decimal::ZERO,
        "spending exactly everything is allowed"
    );
    assert_eq!(balance(&*store, &who).await, (Decimal::ZERO, Decimal::ZERO));
    assert_eq!(
        ledger(&*store, &who).await,
        vec![t4, t3, t2, t1],
        "newest first"
    );
}

/// A deduction the wallet cannot cover is refused and changes nothing.
pub async fn insufficient_credits_change_nothing<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let d = Overdraft::Disallowed;
    assert_eq!(
        store
            .deduct_credits(&who, usd("1"), "usage", d, hour(1))
            .await
            .unwrap(),
        CreditOutcome::Insufficient {
            available: Decimal::ZERO
        },
        "a missing wallet has nothing"
    );
    store
        .add_credits(&who, usd("5"), "top-up", hour(1))
        .await
        .unwrap();
    assert_eq!(
        store
            .deduct_credits(&who, usd("5.01"), "usage", d, hour(2))
            .await
            .unwrap(),
        CreditOutcome::Insufficient {
            available: dec("5")
        }
    );
    assert_eq!(balance(&*store, &who).await, (dec("5"), Decimal::ZERO));
    assert_eq!(
        ledger(&*store, &who).await.len(),
        1,
        "no ledger entry for a refusal"
    );
}

/// An overdraft floor lets the available balance go down to it and no further; unlimited
/// overdraft has no floor.
pub async fn overdraft_floor_and_unlimited<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let floor = Overdraft::Floor(dec("-5"));
    store
        .add_credits(&who, usd("5"), "top-up", hour(1))
        .await
        .unwrap();
    let t = done(
        store
            .deduct_credits(&who, usd("8"), "usage", floor, hour(2))
            .await
            .unwrap(),
    );
    assert_eq!(t.balance_after, dec("-3"));
    assert_eq!(
        store
            .deduct_credits(&who, usd("2.01"), "usage", floor, hour(3))
            .await
            .unwrap(),
        CreditOutcome::Insufficient {
            available: dec("-3")
        }
    );
    let t = done(
        store
            .deduct_credits(&who, usd("2"), "usage", floor, hour(4))
            .await
            .unwrap(),
    );
    assert_eq!(t.balance_after, dec("-5"), "down to the floor exactly");
    assert!(matches!(
        store
            .deduct_credits(&who, usd("1"), "usage", Overdraft::Disallowed, hour(5))
            .await
            .unwrap(),
        CreditOutcome::Insufficient { .. }
    ));
    let t = done(
        store
            .deduct_credits(&who, usd("1000"), "usage", Overdraft::Unlimited, hour(6))
            .await
            .unwrap(),
    );
    assert_eq!(t.balance_after, dec("-1005"));
    assert_eq!(balance(&*store, &who).await.0, dec("-1005"));
}

/// Holds reduce the available balance; settling debits the actual amount, releasing frees it.
pub async fn holds_reduce_the_available_balance<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let d = Overdraft::Disallowed;
    let expires = hour(1) + Duration::minutes(5);
    store
        .add_credits(&who, usd("10"), "top-up", hour(1))
        .await
        .unwrap();
    let hold = done(
        store
            .hold_credits(&who, usd("6"), d, expires)
            .await
            .unwrap(),
    );
    let w = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!(
        (w.balance, w.held, w.available()),
        (dec("10"), dec("6"), dec("4"))
    );

    let refused = store
        .deduct_credits(&who, usd("5"), "usage", d, hour(1))
        .await
        .unwrap();
    assert_eq!(refused_with(refused), dec("4"));
    let refused = store
        .hold_credits(&who, usd("5"), d, expires)
        .await
        .unwrap();
    assert_eq!(refused_with(refused), dec("4"));

    let tx = store
        .settle_hold(hold, usd("5.5"), "usage", hour(2))
        .await
        .unwrap();
    assert_eq!(
        (tx.direction, tx.amount, tx.balance_after),
        (Direction::Debit, usd("5.5"), dec("4.5")),
        "the actual amount is debited"
    );
    assert_eq!(balance(&*store, &who).await, (dec("4.5"), Decimal::ZERO));
    assert!(
        !store.release_hold(hold).await.unwrap(),
        "a settled hold is gone"
    );

    let small = done(
        store
            .hold_credits(&who, usd("3"), d, expires)
            .await
            .unwrap(),
    );
    assert_eq!(balance(&*store, &who).await, (dec("4.5"), dec("3")));
    assert!(store.release_hold(small).await.unwrap());
    assert!(!store.release_hold(small).await.unwrap());
    assert_eq!(balance(&*store, &who).await, (dec("4.5"), Decimal::ZERO));
    let err = store
        .settle_hold(small, usd("1"), "usage", hour(3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");

    // The money was spent: a settlement above the hold still goes through.
    let last = done(
        store
            .hold_credits(&who, usd("1"), d, expires)
            .await
            .unwrap(),
    );
    let tx = store
        .settle_hold(last, usd("6"), "usage", hour(4))
        .await
        .unwrap();
    assert_eq!(tx.balance_after, dec("-1.5"));
    assert_eq!(ledger(&*store, &who).await.len(), 3);
}

/// The ledger adds up: credits minus debits equal the balance, and each entry's
/// `balance_after` is the running total.
pub async fn ledger_sums_to_the_balance<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let d = Overdraft::Disallowed;
    let mut at = (0..).map(hour);
    let mut next = || at.next().unwrap();
    for amount in ["10", "0.5", "3.333333333"] {
        store
            .add_credits(&who, usd(amount), "top-up", next())
            .await
            .unwrap();
    }
    for amount in ["1", "2.25", "100"] {
        store
            .deduct_credits(&who, usd(amount), "usage", d, next())
            .await
            .unwrap();
    }
    let hold = done(store.hold_credits(&who, usd("4"), d, next()).await.unwrap());
    store
        .settle_hold(hold, usd("3.9"), "usage", next())
        .await
        .unwrap();
    let hold = done(store.hold_credits(&who, usd("1"), d, next()).await.unwrap());
    store.release_hold(hold).await.unwrap();
    store
        .add_credits(&who, usd("1"), "top-up", next())
        .await
        .unwrap();

    let entries = ledger(&*store, &who).await;
    assert_eq!(
        entries.len(),
        7,
        "three credits, two debits (one refused), one settlement, one credit"
    );
    let unique: BTreeSet<i64> = entries.iter().map(|t| t.id).collect();
    assert_eq!(unique.len(), entries.len(), "pages do not overlap");
    let mut running = Decimal::ZERO;
    for t in entries.iter().rev() {
        assert!(t.amount.amount > Decimal::ZERO, "amounts are positive");
        match t.direction {
            Direction::Credit => running += t.amount.amount,
            Direction::Debit => running -= t.amount.amount,
        }
        assert_eq!(t.balance_after, running, "entry {}", t.id);
    }
    assert_eq!(running, dec("7.683333333"));
    assert_eq!(balance(&*store, &who).await, (running, Decimal::ZERO));
}

/// Wallets are per currency; amounts must be positive.
pub async fn wallets_are_per_currency_and_amounts_positive<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let d = Overdraft::Disallowed;
    store
        .add_credits(&who, usd("5"), "top-up", hour(1))
        .await
        .unwrap();
    store
        .add_credits(&who, eur("7"), "top-up", hour(1))
        .await
        .unwrap();
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().balance,
        dec("5")
    );
    let euros = store.wallet(&who, Currency::EUR).await.unwrap();
    assert_eq!((euros.balance, euros.currency), (dec("7"), Currency::EUR));
    let t = done(
        store
            .deduct_credits(&who, eur("6"), "usage", d, hour(2))
            .await
            .unwrap(),
    );
    assert_eq!(
        (t.amount, t.balance_after),
        (eur("6"), dec("1")),
        "debited in EUR"
    );
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().balance,
        dec("5")
    );
    let eur_ledger = store
        .credit_transactions(&who, Currency::EUR, Page::first(10))
        .await
        .unwrap();
    assert_eq!(eur_ledger.len(), 2);
    assert!(
        eur_ledger
            .iter()
            .all(|t| t.amount.currency == Currency::EUR)
    );

    for bad in ["0", "-1"] {
        let err = store
            .add_credits(&who, usd(bad), "top-up", hour(3))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid, "add {bad}: {err}");
        let err = store
            .deduct_credits(&who, usd(bad), "usage", d, hour(3))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid, "deduct {bad}: {err}");
        let err = store
            .hold_credits(&who, usd(bad), d, hour(3))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid, "hold {bad}: {err}");
    }
    assert_eq!(balance(&*store, &who).await, (dec("5"), Decimal::ZERO));
    let err = store
        .settle_hold(HoldId(i64::MAX), usd("1"), "usage", hour(3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
}

/// 100 concurrent deductions of $1 from $60: exactly 60 succeed, each leaving a distinct
/// balance, and the balance never goes below zero.
pub async fn concurrent_deductions_never_overspend<S: ConformanceStore>(store: Arc<S>) {
    const TASKS: usize = 100;
    let who = fresh_billable();
    store
        .add_credits(&who, usd("60"), "top-up", hour(0))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, barrier, who) = (store.clone(), barrier.clone(), who.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store
                .deduct_credits(&who, usd("1"), "usage", Overdraft::Disallowed, hour(1))
                .await
                .unwrap()
        });
    }
    let mut balances = BTreeSet::new();
    let mut refused = 0;
    for outcome in tasks.join_all().await {
        match outcome {
            CreditOutcome::Done(t) => {
                assert!(t.balance_after >= Decimal::ZERO, "went negative: {t:?}");
                assert!(
                    balances.insert(t.balance_after),
                    "balance {} twice",
                    t.balance_after
                );
            }
            CreditOutcome::Insufficient { available } => {
                assert!(available < dec("1"));
                refused += 1;
            }
        }
    }
    assert_eq!(balances.len(), 60);
    assert_eq!(refused, 40);
    let want: BTreeSet<Decimal> = (0..60).map(Decimal::from).collect();
    assert_eq!(balances, want, "every debit saw the previous one");
    assert_eq!(balance(&*store, &who).await, (Decimal::ZERO, Decimal::ZERO));
    assert_eq!(ledger(&*store, &who).await.len(), 61);
}

/// 50 concurrent holds of $1 against $30: exactly 30 succeed; releasing them frees it all.
pub async fn concurrent_holds_never_overspend<S: ConformanceStore>(store: Arc<S>) {
    const TASKS: usize = 50;
    let who = fresh_billable();
    store
        .add_credits(&who, usd("30"), "top-up", hour(0))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, barrier, who) = (store.clone(), barrier.clone(), who.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store
                .hold_credits(&who, usd("1"), Overdraft::Disallowed, hour(1))
                .await
                .unwrap()
        });
    }
    let holds: Vec<HoldId> = tasks
        .join_all()
        .await
        .into_iter()
        .filter_map(|o| match o {
            CreditOutcome::Done(h) => Some(h),
            CreditOutcome::Insufficient { .. } => None,
        })
        .collect();
    assert_eq!(holds.len(), 30);
    assert_eq!(balance(&*store, &who).await, (dec("30"), dec("30")));
    for h in holds {
        assert!(store.release_hold(h).await.unwrap());
    }
    assert_eq!(balance(&*store, &who).await, (dec("30"), Decimal::ZERO));
}

/// `expire_credit_holds` drops only holds expired by `now`, and gives their amount back.
///
/// The sweep is global, so the holds here expire in 1988, before any other case's, to
/// leave the other cases' holds alone on a shared database.
pub async fn expired_holds_give_their_amount_back<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let d = Overdraft::Disallowed;
    let early = crate::builders::instant(1988, 3, 1, 0, 0, 0);
    store
        .add_credits(&who, usd("10"), "top-up", early)
        .await
        .unwrap();
    let stale = done(
        store
            .hold_credits(&who, usd("6"), d, early + Duration::minutes(10))
            .await
            .unwrap(),
    );
    let live = done(
        store
            .hold_credits(&who, usd("3"), d, early + Duration::days(3650))
            .await
            .unwrap(),
    );
    let now = early + Duration::minutes(10);
    assert!(store.expire_credit_holds(now).await.unwrap() >= 1);
    assert_eq!(balance(&*store, &who).await, (dec("10"), dec("3")));
    assert!(
        !store.release_hold(stale).await.unwrap(),
        "the stale hold is gone"
    );
    assert!(
        store.release_hold(live).await.unwrap(),
        "the live hold stays"
    );
}
