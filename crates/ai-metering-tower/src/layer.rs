//! [`QuotaLayer`]: the builder and `tower::Layer`.

use std::fmt;
use std::sync::Arc;

use ai_metering_core::store::Store;
use ai_metering_core::{Billable, MAX_TOKENS_PER_CALL, Metering, Tenant};
use axum::response::Response;
use chrono::Duration;
use rust_decimal::Decimal;
use tower_layer::Layer;

use crate::cache::CheckCache;
use crate::headers::HeaderStyle;
use crate::problem::QuotaRejection;
use crate::resolve::{FromExtensions, Resolver};
use crate::service::QuotaService;

/// The default limit-check cache TTL: 5 seconds.
pub const DEFAULT_CACHE_TTL: Duration = Duration::seconds(5);

type RejectionHandler = dyn Fn(QuotaRejection) -> Response + Send + Sync;

/// Everything a [`QuotaService`] needs that does not depend on the resolvers.
pub(crate) struct Settings<S> {
    pub(crate) metering: Metering<S>,
    pub(crate) feature: Option<Arc<str>>,
    pub(crate) estimate_tokens: u64,
    pub(crate) estimate_cost: Option<Decimal>,
    pub(crate) allow_anonymous: bool,
    pub(crate) fail_open: bool,
    pub(crate) headers: HeaderStyle,
    pub(crate) cache: Arc<CheckCache>,
    pub(crate) on_rejection: Option<Arc<RejectionHandler>>,
}

impl<S> Clone for Settings<S> {
    fn clone(&self) -> Self {
        Self {
            metering: self.metering.clone(),
            feature: self.feature.clone(),
            estimate_tokens: self.estimate_tokens,
            estimate_cost: self.estimate_cost,
            allow_anonymous: self.allow_anonymous,
            fail_open: self.fail_open,
            headers: self.headers,
            cache: Arc::clone(&self.cache),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<S> Settings<S> {
    /// True when the route reserves an estimate before the handler runs.
    pub(crate) fn reserves(&self) -> bool {
        self.estimate_tokens > 0 || self.estimate_cost.is_some_and(|c| c > Decimal::ZERO)
    }
}

/// What a service built by the layer holds: the settings and the two resolvers.
pub(crate) struct Config<S, B, T> {
    pub(crate) settings: Arc<Settings<S>>,
    pub(crate) billable: Arc<B>,
    pub(crate) tenant: Arc<T>,
}

/// Protects routes with usage quotas: a `tower::Layer` producing [`QuotaService`].
///
/// On each request the layer finds the billable (by default the [`Billable`] the host's
/// auth middleware put in the request extensions), checks its limits, and then:
///
/// - over the limit (block policy): answers **429** with an RFC 9457 problem body,
///   `Retry-After` and the quota headers, without calling the route;
/// - credits-mode billable whose wallet cannot cover the route's estimate: **402**;
/// - no billable: **401** (or lets the request through, see
///   [`allow_anonymous`](Self::allow_anonymous));
/// - a billable without an active subscription, when the metering
///   [requires one](ai_metering_core::MeteringConfig::require_subscription): **403**;
/// - store failure: **503** (or lets the request through, see [`fail_open`](Self::fail_open));
/// - otherwise: puts a [`RemainingQuota`](crate::RemainingQuota) in the request
///   extensions, calls the route, and adds the quota headers (see [`crate::headers`]) to
///   its response, counting the usage the route recorded.
///
/// With an [`estimate`](Self::estimate) the layer *reserves* it atomically before calling
/// the route, so concurrent requests cannot overspend; the route's
/// [`RemainingQuota::meter`](crate::RemainingQuota::meter) settles that reservation with
/// the actual usage, and the layer releases it if the route recorded nothing.
///
/// Clones share the limit-check cache: build one layer and clone it per route.
///
/// Each request runs in an `INFO` span named `quota` (target `ai_metering`) with the
/// `billable`, the `feature` and the `decision` (`allowed`, `quota_exceeded`,
/// `no_billable`, ...), made only when a tracing subscriber records it: without one, the
/// layer makes no span at all, and sends nothing to the `log` crate.
///
/// ```
/// use ai_metering_core::store::MemoryStore;
/// use ai_metering_tower::QuotaLayer;
/// use axum::{Router, routing::post};
///
/// let quota = QuotaLayer::new(MemoryStore::new());
/// let app: Router = Router::new()
///     .route("/chat", post(|| async { "hi" }).route_layer(quota.clone().feature("chat").estimate(2_000)))
///     .route("/summarise", post(|| async { "ok" }).route_layer(quota.feature("summarise")));
/// ```
pub struct QuotaLayer<S, B = FromExtensions, T = FromExtensions> {
    settings: Arc<Settings<S>>,
    billable: Arc<B>,
    tenant: Arc<T>,
}

impl<S, B, T> Clone for QuotaLayer<S, B, T> {
    fn clone(&self) -> Self {
        Self {
            settings: Arc::clone(&self.settings),
            billable: Arc::clone(&self.billable),
            tenant: Arc::clone(&self.tenant),
        }
    }
}

impl<S, B, T> fmt::Debug for QuotaLayer<S, B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("QuotaLayer")
            .field("billable", &std::any::type_name::<B>())
            .field("tenant", &std::any::type_name::<T>())
            .field("feature", &s.feature)
            .field("estimate_tokens", &s.estimate_tokens)
            .field("estimate_cost", &s.estimate_cost)
            .field("allow_anonymous", &s.allow_anonymous)
            .field("fail_open", &s.fail_open)
            .field("headers", &s.headers)
            .field("cache_ttl", &s.cache.ttl())
            .finish_non_exhaustive()
    }
}

impl<S: Store> QuotaLayer<S> {
    /// A layer over a [`Metering`] (or a bare store, wrapped in [`Metering::new`]), with the
    /// defaults: billable and tenant from the request extensions, no feature, no estimate,
    /// 401 without a billable, 503 on store failures, a 5-second cache, both header sets.
    ///
    /// ```
    /// use ai_metering_core::{Metering, store::MemoryStore};
    /// use ai_metering_tower::QuotaLayer;
    ///
    /// let from_store = QuotaLayer::new(MemoryStore::new());
    /// let metering = Metering::new(MemoryStore::new());
    /// let from_metering = QuotaLayer::new(metering.clone());
    /// # let _ = (from_store, from_metering);
    /// ```
    pub fn new(metering: impl Into<Metering<S>>) -> Self {
        Self {
            settings: Arc::new(Settings {
                metering: metering.into(),
                feature: None,
                estimate_tokens: 0,
                estimate_cost: None,
                allow_anonymous: false,
                fail_open: false,
                headers: HeaderStyle::default(),
                cache: Arc::new(CheckCache::new(DEFAULT_CACHE_TTL)),
                on_rejection: None,
            }),
            billable: Arc::new(FromExtensions),
            tenant: Arc::new(FromExtensions),
        }
    }
}

impl<S: Store, B, T> QuotaLayer<S, B, T> {
    fn settings_mut(&mut self) -> &mut Settings<S> {
        Arc::make_mut(&mut self.settings)
    }

