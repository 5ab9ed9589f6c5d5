//! The gateway's HTTP API: OpenAI-compatible routes in front of the configured upstreams,
//! every call authenticated by an API key, reserved before the upstream runs and settled
//! from the usage the upstream reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_metering_core::estimate::embeddings_input_tokens;
use ai_metering_core::keys::{ApiKey, ApiKeyStore, KeyError, authenticate};
use ai_metering_core::limit::LimitCheck;
use ai_metering_core::plan::BillingMode;
use ai_metering_core::provider::{Provider, extract_usage_from_slice};
use ai_metering_core::store::{ReportStore, Store, StoreErrorKind, WalletBalance};
use ai_metering_core::{Billable, Error, Metering, StreamMeter, TokenUsage};
use ai_metering_tower::{HeaderStyle, write_quota_headers};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::admin::AdminLogin;
use crate::cache::Cache;
use crate::config::{GatewayConfig, Route, UpstreamKind};
use crate::error::{ApiError, shorten};

/// Where the upstreams' API keys come from: the environment by default.
type KeySource = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The gateway: a [`Metering`] over a store that also keeps API keys, the configuration,
/// and one HTTP client for every upstream.
///
/// ```no_run
/// use ai_metering_core::Metering;
/// use ai_metering_core::store::MemoryStore;
/// use ai_metering_gateway::{Gateway, GatewayConfig};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = GatewayConfig::from_toml(&std::fs::read_to_string("ai-metering.toml")?)?;
/// let listen = config.listen;
/// let app = Gateway::new(Metering::new(MemoryStore::new()), config).router();
/// let listener = tokio::net::TcpListener::bind(listen).await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
pub struct Gateway<S: Store + ApiKeyStore> {
    metering: Metering<S>,
    config: Arc<GatewayConfig>,
    client: reqwest::Client,
    keys: KeySource,
    metrics: Option<PrometheusHandle>,
    dashboard: Option<MountDashboard>,
    cache: Arc<Cache>,
}

/// Adds the dashboard and its login to the finished router.
type MountDashboard = Arc<dyn Fn(Router) -> Router + Send + Sync>;

impl<S: Store + ApiKeyStore> Clone for Gateway<S> {
    fn clone(&self) -> Self {
        Self {
            metering: self.metering.clone(),
            config: Arc::clone(&self.config),
            client: self.client.clone(),
            keys: Arc::clone(&self.keys),
            metrics: self.metrics.clone(),
            dashboard: self.dashboard.clone(),
            cache: Arc::clone(&self.cache),
        }
    }
}

impl<S: Store + ApiKeyStore> Gateway<S> {
    /// A gateway over `metering` routing as `config` says; upstream keys are read from the
    /// environment variables the configuration names.
    pub fn new(metering: Metering<S>, config: GatewayConfig) -> Self {
        ai_metering_billing::install_tls_provider();
        Self {
            metering,
            cache: Arc::new(Cache::new(config.cache_ttl)),
            config: Arc::new(config),
            client: reqwest::Client::new(),
            keys: Arc::new(|name| std::env::var(name).ok()),
            metrics: None,
            dashboard: None,
        }
    }

    /// Serves `GET /metrics` in Prometheus' text format from `handle`: the money path's
    /// metrics ([`ai_metering_core::telemetry`]) and the gateway's own (requests by API and
    /// status, upstream latency, and the latency the gateway adds). The recorder behind the
    /// handle must be installed as the `metrics` facade's global recorder
    /// (`PrometheusBuilder::install_recorder`).
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Reads the upstreams' keys from `source` (a secret manager, a test) instead of the
    /// environment.
    pub fn with_key_source(
        mut self,
        source: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.keys = Arc::new(source);
        self
    }

