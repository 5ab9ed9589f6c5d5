//! The Meter end to end on the MemoryStore: the original's AiMeter tests, ported, and the
//! races it lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ai_metering_core::clock::{Clock, ManualClock};
use ai_metering_core::events::{BroadcastSink, MeterEvent};
use ai_metering_core::limit::LimitKind;
use ai_metering_core::period::{Period, PeriodSpec};
use ai_metering_core::plan::{BillingMode, OveragePolicy, Plan, Subscription};
use ai_metering_core::pricing::{ModelPrice, PriceCatalog};
use ai_metering_core::store::{
    CounterStore, CreditStore, MemoryStore, OverageStore, PlanStore, ReportStore,
    SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{
    Billable, Currency, Error, MeterError, Metering, Money, TokenCounts, TokenUsage,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;

fn jan(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, day, 12, 0, 0).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// gpt-4o-mini at $0.15/M input, $0.075/M cached, $0.60/M output.
fn catalog() -> PriceCatalog {
    let mut c = PriceCatalog::empty(Currency::USD);
    c.insert(
        "openai",
        "gpt-4o-mini",
        ModelPrice::per_million(dec("0.15"), dec("0.60"))
            .and_then(|p| p.with_cached_input(dec("0.075")))
            .unwrap(),
    );
    c
}

struct Fixture {
    metering: Metering<MemoryStore>,
    store: MemoryStore,
    clock: ManualClock,
    events: tokio::sync::broadcast::Receiver<MeterEvent>,
}

async fn fixture(plan: Option<Plan>, mode: BillingMode, who: &Billable) -> Fixture {
    let store = MemoryStore::new();
    let clock = ManualClock::new(jan(15));
    let (sink, events) = BroadcastSink::new(1024);
    if let Some(plan) = plan {
        store.upsert_plan(&plan).await.unwrap();
        let sub = Subscription::new(who.clone(), plan.slug.clone(), jan(1)).with_billing_mode(mode);
        store.insert_subscription(&sub).await.unwrap();
    }
    let metering = Metering::builder(store.clone())
        .catalog(catalog())
        .period(PeriodSpec::monthly())
        .clock(clock.clone())
        .event_sink(sink)
        .build();
    Fixture {
        metering,
        store,
        clock,
        events,
    }
}

fn user() -> Billable {
    Billable::new("user", 42)
}

fn openai_body(prompt: u64, cached: u64, completion: u64) -> serde_json::Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": 0}
        }
    })
}

/// Calls the provider through a meter for `user()`, expecting a refusal before the call:
/// returns the error, having checked that the provider never ran.
async fn refused_before_the_call(
    metering: &Metering<MemoryStore>,
) -> MeterError<serde_json::Value, std::io::Error> {
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let err = metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .call(async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(openai_body(1, 0, 1))
        })
        .await
        .unwrap_err();
    assert_eq!(
        called.load(Ordering::SeqCst),
        0,
        "the provider must not be called"
    );
    err
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<MeterEvent>) -> Vec<MeterEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn successful_call_records_a_priced_row() {
    let mut f = fixture(None, BillingMode::Plan, &user()).await;
    let metered = f
        .metering
        .meter()
        .billable(user())
        .user(7)
        .provider("openai", "gpt-4o-mini")
        .feature("email_reply")
        .meta(json!({"ticket": 12, "api_key": "sk-secret"}))
        .call(async { Ok::<_, std::io::Error>(openai_body(1000, 400, 500)) })
        .await
        .unwrap();

    // The worked example: 600 uncached + 400 cached input, 500 output.
    assert_eq!(metered.cost.total, dec("0.00042"));
    assert_eq!(metered.usage.cached_input_tokens(), 400);
    let rows = f
        .store
        .query_usage(&UsageFilter::for_billable(user()), Default::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0].entry;
    assert_eq!(row.provider, "openai");
    assert_eq!(row.model, "gpt-4o-mini");
    assert_eq!(row.feature.as_deref(), Some("email_reply"));
    assert_eq!(row.user_id.as_deref(), Some("7"));
    assert_eq!(row.occurred_at, jan(15));
    assert!(!row.estimated);
    assert_ne!(
        row.metadata["api_key"],
        json!("sk-secret"),
        "secrets are redacted"
    );
    assert_eq!(row.metadata["ticket"], json!(12));
    assert_eq!(metered.record_id(), rows[0].id);

    let events = drain(&mut f.events);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MeterEvent::UsageRecorded { .. }))
    );
}

