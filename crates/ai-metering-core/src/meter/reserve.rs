//! The steps of a call up to its reservation: validate the input, resolve the entitlement,
//! estimate the call, and reserve the estimate in one atomic store step.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::Meter;
use super::reservation::{EntryTemplate, ReleaseGuard, Reservation};
use crate::billable::{Billable, Tenant};
use crate::error::{Error, Result};
use crate::estimate::RequestEstimate;
use crate::events::MeterEvent;
use crate::limit::{LimitCheck, Limits, UsageTotals, evaluate};
use crate::metering::{Entitlement, Metering};
use crate::money::Money;
use crate::period::Period;
use crate::plan::BillingMode;
use crate::store::{
    HoldRequest, Page, PeriodUsage, ReservationId, ReserveOutcome, ReserveRequest, Store,
    UsageEntry, UsageFilter, UsageRecord, WalletBalance,
};
use crate::telemetry;
use crate::usage::TokenUsage;
use crate::validate::{FeatureName, Metadata};

/// How many of a billable's latest calls of one feature and model estimate its next one.
const HISTORY_CALLS: u64 = 20;

pub(super) enum ReserveError {
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
    request: Option<RequestEstimate>,
    cost: Option<Money>,
    entitlement: Option<Entitlement>,
}

impl<S> Validated<S> {
    /// Who pays: the billable, or `.user(id)` alone bills the user.
    fn billable(&self) -> Result<Billable> {
        self.billable
            .clone()
            .or_else(|| {
                self.user_id
                    .as_ref()
                    .map(|id| Billable::new("user", id.as_str()))
            })
            .ok_or_else(|| {
                Error::InvalidInput("no billable: call .billable(...) or .user(...) first".into())
            })
    }

    /// True when the caller gave an estimate, or a request that yields one.
    fn has_estimate(&self) -> bool {
        self.estimate_usage.is_some()
            || self.estimate_cost.is_some()
            || self.request.and_then(|r| r.usage()).is_some()
    }
}

/// What a call is expected to use, as reserved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    /// The usage, when known (recorded, flagged estimated, if the response reports none).
    pub(super) usage: Option<TokenUsage>,
    /// Tokens and cost to reserve.
    pub(super) totals: UsageTotals,
    /// No estimate could be made: at most one such call of a billable is in flight.
    pub(super) exclusive: bool,
}

impl<S: Store> Meter<S> {
    pub(super) async fn reserve(mut self) -> Result<Reservation<S>, ReserveError> {
        match self.adopted.take() {
            Some(mut adopted) => match self.complete(&mut adopted).await {
                Ok(()) => Ok(adopted),
                Err(e) => {
                    // The reservation was handed to this meter; give it back rather than
                    // let it count until it expires.
                    adopted.give_back().await;
                    Err(e)
                }
            },
            None => self.reserve_new(false).await,
        }
    }

