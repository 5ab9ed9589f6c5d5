//! A request through an axum `Router`, with and without `QuotaLayer` (MemoryStore, cached
//! limit check), in one run so the two can be compared as a ratio. The layer is measured
//! twice: with the default headers, and without quota headers, which separates the cost
//! of the decision from the cost of writing five more response headers. The peer rate
//! limiter tower-governor, keyed by the same billable with its two headers, runs beside
//! them for comparison.
//!
//! `layer_requests` drives the same routers a given number of times, for instruction
//! counts under callgrind (`scripts/layer-instructions.sh`).

use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

mod support;

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    let routers = support::Routers::new(&runtime);
    let mut group = c.benchmark_group("request");
    for name in support::Routers::NAMES {
        let Some(router) = routers.by_name(name) else {
            continue;
        };
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(router.clone().oneshot(support::request())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
