//! The money path end to end through [`Metering`]: the guarantees users get with the
//! defaults, checked on any store. Run them with [`money_path_tests!`](crate::money_path_tests).
//!
//! Every scenario uses a metering on a manual clock (no background sweeper), a catalog with
//! one model, `openai`/`test-model` at $10 per million input and $20 per million output
//! tokens, and billables of its own.

use crate::ConformanceStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ai_metering_core::clock::ManualClock;
use ai_metering_core::plan::{BillingMode, OveragePolicy, Plan, Subscription};
use ai_metering_core::pricing::{ModelPrice, PriceCatalog};
use ai_metering_core::store::{Direction, Page, UsageFilter};
use ai_metering_core::{
    Billable, Currency, Error, MeterError, Metering, MeteringConfig, Money, StreamMeter, TokenUsage,
};
use chrono::Duration;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinSet;

use crate::builders::{dec, fresh_billable, fresh_name, hour};
use crate::faulty::{FaultMode, FaultyStore};

/// The model every scenario calls.
pub const MODEL: &str = "test-model";

/// `openai`/[`MODEL`] at $10 per million input tokens and $20 per million output tokens.
pub fn catalog() -> PriceCatalog {
    let mut catalog = PriceCatalog::empty(Currency::USD);
    catalog.insert(
        "openai",
        MODEL,
        ModelPrice::per_million(Decimal::TEN, Decimal::from(20)).expect("a valid price"),
    );
    catalog
}

/// A metering over `store` on a manual clock at [`hour`]`(1)`, with the default settings
/// but for the catalog.
pub fn metering<S: ConformanceStore>(store: S) -> (Metering<S>, ManualClock) {
    let clock = ManualClock::new(hour(1));
    let metering = Metering::builder(store)
        .catalog(catalog())
        .config(MeteringConfig::default())
        .clock(clock.clone())
        .build();
    (metering, clock)
}

/// A fresh billable subscribed to a fresh plan in `mode`, its wallet holding `credits` USD.
pub async fn subscribed<S: ConformanceStore>(
    metering: &Metering<S>,
    plan: Plan,
    mode: BillingMode,
    credits: Option<&str>,
) -> Billable {
    let who = fresh_billable();
    let store = metering.store();
    store.upsert_plan(&plan).await.unwrap();
    store
        .insert_subscription(
            &Subscription::new(who.clone(), plan.slug.clone(), hour(0)).with_billing_mode(mode),
        )
        .await
        .unwrap();
    if let Some(amount) = credits {
        store
            .add_credits(
                &who,
                Money::new(dec(amount), Currency::USD),
                "top-up",
                hour(0),
            )
            .await
            .unwrap();
    }
    who
}

/// An OpenAI chat response reporting `input` and `output` tokens.
pub fn response(input: u64, output: u64) -> Value {
    json!({
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}
    })
}

/// The provider, counting its calls; yields once so that concurrent calls overlap.
async fn provider(calls: Arc<AtomicUsize>, input: u64, output: u64) -> Result<Value, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    Ok(response(input, output))
}

/// How one metered call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded.
    Recorded,
    /// Refused at a limit.
    LimitExceeded,
    /// Refused: the wallet could not cover it.
    InsufficientCredits,
    /// Refused: another unestimated call of the billable was in flight.
    CallInFlight,
    /// Refused: a call with the key was in flight.
    KeyInFlight,
    /// Replayed: the key was recorded.
    AlreadyRecorded,
    /// Anything else, described.
    Other(String),
}

fn outcome<M, T, E: std::fmt::Display>(result: Result<M, MeterError<T, E>>) -> Outcome {
    match result {
        Ok(_) => Outcome::Recorded,
        Err(MeterError::Metering(Error::LimitExceeded { .. })) => Outcome::LimitExceeded,
        Err(MeterError::Metering(Error::InsufficientCredits { .. })) => {
            Outcome::InsufficientCredits
        }
        Err(MeterError::Metering(Error::CallInFlight { .. })) => Outcome::CallInFlight,
        Err(MeterError::Metering(Error::IdempotencyKeyInFlight { .. })) => Outcome::KeyInFlight,
        Err(MeterError::AlreadyRecorded(_)) => Outcome::AlreadyRecorded,
        Err(other) => Outcome::Other(other.to_string()),
    }
}

