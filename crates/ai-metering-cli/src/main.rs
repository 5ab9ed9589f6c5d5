//! The `ai-metering` command line. See the crate README for every command and setting.

mod config;
mod error;

fn main() {}
