//! Usage history: filtered, searched, paginated rows, and every row for exports.

use ai_metering_core::store::{Page, ReportStore, Store, UsageFilter, UsageRecord, UsageSums};
use ai_metering_core::{Currency, Metering};
use serde::Serialize;

use crate::error::DashboardError;
use crate::filters::PageRequest;

/// One page of usage rows, newest first.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UsagePage {
    /// The page number, from 1.
    pub(crate) page: u64,
    /// Rows a page.
    pub(crate) per_page: u64,
    /// Rows matching the filter in all.
    pub(crate) total: u64,
    /// Pages in all (at least 1).
    pub(crate) pages: u64,
    /// The catalog's currency.
    pub(crate) currency: Currency,
    /// Sums over every matching row.
    pub(crate) sums: UsageSums,
    /// The rows of this page.
    pub(crate) rows: Vec<UsageRecord>,
}

/// The page `page` of the rows `filter` selects.
pub(crate) async fn usage_page<S: Store + ReportStore>(
    metering: &Metering<S>,
    filter: &UsageFilter,
    page: PageRequest,
) -> Result<UsagePage, DashboardError> {
    let store = metering.store();
    let sums = store.sum_usage(filter).await?;
    let rows = store.query_usage(filter, page.page).await?;
    let per_page = page.page.limit;
    Ok(UsagePage {
        page: page.number,
        per_page,
        total: sums.calls,
        pages: sums.calls.div_ceil(per_page.max(1)).max(1),
        currency: metering.catalog().currency(),
        sums,
        rows,
    })
}

/// Calls `each` with every row `filter` selects, newest first, fetched a bounded page at a
/// time, stopping after `max_rows`. Returns true when rows were left out.
pub(crate) async fn for_each_usage_row<S: Store + ReportStore>(
    metering: &Metering<S>,
    filter: &UsageFilter,
    max_rows: u64,
    mut each: impl FnMut(&UsageRecord) -> Result<(), DashboardError>,
) -> Result<bool, DashboardError> {
    let store = metering.store();
    let mut offset = 0_u64;
    loop {
        let left = max_rows.saturating_sub(offset);
        // Ask for one row more than allowed to learn whether the export is cut.
        let limit = left.saturating_add(1).min(Page::MAX_LIMIT);
        let rows = store.query_usage(filter, Page { offset, limit }).await?;
        let fetched = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        for row in rows
            .iter()
            .take(usize::try_from(left).unwrap_or(usize::MAX))
        {
            each(row)?;
        }
        if fetched > left {
            return Ok(true);
        }
        if fetched < limit {
            return Ok(false);
        }
        offset = offset.saturating_add(fetched);
    }
}
