//! The command-line structure (clap derive): global options and every command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use ai_metering_core::Billable;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rust_decimal::Decimal;

/// AI usage metering, quotas, credits and billing: database maintenance, reports and a demo.
#[derive(Debug, Parser)]
#[command(name = "ai-metering", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: ./ai-metering.toml when present].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL; overrides AI_METERING_DATABASE_URL, DATABASE_URL and the file.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Output format: tables for people, JSON or CSV for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// JSON on stdout, notes on stderr.
    Json,
    /// CSV (tabular outputs only).
    Csv,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the database tables.
    Migrate,
    /// Usage totals and the breakdown by provider and model for a month or the current period.
    Report(ReportArgs),
    /// Delete usage rows older than the retention period.
    Cleanup(CleanupArgs),
    /// Report pending overages to the billing driver.
    SyncOverages(SyncOveragesArgs),
    /// Check the configuration, the database connection and data integrity.
    Validate,
    /// Reconcile usage rows, counters, wallet ledgers, holds and overages, per billable;
    /// exits 1 on a mismatch.
    Check(CheckArgs),
    /// Show the effective configuration and where each value comes from.
    Config,
    /// List, create or sync plans.
    #[command(subcommand)]
    Plans(PlansCommand),
    /// Subscribe a billable to a plan, from now on (its first subscription).
    Subscribe(SubscribeArgs),
    /// Move a billable's current subscription to another plan.
    MigratePlan(MigratePlanArgs),
    /// Rebuild the usage rollups that feed the dashboard.
    Aggregate(AggregateArgs),
    /// Delete or anonymise everything stored about one billable.
    #[command(subcommand)]
    Gdpr(GdprCommand),
    /// Credit wallets: add credits, show a balance.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Run the metering gateway of the configuration file's `[gateway]` table: an
    /// OpenAI-compatible API in front of the configured upstreams, authenticated by the
    /// keys of `keys create`.
    Serve(ServeArgs),
    /// API keys for a metering gateway: create (the key is shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the demo: the gateway over a seeded SQLite database, with a mock upstream.
    Demo(DemoArgs),
}

/// `report` options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Calendar month (in the configured time zone) [default: the current period].
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
    pub month: Option<Month>,
    /// Only this billable.
    #[arg(long, value_name = "TYPE:ID", value_parser = parse_billable)]
    pub billable: Option<Billable>,
}

/// `check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this billable.
    #[arg(long, value_name = "TYPE:ID", value_parser = parse_billable)]
    pub billable: Option<Billable>,
    /// The instant expiries are judged at, RFC 3339 [default: now].
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
    pub now: Option<DateTime<Utc>>,
    /// Seconds a reservation or credit hold may stay past its expiry before it is reported
    /// (as a warning: nobody sweeps them).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub grace: u32,
    /// Check only counters starting, and overages and debits recorded, at or after this
    /// instant (RFC 3339): usage rows before it were pruned by `cleanup`.
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
    pub since: Option<DateTime<Utc>>,
    /// Also match usage debits to usage rows with a cost, one to one, for billables whose
    /// ledger has usage debits (credits mode).
    #[arg(long)]
    pub match_debits: bool,
    /// Fail on warnings too (reservations or holds left past their expiry).
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `cleanup` options.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Keep this many days [default: storage.prune_after_days, 365].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub days: Option<u64>,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// `sync-overages` options.
#[derive(Debug, Args)]
pub struct SyncOveragesArgs {
    /// Sync at most this many overages, oldest first. Overages that fail stay pending,
    /// do not count, and do not hold back newer ones.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

/// `plans` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// List every plan.
    List,
    /// Create (or replace) one plan.
    Create(PlanCreateArgs),
    /// Upsert plans by slug from a TOML file with `[[plans]]` tables.
    Sync(PlanSyncArgs),
}

/// `plans create` options.
#[derive(Debug, Args)]
pub struct PlanCreateArgs {
    /// Unique key of the plan.
    pub slug: String,
    /// Name shown to people [default: the slug].
    #[arg(long)]
    pub name: Option<String>,
    /// Tokens per period.
    #[arg(long)]
    pub token_limit: Option<u64>,
    /// Cost per period, in the catalog's currency.
    #[arg(long, value_parser = parse_amount)]
    pub cost_limit: Option<Decimal>,
    /// Overage price per 1,000 tokens.
    #[arg(long, value_parser = parse_amount)]
    pub overage_price: Option<Decimal>,
    /// Overage policy of this plan [default: billing.overage_behavior].
    #[arg(long, value_parser = ["block", "charge", "allow"])]
    pub overage_policy: Option<String>,
    /// Create the plan inactive (no limits apply).
    #[arg(long)]
    pub inactive: bool,
}

