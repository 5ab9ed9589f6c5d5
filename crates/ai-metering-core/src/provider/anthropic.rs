//! Anthropic Messages API usage, from bodies and streams.
//!
//! Anthropic's `input_tokens` **excludes** cache reads (`cache_read_input_tokens`) and cache
//! writes (`cache_creation_input_tokens`), so the normalised input is the sum of the three.
//! Cache writes may be split by lifetime in `cache_creation.ephemeral_5m_input_tokens` and
//! `ephemeral_1h_input_tokens`; the 1-hour part becomes
//! [`cache_write_long_tokens`](TokenUsage::cache_write_long_tokens). When both the split and
//! `cache_creation_input_tokens` are given they must agree: a split that does not add up is a
//! [`MalformedResponse`](crate::Error::MalformedResponse), because pricing the writes would
//! mean guessing which figure is wrong. Without `cache_creation_input_tokens` the split's sum
//! is used. `output_tokens_details.thinking_tokens`, when present, is the reasoning part of
//! `output_tokens`.
//!
//! Streams: `message_start` carries `message.usage`; `message_delta` carries `usage` whose
//! fields are running **totals** that overwrite the same fields of `message_start` (they may
//! revise input and cache counts when server tools run): overwrite, never add. The usage is
//! final only after a `message_delta`: a stream that ended after `message_start` has an
//! incomplete output count, so it has no final usage.
//!
//! When a `message_delta` revises `cache_creation_input_tokens` without a new lifetime split,
//! the split of `message_start` is stale: its 1-hour count is kept (totals only grow while a
//! message is produced) and the rest of the writes count as 5-minute writes, the default
//! lifetime. A kept 1-hour count larger than the revised total is malformed.

use serde_json::Value;

use super::Provider;
use super::fields::{Fields, malformed, part_exceeds, usage_object};
use crate::error::Result;
use crate::usage::{TokenCounts, TokenUsage};

const PROVIDER: Provider = Provider::Anthropic;

/// Usage of a Messages API body.
pub(crate) fn extract(body: &Value) -> Result<TokenUsage> {
    RawUsage::read(&usage_object(PROVIDER, body, "usage")?)?.normalise()
}

/// The cache-write split by lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheWriteSplit {
    five_minutes: u64,
    one_hour: u64,
}

/// Anthropic's own figures, each `None` when not reported by the object it was read from.
#[derive(Debug, Clone, Default)]
struct RawUsage {
    path: String,
    input: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    split: Option<CacheWriteSplit>,
    /// The split predates a revision of `cache_creation` (see the module docs).
    split_is_stale: bool,
    output: Option<u64>,
    thinking: Option<u64>,
}

impl RawUsage {
    fn read(usage: &Fields<'_>) -> Result<Self> {
        let split = match usage.child("cache_creation")? {
            Some(split) => Some(CacheWriteSplit {
                five_minutes: split.or_zero("ephemeral_5m_input_tokens")?,
                one_hour: split.or_zero("ephemeral_1h_input_tokens")?,
            }),
            None => None,
        };
        let thinking = match usage.child("output_tokens_details")? {
            Some(details) => details.optional("thinking_tokens")?,
            None => None,
        };
        Ok(Self {
            path: usage.path().to_owned(),
            input: usage.optional("input_tokens")?,
            cache_read: usage.optional("cache_read_input_tokens")?,
            cache_creation: usage.optional("cache_creation_input_tokens")?,
            split,
            split_is_stale: false,
            output: usage.optional("output_tokens")?,
            thinking,
        })
    }

    /// Applies a `message_delta` usage: every field it reports replaces ours.
    fn overwrite_with(&mut self, delta: RawUsage) {
        if delta.split.is_some() {
            self.split = delta.split;
            self.split_is_stale = false;
        } else if delta.cache_creation.is_some() && delta.cache_creation != self.cache_creation {
            self.split_is_stale = self.split.is_some();
        }
        let replace = |ours: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *ours = theirs;
            }
        };
        replace(&mut self.input, delta.input);
        replace(&mut self.cache_read, delta.cache_read);
        replace(&mut self.cache_creation, delta.cache_creation);
        replace(&mut self.output, delta.output);
        replace(&mut self.thinking, delta.thinking);
    }

    fn normalise(&self) -> Result<TokenUsage> {
        let path = &self.path;
        let uncached = self
            .input
            .ok_or_else(|| malformed(PROVIDER, format!("{path}.input_tokens is missing")))?;
        let output = self
            .output
            .ok_or_else(|| malformed(PROVIDER, format!("{path}.output_tokens is missing")))?;
        let cache_read = self.cache_read.unwrap_or(0);
        let (cache_write, cache_write_long) = self.cache_writes()?;
        let reasoning = self.thinking.unwrap_or(0);
        part_exceeds(
            PROVIDER,
            (
                &format!("{path}.output_tokens_details.thinking_tokens"),
                reasoning,
            ),
            (&format!("{path}.output_tokens"), output),
        )?;
        TokenUsage::try_from(TokenCounts {
            // Each term is at most MAX_TOKENS_PER_CALL (checked on reading): no overflow.
            input: uncached + cache_read + cache_write,
            cached_input: cache_read,
            cache_write,
            cache_write_long,
            output,
            reasoning,
        })
    }

    /// All cache writes and their 1-hour part, checked against each other.
    fn cache_writes(&self) -> Result<(u64, u64)> {
        let path = &self.path;
        match (self.cache_creation, self.split) {
            (total, None) => Ok((total.unwrap_or(0), 0)),
            (None, Some(split)) => Ok((split.five_minutes + split.one_hour, split.one_hour)),
            (Some(total), Some(split)) if self.split_is_stale => {
                if split.one_hour > total {
                    return Err(malformed(
                        PROVIDER,
                        format!(
                            "the revised {path}.cache_creation_input_tokens ({total}) is below the \
                             {} one-hour cache writes reported earlier",
                            split.one_hour
                        ),
                    ));
                }
                Ok((total, split.one_hour))
            }
            (Some(total), Some(split)) => {
                if split.five_minutes + split.one_hour != total {
                    return Err(malformed(
                        PROVIDER,
                        format!(
                            "{path}.cache_creation splits {} writes (5m: {}, 1h: {}) but \
                             {path}.cache_creation_input_tokens is {total}",
                            split.five_minutes + split.one_hour,
                            split.five_minutes,
                            split.one_hour
                        ),
                    ));
                }
                Ok((total, split.one_hour))
            }
        }
    }
}

