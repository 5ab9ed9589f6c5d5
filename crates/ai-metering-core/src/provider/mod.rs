//! Usage extraction from real provider responses, complete or streamed.
//!
//! Providers disagree on what their numbers mean; everything here turns them into a
//! [`TokenUsage`](crate::TokenUsage) whose input counts every input token (cache reads and
//! writes included) and whose output counts every output token (reasoning included).
//!
//! | Provider | Input | Cached / cache-write parts | Output | Reasoning part |
//! |---|---|---|---|---|
//! | OpenAI Chat | `prompt_tokens` | `prompt_tokens_details.cached_tokens` / `.cache_write_tokens` | `completion_tokens` | `completion_tokens_details.reasoning_tokens` |
//! | OpenAI Responses | `input_tokens` | `input_tokens_details.cached_tokens` / `.cache_write_tokens` | `output_tokens` | `output_tokens_details.reasoning_tokens` |
//! | Anthropic | `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` | `cache_read_input_tokens` / `cache_creation_input_tokens` (1-hour part: `cache_creation.ephemeral_1h_input_tokens`) | `output_tokens` | `output_tokens_details.thinking_tokens` |
//! | Gemini | `promptTokenCount` + `toolUsePromptTokenCount` | `cachedContentTokenCount` / none | `candidatesTokenCount` + `thoughtsTokenCount` | `thoughtsTokenCount` |
//!
//! Absent or `null` optional counts are 0 (Gemini omits zeros; OpenAI's details objects may
//! be missing or hold `null`s). A count that is negative, fractional, a float such as `12.0`,
//! a string, or above [`MAX_TOKENS_PER_CALL`](crate::MAX_TOKENS_PER_CALL) is a
//! [`MalformedResponse`](crate::Error::MalformedResponse) naming the field; a part larger than
//! its whole is an [`InvalidUsage`](crate::Error::InvalidUsage); a body without usage is
//! [`NoUsage`](crate::Error::NoUsage). Nothing is ever read as a silent zero, and counts never
//! pass through floating point.
//!
//! # Streams
//!
//! [`UsageAccumulator`] takes the server-sent events of a streamed response and knows where
//! each provider puts the final figures:
//!
//! - **OpenAI Chat Completions**: only with `stream_options.include_usage`, in the last chunk,
//!   whose `choices` is empty. Azure's first chunk also has empty `choices` but no usage and is
//!   skipped. Running usage on content chunks (some compatible servers) becomes final at
//!   `[DONE]`.
//! - **OpenAI Responses API**: `response.usage` of `response.completed`,
//!   `response.incomplete` or `response.failed`. Chat chunks and Responses events are told
//!   apart per event: Responses events have a `type`.
//! - **Anthropic**: `message_start` then `message_delta`, whose usage fields are running
//!   totals that **overwrite** (never add to) those of `message_start`. Without a
//!   `message_delta` the output count is incomplete, so there is no final usage.
//! - **Gemini**: every chunk carries `usageMetadata`, the figures may go down as well as up,
//!   the last ones count; they are final from the chunk with a `finishReason` on.
//!
//! A stream cut off before its final usage makes [`UsageAccumulator::finish`] return
//! [`NoUsage`](crate::Error::NoUsage): such a call is not free, its cost is unknown.
//!
//! ```
//! use ai_metering_core::provider::{Provider, UsageAccumulator, extract_usage};
//!
//! let body = serde_json::json!({"usage": {
//!     "prompt_tokens": 2000, "completion_tokens": 300,
//!     "prompt_tokens_details": {"cached_tokens": 1536},
//!     "completion_tokens_details": {"reasoning_tokens": 256}
//! }});
//! let usage = extract_usage(Provider::OpenAi, &body)?;
//! assert_eq!(usage.uncached_input_tokens(), 464);
//!
//! let mut acc = UsageAccumulator::new(Provider::Gemini);
//! acc.push_bytes(b"data: {\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":2}}\r\n\r\n")?;
//! acc.push_bytes(b"data: {\"candidates\":[{\"finishReason\":\"STOP\"}],")?;
//! acc.push_bytes(b"\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":5,\"thoughtsTokenCount\":20}}\r\n\r\n")?;
//! let usage = acc.finish()?;
//! assert_eq!((usage.output_tokens(), usage.reasoning_tokens()), (25, 20));
//! # Ok::<(), ai_metering_core::Error>(())
//! ```

mod anthropic;
mod extract;
mod fields;
mod gemini;
mod name;
mod openai;
mod sse;
mod stream;

pub use extract::{extract_usage, extract_usage_from_slice};
pub use name::Provider;
pub use stream::UsageAccumulator;
