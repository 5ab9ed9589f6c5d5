//! The money path in the store: a reservation claims its key, its exclusivity and its
//! credits in one step, grows atomically, and a settlement stores everything or nothing.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::overage::OverageRule;
use ai_metering_core::store::{
    HoldRequest, Overdraft, Page, ReserveOutcome, ReserveRequest, Settlement, UsageFilter,
};
use ai_metering_core::{Billable, Currency};
use rust_decimal::Decimal;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::{done, reserved};
use crate::builders::{
    EntryExt, dec, entry, fresh_billable, fresh_name, hour, month, reserve_request, settlement,
    token_limit, totals, usd,
};

fn with_hold(mut request: ReserveRequest, amount: &str, overdraft: Overdraft) -> ReserveRequest {
    request.hold = Some(HoldRequest {
        amount: usd(amount),
        overdraft,
    });
    request
}

/// A call of `tokens` costing `amount` USD, at 1:00 in March 2024 with no limit, that holds
/// its cost in `who`'s wallet (no overdraft).
fn credits_call(who: &Billable, tokens: u64, amount: &str) -> ReserveRequest {
    with_hold(
        reserve_request(
            who,
            month(2024, 3),
            Limits::UNLIMITED,
            totals(tokens, amount),
            hour(1),
        ),
        amount,
        Overdraft::Disallowed,
    )
}

async fn funded<S: ConformanceStore>(store: &S, amount: &str) -> Billable {
    let who = fresh_billable();
    store
        .add_credits(&who, usd(amount), "top-up", hour(0))
        .await
        .unwrap();
    who
}

/// A reservation claims its idempotency key: a second one with the key is refused while the
/// first is in flight, gets the stored row once it is recorded, and goes through once the
/// first is released instead.
pub async fn reserve_claims_the_idempotency_key<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let key = fresh_name("key");
    let mut request = reserve_request(&who, march, token_limit(1_000), totals(10, "0"), hour(1));
    request.idempotency_key = Some(key.clone());

    let first = reserved(store.reserve(&request).await.unwrap());
    assert_eq!(
        store.reserve(&request).await.unwrap(),
        ReserveOutcome::KeyInFlight
    );
    // Keys are per billable.
    let other = fresh_billable();
    let mut elsewhere =
        reserve_request(&other, march, token_limit(1_000), totals(10, "0"), hour(1));
    elsewhere.idempotency_key = Some(key.clone());
    reserved(store.reserve(&elsewhere).await.unwrap());

    assert!(store.release(first).await.unwrap());
    let second = reserved(store.reserve(&request).await.unwrap());
    let row = entry(&who, 10, dec("0.1"), hour(1)).with_key(&key);
    let settled = store.settle(&settlement(second, &row)).await.unwrap();
    assert!(settled.recorded.created);
    match store.reserve(&request).await.unwrap() {
        ReserveOutcome::AlreadyRecorded(record) => assert_eq!(*record, settled.recorded.record),
        other => panic!("expected the stored row, got {other:?}"),
    }
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(
        usage.reserved,
        UsageTotals::ZERO,
        "refusals reserve nothing"
    );
}

/// At most one exclusive (unestimated) reservation of a billable is live; others may run
/// beside it, and an expired one does not block.
pub async fn exclusive_reservations_are_one_at_a_time<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    let mut exclusive = reserve_request(&who, march, Limits::UNLIMITED, UsageTotals::ZERO, hour(1));
    exclusive.exclusive = true;
    let first = reserved(store.reserve(&exclusive).await.unwrap());
    assert_eq!(
        store.reserve(&exclusive).await.unwrap(),
        ReserveOutcome::Busy
    );
    // An estimated call is not held back.
    let estimated = reserve_request(&who, march, Limits::UNLIMITED, totals(5, "0"), hour(1));
    reserved(store.reserve(&estimated).await.unwrap());
    // Nor is another billable's.
    let mut theirs = exclusive.clone();
    theirs.billable = fresh_billable();
    reserved(store.reserve(&theirs).await.unwrap());

    assert!(store.release(first).await.unwrap());
    let second = reserved(store.reserve(&exclusive).await.unwrap());
    // Two hours on, the second (expiring after one hour) no longer blocks.
    let mut later = exclusive.clone();
    later.now = hour(3);
    later.expires_at = hour(4);
    reserved(store.reserve(&later).await.unwrap());
    assert!(!store.release(second).await.unwrap(), "expired and dropped");
}

