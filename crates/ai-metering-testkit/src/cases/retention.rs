//! Retention and privacy ([`RetentionStore`]): what each operation deletes or rewrites, and
//! that counters, overage rows and idempotency keys stay consistent with the rows left.
//!
//! The operations by date work on instants in 1985, before any other case's rows, so that
//! they only meet this suite's own rows (and those of earlier runs on a persistent database,
//! which they already pruned).

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::keys::{ApiKeyStore, KeyError, NewApiKey, authenticate, create_api_key};
use ai_metering_core::limit::Limits;
use ai_metering_core::store::{
    HoldRequest, NewGrant, Overdraft, Page, RetentionStore, StoreErrorKind, UsageFilter,
};
use ai_metering_core::{Billable, Currency};
use rust_decimal::Decimal;

use super::reserved;
use crate::builders::{
    dec, entry, fresh_billable, fresh_name, hour, instant, month, overage, reserve_request, totals,
    usd,
};

/// The rows of `user`, newest first.
async fn rows_of_user<S: ConformanceStore>(
    store: &S,
    user: &str,
) -> Vec<ai_metering_core::store::UsageRecord> {
    let filter = UsageFilter {
        user_id: Some(user.to_owned()),
        ..UsageFilter::default()
    };
    store
        .query_usage(&filter, Page::first(1_000))
        .await
        .unwrap()
}

/// Deleting a user's rows deletes them whatever billable paid, with their overage rows; the
/// counters drop them; the other users' rows, and their idempotency keys, stay.
pub async fn retention_delete_user_keeps_counters_and_keys_consistent<
    S: ConformanceStore + RetentionStore,
>(
    store: Arc<S>,
) {
    let (who, other) = (fresh_billable(), fresh_billable());
    let (user, kept_user) = (fresh_name("user"), fresh_name("user"));
    let march = month(2024, 3);
    // The counter exists before the rows, so it is kept up to date rather than seeded.
    let probe = reserve_request(&who, march, Limits::UNLIMITED, totals(1, "0.01"), hour(0));
    let probe = reserved(store.reserve(&probe).await.unwrap());
    assert!(store.release(probe).await.unwrap());

    let mut gone = entry(&who, 100, dec("1"), hour(1));
    gone.user_id = Some(user.clone());
    gone.idempotency_key = Some("gone-key".into());
    let gone = store.insert_usage(&gone).await.unwrap().record;
    store
        .insert_overage(&overage(&who, gone.id, 40, "0.40", hour(1)))
        .await
        .unwrap();
    let mut kept = entry(&who, 50, dec("0.5"), hour(2));
    kept.user_id = Some(kept_user.clone());
    kept.idempotency_key = Some("kept-key".into());
    let kept = store.insert_usage(&kept).await.unwrap().record;
    let mut elsewhere = entry(&other, 30, dec("0.3"), hour(3));
    elsewhere.user_id = Some(user.clone());
    store.insert_usage(&elsewhere).await.unwrap();

    let counts = store.delete_user(&user).await.unwrap();
    assert_eq!((counts.usages, counts.overages), (2, 1));
    assert!(rows_of_user(&*store, &user).await.is_empty());
    assert_eq!(rows_of_user(&*store, &kept_user).await.len(), 1);

    let usage = store.period_usage(&who, &march, hour(5)).await.unwrap();
    assert_eq!(usage.recorded, totals(50, "0.5"));
    let usage = store.period_usage(&other, &march, hour(5)).await.unwrap();
    assert_eq!(usage.recorded, totals(0, "0"));

    let pending = store.pending_overages(None, 10_000).await.unwrap();
    assert!(pending.iter().all(|o| o.overage.billable != who));
    assert!(
        store
            .usage_by_idempotency_key(&who, "gone-key")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .usage_by_idempotency_key(&who, "kept-key")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(kept.id)
    );
    // The key of a deleted row is free again.
    let mut again = entry(&who, 7, dec("0.07"), hour(4));
    again.idempotency_key = Some("gone-key".into());
    let again = store.insert_usage(&again).await.unwrap();
    assert_ne!(again.record.id, gone.id);
    assert_eq!(store.delete_user(&user).await.unwrap().usages, 0);
}

