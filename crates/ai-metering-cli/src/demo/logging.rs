//! The demo server's log on stderr: metering events and requests, as configured by
//! `logging.enabled` and `logging.level`.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// Installs the log subscriber (once; later calls do nothing).
pub fn init(config: &Config) {
    if !config.logging_enabled {
        return;
    }
    let level = match config.log_level.as_str() {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        _ => Level::INFO,
    };
    // Our events at the configured level; libraries (the SQL driver...) only when they warn.
    let filter = Targets::new()
        .with_target("ai_metering", level)
        .with_target("ai_metering_tower", level)
        .with_target("ai_metering_seaorm", level)
        .with_default(Level::WARN);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}
