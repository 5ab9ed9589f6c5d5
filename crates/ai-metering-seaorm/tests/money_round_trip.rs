//! Money is stored exactly: one token of gpt-4o-mini input ($0.00000015), sub-nano costs
//! and very large amounts read back and add up exactly, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::store::{CreditStore, Page, ReportStore, UsageFilter, UsageStore};
use ai_metering_core::{Billable, Currency, Money};
use common::{at, dec, entry, on_each_backend};

#[tokio::test]
async fn one_token_of_gpt_4o_mini_reads_back_exactly() {
    on_each_backend("one_token_round_trip", |store| async move {
        let b = Billable::new("user", 1);
        let mut e = entry(&b, 1, 0, dec("0.00000015"), at(2, 10));
        e.idempotency_key = Some("one-token".into());
        let id = store.insert_usage(&e).await.unwrap().record.id;

        let back = store
            .usage_by_idempotency_key(&b, "one-token")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.id, id);
        assert_eq!(back.entry, e);
        // Same digits, not merely an equal value.
        assert_eq!(back.entry.cost.total.to_string(), "0.00000015");
        assert_eq!(back.entry.cost.input.to_string(), "0.00000015");

        let sums = store
            .sum_usage(&UsageFilter::for_billable(b.clone()))
            .await
            .unwrap();
        assert_eq!(sums.cost, dec("0.00000015"));
        assert_eq!(sums.input_tokens, 1);
    })
    .await;
}

#[tokio::test]
async fn large_and_sub_nano_amounts_round_trip_and_sum_exactly() {
    on_each_backend("large_amount_round_trip", |store| async move {
        let b = Billable::new("team", "acme");
        // 28 significant digits: an f64 would keep about 16 of them.
        let large = dec("12345678901234.123456789012");
        // 37.5 nano-dollars: no exact nano-unit form.
        let sub_nano = dec("0.0000000375");
        let plain = dec("2.5");
        for (i, amount) in [large, sub_nano, plain].into_iter().enumerate() {
            store
                .insert_usage(&entry(&b, 10, 5, amount, at(3, i as u32)))
                .await
                .unwrap();
        }
        let rows = store
            .query_usage(&UsageFilter::for_billable(b.clone()), Page::first(10))
            .await
            .unwrap();
        let mut costs: Vec<String> = rows
            .iter()
            .map(|r| r.entry.cost.total.to_string())
            .collect();
        costs.sort();
        assert_eq!(
            costs,
            ["0.0000000375", "12345678901234.123456789012", "2.5"]
        );

        // 28 significant digits is what a Decimal holds: the large sum stays exact.
        let mixed = store
            .sum_usage(&UsageFilter::for_billable(b.clone()).with_provider("openai"))
            .await
            .unwrap();
        assert_eq!((mixed.calls, mixed.total_tokens), (3, 45));
        let exact = Billable::new("team", "exact");
        for (i, amount) in ["12345678901234.123456789012", "2.5"]
            .into_iter()
            .enumerate()
        {
            store
                .insert_usage(&entry(&exact, 1, 0, dec(amount), at(5, i as u32)))
                .await
                .unwrap();
        }
        let sums = store
            .sum_usage(&UsageFilter::for_billable(exact.clone()))
            .await
            .unwrap();
        assert_eq!(sums.cost.to_string(), "12345678901236.623456789012");
        // Rows with and without a nano-unit form add up exactly.
        let mixed_b = Billable::new("team", "mixed");
        for (i, amount) in ["1234567890.123456789", "0.0000000375", "0.00000015"]
            .into_iter()
            .enumerate()
        {
            store
                .insert_usage(&entry(&mixed_b, 1, 0, dec(amount), at(6, i as u32)))
                .await
                .unwrap();
        }
        let sums = store
            .sum_usage(&UsageFilter::for_billable(mixed_b.clone()))
            .await
            .unwrap();
        assert_eq!(sums.cost.to_string(), "1234567890.1234569765");

        let top_up = Money::new(large, Currency::USD);
        let tx = store
            .add_credits(&b, top_up, "top-up", at(4, 0))
            .await
            .unwrap();
        assert_eq!(tx.balance_after, large);
        let wallet = store.wallet(&b, Currency::USD).await.unwrap();
        assert_eq!(wallet.balance.to_string(), "12345678901234.123456789012");
    })
    .await;
}
