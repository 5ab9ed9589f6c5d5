//! Plans, subscriptions and limit overrides.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::plan::{LimitOverride, LimitValue, Plan, Subscription};
use ai_metering_core::store::{StoreErrorKind, SubscriptionId};
use chrono::Duration;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::builders::{dec, fresh_billable, fresh_name, hour, instant};

/// Upserting inserts or replaces by slug; plans are listed by slug.
pub async fn plans_upsert_get_and_list<S: ConformanceStore>(store: Arc<S>) {
    let prefix = fresh_name("plan");
    let (slug_a, slug_b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let b = Plan::new(&slug_b, "B").with_cost_limit(dec("12.345678901"));
    let a = Plan::new(&slug_a, "A").with_token_limit(1_000);
    store.upsert_plan(&b).await.unwrap();
    store.upsert_plan(&a).await.unwrap();
    assert_eq!(store.plan(&slug_a).await.unwrap(), Some(a));
    assert_eq!(store.plan(&slug_b).await.unwrap(), Some(b));
    assert_eq!(store.plan(&format!("{prefix}-none")).await.unwrap(), None);

    let a2 = Plan::new(&slug_a, "A v2")
        .with_token_limit(2_000)
        .inactive();
    store.upsert_plan(&a2).await.unwrap();
    assert_eq!(store.plan(&slug_a).await.unwrap(), Some(a2.clone()));

    let mine: Vec<Plan> = store
        .plans()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.slug.starts_with(&prefix))
        .collect();
    let slugs: Vec<&str> = mine.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(
        slugs,
        [slug_a.as_str(), slug_b.as_str()],
        "one row per slug, by slug"
    );
    assert_eq!(mine[0], a2);
}

/// A subscription is current from its start (not before), until its end or the end of its
/// grace period.
pub async fn subscription_current_follows_start_end_and_grace<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let mut ended = Subscription::new(who.clone(), "basic", hour(10)).ending_at(hour(20));
    ended.grace_ends_at = Some(hour(25));
    let future = Subscription::new(who.clone(), "pro", hour(40));
    let ended_id = store.insert_subscription(&ended).await.unwrap();
    let future_id = store.insert_subscription(&future).await.unwrap();
    assert_ne!(ended_id, future_id);

    let current = |at| {
        let store = store.clone();
        let who = who.clone();
        async move { store.current_subscription(&who, at).await.unwrap() }
    };
    assert_eq!(current(hour(9)).await, None, "not started yet");
    assert_eq!(current(hour(10)).await, Some((ended_id, ended.clone())));
    assert_eq!(current(hour(19)).await, Some((ended_id, ended.clone())));
    assert_eq!(
        current(hour(22)).await,
        Some((ended_id, ended.clone())),
        "ended but in grace"
    );
    assert_eq!(current(hour(25)).await, None, "grace over");
    assert_eq!(
        current(hour(39)).await,
        None,
        "future-dated is not active yet"
    );
    assert_eq!(current(hour(40)).await, Some((future_id, future)));
    assert_eq!(
        store
            .current_subscription(&fresh_billable(), hour(40))
            .await
            .unwrap(),
        None
    );
}

/// Among active subscriptions, the one that started last wins (ties: the highest id);
/// listing is oldest first.
pub async fn subscription_latest_start_wins<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let later = Subscription::new(who.clone(), "pro", hour(5));
    let earlier = Subscription::new(who.clone(), "basic", hour(1));
    let tie = Subscription::new(who.clone(), "team", hour(5));
    // Inserted out of start order, so that ids and starts disagree.
    let later_id = store.insert_subscription(&later).await.unwrap();
    let earlier_id = store.insert_subscription(&earlier).await.unwrap();
    assert_eq!(
        store.current_subscription(&who, hour(3)).await.unwrap(),
        Some((earlier_id, earlier.clone()))
    );
    assert_eq!(
        store.current_subscription(&who, hour(6)).await.unwrap(),
        Some((later_id, later.clone()))
    );
    let tie_id = store.insert_subscription(&tie).await.unwrap();
    assert_eq!(
        store.current_subscription(&who, hour(6)).await.unwrap(),
        Some((tie_id, tie.clone())),
        "same start: the highest id wins"
    );
    let all = store.subscriptions(&who).await.unwrap();
    assert_eq!(
        all,
        vec![(earlier_id, earlier), (later_id, later), (tie_id, tie)],
        "oldest first"
    );
}

