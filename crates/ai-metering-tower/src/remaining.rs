//! [`RemainingQuota`]: what the layer hands to the route, as an axum extractor.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ai_metering_core::limit::LimitCheck;
use ai_metering_core::store::{DynStore, Store, WalletBalance};
use ai_metering_core::{Billable, Meter, Metering, QuotaStatus, Reservation, Tenant};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::StatusCode;
use http::request::Parts;
use rust_decimal::Decimal;

use crate::cache::Checked;

/// The request's quota, which the [`QuotaLayer`](crate::QuotaLayer) leaves in the request
/// extensions when it lets a request through: an axum extractor for handlers, and
/// [`from_extensions`](Self::from_extensions) for a plain `tower::Service`. Without a type
/// parameter it works with any store, so a handler never names the store type (and cannot
/// name the wrong one):
///
/// ```
/// use ai_metering_tower::RemainingQuota;
///
/// async fn chat(quota: RemainingQuota) -> String {
///     match quota.remaining_tokens() {
///         Some(tokens) => format!("{tokens} tokens left until {:?}", quota.reset_at()),
///         None => "no token limit".to_owned(),
///     }
/// }
/// # let _ = axum::Router::<()>::new().route("/chat", axum::routing::post(chat));
/// ```
///
/// [`meter`](Self::meter) gives a [`Meter`] bound to this request's billable, tenant and
/// feature which settles the estimate the layer reserved (no double counting):
/// `quota.meter().provider("openai", "gpt-4o-mini").call(...)`.
///
/// `RemainingQuota` is `RemainingQuota<DynStore>`: its meter reaches the layer's store
/// through a [`DynStore`] (one boxed future per store call). A handler that wants the
/// concrete store type, to skip that, names it: `RemainingQuota<MemoryStore>`; the layer
/// provides both.
///
/// Without the layer (or with another concrete store type), extracting it fails with a
/// [`RemainingQuotaRejection`] that says which (500, a server misconfiguration). Routes
/// that let anonymous requests through
/// ([`allow_anonymous`](crate::QuotaLayer::allow_anonymous)) extract
/// `Option<RemainingQuota>`.
pub struct RemainingQuota<S = DynStore> {
    ctx: Arc<dyn Context<S>>,
}

impl<S> Clone for RemainingQuota<S> {
    fn clone(&self) -> Self {
        Self {
            ctx: Arc::clone(&self.ctx),
        }
    }
}

impl<S> fmt::Debug for RemainingQuota<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemainingQuota")
            .field("billable", self.ctx.billable())
            .field("tenant", &self.ctx.tenant())
            .field("feature", &self.ctx.feature())
            .field("check", &self.check())
            .finish_non_exhaustive()
    }
}

/// What a [`RemainingQuota<S>`] reads: a request's [`QuotaContext`], over its own store
/// type or, through [`Erased`], over [`DynStore`].
trait Context<S>: Send + Sync {
    fn billable(&self) -> &Billable;
    fn tenant(&self) -> Option<&Tenant>;
    fn feature(&self) -> Option<&str>;
    fn checked(&self) -> Option<&Checked>;
    fn wallet(&self) -> Option<&WalletBalance>;
    fn meter(&self) -> Meter<S>;
    fn metering(&self) -> &Metering<S>;
}

impl<S: Store> Context<S> for QuotaContext<S> {
    fn billable(&self) -> &Billable {
        self.payer.billable()
    }
    fn tenant(&self) -> Option<&Tenant> {
        self.tenant.as_ref()
    }
    fn feature(&self) -> Option<&str> {
        self.feature.as_deref()
    }
    fn checked(&self) -> Option<&Checked> {
        self.checked.as_deref()
    }
    fn wallet(&self) -> Option<&WalletBalance> {
        self.wallet.as_deref()
    }
    fn meter(&self) -> Meter<S> {
        let reservation = self.start_metering();
        self.bind(self.metering.meter(), reservation)
    }
    fn metering(&self) -> &Metering<S> {
        &self.metering
    }
}

/// A request's context seen over [`DynStore`]: the same reservation and store.
struct Erased<S>(Arc<QuotaContext<S>>);

impl<S: Store> Context<DynStore> for Erased<S> {
    fn billable(&self) -> &Billable {
        self.0.payer.billable()
    }
    fn tenant(&self) -> Option<&Tenant> {
        self.0.tenant.as_ref()
    }
    fn feature(&self) -> Option<&str> {
        self.0.feature.as_deref()
    }
    fn checked(&self) -> Option<&Checked> {
        self.0.checked.as_deref()
    }
    fn wallet(&self) -> Option<&WalletBalance> {
        self.0.wallet.as_deref()
    }
    fn meter(&self) -> Meter<DynStore> {
        let reservation = self.0.start_metering().map(Reservation::erased);
        self.0.bind(self.0.metering.erased().meter(), reservation)
    }
    fn metering(&self) -> &Metering<DynStore> {
        self.0.metering.erased()
    }
}

