//! Credit grants: stored with their wallet, burned in priority and expiry order by debits,
//! holds and captures, uncounted once expired, rolled over, and never overspent under
//! concurrency.

use crate::ConformanceStore;
use std::collections::BTreeMap;
use std::sync::Arc;

use ai_metering_core::Billable;
use ai_metering_core::Currency;
use ai_metering_core::grants::{GrantId, GrantTake, Rollover};
use ai_metering_core::limit::Limits;
use ai_metering_core::reconcile::{CheckOptions, check_snapshot};
use ai_metering_core::store::{
    AuditStore, CreditOutcome, CreditTransaction, Direction, HoldRequest, NewGrant, Overdraft,
    Page, ROLLOVER_REASON, ReserveOutcome, StoreErrorKind, WalletGrant,
};
use rust_decimal::Decimal;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::{done, reserved};
use crate::builders::{
    EntryExt, dec, entry, fresh_billable, hour, month, reserve_request, settlement, totals, usd,
};

/// Adds a USD grant of `amount` to `who`, usable from hour 0; returns its id.
async fn grant<S: ConformanceStore>(store: &S, who: &Billable, spec: NewGrant) -> GrantId {
    let (stored, _) = store.add_grant(who, &spec, "grant", hour(0)).await.unwrap();
    stored.grant.id
}

fn spec(amount: &str) -> NewGrant {
    NewGrant::new(usd(amount), hour(0))
}

/// The wallet's grants by id.
async fn grants_of<S: ConformanceStore>(
    store: &S,
    who: &Billable,
) -> BTreeMap<GrantId, WalletGrant> {
    store
        .grants(who, Currency::USD)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.grant.id, g))
        .collect()
}

/// (remaining, held) of one grant.
async fn left<S: ConformanceStore>(store: &S, who: &Billable, id: GrantId) -> (Decimal, Decimal) {
    let grants = grants_of(store, who).await;
    let g = &grants[&id].grant;
    (g.remaining.normalize(), g.held.normalize())
}

fn takes(pairs: &[(GrantId, &str)]) -> Vec<GrantTake> {
    pairs
        .iter()
        .map(|(grant, amount)| GrantTake {
            grant: *grant,
            amount: dec(amount),
        })
        .collect()
}

fn normalized(takes: &[GrantTake]) -> Vec<GrantTake> {
    takes
        .iter()
        .map(|t| GrantTake {
            grant: t.grant,
            amount: t.amount.normalize(),
        })
        .collect()
}

/// Checks that the grants of `who` reconcile with its ledger and holds (and everything else
/// [`check_snapshot`] checks).
async fn reconciles<S: ConformanceStore + AuditStore>(store: &S, who: &Billable) {
    let snapshot = store.audit_snapshot(who).await.unwrap();
    assert!(!snapshot.grants.is_empty());
    let findings = check_snapshot(who, &snapshot, &CheckOptions::at(hour(1)));
    assert_eq!(findings, vec![], "{snapshot:#?}");
}

/// Every USD ledger entry of `who`, newest first.
async fn ledger<S: ConformanceStore>(store: &S, who: &Billable) -> Vec<CreditTransaction> {
    store
        .credit_transactions(who, Currency::USD, Page::first(Page::MAX_LIMIT))
        .await
        .unwrap()
}

