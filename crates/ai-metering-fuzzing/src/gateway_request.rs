//! Arbitrary requests to the gateway: the key it reads from the headers, the estimates it
//! reserves from the body, and its mock upstream's answers.

use ai_metering_core::estimate::{embeddings_input_tokens, from_request};
use ai_metering_core::provider::{Provider, UsageAccumulator, extract_usage_from_slice};
use ai_metering_gateway::{mock, presented_key};
use http::{HeaderMap, HeaderValue, header};
use serde_json::Value;

/// The first line is an `Authorization` header value, the rest a request body.
///
/// - The key read from the header is a trimmed, non-empty part of it.
/// - Any JSON body has estimates (or none) without panicking.
/// - The mock upstream answers any JSON request with a usage the gateway can read: a plain
///   completion's body, a stream's usage chunk when the request asks for one, and an
///   embeddings answer whose input is the request's estimate.
pub fn gateway_request(data: &[u8]) {
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(value) = HeaderValue::from_bytes(line) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        if let Some(key) = presented_key(&headers) {
            assert!(!key.is_empty(), "an empty key from {line:?}");
            assert_eq!(key, key.trim(), "an untrimmed key from {line:?}");
            assert!(
                line.windows(key.len()).any(|w| w == key.as_bytes()),
                "a key that is not in {line:?}"
            );
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let _ = from_request(&request);

    let answer = mock::answer(&request);
    assert!(answer.status().is_success(), "the mock refused {request}");
    if request["stream"].as_bool() == Some(true) {
        let mut usage = UsageAccumulator::new(Provider::OpenAi);
        usage
            .push_bytes(answer.body())
            .unwrap_or_else(|e| panic!("the mock's stream does not read: {e}"));
        let asked = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        assert_eq!(usage.finish().is_ok(), asked, "{request}");
    } else if let Err(e) = extract_usage_from_slice(Provider::OpenAi, answer.body()) {
        panic!("the mock's completion has no usable usage ({e}): {request}");
    }

    let embedded = mock::embeddings(&request);
    match embeddings_input_tokens(&request) {
        Some(tokens) => {
            let usage = extract_usage_from_slice(Provider::OpenAi, embedded.body())
                .unwrap_or_else(|e| panic!("the mock's embeddings have no usage ({e}): {request}"));
            assert_eq!(usage.input_tokens(), tokens, "{request}");
            assert_eq!(usage.output_tokens(), 0);
        }
        None => assert_eq!(embedded.status(), http::StatusCode::BAD_REQUEST),
    }
}
