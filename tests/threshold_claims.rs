//! Approaching-limit notices are claimed in the store once per billable, period and
//! threshold; a process that saw a claim's answer does not ask the store again on every
//! later call (a write per call for every billable past a threshold).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use ai_metering_core::events::{EventSink, MeterEvent};
use ai_metering_core::plan::{BillingMode, Plan};
use ai_metering_core::store::MemoryStore;
use ai_metering_core::{Metering, TokenUsage};
use ai_metering_testkit::builders::fresh_name;
use ai_metering_testkit::faulty::FaultyStore;
use ai_metering_testkit::money_path::{MODEL, metering, subscribed};

#[derive(Clone, Default)]
struct Notices(Arc<Mutex<Vec<String>>>);

impl EventSink for Notices {
    fn handle(&self, event: &MeterEvent) {
        if let MeterEvent::LimitApproaching { threshold, .. } = event {
            self.0.lock().unwrap().push(threshold.to_string());
        }
    }
}

async fn call(m: &Metering<FaultyStore<MemoryStore>>, who: &ai_metering_core::Billable) {
    m.meter()
        .billable(who.clone())
        .provider("openai", MODEL)
        .manual_usage(TokenUsage::new(50, 0).unwrap())
        .call_infallible(async { "ok" })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_claimed_notice_is_not_claimed_again() {
    let store = FaultyStore::new(MemoryStore::new());
    let (plain, _clock) = metering(store.clone());
    let notices = Notices::default();
    let m = Metering::builder(store.clone())
        .catalog(plain.catalog().clone())
        .config(plain.config().clone())
        .event_sink(notices.clone())
        .build();
    let plan = Plan::new(fresh_name("plan"), "Small").with_token_limit(1_000);
    let who = subscribed(&m, plan, BillingMode::Plan, None).await;

    // 850 of 1,000 tokens: past the default thresholds below 100%.
    for _ in 0..17 {
        call(&m, &who).await;
    }
    let announced = notices.0.lock().unwrap().clone();
    assert!(
        !announced.is_empty(),
        "thresholds were crossed: {announced:?}"
    );

    // Two more calls past the thresholds: the same store calls each, no claims among them.
    let before = store.calls();
    call(&m, &who).await;
    let one = store.calls() - before;
    let before = store.calls();
    call(&m, &who).await;
    let two = store.calls() - before;
    assert_eq!(
        one, two,
        "no call asks the store to claim a notice it saw claimed"
    );
    assert_eq!(*notices.0.lock().unwrap(), announced, "each notice once");

    // A second process (its own memory) asks the store, which says it is claimed: no event.
    let other_notices = Notices::default();
    let other = Metering::builder(store.clone())
        .catalog(plain.catalog().clone())
        .config(plain.config().clone())
        .event_sink(other_notices.clone())
        .build();
    let before = store.calls();
    let _ = other
        .meter()
        .billable(who.clone())
        .provider("openai", MODEL)
        .manual_usage(TokenUsage::new(1, 0).unwrap())
        .call_infallible(async { "ok" })
        .await;
    assert!(
        store.calls() - before > two,
        "the other process asked the store once"
    );
    assert!(
        other_notices.0.lock().unwrap().is_empty(),
        "and announced nothing"
    );
}
