//! Usage rows: inserts, queries, search, pages and sums.

use crate::ConformanceStore;
use std::collections::HashMap;
use std::sync::Arc;

use ai_metering_core::TokenCounts;
use ai_metering_core::store::{GroupBy, GroupedSums, Page, UsageEntry, UsageFilter, UsageSums};
use serde_json::json;

use super::ids;
use crate::builders::{EntryExt, dec, entry, fresh_billable, fresh_name, fresh_tenant, hour};

/// Every field of a row comes back exactly as stored: full-precision cost, every token class,
/// nested metadata, the estimate flag.
pub async fn usage_rows_round_trip_every_field<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let mut e = entry(&who, 0, dec("0"), hour(1))
        .with_counts(TokenCounts {
            input: 1_000_000_000,
            cached_input: 400_000_000,
            cache_write: 300_000_000,
            cache_write_long: 100_000_000,
            output: 999_999_999,
            reasoning: 123_456_789,
        })
        .with_model("anthropic", "claude-sonnet-4-5")
        .with_feature("chat.summary:v2")
        .with_user(fresh_name("user"))
        .with_tenant(&fresh_tenant())
        .with_key(fresh_name("key"))
        .with_metadata(json!({"a": [1, "two", null], "b": {"c": true}, "ünï": "cödé"}));
    // More digits than a float keeps, down to the nano-unit (the precision every store must
    // keep, see DESIGN.md), in every component of the cost.
    e.cost.input = dec("1234567.123456789");
    e.cost.cached_input = dec("0.000000001");
    e.cost.cache_write = dec("1.1");
    e.cost.output = dec("98765.4321");
    e.cost.reasoning = dec("0");
    e.cost.total = dec("1333333.655556790");
    e.estimated = true;

    let recorded = store.insert_usage(&e).await.unwrap();
    assert!(recorded.created);
    assert_eq!(recorded.record.entry, e, "the returned row");
    let rows = store
        .query_usage(&UsageFilter::for_billable(who.clone()), Page::default())
        .await
        .unwrap();
    assert_eq!(rows, vec![recorded.record.clone()], "the stored row");
    let sums = store
        .sum_usage(&UsageFilter::for_billable(who))
        .await
        .unwrap();
    assert_eq!(sums.cost, e.cost.total);
    assert_eq!(sums.total_tokens, 1_999_999_999);
}

/// Each filter field restricts the rows as [`UsageFilter::matches`] says; `from` is included
/// and `until` excluded.
pub async fn usage_query_by_each_filter_field<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let (alice, bob) = (fresh_name("alice"), fresh_name("bob"));
    let tenant = fresh_tenant();
    let r1 = entry(&who, 10, dec("0.01"), hour(1))
        .with_model("openai", "gpt-4o")
        .with_feature("chat")
        .with_user(&alice)
        .with_tenant(&tenant);
    let r2 = entry(&who, 20, dec("0.02"), hour(2))
        .with_model("anthropic", "claude-haiku-4-5")
        .with_feature("summarize")
        .with_user(&bob);
    let r3 = entry(&who, 30, dec("0.03"), hour(3))
        .with_model("openai", "gpt-4o-mini")
        .with_user(&alice)
        .with_tenant(&tenant);
    let mut id = Vec::new();
    for e in [&r1, &r2, &r3] {
        id.push(store.insert_usage(e).await.unwrap().record.id);
    }
    let (i1, i2, i3) = (id[0], id[1], id[2]);

    let mine = UsageFilter::for_billable(who.clone());
    let cases: Vec<(&str, UsageFilter, Vec<i64>)> = vec![
        ("billable", mine.clone(), vec![i3, i2, i1]),
        (
            "provider",
            mine.clone().with_provider("openai"),
            vec![i3, i1],
        ),
        ("model (exact)", mine.clone().with_model("gpt-4o"), vec![i1]),
        ("feature", mine.clone().with_feature("chat"), vec![i1]),
        (
            "user only",
            UsageFilter {
                user_id: Some(alice.clone()),
                ..UsageFilter::default()
            },
            vec![i3, i1],
        ),
        (
            "tenant only",
            UsageFilter::default().with_tenant(tenant.clone()),
            vec![i3, i1],
        ),
        (
            "from (included)",
            UsageFilter {
                from: Some(hour(2)),
                ..mine.clone()
            },
            vec![i3, i2],
        ),
        (
            "until (excluded)",
            UsageFilter {
                until: Some(hour(2)),
                ..mine.clone()
            },
            vec![i1],
        ),
        (
            "everything at once",
            UsageFilter {
                user_id: Some(alice.clone()),
                from: Some(hour(1)),
                until: Some(hour(4)),
                ..mine
                    .clone()
                    .with_tenant(tenant.clone())
                    .with_provider("openai")
                    .with_model("gpt-4o-mini")
            },
            vec![i3],
        ),
        ("no match", mine.clone().with_feature("nothing"), vec![]),
        (
            "other billable",
            UsageFilter::for_billable(fresh_billable()),
            vec![],
        ),
    ];
    for (name, filter, want) in cases {
        let rows = store.query_usage(&filter, Page::default()).await.unwrap();
        assert_eq!(ids(&rows), want, "filter by {name}");
        let sums = store.sum_usage(&filter).await.unwrap();
        assert_eq!(sums.calls, want.len() as u64, "sum with filter by {name}");
    }
}

