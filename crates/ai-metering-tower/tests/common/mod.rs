//! Shared test fixtures: a store that can be switched off, a metering on a manual clock,
//! and apps built around the layer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ai_metering_core::clock::ManualClock;
use ai_metering_core::period::Period;
use ai_metering_core::plan::{LimitOverride, Plan, Subscription};
use ai_metering_core::store::*;
use ai_metering_core::{Billable, Currency, Metering, Money};
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal::Decimal;

/// 2024-01-15 12:00 UTC: 16.5 days (1_425_600 s) before the monthly period ends.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 12, 0, 0).unwrap()
}

/// Seconds from [`t0`] to 2024-02-01.
pub const SECS_TO_RESET: u64 = 1_425_600;
/// Seconds in January.
pub const JANUARY: u64 = 2_678_400;

/// A [`MemoryStore`] that fails every call with `Unavailable` while `down` is set, and
/// counts the subscription look-ups (one per limit check), the usage reads and the
/// reservations.
#[derive(Debug, Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub down: AtomicBool,
    pub checks: AtomicUsize,
    pub usage_reads: AtomicUsize,
    pub reservations: AtomicUsize,
}

impl FlakyStore {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }

    pub fn reservations(&self) -> usize {
        self.reservations.load(Ordering::SeqCst)
    }

    pub fn usage_reads(&self) -> usize {
        self.usage_reads.load(Ordering::SeqCst)
    }

    fn guard(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "connection refused",
            ))
        } else {
            Ok(())
        }
    }
}

/// A shared [`FlakyStore`] (the layer needs the store by value; tests keep a handle).
///
/// It implements the request path's traits only ([`Store`]: no `ReportStore`, `AdminStore`
/// or `OverageStore`), so every test here also proves that the layer, the `Meter` and the
/// extractors need nothing more; tests read results back through `inner`.
#[derive(Debug, Clone, Default)]
pub struct Shared(pub Arc<FlakyStore>);

impl std::ops::Deref for Shared {
    type Target = FlakyStore;
    fn deref(&self) -> &FlakyStore {
        &self.0
    }
}

impl PlanStore for Shared {
    async fn upsert_plan(&self, plan: &Plan) -> StoreResult<()> {
        self.guard()?;
        self.inner.upsert_plan(plan).await
    }
    async fn plan(&self, slug: &str) -> StoreResult<Option<Plan>> {
        self.guard()?;
        self.inner.plan(slug).await
    }
}

impl SubscriptionStore for Shared {
    async fn insert_subscription(&self, s: &Subscription) -> StoreResult<SubscriptionId> {
        self.guard()?;
        self.inner.insert_subscription(s).await
    }
    async fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> StoreResult<bool> {
        self.guard()?;
        self.inner.replace_subscription(id, expected, new).await
    }
    async fn current_subscription(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.guard()?;
        self.inner.current_subscription(billable, at).await
    }
    async fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        self.guard()?;
        self.inner.claim_expired_subscriptions(now, limit).await
    }
    async fn limit_override_at(
        &self,
        b: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<LimitOverride>> {
        self.guard()?;
        self.inner.limit_override_at(b, at).await
    }
}

impl UsageStore for Shared {
    async fn insert_usage(&self, e: &UsageEntry) -> StoreResult<Recorded> {
        self.guard()?;
        self.inner.insert_usage(e).await
    }
    async fn insert_usage_batch(&self, e: &[UsageEntry]) -> StoreResult<Vec<Recorded>> {
        self.guard()?;
        self.inner.insert_usage_batch(e).await
    }
    async fn usage_by_idempotency_key(
        &self,
        b: &Billable,
        key: &str,
    ) -> StoreResult<Option<UsageRecord>> {
        self.guard()?;
        self.inner.usage_by_idempotency_key(b, key).await
    }
    async fn query_usage(&self, f: &UsageFilter, page: Page) -> StoreResult<Vec<UsageRecord>> {
        self.guard()?;
        self.inner.query_usage(f, page).await
    }
}