/// The request's entry in its extensions: its [`QuotaContext`] over whatever store the
/// layer serves, from which [`RemainingQuota::from_extensions`] takes the typed view, or
/// builds the [`DynStore`] view only when a handler asks for it (no allocation otherwise),
/// or names the installed store type in its rejection.
#[derive(Clone)]
struct Installed(Arc<dyn InstalledContext>);

trait InstalledContext: Send + Sync {
    /// The store type the layer serves, for the rejection of a mismatched extractor.
    fn store_type(&self) -> &'static str;
    /// The context itself, to downcast to `QuotaContext<S>`.
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
    /// The context seen over [`DynStore`].
    fn erased(self: Arc<Self>) -> Arc<dyn Context<DynStore>>;
}

impl<S: Store> InstalledContext for QuotaContext<S> {
    fn store_type(&self) -> &'static str {
        std::any::type_name::<S>()
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
    fn erased(self: Arc<Self>) -> Arc<dyn Context<DynStore>> {
        Arc::new(Erased(self))
    }
}

/// Puts the request's quota in `extensions`, as one entry over whatever store the layer
/// serves; [`RemainingQuota::from_extensions`] reads it for any store type.
pub(crate) fn insert<S: Store>(extensions: &mut http::Extensions, ctx: &Arc<QuotaContext<S>>) {
    extensions.insert(Installed(Arc::clone(ctx) as Arc<dyn InstalledContext>));
}

/// The request's quota as `RemainingQuota<S>`: the layer's own store type, or [`DynStore`]
/// for any layer. `Err` with the installed store type when neither fits.
fn quota_from<S: Store>(installed: &Installed) -> Result<RemainingQuota<S>, &'static str> {
    let Installed(ctx) = installed;
    if let Ok(typed) = Arc::clone(ctx).as_any().downcast::<QuotaContext<S>>() {
        return Ok(RemainingQuota { ctx: typed });
    }
    // `S` is `DynStore` here exactly when this downcast of the erased view succeeds.
    let erased: Box<dyn std::any::Any> = Box::new(RemainingQuota {
        ctx: Arc::clone(ctx).erased(),
    });
    erased
        .downcast::<RemainingQuota<S>>()
        .map(|quota| *quota)
        .map_err(|_| ctx.store_type())
}

/// Who pays for a request.
pub(crate) enum Payer {
    /// A billable of the request's own.
    Own(Billable),
    /// The billable of the cached status that let the request in: the same one, shared
    /// rather than copied on every request.
    OfStatus(Arc<Checked>),
}

impl Payer {
    fn billable(&self) -> &Billable {
        match self {
            Self::Own(billable) => billable,
            Self::OfStatus(checked) => &checked.status.entitlement.billable,
        }
    }
}

/// The state of one request, shared by the layer and the handler's [`RemainingQuota`].
pub(crate) struct QuotaContext<S> {
    pub(crate) metering: Metering<S>,
    pub(crate) payer: Payer,
    pub(crate) tenant: Option<Tenant>,
    pub(crate) feature: Option<Arc<str>>,
    /// The status and its headers; `None` when the check failed and the layer fails open.
    pub(crate) checked: Option<Arc<Checked>>,
    /// Whether the layer reserved the route's estimate.
    pub(crate) reserved: bool,
    /// The route's reservation until a [`Meter`] adopts it (boxed: it is large, and most
    /// requests have none).
    pub(crate) reservation: Mutex<Option<Box<Reservation<S>>>>,
    /// How many meters were handed out (usage may have been recorded when any was).
    pub(crate) meters: AtomicUsize,
    /// Credits mode: the wallet right after the route's hold, as the store reported it
    /// (boxed: most requests have none).
    pub(crate) wallet: Option<Box<WalletBalance>>,
    /// The limit check after the settlement of the route's reservation, once committed;
    /// `None` when the layer reserved nothing.
    pub(crate) settled: Option<Arc<Mutex<Option<LimitCheck>>>>,
}

impl<S> QuotaContext<S> {
    /// Who pays for the request.
    pub(crate) fn billable(&self) -> &Billable {
        self.payer.billable()
    }

