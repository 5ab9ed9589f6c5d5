//! Seeds the demo database: plans, subscriptions, the accounts' API keys, a wallet,
//! overages and four weeks of realistic, deterministic usage (same seed, same data relative to the start instant).

use ai_metering_core::keys::{NewApiKey, import_api_key};
use ai_metering_core::plan::{BillingMode, OveragePolicy, Plan, Subscription};
use ai_metering_core::store::{
    CreditStore, NewOverage, OverageStore, Overdraft, PlanStore, Recorded, SubscriptionStore,
    UsageEntry, UsageStore,
};
use ai_metering_core::{Metering, Money, TokenCounts, TokenUsage};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use super::accounts::{ACCOUNTS, Account};
use super::lcg::Lcg;
use crate::commands::CliStore;
use crate::error::{CliError, CliResult};

/// Models of the synthetic history, with weights.
const MODELS: &[((&str, &str), u64)] = &[
    (("openai", "gpt-4o-mini"), 55),
    (("openai", "gpt-4o"), 15),
    (("openai", "gpt-4.1-mini"), 10),
    (("anthropic", "claude-sonnet-4-5"), 12),
    (("anthropic", "claude-haiku-4-5"), 8),
];

/// Features of the synthetic history, with weights.
const FEATURES: &[(&str, u64)] = &[
    ("chat", 50),
    ("summarize", 20),
    ("search", 15),
    ("support-bot", 15),
];

/// Days of history.
pub const HISTORY_DAYS: i64 = 28;

/// The demo's plans.
pub fn plans() -> Vec<Plan> {
    vec![
        Plan::new("starter", "Starter").with_token_limit(50_000),
        Plan::new("pro", "Pro")
            .with_token_limit(2_000_000)
            .with_cost_limit(Decimal::from(50)),
        Plan::new("growth", "Growth")
            .with_token_limit(200_000)
            .with_overage(OveragePolicy::Charge, Some(Decimal::new(2, 3))),
        Plan::new("payg", "Pay as you go (credits)").with_token_limit(1_000_000),
    ]
}

/// What was seeded for one account.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The account.
    pub account: &'static Account,
    /// Tokens used in the current period.
    pub used: u64,
    /// The plan's token limit.
    pub limit: Option<u64>,
}

/// Seeds everything, relative to `now`.
///
/// # Errors
/// Store or pricing failures.
pub async fn seed(metering: &Metering<CliStore>, now: DateTime<Utc>) -> CliResult<Vec<Seeded>> {
    let store = metering.store();
    let plans = plans();
    for plan in &plans {
        store.upsert_plan(plan).await?;
    }
    let mut rng = Lcg::new(0x00A1_3E7E_2024);
    let mut out = Vec::new();
    for account in ACCOUNTS {
        let plan = plans
            .iter()
            .find(|p| p.slug == account.plan)
            .ok_or_else(|| CliError::failure(format!("demo plan {} is missing", account.plan)))?;
        out.push(seed_account(metering, account, plan, now, &mut rng).await?);
    }
    Ok(out)
}

