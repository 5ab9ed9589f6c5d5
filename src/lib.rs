//! **ai-metering**: AI usage metering, quotas, credits and billing for tower/axum services.
//!
//! This facade re-exports the workspace's crates:
//! - [`core`]: the domain (usage, money and pricing, periods, plans, limits, storage traits,
//!   `MemoryStore`, `Metering` and the `Meter`);
//! - [`tower`]: the `QuotaLayer` middleware and the `RemainingQuota` extractor;
//! - `seaorm` (features `sqlite`, on by default, and `postgres`): the SeaORM store;
//! - `dashboard` (feature `dashboard`, on by default): the dashboard router;
//! - `billing` (feature `billing`): billing drivers (Stripe) and webhooks.
//!
//! With `default-features = false` (and neither `sqlite` nor `postgres`), neither sea-orm nor
//! sqlx is built: the layer, the dashboard and `MemoryStore` need none of them.
//!
//! ```no_run
//! use ai_metering::prelude::*;
//! use axum::{Router, routing::post};
//!
//! # async fn chat() {}
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SeaOrmStore::connect("sqlite://ai-metering.db?mode=rwc").await?;
//! store.migrate().await?;
//! let metering = Metering::new(store);
//! let app: Router = Router::new()
//!     .route("/ai/chat", post(chat))
//!     .layer(QuotaLayer::new(metering));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "billing")]
pub use ai_metering_billing as billing;
pub use ai_metering_core as core;
#[cfg(feature = "dashboard")]
pub use ai_metering_dashboard as dashboard;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use ai_metering_seaorm as seaorm;
pub use ai_metering_tower as tower;

/// The README, whose examples are compiled (and, without a server, run) as doctests.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[doc = include_str!("../README.md")]
pub mod readme {}

/// The types most apps need, for a glob import.
pub mod prelude {
    pub use ai_metering_core::plan::{BillingMode, OveragePolicy, Plan, Subscription};
    pub use ai_metering_core::store::DynStore;
    pub use ai_metering_core::store::{
        AdminStore, CounterStore, CreditStore, MemoryStore, NewGrant, OverageStore, PlanStore,
        ReportStore, Store, SubscriptionStore, UsageStore,
    };
    pub use ai_metering_core::{
        Billable, Currency, Meter, MeterError, Metered, Metering, Money, PeriodSpec, PriceCatalog,
        ReportedUsage, Tenant, TokenCounts, TokenUsage,
    };
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub use ai_metering_seaorm::SeaOrmStore;
    pub use ai_metering_tower::{QuotaLayer, QuotaRejection, RemainingQuota};
}