/// A grant is stored with its amount, priority, expiry and rollover rule; the wallet lists
/// its grants in burn-down order, and the grant's credit names it in the ledger.
pub async fn grants_are_stored_and_listed_in_burn_order<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let rule = Rollover {
        min: dec("0"),
        max: dec("1.5"),
    };
    let late = grant(&*store, &who, spec("5").with_priority(1)).await;
    let (stored, credit) = store
        .add_grant(
            &who,
            &spec("3")
                .expiring_at(hour(48))
                .with_rollover(rule)
                .with_priority(0),
            "promo",
            hour(0),
        )
        .await
        .unwrap();
    let soon = grant(&*store, &who, spec("2").expiring_at(hour(24))).await;
    store
        .add_credits(&who, usd("10"), "top-up", hour(0))
        .await
        .unwrap();

    let g = &stored.grant;
    assert_eq!(
        (g.amount, g.remaining, g.held),
        (dec("3"), dec("3"), Decimal::ZERO)
    );
    assert_eq!((g.priority, g.expires_at), (0, Some(hour(48))));
    assert_eq!(g.rollover, Some(rule));
    assert_eq!(credit.direction, Direction::Credit);
    assert_eq!(credit.reason, "promo");
    assert_eq!(normalized(&credit.grants), takes(&[(g.id, "3")]));

    let listed: Vec<GrantId> = store
        .grants(&who, Currency::USD)
        .await
        .unwrap()
        .iter()
        .map(|w| w.grant.id)
        .collect();
    assert_eq!(listed, vec![soon, g.id, late]);
    let wallet = store.wallet_at(&who, Currency::USD, hour(1)).await.unwrap();
    assert_eq!(wallet.balance, dec("20"));
    assert_eq!(wallet.available(), dec("20"));
    // The stored ledger says the same.
    let entries = ledger(&*store, &who).await;
    assert_eq!(entries.len(), 4);
    assert!(
        entries
            .iter()
            .any(|e| e.grants.iter().any(|t| t.grant == late))
    );
    assert!(
        store
            .grants(&fresh_billable(), Currency::USD)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A grant must be positive, expire after it starts, and have a rollover rule within its
/// amount; a refused grant stores nothing.
pub async fn grants_are_validated<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let bad = [
        spec("0"),
        spec("-1"),
        spec("1").expiring_at(hour(0)),
        spec("1").with_rollover(Rollover {
            min: dec("0"),
            max: dec("2"),
        }),
    ];
    for g in bad {
        let err = store
            .add_grant(&who, &g, "grant", hour(0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid, "{g:?}");
    }
    assert!(store.grants(&who, Currency::USD).await.unwrap().is_empty());
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().balance,
        Decimal::ZERO
    );
}

/// Debits burn the grants by priority, then soonest expiry, then the ungranted balance; each
/// ledger entry says which grant paid how much.
pub async fn debits_burn_grants_in_priority_and_expiry_order<S: ConformanceStore + AuditStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let last = grant(&*store, &who, spec("5").with_priority(1)).await;
    let second = grant(&*store, &who, spec("3").expiring_at(hour(48))).await;
    let first = grant(&*store, &who, spec("2").expiring_at(hour(24))).await;
    store
        .add_credits(&who, usd("10"), "top-up", hour(0))
        .await
        .unwrap();
    let d = Overdraft::Disallowed;

    let tx = done(
        store
            .deduct_credits(&who, usd("6"), "usage", d, hour(1))
            .await
            .unwrap(),
    );
    assert_eq!(
        normalized(&tx.grants),
        takes(&[(first, "2"), (second, "3"), (last, "1")])
    );
    assert_eq!(tx.balance_after, dec("14"));
    let tx = done(
        store
            .deduct_credits(&who, usd("10"), "usage", d, hour(1))
            .await
            .unwrap(),
    );
    // 4 from the last grant, 6 from the ungranted balance.
    assert_eq!(normalized(&tx.grants), takes(&[(last, "4")]));
    assert_eq!(tx.balance_after, dec("4"));
    for id in [first, second, last] {
        assert_eq!(
            left(&*store, &who, id).await,
            (Decimal::ZERO, Decimal::ZERO)
        );
    }
    let tx = done(
        store
            .deduct_credits(&who, usd("4"), "usage", d, hour(1))
            .await
            .unwrap(),
    );
    assert!(tx.grants.is_empty(), "{tx:?}");
    let stored = ledger(&*store, &who).await;
    assert_eq!(normalized(&stored[1].grants), takes(&[(last, "4")]));
    reconciles(&*store, &who).await;
}

