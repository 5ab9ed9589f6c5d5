//! Arbitrary bytes as a server-sent events stream, split into chunks at arbitrary places.

use ai_metering_core::provider::{Provider, UsageAccumulator};

/// The first byte picks the provider, the second the chunk length of the split feed; the
/// accumulator never panics, and the result does not depend on the split.
pub fn sse_accumulator(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let provider = Provider::ALL[usize::from(selector) % Provider::ALL.len()];
    let (step, stream) = match rest.split_first() {
        Some((&s, tail)) => (usize::from(s % 64) + 1, tail),
        None => (1, rest),
    };

    let mut whole = UsageAccumulator::new(provider).with_max_event_bytes(4096);
    let whole_fed = whole.push_bytes(stream);
    let mut split = UsageAccumulator::new(provider).with_max_event_bytes(4096);
    let mut split_fed = Ok(());
    for chunk in stream.chunks(step) {
        split_fed = split.push_bytes(chunk);
        if split_fed.is_err() {
            break;
        }
    }
    assert_eq!(
        whole_fed.is_ok(),
        split_fed.is_ok(),
        "the split changed the outcome"
    );
    assert_eq!(whole.usage(), split.usage(), "the split changed the usage");
    assert_eq!(whole.is_complete(), split.is_complete());
    let _ = whole.finish();
    let _ = split.finish();
}
