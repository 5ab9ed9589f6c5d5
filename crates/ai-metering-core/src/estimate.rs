//! Estimates of a call's usage before it is made, and of a stream's usage when its provider
//! never reported one.
//!
//! A reservation holds an estimate until the call's real usage replaces it, so an estimate
//! errs high: over-estimating only refuses a call near the limit a little early, while
//! under-estimating lets concurrent calls overshoot it. The `Meter` takes the first of these
//! that is known (see the *estimate policy* in docs/DESIGN.md):
//!
//! 1. the caller's own estimate ([`Meter::estimate`](crate::Meter::estimate));
//! 2. the provider request itself, by [`from_request`]: its prompt's size (with
//!    [`TOKENS_PER_MESSAGE`] and [`TOKENS_PER_REQUEST`] of framing) and its output cap
//!    (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, Gemini's
//!    `maxOutputTokens`), priced by the catalog;
//! 3. the largest of this billable's recent calls of the same feature and model;
//! 4. nothing: the call is *unestimated*, and at most one such call of a billable is in
//!    flight at a time.
//!
//! Text is counted as one token per three bytes of UTF-8 ([`text_tokens`]): above what
//! tokenizers produce for English and code (about four characters a token) and about one
//! token per character for CJK scripts.

use serde_json::Value;

use crate::usage::{MAX_TOKENS_PER_CALL, TokenUsage};

/// Tokens assumed for each message's framing (role, separators), on top of its text.
pub const TOKENS_PER_MESSAGE: u64 = 4;

/// Tokens assumed once per request (the priming of the reply).
pub const TOKENS_PER_REQUEST: u64 = 3;

/// The estimated token count of `text`: one token per three bytes of UTF-8, rounded up.
///
/// ```
/// assert_eq!(ai_metering_core::estimate::text_tokens("hello world!"), 4);
/// assert_eq!(ai_metering_core::estimate::text_tokens(""), 0);
/// ```
pub fn text_tokens(text: &str) -> u64 {
    tokens_for_bytes(text.len() as u64)
}

/// The estimated token count of `bytes` bytes of UTF-8 text (see [`text_tokens`]).
///
/// ```
/// assert_eq!(ai_metering_core::estimate::tokens_for_bytes(10), 4);
/// ```
pub fn tokens_for_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(3)
}

/// What a provider request says about the call it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestEstimate {
    /// The estimated input: the prompt's text and each message's framing.
    pub input_tokens: u64,
    /// The most output the request allows (its output cap times its number of choices),
    /// when it sets one.
    pub max_output_tokens: Option<u64>,
}

impl RequestEstimate {
    /// The usage to reserve: the input and the output cap; `None` without an output cap
    /// (the output could be anything the model allows).
    pub fn usage(&self) -> Option<TokenUsage> {
        let output = self.max_output_tokens?;
        TokenUsage::new(
            self.input_tokens.min(MAX_TOKENS_PER_CALL),
            output.min(MAX_TOKENS_PER_CALL),
        )
        .ok()
    }
}

/// Reads a provider request body in a known shape: OpenAI Chat Completions and Responses,
/// Anthropic Messages, Gemini `generateContent`. `None` for anything else.
///
/// ```
/// use ai_metering_core::estimate::from_request;
/// let body = serde_json::json!({
///     "model": "gpt-4o-mini",
///     "max_tokens": 100,
///     "messages": [{"role": "user", "content": "Say hello in French"}]
/// });
/// let estimate = from_request(&body).unwrap();
/// assert_eq!(estimate.max_output_tokens, Some(100));
/// assert_eq!(estimate.input_tokens, 7 + 4 + 3); // text, the message, the request
/// ```
pub fn from_request(body: &Value) -> Option<RequestEstimate> {
    let object = body.as_object()?;
    let cap = |v: Option<&Value>| v.and_then(Value::as_u64);
    let choices = cap(object.get("n")).unwrap_or(1).max(1);

    let (prompt_tokens, max_output) = if let Some(messages) = object.get("messages") {
        // OpenAI Chat Completions and Anthropic Messages (its `system` is apart).
        let messages = messages.as_array()?;
        let framing = TOKENS_PER_MESSAGE.saturating_mul(messages.len() as u64);
        let text = prompt_text(messages.iter()).saturating_add(
            object
                .get("system")
                .map_or(0, |s| prompt_text(std::iter::once(s))),
        );
        let max = cap(object.get("max_completion_tokens")).or(cap(object.get("max_tokens")));
        (text.saturating_add(framing), max)
    } else if let Some(contents) = object.get("contents") {
        // Gemini.
        let contents = contents.as_array()?;
        let framing = TOKENS_PER_MESSAGE.saturating_mul(contents.len() as u64);
        let text = prompt_text(contents.iter()).saturating_add(
            object
                .get("systemInstruction")
                .or(object.get("system_instruction"))
                .map_or(0, |s| prompt_text(std::iter::once(s))),
        );
        let config = object
            .get("generationConfig")
            .or(object.get("generation_config"));
        let max =
            config.and_then(|c| cap(c.get("maxOutputTokens")).or(cap(c.get("max_output_tokens"))));
        let candidates = config
            .and_then(|c| cap(c.get("candidateCount")))
            .unwrap_or(1)
            .max(1);
        (
            text.saturating_add(framing),
            max.map(|m| m.saturating_mul(candidates)),
        )
    } else if let Some(input) = object.get("input") {
        // OpenAI Responses.
        let text = prompt_text(std::iter::once(input)).saturating_add(
            object
                .get("instructions")
                .map_or(0, |s| prompt_text(std::iter::once(s))),
        );
        let items = input.as_array().map_or(1, |a| a.len() as u64);
        (
            text.saturating_add(TOKENS_PER_MESSAGE.saturating_mul(items)),
            cap(object.get("max_output_tokens")),
        )
    } else {
        return None;
    };
    Some(RequestEstimate {
        input_tokens: prompt_tokens.saturating_add(TOKENS_PER_REQUEST),
        max_output_tokens: max_output.map(|m| m.saturating_mul(choices)),
    })
}

