//! The `ai-metering` command line is a binary; this library only compiles the Rust examples
//! of its README as doctests. It is not a stable API.

/// The README: any Rust example added to it is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
