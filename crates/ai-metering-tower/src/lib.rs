//! Usage quotas for tower and axum services: [`QuotaLayer`] in front of AI routes,
//! [`RemainingQuota`] in their handlers.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use ai_metering_core::plan::{Plan, Subscription};
//! use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
//! use ai_metering_core::{Billable, Metering, TokenUsage};
//! use ai_metering_tower::{QuotaLayer, RemainingQuota};
//! use axum::{Router, extract::Request, middleware::Next, response::Response, routing::post};
//! use tower::ServiceExt;
//!
//! // The host's auth middleware says who pays...
//! async fn auth(mut request: Request, next: Next) -> Response {
//!     request.extensions_mut().insert(Billable::new("user", 42));
//!     next.run(request).await
//! }
//!
//! // ...and the handler meters its provider call through the request's quota.
//! async fn chat(quota: RemainingQuota<MemoryStore>) -> String {
//!     let metered = quota
//!         .meter()
//!         .provider("openai", "gpt-4o-mini")
//!         .manual_usage(TokenUsage::new(120, 80).unwrap()) // or read from the response
//!         .call(async { Ok::<_, Infallible>("Hello!") })
//!         .await
//!         .unwrap();
//!     metered.response.to_owned()
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.upsert_plan(&Plan::new("free", "Free").with_token_limit(10_000)).await.unwrap();
//! store
//!     .insert_subscription(&Subscription::new(Billable::new("user", 42), "free", chrono::DateTime::UNIX_EPOCH))
//!     .await
//!     .unwrap();
//!
//! let app = Router::new()
//!     .route("/chat", post(chat))
//!     .layer(QuotaLayer::new(Metering::new(store)).feature("chat").estimate(1_000))
//!     .layer(axum::middleware::from_fn(auth));
//!
//! let response = app
//!     .oneshot(http::Request::post("/chat").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.headers()["x-remaining-tokens"], "9800");
//! assert!(response.headers()["ratelimit"].to_str().unwrap().starts_with("\"tokens\";r=9800;t="));
//! # });
//! ```
//!
//! # What the layer does
//!
//! See [`QuotaLayer`] for the decisions and status codes, [`headers`] for the header
//! formats, [`problem`] for the 429/402 bodies and [`cache`] for the limit-check cache.
//!
//! # In short
//!
//! - a billable over its limit gets `Retry-After` and the quota headers with its 429, and
//!   an RFC 9457 problem body;
//! - requests without a billable get 401 by default;
//! - a route can reserve an estimate, so concurrent requests cannot overspend;
//! - credits-mode billables that cannot pay get 402 before the route runs;
//! - the headers count the usage the request itself recorded;
//! - a handler returning `Result<_, QuotaRejection>` answers its meter's refusals with `?`,
//!   as the layer would.
#![warn(missing_docs)]

pub mod cache;
mod decide;
mod future;
pub mod headers;
mod layer;
pub mod problem;
mod remaining;
mod resolve;
mod service;

pub use future::ResponseFuture;
pub use headers::{HeaderStyle, write_quota_headers};
pub use layer::{DEFAULT_CACHE_TTL, QuotaLayer};
pub use problem::QuotaRejection;
pub use remaining::{RemainingQuota, RemainingQuotaRejection};
pub use resolve::{FromExtensions, FromHeader, HeaderNameArg, Resolver};
pub use service::QuotaService;