/// Search matches the feature, the model or the metadata, ignoring case.
pub async fn usage_search_is_case_insensitive<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let by_feature = entry(&who, 1, dec("0"), hour(1)).with_feature("Summarize-Docs");
    let by_model = entry(&who, 1, dec("0"), hour(2)).with_model("openai", "O3-Pro");
    let by_meta = entry(&who, 1, dec("0"), hour(3))
        .with_metadata(json!({"ticket": "ABC-123", "nested": {"note": "Hello World"}}));
    let mut id = Vec::new();
    for e in [&by_feature, &by_model, &by_meta] {
        id.push(store.insert_usage(e).await.unwrap().record.id);
    }
    for (text, want) in [
        ("summarize", vec![id[0]]),
        ("DOCS", vec![id[0]]),
        ("o3-p", vec![id[1]]),
        ("abc-1", vec![id[2]]),
        ("hello world", vec![id[2]]),
        ("no such text", vec![]),
    ] {
        let filter = UsageFilter {
            search: Some(text.into()),
            ..UsageFilter::for_billable(who.clone())
        };
        let rows = store.query_usage(&filter, Page::default()).await.unwrap();
        assert_eq!(ids(&rows), want, "search {text:?}");
    }
}

/// Rows come newest first, then highest id first; pages slice that order.
pub async fn usage_pages_are_newest_first<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let mut id = Vec::new();
    for h in [1, 3, 3, 2, 0] {
        let e = entry(&who, 10, dec("0.1"), hour(h));
        id.push(store.insert_usage(&e).await.unwrap().record.id);
    }
    let order = vec![id[2], id[1], id[3], id[0], id[4]];
    let filter = UsageFilter::for_billable(who);
    let all = store.query_usage(&filter, Page::first(10)).await.unwrap();
    assert_eq!(ids(&all), order);
    let mut paged = Vec::new();
    for n in 0..3 {
        let page = store
            .query_usage(&filter, Page::number(n, 2))
            .await
            .unwrap();
        assert_eq!(page.len(), if n < 2 { 2 } else { 1 }, "page {n}");
        paged.extend(ids(&page));
    }
    assert_eq!(paged, order);
    assert!(
        store
            .query_usage(&filter, Page::number(3, 2))
            .await
            .unwrap()
            .is_empty()
    );
    let window = Page {
        offset: 1,
        limit: 3,
    };
    assert_eq!(
        ids(&store.query_usage(&filter, window).await.unwrap()),
        order[1..4]
    );
}

