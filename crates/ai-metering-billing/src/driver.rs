//! [`BillingDriver`]: reports overage to a billing provider; [`NullBillingDriver`] reports
//! nothing, and says so.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use ai_metering_core::store::OverageRecord;

use crate::error::BillingError;

/// The billing provider's id for a reported overage (a Stripe invoice item id, or a meter
/// event's identifier). Never empty.
///
/// ```
/// use ai_metering_billing::ExternalId;
/// assert_eq!(ExternalId::new("ii_123").unwrap().as_str(), "ii_123");
/// assert!(ExternalId::new("").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalId(pub(crate) String);

impl ExternalId {
    /// An id; `None` when `id` is empty or only whitespace.
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        if id.trim().is_empty() {
            None
        } else {
            Some(Self(id))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a driver did with an overage.
///
/// Only [`Reported`](Self::Reported), which carries the provider's id, lets a sync mark the
/// overage synced: a driver that bills nowhere returns [`NotReported`](Self::NotReported),
/// and the overage stays pending for a driver that does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an overage is synced only when its report says Reported"]
pub enum ReportOutcome {
    /// The provider accepted it, under this id.
    Reported(ExternalId),
    /// Nothing was sent anywhere; the overage must stay pending.
    NotReported {
        /// Why (for logs and reports).
        reason: String,
    },
}

/// Reports overage to a billing provider.
///
/// A driver reports one overage row per call and must make repeats harmless: a report of
/// the same row, after a timeout or a crash before the row was marked synced, must not bill
/// twice (Stripe's driver sends an idempotency key and identifier derived from the row's id).
///
/// A driver that bills nowhere is one closure away:
///
/// ```
/// use ai_metering_billing::{BillingDriver, BillingError, ReportOutcome};
/// use ai_metering_core::store::OverageRecord;
///
/// struct LogOnly;
/// impl BillingDriver for LogOnly {
///     async fn report_overage(&self, o: &OverageRecord) -> Result<ReportOutcome, BillingError> {
///         println!("overage #{}: {}", o.id, o.overage.amount);
///         Ok(ReportOutcome::NotReported { reason: "logged only".into() })
///     }
/// }
/// ```
pub trait BillingDriver: Send + Sync {
    /// Reports one overage.
    ///
    /// # Errors
    /// [`BillingError`]; the overage then stays pending.
    fn report_overage(
        &self,
        overage: &OverageRecord,
    ) -> impl Future<Output = Result<ReportOutcome, BillingError>> + Send;
}

impl<D: BillingDriver> BillingDriver for Arc<D> {
    fn report_overage(
        &self,
        overage: &OverageRecord,
    ) -> impl Future<Output = Result<ReportOutcome, BillingError>> + Send {
        (**self).report_overage(overage)
    }
}

impl<D: BillingDriver> BillingDriver for &D {
    fn report_overage(
        &self,
        overage: &OverageRecord,
    ) -> impl Future<Output = Result<ReportOutcome, BillingError>> + Send {
        (**self).report_overage(overage)
    }
}

/// The default driver: bills nothing and answers [`ReportOutcome::NotReported`], so overage
/// stays pending (and visible) until a real driver reports it.
///
/// ```
/// use ai_metering_billing::NullBillingDriver;
/// let _driver = NullBillingDriver;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NullBillingDriver;

impl BillingDriver for NullBillingDriver {
    async fn report_overage(
        &self,
        _overage: &OverageRecord,
    ) -> Result<ReportOutcome, BillingError> {
        Ok(ReportOutcome::NotReported {
            reason: "no billing driver is configured".into(),
        })
    }
}
