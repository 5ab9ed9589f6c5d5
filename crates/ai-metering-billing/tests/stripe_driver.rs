//! The Stripe driver and the overage sync against a local stand-in for Stripe's API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use ai_metering_billing::stripe::{
    MetaCustomerLookup, MeterValue, StripeBillingDriver, StripeMode,
};
use ai_metering_billing::{
    BillingDriver, BillingError, NullBillingDriver, ReportOutcome, SyncOutcome, report_overage_now,
    sync_overages,
};
use ai_metering_core::plan::Subscription;
use ai_metering_core::store::{MemoryStore, OverageStore, SubscriptionStore};
use ai_metering_core::{Billable, Currency, RateTable};
use common::{Failure, KEY, customers, money, overage, start, t0};

fn driver(base: &str, mode: StripeMode) -> StripeBillingDriver<fn(&Billable) -> Option<String>> {
    StripeBillingDriver::builder(KEY, mode, customers as fn(&Billable) -> Option<String>)
        .base_url(base)
        .build()
        .unwrap()
}

fn team(id: &str) -> Billable {
    Billable::new("team", id)
}

#[tokio::test]
async fn meter_events_are_form_encoded_with_the_key_and_a_stable_identifier() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    let o = overage(&store, &team("acme"), 7, 1_500, money("0.45", "usd")).await;
    let driver = driver(&base, StripeMode::meter_events("ai_overage_tokens"));

    let report = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!((report.synced, report.failed, report.skipped), (1, 0, 0));

    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/v1/billing/meter_events");
    assert_eq!(
        r.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let identifier = format!("ai-overage-{}", o.id);
    assert_eq!(r.idempotency_key.as_deref(), Some(identifier.as_str()));
    let fields: Vec<(&str, &str)> = r
        .form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let timestamp = o.overage.created_at.timestamp().to_string();
    assert_eq!(
        fields,
        [
            ("event_name", "ai_overage_tokens"),
            ("payload[stripe_customer_id]", "cus_acme"),
            ("payload[value]", "1500"),
            ("identifier", identifier.as_str()),
            ("timestamp", timestamp.as_str()),
        ]
    );
    // Brackets are percent-encoded on the wire, as form encoding requires.
    assert!(
        r.body.contains("payload%5Bstripe_customer_id%5D=cus_acme"),
        "{}",
        r.body
    );

    assert!(store.pending_overages(None, 10).await.unwrap().is_empty());
    // The row is synced under the meter event's identifier, once: a second run sends nothing.
    let again = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!(again.synced + again.failed + again.skipped, 0);
    assert_eq!(stripe.seen().len(), 1);
}

#[tokio::test]
async fn meter_value_can_be_the_amount_in_minor_units() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    overage(&store, &team("acme"), 1, 1_500, money("0.125", "usd")).await;
    let mode = StripeMode::MeterEvents {
        event_name: "ai_overage_cents".into(),
        value: MeterValue::MinorUnits,
    };
    let driver = StripeBillingDriver::builder(KEY, mode, customers)
        .base_url(&base)
        .payload_keys("customer", "cents")
        .stripe_version("2025-03-31.basil")
        .build()
        .unwrap();
    let report = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!(report.synced, 1, "{:?}", report.errors);
    let r = &stripe.seen()[0];
    assert_eq!(
        r.field("payload[cents]"),
        Some("13"),
        "half up, never truncated"
    );
    assert_eq!(r.field("payload[customer]"), Some("cus_acme"));
    assert_eq!(r.stripe_version.as_deref(), Some("2025-03-31.basil"));
}

