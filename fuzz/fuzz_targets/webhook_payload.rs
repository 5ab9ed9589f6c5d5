//! Arbitrary Stripe webhook deliveries (needs `--features webhook`).
//!
//! The body is `ai_metering_fuzzing::webhook_payload`, which `cargo test` also runs on this target's
//! seeds and past crash inputs (crates/ai-metering-fuzzing/tests/replay.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ai_metering_fuzzing::webhook_payload(data));
