//! The layer through a real axum `Router`: decisions, status codes, bodies and headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ai_metering_core::limit::UsageTotals;
use ai_metering_core::plan::{BillingMode, Plan, Subscription};
use ai_metering_core::store::{
    CounterStore, CreditStore, Page, PlanStore, SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Money, TokenUsage};
use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use common::*;
use http::StatusCode;
use rust_decimal::Decimal;
use tower::ServiceExt;

use ai_metering_core::{Billable, Tenant};
use ai_metering_tower::{HeaderStyle, QuotaLayer, RemainingQuota, Resolver};

/// Records `tokens` (split between input and output) through the request's meter.
async fn chat(
    Path(tokens): Path<u64>,
    quota: RemainingQuota<Shared>,
) -> Result<String, (StatusCode, String)> {
    let usage = TokenUsage::new(tokens / 2, tokens - tokens / 2).unwrap();
    quota
        .meter()
        .provider("openai", "gpt-4o-mini")
        .manual_usage(usage)
        .call(async { Ok::<_, Infallible>(serde_json::json!({ "reply": "hi" })) })
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok("metered".into())
}

/// Records `tokens` twice, through two meters: the first settles the layer's reservation,
/// the second reserves and records on its own.
async fn chat_twice(
    Path(tokens): Path<u64>,
    quota: RemainingQuota<Shared>,
) -> Result<String, (StatusCode, String)> {
    for _ in 0..2 {
        quota
            .meter()
            .provider("openai", "gpt-4o-mini")
            .manual_usage(TokenUsage::new(tokens, 0).unwrap())
            .call(async { Ok::<_, Infallible>(()) })
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    }
    Ok("metered twice".into())
}

/// Records nothing; tells what the layer handed over.
async fn peek(quota: Option<RemainingQuota<Shared>>) -> String {
    match quota {
        None => "anonymous".into(),
        Some(q) if q.status().is_none() => "unchecked".into(),
        Some(q) => format!("{:?}", q.remaining_tokens()),
    }
}

/// Records nothing; tells the wallet the layer handed over (whether it is the store's own
/// reading, and what it holds), or `none`.
async fn wallet(quota: RemainingQuota<Shared>) -> String {
    let Some(told) = quota.wallet() else {
        return "none".into();
    };
    let read = quota
        .metering()
        .store()
        .wallet_at(quota.billable(), told.currency, quota.metering().now())
        .await
        .unwrap();
    format!("{} {}", *told == read, told.held)
}

fn app<B, T>(layer: QuotaLayer<Shared, B, T>) -> Router
where
    B: Resolver<Billable>,
    T: Resolver<Tenant>,
{
    Router::new()
        .route("/chat/{tokens}", post(chat))
        .route("/chat-twice/{tokens}", post(chat_twice))
        .route("/peek", post(peek))
        .route("/wallet", post(wallet))
        .layer(layer)
        .layer(axum::middleware::from_fn(auth))
}

#[tokio::test]
async fn under_the_limit_the_route_runs_and_the_headers_count_its_own_usage() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 10_000).await;
    let response = app(QuotaLayer::new(metering))
        .oneshot(req("/chat/300", Some(1)))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-remaining-tokens"), "9700");
    assert_eq!(header(&response, "x-remaining-cost"), "unlimited");
    assert_eq!(header(&response, "x-usage-percentage"), "3");
    assert_eq!(
        header(&response, "ratelimit-policy"),
        format!("\"tokens\";q=10000;w={JANUARY};ai-metering-unit=\"tokens\"")
    );
    assert_eq!(
        header(&response, "ratelimit"),
        format!("\"tokens\";r=9700;t={SECS_TO_RESET}")
    );
    assert_eq!(text(response).await, "metered");
}

