//! A complete axum app protected by `QuotaLayer`.
//!
//! ```text
//! cargo run --example axum_quickstart        # PORT=8080 to change the port
//! ```
//!
//! - an auth middleware maps the `x-api-key` header to a `Billable`;
//! - `QuotaLayer` reserves an estimate for each `/chat` request, answers 429 once the
//!   plan's tokens are used up, and adds the quota headers;
//! - the chat handler calls a fake OpenAI-compatible provider through
//!   `RemainingQuota::meter`, which reads the usage from the response and records it;
//! - usage is stored in an embedded SQLite file, `axum-quickstart.db` (set `DATABASE_URL` to
//!   use another SQLite file or a PostgreSQL database), so it survives restarts.

use std::collections::HashMap;
use std::sync::Arc;

use ai_metering::prelude::*;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// API keys and whom they bill. A real app looks keys up in its database.
type Keys = Arc<HashMap<&'static str, Billable>>;

/// The auth middleware: a known `x-api-key` puts its `Billable` into the request
/// extensions, where `QuotaLayer` finds it. Unknown keys get no billable, so the layer
/// answers 401.
async fn auth(State(keys): State<Keys>, mut request: Request, next: Next) -> Response {
    let billable = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|key| keys.get(key))
        .cloned();
    if let Some(billable) = billable {
        request.extensions_mut().insert(billable);
    }
    next.run(request).await
}

/// A stand-in for an LLM API: answers like OpenAI Chat Completions, usage included.
async fn fake_openai(prompt: String) -> Result<Value, std::io::Error> {
    let prompt_tokens = prompt.split_whitespace().count() as u64 + 8;
    let reply = format!("You said: {prompt}");
    let completion_tokens = reply.split_whitespace().count() as u64 * 40;
    Ok(json!({
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": reply }, "finish_reason": "stop" }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
}

/// `POST /chat {"message": "..."}`: one metered provider call.
///
/// Refusals answer as the layer's own (429, 402, 403, 409, 503, with the same problem
/// bodies); a provider failure is a 502 that does not show the provider's error.
async fn chat(
    quota: RemainingQuota,
    Json(body): Json<Value>,
) -> Result<Json<Value>, QuotaRejection> {
    let message = body["message"].as_str().unwrap_or("hello").to_owned();
    let metered = quota
        .meter()
        .provider("openai", "gpt-4o-mini")
        .call(fake_openai(message))
        .await?;
    Ok(Json(json!({
        "reply": metered.response["choices"][0]["message"]["content"],
        "tokens": metered.usage.total_tokens(),
        "cost": metered.cost.total.to_string(),
        "remaining_tokens": metered.check.remaining_tokens,
    })))
}

/// `GET /quota`: what is left, without calling anything.
async fn quota(quota: RemainingQuota) -> Json<Value> {
    Json(json!({
        "billable": quota.billable().to_string(),
        "remaining_tokens": quota.remaining_tokens(),
        "remaining_cost": quota.remaining_cost().map(|c| c.to_string()),
        "usage_percentage": quota.usage_percentage().to_string(),
        "reset_at": quota.reset_at(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://axum-quickstart.db?mode=rwc".to_owned());
    let store = SeaOrmStore::connect(&url).await?;
    store.migrate().await?;
    store
        .upsert_plan(&Plan::new("free", "Free").with_token_limit(2_000))
        .await?;
    store
        .upsert_plan(&Plan::new("pro", "Pro").with_token_limit(1_000_000))
        .await?;
    let now = chrono::Utc::now();
    let alice = Billable::new("user", 1);
    let acme = Billable::new("team", "acme");
    for (who, plan) in [(&alice, "free"), (&acme, "pro")] {
        // Subscribe once: on later runs the stored subscription is still in force.
        if store.current_subscription(who, now).await?.is_none() {
            store
                .insert_subscription(&Subscription::new(who.clone(), plan, now))
                .await?;
        }
    }
    let keys: Keys = Arc::new(HashMap::from([("demo-free", alice), ("demo-pro", acme)]));

    // One layer, cloned per route (clones share the limit-check cache): `/chat` reserves
    // 500 tokens per request before the handler runs; `/quota` only checks.
    let quota_layer = QuotaLayer::new(Metering::new(store));
    let app = Router::new()
        .route(
            "/chat",
            post(chat).route_layer(quota_layer.clone().feature("chat").estimate(500)),
        )
        .route("/quota", get(quota).route_layer(quota_layer))
        .layer(middleware::from_fn_with_state(keys, auth));

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("ai-metering quick start listening on {base}\n");
    println!(
        "  # chat as the free plan (2,000 tokens a month); repeat it about ten times to see the 429:"
    );
    println!(
        "  curl -i -X POST {base}/chat -H 'x-api-key: demo-free' -H 'content-type: application/json' -d '{{\"message\":\"hello there\"}}'"
    );
    println!("  # what is left:");
    println!("  curl -i {base}/quota -H 'x-api-key: demo-free'");
    println!("  # the pro plan:");
    println!(
        "  curl -i -X POST {base}/chat -H 'x-api-key: demo-pro' -H 'content-type: application/json' -d '{{\"message\":\"hi\"}}'"
    );
    println!("  # no key: 401");
    println!("  curl -i -X POST {base}/chat -d '{{}}'");
    axum::serve(listener, app).await?;
    Ok(())
}