/// A reservation that replaces another grows in one step: refused, the old one still
/// counts; made, only the new one does, and the old one's hold is given back.
pub async fn replacing_a_reservation_grows_it_atomically<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "10").await;
    let march = month(2024, 3);
    let limits = token_limit(300);
    let a = with_hold(
        reserve_request(&who, march, limits, totals(100, "1"), hour(1)),
        "1",
        Overdraft::Disallowed,
    );
    let first = reserved(store.reserve(&a).await.unwrap());
    reserved(
        store
            .reserve(&reserve_request(
                &who,
                march,
                limits,
                totals(100, "0"),
                hour(1),
            ))
            .await
            .unwrap(),
    );

    let mut too_big = with_hold(
        reserve_request(&who, march, limits, totals(250, "2"), hour(1)),
        "2",
        Overdraft::Disallowed,
    );
    too_big.replaces = Some(first);
    assert!(matches!(
        store.reserve(&too_big).await.unwrap(),
        ReserveOutcome::Rejected { .. }
    ));
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(
        usage.reserved.tokens, 200,
        "the refused growth changed nothing"
    );
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().held,
        dec("1")
    );

    // The wallet (10, 1 held) can cover 10 once the old hold is given back, not 10.5.
    let mut costly = with_hold(
        reserve_request(&who, march, limits, totals(200, "10.5"), hour(1)),
        "10.5",
        Overdraft::Disallowed,
    );
    costly.replaces = Some(first);
    assert_eq!(
        store.reserve(&costly).await.unwrap(),
        ReserveOutcome::InsufficientCredits {
            available: dec("10")
        }
    );

    let mut grow = with_hold(
        reserve_request(&who, march, limits, totals(200, "10"), hour(1)),
        "10",
        Overdraft::Disallowed,
    );
    grow.replaces = Some(first);
    let grown = reserved(store.reserve(&grow).await.unwrap());
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(usage.reserved.tokens, 300);
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("10"), dec("10")));
    assert!(
        !store.release(first).await.unwrap(),
        "the replaced one is gone"
    );
    assert!(store.release(grown).await.unwrap());
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().held,
        Decimal::ZERO
    );
}

/// The hold is made with the reservation, or neither is: a wallet that cannot cover it
/// reserves nothing, and an empty wallet refuses even a zero hold.
pub async fn reserve_holds_credits_in_the_same_step<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "1").await;
    let march = month(2024, 3);
    let request = |amount: &str| credits_call(&who, 10, amount);
    assert_eq!(
        store.reserve(&request("1.5")).await.unwrap(),
        ReserveOutcome::InsufficientCredits {
            available: dec("1")
        }
    );
    assert_eq!(
        store
            .period_usage(&who, &march, hour(1))
            .await
            .unwrap()
            .reserved,
        UsageTotals::ZERO
    );
    let ReserveOutcome::Reserved { hold, .. } = store.reserve(&request("1")).await.unwrap() else {
        panic!("a hold the wallet covers is made");
    };
    assert!(hold.is_some());
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!(wallet.available(), Decimal::ZERO);
    assert!(matches!(
        store.reserve(&request("0")).await.unwrap(),
        ReserveOutcome::InsufficientCredits { .. }
    ));
    let empty = fresh_billable();
    let mut zero = request("0");
    zero.billable = empty;
    assert!(matches!(
        store.reserve(&zero).await.unwrap(),
        ReserveOutcome::InsufficientCredits { .. }
    ));
}

/// One settlement stores the row, the counters, the overage and the capture of the hold
/// (the actual cost debited, the rest given back).
pub async fn settle_captures_the_hold_and_records_overage<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "5").await;
    let march = month(2024, 3);
    let limits = token_limit(100);
    store
        .insert_usage(&entry(&who, 90, dec("0.9"), hour(1)))
        .await
        .unwrap();
    let request = credits_call(&who, 50, "2");
    let id = reserved(store.reserve(&request).await.unwrap());
    let row = entry(&who, 40, dec("1.25"), hour(1));
    let settled = store
        .settle(&Settlement {
            reservation: id,
            entry: row.clone(),
            period: march,
            overage: Some(OverageRule::new(limits, Some(dec("1")))),
            debit_credits: true,
        })
        .await
        .unwrap();
    assert!(settled.recorded.created);
    assert_eq!(settled.usage.recorded, totals(130, "2.15"));
    assert_eq!(settled.usage.reserved, UsageTotals::ZERO);
    let debit = settled
        .debit
        .expect("a credits-mode settlement debits the cost");
    assert_eq!(
        (debit.amount, debit.balance_after),
        (usd("1.25"), dec("3.75"))
    );
    let overage = settled.overage.expect("30 tokens went past the limit");
    assert_eq!(overage.overage.tokens, 30);
    assert_eq!(overage.overage.amount, usd("0.03"));
    assert_eq!(overage.overage.usage_id, settled.recorded.record.id);

    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("3.75"), Decimal::ZERO));
    // The settlement told the wallet after it, as a read finds it.
    let told = settled
        .wallet
        .expect("a credits-mode settlement reports the wallet after it");
    assert_eq!(
        told,
        store.wallet_at(&who, Currency::USD, hour(1)).await.unwrap()
    );
    let pending = store.pending_overages(None, 1_000).await.unwrap();
    assert_eq!(
        pending.iter().filter(|o| o.overage.billable == who).count(),
        1
    );
    assert!(!store.release(id).await.unwrap(), "the reservation is gone");
}

