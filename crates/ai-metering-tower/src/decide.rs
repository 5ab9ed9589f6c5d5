//! The quota decision for one request, and the work after the route answered.
//!
//! [`Settings::decide_cached`] answers synchronously from the cache when it can (the hot
//! path: no store round trip, no allocation beyond the request context); otherwise
//! [`Settings::decide`] asks the store. [`After`] releases an unused reservation, takes the
//! usage after the route from its settlement (or reads it again when the route may have
//! recorded more), and writes the quota headers.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use ai_metering_core::limit::{LimitCheck, UsageTotals};
use ai_metering_core::period::Period;
use ai_metering_core::plan::BillingMode;
use ai_metering_core::store::Store;
use ai_metering_core::{Billable, Currency, Error, QuotaStatus, Reservation, Tenant, TokenUsage};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::cache::Checked;
use crate::headers::{HeaderStyle, QuotaHeaders, seconds_until};
use crate::layer::Settings;
use crate::problem::QuotaRejection;
use crate::remaining::{Payer, QuotaContext};

/// What the layer does with a request.
pub(crate) enum Decision<S> {
    /// Call the route with this context (whose status is `None` when failing open).
    Proceed(Arc<QuotaContext<S>>),
    /// Answer without calling the route.
    Reject {
        rejection: QuotaRejection,
        /// The period, for the `w` of `RateLimit-Policy`, when known.
        period: Option<Period>,
        /// The cached status that refused the request, whose headers are already formatted.
        cached: Option<Arc<Checked>>,
    },
}

impl<S> Decision<S> {
    /// A refusal without quota headers (anything but a 429).
    fn refuse(rejection: QuotaRejection) -> Self {
        Self::Reject {
            rejection,
            period: None,
            cached: None,
        }
    }

    /// The label recorded in the tracing span.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Proceed(ctx) if ctx.checked.is_none() => "allowed_unchecked",
            Self::Proceed(_) => "allowed",
            Self::Reject { rejection, .. } => match rejection {
                QuotaRejection::MissingBillable => "no_billable",
                QuotaRejection::QuotaExceeded { .. } => "quota_exceeded",
                QuotaRejection::InsufficientCredits { .. } => "insufficient_credits",
                QuotaRejection::SubscriptionRequired => "no_subscription",
                QuotaRejection::Unavailable(_) => "store_unavailable",
                _ => "check_failed",
            },
        }
    }
}

/// A request's billable and tenant, when a decision needs the store.
pub(crate) type Parties = (Billable, Option<Tenant>);

/// Whether a status lets requests in only through a reservation: a credits-mode billable,
/// whose wallet is checked by reserving.
fn needs_reservation(checked: &Checked) -> bool {
    checked.status.entitlement.billing_mode == BillingMode::Credits
}

impl<S: Store> Settings<S> {
    fn currency(&self) -> Currency {
        self.metering.catalog().currency()
    }

    fn context(
        &self,
        payer: Payer,
        tenant: Option<Tenant>,
        checked: Option<Arc<Checked>>,
        reservation: Option<Reservation<S>>,
    ) -> Arc<QuotaContext<S>> {
        let wallet = reservation
            .as_ref()
            .and_then(|r| r.wallet().cloned().map(Box::new));
        // Only a request with a reservation gets the slot (the cached path allocates none).
        let (reservation, settled) = match reservation {
            Some(reservation) => {
                let slot = Arc::new(Mutex::new(None));
                let theirs = Arc::clone(&slot);
                let reservation = reservation.on_settled(move |check: &LimitCheck| {
                    *theirs.lock().unwrap_or_else(PoisonError::into_inner) = Some(check.clone());
                });
                (Some(Box::new(reservation)), Some(slot))
            }
            None => (None, None),
        };
        Arc::new(QuotaContext {
            metering: self.metering.clone(),
            payer,
            tenant,
            feature: self.feature.clone(),
            reserved: reservation.is_some(),
            checked,
            reservation: Mutex::new(reservation),
            meters: AtomicUsize::new(0),
            wallet,
            settled,
        })
    }

    /// The refusal a known status gives without a reservation (the billable is blocked),
    /// if any.
    fn refusal(&self, checked: &Arc<Checked>, now: DateTime<Utc>) -> Option<Decision<S>> {
        let status = &checked.status;
        if !status.is_blocked() {
            return None;
        }
        let retry_after = status.check.reset_at.map(|at| seconds_until(now, at));
        Some(Decision::Reject {
            period: status.entitlement.period,
            cached: Some(Arc::clone(checked)),
            rejection: QuotaRejection::QuotaExceeded {
                check: Box::new(status.check.clone()),
                retry_after,
            },
        })
    }