/// Stream state for Anthropic: `message_start`, then `message_delta` running totals.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnthropicStream {
    raw: Option<RawUsage>,
    latest: Option<TokenUsage>,
    saw_delta: bool,
}

impl AnthropicStream {
    /// One parsed `data:` payload.
    pub(crate) fn on_event(&mut self, event: &Value) -> Result<()> {
        let kind = match Fields::new(PROVIDER, "event", event)?.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            _ => return Err(malformed(PROVIDER, "a stream event has no string `type`")),
        };
        // Named after its type, so messages read `message_delta.usage.output_tokens ...`.
        let fields = Fields::new(PROVIDER, kind, event)?;
        match kind {
            "message_start" => {
                if self.raw.is_some() {
                    return Err(malformed(PROVIDER, "a second message_start in one stream"));
                }
                let message = fields
                    .child("message")?
                    .ok_or_else(|| malformed(PROVIDER, "message_start has no `message` object"))?;
                let usage = message.child("usage")?.ok_or_else(|| {
                    malformed(PROVIDER, "message_start has no `message.usage` object")
                })?;
                let raw = RawUsage::read(&usage)?;
                self.latest = Some(raw.normalise()?);
                self.raw = Some(raw);
            }
            "message_delta" => {
                let Some(raw) = self.raw.as_mut() else {
                    return Err(malformed(PROVIDER, "message_delta before message_start"));
                };
                let usage = fields
                    .child("usage")?
                    .ok_or_else(|| malformed(PROVIDER, "message_delta has no `usage` object"))?;
                let mut revised = raw.clone();
                revised.overwrite_with(RawUsage::read(&usage)?);
                revised.path = "message_delta.usage over message_start.message.usage".to_owned();
                self.latest = Some(revised.normalise()?);
                *raw = revised;
                self.saw_delta = true;
            }
            // ping, content blocks, message_stop, error: no usage.
            _ => {}
        }
        Ok(())
    }

    /// The latest figures, final or not.
    pub(crate) fn latest(&self) -> Option<TokenUsage> {
        self.latest
    }

    /// The final usage: known once a `message_delta` arrived.
    pub(crate) fn final_usage(&self) -> Option<TokenUsage> {
        if self.saw_delta { self.latest } else { None }
    }

    /// Why [`final_usage`](Self::final_usage) is `None`.
    pub(crate) fn missing_reason(&self) -> String {
        if self.raw.is_some() {
            "the stream ended after message_start but before message_delta, so its output count \
             is incomplete"
                .to_owned()
        } else {
            "the stream ended before message_start".to_owned()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Error;

    fn counts(usage: Value) -> Result<TokenCounts> {
        extract(&json!({"type": "message", "usage": usage})).map(|u| u.counts())
    }

    #[test]
    fn input_is_the_sum_of_uncached_cache_read_and_cache_write() {
        let c = counts(json!({
            "input_tokens": 12, "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 300, "output_tokens": 95
        }))
        .unwrap();
        assert_eq!(
            c,
            TokenCounts {
                input: 2312,
                cached_input: 2000,
                cache_write: 300,
                cache_write_long: 0,
                output: 95,
                reasoning: 0,
            }
        );
    }

    #[test]
    fn plain_usage_without_cache_fields() {
        let c = counts(json!({"input_tokens": 40, "output_tokens": 9})).unwrap();
        assert_eq!(
            c,
            TokenCounts {
                input: 40,
                output: 9,
                ..TokenCounts::default()
            }
        );
    }

    #[test]
    fn one_hour_writes_are_the_long_part() {
        let c = counts(json!({
            "input_tokens": 10, "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 700, "output_tokens": 20,
            "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 500}
        }))
        .unwrap();
        assert_eq!(
            (c.input, c.cache_write, c.cache_write_long),
            (710, 700, 500)
        );
        // The split alone is enough.
        let c = counts(json!({
            "input_tokens": 1, "output_tokens": 2,
            "cache_creation": {"ephemeral_1h_input_tokens": 30}
        }))
        .unwrap();
        assert_eq!((c.input, c.cache_write, c.cache_write_long), (31, 30, 30));
    }

    #[test]
    fn a_split_that_does_not_add_up_is_malformed() {
        let err = counts(json!({
            "input_tokens": 10, "cache_creation_input_tokens": 700, "output_tokens": 20,
            "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 600}
        }))
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::MalformedResponse {
                    provider: "anthropic",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("cache_creation_input_tokens is 700"),
            "{err}"
        );
    }

    #[test]
    fn thinking_tokens_are_reasoning_within_output() {
        let c = counts(json!({
            "input_tokens": 5, "output_tokens": 50,
            "output_tokens_details": {"thinking_tokens": 30}
        }))
        .unwrap();
        assert_eq!((c.output, c.reasoning), (50, 30));
        let err = counts(json!({
            "input_tokens": 5, "output_tokens": 50,
            "output_tokens_details": {"thinking_tokens": 51}
        }))
        .unwrap_err();
        assert!(matches!(err, Error::InvalidUsage(_)), "{err}");
    }

    #[test]
    fn missing_or_bad_required_counts_are_malformed() {
        for usage in [
            json!({"output_tokens": 3}),
            json!({"input_tokens": 3}),
            json!({"input_tokens": "3", "output_tokens": 3}),
            json!({"input_tokens": 3, "output_tokens": 3, "cache_read_input_tokens": -1}),
        ] {
            let err = counts(usage.clone()).unwrap_err();
            assert!(
                matches!(err, Error::MalformedResponse { .. }),
                "{usage}: {err}"
            );
        }
    }

    fn start(usage: Value) -> Value {
        json!({"type": "message_start", "message": {"id": "m", "usage": usage}})
    }

    fn delta(usage: Value) -> Value {
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage})
    }

    #[test]
    fn delta_overwrites_and_never_adds() {
        let mut s = AnthropicStream::default();
        s.on_event(&start(json!({
            "input_tokens": 20, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0, "output_tokens": 1
        })))
        .unwrap();
        s.on_event(&json!({"type": "ping"})).unwrap();
        assert_eq!(s.latest().unwrap().output_tokens(), 1);
        assert_eq!(s.final_usage(), None);
        s.on_event(&delta(json!({"output_tokens": 80}))).unwrap();
        let u = s.final_usage().unwrap();
        assert_eq!(
            (u.input_tokens(), u.cached_input_tokens(), u.output_tokens()),
            (120, 100, 80)
        );
        // A cumulative delta revising input and cache counts replaces them.
        s.on_event(&delta(json!({
            "input_tokens": 25, "cache_read_input_tokens": 400,
            "cache_creation_input_tokens": 50, "output_tokens": 150
        })))
        .unwrap();
        let u = s.final_usage().unwrap();
        assert_eq!(
            u.counts(),
            TokenCounts {
                input: 475,
                cached_input: 400,
                cache_write: 50,
                output: 150,
                ..TokenCounts::default()
            }
        );
    }

    #[test]
    fn stale_split_keeps_its_one_hour_part() {
        let mut s = AnthropicStream::default();
        s.on_event(&start(json!({
            "input_tokens": 3, "cache_creation_input_tokens": 1000, "output_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400}
        })))
        .unwrap();
        s.on_event(&delta(
            json!({"cache_creation_input_tokens": 1500, "output_tokens": 60}),
        ))
        .unwrap();
        let u = s.final_usage().unwrap();
        assert_eq!(
            (u.cache_write_tokens(), u.cache_write_long_tokens()),
            (1500, 400)
        );

        let mut s = AnthropicStream::default();
        s.on_event(&start(json!({
            "input_tokens": 3, "cache_creation_input_tokens": 1000, "output_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000}
        })))
        .unwrap();
        let err = s
            .on_event(&delta(
                json!({"cache_creation_input_tokens": 900, "output_tokens": 6}),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("below the 1000 one-hour"), "{err}");
    }

    #[test]
    fn stream_ordering_errors_and_missing_reasons() {
        let mut s = AnthropicStream::default();
        assert!(s.missing_reason().contains("before message_start"));
        let err = s.on_event(&delta(json!({"output_tokens": 5}))).unwrap_err();
        assert!(err.to_string().contains("before message_start"), "{err}");
        s.on_event(&start(json!({"input_tokens": 1, "output_tokens": 1})))
            .unwrap();
        assert!(s.missing_reason().contains("before message_delta"));
        let err = s
            .on_event(&start(json!({"input_tokens": 1, "output_tokens": 1})))
            .unwrap_err();
        assert!(err.to_string().contains("second message_start"), "{err}");
        let err = s.on_event(&json!({"no_type": true})).unwrap_err();
        assert!(matches!(err, Error::MalformedResponse { .. }), "{err}");
    }
}
