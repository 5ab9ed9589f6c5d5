//! Processed webhook events: one claim wins across concurrent callers and pools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use ai_metering_core::store::WebhookEventStore;
use chrono::Utc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_event_is_claimed_once() {
    common::on_each_backend("webhook_events_claimed_once", |store| async move {
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.claim_event("evt_1", Utc::now()).await.unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
        assert!(!store.claim_event("evt_1", Utc::now()).await.unwrap());
        // A failed processing run gives the event back for the provider's retry.
        store.forget_event("evt_1").await.unwrap();
        assert!(store.claim_event("evt_1", Utc::now()).await.unwrap());
        assert!(store.claim_event("evt_2", Utc::now()).await.unwrap());
    })
    .await;
}