    pub(super) async fn reserve_deferred(self) -> Result<Reservation<S>, ReserveError> {
        self.reserve_new(true).await
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
            request: self.request,
            cost: self.cost,
            entitlement: self.entitlement,
        })
    }

    /// Completes an adopted reservation with this builder's details, growing it to this
    /// builder's estimate when that is larger. On error the caller releases it.
    async fn complete(self, adopted: &mut Reservation<S>) -> Result<(), ReserveError> {
        let v = self.validate(false)?;
        let provider = match v
            .provider
            .clone()
            .or_else(|| adopted.template.provider.take())
        {
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
        // Unknown models fail here, before the provider is called (unless a cost is given).
        v.metering.price_call(
            &provider.0,
            &provider.1,
            &v.estimate_usage.unwrap_or_default(),
            v.cost,
        )?;

        let feature = v.feature.clone().or(adopted.template.feature.clone());
        // This meter's own estimate, now that the model is known; for a placeholder, the
        // estimate policy's.
        let estimate = if v.has_estimate() || adopted.pending_estimate {
            Some(
                estimate(
                    &v.metering,
                    &adopted.entitlement,
                    Some(&provider),
                    feature.as_deref(),
                    &v,
                )
                .await?,
            )
        } else {
            None
        };
        // A larger cost only matters where something counts it before the settlement: a cost
        // limit, or the credit hold. Otherwise (a layer's token estimate, priced now that the
        // model is known) growing it would be a write that changes no decision.
        let cost_counts = adopted.entitlement.limits.cost.is_some()
            || adopted.entitlement.billing_mode == BillingMode::Credits;
        let grows = estimate.filter(|e| {
            adopted.pending_estimate
                || e.totals.tokens > adopted.amount.tokens
                || (cost_counts && e.totals.cost > adopted.amount.cost)
        });
        let new_key = v
            .idempotency_key
            .as_ref()
            .filter(|k| adopted.template.idempotency_key.as_ref() != Some(*k));
        if grows.is_some() || new_key.is_some() {
            let e = grows.unwrap_or(Estimate {
                usage: adopted.estimate_usage,
                totals: adopted.amount,
                exclusive: adopted.exclusive,
            });
            let amount = UsageTotals::new(
                e.totals.tokens.max(adopted.amount.tokens),
                e.totals.cost.max(adopted.amount.cost),
            );
            let key = v
                .idempotency_key
                .clone()
                .or(adopted.template.idempotency_key.clone());
            let now = v.metering.now();
            let request = reserve_request(
                &v.metering,
                &adopted.entitlement,
                adopted.period,
                amount,
                e.exclusive,
                key,
                Some(adopted.id),
                now,
            );
            let (id, usage, wallet) =
                reserve_in_store(&v.metering, &request, &adopted.entitlement, adopted.period)
                    .await?;
            adopted.id = id;
            adopted.wallet = wallet;
            adopted.guard.id = id;
            adopted.amount = amount;
            adopted.exclusive = e.exclusive;
            adopted.pending_estimate = false;
            adopted.estimate_usage = e.usage.or(adopted.estimate_usage);
            adopted.check = check_after(&v.metering, &adopted.entitlement, adopted.period, usage);
        } else if adopted.estimate_usage.is_none() {
            adopted.estimate_usage = v.estimate_usage;
        }

        let t = &mut adopted.template;
        t.provider = Some(provider);
        t.user_id = v.user_id.or(t.user_id.take());
        t.tenant = v.tenant.or(t.tenant.take());
        t.feature = feature;
        if let Some(meta) = v.metadata {
            t.metadata.extend(meta);
        }
        t.idempotency_key = v.idempotency_key.or(t.idempotency_key.take());
        t.cost = v.cost.or(t.cost.take());
        Ok(())
    }

    /// The usage row this builder describes (`.manual_usage(..)` and `.provider(..)` are
    /// required), validated and priced, **without storing it or checking any limit**: for
    /// usage nothing enforces, handed to a [`Recorder`](crate::recorder::Recorder) that
    /// stores it in the background. Limits, credits and reservations are the metered
    /// call's business ([`Meter::call`]); the row still counts in the billable's counters
    /// once stored.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a missing usage, provider or billable, an invalid
    /// feature name, metadata or key; [`Error::UnknownModel`] for a model without a price
    /// (unless `.cost(..)` gives one).
    pub fn entry(self) -> Result<UsageEntry> {
        let Some(usage) = self.manual_usage else {
            return Err(Error::InvalidInput(
                "no usage: call .manual_usage(...) first".into(),
            ));
        };
        let v = self.validate(true)?;
        let billable = v.billable()?;
        let Some((provider, model)) = v.provider else {
            return Err(Error::InvalidInput(
                "no provider: call .provider(name, model) first".into(),
            ));
        };
        let cost = v.metering.price_call(&provider, &model, &usage, v.cost)?;
        Ok(UsageEntry {
            billable,
            user_id: v.user_id,
            tenant: v.tenant,
            provider,
            model,
            feature: v.feature,
            usage,
            cost,
            metadata: v.metadata.unwrap_or_default(),
            idempotency_key: v.idempotency_key,
            occurred_at: v.metering.now(),
            estimated: false,
            time_zone: None,
        })
    }

    /// A new reservation; `deferred` allows an unknown provider and reserves a placeholder
    /// when no estimate is given.
    async fn reserve_new(self, deferred: bool) -> Result<Reservation<S>, ReserveError> {
        let v = self.validate(!deferred)?;
        let metering = v.metering.clone();
        let billable = v.billable()?;

        let now = metering.now();
        let known = v.entitlement.clone().filter(|e| {
            e.billable == billable && e.period.is_some_and(|p| p.start <= now && now < p.end)
        });
        let entitlement = match known {
            Some(entitlement) => entitlement,
            None => metering.entitlement(&billable, now).await?,
        };
        if let Some(mode) = v.billing_mode
            && mode != entitlement.billing_mode
        {
            return Err(Error::InvalidInput(format!(
                "{billable} is billed in {} mode, not {mode}",
                entitlement.billing_mode
            ))
            .into());
        }
        // Unknown models fail here, before anything is reserved or called (unless a cost is
        // given).
        if let Some((provider, model)) = &v.provider {
            metering.price_call(
                provider,
                model,
                &v.estimate_usage.unwrap_or_default(),
                v.cost,
            )?;
        }

        let pending_estimate = deferred && !v.has_estimate();
        let estimate = if pending_estimate {
            Estimate {
                usage: None,
                totals: UsageTotals::ZERO,
                exclusive: false,
            }
        } else {
            estimate(
                &metering,
                &entitlement,
                v.provider.as_ref(),
                v.feature.as_deref(),
                &v,
            )
            .await?
        };

        let period = match entitlement.period {
            Some(p) => p,
            None => metering.config().period.period_at(now)?,
        };
        let request = reserve_request(
            &metering,
            &entitlement,
            period,
            estimate.totals,
            estimate.exclusive,
            v.idempotency_key.clone(),
            None,
            now,
        );
        let (id, usage, wallet) =
            reserve_in_store(&metering, &request, &entitlement, period).await?;
        metering.ensure_sweeper();
        let check = check_after(&metering, &entitlement, period, usage);
        let guard = ReleaseGuard::new(&metering, id);
        Ok(Reservation {
            metering,
            entitlement,
            period,
            id,
            check,
            amount: estimate.totals,
            estimate_usage: estimate.usage,
            pending_estimate,
            exclusive: estimate.exclusive,
            template: EntryTemplate {
                billable,
                user_id: v.user_id,
                tenant: v.tenant,
                provider: v.provider,
                feature: v.feature,
                metadata: v.metadata.unwrap_or_default(),
                idempotency_key: v.idempotency_key,
                cost: v.cost,
            },
            guard,
            on_settled: None,
            wallet,
        })
    }
}

