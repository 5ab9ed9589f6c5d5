//! The money guarantees through the gateway, with the defaults a client gets, on every
//! store (MemoryStore, SQLite, PostgreSQL): concurrent calls in credits mode never take a
//! wallet below zero, and concurrent calls without `max_tokens` on a token limit overshoot
//! it by at most one call. The built-in mock upstream answers, so usage is known exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use ai_metering_core::keys::{ApiKeyStore, NewApiKey, create_api_key};
use ai_metering_core::plan::{BillingMode, Plan, Subscription};
use ai_metering_core::store::{MemoryStore, Page, ReportStore, Store, UsageFilter};
use ai_metering_core::{Billable, Currency, Metering, Money};
use ai_metering_gateway::{Gateway, GatewayConfig};
use ai_metering_seaorm::SeaOrmStore;
use ai_metering_testkit::builders::fresh_name;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const CALLS: usize = 40;

async fn serve<S: Store + ApiKeyStore>(metering: Metering<S>) -> SocketAddr {
    let config = GatewayConfig::from_toml(
        "[gateway]\ndefault_upstream = \"m\"\n[gateway.upstreams.m]\nkind = \"mock\"\n",
    )
    .unwrap();
    let app = Gateway::new(metering, config).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `CALLS` concurrent chat completions with `body`; the statuses.
async fn fire(addr: SocketAddr, key: &str, body: Value) -> Vec<u16> {
    let client = reqwest::Client::new();
    let calls = (0..CALLS).map(|_| {
        let request = client
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    futures_util::future::join_all(calls).await
}

/// Subscribes a fresh billable to a fresh `plan` in `mode`; its key.
async fn customer<S: Store + ApiKeyStore>(
    metering: &Metering<S>,
    plan: Plan,
    mode: BillingMode,
) -> (Billable, String) {
    let store = metering.store();
    let who = Billable::new("team", fresh_name("gw"));
    store.upsert_plan(&plan).await.unwrap();
    store
        .insert_subscription(
            &Subscription::new(
                who.clone(),
                plan.slug.clone(),
                metering.now() - chrono::Duration::days(1),
            )
            .with_billing_mode(mode),
        )
        .await
        .unwrap();
    let key = create_api_key(store, &NewApiKey::new(who.clone(), "k"), metering.now())
        .await
        .unwrap();
    (who, key.secret().to_owned())
}

/// Credits mode, `max_tokens` given: the wallet pays for 10 calls of the 40; no call is
/// served that it cannot pay, and the wallet never goes below zero.
async fn credits_never_go_below_zero<S: Store + ApiKeyStore + ReportStore>(metering: Metering<S>) {
    let (who, key) = customer(
        &metering,
        Plan::new(fresh_name("credits"), "Credits"),
        BillingMode::Credits,
    )
    .await;
    // gpt-4o-mini: $0.15 / $0.60 per million; a call is 6 + 1,000 tokens, about $0.0006.
    let top_up = Money::new(Decimal::new(60, 4), Currency::USD);
    metering
        .store()
        .add_credits(&who, top_up, "top-up", metering.now())
        .await
        .unwrap();
    let addr = serve(metering.clone()).await;
    let statuses = fire(
        addr,
        &key,
        json!({"model": "gpt-4o-mini", "max_tokens": 1000,
               "messages": [{"role": "user", "content": "Hi there"}]}),
    )
    .await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let wallet = metering
        .store()
        .wallet_at(&who, Currency::USD, metering.now())
        .await
        .unwrap();
    assert!(wallet.balance >= Decimal::ZERO, "{wallet:?}");
    assert_eq!(
        wallet.held,
        Decimal::ZERO,
        "every hold was captured or released"
    );
    assert!((1..=10).contains(&served), "{served} served");
    let rows = metering
        .store()
        .query_usage(&UsageFilter::for_billable(who.clone()), Page::first(100))
        .await
        .unwrap();
    assert_eq!(rows.len(), served, "one row per served call");
    let spent: Decimal = rows.iter().map(|r| r.entry.cost.total).sum();
    assert_eq!(
        wallet.balance,
        top_up.amount - spent,
        "the wallet paid every row"
    );
}

/// A token limit, no `max_tokens` (the default client): calls the gateway cannot estimate
/// run one at a time, so the limit is overshot by at most one call.
async fn no_estimate_overshoots_by_at_most_one_call<S: Store + ApiKeyStore + ReportStore>(
    metering: Metering<S>,
) {
    // Each call: 6 prompt tokens + the mock's default reply of 16 = 22 tokens.
    let limit = 100;
    let (who, key) = customer(
        &metering,
        Plan::new(fresh_name("tokens"), "Tokens").with_token_limit(limit),
        BillingMode::Plan,
    )
    .await;
    let addr = serve(metering.clone()).await;
    let body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi there"}]});
    // Waves until the limit refuses everything.
    for _ in 0..10 {
        let statuses = fire(addr, &key, body.clone()).await;
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 429),
            "{statuses:?}"
        );
    }
    let sums = metering
        .store()
        .sum_usage(&UsageFilter::for_billable(who))
        .await
        .unwrap();
    assert!(
        sums.total_tokens >= limit - 22,
        "the limit was reached: {sums:?}"
    );
    assert!(
        sums.total_tokens <= limit + 22,
        "overshot by more than one call: {sums:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_memory_store() {
    credits_never_go_below_zero(Metering::new(MemoryStore::new())).await;
    no_estimate_overshoots_by_at_most_one_call(Metering::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("gw.db").display());
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let metering = Metering::new(store);
    credits_never_go_below_zero(metering.clone()).await;
    no_estimate_overshoots_by_at_most_one_call(metering).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres() {
    let Some(url) = ai_metering_test_env::postgres_url("gateway money path on PostgreSQL") else {
        return;
    };
    let store = SeaOrmStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let metering = Metering::new(store);
    credits_never_go_below_zero(metering.clone()).await;
    no_estimate_overshoots_by_at_most_one_call(metering).await;
}
