//! A handler that meters through `RemainingQuota` (no store type named) and answers with
//! `?`: every refusal gets the layer's status and problem body, a provider error a 502
//! that discloses nothing, and a missing or mismatched layer a 500 that names the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::store::{MemoryStore, Page, UsageFilter, UsageStore};
use ai_metering_core::{MeterError, TokenUsage};
use ai_metering_tower::{QuotaLayer, QuotaRejection, RemainingQuota};
use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use common::*;
use http::StatusCode;
use tower::ServiceExt;

/// Meters `tokens` through the erased quota; `fail` makes the provider fail.
async fn chat(
    Path((tokens, fail)): Path<(u64, bool)>,
    quota: RemainingQuota,
) -> Result<String, QuotaRejection> {
    let usage = TokenUsage::new(tokens / 2, tokens - tokens / 2).unwrap();
    let metered = quota
        .meter()
        .provider("openai", "gpt-4o-mini")
        .manual_usage(usage)
        .call(async move {
            if fail {
                Err(std::io::Error::other(
                    "upstream 10.1.2.3 said: key sk-secret invalid",
                ))
            } else {
                Ok("hi")
            }
        })
        .await?;
    Ok(metered.response.to_owned())
}

fn app(layer: QuotaLayer<Shared>) -> Router {
    Router::new()
        .route("/chat/{tokens}/{fail}", post(chat))
        .layer(layer)
        .layer(axum::middleware::from_fn(auth))
}

#[tokio::test]
async fn an_erased_quota_meters_through_the_layers_reservation() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "small", 1_000).await;
    let app = app(QuotaLayer::new(metering).estimate(100));

    let response = app
        .clone()
        .oneshot(req("/chat/300/false", Some(1)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The layer's reservation was settled by the handler's meter: counted once.
    assert_eq!(header(&response, "x-remaining-tokens"), "700");
    let rows = store
        .query_usage(&UsageFilter::for_billable(user(1)), Page::first(10))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn a_handlers_refusal_answers_as_the_layer_does() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(2), "tiny", 500).await;
    // No estimate in the layer: the layer lets the request in, the handler's meter refuses.
    let handler_app = app(QuotaLayer::new(metering.clone()));
    let from_handler = handler_app
        .oneshot(req("/chat/900/false", Some(2)))
        .await
        .unwrap();
    assert_eq!(from_handler.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&from_handler, "content-type"),
        "application/problem+json"
    );
    let handler_body: serde_json::Value = serde_json::from_str(&text(from_handler).await).unwrap();

    // The layer's own refusal of the same estimate.
    let layer_app = app(QuotaLayer::new(metering).estimate(900));
    let from_layer = layer_app
        .oneshot(req("/chat/900/false", Some(2)))
        .await
        .unwrap();
    assert_eq!(from_layer.status(), StatusCode::TOO_MANY_REQUESTS);
    let layer_body: serde_json::Value = serde_json::from_str(&text(from_layer).await).unwrap();
    for field in [
        "type",
        "title",
        "status",
        "violated-policies",
        "error",
        "remaining_tokens",
    ] {
        assert_eq!(handler_body[field], layer_body[field], "{field}");
    }
}

#[tokio::test]
async fn a_provider_error_is_a_502_that_discloses_nothing() {
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(3), "plenty", 10_000).await;
    let response = app(QuotaLayer::new(metering))
        .oneshot(req("/chat/10/true", Some(3)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = text(response).await;
    assert!(
        !body.contains("10.1.2.3") && !body.contains("sk-secret"),
        "{body}"
    );
    assert!(body.contains("\"status\":502"), "{body}");
}

#[test]
fn not_recorded_and_replays_have_their_own_statuses() {
    let not_recorded: MeterError<&str, std::io::Error> = MeterError::NotRecorded {
        response: "answer",
        error: ai_metering_core::Error::InvalidInput("db down at 10.0.0.9".into()),
    };
    let rejection = QuotaRejection::from(not_recorded);
    assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!rejection.body_text().contains("10.0.0.9"));
    assert!(std::error::Error::source(&rejection).is_some());
}

#[tokio::test]
async fn without_the_layer_the_rejection_says_so() {
    let app = Router::new().route("/chat/{tokens}/{fail}", post(chat));
    let response = app.oneshot(req("/chat/1/false", Some(1))).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = text(response).await;
    assert!(body.contains("is the QuotaLayer installed"), "{body}");
}

#[tokio::test]
async fn a_mismatched_store_type_is_named() {
    async fn typed(quota: RemainingQuota<MemoryStore>) -> String {
        quota.billable().to_string()
    }
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(4), "p", 10_000).await;
    let app = Router::new()
        .route("/typed", post(typed))
        .layer(QuotaLayer::new(metering))
        .layer(axum::middleware::from_fn(auth));
    let response = app.oneshot(req("/typed", Some(4))).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = text(response).await;
    assert!(
        body.contains("MemoryStore") && body.contains("Shared"),
        "{body}"
    );
    assert!(body.contains("without a type parameter"), "{body}");
}
