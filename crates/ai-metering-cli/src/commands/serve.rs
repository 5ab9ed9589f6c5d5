//! `ai-metering serve`: the metering gateway of the configuration file's `[gateway]` table.

use ai_metering_gateway::{Gateway, GatewayConfig};

use super::Ctx;
use crate::cli::ServeArgs;
use crate::config::GATEWAY_TABLE;
use crate::error::{CliError, CliResult};

/// The environment variable holding the dashboard's admin token.
pub const ADMIN_TOKEN_ENV: &str = "AI_METERING_ADMIN_TOKEN";

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run(ctx: &Ctx, args: &ServeArgs) -> CliResult {
    let Some((path, text)) = &ctx.config.file else {
        return Err(CliError::usage(format!(
            "no configuration file: `serve` reads its upstreams and model routes from the \
             [{GATEWAY_TABLE}] table of ai-metering.toml (or the file given to --config)"
        )));
    };
    let config = GatewayConfig::from_toml(text)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    if config.upstreams.is_empty() {
        return Err(CliError::usage(format!(
            "{}: the [{GATEWAY_TABLE}] table names no upstream ([{GATEWAY_TABLE}.upstreams.NAME] with a base_url)",
            path.display()
        )));
    }
    for missing in config.missing_keys(|name| std::env::var(name).ok()) {
        ctx.out.warn(&format!(
            "{missing}: calls to that upstream will fail with 502"
        ));
    }
    let listen = args.listen.unwrap_or(config.listen);
    let metering = ctx.metering().await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::failure(format!("cannot listen on {listen}: {e}")))?;
    ctx.out.success(&format!(
        "Gateway listening on http://{listen} ({} upstream(s), {} model route(s)). Press Ctrl-C to stop.",
        config.upstreams.len(),
        config.models.len()
    ));
    let mut gateway = Gateway::new(metering, config);
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => gateway = gateway.with_metrics(handle),
        Err(e) => ctx.out.warn(&format!(
            "GET /metrics is off: no metrics recorder could be installed: {e}"
        )),
    }
    match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => {
            gateway = gateway.with_dashboard(&token);
            ctx.out.line(&format!(
                "Dashboard: http://{listen}{}/login (sign in with {ADMIN_TOKEN_ENV}).",
                ai_metering_gateway::admin::DASHBOARD_PREFIX
            ));
        }
        _ => ctx.out.line(&format!(
            "The dashboard is off: set {ADMIN_TOKEN_ENV} to serve it under /ai-metering behind a login."
        )),
    }
    let app = gateway.router();
    // The client's address, for the dashboard login's limit on wrong tokens.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(crate::demo::shutdown_signal())
    .await
    .map_err(|e| CliError::failure(format!("the gateway stopped: {e}")))
}
