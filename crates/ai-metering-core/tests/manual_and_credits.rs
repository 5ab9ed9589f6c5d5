//! Usage the app counts itself (the `manual` provider, a cost given for the call or reported
//! by the provider, `.user()` as the payer) and the credit operations (top-ups with
//! metadata, `has_credits`, the billing-mode switch and its event).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use ai_metering_core::events::MeterEvent;
use ai_metering_core::plan::{BillingMode, Plan, Subscription};
use ai_metering_core::store::{MemoryStore, Page, PlanStore, ReportStore, SubscriptionStore};
use ai_metering_core::{
    Billable, CostBreakdown, Currency, Error, MeterError, Metering, Money, ReportedUsage,
    TokenUsage,
};
use rust_decimal::Decimal;

fn usd(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::USD)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn the_manual_provider_needs_no_price_and_user_alone_pays() {
    run(async {
        let metering = Metering::new(MemoryStore::new());
        let metered = metering
            .meter()
            .user("u-7")
            .provider("manual", "custom-model")
            .manual_usage(TokenUsage::new(100, 50).unwrap())
            .call_infallible(async { "ok" })
            .await
            .unwrap();
        assert_eq!(metered.record.entry.billable, Billable::new("user", "u-7"));
        assert_eq!(metered.record.entry.user_id.as_deref(), Some("u-7"));
        assert_eq!(metered.cost.total, Decimal::ZERO);
        assert!(
            !metered.cost.priced,
            "no price was applied, and the row says so"
        );
        assert_eq!(metered.usage.total_tokens(), 150);
    });
}

#[test]
fn a_given_cost_replaces_the_catalog_and_admits_unknown_models() {
    run(async {
        let metering = Metering::new(MemoryStore::new());
        let who = Billable::new("team", "acme");
        // Unknown to the catalog: refused without a cost...
        let refused = metering
            .meter()
            .billable(who.clone())
            .provider("self-hosted", "llama")
            .manual_usage(TokenUsage::new(10, 10).unwrap())
            .call_infallible(async {})
            .await;
        assert!(matches!(
            refused,
            Err(MeterError::Metering(Error::UnknownModel { .. }))
        ));
        // ...accepted, at that cost, with one.
        let metered = metering
            .meter()
            .billable(who.clone())
            .provider("self-hosted", "llama")
            .manual_usage(TokenUsage::new(10, 10).unwrap())
            .cost(usd(7))
            .call_infallible(async {})
            .await
            .unwrap();
        assert_eq!(metered.cost.total_money(), usd(7));
        assert_eq!(metered.cost.catalog_version, CostBreakdown::GIVEN_COST);
        // A known model with a given cost: the catalog is not consulted.
        let metered = metering
            .meter()
            .billable(who)
            .provider("openai", "gpt-4o-mini")
            .manual_usage(TokenUsage::new(1_000_000, 0).unwrap())
            .cost(usd(1))
            .call_infallible(async {})
            .await
            .unwrap();
        assert_eq!(metered.cost.total_money(), usd(1));
    });
}

#[test]
fn a_given_cost_in_another_currency_is_refused() {
    run(async {
        let refused = Metering::new(MemoryStore::new())
            .meter()
            .billable(Billable::new("team", "acme"))
            .provider("manual", "x")
            .manual_usage(TokenUsage::new(1, 1).unwrap())
            .cost(Money::new(Decimal::ONE, Currency::new("EUR").unwrap()))
            .call_infallible(async {})
            .await;
        assert!(matches!(
            refused,
            Err(MeterError::Metering(Error::CurrencyMismatch { .. }))
        ));
    });
}

#[test]
fn an_extractor_can_report_the_providers_own_cost() {
    run(async {
        let metering = Metering::new(MemoryStore::new());
        let metered = metering
            .meter()
            .billable(Billable::new("team", "acme"))
            .provider("openai", "gpt-4o-mini")
            .call_with(async { Ok::<_, std::io::Error>(()) }, |_| {
                Ok(ReportedUsage::new(TokenUsage::new(1_000_000, 0)?).with_cost(usd(3)))
            })
            .await
            .unwrap();
        // Not the catalog's $0.15 per million input tokens.
        assert_eq!(metered.cost.total_money(), usd(3));
    });
}

