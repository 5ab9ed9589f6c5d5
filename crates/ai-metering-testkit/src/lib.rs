//! Test support for ai-metering: the **store conformance suite** and builders of test data.
//!
//! Every storage backend must behave the same, down to the details that tests of a single
//! backend never notice (a decimal read back through a float, a `SUM` decoded as another type,
//! a reservation that is not atomic under load). This crate holds one suite of behaviour
//! tests, [`cases`], written against the storage traits only ([`ConformanceStore`]); a store crate runs all of it with one macro call in a test file:
//!
//! ```
//! // crates/ai-metering-testkit/tests/memory_store.rs
//! use ai_metering_core::store::MemoryStore;
//!
//! ai_metering_testkit::store_conformance_tests!(async { MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! A database store makes a connected, migrated store in the expression, such as
//! `async { SomeStore::connect(&url).await.unwrap() }`.
//!
//! The macro expands to one `#[test]` per case (so a failure names its case), each running on
//! a multi-threaded tokio runtime with 4 workers and a fresh store made by the given `async`
//! expression. Cases only touch billables, plans and tenants with fresh, random names
//! ([`builders::fresh_billable`]), so the suite also runs against a persistent database that
//! keeps the rows of earlier runs, and cases may run in parallel on one database. The two
//! operations that are global rather than per billable (`expire_reservations` and
//! `pending_overages`) are tested with instants in 1989 and 1990, long before any other case's,
//! so that those cases see only their own rows.
//!
//! The suite needs nothing from the store crate but the store: the runtime comes from here,
//! so the store crate does not need tokio's macros.
#![warn(missing_docs)]
// A test-support crate reports failures by panicking: unwrap is its assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod builders;
pub mod cases;
pub mod faulty;
pub mod money_path;

use std::future::Future;

use ai_metering_core::store::{AdminStore, OverageStore, ReportStore, Store};

/// What the conformance suite runs on: the request path ([`Store`]) and the reporting,
/// administration and overage traits the cases read their results back with. Implemented
/// for every type that implements them all.
pub trait ConformanceStore: Store + ReportStore + AdminStore + OverageStore {}

impl<T: Store + ReportStore + AdminStore + OverageStore> ConformanceStore for T {}

/// Runs `future` to completion on a new multi-threaded tokio runtime with 4 worker threads
/// (the runtime every conformance case runs on).
///
/// # Panics
/// When the runtime cannot be built, or when `future` panics.
///
/// ```
/// assert_eq!(ai_metering_testkit::block_on(async { 1 + 1 }), 2);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance suite")
        .block_on(future)
}

