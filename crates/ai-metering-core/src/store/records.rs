use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billable::{Billable, Tenant};
use crate::grants::{CreditGrant, GrantId, GrantTake, Rollover};
use crate::limit::{LimitKind, Limits, UsageTotals};
use crate::money::{Currency, Money};
use crate::period::{Period, PeriodSpec};
use crate::pricing::CostBreakdown;
use crate::usage::TokenUsage;

/// One metered call, as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// Who pays.
    pub billable: Billable,
    /// The acting user, if the host app tracks one apart from the billable.
    pub user_id: Option<String>,
    /// The tenant, in multi-tenant apps.
    pub tenant: Option<Tenant>,
    /// Provider name (`openai`, `anthropic`...).
    pub provider: String,
    /// Model name as called.
    pub model: String,
    /// Feature name, validated by [`crate::validate::FeatureName`].
    pub feature: Option<String>,
    /// Token counts.
    pub usage: TokenUsage,
    /// Cost of each token class and the total, with currency and catalog version.
    pub cost: CostBreakdown,
    /// Sanitised metadata (a JSON object).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Idempotency key, unique per billable.
    pub idempotency_key: Option<String>,
    /// When the call happened (UTC).
    pub occurred_at: DateTime<Utc>,
    /// True when the counts are an estimate (the provider reported none).
    pub estimated: bool,
    /// The billable's time zone when the call was made (its subscription's): the entry
    /// counts in that zone's day in the daily aggregates and under [`GroupBy::Day`]
    /// ([`UsageEntry::day`]). `None` is UTC. The [`Meter`](crate::Meter) and the
    /// [`Recorder`](crate::recorder::Recorder) fill it from the billable's subscription.
    #[serde(default, with = "crate::plan::zone_name")]
    pub time_zone: Option<Tz>,
}

impl UsageEntry {
    /// Tokens and cost of this entry, as counted against limits.
    pub fn totals(&self) -> UsageTotals {
        UsageTotals::new(self.usage.total_tokens(), self.cost.total)
    }

    /// The billable's day this entry counts in ([`UsageDay::at`]).
    pub fn day(&self) -> UsageDay {
        UsageDay::at(self.occurred_at, self.time_zone)
    }
}

/// A billable's day: a date in its time zone, and the instants that day starts and ends at
/// (23 or 25 hours apart across a DST change). Daily aggregates and [`GroupBy::Day`] count
/// each usage row in its billable's day.
///
/// ```
/// use ai_metering_core::store::UsageDay;
///
/// // 23:30 UTC on March 30th 2025 is already March 31st in Berlin, a 23-hour day there.
/// let at = "2025-03-30T23:30:00Z".parse().unwrap();
/// let day = UsageDay::at(at, Some(chrono_tz::Europe::Berlin));
/// assert_eq!(day.date.to_string(), "2025-03-31");
/// assert_eq!(day.period.start.to_rfc3339(), "2025-03-30T22:00:00+00:00");
/// let berlin_dst = UsageDay::at("2025-03-30T12:00:00Z".parse().unwrap(), Some(chrono_tz::Europe::Berlin));
/// assert_eq!(berlin_dst.period.end - berlin_dst.period.start, chrono::Duration::hours(23));
/// // Without a zone, the UTC day.
/// assert_eq!(UsageDay::at(at, None).date.to_string(), "2025-03-30");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageDay {
    /// The date, in the billable's zone.
    pub date: NaiveDate,
    /// The instants the day starts and ends at.
    pub period: Period,
}

impl UsageDay {
    /// The longest day kept: a local day longer than this (a DST change makes one 25 hours
    /// long) counts as the UTC day instead, so that a day's rows always lie within this
    /// distance of its start, which lets a range find its partial days near its ends.
    pub const MAX_LENGTH: Duration = Duration::days(2);

