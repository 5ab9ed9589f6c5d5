//! sea-orm entities, one per table of `ai-metering-migration`.
//!
//! Money columns are `String`s holding exact decimal text (see the migration crate's docs);
//! the store converts them to and from `rust_decimal::Decimal`.

pub mod api_key;
pub mod credit_grant;
pub mod credit_hold;
pub mod credit_transaction;
pub mod credit_wallet;
pub mod daily_aggregate;
pub mod limit_override;
pub mod overage;
pub mod period_counter;
pub mod plan;
pub mod reservation;
pub mod subscription;
pub mod threshold_claim;
pub mod usage;
pub mod webhook_event;
