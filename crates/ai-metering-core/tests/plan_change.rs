//! A plan change mid-period: usage before it counted against the old plan, usage after it
//! counts against the new one, and the change is an event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering_core::clock::ManualClock;
use ai_metering_core::events::{BroadcastSink, MeterEvent};
use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{MemoryStore, PlanStore, SubscriptionStore};
use ai_metering_core::{Billable, Error, MeterError, Metering, TokenUsage, UsageTotals};
use chrono::{Duration, TimeZone, Utc};

#[tokio::test]
async fn the_new_plan_counts_the_usage_since_the_change() {
    let store = MemoryStore::new();
    store
        .upsert_plan(&Plan::new("basic", "Basic").with_token_limit(1_000))
        .await
        .unwrap();
    store
        .upsert_plan(&Plan::new("mini", "Mini").with_token_limit(500))
        .await
        .unwrap();
    let team = Billable::new("team", "acme");
    let jan = |day, hour| Utc.with_ymd_and_hms(2024, 1, day, hour, 0, 0).unwrap();
    store
        .insert_subscription(&Subscription::new(team.clone(), "basic", jan(1, 0)))
        .await
        .unwrap();
    let clock = ManualClock::new(jan(10, 12));
    let (sink, mut events) = BroadcastSink::new(64);
    let metering = Metering::builder(store)
        .clock(clock.clone())
        .event_sink(sink)
        .build();
    let call = |tokens: u64| {
        metering
            .meter()
            .billable(team.clone())
            .provider("openai", "gpt-4o-mini")
            .manual_usage(TokenUsage::new(tokens, 0).unwrap())
            .call_infallible(async {})
    };

    call(800).await.unwrap();
    // On the new plan (500 tokens) from Jan 15 on: the 800 used before do not count.
    clock.set(jan(15, 0));
    let change = metering
        .change_plan(&team, "mini", jan(15, 0))
        .await
        .unwrap();
    assert!(change.changed);
    assert_eq!(
        (change.from.as_deref(), change.to.as_str()),
        (Some("basic"), "mini")
    );
    let status = metering.check(&team, UsageTotals::ZERO).await.unwrap();
    assert_eq!(status.check.remaining_tokens, Some(500));
    let period = status.entitlement.period.unwrap();
    assert_eq!(
        (period.start, period.end),
        (jan(15, 0), jan(1, 0) + Duration::days(31))
    );

    call(400).await.unwrap();
    assert!(matches!(
        call(200).await,
        Err(MeterError::Metering(Error::LimitExceeded { .. }))
    ));

    // The next period is the new plan's from its start.
    clock.set(Utc.with_ymd_and_hms(2024, 2, 3, 0, 0, 0).unwrap());
    let status = metering.check(&team, UsageTotals::ZERO).await.unwrap();
    let period = status.entitlement.period.unwrap();
    assert_eq!(
        period.start,
        Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(status.check.remaining_tokens, Some(500));

    // One PlanChanged; a change to the plan in force changes nothing.
    let again = metering
        .change_plan(&team, "mini", metering.now())
        .await
        .unwrap();
    assert!(!again.changed);
    let mut changes = 0;
    while let Ok(event) = events.try_recv() {
        if let MeterEvent::PlanChanged { from, to, .. } = event {
            assert_eq!((from.as_deref(), to.as_str()), (Some("basic"), "mini"));
            changes += 1;
        }
    }
    assert_eq!(changes, 1);

    // Unknown plans and billables without a subscription are typed errors.
    assert!(matches!(
        metering.change_plan(&team, "nope", metering.now()).await,
        Err(Error::UnknownPlan(_))
    ));
    assert!(matches!(
        metering
            .change_plan(&Billable::new("team", "none"), "mini", metering.now())
            .await,
        Err(Error::NoSubscription { .. })
    ));
}

/// `SubscriptionExpired` is emitted once per subscription, when a sweep first sees it
/// expired: not before its end, once at it, never again.
#[tokio::test]
async fn an_expiry_is_announced_once_by_the_sweep() {
    let store = MemoryStore::new();
    let team = Billable::new("team", "leaving");
    let end = Utc.with_ymd_and_hms(2024, 3, 31, 23, 0, 0).unwrap();
    store
        .insert_subscription(
            &Subscription::new(team.clone(), "basic", end - Duration::days(90)).ending_at(end),
        )
        .await
        .unwrap();
    let clock = ManualClock::new(end - Duration::seconds(1));
    let (sink, mut events) = BroadcastSink::new(16);
    let metering = Metering::builder(store)
        .clock(clock.clone())
        .event_sink(sink)
        .build();
    let expiries = |events: &mut tokio::sync::broadcast::Receiver<MeterEvent>| {
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let MeterEvent::SubscriptionExpired { billable, ended_at } = event {
                seen.push((billable, ended_at));
            }
        }
        seen
    };

    assert_eq!(metering.sweep().await.unwrap().expired_subscriptions, 0);
    assert!(
        expiries(&mut events).is_empty(),
        "still active a second before its end"
    );
    clock.set(end);
    assert_eq!(metering.sweep().await.unwrap().expired_subscriptions, 1);
    assert_eq!(expiries(&mut events), vec![(team.clone(), end)]);
    clock.set(end + Duration::days(1));
    assert_eq!(metering.sweep().await.unwrap().expired_subscriptions, 0);
    assert!(expiries(&mut events).is_empty(), "announced once");
}