/// Updating replaces every field; updating an unknown id is `NotFound`.
pub async fn subscription_update_replaces_and_unknown_is_not_found<S: ConformanceStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let sub = Subscription::new(who.clone(), "basic", hour(0));
    let id = store.insert_subscription(&sub).await.unwrap();
    let mut changed = sub
        .with_plan("pro", hour(5))
        .in_time_zone(chrono_tz::Asia::Tokyo)
        .ending_at(hour(10));
    assert_eq!(changed.previous_plan.as_deref(), Some("basic"));
    changed
        .meta
        .insert("stripe_id".into(), serde_json::json!("sub_123"));
    store.update_subscription(id, &changed).await.unwrap();
    assert_eq!(
        store.subscriptions(&who).await.unwrap(),
        vec![(id, changed)]
    );
    assert_eq!(
        store.current_subscription(&who, hour(10)).await.unwrap(),
        None
    );

    let err = store
        .update_subscription(SubscriptionId(i64::MAX), &sub)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    assert!(
        store
            .subscriptions(&fresh_billable())
            .await
            .unwrap()
            .is_empty()
    );
}

/// `replace_subscription` writes only over the value the caller read: a stale `expected`
/// changes nothing, and 32 tasks incrementing a counter 4 times each by read-modify-replace
/// lose no increment.
pub async fn subscription_replace_is_a_compare_and_swap<S: ConformanceStore>(store: Arc<S>) {
    const TASKS: u64 = 32;
    const ROUNDS: u64 = 4;
    let who = fresh_billable();
    let sub = Subscription::new(who.clone(), "basic", hour(0));
    let id = store.insert_subscription(&sub).await.unwrap();
    let mut first = sub.clone();
    first.meta.insert("count".into(), serde_json::json!(0));
    assert!(store.replace_subscription(id, &sub, &first).await.unwrap());
    // `sub` is stale now: replacing over it is refused and changes nothing.
    let mut lost = sub.clone();
    lost.plan = Some("pro".into());
    assert!(!store.replace_subscription(id, &sub, &lost).await.unwrap());
    assert_eq!(store.subscriptions(&who).await.unwrap(), vec![(id, first)]);

    let barrier = Arc::new(Barrier::new(TASKS as usize));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, barrier, who) = (store.clone(), barrier.clone(), who.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            for _ in 0..ROUNDS {
                loop {
                    let (_, current) = store.subscriptions(&who).await.unwrap().remove(0);
                    let count = current.meta["count"].as_u64().unwrap();
                    let mut next = current.clone();
                    next.meta
                        .insert("count".into(), serde_json::json!(count + 1));
                    if store
                        .replace_subscription(id, &current, &next)
                        .await
                        .unwrap()
                    {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    tasks.join_all().await;
    let (_, last) = store.subscriptions(&who).await.unwrap().remove(0);
    assert_eq!(
        last.meta["count"],
        serde_json::json!(TASKS * ROUNDS),
        "an increment was lost"
    );

    let err = store
        .replace_subscription(SubscriptionId(i64::MAX), &sub, &sub)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
}

/// An override applies on `[starts_at, ends_at)`; with several, the one stored last wins.
pub async fn limit_override_window_is_half_open_and_latest_wins<S: ConformanceStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let first = LimitOverride {
        billable: who.clone(),
        starts_at: hour(0),
        ends_at: hour(10),
        token_limit: LimitValue::Set(100),
        cost_limit: LimitValue::Unlimited,
    };
    store.insert_limit_override(&first).await.unwrap();
    let at = |h| {
        let store = store.clone();
        let who = who.clone();
        async move { store.limit_override_at(&who, hour(h)).await.unwrap() }
    };
    assert_eq!(at(-1).await, None);
    assert_eq!(at(0).await, Some(first.clone()));
    assert_eq!(at(9).await, Some(first.clone()));
    assert_eq!(at(10).await, None, "the end is excluded");

    let second = LimitOverride {
        starts_at: hour(5),
        ends_at: hour(5) + Duration::days(1),
        token_limit: LimitValue::Inherit,
        cost_limit: LimitValue::Set(dec("2.50")),
        ..first.clone()
    };
    store.insert_limit_override(&second).await.unwrap();
    assert_eq!(at(4).await, Some(first));
    assert_eq!(at(6).await, Some(second.clone()), "stored last wins");
    assert_eq!(at(12).await, Some(second));
    assert_eq!(
        store
            .limit_override_at(&fresh_billable(), hour(6))
            .await
            .unwrap(),
        None
    );
}

/// A subscription is found by a string in its `meta` (as payment webhooks look them up),
/// active or not; with several matches the one that started last wins (ties: the highest
/// id). Other keys, and non-string values, do not match.
pub async fn subscription_found_by_meta<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let stripe_id = fresh_name("sub");
    let with_meta = |start: i64, key: &str, value: serde_json::Value| {
        let mut s = Subscription::new(who.clone(), "basic", hour(start)).ending_at(hour(start + 1));
        s.meta.insert(key.to_owned(), value);
        s
    };
    let none = store
        .find_subscription_by_meta("stripe_subscription_id", &stripe_id)
        .await
        .unwrap();
    assert_eq!(none, None);

    let old = with_meta(1, "stripe_subscription_id", serde_json::json!(stripe_id));
    let other_key = with_meta(9, "stripe_customer_id", serde_json::json!(stripe_id));
    let not_a_string = with_meta(9, "stripe_subscription_id", serde_json::json!([stripe_id]));
    let old_id = store.insert_subscription(&old).await.unwrap();
    store.insert_subscription(&other_key).await.unwrap();
    store.insert_subscription(&not_a_string).await.unwrap();
    let find = |key: &'static str| {
        let store = store.clone();
        let value = stripe_id.clone();
        async move { store.find_subscription_by_meta(key, &value).await.unwrap() }
    };
    assert_eq!(
        find("stripe_subscription_id").await,
        Some((old_id, old.clone())),
        "found although it ended"
    );

    let newer = with_meta(5, "stripe_subscription_id", serde_json::json!(stripe_id));
    let tie = with_meta(5, "stripe_subscription_id", serde_json::json!(stripe_id));
    store.insert_subscription(&newer).await.unwrap();
    let tie_id = store.insert_subscription(&tie).await.unwrap();
    assert_eq!(find("stripe_subscription_id").await, Some((tie_id, tie)));
    assert!(find("stripe_customer_id").await.is_some());
    assert_eq!(find("no_such_key").await, None);
}

