//! Billing for **ai-metering**: overage reporting and Stripe.
//!
//! - [`BillingDriver`] reports one overage row; [`NullBillingDriver`] reports nothing (and
//!   says so, so rows stay pending); [`stripe::StripeBillingDriver`] reports to Stripe as
//!   Billing Meter events or invoice items, over reqwest with rustls and `ring`
//!   ([`install_tls_provider`]).
//! - [`sync_overages`] reports pending overage in batches (the CLI's `sync-overages`),
//!   [`report_overage_now`] one row at once, and [`SyncTrigger`] wakes a sync loop on every
//!   `OverageCharged` event. Each row is marked synced only after its driver reported it,
//!   and only once; a failure leaves it pending for the next run.
//! - [`webhook`]: an axum route for Stripe webhooks (signature check, idempotency,
//!   subscription updates and deletions, payment failures with a grace period).
//!
//! ```no_run
//! use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
//! use ai_metering_billing::sync_overages;
//! use ai_metering_core::Billable;
//! # async fn run<S: ai_metering_core::store::OverageStore>(store: &S) {
//! let driver = StripeBillingDriver::builder(
//!     "sk_live_...",
//!     StripeMode::meter_events("ai_overage_tokens"),
//!     |b: &Billable| Some(format!("cus_{}", b.id)),
//! )
//! .build()
//! .unwrap();
//! let report = sync_overages(store, &driver, 100, chrono::Utc::now()).await.unwrap();
//! println!("{} synced, {} failed", report.synced, report.failed);
//! # }
//! ```
#![warn(missing_docs)]

mod driver;
mod error;
mod handle;
mod sync;
mod tls;
mod trigger;

pub mod stripe;
pub mod webhook;

pub use driver::{BillingDriver, ExternalId, NullBillingDriver, ReportOutcome};
pub use error::BillingError;
pub use handle::StoreHandle;
pub use sync::{SyncFailure, SyncOutcome, SyncReport, report_overage_now, sync_overages};
pub use tls::install_tls_provider;
pub use trigger::SyncTrigger;
pub use webhook::{StripeWebhook, WebhookConfig, webhook_router};