#[tokio::test]
async fn a_cost_limit_is_reported_in_both_header_styles() {
    let (metering, store, _clock) = metering();
    let cost_limit = Decimal::from(1_000_000);
    store
        .upsert_plan(
            &Plan::new("pro", "Pro")
                .with_token_limit(1_000_000)
                .with_cost_limit(cost_limit),
        )
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(user(1), "pro", t0()))
        .await
        .unwrap();
    let cost = metering
        .catalog()
        .cost("openai", "gpt-4o-mini", &TokenUsage::new(500, 500).unwrap())
        .unwrap()
        .total;
    let response = app(QuotaLayer::new(metering))
        .oneshot(req("/chat/1000", Some(1)))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let remaining = cost_limit - cost;
    assert_eq!(
        header(&response, "x-remaining-cost"),
        remaining.normalize().to_string()
    );
    let micros = (remaining * Decimal::from(1_000_000)).trunc();
    assert!(
        header(&response, "ratelimit").ends_with(&format!("\"cost\";r={micros};t={SECS_TO_RESET}")),
        "{}",
        header(&response, "ratelimit")
    );
    assert!(header(&response, "ratelimit-policy").contains("\"cost\";q=1000000000000;"));
    assert!(header(&response, "ratelimit-policy").contains("ai-metering-unit=\"micro-USD\""));
}

#[tokio::test]
async fn an_exhausted_limit_gets_429_with_retry_after_headers_and_a_problem_body() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    metering
        .meter()
        .billable(user(1))
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(600, 400).unwrap())
        .call(async { Ok::<_, Infallible>(serde_json::json!({})) })
        .await
        .unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let router = Router::new()
        .route(
            "/chat",
            post(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "called"
            }),
        )
        .layer(QuotaLayer::new(metering))
        .layer(axum::middleware::from_fn(auth));
    let response = router.oneshot(req("/chat", Some(1))).await.unwrap();

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the route must not run");
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert_eq!(header(&response, "retry-after"), SECS_TO_RESET.to_string());
    assert_eq!(header(&response, "x-remaining-tokens"), "0");
    assert_eq!(header(&response, "x-usage-percentage"), "100");
    assert_eq!(
        header(&response, "ratelimit"),
        format!("\"tokens\";r=0;t={SECS_TO_RESET}")
    );
    assert!(header(&response, "ratelimit-policy").starts_with("\"tokens\";q=1000;w="));

    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["violated-policies"], serde_json::json!(["tokens"]));
    assert_eq!(body["limit"], "tokens");
    assert_eq!(body["reset_at"], "2024-02-01T00:00:00Z");
    assert_eq!(body["error"], "AI usage limit exceeded");
    assert_eq!(
        body["message"],
        "You have reached your AI usage limit for this period."
    );
    assert_eq!(body["remaining_tokens"], 0);
    assert_eq!(body["remaining_cost"], serde_json::Value::Null);
    assert_eq!(body["usage_percentage"], 100);
}

#[tokio::test]
async fn an_estimate_that_does_not_fit_is_refused_before_the_route() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let router = app(QuotaLayer::new(metering).estimate(600));
    let first = router
        .clone()
        .oneshot(req("/chat/500", Some(1)))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-remaining-tokens"), "500");
    // 500 left, 600 asked: refused although the limit is not reached yet.
    let second = router.oneshot(req("/chat/500", Some(1))).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&second, "x-remaining-tokens"), "500");
    assert_eq!(
        header(&second, "ratelimit-policy"),
        format!("\"tokens\";q=1000;w={JANUARY};ai-metering-unit=\"tokens\"")
    );
    let body = text(second).await;
    assert!(body.contains("would be exceeded by this request"), "{body}");
}

