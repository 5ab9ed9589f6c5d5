//! Metrics of the money path, through the [`metrics`](https://docs.rs/metrics) facade (cargo
//! feature `metrics`): install any recorder (a Prometheus exporter, say) and they appear.
//! Without the feature every function here is empty.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `ai_metering_calls_total` | counter | `provider`, `model`, `outcome` (`recorded`, `estimated`, `replayed`, `not_recorded`, `provider_error`) |
//! | `ai_metering_tokens_total` | counter | `provider`, `model`, `direction` (`input`, `output`) |
//! | `ai_metering_cost_nanos_total` | counter | `provider`, `model`, `currency`: the cost in billionths of the currency unit, an exact integer (rounded half away from zero per call) |
//! | `ai_metering_refusals_total` | counter | `reason` (`limit_exceeded`, `insufficient_credits`, `call_in_flight`, `key_in_flight`) |
//! | `ai_metering_reservations_in_flight` | gauge | |
//! | `ai_metering_settlement_seconds` | histogram | |
//!
//! No label names a billable unless [`MeteringConfig::metrics_per_billable`](crate::MeteringConfig::metrics_per_billable)
//! is set: one series per customer can overwhelm a metrics backend.

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    use rust_decimal::prelude::ToPrimitive;
    use rust_decimal::{Decimal, RoundingStrategy};

    use crate::billable::Billable;
    use crate::store::UsageEntry;

    fn billable_label(billable: &Billable, per_billable: bool) -> Vec<(&'static str, String)> {
        if per_billable {
            vec![("billable", billable.to_string())]
        } else {
            Vec::new()
        }
    }

    pub(crate) fn call(
        provider: &str,
        model: &str,
        outcome: &'static str,
        billable: &Billable,
        per_billable: bool,
    ) {
        let mut labels = vec![
            ("provider", provider.to_owned()),
            ("model", model.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        labels.extend(billable_label(billable, per_billable));
        metrics::counter!("ai_metering_calls_total", labels.as_slice()).increment(1);
    }

    pub(crate) fn recorded(entry: &UsageEntry, took: Duration, per_billable: bool) {
        let outcome = if entry.estimated {
            "estimated"
        } else {
            "recorded"
        };
        call(
            &entry.provider,
            &entry.model,
            outcome,
            &entry.billable,
            per_billable,
        );
        let mut base = vec![
            ("provider", entry.provider.clone()),
            ("model", entry.model.clone()),
        ];
        base.extend(billable_label(&entry.billable, per_billable));
        for (direction, tokens) in [
            ("input", entry.usage.input_tokens()),
            ("output", entry.usage.output_tokens()),
        ] {
            let mut labels = base.clone();
            labels.push(("direction", direction.to_owned()));
            metrics::counter!("ai_metering_tokens_total", labels.as_slice()).increment(tokens);
        }
        let nanos = entry
            .cost
            .total
            .checked_mul(Decimal::from(1_000_000_000_u64))
            .map(|n| n.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero))
            .and_then(|n| n.to_u64());
        if let Some(nanos) = nanos {
            let mut labels = base;
            labels.push(("currency", entry.cost.currency.as_str().to_owned()));
            metrics::counter!("ai_metering_cost_nanos_total", labels.as_slice()).increment(nanos);
        }
        metrics::histogram!("ai_metering_settlement_seconds").record(took);
    }

    pub(crate) fn refused(reason: &'static str) {
        metrics::counter!("ai_metering_refusals_total", "reason" => reason).increment(1);
    }

    pub(crate) fn reservation_opened() {
        metrics::gauge!("ai_metering_reservations_in_flight").increment(1.0);
    }

    pub(crate) fn reservation_closed() {
        metrics::gauge!("ai_metering_reservations_in_flight").decrement(1.0);
    }
}

#[cfg(not(feature = "metrics"))]
mod enabled {
    use std::time::Duration;

    use crate::billable::Billable;
    use crate::store::UsageEntry;

    pub(crate) fn call(_: &str, _: &str, _: &'static str, _: &Billable, _: bool) {}
    pub(crate) fn recorded(_: &UsageEntry, _: Duration, _: bool) {}
    pub(crate) fn refused(_: &'static str) {}
    pub(crate) fn reservation_opened() {}
    pub(crate) fn reservation_closed() {}
}

pub(crate) use enabled::*;
