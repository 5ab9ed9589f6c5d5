//! [`Meter`]: meter one AI call.
//!
//! Every call gets a fresh builder (no shared mutable state can bill the wrong customer), and
//! the limit is enforced by an atomic reservation *before* the provider is called:
//!
//! 1. validate the input (billable, provider and model, feature, metadata);
//! 2. resolve the subscription, plan and override;
//! 3. check the model has a price (the catalog's unknown-model policy);
//! 4. estimate the call ([`crate::estimate`]: the caller's estimate, the request's own size
//!    and output cap, the billable's recent calls, or none: then at most one such call of
//!    the billable is in flight);
//! 5. reserve the estimate in one atomic store step: check the period's limits, claim the
//!    idempotency key (a recorded key returns the stored row without calling the provider;
//!    a key in flight is refused), and hold the estimate's price in credits mode;
//! 6. call the provider;
//! 7. extract the usage and settle in one transaction: the usage row, the counters, the
//!    overage, the credit capture (all or nothing);
//! 8. emit the events, after the commit.
//!
//! On a provider error the reservation and hold are released, `ProviderCallFailed` is
//! emitted and the caller gets its own error back. A [`Reservation`] dropped without being
//! recorded or released is released in the background.
//!
//! The code follows that order: this file holds the builder and the call, `reserve.rs` the
//! steps up to the reservation, `reservation.rs` what happens to a reservation afterwards.
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

mod reservation;
mod reserve;
mod stream;

use std::fmt;
use std::future::Future;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::billable::{Billable, Tenant};
use crate::error::{Error, Result};
use crate::estimate::RequestEstimate;
use crate::limit::LimitCheck;
use crate::metering::{Entitlement, Metering};
use crate::money::Money;
use crate::plan::BillingMode;
use crate::pricing::CostBreakdown;
use crate::provider::{Provider, extract_usage};
use crate::store::{Store, UsageRecord};
use crate::telemetry;
use crate::usage::TokenUsage;

pub use reservation::{RecordOutcome, Reservation};
use reserve::ReserveError;
pub use stream::StreamMeter;

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
    /// is handed back. Nothing was stored or charged (a settlement is all or nothing), and
    /// the reservation and its credit hold were given back, so a retry with the same
    /// idempotency key runs the call again and records it once.
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

/// What an extractor read from a provider's response: the usage, and the cost when the
/// provider states it (see [`Meter::call_with`]). A [`TokenUsage`] converts into one
/// without a cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportedUsage {
    /// The token usage.
    pub usage: TokenUsage,
    /// What the provider says the call cost; `None`: price it from the catalog.
    pub cost: Option<Money>,
}

impl ReportedUsage {
    /// The usage, without a cost.
    pub fn new(usage: TokenUsage) -> Self {
        Self { usage, cost: None }
    }

    /// The provider's own cost for the call, recorded instead of the catalog's price
    /// (unless the meter was given a [`cost`](Meter::cost)).
    pub fn with_cost(mut self, cost: Money) -> Self {
        self.cost = Some(cost);
        self
    }
}