/// The estimate policy (see [`crate::estimate`]): the caller's estimate; else the request's
/// own size and output cap; else the largest of the billable's recent calls of this feature
/// and model; else none, and the call is exclusive.
///
/// The last two guard something only when the entitlement refuses calls (limits under the
/// `block` policy) or pays from a wallet; otherwise (no plan, an unlimited plan, overage
/// charged) nothing can be overspent, so they are skipped: no history read, no exclusivity.
async fn estimate<S: Store>(
    metering: &Metering<S>,
    entitlement: &Entitlement,
    provider: Option<&(String, String)>,
    feature: Option<&str>,
    v: &Validated<S>,
) -> Result<Estimate> {
    let price = |usage: &TokenUsage| -> Result<Decimal> {
        match provider {
            Some((p, m)) => Ok(metering.price_call(p, m, usage, v.cost)?.total),
            None => Ok(Decimal::ZERO),
        }
    };
    let known = |usage: Option<TokenUsage>, cost: Option<Decimal>| -> Result<Estimate> {
        let cost = match (cost, &usage) {
            (Some(cost), _) => cost,
            (None, Some(usage)) => price(usage)?,
            (None, None) => Decimal::ZERO,
        };
        Ok(Estimate {
            usage,
            totals: UsageTotals::new(usage.map_or(0, |u| u.total_tokens()), cost),
            exclusive: false,
        })
    };
    if v.estimate_usage.is_some() || v.estimate_cost.is_some() {
        return known(v.estimate_usage, v.estimate_cost);
    }
    if let Some(usage) = v.request.and_then(|r| r.usage()) {
        return known(Some(usage), None);
    }
    let guarded = entitlement.enforces_limits() || entitlement.billing_mode == BillingMode::Credits;
    if !guarded {
        return known(None, None);
    }
    if let Some((p, m)) = provider {
        let mut filter = UsageFilter::for_billable(entitlement.billable.clone())
            .with_provider(p.as_str())
            .with_model(m.as_str());
        if let Some(feature) = feature {
            filter = filter.with_feature(feature);
        }
        let recent = metering
            .store()
            .query_usage(&filter, Page::first(HISTORY_CALLS))
            .await?;
        if let Some(largest) = recent.iter().max_by_key(|r| r.entry.usage.total_tokens()) {
            let cost = recent
                .iter()
                .map(|r| r.entry.cost.total)
                .max()
                .unwrap_or_default()
                .max(price(&largest.entry.usage)?);
            return known(Some(largest.entry.usage), Some(cost));
        }
    }
    Ok(Estimate {
        usage: None,
        totals: UsageTotals::ZERO,
        exclusive: true,
    })
}

