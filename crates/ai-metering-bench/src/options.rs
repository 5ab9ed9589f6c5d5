//! Command-line options of the load target.

use std::fmt;

use ai_metering_tower::HeaderStyle;

/// Which store sits behind the layer, or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// No layer: the bare app.
    Bare,
    /// `QuotaLayer` over `MemoryStore`.
    Memory,
    /// `QuotaLayer` over `SeaOrmStore` on an SQLite file.
    Sqlite,
    /// `QuotaLayer` over `SeaOrmStore` on PostgreSQL.
    Postgres,
}

/// Everything the load target reads from its arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// The store (`--store bare|memory|sqlite|postgres`).
    pub store: StoreKind,
    /// The port on 127.0.0.1 (`--port`, default 3000).
    pub port: u16,
    /// The database URL for SQLite and PostgreSQL (`--url`).
    pub url: Option<String>,
    /// The billable every request is charged to (`--billable`, default `load`).
    pub billable: String,
    /// The plan's token limit (`--limit`, default 10^15: never reached by a load run).
    pub limit: u64,
    /// Tokens the layer reserves per `POST /chat` (`--estimate`, default 0).
    pub estimate: u64,
    /// Input and output tokens `POST /chat` records (`--usage IN,OUT`, default 60,40).
    pub usage: (u64, u64),
    /// Limit-check cache TTL in milliseconds (`--cache-ms`, default 3 600 000; 0 = off).
    pub cache_ms: i64,
    /// The quota headers the layer adds (`--headers both|original|ietf|none`, default
    /// both, the layer's default).
    pub headers: HeaderStyle,
    /// Create the tables, plan and subscription before serving (`--setup`); without it for
    /// the memory store only, whose data lives in the process.
    pub setup: bool,
    /// Exit after the setup instead of serving (`--setup-only`).
    pub setup_only: bool,
}

/// A command-line mistake.
#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Options {
    /// Parses `--key value` pairs and flags.
    ///
    /// ```
    /// use ai_metering_bench::{Options, StoreKind};
    /// let o = Options::parse(["--store", "memory", "--port", "4000"].map(String::from)).unwrap();
    /// assert_eq!((o.store, o.port), (StoreKind::Memory, 4000));
    /// assert!(Options::parse(["--store", "redis"].map(String::from)).is_err());
    /// ```
    ///
    /// # Errors
    /// A [`UsageError`] naming the argument.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, UsageError> {
        let mut o = Options {
            store: StoreKind::Bare,
            port: 3000,
            url: None,
            billable: "load".to_owned(),
            limit: 1_000_000_000_000_000,
            estimate: 0,
            usage: (60, 40),
            cache_ms: 3_600_000,
            headers: HeaderStyle::Both,
            setup: false,
            setup_only: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--setup" => o.setup = true,
                "--setup-only" => {
                    o.setup = true;
                    o.setup_only = true;
                }
                key => {
                    let value = args
                        .next()
                        .ok_or_else(|| UsageError(format!("{key} needs a value")))?;
                    let bad = |what: &str| UsageError(format!("{key} {value:?}: {what}"));
                    match key {
                        "--store" => {
                            o.store = match value.as_str() {
                                "bare" => StoreKind::Bare,
                                "memory" => StoreKind::Memory,
                                "sqlite" => StoreKind::Sqlite,
                                "postgres" => StoreKind::Postgres,
                                _ => return Err(bad("one of bare, memory, sqlite, postgres")),
                            }
                        }
                        "--port" => o.port = value.parse().map_err(|_| bad("a port"))?,
                        "--url" => o.url = Some(value),
                        "--billable" => o.billable = value,
                        "--limit" => o.limit = value.parse().map_err(|_| bad("a token count"))?,
                        "--estimate" => {
                            o.estimate = value.parse().map_err(|_| bad("a token count"))?
                        }
                        "--usage" => {
                            let (i, out) = value.split_once(',').ok_or_else(|| bad("IN,OUT"))?;
                            o.usage = (
                                i.parse().map_err(|_| bad("IN,OUT"))?,
                                out.parse().map_err(|_| bad("IN,OUT"))?,
                            );
                        }
                        "--cache-ms" => {
                            o.cache_ms = value.parse().map_err(|_| bad("milliseconds"))?
                        }
                        "--headers" => {
                            o.headers = match value.as_str() {
                                "both" => HeaderStyle::Both,
                                "original" => HeaderStyle::Original,
                                "ietf" => HeaderStyle::Ietf,
                                "none" => HeaderStyle::None,
                                _ => return Err(bad("one of both, original, ietf, none")),
                            }
                        }
                        _ => return Err(UsageError(format!("unknown argument {key}"))),
                    }
                }
            }
        }
        if matches!(o.store, StoreKind::Sqlite | StoreKind::Postgres) && o.url.is_none() {
            return Err(UsageError(
                "--url is needed for sqlite and postgres".to_owned(),
            ));
        }
        Ok(o)
    }
}
