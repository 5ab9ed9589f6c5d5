//! Usage extraction over recorded-shape provider responses and streams.
//!
//! Two sets of files are checked, each against a table of hand-computed expectations:
//! - the project's own fixtures in `tests/fixtures/providers/`;
//! - the shared reference recordings in `../shared/fixtures/providers/` (next to the
//!   repository): skipped with a note when that folder is missing, a failure under CI.
//!
//! Every file must be in its table (a new fixture without expectations fails the test), good
//! files must give exactly the expected counts, and `bad_*` files a typed error. Streams
//! (`.sse`) are fed as raw bytes in several splittings, which must all agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use ai_metering_core::provider::{Provider, UsageAccumulator, extract_usage_from_slice};
use ai_metering_core::{Error, TokenCounts, TokenUsage};

/// What a fixture must produce.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Usage(TokenCounts),
    NoUsage,
    Malformed,
    Invalid,
}

use Expect::{Invalid, Malformed, NoUsage};

/// Expected counts: input, cached, cache write, long cache write, output, reasoning.
const fn usage(
    input: u64,
    cached_input: u64,
    cache_write: u64,
    cache_write_long: u64,
    output: u64,
    reasoning: u64,
) -> Expect {
    Expect::Usage(TokenCounts {
        input,
        cached_input,
        cache_write,
        cache_write_long,
        output,
        reasoning,
    })
}

use Provider::{Anthropic, Gemini, OpenAi};

/// The project's own fixtures.
const OWN: &[(&str, Provider, Expect)] = &[
    // OpenAI Chat Completions: prompt includes cached, completion includes reasoning.
    (
        "openai_chat_cached_reasoning.json",
        OpenAi,
        usage(3312, 2944, 0, 0, 1874, 1536),
    ),
    (
        "openai_chat_plain_no_details.json",
        OpenAi,
        usage(58, 0, 0, 0, 112, 0),
    ),
    (
        "openai_chat_null_detail_fields.json",
        OpenAi,
        usage(240, 0, 0, 0, 31, 0),
    ),
    (
        "openai_chat_cache_write.json",
        OpenAi,
        usage(6150, 0, 6016, 0, 12, 0),
    ),
    // OpenAI Responses API.
    (
        "openai_responses_cached_reasoning.json",
        OpenAi,
        usage(5230, 4864, 0, 0, 1210, 1024),
    ),
    (
        "openai_responses_cache_read_and_write.json",
        OpenAi,
        usage(6150, 1024, 5000, 0, 88, 64),
    ),
    // Anthropic: input = input_tokens + cache reads + cache writes.
    (
        "anthropic_cache_read.json",
        Anthropic,
        usage(3941, 3920, 0, 0, 310, 0),
    ),
    (
        "anthropic_cache_write.json",
        Anthropic,
        usage(2822, 0, 2805, 0, 144, 0),
    ),
    (
        "anthropic_cache_mixed_ttl.json",
        Anthropic,
        usage(5305, 1200, 4096, 3072, 512, 0),
    ),
    // Gemini: + toolUsePromptTokenCount on input, + thoughtsTokenCount on output.
    ("gemini_plain.json", Gemini, usage(14, 0, 0, 0, 96, 0)),
    (
        "gemini_thoughts.json",
        Gemini,
        usage(26, 0, 0, 0, 2621, 2211),
    ),
    (
        "gemini_cached_thoughts.json",
        Gemini,
        usage(9120, 8704, 0, 0, 445, 388),
    ),
    (
        "gemini_tool_use_prompt.json",
        Gemini,
        usage(1453, 0, 0, 0, 265, 190),
    ),
    (
        "gemini_max_tokens_no_content.json",
        Gemini,
        usage(41, 0, 0, 0, 1023, 1023),
    ),
    (
        "gemini_blocked_prompt_no_candidates.json",
        Gemini,
        usage(19, 0, 0, 0, 0, 0),
    ),
    // Streams.
    (
        "openai_chat_stream_include_usage.sse",
        OpenAi,
        usage(37, 0, 0, 0, 5, 0),
    ),
    (
        "openai_chat_stream_azure_prefilter.sse",
        OpenAi,
        usage(1290, 1152, 0, 0, 233, 192),
    ),
    (
        "openai_responses_stream.sse",
        OpenAi,
        usage(812, 768, 0, 0, 97, 64),
    ),
    (
        "openai_responses_stream_incomplete.sse",
        OpenAi,
        usage(812, 0, 0, 0, 128, 128),
    ),
    (
        "anthropic_stream_output_delta.sse",
        Anthropic,
        usage(402, 0, 0, 0, 58, 0),
    ),
    // The delta revises input and cache counts: 14 + 5120 + 2390, overwriting, not adding.
    (
        "anthropic_stream_cumulative_delta.sse",
        Anthropic,
        usage(7524, 5120, 2390, 0, 411, 0),
    ),
    // The last chunk's figures, lower than earlier ones: 498 in, 51 + 60 out.
    (
        "gemini_stream_nonmonotonic.sse",
        Gemini,
        usage(498, 0, 0, 0, 111, 60),
    ),
    // Cut-off and usage-less streams.
    (
        "bad_openai_chat_stream_cut_before_usage.sse",
        OpenAi,
        NoUsage,
    ),
    (
        "bad_openai_chat_stream_without_include_usage.sse",
        OpenAi,
        NoUsage,
    ),
    ("bad_openai_chat_stream_invalid_json.sse", OpenAi, Malformed),
    ("bad_openai_responses_stream_cut.sse", OpenAi, NoUsage),
    ("bad_anthropic_stream_without_delta.sse", Anthropic, NoUsage),
    ("bad_anthropic_stream_cut_mid_event.sse", Anthropic, NoUsage),
    (
        "bad_gemini_stream_without_finish_reason.sse",
        Gemini,
        NoUsage,
    ),
    // Bad bodies.
    ("bad_openai_negative_count.json", OpenAi, Malformed),
    ("bad_openai_fractional_count.json", OpenAi, Malformed),
    ("bad_openai_float_integer_count.json", OpenAi, Malformed),
    ("bad_openai_string_count.json", OpenAi, Malformed),
    ("bad_openai_absurd_count.json", OpenAi, Malformed),
    ("bad_openai_cached_exceeds_prompt.json", OpenAi, Invalid),
    (
        "bad_openai_reasoning_exceeds_completion.json",
        OpenAi,
        Invalid,
    ),
    ("bad_openai_no_usage.json", OpenAi, NoUsage),
    ("bad_openai_usage_null.json", OpenAi, NoUsage),
    ("bad_openai_not_an_object.json", OpenAi, NoUsage),
    (
        "bad_openai_responses_missing_output.json",
        OpenAi,
        Malformed,
    ),
    (
        "bad_anthropic_ttl_split_mismatch.json",
        Anthropic,
        Malformed,
    ),
    ("bad_anthropic_truncated.json", Anthropic, Malformed),
    (
        "bad_anthropic_missing_output_tokens.json",
        Anthropic,
        Malformed,
    ),
    ("bad_gemini_cached_exceeds_prompt.json", Gemini, Invalid),
    ("bad_gemini_no_usage_metadata.json", Gemini, NoUsage),
];

