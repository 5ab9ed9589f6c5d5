//! Arbitrary text as a price catalog and period settings.
//!
//! The body is `ai_metering_fuzzing::config_parsing`, which `cargo test` also runs on this target's
//! seeds and past crash inputs (crates/ai-metering-fuzzing/tests/replay.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ai_metering_fuzzing::config_parsing(data));
