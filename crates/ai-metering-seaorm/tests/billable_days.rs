//! Each billable's usage counts in its own day (its subscription's time zone), on SQLite and
//! PostgreSQL: across both DST changes of March 2025, for billables in Berlin, New York and
//! UTC, the daily aggregates hold each billable's local days (23 hours long on its DST day),
//! and every sum over any range of instants, for one billable or all of them, grouped or
//! not, equals the sum of the rows in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use ai_metering_core::Billable;
use ai_metering_core::store::{
    GroupBy, ReportStore, RetentionStore, UsageDay, UsageEntry, UsageFilter, UsageStore, UsageSums,
};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_seaorm::entity::daily_aggregate;
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{dec, entry, on_each_backend};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

fn utc(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, m, d, h, 0, 0).unwrap()
}

/// The calls: every 5 hours from March 7th to April 3rd 2025 for each billable, with
/// costs of several scales.
fn calls() -> Vec<UsageEntry> {
    let billables = [
        (
            Billable::new("team", "berlin"),
            Some(chrono_tz::Europe::Berlin),
        ),
        (
            Billable::new("team", "new-york"),
            Some(chrono_tz::America::New_York),
        ),
        (Billable::new("team", "utc"), None),
    ];
    let mut entries = Vec::new();
    let mut t = utc(3, 7, 0);
    let mut i: u64 = 0;
    while t < utc(4, 3, 0) {
        for (b, zone) in &billables {
            i += 1;
            let cost = ["0.00000015", "0.0000000375", "0.5", "12.25"][(i % 4) as usize];
            let mut e = entry(
                b,
                10 + i % 7,
                i % 5,
                dec(cost),
                t + Duration::minutes((i % 3) as i64),
            );
            e.time_zone = *zone;
            entries.push(e);
        }
        t += Duration::hours(5);
    }
    entries
}

/// What `filter` (a range and maybe a billable) matches among `entries`, per `group_by`.
fn reference(
    entries: &[UsageEntry],
    filter: &UsageFilter,
    group_by: Option<GroupBy>,
) -> BTreeMap<String, UsageSums> {
    let mut sums: BTreeMap<String, UsageSums> = BTreeMap::new();
    for e in entries {
        let inside = filter.from.is_none_or(|f| e.occurred_at >= f)
            && filter.until.is_none_or(|u| e.occurred_at < u)
            && filter.billable.as_ref().is_none_or(|b| *b == e.billable);
        if inside {
            let key = group_by.map(|g| g.key_of(e)).unwrap_or_default();
            sums.entry(key).or_default().add(e);
        }
    }
    for s in sums.values_mut() {
        s.cost = s.cost.normalize();
    }
    sums
}

async fn stored(
    store: &SeaOrmStore,
    filter: &UsageFilter,
    group_by: Option<GroupBy>,
) -> BTreeMap<String, UsageSums> {
    let mut out = BTreeMap::new();
    match group_by {
        None => {
            let s = store.sum_usage(filter).await.unwrap();
            if s.calls > 0 {
                out.insert(String::new(), s);
            }
        }
        Some(g) => {
            for group in store.sum_usage_grouped(filter, g).await.unwrap() {
                out.insert(group.key, group.sums);
            }
        }
    }
    for s in out.values_mut() {
        s.cost = s.cost.normalize();
    }
    out
}

