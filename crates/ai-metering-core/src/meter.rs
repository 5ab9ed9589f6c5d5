//! [`Meter`]: meter one AI call, the original's fluent `AiMeter` done right.
//!
//! Every call gets a fresh builder (no shared mutable state can bill the wrong customer), and
//! the limit is enforced by an atomic reservation *before* the provider is called:
//!
//! 1. validate the input (billable, provider and model, feature, metadata);
//! 2. resolve the subscription, plan and override;
//! 3. check the model has a price (the catalog's unknown-model policy);
//! 4. return the stored result for a repeated idempotency key, without calling the provider;
//! 5. reserve the estimate against the period's limits (and hold credits in credits mode);
//! 6. call the provider;
//! 7. extract the usage, settle the reservation and insert the usage row atomically;
//! 8. settle the credit hold, record overage, emit events.
//!
//! On a provider error the reservation and hold are released, `ProviderCallFailed` is
//! emitted and the caller gets its own error back.
//!
//! ```
//! use ai_metering_core::{Billable, Metering, TokenUsage, store::MemoryStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let metering = Metering::new(MemoryStore::new());
//! let metered = metering
//!     .meter()
//!     .billable(Billable::new("user", 42))
//!     .provider("openai", "gpt-4o-mini")
//!     .feature("chat")
//!     .manual_usage(TokenUsage::new(100, 200).unwrap())
//!     .call(async { Ok::<_, std::io::Error>("hello") })
//!     .await
//!     .unwrap();
//! assert_eq!(metered.usage.total_tokens(), 300);
//! # });
//! ```

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::billable::{Billable, Tenant};
use crate::error::{Error, Result};
use crate::events::MeterEvent;
use crate::limit::{LimitCheck, UsageTotals, evaluate};
use crate::metering::{Entitlement, Metering};
use crate::money::Money;
use crate::plan::{BillingMode, OveragePolicy};
use crate::pricing::CostBreakdown;
use crate::provider::{Provider, extract_usage};
use crate::store::{
    CreditOutcome, HoldId, NewOverage, Overdraft, Recorded, ReservationId, ReserveOutcome,
    ReserveRequest, Store, UsageEntry, UsageRecord,
};
use crate::usage::TokenUsage;
use crate::validate::{FeatureName, Metadata};

/// Why a metered call did not produce a [`Metered`] response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError<T, E> {
    /// The provider call itself failed; this is the caller's own error, unchanged.
    #[error("provider call failed: {0}")]
    Provider(E),
    /// Metering refused or failed before the provider was called (limit exceeded,
    /// insufficient credits, invalid input, unknown model, store down...).
    #[error(transparent)]
    Metering(Error),
    /// The idempotency key was already used by this billable: the stored record is returned
    /// and the provider was not called again.
    #[error("already recorded under this idempotency key (usage #{})", .0.id)]
    AlreadyRecorded(Box<UsageRecord>),
    /// The provider answered, but its usage could not be determined or stored. The response
    /// is handed back; the reservation stays in force until it expires, so the spend still
    /// counts against the limit meanwhile.
    #[error("the provider answered but its usage was not recorded: {error}")]
    NotRecorded {
        /// The provider's response.
        response: T,
        /// What went wrong.
        error: Error,
    },
}

impl<T, E> From<Error> for MeterError<T, E> {
    fn from(e: Error) -> Self {
        Self::Metering(e)
    }
}

/// A response with what metering learned about it.
#[derive(Debug, Clone)]
pub struct Metered<T> {
    /// The provider's response.
    pub response: T,
    /// The token usage recorded.
    pub usage: TokenUsage,
    /// Its cost.
    pub cost: CostBreakdown,
    /// The limit check after this call.
    pub check: LimitCheck,
    /// The stored usage row.
    pub record: UsageRecord,
}

impl<T> Metered<T> {
    /// The id of the stored usage row.
    pub fn record_id(&self) -> i64 {
        self.record.id
    }
}

/// A fresh builder for one metered call. Get one from [`Metering::meter`].
#[must_use = "a Meter does nothing until `.call(...)`"]
pub struct Meter<S> {
    metering: Metering<S>,
    billable: Option<Billable>,
    user_id: Option<String>,
    tenant: Option<Tenant>,
    provider: Option<(String, String)>,
    feature: Option<String>,
    billing_mode: Option<BillingMode>,
    meta: Option<serde_json::Value>,
    idempotency_key: Option<String>,
    estimate_usage: Option<TokenUsage>,
    estimate_cost: Option<Decimal>,
    manual_usage: Option<TokenUsage>,
    adopted: Option<Reservation<S>>,
}