/// Runs `calls` concurrent metered calls of `who`, each built by `meter` and answering
/// `input`/`output` tokens; returns their outcomes.
async fn concurrently<S, F>(
    metering: &Metering<S>,
    calls: usize,
    (input, output): (u64, u64),
    provider_calls: &Arc<AtomicUsize>,
    meter: F,
) -> Vec<Outcome>
where
    S: ConformanceStore,
    F: Fn(ai_metering_core::Meter<S>, usize) -> ai_metering_core::Meter<S>,
{
    let barrier = Arc::new(Barrier::new(calls));
    let wave = Arc::new(Wave::new(calls));
    let mut tasks = JoinSet::new();
    for i in 0..calls {
        let m = meter(metering.meter(), i);
        let (barrier, counter, wave) = (barrier.clone(), provider_calls.clone(), wave.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let entered = AtomicBool::new(false);
            let result = m
                .call(async {
                    entered.store(true, Ordering::SeqCst);
                    wave.arrive();
                    wave.all_arrived().await;
                    provider(counter, input, output).await
                })
                .await;
            if !entered.load(Ordering::SeqCst) {
                wave.arrive();
            }
            outcome(result)
        });
    }
    tasks.join_all().await
}

/// The calls of one wave overlap by construction, whatever the store's timing: no provider
/// call returns before every call of the wave has reached its provider or been refused.
struct Wave {
    calls: usize,
    arrived: AtomicUsize,
    all_in: Notify,
}

impl Wave {
    fn new(calls: usize) -> Self {
        Self {
            calls,
            arrived: AtomicUsize::new(0),
            all_in: Notify::new(),
        }
    }

    fn arrive(&self) {
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 >= self.calls {
            self.all_in.notify_waiters();
        }
    }

    async fn all_arrived(&self) {
        loop {
            let mut notified = std::pin::pin!(self.all_in.notified());
            notified.as_mut().enable();
            if self.arrived.load(Ordering::SeqCst) >= self.calls {
                return;
            }
            notified.await;
        }
    }
}

async fn recorded_tokens<S: ConformanceStore>(metering: &Metering<S>, who: &Billable) -> u64 {
    metering
        .store()
        .sum_usage(&UsageFilter::for_billable(who.clone()))
        .await
        .unwrap()
        .total_tokens
}

fn count(outcomes: &[Outcome], which: &Outcome) -> usize {
    outcomes.iter().filter(|o| *o == which).count()
}

fn only(outcomes: &[Outcome], allowed: &[Outcome]) {
    for o in outcomes {
        assert!(
            allowed.contains(o),
            "unexpected outcome {o:?} in {outcomes:?}"
        );
    }
}

/// A prompt whose estimate ([`ai_metering_core::estimate::text_tokens`]) is `tokens` input
/// tokens.
pub fn prompt(tokens: u64) -> String {
    "x".repeat(usize::try_from(tokens * 3).unwrap())
}

/// No estimate anywhere: waves of 100 concurrent 100-token calls on a 1,000-token budget
/// record at most 1,100 tokens (one unestimated call in flight, then the billable's recent
/// calls estimate the rest).
pub async fn unestimated_calls_overshoot_by_at_most_one_call<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Budget").with_token_limit(1_000);
    let who = subscribed(&metering, plan, BillingMode::Plan, None).await;
    let provider_calls = Arc::new(AtomicUsize::new(0));
    let mut all = Vec::new();
    for _ in 0..5 {
        let wave = concurrently(&metering, 100, (60, 40), &provider_calls, |m, _| {
            m.billable(who.clone())
                .provider("openai", MODEL)
                .feature("chat")
        })
        .await;
        all.extend(wave);
    }
    only(
        &all,
        &[
            Outcome::Recorded,
            Outcome::LimitExceeded,
            Outcome::CallInFlight,
        ],
    );
    let recorded = recorded_tokens(&metering, &who).await;
    assert!(
        recorded <= 1_100,
        "recorded {recorded} tokens on a 1,000-token budget"
    );
    assert_eq!(recorded, 100 * count(&all, &Outcome::Recorded) as u64);
    assert!(
        count(&all, &Outcome::CallInFlight) > 0,
        "the calls did overlap"
    );
    assert!(
        count(&all, &Outcome::LimitExceeded) > 0,
        "the budget was reached"
    );
    assert_eq!(
        provider_calls.load(Ordering::SeqCst),
        count(&all, &Outcome::Recorded)
    );
}

