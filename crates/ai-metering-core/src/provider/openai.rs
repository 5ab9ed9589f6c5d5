//! OpenAI usage: Chat Completions and Responses API bodies and streams.
//!
//! - Chat Completions: `usage.prompt_tokens` includes cached and cache-write tokens
//!   (`prompt_tokens_details.cached_tokens` / `cache_write_tokens`), `completion_tokens`
//!   includes `completion_tokens_details.reasoning_tokens`. The details objects may be absent
//!   (older models) and their fields `null`: both mean 0.
//! - Responses API: the same with `input_tokens`, `output_tokens`,
//!   `input_tokens_details` and `output_tokens_details`.
//!
//! - Embeddings: a `"object": "list"` body whose usage has `prompt_tokens` (and
//!   `total_tokens`, equal to it) but no `completion_tokens`: input only.
//!
//! Which of the two a usage object follows is read from its keys: `prompt_tokens` means Chat
//! Completions, `input_tokens` the Responses API; both or neither is malformed.
//!
//! Streams: Chat Completions chunks carry usage only when the request set
//! `stream_options.include_usage`, in a last chunk whose `choices` is empty; a chunk with
//! empty `choices` but no usage (Azure's prompt-filter chunk) is not a usage chunk. A few
//! OpenAI-compatible servers put running usage on every chunk; such figures become final only
//! at `data: [DONE]`. Responses API streams carry usage in `response.completed`,
//! `response.incomplete` or `response.failed`, at `response.usage`.

use serde_json::Value;

use super::Provider;
use super::fields::{Fields, malformed, part_exceeds, usage_object};
use crate::error::Result;
use crate::usage::{TokenCounts, TokenUsage};

const PROVIDER: Provider = Provider::OpenAi;

/// Usage of a Chat Completions, Responses API or Embeddings body.
pub(crate) fn extract(body: &Value) -> Result<TokenUsage> {
    let usage = usage_object(PROVIDER, body, "usage")?;
    let embeddings = body.get("object").and_then(Value::as_str) == Some("list")
        && usage.has("prompt_tokens")
        && !usage.has("completion_tokens");
    if embeddings {
        return embeddings_usage(&usage);
    }
    usage_from(&usage)
}

/// An embeddings call's usage: its input, and no output.
fn embeddings_usage(usage: &Fields<'_>) -> Result<TokenUsage> {
    let input = usage.required("prompt_tokens")?;
    if let Some(total) = usage.optional("total_tokens")?
        && total != input
    {
        return Err(malformed(
            PROVIDER,
            format!(
                "{path}.total_tokens ({total}) differs from {path}.prompt_tokens ({input}) in an embeddings usage",
                path = usage.path()
            ),
        ));
    }
    TokenUsage::try_from(TokenCounts {
        input,
        ..TokenCounts::default()
    })
}

/// Usage from a `usage` object of either API, told apart by its keys.
fn usage_from(usage: &Fields<'_>) -> Result<TokenUsage> {
    match (usage.has("prompt_tokens"), usage.has("input_tokens")) {
        (true, false) => chat_usage(usage),
        (false, true) => responses_usage(usage),
        (true, true) => Err(malformed(
            PROVIDER,
            format!(
                "{} has both prompt_tokens (Chat Completions) and input_tokens (Responses API)",
                usage.path()
            ),
        )),
        (false, false) => Err(malformed(
            PROVIDER,
            format!(
                "{} has neither prompt_tokens (Chat Completions) nor input_tokens (Responses API)",
                usage.path()
            ),
        )),
    }
}

fn chat_usage(usage: &Fields<'_>) -> Result<TokenUsage> {
    normalise(
        usage,
        ["prompt_tokens", "completion_tokens"],
        ["prompt_tokens_details", "completion_tokens_details"],
    )
}

fn responses_usage(usage: &Fields<'_>) -> Result<TokenUsage> {
    normalise(
        usage,
        ["input_tokens", "output_tokens"],
        ["input_tokens_details", "output_tokens_details"],
    )
}

