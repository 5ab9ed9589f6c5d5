//! Arbitrary text as configuration.

use ai_metering_core::TokenUsage;
use ai_metering_core::period::PeriodConfig;
use ai_metering_core::pricing::PriceCatalog;
use chrono::{TimeZone, Utc};

/// The text as a price catalog in TOML, and its first three lines as period settings (type,
/// alignment, time zone): parsing returns a value or a typed error, and a parsed period
/// spec computes periods around a fixed instant that contain it, without panicking.
pub fn config_parsing(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(catalog) = PriceCatalog::from_toml_str(text)
        && let Ok(usage) = TokenUsage::new(1_000, 500)
    {
        for (provider, model, _) in catalog.iter() {
            let _ = catalog.cost(provider, model, &usage);
        }
    }
    let mut lines = text.lines();
    let (kind, alignment, zone) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    if let Ok(config) = PeriodConfig::from_config(kind, alignment, zone) {
        let spec = config.spec;
        let Some(t) = Utc.with_ymd_and_hms(2024, 2, 29, 23, 30, 0).single() else {
            return;
        };
        if let Ok(period) = spec.period_at(t) {
            assert!(
                period.contains(t),
                "period_at({t}) = {period:?} does not contain it"
            );
            let _ = spec.next(&period);
            let _ = spec.previous(&period);
        }
    }
}