impl From<TokenUsage> for ReportedUsage {
    fn from(usage: TokenUsage) -> Self {
        Self::new(usage)
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
    request: Option<RequestEstimate>,
    manual_usage: Option<TokenUsage>,
    cost: Option<Money>,
    entitlement: Option<Entitlement>,
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
            request: None,
            manual_usage: None,
            cost: None,
            entitlement: None,
            adopted: None,
        }
    }

    /// Who pays. Without it, the [`user`](Self::user) pays (`Billable::new("user", id)`);
    /// one of the two is required.
    pub fn billable(mut self, billable: Billable) -> Self {
        self.billable = Some(billable);
        self
    }

    /// The acting user, recorded with the usage. Without a [`billable`](Self::billable),
    /// the user is also who pays: `Billable::new("user", user_id)`.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Metering, TokenUsage, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metered = Metering::new(MemoryStore::new())
    ///     .meter()
    ///     .user(42)
    ///     .provider("manual", "custom-model")
    ///     .manual_usage(TokenUsage::new(10, 5).unwrap())
    ///     .call_infallible(async { "done" })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(metered.record.entry.billable, Billable::new("user", 42));
    /// # });
    /// ```
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

    /// Uses an entitlement resolved earlier (a cached one, say) instead of reading the
    /// billable's subscription, plan and limit override from the store. The limits are
    /// still enforced by the store, atomically; this only decides which limits. It is
    /// ignored when it is of another billable or its period has ended.
    ///
    /// The [`QuotaLayer`]-style callers that cache a billable's status for a short time use
    /// it so that a call does not read the store for what the cache already holds.
    ///
    /// [`QuotaLayer`]: https://docs.rs/ai-metering-tower
    pub fn entitlement(mut self, entitlement: Entitlement) -> Self {
        self.entitlement = Some(entitlement);
        self
    }

    /// Requires the subscription to be in this billing mode; the call is refused otherwise.
    /// To switch a subscription's mode, use
    /// [`Metering::set_billing_mode`](crate::Metering::set_billing_mode).
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

    /// The expected usage, reserved against the limits before the call (and, in credits
    /// mode, its price held in the wallet). Its cost is priced from the catalog. With an
    /// estimate that covers the call no limit or wallet can be overshot.
    ///
    /// Without one, the meter estimates the call itself: from the
    /// [`request`](Self::request) when given, else from this billable's recent calls of the
    /// same feature and model; a call that cannot be estimated at all is let through only
    /// while no other unestimated call of the billable is in flight
    /// ([`Error::CallInFlight`] otherwise). See [`crate::estimate`].
    ///
    /// ```
    /// use ai_metering_core::{Metering, TokenUsage, store::MemoryStore};
    /// let meter = Metering::new(MemoryStore::new())
    ///     .meter()
    ///     .estimate(TokenUsage::new(1_000, 500).unwrap());
    /// # let _ = meter;
    /// ```
    pub fn estimate(mut self, usage: TokenUsage) -> Self {
        self.estimate_usage = Some(usage);
        self
    }

    /// The provider request about to be sent (its JSON body), to estimate the call from
    /// when no [`estimate`](Self::estimate) is given: its prompt's size and its output cap
    /// (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, Gemini's
    /// `maxOutputTokens`). Only the estimate is kept, not the body. See
    /// [`crate::estimate::from_request`] for the shapes read.
    ///
    /// ```
    /// use ai_metering_core::{Metering, store::MemoryStore};
    /// let body = serde_json::json!({
    ///     "model": "gpt-4o-mini",
    ///     "max_tokens": 256,
    ///     "messages": [{"role": "user", "content": "Hello"}]
    /// });
    /// let meter = Metering::new(MemoryStore::new()).meter().request(&body);
    /// # let _ = meter;
    /// ```
    pub fn request(mut self, body: &serde_json::Value) -> Self {
        self.request = crate::estimate::from_request(body);
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
    /// reservation. When this builder estimates the call higher than the reservation (or the
    /// reservation had no estimate, or a new idempotency key must be claimed), the
    /// reservation is replaced by one of the larger estimate in one atomic store step, with
    /// its credit hold, or the call is refused before the provider runs. A different
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

    /// What the call costs, recorded (and, in credits mode, held and debited) instead of the
    /// catalog's price: for a provider or a self-hosted model that states its own price.
    /// The catalog is consulted only when no cost is given (here or by the extractor's
    /// [`ReportedUsage::with_cost`]); a model the catalog does not know is then accepted.
    /// In the catalog's currency ([`Error::CurrencyMismatch`] otherwise); not negative.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Currency, Metering, Money, TokenUsage, store::MemoryStore};
    /// use rust_decimal::Decimal;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metered = Metering::new(MemoryStore::new())
    ///     .meter()
    ///     .billable(Billable::new("team", "acme"))
    ///     .provider("self-hosted", "llama-70b")
    ///     .manual_usage(TokenUsage::new(1_000, 200).unwrap())
    ///     .cost(Money::new(Decimal::new(4, 3), Currency::USD))
    ///     .call_infallible(async { "ok" })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(metered.cost.total, Decimal::new(4, 3));
    /// # });
    /// ```
    pub fn cost(mut self, cost: Money) -> Self {
        self.cost = Some(cost);
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

    /// Meters a call that cannot fail, such as usage counted by the app itself: `call`
    /// with the provider error type fixed to [`Infallible`](std::convert::Infallible), so
    /// no `Ok::<_, SomeError>` turbofish is needed. The usage is read from the response as
    /// by [`call`](Self::call), unless [`manual_usage`](Self::manual_usage) gives it.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Metering, TokenUsage, store::MemoryStore};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let metered = Metering::new(MemoryStore::new())
    ///     .meter()
    ///     .billable(Billable::new("user", 1))
    ///     .provider("openai", "gpt-4o-mini")
    ///     .manual_usage(TokenUsage::new(100, 20).unwrap())
    ///     .call_infallible(async { "Hello!" })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(metered.response, "Hello!");
    /// # });
    /// ```
    ///
    /// # Errors
    /// See [`MeterError`]; never [`MeterError::Provider`].
    pub async fn call_infallible<T, F>(
        self,
        call: F,
    ) -> Result<Metered<T>, MeterError<T, std::convert::Infallible>>
    where
        T: Serialize,
        F: Future<Output = T>,
    {
        self.call(async move { Ok(call.await) }).await
    }

    /// Calls the provider and meters it, reading the usage with `extract`, which returns a
    /// [`TokenUsage`], or a [`ReportedUsage`] when the provider also states what the call
    /// cost (used instead of the catalog unless [`cost`](Self::cost) is given). The model is
    /// still checked against the catalog before the call, since the reported cost is known
    /// only after it: for a model the catalog does not know, give a [`cost`](Self::cost)
    /// or use the [`MANUAL_PROVIDER`](crate::pricing::MANUAL_PROVIDER).
    ///
    /// ```
    /// use ai_metering_core::{Billable, Currency, Metering, Money, ReportedUsage, TokenUsage, store::MemoryStore};
    /// use rust_decimal::Decimal;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // A provider whose response says what it charged.
    /// let response = serde_json::json!({"tokens_in": 300, "tokens_out": 50, "charged_usd": "0.0021"});
    /// let metered = Metering::new(MemoryStore::new())
    ///     .meter()
    ///     .billable(Billable::new("user", 7))
    ///     .provider("openai", "gpt-4o-mini")
    ///     .call_with(async { Ok::<_, std::io::Error>(response) }, |r| {
    ///         let usage = TokenUsage::new(r["tokens_in"].as_u64().unwrap_or(0), r["tokens_out"].as_u64().unwrap_or(0))?;
    ///         let charged: Decimal = r["charged_usd"].as_str().unwrap_or("0").parse().unwrap_or_default();
    ///         Ok(ReportedUsage::new(usage).with_cost(Money::new(charged, Currency::USD)))
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(metered.cost.total, Decimal::new(21, 4));
    /// # });
    /// ```
    ///
    /// # Errors
    /// See [`MeterError`].
    pub async fn call_with<T, E, F, X, U>(
        self,
        call: F,
        extract: X,
    ) -> Result<Metered<T>, MeterError<T, E>>
    where
        E: fmt::Display,
        F: Future<Output = Result<T, E>>,
        X: FnOnce(&T) -> Result<U>,
        U: Into<ReportedUsage>,
    {
        let manual = self.manual_usage;
        let per_billable = self.metering.config().metrics_per_billable;
        let mut reservation = match self.reserve().await {
            Ok(r) => r,
            Err(ReserveError::Duplicate(record)) => {
                let e = &record.entry;
                telemetry::call(&e.provider, &e.model, "replayed", &e.billable, per_billable);
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
        let reported = match manual {
            Some(usage) => Ok(ReportedUsage::new(usage)),
            None => extract(&response).map(Into::into),
        };
        let (usage, estimated) = match reported {
            Ok(reported) => {
                if let Some(cost) = reported.cost {
                    reservation.report_cost(cost);
                }
                (reported.usage, false)
            }
            Err(error) => match reservation.estimate_usage() {
                Some(estimate) if estimate.total_tokens() > 0 => {
                    tracing::warn!(target: "ai_metering", %error, "usage not reported; recording the estimate");
                    (estimate, true)
                }
                _ => {
                    tracing::error!(target: "ai_metering", billable = %reservation.billable(), %error, "the provider answered but its usage is unknown; nothing is recorded");
                    let (provider, model) = reservation.provider().unwrap_or(("", ""));
                    telemetry::call(
                        provider,
                        model,
                        "not_recorded",
                        reservation.billable(),
                        per_billable,
                    );
                    reservation.give_back().await;
                    return Err(MeterError::NotRecorded { response, error });
                }
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
    /// Without any estimate the reservation is a *placeholder*: it reserves nothing (a
    /// period already exhausted still refuses it), and the meter that adopts it estimates
    /// the call as [`estimate`](Self::estimate) describes.
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
        match self.reserve_deferred().await {
            Ok(r) => Ok(r),
            Err(ReserveError::Metering(e)) => Err(e),
            Err(ReserveError::Duplicate(record)) => Err(Error::InvalidInput(format!(
                "idempotency key already used by usage #{}",
                record.id
            ))),
        }
    }
}