/// A grant that expired, or is not effective yet, does not count: the available balance
/// leaves it out at the instant asked, holds and debits cannot take it, and no job is needed.
pub async fn expired_grants_stop_counting<S: ConformanceStore + AuditStore>(store: Arc<S>) {
    let who = fresh_billable();
    let promo = grant(&*store, &who, spec("5").expiring_at(hour(10))).await;
    let future = store
        .add_grant(
            &who,
            &NewGrant::new(usd("4"), hour(20)),
            "next month",
            hour(0),
        )
        .await
        .unwrap()
        .0
        .grant
        .id;
    store
        .add_credits(&who, usd("1"), "top-up", hour(0))
        .await
        .unwrap();
    let at = |h| store.wallet_at(&who, Currency::USD, hour(h));

    let before = at(9).await.unwrap();
    assert_eq!((before.balance, before.unusable), (dec("10"), dec("4")));
    assert_eq!(before.available(), dec("6"));
    let after = at(10).await.unwrap();
    assert_eq!((after.balance, after.available()), (dec("10"), dec("1")));
    assert_eq!(at(20).await.unwrap().available(), dec("5"));

    let d = Overdraft::Disallowed;
    let refused = store
        .hold_credits_at(&who, usd("2"), d, hour(10), hour(11))
        .await
        .unwrap();
    assert_eq!(
        refused,
        CreditOutcome::Insufficient {
            available: dec("1")
        }
    );
    assert!(matches!(
        store
            .deduct_credits(&who, usd("2"), "usage", d, hour(11))
            .await
            .unwrap(),
        CreditOutcome::Insufficient { .. }
    ));
    let tx = done(
        store
            .deduct_credits(&who, usd("1"), "usage", d, hour(11))
            .await
            .unwrap(),
    );
    assert!(tx.grants.is_empty(), "the expired grant paid: {tx:?}");
    assert_eq!(left(&*store, &who, promo).await, (dec("5"), Decimal::ZERO));
    // Once effective, the future grant pays.
    let tx = done(
        store
            .deduct_credits(&who, usd("3"), "usage", d, hour(21))
            .await
            .unwrap(),
    );
    assert_eq!(normalized(&tx.grants), takes(&[(future, "3")]));
    reconciles(&*store, &who).await;
}

/// A hold takes from the grants in burn-down order and keeps them; its capture spends what
/// it took (even from a grant that expired meanwhile) and names the grants; a release gives
/// them back.
pub async fn holds_draw_from_grants_and_captures_name_them<S: ConformanceStore + AuditStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let a = grant(&*store, &who, spec("3").expiring_at(hour(5))).await;
    let b = grant(&*store, &who, spec("4").with_priority(1)).await;
    store
        .add_credits(&who, usd("2"), "top-up", hour(0))
        .await
        .unwrap();
    let d = Overdraft::Disallowed;

    let hold = done(
        store
            .hold_credits_at(&who, usd("5"), d, hour(1), hour(8))
            .await
            .unwrap(),
    );
    assert_eq!(left(&*store, &who, a).await, (dec("3"), dec("3")));
    assert_eq!(left(&*store, &who, b).await, (dec("4"), dec("2")));
    let wallet = store.wallet_at(&who, Currency::USD, hour(6)).await.unwrap();
    // Grant a expired at hour 5, but all of it is held: nothing more is lost.
    assert_eq!(
        (wallet.held, wallet.unusable, wallet.available()),
        (dec("5"), Decimal::ZERO, dec("4"))
    );

    let tx = store
        .settle_hold(hold, usd("4"), "usage", hour(6))
        .await
        .unwrap();
    assert_eq!(normalized(&tx.grants), takes(&[(a, "3"), (b, "1")]));
    assert_eq!(tx.balance_after, dec("5"));
    assert_eq!(left(&*store, &who, a).await, (Decimal::ZERO, Decimal::ZERO));
    assert_eq!(left(&*store, &who, b).await, (dec("3"), Decimal::ZERO));

    let hold = done(
        store
            .hold_credits_at(&who, usd("2"), d, hour(6), hour(8))
            .await
            .unwrap(),
    );
    assert_eq!(left(&*store, &who, b).await, (dec("3"), dec("2")));
    assert!(store.release_hold(hold).await.unwrap());
    assert_eq!(left(&*store, &who, b).await, (dec("3"), Decimal::ZERO));
    let wallet = store.wallet_at(&who, Currency::USD, hour(6)).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("5"), Decimal::ZERO));

    // A capture beyond the hold takes the rest in burn-down order, then the ungranted part.
    let hold = done(
        store
            .hold_credits_at(&who, usd("1"), d, hour(6), hour(8))
            .await
            .unwrap(),
    );
    let tx = store
        .settle_hold(hold, usd("4.5"), "usage", hour(6))
        .await
        .unwrap();
    assert_eq!(normalized(&tx.grants), takes(&[(b, "3")]));
    assert_eq!(tx.balance_after, dec("0.5"));
    reconciles(&*store, &who).await;
}