    /// The day of `zone` (UTC for `None`) that `at` falls in.
    pub fn at(at: DateTime<Utc>, zone: Option<Tz>) -> Self {
        if let Some(zone) = zone
            && zone != Tz::UTC
            && let Ok(period) = PeriodSpec::daily().in_timezone(zone).period_at(at)
            && period.end - period.start <= Self::MAX_LENGTH
        {
            return Self {
                date: period.start.with_timezone(&zone).date_naive(),
                period,
            };
        }
        let date = at.date_naive();
        let start = date.and_time(NaiveTime::MIN).and_utc();
        Self {
            date,
            period: Period {
                start,
                end: start + Duration::days(1),
            },
        }
    }
}

/// A stored [`UsageEntry`] with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The store's id of the row.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: UsageEntry,
}

/// The result of an idempotent insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The stored record: the new one, or the one stored earlier under the same key.
    pub record: UsageRecord,
    /// False when the idempotency key was already used and nothing was inserted.
    pub created: bool,
}

/// Which usage rows a query, sum or deletion concerns. Empty fields match everything.
///
/// ```
/// use ai_metering_core::{Billable, store::UsageFilter};
/// let f = UsageFilter::for_billable(Billable::new("user", 1)).with_provider("openai");
/// assert_eq!(f.provider.as_deref(), Some("openai"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageFilter {
    /// Only this billable.
    pub billable: Option<Billable>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this tenant.
    pub tenant: Option<Tenant>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Only this feature.
    pub feature: Option<String>,
    /// Only rows with `occurred_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// Only rows with `occurred_at < until`.
    pub until: Option<DateTime<Utc>>,
    /// Only rows whose feature, model or metadata contains this text (case-insensitive).
    pub search: Option<String>,
}

impl UsageFilter {
    /// Everything of one billable.
    pub fn for_billable(billable: Billable) -> Self {
        Self {
            billable: Some(billable),
            ..Self::default()
        }
    }

    /// Restricts to one provider.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Restricts to one model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Restricts to one feature.
    pub fn with_feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    /// Restricts to one tenant.
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Restricts to a period, `[start, end)`.
    pub fn in_period(mut self, period: &Period) -> Self {
        self.from = Some(period.start);
        self.until = Some(period.end);
        self
    }

    /// True when `entry` passes the filter; the reference semantics every store follows.
    pub fn matches(&self, e: &UsageEntry) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.billable.as_ref().is_none_or(|b| *b == e.billable)
            && self
                .user_id
                .as_ref()
                .is_none_or(|u| e.user_id.as_ref() == Some(u))
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| e.tenant.as_ref() == Some(t))
            && eq(&self.provider, &e.provider)
            && eq(&self.model, &e.model)
            && self
                .feature
                .as_ref()
                .is_none_or(|f| e.feature.as_ref() == Some(f))
            && self.from.is_none_or(|from| e.occurred_at >= from)
            && self.until.is_none_or(|until| e.occurred_at < until)
            && self.search.as_ref().is_none_or(|s| {
                let s = s.to_lowercase();
                e.model.to_lowercase().contains(&s)
                    || e.feature
                        .as_ref()
                        .is_some_and(|f| f.to_lowercase().contains(&s))
                    || serde_json::Value::Object(e.metadata.clone())
                        .to_string()
                        .to_lowercase()
                        .contains(&s)
            })
    }
}

/// A page of results: `limit` rows after skipping `offset`, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return, at most [`Page::MAX_LIMIT`].
    pub limit: u64,
}

impl Page {
    /// The largest page a store returns.
    pub const MAX_LIMIT: u64 = 1_000;

    /// The first `limit` rows (capped at [`Page::MAX_LIMIT`]).
    pub fn first(limit: u64) -> Self {
        Self {
            offset: 0,
            limit: limit.min(Self::MAX_LIMIT),
        }
    }

    /// Page number `page` (from 0) of `per_page` rows.
    pub fn number(page: u64, per_page: u64) -> Self {
        let limit = per_page.clamp(1, Self::MAX_LIMIT);
        Self {
            offset: page.saturating_mul(limit),
            limit,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(50)
    }
}

/// Sums over usage rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSums {
    /// Number of rows.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Cached input tokens.
    pub cached_input_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Input plus output tokens.
    pub total_tokens: u64,
    /// Total cost (rows are assumed to share the catalog's currency).
    pub cost: Decimal,
}