#[tokio::test]
async fn the_routes_meter_settles_the_layers_reservation_instead_of_reserving_again() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 10_000).await;
    let period = metering.config().period.period_at(t0()).unwrap();
    let router = app(QuotaLayer::new(metering.clone()).estimate(5_000));

    let response = router
        .clone()
        .oneshot(req("/chat/300", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // 300 recorded, not 300 + 5000 reserved.
    assert_eq!(header(&response, "x-remaining-tokens"), "9700");
    let usage = store.period_usage(&user(1), &period, t0()).await.unwrap();
    assert_eq!(usage.recorded, UsageTotals::new(300, usage.recorded.cost));
    assert_eq!(usage.reserved.tokens, 0);

    // A route that records nothing gets its reservation released.
    let response = router.oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-remaining-tokens"), "9700");
    // During the route, the handler saw the reservation counted.
    assert_eq!(text(response).await, "Some(4700)");
    let usage = store.period_usage(&user(1), &period, t0()).await.unwrap();
    assert_eq!((usage.recorded.tokens, usage.reserved.tokens), (300, 0));
}

#[tokio::test]
async fn the_headers_after_a_settled_reservation_come_from_the_settlement_not_a_read() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 10_000).await;
    let router = app(QuotaLayer::new(metering).estimate(500));

    let reads = store.usage_reads();
    let response = router
        .clone()
        .oneshot(req("/chat/300", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-remaining-tokens"), "9700");
    assert_eq!(
        store.usage_reads(),
        reads,
        "the settlement told the usage after it"
    );

    // Two meters: the second one's usage is not in the first one's settlement, so the
    // layer reads the usage again and the headers count both.
    let response = router
        .oneshot(req("/chat-twice/100", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-remaining-tokens"), "9500");
    assert_eq!(store.usage_reads(), reads + 1);
}

#[tokio::test]
async fn a_token_estimate_is_priced_again_only_where_a_cost_counts() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "tokens-only", 10_000).await;
    store
        .upsert_plan(
            &Plan::new("capped", "Capped")
                .with_token_limit(10_000)
                .with_cost_limit(Decimal::ONE),
        )
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(
            user(2),
            "capped",
            t0() - chrono::Duration::days(30),
        ))
        .await
        .unwrap();
    let router = app(QuotaLayer::new(metering).estimate(500));

    // Tokens only: the layer's reservation of 500 tokens is settled as it is; pricing it
    // now that the model is known would change no decision.
    let before = store.reservations();
    let response = router
        .clone()
        .oneshot(req("/chat/300", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.reservations(), before + 1);

    // A cost limit counts the reservation's cost: the meter grows it to the priced estimate.
    let before = store.reservations();
    let response = router.oneshot(req("/chat/300", Some(2))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.reservations(), before + 2);
}

#[tokio::test]
async fn usage_is_recorded_with_the_tenant_and_the_feature() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 10_000).await;
    let router = app(QuotaLayer::new(metering)
        .feature("chat")
        .tenant(ai_metering_tower::FromHeader::new("x-tenant")));
    let mut request = req("/chat/300", Some(1));
    request
        .headers_mut()
        .insert("x-tenant", "acme".parse().unwrap());
    assert_eq!(
        router.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    let rows = store
        .query_usage(&UsageFilter::for_billable(user(1)), Page::first(10))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.feature.as_deref(), Some("chat"));
    assert_eq!(
        rows[0].entry.tenant.as_ref().map(|t| t.as_str()),
        Some("acme")
    );
    assert_eq!(rows[0].entry.usage.total_tokens(), 300);
}

