//! The money path through `QuotaLayer` and `RemainingQuota::meter`, with the defaults a user
//! gets (no estimate on the layer), on the memory store, SQLite and PostgreSQL: concurrent
//! requests stay within one call of a token budget, and a credits wallet is never taken
//! below zero by requests that carry `max_tokens`, nor by more than one call without.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering_core::plan::{BillingMode, Plan};
use ai_metering_core::store::{MemoryStore, Store, UsageFilter};
use ai_metering_core::{Billable, Currency, MeterError, Metering};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::ConformanceStore;
use ai_metering_testkit::builders::{dec, fresh_name};
use ai_metering_testkit::money_path::{MODEL, metering, prompt, response, subscribed};
use ai_metering_tower::{FromHeader, QuotaLayer, QuotaRejection, RemainingQuota};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Calls the provider stand-in for the body's `x_usage` (input, output), metered with the
/// request itself as the estimate source; refusals answer as the layer would.
async fn chat<S: Store>(quota: RemainingQuota<S>, Json(body): Json<Value>) -> Response {
    let input = body["x_usage"][0].as_u64().unwrap();
    let output = body["x_usage"][1].as_u64().unwrap();
    let result = quota
        .meter()
        .provider("openai", MODEL)
        .request(&body)
        .call(async move {
            tokio::task::yield_now().await;
            Ok::<_, String>(response(input, output))
        })
        .await;
    match result {
        Ok(metered) => Json(json!({"tokens": metered.usage.total_tokens()})).into_response(),
        Err(MeterError::Metering(error)) => QuotaRejection::from(error).into_response(),
        Err(other) => (StatusCode::BAD_GATEWAY, other.to_string()).into_response(),
    }
}

fn app<S: Store>(metering: Metering<S>) -> Router {
    let layer = QuotaLayer::new(metering).billable(FromHeader::new("x-team").kind("conformance"));
    Router::new().route("/chat", post(chat::<S>).route_layer(layer))
}

/// `count` concurrent requests of `who` with `body`; their statuses.
async fn requests(app: &Router, who: &Billable, body: &Value, count: usize) -> Vec<StatusCode> {
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let request = Request::post("/chat")
            .header("x-team", who.id.as_str())
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let app = app.clone();
        tasks.spawn(async move { app.oneshot(request).await.unwrap().status() });
    }
    tasks.join_all().await
}

async fn no_estimate_stays_within_one_call<S: ConformanceStore>(store: S) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Budget").with_token_limit(1_000);
    let who = subscribed(&metering, plan, BillingMode::Plan, None).await;
    let app = app(metering.clone());
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "x_usage": [60, 40]});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.extend(requests(&app, &who, &body, 100).await);
    }
    for s in &statuses {
        assert!(
            *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS,
            "{statuses:?}"
        );
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count() as u64;
    let recorded = metering
        .store()
        .sum_usage(&UsageFilter::for_billable(who.clone()))
        .await
        .unwrap()
        .total_tokens;
    assert_eq!(recorded, ok * 100);
    assert!(
        recorded <= 1_100,
        "{recorded} tokens on a 1,000-token budget"
    );
    assert!(
        recorded >= 900,
        "the budget is used, not refused wholesale: {recorded}"
    );
}

async fn credits_hold<S: ConformanceStore>(store: S, max_tokens: bool) {
    let (metering, _clock) = metering(store);
    let plan = Plan::new(fresh_name("plan"), "Credits");
    let who = subscribed(&metering, plan, BillingMode::Credits, Some("2")).await;
    let app = app(metering.clone());
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt(500)}],
        "x_usage": [500, 5_000]
    });
    if max_tokens {
        body["max_tokens"] = json!(5_000);
    }
    let mut statuses = Vec::new();
    for _ in 0..if max_tokens { 1 } else { 5 } {
        statuses.extend(requests(&app, &who, &body, if max_tokens { 200 } else { 40 }).await);
    }
    for s in &statuses {
        assert!(
            [
                StatusCode::OK,
                StatusCode::PAYMENT_REQUIRED,
                StatusCode::TOO_MANY_REQUESTS
            ]
            .contains(s),
            "{statuses:?}"
        );
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let wallet = metering.store().wallet(&who, Currency::USD).await.unwrap();
    // $0.105 a call.
    assert_eq!(wallet.balance, dec("2") - dec("0.105") * Decimal::from(ok));
    assert_eq!(wallet.held, Decimal::ZERO);
    if max_tokens {
        assert!(wallet.balance >= Decimal::ZERO, "{wallet:?}");
        assert_eq!(ok, 19);
    } else {
        assert!(wallet.balance > -dec("0.105"), "{wallet:?}");
    }
}

/// A fresh, migrated store on a new SQLite file.
async fn sqlite() -> SeaOrmStore {
    let dir = tempfile::Builder::new()
        .prefix("money-path-layer-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let url = format!("sqlite://{}?mode=rwc", dir.join("store.db").display());
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// The shared PostgreSQL test database, when configured.
async fn postgres(test: &str) -> Option<SeaOrmStore> {
    let url = postgres_url(test)?;
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// The PostgreSQL server to test against; under CI its absence fails the test.
fn postgres_url(test: &str) -> Option<String> {
    ai_metering_test_env::postgres_url(test)
}

macro_rules! on_every_store {
    ($name:ident, $scenario:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                $scenario(MemoryStore::new()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $scenario(super::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(store) = super::postgres(stringify!($name)).await {
                    $scenario(store).await;
                }
            }
        }
    };
}

on_every_store!(no_estimate, no_estimate_stays_within_one_call);
on_every_store!(credits_with_max_tokens, with_max_tokens);
on_every_store!(credits_without_max_tokens, without_max_tokens);

async fn with_max_tokens<S: ConformanceStore>(store: S) {
    credits_hold(store, true).await;
}

async fn without_max_tokens<S: ConformanceStore>(store: S) {
    credits_hold(store, false).await;
}
