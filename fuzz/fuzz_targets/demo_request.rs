//! Arbitrary requests to the demo's chat endpoint: an `Authorization` value, then a body
//! (needs `--features demo`).
//!
//! The body is `ai_metering_fuzzing::demo_request`, which `cargo test` also runs on this target's
//! seeds and past crash inputs (crates/ai-metering-fuzzing/tests/replay.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ai_metering_fuzzing::demo_request(data));
