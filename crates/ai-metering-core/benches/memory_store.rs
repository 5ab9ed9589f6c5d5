//! `MemoryStore`: one reservation settled with the actual usage, the store-side work of a
//! metered request with an estimate.

#![allow(missing_docs)] // criterion's macros generate undocumented items
#![allow(clippy::expect_used)] // benchmark setup: failing fast is the point

use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::pricing::PriceCatalog;
use ai_metering_core::store::{
    CounterStore, MemoryStore, ReserveOutcome, ReserveRequest, Settlement, UsageEntry,
};
use ai_metering_core::{Billable, Period, TokenUsage};
use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let store = MemoryStore::new();
    let billable = Billable::new("user", 1);
    let start = Utc
        .with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
        .single()
        .expect("valid instant");
    let period = Period::new(start, start + Duration::days(30)).expect("valid period");
    let now = start + Duration::days(3);
    let usage = TokenUsage::new(1_200, 350).expect("valid usage");
    let cost = PriceCatalog::builtin()
        .cost("openai", "gpt-4o-mini", &usage)
        .expect("a priced model");
    let request = ReserveRequest::new(
        billable.clone(),
        period,
        // Never refused within a run: the bench measures the accepting path.
        Limits {
            tokens: Some(u64::MAX / 4),
            cost: None,
        },
        UsageTotals::new(2_000, Decimal::ZERO),
        now,
        now + Duration::minutes(5),
    );
    let entry = UsageEntry {
        billable,
        user_id: None,
        tenant: None,
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        feature: Some("chat".to_owned()),
        usage,
        cost,
        metadata: serde_json::Map::new(),
        idempotency_key: None,
        occurred_at: now,
        estimated: false,
        time_zone: None,
    };

    c.bench_function("memory_store/reserve_settle", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ReserveOutcome::Reserved { id, .. } =
                    store.reserve(&request).await.expect("reserve")
                else {
                    panic!("refused: the limit is effectively unlimited");
                };
                let settlement = Settlement {
                    reservation: id,
                    entry: entry.clone(),
                    period,
                    overage: None,
                    debit_credits: false,
                };
                store.settle(&settlement).await.expect("settle")
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
