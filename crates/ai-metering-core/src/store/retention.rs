//! [`RetentionStore`]: erasing and anonymising data, pruning old usage, rebuilding the daily
//! aggregates; and [`RowCounts`], what each of those operations changed.

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};

use super::StoreResult;
use crate::billable::Billable;

/// Privacy and retention: what a GDPR request or a retention policy needs from a store.
///
/// An administration trait: neither the `Meter` nor the `QuotaLayer` calls it, so it is not
/// part of [`Store`](super::Store). Every operation is atomic per billable (concurrent
/// reservations and settlements of the billables it touches wait for it or run before it) and
/// leaves the derived data consistent with the usage rows that remain:
///
/// - a period counter's recorded total is the sum of the billable's rows in its window;
/// - an overage row exists only while its usage row does;
/// - a daily aggregate (on stores that keep them) equals the sum of its day's rows.
///
/// Each operation reports how many rows of each kind it deleted or changed
/// ([`RowCounts`]).
///
/// ```
/// use ai_metering_core::store::{MemoryStore, RetentionStore, UsageStore};
/// # use ai_metering_core::store::UsageEntry;
/// use chrono::{TimeZone, Utc};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ai_metering_core::store::StoreError> {
/// let store = MemoryStore::new();
/// // ... usage recorded over the years ...
/// let cutoff = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
/// let pruned = store.prune_usage_before(cutoff, 1_000).await?;
/// let erased = store.delete_user("user-42").await?;
/// println!("pruned {} rows, erased {} rows", pruned.usages, erased.usages);
/// # Ok(())
/// # }
/// ```
pub trait RetentionStore: Send + Sync {
    /// Deletes everything stored about `billable`: usage, counters, reservations,
    /// subscriptions, overrides, wallets and their ledgers and holds, overages and daily
    /// aggregates, all or nothing.
    fn delete_billable(
        &self,
        billable: &Billable,
    ) -> impl Future<Output = StoreResult<RowCounts>> + Send;

    /// Replaces `billable` by `tombstone` everywhere and drops what identifies a person
    /// (acting user ids, metadata, idempotency keys), all or nothing. Usage rows stay, so
    /// every total is unchanged; counters and daily aggregates are merged into the
    /// tombstone's.
    ///
    /// Use one tombstone per erased billable (`deleted`/`<random id>`) when the billable
    /// has credit wallets: two wallets in one currency are not merged.
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`](super::StoreErrorKind::Invalid) when `tombstone` is
    /// `billable`; [`StoreErrorKind::Conflict`](super::StoreErrorKind::Conflict) when the
    /// tombstone already has a wallet in a currency the billable has one in. Nothing changes
    /// then.
    fn anonymize_billable(
        &self,
        billable: &Billable,
        tombstone: &Billable,
    ) -> impl Future<Output = StoreResult<RowCounts>> + Send;

    /// Deletes the usage rows that `user_id` made, whatever billable paid for them, with
    /// their overage rows; the counters and daily aggregates of those billables drop the
    /// deleted usage. All or nothing.
    fn delete_user(&self, user_id: &str) -> impl Future<Output = StoreResult<RowCounts>> + Send;

    /// Drops what identifies `user_id` from its usage rows (the user id, the metadata and the
    /// idempotency key). Totals, counters and aggregates are unchanged.
    fn anonymize_user(&self, user_id: &str) -> impl Future<Output = StoreResult<RowCounts>> + Send;

    /// Drops the user ids, metadata and idempotency keys of the usage rows that occurred
    /// before `cutoff`. Totals, counters and aggregates are unchanged.
    fn anonymize_usage_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<RowCounts>> + Send;

    /// Deletes the usage rows that occurred before `cutoff`, `batch_size` rows per
    /// transaction (so that writers never wait long), with their overage rows; the counters
    /// and daily aggregates that contained them drop them.
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`](super::StoreErrorKind::Invalid) for a batch size of 0.
    /// When the store fails, the batches already done stay done.
    fn prune_usage_before(
        &self,
        cutoff: DateTime<Utc>,
        batch_size: u64,
    ) -> impl Future<Output = StoreResult<RowCounts>> + Send;

    /// Recomputes the daily aggregates of the days dated `from..until` (end exclusive; each
    /// billable's own dates, [`UsageEntry::day`](super::UsageEntry::day)) from the usage rows;
    /// returns how many aggregate rows the days hold now.
    ///
    /// A store without stored aggregates (such as
    /// [`MemoryStore`](super::MemoryStore), which sums its rows on every read) has nothing
    /// to rewrite and returns how many it would hold.
    fn rebuild_daily_aggregates(
        &self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// How many rows of each kind a [`RetentionStore`] operation deleted or changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Usage rows.
    pub usages: u64,
    /// Subscriptions.
    pub subscriptions: u64,
    /// Limit overrides.
    pub limit_overrides: u64,
    /// Period counters.
    pub counters: u64,
    /// Reservations.
    pub reservations: u64,
    /// Claimed usage thresholds.
    pub threshold_claims: u64,
    /// Credit wallets.
    pub wallets: u64,
    /// Credit ledger entries.
    pub credit_transactions: u64,
    /// Credit holds.
    pub credit_holds: u64,
    /// Credit grants.
    pub credit_grants: u64,
    /// API keys (deleted with their billable, or when it is anonymised: a key must not
    /// outlive its owner).
    pub api_keys: u64,
    /// Overage rows.
    pub overages: u64,
    /// Daily aggregate rows.
    pub aggregates: u64,
}

impl RowCounts {
    /// Rows of every kind together.
    ///
    /// ```
    /// use ai_metering_core::store::RowCounts;
    /// let counts = RowCounts { usages: 3, wallets: 1, ..RowCounts::default() };
    /// assert_eq!(counts.total(), 4);
    /// ```
    pub fn total(&self) -> u64 {
        [
            self.usages,
            self.subscriptions,
            self.limit_overrides,
            self.counters,
            self.reservations,
            self.threshold_claims,
            self.wallets,
            self.credit_transactions,
            self.credit_holds,
            self.credit_grants,
            self.api_keys,
            self.overages,
            self.aggregates,
        ]
        .iter()
        .fold(0_u64, |a, b| a.saturating_add(*b))
    }

    /// Adds `other`'s counts to these (for operations done in several steps).
    pub fn add(&mut self, other: &RowCounts) {
        let pairs = [
            (&mut self.usages, other.usages),
            (&mut self.subscriptions, other.subscriptions),
            (&mut self.limit_overrides, other.limit_overrides),
            (&mut self.counters, other.counters),
            (&mut self.reservations, other.reservations),
            (&mut self.threshold_claims, other.threshold_claims),
            (&mut self.wallets, other.wallets),
            (&mut self.credit_transactions, other.credit_transactions),
            (&mut self.credit_holds, other.credit_holds),
            (&mut self.credit_grants, other.credit_grants),
            (&mut self.api_keys, other.api_keys),
            (&mut self.overages, other.overages),
            (&mut self.aggregates, other.aggregates),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }
}
