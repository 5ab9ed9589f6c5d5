//! The domain core of **ai-metering**: pure code, no I/O.
//!
//! - [`TokenUsage`]: normalised token counts, extracted from real provider responses by
//!   [`provider::extract_usage`] and the streaming accumulator in [`provider`];
//! - [`Money`] and [`pricing::PriceCatalog`]: exact prices and costs with `rust_decimal`;
//! - [`period`]: daily, weekly, monthly, yearly and rolling periods in any time zone;
//! - [`plan`]: plans, subscriptions and limit overrides;
//! - [`limit`]: the pure limit evaluation behind every quota decision, and [`overage`]: the
//!   pure computation of what a call costs beyond a limit;
//! - [`estimate`]: a call's usage estimated from its request before it is made;
//! - [`validate`]: feature names and metadata;
//! - [`exchange`]: currency conversion from a configured [`RateTable`];
//! - [`grants`]: credit grants and their burn-down order;
//! - [`store`]: the storage traits (atomic reservations, idempotent inserts, credit holds)
//!   and [`store::MemoryStore`];
//! - [`Metering`] and [`Meter`]: meter one AI call end to end, with [`events`] and a
//!   [`clock`] that tests control.
//!
//! ```
//! use ai_metering_core::{Billable, Metering, TokenUsage, plan::{Plan, Subscription}};
//! use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.upsert_plan(&Plan::new("basic", "Basic").with_token_limit(10_000)).await?;
//! let alice = Billable::new("user", "alice");
//! store.insert_subscription(&Subscription::new(alice.clone(), "basic", chrono::Utc::now())).await?;
//!
//! let metering = Metering::new(store);
//! let metered = metering
//!     .meter()
//!     .billable(alice.clone())
//!     .provider("openai", "gpt-4o-mini")
//!     .feature("chat")
//!     .call(async {
//!         // The provider's JSON response; its `usage` is read and priced.
//!         Ok::<_, std::io::Error>(serde_json::json!({
//!             "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
//!         }))
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(metered.check.remaining_tokens, Some(8_500));
//! # Ok::<_, ai_metering_core::store::StoreError>(())
//! # }).unwrap();
//! ```
#![warn(missing_docs)]

mod billable;
mod error;
mod money;
mod usage;

pub mod clock;
pub mod estimate;
pub mod events;
pub mod exchange;
pub mod grants;
pub mod keys;
mod meter;
mod metering;

pub mod limit;
pub mod overage;
pub mod period;
pub mod plan;
pub mod pricing;
pub mod provider;
pub mod reconcile;
pub mod recorder;
pub mod store;
pub mod telemetry;
pub mod validate;

pub use billable::{Billable, Tenant};
pub use error::{Error, Result};
pub use exchange::RateTable;
pub use limit::{LimitCheck, LimitKind, Limits, UsageTotals};
pub use meter::{
    Meter, MeterError, Metered, RecordOutcome, ReportedUsage, Reservation, StreamMeter,
};
pub use metering::{
    Entitlement, Metering, MeteringBuilder, MeteringConfig, PlanChange, QuotaStatus, SweepReport,
};
pub use money::{Currency, Money};
pub use period::{Period, PeriodSpec};
pub use pricing::{CostBreakdown, PriceCatalog};
pub use usage::{MAX_TOKENS_PER_CALL, TokenCounts, TokenUsage};
