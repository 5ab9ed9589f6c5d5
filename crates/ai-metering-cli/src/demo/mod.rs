//! `ai-metering demo`: a fresh SQLite database with seeded plans, subscriptions, a wallet,
//! API keys and four weeks of usage, served by the gateway of `ai-metering serve` with its
//! built-in mock upstream: the same code path as a real deployment, without a provider.
//!
//! The demo uses the database every command uses (`--database-url`, the environment, the
//! file, or `ai-metering.db`), or the SQLite file given with `--db`; other commands then find
//! it with the same setting. It binds its port first, then recreates the database, but only
//! one it created itself (see [`database`]). The other settings (periods, time zone,
//! thresholds...) apply.

mod accounts;
mod database;
mod gateway;
mod lcg;
mod logging;
mod seed;

use ai_metering_gateway::Gateway;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::cli::DemoArgs;
use crate::commands::serve::ADMIN_TOKEN_ENV;
use crate::commands::{Ctx, redact_url};
use crate::config::Origin;
use crate::error::{CliError, CliResult};
use crate::output::{num, text, thousands};

/// Runs the demo until Ctrl-C.
pub async fn run(ctx: &Ctx, args: &DemoArgs) -> CliResult {
    logging::init(&ctx.config);
    // Before anything is bound or touched: a non-loopback address is refused.
    gateway::check_loopback(args.addr)?;
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
    let addr = listener.local_addr()?;
    let config = gateway::config(addr)?;
    let store = database::recreate(&url).await?;
    let metering = ctx.metering_over(store);
    let seeded = seed::seed(&metering, metering.now()).await?;
    // The dashboard's sign-in token: the environment's, else a new one for this run.
    let token = match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        _ => random_token()?,
    };
    // The first line says where to connect (tests read it to find the port).
    println!("ai-metering demo listening on http://{addr}");
    println!();
    println!("  Dashboard:   http://{addr}/ai-metering/login   (admin token: {token})");
    println!("  OpenAI API:  http://{addr}/v1   (base_url for the OpenAI SDKs)");
    println!("  Metrics:     http://{addr}/metrics");
    println!("  Database:    {}", redact_url(&url));
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

    let mut gateway = Gateway::new(metering, config).with_dashboard(&token);
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => gateway = gateway.with_metrics(handle),
        Err(e) => ctx.out.warn(&format!(
            "GET /metrics is off: no metrics recorder could be installed: {e}"
        )),
    }
    let app = gateway
        .router()
        .route("/", get(|| async { gateway::index() }));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| CliError::failure(format!("the server stopped: {e}")))?;
    Ok(())
}

/// A new admin token: 128 random bits in hex.
fn random_token() -> CliResult<String> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        CliError::failure(format!(
            "the operating system gave no random bytes for the admin token: {e}"
        ))
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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
