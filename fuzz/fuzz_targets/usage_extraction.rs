//! Arbitrary bytes as a provider response body.
//!
//! The body is `ai_metering_fuzzing::usage_extraction`, which `cargo test` also runs on this target's
//! seeds and past crash inputs (crates/ai-metering-fuzzing/tests/replay.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ai_metering_fuzzing::usage_extraction(data));
