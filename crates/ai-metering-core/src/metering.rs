//! [`Metering`]: the shared entry point that ties a store, a price catalog, the period rules,
//! a clock and the event sinks together.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::billable::Billable;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::events::{EventSink, Events, MeterEvent};
use crate::limit::{LimitCheck, Limits, Thresholds, UsageTotals, evaluate};
use crate::meter::Meter;
use crate::money::Money;
use crate::period::{Period, PeriodSpec};
use crate::plan::{BillingMode, OveragePolicy, Plan, Subscription};
use crate::pricing::{CostBreakdown, MANUAL_PROVIDER, PriceCatalog};
use crate::store::{DynStore, Overdraft, Store, SubscriptionId};

/// Settings of a [`Metering`]; each field says its default.
#[derive(Debug, Clone)]
pub struct MeteringConfig {
    /// How periods are computed (default: monthly, calendar-aligned, UTC).
    pub period: PeriodSpec,
    /// Anchor periods to each subscription's start instead of the calendar.
    pub anchor_to_subscription: bool,
    /// Approaching thresholds (default 80%).
    pub thresholds: Thresholds,
    /// Overage policy for plans that set none (default block).
    pub overage_policy: OveragePolicy,
    /// How far credit wallets may go below zero (default: not at all).
    pub overdraft: Overdraft,
    /// How long a reservation counts if it is neither settled nor released (default 10 min).
    pub reservation_ttl: Duration,
    /// How often the background sweeper drops expired reservations and credit holds
    /// (default every minute; `None`: never, sweep with [`Metering::sweep`]). The sweeper is
    /// a tokio task started by the first reservation, on a clock that
    /// [follows real time](crate::clock::Clock::follows_real_time) only, and it stops when
    /// the last clone of the `Metering` is dropped.
    pub sweep_interval: Option<std::time::Duration>,
    /// Label metrics with the billable (feature `metrics`; default false: one series per
    /// customer can overwhelm a metrics backend).
    pub metrics_per_billable: bool,
    /// Refuse billables without an active subscription with [`Error::NoSubscription`]
    /// (default false: they are metered without limits). The
    /// `QuotaLayer` answers such requests with 403.
    pub require_subscription: bool,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            period: PeriodSpec::default(),
            anchor_to_subscription: false,
            thresholds: Thresholds::default(),
            overage_policy: OveragePolicy::Block,
            overdraft: Overdraft::Disallowed,
            reservation_ttl: Duration::minutes(10),
            sweep_interval: Some(std::time::Duration::from_secs(60)),
            metrics_per_billable: false,
            require_subscription: false,
        }
    }
}

/// The period a subscription's limits apply to: `period`, from the subscription's last plan
/// change on when it falls inside it.
fn since_plan_change(period: Period, subscription: &Subscription) -> Period {
    match subscription.plan_changed_at {
        Some(changed) if period.start < changed && changed < period.end => Period {
            start: changed,
            end: period.end,
        },
        _ => period,
    }
}

/// What [`Metering::change_plan`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    /// Whose plan.
    pub billable: Billable,
    /// The plan before.
    pub from: Option<String>,
    /// The plan now.
    pub to: String,
    /// When the new plan took effect.
    pub at: DateTime<Utc>,
    /// False when `to` was already the plan in force (nothing was written or emitted).
    pub changed: bool,
}

/// What [`Metering::sweep`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired reservations dropped (with their credit holds).
    pub reservations: u64,
    /// Expired credit holds dropped on their own.
    pub holds: u64,
    /// Subscriptions whose expiry was announced (`SubscriptionExpired`).
    pub expired_subscriptions: u64,
}

impl SweepReport {
    /// Reservations and holds together (what was given back).
    pub fn total(&self) -> u64 {
        self.reservations.saturating_add(self.holds)
    }
}

/// What a billable is entitled to right now: subscription, plan, limits and period.
#[derive(Debug, Clone)]
pub struct Entitlement {
    /// The billable.
    pub billable: Billable,
    /// The subscription in force, with its id.
    pub subscription: Option<(SubscriptionId, Subscription)>,
    /// Its plan.
    pub plan: Option<Plan>,
    /// The limits in force (plan and override combined).
    pub limits: Limits,
    /// The current period; `None` without a subscription and without limits.
    pub period: Option<Period>,
    /// The overage policy in force.
    pub overage_policy: OveragePolicy,
    /// How usage is paid for.
    pub billing_mode: BillingMode,
}