impl<S> fmt::Debug for Meter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("billable", &self.billable)
            .field("provider", &self.provider)
            .field("feature", &self.feature)
            .field("idempotency_key", &self.idempotency_key)
            .field("adopted", &self.adopted)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Meter<S> {
    pub(crate) fn new(metering: Metering<S>) -> Self {
        Self {
            metering,
            billable: None,
            user_id: None,
            tenant: None,
            provider: None,
            feature: None,
            billing_mode: None,
            meta: None,
            idempotency_key: None,
            estimate_usage: None,
            estimate_cost: None,
            manual_usage: None,
            adopted: None,
        }
    }

    /// Who pays (required).
    pub fn billable(mut self, billable: Billable) -> Self {
        self.billable = Some(billable);
        self
    }

    /// The acting user, recorded with the usage.
    pub fn user(mut self, user_id: impl ToString) -> Self {
        self.user_id = Some(user_id.to_string());
        self
    }

    /// The tenant, recorded with the usage.
    pub fn tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// The provider and model (required).
    pub fn provider(mut self, provider: impl Into<String>, model: impl Into<String>) -> Self {
        self.provider = Some((provider.into(), model.into()));
        self
    }

    /// The feature name (1 to 100 characters of `[A-Za-z0-9_.:-]`).
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.feature = Some(feature.into());
        self
    }

    /// Requires the subscription to be in this billing mode; the call is refused otherwise.
    /// (The original accepted this setting and ignored it.)
    pub fn billing_mode(mut self, mode: BillingMode) -> Self {
        self.billing_mode = Some(mode);
        self
    }

    /// Metadata to store with the usage (a JSON object; secrets are redacted). Repeated
    /// calls merge, later keys winning.
    pub fn meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = Some(match (self.meta.take(), meta) {
            (Some(serde_json::Value::Object(mut old)), serde_json::Value::Object(new)) => {
                old.extend(new);
                serde_json::Value::Object(old)
            }
            (_, new) => new,
        });
        self
    }

    /// An idempotency key, unique per billable: a repeated key returns the stored record
    /// without calling the provider again.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The expected usage, reserved against the limits before the call. Its cost is priced
    /// from the catalog. Without an estimate the call is allowed while the period is not
    /// exhausted (the original's rule); with exact estimates no limit can be overshot.
    pub fn estimate(mut self, usage: TokenUsage) -> Self {
        self.estimate_usage = Some(usage);
        self
    }

    /// The estimated cost to reserve (and, in credits mode, to hold), instead of pricing
    /// the [`estimate`](Self::estimate) from the catalog; in the catalog's currency. Useful
    /// when the model is not known yet (see [`begin_deferred`](Self::begin_deferred)).
    ///
    /// ```
    /// use ai_metering_core::{Metering, store::MemoryStore};
    /// use rust_decimal::Decimal;
    /// let meter = Metering::new(MemoryStore::new()).meter().estimate_cost(Decimal::new(5, 2));
    /// # let _ = meter;
    /// ```
    pub fn estimate_cost(mut self, cost: Decimal) -> Self {
        self.estimate_cost = Some(cost);
        self
    }

    /// Settles `reservation` instead of reserving again: for a call whose estimate was
    /// already reserved upstream (by the tower `QuotaLayer`, or by
    /// [`begin_deferred`](Self::begin_deferred)). This builder's provider and model, and its
    /// user, tenant, feature, metadata and idempotency key when set, complete the
    /// reservation; its [`estimate`](Self::estimate) is not reserved again. A different
    /// billable is refused. If the call fails before reaching the provider, the
    /// reservation is released.
    ///
    /// See [`begin_deferred`](Self::begin_deferred) for an example.
    pub fn adopt(mut self, reservation: Reservation<S>) -> Self {
        self.adopted = Some(reservation);
        self
    }

    /// The usage to record, replacing whatever the response reports.
    pub fn manual_usage(mut self, usage: TokenUsage) -> Self {
        self.manual_usage = Some(usage);
        self
    }

    /// Calls the provider and meters it; the usage is read from the response serialised to
    /// JSON, in the provider's format (see [`extract_usage`]).
    ///
    /// # Errors
    /// See [`MeterError`].
    pub async fn call<T, E, F>(self, call: F) -> Result<Metered<T>, MeterError<T, E>>
    where
        T: Serialize,
        E: fmt::Display,
        F: Future<Output = Result<T, E>>,
    {
        let provider_name = self
            .provider
            .as_ref()
            .or_else(|| {
                self.adopted
                    .as_ref()
                    .and_then(|r| r.template.provider.as_ref())
            })
            .map(|(p, _)| p.clone());
        let needs_extraction = self.manual_usage.is_none();
        let provider = match (needs_extraction, provider_name.as_deref()) {
            (true, Some(name)) => Some(Provider::from_name(name).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "no usage format is known for provider {name:?}: use call_with with an extractor, or manual_usage"
                ))
            })?),
            _ => None,
        };
        self.call_with(call, move |response: &T| {
            let Some(provider) = provider else {
                return Err(Error::InvalidInput("no provider given".into()));
            };
            let json = serde_json::to_value(response).map_err(|e| Error::MalformedResponse {
                provider: provider.as_str(),
                reason: format!("the response does not serialise to JSON: {e}"),
            })?;
            extract_usage(provider, &json)
        })
        .await
    }

    /// Calls the provider and meters it, reading the usage with `extract`.
    ///
    /// # Errors
    /// See [`MeterError`].
    pub async fn call_with<T, E, F, X>(
        self,
        call: F,
        extract: X,
    ) -> Result<Metered<T>, MeterError<T, E>>
    where
        E: fmt::Display,
        F: Future<Output = Result<T, E>>,
        X: FnOnce(&T) -> Result<TokenUsage>,
    {
        let manual = self.manual_usage;
        let reservation = match self.reserve().await {
            Ok(r) => r,
            Err(ReserveError::Duplicate(record)) => {
                return Err(MeterError::AlreadyRecorded(record));
            }
            Err(ReserveError::Metering(e)) => return Err(MeterError::Metering(e)),
        };
        let response = match call.await {
            Ok(r) => r,
            Err(e) => {
                reservation.fail(&e.to_string()).await;
                return Err(MeterError::Provider(e));
            }
        };
        let (usage, estimated) = match manual.map(Ok).unwrap_or_else(|| extract(&response)) {
            Ok(usage) => (usage, false),
            Err(error) => match reservation.estimate_usage {
                Some(estimate) if estimate.total_tokens() > 0 => {
                    tracing::warn!(target: "ai_metering", %error, "usage not reported; recording the estimate");
                    (estimate, true)
                }
                _ => return Err(MeterError::NotRecorded { response, error }),
            },
        };
        match reservation.record(usage, estimated).await {
            Ok(outcome) => Ok(Metered {
                response,
                usage,
                cost: outcome.record.entry.cost.clone(),
                check: outcome.check,
                record: outcome.record,
            }),
            Err(error) => Err(MeterError::NotRecorded { response, error }),
        }
    }

    /// Validates, checks the limits and reserves the estimate, without calling anything:
    /// for calls whose usage is known only later (streams). Record the usage with
    /// [`Reservation::record`] or give it back with [`Reservation::release`].
    ///
    /// With an [adopted](Self::adopt) reservation nothing new is reserved: the adopted one
    /// is completed with this builder's provider, model and details and returned.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`], [`Error::InsufficientCredits`], invalid input, store
    /// failures; a repeated idempotency key is [`Error::InvalidInput`] here (use
    /// [`call`](Self::call) for replay semantics).
    pub async fn begin(self) -> Result<Reservation<S>> {
        match self.reserve().await {
            Ok(r) => Ok(r),
            Err(ReserveError::Metering(e)) => Err(e),
            Err(ReserveError::Duplicate(record)) => Err(Error::InvalidInput(format!(
                "idempotency key already used by usage #{}",
                record.id
            ))),
        }
    }

    /// Like [`begin`](Self::begin), but the provider and model may still be unknown: for
    /// middleware that reserves a route's estimate before the handler picks a model (the
    /// tower `QuotaLayer`). The estimate's cost is the [`estimate_cost`](Self::estimate_cost)
    /// if given, else the catalog price when a provider and model are set, else zero.
    ///
    /// The reservation is completed later by a [`Meter`] that [adopts](Self::adopt) it, or
    /// by [`Reservation::with_provider`] before [`Reservation::record`].
    ///
    /// ```
    /// use ai_metering_core::{Billable, Metering, TokenUsage, store::MemoryStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metering = Metering::new(MemoryStore::new());
    /// let reservation = metering
    ///     .meter()
    ///     .billable(Billable::new("user", 42))
    ///     .estimate(TokenUsage::new(500, 500).unwrap())
    ///     .begin_deferred()
    ///     .await
    ///     .unwrap();
    /// // ... later, once the handler knows the model:
    /// let metered = metering
    ///     .meter()
    ///     .adopt(reservation)
    ///     .provider("openai", "gpt-4o-mini")
    ///     .manual_usage(TokenUsage::new(100, 200).unwrap())
    ///     .call(async { Ok::<_, std::io::Error>("hello") })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(metered.usage.total_tokens(), 300);
    /// # });
    /// ```
    ///
    /// # Errors
    /// As [`begin`](Self::begin).
    pub async fn begin_deferred(self) -> Result<Reservation<S>> {
        if self.adopted.is_some() {
            return self.begin().await;
        }
        match self.reserve_new(false).await {
            Ok(r) => Ok(r),
            Err(ReserveError::Metering(e)) => Err(e),
            Err(ReserveError::Duplicate(record)) => Err(Error::InvalidInput(format!(
                "idempotency key already used by usage #{}",
                record.id
            ))),
        }
    }

    async fn reserve(mut self) -> Result<Reservation<S>, ReserveError> {
        match self.adopted.take() {
            Some(mut adopted) => match self.complete(&mut adopted).await {
                Ok(()) => Ok(adopted),
                Err(e) => {
                    // The reservation was handed to this meter; give it back rather than
                    // let it count until it expires.
                    if let Err(release) = adopted.release().await {
                        tracing::warn!(target: "ai_metering", error = %release, "could not release an adopted reservation; it will expire");
                    }
                    Err(e)
                }
            },
            None => self.reserve_new(true).await,
        }
    }

    /// Validates this builder's input (shared by new and adopted reservations).
    fn validate(self, require_provider: bool) -> Result<Validated<S>> {
        let provider = match self.provider {
            Some((provider, model)) => {
                if provider.trim().is_empty() || model.trim().is_empty() {
                    return Err(Error::InvalidInput(
                        "provider and model must not be empty".into(),
                    ));
                }
                Some((provider, model))
            }
            None if require_provider => {
                return Err(Error::InvalidInput(
                    "no provider: call .provider(name, model) first".into(),
                ));
            }
            None => None,
        };
        let feature = self
            .feature
            .map(|f| FeatureName::new(&f).map(|f| f.as_str().to_owned()))
            .transpose()?;
        let metadata = match self.meta {
            Some(value) => Some(Metadata::new(value)?.as_map().clone()),
            None => None,
        };
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(Error::InvalidInput(
                "idempotency key must be 1 to 255 bytes".into(),
            ));
        }
        if let Some(cost) = self.estimate_cost
            && cost.is_sign_negative()
        {
            return Err(Error::InvalidInput(format!(
                "the estimated cost must not be negative, got {cost}"
            )));
        }
        Ok(Validated {
            metering: self.metering,
            billable: self.billable,
            user_id: self.user_id,
            tenant: self.tenant,
            provider,
            feature,
            billing_mode: self.billing_mode,
            metadata,
            idempotency_key: self.idempotency_key,
            estimate_usage: self.estimate_usage.or(self.manual_usage),
            estimate_cost: self.estimate_cost,
        })
    }

    /// Completes an adopted reservation with this builder's details. On error the caller
    /// releases it.
    async fn complete(self, adopted: &mut Reservation<S>) -> Result<(), ReserveError> {
        let v = self.validate(false)?;
        let provider = match v.provider.or_else(|| adopted.template.provider.take()) {
            Some(p) => p,
            None => {
                return Err(Error::InvalidInput(
                    "no provider: call .provider(name, model) first".into(),
                )
                .into());
            }
        };
        if let Some(billable) = &v.billable
            && billable != adopted.billable()
        {
            return Err(Error::InvalidInput(format!(
                "this meter is for {billable}, but the adopted reservation belongs to {}",
                adopted.billable()
            ))
            .into());
        }
        let billing_mode = adopted.entitlement.billing_mode;
        if let Some(mode) = v.billing_mode
            && mode != billing_mode
        {
            return Err(Error::InvalidInput(format!(
                "{} is billed in {billing_mode} mode, not {mode}",
                adopted.billable()
            ))
            .into());
        }
        // Unknown models fail here, before the provider is called.
        v.metering.catalog().cost(
            &provider.0,
            &provider.1,
            &v.estimate_usage.unwrap_or_default(),
        )?;
        let t = &mut adopted.template;
        if let Some(key) = &v.idempotency_key
            && let Some(record) = v
                .metering
                .store()
                .usage_by_idempotency_key(&t.billable, key)
                .await?
        {
            return Err(ReserveError::Duplicate(Box::new(record)));
        }
        t.provider = Some(provider);
        t.user_id = v.user_id.or(t.user_id.take());
        t.tenant = v.tenant.or(t.tenant.take());
        t.feature = v.feature.or(t.feature.take());
        if let Some(meta) = v.metadata {
            t.metadata.extend(meta);
        }
        t.idempotency_key = v.idempotency_key.or(t.idempotency_key.take());
        if adopted.estimate_usage.is_none() {
            adopted.estimate_usage = v.estimate_usage;
        }
        Ok(())
    }

    async fn reserve_new(self, require_provider: bool) -> Result<Reservation<S>, ReserveError> {
        let v = self.validate(require_provider)?;
        let metering = v.metering;
        let billable = v
            .billable
            .ok_or_else(|| Error::InvalidInput("no billable: call .billable(...) first".into()))?;

        let store = metering.store();
        let now = metering.now();
        let entitlement = metering.entitlement(&billable, now).await?;
        if let Some(mode) = v.billing_mode
            && mode != entitlement.billing_mode
        {
            return Err(Error::InvalidInput(format!(
                "{billable} is billed in {} mode, not {mode}",
                entitlement.billing_mode
            ))
            .into());
        }

        // Unknown models fail here, before anything is reserved or called.
        let estimate_usage = v.estimate_usage;
        let priced = match &v.provider {
            Some((provider, model)) => Some(metering.catalog().cost(
                provider,
                model,
                &estimate_usage.unwrap_or_default(),
            )?),
            None => None,
        };
        let estimate_cost = match (v.estimate_cost, &priced) {
            (Some(cost), priced) => Money::new(
                cost,
                priced
                    .as_ref()
                    .map_or_else(|| metering.catalog().currency(), |p| p.currency),
            ),
            (None, Some(p)) => Money::new(p.total, p.currency),
            (None, None) => Money::zero(metering.catalog().currency()),
        };
        let estimate = UsageTotals::new(
            estimate_usage.map_or(0, |u| u.total_tokens()),
            estimate_cost.amount,
        );

        if let Some(key) = &v.idempotency_key
            && let Some(record) = store.usage_by_idempotency_key(&billable, key).await?
        {
            return Err(ReserveError::Duplicate(Box::new(record)));
        }

        let period = match entitlement.period {
            Some(p) => p,
            None => metering.config().period.period_at(now)?,
        };
        let limits = if entitlement.enforces_limits() {
            entitlement.limits
        } else {
            crate::limit::Limits::UNLIMITED
        };
        let request = ReserveRequest {
            billable: billable.clone(),
            period,
            limits,
            amount: estimate,
            now,
            expires_at: now + metering.config().reservation_ttl,
        };
        let thresholds = &metering.config().thresholds;
        let (reservation_id, check) = match store.reserve(&request).await? {
            ReserveOutcome::Reserved { id, usage } => {
                let check = if entitlement.limits.is_unlimited() {
                    LimitCheck::unlimited()
                } else {
                    evaluate(
                        &entitlement.limits,
                        usage.committed(),
                        UsageTotals::ZERO,
                        thresholds,
                    )
                    .with_reset_at(period.end)
                };
                (id, check)
            }
            ReserveOutcome::Rejected { usage, .. } => {
                let check = evaluate(&entitlement.limits, usage.committed(), estimate, thresholds)
                    .with_reset_at(period.end);
                if let Some(limit) = check.exceeded {
                    metering.emit(MeterEvent::LimitReached {
                        billable: billable.clone(),
                        limit,
                        usage_percentage: check.usage_percentage,
                        period: Some(period),
                    });
                }
                return Err(Error::LimitExceeded {
                    check: Box::new(check),
                }
                .into());
            }
        };

        let hold = if entitlement.billing_mode == BillingMode::Credits {
            match credit_hold(&metering, &billable, estimate_cost, request.expires_at).await {
                Ok(hold) => hold,
                Err(e) => {
                    let _ = store.release(reservation_id).await;
                    return Err(e.into());
                }
            }
        } else {
            None
        };

        Ok(Reservation {
            metering: metering.clone(),
            entitlement,
            period,
            id: reservation_id,
            hold,
            check,
            estimate_usage,
            template: EntryTemplate {
                billable,
                user_id: v.user_id,
                tenant: v.tenant,
                provider: v.provider,
                feature: v.feature,
                metadata: v.metadata.unwrap_or_default(),
                idempotency_key: v.idempotency_key,
            },
        })
    }
}

