//! Retention and privacy: batched pruning, deleting one billable, anonymising one billable
//! with totals unchanged, and rebuilding daily aggregates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::plan::Subscription;
use ai_metering_core::store::{
    CounterStore, CreditStore, GroupBy, NewGrant, OverageStore, Page, ReportStore, ReserveRequest,
    RetentionStore, SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Currency, Money, Tenant};
use ai_metering_seaorm::entity::daily_aggregate;
use ai_metering_seaorm::{RowCounts, SeaOrmStore};
use chrono::{Duration, NaiveDate};
use common::{at, dec, entry, march, on_each_backend};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

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
        assert_eq!(
            store.prune_usage_before(at(1, 0), 2).await.unwrap().usages,
            0
        );
        // Days 1..=5 go, in batches of 2 (2 + 2 + 1).
        assert_eq!(
            store.prune_usage_before(at(6, 0), 2).await.unwrap().usages,
            5
        );
        let left = store
            .query_usage(&UsageFilter::default(), Page::default())
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|r| r.entry.occurred_at).collect::<Vec<_>>(),
            [at(7, 12), at(6, 12)]
        );
        // Exactly a multiple of the batch size.
        assert_eq!(
            store.prune_usage_before(at(8, 0), 1).await.unwrap().usages,
            2
        );
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
async fn daily_aggregates_are_kept_live_and_follow_pruning() {
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
        // Every insert added to its aggregate: the live aggregates hold days 2 and 3.
        let expected: Vec<(String, String, i64, i64, String)> = vec![
            (
                "2025-03-02".into(),
                "1".into(),
                2,
                110,
                "0.5000000375".into(),
            ),
            ("2025-03-02".into(), "1".into(), 1, 120, "0.00000015".into()),
            ("2025-03-03".into(), "1".into(), 1, 10, "1".into()),
        ];
        assert_eq!(aggregates(&store).await, expected);
        // A rebuild finds them right, and is idempotent.
        for _ in 0..2 {
            assert_eq!(
                store
                    .rebuild_daily_aggregates(day(1), day(4))
                    .await
                    .unwrap(),
                3
            );
            assert_eq!(aggregates(&store).await, expected);
        }
        let before = aggregates(&store).await;
        assert_eq!(before.len(), 3);
        // Pruning day 2 drops its aggregates with its rows, and a rebuild agrees.
        let pruned = store.prune_usage_before(at(3, 0), 100).await.unwrap();
        assert_eq!((pruned.usages, pruned.aggregates), (3, 2));
        let after = aggregates(&store).await;
        assert_eq!(after, before[2..].to_vec());
        assert_eq!(
            store
                .rebuild_daily_aggregates(day(1), day(4))
                .await
                .unwrap(),
            1
        );
        assert_eq!(aggregates(&store).await, after);
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

/// The aggregates, grouped from the rows that remain, as `aggregates` lists them.
async fn aggregates_of_rows(store: &SeaOrmStore) -> Vec<(String, String, i64, i64, String)> {
    use std::collections::BTreeMap;
    let rows = store
        .query_usage(&UsageFilter::default(), Page::first(Page::MAX_LIMIT))
        .await
        .unwrap();
    // (day, billable id, model, feature) -> (calls, tokens, cost)
    type Key = (String, String, String, String);
    let mut groups: BTreeMap<Key, (i64, i64, rust_decimal::Decimal)> = BTreeMap::new();
    for r in rows {
        let e = &r.entry;
        let key = (
            e.day().date.format("%Y-%m-%d").to_string(),
            e.billable.id.clone(),
            e.model.clone(),
            e.feature.clone().unwrap_or_default(),
        );
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += i64::try_from(e.usage.total_tokens()).unwrap();
        g.2 += e.cost.total;
    }
    groups
        .into_iter()
        .map(|((day, id, _, _), (calls, tokens, cost))| {
            (day, id, calls, tokens, cost.normalize().to_string())
        })
        .collect()
}

/// After each retention operation the daily aggregates equal the sums of the rows left, and
/// every counter's recorded total the sum of its window's rows; overage rows go with their
/// usage rows.
#[tokio::test]
async fn aggregates_counters_and_overages_follow_every_retention_operation() {
    on_each_backend("retention_consistency", |store| async move {
        let (a, b, c) = (
            Billable::new("team", "a"),
            Billable::new("team", "b"),
            Billable::new("team", "c"),
        );
        let mut n = 0;
        for who in [&a, &b, &c] {
            // A counter for the month exists before any usage (seeded, then kept live).
            store
                .reserve(&ReserveRequest::new(
                    who.clone(),
                    march(),
                    Limits::UNLIMITED,
                    UsageTotals::new(1, dec("0.01")),
                    at(1, 0),
                    at(1, 0) + Duration::minutes(1),
                ))
                .await
                .unwrap();
            for d in 1..=4 {
                for user in ["u1", "u2"] {
                    n += 1;
                    let mut e = entry(
                        who,
                        10 * n,
                        n,
                        dec("0.25") * dec(&d.to_string()),
                        at(d, n as u32 % 24),
                    );
                    e.user_id = Some(user.into());
                    e.model = if n % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" }.into();
                    let id = store.insert_usage(&e).await.unwrap().record.id;
                    if d == 2 {
                        store
                            .insert_overage(&ai_metering_core::store::NewOverage {
                                billable: who.clone(),
                                usage_id: id,
                                period: march(),
                                tokens: 5,
                                amount: Money::new(dec("0.5"), Currency::USD),
                                created_at: at(d, 23),
                            })
                            .await
                            .unwrap();
                    }
                }
            }
        }
        // No rebuild: every insert added to its aggregate.

        async fn consistent(store: &SeaOrmStore, who: &[&Billable]) {
            assert_eq!(aggregates(store).await, aggregates_of_rows(store).await);
            for b in who {
                let rows = store
                    .sum_usage(&UsageFilter::for_billable((*b).clone()).in_period(&march()))
                    .await
                    .unwrap();
                let usage = store.period_usage(b, &march(), at(5, 0)).await.unwrap();
                assert_eq!(
                    usage.recorded,
                    UsageTotals::new(rows.total_tokens, rows.cost),
                    "{b}"
                );
            }
        }
        consistent(&store, &[&a, &b, &c]).await;

        let erased = store.delete_user("u1").await.unwrap();
        assert_eq!(
            (erased.usages, erased.overages, erased.counters),
            (12, 3, 3)
        );
        assert!(erased.aggregates > 0);
        consistent(&store, &[&a, &b, &c]).await;

        let pruned = store.prune_usage_before(at(3, 0), 2).await.unwrap();
        assert_eq!((pruned.usages, pruned.overages), (6, 3));
        consistent(&store, &[&a, &b, &c]).await;
        assert!(store.pending_overages(None, 100).await.unwrap().is_empty());

        let anonymized = store.anonymize_usage_before(at(4, 0)).await.unwrap();
        assert_eq!(anonymized.usages, 3);
        assert!(
            store
                .query_usage(
                    &UsageFilter {
                        user_id: Some("u2".into()),
                        ..UsageFilter::default()
                    },
                    Page::default()
                )
                .await
                .unwrap()
                .iter()
                .all(|r| r.entry.occurred_at >= at(4, 0))
        );
        assert_eq!(store.anonymize_user("u2").await.unwrap().usages, 3);
        consistent(&store, &[&a, &b, &c]).await;

        let tombstone = Billable::new("deleted", "x");
        store.anonymize_billable(&b, &tombstone).await.unwrap();
        store.delete_billable(&c).await.unwrap();
        consistent(&store, &[&a, &b, &c, &tombstone]).await;
        assert_eq!(
            store
                .sum_usage(&UsageFilter::default())
                .await
                .unwrap()
                .calls,
            4
        );
    })
    .await;
}

/// Settlements and inserts from many tasks at once (through the store's writers) keep the
/// aggregates equal to the rows, and a long range is summed the same from the aggregates as
/// from the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_settlements_keep_the_aggregates_equal_to_the_rows() {
    use ai_metering_core::store::ReserveOutcome;
    use std::sync::Arc;
    on_each_backend("aggregates_concurrent", |store| async move {
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..24_u32)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let who = Billable::new("team", ["a", "b", "c"][i as usize % 3]);
                    let when = at(1 + i % 5, i % 24);
                    let request = ReserveRequest::new(
                        who.clone(),
                        march(),
                        Limits::UNLIMITED,
                        UsageTotals::new(100, dec("1")),
                        when,
                        when + Duration::minutes(5),
                    );
                    let ReserveOutcome::Reserved { id, .. } =
                        store.reserve(&request).await.unwrap()
                    else {
                        panic!("unlimited");
                    };
                    let mut e = entry(&who, u64::from(i) + 1, 3, dec("0.0000000375"), when);
                    e.feature = (i % 2 == 0).then(|| "chat".to_owned());
                    store
                        .settle(&ai_metering_testkit::builders::settlement(id, &e))
                        .await
                        .unwrap();
                    let batch = [
                        entry(&who, 5, 0, dec("0.1"), when),
                        entry(&who, 7, 1, dec("0.2"), when + Duration::hours(1)),
                    ];
                    store.insert_usage_batch(&batch).await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(aggregates(&store).await, aggregates_of_rows(&store).await);

        // A long range, not aligned to midnight: whole days from the aggregates, the edges
        // from the rows; the same as summing the rows.
        let rows = store
            .query_usage(&UsageFilter::default(), Page::first(Page::MAX_LIMIT))
            .await
            .unwrap();
        let (from, until) = (at(1, 7), at(5, 13));
        let mut expected = ai_metering_core::store::UsageSums::default();
        for r in rows
            .iter()
            .filter(|r| from <= r.entry.occurred_at && r.entry.occurred_at < until)
        {
            expected.add(&r.entry);
        }
        expected.cost = expected.cost.normalize();
        let filter = UsageFilter {
            from: Some(from),
            until: Some(until),
            ..UsageFilter::default()
        };
        assert_eq!(store.sum_usage(&filter).await.unwrap(), expected);
        let by_day = store
            .sum_usage_grouped(&filter, GroupBy::Day)
            .await
            .unwrap();
        assert_eq!(
            by_day.iter().map(|g| g.sums.calls).sum::<u64>(),
            expected.calls
        );
        assert_eq!(by_day.len(), 5);
        let chat = UsageFilter {
            feature: Some("chat".into()),
            ..filter.clone()
        };
        let chat_rows = rows
            .iter()
            .filter(|r| {
                from <= r.entry.occurred_at
                    && r.entry.occurred_at < until
                    && r.entry.feature.as_deref() == Some("chat")
            })
            .count() as u64;
        assert_eq!(store.sum_usage(&chat).await.unwrap().calls, chat_rows);

        // The long range really reads the aggregates: damage one day's, and the sum shows it
        // until a rebuild repairs them.
        let damaged = daily_aggregate::Entity::update_many()
            .col_expr(
                daily_aggregate::Column::Calls,
                sea_orm::sea_query::ExprTrait::add(
                    sea_orm::sea_query::Expr::col(daily_aggregate::Column::Calls),
                    1000,
                ),
            )
            .filter(daily_aggregate::Column::Day.eq("2025-03-03"))
            .exec(store.connection())
            .await
            .unwrap()
            .rows_affected;
        assert!(damaged > 0);
        let seen = store.sum_usage(&filter).await.unwrap().calls;
        assert_eq!(seen, expected.calls + 1000 * damaged);
        store
            .rebuild_daily_aggregates(day(1), day(6))
            .await
            .unwrap();
        assert_eq!(store.sum_usage(&filter).await.unwrap(), expected);
    })
    .await;
}