/// Anonymising a user, or the rows before a date, drops user ids, metadata and idempotency
/// keys and changes no total; pruning deletes the rows before a date, in batches, and the
/// counters of their windows drop them.
pub async fn retention_anonymize_and_prune_by_user_and_date<
    S: ConformanceStore + RetentionStore,
>(
    store: Arc<S>,
) {
    let who = fresh_billable();
    let user = fresh_name("user");
    let old = instant(1985, 6, 1, 12, 0, 0);
    let june_1985 = month(1985, 6);
    let probe = reserve_request(&who, june_1985, Limits::UNLIMITED, totals(1, "0"), old);
    let probe = reserved(store.reserve(&probe).await.unwrap());
    assert!(store.release(probe).await.unwrap());
    for (i, at) in [old, instant(1985, 6, 2, 0, 0, 0), hour(1)]
        .into_iter()
        .enumerate()
    {
        let mut e = entry(&who, 10, dec("0.1"), at);
        e.user_id = Some(user.clone());
        e.idempotency_key = Some(format!("key-{i}"));
        e.metadata
            .insert("email".into(), "someone@example.com".into());
        store.insert_usage(&e).await.unwrap();
    }
    let all = UsageFilter::for_billable(who.clone());
    let before = store.sum_usage(&all).await.unwrap();

    // Rows before 1986: only those two of ours (earlier runs' were pruned below).
    let anonymized = store
        .anonymize_usage_before(instant(1986, 1, 1, 0, 0, 0))
        .await
        .unwrap();
    assert!(anonymized.usages >= 2, "{anonymized:?}");
    let left = rows_of_user(&*store, &user).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].entry.occurred_at, hour(1));
    assert!(
        store
            .usage_by_idempotency_key(&who, "key-0")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .usage_by_idempotency_key(&who, "key-2")
            .await
            .unwrap()
            .is_some()
    );

    assert_eq!(store.anonymize_user(&user).await.unwrap().usages, 1);
    assert!(rows_of_user(&*store, &user).await.is_empty());
    let rows = store.query_usage(&all, Page::first(10)).await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.entry.user_id, None);
        assert!(r.entry.metadata.is_empty());
        assert_eq!(r.entry.idempotency_key, None);
    }
    assert_eq!(store.sum_usage(&all).await.unwrap(), before);
    let usage = store.period_usage(&who, &june_1985, old).await.unwrap();
    assert_eq!(usage.recorded, totals(20, "0.2"));

    assert_eq!(
        store
            .prune_usage_before(instant(1986, 1, 1, 0, 0, 0), 0)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::Invalid
    );
    let pruned = store
        .prune_usage_before(instant(1986, 1, 1, 0, 0, 0), 1)
        .await
        .unwrap();
    assert!(pruned.usages >= 2, "{pruned:?}");
    assert_eq!(
        store
            .query_usage(&all, Page::first(10))
            .await
            .unwrap()
            .len(),
        1
    );
    let usage = store.period_usage(&who, &june_1985, old).await.unwrap();
    assert_eq!(usage.recorded, totals(0, "0"));
}

/// Anonymising a billable moves everything to the tombstone with the totals unchanged and
/// refuses a tombstone that has a wallet in the same currency; deleting a billable leaves
/// nothing of it and nothing of anyone else's.
pub async fn retention_anonymize_then_delete_a_billable<
    S: ConformanceStore + RetentionStore + ApiKeyStore,