    /// The routes: `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/embeddings`
    /// (OpenAI upstreams), `POST /v1/messages` (Anthropic upstreams) and `GET /v1/models`
    /// behind an API key;
    /// `GET /healthz` and `GET /readyz` (the store answers) open.
    pub fn router(self) -> Router {
        let api = Router::new()
            .route("/v1/chat/completions", post(call::<S>))
            .route("/v1/responses", post(call::<S>))
            .route("/v1/messages", post(call::<S>))
            .route("/v1/embeddings", post(call::<S>))
            .route("/v1beta/models/{target}", post(call::<S>))
            .route("/v1/models", get(models::<S>))
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                require_key::<S>,
            ));
        let metrics = self.metrics.clone();
        let mut router = Router::new().merge(api);
        if let Some(handle) = metrics {
            router = router.route(
                "/metrics",
                get(move || {
                    let handle = handle.clone();
                    async move {
                        (
                            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            handle.render(),
                        )
                    }
                }),
            );
        }
        let router = router
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/readyz", get(ready::<S>))
            .fallback(|method: Method, uri: Uri| async move {
                ApiError::invalid_request(format!(
                    "Invalid URL ({method} {}).",
                    shorten(&uri.to_string())
                ))
                .with_status(StatusCode::NOT_FOUND)
            })
            .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
                ApiError::invalid_request(format!(
                    "Method {method} is not allowed for {}.",
                    shorten(uri.path())
                ))
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
            })
            .with_state(self.clone());
        match &self.dashboard {
            Some(mount) => mount(router),
            None => router,
        }
    }
}

impl<S: Store + ApiKeyStore + ReportStore> Gateway<S> {
    /// Serves the dashboard under `/ai-metering`, behind a login with `admin_token`: a
    /// session cookie for whoever presents the token, never open (see [`crate::admin`]). An
    /// empty token leaves the dashboard off.
    pub fn with_dashboard(mut self, admin_token: &str) -> Self {
        let Some(login) = AdminLogin::new(admin_token) else {
            return self;
        };
        let metering = self.metering.clone();
        self.dashboard = Some(Arc::new(move |router: Router| {
            let router = router.merge(login.routes());
            ai_metering_dashboard::mount(router, metering.clone(), login.dashboard_config())
        }));
        self
    }
}

impl ApiError {
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// The API key a request presents: OpenAI's SDKs send a bearer token
/// (`Authorization: Bearer <key>`, the scheme in any case), Anthropic's an `x-api-key`
/// header, Google's an `x-goog-api-key` header. Trimmed; `None` when neither header holds a non-empty key.
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue, header};
/// let mut headers = HeaderMap::new();
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  sk-demo-bob "));
/// assert_eq!(ai_metering_gateway::presented_key(&headers), Some("sk-demo-bob"));
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
/// assert_eq!(ai_metering_gateway::presented_key(&headers), None);
/// ```
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// Authenticates the bearer key and puts its [`ApiKey`] in the request's extensions.
async fn require_key<S: Store + ApiKeyStore>(
    State(gw): State<Gateway<S>>,
    mut request: Request,
    next: Next,
) -> Response {
    let api = Api::of_path(request.uri().path());
    let Some(presented) = presented_key(request.headers()) else {
        return api.error(ApiError::unauthorized(
            "Missing API key: send `Authorization: Bearer amk_...` or `x-api-key: amk_...` (create one with `ai-metering keys create`).",
        ));
    };
    let now = gw.metering.now();
    if let Some(key) = gw.cache.key(presented, now) {
        request.extensions_mut().insert(key);
        return next.run(request).await;
    }
    match authenticate(gw.metering.store(), presented, now).await {
        Ok(key) => {
            gw.cache.put_key(presented, key.clone(), now);
            request.extensions_mut().insert(key);
            next.run(request).await
        }
        Err(KeyError::Store(e)) => api.error(ApiError::internal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API key lookup failed",
            &e,
        )),
        Err(e) => api.error(ApiError::unauthorized(format!("Incorrect API key: {e}."))),
    }
}

