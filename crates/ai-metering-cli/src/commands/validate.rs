//! `ai-metering validate`: configuration, database connectivity and data integrity.
//!
//! Exits 1 when an error is found (warnings do not fail). A database that cannot be reached
//! is reported as an error, never a crash, and the integrity checks are then skipped with a
//! note.

use std::collections::BTreeSet;

use ai_metering_core::store::{OverageStore, ReportStore};
use ai_metering_seaorm::entity::subscription;
use sea_orm::EntityTrait;
use serde::Serialize;

use super::{Ctx, connect, redact_url};
use crate::config::{Config, ConfigError};
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// What validation found.
#[derive(Debug, Default, Serialize)]
pub struct Findings {
    /// Problems that make the command fail.
    pub errors: Vec<String>,
    /// Things worth a look.
    pub warnings: Vec<String>,
    /// What was checked and passed.
    pub passed: Vec<String>,
}

/// Runs the command with the configuration, or the reason it could not be loaded.
pub async fn run(config: Result<Config, ConfigError>, out: Output) -> CliResult {
    out.no_csv("validate")?;
    let mut f = Findings::default();
    match config {
        Err(e) => {
            f.errors.push(e.to_string());
            f.warnings
                .push("database checks skipped: the configuration is invalid".into());
        }
        Ok(config) => {
            check_config(&config, &mut f);
            check_database(&Ctx { config, out }, &mut f).await;
        }
    }
    print(&out, &f)?;
    if f.errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "validation failed with {} error(s)",
            f.errors.len()
        )))
    }
}

fn check_config(config: &Config, f: &mut Findings) {
    f.passed.push("configuration values are valid".into());
    for (key, reason) in config.inert_settings() {
        f.warnings
            .push(format!("{key} is set but has no effect: {reason}"));
    }
    check_gateway(config, f);
    let catalog = ai_metering_core::pricing::PriceCatalog::builtin();
    let provider = config.default_provider.as_str();
    if catalog.iter().any(|(p, _, _)| p == provider) {
        f.passed.push(format!(
            "default provider {:?} has prices",
            config.default_provider
        ));
    } else {
        f.errors.push(format!(
            "default_provider {:?} has no prices in the catalog",
            config.default_provider
        ));
    }
}

/// The file's `[gateway]` table, when it has one: errors with their line and field, and the
/// upstream keys missing from the environment.
fn check_gateway(config: &Config, f: &mut Findings) {
    let Some((path, text)) = &config.file else {
        return;
    };
    let has_table = text
        .parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key(crate::config::GATEWAY_TABLE));
    if !has_table {
        return;
    }
    match ai_metering_gateway::GatewayConfig::from_toml(text) {
        Err(e) => f.errors.push(format!("{}: {e}", path.display())),
        Ok(gateway) => {
            f.passed.push(format!(
                "gateway: {} upstream(s), {} model route(s), listening on {}",
                gateway.upstreams.len(),
                gateway.models.len(),
                gateway.listen
            ));
            for missing in gateway.missing_keys(|name| std::env::var(name).ok()) {
                f.warnings.push(format!("{}: {missing}", path.display()));
            }
        }
    }
}

async fn check_database(ctx: &Ctx, f: &mut Findings) {
    let url = redact_url(&ctx.config.database_url);
    // Checking must not create the file it checks.
    if super::sqlite_file(&ctx.config.database_url).is_some_and(|p| !p.exists()) {
        f.errors
            .push(super::not_migrated(&ctx.config.database_url, false));
        return;
    }
    let store = match connect(&ctx.config.database_url).await {
        Ok(store) => store,
        Err(e) => {
            f.errors.push(format!("database connection failed: {e}"));
            f.warnings
                .push("data integrity checks skipped: no database connection".into());
            return;
        }
    };
    match store.is_migrated().await {
        Ok(true) => f
            .passed
            .push(format!("database {url} is reachable and migrated")),
        Ok(false) => {
            f.errors
                .push(super::not_migrated(&ctx.config.database_url, true));
            return;
        }
        Err(e) => {
            f.errors.push(format!("database check failed: {e}"));
            return;
        }
    }
    if let Err(e) = check_integrity(ctx, &store, f).await {
        f.errors.push(format!("data integrity checks failed: {e}"));
    }
}

async fn check_integrity(ctx: &Ctx, store: &super::CliStore, f: &mut Findings) -> CliResult {
    let plans = store.plans().await?;
    for plan in &plans {
        if let Err(e) = plan.validate() {
            f.errors.push(format!("plan {:?}: {e}", plan.slug));
        }
    }
    let slugs: BTreeSet<&str> = plans.iter().map(|p| p.slug.as_str()).collect();
    let subs = subscription::Entity::find()
        .all(store.connection())
        .await
        .map_err(|e| CliError::failure(format!("cannot read subscriptions: {e}")))?;
    let (mut credits_without_plan, mut plan_without_plan, mut missing_plan) = (0, 0, 0);
    for s in &subs {
        match &s.plan_slug {
            None if s.billing_mode == "credits" => credits_without_plan += 1,
            None => plan_without_plan += 1,
            Some(slug) if !slugs.contains(slug.as_str()) => missing_plan += 1,
            Some(_) => {}
        }
    }
    if credits_without_plan > 0 {
        f.errors.push(format!(
            "{credits_without_plan} credits-mode subscription(s) have no plan (credits mode needs a plan)"
        ));
    }
    if missing_plan > 0 {
        f.errors.push(format!(
            "{missing_plan} subscription(s) name a plan that does not exist"
        ));
    }
    if plan_without_plan > 0 {
        f.warnings.push(format!(
            "{plan_without_plan} plan-mode subscription(s) have no plan (no limits apply)"
        ));
    }
    f.passed.push(format!(
        "{} plan(s) and {} subscription(s) checked",
        plans.len(),
        subs.len()
    ));
    let pending = store.pending_overages(None, 1).await?;
    if !pending.is_empty() && ctx.config.billing_driver == "none" {
        f.warnings.push(
            "overages are pending but no billing driver is configured (billing.driver)".into(),
        );
    }
    Ok(())
}

fn print(out: &Output, f: &Findings) -> CliResult {
    if !out.is_table() {
        return out.json(&serde_json::json!({
            "ok": f.errors.is_empty(),
            "errors": f.errors,
            "warnings": f.warnings,
            "passed": f.passed,
        }));
    }
    for p in &f.passed {
        out.line(&format!("✓ {p}"));
    }
    if !f.errors.is_empty() {
        out.line("");
        out.heading("Errors found:");
        for e in &f.errors {
            out.line(&format!("  ✗ {e}"));
        }
    }
    if !f.warnings.is_empty() {
        out.line("");
        out.heading("Warnings:");
        for w in &f.warnings {
            out.warn(&format!("  ⚠ {w}"));
        }
    }
    if f.errors.is_empty() {
        out.line("");
        out.success("✓ All validations passed!");
    }
    Ok(())
}
