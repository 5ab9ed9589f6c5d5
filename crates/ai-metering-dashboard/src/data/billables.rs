//! The billables list and one billable's page.

use ai_metering_core::period::Period;
use ai_metering_core::plan::{BillingMode, Subscription};
use ai_metering_core::store::{
    CreditTransaction, GroupBy, GroupedSums, Page, ReportStore, Store, UsageFilter,
};
use ai_metering_core::{Billable, Currency, Tenant};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::breakdown::MAX_GROUPS;
use super::history::{UsagePage, usage_page};
use super::status::{BillableStatus, status_of};
use super::window::{DayUsage, current_period, daily};
use crate::access::Scope;
use crate::error::DashboardError;
use crate::filters::{UsageQuery, value};
use crate::state::App;

/// Credit transactions shown on a billable's page.
const TRANSACTIONS_SHOWN: u64 = 20;

/// A page of billables with usage in the listing window, heaviest first.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BillablesPage {
    /// The listing window: billables with usage in it are listed, with that usage.
    pub(crate) window: Period,
    /// The tenant the viewer is limited to, if any.
    pub(crate) tenant: Option<Tenant>,
    /// The catalog's currency.
    pub(crate) currency: Currency,
    /// The page number, from 1.
    pub(crate) page: u64,
    /// Billables a page.
    pub(crate) per_page: u64,
    /// Billables matching in all.
    pub(crate) total: u64,
    /// Pages in all (at least 1).
    pub(crate) pages: u64,
    /// The billables of this page.
    pub(crate) billables: Vec<BillableStatus>,
}

/// The billables page: `q` matches `KIND:ID` case-insensitively; `page` and `per_page` page.
pub(crate) async fn billables_page<S: Store + ReportStore>(
    app: &App<S>,
    scope: &Scope,
    query: &UsageQuery,
) -> Result<BillablesPage, DashboardError> {
    let metering = &app.metering;
    let now = metering.now();
    let window = Period {
        start: now
            .checked_sub_signed(TimeDelta::days(app.config.billables_window_days))
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        end: now,
    };
    let page = query.page(app.config.per_page)?;
    let filter = UsageFilter {
        tenant: scope.tenant().cloned(),
        ..UsageFilter::default()
    }
    .in_period(&window);
    let search = value(&query.q).map(str::to_lowercase);
    let groups: Vec<GroupedSums> = metering
        .store()
        .sum_usage_grouped(&filter, GroupBy::Billable)
        .await?
        .into_iter()
        .filter(|g| {
            search
                .as_ref()
                .is_none_or(|s| g.key.to_lowercase().contains(s))
        })
        .collect();
    let total = u64::try_from(groups.len()).unwrap_or(u64::MAX);
    let per_page = page.page.limit;
    let skip = usize::try_from(page.page.offset).unwrap_or(usize::MAX);
    let take = usize::try_from(per_page).unwrap_or(usize::MAX);
    let mut billables = Vec::new();
    for group in groups.into_iter().skip(skip).take(take) {
        if let Ok(billable) = group.key.parse::<Billable>() {
            billables.push(status_of(metering, billable, group.sums).await);
        }
    }
    Ok(BillablesPage {
        window,
        tenant: scope.tenant().cloned(),
        currency: metering.catalog().currency(),
        page: page.number,
        per_page,
        total,
        pages: total.div_ceil(per_page.max(1)).max(1),
        billables,
    })
}

/// A subscription with its id, without its free-form `meta` (payment ids and the like).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SubscriptionView {
    /// The store's id.
    pub(crate) id: i64,
    /// The plan's slug.
    pub(crate) plan: Option<String>,
    /// How usage is paid for.
    pub(crate) billing_mode: BillingMode,
    /// Start.
    pub(crate) started_at: DateTime<Utc>,
    /// Next renewal.
    pub(crate) renews_at: Option<DateTime<Utc>>,
    /// End.
    pub(crate) ends_at: Option<DateTime<Utc>>,
    /// End of the trial.
    pub(crate) trial_ends_at: Option<DateTime<Utc>>,
    /// End of the grace period.
    pub(crate) grace_ends_at: Option<DateTime<Utc>>,
    /// The plan before the last change.
    pub(crate) previous_plan: Option<String>,
    /// Active now.
    pub(crate) active: bool,
}