impl UsageSums {
    /// Adds one entry, saturating (sums of u64 token counts cannot realistically overflow).
    pub fn add(&mut self, e: &UsageEntry) {
        let u = &e.usage;
        self.calls = self.calls.saturating_add(1);
        self.input_tokens = self.input_tokens.saturating_add(u.input_tokens());
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(u.cached_input_tokens());
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(u.cache_write_tokens());
        self.output_tokens = self.output_tokens.saturating_add(u.output_tokens());
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(u.reasoning_tokens());
        self.total_tokens = self.total_tokens.saturating_add(u.total_tokens());
        self.cost = self.cost.saturating_add(e.cost.total);
    }
}

/// How grouped sums are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By provider.
    Provider,
    /// By provider and model, keyed `provider/model`.
    Model,
    /// By feature (rows without one are keyed by an empty string).
    Feature,
    /// By billable, keyed `kind:id`.
    Billable,
    /// By tenant (rows without one are keyed by an empty string).
    Tenant,
    /// By the billable's day ([`UsageEntry::day`]: the date in its time zone, UTC for
    /// entries without one), keyed `YYYY-MM-DD`.
    Day,
}

impl GroupBy {
    /// The key of `entry` under this grouping; the reference semantics every store follows.
    pub fn key_of(&self, e: &UsageEntry) -> String {
        match self {
            Self::Provider => e.provider.clone(),
            Self::Model => format!("{}/{}", e.provider, e.model),
            Self::Feature => e.feature.clone().unwrap_or_default(),
            Self::Billable => e.billable.to_string(),
            Self::Tenant => e.tenant.as_ref().map(|t| t.to_string()).unwrap_or_default(),
            Self::Day => e.day().date.format("%Y-%m-%d").to_string(),
        }
    }
}

/// Sums for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupedSums {
    /// The group's key (see [`GroupBy`]).
    pub key: String,
    /// Its sums.
    pub sums: UsageSums,
}

/// A period's usage as a counter sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodUsage {
    /// Usage recorded in the period.
    pub recorded: UsageTotals,
    /// Usage reserved by calls in flight.
    pub reserved: UsageTotals,
}

impl PeriodUsage {
    /// Recorded plus reserved: what counts against the limits.
    pub fn committed(&self) -> UsageTotals {
        UsageTotals {
            tokens: self.recorded.tokens.saturating_add(self.reserved.tokens),
            cost: self.recorded.cost.saturating_add(self.reserved.cost),
        }
    }
}

/// The id of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReservationId(pub i64);

/// A request to reserve usage against a period's limits: one atomic step that checks the
/// limits, claims the idempotency key, holds credits and (when `replaces` is set) drops the
/// reservation it replaces. Either all of it happens or none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    /// Who reserves.
    pub billable: Billable,
    /// The period whose counter the reservation counts against.
    pub period: Period,
    /// The limits to respect; [`Limits::UNLIMITED`] always succeeds (and still counts).
    pub limits: Limits,
    /// The estimate to reserve.
    pub amount: UsageTotals,
    /// The current instant: reservations of this counter that expired by now are dropped first.
    pub now: DateTime<Utc>,
    /// When this reservation expires if neither settled nor released.
    pub expires_at: DateTime<Utc>,
    /// Credits to hold with the reservation (credits mode); captured when it is settled,
    /// given back when it is released or expires.
    pub hold: Option<HoldRequest>,
    /// The call's idempotency key. Refused with [`ReserveOutcome::AlreadyRecorded`] when a
    /// usage row of this billable has it, and with [`ReserveOutcome::KeyInFlight`] when a
    /// live reservation of this billable claims it.
    pub idempotency_key: Option<String>,
    /// True for a call whose usage could not be estimated: refused with
    /// [`ReserveOutcome::Busy`] while another live exclusive reservation of this billable
    /// exists, so that at most one unestimated call of a billable is in flight.
    pub exclusive: bool,
    /// A live reservation of the same billable that this one replaces: its amount and hold
    /// do not count against this request, and it is dropped (its hold given back) when this
    /// one is made. Nothing changes when this one is refused. This is how a reservation grows.
    pub replaces: Option<ReservationId>,
}

