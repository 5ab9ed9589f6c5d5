//! Every storage trait on both backends, until the shared conformance suite of
//! `ai-metering-testkit` runs here as well (see `conformance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::plan::{
    BillingMode, LimitOverride, LimitValue, OveragePolicy, Plan, Subscription,
};
use ai_metering_core::store::{
    AdminStore, CounterStore, CreditOutcome, CreditStore, Direction, GroupBy, NewOverage,
    OverageStore, Overdraft, Page, PlanStore, ReportStore, StoreErrorKind, SubscriptionStore,
    UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Currency, Money, Tenant};
use chrono::Duration;
use common::{at, dec, entry, march, on_each_backend};

#[tokio::test]
async fn plans_upsert_by_slug_and_list_in_byte_order() {
    on_each_backend("plans", |store| async move {
        let pro = Plan::new("pro", "Pro")
            .with_token_limit(100_000)
            .with_cost_limit(dec("12.345678901"))
            .with_overage(OveragePolicy::Charge, Some(dec("0.002")));
        store.upsert_plan(&pro).await.unwrap();
        store
            .upsert_plan(&Plan::new("Basic", "Basic").inactive())
            .await
            .unwrap();
        assert_eq!(store.plan("pro").await.unwrap(), Some(pro.clone()));
        let renamed = Plan::new("pro", "Pro 2").with_token_limit(5);
        store.upsert_plan(&renamed).await.unwrap();
        let slugs: Vec<String> = store
            .plans()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.slug)
            .collect();
        assert_eq!(slugs, ["Basic", "pro"]);
        assert_eq!(store.plan("pro").await.unwrap(), Some(renamed));
        assert_eq!(store.plan("nope").await.unwrap(), None);
        let err = store.upsert_plan(&Plan::new("", "x")).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid);
    })
    .await;
}