/// Credits mode with the request's `max_tokens`: 200 concurrent calls on a $2.00 wallet
/// (overdraft off) never take it below zero, and it pays exactly for what was recorded.
pub async fn credits_with_max_tokens_never_go_below_zero<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Credits");
    let who = subscribed(&metering, plan, BillingMode::Credits, Some("2")).await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 5_000,
        "messages": [{"role": "user", "content": prompt(500)}]
    });
    let provider_calls = Arc::new(AtomicUsize::new(0));
    let outcomes = concurrently(&metering, 200, (500, 5_000), &provider_calls, |m, _| {
        m.billable(who.clone())
            .provider("openai", MODEL)
            .request(&body)
    })
    .await;
    only(
        &outcomes,
        &[Outcome::Recorded, Outcome::InsufficientCredits],
    );
    let recorded = count(&outcomes, &Outcome::Recorded);
    // $0.105 a call: 19 fit in $2.00.
    assert_eq!(recorded, 19, "{outcomes:?}");
    let wallet = metering.store().wallet(&who, Currency::USD).await.unwrap();
    assert!(wallet.balance >= Decimal::ZERO, "{wallet:?}");
    assert_eq!(
        wallet.balance,
        dec("2") - dec("0.105") * Decimal::from(recorded)
    );
    assert_eq!(wallet.held, Decimal::ZERO, "no hold is left behind");
}

/// Credits mode with nothing to estimate from: the wallet goes below zero by less than one
/// call, never more.
pub async fn credits_without_an_estimate_stay_within_one_call<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Credits");
    let who = subscribed(&metering, plan, BillingMode::Credits, Some("2")).await;
    let provider_calls = Arc::new(AtomicUsize::new(0));
    let mut all = Vec::new();
    for _ in 0..5 {
        all.extend(
            concurrently(&metering, 40, (500, 5_000), &provider_calls, |m, _| {
                m.billable(who.clone()).provider("openai", MODEL)
            })
            .await,
        );
    }
    only(
        &all,
        &[
            Outcome::Recorded,
            Outcome::InsufficientCredits,
            Outcome::CallInFlight,
        ],
    );
    let wallet = metering.store().wallet(&who, Currency::USD).await.unwrap();
    assert!(wallet.balance > -dec("0.105"), "{wallet:?}");
    assert!(
        count(&all, &Outcome::InsufficientCredits) > 0,
        "the wallet ran out"
    );
    assert_eq!(wallet.held, Decimal::ZERO);
}

/// 20 concurrent calls with one idempotency key: the provider runs once; one row, one
/// charge; the others are told a call with the key is in flight, or get the stored row.
pub async fn one_key_runs_the_provider_once<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Credits");
    let who = subscribed(&metering, plan, BillingMode::Credits, Some("10")).await;
    let key = fresh_name("key");
    let provider_calls = Arc::new(AtomicUsize::new(0));
    let outcomes = concurrently(&metering, 20, (100, 100), &provider_calls, |m, _| {
        m.billable(who.clone())
            .provider("openai", MODEL)
            .estimate(TokenUsage::new(100, 100).unwrap())
            .idempotency_key(key.clone())
    })
    .await;
    only(
        &outcomes,
        &[
            Outcome::Recorded,
            Outcome::KeyInFlight,
            Outcome::AlreadyRecorded,
        ],
    );
    assert_eq!(count(&outcomes, &Outcome::Recorded), 1);
    assert_eq!(provider_calls.load(Ordering::SeqCst), 1);
    assert_eq!(recorded_tokens(&metering, &who).await, 200);
    let wallet = metering.store().wallet(&who, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("9.997"), Decimal::ZERO));
}

