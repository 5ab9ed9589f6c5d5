//! Reservations made before the provider is known (`Meter::begin_deferred`), settled by
//! the meter that adopts them (`Meter::adopt`): what the tower `QuotaLayer` relies on to
//! reserve a route's estimate once and let the handler's meter settle it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use ai_metering_core::clock::ManualClock;
use ai_metering_core::plan::{BillingMode, Plan, Subscription};
use ai_metering_core::store::{
    CounterStore, CreditStore, MemoryStore, PlanStore, SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Error, MeterError, Metering, Money, TokenUsage};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

fn jan(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, day, 12, 0, 0).unwrap()
}

fn user() -> Billable {
    Billable::new("user", 1)
}

async fn setup(limit: u64, mode: BillingMode) -> (Metering<MemoryStore>, MemoryStore) {
    let store = MemoryStore::new();
    store
        .upsert_plan(&Plan::new("basic", "Basic").with_token_limit(limit))
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(user(), "basic", jan(1)).with_billing_mode(mode))
        .await
        .unwrap();
    let metering = Metering::builder(store.clone())
        .clock(ManualClock::new(jan(15)))
        .build();
    (metering, store)
}

async fn committed(metering: &Metering<MemoryStore>) -> (u64, u64) {
    let period = metering.config().period.period_at(jan(15)).unwrap();
    let usage = metering
        .store()
        .period_usage(&user(), &period, jan(15))
        .await
        .unwrap();
    (usage.recorded.tokens, usage.reserved.tokens)
}

fn deferred(metering: &Metering<MemoryStore>, tokens: u64) -> ai_metering_core::Meter<MemoryStore> {
    metering
        .meter()
        .billable(user())
        .feature("chat")
        .estimate(TokenUsage::new(tokens, 0).unwrap())
}

#[tokio::test]
async fn a_deferred_reservation_counts_and_its_check_includes_it() {
    let (metering, _store) = setup(1_000, BillingMode::Plan).await;
    let reservation = deferred(&metering, 400).begin_deferred().await.unwrap();
    assert_eq!(reservation.provider(), None);
    assert_eq!(reservation.check().remaining_tokens, Some(600));
    assert_eq!(committed(&metering).await, (0, 400));
    // A second one that does not fit is refused.
    let refused = deferred(&metering, 700).begin_deferred().await.unwrap_err();
    assert!(matches!(refused, Error::LimitExceeded { .. }), "{refused}");
    reservation.release().await.unwrap();
    assert_eq!(committed(&metering).await, (0, 0));
}

#[tokio::test]
async fn the_adopting_meter_settles_the_reservation_instead_of_reserving_again() {
    let (metering, store) = setup(1_000, BillingMode::Plan).await;
    let reservation = deferred(&metering, 900).begin_deferred().await.unwrap();
    // Reserving 900 more would not fit; adopting settles the existing 900 instead.
    let metered = metering
        .meter()
        .adopt(reservation)
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(900, 0).unwrap())
        .manual_usage(TokenUsage::new(100, 200).unwrap())
        .call(async { Ok::<_, Infallible>(serde_json::json!({})) })
        .await
        .unwrap();
    assert_eq!(metered.check.remaining_tokens, Some(700));
    assert_eq!(committed(&metering).await, (300, 0));
    let rows = store
        .query_usage(
            &UsageFilter::for_billable(user()),
            ai_metering_core::store::Page::first(5),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    // The reservation's feature is kept, the meter's provider and model are used.
    assert_eq!(rows[0].entry.feature.as_deref(), Some("chat"));
    assert_eq!(rows[0].entry.model, "gpt-4o-mini");
}

#[tokio::test]
async fn an_adopting_meter_that_fails_before_the_call_releases_the_reservation() {
    let (metering, _store) = setup(1_000, BillingMode::Plan).await;
    let reservation = deferred(&metering, 500).begin_deferred().await.unwrap();
    let err = metering
        .meter()
        .adopt(reservation)
        .billable(Billable::new("user", 2))
        .provider("openai", "gpt-4o-mini")
        .call(async { Ok::<_, Infallible>(serde_json::json!({})) })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MeterError::Metering(Error::InvalidInput(m)) if m.contains("belongs to user:1")),
        "{err}"
    );
    assert_eq!(committed(&metering).await, (0, 0));

    // No provider at all: refused, released.
    let reservation = deferred(&metering, 500).begin_deferred().await.unwrap();
    let err = metering
        .meter()
        .adopt(reservation)
        .manual_usage(TokenUsage::new(1, 1).unwrap())
        .call(async { Ok::<_, Infallible>(serde_json::json!({})) })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no provider"), "{err}");
    assert_eq!(committed(&metering).await, (0, 0));
}

#[tokio::test]
async fn recording_a_deferred_reservation_needs_a_provider() {
    let (metering, _store) = setup(1_000, BillingMode::Plan).await;
    let reservation = deferred(&metering, 500).begin_deferred().await.unwrap();
    let usage = TokenUsage::new(10, 10).unwrap();
    let err = deferred(&metering, 1)
        .begin_deferred()
        .await
        .unwrap()
        .record(usage, false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no provider and model yet"),
        "{err}"
    );
    let outcome = reservation
        .with_provider("openai", "gpt-4o-mini")
        .record(usage, false)
        .await
        .unwrap();
    assert_eq!(outcome.record.entry.usage.total_tokens(), 20);
}

