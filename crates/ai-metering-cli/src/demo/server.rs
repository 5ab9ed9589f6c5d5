//! The demo's axum app: the dashboard, an OpenAI-compatible API protected by `QuotaLayer`,
//! and a small index page.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ai_metering_core::plan::BillingMode;
use ai_metering_core::store::CreditStore;
use ai_metering_core::store::StoreErrorKind;
use ai_metering_core::{Error, Metering, StreamMeter, TokenUsage};
use ai_metering_dashboard::DashboardConfig;
use ai_metering_tower::{QuotaLayer, QuotaRejection, RemainingQuota};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;

use super::accounts::{ACCOUNTS, account_for};
use super::mock_model;
use super::openai::{ApiError, ChatRequest, completion_json, shorten};
use super::stream::{StreamReply, sse_response};
use crate::commands::CliStore;
use crate::error::{CliError, CliResult};

/// The models the demo serves, each priced as the real provider's model.
pub const MODELS: &[(&str, &str)] = &[
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
];

#[derive(Clone)]
struct AppState {
    next_id: Arc<AtomicU64>,
}

/// The dashboard's access for a demo bound to `addr`. The demo has no login, so its
/// dashboard is open to whoever reaches it: it is served on a loopback address only, and the
/// demo refuses to start on any other (`0.0.0.0` included).
pub fn dashboard_config(addr: SocketAddr) -> CliResult<DashboardConfig> {
    if addr.ip().is_loopback() {
        Ok(DashboardConfig::allow_all())
    } else {
        Err(CliError::usage(format!(
            "refusing to serve the demo on {addr}: its dashboard has no login and shows every account's usage, so the demo listens on a loopback address only (for example --addr 127.0.0.1:8080). To publish a dashboard, mount ai_metering_dashboard in your app behind your own gate."
        )))
    }
}

/// The whole demo app, its dashboard served with `dashboard` (see [`dashboard_config`]).
pub fn app(
    metering: Metering<CliStore>,
    cache_ttl: Option<chrono::Duration>,
    dashboard: DashboardConfig,
) -> Router {
    let mut quota = QuotaLayer::new(metering.clone())
        .billable(|parts: &Parts| account_for(parts).map(|a| a.billable()))
        .feature("chat")
        .on_rejection(rejection_response);
    if let Some(ttl) = cache_ttl {
        quota = quota.cache_ttl(ttl);
    }
    let v1 = Router::new()
        .route("/chat/completions", post(chat).route_layer(quota))
        .route("/models", get(models))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let app = Router::new()
        .route("/", get(index))
        .nest("/v1", v1)
        .with_state(AppState {
            next_id: Arc::new(AtomicU64::new(1)),
        });
    // The default prefix, /ai-metering.
    ai_metering_dashboard::mount(app, metering, dashboard)
}

async fn index() -> impl IntoResponse {
    let keys: Vec<String> = ACCOUNTS
        .iter()
        .map(|a| format!("  {:<18} {}:{:<8} {}", a.key, a.kind, a.id, a.story))
        .collect();
    format!(
        "ai-metering demo\n\n  GET  /ai-metering            the dashboard\n  POST /v1/chat/completions    OpenAI-compatible chat (Authorization: Bearer <key>)\n  GET  /v1/models              the models\n\nKeys:\n{}\n",
        keys.join("\n")
    )
}

async fn models(parts: Parts) -> Result<Json<serde_json::Value>, ApiError> {
    if account_for(&parts).is_none() {
        return Err(missing_key());
    }
    let data: Vec<_> = MODELS
        .iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": owner}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    let mut e = ApiError::invalid_request(format!(
        "Invalid URL ({method} {})",
        shorten(&uri.to_string())
    ));
    e.status = StatusCode::NOT_FOUND;
    e
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let mut e = ApiError::invalid_request(format!(
        "Method {method} is not allowed for {}",
        shorten(uri.path())
    ));
    e.status = StatusCode::METHOD_NOT_ALLOWED;
    e
}

/// A body the server refuses to read (too large, say), in OpenAI's shape.
fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let mut e = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::invalid_request(format!(
            "The request body is too large: at most {} bytes are accepted.",
            MAX_BODY_BYTES
        ))
    } else {
        ApiError::invalid_request(format!(
            "The request body could not be read: {}",
            shorten(&rejection.body_text())
        ))
    };
    e.status = status;
    e
}

/// The largest request body the API reads (axum's default limit).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// 401 for a request without a demo key.
fn missing_key() -> ApiError {
    ApiError::unauthorized(format!(
        "Incorrect or missing API key. Use one of the demo keys printed by `ai-metering demo`, for example {}.",
        ACCOUNTS.first().map_or("sk-demo-alice", |a| a.key)
    ))
}