/// 50 concurrent 200-token calls on a 1,000-token plan charging $1 per 1k beyond: the
/// overage rows sum to exactly 9,000 tokens and $9.00.
pub async fn overage_through_the_meter_sums_to_the_excess<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Pro")
        .with_token_limit(1_000)
        .with_overage(OveragePolicy::Charge, Some(Decimal::ONE));
    let who = subscribed(&metering, plan, BillingMode::Plan, None).await;
    let provider_calls = Arc::new(AtomicUsize::new(0));
    let outcomes = concurrently(&metering, 50, (100, 100), &provider_calls, |m, _| {
        m.billable(who.clone())
            .provider("openai", MODEL)
            .estimate(TokenUsage::new(100, 100).unwrap())
    })
    .await;
    assert_eq!(count(&outcomes, &Outcome::Recorded), 50, "{outcomes:?}");
    let (tokens, amount) = overages_of(metering.store(), &who).await;
    assert_eq!((tokens, amount), (9_000, dec("9")));
}

/// A cost-limited plan with a per-1k overage price (the seed README's Pro plan) bills the
/// tokens past the cost limit, never a zero row.
pub async fn a_cost_limit_overage_is_never_zero<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Pro")
        .with_cost_limit(dec("0.01"))
        .with_overage(OveragePolicy::Charge, Some(dec("2")));
    let who = subscribed(&metering, plan, BillingMode::Plan, None).await;
    // $0.006 a call (200 in, 200 out): the second crosses $0.01 by $0.002, a third of it.
    for _ in 0..3 {
        metering
            .meter()
            .billable(who.clone())
            .provider("openai", MODEL)
            .call(async { Ok::<_, String>(response(200, 200)) })
            .await
            .unwrap();
    }
    let (tokens, amount) = overages_of(metering.store(), &who).await;
    // 134 tokens (400 × 0.002 / 0.006, rounded up) + 400 tokens, at $2 per 1k.
    assert_eq!((tokens, amount), (534, dec("1.068")));
}

async fn overages_of<S: ConformanceStore>(store: &S, who: &Billable) -> (u64, Decimal) {
    let mut after = None;
    let (mut tokens, mut amount) = (0, Decimal::ZERO);
    loop {
        let page = store.pending_overages(after.as_ref(), 500).await.unwrap();
        let Some(last) = page.last().cloned() else {
            break;
        };
        for o in page.iter().filter(|o| &o.overage.billable == who) {
            assert!(
                o.overage.amount.amount > Decimal::ZERO,
                "a zero overage row"
            );
            tokens += o.overage.tokens;
            amount += o.overage.amount.amount;
        }
        after = Some(last);
    }
    (tokens, amount)
}

/// A store failure at any one call of a metered call stores nothing partial: either the
/// call is recorded in full (row, debit, overage) and the caller is told so, or nothing is
/// and the caller is told that; and a retry with the same idempotency key then completes
/// it exactly once. Each failure is tried before the store acts and after (a lost reply).
pub async fn a_failure_anywhere_stores_nothing_partial<S: ConformanceStore + Clone>(store: S) {
    let faulty = FaultyStore::new(store);
    for mode in [FaultMode::Before, FaultMode::After] {
        let f = faulty.clone();
        let pending = faulty.clone();
        fail_at_every_step(
            faulty.clone(),
            move |n| f.fail_call(n, mode),
            move || pending.fault_pending(),
        )
        .await;
    }
}

