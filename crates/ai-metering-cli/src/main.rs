//! The `ai-metering` command line: database maintenance, reports, plans, wallets, GDPR
//! erasure and the runnable demo. See the crate README for every command and setting.
//!
//! Exit codes: 0 success, 1 failure (errors found, not found, refused, database error),
//! 2 invalid arguments or configuration.

mod cli;
mod commands;
mod config;
mod demo;
mod error;
mod output;
mod prompt;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use console::style;

use crate::cli::{Cli, Command};
use crate::commands::Ctx;
use crate::config::{Config, ConfigError, Sources};
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// mimalloc instead of the system allocator: the gateway and the demo allocate on every
/// request from many threads, where glibc's allocator spent about 15% of the server's CPU
/// (docs/PERFORMANCE.md, "The demo's allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_colors();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CliError::failure(format!("cannot start the runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    if !e.is_quiet() {
        let _ = writeln!(
            std::io::stderr(),
            "{} {e}",
            style("error:").for_stderr().red().bold()
        );
    }
    ExitCode::from(e.code())
}

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let dir = std::env::current_dir().unwrap_or_default();
    Config::load(&Sources {
        file: cli.config.clone(),
        dir,
        database_url: cli.database_url.clone(),
        env: &env,
    })
}

async fn run(cli: Cli) -> CliResult {
    let out = Output::new(cli.format);
    let config = load_config(&cli);
    if let Command::Validate = cli.command {
        return commands::validate::run(config, out).await;
    }
    let config = config.map_err(|e| CliError::usage(e.to_string()))?;
    let ctx = Ctx { config, out };
    match &cli.command {
        Command::Migrate => commands::migrate::run(&ctx).await,
        Command::Report(args) => commands::report::run(&ctx, args).await,
        Command::Cleanup(args) => commands::cleanup::run(&ctx, args).await,
        Command::SyncOverages(args) => commands::sync_overages::run(&ctx, args).await,
        Command::Validate => Ok(()),
        Command::Check(args) => commands::check::run(&ctx, args).await,
        Command::Config => commands::config::run(&ctx),
        Command::Plans(cmd) => commands::plans::run(&ctx, cmd).await,
        Command::Subscribe(args) => commands::subscribe::run(&ctx, args).await,
        Command::MigratePlan(args) => commands::migrate_plan::run(&ctx, args).await,
        Command::Aggregate(args) => commands::aggregate::run(&ctx, args).await,
        Command::Gdpr(cmd) => commands::gdpr::run(&ctx, cmd).await,
        Command::Wallet(cmd) => commands::wallet::run(&ctx, cmd).await,
        Command::Keys(cmd) => commands::keys::run(&ctx, cmd).await,
        Command::Serve(args) => commands::serve::run(&ctx, args).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
    }
}