/// A range of instants, either end open.
type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Ranges short and long, aligned to each zone's midnight or not, open at either end.
fn ranges() -> Vec<Range> {
    let berlin_midnight = |d| {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2025, 3, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let ny_midnight = |d| {
        chrono_tz::America::New_York
            .with_ymd_and_hms(2025, 3, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    vec![
        (Some(utc(3, 8, 13)), Some(utc(3, 9, 2))),
        (Some(utc(3, 8, 7)), Some(utc(3, 9, 20))),
        (Some(utc(3, 8, 0)), Some(utc(3, 10, 0))),
        (Some(utc(3, 8, 7)), Some(utc(3, 11, 3))),
        (Some(utc(3, 8, 7)), Some(utc(3, 12, 8))),
        (Some(utc(3, 7, 0)), Some(utc(4, 3, 0))),
        (Some(utc(3, 9, 17)), Some(utc(3, 31, 1))),
        (Some(berlin_midnight(29)), Some(berlin_midnight(31))),
        (Some(berlin_midnight(28)), Some(utc(4, 2, 22))),
        (Some(ny_midnight(9)), Some(ny_midnight(20))),
        (Some(ny_midnight(8)), Some(berlin_midnight(30))),
        (None, Some(utc(3, 20, 4))),
        (Some(utc(3, 12, 19)), None),
        (None, None),
    ]
}

#[tokio::test]
async fn each_billable_counts_in_its_own_day_and_every_range_sums_exactly() {
    on_each_backend("billable_days", |store| async move {
        let entries = calls();
        // Both write paths: one at a time, and in batches.
        let (single, batched) = entries.split_at(entries.len() / 2);
        for e in single {
            store.insert_usage(e).await.unwrap();
        }
        for chunk in batched.chunks(17) {
            store.insert_usage_batch(chunk).await.unwrap();
        }

        // The aggregates hold the billables' own days.
        let rows = daily_aggregate::Entity::find()
            .all(store.connection())
            .await
            .unwrap();
        for e in &entries {
            let day = e.day();
            let found = rows.iter().any(|a| {
                a.billable_id == e.billable.id
                    && a.day == day.date.to_string()
                    && a.day_start == Some(day.period.start)
                    && a.day_end == Some(day.period.end)
            });
            assert!(found, "no aggregate for {} on {:?}", e.billable, day);
        }
        let berlin_dst = daily_aggregate::Entity::find()
            .filter(daily_aggregate::Column::BillableId.eq("berlin"))
            .filter(daily_aggregate::Column::Day.eq("2025-03-30"))
            .one(store.connection())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            berlin_dst.day_end.unwrap() - berlin_dst.day_start.unwrap(),
            Duration::hours(23)
        );
        let ny_dst = UsageDay::at(utc(3, 9, 12), Some(chrono_tz::America::New_York));
        assert_eq!(ny_dst.period.end - ny_dst.period.start, Duration::hours(23));

        // Every range, for all billables and for each, grouped or not, sums exactly.
        let billables = [
            None,
            Some(Billable::new("team", "berlin")),
            Some(Billable::new("team", "new-york")),
            Some(Billable::new("team", "utc")),
        ];
        for (from, until) in ranges() {
            for billable in &billables {
                let filter = UsageFilter {
                    from,
                    until,
                    billable: billable.clone(),
                    ..UsageFilter::default()
                };
                for group_by in [None, Some(GroupBy::Day), Some(GroupBy::Billable)] {
                    assert_eq!(
                        stored(&store, &filter, group_by).await,
                        reference(&entries, &filter, group_by),
                        "{from:?}..{until:?} {billable:?} {group_by:?}"
                    );
                }
            }
        }

        // The day groups are the billables' dates: Berlin's 01:00 UTC call on March 30th
        // is 03:00 there, New York's is still the 29th.
        let days = |who: &str| {
            let store = store.clone();
            let who = Billable::new("team", who);
            async move {
                store
                    .sum_usage_grouped(&UsageFilter::for_billable(who), GroupBy::Day)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|g| g.key)
                    .collect::<Vec<_>>()
            }
        };
        let first = |keys: Vec<String>| keys.into_iter().min().unwrap();
        assert_eq!(first(days("berlin").await), "2025-03-07");
        assert_eq!(first(days("new-york").await), "2025-03-06");
        assert_eq!(first(days("utc").await), "2025-03-07");

        // Long ranges read the aggregates of zone days: damage Berlin's DST day and a range
        // that holds it whole sees the damage, one that cuts it does not.
        let before = store
            .sum_usage(&UsageFilter {
                from: Some(utc(3, 20, 0)),
                until: Some(utc(4, 2, 0)),
                ..UsageFilter::default()
            })
            .await
            .unwrap();
        daily_aggregate::Entity::update_many()
            .col_expr(
                daily_aggregate::Column::Calls,
                sea_orm::sea_query::Expr::value(berlin_dst.calls + 1_000),
            )
            .filter(daily_aggregate::Column::Id.eq(berlin_dst.id))
            .exec(store.connection())
            .await
            .unwrap();
        let whole = store
            .sum_usage(&UsageFilter {
                from: Some(utc(3, 20, 0)),
                until: Some(utc(4, 2, 0)),
                ..UsageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(whole.calls, before.calls + 1_000);
        let cut = UsageFilter {
            from: Some(utc(3, 29, 23) + Duration::minutes(30)),
            until: Some(utc(4, 2, 0)),
            ..UsageFilter::default()
        };
        assert_eq!(
            stored(&store, &cut, None).await,
            reference(&entries, &cut, None),
            "a day cut by the range is read from its rows"
        );
        // A rebuild repairs it.
        store
            .rebuild_daily_aggregates(
                chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2025, 4, 5).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .sum_usage(&UsageFilter {
                    from: Some(utc(3, 20, 0)),
                    until: Some(utc(4, 2, 0)),
                    ..UsageFilter::default()
                })
                .await
                .unwrap(),
            before
        );
    })
    .await;
}

/// Deleting a zone's rows (pruning, GDPR) recomputes that zone's days.
#[tokio::test]
async fn retention_keeps_zone_days_equal_to_their_rows() {
    on_each_backend("billable_days_retention", |store| async move {
        let entries = calls();
        store.insert_usage_batch(&entries).await.unwrap();
        // Prune at an instant inside Berlin's and New York's days.
        store.prune_usage_before(utc(3, 20, 3), 50).await.unwrap();
        store
            .delete_billable(&Billable::new("team", "utc"))
            .await
            .unwrap();
        let left: Vec<UsageEntry> = entries
            .into_iter()
            .filter(|e| e.occurred_at >= utc(3, 20, 3) && e.billable.id != "utc")
            .collect();
        for (from, until) in ranges() {
            let filter = UsageFilter {
                from,
                until,
                ..UsageFilter::default()
            };
            for group_by in [None, Some(GroupBy::Day)] {
                assert_eq!(
                    stored(&store, &filter, group_by).await,
                    reference(&left, &filter, group_by),
                    "{from:?}..{until:?} {group_by:?}"
                );
            }
        }
    })
    .await;
}