#[tokio::test]
async fn exhausted_limit_refuses_before_the_provider_runs() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    f.metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(600, 400).unwrap())
        .call(async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();

    let err = refused_before_the_call(&f.metering).await;
    match err {
        MeterError::Metering(Error::LimitExceeded { check }) => {
            assert_eq!(check.exceeded, Some(LimitKind::Tokens));
            assert_eq!(check.remaining_tokens, Some(0));
            assert_eq!(
                check.reset_at,
                Some(Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap())
            );
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn repeated_idempotency_key_returns_the_stored_record_without_calling_again() {
    let f = fixture(None, BillingMode::Plan, &user()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let c = calls.clone();
        let result = f
            .metering
            .meter()
            .billable(user())
            .provider("openai", "gpt-4o-mini")
            .idempotency_key("req-123")
            .call(async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(openai_body(10, 0, 5))
            })
            .await;
        match result {
            Ok(m) => ids.push(m.record_id()),
            Err(MeterError::AlreadyRecorded(record)) => ids.push(record.id),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(ids[0], ids[1]);
    let sums = f
        .store
        .sum_usage(&UsageFilter::for_billable(user()))
        .await
        .unwrap();
    assert_eq!(sums.calls, 1);
}

#[tokio::test]
async fn manual_usage_is_recorded_as_given() {
    let f = fixture(None, BillingMode::Plan, &user()).await;
    let m = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(100, 200).unwrap())
        .call(async { Ok::<_, std::io::Error>("custom") })
        .await
        .unwrap();
    assert_eq!(m.usage.total_tokens(), 300);
    assert_eq!(m.record.entry.usage.total_tokens(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_exceed_the_budget() {
    // A budget of exactly ten calls of 100 tokens each, hit by 100 parallel calls.
    let plan = Plan::new("ten", "Ten calls").with_token_limit(1000);
    let f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let metering = f.metering.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            metering
                .meter()
                .billable(user())
                .provider("openai", "gpt-4o-mini")
                .estimate(TokenUsage::new(60, 40).unwrap())
                .call(async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok::<_, std::io::Error>(openai_body(60, 0, 40))
                })
                .await
                .is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "refused calls never reach the provider"
    );
    let sums = f
        .store
        .sum_usage(&UsageFilter::for_billable(user()))
        .await
        .unwrap();
    assert_eq!(sums.total_tokens, 1000);
    assert_eq!(sums.calls, 10);
}

#[tokio::test]
async fn provider_error_releases_the_reservation_and_is_returned_unchanged() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let mut f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let err = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(900, 0).unwrap())
        .call(async { Err::<serde_json::Value, _>(std::io::Error::other("upstream 500")) })
        .await
        .unwrap_err();
    match err {
        MeterError::Provider(e) => assert_eq!(e.to_string(), "upstream 500"),
        other => panic!("{other:?}"),
    }
    let status = f.metering.check(&user(), Default::default()).await.unwrap();
    assert_eq!(
        status.check.remaining_tokens,
        Some(1000),
        "nothing stays reserved"
    );
    let events = drain(&mut f.events);
    assert!(events.iter().any(
        |e| matches!(e, MeterEvent::ProviderCallFailed { error, .. } if error == "upstream 500")
    ));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, MeterEvent::UsageRecorded { .. }))
    );
}

#[tokio::test]
async fn unknown_model_and_bad_feature_fail_before_the_call() {
    let f = fixture(None, BillingMode::Plan, &user()).await;
    let err = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-nonexistent")
        .call(async { Ok::<_, std::io::Error>(openai_body(1, 0, 1)) })
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeterError::Metering(Error::UnknownModel { .. })),
        "{err:?}"
    );

    let err = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .feature("no spaces allowed")
        .call(async { Ok::<_, std::io::Error>(openai_body(1, 0, 1)) })
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeterError::Metering(Error::InvalidFeature { .. })),
        "{err:?}"
    );

    let err = f
        .metering
        .meter()
        .provider("openai", "gpt-4o-mini")
        .call(async { Ok::<_, std::io::Error>(openai_body(1, 0, 1)) })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no billable"), "{err}");
}