>(
    store: Arc<S>,
) {
    let (who, bystander) = (fresh_billable(), fresh_billable());
    let march = month(2024, 3);
    store
        .add_credits(&who, usd("10"), "top-up", hour(0))
        .await
        .unwrap();
    store
        .add_grant(&who, &NewGrant::new(usd("5"), hour(0)), "promo", hour(0))
        .await
        .unwrap();
    let key = create_api_key(&*store, &NewApiKey::new(who.clone(), "laptop"), hour(0))
        .await
        .unwrap();
    for b in [&who, &bystander] {
        let mut e = entry(b, 100, dec("1"), hour(1));
        e.user_id = Some("someone".into());
        store.insert_usage(&e).await.unwrap();
    }
    let mut request = reserve_request(&who, march, Limits::UNLIMITED, totals(10, "2"), hour(1));
    request.hold = Some(HoldRequest {
        amount: usd("2"),
        overdraft: Overdraft::Disallowed,
    });
    reserved(store.reserve(&request).await.unwrap());
    let before = store.period_usage(&who, &march, hour(1)).await.unwrap();

    let rich_tombstone = Billable::new("deleted", fresh_name("t"));
    store
        .add_credits(&rich_tombstone, usd("1"), "top-up", hour(0))
        .await
        .unwrap();
    let err = store
        .anonymize_billable(&who, &rich_tombstone)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        store
            .anonymize_billable(&who, &who)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::Invalid
    );
    // Nothing changed.
    assert_eq!(
        store.period_usage(&who, &march, hour(1)).await.unwrap(),
        before
    );

    let tombstone = Billable::new("deleted", fresh_name("t"));
    let moved = store.anonymize_billable(&who, &tombstone).await.unwrap();
    assert_eq!(
        (
            moved.usages,
            moved.wallets,
            moved.counters,
            moved.credit_grants
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        store
            .period_usage(&tombstone, &march, hour(1))
            .await
            .unwrap(),
        before
    );
    let wallet = store.wallet(&tombstone, Currency::USD).await.unwrap();
    assert_eq!((wallet.balance, wallet.held), (dec("15"), dec("2")));
    // The grant moved with its wallet, still holding what the reservation took from it.
    let grants = store.grants(&tombstone, Currency::USD).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].grant.remaining, grants[0].grant.held),
        (dec("5"), dec("2"))
    );
    assert!(store.grants(&who, Currency::USD).await.unwrap().is_empty());
    // The key did not move to the tombstone: it is gone.
    assert_eq!(moved.api_keys, 1);
    assert!(matches!(
        authenticate(&*store, key.secret(), hour(2)).await,
        Err(KeyError::Unknown)
    ));
    assert!(store.api_keys(Some(&tombstone)).await.unwrap().is_empty());
    let gone = store.period_usage(&who, &march, hour(1)).await.unwrap();
    assert_eq!(gone.committed(), totals(0, "0"));
    let rows = store
        .query_usage(
            &UsageFilter::for_billable(tombstone.clone()),
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.user_id, None);

    // Deleting a billable deletes its keys too.
    let late_key = create_api_key(&*store, &NewApiKey::new(tombstone.clone(), "k"), hour(2))
        .await
        .unwrap();
    let deleted = store.delete_billable(&tombstone).await.unwrap();
    assert_eq!(deleted.api_keys, 1);
    assert!(store.api_key(&late_key.key.id).await.unwrap().is_none());
    assert_eq!(
        (deleted.usages, deleted.wallets, deleted.credit_grants),
        (1, 1, 1)
    );
    assert!(
        store
            .grants(&tombstone, Currency::USD)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(deleted.credit_transactions >= 1);
    let empty = store
        .period_usage(&tombstone, &march, hour(1))
        .await
        .unwrap();
    assert_eq!(empty.committed(), totals(0, "0"));
    let wallet = store.wallet(&tombstone, Currency::USD).await.unwrap();
    assert_eq!(
        (wallet.balance, wallet.held),
        (Decimal::ZERO, Decimal::ZERO)
    );
    let bystander_rows = store
        .sum_usage(&UsageFilter::for_billable(bystander.clone()))
        .await
        .unwrap();
    assert_eq!(
        (bystander_rows.calls, bystander_rows.total_tokens),
        (1, 100)
    );
}
