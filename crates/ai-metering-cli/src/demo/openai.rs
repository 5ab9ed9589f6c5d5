//! The OpenAI Chat Completions wire shapes the demo speaks: requests, responses, stream
//! chunks and errors, as the official SDKs expect them.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

pub use ai_metering_cli::demo_request::{ChatRequest, RequestError, shorten};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::mock_model::MockReply;

/// The `usage` object of a reply.
pub fn usage_json(reply: &MockReply) -> Value {
    json!({
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens.saturating_add(reply.completion_tokens),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// A non-streaming `chat.completion`.
pub fn completion_json(id: &str, created: i64, model: &str, reply: &MockReply) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.text, "refusal": null},
            "logprobs": null,
            "finish_reason": reply.finish_reason
        }],
        "usage": usage_json(reply),
        "system_fingerprint": null
    })
}

/// A `chat.completion.chunk` with one choice delta. With `include_usage`, every chunk but
/// the last carries `"usage": null`, as OpenAI's do.
pub fn chunk_json(
    id: &str,
    created: i64,
    model: &str,
    delta: Value,
    finish_reason: Option<&str>,
    include_usage: bool,
) -> Value {
    let mut chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    });
    if include_usage && let Some(obj) = chunk.as_object_mut() {
        obj.insert("usage".into(), Value::Null);
    }
    chunk
}

/// The final usage chunk: empty `choices` and the usage.
pub fn usage_chunk_json(id: &str, created: i64, model: &str, reply: &MockReply) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": null,
        "choices": [],
        "usage": usage_json(reply)
    })
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for people.
    pub message: String,
    /// OpenAI error type.
    pub kind: &'static str,
    /// OpenAI error code.
    pub code: Option<&'static str>,
    /// The offending parameter.
    pub param: Option<&'static str>,
    /// Seconds until the quota resets, for `Retry-After`.
    pub retry_after: Option<u64>,
    /// The id under which an internal failure was logged (`x-request-id`, and named in the
    /// message).
    pub request_id: Option<String>,
}