enum ReserveError {
    Metering(Error),
    Duplicate(Box<UsageRecord>),
}

impl From<Error> for ReserveError {
    fn from(e: Error) -> Self {
        Self::Metering(e)
    }
}

impl From<crate::store::StoreError> for ReserveError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Metering(e.into())
    }
}

/// Everything [`Meter::validate`] accepted.
struct Validated<S> {
    metering: Metering<S>,
    billable: Option<Billable>,
    user_id: Option<String>,
    tenant: Option<Tenant>,
    provider: Option<(String, String)>,
    feature: Option<String>,
    billing_mode: Option<BillingMode>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    idempotency_key: Option<String>,
    estimate_usage: Option<TokenUsage>,
    estimate_cost: Option<Decimal>,
}

/// Holds the estimated cost of a credits-mode call. A zero estimate holds nothing (stores
/// accept only positive holds) but still requires the wallet to have room for a positive
/// amount, so that an empty wallet is refused before the provider is called.
///
/// Before refusing, holds left behind by calls that never came back (expired) are dropped
/// and the hold is tried once more: stale holds are only swept when they are in the way.
async fn credit_hold<S: Store>(
    metering: &Metering<S>,
    billable: &Billable,
    amount: Money,
    expires_at: DateTime<Utc>,
) -> Result<Option<HoldId>> {
    match try_credit_hold(metering, billable, amount, expires_at).await? {
        Ok(hold) => Ok(hold),
        Err(refusal) => {
            if metering.store().expire_credit_holds(metering.now()).await? == 0 {
                return Err(refusal);
            }
            try_credit_hold(metering, billable, amount, expires_at).await?
        }
    }
}