/// A reservation's hold draws from the grants in the same step, its settlement captures them
/// (a cost beyond the hold burns on), and a release gives them back.
pub async fn reservations_hold_and_settle_through_grants<S: ConformanceStore + AuditStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let g = grant(&*store, &who, spec("3")).await;
    let promo = grant(&*store, &who, spec("1").expiring_at(hour(1))).await;
    store
        .add_credits(&who, usd("10"), "top-up", hour(0))
        .await
        .unwrap();
    let march = month(2024, 3);
    let request = |amount: &str| {
        let mut r = reserve_request(&who, march, Limits::UNLIMITED, totals(10, amount), hour(1));
        r.hold = Some(HoldRequest {
            amount: usd(amount),
            overdraft: Overdraft::Disallowed,
        });
        r
    };

    // The promo grant expired at hour 1: 13 are available, not 14.
    assert_eq!(
        store.reserve(&request("13.5")).await.unwrap(),
        ReserveOutcome::InsufficientCredits {
            available: dec("13")
        }
    );
    let id = reserved(store.reserve(&request("2")).await.unwrap());
    assert_eq!(left(&*store, &who, g).await, (dec("3"), dec("2")));
    let mut settle = settlement(id, &entry(&who, 10, dec("2.5"), hour(1)));
    settle.debit_credits = true;
    let settled = store.settle(&settle).await.unwrap();
    let debit = settled.debit.expect("a debit");
    assert_eq!(normalized(&debit.grants), takes(&[(g, "2.5")]));
    assert_eq!(left(&*store, &who, g).await, (dec("0.5"), Decimal::ZERO));
    assert_eq!(left(&*store, &who, promo).await, (dec("1"), Decimal::ZERO));

    let id = reserved(store.reserve(&request("2")).await.unwrap());
    assert_eq!(left(&*store, &who, g).await, (dec("0.5"), dec("0.5")));
    assert!(store.release(id).await.unwrap());
    assert_eq!(left(&*store, &who, g).await, (dec("0.5"), Decimal::ZERO));
    let wallet = store.wallet_at(&who, Currency::USD, hour(1)).await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.held, wallet.available()),
        (dec("11.5"), Decimal::ZERO, dec("10.5"))
    );
    reconciles(&*store, &who).await;
}

/// A reservation that grows (`replaces`) gives its hold's grants back before the new hold
/// takes from them, so a wallet funded only by grants can grow a hold up to all of them and
/// the capture leaves no grant paid twice and no ungranted debt.
pub async fn a_growing_reservation_moves_its_hold_on_the_grants<
    S: ConformanceStore + AuditStore,
>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let first = grant(&*store, &who, spec("2")).await;
    let second = grant(&*store, &who, spec("1").with_priority(1)).await;
    let march = month(2024, 3);
    let request = |amount: &str| {
        let mut r = reserve_request(&who, march, Limits::UNLIMITED, totals(10, amount), hour(1));
        r.hold = Some(HoldRequest {
            amount: usd(amount),
            overdraft: Overdraft::Disallowed,
        });
        r
    };
    let id = reserved(store.reserve(&request("2")).await.unwrap());
    assert_eq!(left(&*store, &who, first).await, (dec("2"), dec("2")));
    let grown = ai_metering_core::store::ReserveRequest {
        replaces: Some(id),
        ..request("3")
    };
    let id = reserved(store.reserve(&grown).await.unwrap());
    assert_eq!(left(&*store, &who, first).await, (dec("2"), dec("2")));
    assert_eq!(left(&*store, &who, second).await, (dec("1"), dec("1")));
    let too_big = ai_metering_core::store::ReserveRequest {
        replaces: Some(id),
        ..request("3.5")
    };
    assert_eq!(
        store.reserve(&too_big).await.unwrap(),
        ReserveOutcome::InsufficientCredits {
            available: dec("3")
        }
    );
    let mut settle = settlement(id, &entry(&who, 10, dec("3"), hour(1)));
    settle.debit_credits = true;
    let debit = store.settle(&settle).await.unwrap().debit.expect("a debit");
    assert_eq!(
        normalized(&debit.grants),
        takes(&[(first, "2"), (second, "1")])
    );
    let wallet = store.wallet_at(&who, Currency::USD, hour(1)).await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.held),
        (Decimal::ZERO, Decimal::ZERO)
    );
    for id in [first, second] {
        assert_eq!(
            left(&*store, &who, id).await,
            (Decimal::ZERO, Decimal::ZERO)
        );
    }
    reconciles(&*store, &who).await;
}

