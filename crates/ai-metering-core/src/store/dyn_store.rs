//! [`DynStore`]: any [`Store`] behind one type, for code that must not name the store (a
//! handler's `RemainingQuota`, a backend chosen at run time).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::billable::Billable;
use crate::money::{Currency, Money};
use crate::period::Period;
use crate::plan::{LimitOverride, Plan, Subscription};

/// A boxed, sendable future borrowing from the store and the arguments.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The dyn-compatible twin of [`Store`]: every method of the request path's traits with a boxed
/// future, under its own name (`boxed_` + the trait method's name) so that calls on a
/// concrete store are never ambiguous. Implemented for every [`Store`]; you do not
/// implement it yourself, you wrap a store in a [`DynStore`].
pub trait BoxedStore: Send + Sync + 'static {
    /// [`PlanStore::upsert_plan`], boxed.
    fn boxed_upsert_plan<'a>(&'a self, plan: &'a Plan) -> BoxFuture<'a, StoreResult<()>>;
    /// [`PlanStore::plan`], boxed.
    fn boxed_plan<'a>(&'a self, slug: &'a str) -> BoxFuture<'a, StoreResult<Option<Plan>>>;
    /// [`SubscriptionStore::insert_subscription`], boxed.
    fn boxed_insert_subscription<'a>(
        &'a self,
        subscription: &'a Subscription,
    ) -> BoxFuture<'a, StoreResult<SubscriptionId>>;
    /// [`SubscriptionStore::replace_subscription`], boxed.
    fn boxed_replace_subscription<'a>(
        &'a self,
        id: SubscriptionId,
        expected: &'a Subscription,
        new: &'a Subscription,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// [`SubscriptionStore::current_subscription`], boxed.
    fn boxed_current_subscription<'a>(
        &'a self,
        billable: &'a Billable,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<(SubscriptionId, Subscription)>>>;
    /// [`SubscriptionStore::claim_expired_subscriptions`], boxed.
    fn boxed_claim_expired_subscriptions<'a>(
        &'a self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Vec<(SubscriptionId, Subscription)>>>;
    /// [`SubscriptionStore::limit_override_at`], boxed.
    fn boxed_limit_override_at<'a>(
        &'a self,
        billable: &'a Billable,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<LimitOverride>>>;
    /// [`UsageStore::insert_usage`], boxed.
    fn boxed_insert_usage<'a>(
        &'a self,
        entry: &'a UsageEntry,
    ) -> BoxFuture<'a, StoreResult<Recorded>>;
    /// [`UsageStore::insert_usage_batch`], boxed.
    fn boxed_insert_usage_batch<'a>(
        &'a self,
        entries: &'a [UsageEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Recorded>>>;
    /// [`UsageStore::usage_by_idempotency_key`], boxed.
    fn boxed_usage_by_idempotency_key<'a>(
        &'a self,
        billable: &'a Billable,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<UsageRecord>>>;
    /// [`UsageStore::query_usage`], boxed.
    fn boxed_query_usage<'a>(
        &'a self,
        filter: &'a UsageFilter,
        page: Page,
    ) -> BoxFuture<'a, StoreResult<Vec<UsageRecord>>>;
    /// [`CounterStore::reserve`], boxed.
    fn boxed_reserve<'a>(
        &'a self,
        request: &'a ReserveRequest,
    ) -> BoxFuture<'a, StoreResult<ReserveOutcome>>;
    /// [`CounterStore::settle`], boxed.
    fn boxed_settle<'a>(
        &'a self,
        settlement: &'a Settlement,
    ) -> BoxFuture<'a, StoreResult<Settled>>;
    /// [`CounterStore::release`], boxed.
    fn boxed_release<'a>(&'a self, reservation: ReservationId) -> BoxFuture<'a, StoreResult<bool>>;
    /// [`CounterStore::expire_reservations`], boxed.
    fn boxed_expire_reservations<'a>(
        &'a self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<u64>>;
    /// [`CounterStore::period_usage`], boxed.
    fn boxed_period_usage<'a>(
        &'a self,
        billable: &'a Billable,
        period: &'a Period,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<PeriodUsage>>;
    /// [`CounterStore::claim_threshold`], boxed.
    fn boxed_claim_threshold<'a>(
        &'a self,
        billable: &'a Billable,
        period: &'a Period,
        threshold: Decimal,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// [`CreditStore::wallet`], boxed.
    fn boxed_wallet<'a>(
        &'a self,
        billable: &'a Billable,
        currency: Currency,
    ) -> BoxFuture<'a, StoreResult<WalletBalance>>;
    /// [`CreditStore::add_credits`], boxed.
    fn boxed_add_credits<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        reason: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditTransaction>>;
    /// [`CreditStore::add_credits_with_metadata`], boxed.
    fn boxed_add_credits_with_metadata<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        reason: &'a str,
        metadata: &'a serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditTransaction>>;
    /// [`CreditStore::deduct_credits`], boxed.
    fn boxed_deduct_credits<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        reason: &'a str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditOutcome<CreditTransaction>>>;
    /// [`CreditStore::hold_credits`], boxed.
    fn boxed_hold_credits<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        overdraft: Overdraft,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditOutcome<HoldId>>>;
    /// [`CreditStore::settle_hold`], boxed.
    fn boxed_settle_hold<'a>(
        &'a self,
        hold: HoldId,
        actual: Money,
        reason: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditTransaction>>;
    /// [`CreditStore::release_hold`], boxed.
    fn boxed_release_hold<'a>(&'a self, hold: HoldId) -> BoxFuture<'a, StoreResult<bool>>;
    /// [`CreditStore::expire_credit_holds`], boxed.
    fn boxed_expire_credit_holds<'a>(
        &'a self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<u64>>;
    /// [`CreditStore::wallet_at`], boxed.
    fn boxed_wallet_at<'a>(
        &'a self,
        billable: &'a Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<WalletBalance>>;
    /// [`CreditStore::hold_credits_at`], boxed.
    fn boxed_hold_credits_at<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditOutcome<HoldId>>>;
    /// [`CreditStore::add_grant`], boxed.
    fn boxed_add_grant<'a>(
        &'a self,
        billable: &'a Billable,
        grant: &'a NewGrant,
        reason: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<(WalletGrant, CreditTransaction)>>;
    /// [`CreditStore::roll_over_grants`], boxed.
    fn boxed_roll_over_grants<'a>(
        &'a self,
        billable: &'a Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<CreditTransaction>>>;
}

