//! Google Gemini usage (`usageMetadata`), from bodies and streams.
//!
//! - `promptTokenCount` includes `cachedContentTokenCount` (the cached part);
//! - `toolUsePromptTokenCount` is input **not** included in `promptTokenCount`: it is added;
//! - `thoughtsTokenCount` is output **not** included in `candidatesTokenCount`: output is
//!   candidates + thoughts, and the thoughts are the reasoning part;
//! - fields whose value is 0 are omitted, so absent means 0 (an empty `usageMetadata` is a
//!   usage of zero tokens, as reported); a missing `usageMetadata` is no usage at all;
//! - a body without candidates (stopped by `MAX_TOKENS`, or a blocked prompt) still has usage.
//!
//! Streams: every chunk usually carries `usageMetadata`, the figures may go down as well as
//! up, and only the last chunk's figures count. They are final once a chunk with a
//! `finishReason` (or a `promptFeedback.blockReason`) was seen and usage arrived with it or
//! after it: a stream cut off before that has no final usage, since its last figures
//! undercount the output.

use serde_json::Value;

use super::Provider;
use super::fields::{Fields, malformed, part_exceeds, usage_object};
use crate::error::Result;
use crate::usage::{TokenCounts, TokenUsage};

const PROVIDER: Provider = Provider::Gemini;

/// Usage of a `generateContent` body.
pub(crate) fn extract(body: &Value) -> Result<TokenUsage> {
    normalise(&usage_object(PROVIDER, body, "usageMetadata")?)
}

fn normalise(meta: &Fields<'_>) -> Result<TokenUsage> {
    let prompt = meta.or_zero("promptTokenCount")?;
    let cached = meta.or_zero("cachedContentTokenCount")?;
    let tool_use_prompt = meta.or_zero("toolUsePromptTokenCount")?;
    let candidates = meta.or_zero("candidatesTokenCount")?;
    let thoughts = meta.or_zero("thoughtsTokenCount")?;
    let path = meta.path();
    part_exceeds(
        PROVIDER,
        (&format!("{path}.cachedContentTokenCount"), cached),
        (&format!("{path}.promptTokenCount"), prompt),
    )?;
    TokenUsage::try_from(TokenCounts {
        // Each term is at most MAX_TOKENS_PER_CALL (checked on reading): no overflow.
        input: prompt + tool_use_prompt,
        cached_input: cached,
        cache_write: 0,
        cache_write_long: 0,
        output: candidates + thoughts,
        reasoning: thoughts,
    })
}

/// Whether a chunk ends the response: a candidate has a `finishReason`, or the prompt was
/// blocked.
fn is_last_chunk(chunk: &Fields<'_>) -> Result<bool> {
    let finished = match chunk.get("candidates") {
        None | Some(Value::Null) => false,
        Some(Value::Array(candidates)) => candidates
            .iter()
            .any(|c| c.get("finishReason").is_some_and(|r| !r.is_null())),
        Some(_) => return Err(malformed(PROVIDER, "chunk.candidates is not an array")),
    };
    let blocked = chunk
        .get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .is_some_and(|r| !r.is_null());
    Ok(finished || blocked)
}

/// Stream state for Gemini: the last `usageMetadata` wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct GeminiStream {
    latest: Option<TokenUsage>,
    final_usage: Option<TokenUsage>,
    saw_last_chunk: bool,
}