#[tokio::test]
async fn invoice_items_round_half_up_in_minor_units_with_zero_decimal_currencies_right() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    let usd = overage(&store, &team("acme"), 1, 2_000, money("0.295", "USD")).await;
    let jpy = overage(&store, &team("kaisha"), 2, 3_000, money("1234.5", "JPY")).await;
    let driver = driver(&base, StripeMode::InvoiceItems);

    let report = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!(report.synced, 2, "{:?}", report.errors);
    let seen = stripe.seen();
    let first = &seen[0];
    assert_eq!(first.path, "/v1/invoiceitems");
    assert_eq!(first.field("customer"), Some("cus_acme"));
    // The original sent (int)(0.295 * 100) = 29.
    assert_eq!(first.field("amount"), Some("30"));
    assert_eq!(first.field("currency"), Some("usd"));
    assert_eq!(
        first.field("description"),
        Some("AI usage overage - 2000 tokens (2025-06-01 to 2025-06-30)")
    );
    assert_eq!(
        first.field("metadata[ai_metering_overage_id]"),
        Some(usd.id.to_string().as_str())
    );
    assert_eq!(first.field("metadata[ai_metering_usage_id]"), Some("1"));
    assert_eq!(first.field("metadata[billable]"), Some("team:acme"));
    let key = format!("ai-overage-{}", usd.id);
    assert_eq!(first.idempotency_key.as_deref(), Some(key.as_str()));

    let second = &seen[1];
    assert_eq!(
        second.field("amount"),
        Some("1235"),
        "yen have no minor unit"
    );
    assert_eq!(second.field("currency"), Some("jpy"));

    // The rows are synced with Stripe's invoice item ids.
    let billed = stripe.billed();
    let ids: Vec<&str> = billed.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    // A stale copy of a synced row is reported again, but Stripe replays the first result
    // for its key, and the row is not marked twice.
    let outcome = report_overage_now(&store, &driver, &jpy, t0())
        .await
        .unwrap();
    assert_eq!(outcome, SyncOutcome::AlreadySynced);
    assert_eq!(stripe.billed().len(), 2);
}

#[tokio::test]
async fn a_retry_after_a_500_does_not_bill_twice() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    let o = overage(&store, &team("acme"), 1, 100, money("1.00", "usd")).await;
    let driver = driver(&base, StripeMode::InvoiceItems);

    // Stripe created the item but the answer was a 500.
    stripe.fail_next(Failure::AfterBilling);
    let first = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!((first.synced, first.failed), (0, 1));
    let error = &first.errors[0].error;
    assert!(error.is_retryable(), "{error}");
    assert!(matches!(
        error,
        BillingError::Transient {
            status: Some(500),
            ..
        }
    ));
    let pending = store.pending_overages(None, 10).await.unwrap();
    assert_eq!(pending.len(), 1, "a failure leaves the row pending");
    assert_eq!(pending[0].synced_at, None);

    let second = report_overage_now(&store, &driver, &o, t0()).await.unwrap();
    let billed = stripe.billed();
    assert_eq!(billed.len(), 1, "billed once");
    let item_id = billed[0]["id"].as_str().unwrap();
    match second {
        SyncOutcome::Synced(id) => assert_eq!(id.as_str(), item_id),
        other => panic!("unexpected {other:?}"),
    }
    let seen = stripe.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].idempotency_key, seen[1].idempotency_key,
        "the retry reuses the key"
    );
    assert_eq!(seen[0].form, seen[1].form, "and the same parameters");
    assert!(store.pending_overages(None, 10).await.unwrap().is_empty());
    let third = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!(third.synced + third.failed + third.skipped, 0);
    assert_eq!(stripe.seen().len(), 2);
}

#[tokio::test]
async fn a_retry_after_a_failure_before_billing_bills_once() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    overage(&store, &team("acme"), 1, 100, money("1.00", "usd")).await;
    let driver = driver(&base, StripeMode::meter_events("tokens"));
    stripe.fail_next(Failure::Before(503));
    stripe.fail_next(Failure::Before(429));
    for expected_status in [503, 429] {
        let r = sync_overages(&store, &driver, 100, t0()).await.unwrap();
        assert_eq!(r.failed, 1);
        assert!(matches!(
            r.errors[0].error,
            BillingError::Transient { status: Some(s), .. } if s == expected_status
        ));
        assert!(stripe.billed().is_empty());
    }
    let r = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!(r.synced, 1);
    assert_eq!(stripe.billed().len(), 1);
}

#[tokio::test]
async fn a_batch_of_1000_sends_each_overage_exactly_once() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    for usage_id in 1..=1_000 {
        let who = team(&format!("t{}", usage_id % 37));
        overage(&store, &who, usage_id, 10, money("0.01", "usd")).await;
    }
    let driver = driver(&base, StripeMode::meter_events("tokens"));
    let report = sync_overages(&store, &driver, 1_000, t0()).await.unwrap();
    assert_eq!(
        (report.synced, report.failed, report.skipped),
        (1_000, 0, 0)
    );
    let seen = stripe.seen();
    assert_eq!(seen.len(), 1_000);
    let keys: HashSet<_> = seen
        .iter()
        .map(|s| s.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(keys.len(), 1_000, "one request per row");
    assert_eq!(stripe.billed().len(), 1_000);
    let again = sync_overages(&store, &driver, 1_000, t0()).await.unwrap();
    assert_eq!(again.synced + again.skipped + again.failed, 0);
    assert_eq!(stripe.seen().len(), 1_000);
}