/// The provider APIs the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// OpenAI's Chat Completions.
    ChatCompletions,
    /// OpenAI's Responses API.
    Responses,
    /// Anthropic's Messages API.
    Messages,
    /// OpenAI's Embeddings: input only, never streamed.
    Embeddings,
    /// Gemini's `models/{model}:generateContent`.
    GenerateContent,
    /// Gemini's `models/{model}:streamGenerateContent` (server-sent events).
    StreamGenerateContent,
}

/// The Gemini API's prefix: `POST /v1beta/models/{model}:{action}`.
const GEMINI_MODELS: &str = "/v1beta/models/";

/// The model and action of a Gemini path (`gemini-2.5-flash`, `generateContent`).
fn gemini_target(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(GEMINI_MODELS)?.split_once(':')
}

impl Api {
    fn of_path(path: &str) -> Self {
        match path {
            "/v1/messages" => Self::Messages,
            "/v1/responses" => Self::Responses,
            "/v1/embeddings" => Self::Embeddings,
            _ => match gemini_target(path) {
                Some((_, "streamGenerateContent")) => Self::StreamGenerateContent,
                Some(_) => Self::GenerateContent,
                None if path.starts_with(GEMINI_MODELS) => Self::GenerateContent,
                None => Self::ChatCompletions,
            },
        }
    }

    /// Whether it is one of Gemini's, whose model is in the path.
    fn is_gemini(self) -> bool {
        matches!(self, Self::GenerateContent | Self::StreamGenerateContent)
    }

    /// The path after the upstream's base URL, calling `model`.
    fn path(self, model: &str) -> String {
        match self {
            Self::ChatCompletions => "/chat/completions".into(),
            Self::Responses => "/responses".into(),
            Self::Messages => "/messages".into(),
            Self::Embeddings => "/embeddings".into(),
            Self::GenerateContent => format!("/models/{model}:generateContent"),
            Self::StreamGenerateContent => format!("/models/{model}:streamGenerateContent?alt=sse"),
        }
    }

    /// Whether upstreams of `kind` serve it.
    fn served_by(self, kind: UpstreamKind) -> bool {
        match self {
            Self::ChatCompletions | Self::Embeddings => {
                matches!(kind, UpstreamKind::OpenAi | UpstreamKind::Mock)
            }
            Self::Responses => kind == UpstreamKind::OpenAi,
            Self::Messages => kind == UpstreamKind::Anthropic,
            Self::GenerateContent | Self::StreamGenerateContent => kind == UpstreamKind::Gemini,
        }
    }

    /// Where its usage is, complete or streamed.
    fn provider(self) -> Provider {
        match self {
            Self::ChatCompletions | Self::Responses | Self::Embeddings => Provider::OpenAi,
            Self::GenerateContent | Self::StreamGenerateContent => Provider::Gemini,
            Self::Messages => Provider::Anthropic,
        }
    }

    /// Its label in metrics.
    fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Responses => "responses",
            Self::Messages => "messages",
            Self::Embeddings => "embeddings",
            Self::GenerateContent => "generate_content",
            Self::StreamGenerateContent => "stream_generate_content",
        }
    }

    /// `e` in this API's error shape.
    fn error(self, e: ApiError) -> Response {
        match self {
            Self::Messages => e.into_anthropic_response(),
            Self::GenerateContent | Self::StreamGenerateContent => e.into_google_response(),
            _ => e.into_response(),
        }
    }
}

async fn ready<S: Store + ApiKeyStore>(State(gw): State<Gateway<S>>) -> Response {
    // A keyed read: answers only when the database does.
    match gw.metering.store().api_key("0000000000000000").await {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => ApiError::server(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The database is not reachable ({:?}).", e.kind()),
        )
        .into_response(),
    }
}

