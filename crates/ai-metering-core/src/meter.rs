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
    CreditOutcome, HoldId, NewOverage, Recorded, ReservationId, ReserveOutcome, ReserveRequest,
    Store, UsageEntry, UsageRecord,
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
    manual_usage: Option<TokenUsage>,
}

impl<S> fmt::Debug for Meter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("billable", &self.billable)
            .field("provider", &self.provider)
            .field("feature", &self.feature)
            .field("idempotency_key", &self.idempotency_key)
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
            manual_usage: None,
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
        let provider_name = self.provider.as_ref().map(|(p, _)| p.clone());
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

    async fn reserve(self) -> Result<Reservation<S>, ReserveError> {
        let metering = self.metering;
        let billable = self
            .billable
            .ok_or_else(|| Error::InvalidInput("no billable: call .billable(...) first".into()))?;
        let (provider, model) = self.provider.ok_or_else(|| {
            Error::InvalidInput("no provider: call .provider(name, model) first".into())
        })?;
        if provider.trim().is_empty() || model.trim().is_empty() {
            return Err(Error::InvalidInput("provider and model must not be empty".into()).into());
        }
        let feature = self
            .feature
            .map(|f| FeatureName::new(&f).map(|f| f.as_str().to_owned()))
            .transpose()?;
        let metadata = match self.meta {
            Some(value) => Metadata::new(value)?.as_map().clone(),
            None => serde_json::Map::new(),
        };
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(
                Error::InvalidInput("idempotency key must be 1 to 255 bytes".into()).into(),
            );
        }

        let store = metering.store();
        let now = metering.now();
        let entitlement = metering.entitlement(&billable, now).await?;
        if let Some(mode) = self.billing_mode
            && mode != entitlement.billing_mode
        {
            return Err(Error::InvalidInput(format!(
                "{billable} is billed in {} mode, not {mode}",
                entitlement.billing_mode
            ))
            .into());
        }

        // Unknown models fail here, before anything is reserved or called.
        let estimate_usage = self.estimate_usage.or(self.manual_usage);
        let estimate_cost =
            metering
                .catalog()
                .cost(&provider, &model, &estimate_usage.unwrap_or_default())?;
        let estimate = UsageTotals::new(
            estimate_usage.map_or(0, |u| u.total_tokens()),
            estimate_cost.total,
        );

        if let Some(key) = &self.idempotency_key
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
        let reservation_id = match store.reserve(&request).await? {
            ReserveOutcome::Reserved { id, .. } => id,
            ReserveOutcome::Rejected { usage, .. } => {
                let check = evaluate(
                    &entitlement.limits,
                    usage.committed(),
                    estimate,
                    &metering.config().thresholds,
                )
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
            let amount = Money::new(estimate_cost.total, estimate_cost.currency);
            match store
                .hold_credits(
                    &billable,
                    amount,
                    metering.config().overdraft,
                    request.expires_at,
                )
                .await
            {
                Ok(CreditOutcome::Done(hold)) => Some(hold),
                Ok(CreditOutcome::Insufficient { available }) => {
                    let _ = store.release(reservation_id).await;
                    return Err(Error::InsufficientCredits {
                        required: amount,
                        available,
                    }
                    .into());
                }
                Err(e) => {
                    let _ = store.release(reservation_id).await;
                    return Err(Error::from(e).into());
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
            estimate_usage,
            template: EntryTemplate {
                billable,
                user_id: self.user_id,
                tenant: self.tenant,
                provider,
                model,
                feature,
                metadata,
                idempotency_key: self.idempotency_key,
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

struct EntryTemplate {
    billable: Billable,
    user_id: Option<String>,
    tenant: Option<Tenant>,
    provider: String,
    model: String,
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
    estimate_usage: Option<TokenUsage>,
    template: EntryTemplate,
}

impl<S> fmt::Debug for Reservation<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id)
            .field("billable", &self.template.billable)
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

    /// Records `usage` in place of the reservation (atomically), settles the credit hold,
    /// records overage and emits the events.
    ///
    /// # Errors
    /// Pricing or store failures; the reservation then stays until it expires.
    pub async fn record(self, usage: TokenUsage, estimated: bool) -> Result<RecordOutcome> {
        let metering = &self.metering;
        let store = metering.store();
        let t = &self.template;
        let cost = metering.catalog().cost(&t.provider, &t.model, &usage)?;
        let now = metering.now();
        let entry = UsageEntry {
            billable: t.billable.clone(),
            user_id: t.user_id.clone(),
            tenant: t.tenant.clone(),
            provider: t.provider.clone(),
            model: t.model.clone(),
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
            provider: self.template.provider.clone(),
            model: self.template.model.clone(),
            error: error.to_owned(),
        });
        if let Err(e) = self.release().await {
            tracing::warn!(target: "ai_metering", error = %e, "could not release a reservation; it will expire");
        }
    }
}