#[tokio::test]
async fn without_a_billable_the_answer_is_401_or_a_pass_through() {
    let (metering, _store, _clock) = metering();
    let response = app(QuotaLayer::new(metering.clone()))
        .oneshot(req("/peek", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert!(text(response).await.contains("No billable"));

    let response = app(QuotaLayer::new(metering).allow_anonymous())
        .oneshot(req("/peek", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("x-remaining-tokens"));
    assert_eq!(text(response).await, "anonymous");
}

#[tokio::test]
async fn a_store_failure_is_503_when_failing_closed_and_passes_when_failing_open() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    store.set_down(true);

    let response = app(QuotaLayer::new(metering.clone()))
        .oneshot(req("/peek", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = text(response).await;
    assert!(body.contains("\"status\":503"), "{body}");
    assert!(
        !body.contains("connection refused"),
        "store details stay server-side: {body}"
    );

    // With an estimate, the reservation path fails the same way.
    let response = app(QuotaLayer::new(metering.clone()).estimate(100))
        .oneshot(req("/peek", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let response = app(QuotaLayer::new(metering).fail_open())
        .oneshot(req("/peek", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("x-remaining-tokens"));
    assert_eq!(text(response).await, "unchecked");
}

#[tokio::test]
async fn a_credits_billable_with_an_empty_wallet_gets_402_before_the_route() {
    let (metering, store, _clock) = metering();
    store
        .upsert_plan(&Plan::new("credits", "Credits").with_token_limit(1_000_000))
        .await
        .unwrap();
    store
        .insert_subscription(
            &Subscription::new(user(1), "credits", t0()).with_billing_mode(BillingMode::Credits),
        )
        .await
        .unwrap();
    let router = app(QuotaLayer::new(metering.clone()));

    let response = router
        .clone()
        .oneshot(req("/chat/100", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(
        body["type"],
        "https://ai-metering.dev/problems/insufficient-credits"
    );
    assert_eq!(body["available"], 0);
    let rows = store
        .query_usage(&UsageFilter::for_billable(user(1)), Page::first(10))
        .await
        .unwrap();
    assert!(rows.is_empty(), "nothing may be recorded");

    // With credits, the request goes through and is paid from the wallet.
    let currency = metering.catalog().currency();
    store
        .add_credits(
            &user(1),
            Money::new(Decimal::from(10_000), currency),
            "top-up",
            t0(),
        )
        .await
        .unwrap();
    let response = router
        .clone()
        .oneshot(req("/chat/100", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let wallet = store.wallet(&user(1), currency).await.unwrap();
    assert!(
        wallet.balance < Decimal::from(10_000),
        "the call was debited: {wallet:?}"
    );

    // The handler is told the wallet with its own hold taken, without reading it.
    let response = app(QuotaLayer::new(metering.clone()).estimate_cost(Decimal::from(5)))
        .oneshot(req("/wallet", Some(1)))
        .await
        .unwrap();
    assert_eq!(text(response).await, "true 5");
    // A plan-mode billable's reservation holds nothing: no wallet to tell.
    subscribe(&store, &user(2), "basic", 10_000).await;
    let response = app(QuotaLayer::new(metering.clone()).estimate(100))
        .oneshot(req("/wallet", Some(2)))
        .await
        .unwrap();
    assert_eq!(text(response).await, "none");

    // An estimated cost larger than the balance is refused too.
    let response = app(QuotaLayer::new(metering).estimate_cost(Decimal::from(20_000)))
        .oneshot(req("/chat/100", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn checks_are_cached_until_a_local_write_or_the_ttl() {
    let (metering, store, clock) = metering();
    subscribe(&store, &user(1), "basic", 10_000).await;
    let router = app(QuotaLayer::new(metering.clone()).cache_ttl(chrono::Duration::seconds(10)));

    let first = router.clone().oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let after_first = store.checks();
    clock.advance(chrono::Duration::milliseconds(2_500));
    let second = router.clone().oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(header(&second, "x-remaining-tokens"), "10000");
    assert_eq!(store.checks(), after_first, "served from the cache");
    // The cached headers are copied, but `t` is counted from the response's own instant.
    assert_eq!(
        header(&first, "ratelimit"),
        format!("\"tokens\";r=10000;t={SECS_TO_RESET}")
    );
    assert_eq!(
        header(&second, "ratelimit"),
        format!("\"tokens\";r=10000;t={}", SECS_TO_RESET - 2) // 2.5 s later, rounded up
    );

    // Usage recorded elsewhere is not seen until the TTL passes...
    metering
        .meter()
        .billable(user(1))
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(500, 500).unwrap())
        .call(async { Ok::<_, Infallible>(serde_json::json!({})) })
        .await
        .unwrap();
    let stale = router.clone().oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(header(&stale, "x-remaining-tokens"), "10000");
    clock.advance(chrono::Duration::seconds(10));
    let fresh = router.clone().oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(header(&fresh, "x-remaining-tokens"), "9000");

    // ...while usage recorded through the layer is seen at once, by the next request too.
    let metered = router
        .clone()
        .oneshot(req("/chat/1000", Some(1)))
        .await
        .unwrap();
    assert_eq!(header(&metered, "x-remaining-tokens"), "8000");
    let next = router.oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(header(&next, "x-remaining-tokens"), "8000");
}

#[tokio::test]
async fn a_cached_exhausted_billable_is_refused_without_the_store() {
    let (metering, store, clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let router = app(QuotaLayer::new(metering).cache_ttl(chrono::Duration::hours(1)));
    assert_eq!(
        router
            .clone()
            .oneshot(req("/chat/1000", Some(1)))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    store.set_down(true);
    // The status read after the write says "exhausted"; the store is not needed to refuse.
    let response = router
        .clone()
        .oneshot(req("/chat/1", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), SECS_TO_RESET.to_string());
    assert_eq!(header(&response, "x-remaining-tokens"), "0");
    assert_eq!(header(&response, "x-usage-percentage"), "100");
    assert_eq!(
        header(&response, "ratelimit-policy"),
        format!("\"tokens\";q=1000;w={JANUARY};ai-metering-unit=\"tokens\"")
    );
    assert_eq!(
        header(&response, "ratelimit"),
        format!("\"tokens\";r=0;t={SECS_TO_RESET}")
    );
    // Refused again from the cache a minute later: the clock-dependent values follow.
    clock.advance(chrono::Duration::seconds(60));
    let later = router.oneshot(req("/chat/1", Some(1))).await.unwrap();
    assert_eq!(later.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&later, "retry-after"),
        (SECS_TO_RESET - 60).to_string()
    );
    assert_eq!(
        header(&later, "ratelimit"),
        format!("\"tokens\";r=0;t={}", SECS_TO_RESET - 60)
    );
}

#[tokio::test]
async fn header_styles_select_the_fields() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let original = app(QuotaLayer::new(metering.clone()).headers(HeaderStyle::Original))
        .oneshot(req("/peek", Some(1)))
        .await
        .unwrap();
    assert!(original.headers().contains_key("x-remaining-tokens"));
    assert!(!original.headers().contains_key("ratelimit"));
    let ietf = app(QuotaLayer::new(metering).headers(HeaderStyle::Ietf))
        .oneshot(req("/peek", Some(1)))
        .await
        .unwrap();
    assert!(!ietf.headers().contains_key("x-remaining-tokens"));
    assert!(ietf.headers().contains_key("ratelimit"));
}

#[tokio::test]
async fn a_billable_without_a_subscription_is_unlimited() {
    let (metering, _store, _clock) = metering();
    let response = app(QuotaLayer::new(metering))
        .oneshot(req("/chat/300", Some(7)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-remaining-tokens"), "unlimited");
    assert_eq!(header(&response, "x-usage-percentage"), "0");
    assert!(!response.headers().contains_key("ratelimit-policy"));
}

#[tokio::test]
async fn a_custom_rejection_keeps_retry_after_and_the_quota_headers() {
    use axum::response::IntoResponse;
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 0).await;
    let layer = QuotaLayer::new(metering).on_rejection(|rejection| {
        (
            rejection.status(),
            format!("custom: {}", rejection.status().as_u16()),
        )
            .into_response()
    });
    let response = app(layer).oneshot(req("/peek", Some(1))).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), SECS_TO_RESET.to_string());
    assert_eq!(header(&response, "x-remaining-tokens"), "0");
    assert_eq!(text(response).await, "custom: 429");
}

#[tokio::test]
async fn a_required_subscription_is_a_403_even_when_failing_open() {
    let store = Shared::default();
    let metering = ai_metering_core::Metering::builder(store.clone())
        .config(ai_metering_core::MeteringConfig {
            require_subscription: true,
            ..Default::default()
        })
        .clock(ai_metering_core::clock::ManualClock::new(t0()))
        .build();
    subscribe(&store, &user(1), "basic", 10_000).await;

    for layer in [
        QuotaLayer::new(metering.clone()),
        QuotaLayer::new(metering.clone()).fail_open(),
        QuotaLayer::new(metering.clone()).estimate(100),
    ] {
        let router = app(layer);
        let refused = router
            .clone()
            .oneshot(req("/chat/10", Some(2)))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(header(&refused, "content-type"), "application/problem+json");
        let body: serde_json::Value = serde_json::from_str(&text(refused).await).unwrap();
        assert_eq!(body["status"], 403);
        assert_eq!(
            body["detail"],
            "An active subscription is required for this request."
        );

        let allowed = router.oneshot(req("/chat/10", Some(1))).await.unwrap();
        assert_eq!(allowed.status(), StatusCode::OK);
    }
    let recorded = store
        .query_usage(&UsageFilter::for_billable(user(2)), Page::default())
        .await
        .unwrap();
    assert!(recorded.is_empty(), "the refused requests recorded nothing");
}