async fn models<S: Store + ApiKeyStore>(
    State(gw): State<Gateway<S>>,
    Extension(key): Extension<ApiKey>,
) -> Json<Value> {
    let data: Vec<Value> = gw
        .config
        .models
        .iter()
        .filter(|(name, _)| key.allows_model(name))
        .map(|(name, route)| {
            json!({"id": name, "object": "model", "created": 0, "owned_by": route.upstream})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `POST /v1/chat/completions`, `/v1/responses`, `/v1/messages`, `/v1/embeddings` and
/// `/v1beta/models/{model}:{action}`: the path names the API (and, for Gemini, the model).
async fn call<S: Store + ApiKeyStore>(
    State(gw): State<Gateway<S>>,
    Extension(key): Extension<ApiKey>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    measured(Api::of_path(uri.path()), uri, gw, key, headers, body).await
}

/// [`proxy`], counted and timed: `ai_metering_gateway_requests_total` by API and status,
/// `ai_metering_gateway_upstream_seconds` (until the upstream's answer, or its first byte for
/// a stream) and `ai_metering_gateway_overhead_seconds` (the rest: what the gateway adds).
async fn measured<S: Store + ApiKeyStore>(
    api: Api,
    uri: Uri,
    gw: Gateway<S>,
    key: ApiKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut upstream = None;
    let response = proxy(api, &uri, gw, key, headers, body, &mut upstream)
        .await
        .unwrap_or_else(|e| api.error(e));
    let status = response.status().as_u16().to_string();
    metrics::counter!("ai_metering_gateway_requests_total", "api" => api.name(), "status" => status)
        .increment(1);
    if let Some(upstream) = upstream {
        metrics::histogram!("ai_metering_gateway_upstream_seconds", "api" => api.name())
            .record(upstream);
        metrics::histogram!("ai_metering_gateway_overhead_seconds", "api" => api.name())
            .record(started.elapsed().saturating_sub(upstream));
    }
    response
}

/// One metered call of `api`: checks, reserves, calls the upstream, settles. Sets
/// `upstream_time` to how long the upstream took to answer, when it was called.
async fn proxy<S: Store + ApiKeyStore>(
    api: Api,
    uri: &Uri,
    gw: Gateway<S>,
    key: ApiKey,
    client_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    upstream_time: &mut Option<Duration>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| {
        ApiError::invalid_request(format!(
            "The request body could not be read: {}",
            shorten(&e.body_text())
        ))
        .with_status(e.status())
    })?;
    let mut request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("The request body is not JSON: {e}")))?;
    let model = if api.is_gemini() {
        // Gemini names the model and the action in the path.
        match gemini_target(uri.path()) {
            Some((model, "generateContent" | "streamGenerateContent")) if !model.is_empty() => {
                model.to_owned()
            }
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "Unknown Gemini method {}: expected models/MODEL:generateContent or models/MODEL:streamGenerateContent.",
                    shorten(uri.path())
                ))
                .with_status(StatusCode::NOT_FOUND));
            }
        }
    } else {
        request
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_request("The request has no `model`."))?
            .to_owned()
    };
    if !key.allows_model(&model) {
        return Err(ApiError::model_not_allowed(&model));
    }
    let route = gw
        .config
        .route(&model)
        .ok_or_else(|| ApiError::model_not_found(&model))?;
    if !api.served_by(route.upstream.kind) {
        return Err(ApiError::invalid_request(format!(
            "The model `{}` is served by the {} upstream `{}`, which does not speak {}.",
            shorten(&model),
            route.upstream.kind.as_str(),
            route.upstream_name,
            api.name(),
        )));
    }
    // Embeddings are never streamed.
    let stream = match api {
        Api::Embeddings | Api::GenerateContent => false,
        // Gemini streams by its method, not a flag.
        Api::StreamGenerateContent => true,
        _ => request.get("stream").and_then(Value::as_bool) == Some(true),
    };

    let mut meter = gw
        .metering
        .meter()
        .billable(key.billable.clone())
        .provider(route.upstream.provider.as_str(), route.model);
    meter = if api == Api::Embeddings {
        // Input only: the request's own size is the estimate.
        let input = embeddings_input_tokens(&request).ok_or_else(|| {
            ApiError::invalid_request(
                "The request's `input` must be a string, a list of strings, or token arrays.",
            )
        })?;
        let usage = TokenUsage::new(input, 0)
            .map_err(|e| ApiError::invalid_request(format!("The request is too large: {e}")))?;
        meter.estimate(usage)
    } else {
        meter.request(&request)
    };
    if let Some(tenant) = &key.tenant {
        meter = meter.tenant(tenant.clone());
    }
    let now = gw.metering.now();
    let cached = gw.cache.entitlement(&key.billable, now);
    let cached_period = cached.as_ref().map(|e| e.period);
    if let Some(entitlement) = cached {
        meter = meter.entitlement(entitlement);
    }
    let reservation = meter.begin().await.map_err(metering_error)?;
    // Kept from when it was read, not refreshed by each call that uses it: a change of plan
    // elsewhere is seen at most a TTL later. One read again when its period ended.
    if cached_period != Some(reservation.entitlement().period) {
        gw.cache
            .put_entitlement(reservation.entitlement().clone(), now);
    }
    let credits = reservation.entitlement().billing_mode == BillingMode::Credits;
    // What is left once this call is reserved: the layer's quota headers, on every answer.
    let period = reservation.entitlement().period;
    let quota_headers = |check: &LimitCheck| {
        let mut headers = HeaderMap::new();
        write_quota_headers(
            check,
            period.as_ref(),
            gw.metering.catalog().currency(),
            HeaderStyle::default(),
            gw.metering.now(),
            &mut headers,
        );
        headers
    };
    // Formatted once, where the answer leaves: a plain answer's after its own usage.
    let reserved = reservation.check().clone();
    // Credits mode: the wallet with this call's hold, for a stream's headers.
    let after_hold = reservation.wallet().cloned();

    if !api.is_gemini() {
        // Gemini's body has no model: it is in the upstream's path.
        request["model"] = json!(route.model);
    }
    // Only Chat Completions streams leave their usage out unless asked.
    let ask_for_usage = stream && api == Api::ChatCompletions;
    let client_wants_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if ask_for_usage {
        // The final usage chunk is what the call is settled from; a client that did not
        // ask for it does not see it.
        match request.get_mut("stream_options") {
            Some(Value::Object(options)) => {
                options.insert("include_usage".into(), json!(true));
            }
            _ => request["stream_options"] = json!({"include_usage": true}),
        }
    }

    let called = Instant::now();
    // The upstream's whole answer, a stream's included, must come within its timeout. The
    // deadline is tokio's, so that tests can run it on a paused clock.
    let deadline = tokio::time::Instant::now() + route.upstream.timeout;
    let upstream = send(&gw, api, &route, &client_headers, &request, deadline).await;
    *upstream_time = Some(called.elapsed());
    let upstream = match upstream {
        Ok(response) => response,
        Err(e) => {
            release(reservation).await;
            return Err(e);
        }
    };
    let status = upstream.status();
    if !status.is_success() {
        // The upstream refused the call: nothing is charged, its error goes back as sent.
        release(reservation).await;
        let headers = upstream.headers().clone();
        let body = tokio::time::timeout_at(deadline, upstream.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Ok(with_headers(
            passthrough(status, &headers, body),
            quota_headers(&reserved),
        ));
    }
    if stream {
        let mut headers = HeaderMap::new();
        copy_content_type(upstream.headers(), &mut headers);
        let meter = StreamMeter::new(reservation, api.provider());
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        tokio::spawn(pump(
            upstream,
            meter,
            tx,
            ask_for_usage && !client_wants_usage,
            deadline,
        ));
        let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
        if credits
            && let Some(wallet) = wallet_as_told(&gw.metering, &key.billable, after_hold).await
        {
            // Sent before the reply: the available amount has the call's hold taken off.
            headers.extend(wallet_headers(&wallet));
        }
        let mut response = Response::new(body);
        *response.headers_mut() = headers;
        return Ok(with_headers(response, quota_headers(&reserved)));
    }
    let headers = upstream.headers().clone();
    let bytes = tokio::time::timeout_at(deadline, upstream.bytes()).await;
    *upstream_time = Some(called.elapsed());
    let bytes = match bytes {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            // The upstream ran the call, its answer was lost: charged at the estimate.
            record_estimate(reservation, "the upstream's body could not be read").await;
            return Err(upstream_error(&e));
        }
        Err(_) => {
            record_estimate(reservation, "the upstream's body did not come in time").await;
            return Err(timed_out());
        }
    };
    // A plain answer's headers say what is left after its own usage (and, in credits mode,
    // the wallet after its debit, as the settlement reports it).
    let mut wallet = None;
    let after = match extract_usage_from_slice(api.provider(), &bytes) {
        Ok(usage) => match reservation.record(usage, false).await {
            Ok(outcome) => {
                wallet = outcome.wallet;
                Some(outcome.check)
            }
            Err(e) => {
                return Err(ApiError::internal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "a completed call could not be recorded",
                    &e,
                ));
            }
        },
        Err(e) => {
            tracing::warn!(target: "ai_metering", error = %e, "the upstream reported no usable usage");
            record_estimate(reservation, "the upstream reported no usable usage").await;
            None
        }
    };
    let quota = quota_headers(after.as_ref().unwrap_or(&reserved));
    let mut response = with_headers(passthrough(status, &headers, bytes), quota);
    if credits && let Some(wallet) = wallet_as_told(&gw.metering, &key.billable, wallet).await {
        response.headers_mut().extend(wallet_headers(&wallet));
    }
    Ok(response)
}

