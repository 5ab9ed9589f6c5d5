//! A [`Reservation`] after it is made: recorded (one atomic settlement, then the events),
//! released, or dropped (released in the background).

use std::fmt;
use std::sync::Arc;

use crate::billable::{Billable, Tenant};
use crate::error::{Error, Result};
use crate::events::MeterEvent;
use crate::limit::{LimitCheck, UsageTotals, evaluate};
use crate::metering::{Entitlement, Metering};
use crate::money::Money;
use crate::overage::OverageRule;
use crate::period::Period;
use crate::plan::{BillingMode, OveragePolicy};
use crate::store::{
    DynStore, ReservationId, Settled, Settlement, Store, UsageEntry, UsageRecord, WalletBalance,
};
use crate::telemetry;
use crate::usage::TokenUsage;

pub(super) struct EntryTemplate {
    pub(super) billable: Billable,
    pub(super) user_id: Option<String>,
    pub(super) tenant: Option<Tenant>,
    /// Provider and model; `None` only in a deferred reservation not yet completed.
    pub(super) provider: Option<(String, String)>,
    pub(super) feature: Option<String>,
    pub(super) metadata: serde_json::Map<String, serde_json::Value>,
    pub(super) idempotency_key: Option<String>,
    /// The call's cost when given ([`Meter::cost`](crate::Meter::cost)) or reported by the
    /// provider: recorded instead of the catalog's price.
    pub(super) cost: Option<Money>,
}

type Release = Arc<dyn Fn(ReservationId) + Send + Sync>;

/// Releases a reservation in the background when dropped armed: a reservation nobody
/// records or releases (a handler that returned early, a client that went away) stops
/// counting at once instead of when it expires.
pub(super) struct ReleaseGuard {
    pub(super) id: ReservationId,
    release: Option<Release>,
}

impl ReleaseGuard {
    pub(super) fn new<S: Store>(metering: &Metering<S>, id: ReservationId) -> Self {
        let metering = metering.clone();
        let release: Release = Arc::new(move |id| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!(target: "ai_metering", reservation = id.0, "a reservation was dropped outside a runtime; it counts until it expires");
                return;
            };
            let metering = metering.clone();
            runtime.spawn(async move {
                if let Err(error) = metering.store().release(id).await {
                    tracing::warn!(target: "ai_metering", reservation = id.0, %error, "could not release a dropped reservation; it counts until it expires");
                }
            });
        });
        telemetry::reservation_opened();
        Self {
            id,
            release: Some(release),
        }
    }

    /// The reservation was settled or released: nothing to do on drop.
    pub(super) fn disarm(&mut self) {
        self.release = None;
    }
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        // Once per reservation, whatever became of it.
        telemetry::reservation_closed();
        if let Some(release) = self.release.take() {
            release(self.id);
        }
    }
}

/// Usage reserved for a call in flight. Settle it with [`record`](Self::record) or give it
/// back with [`release`](Self::release); dropped unsettled, it is released in the
/// background (and if that fails, it stops counting when it expires: the configured
/// reservation TTL, swept by [`Metering::sweep`]).
#[must_use = "record or release the reservation"]
pub struct Reservation<S> {
    pub(super) metering: Metering<S>,
    pub(super) entitlement: Entitlement,
    pub(super) period: Period,
    pub(super) id: ReservationId,
    pub(super) check: LimitCheck,
    /// What is reserved.
    pub(super) amount: UsageTotals,
    /// The estimated usage, recorded (flagged estimated) when the response reports none.
    pub(super) estimate_usage: Option<TokenUsage>,
    /// A placeholder of `Meter::begin_deferred` without an estimate: the meter that adopts
    /// it estimates the call.
    pub(super) pending_estimate: bool,
    /// Reserved without an estimate: the billable's one unestimated call in flight.
    pub(super) exclusive: bool,
    pub(super) template: EntryTemplate,
    pub(super) guard: ReleaseGuard,
    /// Told the limit check once the settlement is committed.
    pub(super) on_settled: Option<SettledHook>,
    /// In credits mode, the wallet right after this reservation's hold, when the store
    /// reported it.
    pub(super) wallet: Option<WalletBalance>,
}

