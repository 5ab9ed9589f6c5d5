//! Storage: small async traits that a backend implements, and [`MemoryStore`].
//!
//! [`MemoryStore`] implements every trait in process memory: it is meant for tests, examples and
//! single-instance apps that may lose their data on restart. Database stores live in their own
//! crates; all of them pass the same conformance suite (crate `ai-metering-testkit`).
//!
//! A backend implements one trait per concern. [`Store`] is the sum of the request path's
//! traits (plans, subscriptions, usage, counters, credits), implemented automatically:
//! what the `Meter` and the `QuotaLayer` call. Reports, administration, overage billing and
//! webhooks ([`ReportStore`], [`AdminStore`], [`OverageStore`], [`WebhookEventStore`]),
//! audits ([`AuditStore`]), retention ([`RetentionStore`]) and a gateway's API keys
//! ([`ApiKeyStore`]) are traits of their own, named by the code that needs them.
//!
//! The traits use native `async fn` (spelled `impl Future + Send` so that the futures can be
//! spawned), and every operation that guards money is **atomic**: a store
//! speaks in operations such as "reserve N under limit L", never read-then-write, so that
//! concurrent requests, and several app instances sharing one database, cannot overspend.
//!
//! Consumers (the `Meter`, the `QuotaLayer`) are generic over `S: Store` and keep the store
//! in an `Arc`, so a store does not need to be `Clone`.
//!
//! # Counters and reservations
//!
//! A *counter* tracks one billable's usage in one period window: what was recorded and what
//! is reserved by calls in flight. [`CounterStore::reserve`] adds an estimate only if it fits
//! the limits, and in the same step claims the call's idempotency key and holds its credits;
//! [`CounterStore::settle`] replaces the reservation by the actual usage in one transaction
//! (the usage row, the counters, the overage row computed from the totals inside that
//! transaction, and the capture of the credit hold: all of it or none of it);
//! [`CounterStore::release`] drops it and gives its hold back. Reservations not settled by
//! their expiry stop counting, and [`CounterStore::expire_reservations`] gives their holds
//! back.
//!
//! Every usage insert (settled or not) adds to every counter of its billable whose window
//! contains the row's `occurred_at`, and a counter created later starts from the sum of the
//! usage rows already in its window, so counters and rows never disagree.
//!
//! # Credits and grants
//!
//! A wallet ([`CreditStore`]) has a balance, what calls in flight hold, and grants
//! ([`CreditStore::add_grant`]) that partition the balance: holds and debits take from the
//! grants usable at the operation's instant in [`crate::grants`] burn-down order before the
//! wallet's ungranted credits, a capture spends what its hold took, an expired grant's
//! remainder is left out of [`WalletBalance::available`] without any job, and each ledger
//! entry lists the grants it moved ([`CreditTransaction::grants`]).

mod admin;
mod audit;
mod dyn_store;
mod error;
mod memory;
mod records;
mod retention;

use std::future::Future;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::billable::Billable;
use crate::money::{Currency, Money};
use crate::period::Period;
use crate::plan::{LimitOverride, Plan, Subscription};

pub use crate::keys::ApiKeyStore;
pub use admin::{AdminStore, OverageStore, ReportStore, WebhookEventStore};
pub use audit::{AuditCounter, AuditHold, AuditReservation, AuditSnapshot, AuditStore, AuditUsage};
pub use dyn_store::{BoxFuture, BoxedStore, DynStore};
pub use error::{StoreError, StoreErrorKind};
pub use memory::MemoryStore;
pub use records::{
    CreditOutcome, CreditTransaction, Direction, GroupBy, GroupedSums, HoldId, HoldRequest,
    NewGrant, NewOverage, OverageRecord, Overdraft, Page, PeriodUsage, Recorded, ReservationId,
    ReserveOutcome, ReserveRequest, Settled, Settlement, SubscriptionId, UsageDay, UsageEntry,
    UsageFilter, UsageRecord, UsageSums, WalletBalance, WalletGrant,
};
pub use retention::{RetentionStore, RowCounts};

/// The reason of the ledger entry with which [`CounterStore::settle`] debits a call's cost
/// in credits mode.
pub const USAGE_DEBIT_REASON: &str = "usage";

/// The reason of the ledger entries with which [`CreditStore::roll_over_grants`] tops up or
/// caps a grant.
pub const ROLLOVER_REASON: &str = "rollover";

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Plans, keyed by slug.
pub trait PlanStore: Send + Sync {
    /// Inserts the plan, or replaces the one with the same slug.
    fn upsert_plan(&self, plan: &Plan) -> impl Future<Output = StoreResult<()>> + Send;

