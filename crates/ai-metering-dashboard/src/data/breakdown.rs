//! Usage broken down by provider, model and feature.

use ai_metering_core::store::{GroupBy, GroupedSums, ReportStore, Store, UsageFilter, UsageSums};
use ai_metering_core::{Currency, Tenant};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::window::current_period;
use crate::access::Scope;
use crate::error::DashboardError;
use crate::filters::UsageQuery;
use crate::state::App;

/// The most rows a breakdown table holds.
pub(crate) const MAX_GROUPS: usize = 100;

/// One grouping's rows, largest first.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupTable {
    /// The largest groups, at most [`MAX_GROUPS`].
    pub(crate) rows: Vec<GroupedSums>,
    /// How many groups there are in all.
    pub(crate) groups: u64,
}

impl GroupTable {
    fn of(mut rows: Vec<GroupedSums>) -> Self {
        let groups = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        rows.truncate(MAX_GROUPS);
        Self { rows, groups }
    }
}

/// Sums by provider, model (`provider/model`) and feature (`""` for none).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Breakdown {
    /// Start of the window (inclusive), if bounded.
    pub(crate) from: Option<DateTime<Utc>>,
    /// End of the window (exclusive), if bounded.
    pub(crate) until: Option<DateTime<Utc>>,
    /// The tenant the viewer is limited to, if any.
    pub(crate) tenant: Option<Tenant>,
    /// The catalog's currency.
    pub(crate) currency: Currency,
    /// Sums over every matching row.
    pub(crate) totals: UsageSums,
    /// By provider.
    pub(crate) providers: GroupTable,
    /// By provider and model.
    pub(crate) models: GroupTable,
    /// By feature.
    pub(crate) features: GroupTable,
}

/// The breakdown of the rows `query` selects (the current period unless dates are given).
pub(crate) async fn breakdown<S: Store + ReportStore>(
    app: &App<S>,
    scope: &Scope,
    query: &UsageQuery,
) -> Result<(Breakdown, UsageFilter), DashboardError> {
    let metering = &app.metering;
    let period = current_period(metering)?;
    let filter = query.filter(scope, Some(&period))?;
    let store = metering.store();
    let totals = store.sum_usage(&filter).await?;
    let providers = store.sum_usage_grouped(&filter, GroupBy::Provider).await?;
    let models = store.sum_usage_grouped(&filter, GroupBy::Model).await?;
    let features = store.sum_usage_grouped(&filter, GroupBy::Feature).await?;
    let b = Breakdown {
        from: filter.from,
        until: filter.until,
        tenant: scope.tenant().cloned(),
        currency: metering.catalog().currency(),
        totals,
        providers: GroupTable::of(providers),
        models: GroupTable::of(models),
        features: GroupTable::of(features),
    };
    Ok((b, filter))
}