#[tokio::test]
async fn current_subscription_and_overrides() {
    on_each_backend("subscriptions", |store| async move {
        let b = Billable::new("user", 7);
        let old = Subscription::new(b.clone(), "basic", at(1, 0)).ending_at(at(10, 0));
        let mut new =
            Subscription::new(b.clone(), "pro", at(10, 0)).with_billing_mode(BillingMode::Credits);
        new.meta
            .insert("source".into(), serde_json::json!("upgrade"));
        let old_id = store.insert_subscription(&old).await.unwrap();
        let new_id = store.insert_subscription(&new).await.unwrap();
        let (id, s) = store
            .current_subscription(&b, at(5, 0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((id, s), (old_id, old.clone()));
        let (id, s) = store
            .current_subscription(&b, at(12, 0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((id, s), (new_id, new.clone()));
        assert_eq!(
            store
                .current_subscription(&b, at(1, 0) - Duration::hours(1))
                .await
                .unwrap(),
            None
        );

        let mut graced = old.clone();
        graced.grace_ends_at = Some(at(20, 0));
        store.update_subscription(old_id, &graced).await.unwrap();
        let all = store.subscriptions(&b).await.unwrap();
        assert_eq!(all, vec![(old_id, graced), (new_id, new)]);
        let err = store
            .update_subscription(ai_metering_core::store::SubscriptionId(9_999), &old)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::NotFound);

        let o1 = LimitOverride {
            billable: b.clone(),
            starts_at: at(1, 0),
            ends_at: at(31, 0),
            token_limit: LimitValue::Set(20_000),
            cost_limit: LimitValue::Inherit,
        };
        let o2 = LimitOverride {
            token_limit: LimitValue::Unlimited,
            cost_limit: LimitValue::Set(dec("0.000001")),
            ..o1.clone()
        };
        store.insert_limit_override(&o1).await.unwrap();
        store.insert_limit_override(&o2).await.unwrap();
        assert_eq!(
            store.limit_override_at(&b, at(2, 0)).await.unwrap(),
            Some(o2)
        );
        assert_eq!(store.limit_override_at(&b, at(31, 0)).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn queries_filter_paginate_search_and_group() {
    on_each_backend("queries", |store| async move {
        let alice = Billable::new("user", "alice");
        let bob = Billable::new("user", "bob");
        let mut rows = Vec::new();
        for (i, (b, provider, model, feature)) in [
            (&alice, "openai", "gpt-4o-mini", Some("chat")),
            (&alice, "anthropic", "claude-sonnet-4", Some("summarize")),
            (&bob, "openai", "gpt-4o", None),
            (&alice, "openai", "gpt-4o-mini", Some("chat")),
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = entry(
                b,
                100 * (i as u64 + 1),
                10,
                dec("0.01"),
                at(2 + i as u32, 8),
            );
            e.provider = provider.into();
            e.model = model.into();
            e.feature = feature.map(Into::into);
            e.tenant = Some(Tenant::new(if *b == alice { "acme" } else { "globex" }));
            e.user_id = Some(format!("{}-self", b.id));
            if i == 1 {
                e.metadata
                    .insert("Ticket".into(), serde_json::json!("SUP-100% done"));
            }
            rows.push(store.insert_usage(&e).await.unwrap().record);
        }

        let all = store
            .query_usage(&UsageFilter::default(), Page::first(10))
            .await
            .unwrap();
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            rows.iter().rev().map(|r| r.id).collect::<Vec<_>>(),
            "newest first"
        );
        let page = store
            .query_usage(&UsageFilter::default(), Page::number(1, 3))
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, rows[0].id);

        let filter = UsageFilter::for_billable(alice.clone()).with_provider("openai");
        let chat = store.query_usage(&filter, Page::default()).await.unwrap();
        assert_eq!(chat.len(), 2);
        for (f, n) in [
            (UsageFilter::default().with_model("gpt-4o"), 1),
            (UsageFilter::default().with_feature("chat"), 2),
            (UsageFilter::default().with_tenant(Tenant::new("globex")), 1),
            (
                UsageFilter {
                    user_id: Some("bob-self".into()),
                    ..UsageFilter::default()
                },
                1,
            ),
            (
                UsageFilter {
                    from: Some(at(3, 8)),
                    until: Some(at(5, 8)),
                    ..UsageFilter::default()
                },
                2,
            ),
            (
                UsageFilter {
                    search: Some("SUMMAR".into()),
                    ..UsageFilter::default()
                },
                1,
            ),
            (
                UsageFilter {
                    search: Some("sup-100%".into()),
                    ..UsageFilter::default()
                },
                1,
            ),
            (
                UsageFilter {
                    search: Some("100_".into()),
                    ..UsageFilter::default()
                },
                0,
            ),
            (
                UsageFilter {
                    search: Some("4O".into()),
                    ..UsageFilter::default()
                },
                3,
            ),
        ] {
            let got = store.query_usage(&f, Page::default()).await.unwrap();
            let want: Vec<i64> = rows
                .iter()
                .rev()
                .filter(|r| f.matches(&r.entry))
                .map(|r| r.id)
                .collect();
            assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), want, "{f:?}");
            assert_eq!(got.len(), n, "{f:?}");
        }

        let by_model = store
            .sum_usage_grouped(&UsageFilter::default(), GroupBy::Model)
            .await
            .unwrap();
        let keys: Vec<(&str, u64)> = by_model
            .iter()
            .map(|g| (g.key.as_str(), g.sums.total_tokens))
            .collect();
        assert_eq!(
            keys,
            [
                ("openai/gpt-4o-mini", 520),
                ("openai/gpt-4o", 310),
                ("anthropic/claude-sonnet-4", 210)
            ]
        );
        for group_by in [
            GroupBy::Provider,
            GroupBy::Feature,
            GroupBy::Billable,
            GroupBy::Tenant,
            GroupBy::Day,
        ] {
            let got = store
                .sum_usage_grouped(&UsageFilter::default(), group_by)
                .await
                .unwrap();
            let mut want: Vec<(String, u64, u64)> = Vec::new();
            for r in &rows {
                let key = group_by.key_of(&r.entry);
                match want.iter_mut().find(|w| w.0 == key) {
                    Some(w) => {
                        w.1 += 1;
                        w.2 += r.entry.usage.total_tokens();
                    }
                    None => want.push((key, 1, r.entry.usage.total_tokens())),
                }
            }
            want.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
            let got: Vec<(String, u64, u64)> = got
                .into_iter()
                .map(|g| (g.key, g.sums.calls, g.sums.total_tokens))
                .collect();
            assert_eq!(got, want, "{group_by:?}");
        }
        let sums = store
            .sum_usage(&UsageFilter::default().in_period(&march()))
            .await
            .unwrap();
        assert_eq!((sums.calls, sums.cost), (4, dec("0.04")));
    })
    .await;
}

#[tokio::test]
async fn thresholds_are_claimed_once() {
    on_each_backend("thresholds", |store| async move {
        let b = Billable::new("user", 1);
        assert!(
            store
                .claim_threshold(&b, &march(), dec("80"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_threshold(&b, &march(), dec("80.0"))
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_threshold(&b, &march(), dec("90"))
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_threshold(&Billable::new("user", 2), &march(), dec("80"))
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn credits_deduct_hold_and_settle_exactly() {
    on_each_backend("credits", |store| async move {
        let b = Billable::new("team", "acme");
        let usd = |s: &str| Money::new(dec(s), Currency::USD);
        let empty = store.wallet(&b, Currency::USD).await.unwrap();
        assert_eq!((empty.balance, empty.held), (dec("0"), dec("0")));
        let outcome = store
            .deduct_credits(&b, usd("1"), "usage", Overdraft::Disallowed, at(1, 0))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            CreditOutcome::Insufficient {
                available: dec("0")
            }
        );

        store
            .add_credits(&b, usd("10"), "top-up", at(1, 1))
            .await
            .unwrap();
        let CreditOutcome::Done(tx) = store
            .deduct_credits(
                &b,
                usd("0.00000015"),
                "usage",
                Overdraft::Disallowed,
                at(1, 2),
            )
            .await
            .unwrap()
        else {
            panic!("10 covers it");
        };
        assert_eq!(
            (tx.direction, tx.balance_after),
            (Direction::Debit, dec("9.99999985"))
        );

        let CreditOutcome::Done(hold) = store
            .hold_credits(&b, usd("9"), Overdraft::Disallowed, at(1, 3))
            .await
            .unwrap()
        else {
            panic!("9 is available");
        };
        let w = store.wallet(&b, Currency::USD).await.unwrap();
        assert_eq!(w.available(), dec("0.99999985"));
        assert!(matches!(
            store
                .hold_credits(&b, usd("1"), Overdraft::Disallowed, at(2, 0))
                .await
                .unwrap(),
            CreditOutcome::Insufficient { .. }
        ));
        assert!(matches!(
            store
                .hold_credits(&b, usd("1"), Overdraft::Floor(dec("-1")), at(2, 0))
                .await
                .unwrap(),
            CreditOutcome::Done(_)
        ));
        let tx = store
            .settle_hold(hold, usd("8.5"), "usage", at(1, 4))
            .await
            .unwrap();
        assert_eq!(tx.balance_after, dec("1.49999985"));
        let err = store
            .settle_hold(hold, usd("1"), "usage", at(1, 5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::NotFound);
        assert!(!store.release_hold(hold).await.unwrap());
        assert_eq!(store.expire_credit_holds(at(2, 0)).await.unwrap(), 1);
        let w = store.wallet(&b, Currency::USD).await.unwrap();
        assert_eq!((w.balance, w.held), (dec("1.49999985"), dec("0")));

        let ledger = store
            .credit_transactions(&b, Currency::USD, Page::default())
            .await
            .unwrap();
        let amounts: Vec<String> = ledger.iter().map(|t| t.amount.amount.to_string()).collect();
        assert_eq!(amounts, ["8.5", "0.00000015", "10"]);
        let err = store
            .add_credits(&b, usd("-1"), "bad", at(3, 0))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid);
        // Another currency is another wallet.
        assert_eq!(
            store.wallet(&b, Currency::EUR).await.unwrap().balance,
            dec("0")
        );
    })
    .await;
}

#[tokio::test]
async fn overages_are_stored_once_and_synced_once() {
    on_each_backend("overages", |store| async move {
        let b = Billable::new("user", 3);
        let o = NewOverage {
            billable: b.clone(),
            usage_id: 42,
            period: march(),
            tokens: 1_500,
            amount: Money::new(dec("0.0030"), Currency::USD),
            created_at: at(9, 0),
        };
        let first = store.insert_overage(&o).await.unwrap();
        let again = store
            .insert_overage(&NewOverage {
                tokens: 9,
                ..o.clone()
            })
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(first.overage, o);
        let later = store
            .insert_overage(&NewOverage {
                usage_id: 43,
                created_at: at(9, 1),
                ..o.clone()
            })
            .await
            .unwrap();
        let pending = store.pending_overages(None, 10).await.unwrap();
        assert_eq!(
            pending.iter().map(|p| p.id).collect::<Vec<_>>(),
            [first.id, later.id]
        );
        assert!(
            store
                .mark_overage_synced(first.id, "mev_1", at(9, 2))
                .await
                .unwrap()
        );
        assert!(
            !store
                .mark_overage_synced(first.id, "mev_2", at(9, 3))
                .await
                .unwrap()
        );
        let pending = store.pending_overages(None, 10).await.unwrap();
        assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), [later.id]);
        let err = store
            .mark_overage_synced(9_999, "x", at(9, 4))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::NotFound);
    })
    .await;
}