/// The core of [`a_failure_anywhere_stores_nothing_partial`], for any way of injecting
/// failures: `inject(n)` makes the `n`th step from now fail (`0`: none), `pending()` says
/// whether the planned failure has not happened yet. A store with statement-level
/// injection (the SeaORM store's `fail_at_step`) runs it to fail between any two statements
/// of a transaction.
///
/// For `n` = 1, 2, ... until a metered call finishes before its `n`th step: a credits-mode
/// call with an idempotency key, on a plan it goes beyond under the `charge` policy, fails
/// at step `n`; the result must say truthfully whether it was recorded, and what is stored
/// must be all of it or none of it; then the retry with the same key (after expired
/// reservations are swept) must complete it exactly once.
pub async fn fail_at_every_step<S, I, P>(store: S, inject: I, pending: P)
where
    S: ConformanceStore,
    I: Fn(u64),
    P: Fn() -> bool,
{
    let (metering, clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Pro")
        .with_token_limit(100)
        .with_overage(OveragePolicy::Charge, Some(Decimal::ONE));
    for n in 1.. {
        inject(0);
        clock.set(hour(1));
        let who = subscribed(&metering, plan.clone(), BillingMode::Credits, Some("1")).await;
        let key = fresh_name("key");
        let call = || {
            metering
                .meter()
                .billable(who.clone())
                .provider("openai", MODEL)
                .estimate(TokenUsage::new(100, 100).unwrap())
                .idempotency_key(key.clone())
                .call(async { Ok::<_, String>(response(100, 100)) })
        };
        inject(n);
        let first = call().await;
        let fired = !pending();
        inject(0);
        let store = metering.store();
        let rows = rows_with_key(store, &who, &key).await;
        assert_eq!(
            first.is_ok(),
            rows == 1,
            "failure at step {n}: the result must say whether it was recorded: {:?}",
            first.as_ref().err().map(ToString::to_string)
        );
        check_complete_or_empty(store, &who, rows).await;

        // What a lost reply left reserved expires; then the retry completes the call.
        clock.advance(Duration::minutes(11));
        metering.sweep().await.unwrap();
        let retry = outcome(call().await);
        assert!(
            matches!(retry, Outcome::Recorded | Outcome::AlreadyRecorded),
            "failure at step {n}: the retry got {retry:?}"
        );
        assert_eq!(retry == Outcome::AlreadyRecorded, rows == 1);
        assert_eq!(rows_with_key(store, &who, &key).await, 1);
        check_complete_or_empty(store, &who, 1).await;
        if !fired {
            break; // the call finished before step n: every step has failed once
        }
    }
}

async fn rows_with_key<S: ConformanceStore>(store: &S, who: &Billable, key: &str) -> usize {
    usize::from(
        store
            .usage_by_idempotency_key(who, key)
            .await
            .unwrap()
            .is_some(),
    )
}

/// `rows` calls of 200 tokens ($0.003) on a 100-token plan at $1/1k beyond, paid from a
/// $1.00 wallet: every row has its debit and its overage, and nothing is held.
async fn check_complete_or_empty<S: ConformanceStore>(store: &S, who: &Billable, rows: usize) {
    let ledger = store
        .credit_transactions(who, Currency::USD, Page::first(100))
        .await
        .unwrap();
    let debits: Vec<_> = ledger
        .iter()
        .filter(|t| t.direction == Direction::Debit)
        .collect();
    assert_eq!(debits.len(), rows, "one debit per row: {ledger:?}");
    let wallet = store.wallet(who, Currency::USD).await.unwrap();
    assert_eq!(
        wallet.balance,
        Decimal::ONE - dec("0.003") * Decimal::from(rows as u64)
    );
    let (tokens, _) = overages_of(store, who).await;
    assert_eq!(tokens, 100 * rows as u64, "one overage per row");
}

/// A fresh credits-mode billable ($1.00, 1,000 tokens a period) with a reservation of 1,000
/// tokens ($0.015) in flight.
async fn reserved_in_credits<S: ConformanceStore>(
    metering: &Metering<S>,
) -> (Billable, ai_metering_core::Reservation<S>) {
    let plan = Plan::new(fresh_name("plan"), "Credits").with_token_limit(1_000);
    let who = subscribed(metering, plan, BillingMode::Credits, Some("1")).await;
    let reservation = metering
        .meter()
        .billable(who.clone())
        .provider("openai", MODEL)
        .estimate(TokenUsage::new(500, 500).unwrap())
        .begin()
        .await
        .unwrap();
    (who, reservation)
}

/// A reservation dropped unused stops counting at once, and its hold is given back.
pub async fn a_dropped_reservation_is_released<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let (who, reservation) = reserved_in_credits(&metering).await;
    let period = reservation.entitlement().period.unwrap();
    drop(reservation);
    let store = metering.store();
    for _ in 0..10_000 {
        let usage = store.period_usage(&who, &period, hour(1)).await.unwrap();
        if usage.reserved.tokens == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let usage = store.period_usage(&who, &period, hour(1)).await.unwrap();
    assert_eq!(usage.reserved.tokens, 0, "released in the background");
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().held,
        Decimal::ZERO
    );
}