/// A credits-mode billable's wallet in the catalog's currency: the one the store `told`
/// with the hold or the settlement, else read now; `None` when it cannot be read (the call
/// itself was metered; the wallet headers are informational).
async fn wallet_as_told<S: Store>(
    metering: &Metering<S>,
    billable: &Billable,
    told: Option<WalletBalance>,
) -> Option<WalletBalance> {
    let currency = metering.catalog().currency();
    if let Some(wallet) = told.filter(|w| w.currency == currency) {
        return Some(wallet);
    }
    metering
        .store()
        .wallet_at(billable, currency, metering.now())
        .await
        .ok()
}

/// `X-Credits-Balance`, `X-Credits-Available` and `X-Credits-Currency`: a credits-mode
/// billable's wallet after the call, exact amounts.
fn wallet_headers(wallet: &WalletBalance) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-credits-balance", wallet.balance.normalize().to_string()),
        (
            "x-credits-available",
            wallet.available().normalize().to_string(),
        ),
        ("x-credits-currency", wallet.currency.as_str().to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

fn with_headers(mut response: Response, extra: HeaderMap) -> Response {
    response.headers_mut().extend(extra);
    response
}

/// The Anthropic API version sent when the client names none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Calls the upstream, with its own key (never the client's).
async fn send<S: Store + ApiKeyStore>(
    gw: &Gateway<S>,
    api: Api,
    route: &Route<'_>,
    client_headers: &HeaderMap,
    body: &Value,
    deadline: tokio::time::Instant,
) -> Result<reqwest::Response, ApiError> {
    if route.upstream.kind == UpstreamKind::Mock {
        let answer = match api {
            Api::Embeddings => crate::mock::embeddings(body),
            _ => crate::mock::answer(body),
        };
        return Ok(reqwest::Response::from(crate::mock::paced(
            answer,
            route.upstream.word_delay,
        )));
    }
    let mut call = gw
        .client
        .post(format!(
            "{}{}",
            route.upstream.base_url,
            api.path(route.model)
        ))
        .json(body);
    if route.upstream.kind == UpstreamKind::Anthropic {
        let version = client_headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(ANTHROPIC_VERSION);
        call = call.header("anthropic-version", version);
        if let Some(beta) = client_headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
        {
            call = call.header("anthropic-beta", beta);
        }
    }
    if let Some(var) = &route.upstream.api_key_env {
        match (gw.keys)(var) {
            Some(secret) if route.upstream.kind == UpstreamKind::Anthropic => {
                call = call.header("x-api-key", secret);
            }
            Some(secret) if route.upstream.kind == UpstreamKind::Gemini => {
                call = call.header("x-goog-api-key", secret);
            }
            Some(secret) => call = call.bearer_auth(secret),
            None => {
                return Err(ApiError::server(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "The upstream `{}` has no API key: {var} is not set.",
                        route.upstream_name
                    ),
                ));
            }
        }
    }
    match tokio::time::timeout_at(deadline, call.send()).await {
        Ok(sent) => sent.map_err(|e| upstream_error(&e)),
        Err(_) => Err(timed_out()),
    }
}