/// Sums add every token class, the calls and the cost.
pub async fn usage_sums_add_every_field<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let a = entry(&who, 0, dec("0.000001"), hour(1)).with_counts(TokenCounts {
        input: 1_000,
        cached_input: 200,
        cache_write: 100,
        cache_write_long: 50,
        output: 500,
        reasoning: 300,
    });
    let b = entry(&who, 0, dec("1.999999"), hour(2)).with_counts(TokenCounts {
        input: 10,
        cached_input: 1,
        cache_write: 2,
        output: 20,
        reasoning: 3,
        ..TokenCounts::default()
    });
    store.insert_usage(&a).await.unwrap();
    store.insert_usage(&b).await.unwrap();
    let sums = store
        .sum_usage(&UsageFilter::for_billable(who.clone()))
        .await
        .unwrap();
    assert_eq!(
        sums,
        UsageSums {
            calls: 2,
            input_tokens: 1_010,
            cached_input_tokens: 201,
            cache_write_tokens: 102,
            output_tokens: 520,
            reasoning_tokens: 303,
            total_tokens: 1_530,
            cost: dec("2"),
        }
    );
    let none = store
        .sum_usage(&UsageFilter::for_billable(fresh_billable()))
        .await
        .unwrap();
    assert_eq!(none, UsageSums::default(), "no rows sum to zero");
}

/// A large batch is stored whole, in order: more rows than one SQL statement may carry
/// parameters for (SQLite takes 32,766, PostgreSQL 65,535; a usage row has over 30 columns).
pub async fn usage_batch_larger_than_one_statement_is_stored_whole<S: ConformanceStore>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let entries: Vec<UsageEntry> = (0..2_500u64)
        .map(|n| {
            entry(
                &who,
                n + 1,
                dec("0.001"),
                hour(1) + chrono::Duration::seconds(n as i64),
            )
            .with_key(format!("big-batch-{n}"))
        })
        .collect();
    let recorded = store.insert_usage_batch(&entries).await.unwrap();
    assert_eq!(recorded.len(), entries.len());
    for (n, (r, e)) in recorded.iter().zip(&entries).enumerate() {
        assert!(r.created, "row {n}");
        assert_eq!(r.record.entry.usage, e.usage, "row {n} answered in order");
    }
    let ids: Vec<i64> = recorded.iter().map(|r| r.record.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in insertion order"
    );
    let sums = store
        .sum_usage(&UsageFilter::for_billable(who.clone()))
        .await
        .unwrap();
    assert_eq!(sums.calls, 2_500);
    assert_eq!(sums.total_tokens, (1..=2_500).sum::<u64>());

    // As many features (as many daily aggregates), twice: the second batch adds to every
    // aggregate the first one made.
    let wide = fresh_billable();
    for round in 0..2 {
        let entries: Vec<UsageEntry> = (0..3_500u64)
            .map(|n| {
                entry(&wide, 10, dec("0.001"), hour(1))
                    .with_feature(format!("feature-{n}"))
                    .with_key(format!("wide-{round}-{n}"))
            })
            .collect();
        let recorded = store.insert_usage_batch(&entries).await.unwrap();
        assert_eq!(recorded.len(), 3_500);
    }
    // A range of days is answered from the aggregates (on stores that keep them).
    let days = UsageFilter {
        from: Some(hour(1) - chrono::Duration::days(3)),
        until: Some(hour(1) + chrono::Duration::days(3)),
        ..UsageFilter::for_billable(wide.clone())
    };
    let grouped = store
        .sum_usage_grouped(&days, GroupBy::Feature)
        .await
        .unwrap();
    assert_eq!(grouped.len(), 3_500);
    assert!(
        grouped
            .iter()
            .all(|g| g.sums.calls == 2 && g.sums.total_tokens == 20),
        "every feature counted twice"
    );

    // As many billables.
    let many: Vec<_> = (0..2_000).map(|_| fresh_billable()).collect();
    let entries: Vec<UsageEntry> = many
        .iter()
        .enumerate()
        .map(|(n, b)| entry(b, 10, dec("0.001"), hour(1)).with_key(format!("many-{n}")))
        .collect();
    assert_eq!(
        store.insert_usage_batch(&entries).await.unwrap().len(),
        2_000
    );
    let last = store
        .sum_usage(&UsageFilter::for_billable(many[1_999].clone()))
        .await
        .unwrap();
    assert_eq!(last.calls, 1);
}

