//! The gateway end to end: an in-process mock upstream answering with the recorded provider
//! responses in `../shared/fixtures/providers`, the gateway in front of it, and reqwest as
//! the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::StreamExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use ai_metering_core::clock::ManualClock;
use ai_metering_core::keys::{ApiKeyStore, NewApiKey, create_api_key};
use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::provider::{Provider, UsageAccumulator, extract_usage_from_slice};
use ai_metering_core::store::{
    MemoryStore, Page, PlanStore, SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Metering, TokenUsage};
use ai_metering_gateway::{DEFAULT_CACHE_TTL, Gateway, GatewayConfig};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Sets its flag when dropped: the mock's endless stream was cancelled.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The process's Prometheus recorder, installed once for every test of this binary.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

/// What the mock upstream received.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// The recorded responses, or `None` (the test is skipped, or fails in CI) without them.
fn fixtures(test: &str) -> Option<PathBuf> {
    ai_metering_test_env::shared_path(test, "fixtures/providers")
}

/// A mock OpenAI: the first message's content picks the answer: `plain` (a recorded
/// completion), `stream` (a recorded stream with usage), `refuse` (a 429 in OpenAI's shape).
async fn mock_upstream(dir: PathBuf) -> (SocketAddr, Seen, Arc<AtomicBool>) {
    let seen: Seen = Arc::default();
    let cancelled = Arc::new(AtomicBool::new(false));
    async fn chat(
        State((dir, seen, dropped)): State<(PathBuf, Seen, Arc<AtomicBool>)>,
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Response {
        let auth = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned());
        seen.lock().unwrap().push((auth, body.clone()));
        match body["messages"][0]["content"].as_str().unwrap_or_default() {
            "stream" => (
                [(header::CONTENT_TYPE, "text/event-stream")],
                std::fs::read(dir.join("openai_chat_stream_include_usage.sse")).unwrap(),
            )
                .into_response(),
            "endless" => {
                // The recorded stream's first events, then nothing more, ever: only the
                // gateway giving up on it ends it, which `Dropped` reports.
                let text = std::fs::read_to_string(dir.join("openai_chat_stream_include_usage.sse"))
                    .unwrap();
                let first: Vec<Result<String, std::io::Error>> = text
                    .split("\n\n")
                    .take(3)
                    .map(|e| Ok(format!("{e}\n\n")))
                    .collect();
                let guard = Dropped(Arc::clone(&dropped));
                let body = futures_util::stream::iter(first)
                    .chain(futures_util::stream::pending())
                    .map(move |e| {
                        let _ = &guard;
                        e
                    });
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    axum::body::Body::from_stream(body),
                )
                    .into_response()
            }
            // A 200 whose body has no usage at all.
            "nousage" => axum::Json(json!({"id": "x", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}))
            .into_response(),
            "refuse" => (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
            )
                .into_response(),
            _ => (
                [(header::CONTENT_TYPE, "application/json")],
                std::fs::read(dir.join("openai_chat_plain.json")).unwrap(),
            )
                .into_response(),
        }
    }
    /// The Responses and Messages APIs: `plain` or `stream` (in `input`, or the first
    /// message), answered with the recorded response of that API. Records the upstream key
    /// as `x-api-key` (Anthropic) or the bearer token, with the API version sent.
    async fn other(
        State((dir, seen, _)): State<(PathBuf, Seen, Arc<AtomicBool>)>,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> Response {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let auth = match (header("x-api-key"), header("anthropic-version")) {
            (Some(key), version) => Some(format!("x-api-key {key}; version {version:?}")),
            (None, _) => header("authorization"),
        };
        seen.lock().unwrap().push((auth, body.clone()));
        let messages = uri.path().ends_with("/messages");
        let what = body["input"]
            .as_str()
            .or(body["messages"][0]["content"].as_str())
            .unwrap_or_default();
        let (file, kind) = match (messages, what) {
            (true, "stream") => ("anthropic_messages_stream_sdk.sse", "text/event-stream"),
            (true, _) => ("anthropic_messages_cache_read.json", "application/json"),
            (false, "stream") => ("openai_responses_stream.sse", "text/event-stream"),
            (false, _) => ("openai_responses_cached_reasoning.json", "application/json"),
        };
        (
            [(header::CONTENT_TYPE, kind)],
            std::fs::read(dir.join(file)).unwrap(),
        )
            .into_response()
    }
    /// Gemini: `generateContent` answers the recorded plain response, `streamGenerateContent`
    /// (with `alt=sse`) the recorded stream. Records the key as `x-goog-api-key KEY` and the
    /// path with its query in the body's `_path`.
    async fn gemini(
        State((dir, seen, _)): State<(PathBuf, Seen, Arc<AtomicBool>)>,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        axum::Json(mut body): axum::Json<Value>,
    ) -> Response {
        let key = headers
            .get("x-goog-api-key")
            .map(|v| format!("x-goog-api-key {}", v.to_str().unwrap()));
        body["_path"] = json!(uri.to_string());
        seen.lock().unwrap().push((key, body));
        let (file, kind) = if uri.path().ends_with(":streamGenerateContent") {
            ("gemini_stream_nonmonotonic.sse", "text/event-stream")
        } else {
            ("gemini_generate_content_plain.json", "application/json")
        };
        (
            [(header::CONTENT_TYPE, kind)],
            std::fs::read(dir.join(file)).unwrap(),
        )
            .into_response()
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(other))
        .route("/v1/messages", post(other))
        .route("/v1beta/models/{target}", post(gemini))
        .with_state((dir, Arc::clone(&seen), Arc::clone(&cancelled)));
    (serve(app).await, seen, cancelled)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Fixture {
    url: String,
    metering: Metering<MemoryStore>,
    seen: Seen,
    /// Set when the mock's endless stream was dropped.
    cancelled: Arc<AtomicBool>,
    key: String,
    who: Billable,
    /// The metering's clock: the gateway caches keys and entitlements for
    /// [`DEFAULT_CACHE_TTL`], so a change made in the store behind its back shows once the
    /// clock is past it ([`past_the_cache`]).
    clock: ManualClock,
}

/// Moves `clock` past the gateway's cache TTL.
fn past_the_cache(clock: &ManualClock) {
    clock.advance(
        chrono::Duration::from_std(DEFAULT_CACHE_TTL).unwrap() + chrono::Duration::seconds(1),
    );
}

/// The gateway over a MemoryStore, routing `fast` to `gpt-4o-mini` on the mock upstream,
/// `mini` to `gpt-5-mini` there, `sonnet` to an Anthropic upstream and `flash` to a Gemini
/// upstream on the same mock, with one key for team:acme allowed the first three (not
/// `other`, nor `flash`: the Gemini test issues its own key).
async fn gateway(dir: PathBuf, upstream: Option<SocketAddr>) -> Fixture {
    let (addr, seen, cancelled) = match upstream {
        Some(addr) => (addr, Seen::default(), Arc::default()),
        None => mock_upstream(dir).await,
    };
    let config = GatewayConfig::from_toml(&format!(
        r#"
[gateway.upstreams.mock]
base_url = "http://{addr}/v1"
api_key_env = "MOCK_KEY"
[gateway.upstreams.claude]
kind = "anthropic"
base_url = "http://{addr}/v1"
api_key_env = "CLAUDE_KEY"
[gateway.upstreams.google]
kind = "gemini"
base_url = "http://{addr}/v1beta"
api_key_env = "GOOGLE_KEY"
[gateway.models]
"fast" = {{ upstream = "mock", model = "gpt-4o-mini" }}
"mini" = {{ upstream = "mock", model = "gpt-5-mini" }}
"other" = {{ upstream = "mock", model = "gpt-4o" }}
"sonnet" = {{ upstream = "claude", model = "claude-sonnet-4-5" }}
"flash" = {{ upstream = "google", model = "gemini-2.0-flash" }}
"#
    ))
    .unwrap();
    let clock = ManualClock::new(chrono::Utc::now());
    let metering = Metering::builder(MemoryStore::new())
        .clock(clock.clone())
        .build();
    let who = Billable::new("team", "acme");
    let issued = create_api_key(
        metering.store(),
        &NewApiKey::new(who.clone(), "test").with_models(["fast", "mini", "sonnet"]),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let app = Gateway::new(metering.clone(), config)
        .with_metrics(prometheus())
        .with_key_source(|name| match name {
            "MOCK_KEY" => Some("sk-upstream".to_owned()),
            "CLAUDE_KEY" => Some("sk-ant-upstream".to_owned()),
            "GOOGLE_KEY" => Some("goog-upstream".to_owned()),
            _ => None,
        })
        .router();
    let url = format!("http://{}", serve(app).await);
    Fixture {
        url,
        metering,
        seen,
        cancelled,
        key: issued.secret().to_owned(),
        who,
        clock,
    }
}

/// Subscribes the fixture's billable to `plan` from yesterday on.
async fn subscribe(f: &Fixture, plan: Plan) {
    let store = f.metering.store();
    store.upsert_plan(&plan).await.unwrap();
    store
        .insert_subscription(&Subscription::new(
            f.who.clone(),
            plan.slug.clone(),
            chrono::Utc::now() - chrono::Duration::days(1),
        ))
        .await
        .unwrap();
}

/// The gateway of `config` (its `[gateway]` TOML) over a fresh MemoryStore, every upstream
/// key variable answered `sk-upstream`, with one key billing `who`: its URL, its metering,
/// the key and the metering's clock.
async fn gateway_of(
    config: &str,
    who: &Billable,
) -> (String, Metering<MemoryStore>, String, ManualClock) {
    let config = GatewayConfig::from_toml(config).unwrap();
    let clock = ManualClock::new(chrono::Utc::now());
    let metering = Metering::builder(MemoryStore::new())
        .clock(clock.clone())
        .build();
    let key = create_api_key(
        metering.store(),
        &NewApiKey::new(who.clone(), "k"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let app = Gateway::new(metering.clone(), config)
        .with_key_source(|_| Some("sk-upstream".to_owned()))
        .router();
    let url = format!("http://{}", serve(app).await);
    (url, metering, key.secret().to_owned(), clock)
}

/// A gateway whose every model goes to the built-in mock.
const ON_THE_MOCK: &str =
    "[gateway.upstreams.m]\nkind = \"mock\"\n[gateway]\ndefault_upstream = \"m\"\n";

/// `POST {url}/v1/chat/completions` with `key` and `body`.
async fn complete(url: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(content: &str, stream: bool) -> Value {
    json!({"model": "fast", "max_tokens": 50, "stream": stream,
           "messages": [{"role": "user", "content": content}]})
}

async fn rows(f: &Fixture) -> Vec<ai_metering_core::store::UsageRecord> {
    f.metering
        .store()
        .query_usage(&UsageFilter::for_billable(f.who.clone()), Page::first(10))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_plain_completion_passes_through_and_is_settled_from_its_usage() {
    let Some(dir) = fixtures("a_plain_completion_passes_through_and_is_settled_from_its_usage")
    else {
        return;
    };
    let f = gateway(dir.clone(), None).await;
    subscribe(&f, Plan::new("pro", "Pro").with_token_limit(10_000)).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(&f.key)
        .json(&chat("plain", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The layer's quota headers: what is left once the call's estimate is reserved.
    let left: u64 = response.headers()["x-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((9_000..10_000).contains(&left), "{left}");
    assert!(response.headers().contains_key("ratelimit-policy"));
    let body = response.bytes().await.unwrap();
    // Byte for byte what the upstream sent.
    assert_eq!(
        &body[..],
        &std::fs::read(dir.join("openai_chat_plain.json")).unwrap()[..]
    );
    // The upstream got the alias's target and the upstream's own key, never the client's.
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0.as_deref(), Some("Bearer sk-upstream"));
    assert_eq!(seen[0].1["model"], "gpt-4o-mini");
    // Settled from the recorded usage (15 in, 19 out), not the estimate.
    let rows = rows(&f).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0].entry;
    assert_eq!(
        (row.usage.input_tokens(), row.usage.output_tokens()),
        (15, 19)
    );
    assert!(!row.estimated);
    assert_eq!(
        (row.provider.as_str(), row.model.as_str()),
        ("openai", "gpt-4o-mini")
    );
    assert!(row.cost.total > rust_decimal::Decimal::ZERO);
}

#[tokio::test]
async fn a_stream_is_settled_from_its_usage_chunk_which_the_client_did_not_ask_for() {
    let Some(dir) = fixtures("a_stream_is_settled_from_its_usage_chunk") else {
        return;
    };
    let f = gateway(dir, None).await;
    let client = reqwest::Client::new();
    for (ask, expect_usage_chunk) in [(false, false), (true, true)] {
        let mut body = chat("stream", true);
        if ask {
            body["stream_options"] = json!({"include_usage": true});
        }
        let response = client
            .post(format!("{}/v1/chat/completions", f.url))
            .bearer_auth(&f.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE.as_str()],
            "text/event-stream"
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("data: [DONE]"), "{text}");
        assert_eq!(
            text.contains("\"choices\":[],"),
            expect_usage_chunk,
            "asked for usage: {ask}\n{text}"
        );
    }
    // The upstream was always asked for the usage.
    for (_, sent) in f.seen.lock().unwrap().iter() {
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }
    let rows = rows(&f).await;
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(!r.entry.estimated, "{r:?}");
        assert!(r.entry.usage.total_tokens() > 0);
    }
}

#[tokio::test]
async fn keys_models_and_upstream_refusals_are_answered_in_openai_shape_and_charge_nothing() {
    let Some(dir) = fixtures("keys_models_and_upstream_refusals") else {
        return;
    };
    let f = gateway(dir, None).await;
    let client = reqwest::Client::new();
    let post = |key: Option<&str>, body: Value| {
        let mut r = client
            .post(format!("{}/v1/chat/completions", f.url))
            .json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    // No key, a wrong key, a model the key may not call, a model with no route.
    let r = post(None, chat("plain", false)).await.unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_api_key");
    let wrong = format!("{}0", &f.key[..f.key.len() - 1]);
    let wrong = if wrong == f.key {
        format!("{}1", &f.key[..f.key.len() - 1])
    } else {
        wrong
    };
    assert_eq!(
        post(Some(&wrong), chat("plain", false))
            .await
            .unwrap()
            .status(),
        401
    );
    let mut other = chat("plain", false);
    other["model"] = json!("other");
    let r = post(Some(&f.key), other).await.unwrap();
    assert_eq!(r.status(), 403);
    let mut nowhere = chat("plain", false);
    nowhere["model"] = json!("x".repeat(5_000));
    let r = post(Some(&f.key), nowhere).await.unwrap();
    // Not allowed for this key either way; the message does not echo 5,000 characters.
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().len() < 1_000);

    // The upstream's own refusal passes through, and nothing is charged or held.
    let r = post(Some(&f.key), chat("refuse", false)).await.unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    assert!(rows(&f).await.is_empty());
    // Models: only what the key may call.
    let models: Value = client
        .get(format!("{}/v1/models", f.url))
        .bearer_auth(&f.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["fast", "mini", "sonnet"]);
    assert_eq!(
        client
            .get(format!("{}/v1/models", f.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Health and readiness need no key; a revoked key stops working.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            client
                .get(format!("{}{path}", f.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let id = f.key.split('_').nth(1).unwrap();
    assert!(
        f.metering
            .store()
            .revoke_api_key(id, chrono::Utc::now())
            .await
            .unwrap()
    );
    // Revoked behind the gateway's back: it stops working once the cache has expired.
    past_the_cache(&f.clock);
    assert_eq!(
        post(Some(&f.key), chat("plain", false))
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn over_quota_is_refused_before_the_upstream_runs_and_an_unreachable_upstream_is_a_502() {
    let Some(dir) = fixtures("over_quota_is_refused_before_the_upstream_runs") else {
        return;
    };
    let f = gateway(dir.clone(), None).await;
    subscribe(&f, Plan::new("tiny", "Tiny").with_token_limit(40)).await;
    let client = reqwest::Client::new();
    // max_tokens 50 alone is past the 40-token limit: refused, upstream never called.
    let r = client
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(&f.key)
        .json(&chat("plain", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "insufficient_quota");
    assert!(f.seen.lock().unwrap().is_empty());

    // An upstream nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let g = gateway(dir, Some(closed)).await;
    let r = client
        .post(format!("{}/v1/chat/completions", g.url))
        .bearer_auth(&g.key)
        .json(&chat("plain", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "server_error");
    assert!(rows(&g).await.is_empty());
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_and_pays_for_what_was_streamed() {
    let Some(dir) = fixtures("a_client_that_goes_away_cancels_the_upstream") else {
        return;
    };
    let f = gateway(dir, None).await;
    let mut response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(&f.key)
        .json(&chat("endless", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    drop(response);
    // Polls for the two effects of the disconnect (no timing is asserted).
    let mut recorded = Vec::new();
    for _ in 0..1_000 {
        recorded = rows(&f).await;
        if f.cancelled.load(Ordering::SeqCst) && !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        f.cancelled.load(Ordering::SeqCst),
        "the upstream call was not cancelled"
    );
    assert_eq!(recorded.len(), 1, "the streamed part was not charged");
    let row = &recorded[0].entry;
    assert!(
        row.estimated,
        "no usage came: the charge is an estimate, flagged"
    );
    assert!(
        row.usage.output_tokens() > 0 && row.usage.input_tokens() > 0,
        "{row:?}"
    );
}

/// What the recorded response `file` of `provider` says was used.
fn recorded_usage(dir: &std::path::Path, file: &str, provider: Provider) -> TokenUsage {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    if file.ends_with(".sse") {
        let mut acc = UsageAccumulator::new(provider);
        acc.push_bytes(&bytes).unwrap();
        acc.finish().unwrap()
    } else {
        extract_usage_from_slice(provider, &bytes).unwrap()
    }
}

#[tokio::test]
async fn the_responses_and_messages_apis_are_metered_from_their_own_usage() {
    let Some(dir) = fixtures("the_responses_and_messages_apis_are_metered") else {
        return;
    };
    let f = gateway(dir.clone(), None).await;
    let client = reqwest::Client::new();
    let cases = [
        (
            "/v1/responses",
            json!({"model": "mini", "input": "plain", "max_output_tokens": 100}),
            "openai_responses_cached_reasoning.json",
            Provider::OpenAi,
        ),
        (
            "/v1/responses",
            json!({"model": "mini", "input": "stream", "stream": true, "max_output_tokens": 100}),
            "openai_responses_stream.sse",
            Provider::OpenAi,
        ),
        (
            "/v1/messages",
            json!({"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "plain"}]}),
            "anthropic_messages_cache_read.json",
            Provider::Anthropic,
        ),
        (
            "/v1/messages",
            json!({"model": "sonnet", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "stream"}]}),
            "anthropic_messages_stream_sdk.sse",
            Provider::Anthropic,
        ),
    ];
    for (i, (path, body, file, provider)) in cases.iter().enumerate() {
        let mut request = client.post(format!("{}{path}", f.url)).json(body);
        // Anthropic's SDKs send their key as `x-api-key`.
        request = if *provider == Provider::Anthropic {
            request.header("x-api-key", &f.key)
        } else {
            request.bearer_auth(&f.key)
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} {file}");
        let got = response.bytes().await.unwrap();
        assert_eq!(
            &got[..],
            &std::fs::read(dir.join(file)).unwrap()[..],
            "{file}: passed through unchanged"
        );
        let rows = rows(&f).await;
        assert_eq!(rows.len(), i + 1);
        let row = &rows[0].entry;
        assert_eq!(row.usage, recorded_usage(&dir, file, *provider), "{file}");
        assert!(!row.estimated, "{file}");
    }
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0.as_deref(), Some("Bearer sk-upstream"));
    assert_eq!(seen[0].1["model"], "gpt-5-mini");
    assert_eq!(
        seen[2].0.as_deref(),
        Some("x-api-key sk-ant-upstream; version Some(\"2023-06-01\")")
    );
    assert_eq!(seen[2].1["model"], "claude-sonnet-4-5");
    // A Responses stream carries its usage already: nothing is added to the request.
    assert!(seen[1].1.get("stream_options").is_none());

    // A model on the wrong API, and errors of the Messages API in Anthropic's shape.
    let r = client
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(&f.key)
        .json(&json!({"model": "sonnet", "messages": [{"role": "user", "content": "plain"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("anthropic upstream `claude`")
    );
    let r = client
        .post(format!("{}/v1/messages", f.url))
        .json(&json!({"model": "sonnet", "max_tokens": 1, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );
}

#[tokio::test]
async fn metrics_count_requests_calls_and_the_latency_the_gateway_adds() {
    let Some(dir) = fixtures("metrics_count_requests_calls_and_the_latency") else {
        return;
    };
    let f = gateway(dir, None).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/chat/completions", f.url))
        .bearer_auth(&f.key)
        .json(&chat("plain", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/metrics", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for needle in [
        "ai_metering_gateway_requests_total{api=\"chat_completions\",status=\"200\"}",
        "ai_metering_gateway_upstream_seconds",
        "ai_metering_gateway_overhead_seconds",
        "ai_metering_calls_total{provider=\"openai\",model=\"gpt-4o-mini\",outcome=\"recorded\"}",
        "ai_metering_tokens_total",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    // No billable is named by default.
    assert!(!text.contains("team:acme"), "{text}");
}

#[tokio::test]
async fn the_built_in_mock_upstream_is_metered_like_a_real_one() {
    let who = Billable::new("team", "demo");
    let (url, metering, key, _) = gateway_of(ON_THE_MOCK, &who).await;
    for stream in [false, true] {
        let r = complete(
            &url,
            &key,
            json!({"model": "gpt-4o-mini", "max_tokens": 7, "stream": stream,
                   "messages": [{"role": "user", "content": "12345678"}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains("ok ok") || text.contains("\" ok\""), "{text}");
        // The client did not ask for the usage chunk: it is not shown.
        assert!(!stream || !text.contains("\"usage\""), "{text}");
    }
    let rows = metering
        .store()
        .query_usage(&UsageFilter::for_billable(who), Page::first(10))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        // 8 bytes: 2 tokens, plus 4 for the message; the reply is max_tokens long.
        assert_eq!(
            (r.entry.usage.input_tokens(), r.entry.usage.output_tokens()),
            (6, 7)
        );
        assert!(!r.entry.estimated);
    }
}

#[tokio::test]
async fn the_dashboard_opens_only_to_a_session_of_the_admin_token() {
    let config = GatewayConfig::from_toml("[gateway.upstreams.m]\nkind = \"mock\"\n").unwrap();
    let metering = Metering::new(MemoryStore::new());
    let app = Gateway::new(metering, config)
        .with_dashboard("s3cret-admin")
        .router();
    let url = format!("http://{}", serve(app).await);
    // No redirects followed: the cookie and the 303s are what is checked.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Closed without a session, pages and JSON alike.
    for path in ["/ai-metering", "/ai-metering/api/overview"] {
        let r = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = client
        .get(format!("{url}/ai-metering/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Admin token"));
    // A wrong token: no cookie.
    let r = client
        .post(format!("{url}/ai-metering/login"))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // The right one: a strict, HTTP-only session cookie, and the dashboard opens.
    let r = client
        .post(format!("{url}/ai-metering/login"))
        .form(&[("token", "s3cret-admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let r = client
        .get(format!("{url}/ai-metering"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Logout needs the session's CSRF token, which only the signed-in page shows.
    let r = client
        .post(format!("{url}/ai-metering/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = client
        .get(format!("{url}/ai-metering/login"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let r = client
        .post(format!("{url}/ai-metering/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = client
        .get(format!("{url}/ai-metering"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the session is over");

    // Five wrong tokens in a row: the sixth attempt is refused, the right token included.
    for _ in 0..5 {
        let r = client
            .post(format!("{url}/ai-metering/login"))
            .form(&[("token", "guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = client
        .post(format!("{url}/ai-metering/login"))
        .form(&[("token", "s3cret-admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn bad_requests_are_400s_and_an_answer_without_usage_is_charged_an_estimate() {
    let Some(dir) = fixtures("bad_requests_are_400s") else {
        return;
    };
    let f = gateway(dir.clone(), None).await;
    let client = reqwest::Client::new();
    let post = |body: reqwest::Body| {
        client
            .post(format!("{}/v1/chat/completions", f.url))
            .bearer_auth(&f.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, says) in [
        ("{not json", "not JSON"),
        ("{\"messages\": []}", "no `model`"),
        ("[1, 2]", "no `model`"),
    ] {
        let r = post(body.into()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
    assert!(
        f.seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
    assert!(rows(&f).await.is_empty());

    // The upstream answered without usage: the call happened, so it is charged what was
    // reserved for it (its prompt and max_tokens), flagged as an estimate.
    let r = post(serde_json::to_vec(&chat("nousage", false)).unwrap().into())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows = rows(&f).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].entry.estimated);
    assert!(
        rows[0].entry.usage.output_tokens() >= 50,
        "max_tokens was 50: {rows:?}"
    );

    // An upstream whose key is not in the environment: 502, and nothing charged.
    let (addr, _, _) = mock_upstream(dir).await;
    let config = GatewayConfig::from_toml(&format!(
        "[gateway]\ndefault_upstream = \"u\"\n[gateway.upstreams.u]\nbase_url = \"http://{addr}/v1\"\napi_key_env = \"AI_METERING_TEST_UNSET_KEY\"\n"
    ))
    .unwrap();
    let metering = Metering::new(MemoryStore::new());
    let who = Billable::new("team", "nokey");
    let key = create_api_key(
        metering.store(),
        &NewApiKey::new(who.clone(), "k"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let app = Gateway::new(metering.clone(), config)
        .with_key_source(|_| None)
        .router();
    let url = format!("http://{}", serve(app).await);
    let r = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key.secret())
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "plain"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("AI_METERING_TEST_UNSET_KEY is not set")
    );
    let none = metering
        .store()
        .query_usage(&UsageFilter::for_billable(who), Page::first(1))
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// `POST /v1/embeddings`: estimated from the request's input, settled from the upstream's
/// input-only usage, priced from the catalog's embedding prices; refused over quota before
/// the upstream runs; a malformed input is a 400 the upstream never sees.
#[tokio::test]
async fn embeddings_are_metered_from_their_input() {
    // An OpenAI-shaped upstream that reports 11 prompt tokens whatever it is sent.
    let calls = Arc::new(Mutex::new(0_u32));
    let counted = Arc::clone(&calls);
    let upstream = Router::new().route(
        "/v1/embeddings",
        post(move |axum::Json(body): axum::Json<Value>| {
            let counted = Arc::clone(&counted);
            async move {
                *counted.lock().unwrap() += 1;
                axum::Json(json!({
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5]}],
                    "model": body["model"],
                    "usage": {"prompt_tokens": 11, "total_tokens": 11}
                }))
            }
        }),
    );
    let addr = serve(upstream).await;
    let who = Billable::new("team", "vectors");
    let (url, metering, key, clock) = gateway_of(
        &format!(
            r#"
[gateway.upstreams.openai]
base_url = "http://{addr}/v1"
api_key_env = "OPENAI_KEY"
[gateway.upstreams.m]
kind = "mock"
[gateway.models]
"embed" = {{ upstream = "openai", model = "text-embedding-3-small" }}
"mock-embed" = {{ upstream = "m", model = "text-embedding-3-large" }}
"#
        ),
        &who,
    )
    .await;
    let client = reqwest::Client::new();
    let embed = |body: Value| {
        client
            .post(format!("{url}/v1/embeddings"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };

    // Through a real-shaped upstream: its answer passes through, its usage is charged.
    let r = embed(json!({"model": "embed", "input": "The food was delicious", "stream": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([0.5, -0.5]));
    assert_eq!(body["model"], "text-embedding-3-small");
    // The built-in mock: one vector per input, usage equal to the estimate.
    let r = embed(json!({"model": "mock-embed", "input": ["abc", "abcdef", [1, 2, 3]]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 3);

    let mut rows = metering
        .store()
        .query_usage(&UsageFilter::for_billable(who.clone()), Page::first(10))
        .await
        .unwrap();
    rows.sort_by_key(|r| r.id);
    let seen: Vec<(String, u64, u64, String)> = rows
        .iter()
        .map(|r| {
            let e = &r.entry;
            (
                e.model.clone(),
                e.usage.input_tokens(),
                e.usage.output_tokens(),
                e.cost.total.normalize().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            // 11 tokens at $0.02 per million.
            ("text-embedding-3-small".into(), 11, 0, "0.00000022".into()),
            // 1 + 2 + 3 tokens at $0.13 per million.
            ("text-embedding-3-large".into(), 6, 0, "0.00000078".into()),
        ]
    );
    assert!(rows.iter().all(|r| !r.entry.estimated));

    // An input of no known shape: 400, the upstream never called, nothing charged.
    let r = embed(json!({"model": "embed", "input": {"text": "x"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(*calls.lock().unwrap(), 1);

    // Over quota: a 20-token plan with 17 used refuses a 100-token input before the upstream
    // runs.
    metering
        .store()
        .upsert_plan(&Plan::new("tiny", "Tiny").with_token_limit(20))
        .await
        .unwrap();
    metering
        .store()
        .insert_subscription(&Subscription::new(
            who.clone(),
            "tiny",
            chrono::Utc::now() - chrono::Duration::days(1),
        ))
        .await
        .unwrap();
    past_the_cache(&clock);
    let r = embed(json!({"model": "embed", "input": "x".repeat(300)}))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(*calls.lock().unwrap(), 1, "refused before the upstream");
}

/// What a client reads besides the body: a plain answer's quota headers count its own
/// usage; a credits-mode billable's answers carry its wallet, exactly; a plan-mode one's do
/// not; unknown routes and methods are 404 and 405 in OpenAI's shape.
#[tokio::test]
async fn answers_carry_the_quota_after_the_call_and_the_wallet_in_credits_mode() {
    use ai_metering_core::plan::BillingMode;
    use ai_metering_core::store::CreditStore;
    use ai_metering_core::{Currency, Money};
    use rust_decimal::Decimal;

    let config = GatewayConfig::from_toml(
        "[gateway.upstreams.m]\nkind = \"mock\"\n[gateway]\ndefault_upstream = \"m\"\n",
    )
    .unwrap();
    let metering = Metering::new(MemoryStore::new());
    let store = metering.store();
    store
        .upsert_plan(&Plan::new("small", "Small").with_token_limit(1_000))
        .await
        .unwrap();
    let (planned, paying) = (
        Billable::new("team", "plan"),
        Billable::new("team", "wallet"),
    );
    for (who, mode) in [
        (&planned, BillingMode::Plan),
        (&paying, BillingMode::Credits),
    ] {
        store
            .insert_subscription(
                &Subscription::new(
                    who.clone(),
                    "small",
                    chrono::Utc::now() - chrono::Duration::days(1),
                )
                .with_billing_mode(mode),
            )
            .await
            .unwrap();
    }
    store
        .add_credits(
            &paying,
            Money::new(Decimal::ONE, Currency::USD),
            "top-up",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let mut keys = Vec::new();
    for who in [&planned, &paying] {
        let issued = create_api_key(store, &NewApiKey::new(who.clone(), "k"), chrono::Utc::now())
            .await
            .unwrap();
        keys.push(issued.secret().to_owned());
    }
    let url = format!(
        "http://{}",
        serve(Gateway::new(metering.clone(), config).router()).await
    );
    let client = reqwest::Client::new();
    let call = |key: String| {
        client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-4o-mini", "max_tokens": 100,
                          "messages": [{"role": "user", "content": "12345678"}]}))
            .send()
    };

    // 6 + 100 tokens used of 1,000: the headers say 894 are left, not 1,000 minus the
    // reservation.
    let r = call(keys[0].clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-remaining-tokens"], "894");
    assert!(r.headers().get("x-credits-balance").is_none());

    // gpt-4o-mini: 6 x $0.15 + 100 x $0.60 per million = $0.0000609.
    let r = call(keys[1].clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-credits-currency"], "USD");
    assert_eq!(r.headers()["x-credits-balance"], "0.9999391");
    assert_eq!(r.headers()["x-credits-available"], "0.9999391");

    // A stream's headers leave before its usage: the balance as it was, and the available
    // amount with the call's hold taken off.
    let r = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(keys[1].clone())
        .json(
            &json!({"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "12345678"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-credits-balance"], "0.9999391");
    let available: Decimal = r.headers()["x-credits-available"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        available < Decimal::new(9_999_391, 7) && available > Decimal::ZERO,
        "the hold is taken off: {available}"
    );
    r.text().await.unwrap();

    for (method, path, status) in [
        (reqwest::Method::GET, "/v1/chat/completions", 405),
        (reqwest::Method::DELETE, "/v1/models", 405),
        (reqwest::Method::GET, "/v1/nothing-here", 404),
    ] {
        let r = client
            .request(method.clone(), format!("{url}{path}"))
            .bearer_auth(&keys[0])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
}

/// Gemini's own API (`POST /v1beta/models/{model}:generateContent` and
/// `:streamGenerateContent`, the key in `x-goog-api-key`, as Google's SDKs send it): routed by
/// the model in the path, passed through unchanged with the upstream's key, settled from
/// `usageMetadata`; errors in Google's shape.
#[tokio::test]
async fn the_gemini_api_is_metered_from_its_usage_metadata() {
    let Some(dir) = fixtures("the_gemini_api_is_metered") else {
        return;
    };
    let f = gateway(dir.clone(), None).await;
    let key = create_api_key(
        f.metering.store(),
        &NewApiKey::new(f.who.clone(), "gemini").with_models(["flash"]),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Write a config"}]}],
                      "generationConfig": {"maxOutputTokens": 200}});
    for (action, file) in [
        ("generateContent", "gemini_generate_content_plain.json"),
        (
            "streamGenerateContent?alt=sse",
            "gemini_stream_nonmonotonic.sse",
        ),
    ] {
        let r = client
            .post(format!("{}/v1beta/models/flash:{action}", f.url))
            .header("x-goog-api-key", key.secret())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{action}");
        let got = r.bytes().await.unwrap();
        assert_eq!(
            &got[..],
            &std::fs::read(dir.join(file)).unwrap()[..],
            "{file}: passed through unchanged"
        );
        let rows = rows(&f).await;
        let row = &rows[0].entry;
        assert_eq!(
            row.usage,
            recorded_usage(&dir, file, Provider::Gemini),
            "{file}"
        );
        assert_eq!(
            (row.provider.as_str(), row.model.as_str()),
            ("gemini", "gemini-2.0-flash")
        );
        assert!(!row.estimated, "{file}");
    }
    let seen = f.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (i, path) in [
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(seen[i].0.as_deref(), Some("x-goog-api-key goog-upstream"));
        assert_eq!(seen[i].1["_path"], *path);
        assert!(
            seen[i].1.get("model").is_none(),
            "no model is added to the body"
        );
    }

    // Refusals in Google's shape: an unknown method, a key that may not call the model, and
    // a used-up quota (the upstream never called).
    let call = |path: &str, key: &str| {
        client
            .post(format!("{}{path}", f.url))
            .header("x-goog-api-key", key.to_owned())
            .json(&body)
            .send()
    };
    let r = call("/v1beta/models/flash:countTokens", key.secret())
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["status"], "NOT_FOUND", "{e}");
    let r = call("/v1beta/models/flash:generateContent", &f.key)
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (e["error"]["code"].as_u64(), e["error"]["status"].as_str()),
        (Some(403), Some("PERMISSION_DENIED"))
    );
    subscribe(&f, Plan::new("tiny", "Tiny").with_token_limit(50)).await;
    past_the_cache(&f.clock);
    let r = call("/v1beta/models/flash:generateContent", key.secret())
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["status"], "RESOURCE_EXHAUSTED", "{e}");
    assert_eq!(
        f.seen.lock().unwrap().len(),
        2,
        "refused before the upstream"
    );
}

/// An upstream that takes the request and never answers: after the upstream's timeout the
/// client gets a 504 in OpenAI's shape and nothing is charged. The clock is tokio's, paused:
/// the timeout passes without waiting for it.
#[tokio::test(start_paused = true)]
async fn an_upstream_that_never_answers_is_a_504_after_its_timeout() {
    let upstream = Router::new().route(
        "/v1/chat/completions",
        post(std::future::pending::<&'static str>),
    );
    let addr = serve(upstream).await;
    let who = Billable::new("team", "patient");
    let (url, metering, key, _) = gateway_of(
        &format!(
            "[gateway.upstreams.slow]\nbase_url = \"http://{addr}/v1\"\ntimeout_secs = 30\n\
             [gateway]\ndefault_upstream = \"slow\"\n"
        ),
        &who,
    )
    .await;
    let started = tokio::time::Instant::now();
    let r = complete(
        &url,
        &key,
        json!({"model": "gpt-4o-mini", "max_tokens": 5,
               "messages": [{"role": "user", "content": "Hello?"}]}),
    )
    .await;
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() >= std::time::Duration::from_secs(30));
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "server_error");
    let rows = metering
        .store()
        .query_usage(&UsageFilter::for_billable(who), Page::first(10))
        .await
        .unwrap();
    assert!(
        rows.is_empty(),
        "nothing is charged for a call never answered"
    );
}

/// The gateway keeps keys and entitlements for its cache TTL: changes made in the store
/// behind its back (a revocation, a bigger plan) show once that has passed, while the limits
/// themselves are enforced by the store on every call, cache or not.
#[tokio::test]
async fn the_cache_delays_changes_made_elsewhere_by_its_ttl_but_never_a_limit() {
    let who = Billable::new("team", "cached");
    let (url, metering, key, clock) = gateway_of(ON_THE_MOCK, &who).await;
    let store = metering.store();
    store
        .upsert_plan(&Plan::new("small", "Small").with_token_limit(30))
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(
            who.clone(),
            "small",
            metering.now() - chrono::Duration::days(1),
        ))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let call = || {
        client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(&key)
            // 6 + 7 tokens a call.
            .json(&json!({"model": "gpt-4o-mini", "max_tokens": 7,
                          "messages": [{"role": "user", "content": "12345678"}]}))
            .send()
    };
    // Two calls fit in 30 tokens, the third does not: the cached entitlement decides which
    // limit, the store whether the call fits.
    let statuses = [
        call().await.unwrap().status(),
        call().await.unwrap().status(),
        call().await.unwrap().status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 429]);

    // A bigger plan, made elsewhere: the gateway sees it once its cache has expired.
    store
        .upsert_plan(&Plan::new("small", "Small").with_token_limit(1_000))
        .await
        .unwrap();
    assert_eq!(
        call().await.unwrap().status(),
        429,
        "still the cached limit"
    );
    past_the_cache(&clock);
    assert_eq!(call().await.unwrap().status(), 200);

    // A revocation, made elsewhere: the same.
    let id = key.split('_').nth(1).unwrap();
    assert!(store.revoke_api_key(id, metering.now()).await.unwrap());
    clock.advance(chrono::Duration::milliseconds(1));
    assert_eq!(call().await.unwrap().status(), 200, "still the cached key");
    past_the_cache(&clock);
    assert_eq!(call().await.unwrap().status(), 401);
}

/// A stream that runs past its upstream's timeout is cut off like a broken one, and the call
/// is charged for what was streamed, flagged as estimated. The mock upstream sends a word a
/// second on tokio's paused clock; the timeout is 5 seconds.
#[tokio::test(start_paused = true)]
async fn a_stream_past_its_timeout_is_cut_off_and_pays_for_what_was_sent() {
    let who = Billable::new("team", "slow-stream");
    let (url, metering, key, _) = gateway_of(
        "[gateway.upstreams.m]\nkind = \"mock\"\nword_delay_ms = 1000\ntimeout_secs = 5\n\
         [gateway]\ndefault_upstream = \"m\"\n",
        &who,
    )
    .await;
    let r = complete(
        &url,
        &key,
        json!({"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "Count to a hundred."}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut received = String::new();
    let mut broke = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => received.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the body must fail, not end cleanly: {received}");
    assert!(!received.contains("[DONE]"), "{received}");
    // The gateway records the call after it has cut the body: let its task finish.
    let rows = ai_metering_testkit::builders::rows_once_recorded(metering.store(), &who).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0].entry;
    assert!(row.estimated);
    let output = row.usage.output_tokens();
    assert!(output > 0 && output < 100, "charged {output} of 100 words");
}
