//! Small builders for test data: fresh ids, instants, periods, money, usage entries.
//!
//! Every case of the suite builds its data with these, so that a change of a core type (the
//! fields of [`CostBreakdown`] or [`Period`], say) is made in one place.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::period::Period;
use ai_metering_core::pricing::CostBreakdown;
use ai_metering_core::store::{NewOverage, ReservationId, ReserveRequest, Settlement, UsageEntry};
use ai_metering_core::{Billable, Currency, Money, Tenant, TokenCounts, TokenUsage};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

/// A random number drawn once per process, so that ids stay unique across runs against a
/// database that keeps the rows of earlier runs.
static RUN_NONCE: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()));
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A name never returned before, in this run or (with overwhelming probability) any other:
/// `{prefix}-{run nonce}-{counter}`.
///
/// ```
/// use ai_metering_testkit::builders::fresh_name;
/// assert_ne!(fresh_name("plan"), fresh_name("plan"));
/// ```
pub fn fresh_name(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:016x}-{n}", *RUN_NONCE)
}

/// A billable of kind `conformance` that no earlier test used.
///
/// ```
/// use ai_metering_testkit::builders::fresh_billable;
/// assert_ne!(fresh_billable(), fresh_billable());
/// ```
pub fn fresh_billable() -> Billable {
    Billable::new("conformance", fresh_name("b"))
}

/// A tenant no earlier test used.
///
/// ```
/// use ai_metering_testkit::builders::fresh_tenant;
/// assert_ne!(fresh_tenant(), fresh_tenant());
/// ```
pub fn fresh_tenant() -> Tenant {
    Tenant::new(fresh_name("tenant"))
}

/// The UTC instant `y-m-d h:min:s`.
///
/// # Panics
/// On an impossible date.
///
/// ```
/// use ai_metering_testkit::builders::instant;
/// assert_eq!(instant(2024, 3, 1, 12, 0, 0).to_rfc3339(), "2024-03-01T12:00:00+00:00");
/// ```
pub fn instant(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
}

/// The instant most cases work around: 2024-03-01 00:00:00 UTC.
///
/// ```
/// use ai_metering_testkit::builders::{base_time, instant};
/// assert_eq!(base_time(), instant(2024, 3, 1, 0, 0, 0));
/// ```
pub fn base_time() -> DateTime<Utc> {
    instant(2024, 3, 1, 0, 0, 0)
}

/// [`base_time`] plus `n` hours.
///
/// ```
/// use ai_metering_testkit::builders::{hour, instant};
/// assert_eq!(hour(25), instant(2024, 3, 2, 1, 0, 0));
/// ```
pub fn hour(n: i64) -> DateTime<Utc> {
    base_time() + Duration::hours(n)
}

/// The half-open period `[start, end)`.
///
/// ```
/// use ai_metering_testkit::builders::{hour, period};
/// let p = period(hour(0), hour(24));
/// assert_eq!((p.start, p.end), (hour(0), hour(24)));
/// ```
pub fn period(start: DateTime<Utc>, end: DateTime<Utc>) -> Period {
    Period { start, end }
}

/// The UTC calendar month `year-month`.
///
/// ```
/// use ai_metering_testkit::builders::{instant, month};
/// assert_eq!(month(2024, 12).end, instant(2025, 1, 1, 0, 0, 0));
/// ```
pub fn month(year: i32, month: u32) -> Period {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    period(
        instant(year, month, 1, 0, 0, 0),
        instant(next_year, next_month, 1, 0, 0, 0),
    )
}

/// A decimal from its text.
///
/// # Panics
/// When `text` is not a decimal number.
///
/// ```
/// use ai_metering_testkit::builders::dec;
/// assert_eq!(dec("0.10").to_string(), "0.10");
/// ```
pub fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// US dollars.
///
/// ```
/// use ai_metering_testkit::builders::usd;
/// assert_eq!(usd("1.5").to_string(), "1.5 USD");
/// ```
pub fn usd(amount: &str) -> Money {
    Money::new(dec(amount), Currency::USD)
}

