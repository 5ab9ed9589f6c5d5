//! The quota decision for one request, and the work after the route answered.
//!
//! [`Settings::decide_cached`] answers synchronously from the cache when it can (the hot
//! path: no store round trip, no allocation beyond the request context); otherwise
//! [`Settings::decide`] asks the store. [`After`] releases an unused reservation, re-reads
//! the usage when the route may have recorded some, and writes the quota headers.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use ai_metering_core::limit::UsageTotals;
use ai_metering_core::period::Period;
use ai_metering_core::plan::BillingMode;
use ai_metering_core::store::Store;
use ai_metering_core::{Billable, Error, QuotaStatus, Reservation, Tenant, TokenUsage};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::headers::{QuotaSnapshot, seconds_until};
use crate::layer::Settings;
use crate::problem::QuotaRejection;
use crate::remaining::QuotaContext;

/// What the layer does with a request.
pub(crate) enum Decision<S> {
    /// Call the route with this context (whose status is `None` when failing open).
    Proceed(Arc<QuotaContext<S>>),
    /// Answer without calling the route.
    Reject {
        rejection: QuotaRejection,
        /// The period, for the `w` of `RateLimit-Policy`, when known.
        period: Option<Period>,
    },
}

impl<S> Decision<S> {
    /// The label recorded in the tracing span.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Proceed(ctx) if ctx.status.is_none() => "allowed_unchecked",
            Self::Proceed(_) => "allowed",
            Self::Reject { rejection, .. } => match rejection {
                QuotaRejection::MissingBillable => "no_billable",
                QuotaRejection::QuotaExceeded { .. } => "quota_exceeded",
                QuotaRejection::InsufficientCredits { .. } => "insufficient_credits",
                QuotaRejection::Unavailable(_) => "store_unavailable",
                _ => "check_failed",
            },
        }
    }
}

impl<S: Store> Settings<S> {
    fn context(
        &self,
        billable: Billable,
        tenant: Option<Tenant>,
        status: Option<Arc<QuotaStatus>>,
        reservation: Option<Reservation<S>>,
    ) -> Arc<QuotaContext<S>> {
        Arc::new(QuotaContext {
            metering: self.metering.clone(),
            billable,
            tenant,
            feature: self.feature.clone(),
            reserved: reservation.is_some(),
            status,
            reservation: Mutex::new(reservation),
            metered: AtomicBool::new(false),
        })
    }

    /// The decision for a status known without a reservation; `None` when a reservation
    /// is still needed (a credits-mode billable, whose wallet is checked by reserving).
    fn decide_on_status(
        &self,
        billable: &Billable,
        tenant: &Option<Tenant>,
        status: Arc<QuotaStatus>,
        now: DateTime<Utc>,
    ) -> Option<Decision<S>> {
        if status.is_blocked() {
            let retry_after = status.check.reset_at.map(|at| seconds_until(now, at));
            return Some(Decision::Reject {
                period: status.entitlement.period,
                rejection: QuotaRejection::QuotaExceeded {
                    check: Box::new(status.check.clone()),
                    retry_after,
                },
            });
        }
        if status.entitlement.billing_mode == BillingMode::Credits {
            return None;
        }
        Some(Decision::Proceed(self.context(
            billable.clone(),
            tenant.clone(),
            Some(status),
            None,
        )))
    }

    /// The decision from the cache alone, when it can be made without the store.
    pub(crate) fn decide_cached(
        &self,
        billable: &Billable,
        tenant: &Option<Tenant>,
        now: DateTime<Utc>,
    ) -> Option<Decision<S>> {
        if self.reserves() {
            // Reservations are atomic in the store; never decided from the cache.
            return None;
        }
        let status = self.cache.get(billable, now)?;
        self.decide_on_status(billable, tenant, status, now)
    }

    /// The decision, asking the store as needed.
    pub(crate) async fn decide(
        self: Arc<Self>,
        billable: Billable,
        tenant: Option<Tenant>,
    ) -> Decision<S> {
        let now = self.metering.now();
        if !self.reserves() {
            let status = match self.cache.get(&billable, now) {
                Some(status) => status,
                None => match self.metering.check(&billable, UsageTotals::ZERO).await {
                    Ok(status) => {
                        let status = Arc::new(status);
                        self.cache.put(&billable, Arc::clone(&status), now);
                        status
                    }
                    Err(error) => return self.failed(error, billable, tenant),
                },
            };
            if let Some(decision) = self.decide_on_status(&billable, &tenant, status, now) {
                return decision;
            }
        }
        self.reserve(billable, tenant, now).await
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
        match meter.begin_deferred().await {
            Ok(reservation) => {
                let status = Arc::new(QuotaStatus {
                    entitlement: reservation.entitlement().clone(),
                    check: reservation.check().clone(),
                });
                Decision::Proceed(self.context(billable, tenant, Some(status), Some(reservation)))
            }
            Err(Error::LimitExceeded { check }) => {
                let retry_after = check.reset_at.map(|at| seconds_until(now, at));
                Decision::Reject {
                    period: self.period_hint(&billable, now),
                    rejection: QuotaRejection::QuotaExceeded { check, retry_after },
                }
            }
            Err(Error::InsufficientCredits {
                required,
                available,
            }) => Decision::Reject {
                period: None,
                rejection: QuotaRejection::InsufficientCredits {
                    required,
                    available,
                },
            },
            Err(error) => self.failed(error, billable, tenant),
        }
    }