async fn chat(
    State(state): State<AppState>,
    quota: RemainingQuota<CliStore>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let request = ChatRequest::parse(&body)?;
    let provider = MODELS
        .iter()
        .find(|(id, _)| *id == request.model)
        .map(|(_, p)| *p)
        .ok_or_else(|| ApiError::model_not_found(&request.model))?;
    let texts = request.texts();
    let reply = mock_model::reply(
        texts.iter().map(|(role, text)| (*role, text.as_str())),
        request.reply_limit(),
    );
    let usage = TokenUsage::new(reply.prompt_tokens, reply.completion_tokens)
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    // Estimated as a real proxy would: from the request's prompt and `max_tokens`, else
    // from the account's recent calls (the mock's own figures are not peeked at).
    let mut meter = quota.meter().provider(provider, request.model.as_str());
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) {
        meter = meter.request(&json);
    }
    let reservation = meter.begin().await.map_err(metering_error)?;
    let credits = reservation.entitlement().billing_mode == BillingMode::Credits;
    let id = format!(
        "chatcmpl-demo-{}",
        state.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let created = Utc::now().timestamp();
    if request.stream {
        let r = StreamReply {
            id,
            created,
            model: request.model.clone(),
            reply,
            include_usage: request.include_usage(),
        };
        let billable = reservation.billable().clone();
        let mut response = sse_response(r, usage, StreamMeter::manual(reservation));
        if credits {
            // Sent before the reply: the available amount has the call's hold taken off.
            wallet_headers(quota.metering(), &billable, response.headers_mut()).await;
        }
        return Ok(response);
    }
    let billable = reservation.billable().clone();
    reservation.record(usage, false).await.map_err(|e| {
        ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the usage of a chat completion could not be recorded",
            &e,
        )
    })?;
    let mut response = Json(completion_json(&id, created, &request.model, &reply)).into_response();
    if credits {
        wallet_headers(quota.metering(), &billable, response.headers_mut()).await;
    }
    Ok(response)
}

/// `X-Credits-Balance`, `X-Credits-Available` and `X-Credits-Currency`: a credits-mode
/// account's wallet, exact amounts in the catalog's currency. Left out when the wallet
/// cannot be read (the call itself was metered; the headers are informational).
async fn wallet_headers(
    metering: &Metering<CliStore>,
    billable: &ai_metering_core::Billable,
    headers: &mut axum::http::HeaderMap,
) {
    let currency = metering.catalog().currency();
    let Ok(wallet) = metering
        .store()
        .wallet_at(billable, currency, metering.now())
        .await
    else {
        return;
    };
    for (name, value) in [
        ("x-credits-balance", wallet.balance.normalize().to_string()),
        (
            "x-credits-available",
            wallet.available().normalize().to_string(),
        ),
        ("x-credits-currency", currency.as_str().to_owned()),
    ] {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// A metering refusal in OpenAI's terms.
fn metering_error(e: Error) -> ApiError {
    match e {
        Error::LimitExceeded { check } => {
            let which = check.exceeded.map_or("usage", |k| k.as_str());
            let retry = check
                .reset_at
                .map(|at| u64::try_from((at - Utc::now()).num_seconds().max(1)).unwrap_or(1));
            let resets = check.reset_at.map_or(String::new(), |at| {
                format!(
                    " It resets at {}.",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            });
            ApiError::insufficient_quota(
                format!(
                    "You exceeded your current quota: the {which} limit for this period would be exceeded by this request.{resets}"
                ),
                retry,
            )
        }
        Error::InsufficientCredits {
            required,
            available,
        } => ApiError::insufficient_quota(
            format!(
                "You exceeded your current quota: this request needs about {} {}, the credit balance has {available} {}. Add credits with `ai-metering wallet add`.",
                required.amount, required.currency, required.currency
            ),
            None,
        ),
        Error::UnknownModel { model, .. } => ApiError::model_not_found(&model),
        Error::CallInFlight { .. } => ApiError::busy(
            "Another request of this account without max_tokens is in progress, and its usage cannot be estimated yet. Retry in a second, or set max_tokens.".into(),
        ),
        Error::IdempotencyKeyInFlight { .. } => ApiError::conflict(
            "A request with this idempotency key is in progress; retry once it is done.".into(),
        ),
        Error::Store(e) => {
            let status = if e.kind() == StoreErrorKind::Unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            ApiError::internal(status, "the usage store failed", &e)
        }
        // Anything else is ours to fix, not the client's: its text stays in the log.
        other => ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metering a chat completion failed",
            &other,
        ),
    }
}

/// The layer's refusals in OpenAI's error shape, so the SDKs raise the right exception.
fn rejection_response(rejection: QuotaRejection) -> Response {
    let detail = rejection.detail();
    match rejection {
        QuotaRejection::MissingBillable => missing_key(),
        QuotaRejection::QuotaExceeded { retry_after, .. } => ApiError::insufficient_quota(
            format!("You exceeded your current quota. {detail}"),
            retry_after,
        ),
        QuotaRejection::InsufficientCredits { .. } => {
            ApiError::insufficient_quota(format!("You exceeded your current quota. {detail}"), None)
        }
        QuotaRejection::SubscriptionRequired => {
            let mut e = ApiError::invalid_request(detail);
            e.status = StatusCode::FORBIDDEN;
            e
        }
        QuotaRejection::Unavailable(e) => ApiError::internal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the quota check could not reach the store",
            &e,
        ),
        other => ApiError::internal(other.status(), "the quota check failed", &other),
    }
    .into_response()
}
