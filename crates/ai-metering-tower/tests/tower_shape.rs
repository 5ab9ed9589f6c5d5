//! The layer as a tower citizen: `Router::layer`, `route_layer`, `ServiceBuilder`, and the
//! extractor's rejection without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;

use ai_metering_core::store::MemoryStore;
use ai_metering_tower::{QuotaLayer, RemainingQuota, RemainingQuotaRejection};
use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::*;
use http::StatusCode;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

async fn remaining(quota: RemainingQuota<Shared>) -> String {
    format!("{:?}", quota.remaining_tokens())
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_naming_the_layer() {
    let router = Router::new().route("/", get(remaining));
    let response = router
        .oneshot(http::Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = text(response).await;
    assert!(body.contains("is the QuotaLayer installed"), "{body}");
    assert!(body.contains("RemainingQuota<"), "{body}");

    let rejection = RemainingQuotaRejection::MissingQuotaLayer { store: "S" };
    assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let problem: serde_json::Value = serde_json::from_str(&rejection.body_text()).unwrap();
    assert_eq!(problem["detail"], rejection.to_string());
    assert_eq!(
        rejection.into_response().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn a_layer_over_another_store_type_is_not_mistaken_for_this_one() {
    let router = Router::new()
        .route("/", get(remaining))
        .layer(QuotaLayer::new(MemoryStore::new()))
        .layer(axum::middleware::from_fn(auth));
    let response = router
        .oneshot(
            http::Request::get("/")
                .header("x-user", "1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = text(response).await;
    assert!(
        body.contains("over ai_metering_core::store::memory::MemoryStore"),
        "{body}"
    );
    assert!(body.contains("without a type parameter"), "{body}");
}

#[tokio::test]
async fn route_layer_protects_only_its_route() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let router = Router::new()
        .route(
            "/chat",
            post(remaining).route_layer(QuotaLayer::new(metering)),
        )
        .route("/health", get(|| async { "up" }))
        .layer(axum::middleware::from_fn(auth));
    let chat = router.clone().oneshot(req("/chat", Some(1))).await.unwrap();
    assert_eq!(text(chat).await, "Some(1000)");
    // Anonymous: refused on the protected route, served on the other.
    let chat = router.clone().oneshot(req("/chat", None)).await.unwrap();
    assert_eq!(chat.status(), StatusCode::UNAUTHORIZED);
    let health = router
        .oneshot(http::Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(!health.headers().contains_key("x-remaining-tokens"));
}

#[tokio::test]
async fn service_builder_wraps_a_plain_service_fn() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let service = ServiceBuilder::new()
        .layer(QuotaLayer::new(metering).billable(ai_metering_tower::FromHeader::new("x-billable")))
        .service(service_fn(|request: http::Request<Body>| async move {
            let quota = RemainingQuota::<Shared>::from_extensions(request.extensions()).ok();
            // The store-agnostic view sees the same quota.
            let erased = <RemainingQuota>::from_extensions(request.extensions()).ok();
            assert_eq!(
                erased.as_ref().map(|q| q.billable().clone()),
                quota.as_ref().map(|q| q.billable().clone())
            );
            let body = format!("{:?}", quota.and_then(|q| q.remaining_tokens()));
            Ok::<_, Infallible>(http::Response::new(body))
        }));
    let request = http::Request::post("/")
        .header("x-billable", "user:1")
        .body(Body::empty())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-remaining-tokens"), "1000");
    assert_eq!(text(response).await, "Some(1000)");

    let response = service
        .oneshot(http::Request::post("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_route_is_called_on_the_service_poll_ready_readied_whether_cached_or_not() {
    // `ConcurrencyLimit` panics when called without a permit from its own `poll_ready`:
    // the cached decision calls the readied service at once, a decision that needs the
    // store calls it later from the future, and both must hand it the readied one.
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 1_000).await;
    let mut service = ServiceBuilder::new()
        .layer(QuotaLayer::new(metering).billable(ai_metering_tower::FromHeader::new("x-billable")))
        .concurrency_limit(1)
        .service(service_fn(|_request: http::Request<Body>| async {
            Ok::<_, Infallible>(http::Response::new(String::from("ok")))
        }));
    let before = store.checks.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        let request = http::Request::post("/")
            .header("x-billable", "user:1")
            .body(Body::empty())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The first request asked the store (a cache miss), the later ones were decided from
    // the cache: both paths ran.
    assert_eq!(
        store.checks.load(std::sync::atomic::Ordering::SeqCst) - before,
        1
    );
}
