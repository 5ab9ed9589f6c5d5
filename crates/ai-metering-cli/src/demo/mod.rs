//! `ai-metering demo`: a fresh SQLite database with seeded plans, subscriptions, a wallet
//! and four weeks of usage, served with the dashboard and an OpenAI-compatible API.
//!
//! The demo always uses its own database file (`--db`, recreated on every run), never the
//! configured `database.url`; the other settings (periods, time zone, thresholds...) apply.

mod accounts;
mod lcg;
mod logging;
mod mock_model;
mod openai;
mod seed;
mod server;
mod stream;

use std::path::Path;

use tokio::net::TcpListener;

use crate::cli::DemoArgs;
use crate::commands::{Ctx, connect};
use crate::config::Origin;
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};

/// Runs the demo until Ctrl-C.
pub async fn run(ctx: &Ctx, args: &DemoArgs) -> CliResult {
    logging::init(&ctx.config);
    // Before anything is deleted or bound: a non-loopback address is refused.
    let dashboard = server::dashboard_config(args.addr)?;
    remove_database(&args.db)?;
    let url = format!("sqlite://{}?mode=rwc", args.db.display());
    let store = connect(&url).await?;
    store.migrate().await?;
    let metering = ctx.metering_over(store);
    let seeded = seed::seed(&metering, metering.now()).await?;

    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| CliError::failure(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = listener.local_addr()?;
    // The first line says where to connect (tests read it to find the port).
    println!("ai-metering demo listening on http://{addr}");
    println!();
    println!("  Dashboard:  http://{addr}/ai-metering");
    println!("  OpenAI API: http://{addr}/v1   (base_url for the OpenAI SDKs)");
    println!("  Database:   {}", args.db.display());
    println!();
    let rows: Vec<Vec<String>> = seeded
        .iter()
        .map(|s| {
            vec![
                s.account.key.to_owned(),
                s.account.billable().to_string(),
                s.account.plan.to_owned(),
                match s.limit {
                    Some(limit) => format!("{} / {}", thousands(s.used), thousands(limit)),
                    None => thousands(s.used),
                },
                s.account.story.to_owned(),
            ]
        })
        .collect();
    ctx.out.table(
        &[
            text("API key"),
            text("Billable"),
            text("Plan"),
            num("Tokens this period"),
            text("Situation"),
        ],
        &rows,
    )?;
    println!();
    println!("Try it:");
    println!(
        "  curl http://{addr}/v1/chat/completions -H 'Authorization: Bearer sk-demo-alice' \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"model\": \"gpt-4o-mini\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}' -i"
    );
    println!("Press Ctrl-C to stop.");

    let cache_ttl = match ctx.config.settings.get("performance.cache_ttl") {
        Some((_, origin)) if *origin != Origin::Default => Some(if ctx.config.cache_limit_checks {
            chrono::Duration::seconds(i64::try_from(ctx.config.cache_ttl).unwrap_or(i64::MAX))
        } else {
            chrono::Duration::zero()
        }),
        _ if !ctx.config.cache_limit_checks => Some(chrono::Duration::zero()),
        _ => None,
    };
    let app = server::app(metering, cache_ttl, dashboard);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| CliError::failure(format!("the server stopped: {e}")))?;
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix (containers, process managers).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Deletes the demo database and its WAL files, so every run starts fresh.
fn remove_database(db: &Path) -> CliResult {
    let mut paths = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        paths.push(name.into());
    }
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CliError::failure(format!(
                    "cannot remove the old demo database {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}
