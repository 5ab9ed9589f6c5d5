//! Reading usage from provider responses: a Chat Completions body (as bytes and as an
//! already-parsed value) and an Anthropic stream fed in network-sized chunks.

#![allow(missing_docs)] // criterion's macros generate undocumented items
#![allow(clippy::expect_used)] // benchmark setup: failing fast is the point

use std::hint::black_box;

use ai_metering_core::provider::{
    Provider, UsageAccumulator, extract_usage, extract_usage_from_slice,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHAT_BODY: &str = r#"{
  "id": "chatcmpl-bench", "object": "chat.completion", "created": 1760000000, "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
    "content": "A short answer of a few sentences, as a typical chat completion returns it. It is long enough to make parsing realistic without dominating the measurement."}}],
  "usage": {"prompt_tokens": 1200, "completion_tokens": 350, "total_tokens": 1550,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "system_fingerprint": "fp_bench"
}"#;

/// An Anthropic Messages stream: start, one content block with `deltas` text deltas, the
/// final `message_delta` with the usage totals, and `message_stop`.
fn anthropic_stream(deltas: usize) -> Vec<u8> {
    let mut s = String::new();
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":1800,\"output_tokens\":1}}}\n\n");
    s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for i in 0..deltas {
        s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{i} \"}}}}\n\n"));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":180}}\n\n");
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

fn chat(c: &mut Criterion) {
    let value: serde_json::Value = serde_json::from_str(CHAT_BODY).expect("valid JSON");
    let mut group = c.benchmark_group("extract_chat");
    group.throughput(Throughput::Bytes(CHAT_BODY.len() as u64));
    group.bench_function("from_bytes", |b| {
        b.iter(|| extract_usage_from_slice(Provider::OpenAi, black_box(CHAT_BODY.as_bytes())))
    });
    group.bench_function("from_value", |b| {
        b.iter(|| extract_usage(Provider::OpenAi, black_box(&value)))
    });
    group.finish();
}

fn stream(c: &mut Criterion) {
    let bytes = anthropic_stream(100);
    let mut group = c.benchmark_group("anthropic_stream_100_deltas");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    for chunk in [64_usize, 1024] {
        group.bench_function(format!("chunks_of_{chunk}"), |b| {
            b.iter(|| {
                let mut acc = UsageAccumulator::new(Provider::Anthropic);
                for part in black_box(&bytes).chunks(chunk) {
                    acc.push_bytes(part).expect("a valid stream");
                }
                acc.finish().expect("final usage")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, chat, stream);
criterion_main!(benches);