/// At a period reset each rollover rule tops its grant up or caps it, with a ledger entry
/// per grant changed; a second reset at once changes nothing.
pub async fn rollover_tops_up_and_caps_grants<S: ConformanceStore + AuditStore>(store: Arc<S>) {
    let who = fresh_billable();
    let allowance = grant(
        &*store,
        &who,
        spec("10").with_rollover(Rollover {
            min: dec("10"),
            max: dec("10"),
        }),
    )
    .await;
    let capped = grant(
        &*store,
        &who,
        spec("10").with_priority(1).with_rollover(Rollover {
            min: dec("0"),
            max: dec("2"),
        }),
    )
    .await;
    let plain = grant(&*store, &who, spec("5").with_priority(2)).await;
    done(
        store
            .deduct_credits(&who, usd("15"), "usage", Overdraft::Disallowed, hour(1))
            .await
            .unwrap(),
    );
    let entries = store
        .roll_over_grants(&who, Currency::USD, hour(2))
        .await
        .unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let by_grant: BTreeMap<GrantId, &CreditTransaction> =
        entries.iter().map(|e| (e.grants[0].grant, e)).collect();
    let top_up = by_grant[&allowance];
    assert_eq!(
        (top_up.direction, top_up.amount.amount.normalize()),
        (Direction::Credit, dec("10"))
    );
    let cap = by_grant[&capped];
    assert_eq!(
        (cap.direction, cap.amount.amount.normalize()),
        (Direction::Debit, dec("3"))
    );
    assert!(entries.iter().all(|e| e.reason == ROLLOVER_REASON));
    assert_eq!(left(&*store, &who, allowance).await.0, dec("10"));
    assert_eq!(left(&*store, &who, capped).await.0, dec("2"));
    assert_eq!(left(&*store, &who, plain).await.0, dec("5"));
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!(wallet.balance, dec("17"));
    assert!(
        store
            .roll_over_grants(&who, Currency::USD, hour(2))
            .await
            .unwrap()
            .is_empty()
    );
    reconciles(&*store, &who).await;
}

/// Funds `who` with three grants (10 each: two of priority 0 expiring at different times,
/// one of priority 1), one that expires exactly at the operations' instant (never to be
/// drawn), and 5 ungranted: 35 usable at hour 1.
async fn several_grants<S: ConformanceStore>(store: &S, who: &Billable) -> (Vec<GrantId>, GrantId) {
    let a = grant(store, who, spec("10").expiring_at(hour(100))).await;
    let b = grant(store, who, spec("10").with_priority(1)).await;
    let c = grant(store, who, spec("10").expiring_at(hour(50))).await;
    let gone = grant(store, who, spec("10").expiring_at(hour(1))).await;
    store
        .add_credits(who, usd("5"), "top-up", hour(0))
        .await
        .unwrap();
    (vec![a, b, c], gone)
}

