//! `load_target --store bare|memory|sqlite|postgres [--url URL] [--port P] ...`: serves the
//! load app on 127.0.0.1 until Ctrl-C or SIGTERM. See `ai_metering_bench::Options`.

use std::process::ExitCode;

use ai_metering_bench::{Options, StoreKind, app, prepare, raw};
use ai_metering_core::store::MemoryStore;
use ai_metering_seaorm::SeaOrmStore;
use axum::Router;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load_target: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    // Fault runs want the store's errors; load runs do not pay for logging.
    if std::env::var_os("AI_METERING_LOAD_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .init();
    }
    let router: Router = match options.store {
        StoreKind::Bare => app::<MemoryStore>(None, &options),
        StoreKind::Memory => {
            let store = MemoryStore::new();
            prepare(&store, &options).await?;
            app(Some(store), &options)
        }
        StoreKind::Sqlite | StoreKind::Postgres => {
            let url = options.url.as_deref().unwrap_or_default();
            let store = SeaOrmStore::connect(url).await?;
            if options.sets_up() {
                store.migrate().await?;
                prepare(&store, &options).await?;
            }
            app(Some(store), &options)
        }
        StoreKind::RawSqlite | StoreKind::RawPostgres => {
            let url = options.url.as_deref().unwrap_or_default();
            let pool = raw::connect(url).await?;
            if options.sets_up() {
                raw::prepare(&pool, &options).await?;
            }
            raw::app(pool, &options)
        }
    };
    if options.setup_only {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    eprintln!(
        "load_target: {:?} on 127.0.0.1:{}",
        options.store, options.port
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { if let Some(t) = term.as_mut() { t.recv().await; } } => {}
            }
        })
        .await?;
    Ok(())
}
