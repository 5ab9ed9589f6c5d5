//! `ai-metering plans list|create|sync`.
//!
//! `sync` upserts every plan of a TOML file by slug and says which were created, updated or
//! unchanged.
//!
//! ```toml
//! [[plans]]
//! slug = "starter"
//! name = "Starter"
//! token_limit = 100000
//! cost_limit = "5.00"                   # money: a string or an integer, never a float
//! overage_price_per_1k_tokens = "0.002"
//! overage_policy = "charge"             # block, charge or allow
//! active = true
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use ai_metering_core::plan::{OveragePolicy, Plan};
use ai_metering_core::store::{PlanStore, ReportStore};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::cli::{Format, PlanCreateArgs, PlanSyncArgs, PlansCommand};
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};

/// Runs a `plans` subcommand.
pub async fn run(ctx: &Ctx, command: &PlansCommand) -> CliResult {
    match command {
        PlansCommand::List => list(ctx).await,
        PlansCommand::Create(args) => create(ctx, args).await,
        PlansCommand::Sync(args) => sync(ctx, args).await,
    }
}

async fn list(ctx: &Ctx) -> CliResult {
    let metering = ctx.metering().await?;
    let plans = metering.store().plans().await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&plans);
    }
    if plans.is_empty() && ctx.out.is_table() {
        ctx.out
            .warn("No plans yet: create one with `ai-metering plans create` or `plans sync`.");
        return Ok(());
    }
    let currency = metering.catalog().currency();
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            vec![
                p.slug.clone(),
                p.name.clone(),
                p.token_limit.map_or_else(|| "Unlimited".into(), thousands),
                p.cost_limit
                    .map_or_else(|| "Unlimited".into(), |c| ctx.out.money(c, currency)),
                p.overage_policy.map_or_else(
                    || format!("{} (default)", ctx.config.overage_behavior),
                    |o| o.to_string(),
                ),
                p.overage_price_per_1k_tokens
                    .map_or_else(|| "-".into(), |c| ctx.out.money(c, currency)),
                if p.active { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    ctx.out.table(
        &[
            text("Slug"),
            text("Name"),
            num("Token Limit"),
            num("Cost Limit"),
            text("Overage"),
            num("Overage /1k"),
            text("Active"),
        ],
        &rows,
    )
}

async fn create(ctx: &Ctx, args: &PlanCreateArgs) -> CliResult {
    ctx.out.no_csv("plans create")?;
    let metering = ctx.metering().await?;
    let store = metering.store();
    if store.plan(&args.slug).await?.is_some() {
        return Err(CliError::failure(format!(
            "plan '{}' already exists; change plans with `ai-metering plans sync`",
            args.slug
        )));
    }
    let mut plan = Plan::new(
        &args.slug,
        args.name.clone().unwrap_or_else(|| args.slug.clone()),
    );
    plan.token_limit = args.token_limit;
    plan.cost_limit = args.cost_limit;
    plan.overage_price_per_1k_tokens = args.overage_price;
    plan.overage_policy = args
        .overage_policy
        .as_deref()
        .map(OveragePolicy::from_str)
        .transpose()?;
    plan.active = !args.inactive;
    plan.validate()?;
    store.upsert_plan(&plan).await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&plan);
    }
    ctx.out.success(&format!("Created plan '{}'.", plan.slug));
    Ok(())
}

/// A plan as written in a sync file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    slug: String,
    name: Option<String>,
    token_limit: Option<u64>,
    cost_limit: Option<MoneyText>,
    overage_price_per_1k_tokens: Option<MoneyText>,
    overage_policy: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    plans: Vec<PlanEntry>,
}

/// Money in a TOML file: a string ("9.99") or an integer, parsed exactly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MoneyText {
    Integer(i64),
    Text(String),
}

impl MoneyText {
    fn to_decimal(&self, slug: &str, field: &str) -> CliResult<Decimal> {
        match self {
            Self::Integer(i) => Ok(Decimal::from(*i)),
            Self::Text(t) => Decimal::from_str(t.trim()).map_err(|_| {
                CliError::failure(format!(
                    "plan {slug:?}: {field} = {t:?} is not a decimal amount"
                ))
            }),
        }
    }
}

