//! The facade end to end: an axum app on an embedded SQLite store, protected by
//! `QuotaLayer`, metering a provider through the `RemainingQuota` extractor, with the
//! dashboard's JSON API reporting what was recorded.
#![cfg(all(feature = "sqlite", feature = "dashboard"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering::dashboard::{self, DashboardConfig};
use ai_metering::prelude::*;
use ai_metering::tower::FromHeader;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The provider stand-in: OpenAI Chat Completions, 60 prompt and 40 completion tokens.
async fn provider() -> Result<Value, std::io::Error> {
    Ok(json!({
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100}
    }))
}

async fn chat(quota: RemainingQuota<SeaOrmStore>) -> Result<Json<Value>, StatusCode> {
    let metered = quota
        .meter()
        .provider("openai", "gpt-4o-mini")
        .call(provider())
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(Json(json!({"tokens": metered.usage.total_tokens()})))
}

async fn body_json(response: axum::response::Response) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_app_on_sqlite_stops_at_the_limit_and_reports_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("e2e.db").display());
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .upsert_plan(&Plan::new("small", "Small").with_token_limit(1_000))
        .await
        .unwrap();
    let team = Billable::new("team", "acme");
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    store
        .insert_subscription(&Subscription::new(team.clone(), "small", start))
        .await
        .unwrap();
    let metering = Metering::new(store);

    let layer = QuotaLayer::new(metering.clone())
        .billable(FromHeader::new("x-team").kind("team"))
        .feature("chat")
        .estimate(100);
    let app = dashboard::mount(
        Router::new().route("/chat", post(chat).route_layer(layer)),
        metering.clone(),
        DashboardConfig::allow_all(),
    );

    let request = || {
        Request::post("/chat")
            .header("x-team", "acme")
            .body(Body::empty())
            .unwrap()
    };
    let mut ok = 0;
    let blocked = loop {
        let response = app.clone().oneshot(request()).await.unwrap();
        if response.status() != StatusCode::OK {
            break response;
        }
        ok += 1;
        let remaining = response.headers()["x-remaining-tokens"].to_str().unwrap();
        assert_eq!(
            remaining,
            (1_000 - 100 * ok).to_string(),
            "headers include this call"
        );
        assert!(ok <= 10, "the limit must stop the calls");
    };
    assert_eq!(ok, 10);
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));
    let problem = body_json(blocked).await;
    assert_eq!(problem["remaining_tokens"], json!(0));

    let unknown = app
        .clone()
        .oneshot(Request::post("/chat").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    let overview = app
        .clone()
        .oneshot(
            Request::get("/ai-metering/api/overview")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(overview.status(), StatusCode::OK);
    let overview = body_json(overview).await;
    assert_eq!(overview["totals"]["calls"], json!(10));
    assert_eq!(overview["totals"]["total_tokens"], json!(1_000));
    // 600 input at $0.15/M and 400 output at $0.60/M: $0.00033, exactly.
    assert_eq!(overview["totals"]["cost"], json!("0.00033"));
}