/// One attempt: `Ok(Err(InsufficientCredits))` when the wallet cannot cover `amount`.
async fn try_credit_hold<S: Store>(
    metering: &Metering<S>,
    billable: &Billable,
    amount: Money,
    expires_at: DateTime<Utc>,
) -> Result<Result<Option<HoldId>, Error>> {
    let store = metering.store();
    let overdraft = metering.config().overdraft;
    if amount.amount > Decimal::ZERO {
        return Ok(
            match store
                .hold_credits(billable, amount, overdraft, expires_at)
                .await?
            {
                CreditOutcome::Done(hold) => Ok(Some(hold)),
                CreditOutcome::Insufficient { available } => Err(Error::InsufficientCredits {
                    required: amount,
                    available,
                }),
            },
        );
    }
    let available = store.wallet(billable, amount.currency).await?.available();
    let has_room = match overdraft {
        Overdraft::Disallowed => available > Decimal::ZERO,
        Overdraft::Floor(floor) => available > floor,
        Overdraft::Unlimited => true,
    };
    Ok(if has_room {
        Ok(None)
    } else {
        Err(Error::InsufficientCredits {
            required: amount,
            available,
        })
    })
}

struct EntryTemplate {
    billable: Billable,
    user_id: Option<String>,
    tenant: Option<Tenant>,
    /// Provider and model; `None` only in a deferred reservation not yet completed.
    provider: Option<(String, String)>,
    feature: Option<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
    idempotency_key: Option<String>,
}

