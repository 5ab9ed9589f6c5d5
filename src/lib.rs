//! **ai-metering**: AI usage metering, quotas, credits and billing for tower/axum services.
//!
//! This facade re-exports the workspace's crates:
//! - [`core`]: the domain (usage, money and pricing, periods, plans, limits);
//! - [`tower`]: the `QuotaLayer` middleware;
//! - [`seaorm`]: the SQLite/PostgreSQL store.
#![warn(missing_docs)]

pub use ai_metering_core as core;
pub use ai_metering_seaorm as seaorm;
pub use ai_metering_tower as tower;

/// The types most apps need, for a glob import.
pub mod prelude {
    pub use ai_metering_core::{Billable, Currency, Money, Tenant, TokenCounts, TokenUsage};
}