    /// The decision from the cache alone, or `None` when it needs the store
    /// ([`decide`](Self::decide)): a cache miss, a route that reserves, or a credits-mode
    /// billable (whose wallet is checked by reserving).
    ///
    /// The parties are borrowed from the request: a request let through shares the
    /// billable of the cached status instead of copying it.
    pub(crate) fn decide_cached(
        &self,
        billable: &Billable,
        tenant: Option<&Tenant>,
        now: DateTime<Utc>,
    ) -> Option<Decision<S>> {
        if self.reserves() {
            // Reservations are atomic in the store; never decided from the cache.
            return None;
        }
        let checked = self.cache.get(billable, now)?;
        if let Some(refusal) = self.refusal(&checked, now) {
            return Some(refusal);
        }
        if needs_reservation(&checked) {
            return None;
        }
        let payer = if checked.status.entitlement.billable == *billable {
            Payer::OfStatus(Arc::clone(&checked))
        } else {
            Payer::Own(billable.clone())
        };
        Some(Decision::Proceed(self.context(
            payer,
            tenant.cloned(),
            Some(checked),
            None,
        )))
    }

    /// The decision, asking the store as needed.
    pub(crate) async fn decide(self: Arc<Self>, (billable, tenant): Parties) -> Decision<S> {
        let now = self.metering.now();
        if self.reserves() {
            return self.reserve(billable, tenant, now).await;
        }
        let checked = match self.cache.get(&billable, now) {
            Some(checked) => checked,
            None => match self.metering.check(&billable, UsageTotals::ZERO).await {
                Ok(status) => {
                    let checked = Checked::new(status, self.currency());
                    self.cache.put(&billable, Arc::clone(&checked), now);
                    checked
                }
                Err(error) => return self.failed(error, billable, tenant),
            },
        };
        if let Some(refusal) = self.refusal(&checked, now) {
            return refusal;
        }
        if needs_reservation(&checked) {
            return self.reserve(billable, tenant, now).await;
        }
        Decision::Proceed(self.context(Payer::Own(billable), tenant, Some(checked), None))
    }

    async fn reserve(
        &self,
        billable: Billable,
        tenant: Option<Tenant>,
        now: DateTime<Utc>,
    ) -> Decision<S> {
        let mut meter = self.metering.meter().billable(billable.clone());
        if let Some(tenant) = &tenant {
            meter = meter.tenant(tenant.clone());
        }
        if let Some(feature) = &self.feature {
            meter = meter.feature(feature.as_ref());
        }
        if self.estimate_tokens > 0 {
            match TokenUsage::new(self.estimate_tokens, 0) {
                Ok(estimate) => meter = meter.estimate(estimate),
                Err(error) => return self.failed(error, billable, tenant),
            }
        }
        if let Some(cost) = self.estimate_cost {
            meter = meter.estimate_cost(cost);
        }
        // Which limits apply is as fresh as the cache; whether the call fits them is decided
        // by the store, atomically, whatever the cache says.
        if let Some(checked) = self.cache.get(&billable, now) {
            meter = meter.entitlement(checked.status.entitlement.clone());
        }
        match meter.begin_deferred().await {
            Ok(reservation) => {
                let status = QuotaStatus {
                    entitlement: reservation.entitlement().clone(),
                    check: reservation.check().clone(),
                };
                let checked = Checked::new(status, self.currency());
                Decision::Proceed(self.context(
                    Payer::Own(billable),
                    tenant,
                    Some(checked),
                    Some(reservation),
                ))
            }
            Err(Error::LimitExceeded { check }) => {
                let retry_after = check.reset_at.map(|at| seconds_until(now, at));
                Decision::Reject {
                    period: self.period_hint(&billable, now),
                    cached: None,
                    rejection: QuotaRejection::QuotaExceeded { check, retry_after },
                }
            }
            Err(Error::InsufficientCredits {
                required,
                available,
            }) => Decision::refuse(QuotaRejection::InsufficientCredits {
                required,
                available,
            }),
            Err(error) => self.failed(error, billable, tenant),
        }
    }

    /// The current period when a refusal does not say it: the cached entitlement's, or the
    /// configured calendar period (exact unless periods are anchored to subscriptions).
    fn period_hint(&self, billable: &Billable, now: DateTime<Utc>) -> Option<Period> {
        if let Some(checked) = self.cache.get(billable, now) {
            return checked.status.entitlement.period;
        }
        let config = self.metering.config();
        if config.anchor_to_subscription {
            None
        } else {
            config.period.period_at(now).ok()
        }
    }

    /// The decision when no status could be had: 403 for a billable without the required
    /// subscription; otherwise the request is let through (fail open) or refused.
    fn failed(&self, error: Error, billable: Billable, tenant: Option<Tenant>) -> Decision<S> {
        if let Error::NoSubscription { .. } = error {
            // A refusal, not a failed check: failing open must not let it through.
            return Decision::refuse(QuotaRejection::SubscriptionRequired);
        }
        if self.fail_open {
            tracing::warn!(target: "ai_metering", %billable, %error, "quota check failed; letting the request through (fail open)");
            return Decision::Proceed(self.context(Payer::Own(billable), tenant, None, None));
        }
        tracing::error!(target: "ai_metering", %billable, %error, "quota check failed; refusing the request (fail closed)");
        let rejection = match error {
            Error::Store(_) => QuotaRejection::Unavailable(error),
            other => QuotaRejection::Internal(other),
        };
        Decision::refuse(rejection)
    }