/// `plans sync` options.
#[derive(Debug, Args)]
pub struct PlanSyncArgs {
    /// TOML file with `[[plans]]` tables (slug, name, token_limit, cost_limit, ...).
    pub file: PathBuf,
    /// Only show what would change.
    #[arg(long)]
    pub dry_run: bool,
}

/// `subscribe` arguments.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The billable, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// Slug of the plan.
    pub plan: String,
    /// Bill in credits (the wallet pays every call) instead of the plan's limits.
    #[arg(long)]
    pub credits: bool,
}

/// `migrate-plan` arguments.
#[derive(Debug, Args)]
pub struct MigratePlanArgs {
    /// The billable, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// Slug of the target plan.
    pub to_plan: String,
    /// Only if the current plan is this one.
    #[arg(long)]
    pub from_plan: Option<String>,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// `aggregate` options.
#[derive(Debug, Args)]
pub struct AggregateArgs {
    /// Rollup granularity.
    #[arg(long, value_enum, default_value_t = AggregatePeriod::Day)]
    pub period: AggregatePeriod,
    /// Only rebuild this many most recent days [default: all usage].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub days: Option<u64>,
}

/// Rollup granularities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AggregatePeriod {
    /// Daily rollups.
    Day,
    /// Weekly rollups (Monday to Sunday).
    Week,
    /// Monthly rollups.
    Month,
}

/// `gdpr` subcommands.
#[derive(Debug, Subcommand)]
pub enum GdprCommand {
    /// Delete the billable's usage, subscriptions, wallet and overages.
    Delete(GdprArgs),
    /// Keep the usage for totals but remove what identifies the billable.
    Anonymize(GdprArgs),
    /// Delete the usage one user made (`.user(..)`), whatever billable paid for it; the
    /// counters and daily aggregates drop it.
    DeleteUser(GdprUserArgs),
    /// Keep one user's usage for totals but drop the user id, metadata and idempotency keys.
    AnonymizeUser(GdprUserArgs),
}

/// `gdpr delete-user|anonymize-user` arguments.
#[derive(Debug, Args)]
pub struct GdprUserArgs {
    /// The user id, as recorded with the usage.
    #[arg(value_name = "USER_ID")]
    pub user_id: String,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// `gdpr` arguments.
#[derive(Debug, Args)]
pub struct GdprArgs {
    /// The billable, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// `wallet` subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Add credits to a billable's wallet.
    Add(WalletAddArgs),
    /// Grant credits to a billable's wallet: an amount with a burn-down priority, an
    /// optional start, expiry and rollover rule. Grants are spent before plain top-ups.
    Grant(WalletGrantArgs),
    /// Show a wallet's balance, grants and latest transactions.
    Balance(WalletBalanceArgs),
}

/// `wallet grant` arguments.
#[derive(Debug, Args)]
pub struct WalletGrantArgs {
    /// The billable, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// The amount, a positive decimal such as 25 or 9.99.
    #[arg(value_parser = parse_amount)]
    pub amount: Decimal,
    /// Currency [default: billing.currency].
    #[arg(long)]
    pub currency: Option<String>,
    /// Burn-down priority: lower numbers are spent first.
    #[arg(long, default_value_t = 0)]
    pub priority: u32,
    /// When the grant starts counting, RFC 3339 [default: now].
    #[arg(long, value_parser = parse_instant, value_name = "INSTANT")]
    pub starts: Option<DateTime<Utc>>,
    /// When the grant stops counting, RFC 3339 [default: never].
    #[arg(long, value_parser = parse_instant, value_name = "INSTANT")]
    pub expires: Option<DateTime<Utc>>,
    /// Rollover at period resets: the remainder is topped up to at least this.
    #[arg(long, value_name = "AMOUNT", requires = "rollover_max")]
    pub rollover_min: Option<Decimal>,
    /// Rollover at period resets: the remainder is capped at this.
    #[arg(long, value_name = "AMOUNT", requires = "rollover_min")]
    pub rollover_max: Option<Decimal>,
    /// Reason written in the ledger.
    #[arg(long, default_value = "grant")]
    pub reason: String,
}

/// `wallet add` arguments.
#[derive(Debug, Args)]
pub struct WalletAddArgs {
    /// The billable, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// The amount, a positive decimal such as 25 or 9.99.
    #[arg(value_parser = parse_amount)]
    pub amount: Decimal,
    /// Currency [default: billing.currency].
    #[arg(long)]
    pub currency: Option<String>,
    /// Reason written in the ledger.
    #[arg(long, default_value = "top-up")]
    pub reason: String,
}

/// `wallet balance` arguments.
#[derive(Debug, Args)]
pub struct WalletBalanceArgs {
    /// The billable, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// Currency [default: billing.currency].
    #[arg(long)]
    pub currency: Option<String>,
    /// How many recent transactions to show.
    #[arg(long, default_value_t = 10)]
    pub transactions: u64,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen on this address instead of `gateway.listen`.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<std::net::SocketAddr>,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key billed to a billable; the full key is printed once and never stored.
    Create(KeysCreateArgs),
    /// Keep a key issued elsewhere (another gateway's `sk-...`), read from standard input
    /// (never from the command line); it then authenticates as written.
    Import(KeysCreateArgs),
    /// List keys (never their secrets), oldest first.
    List(KeysListArgs),
    /// Revoke a key by its id (the 16 hex digits after `amk_`).
    Revoke(KeysRevokeArgs),
}

/// `keys create` arguments.
#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    /// Who pays for the key's calls, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Billable,
    /// A label for people (`ci`, `alice-laptop`).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// The tenant the key's calls are recorded under.
    #[arg(long)]
    pub tenant: Option<String>,
    /// A model the key may call; repeat for several [default: every model].
    #[arg(long = "model", value_name = "MODEL")]
    pub models: Vec<String>,
}