/// A credits-mode settlement reports the wallet right after it: the call's debit made,
/// and the holds of the calls still in flight kept.
pub async fn settle_reports_the_wallet_with_the_holds_still_in_flight<S: ConformanceStore>(
    store: Arc<S>,
) {
    let who = funded(&*store, "5").await;
    let march = month(2024, 3);
    let request = credits_call(&who, 10, "1");
    let first = reserved(store.reserve(&request).await.unwrap());
    let _in_flight = reserved(store.reserve(&request).await.unwrap());
    let mut s = settlement(first, &entry(&who, 10, dec("0.5"), hour(1)));
    s.debit_credits = true;
    let settled = store.settle(&s).await.unwrap();
    let told = settled
        .wallet
        .expect("a credits-mode settlement reports the wallet after it");
    assert_eq!(
        (told.balance, told.held, told.available()),
        (dec("4.5"), dec("1"), dec("3.5"))
    );
    assert_eq!(
        told,
        store.wallet_at(&who, Currency::USD, hour(1)).await.unwrap()
    );
    // Outside credits mode, nothing is said of a wallet.
    let plain = reserved(
        store
            .reserve(&reserve_request(
                &who,
                march,
                Limits::UNLIMITED,
                totals(1, "0"),
                hour(1),
            ))
            .await
            .unwrap(),
    );
    let settled = store
        .settle(&settlement(plain, &entry(&who, 1, dec("0"), hour(1))))
        .await
        .unwrap();
    assert_eq!(settled.wallet, None);
}

/// A credits-mode reservation reports the wallet right after its hold: this call's hold and
/// those before it counted; a growth reports it after the hold moved; outside credits mode,
/// nothing is said of a wallet.
pub async fn reserve_reports_the_wallet_with_its_hold<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "5").await;
    let march = month(2024, 3);
    // Reserves `request`; checks the wallet it reports against `wallet_at`, with `held`
    // held and `available` left of the 5 USD.
    let reserve_and_check =
        |request: ReserveRequest, held: &'static str, available: &'static str| {
            let store = Arc::clone(&store);
            let who = who.clone();
            async move {
                let ReserveOutcome::Reserved { id, wallet, .. } =
                    store.reserve(&request).await.unwrap()
                else {
                    panic!("expected a reservation");
                };
                let told =
                    wallet.expect("a credits-mode reservation reports the wallet after its hold");
                assert_eq!(
                    (told.balance, told.held, told.available()),
                    (dec("5"), dec(held), dec(available))
                );
                assert_eq!(
                    told,
                    store.wallet_at(&who, Currency::USD, hour(1)).await.unwrap()
                );
                id
            }
        };
    reserve_and_check(credits_call(&who, 10, "1"), "1", "4").await;
    let second = reserve_and_check(credits_call(&who, 10, "1"), "2", "3").await;
    // Grown from a hold of 1 to 3: the report has the moved hold.
    let grown = ReserveRequest {
        replaces: Some(second),
        ..credits_call(&who, 30, "3")
    };
    reserve_and_check(grown, "4", "1").await;
    let plain = reserve_request(&who, march, Limits::UNLIMITED, totals(1, "0"), hour(1));
    let ReserveOutcome::Reserved { wallet, .. } = store.reserve(&plain).await.unwrap() else {
        panic!("expected a reservation");
    };
    assert_eq!(wallet, None, "outside credits mode");
}

/// A settlement of a key already recorded stores nothing but drops the reservation and
/// gives its hold back.
pub async fn settle_of_a_recorded_key_only_gives_back<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "5").await;
    let march = month(2024, 3);
    let key = fresh_name("key");
    let row = entry(&who, 10, dec("1"), hour(1)).with_key(&key);
    store.insert_usage(&row).await.unwrap();
    let request = credits_call(&who, 10, "1");
    let id = reserved(store.reserve(&request).await.unwrap());
    let mut s = settlement(id, &row);
    s.debit_credits = true;
    let settled = store.settle(&s).await.unwrap();
    assert!(!settled.recorded.created);
    assert!(settled.debit.is_none() && settled.overage.is_none());
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("5"), Decimal::ZERO));
    assert_eq!(
        store
            .period_usage(&who, &march, hour(1))
            .await
            .unwrap()
            .reserved,
        UsageTotals::ZERO
    );
}

