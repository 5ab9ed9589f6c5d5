//! `ai-metering migrate`: create or update the database tables.

use serde_json::json;

use super::{Ctx, redact_url};
use crate::cli::Format;
use crate::error::CliResult;

/// Runs the command.
pub async fn run(ctx: &Ctx) -> CliResult {
    ctx.out.no_csv("migrate")?;
    let store = ctx.connect().await?;
    let up_to_date = store.is_migrated().await?;
    if !up_to_date {
        store.migrate().await?;
    }
    let url = redact_url(&ctx.config.database_url);
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&json!({
            "database": url,
            "applied": !up_to_date,
        }));
    }
    if up_to_date {
        ctx.out
            .line(&format!("Nothing to migrate: {url} is up to date."));
    } else {
        ctx.out.success(&format!("Migrated {url}."));
    }
    Ok(())
}