    /// The metering service the layer uses.
    pub fn metering(&self) -> &Metering<S> {
        &self.settings.metering
    }

    /// How the billable is found: a closure over the request parts, [`FromHeader`], or any
    /// [`Resolver`].
    ///
    /// [`FromHeader`]: crate::FromHeader
    ///
    /// ```
    /// use ai_metering_core::{Billable, store::MemoryStore};
    /// use ai_metering_tower::QuotaLayer;
    /// use http::request::Parts;
    ///
    /// let layer = QuotaLayer::new(MemoryStore::new()).billable(|parts: &Parts| {
    ///     let key = parts.headers.get("x-api-key")?.to_str().ok()?;
    ///     Some(Billable::new("api-key", key))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn billable<B2: Resolver<Billable>>(self, resolver: B2) -> QuotaLayer<S, B2, T> {
        QuotaLayer {
            settings: self.settings,
            billable: Arc::new(resolver),
            tenant: self.tenant,
        }
    }

    /// How the tenant is found (default: a [`Tenant`] in the request extensions). The
    /// tenant is recorded with the usage of the route's meter.
    ///
    /// ```
    /// use ai_metering_core::store::MemoryStore;
    /// use ai_metering_tower::{FromHeader, QuotaLayer};
    ///
    /// let layer = QuotaLayer::new(MemoryStore::new()).tenant(FromHeader::new("x-tenant"));
    /// # let _ = layer;
    /// ```
    pub fn tenant<T2: Resolver<Tenant>>(self, resolver: T2) -> QuotaLayer<S, B, T2> {
        QuotaLayer {
            settings: self.settings,
            billable: self.billable,
            tenant: Arc::new(resolver),
        }
    }