/// The migration that made the aggregates live rebuilds them all from the rows, dropping
/// those of days without rows (kept by the pruning of earlier versions) and fixing the rest.
#[tokio::test]
async fn the_live_aggregates_migration_rebuilds_them_from_the_rows() {
    use ai_metering_migration::{Migrator, MigratorTrait};
    on_each_backend("aggregates_migration", |store| async move {
        let b = Billable::new("user", 1);
        for (d, cost) in [(1, "0.1"), (1, "0.0000000375"), (2, "2")] {
            store
                .insert_usage(&entry(&b, 10, 5, dec(cost), at(d, 3)))
                .await
                .unwrap();
        }
        let expected = aggregates_of_rows(&store).await;
        // As an older version may have left them: one day wrong, one without rows.
        daily_aggregate::Entity::update_many()
            .col_expr(
                daily_aggregate::Column::Calls,
                sea_orm::sea_query::Expr::value(99),
            )
            .exec(store.connection())
            .await
            .unwrap();
        let mut stale = daily_aggregate::Entity::find()
            .one(store.connection())
            .await
            .unwrap()
            .unwrap();
        stale.day = "2020-01-01".into();
        let mut stale: daily_aggregate::ActiveModel = stale.into();
        stale.id = sea_orm::ActiveValue::NotSet;
        daily_aggregate::Entity::insert(stale)
            .exec(store.connection())
            .await
            .unwrap();
        assert_ne!(aggregates(&store).await, expected);

        // Undo and redo the migration (and those after it).
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        let at_live = names
            .iter()
            .position(|n| n == "m20261205_000010_live_daily_aggregates")
            .unwrap();
        let undo = u32::try_from(names.len() - at_live).unwrap();
        Migrator::down(store.connection(), Some(undo))
            .await
            .unwrap();
        Migrator::up(store.connection(), None).await.unwrap();
        assert_eq!(aggregates(&store).await, expected);
        // Rows stored before days had zones keep their UTC days, bounds and all.
        for a in daily_aggregate::Entity::find()
            .all(store.connection())
            .await
            .unwrap()
        {
            let start = NaiveDate::parse_from_str(&a.day, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc();
            assert_eq!(
                (a.day_start, a.day_end),
                (Some(start), Some(start + Duration::days(1)))
            );
        }
        let long = UsageFilter {
            from: Some(at(1, 0)),
            until: Some(at(20, 0)),
            ..UsageFilter::default()
        };
        let rows = store
            .query_usage(&long, Page::first(Page::MAX_LIMIT))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        assert_eq!(
            store.sum_usage(&long).await.unwrap().calls,
            rows.len() as u64,
            "the migrated days answer long ranges"
        );
    })
    .await;
}