#[tokio::test]
async fn concurrent_syncs_bill_each_row_once_and_mark_it_once() {
    let (stripe, base) = start().await;
    let store = Arc::new(MemoryStore::new());
    for usage_id in 1..=200 {
        overage(&store, &team("acme"), usage_id, 10, money("0.01", "usd")).await;
    }
    let driver = Arc::new(driver(&base, StripeMode::InvoiceItems));
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (store, driver) = (store.clone(), driver.clone());
            tokio::spawn(async move { sync_overages(&*store, &driver, 1_000, t0()).await.unwrap() })
        })
        .collect();
    let mut synced = 0;
    for run in runs {
        let report = run.await.unwrap();
        assert_eq!(report.failed, 0);
        synced += report.synced;
    }
    assert_eq!(synced, 200, "each row marked synced by exactly one run");
    assert_eq!(stripe.billed().len(), 200, "Stripe billed each row once");
}

#[tokio::test]
async fn failures_leave_rows_pending_and_the_rest_goes_through() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    let ok = overage(&store, &team("acme"), 1, 10, money("1", "usd")).await;
    let no_customer = overage(
        &store,
        &Billable::new("nobody", 1),
        2,
        10,
        money("1", "usd"),
    )
    .await;
    let missing = overage(&store, &team("missing"), 3, 10, money("1", "usd")).await;
    let driver = driver(&base, StripeMode::InvoiceItems);

    let report = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!((report.synced, report.failed), (1, 2));
    assert!(!report.is_success());
    let failed: Vec<i64> = report.errors.iter().map(|f| f.overage_id).collect();
    assert_eq!(failed, [no_customer.id, missing.id]);
    assert!(matches!(
        report.errors[0].error,
        BillingError::NoCustomer { .. }
    ));
    match &report.errors[1].error {
        BillingError::Rejected { status, code, .. } => {
            assert_eq!((*status, code.as_deref()), (400, Some("resource_missing")));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!report.errors[1].error.is_retryable());
    let pending: Vec<i64> = store
        .pending_overages(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(pending, [no_customer.id, missing.id]);
    assert_eq!(stripe.seen().len(), 2, "no request without a customer");
    assert_ne!(ok.id, 0);
}

#[tokio::test]
async fn a_bad_key_stops_the_batch_after_one_request() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    for usage_id in 1..=5 {
        overage(&store, &team("acme"), usage_id, 10, money("1", "usd")).await;
    }
    let driver = StripeBillingDriver::builder("sk_test_wrong", StripeMode::InvoiceItems, customers)
        .base_url(&base)
        .build()
        .unwrap();
    let report = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert!(report.stopped_early);
    assert_eq!((report.synced, report.failed, report.skipped), (0, 1, 4));
    assert!(report.errors[0].error.is_systemic());
    assert_eq!(stripe.seen().len(), 1);
    assert_eq!(store.pending_overages(None, 10).await.unwrap().len(), 5);
}