#[allow(clippy::too_many_arguments)]
fn reserve_request<S: Store>(
    metering: &Metering<S>,
    entitlement: &Entitlement,
    period: Period,
    amount: UsageTotals,
    exclusive: bool,
    idempotency_key: Option<String>,
    replaces: Option<ReservationId>,
    now: DateTime<Utc>,
) -> ReserveRequest {
    let limits = if entitlement.enforces_limits() {
        entitlement.limits
    } else {
        Limits::UNLIMITED
    };
    let hold = (entitlement.billing_mode == BillingMode::Credits).then(|| HoldRequest {
        amount: Money::new(amount.cost, metering.catalog().currency()),
        overdraft: metering.config().overdraft,
    });
    ReserveRequest {
        billable: entitlement.billable.clone(),
        period,
        limits,
        amount,
        now,
        expires_at: now + metering.config().reservation_ttl,
        hold,
        idempotency_key,
        exclusive,
        replaces,
    }
}

/// Runs the reservation and turns its refusals into errors; returns the reservation, the
/// period's usage after it, and (credits mode) the wallet after its hold when the store
/// reported it. A wallet that cannot cover the hold is tried once more after sweeping
/// expired reservations and holds (calls that never came back), which are only swept when
/// they are in the way.
async fn reserve_in_store<S: Store>(
    metering: &Metering<S>,
    request: &ReserveRequest,
    entitlement: &Entitlement,
    period: Period,
) -> Result<(ReservationId, PeriodUsage, Option<WalletBalance>), ReserveError> {
    let store = metering.store();
    let mut swept = false;
    loop {
        return match store.reserve(request).await? {
            ReserveOutcome::Reserved {
                id, usage, wallet, ..
            } => Ok((id, usage, wallet)),
            ReserveOutcome::Rejected { usage, .. } => {
                telemetry::refused("limit_exceeded");
                let check = evaluate(
                    &entitlement.limits,
                    usage.committed(),
                    request.amount,
                    &metering.config().thresholds,
                )
                .with_reset_at(period.end);
                if let Some(limit) = check.exceeded {
                    metering.emit(MeterEvent::LimitReached {
                        billable: request.billable.clone(),
                        limit,
                        usage_percentage: check.usage_percentage,
                        period: Some(period),
                    });
                }
                Err(Error::LimitExceeded {
                    check: Box::new(check),
                }
                .into())
            }
            ReserveOutcome::InsufficientCredits { available } => {
                if !swept && metering.sweep().await?.total() > 0 {
                    swept = true;
                    continue;
                }
                telemetry::refused("insufficient_credits");
                let required = request
                    .hold
                    .map_or_else(|| Money::zero(metering.catalog().currency()), |h| h.amount);
                Err(Error::InsufficientCredits {
                    required,
                    available,
                }
                .into())
            }
            ReserveOutcome::AlreadyRecorded(record) => Err(ReserveError::Duplicate(record)),
            ReserveOutcome::KeyInFlight => {
                telemetry::refused("key_in_flight");
                Err(Error::IdempotencyKeyInFlight {
                    key: request.idempotency_key.clone().unwrap_or_default(),
                }
                .into())
            }
            ReserveOutcome::Busy => {
                telemetry::refused("call_in_flight");
                Err(Error::CallInFlight {
                    billable: request.billable.clone(),
                }
                .into())
            }
        };
    }
}

/// The limit check right after reserving, counting the reservation.
fn check_after<S: Store>(
    metering: &Metering<S>,
    entitlement: &Entitlement,
    period: Period,
    usage: PeriodUsage,
) -> LimitCheck {
    if entitlement.limits.is_unlimited() {
        return LimitCheck::unlimited();
    }
    evaluate(
        &entitlement.limits,
        usage.committed(),
        UsageTotals::ZERO,
        &metering.config().thresholds,
    )
    .with_reset_at(period.end)
}