/// Each expiry is claimed once: not before the end (nor during a grace period after it),
/// then by exactly one of many concurrent callers.
pub async fn expired_subscriptions_are_claimed_once<S: ConformanceStore>(store: Arc<S>) {
    // 1991: no other case's subscriptions end before then, so the global claim sees only
    // this case's.
    let at = |h: i64| instant(1991, 1, 1, 0, 0, 0) + chrono::Duration::hours(h);
    let ended = fresh_billable();
    let in_grace = fresh_billable();
    let open = fresh_billable();
    let e = store
        .insert_subscription(&Subscription::new(ended.clone(), "basic", at(0)).ending_at(at(10)))
        .await
        .unwrap();
    let mut graced = Subscription::new(in_grace.clone(), "basic", at(0)).ending_at(at(10));
    graced.grace_ends_at = Some(at(20));
    let g = store.insert_subscription(&graced).await.unwrap();
    store
        .insert_subscription(&Subscription::new(open.clone(), "basic", at(0)))
        .await
        .unwrap();

    let ours = |claimed: Vec<(SubscriptionId, Subscription)>| {
        let mut ids: Vec<i64> = claimed
            .into_iter()
            .filter(|(_, s)| [&ended, &in_grace, &open].contains(&&s.billable))
            .map(|(id, _)| id.0)
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(
        ours(store.claim_expired_subscriptions(at(9), 100).await.unwrap()),
        Vec::<i64>::new()
    );
    // At its end, in parallel: one caller gets it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .claim_expired_subscriptions(at(10), 100)
                .await
                .unwrap()
        });
    }
    let all: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(
        ours(all),
        vec![e.0],
        "the ended one, once; not the one in grace"
    );
    assert_eq!(
        ours(
            store
                .claim_expired_subscriptions(at(20), 100)
                .await
                .unwrap()
        ),
        vec![g.0]
    );
    assert_eq!(
        ours(
            store
                .claim_expired_subscriptions(at(99), 100)
                .await
                .unwrap()
        ),
        Vec::<i64>::new()
    );
}