/// `team:tokyo` and `team:new-york`, subscribed to `plan` since 2024 in their own zones.
async fn in_tokyo_and_new_york(store: &MemoryStore, plan: &str) -> (Billable, Billable) {
    let tokyo = Billable::new("team", "tokyo");
    let new_york = Billable::new("team", "new-york");
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    for (who, zone) in [
        (&tokyo, chrono_tz::Asia::Tokyo),
        (&new_york, chrono_tz::America::New_York),
    ] {
        store
            .insert_subscription(&Subscription::new(who.clone(), plan, start).in_time_zone(zone))
            .await
            .unwrap();
    }
    (tokyo, new_york)
}

/// Two billables on one daily plan, in Tokyo and in New York: each resets at its own
/// midnight, and New York's day across the DST change is 23 hours long.
#[tokio::test]
async fn each_billable_resets_at_its_own_midnight() {
    let store = MemoryStore::new();
    store
        .upsert_plan(&Plan::new("daily", "Daily").with_token_limit(1_000))
        .await
        .unwrap();
    let (tokyo, new_york) = in_tokyo_and_new_york(&store, "daily").await;
    let config = ai_metering_core::MeteringConfig {
        period: ai_metering_core::PeriodSpec::daily(),
        ..Default::default()
    };
    // 2024-03-10 12:00 UTC: 21:00 in Tokyo, 08:00 in New York (EDT since 07:00 UTC).
    let at = Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap();
    let metering = Metering::builder(store)
        .config(config)
        .clock(ManualClock::new(at))
        .build();
    let period = |who: &Billable| {
        let metering = metering.clone();
        let who = who.clone();
        async move {
            metering
                .entitlement(&who, at)
                .await
                .unwrap()
                .period
                .unwrap()
        }
    };
    let t = period(&tokyo).await;
    assert_eq!(t.start, Utc.with_ymd_and_hms(2024, 3, 9, 15, 0, 0).unwrap());
    assert_eq!(t.duration(), Duration::hours(24));
    let ny = period(&new_york).await;
    // Midnight EST (05:00 UTC) to midnight EDT (04:00 UTC the next day): 23 hours.
    assert_eq!(
        ny.start,
        Utc.with_ymd_and_hms(2024, 3, 10, 5, 0, 0).unwrap()
    );
    assert_eq!(ny.end, Utc.with_ymd_and_hms(2024, 3, 11, 4, 0, 0).unwrap());
    assert_eq!(ny.duration(), Duration::hours(23));
}

/// A metered call's row, and a recorded one, count in the billable's own day: the same
/// instant is March 10th for New York and March 11th for Tokyo.
#[tokio::test]
async fn usage_counts_in_the_billables_own_day() {
    use ai_metering_core::recorder::{Recorder, RecorderConfig};
    use ai_metering_core::store::{GroupBy, ReportStore, UsageFilter};

    let store = MemoryStore::new();
    let (tokyo, new_york) = in_tokyo_and_new_york(&store, "free").await;
    store.upsert_plan(&Plan::new("free", "Free")).await.unwrap();
    // 2024-03-10 20:00 UTC: 05:00 on the 11th in Tokyo, 16:00 on the 10th in New York.
    let at = Utc.with_ymd_and_hms(2024, 3, 10, 20, 0, 0).unwrap();
    let metering = Metering::builder(store).clock(ManualClock::new(at)).build();
    let recorder = Recorder::start(&metering, RecorderConfig::default());
    for who in [&tokyo, &new_york] {
        let metered = metering
            .meter()
            .billable(who.clone())
            .provider("manual", "m")
            .manual_usage(TokenUsage::new(10, 0).unwrap())
            .call_infallible(async {})
            .await
            .unwrap();
        assert!(metered.record.entry.time_zone.is_some());
        let entry = metering
            .meter()
            .billable(who.clone())
            .provider("manual", "m")
            .manual_usage(TokenUsage::new(1, 0).unwrap())
            .entry()
            .unwrap();
        assert_eq!(entry.time_zone, None, "filled when the recorder stores it");
        recorder.record(entry).await.unwrap();
    }
    recorder.shutdown().await.unwrap();
    for (who, day) in [(&tokyo, "2024-03-11"), (&new_york, "2024-03-10")] {
        let days = metering
            .store()
            .sum_usage_grouped(&UsageFilter::for_billable(who.clone()), GroupBy::Day)
            .await
            .unwrap();
        assert_eq!(days.len(), 1, "{who}: {days:?}");
        assert_eq!(days[0].key, day, "{who}");
        assert_eq!(days[0].sums.calls, 2, "{who}: both rows in one day");
    }
}
