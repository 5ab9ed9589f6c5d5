//! Output for people (tables, colour on a terminal) and for scripts (JSON, CSV).
//!
//! In JSON and CSV formats stdout carries only the data; notes and warnings go to stderr.
//! Colour is used only when the stream is a terminal and `NO_COLOR` is not set.

use std::fmt;
use std::io::{self, IsTerminal, Write};

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
            emit(format_args!("{}", style(text).bold()));
        }
    }

    /// A plain line (human format only; stderr otherwise).
    pub fn line(&self, text: &str) {
        if self.is_table() {
            emit(format_args!("{text}"));
        } else {
            eprintln!("{text}");
        }
    }

    /// A success line, green on a terminal.
    pub fn success(&self, text: &str) {
        if self.is_table() {
            emit(format_args!("{}", style(text).green()));
        } else {
            eprintln!("{}", style(text).for_stderr().green());
        }
    }

    /// A warning, yellow on a terminal.
    pub fn warn(&self, text: &str) {
        if self.is_table() {
            emit(format_args!("{}", style(text).yellow()));
        } else {
            eprintln!("{}", style(text).for_stderr().yellow());
        }
    }

    /// An amount as shown in this format: exact in CSV (for scripts), in the currency's
    /// minor units otherwise (see [`money`]).
    pub fn money(&self, amount: Decimal, currency: Currency) -> String {
        match self.format {
            Format::Csv => amount.normalize().to_string(),
            _ => money(amount, currency),
        }
    }

    /// Pretty JSON on stdout.
    pub fn json(&self, value: &impl Serialize) -> CliResult {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failure(format!("cannot write JSON: {e}")))?;
        emit(format_args!("{text}"));
        Ok(())
    }

    /// A table (human format) or CSV rows with a header (CSV format).
    pub fn table(&self, columns: &[Column], rows: &[Vec<String>]) -> CliResult {
        match self.format {
            Format::Csv => write_csv(columns, rows),
            _ => {
                emit(format_args!(
                    "{}",
                    render_table(columns, rows, std::io::stdout().is_terminal())
                ));
                Ok(())
            }
        }
    }
}

/// Writes one line to stdout, like `println!`, except that a reader that went away
/// (`ai-metering report | head`) ends the process quietly instead of panicking.
pub fn emit(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        drop(out);
        exit_on_write_error(&e);
    }
}

/// Ends the process after stdout failed: quietly with success when the reader closed the
/// pipe (as `head` does), with an error message and exit 1 otherwise.
pub fn exit_on_write_error(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(io::stderr(), "error: cannot write the output: {e}");
    std::process::exit(i32::from(crate::error::EXIT_FAILURE));
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
    let fail = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => CliError::from(e),
        other => CliError::failure(format!("cannot write CSV: {other:?}")),
    };
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

/// An amount for people, in the currency's minor units (2 decimals for USD, 0 for JPY) like
/// the dashboard, rounded half away from zero for display only; `$` for US dollars, the code
/// otherwise. A non-zero amount that rounds to zero reads `< $0.01`, never `$0.00`.
pub fn money(amount: Decimal, currency: Currency) -> String {
    let dp = currency.minor_unit_digits();
    let mut shown = amount.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    let tiny = shown.is_zero() && !amount.is_zero();
    if tiny {
        shown = Decimal::new(1, dp);
    }
    shown.rescale(dp);
    let negative = amount.is_sign_negative() && !amount.is_zero();
    let abs = shown.abs();
    let sign = if negative { "-" } else { "" };
    let less = if tiny { "< " } else { "" };
    match currency.as_str() {
        "USD" => format!("{less}{sign}${abs}"),
        code => format!("{less}{sign}{abs} {code}"),
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
    fn money_shows_the_currencys_minor_units_and_rounds_only_for_display() {
        assert_eq!(money(Decimal::new(1234, 2), Currency::USD), "$12.34");
        assert_eq!(money(Decimal::new(125, 3), Currency::USD), "$0.13");
        assert_eq!(money(Decimal::new(45, 5), Currency::USD), "< $0.01");
        assert_eq!(money(Decimal::new(-45, 5), Currency::USD), "< -$0.01");
        assert_eq!(money(Decimal::ZERO, Currency::USD), "$0.00");
        assert_eq!(money(Decimal::from(12), Currency::EUR), "12.00 EUR");
        assert_eq!(money(Decimal::new(-15, 1), Currency::USD), "-$1.50");
        let jpy = Currency::new("JPY").unwrap();
        assert_eq!(money(Decimal::new(12_345, 1), jpy), "1235 JPY");
        let bhd = Currency::new("BHD").unwrap();
        assert_eq!(money(Decimal::from(2), bhd), "2.000 BHD");
    }

    #[test]
    fn csv_keeps_exact_amounts() {
        let csv = Output::new(Format::Csv);
        assert_eq!(csv.money(Decimal::new(45, 5), Currency::USD), "0.00045");
        let table = Output::new(Format::Table);
        assert_eq!(table.money(Decimal::new(45, 5), Currency::USD), "< $0.01");
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
