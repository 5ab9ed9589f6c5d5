//! The OpenAI Chat Completions wire shapes the demo speaks: requests, responses, stream
//! chunks and errors, as the official SDKs expect them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::mock_model::MockReply;

/// A chat completion request (the fields the demo reads; others are ignored).
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Stream the reply as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Stream options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Legacy reply limit.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Reply limit.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
}

impl ChatRequest {
    /// Parses a request body, with OpenAI-style errors.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let request: Self = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid_request(format!(
                "We could not parse the JSON body of your request: {}",
                shorten(&e.to_string())
            ))
        })?;
        if request.messages.is_empty() {
            return Err(
                ApiError::invalid_request("[] is too short - 'messages'".to_owned())
                    .with_param("messages"),
            );
        }
        Ok(request)
    }

    /// The messages as (role, text) pairs.
    pub fn texts(&self) -> Vec<(&str, String)> {
        self.messages
            .iter()
            .map(|m| {
                (
                    m.role.as_str(),
                    m.content.as_ref().map(Content::text).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The reply limit, whichever field carries it.
    pub fn reply_limit(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// True when the final usage chunk was asked for.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// One message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, content parts, or null (assistant tool calls).
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts; only text parts are read.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text, parts joined by newlines.
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    /// The part's text, for text parts.
    #[serde(default)]
    pub text: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage and empty choices.
    #[serde(default)]
    pub include_usage: bool,
}

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

/// At most this many characters of a client's input are quoted back in an error message.
pub const MAX_QUOTED_CHARS: usize = 100;

/// `text` cut to [`MAX_QUOTED_CHARS`] characters, with `…` when something was cut, so that a
/// huge input is not echoed back whole.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
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
        }
    }

    /// 500 `server_error`.
    pub fn server(message: String) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
            kind: "server_error",
            code: None,
            param: None,
            retry_after: None,
        }
    }

    /// Names the offending parameter.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if self.kind == "insufficient_quota" {
            // A used-up quota does not come back in seconds: tell the SDKs not to retry.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::mock_model::reply;

    #[test]
    fn requests_accept_text_and_content_parts() {
        let body = br#"{"model":"gpt-4o-mini","messages":[
            {"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null}
        ],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"temperature":0.2}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert!(r.stream && r.include_usage());
        assert_eq!(r.reply_limit(), Some(5));
        let texts = r.texts();
        assert_eq!(texts[1], ("user", "Hi".to_owned()));
        assert_eq!(texts[2], ("assistant", String::new()));
    }

    #[test]
    fn bad_requests_get_openai_errors() {
        let e = ChatRequest::parse(b"{").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        let e = ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap_err();
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
