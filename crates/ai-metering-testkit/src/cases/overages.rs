//! Overage records.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::Billable;
use ai_metering_core::store::OverageRecord;

use crate::builders::{dec, entry, fresh_billable, fresh_name, instant, overage};

/// Our pending overages, in the store's order (other cases and runs may have their own).
async fn pending_of<S: ConformanceStore>(store: &S, who: &Billable) -> Vec<OverageRecord> {
    store
        .pending_overages(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.overage.billable == *who)
        .collect()
}

/// One overage per usage row: a second insert returns the first, unchanged.
pub async fn overage_once_per_usage_row<S: ConformanceStore>(store: Arc<S>) {
    let who = fresh_billable();
    let at = instant(1990, 1, 1, 0, 0, 0);
    let row = store
        .insert_usage(&entry(&who, 1_500, dec("0.3"), at))
        .await
        .unwrap();
    let first = overage(&who, row.record.id, 500, "0.10", at);
    let stored = store.insert_overage(&first).await.unwrap();
    assert_eq!(
        (&stored.overage, stored.synced_at, &stored.external_id),
        (&first, None, &None)
    );
    let again = overage(
        &who,
        row.record.id,
        900,
        "0.99",
        instant(1990, 1, 2, 0, 0, 0),
    );
    assert_eq!(store.insert_overage(&again).await.unwrap(), stored);
    assert_eq!(pending_of(&*store, &who).await, vec![stored.clone()]);
    assert!(
        store
            .mark_overage_synced(stored.id, &fresh_name("ii"), at)
            .await
            .unwrap()
    );
}

/// Pending overages come oldest first; one is marked synced only once, then is no longer
/// pending.
pub async fn pending_overages_oldest_first_and_synced_once<S: ConformanceStore>(store: Arc<S>) {
    // Instants long before any other case's, so that ours come first among pending ones.
    let at = |d: u32| instant(1990, 2, d, 0, 0, 0);
    let who = fresh_billable();
    let mut stored = Vec::new();
    for (tokens, created) in [(100, at(3)), (200, at(1)), (300, at(2))] {
        let row = store
            .insert_usage(&entry(&who, tokens, dec("0.1"), at(1)))
            .await
            .unwrap();
        let o = overage(&who, row.record.id, tokens, "0.01", created);
        stored.push(store.insert_overage(&o).await.unwrap());
    }
    let oldest_first = vec![stored[1].clone(), stored[2].clone(), stored[0].clone()];
    assert_eq!(pending_of(&*store, &who).await, oldest_first);
    assert_eq!(
        store.pending_overages(None, 1).await.unwrap().len(),
        1,
        "the limit applies"
    );

    let (ext, other_ext) = (fresh_name("ii"), fresh_name("ii"));
    assert!(
        store
            .mark_overage_synced(stored[1].id, &ext, at(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_overage_synced(stored[1].id, &other_ext, at(11))
            .await
            .unwrap(),
        "already synced"
    );
    let synced = store.insert_overage(&stored[1].overage).await.unwrap();
    assert_eq!(synced.synced_at, Some(at(10)), "the first sync is kept");
    assert_eq!(synced.external_id.as_deref(), Some(ext.as_str()));
    assert_eq!(
        pending_of(&*store, &who).await,
        vec![stored[2].clone(), stored[0].clone()]
    );

    for o in [&stored[2], &stored[0]] {
        assert!(
            store
                .mark_overage_synced(o.id, &fresh_name("ii"), at(12))
                .await
                .unwrap()
        );
    }
    assert!(pending_of(&*store, &who).await.is_empty());
}

/// Pending overages page by (creation, id) after a cursor row, ties included, so a caller
/// can read on past rows that keep failing.
pub async fn pending_overages_page_after_a_cursor<S: ConformanceStore>(store: Arc<S>) {
    // Instants long before any other case's, like the other pending-overage case.
    let at = |d: u32| instant(1990, 3, d, 0, 0, 0);
    let who = fresh_billable();
    let mut stored = Vec::new();
    // Two rows share an instant: the id orders them.
    for created in [at(1), at(2), at(2), at(3)] {
        let row = store
            .insert_usage(&entry(&who, 10, dec("0.1"), at(1)))
            .await
            .unwrap();
        let o = overage(&who, row.record.id, 10, "0.01", created);
        stored.push(store.insert_overage(&o).await.unwrap());
    }
    let mine = |page: Vec<OverageRecord>| -> Vec<i64> {
        page.into_iter()
            .filter(|o| o.overage.billable == who)
            .map(|o| o.id)
            .collect()
    };
    let ids: Vec<i64> = stored.iter().map(|o| o.id).collect();
    for (i, cursor) in stored.iter().enumerate() {
        let after = store.pending_overages(Some(cursor), 10_000).await.unwrap();
        assert_eq!(mine(after), ids[i + 1..].to_vec(), "after row {i}");
    }
    // Paging one row at a time from the first visits them all, in order, once.
    let mut seen = vec![stored[0].id];
    let mut last = stored[0].clone();
    loop {
        let page = store.pending_overages(Some(&last), 1).await.unwrap();
        let Some(next) = page.into_iter().next() else {
            break;
        };
        if next.overage.created_at > at(3) {
            break; // past ours: other cases' rows
        }
        if next.overage.billable == who {
            seen.push(next.id);
        }
        last = next;
    }
    assert_eq!(seen, ids);
}
