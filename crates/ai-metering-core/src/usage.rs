//! [`TokenUsage`]: the normalised token counts of one AI call.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest count accepted for any token class of a single call.
///
/// Context windows are a few million tokens; a count above a billion is a bug or an attack,
/// not a call, and is rejected rather than billed.
pub const MAX_TOKENS_PER_CALL: u64 = 1_000_000_000;

/// Raw token counts, as plain public fields, to build a [`TokenUsage`] from.
///
/// The semantics are those of [`TokenUsage`]: `input` counts every input token, `cached_input`
/// and `cache_write` are parts of it; `output` counts every output token, `reasoning` is part of
/// it. Missing classes default to zero.
///
/// ```
/// use ai_metering_core::{TokenCounts, TokenUsage};
///
/// let usage = TokenUsage::try_from(TokenCounts {
///     input: 1000,
///     cached_input: 400,
///     output: 500,
///     ..TokenCounts::default()
/// })
/// .unwrap();
/// assert_eq!(usage.total_tokens(), 1500);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenCounts {
    /// Every input token, cached and cache-write ones included.
    pub input: u64,
    /// Input tokens read from a prompt cache (part of `input`).
    pub cached_input: u64,
    /// Input tokens written to a prompt cache (part of `input`), whatever the cache lifetime.
    pub cache_write: u64,
    /// Cache-write tokens with a long (one hour) lifetime (part of `cache_write`); some
    /// providers price them higher.
    pub cache_write_long: u64,
    /// Every output token, reasoning ones included.
    pub output: u64,
    /// Reasoning ("thinking") tokens (part of `output`).
    pub reasoning: u64,
}

/// The token usage of one AI call, normalised across providers.
///
/// Providers disagree on what their numbers mean (Anthropic's `input_tokens` excludes cache
/// reads and writes, OpenAI's `prompt_tokens` includes cached tokens, Gemini reports thinking
/// tokens beside candidates). Whatever the source, a `TokenUsage` always means:
///
/// - [`input_tokens`](Self::input_tokens) counts **every** input token;
///   [`cached_input_tokens`](Self::cached_input_tokens) and
///   [`cache_write_tokens`](Self::cache_write_tokens) are parts of it;
/// - [`output_tokens`](Self::output_tokens) counts every output token;
///   [`reasoning_tokens`](Self::reasoning_tokens) is part of it;
/// - [`total_tokens`](Self::total_tokens) is input + output.
///
/// The invariants (parts never exceed their whole, every count at most
/// [`MAX_TOKENS_PER_CALL`]) are checked on construction, so every value of this type is
/// consistent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TokenCounts", into = "TokenCounts")]
pub struct TokenUsage {
    counts: TokenCounts,
}

impl TokenUsage {
    /// A usage of `input` input and `output` output tokens, with no cache or reasoning parts.
    ///
    /// # Errors
    /// [`Error::InvalidUsage`] when a count exceeds [`MAX_TOKENS_PER_CALL`].
    pub fn new(input: u64, output: u64) -> Result<Self> {
        Self::try_from(TokenCounts {
            input,
            output,
            ..TokenCounts::default()
        })
    }

    /// Every input token, cached and cache-write tokens included.
    pub fn input_tokens(&self) -> u64 {
        self.counts.input
    }

    /// Input tokens read from a prompt cache.
    pub fn cached_input_tokens(&self) -> u64 {
        self.counts.cached_input
    }

    /// Input tokens written to a prompt cache (any lifetime).
    pub fn cache_write_tokens(&self) -> u64 {
        self.counts.cache_write
    }

    /// Cache-write tokens with a long (one hour) lifetime, a part of
    /// [`cache_write_tokens`](Self::cache_write_tokens).
    pub fn cache_write_long_tokens(&self) -> u64 {
        self.counts.cache_write_long
    }

    /// Input tokens that were neither read from nor written to a cache.
    pub fn uncached_input_tokens(&self) -> u64 {
        // Invariant checked on construction: cached + cache_write <= input.
        self.counts.input - self.counts.cached_input - self.counts.cache_write
    }