/// Usage reserved for a call in flight. Settle it with [`record`](Self::record) or give it
/// back with [`release`](Self::release); dropped unsettled, it stops counting when it
/// expires (the configured reservation TTL).
#[must_use = "record or release the reservation"]
pub struct Reservation<S> {
    metering: Metering<S>,
    entitlement: Entitlement,
    period: crate::period::Period,
    id: ReservationId,
    hold: Option<HoldId>,
    check: LimitCheck,
    estimate_usage: Option<TokenUsage>,
    template: EntryTemplate,
}

impl<S> fmt::Debug for Reservation<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id)
            .field("billable", &self.template.billable)
            .field("provider", &self.template.provider)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// What [`Reservation::record`] stored.
#[derive(Debug, Clone)]
pub struct RecordOutcome {
    /// The stored row.
    pub record: UsageRecord,
    /// The limit check after this usage.
    pub check: LimitCheck,
}

impl<S: Store> Reservation<S> {
    /// The billable's entitlement when the reservation was made.
    pub fn entitlement(&self) -> &Entitlement {
        &self.entitlement
    }

    /// The billable.
    pub fn billable(&self) -> &Billable {
        &self.template.billable
    }

    /// The limit check right after reserving, counting this reservation (so `allowed` is
    /// false when it took the last of a limit: the *next* call would be refused).
    pub fn check(&self) -> &LimitCheck {
        &self.check
    }