#[tokio::test]
async fn response_without_usage_is_handed_back_not_recorded_as_zero() {
    let f = fixture(None, BillingMode::Plan, &user()).await;
    let err = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .call(async { Ok::<_, std::io::Error>(json!({"choices": []})) })
        .await
        .unwrap_err();
    match err {
        MeterError::NotRecorded { response, error } => {
            assert_eq!(response, json!({"choices": []}));
            assert!(matches!(error, Error::NoUsage { .. }), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    let sums = f.store.sum_usage(&UsageFilter::default()).await.unwrap();
    assert_eq!(sums.calls, 0);
}

#[tokio::test]
async fn missing_usage_with_an_estimate_records_the_estimate_flagged() {
    let f = fixture(None, BillingMode::Plan, &user()).await;
    let m = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(50, 50).unwrap())
        .call(async { Ok::<_, std::io::Error>(json!({"choices": []})) })
        .await
        .unwrap();
    assert!(m.record.entry.estimated);
    assert_eq!(m.usage.total_tokens(), 100);
}

#[tokio::test]
async fn approaching_fires_once_per_threshold_per_period() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let mut f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let approaching = |events: &[MeterEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, MeterEvent::LimitApproaching { .. }))
            .count()
    };
    let call = |n: u64| {
        f.metering
            .meter()
            .billable(user())
            .provider("openai", "gpt-4o-mini")
            .manual_usage(TokenUsage::new(n, 0).unwrap())
            .call(async { Ok::<_, std::io::Error>(()) })
    };
    // 85%, 90%, 95%: all above the 80% threshold, one notice.
    call(850).await.unwrap();
    call(50).await.unwrap();
    call(50).await.unwrap();
    let events = drain(&mut f.events);
    assert_eq!(approaching(&events), 1);

    // Next month it can fire again.
    f.clock
        .set(Utc.with_ymd_and_hms(2024, 2, 3, 0, 0, 0).unwrap());
    let m = call(900).await.unwrap();
    assert_eq!(
        m.check.remaining_tokens,
        Some(100),
        "January's usage does not count"
    );
    assert_eq!(approaching(&drain(&mut f.events)), 1);
}

#[tokio::test]
async fn credits_mode_holds_before_and_deducts_the_actual_cost_after() {
    let plan = Plan::new("credits", "Credits").with_token_limit(10_000_000);
    let mut f = fixture(Some(plan), BillingMode::Credits, &user()).await;
    let called = Arc::new(AtomicUsize::new(0));

    // An empty wallet: refused before the provider is called.
    let c = called.clone();
    let err = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(1000, 500).unwrap())
        .call(async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(openai_body(1000, 0, 500))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeterError::Metering(Error::InsufficientCredits { .. })),
        "{err:?}"
    );
    assert_eq!(called.load(Ordering::SeqCst), 0);

    let one_dollar = Money::new(Decimal::ONE, Currency::USD);
    f.store
        .add_credits(&user(), one_dollar, "top-up", jan(15))
        .await
        .unwrap();
    let m = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(1000, 500).unwrap())
        .call(async { Ok::<_, std::io::Error>(openai_body(1000, 400, 500)) })
        .await
        .unwrap();
    let wallet = f.store.wallet(&user(), Currency::USD).await.unwrap();
    assert_eq!(wallet.balance, Decimal::ONE - m.cost.total);
    assert_eq!(wallet.held, Decimal::ZERO);
    let events = drain(&mut f.events);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MeterEvent::CreditsDeducted { .. }))
    );
}

#[tokio::test]
async fn charge_policy_bills_only_the_excess_at_the_plan_price() {
    let plan = Plan::new("pro", "Pro")
        .with_token_limit(1000)
        .with_overage(OveragePolicy::Charge, Some(dec("0.01")));
    let mut f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let call = |n: u64| {
        f.metering
            .meter()
            .billable(user())
            .provider("openai", "gpt-4o-mini")
            .manual_usage(TokenUsage::new(n, 0).unwrap())
            .call(async { Ok::<_, std::io::Error>(()) })
    };
    call(800).await.unwrap();
    // This call crosses the limit: 300 of its 500 tokens are beyond it.
    let crossing = call(500).await.unwrap();
    // Past the limit, all of it is overage.
    call(200).await.unwrap();
    let pending = f.store.pending_overages(None, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].overage.usage_id, crossing.record_id());
    assert_eq!(pending[0].overage.tokens, 300);
    assert_eq!(pending[0].overage.amount.amount, dec("0.003"));
    assert_eq!(pending[1].overage.tokens, 200);
    assert!(
        drain(&mut f.events)
            .iter()
            .any(|e| matches!(e, MeterEvent::OverageCharged { .. }))
    );
}

