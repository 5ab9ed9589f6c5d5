//! The overview of the current period.

use ai_metering_core::period::Period;
use ai_metering_core::store::{GroupBy, GroupedSums, ReportStore, Store, UsageFilter, UsageSums};
use ai_metering_core::{Billable, Currency, Tenant};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::status::{BillableStatus, status_of};
use super::window::{DayUsage, current_period, daily};
use crate::access::Scope;
use crate::error::DashboardError;
use crate::state::App;

/// Totals, daily usage, top billables and billables near or over their limits.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Overview {
    /// The period shown (the current one).
    pub(crate) period: Period,
    /// When the overview was computed.
    pub(crate) generated_at: DateTime<Utc>,
    /// The tenant the viewer is limited to, if any.
    pub(crate) tenant: Option<Tenant>,
    /// The catalog's currency, in which costs are summed.
    pub(crate) currency: Currency,
    /// Sums over the period.
    pub(crate) totals: UsageSums,
    /// Billables with usage in the period.
    pub(crate) active_billables: u64,
    /// Usage per day of the period (each billable's own dates).
    pub(crate) daily: Vec<DayUsage>,
    /// The billables with the most tokens in the period.
    pub(crate) top_billables: Vec<GroupedSums>,
    /// Billables approaching or over a limit, most urgent first.
    pub(crate) attention: Vec<BillableStatus>,
    /// How many active billables were checked against their limits (the heaviest first, up
    /// to the configured maximum).
    pub(crate) checked_billables: u64,
}

/// The overview for `scope`.
pub(crate) async fn overview<S: Store + ReportStore>(
    app: &App<S>,
    scope: &Scope,
) -> Result<Overview, DashboardError> {
    let metering = &app.metering;
    let period = current_period(metering)?;
    let filter = UsageFilter {
        tenant: scope.tenant().cloned(),
        ..UsageFilter::default()
    }
    .in_period(&period);
    let store = metering.store();
    let totals = store.sum_usage(&filter).await?;
    let by_billable = store.sum_usage_grouped(&filter, GroupBy::Billable).await?;
    let daily = daily(metering, &filter, &period).await?;

    let mut attention = Vec::new();
    let mut checked = 0_u64;
    for group in by_billable.iter().take(app.config.max_status_checks) {
        let Ok(billable) = group.key.parse::<Billable>() else {
            continue;
        };
        checked += 1;
        let status = status_of(metering, billable, group.sums).await;
        if status.state.needs_attention() {
            attention.push(status);
        }
    }
    attention.sort_by(|a, b| {
        a.state.cmp(&b.state).then_with(|| {
            let pct = |s: &BillableStatus| s.limit.as_ref().map(|c| c.usage_percentage);
            pct(b).cmp(&pct(a))
        })
    });

    Ok(Overview {
        period,
        generated_at: metering.now(),
        tenant: scope.tenant().cloned(),
        currency: metering.catalog().currency(),
        totals,
        active_billables: u64::try_from(by_billable.len()).unwrap_or(u64::MAX),
        top_billables: by_billable
            .into_iter()
            .take(app.config.top_billables)
            .collect(),
        daily,
        attention,
        checked_billables: checked,
    })
}