/// 504: the upstream did not answer within its timeout.
fn timed_out() -> ApiError {
    ApiError::server(
        StatusCode::GATEWAY_TIMEOUT,
        "The upstream did not answer in time.",
    )
}

/// 502: the upstream could not be reached, or its answer could not be read. (Timeouts are
/// the deadline's, on tokio's clock: [`timed_out`].)
fn upstream_error(e: &reqwest::Error) -> ApiError {
    ApiError::server(
        StatusCode::BAD_GATEWAY,
        format!("The upstream could not be reached: {e}"),
    )
}

fn copy_content_type(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    if let Some(v) = from
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        to.insert(header::CONTENT_TYPE, v);
    }
}

/// The upstream's answer as it sent it: status, content type and body.
fn passthrough(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    copy_content_type(headers, response.headers_mut());
    response
}

async fn release<S: Store>(reservation: ai_metering_core::Reservation<S>) {
    if let Err(e) = reservation.release().await {
        // The reservation expires on its own; the log says why it outlived its call.
        tracing::warn!(target: "ai_metering", error = %e, "a reservation could not be released");
    }
}

async fn record_estimate<S: Store>(reservation: ai_metering_core::Reservation<S>, why: &str) {
    match reservation.estimate_usage() {
        Some(usage) => {
            if let Err(e) = reservation.record(usage, true).await {
                tracing::error!(target: "ai_metering", error = %e, why, "an estimated call could not be recorded");
            }
        }
        None => release(reservation).await,
    }
}