#[test]
fn credits_top_ups_keep_metadata_and_has_credits_checks_the_wallet() {
    run(async {
        let store = MemoryStore::new();
        let metering = Metering::new(store.clone());
        let who = Billable::new("user", 1);
        assert!(!metering.has_credits(&who, usd(1)).await.unwrap());
        let tx = metering
            .add_credits_with_metadata(
                &who,
                usd(500),
                "top-up",
                serde_json::json!({"payment_id": "pi_42"}),
            )
            .await
            .unwrap();
        assert_eq!(tx.metadata["payment_id"], "pi_42");
        let ledger = store
            .credit_transactions(&who, Currency::USD, Page::first(10))
            .await
            .unwrap();
        assert_eq!(
            ledger[0].metadata["payment_id"], "pi_42",
            "kept in the ledger"
        );
        assert!(metering.has_credits(&who, usd(500)).await.unwrap());
        assert!(!metering.has_credits(&who, usd(501)).await.unwrap());
        // Metadata is validated as a call's is.
        assert!(matches!(
            metering
                .add_credits_with_metadata(&who, usd(1), "top-up", serde_json::json!([1]))
                .await,
            Err(Error::InvalidMetadata(_))
        ));
    });
}

#[test]
fn switching_the_billing_mode_is_an_operation_with_an_event() {
    run(async {
        let store = MemoryStore::new();
        store.upsert_plan(&Plan::new("pro", "Pro")).await.unwrap();
        let who = Billable::new("team", "acme");
        store
            .insert_subscription(&Subscription::new(who.clone(), "pro", chrono::Utc::now()))
            .await
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let metering = Metering::builder(store.clone())
            .event_sink(move |e: &MeterEvent| sink.lock().unwrap().push(e.clone()))
            .build();

        let sub = metering
            .set_billing_mode(&who, BillingMode::Credits)
            .await
            .unwrap();
        assert_eq!(sub.billing_mode, BillingMode::Credits);
        let (_, stored) = store
            .current_subscription(&who, chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.billing_mode, BillingMode::Credits);
        // Again: nothing changes, nothing is emitted.
        metering
            .set_billing_mode(&who, BillingMode::Credits)
            .await
            .unwrap();
        let events = events.lock().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0],
            MeterEvent::BillingModeChanged {
                billable: who.clone(),
                from: BillingMode::Plan,
                to: BillingMode::Credits,
            }
        );
        assert_eq!(events[0].name(), "billing_mode_changed");
        // A billable without a subscription has no mode to switch.
        assert!(matches!(
            metering
                .set_billing_mode(&Billable::new("team", "none"), BillingMode::Credits)
                .await,
            Err(Error::NoSubscription { .. })
        ));
    });
}

#[test]
fn a_credits_reservation_tells_the_wallet_with_its_hold_and_the_settlement_after_it() {
    run(async {
        let store = MemoryStore::new();
        store.upsert_plan(&Plan::new("pro", "Pro")).await.unwrap();
        let who = Billable::new("team", "acme");
        store
            .insert_subscription(
                &Subscription::new(who.clone(), "pro", chrono::Utc::now())
                    .with_billing_mode(BillingMode::Credits),
            )
            .await
            .unwrap();
        let metering = Metering::new(store.clone());
        metering
            .add_credits(&who, usd(500), "top-up")
            .await
            .unwrap();

        let reservation = metering
            .meter()
            .billable(who.clone())
            .provider("manual", "x")
            .cost(usd(100))
            .estimate_cost(Decimal::new(120, 2))
            .begin()
            .await
            .unwrap();
        let held = reservation
            .wallet()
            .expect("a credits-mode reservation tells the wallet after its hold");
        assert_eq!(
            (held.balance, held.held, held.available()),
            (
                Decimal::new(500, 2),
                Decimal::new(120, 2),
                Decimal::new(380, 2)
            )
        );
        let recorded = reservation
            .record(TokenUsage::new(10, 10).unwrap(), false)
            .await
            .unwrap();
        let after = recorded
            .wallet
            .expect("and the settlement the wallet after it");
        assert_eq!(
            (after.balance, after.held),
            (Decimal::new(400, 2), Decimal::ZERO)
        );

        // In plan mode, a reservation says nothing of a wallet.
        let plan = Billable::new("team", "plain");
        let reservation = metering
            .meter()
            .billable(plan)
            .provider("manual", "x")
            .estimate_cost(Decimal::ONE)
            .begin()
            .await
            .unwrap();
        assert!(reservation.wallet().is_none());
        reservation.release().await.unwrap();
    });
}
