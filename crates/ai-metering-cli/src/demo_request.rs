//! What the demo reads from an OpenAI Chat Completions request: the body and the API key in
//! the `Authorization` header. Pure functions, with OpenAI-style error messages.

use serde::Deserialize;

/// At most this many characters of a client's input are quoted back in an error message.
pub const MAX_QUOTED_CHARS: usize = 100;

/// `text` cut to [`MAX_QUOTED_CHARS`] characters, with `…` when something was cut, so that a
/// huge input is not echoed back whole.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A chat completion request (the fields the demo reads; others are ignored).
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Stream the reply as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Stream options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Legacy reply limit.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Reply limit.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
}

/// Why a request body was refused: a message in OpenAI's words and the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// Message for people.
    pub message: String,
    /// The offending parameter, when one is to blame.
    pub param: Option<&'static str>,
}

impl ChatRequest {
    /// Parses a request body.
    ///
    /// ```
    /// use ai_metering_cli::demo_request::ChatRequest;
    /// let r = ChatRequest::parse(br#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#);
    /// assert_eq!(r.unwrap().texts(), [("user", "Hi".to_owned())]);
    /// assert!(ChatRequest::parse(b"{").is_err());
    /// ```
    ///
    /// # Errors
    /// [`RequestError`] for a body that is not such a request, or has no messages.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let request: Self = serde_json::from_slice(body).map_err(|e| RequestError {
            message: format!(
                "We could not parse the JSON body of your request: {}",
                shorten(&e.to_string())
            ),
            param: None,
        })?;
        if request.messages.is_empty() {
            return Err(RequestError {
                message: "[] is too short - 'messages'".to_owned(),
                param: Some("messages"),
            });
        }
        Ok(request)
    }

    /// The messages as (role, text) pairs.
    pub fn texts(&self) -> Vec<(&str, String)> {
        self.messages
            .iter()
            .map(|m| {
                (
                    m.role.as_str(),
                    m.content.as_ref().map(Content::text).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The reply limit, whichever field carries it.
    pub fn reply_limit(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// True when the final usage chunk was asked for.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// One message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, content parts, or null (assistant tool calls).
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts; only text parts are read.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text, parts joined by newlines.
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    /// The part's text, for text parts.
    #[serde(default)]
    pub text: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage and empty choices.
    #[serde(default)]
    pub include_usage: bool,
}

/// The API key of an `Authorization` header value (`Bearer <key>`, the scheme in any case,
/// spaces around the key ignored), or `None` for another scheme, no key, or bytes a header
/// value cannot hold as text (only visible ASCII, spaces and tabs).
///
/// ```
/// use ai_metering_cli::demo_request::bearer_key;
/// assert_eq!(bearer_key(b"Bearer sk-demo-alice"), Some("sk-demo-alice"));
/// assert_eq!(bearer_key(b"bearer  sk-demo-bob "), Some("sk-demo-bob"));
/// assert_eq!(bearer_key(b"Basic sk-demo-alice"), None);
/// ```
pub fn bearer_key(authorization: &[u8]) -> Option<&str> {
    if !authorization
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return None;
    }
    let value = std::str::from_utf8(authorization).ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_accept_text_and_content_parts() {
        let body = br#"{"model":"gpt-4o-mini","messages":[
            {"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null}
        ],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"temperature":0.2}"#;
        let r = ChatRequest::parse(body).unwrap();
        assert!(r.stream && r.include_usage());
        assert_eq!(r.reply_limit(), Some(5));
        let texts = r.texts();
        assert_eq!(texts[1], ("user", "Hi".to_owned()));
        assert_eq!(texts[2], ("assistant", String::new()));
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        assert_eq!(ChatRequest::parse(b"{").unwrap_err().param, None);
        let e = ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap_err();
        assert_eq!(e.param, Some("messages"));
    }

    #[test]
    fn only_bearer_keys_in_header_text_are_read() {
        assert_eq!(bearer_key(b"BEARER\tk "), None); // no space after the scheme
        assert_eq!(bearer_key(b"Bearer \tk\t"), Some("k"));
        for bad in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer k\xff",
            b"Bearer k\n",
            b"Token k",
        ] {
            assert_eq!(bearer_key(bad), None, "{bad:?}");
        }
    }
}
