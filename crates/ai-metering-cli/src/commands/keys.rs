//! `ai-metering keys create|import|list|revoke`: API keys for a metering gateway.

use ai_metering_core::Tenant;
use ai_metering_core::keys::{
    ApiKey, ApiKeyStore, KEY_PREFIX, NewApiKey, create_api_key, import_api_key,
};
use serde_json::json;

use super::Ctx;
use crate::cli::{Format, KeysCommand, KeysCreateArgs, KeysListArgs, KeysRevokeArgs};
use crate::error::{CliError, CliResult};
use crate::output::text;

/// Runs a `keys` subcommand.
pub async fn run(ctx: &Ctx, command: &KeysCommand) -> CliResult {
    match command {
        KeysCommand::Create(args) => create(ctx, args).await,
        KeysCommand::Import(args) => import(ctx, args).await,
        KeysCommand::List(args) => list(ctx, args).await,
        KeysCommand::Revoke(args) => revoke(ctx, args).await,
    }
}

/// The key `args` describe.
fn new_key(args: &KeysCreateArgs) -> NewApiKey {
    let mut new = NewApiKey::new(args.billable.clone(), args.name.as_str())
        .with_models(args.models.iter().map(String::as_str));
    if let Some(tenant) = &args.tenant {
        new = new.with_tenant(Tenant::new(tenant.as_str()));
    }
    new
}

/// A refused key as a usage error, anything else as the store's.
fn key_error(e: ai_metering_core::store::StoreError) -> CliError {
    match e.kind() {
        ai_metering_core::store::StoreErrorKind::Invalid => CliError::usage(e.message().to_owned()),
        ai_metering_core::store::StoreErrorKind::Conflict => {
            CliError::failure("that key is already stored")
        }
        _ => e.into(),
    }
}

async fn create(ctx: &Ctx, args: &KeysCreateArgs) -> CliResult {
    ctx.out.no_csv("keys create")?;
    let metering = ctx.metering().await?;
    let issued = create_api_key(metering.store(), &new_key(args), metering.now())
        .await
        .map_err(key_error)?;
    if ctx.out.format() == Format::Json {
        return ctx
            .out
            .json(&json!({ "key": key_json(&issued.key), "secret": issued.secret() }));
    }
    ctx.out.success(&format!(
        "Created key {} ({}) for {}{}.",
        issued.key.id,
        issued.key.name,
        issued.key.billable,
        models_note(&issued.key)
    ));
    ctx.out
        .line("The key, shown this once (only its digest is stored):");
    // Bare on its own line, so that it can be copied or piped.
    ctx.out.line(issued.secret());
    Ok(())
}

async fn import(ctx: &Ctx, args: &KeysCreateArgs) -> CliResult {
    ctx.out.no_csv("keys import")?;
    // The key comes on standard input: a command line is visible to every user of the
    // machine (`ps`) and stays in shell histories.
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Paste the key, then press Enter: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::failure(format!("cannot read the key from standard input: {e}")))?;
    let presented = line.trim();
    if presented.is_empty() {
        return Err(CliError::usage(
            "no key on standard input: pipe it in, for example `printf '%s' \"$OLD_KEY\" | ai-metering keys import team:acme`",
        ));
    }
    let metering = ctx.metering().await?;
    let key = import_api_key(metering.store(), presented, &new_key(args), metering.now())
        .await
        .map_err(key_error)?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&json!({ "key": key_json(&key) }));
    }
    ctx.out.success(&format!(
        "Imported key {} ({}) for {}{}: it authenticates as written; only its digest is stored.",
        key.id,
        key.name,
        key.billable,
        models_note(&key)
    ));
    Ok(())
}

/// A key as the JSON outputs show it (the billable as `TYPE:ID`, as everywhere in the CLI).
fn key_json(key: &ApiKey) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "billable": key.billable.to_string(),
        "tenant": key.tenant.as_ref().map(|t| t.as_str()),
        "allowed_models": key.allowed_models,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    })
}

fn models_note(key: &ApiKey) -> String {
    if key.allowed_models.is_empty() {
        String::new()
    } else {
        format!(", models {}", key.allowed_models.join(", "))
    }
}

async fn list(ctx: &Ctx, args: &KeysListArgs) -> CliResult {
    let metering = ctx.metering().await?;
    let now = metering.now();
    let keys = metering.store().api_keys(args.billable.as_ref()).await?;
    if ctx.out.format() == Format::Json {
        return ctx.out.json(&keys.iter().map(key_json).collect::<Vec<_>>());
    }
    if keys.is_empty() && ctx.out.is_table() {
        ctx.out
            .line("No API keys. Create one with `ai-metering keys create TYPE:ID`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.name.clone(),
                k.billable.to_string(),
                k.tenant
                    .as_ref()
                    .map_or_else(String::new, |t| t.as_str().to_owned()),
                if k.allowed_models.is_empty() {
                    "all".to_owned()
                } else {
                    k.allowed_models.join(" ")
                },
                k.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                match k.revoked_at {
                    Some(at) if k.is_revoked_at(now) => {
                        format!("revoked {}", at.format("%Y-%m-%d %H:%M:%S"))
                    }
                    _ => "active".to_owned(),
                },
            ]
        })
        .collect();
    ctx.out.table(
        &[
            text("Id"),
            text("Name"),
            text("Billable"),
            text("Tenant"),
            text("Models"),
            text("Created"),
            text("Status"),
        ],
        &rows,
    )
}

/// The id in `given`: the id itself, or a whole `amk_<id>_<secret>` key.
fn key_id(given: &str) -> &str {
    let given = given.trim();
    given
        .strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.split('_').next())
        .unwrap_or(given)
}

async fn revoke(ctx: &Ctx, args: &KeysRevokeArgs) -> CliResult {
    ctx.out.no_csv("keys revoke")?;
    let metering = ctx.metering().await?;
    let id = key_id(&args.id).to_ascii_lowercase();
    let store = metering.store();
    let Some((key, _)) = store.api_key(&id).await? else {
        return Err(CliError::failure(format!(
            "no API key with id {id}: `ai-metering keys list` shows them"
        )));
    };
    let revoked = store.revoke_api_key(&id, metering.now()).await?;
    if ctx.out.format() == Format::Json {
        let key = store.api_key(&id).await?.map_or(key, |(k, _)| k);
        return ctx
            .out
            .json(&json!({ "revoked": revoked, "key": key_json(&key) }));
    }
    if revoked {
        ctx.out.success(&format!(
            "Revoked key {id} ({}) of {}.",
            key.name, key.billable
        ));
    } else {
        ctx.out.line(&format!("Key {id} was already revoked."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key_id;

    #[test]
    fn a_whole_key_names_its_id() {
        assert_eq!(key_id("0123456789abcdef"), "0123456789abcdef");
        assert_eq!(key_id(" amk_0123456789abcdef_ff00 "), "0123456789abcdef");
    }
}