impl Entitlement {
    /// True when limits are enforced by refusing calls (policy block and some limit set).
    pub fn enforces_limits(&self) -> bool {
        self.overage_policy == OveragePolicy::Block && !self.limits.is_unlimited()
    }
}

pub(crate) struct Inner<S> {
    pub(crate) store: Arc<S>,
    pub(crate) catalog: PriceCatalog,
    pub(crate) config: MeteringConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: Events,
    pub(crate) sweeper: std::sync::Once,
    /// This metering over a [`DynStore`], made on first use by [`Metering::erased`].
    pub(crate) erased: std::sync::OnceLock<Metering<DynStore>>,
    /// Approaching-limit notices known to be claimed (shared with the erased twin).
    pub(crate) claimed: Arc<ClaimedThresholds>,
}

/// The approaching-limit notices this process knows are claimed, by itself or by another
/// instance: asking the store again could only be told no, and costs a write per call once
/// a billable is past a threshold.
#[derive(Debug, Default)]
pub(crate) struct ClaimedThresholds(std::sync::Mutex<std::collections::HashSet<ClaimKey>>);

type ClaimKey = (Billable, DateTime<Utc>, DateTime<Utc>, Decimal);

impl ClaimedThresholds {
    /// Entries kept before those of ended periods are dropped.
    const MAX: usize = 100_000;