/// Euros.
///
/// ```
/// use ai_metering_testkit::builders::eur;
/// assert_eq!(eur("2").to_string(), "2 EUR");
/// ```
pub fn eur(amount: &str) -> Money {
    Money::new(dec(amount), Currency::EUR)
}

/// A priced cost breakdown in USD whose total is `total` (all of it on input tokens).
///
/// ```
/// use ai_metering_testkit::builders::{cost, dec};
/// assert_eq!(cost(dec("0.25")).total, dec("0.25"));
/// ```
pub fn cost(total: Decimal) -> CostBreakdown {
    CostBreakdown {
        input: total,
        cached_input: Decimal::ZERO,
        cache_write: Decimal::ZERO,
        output: Decimal::ZERO,
        reasoning: Decimal::ZERO,
        total,
        currency: Currency::USD,
        priced: true,
        catalog_version: "testkit".to_owned(),
    }
}

/// A usage entry of `billable`: `tokens` tokens (half input, half output) costing `cost`
/// (USD), at `at`, for `openai`/`gpt-4o-mini`, with no feature, user, tenant, metadata or
/// idempotency key. Change it with [`EntryExt`].
///
/// # Panics
/// When `tokens` exceeds twice [`ai_metering_core::MAX_TOKENS_PER_CALL`].
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_testkit::builders::{dec, entry, hour};
/// let e = entry(&Billable::new("user", 1), 100, dec("0.01"), hour(0));
/// assert_eq!(e.usage.total_tokens(), 100);
/// ```
pub fn entry(billable: &Billable, tokens: u64, cost: Decimal, at: DateTime<Utc>) -> UsageEntry {
    UsageEntry {
        billable: billable.clone(),
        user_id: None,
        tenant: None,
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        feature: None,
        usage: TokenUsage::new(tokens - tokens / 2, tokens / 2).unwrap(),
        cost: self::cost(cost),
        metadata: serde_json::Map::new(),
        idempotency_key: None,
        occurred_at: at,
        estimated: false,
        time_zone: None,
    }
}

/// Chainable changes of a [`UsageEntry`] built by [`entry`].
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_testkit::builders::{EntryExt, dec, entry, hour};
/// let e = entry(&Billable::new("user", 1), 10, dec("0"), hour(0))
///     .with_key("call-1")
///     .with_feature("chat");
/// assert_eq!(e.idempotency_key.as_deref(), Some("call-1"));
/// ```
pub trait EntryExt: Sized {
    /// Sets the idempotency key.
    fn with_key(self, key: impl Into<String>) -> Self;
    /// Sets the feature.
    fn with_feature(self, feature: impl Into<String>) -> Self;
    /// Sets the provider and the model.
    fn with_model(self, provider: impl Into<String>, model: impl Into<String>) -> Self;
    /// Sets the tenant.
    fn with_tenant(self, tenant: &Tenant) -> Self;
    /// Sets the acting user.
    fn with_user(self, user_id: impl Into<String>) -> Self;
    /// Sets the metadata.
    ///
    /// # Panics
    /// When `metadata` is not a JSON object.
    fn with_metadata(self, metadata: serde_json::Value) -> Self;
    /// Replaces the token counts (the cost is kept).
    ///
    /// # Panics
    /// When the counts are inconsistent (see [`TokenUsage`]).
    fn with_counts(self, counts: TokenCounts) -> Self;
}

impl EntryExt for UsageEntry {
    fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    fn with_feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    fn with_model(mut self, provider: impl Into<String>, model: impl Into<String>) -> Self {
        self.provider = provider.into();
        self.model = model.into();
        self
    }

    fn with_tenant(mut self, tenant: &Tenant) -> Self {
        self.tenant = Some(tenant.clone());
        self
    }

    fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        let serde_json::Value::Object(map) = metadata else {
            panic!("metadata must be a JSON object, got {metadata}");
        };
        self.metadata = map;
        self
    }

    fn with_counts(mut self, counts: TokenCounts) -> Self {
        self.usage = TokenUsage::try_from(counts).unwrap();
        self
    }
}