impl<S: Store> BoxedStore for S {
    fn boxed_upsert_plan<'a>(&'a self, plan: &'a Plan) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(PlanStore::upsert_plan(self, plan))
    }

    fn boxed_plan<'a>(&'a self, slug: &'a str) -> BoxFuture<'a, StoreResult<Option<Plan>>> {
        Box::pin(PlanStore::plan(self, slug))
    }

    fn boxed_insert_subscription<'a>(
        &'a self,
        subscription: &'a Subscription,
    ) -> BoxFuture<'a, StoreResult<SubscriptionId>> {
        Box::pin(SubscriptionStore::insert_subscription(self, subscription))
    }

    fn boxed_replace_subscription<'a>(
        &'a self,
        id: SubscriptionId,
        expected: &'a Subscription,
        new: &'a Subscription,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(SubscriptionStore::replace_subscription(
            self, id, expected, new,
        ))
    }

    fn boxed_current_subscription<'a>(
        &'a self,
        billable: &'a Billable,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<(SubscriptionId, Subscription)>>> {
        Box::pin(SubscriptionStore::current_subscription(self, billable, at))
    }

    fn boxed_claim_expired_subscriptions<'a>(
        &'a self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> BoxFuture<'a, StoreResult<Vec<(SubscriptionId, Subscription)>>> {
        Box::pin(SubscriptionStore::claim_expired_subscriptions(
            self, now, limit,
        ))
    }

    fn boxed_limit_override_at<'a>(
        &'a self,
        billable: &'a Billable,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Option<LimitOverride>>> {
        Box::pin(SubscriptionStore::limit_override_at(self, billable, at))
    }

    fn boxed_insert_usage<'a>(
        &'a self,
        entry: &'a UsageEntry,
    ) -> BoxFuture<'a, StoreResult<Recorded>> {
        Box::pin(UsageStore::insert_usage(self, entry))
    }

    fn boxed_insert_usage_batch<'a>(
        &'a self,
        entries: &'a [UsageEntry],
    ) -> BoxFuture<'a, StoreResult<Vec<Recorded>>> {
        Box::pin(UsageStore::insert_usage_batch(self, entries))
    }

    fn boxed_usage_by_idempotency_key<'a>(
        &'a self,
        billable: &'a Billable,
        key: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<UsageRecord>>> {
        Box::pin(UsageStore::usage_by_idempotency_key(self, billable, key))
    }

    fn boxed_query_usage<'a>(
        &'a self,
        filter: &'a UsageFilter,
        page: Page,
    ) -> BoxFuture<'a, StoreResult<Vec<UsageRecord>>> {
        Box::pin(UsageStore::query_usage(self, filter, page))
    }

    fn boxed_reserve<'a>(
        &'a self,
        request: &'a ReserveRequest,
    ) -> BoxFuture<'a, StoreResult<ReserveOutcome>> {
        Box::pin(CounterStore::reserve(self, request))
    }

    fn boxed_settle<'a>(
        &'a self,
        settlement: &'a Settlement,
    ) -> BoxFuture<'a, StoreResult<Settled>> {
        Box::pin(CounterStore::settle(self, settlement))
    }

    fn boxed_release<'a>(&'a self, reservation: ReservationId) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(CounterStore::release(self, reservation))
    }

    fn boxed_expire_reservations<'a>(
        &'a self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(CounterStore::expire_reservations(self, now))
    }

    fn boxed_period_usage<'a>(
        &'a self,
        billable: &'a Billable,
        period: &'a Period,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<PeriodUsage>> {
        Box::pin(CounterStore::period_usage(self, billable, period, now))
    }

    fn boxed_claim_threshold<'a>(
        &'a self,
        billable: &'a Billable,
        period: &'a Period,
        threshold: Decimal,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(CounterStore::claim_threshold(
            self, billable, period, threshold,
        ))
    }

    fn boxed_wallet<'a>(
        &'a self,
        billable: &'a Billable,
        currency: Currency,
    ) -> BoxFuture<'a, StoreResult<WalletBalance>> {
        Box::pin(CreditStore::wallet(self, billable, currency))
    }

    fn boxed_add_credits<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        reason: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditTransaction>> {
        Box::pin(CreditStore::add_credits(self, billable, amount, reason, at))
    }

    fn boxed_add_credits_with_metadata<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        reason: &'a str,
        metadata: &'a serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditTransaction>> {
        Box::pin(CreditStore::add_credits_with_metadata(
            self, billable, amount, reason, metadata, at,
        ))
    }

    fn boxed_deduct_credits<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        reason: &'a str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditOutcome<CreditTransaction>>> {
        Box::pin(CreditStore::deduct_credits(
            self, billable, amount, reason, overdraft, at,
        ))
    }

    fn boxed_hold_credits<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        overdraft: Overdraft,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditOutcome<HoldId>>> {
        Box::pin(CreditStore::hold_credits(
            self, billable, amount, overdraft, expires_at,
        ))
    }

    fn boxed_settle_hold<'a>(
        &'a self,
        hold: HoldId,
        actual: Money,
        reason: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditTransaction>> {
        Box::pin(CreditStore::settle_hold(self, hold, actual, reason, at))
    }

    fn boxed_release_hold<'a>(&'a self, hold: HoldId) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(CreditStore::release_hold(self, hold))
    }

    fn boxed_expire_credit_holds<'a>(
        &'a self,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(CreditStore::expire_credit_holds(self, now))
    }

    fn boxed_wallet_at<'a>(
        &'a self,
        billable: &'a Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<WalletBalance>> {
        Box::pin(CreditStore::wallet_at(self, billable, currency, at))
    }

    fn boxed_hold_credits_at<'a>(
        &'a self,
        billable: &'a Billable,
        amount: Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<CreditOutcome<HoldId>>> {
        Box::pin(CreditStore::hold_credits_at(
            self, billable, amount, overdraft, now, expires_at,
        ))
    }

    fn boxed_add_grant<'a>(
        &'a self,
        billable: &'a Billable,
        grant: &'a NewGrant,
        reason: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<(WalletGrant, CreditTransaction)>> {
        Box::pin(CreditStore::add_grant(self, billable, grant, reason, at))
    }

    fn boxed_roll_over_grants<'a>(
        &'a self,
        billable: &'a Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, StoreResult<Vec<CreditTransaction>>> {
        Box::pin(CreditStore::roll_over_grants(self, billable, currency, at))
    }
}