    fn key(billable: &Billable, period: &Period, threshold: Decimal) -> ClaimKey {
        (
            billable.clone(),
            period.start,
            period.end,
            threshold.normalize(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<ClaimKey>> {
        // Every operation is one insert, lookup or retain: a poisoned set is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn contains(
        &self,
        billable: &Billable,
        period: &Period,
        threshold: Decimal,
    ) -> bool {
        self.lock()
            .contains(&Self::key(billable, period, threshold))
    }

    pub(crate) fn insert(
        &self,
        billable: &Billable,
        period: &Period,
        threshold: Decimal,
        now: DateTime<Utc>,
    ) {
        let mut set = self.lock();
        if set.len() >= Self::MAX {
            set.retain(|(_, _, end, _)| *end > now);
            if set.len() >= Self::MAX {
                set.clear();
            }
        }
        set.insert(Self::key(billable, period, threshold));
    }
}

/// The shared metering service: cheap to clone (an `Arc` inside), generic over the store.
///
/// ```
/// use ai_metering_core::{Metering, store::MemoryStore};
/// let metering = Metering::new(MemoryStore::new());
/// let _meter = metering.meter(); // a fresh builder per call
/// ```
pub struct Metering<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for Metering<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Store> From<S> for Metering<S> {
    /// [`Metering::new`]: so that APIs taking `impl Into<Metering<S>>` accept a bare store.
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

impl<S> fmt::Debug for Metering<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metering")
            .field("config", &self.inner.config)
            .field("clock", &self.inner.clock)
            .field("events", &self.inner.events)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Metering<S> {
    /// Metering over `store` with the built-in price catalog and default settings.
    pub fn new(store: S) -> Self {
        Self::builder(store).build()
    }

    /// A builder to set the catalog, configuration, clock and event sinks.
    pub fn builder(store: S) -> MeteringBuilder<S> {
        MeteringBuilder {
            store,
            catalog: None,
            config: MeteringConfig::default(),
            clock: Arc::new(SystemClock),
            events: Events::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The price catalog.
    pub fn catalog(&self) -> &PriceCatalog {
        &self.inner.catalog
    }

    /// The settings.
    pub fn config(&self) -> &MeteringConfig {
        &self.inner.config
    }

    /// The current instant, from the configured clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// This metering with its store behind a [`DynStore`]: the same store, catalog,
    /// configuration, clock and event sinks, for code that must not name the store type
    /// (the tower crate's `RemainingQuota` without a type parameter). Made once and kept;
    /// on a `Metering<DynStore>` it is the metering itself.
    ///
    /// The erased metering starts its own background sweeper if it reserves first (sweeps
    /// are idempotent, so two sweepers over one store are harmless).
    ///
    /// ```
    /// use ai_metering_core::{Metering, store::{DynStore, MemoryStore}};
    /// let metering = Metering::new(MemoryStore::new());
    /// let erased: &Metering<DynStore> = metering.erased();
    /// assert!(erased.store().type_name().ends_with("MemoryStore"));
    /// ```
    pub fn erased(&self) -> &Metering<DynStore> {
        if let Some(same) = (self as &dyn std::any::Any).downcast_ref::<Metering<DynStore>>() {
            return same;
        }
        self.inner.erased.get_or_init(|| Metering {
            inner: Arc::new(Inner {
                store: Arc::new(DynStore::from_arc(Arc::clone(&self.inner.store))),
                catalog: self.inner.catalog.clone(),
                config: self.inner.config.clone(),
                clock: Arc::clone(&self.inner.clock),
                events: self.inner.events.clone(),
                sweeper: std::sync::Once::new(),
                erased: std::sync::OnceLock::new(),
                claimed: Arc::clone(&self.inner.claimed),
            }),
        })
    }

    /// The cost of one call: the `given` cost when there is one (in the catalog's
    /// currency), else the catalog's price; a [`MANUAL_PROVIDER`] model without a catalog
    /// price costs nothing.
    pub(crate) fn price_call(
        &self,
        provider: &str,
        model: &str,
        usage: &crate::usage::TokenUsage,
        given: Option<Money>,
    ) -> Result<CostBreakdown> {
        let catalog = self.catalog();
        if let Some(cost) = given {
            if cost.currency != catalog.currency() {
                return Err(Error::CurrencyMismatch {
                    left: cost.currency.to_string(),
                    right: catalog.currency().to_string(),
                });
            }
            if cost.amount.is_sign_negative() {
                return Err(Error::InvalidInput(format!(
                    "a call's cost must not be negative, got {cost}"
                )));
            }
            return Ok(CostBreakdown::given(cost));
        }
        if provider == MANUAL_PROVIDER && catalog.price(provider, model).is_none() {
            // Tokens counted by the app with no price anywhere: recorded at zero, flagged
            // unpriced so that reports can tell it from a free call.
            return Ok(CostBreakdown::unpriced(
                catalog.currency(),
                catalog.version(),
            ));
        }
        catalog.cost(provider, model, usage)
    }

    /// A fresh [`Meter`] builder for one call.
    pub fn meter(&self) -> Meter<S> {
        Meter::new(self.clone())
    }

    /// Drops the reservations and credit holds that expired by now (calls that never came
    /// back), giving their amounts back, and announces the subscriptions that expired
    /// ([`announce_expired_subscriptions`](Self::announce_expired_subscriptions)). The
    /// background sweeper (see [`MeteringConfig::sweep_interval`]) calls this; so can an app
    /// or a test.
    ///
    /// ```
    /// use ai_metering_core::{Metering, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = Metering::new(MemoryStore::new()).sweep().await.unwrap();
    /// assert_eq!(report.total(), 0);
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let now = self.now();
        let store = self.store();
        let reservations = store.expire_reservations(now).await?;
        let holds = store.expire_credit_holds(now).await?;
        let expired = self.announce_expired_subscriptions(now).await?;
        Ok(SweepReport {
            reservations,
            holds,
            expired_subscriptions: expired,
        })
    }

    /// Emits `SubscriptionExpired` once for each subscription that expired by `now` and was
    /// not announced yet (by this or another instance); returns how many.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn announce_expired_subscriptions(&self, now: DateTime<Utc>) -> Result<u64> {
        const PAGE: u64 = 500;
        let mut announced = 0_u64;
        loop {
            let expired = self.store().claim_expired_subscriptions(now, PAGE).await?;
            let count = expired.len() as u64;
            for (_, subscription) in expired {
                // Claimed subscriptions have an end; `now` only as a fallback.
                let ended_at = subscription.ended_at().unwrap_or(now);
                self.emit(MeterEvent::SubscriptionExpired {
                    billable: subscription.billable,
                    ended_at,
                });
            }
            announced = announced.saturating_add(count);
            if count < PAGE {
                return Ok(announced);
            }
        }
    }

    /// Starts the background sweeper once, if configured and possible (see
    /// [`MeteringConfig::sweep_interval`]).
    pub(crate) fn ensure_sweeper(&self) {
        // Every reservation calls this: once the sweeper runs, one atomic load.
        if self.inner.sweeper.is_completed() {
            return;
        }
        let Some(every) = self.inner.config.sweep_interval else {
            return;
        };
        if !self.inner.clock.follows_real_time() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.sweeper.call_once(|| {
            let weak = Arc::downgrade(&self.inner);
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await; // the first tick is immediate
                loop {
                    ticks.tick().await;
                    // Ends with the last Metering: the task holds no strong reference.
                    let Some(inner) = weak.upgrade() else { return };
                    let metering = Metering { inner };
                    match metering.sweep().await {
                        Ok(report) if report.total() > 0 => {
                            tracing::info!(target: "ai_metering", reservations = report.reservations, holds = report.holds, "swept expired reservations and credit holds");
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(target: "ai_metering", %error, "could not sweep expired reservations; trying again later");
                        }
                    }
                }
            });
        });
    }

    /// Emits an event to `tracing` and every registered sink.
    pub fn emit(&self, event: MeterEvent) {
        self.inner.events.emit(event);
    }

    /// Adds prepaid credits to `billable`'s wallet in `amount`'s currency and emits
    /// `CreditsAdded`; returns the ledger entry.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Currency, Metering, Money, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metering = Metering::new(MemoryStore::new());
    /// let ten = Money::new(10.into(), Currency::USD);
    /// let tx = metering.add_credits(&Billable::new("team", "acme"), ten, "top-up").await.unwrap();
    /// assert_eq!(tx.balance_after, 10.into());
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails or the amount is not positive.
    pub async fn add_credits(
        &self,
        billable: &Billable,
        amount: crate::money::Money,
        reason: &str,
    ) -> Result<crate::store::CreditTransaction> {
        let tx = self
            .inner
            .store
            .add_credits(billable, amount, reason, self.now())
            .await?;
        self.emit(MeterEvent::CreditsAdded {
            billable: billable.clone(),
            amount,
            reason: tx.reason.clone(),
            balance_after: tx.balance_after,
        });
        Ok(tx)
    }

    /// Adds a credit grant (an amount with a burn-down priority, an optional expiry and
    /// rollover rule; see [`crate::grants`]) to `billable`'s wallet in the grant's currency,
    /// emits `CreditsAdded`, and returns the stored grant with its ledger entry. Calls in
    /// credits mode then spend the wallet's grants, in burn-down order, before its other
    /// credits; an expired grant stops counting on its own.
    ///
    /// ```
    /// use ai_metering_core::store::{MemoryStore, NewGrant};
    /// use ai_metering_core::{Billable, Currency, Metering, Money};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metering = Metering::new(MemoryStore::new());
    /// let promo = NewGrant::new(Money::new(5.into(), Currency::USD), metering.now())
    ///     .expiring_at(metering.now() + chrono::Duration::days(30));
    /// let team = Billable::new("team", "acme");
    /// let (grant, tx) = metering.add_grant(&team, &promo, "welcome offer").await.unwrap();
    /// assert_eq!(tx.grants[0].grant, grant.grant.id);
    /// assert_eq!(tx.balance_after, 5.into());
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails or refuses the grant (see
    /// [`NewGrant::validate`](crate::store::NewGrant::validate)).
    pub async fn add_grant(
        &self,
        billable: &Billable,
        grant: &crate::store::NewGrant,
        reason: &str,
    ) -> Result<(crate::store::WalletGrant, crate::store::CreditTransaction)> {
        let (stored, tx) = self
            .inner
            .store
            .add_grant(billable, grant, reason, self.now())
            .await?;
        self.emit(MeterEvent::CreditsAdded {
            billable: billable.clone(),
            amount: grant.amount,
            reason: tx.reason.clone(),
            balance_after: tx.balance_after,
        });
        Ok((stored, tx))
    }

    /// Adds prepaid credits as [`add_credits`](Self::add_credits) does, keeping `metadata`
    /// (a JSON object: a payment id, an invoice number...) in the ledger entry. The metadata
    /// is validated and its secrets redacted as a call's metadata is.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Currency, Metering, Money, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metering = Metering::new(MemoryStore::new());
    /// let tx = metering
    ///     .add_credits_with_metadata(
    ///         &Billable::new("user", 42),
    ///         Money::new(20.into(), Currency::USD),
    ///         "top-up",
    ///         serde_json::json!({"payment_id": "pi_123"}),
    ///     )
    ///     .await
    ///     .unwrap();
    /// assert_eq!(tx.metadata["payment_id"], "pi_123");
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidMetadata`] for metadata that is not an object or is too large;
    /// [`Error::Store`] as [`add_credits`](Self::add_credits).
    pub async fn add_credits_with_metadata(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        metadata: serde_json::Value,
    ) -> Result<crate::store::CreditTransaction> {
        let metadata = crate::validate::Metadata::new(metadata)?;
        let tx = self
            .inner
            .store
            .add_credits_with_metadata(billable, amount, reason, metadata.as_map(), self.now())
            .await?;
        self.emit(MeterEvent::CreditsAdded {
            billable: billable.clone(),
            amount,
            reason: tx.reason.clone(),
            balance_after: tx.balance_after,
        });
        Ok(tx)
    }

    /// Whether `billable`'s wallet in `amount`'s currency can pay `amount` now: its balance
    /// minus what calls in flight hold, with the configured
    /// [overdraft](MeteringConfig::overdraft). A snapshot for display or a pre-check; calls
    /// are protected by their own atomic hold, not by this.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Currency, Metering, Money, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metering = Metering::new(MemoryStore::new());
    /// let acme = Billable::new("team", "acme");
    /// let five = Money::new(5.into(), Currency::USD);
    /// assert!(!metering.has_credits(&acme, five).await.unwrap());
    /// metering.add_credits(&acme, five, "top-up").await.unwrap();
    /// assert!(metering.has_credits(&acme, five).await.unwrap());
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn has_credits(&self, billable: &Billable, amount: Money) -> Result<bool> {
        let now = self.now();
        let wallet = self
            .inner
            .store
            .wallet_at(billable, amount.currency, now)
            .await?;
        Ok(self
            .inner
            .config
            .overdraft
            .permits(wallet.available(), amount.amount))
    }

    /// Switches the billing mode of `billable`'s current subscription (to
    /// [`BillingMode::Credits`]: calls are paid from the wallet; to [`BillingMode::Plan`]:
    /// they count against the plan only) and emits
    /// [`MeterEvent::BillingModeChanged`]. Written with a compare-and-swap, so a concurrent
    /// change of the subscription is reread, not undone. Switching to the mode already in
    /// force changes nothing and emits nothing. Returns the subscription as stored.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Metering, plan::{BillingMode, Plan, Subscription}};
    /// use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.upsert_plan(&Plan::new("pro", "Pro")).await.unwrap();
    /// let acme = Billable::new("team", "acme");
    /// store.insert_subscription(&Subscription::new(acme.clone(), "pro", chrono::Utc::now())).await.unwrap();
    /// let metering = Metering::new(store);
    /// let sub = metering.set_billing_mode(&acme, BillingMode::Credits).await.unwrap();
    /// assert_eq!(sub.billing_mode, BillingMode::Credits);
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::NoSubscription`] when `billable` has no active subscription;
    /// [`Error::Store`] when the store fails or the subscription keeps changing.
    pub async fn set_billing_mode(
        &self,
        billable: &Billable,
        mode: BillingMode,
    ) -> Result<Subscription> {
        const ATTEMPTS: usize = 5;
        let store = &self.inner.store;
        for _ in 0..ATTEMPTS {
            let Some((id, current)) = store.current_subscription(billable, self.now()).await?
            else {
                return Err(Error::NoSubscription {
                    billable: billable.clone(),
                });
            };
            let from = current.billing_mode;
            if from == mode {
                return Ok(current);
            }
            let mut new = current.clone();
            new.billing_mode = mode;
            if store.replace_subscription(id, &current, &new).await? {
                self.emit(MeterEvent::BillingModeChanged {
                    billable: billable.clone(),
                    from,
                    to: mode,
                });
                return Ok(new);
            }
        }
        Err(Error::Store(crate::store::StoreError::new(
            crate::store::StoreErrorKind::Conflict,
            format!(
                "the subscription of {billable} kept changing; its billing mode was not switched"
            ),
        )))
    }

    /// What `billable` is entitled to at `at`.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; [`Error::UnknownPlan`] when the subscription
    /// names a missing plan; [`Error::NoSubscription`] when a subscription is required and
    /// there is none.
    pub async fn entitlement(&self, billable: &Billable, at: DateTime<Utc>) -> Result<Entitlement> {
        let store = &self.inner.store;
        let config = &self.inner.config;
        let subscription = store.current_subscription(billable, at).await?;
        let Some((id, sub)) = subscription else {
            if config.require_subscription {
                return Err(Error::NoSubscription {
                    billable: billable.clone(),
                });
            }
            return Ok(Entitlement {
                billable: billable.clone(),
                subscription: None,
                plan: None,
                limits: Limits::UNLIMITED,
                period: Some(config.period.period_at(at)?),
                overage_policy: config.overage_policy,
                billing_mode: BillingMode::Plan,
            });
        };
        let plan = match &sub.plan {
            Some(slug) => Some(
                store
                    .plan(slug)
                    .await?
                    .ok_or_else(|| Error::UnknownPlan(slug.clone()))?,
            ),
            None => None,
        };
        let override_ = store.limit_override_at(billable, at).await?;
        let limits = match &plan {
            Some(plan) => Limits::effective(plan, override_.as_ref()),
            None => Limits::UNLIMITED,
        };
        let spec = match sub.time_zone {
            Some(zone) => config.period.in_timezone(zone),
            None => config.period,
        };
        let spec = if config.anchor_to_subscription {
            spec.anchored_at(sub.started_at)
        } else {
            spec
        };
        let overage_policy = plan
            .as_ref()
            .and_then(|p| p.overage_policy)
            .unwrap_or(config.overage_policy);
        let period = since_plan_change(spec.period_at(at)?, &sub);
        Ok(Entitlement {
            billable: billable.clone(),
            billing_mode: sub.billing_mode,
            subscription: Some((id, sub)),
            plan,
            limits,
            period: Some(period),
            overage_policy,
        })
    }

    /// Moves `billable`'s current subscription to `plan` at `at`, and emits `PlanChanged`.
    ///
    /// Within the period that contains `at`, the new plan's limits apply to the usage since
    /// `at`: what was used before counted against the old plan's limits (and was refused by
    /// them), and does not count against the new plan's. From the next period on, the new
    /// plan applies to whole periods. A change to the plan already in force changes nothing.
    ///
    /// The write is a compare-and-swap of the subscription read, tried again (a few times)
    /// when another instance changed it meanwhile.
    ///
    /// ```
    /// use ai_metering_core::plan::{Plan, Subscription};
    /// use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
    /// use ai_metering_core::{Billable, Metering};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// store.upsert_plan(&Plan::new("basic", "Basic").with_token_limit(1_000)).await.unwrap();
    /// store.upsert_plan(&Plan::new("pro", "Pro").with_token_limit(50_000)).await.unwrap();
    /// let team = Billable::new("team", "acme");
    /// let start = chrono::Utc::now() - chrono::Duration::days(40);
    /// store.insert_subscription(&Subscription::new(team.clone(), "basic", start)).await.unwrap();
    ///
    /// let metering = Metering::new(store);
    /// let change = metering.change_plan(&team, "pro", metering.now()).await.unwrap();
    /// assert_eq!((change.from.as_deref(), change.to.as_str()), (Some("basic"), "pro"));
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`Error::NoSubscription`] without a subscription at `at`; [`Error::UnknownPlan`];
    /// [`Error::Store`], including when the subscription kept changing under the write.
    pub async fn change_plan(
        &self,
        billable: &Billable,
        plan: &str,
        at: DateTime<Utc>,
    ) -> Result<PlanChange> {
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            let Some((id, current)) = self.store().current_subscription(billable, at).await? else {
                return Err(Error::NoSubscription {
                    billable: billable.clone(),
                });
            };
            if let Some(change) = self
                .change_subscription_plan(id, &current, plan, at)
                .await?
            {
                return Ok(change);
            }
        }
        Err(Error::Store(crate::store::StoreError::new(
            crate::store::StoreErrorKind::Conflict,
            format!("the subscription of {billable} kept changing; its plan was not changed"),
        )))
    }

