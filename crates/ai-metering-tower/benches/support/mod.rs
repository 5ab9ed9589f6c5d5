//! The routers both layer benches measure: a bare axum `Router`, and the same behind a
//! `QuotaLayer` (MemoryStore, a billable well within its plan, cached limit check), with
//! the default headers, with each of their two sets alone, and without any; and, for comparison, behind the peer rate limiter
//! tower-governor, keyed by the same billable, with its headers.

#![allow(clippy::expect_used)] // benchmark setup: failing fast is the point

use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
use ai_metering_core::{Billable, Metering};
use ai_metering_tower::{HeaderStyle, QuotaLayer};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

/// The routers, by the name the benches give them.
pub struct Routers {
    pub bare: Router,
    pub layered: Router,
    pub original: Router,
    pub ietf: Router,
    pub no_headers: Router,
    pub governor: Router,
}

impl Routers {
    /// The routers' names, in the order the benches run them.
    pub const NAMES: [&str; 6] = [
        "bare",
        "quota_layer_cached",
        "quota_layer_cached_original",
        "quota_layer_cached_ietf",
        "quota_layer_cached_no_headers",
        "tower_governor",
    ];
}

/// tower-governor's key for a request: its billable, as the `QuotaLayer` finds it.
#[derive(Debug, Clone, Copy)]
pub struct ByBillable;

impl KeyExtractor for ByBillable {
    type Key = Billable;

    fn extract<T>(&self, request: &http::Request<T>) -> Result<Billable, GovernorError> {
        request
            .extensions()
            .get::<Billable>()
            .cloned()
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

impl Routers {
    /// Builds the routers, with the billable's plan and subscription stored.
    pub fn new(runtime: &tokio::runtime::Runtime) -> Self {
        let store = MemoryStore::new();
        runtime.block_on(async {
            store
                .upsert_plan(&Plan::new("basic", "Basic").with_token_limit(1_000_000))
                .await
                .expect("plan stored");
            store
                .insert_subscription(&Subscription::new(
                    Billable::new("user", 1),
                    "basic",
                    chrono::Utc::now(),
                ))
                .await
                .expect("subscription stored");
        });
        let bare: Router = Router::new().route("/", get(|| async { "hello" }));
        let quota = QuotaLayer::new(Metering::new(store)).cache_ttl(chrono::Duration::hours(1));
        let layered = bare.clone().layer(quota.clone());
        let original = bare
            .clone()
            .layer(quota.clone().headers(HeaderStyle::Original));
        let ietf = bare.clone().layer(quota.clone().headers(HeaderStyle::Ietf));
        let no_headers = bare.clone().layer(quota.headers(HeaderStyle::None));
        // A limit no bench reaches, with tower-governor's `x-ratelimit-limit` and
        // `x-ratelimit-remaining` headers.
        let governor = GovernorConfigBuilder::default()
            .per_millisecond(1)
            .burst_size(u32::MAX)
            .key_extractor(ByBillable)
            .use_headers()
            .finish()
            .expect("a valid governor configuration");
        let governor = bare.clone().layer(GovernorLayer::new(governor));
        // What `axum::serve` does once (`into_make_service`): without it, a `Router<()>`
        // turns its handlers into services, and applies the layers, on every request.
        Self {
            bare: bare.with_state(()),
            layered: layered.with_state(()),
            original: original.with_state(()),
            ietf: ietf.with_state(()),
            no_headers: no_headers.with_state(()),
            governor: governor.with_state(()),
        }
    }

    /// The router named `name`, one of [`NAMES`](Self::NAMES).
    pub fn by_name(&self, name: &str) -> Option<&Router> {
        match name {
            "bare" => Some(&self.bare),
            "quota_layer_cached" => Some(&self.layered),
            "quota_layer_cached_original" => Some(&self.original),
            "quota_layer_cached_ietf" => Some(&self.ietf),
            "quota_layer_cached_no_headers" => Some(&self.no_headers),
            "tower_governor" => Some(&self.governor),
            _ => None,
        }
    }
}

/// A request from the billable the routers know, as an auth middleware would leave it.
pub fn request() -> http::Request<Body> {
    let mut request = http::Request::get("/")
        .body(Body::empty())
        .expect("a valid request");
    request.extensions_mut().insert(Billable::new("user", 1));
    request
}

/// A current-thread runtime, the cheapest to drive a request in process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
}