    pub(crate) fn take_reservation(&self) -> Option<Reservation<S>> {
        let mut reservation = self
            .reservation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reservation.take().map(|boxed| *boxed)
    }

    pub(crate) fn was_metered(&self) -> bool {
        self.meters.load(Ordering::Acquire) > 0
    }

    /// The limit check after the settlement of the route's reservation, when that is all
    /// the request recorded (one meter, which adopted the reservation and settled it).
    pub(crate) fn settled_alone(&self) -> Option<LimitCheck> {
        if self.meters.load(Ordering::Acquire) != 1 {
            return None;
        }
        self.settled
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks the request as metered and hands over the route's reservation, if still here.
    fn start_metering(&self) -> Option<Reservation<S>> {
        self.meters.fetch_add(1, Ordering::AcqRel);
        self.take_reservation()
    }

    /// `meter` with this request's billable, tenant and feature, adopting `reservation`.
    fn bind<T: Store>(&self, meter: Meter<T>, reservation: Option<Reservation<T>>) -> Meter<T> {
        let mut meter = meter.billable(self.billable().clone());
        if let Some(tenant) = &self.tenant {
            meter = meter.tenant(tenant.clone());
        }
        if let Some(feature) = &self.feature {
            meter = meter.feature(feature.as_ref());
        }
        if let Some(reservation) = reservation {
            meter = meter.adopt(reservation);
        }
        meter
    }
}

impl<S> RemainingQuota<S> {
    /// Who pays for this request.
    pub fn billable(&self) -> &Billable {
        self.ctx.billable()
    }

    /// The request's tenant, if one was resolved.
    pub fn tenant(&self) -> Option<&Tenant> {
        self.ctx.tenant()
    }

    /// The route's feature name, if the layer sets one.
    pub fn feature(&self) -> Option<&str> {
        self.ctx.feature()
    }

    /// The billable's entitlement and limit check when the request was let in (counting
    /// the route's reservation, if any). `None` when the check failed and the layer is set
    /// to [fail open](crate::QuotaLayer::fail_open).
    pub fn status(&self) -> Option<&QuotaStatus> {
        self.ctx.checked().map(|c| &c.status)
    }

    /// The limit check; see [`status`](Self::status).
    pub fn check(&self) -> Option<&LimitCheck> {
        self.status().map(|s| &s.check)
    }

    /// Tokens left in the period; `None` without a token limit (or without a check).
    pub fn remaining_tokens(&self) -> Option<u64> {
        self.check().and_then(|c| c.remaining_tokens)
    }

    /// Cost left in the period, in the catalog's currency; `None` without a cost limit (or
    /// without a check).
    pub fn remaining_cost(&self) -> Option<Decimal> {
        self.check().and_then(|c| c.remaining_cost)
    }

    /// The usage percentage of the most used limit (2 decimals); 0 without limits.
    pub fn usage_percentage(&self) -> Decimal {
        self.check().map_or(Decimal::ZERO, |c| c.usage_percentage)
    }

    /// When the period resets; `None` without limits.
    pub fn reset_at(&self) -> Option<DateTime<Utc>> {
        self.check().and_then(|c| c.reset_at)
    }

    /// For a credits-mode billable, its wallet right after the layer held the route's
    /// estimate: the balance, what the calls in flight hold (this one's included) and what
    /// its grants keep unusable, so [`WalletBalance::available`] is what is left to spend
    /// beyond this call. `None` in plan mode, or when the store did not report it (read it
    /// with [`CreditStore::wallet_at`](ai_metering_core::store::CreditStore::wallet_at)).
    pub fn wallet(&self) -> Option<&WalletBalance> {
        self.ctx.wallet()
    }
}

impl<S: Store> RemainingQuota<S> {
    /// The request's quota from its extensions, where the [`QuotaLayer`](crate::QuotaLayer)
    /// put it: what the axum extractor does, for a plain `tower::Service` that gets the
    /// whole request. `S` is the layer's store type, or [`DynStore`] (the default) for any.
    ///
    /// ```
    /// use ai_metering_tower::RemainingQuota;
    ///
    /// async fn service(request: http::Request<axum::body::Body>) -> Result<http::Response<String>, std::convert::Infallible> {
    ///     // `<RemainingQuota>` is `RemainingQuota<DynStore>`, which works with any store.
    ///     let left = match <RemainingQuota>::from_extensions(request.extensions()) {
    ///         Ok(quota) => format!("{:?}", quota.remaining_tokens()),
    ///         Err(rejection) => rejection.to_string(), // not behind the layer
    ///     };
    ///     Ok(http::Response::new(left))
    /// }
    /// ```
    pub fn from_extensions(extensions: &http::Extensions) -> Result<Self, RemainingQuotaRejection> {
        let requested = std::any::type_name::<S>();
        match extensions.get::<Installed>() {
            Some(installed) => quota_from(installed).map_err(|installed| {
                RemainingQuotaRejection::StoreTypeMismatch {
                    requested,
                    installed,
                }
            }),
            None => Err(RemainingQuotaRejection::MissingQuotaLayer { store: requested }),
        }
    }

