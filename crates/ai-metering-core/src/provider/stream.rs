//! [`UsageAccumulator`]: the usage of a streamed response, fed event by event.

use serde_json::Value;

use super::Provider;
use super::anthropic::AnthropicStream;
use super::fields::{malformed, no_usage};
use super::gemini::GeminiStream;
use super::openai::OpenAiStream;
use super::sse::{DEFAULT_MAX_EVENT_BYTES, SseDecoder};
use crate::error::{Error, Result};
use crate::usage::TokenUsage;

/// Collects the usage of one streamed response.
///
/// Feed it either raw bytes as they arrive ([`push_bytes`](Self::push_bytes), which decodes
/// server-sent events itself) or the `data` payloads of the events
/// ([`push_data`](Self::push_data)), or already parsed events
/// ([`push_event`](Self::push_event)); then call [`finish`](Self::finish) when the stream ends.
/// The [module docs](super) describe where each provider puts its final usage.
///
/// A stream cut off before its final usage has **no** usage: `finish` returns
/// [`Error::NoUsage`] saying what was missing, never a zero or partial count. After any error,
/// every later call returns that same error: one rejected event means the stream cannot be
/// metered reliably.
///
/// ```
/// use ai_metering_core::provider::{Provider, UsageAccumulator};
///
/// let mut acc = UsageAccumulator::new(Provider::OpenAi);
/// acc.push_bytes(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n").unwrap();
/// acc.push_bytes(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,").unwrap();
/// acc.push_bytes(b"\"completion_tokens\":3}}\n\ndata: [DONE]\n\n").unwrap();
/// let usage = acc.finish().unwrap();
/// assert_eq!((usage.input_tokens(), usage.output_tokens()), (12, 3));
/// ```
#[derive(Debug)]
pub struct UsageAccumulator {
    provider: Provider,
    rules: Rules,
    sse: SseDecoder,
    failure: Option<Error>,
    /// Bytes of generated text (and tool-call arguments) seen in the events.
    text_bytes: u64,
}

/// Each provider's own rules for where the final usage is.
#[derive(Debug)]
enum Rules {
    OpenAi(OpenAiStream),
    Anthropic(AnthropicStream),
    Gemini(GeminiStream),
}

impl UsageAccumulator {
    /// An accumulator for a stream of `provider`, bounding one event to 1 MiB.
    ///
    /// ```
    /// use ai_metering_core::provider::{Provider, UsageAccumulator};
    ///
    /// let acc = UsageAccumulator::new(Provider::Gemini);
    /// assert_eq!(acc.provider(), Provider::Gemini);
    /// assert_eq!(acc.usage(), None);
    /// ```
    pub fn new(provider: Provider) -> Self {
        let rules = match provider {
            Provider::OpenAi => Rules::OpenAi(OpenAiStream::default()),
            Provider::Anthropic => Rules::Anthropic(AnthropicStream::default()),
            Provider::Gemini => Rules::Gemini(GeminiStream::default()),
        };
        Self {
            provider,
            rules,
            sse: SseDecoder::new(provider, DEFAULT_MAX_EVENT_BYTES),
            failure: None,
            text_bytes: 0,
        }
    }

    /// Sets the largest event [`push_bytes`](Self::push_bytes) buffers (default 1 MiB); a
    /// longer event is an [`Error::MalformedResponse`].
    ///
    /// ```
    /// use ai_metering_core::provider::{Provider, UsageAccumulator};
    ///
    /// let mut acc = UsageAccumulator::new(Provider::Anthropic).with_max_event_bytes(64);
    /// assert!(acc.push_bytes(&[b'x'; 65]).is_err());
    /// ```
    pub fn with_max_event_bytes(mut self, max_event_bytes: usize) -> Self {
        self.sse = SseDecoder::new(self.provider, max_event_bytes);
        self
    }

    /// The provider whose stream format is expected.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Feeds raw bytes of a server-sent events stream, split anywhere.
    ///
    /// Events end with an empty line (`\n\n`, `\r\n\r\n` or `\r\r`); their `data:` lines are
    /// joined with `\n` and handed to [`push_data`](Self::push_data); comments and other
    /// fields are ignored.
    ///
    /// # Errors
    /// [`Error::MalformedResponse`] for a line that is not UTF-8 or an event longer than the
    /// bound, and every error of [`push_data`](Self::push_data).
    pub fn push_bytes(&mut self, chunk: &[u8]) -> Result<()> {
        self.guarded(|acc| {
            let Self {
                sse,
                rules,
                provider,
                text_bytes,
                ..
            } = acc;
            sse.feed(chunk, |data| on_data(*provider, rules, text_bytes, data))
        })
    }

