//! Reporting pending overage: in batches ([`sync_overages`], the CLI's `sync-overages`) or
//! one row right after it is recorded ([`report_overage_now`]).
//!
//! An overage is marked synced only after its driver answered
//! [`ReportOutcome::Reported`], and only once (the store's `mark_overage_synced` succeeds for
//! the first caller). A failure leaves the row pending for the next run; drivers make the
//! repeat harmless with identifiers stable per row.

use ai_metering_core::store::StoreError;
use ai_metering_core::store::{OverageRecord, OverageStore};
use chrono::{DateTime, Utc};

use crate::driver::{BillingDriver, ExternalId, ReportOutcome};
use crate::error::BillingError;

/// What one overage's report came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Reported and marked synced, under this id.
    Synced(ExternalId),
    /// Already synced (earlier, or by a concurrent sync): nothing was marked again.
    AlreadySynced,
    /// The driver reported nothing; the row stays pending.
    NotReported {
        /// The driver's reason.
        reason: String,
    },
}

/// One overage that failed to sync.
#[derive(Debug)]
pub struct SyncFailure {
    /// The overage's id.
    pub overage_id: i64,
    /// Why.
    pub error: BillingError,
}

/// How many pending overages [`sync_overages`] reads at a time.
const SYNC_PAGE: u64 = 100;

/// The result of [`sync_overages`].
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Overages reported and marked synced by this run.
    pub synced: u64,
    /// Overages that failed (still pending); details in `errors`.
    pub failed: u64,
    /// Overages left pending without an error: the driver reported nothing, another sync
    /// marked them first, or the run stopped early after reading them.
    pub skipped: u64,
    /// Each failure, in the order met.
    pub errors: Vec<SyncFailure>,
    /// True when the run stopped at a [systemic](BillingError::is_systemic) error (bad
    /// credentials) instead of sending every remaining row in vain.
    pub stopped_early: bool,
}

impl SyncReport {
    /// True when nothing failed.
    pub fn is_success(&self) -> bool {
        self.failed == 0 && !self.stopped_early
    }
}

/// Reports `overage` with `driver` and marks it synced at `now` when the driver reported it.
/// An overage already synced is not reported again.
///
/// # Errors
/// The driver's [`BillingError`], or the store's when marking fails; the row then stays
/// pending (a repeat is harmless: the driver's identifier is stable per row).
pub async fn report_overage_now<S, D>(
    store: &S,
    driver: &D,
    overage: &OverageRecord,
    now: DateTime<Utc>,
) -> Result<SyncOutcome, BillingError>
where
    S: OverageStore,
    D: BillingDriver,
{
    if overage.synced_at.is_some() {
        return Ok(SyncOutcome::AlreadySynced);
    }
    match driver.report_overage(overage).await? {
        ReportOutcome::Reported(id) => {
            if store
                .mark_overage_synced(overage.id, id.as_str(), now)
                .await?
            {
                Ok(SyncOutcome::Synced(id))
            } else {
                Ok(SyncOutcome::AlreadySynced)
            }
        }
        ReportOutcome::NotReported { reason } => Ok(SyncOutcome::NotReported { reason }),
    }
}

/// Reports pending overages, oldest first, each marked synced at `now` once its driver
/// reported it, until `limit` are synced or every pending overage has been tried once.
///
/// Overages that fail, or that the driver does not report, stay pending for the next run
/// and do not count towards `limit`. The run reads on past them, so rows that keep
/// failing (a billable without a billing customer, say) never hold back newer ones.
/// Failures do not stop the run (each is counted and listed) except a systemic one (bad
/// credentials), after which the rows already read but not tried are counted as skipped.
///
/// # Errors
/// [`StoreError`] when the pending overages cannot be read (what was reported before
/// stays reported and marked).
pub async fn sync_overages<S, D>(
    store: &S,
    driver: &D,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<SyncReport, StoreError>
where
    S: OverageStore,
    D: BillingDriver,
{
    let mut report = SyncReport::default();
    let page_size = limit.clamp(1, SYNC_PAGE);
    let mut last: Option<OverageRecord> = None;
    while report.synced < limit {
        let page = store.pending_overages(last.as_ref(), page_size).await?;
        let mut rows = page.iter();
        for overage in rows.by_ref() {
            match report_overage_now(store, driver, overage, now).await {
                Ok(SyncOutcome::Synced(_)) => report.synced += 1,
                Ok(SyncOutcome::AlreadySynced | SyncOutcome::NotReported { .. }) => {
                    report.skipped += 1;
                }
                Err(error) => {
                    tracing::warn!(target: "ai_metering", overage = overage.id, %error, retryable = error.is_retryable(), "failed to report an overage; it stays pending");
                    report.failed += 1;
                    let systemic = error.is_systemic();
                    report.errors.push(SyncFailure {
                        overage_id: overage.id,
                        error,
                    });
                    if systemic {
                        report.stopped_early = true;
                        report.skipped += rows.count() as u64;
                        return Ok(report);
                    }
                }
            }
            if report.synced == limit {
                return Ok(report);
            }
        }
        match page.last() {
            // A short page is the last one.
            Some(row) if page.len() as u64 == page_size => last = Some(row.clone()),
            _ => break,
        }
    }
    Ok(report)
}
