//! The `ai-metering` command line is a binary; this library holds the parts of it that are
//! pure functions over bytes, so that the fuzz targets and their seed replay
//! (`ai-metering-fuzzing`) run the very code the binary runs. It is not a stable API.

pub mod demo_request;

/// The README: any Rust example added to it is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