/// The estimated input of an embeddings request (OpenAI's `POST /v1/embeddings`): the text
/// of its `input` (a string or a list of strings), or the length of its token arrays (a list
/// of token ids, or a list of them), which are counted exactly. `None` without an `input` of
/// those shapes. An embeddings call has no output.
///
/// ```
/// use ai_metering_core::estimate::embeddings_input_tokens;
/// use serde_json::json;
///
/// assert_eq!(embeddings_input_tokens(&json!({"input": "abcdef"})), Some(2));
/// assert_eq!(embeddings_input_tokens(&json!({"input": ["abc", "abc"]})), Some(2));
/// assert_eq!(embeddings_input_tokens(&json!({"input": [[1, 2, 3], [4]]})), Some(4));
/// assert_eq!(embeddings_input_tokens(&json!({"input": 7})), None);
/// ```
pub fn embeddings_input_tokens(body: &Value) -> Option<u64> {
    fn tokens(value: &Value) -> Option<u64> {
        match value {
            Value::String(s) => Some(text_tokens(s)),
            Value::Number(_) => Some(1),
            Value::Array(items) => items
                .iter()
                .try_fold(0_u64, |acc, item| Some(acc.saturating_add(tokens(item)?))),
            _ => None,
        }
    }
    match body.get("input")? {
        input @ (Value::String(_) | Value::Array(_)) => tokens(input),
        _ => None,
    }
}

/// The estimated tokens of the text in prompt values: strings, and the text parts of
/// messages (`content`, `text`, `parts`, ...). Binary parts (images, audio, files) are not
/// counted: their token cost depends on the model, not on their encoded size.
fn prompt_text<'a>(values: impl Iterator<Item = &'a Value>) -> u64 {
    values.fold(0, |acc, v| acc.saturating_add(value_text(v)))
}

fn value_text(value: &Value) -> u64 {
    match value {
        Value::String(s) => text_tokens(s),
        Value::Array(items) => prompt_text(items.iter()),
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| TEXT_KEYS.contains(&key.as_str()))
            .fold(0, |acc, (_, v)| acc.saturating_add(value_text(v))),
        _ => 0,
    }
}

/// Keys under which prompts carry text (and tool calls their arguments).
const TEXT_KEYS: &[&str] = &[
    "content",
    "text",
    "parts",
    "input",
    "output",
    "arguments",
    "system",
    "instructions",
    "function_call",
    "tool_calls",
    "function",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_chat_counts_every_message_and_takes_the_newer_cap() {
        let body = json!({
            "model": "gpt-4o",
            "max_tokens": 50,
            "max_completion_tokens": 70,
            "n": 2,
            "messages": [
                {"role": "system", "content": "abcdef"},
                {"role": "user", "content": [{"type": "text", "text": "abc"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAAAAAAAAAAAAAA"}}]}
            ]
        });
        let e = from_request(&body).unwrap();
        assert_eq!(
            e.input_tokens,
            2 + 1 + 2 * TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST
        );
        assert_eq!(e.max_output_tokens, Some(140));
        assert_eq!(e.usage().unwrap().total_tokens(), 3 + 8 + 3 + 140);
    }

    #[test]
    fn anthropic_counts_its_system_prompt() {
        let body = json!({
            "model": "claude-sonnet-4",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "abcabc"}],
            "messages": [{"role": "user", "content": "abc"}]
        });
        let e = from_request(&body).unwrap();
        assert_eq!(
            e.input_tokens,
            2 + 1 + TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST
        );
        assert_eq!(e.max_output_tokens, Some(1024));
    }

    #[test]
    fn responses_and_gemini_shapes_are_read() {
        let responses = json!({"model": "gpt-5", "input": "abcabcabc", "instructions": "abc", "max_output_tokens": 9});
        let e = from_request(&responses).unwrap();
        assert_eq!(
            (e.input_tokens, e.max_output_tokens),
            (3 + 1 + 4 + 3, Some(9))
        );

        let gemini = json!({
            "contents": [{"role": "user", "parts": [{"text": "abcabc"}]}],
            "generationConfig": {"maxOutputTokens": 30, "candidateCount": 2}
        });
        let e = from_request(&gemini).unwrap();
        assert_eq!((e.input_tokens, e.max_output_tokens), (2 + 4 + 3, Some(60)));
    }

    #[test]
    fn without_a_cap_there_is_no_usage_to_reserve() {
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        let e = from_request(&body).unwrap();
        assert_eq!(e.max_output_tokens, None);
        assert_eq!(e.usage(), None);
    }

    #[test]
    fn unknown_shapes_are_none() {
        assert_eq!(from_request(&json!({"prompt": "x"})), None);
        assert_eq!(from_request(&json!("x")), None);
        assert_eq!(from_request(&json!({"messages": "x"})), None);
    }

    #[test]
    fn text_counts_err_high() {
        // English: about four characters a token in real tokenizers.
        assert!(text_tokens("The quick brown fox jumps over the lazy dog") >= 10);
        // CJK: three bytes a character, about a token each.
        assert_eq!(text_tokens("日本語"), 3);
    }
}