#[tokio::test]
async fn the_null_driver_never_marks_anything_synced() {
    let store = MemoryStore::new();
    let o = overage(&store, &team("acme"), 1, 10, money("1", "usd")).await;
    let outcome = NullBillingDriver.report_overage(&o).await.unwrap();
    assert!(matches!(outcome, ReportOutcome::NotReported { .. }));
    let report = sync_overages(&store, &NullBillingDriver, 100, t0())
        .await
        .unwrap();
    assert_eq!((report.synced, report.skipped), (0, 1));
    assert_eq!(store.pending_overages(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn customers_come_from_subscription_meta() {
    let (stripe, base) = start().await;
    let store = Arc::new(MemoryStore::new());
    let acme = team("acme");
    let mut old = Subscription::new(acme.clone(), "pro", t0() - chrono::Duration::days(60));
    old.meta
        .insert("stripe_customer_id".into(), "cus_old".into());
    let mut new = Subscription::new(acme.clone(), "pro", t0() - chrono::Duration::days(1));
    new.meta
        .insert("stripe_customer_id".into(), "cus_new".into());
    store.insert_subscription(&old).await.unwrap();
    store.insert_subscription(&new).await.unwrap();
    overage(&store, &acme, 1, 10, money("1", "usd")).await;
    overage(&store, &team("unknown"), 2, 10, money("1", "usd")).await;

    let lookup = MetaCustomerLookup::new(store.clone());
    let driver = StripeBillingDriver::builder(KEY, StripeMode::InvoiceItems, lookup)
        .base_url(&base)
        .build()
        .unwrap();
    let report = sync_overages(&*store, &driver, 100, t0()).await.unwrap();
    assert_eq!((report.synced, report.failed), (1, 1));
    assert_eq!(stripe.seen()[0].field("customer"), Some("cus_new"));
    assert!(matches!(
        report.errors[0].error,
        BillingError::NoCustomer { .. }
    ));
}

#[tokio::test]
async fn amounts_are_converted_and_a_missing_rate_fails_without_a_request() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    overage(&store, &team("acme"), 1, 10, money("10.005", "usd")).await;
    overage(&store, &team("acme"), 2, 10, money("1", "gbp")).await;
    let rates = RateTable::from_pairs([("eur_usd", "1.25".parse().unwrap())]).unwrap();
    let driver = StripeBillingDriver::builder(KEY, StripeMode::InvoiceItems, customers)
        .base_url(&base)
        .convert_to(Currency::EUR, rates)
        .build()
        .unwrap();
    let report = sync_overages(&store, &driver, 100, t0()).await.unwrap();
    assert_eq!((report.synced, report.failed), (1, 1));
    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    // 10.005 USD / 1.25 = 8.004 EUR -> 800 cents.
    assert_eq!(seen[0].field("amount"), Some("800"));
    assert_eq!(seen[0].field("currency"), Some("eur"));
    match &report.errors[0].error {
        BillingError::InvalidOverage { reason, .. } => {
            assert!(reason.contains("GBP to EUR"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_stripe_is_a_retryable_failure() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let store = MemoryStore::new();
    overage(&store, &team("acme"), 1, 10, money("1", "usd")).await;
    let report = sync_overages(&store, &driver(&base, StripeMode::InvoiceItems), 100, t0())
        .await
        .unwrap();
    assert_eq!(report.failed, 1);
    assert!(matches!(
        report.errors[0].error,
        BillingError::Transient { status: None, .. }
    ));
    assert!(report.errors[0].error.is_retryable());
    assert_eq!(store.pending_overages(None, 10).await.unwrap().len(), 1);
}

#[test]
fn misconfiguration_is_refused_when_building() {
    let build = |key: &str, base: &str, mode: StripeMode| {
        StripeBillingDriver::builder(key, mode, customers)
            .base_url(base)
            .build()
            .map(|_| ())
    };
    let it = StripeMode::InvoiceItems;
    assert!(build(KEY, "https://api.stripe.com/", it.clone()).is_ok());
    for (key, base, mode) in [
        ("", "https://api.stripe.com", it.clone()),
        ("pk_live_123", "https://api.stripe.com", it.clone()),
        ("sk_test\n1", "https://api.stripe.com", it.clone()),
        (KEY, "ftp://example.com", it.clone()),
        (KEY, "not a url", it.clone()),
        (KEY, "https://api.stripe.com", StripeMode::meter_events(" ")),
    ] {
        assert!(
            matches!(build(key, base, mode), Err(BillingError::Configuration(_))),
            "{key:?} {base:?}"
        );
    }
}

#[tokio::test]
async fn overages_that_keep_failing_do_not_hold_back_newer_ones() {
    let (stripe, base) = start().await;
    let store = MemoryStore::new();
    // The five oldest overages belong to billables without a Stripe customer: they fail on
    // every run, and there are more of them than the run's limit.
    for id in 1..=5 {
        overage(
            &store,
            &Billable::new("nobody", id),
            id,
            100,
            money("1", "usd"),
        )
        .await;
    }
    for id in 6..=8 {
        overage(&store, &team(&format!("t{id}")), id, 100, money("1", "usd")).await;
    }
    let driver = driver(&base, StripeMode::InvoiceItems);

    let first = sync_overages(&store, &driver, 2, t0()).await.unwrap();
    assert_eq!((first.synced, first.failed), (2, 5), "{first:?}");
    assert!(
        first
            .errors
            .iter()
            .all(|f| matches!(f.error, BillingError::NoCustomer { .. }))
    );
    let second = sync_overages(&store, &driver, 2, t0()).await.unwrap();
    assert_eq!((second.synced, second.failed), (1, 5), "{second:?}");
    assert_eq!(
        stripe.billed().len(),
        3,
        "every overage with a customer billed once"
    );
    let pending = store.pending_overages(None, 100).await.unwrap();
    assert!(pending.iter().all(|o| o.overage.billable.kind == "nobody"));
    assert_eq!(pending.len(), 5);
}
