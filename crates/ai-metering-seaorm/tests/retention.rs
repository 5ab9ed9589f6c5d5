//! Retention and privacy: batched pruning, deleting one billable, anonymising one billable
//! with totals unchanged, and rebuilding daily aggregates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::plan::Subscription;
use ai_metering_core::store::{
    CounterStore, CreditStore, GroupBy, NewGrant, Page, ReserveRequest, SubscriptionStore,
    UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Currency, Money, Tenant};
use ai_metering_seaorm::entity::daily_aggregate;
use ai_metering_seaorm::{RowCounts, SeaOrmStore};
use chrono::{Duration, NaiveDate};
use common::{at, dec, entry, march, on_each_backend};
use sea_orm::{EntityTrait, QueryOrder};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

async fn aggregates(store: &SeaOrmStore) -> Vec<(String, String, i64, i64, String)> {
    daily_aggregate::Entity::find()
        .order_by_asc(daily_aggregate::Column::Day)
        .order_by_asc(daily_aggregate::Column::BillableId)
        .order_by_asc(daily_aggregate::Column::Model)
        .order_by_asc(daily_aggregate::Column::Feature)
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.day, a.billable_id, a.calls, a.total_tokens, a.total_cost))
        .collect()
}

#[tokio::test]
async fn prune_deletes_old_rows_in_batches_and_returns_the_count() {
    on_each_backend("prune", |store| async move {
        let b = Billable::new("user", 1);
        for d in 1..=7 {
            store
                .insert_usage(&entry(&b, 10, 0, dec("0.1"), at(d, 12)))
                .await
                .unwrap();
        }
        assert_eq!(store.prune_usage_before(at(1, 0), 2).await.unwrap(), 0);
        // Days 1..=5 go, in batches of 2 (2 + 2 + 1).
        assert_eq!(store.prune_usage_before(at(6, 0), 2).await.unwrap(), 5);
        let left = store
            .query_usage(&UsageFilter::default(), Page::default())
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|r| r.entry.occurred_at).collect::<Vec<_>>(),
            [at(7, 12), at(6, 12)]
        );
        // Exactly a multiple of the batch size.
        assert_eq!(store.prune_usage_before(at(8, 0), 1).await.unwrap(), 2);
        assert!(store.prune_usage_before(at(8, 0), 0).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn delete_billable_removes_everything_of_one_billable_only() {
    on_each_backend("delete_billable", |store| async move {
        let gone = Billable::new("user", "gone");
        let kept = Billable::new("user", "kept");
        for b in [&gone, &kept] {
            store
                .insert_usage(&entry(b, 10, 5, dec("0.5"), at(2, 0)))
                .await
                .unwrap();
            store
                .insert_subscription(&Subscription::new(b.clone(), "pro", at(1, 0)))
                .await
                .unwrap();
            store
                .add_credits(b, Money::new(dec("5"), Currency::USD), "top-up", at(1, 0))
                .await
                .unwrap();
            store
                .reserve(&ReserveRequest::new(
                    b.clone(),
                    march(),
                    Limits::UNLIMITED,
                    UsageTotals::new(1, dec("0.01")),
                    at(2, 0),
                    at(2, 0) + Duration::minutes(1),
                ))
                .await
                .unwrap();
        }
        store
            .add_grant(
                &gone,
                &NewGrant::new(Money::new(dec("2"), Currency::USD), at(1, 0)),
                "promo",
                at(1, 0),
            )
            .await
            .unwrap();
        store
            .rebuild_daily_aggregates(day(1), day(3))
            .await
            .unwrap();
        let counts = store.delete_billable(&gone).await.unwrap();
        assert_eq!(
            counts,
            RowCounts {
                usages: 1,
                subscriptions: 1,
                counters: 1,
                reservations: 1,
                wallets: 1,
                credit_transactions: 2,
                credit_grants: 1,
                aggregates: 1,
                ..RowCounts::default()
            }
        );
        assert_eq!(counts.total(), 9);
        assert!(store.grants(&gone, Currency::USD).await.unwrap().is_empty());
        let sums = store.sum_usage(&UsageFilter::default()).await.unwrap();
        assert_eq!(sums.calls, 1);
        assert!(store.subscriptions(&gone).await.unwrap().is_empty());
        assert_eq!(store.subscriptions(&kept).await.unwrap().len(), 1);
        assert_eq!(
            store.wallet(&gone, Currency::USD).await.unwrap().balance,
            dec("0")
        );
        assert_eq!(
            store.wallet(&kept, Currency::USD).await.unwrap().balance,
            dec("5")
        );
        let usage = store.period_usage(&gone, &march(), at(2, 0)).await.unwrap();
        assert_eq!(usage.committed(), UsageTotals::ZERO);
        assert_eq!(aggregates(&store).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn anonymize_replaces_ids_drops_metadata_and_keeps_totals() {
    on_each_backend("anonymize", |store| async move {
        let alice = Billable::new("user", "alice");
        let tombstone = Billable::new("deleted", "0001");
        let mut e = entry(&alice, 100, 50, dec("0.00000015"), at(3, 9));
        e.user_id = Some("alice@example.com".into());
        e.tenant = Some(Tenant::new("acme"));
        e.metadata
            .insert("prompt_owner".into(), serde_json::json!("alice"));
        e.idempotency_key = Some("alice-req-1".into());
        store.insert_usage(&e).await.unwrap();
        store
            .insert_usage(&entry(&alice, 7, 0, dec("0.0000000375"), at(4, 9)))
            .await
            .unwrap();
        // The tombstone already has a counter for March: the two are merged.
        store
            .insert_usage(&entry(&tombstone, 1, 0, dec("1"), at(5, 9)))
            .await
            .unwrap();
        let req = |b: &Billable| {
            ReserveRequest::new(
                b.clone(),
                march(),
                Limits::UNLIMITED,
                UsageTotals::ZERO,
                at(6, 0),
                at(6, 0) + Duration::minutes(1),
            )
        };
        store.reserve(&req(&alice)).await.unwrap();
        store.reserve(&req(&tombstone)).await.unwrap();
        store
            .add_credits(
                &alice,
                Money::new(dec("3"), Currency::USD),
                "top-up",
                at(1, 0),
            )
            .await
            .unwrap();
        store
            .add_grant(
                &alice,
                &NewGrant::new(Money::new(dec("1"), Currency::USD), at(1, 0)),
                "promo",
                at(1, 0),
            )
            .await
            .unwrap();
        store
            .rebuild_daily_aggregates(day(1), day(31))
            .await
            .unwrap();

        let totals_before = store.sum_usage(&UsageFilter::default()).await.unwrap();
        let by_tenant_before = store
            .sum_usage_grouped(&UsageFilter::default(), GroupBy::Tenant)
            .await
            .unwrap();
        let march_total_before = {
            let a = store
                .period_usage(&alice, &march(), at(6, 0))
                .await
                .unwrap();
            let t = store
                .period_usage(&tombstone, &march(), at(6, 0))
                .await
                .unwrap();
            a.recorded.checked_add(t.recorded).unwrap()
        };
        let aggregates_before = aggregates(&store).await;

        let counts = store.anonymize_billable(&alice, &tombstone).await.unwrap();
        assert_eq!((counts.usages, counts.counters, counts.wallets), (2, 1, 1));
        assert_eq!(counts.credit_grants, 1);
        assert!(
            store
                .grants(&alice, Currency::USD)
                .await
                .unwrap()
                .is_empty()
        );
        let moved = store.grants(&tombstone, Currency::USD).await.unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].billable, tombstone);

        assert_eq!(
            store.sum_usage(&UsageFilter::default()).await.unwrap(),
            totals_before
        );
        assert_eq!(
            store
                .sum_usage_grouped(&UsageFilter::default(), GroupBy::Tenant)
                .await
                .unwrap(),
            by_tenant_before
        );
        let t = store
            .period_usage(&tombstone, &march(), at(6, 0))
            .await
            .unwrap();
        assert_eq!(t.recorded, march_total_before);
        let a = store
            .period_usage(&alice, &march(), at(6, 0))
            .await
            .unwrap();
        assert_eq!(a.committed(), UsageTotals::ZERO);
        // Same days, calls, tokens and costs, only under the tombstone.
        let after = aggregates(&store).await;
        let strip = |v: Vec<(String, String, i64, i64, String)>| {
            v.into_iter()
                .map(|(d, _, c, t, cost)| (d, c, t, cost))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(after.clone()), strip(aggregates_before));
        assert!(after.iter().all(|a| a.1 == "0001"));

        let rows = store
            .query_usage(&UsageFilter::default(), Page::default())
            .await
            .unwrap();
        assert!(rows.iter().all(|r| r.entry.billable == tombstone));
        assert!(
            rows.iter()
                .all(|r| r.entry.user_id.is_none() && r.entry.metadata.is_empty())
        );
        assert!(rows.iter().all(|r| r.entry.idempotency_key.is_none()));
        assert!(
            store
                .usage_by_idempotency_key(&alice, "alice-req-1")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .wallet(&tombstone, Currency::USD)
                .await
                .unwrap()
                .balance,
            // The top-up and the grant.
            dec("4")
        );

        // A second billable with a USD wallet cannot be folded into the same tombstone.
        let bob = Billable::new("user", "bob");
        store
            .add_credits(
                &bob,
                Money::new(dec("1"), Currency::USD),
                "top-up",
                at(1, 0),
            )
            .await
            .unwrap();
        let err = store
            .anonymize_billable(&bob, &tombstone)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ai_metering_core::store::StoreErrorKind::Conflict
        );
        assert!(store.anonymize_billable(&bob, &bob).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn daily_aggregates_are_rebuilt_from_the_rows_and_survive_pruning() {
    on_each_backend("aggregates", |store| async move {
        let b = Billable::new("user", 1);
        let mut chat = entry(&b, 100, 20, dec("0.00000015"), at(2, 1));
        chat.feature = Some("chat".into());
        store.insert_usage(&chat).await.unwrap();
        store
            .insert_usage(&entry(&b, 50, 5, dec("0.0000000375"), at(2, 23)))
            .await
            .unwrap();
        store
            .insert_usage(&entry(&b, 50, 5, dec("0.5"), at(2, 22)))
            .await
            .unwrap();
        store
            .insert_usage(&entry(&b, 10, 0, dec("1"), at(3, 0)))
            .await
            .unwrap();
        assert_eq!(
            store
                .rebuild_daily_aggregates(day(2), day(3))
                .await
                .unwrap(),
            2
        );
        let expected: Vec<(String, String, i64, i64, String)> = vec![
            (
                "2025-03-02".into(),
                "1".into(),
                2,
                110,
                "0.5000000375".into(),
            ),
            ("2025-03-02".into(), "1".into(), 1, 120, "0.00000015".into()),
        ];
        assert_eq!(aggregates(&store).await, expected);
        // Rebuilding is idempotent, and covers the next day when asked.
        assert_eq!(
            store
                .rebuild_daily_aggregates(day(1), day(4))
                .await
                .unwrap(),
            3
        );
        let before = aggregates(&store).await;
        assert_eq!(before.len(), 3);
        // Pruning day 2 keeps its aggregates, even after another rebuild.
        assert_eq!(store.prune_usage_before(at(3, 0), 100).await.unwrap(), 3);
        assert_eq!(
            store
                .rebuild_daily_aggregates(day(1), day(4))
                .await
                .unwrap(),
            1
        );
        assert_eq!(aggregates(&store).await, before);
        assert_eq!(
            store
                .rebuild_daily_aggregates(day(4), day(4))
                .await
                .unwrap(),
            0
        );
    })
    .await;
}