async fn seed_account(
    metering: &Metering<CliStore>,
    account: &'static Account,
    plan: &Plan,
    now: DateTime<Utc>,
    rng: &mut Lcg,
) -> CliResult<Seeded> {
    let store = metering.store();
    let billable = account.billable();
    let mode = if account.credits {
        BillingMode::Credits
    } else {
        BillingMode::Plan
    };
    let sub = Subscription::new(billable.clone(), account.plan, now - Duration::days(90))
        .with_billing_mode(mode);
    store.insert_subscription(&sub).await?;
    // The account's published key, kept as an imported key like any other.
    import_api_key(
        store,
        account.key,
        &NewApiKey::new(billable.clone(), format!("demo key of {}", account.id)),
        now,
    )
    .await?;
    let entitlement = metering.entitlement(&billable, now).await?;
    let period = match entitlement.period {
        Some(p) => p,
        None => metering.config().period.period_at(now)?,
    };
    let window_start = now - Duration::days(HISTORY_DAYS);

    // History before the current period: 8 to 20 calls a day.
    let mut calls: Vec<(DateTime<Utc>, TokenUsage)> = Vec::new();
    let mut day = window_start;
    while day + Duration::days(1) <= period.start {
        let n = rng.range(8, 20);
        for i in 0..n {
            let secs = i64::try_from(86_400 * (i + 1) / (n + 1)).unwrap_or(0);
            calls.push((day + Duration::seconds(secs), random_usage(rng)?));
        }
        day += Duration::days(1);
    }

    // The current period: up to exactly the account's target.
    let limit = plan.token_limit.unwrap_or(1_000_000);
    let target = limit.saturating_mul(account.used_per_mille) / 1_000;
    let mut current: Vec<TokenUsage> = Vec::new();
    let mut sum = 0_u64;
    while sum.saturating_add(4_000) < target {
        let u = random_usage(rng)?;
        sum += u.total_tokens();
        current.push(u);
    }
    if target > sum {
        let rest = target - sum;
        let input = (rest * 3 / 4).max(1);
        current.push(TokenUsage::new(input, rest - input)?);
        sum = target;
    }
    let from = period.start.max(window_start);
    let span = (now - Duration::seconds(1) - from).num_seconds().max(1);
    let n = i64::try_from(current.len()).unwrap_or(i64::MAX);
    for (i, u) in current.into_iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        calls.push((from + Duration::seconds(span * (i + 1) / (n + 1)), u));
    }

    let mut entries = Vec::with_capacity(calls.len());
    for (at, usage) in calls {
        let ((provider, model), feature) = (
            *rng.pick(MODELS).unwrap_or(&("openai", "gpt-4o-mini")),
            *rng.pick(FEATURES).unwrap_or(&"chat"),
        );
        let cost = metering.catalog().cost(provider, model, &usage)?;
        let user =
            (account.kind == "team").then(|| format!("{}-member-{}", account.id, rng.range(1, 4)));
        entries.push(UsageEntry {
            billable: billable.clone(),
            user_id: user,
            tenant: None,
            provider: provider.to_owned(),
            model: model.to_owned(),
            feature: Some(feature.to_owned()),
            usage,
            cost,
            metadata: json!({"source": "demo seed"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            idempotency_key: None,
            occurred_at: at,
            estimated: false,
            time_zone: None,
        });
    }
    let mut recorded: Vec<Recorded> = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(250) {
        recorded.extend(store.insert_usage_batch(chunk).await?);
    }

    let currency = metering.catalog().currency();
    if let (Some(OveragePolicy::Charge), Some(price), Some(limit)) = (
        plan.overage_policy,
        plan.overage_price_per_1k_tokens,
        plan.token_limit,
    ) {
        let mut cumulative = 0_u64;
        for r in recorded
            .iter()
            .filter(|r| period.contains(r.record.entry.occurred_at))
        {
            let tokens = r.record.entry.usage.total_tokens();
            cumulative += tokens;
            let over = cumulative.saturating_sub(limit).min(tokens);
            if over == 0 {
                continue;
            }
            let amount = Decimal::from(over) * price / Decimal::ONE_THOUSAND;
            store
                .insert_overage(&NewOverage {
                    billable: billable.clone(),
                    usage_id: r.record.id,
                    period,
                    tokens: over,
                    amount: Money::new(amount, currency),
                    created_at: r.record.entry.occurred_at,
                })
                .await?;
        }
    }

    if account.credits {
        // Topped up before the history started; the history paid from it; $2 left.
        let spent: Decimal = recorded.iter().map(|r| r.record.entry.cost.total).sum();
        let top_up = Money::new(spent + Decimal::from(2), currency);
        store
            .add_credits(
                &billable,
                top_up,
                "top-up",
                window_start - Duration::hours(1),
            )
            .await?;
        if spent > Decimal::ZERO {
            store
                .deduct_credits(
                    &billable,
                    Money::new(spent, currency),
                    "usage",
                    Overdraft::Unlimited,
                    now - Duration::seconds(1),
                )
                .await?;
        }
    }
    Ok(Seeded {
        account,
        used: sum,
        limit: plan.token_limit,
    })
}

/// A plausible call: 200 to 2,500 input tokens (a third of calls half cached), 50 to 700
/// output tokens.
fn random_usage(rng: &mut Lcg) -> CliResult<TokenUsage> {
    let input = rng.range(200, 2_500);
    let cached = if rng.chance(30) { input / 2 } else { 0 };
    Ok(TokenUsage::try_from(TokenCounts {
        input,
        cached_input: cached,
        output: rng.range(50, 700),
        ..TokenCounts::default()
    })?)
}
