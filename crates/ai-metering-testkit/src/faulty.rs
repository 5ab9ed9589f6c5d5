//! [`FaultyStore`]: any store, failing the call a test chooses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ai_metering_core::Billable;
use ai_metering_core::Currency;
use ai_metering_core::Money;
use ai_metering_core::period::Period;
use ai_metering_core::plan::{LimitOverride, Plan, Subscription};
use ai_metering_core::store::*;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// How the chosen call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The store is not reached: the call fails and nothing happens.
    Before,
    /// The store does its work, then the reply is lost: the caller sees an error for a call
    /// that took effect (a connection that drops after the commit).
    After,
}

/// Wraps a store and fails the `n`th call from [`fail_call`](Self::fail_call) on (counting
/// every trait method), with a [`StoreErrorKind::Unavailable`] error; or every call while
/// [`set_down`](Self::set_down). Clones share the fault plan and the store.
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    state: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    countdown: AtomicU64,
    after: AtomicBool,
    down: AtomicBool,
    calls: AtomicU64,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`, failing nothing yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: Arc::new(FaultState {
                countdown: AtomicU64::new(0),
                after: AtomicBool::new(false),
                down: AtomicBool::new(false),
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// The wrapped store (calls on it are not counted).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Fails the `n`th call from now (1: the next one) in `mode`; 0 fails nothing.
    pub fn fail_call(&self, n: u64, mode: FaultMode) {
        self.state
            .after
            .store(mode == FaultMode::After, Ordering::SeqCst);
        self.state.countdown.store(n, Ordering::SeqCst);
    }

    /// True when the planned failure has not happened yet (the work ended before it).
    pub fn fault_pending(&self) -> bool {
        self.state.countdown.load(Ordering::SeqCst) > 0
    }

    /// Fails every call while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// `Some(mode)` when this call is the one to fail.
    fn due(&self) -> Option<FaultMode> {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        if self.state.down.load(Ordering::SeqCst) {
            return Some(FaultMode::Before);
        }
        let previous = self
            .state
            .countdown
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .unwrap_or(0);
        (previous == 1).then(|| {
            if self.state.after.load(Ordering::SeqCst) {
                FaultMode::After
            } else {
                FaultMode::Before
            }
        })
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!("injected failure of {what}"),
    )
}

/// Runs one delegated call through the fault plan.
macro_rules! through {
    ($self:ident, $what:literal, $call:expr) => {{
        match $self.due() {
            Some(FaultMode::Before) => Err(injected($what)),
            Some(FaultMode::After) => {
                let _ = $call.await;
                Err(injected($what))
            }
            None => $call.await,
        }
    }};
}

impl<S: PlanStore> PlanStore for FaultyStore<S> {
    async fn upsert_plan(&self, plan: &Plan) -> StoreResult<()> {
        through!(self, "upsert_plan", self.inner.upsert_plan(plan))
    }
    async fn plan(&self, slug: &str) -> StoreResult<Option<Plan>> {
        through!(self, "plan", self.inner.plan(slug))
    }
}

impl<S: SubscriptionStore> SubscriptionStore for FaultyStore<S> {
    async fn insert_subscription(&self, s: &Subscription) -> StoreResult<SubscriptionId> {
        through!(
            self,
            "insert_subscription",
            self.inner.insert_subscription(s)
        )
    }
    async fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> StoreResult<bool> {
        through!(
            self,
            "replace_subscription",
            self.inner.replace_subscription(id, expected, new)
        )
    }
    async fn current_subscription(
        &self,
        b: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        through!(
            self,
            "current_subscription",
            self.inner.current_subscription(b, at)
        )
    }
    async fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        through!(
            self,
            "claim_expired_subscriptions",
            self.inner.claim_expired_subscriptions(now, limit)
        )
    }
    async fn limit_override_at(
        &self,
        b: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<LimitOverride>> {
        through!(
            self,
            "limit_override_at",
            self.inner.limit_override_at(b, at)
        )
    }
}

impl<S: UsageStore> UsageStore for FaultyStore<S> {
    async fn insert_usage(&self, e: &UsageEntry) -> StoreResult<Recorded> {
        through!(self, "insert_usage", self.inner.insert_usage(e))
    }
    async fn insert_usage_batch(&self, e: &[UsageEntry]) -> StoreResult<Vec<Recorded>> {
        through!(self, "insert_usage_batch", self.inner.insert_usage_batch(e))
    }
    async fn usage_by_idempotency_key(
        &self,
        b: &Billable,
        key: &str,
    ) -> StoreResult<Option<UsageRecord>> {
        through!(
            self,
            "usage_by_idempotency_key",
            self.inner.usage_by_idempotency_key(b, key)
        )
    }
    async fn query_usage(&self, f: &UsageFilter, page: Page) -> StoreResult<Vec<UsageRecord>> {
        through!(self, "query_usage", self.inner.query_usage(f, page))
    }
}

impl<S: CounterStore> CounterStore for FaultyStore<S> {
    async fn reserve(&self, r: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        through!(self, "reserve", self.inner.reserve(r))
    }
    async fn settle(&self, s: &Settlement) -> StoreResult<Settled> {
        through!(self, "settle", self.inner.settle(s))
    }
    async fn release(&self, id: ReservationId) -> StoreResult<bool> {
        through!(self, "release", self.inner.release(id))
    }
    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        through!(
            self,
            "expire_reservations",
            self.inner.expire_reservations(now)
        )
    }
    async fn period_usage(
        &self,
        b: &Billable,
        p: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        through!(self, "period_usage", self.inner.period_usage(b, p, now))
    }
    async fn claim_threshold(&self, b: &Billable, p: &Period, t: Decimal) -> StoreResult<bool> {
        through!(self, "claim_threshold", self.inner.claim_threshold(b, p, t))
    }
}

impl<S: CreditStore> CreditStore for FaultyStore<S> {
    async fn wallet(&self, b: &Billable, c: Currency) -> StoreResult<WalletBalance> {
        through!(self, "wallet", self.inner.wallet(b, c))
    }
    async fn add_credits(
        &self,
        b: &Billable,
        a: Money,
        r: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        through!(self, "add_credits", self.inner.add_credits(b, a, r, at))
    }
    async fn add_credits_with_metadata(
        &self,
        b: &Billable,
        a: Money,
        r: &str,
        m: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        through!(
            self,
            "add_credits_with_metadata",
            self.inner.add_credits_with_metadata(b, a, r, m, at)
        )
    }
    async fn deduct_credits(
        &self,
        b: &Billable,
        a: Money,
        r: &str,
        o: Overdraft,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<CreditTransaction>> {
        through!(
            self,
            "deduct_credits",
            self.inner.deduct_credits(b, a, r, o, at)
        )
    }
    async fn hold_credits(
        &self,
        b: &Billable,
        a: Money,
        o: Overdraft,
        e: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        through!(self, "hold_credits", self.inner.hold_credits(b, a, o, e))
    }
    async fn settle_hold(
        &self,
        h: HoldId,
        a: Money,
        r: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        through!(self, "settle_hold", self.inner.settle_hold(h, a, r, at))
    }
    async fn release_hold(&self, h: HoldId) -> StoreResult<bool> {
        through!(self, "release_hold", self.inner.release_hold(h))
    }
    async fn expire_credit_holds(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        through!(
            self,
            "expire_credit_holds",
            self.inner.expire_credit_holds(now)
        )
    }
    async fn wallet_at(
        &self,
        b: &Billable,
        c: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<WalletBalance> {
        through!(self, "wallet", self.inner.wallet_at(b, c, at))
    }
    async fn hold_credits_at(
        &self,
        b: &Billable,
        a: Money,
        o: Overdraft,
        now: DateTime<Utc>,
        e: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        through!(
            self,
            "hold_credits",
            self.inner.hold_credits_at(b, a, o, now, e)
        )
    }
    async fn add_grant(
        &self,
        b: &Billable,
        g: &NewGrant,
        r: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WalletGrant, CreditTransaction)> {
        through!(self, "add_grant", self.inner.add_grant(b, g, r, at))
    }
    async fn roll_over_grants(
        &self,
        b: &Billable,
        c: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<CreditTransaction>> {
        through!(
            self,
            "roll_over_grants",
            self.inner.roll_over_grants(b, c, at)
        )
    }
}

impl<S: OverageStore> OverageStore for FaultyStore<S> {
    async fn insert_overage(&self, o: &NewOverage) -> StoreResult<OverageRecord> {
        through!(self, "insert_overage", self.inner.insert_overage(o))
    }
    async fn pending_overages(
        &self,
        after: Option<&OverageRecord>,
        limit: u64,
    ) -> StoreResult<Vec<OverageRecord>> {
        through!(
            self,
            "pending_overages",
            self.inner.pending_overages(after, limit)
        )
    }
    async fn mark_overage_synced(
        &self,
        id: i64,
        ext: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        through!(
            self,
            "mark_overage_synced",
            self.inner.mark_overage_synced(id, ext, at)
        )
    }
}

impl<S: ReportStore> ReportStore for FaultyStore<S> {
    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        through!(self, "plans", self.inner.plans())
    }

    async fn subscriptions(
        &self,
        b: &Billable,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        through!(self, "subscriptions", self.inner.subscriptions(b))
    }

    async fn sum_usage(&self, f: &UsageFilter) -> StoreResult<UsageSums> {
        through!(self, "sum_usage", self.inner.sum_usage(f))
    }

    async fn sum_usage_grouped(
        &self,
        f: &UsageFilter,
        g: GroupBy,
    ) -> StoreResult<Vec<GroupedSums>> {
        through!(
            self,
            "sum_usage_grouped",
            self.inner.sum_usage_grouped(f, g)
        )
    }

    async fn credit_transactions(
        &self,
        b: &Billable,
        c: Currency,
        p: Page,
    ) -> StoreResult<Vec<CreditTransaction>> {
        through!(
            self,
            "credit_transactions",
            self.inner.credit_transactions(b, c, p)
        )
    }

    async fn grants(&self, b: &Billable, c: Currency) -> StoreResult<Vec<WalletGrant>> {
        through!(self, "grants", self.inner.grants(b, c))
    }
}

impl<S: AdminStore> AdminStore for FaultyStore<S> {
    async fn update_subscription(&self, id: SubscriptionId, s: &Subscription) -> StoreResult<()> {
        through!(
            self,
            "update_subscription",
            self.inner.update_subscription(id, s)
        )
    }

    async fn find_subscription_by_meta(
        &self,
        key: &str,
        value: &str,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        through!(
            self,
            "find_subscription_by_meta",
            self.inner.find_subscription_by_meta(key, value)
        )
    }

    async fn insert_limit_override(&self, o: &LimitOverride) -> StoreResult<()> {
        through!(
            self,
            "insert_limit_override",
            self.inner.insert_limit_override(o)
        )
    }
}