/// Any [`Store`] behind one type: a `Arc<dyn BoxedStore>` that implements the request
/// path's traits by forwarding to it (one allocation per call for the boxed future). Cheap
/// to clone; clones share the store. The traits outside [`Store`] (reports, administration,
/// billing) are not erased: call them on the concrete store.
///
/// ```
/// use ai_metering_core::store::{DynStore, MemoryStore, PlanStore};
/// use ai_metering_core::plan::Plan;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = DynStore::new(MemoryStore::new());
/// store.upsert_plan(&Plan::new("free", "Free")).await.unwrap();
/// assert!(store.plan("free").await.unwrap().is_some());
/// assert!(store.type_name().ends_with("MemoryStore"));
/// # });
/// ```
#[derive(Clone)]
pub struct DynStore(Arc<dyn BoxedStore>, &'static str);

impl DynStore {
    /// Wraps `store`.
    pub fn new<S: Store>(store: S) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Wraps a store already shared through an `Arc` (the same store, not a copy).
    pub fn from_arc<S: Store>(store: Arc<S>) -> Self {
        Self(store, std::any::type_name::<S>())
    }

    /// The type name of the wrapped store, for messages.
    pub fn type_name(&self) -> &'static str {
        self.1
    }
}

impl std::fmt::Debug for DynStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DynStore").field(&self.1).finish()
    }
}

