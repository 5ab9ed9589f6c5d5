//! The demo's built-in model: deterministic replies and token counts, no network.
//!
//! Token rule (documented in the README): a text of `n` characters (Unicode scalar values)
//! counts `ceil(n / 4)` tokens, the usual rule of thumb for English. A prompt counts 3 tokens
//! of reply priming plus, per message, 4 tokens of overhead and the tokens of its text. The
//! reply echoes the last user message inside a fixed sentence; `max_tokens` cuts it to
//! `4 * max_tokens` characters with finish reason `length`.

/// A text of `n` characters is `ceil(n / 4)` tokens.
pub fn count_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

/// Tokens of the prompt: 3 + sum over messages of (4 + tokens of its text).
pub fn prompt_tokens<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    messages.into_iter().fold(3u64, |acc, (_role, text)| {
        acc.saturating_add(4).saturating_add(count_tokens(text))
    })
}

/// A reply of the mock model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockReply {
    /// The reply text.
    pub text: String,
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
    /// `stop`, or `length` when cut by `max_tokens`.
    pub finish_reason: &'static str,
}

impl MockReply {
    /// The reply split into stream deltas: one word (with the space before it) each.
    pub fn deltas(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for ch in self.text.chars() {
            if ch == ' ' && !current.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.push(ch);
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }
}

/// The mock's reply to `messages` (role, text), cut to `max_tokens` when given.
pub fn reply<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    max_tokens: Option<u64>,
) -> MockReply {
    let last_user = messages
        .clone()
        .into_iter()
        .filter(|(role, _)| *role == "user")
        .last()
        .map_or("", |(_, text)| text);
    let mut text = if last_user.trim().is_empty() {
        "Hello! I am the ai-metering demo model. Send me a message and I will echo it.".to_owned()
    } else {
        format!(
            "You said: \"{}\". I am the ai-metering demo model: I echo your words so that \
             token counts stay predictable.",
            last_user.trim()
        )
    };
    let mut finish_reason = "stop";
    if let Some(max) = max_tokens {
        let max_chars = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
        if text.chars().count() > max_chars {
            text = text.chars().take(max_chars).collect();
            finish_reason = "length";
        }
    }
    MockReply {
        completion_tokens: count_tokens(&text),
        prompt_tokens: prompt_tokens(messages),
        text,
        finish_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_a_quarter_of_the_characters_rounded_up() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("abc"), 1);
        assert_eq!(count_tokens("abcd"), 1);
        assert_eq!(count_tokens("abcde"), 2);
        // Characters, not bytes.
        assert_eq!(count_tokens("éééé"), 1);
    }

    #[test]
    fn prompt_counts_priming_and_per_message_overhead() {
        assert_eq!(prompt_tokens([("user", "Hello there!")]), 3 + 4 + 3);
        assert_eq!(
            prompt_tokens([("system", "Be brief."), ("user", "Hi")]),
            3 + (4 + 3) + (4 + 1)
        );
    }

    #[test]
    fn the_reply_echoes_the_last_user_message_deterministically() {
        let msgs = [("user", "first"), ("assistant", "ok"), ("user", "second")];
        let a = reply(msgs, None);
        assert_eq!(a, reply(msgs, None));
        assert!(a.text.contains("\"second\""));
        assert_eq!(a.finish_reason, "stop");
        assert_eq!(a.completion_tokens, count_tokens(&a.text));
        assert_eq!(a.prompt_tokens, prompt_tokens(msgs));
    }

    #[test]
    fn max_tokens_cuts_the_reply() {
        let r = reply([("user", "tell me a long story")], Some(3));
        assert_eq!(r.text.chars().count(), 12);
        assert_eq!(r.completion_tokens, 3);
        assert_eq!(r.finish_reason, "length");
    }

    #[test]
    fn deltas_rebuild_the_text_word_by_word() {
        let r = reply([("user", "one two  three")], None);
        let deltas = r.deltas();
        assert!(deltas.len() > 5);
        assert_eq!(deltas.concat(), r.text);
        assert!(deltas[1].starts_with(' '));
    }
}