/// A hook of [`Reservation::on_settled`].
pub(super) type SettledHook = Arc<dyn Fn(&LimitCheck) + Send + Sync>;

impl<S> fmt::Debug for Reservation<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id)
            .field("billable", &self.template.billable)
            .field("provider", &self.template.provider)
            .field("period", &self.period)
            .field("amount", &self.amount)
            .field("exclusive", &self.exclusive)
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
    /// In credits mode, the wallet right after the settlement, when the store reported it
    /// ([`Settled::wallet`]); `None` otherwise.
    pub wallet: Option<WalletBalance>,
}

impl<S: Store> Reservation<S> {
    /// The same reservation, to be settled through [`Metering::erased`] (the same store
    /// behind a [`DynStore`]): for a `Meter<DynStore>` to [adopt](crate::Meter::adopt).
    /// Nothing is released or reserved again.
    pub fn erased(self) -> Reservation<DynStore> {
        let metering = self.metering.erased().clone();
        Reservation {
            metering,
            entitlement: self.entitlement,
            period: self.period,
            id: self.id,
            check: self.check,
            amount: self.amount,
            estimate_usage: self.estimate_usage,
            pending_estimate: self.pending_estimate,
            exclusive: self.exclusive,
            template: self.template,
            guard: self.guard,
            on_settled: self.on_settled,
            wallet: self.wallet,
        }
    }

    /// Calls `hook` with the limit check after this reservation's settlement, once it is
    /// committed (whichever [`Meter`](crate::Meter) adopted it), so that what is left can be
    /// shown without reading the store again: the tower layer's quota headers use it. Not
    /// called when the reservation is released, or when the settlement's outcome is unknown.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use ai_metering_core::{Billable, Metering, TokenUsage};
    /// # use ai_metering_core::plan::{Plan, Subscription};
    /// # use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let store = MemoryStore::new();
    /// # store.upsert_plan(&Plan::new("pro", "Pro").with_token_limit(1_000)).await.unwrap();
    /// # let alice = Billable::new("user", "alice");
    /// # store.insert_subscription(&Subscription::new(alice.clone(), "pro", chrono::Utc::now())).await.unwrap();
    /// let metering = Metering::new(store);
    /// let seen = Arc::new(Mutex::new(None));
    /// let sink = Arc::clone(&seen);
    /// let reservation = metering
    ///     .meter()
    ///     .billable(alice)
    ///     .provider("openai", "gpt-4o-mini")
    ///     .estimate(TokenUsage::new(150, 50)?)
    ///     .begin()
    ///     .await?
    ///     .on_settled(move |check| *sink.lock().unwrap() = check.remaining_tokens);
    /// reservation.record(TokenUsage::new(60, 40)?, false).await?;
    /// assert_eq!(*seen.lock().unwrap(), Some(900));
    /// # Ok::<(), ai_metering_core::Error>(()) }).unwrap();
    /// ```
    pub fn on_settled(mut self, hook: impl Fn(&LimitCheck) + Send + Sync + 'static) -> Self {
        self.on_settled = Some(Arc::new(hook));
        self
    }

    /// The cost the provider reported, unless the meter was given one.
    pub(super) fn report_cost(&mut self, cost: Money) {
        self.template.cost.get_or_insert(cost);
    }

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

    /// In credits mode, the billable's wallet right after this reservation's hold: its
    /// balance, the holds of the calls in flight (this one's included) and what its grants
    /// keep unusable, so [`WalletBalance::available`] is what the next call can hold.
    /// `None` in plan mode, or when the store did not report it
    /// ([`ReserveOutcome::Reserved`](crate::store::ReserveOutcome::Reserved)'s `wallet`):
    /// read it with [`CreditStore::wallet_at`](crate::store::CreditStore::wallet_at).
    pub fn wallet(&self) -> Option<&WalletBalance> {
        self.wallet.as_ref()
    }

    /// The tokens and cost reserved.
    pub fn amount(&self) -> UsageTotals {
        self.amount
    }

    /// The estimated usage of the call, when one was known.
    pub fn estimate_usage(&self) -> Option<TokenUsage> {
        self.estimate_usage
    }

