//! A request through an axum `Router`, with and without `QuotaLayer` (MemoryStore, cached
//! limit check), in one run so the two can be compared as a ratio. The layer is measured
//! twice: with the default headers, and without quota headers, which separates the cost
//! of the decision from the cost of writing five more response headers.

#![allow(clippy::expect_used)] // benchmark setup: failing fast is the point

use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
use ai_metering_core::{Billable, Metering};
use ai_metering_tower::{HeaderStyle, QuotaLayer};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

fn request() -> http::Request<Body> {
    let mut request = http::Request::get("/")
        .body(Body::empty())
        .expect("a valid request");
    request.extensions_mut().insert(Billable::new("user", 1));
    request
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
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
    let no_headers = bare.clone().layer(quota.headers(HeaderStyle::None));

    let mut group = c.benchmark_group("request");
    group.bench_function("bare", |b| {
        b.iter(|| runtime.block_on(bare.clone().oneshot(request())))
    });
    group.bench_function("quota_layer_cached", |b| {
        b.iter(|| runtime.block_on(layered.clone().oneshot(request())))
    });
    group.bench_function("quota_layer_cached_no_headers", |b| {
        b.iter(|| runtime.block_on(no_headers.clone().oneshot(request())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