    /// Every output token, reasoning tokens included.
    pub fn output_tokens(&self) -> u64 {
        self.counts.output
    }

    /// Reasoning tokens, a part of [`output_tokens`](Self::output_tokens).
    pub fn reasoning_tokens(&self) -> u64 {
        self.counts.reasoning
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        // Cannot overflow: both are at most MAX_TOKENS_PER_CALL.
        self.counts.input + self.counts.output
    }

    /// The raw counts.
    pub fn counts(&self) -> TokenCounts {
        self.counts
    }
}

impl TryFrom<TokenCounts> for TokenUsage {
    type Error = Error;

    fn try_from(c: TokenCounts) -> Result<Self> {
        for (name, value) in [
            ("input", c.input),
            ("cached_input", c.cached_input),
            ("cache_write", c.cache_write),
            ("cache_write_long", c.cache_write_long),
            ("output", c.output),
            ("reasoning", c.reasoning),
        ] {
            if value > MAX_TOKENS_PER_CALL {
                return Err(Error::usage(format!(
                    "{name} count {value} exceeds the per-call maximum of {MAX_TOKENS_PER_CALL}"
                )));
            }
        }
        if c.cached_input + c.cache_write > c.input {
            return Err(Error::usage(format!(
                "cached ({}) plus cache-write ({}) tokens exceed the {} input tokens they are part of",
                c.cached_input, c.cache_write, c.input
            )));
        }
        if c.cache_write_long > c.cache_write {
            return Err(Error::usage(format!(
                "long-lived cache-write tokens ({}) exceed the {} cache-write tokens they are part of",
                c.cache_write_long, c.cache_write
            )));
        }
        if c.reasoning > c.output {
            return Err(Error::usage(format!(
                "reasoning tokens ({}) exceed the {} output tokens they are part of",
                c.reasoning, c.output
            )));
        }
        Ok(Self { counts: c })
    }
}

impl From<TokenUsage> for TokenCounts {
    fn from(u: TokenUsage) -> Self {
        u.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_parts() {
        let u = TokenUsage::try_from(TokenCounts {
            input: 1000,
            cached_input: 400,
            cache_write: 100,
            output: 500,
            reasoning: 200,
            ..TokenCounts::default()
        })
        .unwrap();
        assert_eq!(u.total_tokens(), 1500);
        assert_eq!(u.uncached_input_tokens(), 500);
        assert_eq!(u.reasoning_tokens(), 200);
    }

    #[test]
    fn parts_larger_than_whole_are_rejected() {
        let cases = [
            TokenCounts {
                input: 10,
                cached_input: 11,
                ..Default::default()
            },
            TokenCounts {
                input: 10,
                cached_input: 6,
                cache_write: 5,
                ..Default::default()
            },
            TokenCounts {
                output: 1,
                reasoning: 2,
                ..Default::default()
            },
            TokenCounts {
                input: 5,
                cache_write: 1,
                cache_write_long: 2,
                ..Default::default()
            },
        ];
        for c in cases {
            let err = TokenUsage::try_from(c).unwrap_err();
            assert!(matches!(err, Error::InvalidUsage(_)), "{c:?}: {err}");
        }
    }

    #[test]
    fn absurd_counts_are_rejected() {
        assert!(TokenUsage::new(MAX_TOKENS_PER_CALL + 1, 0).is_err());
        assert!(TokenUsage::new(MAX_TOKENS_PER_CALL, MAX_TOKENS_PER_CALL).is_ok());
    }

    #[test]
    fn deserialising_checks_invariants() {
        let ok: TokenUsage = serde_json::from_str(r#"{"input":3,"output":4}"#).unwrap();
        assert_eq!(ok.total_tokens(), 7);
        assert!(serde_json::from_str::<TokenUsage>(r#"{"input":3,"cached_input":4}"#).is_err());
        assert!(serde_json::from_str::<TokenUsage>(r#"{"input":-3}"#).is_err());
    }
}
