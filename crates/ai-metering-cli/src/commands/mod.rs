//! The commands, one file each, and what they share: the opened store and helpers.

pub mod aggregate;
pub mod cleanup;
pub mod config;
pub mod gdpr;
pub mod migrate;
pub mod migrate_plan;
pub mod plans;
pub mod report;
pub mod sync_overages;
pub mod validate;
pub mod wallet;

use std::time::Duration;

use ai_metering_core::pricing::PriceCatalog;
use ai_metering_core::store::{CreditStore, Page, SubscriptionStore, UsageFilter, UsageStore};
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
        let store = self.connect().await?;
        let migrated = store.is_migrated().await?;
        if !migrated {
            return Err(CliError::failure(format!(
                "the database at {} is not migrated: run `ai-metering migrate` first",
                redact_url(&self.config.database_url)
            )));
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
