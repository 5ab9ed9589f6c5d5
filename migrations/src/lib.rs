//! The database schema of **ai-metering**, as [sea-orm-migration] migrations.
//!
//! [`Migrator`] creates every table on SQLite and PostgreSQL. The store crate
//! (`ai-metering-seaorm`) runs it from `SeaOrmStore::migrate`, and the CLI from
//! `ai-metering migrate`.
//!
//! # Conventions
//!
//! - Every table has a `BIGINT` auto-increment `id` primary key and is named `ai_*`.
//! - Who pays is stored as two strings, `billable_type` and `billable_id` (`"user"` / `"42"`),
//!   so ids of any shape work (integers, UUIDs, slugs). Tenants and acting users are strings too.
//! - Timestamps are `TIMESTAMP WITH TIME ZONE` on PostgreSQL and RFC 3339 text in UTC on SQLite;
//!   the store writes them in UTC, truncated to microseconds (PostgreSQL's precision).
//! - Token counts are `BIGINT`.
//!
//! # Money
//!
//! Money is stored **exactly**, never as a float nor as a rounded `DECIMAL(12,6)` (which turns
//! the price of one token of a cheap model into zero):
//!
//! - every amount is a `TEXT` column holding the canonical decimal string of a
//!   `rust_decimal::Decimal` (up to 28 significant digits), read back unchanged on both backends
//!   (sea-orm would read a SQLite `DECIMAL` through an `f64`);
//! - the usage total that SQL has to add up, `ai_usages.total_cost`, also has a `BIGINT` twin,
//!   `total_cost_nano`, in nano-units (1e-9) of the row's currency. One input token of
//!   gpt-4o-mini costs $0.15 per million = $0.00000015 = **150 nano-dollars**, exactly; an `i64`
//!   holds 9.2 billion currency units. When a cost has more than 9 decimals (prices such as
//!   $0.0375 per million tokens give 37.5 nano-dollars per token) or does not fit, the twin is
//!   `NULL` and sums add that row's exact text instead, so every sum stays exact. The store
//!   casts `SUM(total_cost_nano)` to text in SQL, because PostgreSQL sums a `BIGINT` column as
//!   `NUMERIC` and SQLite as an integer.
//!
//! # Tables
//!
//! | table | what |
//! | --- | --- |
//! | `ai_plans` | plans, unique `slug` |
//! | `ai_subscriptions` | a billable's plan over time |
//! | `ai_usage_limit_overrides` | per-billable limits for a time window |
//! | `ai_usages` | one row per metered call, with its billable's zone and day; idempotency key unique per billable |
//! | `ai_period_counters` | recorded usage per billable and period window (for reservations) |
//! | `ai_reservations` | usage reserved by calls in flight, per counter |
//! | `ai_threshold_claims` | "approaching" notices already sent, per billable, period and threshold |
//! | `ai_credit_wallets` | one wallet per billable and currency: balance and held amount |
//! | `ai_credit_transactions` | the append-only ledger, with the balance after each entry and the grants it moved |
//! | `ai_credit_holds` | credits held by calls in flight, with the grants each took from |
//! | `ai_credit_grants` | blocks of credits partitioning a wallet's balance: remaining, held, priority, expiry, rollover |
//! | `ai_overages` | usage beyond a limit, waiting to be billed; one per usage row |
//! | `ai_usage_daily_aggregates` | sums per billable's day (a date in its zone, with its instants), billable, tenant, provider, model, feature; kept by every usage insert |
//! | `ai_webhook_events` | payment-provider webhook events already processed (unique id) |
//! | `ai_api_keys` | gateway API keys: public id, the secret's SHA-256 digest, billable, tenant, allowed models, revocation |
//!
//! ```no_run
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! use ai_metering_migration::{Migrator, MigratorTrait};
//! Migrator::up(db, None).await?;
//! # Ok(()) }
//! ```
//!
//! [sea-orm-migration]: https://docs.rs/sea-orm-migration
#![warn(missing_docs)]

mod columns;
mod m20250601_000001_plans_and_subscriptions;
mod m20250601_000002_usages;
mod m20250601_000003_counters_and_reservations;
mod m20250601_000004_credits;
mod m20250601_000005_overages_and_aggregates;
mod m20250601_000006_webhook_events;
mod m20261205_000007_reservation_claims;
mod m20261205_000008_subscription_changes;
mod m20261205_000009_counter_reservations;
mod m20261205_000010_live_daily_aggregates;
mod m20261205_000011_credit_grants;
mod m20261205_000012_api_keys;
mod m20261205_000013_billable_days;

pub use sea_orm_migration::prelude::*;

/// Every migration of ai-metering, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250601_000001_plans_and_subscriptions::Migration),
            Box::new(m20250601_000002_usages::Migration),
            Box::new(m20250601_000003_counters_and_reservations::Migration),
            Box::new(m20250601_000004_credits::Migration),
            Box::new(m20250601_000005_overages_and_aggregates::Migration),
            Box::new(m20250601_000006_webhook_events::Migration),
            Box::new(m20261205_000007_reservation_claims::Migration),
            Box::new(m20261205_000008_subscription_changes::Migration),
            Box::new(m20261205_000009_counter_reservations::Migration),
            Box::new(m20261205_000010_live_daily_aggregates::Migration),
            Box::new(m20261205_000011_credit_grants::Migration),
            Box::new(m20261205_000012_api_keys::Migration),
            Box::new(m20261205_000013_billable_days::Migration),
        ]
    }
}

/// The name of every table the migrations create, in creation order.
pub const TABLES: &[&str] = &[
    "ai_plans",
    "ai_subscriptions",
    "ai_usage_limit_overrides",
    "ai_usages",
    "ai_period_counters",
    "ai_reservations",
    "ai_threshold_claims",
    "ai_credit_wallets",
    "ai_credit_transactions",
    "ai_credit_holds",
    "ai_overages",
    "ai_usage_daily_aggregates",
    "ai_webhook_events",
    "ai_credit_grants",
    "ai_api_keys",
];