impl ReserveRequest {
    /// A plain reservation of `amount`: no hold, no key, not exclusive, replacing nothing.
    pub fn new(
        billable: Billable,
        period: Period,
        limits: Limits,
        amount: UsageTotals,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            billable,
            period,
            limits,
            amount,
            now,
            expires_at,
            hold: None,
            idempotency_key: None,
            exclusive: false,
            replaces: None,
        }
    }
}

/// Credits to hold with a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRequest {
    /// The amount to hold. Zero holds nothing but still requires the wallet to have room
    /// for a positive amount (an empty wallet refuses even an unestimated call).
    pub amount: Money,
    /// How far the wallet may go below zero.
    pub overdraft: Overdraft,
}

impl HoldRequest {
    /// True when a wallet with `available` balance may take this hold. A zero amount holds
    /// nothing but needs room for a positive amount, so that an empty wallet refuses it.
    ///
    /// ```
    /// use ai_metering_core::store::{HoldRequest, Overdraft};
    /// use ai_metering_core::{Currency, Money};
    /// use rust_decimal::Decimal;
    /// let zero = HoldRequest { amount: Money::zero(Currency::USD), overdraft: Overdraft::Disallowed };
    /// assert!(!zero.permits(Decimal::ZERO));
    /// assert!(zero.permits(Decimal::ONE));
    /// ```
    pub fn permits(&self, available: Decimal) -> bool {
        if self.amount.amount > Decimal::ZERO {
            return self.overdraft.permits(available, self.amount.amount);
        }
        match self.overdraft {
            Overdraft::Disallowed => available > Decimal::ZERO,
            Overdraft::Floor(floor) => available > floor,
            Overdraft::Unlimited => true,
        }
    }
}

/// The outcome of [`CounterStore::reserve`](super::CounterStore::reserve).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReserveOutcome {
    /// Reserved; the usage includes the new reservation.
    Reserved {
        /// The reservation to settle or release.
        id: ReservationId,
        /// The credit hold made with it.
        hold: Option<HoldId>,
        /// The period's usage after reserving.
        usage: PeriodUsage,
        /// In credits mode, the wallet right after the hold (its balance, the holds of the
        /// calls in flight, this one's included, and what its grants keep unusable at the
        /// request's instant), when the store could tell it without another read. `None`
        /// otherwise: read it with [`CreditStore::wallet_at`](super::CreditStore::wallet_at).
        wallet: Option<WalletBalance>,
    },
    /// Refused because the amount does not fit; nothing was reserved.
    Rejected {
        /// The limit that would be exceeded (tokens are checked first).
        exceeded: LimitKind,
        /// The period's usage, unchanged.
        usage: PeriodUsage,
    },
    /// Refused: the wallet cannot cover the hold; nothing was reserved.
    InsufficientCredits {
        /// What the wallet had available.
        available: Decimal,
    },
    /// Refused: the idempotency key was already recorded; here is the row.
    AlreadyRecorded(Box<UsageRecord>),
    /// Refused: a call with this idempotency key is in flight.
    KeyInFlight,
    /// Refused: another unestimated call of this billable is in flight.
    Busy,
}

/// One call to settle: the reservation it replaces, the row to record, and what the
/// settlement computes from the period's totals inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation to drop (and whose credit hold to capture). A reservation that
    /// already expired or was released does not stop the row from being recorded: the
    /// money was spent.
    pub reservation: ReservationId,
    /// The usage row to insert (idempotent by its key).
    pub entry: UsageEntry,
    /// The period whose totals the overage is computed from.
    pub period: Period,
    /// How overage is computed, under the `charge` policy; `None` records none.
    pub overage: Option<crate::overage::OverageRule>,
    /// Credits mode: debit the call's cost from the wallet, capturing the reservation's
    /// hold (the actual cost is debited and the rest of the hold given back). The debit is
    /// never refused: the money was spent.
    pub debit_credits: bool,
}

