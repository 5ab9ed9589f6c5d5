//! The gateway's own errors, in OpenAI's error shape so that the SDKs raise the right
//! exception: `{"error": {"message", "type", "param", "code"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error the gateway answers itself (upstream errors pass through as the upstream sent
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type`.
    pub kind: &'static str,
    /// OpenAI's `code`.
    pub code: Option<&'static str>,
    /// What happened, for people.
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
    /// The id a failure of the gateway's own was logged under (`x-request-id`, and named in
    /// the message); the details stay in the log.
    pub request_id: Option<String>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message,
            retry_after: None,
            request_id: None,
        }
    }

    /// 400: the request itself is wrong.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message.into(),
        )
    }

    /// 401: no key, or not a valid one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            message.into(),
        )
    }

    /// 403: the key may not call this model.
    pub fn model_not_allowed(model: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            Some("model_not_allowed"),
            format!("This API key may not call the model `{}`.", shorten(model)),
        )
    }

    /// 404: a model the gateway has no route for.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!(
                "The model `{}` does not exist or is not routed by this gateway.",
                shorten(model)
            ),
        )
    }

    /// 429: over quota or out of credits.
    pub fn insufficient_quota(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            message.into(),
        );
        e.retry_after = retry_after;
        e
    }

    /// 429: another call of the billable cannot be estimated yet, or its key is in flight.
    pub fn busy(message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            message.into(),
        );
        e.retry_after = Some(1);
        e
    }

    /// 502 / 503 / 504 and 500: the gateway or its upstream failed.
    pub fn server(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, "server_error", None, message.into())
    }

    /// 500 or 503: a failure of the gateway's own (its store, say). The client gets a fixed
    /// message naming a new request id; `error`, which may hold database details, goes only
    /// to the log under that id. A 503 says to retry in a second.
    pub fn internal(status: StatusCode, context: &str, error: &dyn std::fmt::Display) -> Self {
        let request_id = next_request_id();
        tracing::error!(target: "ai_metering", request_id = %request_id, error = %error, "{context}");
        let mut e = Self::server(
            status,
            format!(
                "The server had an error while processing your request (request id {request_id})."
            ),
        );
        e.retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        e.request_id = Some(request_id);
        e
    }

    /// `Retry-After`, `x-request-id`, and `x-should-retry: false` for a used-up quota (which
    /// does not come back in seconds: the OpenAI SDKs read it and do not retry).
    fn add_headers(&self, response: &mut Response) {
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
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
    }
}

/// A new id for a failed request: `req_`, the process's start in milliseconds and a count,
/// unique within a run and unlikely to repeat across runs.
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<i64> = OnceLock::new();
    let start = START.get_or_init(|| chrono::Utc::now().timestamp_millis());
    format!("req_{start:x}{:06x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": null,
            "code": self.code,
        }});
        let mut response = (self.status, Json(body)).into_response();
        self.add_headers(&mut response);
        response
    }
}

impl ApiError {
    /// The same error in Anthropic's shape (`{"type": "error", "error": {"type", "message"}}`),
    /// for the Messages API's clients.
    pub fn into_anthropic_response(self) -> Response {
        let kind = match self.status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        let body = json!({"type": "error", "error": {"type": kind, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        self.add_headers(&mut response);
        response
    }
}

impl ApiError {
    /// The same error in Google's shape (`{"error": {"code", "message", "status"}}`), for
    /// the Gemini API's clients.
    pub fn into_google_response(self) -> Response {
        let status = match self.status.as_u16() {
            400 | 413 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            405 => "UNIMPLEMENTED",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            502 | 503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "INTERNAL",
        };
        let body = json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "status": status,
        }});
        let mut response = (self.status, Json(body)).into_response();
        self.add_headers(&mut response);
        response
    }
}

/// `text` cut to 200 characters, so that a huge input is not echoed back whole.
pub fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}
