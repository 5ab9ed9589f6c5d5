//! The mock upstream (`kind = "mock"`): OpenAI's Chat Completions and Embeddings answered
//! inside the gateway, for demos, tests and load runs that must not call (or pay) a real
//! provider.
//!
//! Answers are deterministic:
//!
//! - the prompt counts one token per 4 bytes of message text (rounded up) plus 4 per message;
//! - the reply is `max_tokens` (or `max_completion_tokens`) tokens long, 16 without one, at
//!   most 4,096: the words `"ok"`, one per token;
//! - `usage` reports exactly those counts, and a stream with
//!   `stream_options.include_usage` ends with the usage chunk, as OpenAI's does.
//!
//! ```
//! let request = serde_json::json!({
//!     "model": "gpt-4o-mini", "max_tokens": 3,
//!     "messages": [{"role": "user", "content": "Hello!"}],
//! });
//! let response = ai_metering_gateway::mock::answer(&request);
//! let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
//! assert_eq!(body["usage"]["prompt_tokens"], 6);
//! assert_eq!(body["usage"]["completion_tokens"], 3);
//! assert_eq!(body["choices"][0]["message"]["content"], "ok ok ok");
//! ```

use futures_util::StreamExt;
use serde_json::{Value, json};

/// The longest reply, in tokens.
const MAX_REPLY: u64 = 4_096;
/// A reply's length without `max_tokens`.
const DEFAULT_REPLY: u64 = 16;

/// The mock's answer to a Chat Completions request: a JSON completion, or an event stream
/// when the request has `"stream": true`.
pub fn answer(request: &Value) -> http::Response<Vec<u8>> {
    let model = request["model"].as_str().unwrap_or("mock");
    let messages = request["messages"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let text_bytes: usize = messages.iter().map(|m| text_of(&m["content"]).len()).sum();
    let prompt = (text_bytes as u64).div_ceil(4) + 4 * messages.len() as u64;
    let reply = request["max_tokens"]
        .as_u64()
        .or_else(|| request["max_completion_tokens"].as_u64())
        .unwrap_or(DEFAULT_REPLY)
        .min(MAX_REPLY);
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": reply,
        "total_tokens": prompt + reply,
    });
    let id = "chatcmpl-mock";
    if request["stream"].as_bool() == Some(true) {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for i in 0..reply {
            let word = if i == 0 { "ok" } else { " ok" };
            events.push(chunk(json!({"content": word}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true)
        {
            events.push(
                json!({"id": id, "object": "chat.completion.chunk", "created": 0,
                               "model": model, "choices": [], "usage": usage}),
            );
        }
        let mut body = Vec::new();
        for event in events {
            body.extend_from_slice(b"data: ");
            body.extend_from_slice(event.to_string().as_bytes());
            body.extend_from_slice(b"\n\n");
        }
        body.extend_from_slice(b"data: [DONE]\n\n");
        return response("text/event-stream", body);
    }
    let content = vec!["ok"; usize::try_from(reply).unwrap_or(0)].join(" ");
    let body = json!({
        "id": id, "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": usage,
    });
    response("application/json", body.to_string().into_bytes())
}

/// The mock's answer to an Embeddings request: one 8-dimension vector per input (a string or
/// a token array; a list of them gives one each), and a usage of
/// [`embeddings_input_tokens`](ai_metering_core::estimate::embeddings_input_tokens) input
/// tokens. An `input` of another shape gets a 400 in OpenAI's error shape.
///
/// ```
/// let request = serde_json::json!({"model": "text-embedding-3-small", "input": ["abc", "abcdef"]});
/// let response = ai_metering_gateway::mock::embeddings(&request);
/// let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
/// assert_eq!(body["data"].as_array().unwrap().len(), 2);
/// assert_eq!(body["usage"]["prompt_tokens"], 3);
/// ```
pub fn embeddings(request: &Value) -> http::Response<Vec<u8>> {
    let model = request["model"].as_str().unwrap_or("mock");
    let Some(tokens) = ai_metering_core::estimate::embeddings_input_tokens(request) else {
        let mut refused = response(
            "application/json",
            json!({"error": {"message": "'input' must be a string or an array",
                             "type": "invalid_request_error", "param": "input", "code": null}})
            .to_string()
            .into_bytes(),
        );
        *refused.status_mut() = http::StatusCode::BAD_REQUEST;
        return refused;
    };
    // A list of strings or of token arrays embeds each item; a string or one token array
    // is one input.
    let inputs = match &request["input"] {
        Value::Array(items) if items.iter().all(|i| !i.is_number()) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|index| {
            json!({"object": "embedding", "index": index,
                   "embedding": [0.125, -0.25, 0.5, 0.0, 0.375, -0.125, 0.25, -0.5]})
        })
        .collect();
    let body = json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    response("application/json", body.to_string().into_bytes())
}

/// `response` as the mock upstream sends it: an event stream one event every `delay` (each
/// word of a reply is an event), anything else at once.
pub(crate) fn paced(
    response: http::Response<Vec<u8>>,
    delay: std::time::Duration,
) -> http::Response<reqwest::Body> {
    let streamed = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"text/event-stream");
    let (parts, body) = response.into_parts();
    if delay.is_zero() || !streamed {
        return http::Response::from_parts(parts, reqwest::Body::from(body));
    }
    let mut events = Vec::new();
    let mut rest = body.as_slice();
    while let Some(end) = rest.windows(2).position(|w| w == b"\n\n") {
        events.push(axum::body::Bytes::copy_from_slice(&rest[..end + 2]));
        rest = &rest[end + 2..];
    }
    if !rest.is_empty() {
        events.push(axum::body::Bytes::copy_from_slice(rest));
    }
    let stream = futures_util::stream::iter(events).then(move |event| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::io::Error>(event)
    });
    http::Response::from_parts(parts, reqwest::Body::wrap_stream(stream))
}

/// The text of a message's `content`: a string, or the text parts of a list.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn response(content_type: &'static str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::provider::{Provider, UsageAccumulator, extract_usage_from_slice};

    #[test]
    fn plain_and_streamed_answers_report_the_same_usage() {
        let request = json!({"model": "m", "max_tokens": 5, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]});
        let plain = answer(&request);
        let usage = extract_usage_from_slice(Provider::OpenAi, plain.body()).unwrap();
        // 9 + 8 bytes of text: 3 + 2 tokens, plus 4 per message.
        assert_eq!((usage.input_tokens(), usage.output_tokens()), (13, 5));
        let mut streamed = request.clone();
        streamed["stream"] = json!(true);
        let stream = answer(&streamed);
        assert_eq!(
            stream.headers()[http::header::CONTENT_TYPE],
            "text/event-stream"
        );
        let mut acc = UsageAccumulator::new(Provider::OpenAi);
        acc.push_bytes(stream.body()).unwrap();
        assert_eq!(acc.finish().unwrap(), usage);
        // Without include_usage there is no usage chunk, as with OpenAI.
        streamed["stream_options"] = json!({});
        let text = String::from_utf8(answer(&streamed).into_body()).unwrap();
        assert!(!text.contains("\"usage\"") && text.ends_with("data: [DONE]\n\n"));
    }
}
