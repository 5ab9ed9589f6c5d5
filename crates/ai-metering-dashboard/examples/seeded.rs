//! Serves the dashboard over an in-memory store seeded with a month of plausible usage.
//!
//! ```text
//! cargo run -p ai-metering-dashboard --example seeded -- 8080
//! ```
//!
//! The port comes from the first argument or the `PORT` variable; `0` (the default) picks a
//! free one. The server listens on 127.0.0.1 only and prints the dashboard's address on its
//! first line, as `listening on http://127.0.0.1:PORT/ai-metering`. Everyone may see
//! everything (`DashboardConfig::allow_all`): never expose it.

use std::io::Write;

use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{
    CreditStore, MemoryStore, PlanStore, SubscriptionStore, UsageEntry, UsageStore,
};
use ai_metering_core::{Billable, Currency, Metering, Money, Tenant, TokenUsage};
use ai_metering_dashboard::DashboardConfig;
use chrono::Duration;
use rust_decimal::Decimal;

/// A tiny deterministic generator (a linear congruential one), so every run looks the same.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

async fn seed(metering: &Metering<MemoryStore>) -> Result<(), Box<dyn std::error::Error>> {
    let store = metering.store();
    store
        .upsert_plan(&Plan::new("starter", "Starter").with_token_limit(1_500_000))
        .await?;
    store
        .upsert_plan(&Plan::new("trial", "Trial").with_token_limit(1_000_000))
        .await?;
    store
        .upsert_plan(
            &Plan::new("team", "Team")
                .with_token_limit(6_000_000)
                .with_cost_limit(Decimal::from(15)),
        )
        .await?;
    let now = metering.now();
    let period = metering.config().period.period_at(now)?;
    let since = period.start - Duration::days(20);
    let billables = [
        (
            Billable::new("user", 17),
            "acme",
            Some("starter"),
            9_000_u64,
        ),
        (Billable::new("user", 23), "acme", Some("trial"), 16_000),
        (
            Billable::new("team", "research"),
            "acme",
            Some("team"),
            60_000,
        ),
        (
            Billable::new("team", "support"),
            "globex",
            Some("team"),
            35_000,
        ),
        (Billable::new("user", 99), "globex", None, 4_000),
    ];
    for (billable, _, plan, _) in &billables {
        if let Some(plan) = plan {
            store
                .insert_subscription(&Subscription::new(billable.clone(), *plan, since))
                .await?;
        }
    }
    store
        .add_credits(
            &Billable::new("team", "research"),
            Money::new(Decimal::from(25), Currency::USD),
            "top-up",
            since,
        )
        .await?;
    let models = [
        ("openai", "gpt-4o", "chat"),
        ("openai", "gpt-4o-mini", "summarise"),
        ("anthropic", "claude-sonnet-4", "code-review"),
        ("google", "gemini-2.5-flash", "search"),
    ];
    let mut rng = Lcg(7);
    let mut day = since;
    while day <= now {
        for (billable, tenant, _, daily) in &billables {
            for _ in 0..(1 + rng.next(3)) {
                let (provider, model, feature) = models[usize::try_from(rng.next(4))?];
                let input = daily / 2 + rng.next(*daily);
                let output = input / 4 + rng.next(input / 4 + 1);
                let usage = TokenUsage::new(input, output)?;
                let cost = metering.catalog().cost(provider, model, &usage)?;
                let mut metadata = serde_json::Map::new();
                metadata.insert(
                    "request".into(),
                    format!("req-{}", rng.next(100_000)).into(),
                );
                let at = day + Duration::minutes(i64::try_from(rng.next(600))?);
                if at > now {
                    continue;
                }
                store
                    .insert_usage(&UsageEntry {
                        billable: billable.clone(),
                        user_id: None,
                        tenant: Some(Tenant::new(*tenant)),
                        provider: provider.into(),
                        model: model.into(),
                        feature: Some(feature.into()),
                        usage,
                        cost,
                        metadata,
                        idempotency_key: None,
                        occurred_at: at,
                        estimated: false,
                        time_zone: None,
                    })
                    .await?;
            }
        }
        day += Duration::days(1);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
    {
        Some(p) => p.parse()?,
        None => 0,
    };
    let metering = Metering::new(MemoryStore::new());
    seed(&metering).await?;
    let config = DashboardConfig::allow_all();
    let prefix = config.prefix().to_owned();
    let app = axum::Router::new().nest(&prefix, ai_metering_dashboard::router(metering, config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}{prefix}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