    /// The provider and model the usage will be recorded under, if known yet.
    pub fn provider(&self) -> Option<(&str, &str)> {
        self.template
            .provider
            .as_ref()
            .map(|(p, m)| (p.as_str(), m.as_str()))
    }

    /// Sets the provider and model to record the usage under: completes a reservation made
    /// by [`Meter::begin_deferred`](crate::Meter::begin_deferred) (or changes the model of
    /// any reservation).
    pub fn with_provider(mut self, provider: impl Into<String>, model: impl Into<String>) -> Self {
        self.template.provider = Some((provider.into(), model.into()));
        self
    }

    /// Records `usage` in place of the reservation, in one atomic store step: the usage
    /// row, the counters, the overage (under the `charge` policy) and, in credits mode, the
    /// capture of the credit hold (the actual cost is debited, the rest given back). Then
    /// the events are emitted.
    ///
    /// # Errors
    /// Pricing or store failures. Nothing was stored then, and the reservation is given
    /// back, so a retry with the same idempotency key records the call once.
    pub async fn record(mut self, usage: TokenUsage, estimated: bool) -> Result<RecordOutcome> {
        let metering = self.metering.clone();
        let Some((provider, model)) = self.template.provider.clone() else {
            self.give_back().await;
            return Err(Error::InvalidInput(
                "the reservation has no provider and model yet: use Reservation::with_provider, or adopt it with Meter::adopt".into(),
            ));
        };
        let cost = match metering.price_call(&provider, &model, &usage, self.template.cost) {
            Ok(cost) => cost,
            Err(e) => {
                self.give_back().await;
                return Err(e);
            }
        };
        let t = &self.template;
        let entry = UsageEntry {
            billable: t.billable.clone(),
            user_id: t.user_id.clone(),
            tenant: t.tenant.clone(),
            provider,
            model,
            feature: t.feature.clone(),
            usage,
            cost,
            metadata: t.metadata.clone(),
            idempotency_key: t.idempotency_key.clone(),
            occurred_at: metering.now(),
            estimated,
            time_zone: self
                .entitlement
                .subscription
                .as_ref()
                .and_then(|(_, sub)| sub.time_zone),
        };
        let limits = self.entitlement.limits;
        let overage = (self.entitlement.overage_policy == OveragePolicy::Charge
            && !limits.is_unlimited())
        .then(|| {
            OverageRule::new(
                limits,
                self.entitlement
                    .plan
                    .as_ref()
                    .and_then(|p| p.overage_price_per_1k_tokens),
            )
        });
        let settlement = Settlement {
            reservation: self.id,
            entry,
            period: self.period,
            overage,
            debit_credits: self.entitlement.billing_mode == BillingMode::Credits,
        };
        let started = std::time::Instant::now();
        match metering.store().settle(&settlement).await {
            Ok(settled) => {
                self.guard.disarm();
                if settled.recorded.created {
                    telemetry::recorded(
                        &settlement.entry,
                        started.elapsed(),
                        metering.config().metrics_per_billable,
                    );
                }
                Ok(self.after_commit(settled).await)
            }
            Err(e) => {
                // A settlement is all or nothing, but a reply lost after the commit looks
                // like a failure: with a key, the store can say which it was.
                if let Some(record) = self.recorded_despite(&settlement.entry).await {
                    tracing::warn!(target: "ai_metering", billable = %self.template.billable, error = %e, "the settlement's reply was lost, but it was stored");
                    self.guard.disarm();
                    let check = self.check.clone();
                    metering.emit(MeterEvent::UsageRecorded {
                        record: Box::new(record.clone()),
                        check: Box::new(check.clone()),
                    });
                    return Ok(RecordOutcome {
                        record,
                        check,
                        wallet: None,
                    });
                }
                tracing::error!(target: "ai_metering", billable = %self.template.billable, error = %e, "the usage could not be recorded; nothing was stored");
                let entry = &settlement.entry;
                telemetry::call(
                    &entry.provider,
                    &entry.model,
                    "not_recorded",
                    &entry.billable,
                    metering.config().metrics_per_billable,
                );
                self.give_back().await;
                Err(e.into())
            }
        }
    }