    /// The response for a refused request, with `Retry-After` and the quota headers on 429:
    /// those of `cached` when a cached status refused it, else formatted from the check
    /// and `period`.
    pub(crate) fn reject(
        &self,
        rejection: QuotaRejection,
        period: Option<Period>,
        cached: Option<Arc<Checked>>,
    ) -> Response<Body> {
        let fresh;
        let headers = match (&rejection, &cached) {
            (QuotaRejection::QuotaExceeded { .. }, Some(checked)) => Some(&checked.headers),
            (QuotaRejection::QuotaExceeded { check, .. }, None) => {
                fresh = QuotaHeaders::new(check, period.as_ref(), self.currency());
                Some(&fresh)
            }
            _ => None,
        };
        let mut response = match &self.on_rejection {
            Some(handler) => handler(rejection),
            None => rejection.into_response(),
        };
        if let Some(headers) = headers {
            let now = self.metering.now();
            if cached.is_some() {
                headers.write(self.headers, now, response.headers_mut());
            } else {
                // Formatted for this response alone: nothing to keep for reuse.
                headers.write_once(self.headers, now, response.headers_mut());
            }
            headers.write_retry_after(now, response.headers_mut());
        }
        response
    }
}

/// The layer's work once the route has answered.
pub(crate) struct After<S> {
    pub(crate) settings: Arc<Settings<S>>,
    pub(crate) ctx: Arc<QuotaContext<S>>,
    /// When the cache decided the request: the headers' reset countdown is taken from that
    /// instant (one clock read per request), stale by at most the route's duration.
    pub(crate) decided_at: Option<DateTime<Utc>>,
}

impl<S: Store> After<S> {
    /// True when the store must be asked again: the route may have recorded usage, or the
    /// layer's reservation must be settled or released.
    pub(crate) fn needs_store(&self) -> bool {
        self.ctx.checked.is_some() && (self.ctx.reserved || self.ctx.was_metered())
    }

    /// Adds the headers of the status known before the route ran.
    pub(crate) fn finish_now(self, mut response: Response<Body>) -> Response<Body> {
        if let Some(checked) = &self.ctx.checked {
            let now = self.decided_at.unwrap_or_else(|| self.ctx.metering.now());
            self.write_headers_at(checked, now, &mut response);
        }
        response
    }

    /// Releases an unused reservation, re-reads the usage and adds the headers.
    pub(crate) async fn finish(self, mut response: Response<Body>) -> Response<Body> {
        let ctx = &self.ctx;
        if let Some(reservation) = ctx.take_reservation()
            && let Err(error) = reservation.release().await
        {
            tracing::warn!(target: "ai_metering", billable = %ctx.billable(), %error, "could not release the route's reservation; it will expire");
        }
        let cache = &self.settings.cache;
        cache.invalidate(ctx.billable());
        let now = ctx.metering.now();
        // The entitlement was resolved for this request; only the usage changed. When the
        // route's one meter settled the layer's reservation, the settlement told the usage
        // after it; otherwise it is read again.
        let refreshed = match (&ctx.checked, ctx.settled_alone()) {
            (Some(before), Some(check)) => Ok(QuotaStatus {
                entitlement: before.status.entitlement.clone(),
                check,
            }),
            (Some(before), None) => ctx.metering.refresh(&before.status).await,
            (None, _) => ctx.metering.check(ctx.billable(), UsageTotals::ZERO).await,
        };
        let checked = match refreshed {
            Ok(status) => {
                let checked = Checked::new(status, self.settings.currency());
                cache.put(ctx.billable(), Arc::clone(&checked), now);
                Some(checked)
            }
            Err(error) => {
                tracing::warn!(target: "ai_metering", billable = %ctx.billable(), %error, "could not re-read the usage; the quota headers show the state before the request");
                ctx.checked.clone()
            }
        };
        if let Some(checked) = &checked {
            self.write_headers(checked, &mut response);
        }
        response
    }

    fn write_headers(&self, checked: &Checked, response: &mut Response<Body>) {
        self.write_headers_at(checked, self.ctx.metering.now(), response);
    }

    fn write_headers_at(
        &self,
        checked: &Checked,
        now: DateTime<Utc>,
        response: &mut Response<Body>,
    ) {
        if self.settings.headers == HeaderStyle::None {
            return;
        }
        checked
            .headers
            .write(self.settings.headers, now, response.headers_mut());
    }
}