    /// The feature name recorded with the route's usage (1 to 100 characters of
    /// `[A-Za-z0-9_.:-]`; an invalid name makes every request fail with 500, logged).
    ///
    /// ```
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new()).feature("chat");
    /// # let _ = layer;
    /// ```
    pub fn feature(mut self, feature: impl Into<String>) -> Self {
        self.settings_mut().feature = Some(Arc::from(feature.into()));
        self
    }

    /// The tokens to reserve for each request before the route runs (default 0: check
    /// only). With an estimate, concurrent requests cannot take more
    /// than the limit: a request is refused (429) when the estimate does not fit what is
    /// left. Capped at [`MAX_TOKENS_PER_CALL`].
    ///
    /// ```
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new()).estimate(2_000);
    /// # let _ = layer;
    /// ```
    pub fn estimate(mut self, tokens: u64) -> Self {
        self.settings_mut().estimate_tokens = tokens.min(MAX_TOKENS_PER_CALL);
        self
    }

    /// The cost to reserve for each request, in the catalog's currency (default: none).
    /// It counts against cost limits, and credits-mode billables whose wallet cannot cover
    /// it get 402. Without it, credits-mode billables are refused only when their wallet
    /// has nothing left.
    ///
    /// ```
    /// use rust_decimal::Decimal;
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new())
    ///     .estimate_cost(Decimal::new(2, 2)); // 0.02
    /// # let _ = layer;
    /// ```
    pub fn estimate_cost(mut self, cost: Decimal) -> Self {
        self.settings_mut().estimate_cost = Some(cost.max(Decimal::ZERO));
        self
    }

    /// Lets requests without a billable through, unmetered and without quota headers
    /// (default: 401). Their handlers see no [`RemainingQuota`](crate::RemainingQuota):
    /// extract `Option<RemainingQuota<S>>`.
    ///
    /// ```
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new()).allow_anonymous();
    /// # let _ = layer;
    /// ```
    pub fn allow_anonymous(mut self) -> Self {
        self.settings_mut().allow_anonymous = true;
        self
    }

    /// When the quota cannot be checked (store down, a broken subscription), lets the
    /// request through without limits and logs the error (default: refuse with 503, or 500
    /// for errors other than the store's). The route still gets a
    /// [`RemainingQuota`](crate::RemainingQuota), whose `status()` is `None`.
    ///
    /// ```
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new()).fail_open();
    /// # let _ = layer;
    /// ```
    pub fn fail_open(mut self) -> Self {
        self.settings_mut().fail_open = true;
        self
    }

    /// Refuses requests whose quota cannot be checked (the default).
    ///
    /// ```
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new()).fail_closed();
    /// # let _ = layer;
    /// ```
    pub fn fail_closed(mut self) -> Self {
        self.settings_mut().fail_open = false;
        self
    }

    /// How long a limit check may be reused for the same billable (default 5 s; zero
    /// disables the cache). Usage recorded through this layer invalidates it at once; see
    /// the [`cache`](crate::cache) module for what the TTL bounds. This starts a new cache
    /// for this layer and the clones made from it afterwards.
    ///
    /// ```
    /// let layer = ai_metering_tower::QuotaLayer::new(ai_metering_core::store::MemoryStore::new())
    ///     .cache_ttl(chrono::Duration::seconds(30));
    /// # let _ = layer;
    /// ```
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.settings_mut().cache = Arc::new(CheckCache::new(ttl));
        self
    }

    /// Which quota headers to add (default: [`HeaderStyle::Both`]).
    ///
    /// One set alone is cheaper than both, beyond the bytes: its headers fit in the map a
    /// typical response already has, where the five of both make the layer copy them into
    /// a new one (docs/PERFORMANCE.md measures each).
    ///
    /// ```
    /// use ai_metering_tower::{HeaderStyle, QuotaLayer};
    /// let layer = QuotaLayer::new(ai_metering_core::store::MemoryStore::new()).headers(HeaderStyle::Ietf);
    /// # let _ = layer;
    /// ```
    pub fn headers(mut self, style: HeaderStyle) -> Self {
        self.settings_mut().headers = style;
        self
    }

    /// Builds the response for a refused request instead of the default problem document.
    /// The layer still adds `Retry-After` and the quota headers to a 429.
    ///
    /// ```
    /// use ai_metering_tower::{QuotaLayer, QuotaRejection};
    /// use axum::response::IntoResponse;
    ///
    /// let layer = QuotaLayer::new(ai_metering_core::store::MemoryStore::new())
    ///     .on_rejection(|rejection: QuotaRejection| (rejection.status(), "no more AI today").into_response());
    /// # let _ = layer;
    /// ```
    pub fn on_rejection<F>(mut self, handler: F) -> Self
    where
        F: Fn(QuotaRejection) -> Response + Send + Sync + 'static,
    {
        self.settings_mut().on_rejection = Some(Arc::new(handler));
        self
    }
}

impl<I, S, B, T> Layer<I> for QuotaLayer<S, B, T> {
    type Service = QuotaService<I, S, B, T>;

    fn layer(&self, inner: I) -> Self::Service {
        QuotaService::new(
            inner,
            Arc::new(Config {
                settings: Arc::clone(&self.settings),
                billable: Arc::clone(&self.billable),
                tenant: Arc::clone(&self.tenant),
            }),
        )
    }
}