    /// Moves subscription `id` to `plan` at `at` only if it still equals `expected` (a
    /// compare-and-swap), and emits `PlanChanged`; `Ok(None)` when it changed since
    /// `expected` was read (read it again and decide again). For callers that showed the
    /// subscription to someone first, such as the CLI's `migrate-plan`.
    ///
    /// # Errors
    /// [`Error::UnknownPlan`]; [`Error::Store`].
    pub async fn change_subscription_plan(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        plan: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<PlanChange>> {
        let store = self.store();
        if store.plan(plan).await?.is_none() {
            return Err(Error::UnknownPlan(plan.to_owned()));
        }
        let from = expected.plan.clone();
        if from.as_deref() == Some(plan) {
            return Ok(Some(PlanChange {
                billable: expected.billable.clone(),
                from,
                to: plan.to_owned(),
                at,
                changed: false,
            }));
        }
        let moved = expected.with_plan(plan, at);
        if !store.replace_subscription(id, expected, &moved).await? {
            return Ok(None);
        }
        self.emit(MeterEvent::PlanChanged {
            billable: expected.billable.clone(),
            from: from.clone(),
            to: plan.to_owned(),
        });
        Ok(Some(PlanChange {
            billable: expected.billable.clone(),
            from,
            to: plan.to_owned(),
            at,
            changed: true,
        }))
    }

    /// Evaluates `billable`'s limits now, counting recorded and reserved usage, as if a call
    /// asked for `requested`. Nothing is reserved.
    ///
    /// # Errors
    /// As [`entitlement`](Self::entitlement).
    pub async fn check(&self, billable: &Billable, requested: UsageTotals) -> Result<QuotaStatus> {
        let now = self.now();
        let entitlement = self.entitlement(billable, now).await?;
        self.status_of(entitlement, requested, now).await
    }

    /// Re-evaluates `status` against the usage recorded and reserved now, keeping its
    /// entitlement (subscription, plan, limits, period): one store read instead of the four
    /// of [`check`](Self::check). For reporting what is left right after a call the
    /// entitlement was resolved for, such as the quota headers of a response.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn refresh(&self, status: &QuotaStatus) -> Result<QuotaStatus> {
        self.status_of(status.entitlement.clone(), UsageTotals::ZERO, self.now())
            .await
    }

