//! SeaORM storage for **ai-metering**: embedded SQLite by default, PostgreSQL for many
//! instances.
//!
//! [`SeaOrmStore`] implements every storage trait of [`ai_metering_core::store`] on the
//! schema of [`ai_metering_migration`] (money as exact decimal text plus nano-units for SQL
//! sums; see that crate's docs), and adds retention and privacy operations.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use ai_metering_seaorm::SeaOrmStore;
//! use ai_metering_core::store::PlanStore;
//! use ai_metering_core::plan::Plan;
//!
//! let store = SeaOrmStore::connect("sqlite::memory:").await?;
//! store.migrate().await?;
//! store.upsert_plan(&Plan::new("pro", "Pro").with_token_limit(100_000)).await?;
//! assert_eq!(store.plan("pro").await?.unwrap().token_limit, Some(100_000));
//! # Ok::<(), ai_metering_core::store::StoreError>(()) }).unwrap();
//! ```
//!
//! # Features
//!
//! - `sqlite` (default): embedded SQLite, `sqlite://` URLs;
//! - `postgres` (default): PostgreSQL, `postgres://` URLs;
//! - `rustls`: TLS for connections to a remote PostgreSQL.
//!
//! At least one of `sqlite` and `postgres` must be enabled.
#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("ai-metering-seaorm needs a backend: enable the `sqlite` or `postgres` feature");

mod admin;
mod aggregates;
mod api_keys;
mod audit;
mod batch;
mod codec;
mod counters;
mod credits;
pub mod entity;
mod error;
mod filter;
mod grants;
mod overages;
mod plans;
mod retention;
#[cfg(test)]
mod single_path_tests;
mod store;
mod subscriptions;
mod sums;
mod usage;
mod usage_rows;
mod webhook_events;
mod writer;

pub use ai_metering_core::store::RowCounts;
pub use ai_metering_migration::Migrator;
pub use sea_orm::{ConnectOptions, DatabaseConnection, DbBackend};
pub use store::SeaOrmStore;