    /// The provider and model the usage will be recorded under, if known yet.
    pub fn provider(&self) -> Option<(&str, &str)> {
        self.template
            .provider
            .as_ref()
            .map(|(p, m)| (p.as_str(), m.as_str()))
    }

    /// Sets the provider and model to record the usage under: completes a reservation made
    /// by [`Meter::begin_deferred`] (or changes the model of any reservation).
    pub fn with_provider(mut self, provider: impl Into<String>, model: impl Into<String>) -> Self {
        self.template.provider = Some((provider.into(), model.into()));
        self
    }

    /// Records `usage` in place of the reservation (atomically), settles the credit hold,
    /// records overage and emits the events.
    ///
    /// # Errors
    /// Pricing or store failures; the reservation then stays until it expires.
    pub async fn record(self, usage: TokenUsage, estimated: bool) -> Result<RecordOutcome> {
        let metering = &self.metering;
        let store = metering.store();
        let t = &self.template;
        let Some((provider, model)) = &t.provider else {
            return Err(Error::InvalidInput(
                "the reservation has no provider and model yet: use Reservation::with_provider, or adopt it with Meter::adopt".into(),
            ));
        };
        let cost = metering.catalog().cost(provider, model, &usage)?;
        let now = metering.now();
        let entry = UsageEntry {
            billable: t.billable.clone(),
            user_id: t.user_id.clone(),
            tenant: t.tenant.clone(),
            provider: provider.clone(),
            model: model.clone(),
            feature: t.feature.clone(),
            usage,
            cost: cost.clone(),
            metadata: t.metadata.clone(),
            idempotency_key: t.idempotency_key.clone(),
            occurred_at: now,
            estimated,
        };
        let Recorded { record, created } = store.settle(self.id, &entry).await?;

        if let Some(hold) = self.hold {
            if created {
                let amount = Money::new(cost.total, cost.currency);
                let tx = store.settle_hold(hold, amount, "usage", now).await?;
                metering.emit(MeterEvent::CreditsDeducted {
                    billable: t.billable.clone(),
                    amount,
                    reason: tx.reason,
                    balance_after: tx.balance_after,
                });
            } else {
                store.release_hold(hold).await?;
            }
        } else if created
            && self.entitlement.billing_mode == BillingMode::Credits
            && cost.total > Decimal::ZERO
        {
            // A zero estimate held nothing: debit the actual cost now. The money was spent,
            // so the debit is not refused (the wallet may go below zero).
            let amount = Money::new(cost.total, cost.currency);
            let outcome = store
                .deduct_credits(&t.billable, amount, "usage", Overdraft::Unlimited, now)
                .await?;
            if let CreditOutcome::Done(tx) = outcome {
                metering.emit(MeterEvent::CreditsDeducted {
                    billable: t.billable.clone(),
                    amount,
                    reason: tx.reason,
                    balance_after: tx.balance_after,
                });
            }
        }

        let usage_now = store.period_usage(&t.billable, &self.period, now).await?;
        let limits = &self.entitlement.limits;
        let check = evaluate(
            limits,
            usage_now.committed(),
            UsageTotals::ZERO,
            &metering.config().thresholds,
        )
        .with_reset_at(self.period.end);

        if created {
            if self.entitlement.overage_policy == OveragePolicy::Charge {
                self.charge_overage(&record, &entry, usage_now.recorded, now)
                    .await?;
            }
            self.emit_threshold_events(&check).await?;
            metering.emit(MeterEvent::UsageRecorded {
                record: Box::new(record.clone()),
                check: Box::new(check.clone()),
            });
        }
        Ok(RecordOutcome { record, check })
    }