/// Releasing a reservation gives its credit hold back, and so does its expiry (here seen
/// by a later reservation of the billable, which drops its expired ones; the global
/// `expire_reservations` is left to tests on a database of their own).
pub async fn release_and_expiry_give_the_hold_back<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "3").await;
    let march = month(2024, 3);
    let request = credits_call(&who, 10, "1");
    let a = reserved(store.reserve(&request).await.unwrap());
    let b = reserved(store.reserve(&request).await.unwrap());
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().held,
        dec("2")
    );
    assert!(store.release(a).await.unwrap());
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().held,
        dec("1")
    );
    // Three hours on, `b` (expiring after one) is gone with its hold.
    let later = reserve_request(&who, march, Limits::UNLIMITED, totals(1, "0"), hour(3));
    let c = reserved(store.reserve(&later).await.unwrap());
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("3"), Decimal::ZERO));
    assert!(!store.release(b).await.unwrap(), "expired and dropped");
    assert!(store.release(c).await.unwrap());
}

/// 50 concurrent calls of 200 tokens on a 1,000-token plan at $1 per 1k beyond: the
/// overage rows add up to exactly the 9,000 tokens ($9.00) recorded beyond the limit.
pub async fn concurrent_overage_sums_to_the_excess<S: ConformanceStore>(store: Arc<S>) {
    const CALLS: usize = 50;
    let who = fresh_billable();
    let march = month(2024, 3);
    let rule = OverageRule::new(token_limit(1_000), Some(Decimal::ONE));
    let barrier = Arc::new(Barrier::new(CALLS));
    let mut tasks = JoinSet::new();
    for i in 0..CALLS {
        let (store, barrier, who) = (store.clone(), barrier.clone(), who.clone());
        tasks.spawn(async move {
            let request =
                reserve_request(&who, march, Limits::UNLIMITED, totals(200, "0.2"), hour(1));
            barrier.wait().await;
            let id = reserved(store.reserve(&request).await.unwrap());
            let row = entry(&who, 200, dec("0.2"), hour(1)).with_key(format!("call-{i}"));
            let settled = store
                .settle(&Settlement {
                    reservation: id,
                    entry: row,
                    period: march,
                    overage: Some(rule),
                    debit_credits: false,
                })
                .await
                .unwrap();
            settled
                .overage
                .map(|o| (o.overage.tokens, o.overage.amount.amount))
        });
    }
    let overages: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    let tokens: u64 = overages.iter().map(|(t, _)| t).sum();
    let amount: Decimal = overages.iter().map(|(_, a)| a).sum();
    assert_eq!(tokens, 9_000);
    assert_eq!(amount, dec("9"));
    let usage = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(usage.recorded.tokens, 10_000);
}

/// 20 concurrent reservations with one key: exactly one is made; after it is recorded,
/// every later one gets the stored row. One row, one charge.
pub async fn concurrent_same_key_claims_once<S: ConformanceStore>(store: Arc<S>) {
    const CALLS: usize = 20;
    let who = funded(&*store, "100").await;
    let key = fresh_name("key");
    let barrier = Arc::new(Barrier::new(CALLS));
    let mut tasks = JoinSet::new();
    for _ in 0..CALLS {
        let (store, barrier, who, key) = (store.clone(), barrier.clone(), who.clone(), key.clone());
        tasks.spawn(async move {
            let mut request = credits_call(&who, 10, "1");
            request.idempotency_key = Some(key.clone());
            barrier.wait().await;
            match store.reserve(&request).await.unwrap() {
                ReserveOutcome::Reserved { id, .. } => {
                    let row = entry(&who, 10, dec("1"), hour(1)).with_key(&key);
                    let mut s = settlement(id, &row);
                    s.debit_credits = true;
                    assert!(store.settle(&s).await.unwrap().recorded.created);
                    1
                }
                ReserveOutcome::KeyInFlight | ReserveOutcome::AlreadyRecorded(_) => 0,
                other => panic!("unexpected {other:?}"),
            }
        });
    }
    let made: u32 = tasks.join_all().await.into_iter().sum();
    assert_eq!(made, 1);
    let rows = store
        .query_usage(&UsageFilter::for_billable(who.clone()), Page::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("99"), Decimal::ZERO));
}

/// Credit operations outside a reservation still work beside reservation holds.
pub async fn holds_of_reservations_and_plain_holds_add_up<S: ConformanceStore>(store: Arc<S>) {
    let who = funded(&*store, "4").await;
    done(
        store
            .hold_credits(&who, usd("1"), Overdraft::Disallowed, hour(2))
            .await
            .unwrap(),
    );
    let request = credits_call(&who, 10, "3");
    reserved(store.reserve(&request).await.unwrap());
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!(wallet.held, dec("4"));
    assert_eq!(
        store.reserve(&request).await.unwrap(),
        ReserveOutcome::InsufficientCredits {
            available: Decimal::ZERO
        }
    );
}
