//! The pure functions on every request's path: limit evaluation and pricing.

#![allow(missing_docs)] // criterion's macros generate undocumented items
#![allow(clippy::expect_used)] // benchmark setup: failing fast is the point

use std::hint::black_box;

use ai_metering_core::limit::{Limits, Thresholds, UsageTotals, evaluate};
use ai_metering_core::pricing::PriceCatalog;
use ai_metering_core::{TokenCounts, TokenUsage};
use criterion::{Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;

fn limits(c: &mut Criterion) {
    let thresholds = Thresholds::default();
    let tokens_only = Limits {
        tokens: Some(1_000_000),
        cost: None,
    };
    let both = Limits {
        tokens: Some(1_000_000),
        cost: Some(Decimal::new(50, 0)),
    };
    let used = UsageTotals::new(412_345, Decimal::new(123_456_789, 8));
    let requested = UsageTotals::new(2_000, Decimal::new(3, 3));

    let mut group = c.benchmark_group("limit_evaluate");
    group.bench_function("tokens", |b| {
        b.iter(|| {
            evaluate(
                black_box(&tokens_only),
                black_box(used),
                black_box(requested),
                &thresholds,
            )
        })
    });
    group.bench_function("tokens_and_cost", |b| {
        b.iter(|| {
            evaluate(
                black_box(&both),
                black_box(used),
                black_box(requested),
                &thresholds,
            )
        })
    });
    group.finish();
}

fn pricing(c: &mut Criterion) {
    let catalog = PriceCatalog::builtin();
    let plain = TokenUsage::new(1_200, 350).expect("valid usage");
    let cached = TokenUsage::try_from(TokenCounts {
        input: 12_000,
        cached_input: 8_000,
        cache_write: 2_000,
        cache_write_long: 500,
        output: 900,
        reasoning: 300,
    })
    .expect("valid usage");

    let mut group = c.benchmark_group("pricing_cost");
    group.bench_function("openai_plain", |b| {
        b.iter(|| {
            catalog.cost(
                black_box("openai"),
                black_box("gpt-4o-mini"),
                black_box(&plain),
            )
        })
    });
    group.bench_function("anthropic_cache_classes", |b| {
        b.iter(|| {
            catalog.cost(
                black_box("anthropic"),
                black_box("claude-sonnet-4-5"),
                black_box(&cached),
            )
        })
    });
    group.bench_function("dated_snapshot_name", |b| {
        b.iter(|| {
            catalog.cost(
                black_box("openai"),
                black_box("gpt-4o-mini-2024-07-18"),
                black_box(&plain),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, limits, pricing);
criterion_main!(benches);