/// Runs the whole store conformance suite: one `#[test]` per case of [`cases`], inside a
/// module `store_conformance`.
///
/// The argument is an expression of a future that makes a fresh store, evaluated once per
/// case; the store's type must implement [`Store`](ai_metering_core::store::Store),
/// [`AuditStore`](ai_metering_core::store::AuditStore) and
/// [`RetentionStore`](ai_metering_core::store::RetentionStore). Names
/// imported in the calling module are visible to it. To run the suite on several stores in
/// one file, call the macro once inside each of several modules.
///
/// ```
/// use ai_metering_core::store::MemoryStore;
/// ai_metering_testkit::store_conformance_tests!(async { MemoryStore::new() });
/// # fn main() {}
/// ```
///
/// For a store that is not always available (a database server named by an environment
/// variable), write `optional:` before a future of `Option<store>`; each case passes without
/// running when it yields `None`, so the maker should print why:
///
/// ```
/// use ai_metering_core::store::MemoryStore;
/// ai_metering_testkit::store_conformance_tests!(optional: async {
///     std::env::var("NO_SUCH_VAR").ok().map(|_| MemoryStore::new())
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    (optional: $make_store:expr $(,)?) => {
        $crate::store_conformance_tests! { @cases $make_store }
    };
    ($make_store:expr $(,)?) => {
        $crate::store_conformance_tests! {
            @cases async { ::std::option::Option::Some($make_store.await) }
        }
    };
    (@cases $make_store:expr) => {
        $crate::__store_conformance_cases! {
            $make_store;
            // Plans, subscriptions, overrides.
            plans_upsert_get_and_list,
            subscription_current_follows_start_end_and_grace,
            subscription_latest_start_wins,
            subscription_update_replaces_and_unknown_is_not_found,
            subscription_replace_is_a_compare_and_swap,
            subscription_found_by_meta,
            expired_subscriptions_are_claimed_once,
            limit_override_window_is_half_open_and_latest_wins,
            // Usage rows.
            usage_rows_round_trip_every_field,
            usage_query_by_each_filter_field,
            usage_search_is_case_insensitive,
            usage_pages_are_newest_first,
            usage_sums_add_every_field,
            usage_grouped_sums_for_every_group_by,
            usage_batch_larger_than_one_statement_is_stored_whole,
            // Idempotency.
            idempotent_insert_returns_the_first_row,
            idempotent_insert_under_concurrency,
            idempotency_keys_are_per_billable,
            batch_insert_is_idempotent_within_and_across_batches,
            // Periods, counters, reservations.
            period_boundaries_are_half_open,
            counters_are_seeded_from_existing_rows,
            inserts_update_every_counter_containing_them,
            reserve_fits_or_rejects_naming_the_limit,
            recorded_usage_counts_against_limits,
            expired_reservations_do_not_count,
            expire_reservations_returns_the_count,
            settle_records_the_row_and_replaces_the_reservation,
            settle_is_idempotent,
            settle_after_release_or_expiry_still_records,
            release_is_true_once,
            claim_threshold_once_under_concurrency,
            concurrent_reservations_respect_a_token_limit,
            concurrent_reservations_respect_a_cost_limit,
            // The money path: one-step reservations and settlements.
            reserve_claims_the_idempotency_key,
            exclusive_reservations_are_one_at_a_time,
            replacing_a_reservation_grows_it_atomically,
            reserve_holds_credits_in_the_same_step,
            settle_captures_the_hold_and_records_overage,
            settle_of_a_recorded_key_only_gives_back,
            settle_reports_the_wallet_with_the_holds_still_in_flight,
            reserve_reports_the_wallet_with_its_hold,
            release_and_expiry_give_the_hold_back,
            concurrent_overage_sums_to_the_excess,
            concurrent_same_key_claims_once,
            holds_of_reservations_and_plain_holds_add_up,
            // Credits.
            credits_chain_balance_after,
            top_ups_keep_their_metadata,
            insufficient_credits_change_nothing,
            overdraft_floor_and_unlimited,
            holds_reduce_the_available_balance,
            expired_holds_give_their_amount_back,
            ledger_sums_to_the_balance,
            wallets_are_per_currency_and_amounts_positive,
            concurrent_deductions_never_overspend,
            concurrent_holds_never_overspend,
            // Credit grants.
            grants_are_stored_and_listed_in_burn_order,
            grants_are_validated,
            debits_burn_grants_in_priority_and_expiry_order,
            expired_grants_stop_counting,
            holds_draw_from_grants_and_captures_name_them,
            reservations_hold_and_settle_through_grants,
            a_growing_reservation_moves_its_hold_on_the_grants,
            rollover_tops_up_and_caps_grants,
            concurrent_holds_drawing_from_grants_never_overspend,
            concurrent_reservations_drawing_from_grants_never_overspend,
            // Overages.
            overage_once_per_usage_row,
            pending_overages_oldest_first_and_synced_once,
            pending_overages_page_after_a_cursor,
            // The reconciliation's reads.
            audit_snapshot_shows_the_money_path,
            // Retention and privacy.
            retention_delete_user_keeps_counters_and_keys_consistent,
            retention_anonymize_and_prune_by_user_and_date,
            retention_anonymize_then_delete_a_billable,
            // API keys.
            api_keys_authenticate_only_their_secret,
            api_keys_are_listed_and_revoked,
            imported_api_keys_authenticate_as_written,
            concurrent_revocations_revoke_once,
        }
    };
}

/// Implementation detail of [`store_conformance_tests!`] and
/// [`money_path_tests!`](crate::money_path_tests): a module of one `#[test]` per case, each
/// running `$run(store)` (with `$wrap` applied to the store) on a fresh store.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    ($module:ident, $path:path, $wrap:path; $make_store:expr; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[test]
                fn $case() {
                    $crate::block_on(async {
                        // `None` means the store is not available here; its maker said why.
                        let ::std::option::Option::Some(store) = $make_store.await else {
                            return;
                        };
                        {
                            use $path as cases;
                            cases::$case($wrap(store)).await;
                        }
                    });
                }
            )*
        }
    };
}

/// Implementation detail of [`store_conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($make_store:expr; $($case:ident),* $(,)?) => {
        $crate::__store_cases! {
            store_conformance, $crate::cases, ::std::sync::Arc::new;
            $make_store; $($case),*
        }
    };
}