    pub(crate) async fn status_of(
        &self,
        entitlement: Entitlement,
        requested: UsageTotals,
        now: DateTime<Utc>,
    ) -> Result<QuotaStatus> {
        let check = match &entitlement.period {
            Some(period) if !entitlement.limits.is_unlimited() => {
                let usage = self
                    .inner
                    .store
                    .period_usage(&entitlement.billable, period, now)
                    .await?;
                evaluate(
                    &entitlement.limits,
                    usage.committed(),
                    requested,
                    &self.inner.config.thresholds,
                )
                .with_reset_at(period.end)
            }
            _ => LimitCheck::unlimited(),
        };
        Ok(QuotaStatus { entitlement, check })
    }
}

/// A billable's entitlement and the limit check of its current usage.
#[derive(Debug, Clone)]
pub struct QuotaStatus {
    /// Subscription, plan, limits, period.
    pub entitlement: Entitlement,
    /// The evaluation.
    pub check: LimitCheck,
}

impl QuotaStatus {
    /// True when a call must be refused: a limit is reached under the block policy.
    pub fn is_blocked(&self) -> bool {
        !self.check.allowed && self.entitlement.overage_policy == OveragePolicy::Block
    }
}

/// Builds a [`Metering`].
pub struct MeteringBuilder<S> {
    store: S,
    catalog: Option<PriceCatalog>,
    config: MeteringConfig,
    clock: Arc<dyn Clock>,
    events: Events,
}

impl<S> fmt::Debug for MeteringBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Store> MeteringBuilder<S> {
    /// Uses this price catalog instead of the built-in one.
    pub fn catalog(mut self, catalog: PriceCatalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: MeteringConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the period rules.
    pub fn period(mut self, period: PeriodSpec) -> Self {
        self.config.period = period;
        self
    }

    /// Uses this clock (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Registers an event sink.
    pub fn event_sink(mut self, sink: impl EventSink) -> Self {
        self.events.add(Arc::new(sink));
        self
    }

    /// Builds the service.
    pub fn build(self) -> Metering<S> {
        Metering {
            inner: Arc::new(Inner {
                store: Arc::new(self.store),
                catalog: self.catalog.unwrap_or_else(PriceCatalog::builtin),
                config: self.config,
                clock: self.clock,
                events: self.events,
                sweeper: std::sync::Once::new(),
                erased: std::sync::OnceLock::new(),
                claimed: Arc::default(),
            }),
        }
    }
}
