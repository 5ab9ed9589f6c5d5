//! `sync-overages` with the Stripe driver, against a fake Stripe API served by the test
//! (`AI_METERING_STRIPE_API_BASE` points the driver at it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::sync::{Arc, Mutex};

use ai_metering_core::period::Period;
use ai_metering_core::store::{
    AdminStore, NewOverage, OverageStore, Page, ReportStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Currency, Money};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::{Workspace, at, fixture};
use rust_decimal::Decimal;
use serde_json::json;

type Seen = Arc<Mutex<Vec<String>>>;

/// A fake Stripe: records each invoice item's form body and answers with an id, or with
/// `status` and an error when it is not 200.
async fn fake_stripe(status: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/v1/invoiceitems",
            post(
                move |State(seen): State<Seen>, body: String| async move {
                    let n = {
                        let mut s = seen.lock().unwrap();
                        s.push(body);
                        s.len()
                    };
                    if status == StatusCode::OK {
                        (status, Json(json!({"id": format!("ii_fake_{n}")})))
                    } else {
                        (
                            status,
                            Json(json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})),
                        )
                    }
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// The fixture plus a Stripe customer for user:1 (not user:2) and one overage for each,
/// created at the same instant (user:1's first).
async fn with_overages() -> Workspace {
    with_overages_created([at(2024, 1, 20, 0), at(2024, 1, 20, 0)]).await
}

/// [`with_overages`], with user:1's and user:2's overages created at these instants.
async fn with_overages_created(created: [chrono::DateTime<chrono::Utc>; 2]) -> Workspace {
    let ws = fixture().await;
    let store = ws.store().await;
    let u1 = Billable::new("user", 1);
    let (id, mut sub) = store.subscriptions(&u1).await.unwrap().remove(0);
    sub.meta
        .insert("stripe_customer_id".into(), json!("cus_123"));
    store.update_subscription(id, &sub).await.unwrap();
    let usage = store
        .query_usage(&UsageFilter::default(), Page::first(2))
        .await
        .unwrap();
    for ((billable, row, cents), created_at) in [
        (u1, &usage[0], 129),
        (Billable::new("user", 2), &usage[1], 50),
    ]
    .into_iter()
    .zip(created)
    {
        store
            .insert_overage(&NewOverage {
                billable,
                usage_id: row.id,
                period: Period::new(at(2024, 1, 1, 0), at(2024, 2, 1, 0)).unwrap(),
                tokens: 1_000,
                amount: Money::new(Decimal::new(cents, 2), Currency::USD),
                created_at,
            })
            .await
            .unwrap();
    }
    ws
}

fn stripe_env(base: &str) -> [(&'static str, String); 3] {
    [
        ("AI_METERING_BILLING_DRIVER", "stripe".into()),
        ("STRIPE_SECRET", "sk_test_fake".into()),
        ("AI_METERING_STRIPE_API_BASE", base.into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overages_are_invoiced_once_and_failures_stay_pending() {
    let ws = with_overages().await;
    let (base, seen) = fake_stripe(StatusCode::OK).await;
    let env = stripe_env(&base);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let r = ws.run_env(&["sync-overages", "--format", "json"], &env);
    // user:2 has no Stripe customer: that one fails, so the run exits 1.
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("1 of 2 overages failed"), "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["synced"], 1);
    assert_eq!(j["failed"], 1);
    let rows = j["overages"].as_array().unwrap();
    let synced = rows.iter().find(|o| o["status"] == "synced").unwrap();
    assert_eq!(synced["billable"], "user:1");
    assert_eq!(synced["detail"], "ii_fake_1");
    let failed = rows.iter().find(|o| o["status"] == "failed").unwrap();
    assert_eq!(failed["billable"], "user:2");

    {
        let bodies = seen.lock().unwrap();
        assert_eq!(bodies.len(), 1);
        assert!(bodies[0].contains("customer=cus_123"), "{}", bodies[0]);
        assert!(bodies[0].contains("amount=129"), "{}", bodies[0]);
        assert!(bodies[0].contains("currency=usd"), "{}", bodies[0]);
    }
    let store = ws.store().await;
    let pending = store.pending_overages(None, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].overage.billable, Billable::new("user", 2));

    // A second run does not invoice user:1 again.
    let r = ws.run_env(&["sync-overages"], &env);
    assert_eq!(r.code, 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_overage_that_fails_does_not_hold_back_the_limit() {
    // user:2 (no Stripe customer) has the oldest overage; --limit 1 still syncs user:1's.
    let ws = with_overages_created([at(2024, 1, 20, 0), at(2024, 1, 19, 0)]).await;
    let (base, seen) = fake_stripe(StatusCode::OK).await;
    let env = stripe_env(&base);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = ws.run_env(&["sync-overages", "--limit", "1", "--format", "json"], &env);
    assert_eq!(r.code, 1, "user:2 still fails: {}", r.stderr);
    let j = r.json();
    assert_eq!(
        (j["synced"].as_u64(), j["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(j["overages"][0]["billable"], "user:2");
    assert_eq!(j["overages"][0]["status"], "failed");
    assert_eq!(j["overages"][1]["billable"], "user:1");
    assert_eq!(j["overages"][1]["status"], "synced");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_stop_the_run() {
    let ws = with_overages().await;
    let (base, seen) = fake_stripe(StatusCode::UNAUTHORIZED).await;
    let env = stripe_env(&base);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = ws.run_env(&["sync-overages", "--format", "json"], &env);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("stopped after a credentials error"),
        "{}",
        r.stderr
    );
    let j = r.json();
    assert_eq!(j["stopped_early"], true);
    assert_eq!(j["synced"], 0);
    // The first row went out and was refused; the second was not attempted.
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(j["overages"][1]["status"], "skipped");
    assert_eq!(
        ws.store()
            .await
            .pending_overages(None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_stripe_driver_without_a_secret_is_a_configuration_error() {
    let ws = Workspace::migrated();
    let r = ws.run_env(
        &["sync-overages"],
        &[("AI_METERING_BILLING_DRIVER", "stripe")],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("billing.stripe.secret"), "{}", r.stderr);
}