impl CounterStore for Shared {
    async fn reserve(&self, r: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        self.reservations.fetch_add(1, Ordering::SeqCst);
        self.guard()?;
        self.inner.reserve(r).await
    }
    async fn settle(&self, s: &Settlement) -> StoreResult<Settled> {
        self.guard()?;
        self.inner.settle(s).await
    }
    async fn release(&self, id: ReservationId) -> StoreResult<bool> {
        self.guard()?;
        self.inner.release(id).await
    }
    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.guard()?;
        self.inner.expire_reservations(now).await
    }
    async fn period_usage(
        &self,
        b: &Billable,
        p: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        self.usage_reads.fetch_add(1, Ordering::SeqCst);
        self.guard()?;
        self.inner.period_usage(b, p, now).await
    }
    async fn claim_threshold(&self, b: &Billable, p: &Period, t: Decimal) -> StoreResult<bool> {
        self.guard()?;
        self.inner.claim_threshold(b, p, t).await
    }
}

impl CreditStore for Shared {
    async fn wallet(&self, b: &Billable, c: Currency) -> StoreResult<WalletBalance> {
        self.guard()?;
        self.inner.wallet(b, c).await
    }
    async fn add_credits(
        &self,
        b: &Billable,
        a: Money,
        r: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        self.guard()?;
        self.inner.add_credits(b, a, r, at).await
    }
    async fn add_credits_with_metadata(
        &self,
        b: &Billable,
        a: Money,
        r: &str,
        m: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        self.guard()?;
        self.inner.add_credits_with_metadata(b, a, r, m, at).await
    }
    async fn deduct_credits(
        &self,
        b: &Billable,
        a: Money,
        r: &str,
        o: Overdraft,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<CreditTransaction>> {
        self.guard()?;
        self.inner.deduct_credits(b, a, r, o, at).await
    }
    async fn hold_credits(
        &self,
        b: &Billable,
        a: Money,
        o: Overdraft,
        e: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        self.guard()?;
        self.inner.hold_credits(b, a, o, e).await
    }
    async fn settle_hold(
        &self,
        h: HoldId,
        a: Money,
        r: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        self.guard()?;
        self.inner.settle_hold(h, a, r, at).await
    }
    async fn release_hold(&self, h: HoldId) -> StoreResult<bool> {
        self.guard()?;
        self.inner.release_hold(h).await
    }
    async fn expire_credit_holds(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.guard()?;
        self.inner.expire_credit_holds(now).await
    }
    async fn wallet_at(
        &self,
        b: &Billable,
        c: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<WalletBalance> {
        self.guard()?;
        self.inner.wallet_at(b, c, at).await
    }
    async fn hold_credits_at(
        &self,
        b: &Billable,
        a: Money,
        o: Overdraft,
        now: DateTime<Utc>,
        e: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        self.guard()?;
        self.inner.hold_credits_at(b, a, o, now, e).await
    }
    async fn add_grant(
        &self,
        b: &Billable,
        g: &NewGrant,
        r: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WalletGrant, CreditTransaction)> {
        self.guard()?;
        self.inner.add_grant(b, g, r, at).await
    }
    async fn roll_over_grants(
        &self,
        b: &Billable,
        c: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<CreditTransaction>> {
        self.guard()?;
        self.inner.roll_over_grants(b, c, at).await
    }
}

/// A metering over a fresh [`Shared`] store, on a manual clock at [`t0`].
pub fn metering() -> (Metering<Shared>, Shared, ManualClock) {
    let store = Shared::default();
    let clock = ManualClock::new(t0());
    let metering = Metering::builder(store.clone())
        .clock(clock.clone())
        .build();
    (metering, store, clock)
}

/// `user:<id>`.
pub fn user(id: u32) -> Billable {
    Billable::new("user", id)
}

/// Subscribes `billable` to a fresh plan `slug` with the given token limit.
pub async fn subscribe(store: &Shared, billable: &Billable, slug: &str, token_limit: u64) {
    store
        .upsert_plan(&Plan::new(slug, slug).with_token_limit(token_limit))
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(
            billable.clone(),
            slug,
            t0() - chrono::Duration::days(30),
        ))
        .await
        .unwrap();
}

/// An auth middleware: `x-user: 42` becomes `Billable user:42` in the extensions.
pub async fn auth(mut request: Request, next: Next) -> Response {
    let billable = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(|id| Billable::new("user", id));
    if let Some(billable) = billable {
        request.extensions_mut().insert(billable);
    }
    next.run(request).await
}

/// A POST to `uri` as `user:<id>` (no user for `None`).
pub fn req(uri: &str, user: Option<u32>) -> http::Request<Body> {
    let mut builder = http::Request::post(uri);
    if let Some(id) = user {
        builder = builder.header("x-user", id.to_string());
    }
    builder.body(Body::empty()).unwrap()
}

/// The body as text.
pub async fn text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A header as text ("" when missing).
pub fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}