/// Tokens and cost, as reserved or counted against limits.
///
/// ```
/// use ai_metering_testkit::builders::{dec, totals};
/// assert_eq!(totals(5, "0.5").tokens, 5);
/// ```
pub fn totals(tokens: u64, cost: &str) -> UsageTotals {
    UsageTotals::new(tokens, dec(cost))
}

/// A token limit only.
///
/// ```
/// use ai_metering_testkit::builders::token_limit;
/// assert_eq!(token_limit(10).tokens, Some(10));
/// ```
pub fn token_limit(tokens: u64) -> Limits {
    Limits {
        tokens: Some(tokens),
        cost: None,
    }
}

/// A cost limit only.
///
/// ```
/// use ai_metering_testkit::builders::cost_limit;
/// assert!(cost_limit("10").tokens.is_none());
/// ```
pub fn cost_limit(cost: &str) -> Limits {
    Limits {
        tokens: None,
        cost: Some(dec(cost)),
    }
}

/// A request to reserve `amount` of `billable` in `period` under `limits` at `now`, expiring
/// an hour later.
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_testkit::builders::{hour, month, reserve_request, token_limit, totals};
/// let r = reserve_request(&Billable::new("user", 1), month(2024, 3), token_limit(10), totals(5, "0"), hour(0));
/// assert_eq!(r.expires_at, hour(1));
/// ```
pub fn reserve_request(
    billable: &Billable,
    period: Period,
    limits: Limits,
    amount: UsageTotals,
    now: DateTime<Utc>,
) -> ReserveRequest {
    ReserveRequest::new(
        billable.clone(),
        period,
        limits,
        amount,
        now,
        now + Duration::hours(1),
    )
}

/// The settlement of reservation `id` by `entry`, in the UTC month of its `occurred_at`: no
/// overage, no credits.
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_core::store::ReservationId;
/// use ai_metering_testkit::builders::{dec, entry, hour, month, settlement};
/// let s = settlement(ReservationId(1), &entry(&Billable::new("user", 1), 10, dec("0.1"), hour(0)));
/// assert_eq!(s.period, month(2024, 3));
/// ```
pub fn settlement(id: ReservationId, entry: &UsageEntry) -> Settlement {
    use chrono::Datelike;
    Settlement {
        reservation: id,
        entry: entry.clone(),
        period: month(entry.occurred_at.year(), entry.occurred_at.month()),
        overage: None,
        debit_credits: false,
    }
}

/// An overage of `tokens` tokens costing `amount` USD for the usage row `usage_id`, recorded at
/// `created_at`, in the UTC month of `created_at`.
///
/// ```
/// use ai_metering_core::Billable;
/// use ai_metering_testkit::builders::{hour, overage};
/// let o = overage(&Billable::new("user", 1), 7, 100, "0.5", hour(0));
/// assert_eq!(o.usage_id, 7);
/// ```
pub fn overage(
    billable: &Billable,
    usage_id: i64,
    tokens: u64,
    amount: &str,
    created_at: DateTime<Utc>,
) -> NewOverage {
    use chrono::Datelike;
    NewOverage {
        billable: billable.clone(),
        usage_id,
        period: month(created_at.year(), created_at.month()),
        tokens,
        amount: usd(amount),
        created_at,
    }
}

/// The first usage rows of `who` (up to 10), once there is one: for a row that a task still
/// running records (a dropped stream, a cut-off body). Reads again every millisecond (the
/// runtime runs other tasks meanwhile), for up to 30 s; empty if nothing was recorded by
/// then. It waits for a task, not for time: nothing here depends on the clock's value.
///
/// # Panics
/// When the store fails.
pub async fn rows_once_recorded<S: ai_metering_core::store::UsageStore>(
    store: &S,
    who: &Billable,
) -> Vec<ai_metering_core::store::UsageRecord> {
    use ai_metering_core::store::{Page, UsageFilter};
    let filter = UsageFilter::for_billable(who.clone());
    // A count of yields ran out on a loaded machine before the task was scheduled: the
    // bound is a generous wall-clock one, and each retry lets the runtime run other tasks.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let rows = store
            .query_usage(&filter, Page::first(10))
            .await
            .expect("the usage rows");
        if !rows.is_empty() || std::time::Instant::now() > give_up {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
