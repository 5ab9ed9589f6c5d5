//! The bodies of the fuzz targets in `fuzz/`, as plain functions: each takes the fuzzer's
//! bytes and panics only when it finds a bug. The cargo-fuzz binaries call them, and this
//! crate's test `tests/replay.rs` calls them on every committed seed
//! (`fuzz/seeds/<target>/`) and every past crash input (`fuzz/regressions/<target>/`), so
//! `cargo test` keeps them building and passing without a fuzzer.
//!
//! ```
//! for (name, body) in ai_metering_fuzzing::TARGETS {
//!     body(b"");
//!     body(br#"{"model":"m","messages":[]}"#);
//! #   let _ = name;
//! }
//! ```

mod config_parsing;
#[cfg(feature = "gateway")]
mod gateway_request;
mod sse_accumulator;
mod usage_extraction;
#[cfg(feature = "webhook")]
mod webhook_payload;

pub use config_parsing::config_parsing;
#[cfg(feature = "gateway")]
pub use gateway_request::gateway_request;
pub use sse_accumulator::sse_accumulator;
pub use usage_extraction::usage_extraction;
#[cfg(feature = "webhook")]
pub use webhook_payload::webhook_payload;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target built with the enabled features, by its name in `fuzz/Cargo.toml` (which is
/// also its folder under `fuzz/seeds/` and `fuzz/regressions/`).
pub const TARGETS: &[(&str, Body)] = &[
    ("usage_extraction", usage_extraction),
    ("sse_accumulator", sse_accumulator),
    ("config_parsing", config_parsing),
    #[cfg(feature = "webhook")]
    ("webhook_payload", webhook_payload),
    #[cfg(feature = "gateway")]
    ("gateway_request", gateway_request),
];
