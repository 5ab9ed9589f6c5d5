//! Arbitrary text as configuration: a price catalog in TOML, and period settings (the first
//! three lines as type, alignment and time zone). Parsing returns a value or a typed error;
//! a parsed period spec computes periods around a fixed instant without panicking.
#![no_main]

use ai_metering_core::period::PeriodConfig;
use ai_metering_core::pricing::PriceCatalog;
use ai_metering_core::{TokenUsage};
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(catalog) = PriceCatalog::from_toml_str(text) {
        let usage = TokenUsage::new(1_000, 500).ok();
        for (provider, model, _) in catalog.iter() {
            if let Some(usage) = &usage {
                let _ = catalog.cost(provider, model, usage);
            }
        }
    }
    let mut lines = text.lines();
    let (kind, alignment, zone) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    if let Ok(periods) = PeriodConfig::from_config(kind, alignment, zone) {
        let spec = periods.spec;
        let Some(t) = Utc.with_ymd_and_hms(2024, 2, 29, 23, 30, 0).single() else {
            return;
        };
        if let Ok(period) = spec.period_at(t) {
            assert!(period.contains(t), "period_at({t}) = {period:?} does not contain it");
            let _ = spec.next(&period);
            let _ = spec.previous(&period);
        }
    }
});
