//! The background sweeper: a tokio task that drops reservations of calls that never came
//! back. Driven by tokio's paused clock (its interval) and a hand-moved metering clock (the
//! expiry), so no test waits for real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use ai_metering_core::clock::Clock;
use ai_metering_core::store::{CounterStore, MemoryStore};
use ai_metering_core::{Billable, Metering, MeteringConfig, TokenUsage};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// A hand-moved clock that says it follows real time, as the sweeper requires.
#[derive(Debug, Clone)]
struct Wall(Arc<Mutex<DateTime<Utc>>>);

impl Clock for Wall {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_drops_what_expired_on_its_interval() {
    let start = Utc.with_ymd_and_hms(2024, 1, 15, 12, 0, 0).unwrap();
    let wall = Wall(Arc::new(Mutex::new(start)));
    let config = MeteringConfig {
        sweep_interval: Some(std::time::Duration::from_secs(60)),
        ..MeteringConfig::default()
    };
    let metering = Metering::builder(MemoryStore::new())
        .config(config)
        .clock(wall.clone())
        .build();
    let who = Billable::new("user", 1);
    let reservation = metering
        .meter()
        .billable(who.clone())
        .provider("openai", "gpt-4o-mini")
        .estimate(TokenUsage::new(100, 100).unwrap())
        .begin()
        .await
        .unwrap();
    let period = reservation.entitlement().period.unwrap();
    // A process that crashed mid-call: nothing records, releases or drops it.
    std::mem::forget(reservation);
    let reserved = |at| {
        let (store, who) = (metering.store().clone(), who.clone());
        async move {
            store
                .period_usage(&who, &period, at)
                .await
                .unwrap()
                .reserved
                .tokens
        }
    };

    // A minute on the sweeper's interval, but the reservation (10 minutes) is not expired.
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    assert_eq!(reserved(start).await, 200);

    // Eleven minutes on the metering's clock: the next tick drops it.
    *wall.0.lock().unwrap() = start + Duration::minutes(11);
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    assert_eq!(reserved(start).await, 0, "swept by the background task");
}