#[tokio::test]
async fn begin_and_record_meter_a_stream() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let reservation = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(100, 400).unwrap())
        .begin()
        .await
        .unwrap();
    let during = f.metering.check(&user(), Default::default()).await.unwrap();
    assert_eq!(
        during.check.remaining_tokens,
        Some(500),
        "the estimate is reserved"
    );
    let usage = TokenUsage::try_from(TokenCounts {
        input: 100,
        output: 250,
        ..Default::default()
    })
    .unwrap();
    let outcome = reservation.record(usage, false).await.unwrap();
    assert_eq!(outcome.check.remaining_tokens, Some(650));
}

#[tokio::test]
async fn expired_reservations_stop_counting() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let abandoned = f
        .metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(1000, 0).unwrap())
        .begin()
        .await
        .unwrap();
    drop(abandoned);
    let blocked = f.metering.check(&user(), Default::default()).await.unwrap();
    assert!(blocked.is_blocked());
    f.clock.advance(Duration::minutes(11));
    let later = f.metering.check(&user(), Default::default()).await.unwrap();
    assert!(!later.is_blocked());
    assert_eq!(f.store.expire_reservations(f.clock.now()).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_credit_calls_never_overdraw_the_wallet() {
    let plan = Plan::new("credits", "Credits");
    let f = fixture(Some(plan), BillingMode::Credits, &user()).await;
    // One call (1000 input, 500 output) costs $0.00045; the wallet covers exactly 60.
    let per_call = dec("0.00045");
    let wallet = Money::new(per_call * Decimal::from(60), Currency::USD);
    f.store
        .add_credits(&user(), wallet, "top-up", jan(15))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let metering = f.metering.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            metering
                .meter()
                .billable(user())
                .provider("openai", "gpt-4o-mini")
                .estimate(TokenUsage::new(1000, 500).unwrap())
                .call(async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok::<_, std::io::Error>(openai_body(1000, 0, 500))
                })
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(m) => {
                assert_eq!(m.cost.total, per_call);
                ok += 1;
            }
            Err(MeterError::Metering(Error::InsufficientCredits { .. })) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 60);
    assert_eq!(calls.load(Ordering::SeqCst), 60);
    let balance = f.store.wallet(&user(), Currency::USD).await.unwrap();
    assert_eq!(balance.balance, Decimal::ZERO);
    assert_eq!(balance.held, Decimal::ZERO);
    let ledger = f
        .store
        .credit_transactions(
            &user(),
            Currency::USD,
            ai_metering_core::store::Page::first(1000),
        )
        .await
        .unwrap();
    let sum: Decimal = ledger
        .iter()
        .map(|t| match t.direction {
            ai_metering_core::store::Direction::Credit => t.amount.amount,
            ai_metering_core::store::Direction::Debit => -t.amount.amount,
        })
        .sum();
    assert_eq!(sum, balance.balance, "the ledger sums to the balance");
    assert_eq!(ledger.len(), 61);
}

#[tokio::test]
async fn holds_of_calls_that_never_came_back_expire() {
    let plan = Plan::new("credits", "Credits");
    let f = fixture(Some(plan), BillingMode::Credits, &user()).await;
    let one_call = Money::new(dec("0.00045"), Currency::USD);
    f.store
        .add_credits(&user(), one_call, "top-up", jan(15))
        .await
        .unwrap();
    let meter = || {
        f.metering
            .meter()
            .billable(user())
            .provider("openai", "gpt-4o-mini")
            .estimate(TokenUsage::new(1000, 500).unwrap())
    };
    // A call that holds the whole wallet and is never settled (a crashed request).
    let abandoned = meter().begin().await.unwrap();
    drop(abandoned);
    let err = meter().begin().await.unwrap_err();
    assert!(matches!(err, Error::InsufficientCredits { .. }), "{err:?}");
    // Past the reservation TTL the stale hold is swept when it is in the way.
    f.clock.advance(Duration::minutes(11));
    let reservation = meter().begin().await.unwrap();
    reservation.release().await.unwrap();
    assert_eq!(
        f.store.wallet(&user(), Currency::USD).await.unwrap().held,
        Decimal::ZERO
    );
}