    async fn charge_overage(
        &self,
        record: &UsageRecord,
        entry: &UsageEntry,
        recorded: UsageTotals,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let limits = &self.entitlement.limits;
        let this = entry.totals();
        // Only the part beyond the limit is overage, including the excess of the call that
        // crosses it: min(this call, total - limit).
        let over_tokens = limits.tokens.map_or(0, |limit| {
            recorded.tokens.saturating_sub(limit).min(this.tokens)
        });
        let over_cost = limits.cost.map_or(Decimal::ZERO, |limit| {
            (recorded.cost - limit).max(Decimal::ZERO).min(this.cost)
        });
        if over_tokens == 0 && over_cost <= Decimal::ZERO {
            return Ok(());
        }
        let plan_price = self
            .entitlement
            .plan
            .as_ref()
            .and_then(|p| p.overage_price_per_1k_tokens);
        let amount = match plan_price {
            Some(per_1k) => Decimal::from(over_tokens)
                .checked_mul(per_1k)
                .and_then(|x| x.checked_div(Decimal::ONE_THOUSAND))
                .ok_or(Error::Overflow("an overage amount"))?,
            None if over_tokens > 0 && this.tokens > 0 => this
                .cost
                .checked_mul(Decimal::from(over_tokens))
                .and_then(|x| x.checked_div(Decimal::from(this.tokens)))
                .ok_or(Error::Overflow("an overage amount"))?,
            None => over_cost,
        };
        let amount = Money::new(amount, entry.cost.currency);
        let overage = self
            .metering
            .store()
            .insert_overage(&NewOverage {
                billable: entry.billable.clone(),
                usage_id: record.id,
                period: self.period,
                tokens: over_tokens,
                amount,
                created_at: now,
            })
            .await?;
        self.metering.emit(MeterEvent::OverageCharged {
            billable: entry.billable.clone(),
            usage_id: record.id,
            tokens: overage.overage.tokens,
            amount: overage.overage.amount,
        });
        Ok(())
    }