/// What [`CounterStore::settle`](super::CounterStore::settle) stored, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The usage row; `created: false` when its idempotency key was already recorded, in
    /// which case nothing else was stored (the reservation and its hold were given back).
    pub recorded: Recorded,
    /// The period's usage after the settlement.
    pub usage: PeriodUsage,
    /// The wallet debit, in credits mode (none for a zero cost).
    pub debit: Option<CreditTransaction>,
    /// The overage row, when the call went beyond a limit under the `charge` policy.
    pub overage: Option<OverageRecord>,
    /// In credits mode, the wallet right after the settlement (its balance, the holds of
    /// the calls still in flight, and what its grants keep unusable at the call's instant),
    /// when the store could tell it without another read. `None` otherwise: read it with
    /// [`CreditStore::wallet_at`](super::CreditStore::wallet_at).
    pub wallet: Option<WalletBalance>,
}

impl Settled {
    /// The settlement of a key recorded before: its stored row, nothing new (only the
    /// reservation was dropped), and the period's usage.
    pub fn replayed(record: UsageRecord, usage: PeriodUsage) -> Self {
        Self {
            recorded: Recorded {
                record,
                created: false,
            },
            usage,
            debit: None,
            overage: None,
            wallet: None,
        }
    }
}

/// The id of a subscription row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub i64);

/// How far a wallet may go below zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "floor")]
pub enum Overdraft {
    /// The available balance never goes below zero (the default).
    #[default]
    Disallowed,
    /// The available balance may go down to this (negative) floor.
    Floor(Decimal),
    /// No floor at all.
    Unlimited,
}

impl Overdraft {
    /// True when a wallet with `available` balance may spend `amount` more.
    pub fn permits(&self, available: Decimal, amount: Decimal) -> bool {
        let after = available.saturating_sub(amount);
        match self {
            Self::Disallowed => after >= Decimal::ZERO,
            Self::Floor(floor) => after >= *floor,
            Self::Unlimited => true,
        }
    }
}

/// A wallet's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletBalance {
    /// Whose wallet.
    pub billable: Billable,
    /// Its currency (one wallet per billable and currency).
    pub currency: Currency,
    /// The ledger balance.
    pub balance: Decimal,
    /// Amounts held by calls in flight.
    pub held: Decimal,
    /// The unheld remainder of the wallet's grants that do not count at the instant of the
    /// reading (expired, or not effective yet; see [`crate::grants::unusable`]). Part of `balance`,
    /// but it cannot be spent.
    #[serde(default)]
    pub unusable: Decimal,
}

impl WalletBalance {
    /// An empty wallet.
    ///
    /// ```
    /// use ai_metering_core::store::WalletBalance;
    /// use ai_metering_core::{Billable, Currency};
    /// let w = WalletBalance::empty(Billable::new("user", 1), Currency::USD);
    /// assert!(w.available().is_zero());
    /// ```
    pub fn empty(billable: Billable, currency: Currency) -> Self {
        Self {
            billable,
            currency,
            balance: Decimal::ZERO,
            held: Decimal::ZERO,
            unusable: Decimal::ZERO,
        }
    }

    /// Balance minus holds minus what expired grants keep: what can still be spent.
    pub fn available(&self) -> Decimal {
        self.balance
            .saturating_sub(self.held)
            .saturating_sub(self.unusable)
    }
}

/// Direction of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

/// One ledger entry of a wallet. Amounts are positive; `direction` carries the sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditTransaction {
    /// Row id.
    pub id: i64,
    /// Whose wallet.
    pub billable: Billable,
    /// The amount and currency.
    pub amount: Money,
    /// In or out.
    pub direction: Direction,
    /// Why (`top-up`, `usage`, `refund`...).
    pub reason: String,
    /// The wallet balance right after this entry.
    pub balance_after: Decimal,
    /// Free-form data.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The grants this entry moved, and how much of each: the grant a grant's credit
    /// created, or the grants that paid a debit (in burn-down order). The rest of the
    /// amount moved the wallet's ungranted part. Empty for a wallet without grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantTake>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A credit grant to add to a wallet with