/// The shared reference recordings, with counts computed by hand from each file.
const SHARED: &[(&str, Provider, Expect)] = &[
    // 2048 + 1800 read + 248 written (148 for 5 minutes, 100 for 1 hour).
    (
        "anthropic_messages_cache_mixed_ttl.json",
        Anthropic,
        usage(4096, 1800, 248, 100, 503, 0),
    ),
    (
        "anthropic_messages_cache_read.json",
        Anthropic,
        usage(1167, 1163, 0, 0, 202, 0),
    ),
    (
        "anthropic_messages_cache_write.json",
        Anthropic,
        usage(1167, 0, 1163, 0, 187, 0),
    ),
    // message_start 4 + 1165 read; message_delta brings output to 221.
    (
        "anthropic_messages_stream_cache_read.sse",
        Anthropic,
        usage(1169, 1165, 0, 0, 221, 0),
    ),
    // message_delta revises everything: 6 + 6289 read + 3337 written, 198 out; the 5m/1h
    // split of message_start (3068 / 0) is stale, its 0 one-hour writes are kept.
    (
        "anthropic_messages_stream_cumulative_delta.sse",
        Anthropic,
        usage(9632, 6289, 3337, 0, 198, 0),
    ),
    (
        "anthropic_messages_stream_sdk.sse",
        Anthropic,
        usage(135, 0, 0, 0, 10, 0),
    ),
    ("bad_anthropic_string_count.json", Anthropic, Malformed),
    ("bad_cached_exceeds_prompt.json", OpenAi, Invalid),
    ("bad_gemini_cached_exceeds_prompt.json", Gemini, Invalid),
    ("bad_negative_count.json", OpenAi, Malformed),
    ("bad_no_usage.json", OpenAi, NoUsage),
    ("bad_responses_stream_truncated.sse", OpenAi, NoUsage),
    ("bad_stream_no_usage.sse", OpenAi, NoUsage),
    ("bad_string_count.json", OpenAi, Malformed),
    ("bad_truncated.json", Anthropic, Malformed),
    // 3520 prompt (3512 cached); 2 candidates + 42 thoughts.
    (
        "gemini_generate_content_cached_thoughts.json",
        Gemini,
        usage(3520, 3512, 0, 0, 44, 42),
    ),
    (
        "gemini_generate_content_max_tokens_no_candidates.json",
        Gemini,
        usage(15, 0, 0, 0, 2, 2),
    ),
    (
        "gemini_generate_content_plain.json",
        Gemini,
        usage(22, 0, 0, 0, 40, 0),
    ),
    (
        "gemini_generate_content_thoughts.json",
        Gemini,
        usage(5, 0, 0, 0, 1807, 1096),
    ),
    // 15 prompt + 288 tool-use prompt; 40 candidates + 257 thoughts.
    (
        "gemini_generate_content_tool_use_prompt.json",
        Gemini,
        usage(303, 0, 0, 0, 297, 257),
    ),
    // Last chunk: 427 prompt + 771 tool-use prompt; 122 candidates + 447 thoughts.
    (
        "gemini_stream_nonmonotonic.sse",
        Gemini,
        usage(1198, 0, 0, 0, 569, 447),
    ),
    (
        "openai_chat_cached_reasoning.json",
        OpenAi,
        usage(1566, 1408, 0, 0, 1518, 576),
    ),
    (
        "openai_chat_explicit_cache_read.json",
        OpenAi,
        usage(4020, 4012, 0, 0, 4, 0),
    ),
    (
        "openai_chat_explicit_cache_write.json",
        OpenAi,
        usage(4020, 0, 4012, 0, 4, 0),
    ),
    ("openai_chat_plain.json", OpenAi, usage(15, 0, 0, 0, 19, 0)),
    (
        "openai_chat_stream_azure_prefilter.sse",
        OpenAi,
        usage(15, 0, 0, 0, 78, 64),
    ),
    (
        "openai_chat_stream_include_usage.sse",
        OpenAi,
        usage(23, 0, 0, 0, 8, 0),
    ),
    (
        "openai_responses_cached_reasoning.json",
        OpenAi,
        usage(3700, 2560, 0, 0, 741, 640),
    ),
    (
        "openai_responses_explicit_cache_write.json",
        OpenAi,
        usage(4020, 0, 4012, 0, 5, 0),
    ),
    (
        "openai_responses_stream.sse",
        OpenAi,
        usage(9463, 8320, 0, 0, 582, 512),
    ),
    (
        "openai_responses_stream_small.sse",
        OpenAi,
        usage(14, 0, 0, 0, 9, 0),
    ),
];

