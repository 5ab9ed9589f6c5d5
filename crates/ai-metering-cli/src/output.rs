//! Output for people (tables, colour on a terminal) and for scripts (JSON, CSV).
//!
//! In JSON and CSV formats stdout carries only the data; notes and warnings go to stderr.
//! Colour is used only when the stream is a terminal and `NO_COLOR` is not set.

use std::io::{IsTerminal, Write};

use ai_metering_core::Currency;
use comfy_table::{Cell, CellAlignment, Table, presets};
use console::style;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::cli::Format;
use crate::error::{CliError, CliResult};

/// Turns colour on for the streams that are terminals (and only when `NO_COLOR` is unset).
pub fn init_colors() {
    let allowed = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    console::set_colors_enabled(allowed && std::io::stdout().is_terminal());
    console::set_colors_enabled_stderr(allowed && std::io::stderr().is_terminal());
}

/// One table column: its header and whether it holds numbers (right-aligned).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Right-align the cells.
    pub numeric: bool,
}

/// A text column.
pub const fn text(header: &'static str) -> Column {
    Column {
        header,
        numeric: false,
    }
}

/// A numeric column.
pub const fn num(header: &'static str) -> Column {
    Column {
        header,
        numeric: true,
    }
}

/// Writes a command's output in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: Format,
}

impl Output {
    /// Output in `format`.
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True for the human format.
    pub fn is_table(&self) -> bool {
        self.format == Format::Table
    }

    /// Fails unless the format is table or JSON (commands without tabular data).
    pub fn no_csv(&self, command: &str) -> CliResult {
        if self.format == Format::Csv {
            return Err(CliError::usage(format!(
                "`{command}` has no tabular output: use --format table or --format json"
            )));
        }
        Ok(())
    }

    /// A heading line (human format only).
    pub fn heading(&self, text: &str) {
        if self.is_table() {
            println!("{}", style(text).bold());
        }
    }

    /// A plain line (human format only; stderr otherwise).
    pub fn line(&self, text: &str) {
        if self.is_table() {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    }

    /// A success line, green on a terminal.
    pub fn success(&self, text: &str) {
        if self.is_table() {
            println!("{}", style(text).green());
        } else {
            eprintln!("{}", style(text).for_stderr().green());
        }
    }

    /// A warning, yellow on a terminal.
    pub fn warn(&self, text: &str) {
        if self.is_table() {
            println!("{}", style(text).yellow());
        } else {
            eprintln!("{}", style(text).for_stderr().yellow());
        }
    }

    /// Pretty JSON on stdout.
    pub fn json(&self, value: &impl Serialize) -> CliResult {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failure(format!("cannot write JSON: {e}")))?;
        println!("{text}");
        Ok(())
    }

    /// A table (human format) or CSV rows with a header (CSV format).
    pub fn table(&self, columns: &[Column], rows: &[Vec<String>]) -> CliResult {
        match self.format {
            Format::Csv => write_csv(columns, rows),
            _ => {
                println!(
                    "{}",
                    render_table(columns, rows, std::io::stdout().is_terminal())
                );
                Ok(())
            }
        }
    }
}

/// Renders a table: UTF-8 borders on a terminal, ASCII otherwise.
pub fn render_table(columns: &[Column], rows: &[Vec<String>], terminal: bool) -> String {
    let mut table = Table::new();
    table.load_style(if terminal {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_FULL_CONDENSED
    });
    table.set_header(columns.iter().map(|c| Cell::new(c.header)));
    for row in rows {
        table.add_row(row.iter().zip(columns).map(|(v, c)| {
            let cell = Cell::new(v);
            if c.numeric {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    table.to_string()
}

fn write_csv(columns: &[Column], rows: &[Vec<String>]) -> CliResult {
    let stdout = std::io::stdout();
    let mut w = csv::Writer::from_writer(stdout.lock());
    let fail = |e: csv::Error| CliError::failure(format!("cannot write CSV: {e}"));
    w.write_record(columns.iter().map(|c| c.header))
        .map_err(fail)?;
    for row in rows {
        w.write_record(row).map_err(fail)?;
    }
    w.flush()?;
    Ok(())
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// An amount for people: six decimals (AI calls cost fractions of a cent), rounded half
/// away from zero for display only; `$` for US dollars, the code otherwise.
pub fn money(amount: Decimal, currency: Currency) -> String {
    let shown = amount.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{shown:.6}");
    match currency.as_str() {
        "USD" => match text.strip_prefix('-') {
            Some(abs) => format!("-${abs}"),
            None => format!("${text}"),
        },
        code => format!("{text} {code}"),
    }
}

/// Writes to stderr and flushes (prompts).
pub fn prompt(text: &str) -> CliResult {
    let mut err = std::io::stderr();
    write!(err, "{text}")?;
    err.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn money_keeps_six_decimals_and_rounds_only_for_display() {
        assert_eq!(money(Decimal::new(45, 5), Currency::USD), "$0.000450");
        assert_eq!(money(Decimal::new(5625, 7), Currency::USD), "$0.000563");
        assert_eq!(money(Decimal::from(12), Currency::EUR), "12.000000 EUR");
        assert_eq!(money(Decimal::new(-15, 1), Currency::USD), "-$1.500000");
    }

    #[test]
    fn tables_align_numbers_right_and_use_ascii_off_terminal() {
        let t = render_table(
            &[text("Model"), num("Tokens")],
            &[
                vec!["gpt-4o".into(), "1,000".into()],
                vec!["x".into(), "5".into()],
            ],
            false,
        );
        assert!(t.contains("| gpt-4o |  1,000 |"), "{t}");
        assert!(t.contains("| x      |      5 |"), "{t}");
        assert!(t.is_ascii());
    }
}