/// Streams the upstream's events to the client, metering them; stops (cancelling the
/// upstream call) when the client goes away. The meter records what was streamed either way.
async fn pump<S: Store>(
    mut upstream: reqwest::Response,
    mut meter: StreamMeter<S>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    strip_usage: bool,
    deadline: tokio::time::Instant,
) {
    let mut events = EventSplitter::default();
    loop {
        let next = tokio::select! {
            next = upstream.chunk() => next,
            // The client went away while the upstream was quiet.
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => {
                // Cut off like a broken stream: the client sees the body fail, and is
                // charged for what it was sent.
                tracing::warn!(target: "ai_metering", "the upstream stream ran past its timeout");
                let _ = tx
                    .send(Err(std::io::Error::other("the upstream stream ran past its timeout")))
                    .await;
                break;
            }
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(target: "ai_metering", error = %e, "the upstream stream broke off");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                break;
            }
        };
        if let Err(e) = meter.push_bytes(&chunk) {
            tracing::warn!(target: "ai_metering", error = %e, "an upstream event could not be read");
        }
        let out = if strip_usage {
            events.push(&chunk)
        } else {
            chunk
        };
        if !out.is_empty() && tx.send(Ok(out)).await.is_err() {
            // The client went away: dropping the meter records what was streamed, dropping
            // the upstream response cancels the call.
            return;
        }
    }
    let rest = events.finish();
    if !rest.is_empty() {
        let _ = tx.send(Ok(rest)).await;
    }
    drop(tx);
    if let Err(e) = meter.finish().await {
        tracing::error!(target: "ai_metering", error = %e, "a streamed call could not be recorded");
    }
}