impl PlanStore for DynStore {
    async fn upsert_plan(&self, plan: &Plan) -> StoreResult<()> {
        self.0.boxed_upsert_plan(plan).await
    }

    async fn plan(&self, slug: &str) -> StoreResult<Option<Plan>> {
        self.0.boxed_plan(slug).await
    }
}

impl SubscriptionStore for DynStore {
    async fn insert_subscription(
        &self,
        subscription: &Subscription,
    ) -> StoreResult<SubscriptionId> {
        self.0.boxed_insert_subscription(subscription).await
    }

    async fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> StoreResult<bool> {
        self.0.boxed_replace_subscription(id, expected, new).await
    }

    async fn current_subscription(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        self.0.boxed_current_subscription(billable, at).await
    }

    async fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        self.0.boxed_claim_expired_subscriptions(now, limit).await
    }

    async fn limit_override_at(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<LimitOverride>> {
        self.0.boxed_limit_override_at(billable, at).await
    }
}

impl UsageStore for DynStore {
    async fn insert_usage(&self, entry: &UsageEntry) -> StoreResult<Recorded> {
        self.0.boxed_insert_usage(entry).await
    }

    async fn insert_usage_batch(&self, entries: &[UsageEntry]) -> StoreResult<Vec<Recorded>> {
        self.0.boxed_insert_usage_batch(entries).await
    }

    async fn usage_by_idempotency_key(
        &self,
        billable: &Billable,
        key: &str,
    ) -> StoreResult<Option<UsageRecord>> {
        self.0.boxed_usage_by_idempotency_key(billable, key).await
    }

    async fn query_usage(&self, filter: &UsageFilter, page: Page) -> StoreResult<Vec<UsageRecord>> {
        self.0.boxed_query_usage(filter, page).await
    }
}

impl CounterStore for DynStore {
    async fn reserve(&self, request: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        self.0.boxed_reserve(request).await
    }

    async fn settle(&self, settlement: &Settlement) -> StoreResult<Settled> {
        self.0.boxed_settle(settlement).await
    }

    async fn release(&self, reservation: ReservationId) -> StoreResult<bool> {
        self.0.boxed_release(reservation).await
    }

    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.0.boxed_expire_reservations(now).await
    }

    async fn period_usage(
        &self,
        billable: &Billable,
        period: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        self.0.boxed_period_usage(billable, period, now).await
    }

    async fn claim_threshold(
        &self,
        billable: &Billable,
        period: &Period,
        threshold: Decimal,
    ) -> StoreResult<bool> {
        self.0
            .boxed_claim_threshold(billable, period, threshold)
            .await
    }
}

impl CreditStore for DynStore {
    async fn wallet_at(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<WalletBalance> {
        self.0.boxed_wallet_at(billable, currency, at).await
    }

    async fn hold_credits_at(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        self.0
            .boxed_hold_credits_at(billable, amount, overdraft, now, expires_at)
            .await
    }

    async fn add_grant(
        &self,
        billable: &Billable,
        grant: &NewGrant,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WalletGrant, CreditTransaction)> {
        self.0.boxed_add_grant(billable, grant, reason, at).await
    }

    async fn roll_over_grants(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<CreditTransaction>> {
        self.0.boxed_roll_over_grants(billable, currency, at).await
    }
    async fn wallet(&self, billable: &Billable, currency: Currency) -> StoreResult<WalletBalance> {
        self.0.boxed_wallet(billable, currency).await
    }

    async fn add_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        self.0.boxed_add_credits(billable, amount, reason, at).await
    }

    async fn add_credits_with_metadata(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        self.0
            .boxed_add_credits_with_metadata(billable, amount, reason, metadata, at)
            .await
    }

    async fn deduct_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<CreditTransaction>> {
        self.0
            .boxed_deduct_credits(billable, amount, reason, overdraft, at)
            .await
    }

    async fn hold_credits(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        self.0
            .boxed_hold_credits(billable, amount, overdraft, expires_at)
            .await
    }

    async fn settle_hold(
        &self,
        hold: HoldId,
        actual: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        self.0.boxed_settle_hold(hold, actual, reason, at).await
    }

    async fn release_hold(&self, hold: HoldId) -> StoreResult<bool> {
        self.0.boxed_release_hold(hold).await
    }

    async fn expire_credit_holds(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.0.boxed_expire_credit_holds(now).await
    }
}