    /// Feeds the `data` payload of one event: a JSON object, `[DONE]`, or blank (ignored).
    ///
    /// # Errors
    /// [`Error::MalformedResponse`] when the payload is not JSON or the event is not shaped as
    /// the provider documents it; [`Error::InvalidUsage`] when its usage is inconsistent.
    pub fn push_data(&mut self, data: &str) -> Result<()> {
        self.guarded(|acc| on_data(acc.provider, &mut acc.rules, &mut acc.text_bytes, data))
    }

    /// Feeds one event that is already parsed.
    ///
    /// # Errors
    /// As [`push_data`](Self::push_data), the JSON parsing aside.
    pub fn push_event(&mut self, event: &Value) -> Result<()> {
        self.guarded(|acc| on_event(&mut acc.rules, &mut acc.text_bytes, event))
    }

    /// Bytes of generated text seen so far (content, reasoning and tool-call argument
    /// deltas): what a stream cut off before its usage estimates its output from.
    ///
    /// ```
    /// use ai_metering_core::provider::{Provider, UsageAccumulator};
    /// let mut acc = UsageAccumulator::new(Provider::OpenAi);
    /// acc.push_data(r#"{"choices":[{"delta":{"content":"Hello"}}]}"#).unwrap();
    /// assert_eq!(acc.output_text_bytes(), 5);
    /// ```
    pub fn output_text_bytes(&self) -> u64 {
        self.text_bytes
    }

    /// The latest usage figures seen so far, final or not (`None` before the first).
    pub fn usage(&self) -> Option<TokenUsage> {
        match &self.rules {
            Rules::OpenAi(s) => s.latest(),
            Rules::Anthropic(s) => s.latest(),
            Rules::Gemini(s) => s.latest(),
        }
    }

    /// Whether the final usage has arrived (and no error happened).
    pub fn is_complete(&self) -> bool {
        self.failure.is_none() && self.final_usage().is_some()
    }

    /// Ends the stream and returns its final usage.
    ///
    /// # Errors
    /// [`Error::NoUsage`] when the stream ended before its final usage (the reason says what
    /// was missing); the earlier error if one happened.
    pub fn finish(self) -> Result<TokenUsage> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        if let Some(usage) = self.final_usage() {
            return Ok(usage);
        }
        let mut reason = match &self.rules {
            Rules::OpenAi(s) => s.missing_reason(),
            Rules::Anthropic(s) => s.missing_reason(),
            Rules::Gemini(s) => s.missing_reason(),
        };
        let pending = self.sse.pending_bytes();
        if pending > 0 {
            reason.push_str(&format!(
                " (it stopped inside an unterminated event of {pending} bytes)"
            ));
        }
        Err(no_usage(self.provider, reason))
    }

    fn final_usage(&self) -> Option<TokenUsage> {
        match &self.rules {
            Rules::OpenAi(s) => s.final_usage(),
            Rules::Anthropic(s) => s.final_usage(),
            Rules::Gemini(s) => s.final_usage(),
        }
    }

    /// Runs `step` unless an earlier step failed, and remembers its failure.
    fn guarded(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        if let Some(failure) = &self.failure {
            return Err(duplicate(failure));
        }
        step(self).inspect_err(|e| self.failure = Some(duplicate(e)))
    }
}

fn on_data(provider: Provider, rules: &mut Rules, text_bytes: &mut u64, data: &str) -> Result<()> {
    let data = data.trim();
    if data.is_empty() {
        return Ok(());
    }
    if data == "[DONE]" {
        if let Rules::OpenAi(s) = rules {
            s.on_done();
        }
        return Ok(());
    }
    let event: Value = serde_json::from_str(data).map_err(|e| {
        let preview: String = data.chars().take(40).collect();
        malformed(
            provider,
            format!("a stream event is not valid JSON ({e}); it starts with {preview:?}"),
        )
    })?;
    on_event(rules, text_bytes, &event)
}

fn on_event(rules: &mut Rules, text_bytes: &mut u64, event: &Value) -> Result<()> {
    match rules {
        Rules::OpenAi(s) => s.on_event(event),
        Rules::Anthropic(s) => s.on_event(event),
        Rules::Gemini(s) => s.on_event(event),
    }?;
    *text_bytes = text_bytes.saturating_add(generated_text_bytes(event));
    Ok(())
}