    /// A [`Meter`] for a call made on behalf of this request: billable, tenant and feature
    /// are set, and the first meter taken settles the estimate the layer reserved for the
    /// route instead of reserving again (later ones reserve their own). Add the provider
    /// and model, then `.call(...)`.
    ///
    /// A meter holding the route's reservation should be used: dropped without a call, it
    /// releases the reservation in the background. Give the meter the provider request
    /// (`.request(&body)`) or an estimate: a route without one is estimated from the
    /// billable's recent calls, and a call that cannot be estimated at all runs only while no
    /// other unestimated call of the billable does ([`Error::CallInFlight`], which
    /// [`QuotaRejection`](crate::QuotaRejection) answers with a retryable 429).
    ///
    /// [`Error::CallInFlight`]: ai_metering_core::Error::CallInFlight
    ///
    /// ```no_run
    /// # use ai_metering_tower::{QuotaRejection, RemainingQuota};
    /// # async fn fake_llm() -> Result<serde_json::Value, std::io::Error> { Ok(serde_json::json!({})) }
    /// async fn chat(quota: RemainingQuota) -> Result<String, QuotaRejection> {
    ///     let metered = quota
    ///         .meter()
    ///         .provider("openai", "gpt-4o-mini")
    ///         .call(fake_llm())
    ///         .await?; // refusals answer as the layer does; a provider error is a 502
    ///     Ok(metered.response.to_string())
    /// }
    /// ```
    pub fn meter(&self) -> Meter<S> {
        self.ctx.meter()
    }

    /// The metering service, for anything beyond one call.
    pub fn metering(&self) -> &Metering<S> {
        self.ctx.metering()
    }
}

impl<S, State> FromRequestParts<State> for RemainingQuota<S>
where
    S: Store,
    State: Send + Sync,
{
    type Rejection = RemainingQuotaRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &State,
    ) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions)
    }
}

impl<S, State> OptionalFromRequestParts<State> for RemainingQuota<S>
where
    S: Store,
    State: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &State,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(Self::from_extensions(&parts.extensions).ok())
    }
}

/// Why [`RemainingQuota`] could not be extracted: a server misconfiguration (500), with a
/// message that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemainingQuotaRejection {
    /// The request carries no quota: the route is not behind a `QuotaLayer`, or the layer
    /// let an anonymous request through.
    MissingQuotaLayer {
        /// The store type the handler asked for.
        store: &'static str,
    },
    /// A `QuotaLayer` is installed, but over another store type than the handler names.
    /// `RemainingQuota` without a type parameter works with any.
    StoreTypeMismatch {
        /// The store type the handler asked for.
        requested: &'static str,
        /// The store type of the installed layer.
        installed: &'static str,
    },
}

impl RemainingQuotaRejection {
    /// 500: a server configuration error, not the client's.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The response body: an RFC 9457 problem whose `detail` is the message.
    pub fn body_text(&self) -> String {
        serde_json::json!({
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": self.to_string(),
        })
        .to_string()
    }
}

impl fmt::Display for RemainingQuotaRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingQuotaLayer { store } => write!(
                f,
                "Missing request extension: RemainingQuota<{store}> was not found; \
                 is the QuotaLayer installed on this route? \
                 Anonymous requests let through by the layer carry none: extract \
                 Option<RemainingQuota> there."
            ),
            Self::StoreTypeMismatch {
                requested,
                installed,
            } => write!(
                f,
                "RemainingQuota<{requested}> was asked for, but the QuotaLayer on this route \
                 is over {installed}: name that store type, or extract RemainingQuota \
                 (without a type parameter), which works with any store."
            ),
        }
    }
}

impl std::error::Error for RemainingQuotaRejection {}

impl IntoResponse for RemainingQuotaRejection {
    fn into_response(self) -> Response {
        tracing::error!(target: "ai_metering", rejection = %self, "RemainingQuota extractor rejected the request");
        let mut response = (self.status(), self.body_text()).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(crate::problem::PROBLEM_JSON),
        );
        response
    }
}
