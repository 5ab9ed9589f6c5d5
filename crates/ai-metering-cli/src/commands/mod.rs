//! The commands, one file each, and what they share: the opened store and helpers.

pub mod aggregate;
pub mod check;
pub mod cleanup;
pub mod config;
pub mod gdpr;
pub mod keys;
pub mod migrate;
pub mod migrate_plan;
pub mod plans;
pub mod report;
pub mod serve;
pub mod subscribe;
pub mod sync_overages;
pub mod validate;
pub mod wallet;

use std::path::PathBuf;
use std::time::Duration;

use ai_metering_core::pricing::PriceCatalog;
use ai_metering_core::store::{Page, ReportStore, UsageFilter};
use ai_metering_core::{Billable, Metering};
use ai_metering_seaorm::SeaOrmStore;

use crate::config::Config;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// The store the CLI works on.
pub type CliStore = SeaOrmStore;

/// How long connecting to the database may take before a command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What every command gets: the configuration and the output.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The effective configuration.
    pub config: Config,
    /// Where results go.
    pub out: Output,
}

impl Ctx {
    /// Connects to the configured database (without checking its schema).
    ///
    /// # Errors
    /// When the database cannot be reached in [`CONNECT_TIMEOUT`].
    pub async fn connect(&self) -> CliResult<CliStore> {
        connect(&self.config.database_url).await
    }

    /// Connects and checks that the schema is up to date, then builds the metering service.
    ///
    /// # Errors
    /// When the database cannot be reached or is not migrated.
    pub async fn metering(&self) -> CliResult<Metering<CliStore>> {
        let url = &self.config.database_url;
        // Connecting with `mode=rwc` would leave an empty file behind: a SQLite file that
        // does not exist cannot be migrated, so say so without creating it.
        if sqlite_file(url).is_some_and(|path| !path.exists()) {
            return Err(CliError::failure(not_migrated(url, false)));
        }
        let store = self.connect().await?;
        let migrated = store.is_migrated().await?;
        if !migrated {
            return Err(CliError::failure(not_migrated(url, true)));
        }
        Ok(self.metering_over(store))
    }

    /// The metering service over an opened store, with the configured catalog and rules.
    pub fn metering_over(&self, store: CliStore) -> Metering<CliStore> {
        Metering::builder(store)
            .catalog(PriceCatalog::builtin())
            .config(self.config.metering_config())
            .build()
    }
}

/// The file of a SQLite URL (`sqlite://data/app.db?mode=rwc` -> `data/app.db`); `None` for
/// other databases and for in-memory SQLite.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

/// What every command says about a database that is missing or not migrated: the database
/// it looked at, where that setting comes from, and exactly what to run or pass instead.
pub fn not_migrated(url: &str, exists: bool) -> String {
    let what = if exists {
        format!("the database at {} is not migrated", redact_url(url))
    } else {
        format!("there is no database at {}", redact_url(url))
    };
    format!(
        "{what}. Run `ai-metering migrate` to create its tables, or `ai-metering demo` for a \
         demo database there; for another database pass `--database-url URL` (for example \
         `--database-url sqlite://my.db`) or set AI_METERING_DATABASE_URL, and use the same \
         setting for every command"
    )
}

/// Connects to `url` within [`CONNECT_TIMEOUT`].
///
/// # Errors
/// When it cannot.
pub async fn connect(url: &str) -> CliResult<CliStore> {
    match tokio::time::timeout(CONNECT_TIMEOUT, SeaOrmStore::connect(url)).await {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => Err(CliError::failure(format!(
            "cannot connect to the database at {}: {e}",
            redact_url(url)
        ))),
        Err(_) => Err(CliError::failure(format!(
            "cannot connect to the database at {}: no answer within {} s",
            redact_url(url),
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Hides the password of a URL (`postgres://app:secret@db/x` -> `postgres://app:***@db/x`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Fails unless something is stored about `billable`: a subscription, usage or a wallet
/// transaction in the configured currency. Commands refuse to act on billables they have
/// never heard of, which catches typos such as `user:4` for `user:42`.
///
/// # Errors
/// "unknown billable" when nothing is stored about it.
pub async fn ensure_known(
    metering: &Metering<CliStore>,
    config: &Config,
    billable: &Billable,
) -> CliResult {
    let store = metering.store();
    if !store.subscriptions(billable).await?.is_empty() {
        return Ok(());
    }
    let usage = store
        .sum_usage(&UsageFilter::for_billable(billable.clone()))
        .await?;
    if usage.calls > 0 {
        return Ok(());
    }
    let ledger = store
        .credit_transactions(billable, config.currency, Page::first(1))
        .await?;
    if !ledger.is_empty() {
        return Ok(());
    }
    Err(CliError::failure(format!(
        "unknown billable {billable}: no subscription, usage or wallet is stored for it"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_in_urls() {
        let file = |url| sqlite_file(url).map(|p| p.display().to_string());
        assert_eq!(
            file("sqlite://ai-metering.db?mode=rwc").as_deref(),
            Some("ai-metering.db")
        );
        assert_eq!(file("sqlite:data/x.db").as_deref(), Some("data/x.db"));
        assert_eq!(file("sqlite:///tmp/x.db").as_deref(), Some("/tmp/x.db"));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(file("postgres://app@db/x"), None);
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/metering"),
            "postgres://app:***@db:5432/metering"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("sqlite://ai-metering.db?mode=rwc"),
            "sqlite://ai-metering.db?mode=rwc"
        );
    }
}