impl GeminiStream {
    /// One parsed `data:` payload (a `GenerateContentResponse`).
    pub(crate) fn on_event(&mut self, event: &Value) -> Result<()> {
        let chunk = Fields::new(PROVIDER, "chunk", event)?;
        if is_last_chunk(&chunk)? {
            self.saw_last_chunk = true;
        }
        if let Some(meta) = chunk.child("usageMetadata")? {
            let usage = normalise(&meta)?;
            self.latest = Some(usage);
            if self.saw_last_chunk {
                self.final_usage = Some(usage);
            }
        }
        Ok(())
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
        match (self.saw_last_chunk, self.latest.is_some()) {
            (true, _) => "the chunk with the finishReason and the chunks after it carried no \
                          usageMetadata"
                .to_owned(),
            (false, true) => "the stream ended before a chunk with a finishReason, so its last \
                              usageMetadata undercounts the output"
                .to_owned(),
            (false, false) => "the stream ended without any usageMetadata".to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Error;

    fn counts(meta: Value) -> Result<TokenCounts> {
        extract(&json!({"candidates": [], "usageMetadata": meta})).map(|u| u.counts())
    }

    #[test]
    fn plain_usage() {
        let c = counts(
            json!({"promptTokenCount": 31, "candidatesTokenCount": 17, "totalTokenCount": 48}),
        )
        .unwrap();
        assert_eq!(
            c,
            TokenCounts {
                input: 31,
                output: 17,
                ..TokenCounts::default()
            }
        );
    }

    #[test]
    fn thoughts_are_added_to_output_as_reasoning() {
        let c = counts(
            json!({"promptTokenCount": 9, "candidatesTokenCount": 120, "thoughtsTokenCount": 800}),
        )
        .unwrap();
        assert_eq!((c.output, c.reasoning), (920, 800));
    }

    #[test]
    fn cached_is_part_of_prompt_and_tool_use_prompt_is_added() {
        let c = counts(json!({
            "promptTokenCount": 5000, "cachedContentTokenCount": 4096,
            "toolUsePromptTokenCount": 350, "candidatesTokenCount": 10
        }))
        .unwrap();
        assert_eq!((c.input, c.cached_input, c.output), (5350, 4096, 10));
    }

    #[test]
    fn omitted_fields_are_zero_and_no_candidates_still_has_usage() {
        let body = json!({
            "candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 11, "thoughtsTokenCount": 64, "totalTokenCount": 75}
        });
        let c = extract(&body).unwrap().counts();
        assert_eq!(
            c,
            TokenCounts {
                input: 11,
                output: 64,
                reasoning: 64,
                ..TokenCounts::default()
            }
        );
        assert_eq!(counts(json!({})).unwrap(), TokenCounts::default());
    }

    #[test]
    fn cached_larger_than_prompt_is_invalid_even_with_tool_use_tokens() {
        let err = counts(json!({
            "promptTokenCount": 100, "cachedContentTokenCount": 150, "toolUsePromptTokenCount": 500
        }))
        .unwrap_err();
        assert!(matches!(err, Error::InvalidUsage(_)), "{err}");
        assert!(
            err.to_string()
                .contains("usageMetadata.cachedContentTokenCount (150)"),
            "{err}"
        );
    }

    #[test]
    fn missing_usage_metadata_is_no_usage_and_bad_counts_are_malformed() {
        let err = extract(&json!({"candidates": []})).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoUsage {
                    provider: "gemini",
                    ..
                }
            ),
            "{err}"
        );
        let err = counts(json!({"promptTokenCount": 1.5})).unwrap_err();
        assert!(
            err.to_string()
                .contains("usageMetadata.promptTokenCount is 1.5"),
            "{err}"
        );
    }

    fn chunk(meta: Value, finish: Option<&str>) -> Value {
        json!({
            "candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": finish}],
            "usageMetadata": meta
        })
    }

    #[test]
    fn stream_last_figures_win_even_when_lower() {
        let mut s = GeminiStream::default();
        s.on_event(&chunk(
            json!({"promptTokenCount": 900, "candidatesTokenCount": 50}),
            None,
        ))
        .unwrap();
        s.on_event(&chunk(
            json!({"promptTokenCount": 700, "candidatesTokenCount": 60}),
            None,
        ))
        .unwrap();
        assert_eq!(s.latest(), Some(TokenUsage::new(700, 60).unwrap()));
        assert_eq!(s.final_usage(), None);
        assert!(
            s.missing_reason()
                .contains("before a chunk with a finishReason")
        );
        s.on_event(&chunk(
            json!({"promptTokenCount": 650, "candidatesTokenCount": 61}),
            Some("STOP"),
        ))
        .unwrap();
        assert_eq!(s.final_usage(), Some(TokenUsage::new(650, 61).unwrap()));
    }

    #[test]
    fn stream_usage_after_the_finish_chunk_counts_and_blocked_prompts_end_the_stream() {
        let mut s = GeminiStream::default();
        s.on_event(&json!({"candidates": [{"finishReason": "STOP"}]}))
            .unwrap();
        assert!(s.missing_reason().contains("carried no usageMetadata"));
        s.on_event(&json!({"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}}))
            .unwrap();
        assert_eq!(s.final_usage(), Some(TokenUsage::new(3, 4).unwrap()));

        let mut s = GeminiStream::default();
        s.on_event(&json!({
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 8}
        }))
        .unwrap();
        assert_eq!(s.final_usage(), Some(TokenUsage::new(8, 0).unwrap()));
    }
}