/// Checks that every usable grant was spent exactly, the expired one untouched, and that
/// the ledger's debits name grants summing to what each grant lost.
async fn check_spent<S: ConformanceStore + AuditStore>(
    store: &S,
    who: &Billable,
    usable: &[GrantId],
    gone: GrantId,
) {
    for id in usable {
        assert_eq!(left(store, who, *id).await, (Decimal::ZERO, Decimal::ZERO));
    }
    assert_eq!(left(store, who, gone).await, (dec("10"), Decimal::ZERO));
    let wallet = store.wallet_at(who, Currency::USD, hour(1)).await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.held, wallet.available()),
        (dec("10"), Decimal::ZERO, Decimal::ZERO)
    );
    let mut paid: BTreeMap<GrantId, Decimal> = BTreeMap::new();
    let mut ungranted = Decimal::ZERO;
    for e in ledger(store, who).await {
        if e.direction != Direction::Debit {
            continue;
        }
        let on_grants: Decimal = e.grants.iter().map(|t| t.amount).sum();
        for t in &e.grants {
            *paid.entry(t.grant).or_default() += t.amount;
        }
        ungranted += e.amount.amount - on_grants;
    }
    for id in usable {
        assert_eq!(
            paid.get(id).copied().map(|d| d.normalize()),
            Some(dec("10"))
        );
    }
    assert!(!paid.contains_key(&gone));
    assert_eq!(ungranted.normalize(), dec("5"));
    reconciles(store, who).await;
}

/// 50 concurrent holds of 1 against several grants holding 35 usable in all: exactly 35
/// succeed, no grant is ever held beyond what it has, and capturing them spends every
/// usable grant exactly, never the expired one.
pub async fn concurrent_holds_drawing_from_grants_never_overspend<
    S: ConformanceStore + AuditStore,
>(
    store: Arc<S>,
) {
    const TASKS: usize = 50;
    let who = fresh_billable();
    let (usable, gone) = several_grants(&*store, &who).await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, barrier, who) = (store.clone(), barrier.clone(), who.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let outcome = store
                .hold_credits_at(&who, usd("1"), Overdraft::Disallowed, hour(1), hour(2))
                .await
                .unwrap();
            if let CreditOutcome::Done(hold) = outcome {
                store
                    .settle_hold(hold, usd("1"), "usage", hour(1))
                    .await
                    .unwrap();
                true
            } else {
                false
            }
        });
    }
    let captured = tasks.join_all().await.into_iter().filter(|ok| *ok).count();
    assert_eq!(captured, 35);
    check_spent(&*store, &who, &usable, gone).await;
}

/// 60 concurrent reservations holding 1 each against several grants (35 usable), each
/// settled with a debit of 1: exactly 35 go through, and the grants are spent exactly.
pub async fn concurrent_reservations_drawing_from_grants_never_overspend<
    S: ConformanceStore + AuditStore,
>(
    store: Arc<S>,
) {
    reservations_drawing_from_grants_on_several_instances(vec![store]).await;
}

/// [`concurrent_reservations_drawing_from_grants_never_overspend`] with the tasks spread
/// over several stores on one database (as several app instances, each with its own
/// connection pool, share one PostgreSQL): still exactly 35 go through, and the grants are
/// spent exactly, as every instance reads them.
///
/// # Panics
/// When `stores` is empty, or on any broken expectation.
pub async fn reservations_drawing_from_grants_on_several_instances<
    S: ConformanceStore + AuditStore,
>(
    stores: Vec<Arc<S>>,
) {
    const TASKS: usize = 60;
    assert!(!stores.is_empty(), "at least one store");
    let who = fresh_billable();
    let (usable, gone) = several_grants(&*stores[0], &who).await;
    let march = month(2024, 3);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let store = Arc::clone(&stores[i % stores.len()]);
        let (barrier, who) = (barrier.clone(), who.clone());
        let mut request = reserve_request(&who, march, Limits::UNLIMITED, totals(1, "1"), hour(1));
        request.hold = Some(HoldRequest {
            amount: usd("1"),
            overdraft: Overdraft::Disallowed,
        });
        tasks.spawn(async move {
            barrier.wait().await;
            match store.reserve(&request).await.unwrap() {
                ReserveOutcome::Reserved { id, .. } => {
                    let row = entry(&who, 1, dec("1"), hour(1)).with_key(format!("call-{i}"));
                    let mut s = settlement(id, &row);
                    s.debit_credits = true;
                    let settled = store.settle(&s).await.unwrap();
                    assert!(settled.debit.is_some());
                    true
                }
                ReserveOutcome::InsufficientCredits { available } => {
                    assert!(available < dec("1"), "refused with {available}");
                    false
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }
    let settled = tasks.join_all().await.into_iter().filter(|ok| *ok).count();
    assert_eq!(settled, 35);
    for store in &stores {
        check_spent(&**store, &who, &usable, gone).await;
    }
}
