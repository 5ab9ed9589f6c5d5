//! Arbitrary bytes as a provider response body.

use ai_metering_core::provider::{Provider, extract_usage, extract_usage_from_slice};

/// Extraction returns a usage or a typed error for every provider, never panics, and the
/// `Value` and slice entries agree.
pub fn usage_extraction(data: &[u8]) {
    let parsed = serde_json::from_slice::<serde_json::Value>(data).ok();
    for provider in Provider::ALL {
        let from_slice = extract_usage_from_slice(provider, data);
        if let Some(body) = &parsed {
            let from_value = extract_usage(provider, body);
            assert_eq!(
                from_value.is_ok(),
                from_slice.is_ok(),
                "{provider}: entries disagree"
            );
            if let Ok(usage) = from_value {
                // Totals of an accepted usage never overflow.
                let _ = usage.total_tokens();
            }
        }
    }
}