/// Bytes of generated text in one event, wherever each provider puts it: OpenAI Chat
/// `choices[].delta` (content, reasoning, tool-call arguments), OpenAI Responses
/// `response.*.delta`, Anthropic `content_block_delta`, Gemini `candidates[].content.parts`.
fn generated_text_bytes(event: &Value) -> u64 {
    let len = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| s.len() as u64);
    let mut n = 0_u64;
    for choice in event
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let delta = choice.get("delta");
        for key in ["content", "reasoning_content", "reasoning"] {
            n = n.saturating_add(len(delta.and_then(|d| d.get(key))));
        }
        let calls = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array);
        for call in calls.into_iter().flatten() {
            n = n.saturating_add(len(call.pointer("/function/arguments")));
        }
    }
    match event.get("type").and_then(Value::as_str) {
        Some(kind) if kind.starts_with("response.") && kind.ends_with(".delta") => {
            n = n.saturating_add(len(event.get("delta")));
        }
        Some("content_block_delta") => {
            for key in ["text", "partial_json", "thinking"] {
                n = n.saturating_add(len(event.get("delta").and_then(|d| d.get(key))));
            }
        }
        _ => {}
    }
    for candidate in event
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            n = n.saturating_add(len(part.get("text")));
        }
    }
    n
}

/// A copy of an error this module can produce ([`Error`] is not `Clone`).
fn duplicate(error: &Error) -> Error {
    match error {
        Error::InvalidUsage(reason) => Error::InvalidUsage(reason.clone()),
        Error::MalformedResponse { provider, reason } => Error::MalformedResponse {
            provider,
            reason: reason.clone(),
        },
        Error::NoUsage { provider, reason } => Error::NoUsage {
            provider,
            reason: reason.clone(),
        },
        other => Error::InvalidInput(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::usage::TokenCounts;

    #[test]
    fn done_and_blank_payloads_are_not_json_errors() {
        let mut acc = UsageAccumulator::new(Provider::Anthropic);
        acc.push_data("[DONE]").unwrap();
        acc.push_data("  ").unwrap();
        acc.push_data(" [DONE] ").unwrap();
        assert_eq!(acc.usage(), None);
    }

    #[test]
    fn malformed_json_is_a_clear_error_and_sticks() {
        let mut acc = UsageAccumulator::new(Provider::OpenAi);
        let err = acc.push_data("{\"choices\": [").unwrap_err();
        assert!(
            matches!(
                err,
                Error::MalformedResponse {
                    provider: "openai",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        // A good usage chunk afterwards cannot rescue the stream.
        let later = acc
            .push_data(r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#)
            .unwrap_err();
        assert_eq!(later.to_string(), err.to_string());
        assert!(!acc.is_complete());
        assert_eq!(acc.finish().unwrap_err().to_string(), err.to_string());
    }

    #[test]
    fn invalid_usage_errors_keep_their_kind_when_replayed() {
        let mut acc = UsageAccumulator::new(Provider::Gemini);
        let bad = json!({"usageMetadata": {"promptTokenCount": 1, "cachedContentTokenCount": 2}});
        assert!(matches!(acc.push_event(&bad), Err(Error::InvalidUsage(_))));
        assert!(matches!(
            acc.push_bytes(b"data: {}\n\n"),
            Err(Error::InvalidUsage(_))
        ));
        assert!(matches!(acc.finish(), Err(Error::InvalidUsage(_))));
    }

    #[test]
    fn finish_without_final_usage_is_no_usage_and_mentions_a_cut_event() {
        let mut acc = UsageAccumulator::new(Provider::Anthropic);
        acc.push_bytes(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n")
            .unwrap();
        acc.push_bytes(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usa")
            .unwrap();
        assert_eq!(acc.usage(), Some(TokenUsage::new(5, 1).unwrap()));
        assert!(!acc.is_complete());
        let err = acc.finish().unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoUsage {
                    provider: "anthropic",
                    ..
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("before message_delta"), "{message}");
        assert!(message.contains("unterminated event"), "{message}");
    }

    #[test]
    fn empty_stream_has_no_usage_for_every_provider() {
        for provider in Provider::ALL {
            let err = UsageAccumulator::new(provider).finish().unwrap_err();
            assert!(matches!(err, Error::NoUsage { .. }), "{provider}: {err}");
        }
    }

    #[test]
    fn push_event_push_data_and_push_bytes_agree() {
        let events = [
            json!({"type": "message_start", "message": {"usage": {
                "input_tokens": 7, "cache_read_input_tokens": 90, "output_tokens": 1}}}),
            json!({"type": "message_delta", "usage": {"output_tokens": 33}}),
        ];
        let expected = TokenCounts {
            input: 97,
            cached_input: 90,
            output: 33,
            ..TokenCounts::default()
        };
        let mut by_event = UsageAccumulator::new(Provider::Anthropic);
        let mut by_data = UsageAccumulator::new(Provider::Anthropic);
        let mut by_bytes = UsageAccumulator::new(Provider::Anthropic);
        for event in &events {
            by_event.push_event(event).unwrap();
            by_data.push_data(&event.to_string()).unwrap();
            by_bytes
                .push_bytes(format!("data: {event}\r\n\r\n").as_bytes())
                .unwrap();
        }
        for acc in [by_event, by_data, by_bytes] {
            assert!(acc.is_complete());
            assert_eq!(acc.finish().unwrap().counts(), expected);
        }
    }
}