impl SubscriptionView {
    fn of(id: i64, s: Subscription, now: DateTime<Utc>) -> Self {
        Self {
            id,
            active: s.is_active(now),
            plan: s.plan,
            billing_mode: s.billing_mode,
            started_at: s.started_at,
            renews_at: s.renews_at,
            ends_at: s.ends_at,
            trial_ends_at: s.trial_ends_at,
            grace_ends_at: s.grace_ends_at,
            previous_plan: s.previous_plan,
        }
    }
}

/// Everything about one billable.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BillableDetail {
    /// Standing, with the usage of `window`.
    pub(crate) status: BillableStatus,
    /// The window of the daily chart and the breakdowns: the billable's current period (the
    /// global one when it has none).
    pub(crate) window: Period,
    /// Usage per day of the window (the billable's own dates).
    pub(crate) daily: Vec<DayUsage>,
    /// Usage in the window by model (the largest 100).
    pub(crate) models: Vec<GroupedSums>,
    /// Usage in the window by feature (the largest 100).
    pub(crate) features: Vec<GroupedSums>,
    /// Every subscription, oldest first.
    pub(crate) subscriptions: Vec<SubscriptionView>,
    /// The latest credit transactions of its wallet.
    pub(crate) transactions: Vec<CreditTransaction>,
    /// Its usage history (all time), newest first.
    pub(crate) history: UsagePage,
}

/// The page of `billable`. Not found for a tenant-scoped viewer unless the billable has usage
/// in that tenant, and for anyone when it has neither usage nor subscriptions.
pub(crate) async fn billable_detail<S: Store + ReportStore>(
    app: &App<S>,
    scope: &Scope,
    billable: Billable,
    query: &UsageQuery,
) -> Result<BillableDetail, DashboardError> {
    let metering = &app.metering;
    let store = metering.store();
    let all_time = UsageFilter {
        tenant: scope.tenant().cloned(),
        ..UsageFilter::for_billable(billable.clone())
    };
    let page = query.page(app.config.per_page)?;
    let history = usage_page(metering, &all_time, page).await?;
    let subscriptions = store.subscriptions(&billable).await?;
    let visible = history.total > 0 || (scope.tenant().is_none() && !subscriptions.is_empty());
    if !visible {
        return Err(DashboardError::NotFound(format!(
            "no usage of {billable} to show"
        )));
    }

    let placeholder = Default::default();
    let mut status = status_of(metering, billable.clone(), placeholder).await;
    let window = match status.period {
        Some(p) => p,
        None => current_period(metering)?,
    };
    let in_window = all_time.clone().in_period(&window);
    status.usage = store.sum_usage(&in_window).await?;
    let daily = daily(metering, &in_window, &window).await?;
    let mut models = store.sum_usage_grouped(&in_window, GroupBy::Model).await?;
    models.truncate(MAX_GROUPS);
    let mut features = store
        .sum_usage_grouped(&in_window, GroupBy::Feature)
        .await?;
    features.truncate(MAX_GROUPS);
    let now = metering.now();
    let transactions = store
        .credit_transactions(
            &billable,
            metering.catalog().currency(),
            Page::first(TRANSACTIONS_SHOWN),
        )
        .await?;
    Ok(BillableDetail {
        status,
        window,
        daily,
        models,
        features,
        subscriptions: subscriptions
            .into_iter()
            .map(|(id, s)| SubscriptionView::of(id.0, s, now))
            .collect(),
        transactions,
        history,
    })
}