/// Grouped sums follow [`GroupBy::key_of`] for every grouping, largest total tokens first,
/// then by key.
pub async fn usage_grouped_sums_for_every_group_by<S: ConformanceStore>(store: Arc<S>) {
    let (who, other) = (fresh_billable(), fresh_billable());
    let tenant = fresh_tenant();
    let entries = vec![
        // Provider: anthropic 150, openai 150 (a tie, broken by key).
        entry(&who, 100, dec("0.10"), hour(1))
            .with_model("openai", "gpt-4o")
            .with_feature("chat")
            .with_tenant(&tenant),
        entry(&who, 50, dec("0.05"), hour(2))
            .with_model("openai", "gpt-4o-mini")
            .with_tenant(&tenant),
        entry(&who, 150, dec("0.30"), hour(30))
            .with_model("anthropic", "claude-haiku-4-5")
            .with_feature("summarize"),
        entry(&other, 70, dec("0.07"), hour(3))
            .with_model("openai", "gpt-4o")
            .with_feature("chat")
            .with_tenant(&tenant),
    ];
    store.insert_usage_batch(&entries).await.unwrap();

    let groupings = [
        GroupBy::Provider,
        GroupBy::Model,
        GroupBy::Feature,
        GroupBy::Billable,
        GroupBy::Tenant,
        GroupBy::Day,
    ];
    let filters = [
        UsageFilter::for_billable(who.clone()),
        UsageFilter::default().with_tenant(tenant.clone()),
    ];
    for filter in &filters {
        for group_by in groupings {
            let got = store.sum_usage_grouped(filter, group_by).await.unwrap();
            let want = reference_groups(&entries, filter, group_by);
            assert_eq!(got, want, "{group_by:?} over {filter:?}");
        }
    }
    // Spot checks of the reference itself.
    let by_provider = reference_groups(&entries, &filters[0], GroupBy::Provider);
    let keys: Vec<&str> = by_provider.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["anthropic", "openai"]);
    let by_feature = reference_groups(&entries, &filters[0], GroupBy::Feature);
    let keys: Vec<&str> = by_feature.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["summarize", "chat", ""], "largest total first");
    let by_tenant = reference_groups(&entries, &filters[0], GroupBy::Tenant);
    let keys: Vec<&str> = by_tenant.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["", tenant.as_str()], "a tie, by key");
    let by_day = reference_groups(&entries, &filters[0], GroupBy::Day);
    let keys: Vec<&str> = by_day.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["2024-03-01", "2024-03-02"]);
}

/// The grouped sums the traits document, computed from the entries themselves.
fn reference_groups(
    entries: &[UsageEntry],
    filter: &UsageFilter,
    group_by: GroupBy,
) -> Vec<GroupedSums> {
    let mut groups: HashMap<String, UsageSums> = HashMap::new();
    for e in entries.iter().filter(|e| filter.matches(e)) {
        groups.entry(group_by.key_of(e)).or_default().add(e);
    }
    let mut groups: Vec<GroupedSums> = groups
        .into_iter()
        .map(|(key, sums)| GroupedSums { key, sums })
        .collect();
    groups.sort_by(|a, b| {
        b.sums
            .total_tokens
            .cmp(&a.sums.total_tokens)
            .then_with(|| a.key.cmp(&b.key))
    });
    groups
}