#[tokio::test]
async fn credits_mode_without_a_cost_estimate_refuses_an_empty_wallet_and_debits_after() {
    let (metering, store) = setup(1_000_000, BillingMode::Credits).await;
    let currency = metering.catalog().currency();
    let err = deferred(&metering, 500).begin_deferred().await.unwrap_err();
    assert!(
        matches!(err, Error::InsufficientCredits { available, .. } if available == Decimal::ZERO),
        "{err}"
    );
    assert_eq!(
        committed(&metering).await,
        (0, 0),
        "the refused reservation is released"
    );

    store
        .add_credits(
            &user(),
            Money::new(Decimal::ONE, currency),
            "top-up",
            jan(15),
        )
        .await
        .unwrap();
    let reservation = deferred(&metering, 500).begin_deferred().await.unwrap();
    let metered = metering
        .meter()
        .adopt(reservation)
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(1_000, 1_000).unwrap())
        .call(async { Ok::<_, Infallible>(serde_json::json!({})) })
        .await
        .unwrap();
    let wallet = store.wallet(&user(), currency).await.unwrap();
    assert_eq!(wallet.balance, Decimal::ONE - metered.cost.total);
    assert!(metered.cost.total > Decimal::ZERO);

    // An explicit cost estimate is held against the wallet.
    let err = deferred(&metering, 500)
        .estimate_cost(Decimal::from(5))
        .begin_deferred()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InsufficientCredits { .. }), "{err}");
}

/// A handler that estimates its call higher than the layer did grows the reservation in one
/// step, or is refused before the provider runs (and the layer's reservation is given back).
#[tokio::test]
async fn an_adopting_meter_grows_the_reservation_or_is_refused_before_the_call() {
    let (metering, _store) = setup(1_000, BillingMode::Plan).await;
    // The layer reserved 100; the handler knows the call needs 600.
    let reservation = deferred(&metering, 100).begin_deferred().await.unwrap();
    let grown = metering
        .meter()
        .adopt(reservation)
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(600, 0).unwrap())
        .begin()
        .await
        .unwrap();
    assert_eq!(grown.amount().tokens, 600);
    assert_eq!(committed(&metering).await, (0, 600), "600, not 700");

    // Another layer reservation of 100 fits (700), but growing it to 500 does not (1,100).
    let reservation = deferred(&metering, 100).begin_deferred().await.unwrap();
    assert_eq!(committed(&metering).await, (0, 700));
    let called = std::sync::atomic::AtomicBool::new(false);
    let refused = metering
        .meter()
        .adopt(reservation)
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(500, 0).unwrap())
        .call(async {
            called.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, Infallible>(serde_json::json!({}))
        })
        .await;
    assert!(matches!(
        refused,
        Err(MeterError::Metering(Error::LimitExceeded { .. }))
    ));
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        committed(&metering).await,
        (0, 600),
        "the refused one was given back"
    );
    grown.release().await.unwrap();
}

/// A layer placeholder (no estimate anywhere) adopted by a meter that has nothing to go on
/// becomes the billable's one unestimated call; a second such call is refused.
#[tokio::test]
async fn a_placeholder_without_any_estimate_becomes_the_one_unestimated_call() {
    let (metering, _store) = setup(1_000, BillingMode::Plan).await;
    let placeholder = || metering.meter().billable(user()).begin_deferred();
    let first = metering
        .meter()
        .adopt(placeholder().await.unwrap())
        .provider("openai", "gpt-4o-mini")
        .begin()
        .await
        .unwrap();
    let second = metering
        .meter()
        .adopt(placeholder().await.unwrap())
        .provider("openai", "gpt-4o-mini")
        .begin()
        .await;
    assert!(
        matches!(second, Err(Error::CallInFlight { .. })),
        "{second:?}"
    );
    assert_eq!(
        committed(&metering).await,
        (0, 0),
        "the refused placeholder is gone"
    );
    first.release().await.unwrap();
}

/// Without a limit that refuses calls or a wallet, nothing can be overspent: calls that
/// cannot be estimated run side by side (metering only).
#[tokio::test]
async fn unestimated_calls_of_an_unguarded_billable_are_not_held_back() {
    let metering = Metering::builder(MemoryStore::new())
        .clock(ManualClock::new(jan(15)))
        .build();
    let begin = || {
        metering
            .meter()
            .billable(Billable::new("user", "free"))
            .provider("openai", "gpt-4o-mini")
            .begin()
    };
    let first = begin().await.unwrap();
    let second = begin().await.unwrap();
    first.release().await.unwrap();
    second.release().await.unwrap();
}

#[tokio::test]
async fn on_settled_tells_the_adopting_meters_settlement_and_nothing_else() {
    use std::sync::{Arc, Mutex};

    let (metering, _store) = setup(1_000, BillingMode::Plan).await;
    let seen: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    // A reservation of 400 whose hook notes the remaining tokens it is told.
    let watched = || async {
        let seen = Arc::clone(&seen);
        deferred(&metering, 400)
            .begin_deferred()
            .await
            .unwrap()
            .on_settled(move |check| seen.lock().unwrap().push(check.remaining_tokens))
    };

    // Adopted by a meter (and handed through `erased`): told once, after the commit.
    let reservation = watched().await;
    let metered = metering
        .erased()
        .meter()
        .adopt(reservation.erased())
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(100, 200).unwrap())
        .call(async { Ok::<_, Infallible>(()) })
        .await
        .unwrap();
    assert_eq!(metered.check.remaining_tokens, Some(700));
    assert_eq!(*seen.lock().unwrap(), vec![Some(700)]);

    // Released, or failed before anything was stored: not told.
    watched().await.release().await.unwrap();
    let failed = watched().await;
    let error = metering
        .meter()
        .adopt(failed)
        .provider("openai", "gpt-4o-mini")
        .call(async { Err::<(), _>(std::io::Error::other("upstream down")) })
        .await
        .unwrap_err();
    assert!(matches!(error, MeterError::Provider(_)), "{error}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(committed(&metering).await, (300, 0));
}