    /// The plan with this slug.
    fn plan(&self, slug: &str) -> impl Future<Output = StoreResult<Option<Plan>>> + Send;
}

/// Subscriptions and limit overrides.
pub trait SubscriptionStore: Send + Sync {
    /// Stores a new subscription.
    fn insert_subscription(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = StoreResult<SubscriptionId>> + Send;

    /// Replaces a stored subscription with `new` only if it still equals `expected`, in
    /// one atomic step (a compare-and-swap). `Ok(false)` when it changed since `expected`
    /// was read: read it again, reapply the change, retry. `expected` must be a value read
    /// from this store. [`StoreErrorKind::NotFound`] when there is no such subscription.
    ///
    /// Read-modify-write callers that may race (webhook handlers on several instances)
    /// use this instead of [`update_subscription`](AdminStore::update_subscription), which
    /// would let the last writer silently undo the other's change.
    fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The subscription in force for `billable` at `at`: among those
    /// [active](Subscription::is_active) at `at`, the one that started last (ties: the
    /// highest id).
    fn current_subscription(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Option<(SubscriptionId, Subscription)>>> + Send;

    /// Claims up to `limit` subscriptions that expired by `now` (they started, and their
    /// end, grace period included, is at or before `now`) and were not claimed before, and
    /// returns them: each expiry is returned to exactly one caller, once, so that it is
    /// announced once across instances.
    fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<(SubscriptionId, Subscription)>>> + Send;

    /// The override in force for `billable` at `at`; with several, the one stored last.
    fn limit_override_at(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Option<LimitOverride>>> + Send;
}

/// Usage rows: inserts, queries and sums.
pub trait UsageStore: Send + Sync {
    /// Inserts one row. With an idempotency key already used by the same billable, inserts
    /// nothing and returns the stored row with `created: false`; concurrent inserts with one
    /// key store exactly one row and all return it.
    fn insert_usage(
        &self,
        entry: &UsageEntry,
    ) -> impl Future<Output = StoreResult<Recorded>> + Send;

    /// Inserts many rows in one transaction, each idempotent as in
    /// [`insert_usage`](Self::insert_usage); on error nothing is inserted.
    fn insert_usage_batch(
        &self,
        entries: &[UsageEntry],
    ) -> impl Future<Output = StoreResult<Vec<Recorded>>> + Send;

    /// The row `billable` stored under `key`.
    fn usage_by_idempotency_key(
        &self,
        billable: &Billable,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<UsageRecord>>> + Send;

    /// Rows matching `filter`, newest first (then highest id first).
    fn query_usage(
        &self,
        filter: &UsageFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Vec<UsageRecord>>> + Send;
}

/// Period counters with atomic reservations (see the [module docs](self)).
pub trait CounterStore: Send + Sync {
    /// Reserves `request.amount` against the period's counter only if recorded + reserved +
    /// amount fits `request.limits` by the rules of [`crate::limit::evaluate`]; atomically.
    fn reserve(
        &self,
        request: &ReserveRequest,
    ) -> impl Future<Output = StoreResult<ReserveOutcome>> + Send;

    /// Settles one call in one atomic step: drops the reservation, inserts the usage row
    /// (idempotently, as [`UsageStore::insert_usage`]), adds it to the counters, computes
    /// the overage from the period's totals as they stood just before the row (with
    /// [`crate::overage::overage`]) and inserts it, and in credits mode debits the cost,
    /// capturing the reservation's hold. On error nothing is stored. With an idempotency
    /// key already recorded, only the reservation (and its hold) is dropped.
    fn settle(&self, settlement: &Settlement) -> impl Future<Output = StoreResult<Settled>> + Send;

    /// Drops a reservation and gives its credit hold back; false when it no longer existed.
    fn release(&self, reservation: ReservationId)
    -> impl Future<Output = StoreResult<bool>> + Send;

    /// Drops every reservation that expired by `now`, giving their holds back; returns how
    /// many.
    fn expire_reservations(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The usage of `billable` in `period` (reservations expired by `now` excluded).
    fn period_usage(
        &self,
        billable: &Billable,
        period: &Period,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<PeriodUsage>> + Send;

    /// Marks that the "approaching" notice for `threshold` was sent for this billable and
    /// period; true only for the one caller that marked it first.
    fn claim_threshold(
        &self,
        billable: &Billable,
        period: &Period,
        threshold: Decimal,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Credit wallets (one per billable and currency, created on first use) and their ledger.
pub trait CreditStore: Send + Sync {
    /// The wallet's state at `at`: its balance, what is held, and the remainder of its grants
    /// that do not count at `at` ([`WalletBalance::unusable`], expired or not yet
    /// effective). A wallet that does not exist yet reads as zero.
    fn wallet_at(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<WalletBalance>> + Send;

    /// [`wallet_at`](Self::wallet_at) the system clock's current instant. Code with a clock
    /// of its own (the `Meter`) calls `wallet_at`.
    fn wallet(
        &self,
        billable: &Billable,
        currency: Currency,
    ) -> impl Future<Output = StoreResult<WalletBalance>> + Send {
        async move { self.wallet_at(billable, currency, Utc::now()).await }
    }

    /// Adds credits (a positive amount) and returns the ledger entry: a
    /// [`add_credits_with_metadata`](Self::add_credits_with_metadata) without metadata.
    fn add_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<CreditTransaction>> + Send {
        async move {
            self.add_credits_with_metadata(billable, amount, reason, &serde_json::Map::new(), at)
                .await
        }
    }

    /// Adds credits (a positive amount) and returns the ledger entry, which keeps
    /// `metadata` (a payment id, an invoice...) with it.
    fn add_credits_with_metadata(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<CreditTransaction>> + Send;

    /// Deducts a positive amount if `overdraft` permits it, atomically.
    fn deduct_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<CreditOutcome<CreditTransaction>>> + Send;

    /// Holds a positive amount against the balance available at `now` if `overdraft`
    /// permits it, taking it from the grants usable at `now` in burn-down order first (see
    /// [`crate::grants`]), then from the ungranted balance.
    fn hold_credits_at(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<CreditOutcome<HoldId>>> + Send;

    /// [`hold_credits_at`](Self::hold_credits_at) the system clock's current instant.
    fn hold_credits(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<CreditOutcome<HoldId>>> + Send {
        async move {
            self.hold_credits_at(billable, amount, overdraft, Utc::now(), expires_at)
                .await
        }
    }

    /// Replaces a hold by a debit of `actual` (which may differ from the amount held), in one
    /// atomic step.
    fn settle_hold(
        &self,
        hold: HoldId,
        actual: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<CreditTransaction>> + Send;

    /// Drops a hold; false when it no longer existed.
    fn release_hold(&self, hold: HoldId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Drops every hold whose `expires_at` is at or before `now` (a call that never came
    /// back), giving its amount back to the available balance; returns how many.
    fn expire_credit_holds(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Adds a credit grant to the wallet of `billable` in the grant's currency, and returns
    /// it with its ledger entry (a credit of its amount, naming the grant). The wallet's
    /// balance grows by the amount; debits and holds then burn the wallet's grants in
    /// [`crate::grants`] order before its ungranted balance.
    ///
    /// [`StoreErrorKind::Invalid`] for a grant [`NewGrant::validate`] refuses.
    fn add_grant(
        &self,
        billable: &Billable,
        grant: &NewGrant,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<(WalletGrant, CreditTransaction)>> + Send;

    /// Applies the rollover rules of the wallet's grants usable at `at`
    /// ([`crate::grants::reset_period`]: top up to `min`, cap at `max`, never below what
    /// calls in flight hold), atomically, and returns one ledger entry per grant changed
    /// (a credit for a top-up, a debit for a cap, reason [`ROLLOVER_REASON`]). Call it at
    /// each period reset; calling it twice at one reset changes nothing the second time
    /// (unless credits were spent in between).
    fn roll_over_grants(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<CreditTransaction>>> + Send;
}

/// The request path: every storage trait the `Meter` and the `QuotaLayer` call.
/// Implemented for any type that implements them all.
///
/// Reports, administration, overage billing, webhooks, audits and retention have traits of
/// their own ([`ReportStore`], [`AdminStore`], [`OverageStore`], [`WebhookEventStore`],
/// [`AuditStore`], [`RetentionStore`]), which code that needs them names in its bounds.
pub trait Store:
    PlanStore + SubscriptionStore + UsageStore + CounterStore + CreditStore + 'static
{
}

impl<T> Store for T where
    T: PlanStore + SubscriptionStore + UsageStore + CounterStore + CreditStore + 'static
{
}