    /// The current period when a refusal does not say it: the cached entitlement's, or the
    /// configured calendar period (exact unless periods are anchored to subscriptions).
    fn period_hint(&self, billable: &Billable, now: DateTime<Utc>) -> Option<Period> {
        if let Some(status) = self.cache.get(billable, now) {
            return status.entitlement.period;
        }
        let config = self.metering.config();
        if config.anchor_to_subscription {
            None
        } else {
            config.period.period_at(now).ok()
        }
    }

    fn failed(&self, error: Error, billable: Billable, tenant: Option<Tenant>) -> Decision<S> {
        if self.fail_open {
            tracing::warn!(target: "ai_metering", %billable, %error, "quota check failed; letting the request through (fail open)");
            return Decision::Proceed(self.context(billable, tenant, None, None));
        }
        tracing::error!(target: "ai_metering", %billable, %error, "quota check failed; refusing the request (fail closed)");
        let rejection = match error {
            Error::Store(_) => QuotaRejection::Unavailable(error),
            other => QuotaRejection::Internal(other),
        };
        Decision::Reject {
            rejection,
            period: None,
        }
    }

    /// The response for a refused request, with `Retry-After` and the quota headers on 429.
    pub(crate) fn reject(
        &self,
        rejection: QuotaRejection,
        period: Option<Period>,
    ) -> Response<Body> {
        let check = match &rejection {
            QuotaRejection::QuotaExceeded { check, .. } => Some(check.clone()),
            _ => None,
        };
        let mut response = match &self.on_rejection {
            Some(handler) => handler(rejection),
            None => rejection.into_response(),
        };
        if let Some(check) = check {
            let snapshot = QuotaSnapshot {
                check: &check,
                period: period.as_ref(),
                currency: self.metering.catalog().currency(),
                now: self.metering.now(),
            };
            snapshot.write(self.headers, response.headers_mut());
            snapshot.write_retry_after(response.headers_mut());
        }
        response
    }
}

/// The layer's work once the route has answered.
pub(crate) struct After<S> {
    pub(crate) settings: Arc<Settings<S>>,
    pub(crate) ctx: Arc<QuotaContext<S>>,
}

impl<S: Store> After<S> {
    /// True when the store must be asked again: the route may have recorded usage, or the
    /// layer's reservation must be settled or released.
    pub(crate) fn needs_store(&self) -> bool {
        self.ctx.status.is_some() && (self.ctx.reserved || self.ctx.was_metered())
    }

    /// Adds the headers of the status known before the route ran.
    pub(crate) fn finish_now(self, mut response: Response<Body>) -> Response<Body> {
        if let Some(status) = &self.ctx.status {
            self.write_headers(status, &mut response);
        }
        response
    }

    /// Releases an unused reservation, re-reads the usage and adds the headers.
    pub(crate) async fn finish(self, mut response: Response<Body>) -> Response<Body> {
        let ctx = &self.ctx;
        if let Some(reservation) = ctx.take_reservation()
            && let Err(error) = reservation.release().await
        {
            tracing::warn!(target: "ai_metering", billable = %ctx.billable, %error, "could not release the route's reservation; it will expire");
        }
        let cache = &self.settings.cache;
        cache.invalidate(&ctx.billable);
        let now = ctx.metering.now();
        // The entitlement was resolved for this request; only the usage changed.
        let refreshed = match &ctx.status {
            Some(before) => ctx.metering.refresh(before).await,
            None => ctx.metering.check(&ctx.billable, UsageTotals::ZERO).await,
        };
        let status = match refreshed {
            Ok(status) => {
                let status = Arc::new(status);
                cache.put(&ctx.billable, Arc::clone(&status), now);
                Some(status)
            }
            Err(error) => {
                tracing::warn!(target: "ai_metering", billable = %ctx.billable, %error, "could not re-read the usage; the quota headers show the state before the request");
                ctx.status.clone()
            }
        };
        if let Some(status) = &status {
            self.write_headers(status, &mut response);
        }
        response
    }

    fn write_headers(&self, status: &QuotaStatus, response: &mut Response<Body>) {
        let metering = &self.ctx.metering;
        QuotaSnapshot {
            check: &status.check,
            period: status.entitlement.period.as_ref(),
            currency: metering.catalog().currency(),
            now: metering.now(),
        }
        .write(self.settings.headers, response.headers_mut());
    }
}
