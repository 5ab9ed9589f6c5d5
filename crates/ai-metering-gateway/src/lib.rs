//! **ai-metering-gateway**: an OpenAI-compatible gateway in front of real providers that
//! meters every call: the caller's API key names who pays, the call is reserved against
//! the payer's plan or wallet before the upstream runs (estimated from the request's
//! prompt and `max_tokens`), and settled from the usage the upstream reports.
//!
//! - `POST /v1/responses` (OpenAI's Responses API) and `POST /v1/messages` (Anthropic's
//!   Messages API, for Anthropic SDK clients, who send their key as `x-api-key`), plain and
//!   streaming, each settled from its own usage; its errors in Anthropic's shape.
//! - `POST /v1/chat/completions`, plain and streaming. A stream asks the upstream for its
//!   usage (`stream_options.include_usage`) and hides that last chunk from a client that did
//!   not ask for it; a client that disconnects cancels the upstream call and is charged for
//!   what was streamed; a stream that ends without usage is charged an estimate, flagged.
//! - `POST /v1/embeddings`, reserved at its input's estimate and settled from its input-only
//!   usage.
//! - `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent` (Gemini's own
//!   API, for Google's SDKs, who send their key as `x-goog-api-key`), to upstreams of
//!   `kind = "gemini"`, settled from `usageMetadata`; its errors in Google's shape.
//! - `GET /v1/models` (the models the key may call), `GET /healthz`, `GET /readyz` (the
//!   database answers).
//! - Upstream errors reach the client with the upstream's status and body, and nothing is
//!   charged for them; an upstream that cannot be reached is a 502, one too slow a 504.
//!
//! An upstream of `kind = "mock"` ([`mock`]) answers inside the gateway, for demos and load
//! runs.
//!
//! Keys are [`ai_metering_core::keys`] keys (`ai-metering keys create`); routes come from
//! the `[gateway]` table of `ai-metering.toml` ([`GatewayConfig`]).
//!
//! Each authenticated key and each billable's entitlement are kept for
//! [`GatewayConfig::cache_ttl`] (5 s by default): a cached call reads only its counter, in its
//! reservation. The store decides every call atomically, so the cache never lets one past a
//! limit; a revocation or a plan changed by another process shows within the TTL.
//!
//! - `GET /metrics` in Prometheus' text format ([`Gateway::with_metrics`]): the money path's
//!   metrics (calls, tokens and cost by provider, model and outcome; refusals by reason;
//!   reservations in flight; settlement latency) and the gateway's own:
//!   `ai_metering_gateway_requests_total` by API and status,
//!   `ai_metering_gateway_upstream_seconds` and `ai_metering_gateway_overhead_seconds` (the
//!   latency the gateway adds to the upstream's).
//!
//! - The dashboard under `/ai-metering` behind a login ([`Gateway::with_dashboard`],
//!   [`admin`]): an admin token exchanged for a `SameSite=Strict` session cookie, a logout
//!   that needs the session's CSRF token; never open.
//!
//! `ai-metering demo` runs this gateway over a seeded database with the mock upstream.
#![warn(missing_docs)]

pub mod admin;
mod cache;
mod config;
mod error;
pub mod mock;
mod server;

pub use config::{
    ConfigError, DEFAULT_CACHE_TTL, DEFAULT_LISTEN, DEFAULT_TIMEOUT, GatewayConfig, ModelRoute,
    Route, Upstream, UpstreamKind,
};
pub use error::ApiError;
pub use server::{Gateway, presented_key};