/// `keys list` arguments.
#[derive(Debug, Args)]
pub struct KeysListArgs {
    /// Only this billable's keys, as TYPE:ID.
    #[arg(value_parser = parse_billable, value_name = "TYPE:ID")]
    pub billable: Option<Billable>,
}

/// `keys revoke` arguments.
#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    /// The key's id: the 16 hex digits after `amk_` (or the whole key).
    pub id: String,
}

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// SQLite file of the demo, short for `--database-url sqlite://FILE` [default: the
    /// configured database, `ai-metering.db`]. Recreated on every run, but only if the demo
    /// created it.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Address to serve on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u32,
}

/// Parses `YYYY-MM`.
pub fn parse_month(s: &str) -> Result<Month, String> {
    let bad = || format!("expected YYYY-MM (for example 2024-01), got {s:?}");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) {
        return Err(format!("month must be 01 to 12, got {s:?}"));
    }
    Ok(Month { year, month })
}

/// Parses `TYPE:ID`.
pub fn parse_billable(s: &str) -> Result<Billable, String> {
    Billable::from_str(s).map_err(|e| e.to_string())
}

/// Parses an RFC 3339 instant (`2024-03-01T12:00:00Z`).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2024-03-01T12:00:00Z: {e}"))
}

/// Parses a positive decimal amount (money is never parsed through a float).
pub fn parse_amount(s: &str) -> Result<Decimal, String> {
    match Decimal::from_str(s.trim()) {
        Ok(d) if d > Decimal::ZERO => Ok(d),
        Ok(_) => Err(format!("the amount must be positive, got {s:?}")),
        Err(_) => Err(format!(
            "expected a decimal amount such as 25 or 9.99, got {s:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn months_are_strict_yyyy_mm() {
        assert_eq!(
            parse_month("2024-02"),
            Ok(Month {
                year: 2024,
                month: 2
            })
        );
        for bad in [
            "2024-13",
            "2024-00",
            "2024-1",
            "24-01",
            "2024/01",
            "january",
            "2024-01-01",
        ] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
        assert!(parse_month("2024-13").unwrap_err().contains("01 to 12"));
    }

    #[test]
    fn amounts_are_positive_decimals() {
        assert_eq!(parse_amount("9.99"), Ok(Decimal::new(999, 2)));
        assert!(parse_amount("0").is_err());
        assert!(parse_amount("-1").is_err());
        assert!(parse_amount("ten").is_err());
    }

    #[test]
    fn billables_must_be_type_colon_id() {
        assert_eq!(parse_billable("user:42"), Ok(Billable::new("user", 42)));
        assert!(parse_billable("user42").unwrap_err().contains("TYPE:ID"));
    }

    #[test]
    fn global_options_work_after_the_command() {
        let cli = Cli::try_parse_from([
            "ai-metering",
            "report",
            "--format",
            "json",
            "--month",
            "2024-01",
        ])
        .unwrap();
        assert_eq!(cli.format, Format::Json);
        assert!(matches!(
            cli.command,
            Command::Report(ReportArgs { month: Some(_), .. })
        ));
    }
}
