//! Arbitrary requests to the gateway: an `Authorization` value, then a body (needs
//! `--features gateway`).
//!
//! The body is `ai_metering_fuzzing::gateway_request`, which `cargo test` also runs on this
//! target's seeds and past crash inputs (crates/ai-metering-fuzzing/tests/replay.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ai_metering_fuzzing::gateway_request(data));
