//! `ai-metering config`: the effective configuration and where each value comes from.

use serde_json::{Map, Value, json};

use super::{Ctx, redact_url};
use crate::cli::Format;
use crate::config::keys::KEYS;
use crate::error::CliResult;
use crate::output::text;

/// Runs the command.
pub fn run(ctx: &Ctx) -> CliResult {
    let mut rows = Vec::new();
    let mut json = Map::new();
    for key in KEYS {
        let Some((value, origin)) = ctx.config.settings.get(key.name) else {
            continue;
        };
        let value = match key.name {
            "database.url" => redact_url(value),
            "billing.stripe.secret" if !value.is_empty() => "*** (set)".to_owned(),
            _ => value.clone(),
        };
        let env = key.env.join(", ");
        let note = key
            .inert
            .map_or(String::new(), |r| format!("no effect: {r}"));
        json.insert(
            key.name.to_owned(),
            json!({"value": value, "source": origin.to_string(), "env": key.env, "inert": key.inert.is_some()}),
        );
        rows.push(vec![
            key.name.to_owned(),
            value,
            origin.to_string(),
            env,
            note,
        ]);
    }
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&Value::Object(json));
    }
    ctx.out.table(
        &[
            text("Key"),
            text("Value"),
            text("Source"),
            text("Environment"),
            text("Note"),
        ],
        &rows,
    )
}
