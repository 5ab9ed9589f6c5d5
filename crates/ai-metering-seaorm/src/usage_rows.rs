//! Converting a [`UsageEntry`] to an `ai_usages` row and back.

use ai_metering_core::pricing::CostBreakdown;
use ai_metering_core::store::{StoreResult, UsageEntry, UsageRecord};
use ai_metering_core::{Billable, Tenant, TokenCounts, TokenUsage};
use chrono::Utc;
use sea_orm::ActiveValue::Set;

use crate::codec::{
    currency, instant, invalid, json_from_text, json_text, money_from_text, money_text, nano_units,
    to_i64, to_u64,
};
use crate::entity::usage;

/// `YYYY-MM-DD`, the form of a stored day.
pub(crate) fn day_text(day: chrono::NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The row to insert for `e` (without `id`).
pub(crate) fn usage_row(e: &UsageEntry) -> StoreResult<usage::ActiveModel> {
    let c = e.usage.counts();
    let day = e.day();
    let cost = &e.cost;
    Ok(usage::ActiveModel {
        billable_type: Set(e.billable.kind.clone()),
        billable_id: Set(e.billable.id.clone()),
        user_id: Set(e.user_id.clone()),
        tenant_id: Set(e.tenant.as_ref().map(|t| t.as_str().to_owned())),
        provider: Set(e.provider.clone()),
        model: Set(e.model.clone()),
        feature: Set(e.feature.clone()),
        input_tokens: Set(to_i64("input tokens", c.input)?),
        cached_input_tokens: Set(to_i64("cached input tokens", c.cached_input)?),
        cache_write_tokens: Set(to_i64("cache-write tokens", c.cache_write)?),
        cache_write_long_tokens: Set(to_i64("long cache-write tokens", c.cache_write_long)?),
        output_tokens: Set(to_i64("output tokens", c.output)?),
        reasoning_tokens: Set(to_i64("reasoning tokens", c.reasoning)?),
        total_tokens: Set(to_i64("total tokens", e.usage.total_tokens())?),
        input_cost: Set(money_text(cost.input)),
        cached_input_cost: Set(money_text(cost.cached_input)),
        cache_write_cost: Set(money_text(cost.cache_write)),
        output_cost: Set(money_text(cost.output)),
        reasoning_cost: Set(money_text(cost.reasoning)),
        total_cost: Set(money_text(cost.total)),
        total_cost_nano: Set(nano_units(cost.total)),
        currency: Set(cost.currency.as_str().to_owned()),
        catalog_version: Set(cost.catalog_version.clone()),
        priced: Set(cost.priced),
        metadata: Set(json_text(&e.metadata)?),
        idempotency_key: Set(e.idempotency_key.clone()),
        occurred_at: Set(instant(e.occurred_at)),
        estimated: Set(e.estimated),
        created_at: Set(Utc::now()),
        time_zone: Set(e.time_zone.map(|z| z.name().to_owned())),
        local_day: Set(day_text(day.date)),
        day_start: Set(Some(day.period.start)),
        day_end: Set(Some(day.period.end)),
        ..Default::default()
    })
}

/// The entry as the database stores it (instants at microsecond precision).
pub(crate) fn as_stored(e: &UsageEntry) -> UsageEntry {
    UsageEntry {
        occurred_at: instant(e.occurred_at),
        ..e.clone()
    }
}

/// A stored row as a record.
pub(crate) fn usage_record(m: usage::Model) -> StoreResult<UsageRecord> {
    let counts = TokenCounts {
        input: to_u64("ai_usages.input_tokens", m.input_tokens)?,
        cached_input: to_u64("ai_usages.cached_input_tokens", m.cached_input_tokens)?,
        cache_write: to_u64("ai_usages.cache_write_tokens", m.cache_write_tokens)?,
        cache_write_long: to_u64(
            "ai_usages.cache_write_long_tokens",
            m.cache_write_long_tokens,
        )?,
        output: to_u64("ai_usages.output_tokens", m.output_tokens)?,
        reasoning: to_u64("ai_usages.reasoning_tokens", m.reasoning_tokens)?,
    };
    let usage = TokenUsage::try_from(counts)
        .map_err(|e| invalid(format!("ai_usages row {}: {e}", m.id)))?;
    let cost = CostBreakdown {
        input: money_from_text("ai_usages.input_cost", &m.input_cost)?,
        cached_input: money_from_text("ai_usages.cached_input_cost", &m.cached_input_cost)?,
        cache_write: money_from_text("ai_usages.cache_write_cost", &m.cache_write_cost)?,
        output: money_from_text("ai_usages.output_cost", &m.output_cost)?,
        reasoning: money_from_text("ai_usages.reasoning_cost", &m.reasoning_cost)?,
        total: money_from_text("ai_usages.total_cost", &m.total_cost)?,
        currency: currency(&m.currency)?,
        priced: m.priced,
        catalog_version: m.catalog_version,
    };
    Ok(UsageRecord {
        id: m.id,
        entry: UsageEntry {
            billable: Billable::new(m.billable_type, m.billable_id),
            user_id: m.user_id,
            tenant: m.tenant_id.map(Tenant::new),
            provider: m.provider,
            model: m.model,
            feature: m.feature,
            usage,
            cost,
            metadata: json_from_text("ai_usages.metadata", &m.metadata)?,
            idempotency_key: m.idempotency_key,
            occurred_at: m.occurred_at,
            estimated: m.estimated,
            time_zone: m
                .time_zone
                .map(|name| {
                    name.parse().map_err(|_| {
                        invalid(format!("ai_usages.time_zone {name:?} is not a known zone"))
                    })
                })
                .transpose()?,
        },
    })
}
