//! The money path's metrics (feature `metrics`), read back through a debugging recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering_core::clock::ManualClock;
use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
use ai_metering_core::{Billable, Metering, TokenUsage};
use chrono::{TimeZone, Utc};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// One series: its name, its labels and its value.
type Series = (String, Vec<(String, String)>, DebugValue);

/// The value of the series `name` whose labels include every one of `labels`, summed.
fn counter(snapshot: &[Series], name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[test]
fn calls_tokens_cost_refusals_and_reservations_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = MemoryStore::new();
            store
                .upsert_plan(&Plan::new("small", "Small").with_token_limit(2_000))
                .await
                .unwrap();
            let team = Billable::new("team", "acme");
            let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
            store
                .insert_subscription(&Subscription::new(team.clone(), "small", start))
                .await
                .unwrap();
            let metering = Metering::builder(store)
                .clock(ManualClock::new(start + chrono::Duration::days(3)))
                .build();
            let call = || {
                metering
                    .meter()
                    .billable(team.clone())
                    .provider("openai", "gpt-4o-mini")
                    .manual_usage(TokenUsage::new(1_000, 500).unwrap())
                    .call_infallible(async {})
            };
            call().await.unwrap();
            assert!(call().await.is_err(), "1,500 more do not fit 2,000");
        });
    });
    let snapshot: Vec<Series> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let model = [("provider", "openai"), ("model", "gpt-4o-mini")];
    assert_eq!(
        counter(
            &snapshot,
            "ai_metering_calls_total",
            &[("outcome", "recorded")]
        ),
        1
    );
    let mut input = model.to_vec();
    input.push(("direction", "input"));
    assert_eq!(
        counter(&snapshot, "ai_metering_tokens_total", &input),
        1_000
    );
    let mut output = model.to_vec();
    output.push(("direction", "output"));
    assert_eq!(counter(&snapshot, "ai_metering_tokens_total", &output), 500);
    // gpt-4o-mini: 1,000 × $0.15/M + 500 × $0.60/M = $0.00045 = 450,000 nano-dollars.
    assert_eq!(
        counter(
            &snapshot,
            "ai_metering_cost_nanos_total",
            &[("currency", "USD")]
        ),
        450_000
    );
    assert_eq!(
        counter(
            &snapshot,
            "ai_metering_refusals_total",
            &[("reason", "limit_exceeded")]
        ),
        1
    );
    let in_flight = snapshot
        .iter()
        .find(|(n, _, _)| n == "ai_metering_reservations_in_flight")
        .map(|(_, _, v)| v);
    assert_eq!(
        in_flight,
        Some(&DebugValue::Gauge(0.0.into())),
        "opened and closed"
    );
    assert!(
        !snapshot
            .iter()
            .any(|(_, labels, _)| labels.iter().any(|(k, _)| k == "billable")),
        "no per-billable series by default"
    );
}