#[tokio::test]
async fn memory_store_claims_webhook_events_once() {
    use ai_metering_core::store::WebhookEventStore;
    let store = MemoryStore::new();
    assert!(store.claim_event("evt_1", jan(1)).await.unwrap());
    assert!(!store.claim_event("evt_1", jan(2)).await.unwrap());
    store.forget_event("evt_1").await.unwrap();
    assert!(store.claim_event("evt_1", jan(3)).await.unwrap());
}

#[tokio::test]
async fn adding_credits_emits_credits_added() {
    let mut f = fixture(None, BillingMode::Plan, &user()).await;
    let five = Money::new(Decimal::from(5), Currency::USD);
    let tx = f
        .metering
        .add_credits(&user(), five, "top-up")
        .await
        .unwrap();
    assert_eq!(tx.balance_after, Decimal::from(5));
    let events = drain(&mut f.events);
    assert!(matches!(
        events.as_slice(),
        [MeterEvent::CreditsAdded { amount, balance_after, .. }] if *amount == five && *balance_after == Decimal::from(5)
    ));
}

#[tokio::test]
async fn refresh_rereads_the_usage_under_the_same_entitlement() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let before = f.metering.check(&user(), Default::default()).await.unwrap();
    f.metering
        .meter()
        .billable(user())
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(300, 0).unwrap())
        .call(async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    let after = f.metering.refresh(&before).await.unwrap();
    assert_eq!(before.check.remaining_tokens, Some(1000));
    assert_eq!(after.check.remaining_tokens, Some(700));
    assert_eq!(after.entitlement.period, before.entitlement.period);
}

#[tokio::test]
async fn a_required_subscription_refuses_billables_without_one_before_the_call() {
    let store = MemoryStore::new();
    let metering = Metering::builder(store.clone())
        .catalog(catalog())
        .config(ai_metering_core::MeteringConfig {
            require_subscription: true,
            ..Default::default()
        })
        .clock(ManualClock::new(jan(15)))
        .build();

    let err = refused_before_the_call(&metering).await;
    match err {
        MeterError::Metering(Error::NoSubscription { billable }) => assert_eq!(billable, user()),
        other => panic!("expected NoSubscription, got {other:?}"),
    }
    let status = metering.check(&user(), Default::default()).await;
    assert!(matches!(status, Err(Error::NoSubscription { .. })));
    let recorded = store
        .query_usage(&UsageFilter::default(), Default::default())
        .await
        .unwrap();
    assert!(
        recorded.is_empty(),
        "nothing is recorded for a refused call"
    );

    // With a subscription, the same billable is metered.
    store
        .upsert_plan(&Plan::new("basic", "Basic").with_token_limit(1000))
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(user(), "basic", jan(1)))
        .await
        .unwrap();
    assert!(metering.check(&user(), Default::default()).await.is_ok());
}

/// A known entitlement (the layer's cached one) decides which limits apply without reading
/// the subscription again; one of another billable, or whose period has ended, is ignored.
#[tokio::test]
async fn a_known_entitlement_is_used_only_for_its_billable_and_period() {
    let plan = Plan::new("basic", "Basic").with_token_limit(1000);
    let f = fixture(Some(plan), BillingMode::Plan, &user()).await;
    let mut known = f.metering.entitlement(&user(), jan(15)).await.unwrap();
    known.limits.tokens = Some(10);
    let begin = |entitlement| {
        f.metering
            .meter()
            .billable(user())
            .provider("openai", "gpt-4o-mini")
            .estimate(TokenUsage::new(100, 0).unwrap())
            .entitlement(entitlement)
            .begin()
    };

    // Its (cached) limit of 10 tokens refuses the 100-token call: it was used.
    match begin(known.clone()).await {
        Err(Error::LimitExceeded { check }) => assert_eq!(check.limits.tokens, Some(10)),
        other => panic!("expected LimitExceeded under the known limits, got {other:?}"),
    }

    // Another billable's entitlement is ignored: the stored plan's 1,000 tokens apply.
    let mut foreign = known.clone();
    foreign.billable = Billable::new("user", 7);
    begin(foreign).await.unwrap().release().await.unwrap();

    // So is one whose period has ended.
    let mut ended = known;
    ended.period = Some(Period::new(jan(1) - Duration::days(31), jan(1)).unwrap());
    begin(ended).await.unwrap().release().await.unwrap();
}