/// A stream dropped before its usage (a client that went away) is charged for what it
/// streamed, flagged estimated: the prompt's estimate and the streamed text.
pub async fn a_dropped_stream_is_charged_for_what_it_sent<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Credits");
    let who = subscribed(&metering, plan, BillingMode::Credits, Some("1")).await;
    let body = json!({
        "model": MODEL,
        "max_tokens": 1_000,
        "messages": [{"role": "user", "content": prompt(93)}]
    });
    let reservation = metering
        .meter()
        .billable(who.clone())
        .provider("openai", MODEL)
        .request(&body)
        .begin()
        .await
        .unwrap();
    let mut stream = StreamMeter::new(reservation, ai_metering_core::provider::Provider::OpenAi);
    for _ in 0..10 {
        let chunk = format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": "abcdef"}}]})
        );
        stream.push_bytes(chunk.as_bytes()).unwrap();
    }
    drop(stream);
    let store = metering.store();
    let rows = crate::builders::rows_once_recorded(store, &who).await;
    assert_eq!(rows.len(), 1, "the dropped stream was recorded");
    let row = &rows[0].entry;
    assert!(row.estimated);
    // 93 + 4 (one message) + 3 (the request) input tokens; 60 bytes of text: 20 output.
    assert_eq!(
        (row.usage.input_tokens(), row.usage.output_tokens()),
        (100, 20)
    );
    let wallet = store.wallet(&who, Currency::USD).await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.held),
        (dec("0.9986"), Decimal::ZERO)
    );
}

/// The sweeper drops reservations and holds of calls that never came back, by the clock.
pub async fn the_sweep_gives_back_what_expired<S: ConformanceStore>(store: S) {
    let (metering, clock) = metering(store);
    let (who, reservation) = reserved_in_credits(&metering).await;
    let period = reservation.entitlement().period.unwrap();
    // A crashed process: the reservation is neither recorded, released nor dropped.
    std::mem::forget(reservation);
    clock.advance(Duration::minutes(9));
    assert_eq!(
        metering.sweep().await.unwrap().total(),
        0,
        "not expired yet"
    );
    clock.advance(Duration::minutes(2));
    assert!(metering.sweep().await.unwrap().reservations >= 1);
    let store = metering.store();
    let usage = store
        .period_usage(&who, &period, metering.now())
        .await
        .unwrap();
    assert_eq!(usage.reserved.tokens, 0);
    assert_eq!(
        store.wallet(&who, Currency::USD).await.unwrap().held,
        Decimal::ZERO
    );
}

/// Runs every money-path scenario of this module against a store: one `#[test]` each.
///
/// ```
/// use ai_metering_core::store::MemoryStore;
/// ai_metering_testkit::money_path_tests!(async { MemoryStore::new() });
/// # fn main() {}
/// ```
///
/// As with [`store_conformance_tests!`](crate::store_conformance_tests), `optional:` takes
/// a future of `Option<store>`.
#[macro_export]
macro_rules! money_path_tests {
    (optional: $make_store:expr $(,)?) => {
        $crate::money_path_tests! { @cases $make_store }
    };
    ($make_store:expr $(,)?) => {
        $crate::money_path_tests! {
            @cases async { ::std::option::Option::Some($make_store.await) }
        }
    };
    (@cases $make_store:expr) => {
        $crate::__money_path_cases! {
            $make_store;
            unestimated_calls_overshoot_by_at_most_one_call,
            credits_with_max_tokens_never_go_below_zero,
            credits_without_an_estimate_stay_within_one_call,
            one_key_runs_the_provider_once,
            overage_through_the_meter_sums_to_the_excess,
            a_cost_limit_overage_is_never_zero,
            a_failure_anywhere_stores_nothing_partial,
            a_dropped_reservation_is_released,
            a_dropped_stream_is_charged_for_what_it_sent,
            the_sweep_gives_back_what_expired,
        }
    };
}

/// Implementation detail of [`money_path_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __money_path_cases {
    ($make_store:expr; $($case:ident),* $(,)?) => {
        $crate::__store_cases! {
            money_path, $crate::money_path, ::std::convert::identity;
            $make_store; $($case),*
        }
    };
}