/// [`CreditStore::add_grant`](super::CreditStore::add_grant): an amount, a burn-down
/// priority, an optional start and expiry, and an optional rollover rule (see
/// [`crate::grants`]).
///
/// ```
/// use ai_metering_core::grants::Rollover;
/// use ai_metering_core::store::NewGrant;
/// use ai_metering_core::{Currency, Money};
/// use chrono::{Duration, TimeZone, Utc};
/// use rust_decimal::Decimal;
///
/// let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// let promo = NewGrant::new(Money::new(Decimal::TEN, Currency::USD), t0)
///     .with_priority(0)
///     .expiring_at(t0 + Duration::days(30))
///     .with_rollover(Rollover { min: Decimal::ZERO, max: Decimal::from(5) });
/// assert!(promo.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGrant {
    /// The amount granted (positive), and the wallet's currency.
    pub amount: Money,
    /// Burn-down priority: lower numbers are burned first.
    pub priority: u32,
    /// From when it can be used.
    pub effective_at: DateTime<Utc>,
    /// When it stops counting; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// What happens to it at period resets
    /// ([`CreditStore::roll_over_grants`](super::CreditStore::roll_over_grants)).
    pub rollover: Option<Rollover>,
}

impl NewGrant {
    /// A grant of `amount` usable from `effective_at`: priority 0, never expiring, without
    /// rollover.
    pub fn new(amount: Money, effective_at: DateTime<Utc>) -> Self {
        Self {
            amount,
            priority: 0,
            effective_at,
            expires_at: None,
            rollover: None,
        }
    }

    /// Sets the priority (lower burns first).
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the expiry.
    pub fn expiring_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the rollover rule.
    pub fn with_rollover(mut self, rollover: Rollover) -> Self {
        self.rollover = Some(rollover);
        self
    }

    /// The grant it becomes once stored under `id`.
    pub fn to_grant(&self, id: GrantId) -> CreditGrant {
        CreditGrant {
            id,
            amount: self.amount.amount,
            remaining: self.amount.amount,
            held: Decimal::ZERO,
            priority: self.priority,
            effective_at: self.effective_at,
            expires_at: self.expires_at,
            rollover: self.rollover,
        }
    }

    /// Checks it: a positive amount, an expiry after the start, a rollover within
    /// `0 <= min <= max <= amount`.
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`](super::StoreErrorKind::Invalid), saying what is wrong.
    pub fn validate(&self) -> Result<(), super::StoreError> {
        let invalid = |m: String| super::StoreError::new(super::StoreErrorKind::Invalid, m);
        if self.amount.amount <= Decimal::ZERO {
            return Err(invalid(format!(
                "a credit grant must be positive, got {}",
                self.amount
            )));
        }
        self.to_grant(GrantId(0))
            .validate()
            .map_err(|e| invalid(e.to_string()))
    }
}

/// One grant of a wallet, as [`ReportStore::grants`](super::ReportStore::grants) lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletGrant {
    /// Whose wallet.
    pub billable: Billable,
    /// The wallet's currency.
    pub currency: Currency,
    /// The grant: its amount, what is left, what calls in flight hold, its priority, start,
    /// expiry and rollover rule.
    #[serde(flatten)]
    pub grant: CreditGrant,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl WalletGrant {
    /// True when it counts at `at` (effective and not expired).
    pub fn is_usable_at(&self, at: DateTime<Utc>) -> bool {
        self.grant.is_usable_at(at)
    }
}

/// The id of a credit hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HoldId(pub i64);

/// The outcome of a deduction or hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditOutcome<T> {
    /// Done.
    Done(T),
    /// Refused: the wallet cannot cover the amount; nothing changed.
    Insufficient {
        /// What was available.
        available: Decimal,
    },
}

/// An overage to record: usage beyond a limit under the `charge` policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOverage {
    /// Who is charged.
    pub billable: Billable,
    /// The usage row that caused it (one overage per usage row).
    pub usage_id: i64,
    /// The period it belongs to.
    pub period: Period,
    /// Tokens beyond the limit.
    pub tokens: u64,
    /// The amount to charge.
    pub amount: Money,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// A stored overage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverageRecord {
    /// Row id.
    pub id: i64,
    /// The overage.
    #[serde(flatten)]
    pub overage: NewOverage,
    /// When it was reported to the billing provider; `None` while pending.
    pub synced_at: Option<DateTime<Utc>>,
    /// The billing provider's id for it (a Stripe invoice item or meter event).
    pub external_id: Option<String>,
}