fn own_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers")
}

/// Feeds a stream in chunks of `size` bytes (the whole file for `None`).
fn accumulate(provider: Provider, bytes: &[u8], size: Option<usize>) -> Result<TokenUsage, Error> {
    let mut acc = UsageAccumulator::new(provider);
    for chunk in bytes.chunks(size.unwrap_or(bytes.len().max(1))) {
        acc.push_bytes(chunk)?;
    }
    acc.finish()
}

/// The result for one file, after checking that every chunking of a stream agrees.
fn run(provider: Provider, path: &Path) -> Result<TokenUsage, Error> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "sse") {
        let whole = accumulate(provider, &bytes, None);
        for size in [1, 2, 3, 7, 64, 1000] {
            let split = accumulate(provider, &bytes, Some(size));
            assert_eq!(
                format!("{split:?}"),
                format!("{whole:?}"),
                "{}: chunks of {size} bytes disagree with the whole stream",
                path.display()
            );
        }
        whole
    } else {
        extract_usage_from_slice(provider, &bytes)
    }
}

fn check(name: &str, got: Result<TokenUsage, Error>, expected: Expect) {
    match (expected, got) {
        (Expect::Usage(counts), Ok(usage)) => assert_eq!(usage.counts(), counts, "{name}"),
        (NoUsage, Err(Error::NoUsage { .. }))
        | (Malformed, Err(Error::MalformedResponse { .. }))
        | (Invalid, Err(Error::InvalidUsage(_))) => {}
        (expected, got) => panic!("{name}: expected {expected:?}, got {got:?}"),
    }
}

/// Runs every file of `dir` against `table`; both must list the same files.
fn check_folder(dir: &Path, table: &[(&str, Provider, Expect)]) {
    let on_disk: BTreeSet<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json") || name.ends_with(".sse"))
        .collect();
    let listed: BTreeSet<String> = table.iter().map(|(name, ..)| (*name).to_owned()).collect();
    assert_eq!(
        on_disk,
        listed,
        "{}: files and expectations differ",
        dir.display()
    );
    for (name, provider, expected) in table {
        assert_eq!(
            name.starts_with("bad_"),
            !matches!(expected, Expect::Usage(_)),
            "{name}: only bad_* files may fail"
        );
        check(name, run(*provider, &dir.join(name)), *expected);
    }
}