impl ApiError {
    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            kind: "invalid_request_error",
            code: None,
            param: None,
            retry_after: None,
            request_id: None,
        }
    }

    /// 401 `invalid_api_key`.
    pub fn unauthorized(message: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            retry_after: None,
            request_id: None,
        }
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "The model `{}` does not exist or you do not have access to it.",
                shorten(model)
            ),
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model"),
            retry_after: None,
            request_id: None,
        }
    }

    /// 429 `insufficient_quota`: what OpenAI answers when a plan or balance is used up.
    pub fn insufficient_quota(message: String, retry_after: Option<u64>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message,
            kind: "insufficient_quota",
            code: Some("insufficient_quota"),
            param: None,
            retry_after,
            request_id: None,
        }
    }

    /// 429 `rate_limit_exceeded` with `Retry-After: 1`: a refusal that clears in a moment
    /// (another unestimated request of the account is in flight), which the SDKs retry.
    pub fn busy(message: String) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message,
            kind: "rate_limit_exceeded",
            code: Some("rate_limit_exceeded"),
            param: None,
            retry_after: Some(1),
            request_id: None,
        }
    }

    /// 409 `conflict`: a request with the same idempotency key is in flight.
    pub fn conflict(message: String) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message,
            kind: "invalid_request_error",
            code: Some("conflict"),
            param: None,
            retry_after: None,
            request_id: None,
        }
    }

    /// A failure on our side (`server_error`, with `status` 500 or 503): the client gets a
    /// fixed message naming a new request id, and `error` (which may hold database details)
    /// goes only to the log, under that id.
    pub fn internal(status: StatusCode, context: &str, error: &dyn Display) -> Self {
        let request_id = next_request_id();
        tracing::error!(request_id = %request_id, error = %error, "{context}");
        Self {
            status,
            message: format!(
                "The server had an error while processing your request (request id {request_id})."
            ),
            kind: "server_error",
            code: None,
            param: None,
            // An unavailable store usually comes back: tell clients when to try again.
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
            request_id: Some(request_id),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code
        }})
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let mut error = Self::invalid_request(e.message);
        error.param = e.param;
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if let Some(id) = &self.request_id
            && let Ok(v) = HeaderValue::from_str(id)
        {
            headers.insert("x-request-id", v);
        }
        if self.kind == "insufficient_quota" {
            // A used-up quota does not come back in seconds: tell the SDKs not to retry.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

/// A new id for a failed request: `req_`, the process's start in milliseconds and a count,
/// unique within a run and unlikely to repeat across runs.
fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| chrono::Utc::now().timestamp_millis());
    format!("req_{start:x}{:06x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::mock_model::reply;
    use ai_metering_cli::demo_request::MAX_QUOTED_CHARS;

    #[test]
    fn bad_requests_get_openai_errors() {
        let e = ApiError::from(ChatRequest::parse(b"{").unwrap_err());
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        let e = ApiError::from(ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap_err());
        assert_eq!(e.body()["error"]["param"], "messages");
    }

    #[test]
    fn long_inputs_are_not_echoed_whole() {
        let model = "m".repeat(10_000);
        let e = ApiError::model_not_found(&model);
        assert!(e.message.chars().count() < 200, "{}", e.message);
        let body = format!(r#"{{"model":"m","messages":[],"max_tokens":"{model}"}}"#);
        let e = ChatRequest::parse(body.as_bytes()).unwrap_err();
        assert!(e.message.chars().count() < 300, "{}", e.message);
        assert_eq!(shorten("short"), "short");
        assert_eq!(
            shorten(&"é".repeat(150)).chars().count(),
            MAX_QUOTED_CHARS + 1
        );
    }

    #[test]
    fn usage_totals_add_up_and_chunks_have_the_openai_shape() {
        let r = reply([("user", "hello")], None);
        let u = usage_json(&r);
        assert_eq!(
            u["total_tokens"].as_u64(),
            Some(r.prompt_tokens + r.completion_tokens)
        );
        let c = chunk_json("id", 1, "m", json!({"content": "x"}), None, true);
        assert!(c["usage"].is_null() && c.as_object().unwrap().contains_key("usage"));
        let c = chunk_json("id", 1, "m", json!({}), Some("stop"), false);
        assert!(!c.as_object().unwrap().contains_key("usage"));
        let last = usage_chunk_json("id", 1, "m", &r);
        assert_eq!(last["choices"], json!([]));
        assert_eq!(
            last["usage"]["prompt_tokens"].as_u64(),
            Some(r.prompt_tokens)
        );
    }

    #[test]
    fn a_busy_account_is_a_429_the_sdks_retry() {
        let resp = ApiError::busy("busy".into()).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert!(resp.headers().get("x-should-retry").is_none());
    }

    #[test]
    fn internal_errors_show_a_request_id_never_the_error() {
        let store_text = "no such table: ai_usage_counters (SQLITE_ERROR at /srv/db.sqlite)";
        let a = ApiError::internal(StatusCode::INTERNAL_SERVER_ERROR, "failed", &store_text);
        let b = ApiError::internal(StatusCode::SERVICE_UNAVAILABLE, "failed", &store_text);
        let id = a.request_id.clone().unwrap();
        assert!(id.starts_with("req_"));
        assert_ne!(a.request_id, b.request_id);
        let body = a.body().to_string();
        assert!(
            !body.contains("ai_usage_counters") && !body.contains("/srv"),
            "{body}"
        );
        assert!(body.contains(&id), "{body}");
        assert_eq!(a.body()["error"]["type"], "server_error");
        let resp = b.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert!(
            resp.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
    }

    #[test]
    fn quota_errors_are_429_insufficient_quota_with_retry_headers() {
        let resp = ApiError::insufficient_quota("over".into(), Some(42)).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "42");
        assert_eq!(resp.headers()["x-should-retry"], "false");
        let body = ApiError::insufficient_quota("over".into(), None).body();
        assert_eq!(body["error"]["type"], "insufficient_quota");
        assert_eq!(body["error"]["code"], "insufficient_quota");
    }
}