/// Both APIs share one shape under different names: totals, then their details objects.
fn normalise(
    usage: &Fields<'_>,
    [input_key, output_key]: [&str; 2],
    [input_details, output_details]: [&str; 2],
) -> Result<TokenUsage> {
    let input = usage.required(input_key)?;
    let output = usage.required(output_key)?;
    let (cached, cache_write) = match usage.child(input_details)? {
        Some(details) => (
            details.or_zero("cached_tokens")?,
            details.or_zero("cache_write_tokens")?,
        ),
        None => (0, 0),
    };
    let reasoning = match usage.child(output_details)? {
        Some(details) => details.or_zero("reasoning_tokens")?,
        None => 0,
    };
    let path = usage.path();
    part_exceeds(
        PROVIDER,
        (
            &format!("{path}.{input_details}.cached_tokens + cache_write_tokens"),
            cached + cache_write,
        ),
        (&format!("{path}.{input_key}"), input),
    )?;
    part_exceeds(
        PROVIDER,
        (
            &format!("{path}.{output_details}.reasoning_tokens"),
            reasoning,
        ),
        (&format!("{path}.{output_key}"), output),
    )?;
    TokenUsage::try_from(TokenCounts {
        input,
        cached_input: cached,
        cache_write,
        cache_write_long: 0,
        output,
        reasoning,
    })
}

/// The terminal events of a Responses API stream, each carrying the final `response`.
const RESPONSES_TERMINAL_EVENTS: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Stream state for OpenAI: Chat Completions chunks and Responses API events.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenAiStream {
    latest: Option<TokenUsage>,
    final_usage: Option<TokenUsage>,
    /// A terminal Responses event arrived (its type), with or without usage.
    terminal_event: Option<String>,
    saw_done: bool,
    saw_responses_event: bool,
}

impl OpenAiStream {
    /// One parsed `data:` payload: a chat chunk, or a Responses event (it has a `type`).
    pub(crate) fn on_event(&mut self, event: &Value) -> Result<()> {
        match Fields::new(PROVIDER, "event", event)?.get("type") {
            Some(Value::String(kind)) => {
                self.on_responses_event(&Fields::new(PROVIDER, kind.as_str(), event)?, kind)
            }
            _ => self.on_chat_chunk(&Fields::new(PROVIDER, "chunk", event)?),
        }
    }

    fn on_responses_event(&mut self, event: &Fields<'_>, kind: &str) -> Result<()> {
        self.saw_responses_event = true;
        if !RESPONSES_TERMINAL_EVENTS.contains(&kind) {
            // Created, in-progress, deltas, errors...: `response.usage` is null or partial.
            return Ok(());
        }
        let response = event.child("response")?.ok_or_else(|| {
            malformed(
                PROVIDER,
                format!("the {kind} event has no `response` object"),
            )
        })?;
        self.terminal_event = Some(kind.to_owned());
        if let Some(usage) = response.child("usage")? {
            let usage = usage_from(&usage)?;
            self.latest = Some(usage);
            self.final_usage = Some(usage);
        }
        Ok(())
    }

    fn on_chat_chunk(&mut self, chunk: &Fields<'_>) -> Result<()> {
        let Some(usage) = chunk.child("usage")? else {
            // Content chunks, and Azure's first prompt-filter chunk: empty choices, no usage.
            return Ok(());
        };
        let usage = usage_from(&usage)?;
        self.latest = Some(usage);
        let choices_empty = match chunk.get("choices") {
            None | Some(Value::Null) => true,
            Some(Value::Array(choices)) => choices.is_empty(),
            Some(_) => {
                return Err(malformed(PROVIDER, "chunk.choices is not an array"));
            }
        };
        if choices_empty {
            // The include_usage chunk: the last one before [DONE].
            self.final_usage = Some(usage);
        }
        Ok(())
    }

    /// `data: [DONE]`: running figures sent on content chunks become final.
    pub(crate) fn on_done(&mut self) {
        self.saw_done = true;
        if self.final_usage.is_none() && self.terminal_event.is_none() {
            self.final_usage = self.latest;
        }
    }

