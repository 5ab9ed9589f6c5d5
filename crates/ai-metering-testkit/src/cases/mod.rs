//! The conformance cases: each a `pub async fn` taking a fresh store, panicking on a deviation.
//!
//! Run them all with [`store_conformance_tests!`](crate::store_conformance_tests), which makes
//! one test per case. A case added here must also be listed in that macro.

mod api_keys;
mod audit;
mod concurrency;
mod counters;
mod credits;
mod grants;
mod idempotency;
mod overages;
mod plans;
mod retention;
mod settlement;
mod usage;

pub use api_keys::*;
pub use audit::*;
pub use concurrency::*;
pub use counters::*;
pub use credits::*;
pub use grants::*;
pub use idempotency::*;
pub use overages::*;
pub use plans::*;
pub use retention::*;
pub use settlement::*;
pub use usage::*;

use ai_metering_core::store::{CreditOutcome, ReservationId, ReserveOutcome, UsageRecord};

/// The id of a reservation that must have succeeded.
fn reserved(outcome: ReserveOutcome) -> ReservationId {
    match outcome {
        ReserveOutcome::Reserved { id, .. } => id,
        ReserveOutcome::Rejected { exceeded, usage } => {
            panic!("expected a reservation, got a rejection on {exceeded} with {usage:?}")
        }
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// The value of a credit operation that must have succeeded.
fn done<T>(outcome: CreditOutcome<T>) -> T {
    match outcome {
        CreditOutcome::Done(value) => value,
        CreditOutcome::Insufficient { available } => {
            panic!("expected the credit operation to succeed, {available} was available")
        }
    }
}

/// The ids of usage records, in order.
fn ids(records: &[UsageRecord]) -> Vec<i64> {
    records.iter().map(|r| r.id).collect()
}
