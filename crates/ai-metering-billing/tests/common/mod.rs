//! A local stand-in for Stripe's API: an axum app on 127.0.0.1:0 that records every request,
//! checks the bearer key, replays the stored result for a repeated `Idempotency-Key` (as
//! Stripe does), and can be told to fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ai_metering_core::period::Period;
use ai_metering_core::store::{MemoryStore, NewOverage, OverageRecord, OverageStore};
use ai_metering_core::{Billable, Currency, Money};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

pub const KEY: &str = "sk_test_standin";

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub stripe_version: Option<String>,
    pub body: String,
    pub form: Vec<(String, String)>,
}

impl Seen {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the next request fails.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Answer this status without creating anything (and without remembering the key).
    Before(u16),
    /// Create the object (it is billed) but answer 500: the worst case for a client.
    AfterBilling,
}

#[derive(Default)]
struct State_ {
    seen: Vec<Seen>,
    failures: VecDeque<Failure>,
    /// Idempotency key -> the stored object.
    replay: HashMap<String, Value>,
    /// What was billed: one entry per distinct object created.
    billed: Vec<Value>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct StandIn(Arc<Mutex<State_>>);

impl StandIn {
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }
    pub fn billed(&self) -> Vec<Value> {
        self.0.lock().unwrap().billed.clone()
    }
    pub fn fail_next(&self, failure: Failure) {
        self.0.lock().unwrap().failures.push_back(failure);
    }
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut error = json!({"type": kind, "message": message});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn handle(
    State(standin): State<StandIn>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(body.to_vec()).unwrap();
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let seen = Seen {
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        content_type: header("content-type"),
        stripe_version: header("stripe-version"),
        body,
        form,
    };
    let mut state = standin.0.lock().unwrap();
    state.seen.push(seen.clone());

    if seen.authorization.as_deref() != Some(&format!("Bearer {KEY}")) {
        return stripe_error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided",
        );
    }
    if let Some(key) = &seen.idempotency_key
        && let Some(stored) = state.replay.get(key)
    {
        return axum::Json(stored.clone()).into_response();
    }
    let failure = state.failures.pop_front();
    if let Some(Failure::Before(status)) = failure {
        return stripe_error(status, "api_error", None, "Something went wrong");
    }
    let customer = seen
        .field("customer")
        .or_else(|| seen.field("payload[stripe_customer_id]"))
        .unwrap_or_default()
        .to_owned();
    if customer == "cus_missing" {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            "No such customer: 'cus_missing'",
        );
    }
    state.next_id += 1;
    let object = match seen.path.as_str() {
        "/v1/invoiceitems" => json!({
            "id": format!("ii_{}", state.next_id),
            "object": "invoiceitem",
            "customer": customer,
            "amount": seen.field("amount").unwrap().parse::<i64>().unwrap(),
            "currency": seen.field("currency").unwrap(),
            "description": seen.field("description"),
        }),
        "/v1/billing/meter_events" => json!({
            "object": "billing.meter_event",
            "event_name": seen.field("event_name"),
            "identifier": seen.field("identifier"),
            "payload": {"stripe_customer_id": customer, "value": seen.field("payload[value]")},
            "timestamp": seen.field("timestamp").unwrap().parse::<i64>().unwrap(),
        }),
        other => {
            return stripe_error(
                404,
                "invalid_request_error",
                None,
                &format!("Unrecognized request URL (POST: {other})"),
            );
        }
    };
    state.billed.push(object.clone());
    if let Some(key) = &seen.idempotency_key {
        state.replay.insert(key.clone(), object.clone());
    }
    if let Some(Failure::AfterBilling) = failure {
        return stripe_error(500, "api_error", None, "An unknown error occurred");
    }
    axum::Json(object).into_response()
}

/// Starts the stand-in; returns it and its base URL.
pub async fn start() -> (StandIn, String) {
    let standin = StandIn::default();
    let app = Router::new()
        .route("/{*path}", axum::routing::post(handle))
        .with_state(standin.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (standin, format!("http://{addr}"))
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 10, 12, 0, 0).unwrap()
}

pub fn june() -> Period {
    Period::new(
        Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap(),
    )
    .unwrap()
}

pub fn money(amount: &str, currency: &str) -> Money {
    Money::new(
        amount.parse::<Decimal>().unwrap(),
        Currency::new(currency).unwrap(),
    )
}

/// Stores an overage for `billable` on usage row `usage_id`.
pub async fn overage(
    store: &MemoryStore,
    billable: &Billable,
    usage_id: i64,
    tokens: u64,
    amount: Money,
) -> OverageRecord {
    store
        .insert_overage(&NewOverage {
            billable: billable.clone(),
            usage_id,
            period: june(),
            tokens,
            amount,
            created_at: t0() + chrono::Duration::seconds(usage_id),
        })
        .await
        .unwrap()
}

/// Customer ids for tests: `team:x` pays as `cus_x`; kind `nobody` has none.
pub fn customers(b: &Billable) -> Option<String> {
    (b.kind != "nobody").then(|| format!("cus_{}", b.id))
}