/// Reads and checks a plans file.
fn read_plans(path: &Path) -> CliResult<Vec<Plan>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::failure(format!("cannot read {}: {e}", path.display())))?;
    let file: PlanFile = toml::from_str(&text).map_err(|e| {
        CliError::failure(format!(
            "invalid plans file {}: {} (money must be a string such as \"9.99\" or an integer)",
            path.display(),
            e.message()
        ))
    })?;
    let mut seen = BTreeSet::new();
    let mut plans = Vec::with_capacity(file.plans.len());
    for e in file.plans {
        if !seen.insert(e.slug.clone()) {
            return Err(CliError::failure(format!(
                "plan {:?} appears twice in {}",
                e.slug,
                path.display()
            )));
        }
        let mut plan = Plan::new(&e.slug, e.name.clone().unwrap_or_else(|| e.slug.clone()));
        plan.token_limit = e.token_limit;
        plan.cost_limit = e
            .cost_limit
            .as_ref()
            .map(|m| m.to_decimal(&e.slug, "cost_limit"))
            .transpose()?;
        plan.overage_price_per_1k_tokens = e
            .overage_price_per_1k_tokens
            .as_ref()
            .map(|m| m.to_decimal(&e.slug, "overage_price_per_1k_tokens"))
            .transpose()?;
        plan.overage_policy = e
            .overage_policy
            .as_deref()
            .map(OveragePolicy::from_str)
            .transpose()
            .map_err(|err| CliError::failure(format!("plan {:?}: {err}", e.slug)))?;
        plan.active = e.active;
        plan.validate()?;
        plans.push(plan);
    }
    if plans.is_empty() {
        return Err(CliError::failure(format!(
            "{} has no [[plans]] tables",
            path.display()
        )));
    }
    Ok(plans)
}

#[derive(Debug, Serialize)]
struct SyncRow {
    slug: String,
    action: &'static str,
}

async fn sync(ctx: &Ctx, args: &PlanSyncArgs) -> CliResult {
    let plans = read_plans(&args.file)?;
    let metering = ctx.metering().await?;
    let store = metering.store();
    let mut rows = Vec::with_capacity(plans.len());
    for plan in &plans {
        let action = match store.plan(&plan.slug).await? {
            None => "created",
            Some(existing) if existing == *plan => "unchanged",
            Some(_) => "updated",
        };
        if action != "unchanged" && !args.dry_run {
            store.upsert_plan(plan).await?;
        }
        rows.push(SyncRow {
            slug: plan.slug.clone(),
            action,
        });
    }
    if ctx.out.format() == Format::Json {
        return ctx
            .out
            .json(&serde_json::json!({"dry_run": args.dry_run, "plans": rows}));
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let action = if args.dry_run && r.action != "unchanged" {
                format!("would be {}", r.action)
            } else {
                r.action.to_owned()
            };
            vec![r.slug.clone(), action]
        })
        .collect();
    ctx.out.table(&[text("Slug"), text("Action")], &table)?;
    let changed = rows.iter().filter(|r| r.action != "unchanged").count();
    if args.dry_run {
        ctx.out
            .warn(&format!("DRY RUN: {changed} plan(s) would change."));
    } else {
        ctx.out.success(&format!(
            "Synced {} plan(s), {changed} changed.",
            rows.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> CliResult<Vec<Plan>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        std::fs::write(&path, text).unwrap();
        read_plans(&path)
    }

    #[test]
    fn plan_files_are_read_exactly() {
        let plans = read(
            r#"
            [[plans]]
            slug = "starter"
            name = "Starter"
            token_limit = 100000
            cost_limit = "5.10"
            overage_price_per_1k_tokens = 2
            overage_policy = "charge"

            [[plans]]
            slug = "legacy"
            active = false
            "#,
        )
        .unwrap();
        assert_eq!(plans[0].cost_limit, Some(Decimal::new(510, 2)));
        assert_eq!(plans[0].overage_price_per_1k_tokens, Some(Decimal::from(2)));
        assert_eq!(plans[0].overage_policy, Some(OveragePolicy::Charge));
        assert_eq!(plans[1].name, "legacy");
        assert!(!plans[1].active);
    }

    #[test]
    fn bad_plan_files_are_refused_with_the_reason() {
        let err = read("[[plans]]\nslug = \"a\"\ncost_limit = 5.1\n").unwrap_err();
        assert!(
            err.to_string().contains("never") || err.to_string().contains("string"),
            "{err}"
        );
        let err = read("[[plans]]\nslug = \"a\"\n[[plans]]\nslug = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let err = read("[[plans]]\nslug = \"a\"\nlimit = 5\n").unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        let err = read("[[plans]]\nslug = \"a\"\noverage_policy = \"refund\"\n").unwrap_err();
        assert!(err.to_string().contains("block, charge, allow"), "{err}");
        let err = read("[[plans]]\nslug = \"a\"\ncost_limit = \"-1\"\n").unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        assert!(read("").unwrap_err().to_string().contains("no [[plans]]"));
    }
}
