//! Command-line options of the load target.

use ai_metering_tower::HeaderStyle;
use clap::{Parser, ValueEnum};

/// Which store sits behind the layer, or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// No layer: the bare app.
    Bare,
    /// `QuotaLayer` over `MemoryStore`.
    Memory,
    /// `QuotaLayer` over `SeaOrmStore` on an SQLite file.
    Sqlite,
    /// `QuotaLayer` over `SeaOrmStore` on PostgreSQL.
    Postgres,
    /// No layer: the same writes by hand with sqlx on an SQLite file (the floor).
    RawSqlite,
    /// No layer: the same writes by hand with sqlx on PostgreSQL (the floor).
    RawPostgres,
}

/// The quota headers the layer adds (`HeaderStyle` as a command-line value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Headers {
    /// The `X-Remaining-*` headers and the IETF fields (the layer's default).
    Both,
    /// The `X-Remaining-*` headers.
    Original,
    /// The IETF `RateLimit-Policy` / `RateLimit` fields.
    Ietf,
    /// No quota headers.
    None,
}

impl From<Headers> for HeaderStyle {
    fn from(headers: Headers) -> Self {
        match headers {
            Headers::Both => HeaderStyle::Both,
            Headers::Original => HeaderStyle::Original,
            Headers::Ietf => HeaderStyle::Ietf,
            Headers::None => HeaderStyle::None,
        }
    }
}

/// Serves the load app on 127.0.0.1 until Ctrl-C or SIGTERM.
///
/// ```
/// use ai_metering_bench::{Options, StoreKind};
/// use clap::Parser;
///
/// let o = Options::try_parse_from(["load_target", "--store", "memory", "--port", "4000"]).unwrap();
/// assert_eq!((o.store, o.port), (StoreKind::Memory, 4000));
/// assert!(Options::try_parse_from(["load_target", "--store", "redis"]).is_err());
/// assert!(Options::try_parse_from(["load_target", "--store", "sqlite"]).is_err(), "needs --url");
/// ```
#[derive(Debug, Clone, Parser)]
#[command(name = "load_target", version, about)]
pub struct Options {
    /// The store behind the layer.
    #[arg(long, value_enum, default_value_t = StoreKind::Bare)]
    pub store: StoreKind,
    /// The port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// The database URL (SQLite and PostgreSQL).
    #[arg(long, required_if_eq_any = [
        ("store", "sqlite"), ("store", "postgres"), ("store", "raw-sqlite"), ("store", "raw-postgres"),
    ])]
    pub url: Option<String>,
    /// The billable every request is charged to (with `--billables N`, the prefix of N
    /// billables `NAME-0` .. `NAME-{N-1}`, charged in turn).
    #[arg(long, default_value = "load")]
    pub billable: String,
    /// How many billables the requests are spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub billables: u32,
    /// The plan's token limit (the default is never reached by a load run).
    #[arg(long, default_value_t = 1_000_000_000_000_000)]
    pub limit: u64,
    /// Tokens the layer reserves per `POST /chat`.
    #[arg(long, default_value_t = 0)]
    pub estimate: u64,
    /// Input and output tokens `POST /chat` records, as `IN,OUT`.
    #[arg(long, value_parser = parse_usage, default_value = "60,40")]
    pub usage: (u64, u64),
    /// Limit-check cache TTL in milliseconds (0 turns the cache off).
    #[arg(long, default_value_t = 3_600_000)]
    pub cache_ms: i64,
    /// The quota headers the layer adds.
    #[arg(long, value_enum, default_value_t = Headers::Both)]
    pub headers: Headers,
    /// Create the tables, plan and subscription before serving (the memory store is always
    /// set up: its data lives in the process).
    #[arg(long)]
    pub setup: bool,
    /// Set up (as `--setup`) and exit instead of serving.
    #[arg(long)]
    pub setup_only: bool,
}

impl Options {
    /// The billables' ids: `--billable` alone, or `NAME-0` .. `NAME-{N-1}`.
    pub fn billables(&self) -> Vec<String> {
        if self.billables <= 1 {
            return vec![self.billable.clone()];
        }
        (0..self.billables)
            .map(|i| format!("{}-{i}", self.billable))
            .collect()
    }

    /// Whether to create the tables, plan and subscription.
    pub fn sets_up(&self) -> bool {
        self.setup || self.setup_only
    }
}

fn parse_usage(value: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{value:?} is not IN,OUT (two token counts)");
    let (input, output) = value.split_once(',').ok_or_else(bad)?;
    Ok((
        input.trim().parse().map_err(|_| bad())?,
        output.trim().parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn usage_is_two_counts() {
        assert_eq!(parse_usage("60,40"), Ok((60, 40)));
        assert!(parse_usage("60").is_err());
        assert!(parse_usage("a,1").is_err());
        Options::command().debug_assert();
    }
}
