//! Arbitrary requests to the demo's OpenAI-compatible endpoint.

use ai_metering_cli::demo_request::{ChatRequest, bearer_key};

/// The first line is an `Authorization` header value, the rest a chat completion request
/// body. The key read from the header is a trimmed, non-empty part of it; a body parses to
/// a request with messages, whose texts and limits can be read, or to an error with a
/// message.
pub fn demo_request(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Some(key) = bearer_key(header) {
        assert!(!key.is_empty(), "an empty key from {header:?}");
        assert_eq!(key, key.trim(), "an untrimmed key from {header:?}");
        assert!(
            header.windows(key.len()).any(|w| w == key.as_bytes()),
            "a key that is not in {header:?}"
        );
    }
    match ChatRequest::parse(body) {
        Ok(request) => {
            assert!(!request.messages.is_empty(), "a request without messages");
            let texts = request.texts();
            assert_eq!(texts.len(), request.messages.len());
            let _ = request.reply_limit();
            let _ = request.include_usage();
        }
        Err(e) => assert!(!e.message.is_empty(), "an error without a message"),
    }
}
