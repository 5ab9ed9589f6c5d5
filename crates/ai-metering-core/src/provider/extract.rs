//! [`extract_usage`]: the usage of one complete (non-streaming) response body.

use serde_json::Value;

use super::fields::malformed;
use super::{Provider, anthropic, gemini, openai};
use crate::error::Result;
use crate::usage::TokenUsage;

/// Extracts the normalised usage of a complete response body of `provider`.
///
/// See the [module docs](super) for what each provider's numbers mean.
///
/// # Errors
/// - [`Error::NoUsage`](crate::Error::NoUsage): the body is not a JSON object, or has no
///   usage object (`usage`, or `usageMetadata` for Gemini) or a `null` one;
/// - [`Error::MalformedResponse`](crate::Error::MalformedResponse), naming the field: a usage
///   that is not an object, a required count that is missing, or a count that is negative,
///   fractional, written as a float (`12.0`), a string, or above
///   [`MAX_TOKENS_PER_CALL`](crate::MAX_TOKENS_PER_CALL); an Anthropic cache-write split that
///   disagrees with its total;
/// - [`Error::InvalidUsage`](crate::Error::InvalidUsage): a part larger than its whole, such as
///   cached tokens above the prompt tokens.
///
/// ```
/// use ai_metering_core::provider::{Provider, extract_usage};
///
/// let body = serde_json::json!({
///     "type": "message",
///     "usage": {"input_tokens": 10, "cache_read_input_tokens": 500, "output_tokens": 42}
/// });
/// let usage = extract_usage(Provider::Anthropic, &body).unwrap();
/// assert_eq!(usage.input_tokens(), 510); // Anthropic's input_tokens excludes cache reads
/// assert_eq!(usage.cached_input_tokens(), 500);
/// assert_eq!(usage.output_tokens(), 42);
/// ```
pub fn extract_usage(provider: Provider, body: &Value) -> Result<TokenUsage> {
    match provider {
        Provider::OpenAi => openai::extract(body),
        Provider::Anthropic => anthropic::extract(body),
        Provider::Gemini => gemini::extract(body),
    }
}

/// Parses `body` as JSON, then does what [`extract_usage`] does.
///
/// # Errors
/// Those of [`extract_usage`], and [`Error::MalformedResponse`](crate::Error::MalformedResponse)
/// when the bytes are not JSON (a truncated body, for instance).
///
/// ```
/// use ai_metering_core::Error;
/// use ai_metering_core::provider::{Provider, extract_usage_from_slice};
///
/// let usage = extract_usage_from_slice(
///     Provider::Gemini,
///     br#"{"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}}"#,
/// )
/// .unwrap();
/// assert_eq!(usage.total_tokens(), 10);
///
/// let cut = extract_usage_from_slice(Provider::Gemini, br#"{"usageMetadata": {"promptTok"#);
/// assert!(matches!(cut, Err(Error::MalformedResponse { .. })));
/// ```
pub fn extract_usage_from_slice(provider: Provider, body: &[u8]) -> Result<TokenUsage> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(provider, format!("the body is not valid JSON: {e}")))?;
    extract_usage(provider, &value)
}