#[test]
fn own_fixtures_give_the_expected_usage_or_error() {
    check_folder(&own_dir(), OWN);
}

#[test]
fn shared_reference_recordings_give_the_expected_usage_or_error() {
    let Some(dir) = ai_metering_test_env::shared_path(
        "shared_reference_recordings_give_the_expected_usage_or_error",
        "fixtures/providers",
    ) else {
        return;
    };
    check_folder(&dir, SHARED);
}

fn own(name: &str) -> Vec<u8> {
    fs::read(own_dir().join(name)).unwrap()
}

#[test]
fn error_messages_name_the_offending_field() {
    for (name, provider, field) in [
        (
            "bad_openai_negative_count.json",
            OpenAi,
            "usage.completion_tokens is negative",
        ),
        (
            "bad_openai_fractional_count.json",
            OpenAi,
            "usage.prompt_tokens is 40.5",
        ),
        (
            "bad_openai_float_integer_count.json",
            OpenAi,
            "usage.prompt_tokens is 12.0",
        ),
        (
            "bad_openai_string_count.json",
            OpenAi,
            "usage.prompt_tokens is a string",
        ),
        (
            "bad_openai_absurd_count.json",
            OpenAi,
            "usage.completion_tokens is 5000000000",
        ),
        (
            "bad_openai_cached_exceeds_prompt.json",
            OpenAi,
            "usage.prompt_tokens (40)",
        ),
        (
            "bad_openai_responses_missing_output.json",
            OpenAi,
            "usage.output_tokens is missing",
        ),
        (
            "bad_anthropic_ttl_split_mismatch.json",
            Anthropic,
            "cache_creation_input_tokens is 4096",
        ),
        ("bad_anthropic_truncated.json", Anthropic, "not valid JSON"),
        (
            "bad_gemini_cached_exceeds_prompt.json",
            Gemini,
            "cachedContentTokenCount (150)",
        ),
    ] {
        let err = extract_usage_from_slice(provider, &own(name)).unwrap_err();
        assert!(err.to_string().contains(field), "{name}: {err}");
    }
}

#[test]
fn cut_streams_say_what_was_missing() {
    for (name, provider, reason) in [
        (
            "bad_openai_chat_stream_cut_before_usage.sse",
            OpenAi,
            "before its usage chunk",
        ),
        (
            "bad_openai_chat_stream_without_include_usage.sse",
            OpenAi,
            "include_usage",
        ),
        (
            "bad_openai_responses_stream_cut.sse",
            OpenAi,
            "before response.completed",
        ),
        (
            "bad_anthropic_stream_without_delta.sse",
            Anthropic,
            "before message_delta",
        ),
        (
            "bad_anthropic_stream_cut_mid_event.sse",
            Anthropic,
            "unterminated event",
        ),
        (
            "bad_gemini_stream_without_finish_reason.sse",
            Gemini,
            "finishReason",
        ),
    ] {
        let err = accumulate(provider, &own(name), Some(5)).unwrap_err();
        assert!(err.to_string().contains(reason), "{name}: {err}");
    }
}

#[test]
fn figures_so_far_are_visible_but_not_final_before_the_end() {
    // Gemini: the figures go down between chunks; usage() follows them exactly.
    let bytes = own("gemini_stream_nonmonotonic.sse");
    let text = String::from_utf8(bytes).unwrap();
    let mut acc = UsageAccumulator::new(Gemini);
    let mut seen = Vec::new();
    for event in text.split_inclusive("\r\n\r\n") {
        acc.push_bytes(event.as_bytes()).unwrap();
        let u = acc.usage().unwrap();
        seen.push((u.input_tokens(), u.output_tokens(), acc.is_complete()));
    }
    assert_eq!(
        seen,
        [
            (512, 0, false),
            (512, 76, false),
            (498, 104, false),
            (498, 111, true)
        ]
    );
}

#[test]
fn anthropic_stream_usage_before_the_delta_is_only_provisional() {
    let text = String::from_utf8(own("anthropic_stream_cumulative_delta.sse")).unwrap();
    let mut acc = UsageAccumulator::new(Anthropic);
    let (before_delta, delta_and_rest) = text.split_at(text.find("event: message_delta").unwrap());
    acc.push_bytes(before_delta.as_bytes()).unwrap();
    let provisional = acc.usage().unwrap();
    assert_eq!(
        (provisional.input_tokens(), provisional.output_tokens()),
        (11 + 2048, 3)
    );
    assert!(!acc.is_complete());
    acc.push_bytes(delta_and_rest.as_bytes()).unwrap();
    assert!(acc.is_complete());
    assert_eq!(acc.finish().unwrap().input_tokens(), 7524);
}
