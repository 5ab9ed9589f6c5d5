//! Concurrent requests cannot spend past a limit: the layer reserves each route's estimate
//! atomically and the route's meter settles it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;

use ai_metering_core::TokenUsage;
use ai_metering_core::store::CounterStore;
use ai_metering_tower::{QuotaLayer, RemainingQuota};
use axum::Router;
use axum::routing::post;
use common::*;
use http::StatusCode;
use tower::ServiceExt;

async fn chat(quota: RemainingQuota<Shared>) -> Result<&'static str, StatusCode> {
    // Give the other requests a chance to interleave with this one.
    tokio::task::yield_now().await;
    quota
        .meter()
        .provider("openai", "gpt-4o-mini")
        .manual_usage(TokenUsage::new(60, 40).unwrap())
        .call(async {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(serde_json::json!({}))
        })
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_requests_against_a_limit_for_ten_let_exactly_ten_through() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let period = metering.config().period.period_at(t0()).unwrap();
    let router = Router::new()
        .route("/chat", post(chat))
        .layer(QuotaLayer::new(metering).estimate(100))
        .layer(axum::middleware::from_fn(auth));

    let handles: Vec<_> = (0..100)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                router
                    .oneshot(req("/chat", Some(1)))
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for handle in handles {
        match handle.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, refused), (10, 90));
    let usage = store.period_usage(&user(1), &period, t0()).await.unwrap();
    assert_eq!((usage.recorded.tokens, usage.reserved.tokens), (1_000, 0));
}
