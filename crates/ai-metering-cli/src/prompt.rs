//! Confirmation of destructive commands, and progress bars for long ones.

use std::io::{BufRead, IsTerminal};

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{CliError, CliResult};
use crate::output::prompt;

/// Asks `question` unless `yes` was given. Without a terminal on stdin there is nobody to
/// ask, so the command is refused with a message that says to pass `--yes` (silently taking
/// "no" would make a scheduled run exit 0 without doing anything).
///
/// # Errors
/// When stdin is not a terminal and `yes` is false.
pub fn confirm(question: &str, yes: bool) -> CliResult<bool> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::failure(format!(
            "{question} Refusing without confirmation: stdin is not a terminal. Pass --yes to confirm."
        )));
    }
    prompt(&format!("{question} [y/N] "))?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A progress bar of `len` steps on stderr, hidden when stderr is not a terminal.
pub fn progress(len: u64, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40.cyan/blue}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_confirms() {
        assert!(is_yes("y\n"));
        assert!(is_yes(" YES "));
        assert!(!is_yes("\n"));
        assert!(!is_yes("n"));
        assert!(!is_yes("yep"));
    }

    #[test]
    fn yes_flag_confirms_without_asking() {
        assert!(confirm("Delete?", true).unwrap());
    }
}