    /// The row of `entry`'s idempotency key, if a settlement that reported a failure was
    /// stored after all.
    async fn recorded_despite(&self, entry: &UsageEntry) -> Option<UsageRecord> {
        let key = entry.idempotency_key.as_ref()?;
        match self
            .metering
            .store()
            .usage_by_idempotency_key(&entry.billable, key)
            .await
        {
            Ok(found) => found.filter(|r| r.entry.usage == entry.usage),
            Err(_) => None,
        }
    }

    /// The limit check and the events of a committed settlement. Store failures here (the
    /// threshold claims) are logged: the call is recorded, and saying otherwise would be
    /// untrue.
    async fn after_commit(&self, settled: Settled) -> RecordOutcome {
        let metering = &self.metering;
        let billable = &self.template.billable;
        let check = evaluate(
            &self.entitlement.limits,
            settled.usage.committed(),
            UsageTotals::ZERO,
            &metering.config().thresholds,
        )
        .with_reset_at(self.period.end);
        if let Some(hook) = &self.on_settled {
            hook(&check);
        }
        let record = settled.recorded.record;
        let wallet = settled.wallet;
        if !settled.recorded.created {
            return RecordOutcome {
                record,
                check,
                wallet,
            };
        }
        if let Some(tx) = settled.debit {
            metering.emit(MeterEvent::CreditsDeducted {
                billable: billable.clone(),
                amount: tx.amount,
                reason: tx.reason,
                balance_after: tx.balance_after,
            });
        }
        if let Some(overage) = settled.overage {
            metering.emit(MeterEvent::OverageCharged {
                billable: billable.clone(),
                usage_id: record.id,
                tokens: overage.overage.tokens,
                amount: overage.overage.amount,
            });
        }
        if let Err(error) = self.emit_threshold_events(&check).await {
            tracing::warn!(target: "ai_metering", %billable, %error, "could not claim an approaching-limit notice; it is sent by a later call");
        }
        metering.emit(MeterEvent::UsageRecorded {
            record: Box::new(record.clone()),
            check: Box::new(check.clone()),
        });
        RecordOutcome {
            record,
            check,
            wallet,
        }
    }

    async fn emit_threshold_events(&self, check: &LimitCheck) -> Result<()> {
        let metering = &self.metering;
        let billable = &self.template.billable;
        for &threshold in metering.config().thresholds.as_slice() {
            if check.usage_percentage < threshold {
                break;
            }
            let claimed = &metering.inner.claimed;
            if claimed.contains(billable, &self.period, threshold) {
                continue;
            }
            let ours = metering
                .store()
                .claim_threshold(billable, &self.period, threshold)
                .await?;
            claimed.insert(billable, &self.period, threshold, metering.now());
            if ours {
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

    /// Gives the reservation (and its credit hold) back without recording anything.
    ///
    /// # Errors
    /// Store failures; the reservation is then released in the background, or stops
    /// counting when it expires.
    pub async fn release(mut self) -> Result<()> {
        self.metering.store().release(self.id).await?;
        self.guard.disarm();
        Ok(())
    }

    /// Releases, logging a failure (the guard then tries once more in the background).
    pub(super) async fn give_back(mut self) {
        match self.metering.store().release(self.id).await {
            Ok(_) => self.guard.disarm(),
            Err(error) => {
                tracing::warn!(target: "ai_metering", billable = %self.template.billable, %error, "could not release a reservation");
            }
        }
    }

    /// Releases after a provider failure and emits `ProviderCallFailed`.
    pub(crate) async fn fail(self, error: &str) {
        let (provider, model) = self
            .template
            .provider
            .clone()
            .unwrap_or_else(|| (String::new(), String::new()));
        telemetry::call(
            &provider,
            &model,
            "provider_error",
            &self.template.billable,
            self.metering.config().metrics_per_billable,
        );
        self.metering.emit(MeterEvent::ProviderCallFailed {
            billable: self.template.billable.clone(),
            provider,
            model,
            error: error.to_owned(),
        });
        self.give_back().await;
    }
}
