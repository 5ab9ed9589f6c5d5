//! The storage traits outside the request path: reports, administration, billing sync and
//! webhooks.
//!
//! [`Store`](super::Store) is what the `Meter` and the `QuotaLayer` call on every request;
//! the traits here are what dashboards, the CLI, billing jobs and webhook handlers call, so
//! a store made for the request path alone (a cache, a test double) does not implement
//! them, and code that needs them says so in its bounds (`S: Store + ReportStore`).

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{
    CreditTransaction, GroupBy, GroupedSums, NewOverage, OverageRecord, Page, StoreResult,
    SubscriptionId, UsageFilter, UsageSums, WalletGrant,
};
use crate::billable::Billable;
use crate::money::Currency;
use crate::plan::{LimitOverride, Plan, Subscription};

/// Reads for reports and dashboards: listings and sums. None of them guards money.
pub trait ReportStore: Send + Sync {
    /// Every plan, ordered by slug.
    fn plans(&self) -> impl Future<Output = StoreResult<Vec<Plan>>> + Send;

    /// Every subscription of `billable`, oldest first.
    fn subscriptions(
        &self,
        billable: &Billable,
    ) -> impl Future<Output = StoreResult<Vec<(SubscriptionId, Subscription)>>> + Send;

    /// Sums over the rows matching `filter`.
    fn sum_usage(
        &self,
        filter: &UsageFilter,
    ) -> impl Future<Output = StoreResult<UsageSums>> + Send;

    /// Sums per group over the rows matching `filter`, largest total tokens first (then key).
    fn sum_usage_grouped(
        &self,
        filter: &UsageFilter,
        group_by: GroupBy,
    ) -> impl Future<Output = StoreResult<Vec<GroupedSums>>> + Send;

    /// The ledger of one wallet, newest first.
    fn credit_transactions(
        &self,
        billable: &Billable,
        currency: Currency,
        page: Page,
    ) -> impl Future<Output = StoreResult<Vec<CreditTransaction>>> + Send;

    /// Every grant of one wallet (expired and used up ones included), in burn-down order.
    fn grants(
        &self,
        billable: &Billable,
        currency: Currency,
    ) -> impl Future<Output = StoreResult<Vec<WalletGrant>>> + Send;
}

/// Writes and lookups for operators and payment-provider webhooks, outside the request path.
pub trait AdminStore: Send + Sync {
    /// Replaces a stored subscription;
    /// [`StoreErrorKind::NotFound`](super::StoreErrorKind::NotFound) when there is none.
    /// Callers that may race use
    /// [`SubscriptionStore::replace_subscription`](super::SubscriptionStore::replace_subscription).
    fn update_subscription(
        &self,
        id: SubscriptionId,
        subscription: &Subscription,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The subscription whose `meta` holds the JSON string `value` under `key` (such as
    /// `stripe_subscription_id` = `sub_123`), for payment-provider webhooks. With several
    /// matches, the one that started last (ties: the highest id); active or not.
    fn find_subscription_by_meta(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = StoreResult<Option<(SubscriptionId, Subscription)>>> + Send;

    /// Stores a limit override.
    fn insert_limit_override(
        &self,
        limit_override: &LimitOverride,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Overage records waiting to be billed.
pub trait OverageStore: Send + Sync {
    /// Stores an overage; one per usage row (a second insert for the same usage returns the
    /// first).
    fn insert_overage(
        &self,
        overage: &NewOverage,
    ) -> impl Future<Output = StoreResult<OverageRecord>> + Send;

    /// Up to `limit` unsynced overages, oldest first (by creation, then id), starting
    /// after `after` when given: pass the last row of one page to read the next. Paging past
    /// rows that keep failing to sync is what keeps them from holding back newer ones.
    fn pending_overages(
        &self,
        after: Option<&OverageRecord>,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<OverageRecord>>> + Send;

    /// Marks an overage synced; false when it was already synced (nothing changes then).
    fn mark_overage_synced(
        &self,
        id: i64,
        external_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Payment-provider webhook events already processed, so that a redelivered event changes
/// nothing twice. Providers such as Stripe deliver each event at least once and retry for
/// days; with several app instances the claim must live in the shared database.
///
/// Not part of [`Store`](super::Store): only apps that receive webhooks need it.
pub trait WebhookEventStore: Send + Sync {
    /// Claims `event_id` for processing at `at`: true only for the first caller, atomically.
    fn claim_event(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Drops a claim after processing failed, so that the provider's retry is processed.
    fn forget_event(&self, event_id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

impl<T: WebhookEventStore> WebhookEventStore for std::sync::Arc<T> {
    fn claim_event(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        (**self).claim_event(event_id, at)
    }

    fn forget_event(&self, event_id: &str) -> impl Future<Output = StoreResult<()>> + Send {
        (**self).forget_event(event_id)
    }
}
