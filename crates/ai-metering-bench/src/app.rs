//! The app: the routes, the billable middleware, and the store setup.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{Store, StoreResult};
use ai_metering_core::{Billable, Metering, TokenUsage};
use ai_metering_tower::{QuotaLayer, RemainingQuota};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{HeaderName, RETRY_AFTER};
use axum::routing::{get, post};
use chrono::DateTime;

use crate::Options;

const PLAN: &str = "load";

/// Creates the plan with `options.limit` and subscribes the billables of `options` to it
/// (once).
///
/// # Errors
/// The store's.
pub async fn prepare<S: Store>(store: &S, options: &Options) -> StoreResult<()> {
    store
        .upsert_plan(&Plan::new(PLAN, "Load").with_token_limit(options.limit))
        .await?;
    for id in options.billables() {
        let billable = Billable::new("user", id);
        if store
            .current_subscription(&billable, chrono::Utc::now())
            .await?
            .is_none()
        {
            store
                .insert_subscription(&Subscription::new(billable, PLAN, DateTime::UNIX_EPOCH))
                .await?;
        }
    }
    Ok(())
}

/// The app over `store`, or the bare app when `store` is `None`. Each request is charged to
/// the next of `options.billables()` in turn (as a host's auth middleware would decide).
pub fn app<S: Store>(store: Option<S>, options: &Options) -> Router {
    let (input, output) = options.usage;
    let usage = TokenUsage::new(input, output).unwrap_or_default();
    let routes = Router::new().route("/hello", get(|| async { "hello" }));
    let routes = match store {
        None => routes.route("/chat", post(|| async { "hi" })),
        Some(store) => {
            let quota = QuotaLayer::new(Metering::new(store))
                .cache_ttl(chrono::Duration::milliseconds(options.cache_ms))
                .headers(options.headers.into());
            routes.route_layer(quota.clone()).route(
                "/chat",
                post(move |q: RemainingQuota<S>| chat(q, usage))
                    .route_layer(quota.feature("chat").estimate(options.estimate)),
            )
        }
    };
    let billables: Arc<[Billable]> = options
        .billables()
        .into_iter()
        .map(|id| Billable::new("user", id))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    routes.layer(axum::middleware::map_request(
        move |mut request: Request| {
            // Each request is charged to the next billable in turn.
            let n = next.fetch_add(1, Ordering::Relaxed) % billables.len();
            let billable = billables[n].clone();
            async move {
                request.extensions_mut().insert(billable);
                request
            }
        },
    ))
}

/// A failed call is a 503 with `Retry-After`, never a 200: a bare `String` error would be
/// answered 200 OK, and a fault run counts every 200 as a recorded call.
async fn chat<S: Store>(
    quota: RemainingQuota<S>,
    usage: TokenUsage,
) -> Result<&'static str, (StatusCode, [(HeaderName, &'static str); 1], String)> {
    quota
        .meter()
        .provider("openai", "gpt-4o-mini")
        .manual_usage(usage)
        .call(async { Ok::<_, Infallible>("hi") })
        .await
        .map(|metered| metered.response)
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, "1")],
                e.to_string(),
            )
        })
}
