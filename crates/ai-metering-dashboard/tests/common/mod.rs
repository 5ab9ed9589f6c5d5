//! A seeded memory store, a fixed clock, and request helpers shared by the HTTP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use ai_metering_core::clock::ManualClock;
use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::pricing::CostBreakdown;
use ai_metering_core::store::{
    CreditStore, MemoryStore, PlanStore, SubscriptionStore, UsageEntry, UsageStore,
};
use ai_metering_core::{Billable, Currency, Metering, Money, Tenant, TokenUsage};
use ai_metering_dashboard::{Access, DashboardConfig};
use axum::Router;
use axum::body::Body;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tower::ServiceExt;

/// "Now" in every test: 20 May 2024, noon UTC. The current (monthly) period is May 2024.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 20, 12, 0, 0).unwrap()
}

pub fn at(day: u32, month: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, month, day, 10, 0, 0).unwrap()
}

pub const HOSTILE_FEATURE: &str = "<img src=x onerror=alert(1)>";
pub const HOSTILE_SCRIPT: &str = "<script>alert(\"pwned\")</script>";
pub const CSV_FORMULA: &str = "=HYPERLINK(\"http://evil\",\"x\")";
pub const CSV_TRICKY: &str = "a \"quoted\", value\nwith a new line";

/// One usage row of `input + output` tokens costing `cost` USD.
#[allow(clippy::too_many_arguments)]
pub fn entry(
    billable: &Billable,
    tenant: Option<&str>,
    provider: &str,
    model: &str,
    feature: Option<&str>,
    tokens: (u64, u64),
    cost: &str,
    occurred_at: DateTime<Utc>,
    metadata: Value,
) -> UsageEntry {
    let total: Decimal = cost.parse().unwrap();
    let Value::Object(metadata) = metadata else {
        panic!("metadata must be an object")
    };
    UsageEntry {
        billable: billable.clone(),
        user_id: None,
        tenant: tenant.map(Tenant::new),
        provider: provider.into(),
        model: model.into(),
        feature: feature.map(str::to_owned),
        usage: TokenUsage::new(tokens.0, tokens.1).unwrap(),
        cost: CostBreakdown {
            input: total,
            cached_input: Decimal::ZERO,
            cache_write: Decimal::ZERO,
            output: Decimal::ZERO,
            reasoning: Decimal::ZERO,
            total,
            currency: Currency::USD,
            priced: true,
            catalog_version: "test".into(),
        },
        metadata,
        idempotency_key: None,
        occurred_at,
        estimated: false,
        time_zone: None,
    }
}

pub fn user(n: u32) -> Billable {
    Billable::new("user", n)
}

pub fn globex() -> Billable {
    Billable::new("team", "globex")
}

/// A billable whose id needs percent-encoding in paths.
pub fn slashed() -> Billable {
    Billable::new("org", "eu/west 1")
}

/// The seeded data:
///
/// | billable | tenant | plan | May usage | notes |
/// |---|---|---|---|---|
/// | user:1 | acme | basic (10k tokens) | 9,000 tokens on May 3 and 10 (openai/gpt-4o, chat) | approaching |
/// | user:2 | acme | basic | 12,000 tokens on May 10 (openai/gpt-4o-mini, chat) | over |
/// | team:globex | globex | pro (1M tokens, 100 USD) | 5,000 tokens on May 15 (anthropic, hostile feature and metadata) | 50 USD wallet |
/// | org:eu/west 1 | acme | none | 100 tokens on May 18 (openai, search) | |
/// | user:3 | none | none | April only | |
/// | user:5 | none | pro | none | subscribed only |
pub async fn seeded_store() -> MemoryStore {
    let store = MemoryStore::new();
    store
        .upsert_plan(&Plan::new("basic", "Basic").with_token_limit(10_000))
        .await
        .unwrap();
    store
        .upsert_plan(
            &Plan::new("pro", "Pro")
                .with_token_limit(1_000_000)
                .with_cost_limit(Decimal::from(100)),
        )
        .await
        .unwrap();
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    // user:5 is subscribed but has never used anything.
    for (b, plan) in [
        (user(1), "basic"),
        (user(2), "basic"),
        (globex(), "pro"),
        (user(5), "pro"),
    ] {
        store
            .insert_subscription(&Subscription::new(b, plan, start))
            .await
            .unwrap();
    }
    store
        .add_credits(
            &globex(),
            Money::new(Decimal::from(50), Currency::USD),
            "top-up",
            at(1, 5),
        )
        .await
        .unwrap();

    let rows = [
        entry(
            &user(1),
            Some("acme"),
            "openai",
            "gpt-4o",
            Some("chat"),
            (3_000, 1_000),
            "0.04",
            at(3, 5),
            json!({"ticket": "T-1001"}),
        ),
        entry(
            &user(1),
            Some("acme"),
            "openai",
            "gpt-4o",
            Some("chat"),
            (4_000, 1_000),
            "0.05",
            at(10, 5),
            json!({}),
        ),
        entry(
            &user(2),
            Some("acme"),
            "openai",
            "gpt-4o-mini",
            Some("chat"),
            (10_000, 2_000),
            "0.012",
            at(10, 5),
            json!({"ticket": "T-2002"}),
        ),
        entry(
            &globex(),
            Some("globex"),
            "anthropic",
            "claude-sonnet-4",
            Some(HOSTILE_FEATURE),
            (4_000, 1_000),
            "0.027",
            at(15, 5),
            json!({"note": HOSTILE_SCRIPT, "formula": CSV_FORMULA, "tricky": CSV_TRICKY}),
        ),
        entry(
            &slashed(),
            Some("acme"),
            "openai",
            "gpt-4o",
            Some("search"),
            (80, 20),
            "0.001",
            at(18, 5),
            json!({}),
        ),
        entry(
            &user(3),
            None,
            "openai",
            "gpt-4o",
            Some("chat"),
            (700, 300),
            "0.01",
            at(20, 4),
            json!({}),
        ),
    ];
    for row in &rows {
        store.insert_usage(row).await.unwrap();
    }
    store
}

pub async fn metering() -> Metering<MemoryStore> {
    Metering::builder(seeded_store().await)
        .clock(ManualClock::new(now()))
        .build()
}

/// The dashboard mounted under its prefix, as a host does it.
pub async fn app(config: DashboardConfig) -> Router {
    ai_metering_dashboard::mount(Router::new(), metering().await, config)
}

/// A gate that grants the tenant named in `x-tenant`, everything with `x-operator`, and
/// nothing otherwise.
pub fn header_gate() -> DashboardConfig {
    DashboardConfig::new().with_gate(|parts: &http::request::Parts| {
        if parts.headers.contains_key("x-operator") {
            return Access::AllowAll;
        }
        match parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
            Some(t) => Access::Tenant(Tenant::new(t)),
            None => Access::Deny,
        }
    })
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn get_with(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    get_with(app, uri, &[]).await
}
