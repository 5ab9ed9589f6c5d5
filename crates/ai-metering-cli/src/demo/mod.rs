//! `ai-metering demo`: a fresh SQLite database with seeded plans, subscriptions, a wallet
//! and four weeks of usage, served with the dashboard and an OpenAI-compatible API.
//!
//! The demo uses the database every command uses (`--database-url`, the environment, the
//! file, or `ai-metering.db`), or the SQLite file given with `--db`; other commands then find
//! it with the same setting. It binds its port first, then recreates the database, but only
//! one it created itself (see [`database`]). The other settings (periods, time zone,
//! thresholds...) apply.

mod accounts;
mod database;
mod lcg;
mod logging;
mod mock_model;
mod openai;
mod seed;
mod server;
mod stream;

use tokio::net::TcpListener;

use crate::cli::DemoArgs;
use crate::commands::{Ctx, redact_url};
use crate::config::Origin;
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};

/// Runs the demo until Ctrl-C.
pub async fn run(ctx: &Ctx, args: &DemoArgs) -> CliResult {
    logging::init(&ctx.config);
    // Before anything is bound or touched: a non-loopback address is refused.
    let dashboard = server::dashboard_config(args.addr)?;
    let url = match &args.db {
        Some(_)
            if matches!(
                ctx.config.settings.get("database.url"),
                Some((_, Origin::Flag(_)))
            ) =>
        {
            return Err(CliError::usage(
                "give the demo's database with --db FILE or --database-url URL, not both",
            ));
        }
        Some(db) => format!("sqlite://{}?mode=rwc", db.display()),
        None => ctx.config.database_url.clone(),
    };
    // Bind first: a second demo fails here, before it touches the first one's database.
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| CliError::failure(format!("cannot listen on {}: {e}", args.addr)))?;
    let store = database::recreate(&url).await?;
    let metering = ctx.metering_over(store);
    let seeded = seed::seed(&metering, metering.now()).await?;
    let addr = listener.local_addr()?;
    // The first line says where to connect (tests read it to find the port).
    println!("ai-metering demo listening on http://{addr}");
    println!();
    println!("  Dashboard:  http://{addr}/ai-metering");
    println!("  OpenAI API: http://{addr}/v1   (base_url for the OpenAI SDKs)");
    println!("  Database:   {}", redact_url(&url));
    if args.db.is_some() {
        println!("  Other commands: ai-metering --database-url '{url}' report");
    }
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
pub(crate) async fn shutdown_signal() {
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