    async fn emit_threshold_events(&self, check: &LimitCheck) -> Result<()> {
        let metering = &self.metering;
        let billable = &self.template.billable;
        for &threshold in metering.config().thresholds.as_slice() {
            if check.usage_percentage < threshold {
                break;
            }
            if metering
                .store()
                .claim_threshold(billable, &self.period, threshold)
                .await?
            {
                metering.emit(MeterEvent::LimitApproaching {
                    billable: billable.clone(),
                    threshold,
                    usage_percentage: check.usage_percentage,
                    period: self.period,
                });
            }
        }
        if let Some(limit) = check.exceeded {
            metering.emit(MeterEvent::LimitReached {
                billable: billable.clone(),
                limit,
                usage_percentage: check.usage_percentage,
                period: Some(self.period),
            });
        }
        Ok(())
    }

    /// Gives the reservation (and any credit hold) back without recording anything.
    ///
    /// # Errors
    /// Store failures.
    pub async fn release(self) -> Result<()> {
        let store = self.metering.store();
        store.release(self.id).await?;
        if let Some(hold) = self.hold {
            store.release_hold(hold).await?;
        }
        Ok(())
    }

    /// Releases after a provider failure and emits `ProviderCallFailed`.
    pub(crate) async fn fail(self, error: &str) {
        self.metering.emit(MeterEvent::ProviderCallFailed {
            billable: self.template.billable.clone(),
            provider: self
                .template
                .provider
                .as_ref()
                .map_or_else(String::new, |(p, _)| p.clone()),
            model: self
                .template
                .provider
                .as_ref()
                .map_or_else(String::new, |(_, m)| m.clone()),
            error: error.to_owned(),
        });
        if let Err(e) = self.release().await {
            tracing::warn!(target: "ai_metering", error = %e, "could not release a reservation; it will expire");
        }
    }
}