    /// The latest figures, final or not.
    pub(crate) fn latest(&self) -> Option<TokenUsage> {
        self.latest
    }

    /// The final usage, once known.
    pub(crate) fn final_usage(&self) -> Option<TokenUsage> {
        self.final_usage
    }

    /// Why [`final_usage`](Self::final_usage) is `None`.
    pub(crate) fn missing_reason(&self) -> String {
        if let Some(kind) = &self.terminal_event {
            return format!("the {kind} event carried no response.usage");
        }
        if self.saw_responses_event {
            return "the Responses API stream ended before response.completed (or \
                    response.incomplete / response.failed)"
                .to_owned();
        }
        if self.saw_done {
            "the stream ended with [DONE] but no chunk carried usage (set \
             stream_options.include_usage to get it)"
                .to_owned()
        } else {
            "the stream ended before its usage chunk and [DONE]".to_owned()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Error;

    fn counts(body: Value) -> TokenCounts {
        extract(&body).unwrap().counts()
    }

    #[test]
    fn chat_with_cached_and_reasoning_tokens() {
        let c = counts(json!({"usage": {
            "prompt_tokens": 2100, "completion_tokens": 900, "total_tokens": 3000,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": null},
            "completion_tokens_details": {"reasoning_tokens": 640, "audio_tokens": null}
        }}));
        assert_eq!(
            c,
            TokenCounts {
                input: 2100,
                cached_input: 1920,
                output: 900,
                reasoning: 640,
                ..TokenCounts::default()
            }
        );
    }

    #[test]
    fn chat_details_absent_or_null_mean_zero() {
        let plain = counts(json!({"usage": {"prompt_tokens": 12, "completion_tokens": 7}}));
        assert_eq!(
            plain,
            TokenCounts {
                input: 12,
                output: 7,
                ..TokenCounts::default()
            }
        );
        let nulls = counts(json!({"usage": {
            "prompt_tokens": 12, "completion_tokens": 7,
            "prompt_tokens_details": null,
            "completion_tokens_details": {"reasoning_tokens": null}
        }}));
        assert_eq!(nulls, plain);
    }

    #[test]
    fn chat_cache_write_tokens_are_a_part_of_input() {
        let c = counts(json!({"usage": {
            "prompt_tokens": 5000, "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4864}
        }}));
        assert_eq!((c.input, c.cache_write, c.cached_input), (5000, 4864, 0));
    }

    #[test]
    fn responses_api_body() {
        let c = counts(json!({"object": "response", "usage": {
            "input_tokens": 800, "output_tokens": 300, "total_tokens": 1100,
            "input_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 100},
            "output_tokens_details": {"reasoning_tokens": 256}
        }}));
        assert_eq!(
            c,
            TokenCounts {
                input: 800,
                cached_input: 512,
                cache_write: 100,
                output: 300,
                reasoning: 256,
                ..TokenCounts::default()
            }
        );
    }

    #[test]
    fn ambiguous_or_unknown_usage_shapes_are_malformed() {
        for usage in [
            json!({"prompt_tokens": 1, "completion_tokens": 1, "input_tokens": 1}),
            json!({"total_tokens": 5}),
        ] {
            let err = extract(&json!({ "usage": usage })).unwrap_err();
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
        }
        let missing = extract(&json!({"usage": {"prompt_tokens": 4}})).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("usage.completion_tokens is missing"),
            "{missing}"
        );
    }

    #[test]
    fn parts_larger_than_wholes_name_the_fields() {
        let err = extract(&json!({"usage": {
            "prompt_tokens": 10, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 4}
        }}))
        .unwrap_err();
        assert!(matches!(err, Error::InvalidUsage(_)), "{err}");
        assert!(
            err.to_string().contains("usage.prompt_tokens (10)"),
            "{err}"
        );
        let err = extract(&json!({"usage": {
            "input_tokens": 10, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 6}
        }}))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("usage.output_tokens_details.reasoning_tokens (6)"),
            "{err}"
        );
    }

    #[test]
    fn bodies_without_usage_are_no_usage() {
        for body in [
            json!({"id": "x"}),
            json!({"usage": null}),
            json!([1, 2]),
            json!("text"),
        ] {
            let err = extract(&body).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::NoUsage {
                        provider: "openai",
                        ..
                    }
                ),
                "{body}: {err}"
            );
        }
        let err = extract(&json!({"usage": "12"})).unwrap_err();
        assert!(matches!(err, Error::MalformedResponse { .. }), "{err}");
    }

    #[test]
    fn chat_stream_usage_chunk_is_final_and_prefilter_chunk_is_not() {
        let mut s = OpenAiStream::default();
        s.on_event(&json!({"choices": [], "prompt_filter_results": []}))
            .unwrap();
        s.on_event(&json!({"choices": [], "usage": null})).unwrap();
        s.on_event(&json!({"choices": [{"delta": {"content": "hi"}}], "usage": null}))
            .unwrap();
        assert_eq!(s.latest(), None);
        assert_eq!(s.final_usage(), None);
        s.on_event(&json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}))
            .unwrap();
        assert_eq!(s.final_usage(), Some(TokenUsage::new(9, 2).unwrap()));
    }

    #[test]
    fn chat_stream_running_usage_becomes_final_only_at_done() {
        let mut s = OpenAiStream::default();
        let chunk = |n: u64| {
            json!({"choices": [{"delta": {"content": "x"}}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": n}})
        };
        s.on_event(&chunk(1)).unwrap();
        s.on_event(&chunk(2)).unwrap();
        assert_eq!(s.latest(), Some(TokenUsage::new(5, 2).unwrap()));
        assert_eq!(s.final_usage(), None);
        s.on_done();
        assert_eq!(s.final_usage(), Some(TokenUsage::new(5, 2).unwrap()));
    }

    #[test]
    fn responses_stream_takes_usage_from_terminal_events_only() {
        for terminal in RESPONSES_TERMINAL_EVENTS {
            let mut s = OpenAiStream::default();
            s.on_event(&json!({"type": "response.created", "response": {"usage": null}}))
                .unwrap();
            s.on_event(&json!({"type": "response.output_text.delta", "delta": "x"}))
                .unwrap();
            assert!(s.final_usage().is_none());
            assert!(s.missing_reason().contains("before response.completed"));
            s.on_event(&json!({"type": terminal, "response": {"usage": {
                "input_tokens": 30, "output_tokens": 12,
                "output_tokens_details": {"reasoning_tokens": 4}
            }}}))
            .unwrap();
            assert_eq!(s.final_usage().unwrap().reasoning_tokens(), 4, "{terminal}");
        }
    }

    #[test]
    fn responses_failed_without_usage_is_explained() {
        let mut s = OpenAiStream::default();
        s.on_event(&json!({"type": "response.failed", "response": {"usage": null}}))
            .unwrap();
        s.on_done();
        assert_eq!(s.final_usage(), None);
        assert!(
            s.missing_reason()
                .contains("response.failed event carried no response.usage")
        );
        let err = OpenAiStream::default()
            .on_event(&json!({"type": "response.completed"}))
            .unwrap_err();
        assert!(err.to_string().contains("no `response` object"), "{err}");
    }

    #[test]
    fn an_embeddings_body_is_input_only() {
        let body = json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8, "total_tokens": 8}
        });
        let usage = extract(&body).unwrap();
        assert_eq!((usage.input_tokens(), usage.output_tokens()), (8, 0));
        let mut wrong = body.clone();
        wrong["usage"]["total_tokens"] = json!(9);
        assert!(
            extract(&wrong)
                .unwrap_err()
                .to_string()
                .contains("usage.total_tokens (9) differs")
        );
        // A chat body without completion_tokens is still malformed.
        let chat = json!({"object": "chat.completion", "usage": {"prompt_tokens": 8}});
        assert!(extract(&chat).is_err());
    }
}
