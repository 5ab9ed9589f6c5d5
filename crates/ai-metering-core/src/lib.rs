//! The domain core of **ai-metering**: pure code, no I/O.
//!
//! - [`TokenUsage`]: normalised token counts, extracted from real provider responses by
//!   [`provider::extract_usage`] and the streaming accumulator in [`provider`];
//! - [`Money`] and [`pricing::PriceCatalog`]: exact prices and costs with `rust_decimal`;
//! - [`period`]: daily, weekly, monthly, yearly and rolling periods in any time zone;
//! - [`plan`]: plans, subscriptions and limit overrides;
//! - [`limit`]: the pure limit evaluation behind every quota decision;
//! - [`validate`]: feature names and metadata;
//! - [`exchange`]: currency conversion from a configured [`RateTable`];
//! - [`grants`]: credit grants and their burn-down order.
#![warn(missing_docs)]

mod billable;
mod error;
mod money;
mod usage;

pub mod clock;
pub mod events;
pub mod exchange;
pub mod grants;
mod meter;
mod metering;

pub mod limit;
pub mod period;
pub mod plan;
pub mod pricing;
pub mod provider;
pub mod store;
pub mod validate;

pub use billable::{Billable, Tenant};
pub use error::{Error, Result};
pub use exchange::RateTable;
pub use meter::{Meter, MeterError, Metered, RecordOutcome, Reservation};
pub use metering::{Entitlement, Metering, MeteringBuilder, MeteringConfig, QuotaStatus};
pub use money::{Currency, Money};
pub use usage::{MAX_TOKENS_PER_CALL, TokenCounts, TokenUsage};