/// Splits server-sent events and drops the usage-only chunk (`choices: []` with a `usage`)
/// that the gateway asked for on the client's behalf.
#[derive(Default)]
struct EventSplitter {
    buffer: Vec<u8>,
}

impl EventSplitter {
    /// The complete events in `chunk` (with what was buffered), minus the usage chunk.
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.buffer.len());
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&self.buffer[start..]) {
            let event = &self.buffer[start..start + end];
            if !is_usage_chunk(event) {
                out.extend_from_slice(&self.buffer[start..start + end + sep]);
            }
            start += end + sep;
        }
        self.buffer.drain(..start);
        Bytes::from(out)
    }

    /// What is left at the end of the stream (an event without its blank line).
    fn finish(self) -> Bytes {
        if is_usage_chunk(&self.buffer) {
            Bytes::new()
        } else {
            Bytes::from(self.buffer)
        }
    }
}

/// The end of the first event in `bytes` and the length of the blank line after it.
fn find_event_end(bytes: &[u8]) -> Option<(usize, usize)> {
    (0..bytes.len()).find_map(|i| {
        if bytes[i..].starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if bytes[i..].starts_with(b"\n\n") {
            Some((i, 2))
        } else {
            None
        }
    })
}

fn is_usage_chunk(event: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(event) else {
        return false;
    };
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    let Ok(value) = serde_json::from_str::<Value>(&data) else {
        return false;
    };
    value
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && value.get("usage").is_some_and(Value::is_object)
}

/// A metering refusal in OpenAI's terms.
fn metering_error(e: Error) -> ApiError {
    match e {
        Error::LimitExceeded { check } => {
            let which = check.exceeded.map_or("usage", |k| k.as_str());
            let retry = check
                .reset_at
                .map(|at| u64::try_from((at - Utc::now()).num_seconds().max(1)).unwrap_or(1));
            ApiError::insufficient_quota(
                format!(
                    "You exceeded your current quota: the {which} limit for this period would be exceeded by this request."
                ),
                retry,
            )
        }
        Error::InsufficientCredits {
            required,
            available,
        } => ApiError::insufficient_quota(
            format!(
                "You exceeded your current quota: this request needs about {} {}, the credit balance has {available}.",
                required.amount, required.currency
            ),
            None,
        ),
        Error::UnknownModel { model, .. } => ApiError::invalid_request(format!(
            "The model `{}` has no price, so its calls cannot be metered.",
            shorten(&model)
        )),
        Error::CallInFlight { .. } => ApiError::busy(
            "Another request of this account without max_tokens is in progress, and its usage cannot be estimated yet. Retry in a second, or set max_tokens.",
        ),
        Error::IdempotencyKeyInFlight { .. } => {
            ApiError::invalid_request("A request with this idempotency key is in progress.")
                .with_status(StatusCode::CONFLICT)
        }
        Error::Store(e) => {
            let status = if e.kind() == StoreErrorKind::Unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            ApiError::internal(status, "the usage store failed; nothing was charged", &e)
        }
        other => ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metering a call failed",
            &other,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_chunk_is_dropped_whatever_the_chunking() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n\
                      data: [DONE]\n\n";
        let expected = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
        for size in [1, 2, 5, 17, stream.len()] {
            let mut s = EventSplitter::default();
            let mut out = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                out.extend_from_slice(&s.push(chunk));
            }
            out.extend_from_slice(&s.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "chunks of {size}"
            );
        }
        // CRLF framing, and an unterminated last event, are kept as sent.
        let mut s = EventSplitter::default();
        let out = s.push(b"data: {\"choices\":[{}]}\r\n\r\ndata: [DONE]");
        assert_eq!(&out[..], b"data: {\"choices\":[{}]}\r\n\r\n");
        assert_eq!(&s.finish()[..], b"data: [DONE]");
    }
}
