//! [`CliError`]: what a command reports when it fails, and the process exit code for it.

use std::fmt;

/// Exit code for a failed command (errors found, not found, refused, store failure).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage: invalid arguments or invalid configuration (clap uses 2 too).
pub const EXIT_USAGE: u8 = 2;

/// A command failure: a message for people and the exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// A failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }

    /// Bad usage or configuration (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }

    /// Stdout was closed by its reader (`| head`): the command ends quietly, with success.
    pub fn broken_pipe() -> Self {
        Self {
            message: String::new(),
            code: 0,
        }
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// True when there is nothing to tell (a closed pipe).
    pub fn is_quiet(&self) -> bool {
        self.message.is_empty() && self.code == 0
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<ai_metering_core::Error> for CliError {
    fn from(e: ai_metering_core::Error) -> Self {
        Self::failure(e.to_string())
    }
}

impl From<ai_metering_core::store::StoreError> for CliError {
    fn from(e: ai_metering_core::store::StoreError) -> Self {
        Self::failure(format!("database error: {e}"))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Self::broken_pipe();
        }
        Self::failure(format!("I/O error: {e}"))
    }
}

/// Shorthand for command results.
pub type CliResult<T = ()> = Result<T, CliError>;
