//! [`CustomerLookup`]: which Stripe customer pays for a billable.

use std::future::Future;

use ai_metering_core::Billable;
use ai_metering_core::store::{ReportStore, SubscriptionStore};

use crate::error::BillingError;
use crate::handle::StoreHandle;

/// The subscription `meta` key holding the Stripe customer id.
pub const CUSTOMER_ID_META_KEY: &str = "stripe_customer_id";

/// Maps a billable to its Stripe customer id (`cus_...`).
///
/// Implemented for closures `Fn(&Billable) -> Option<String>`, and by
/// [`MetaCustomerLookup`], which reads the id from the billable's subscriptions.
///
/// ```
/// use ai_metering_billing::stripe::CustomerLookup;
/// use ai_metering_core::Billable;
///
/// fn takes(_: impl CustomerLookup) {}
/// takes(|b: &Billable| (b.kind == "team").then(|| format!("cus_{}", b.id)));
/// ```
pub trait CustomerLookup: Send + Sync {
    /// The customer id of `billable`; `None` when it has none.
    ///
    /// # Errors
    /// [`BillingError`] when the lookup itself fails (a store down).
    fn customer_id(
        &self,
        billable: &Billable,
    ) -> impl Future<Output = Result<Option<String>, BillingError>> + Send;
}

impl<F> CustomerLookup for F
where
    F: Fn(&Billable) -> Option<String> + Send + Sync,
{
    fn customer_id(
        &self,
        billable: &Billable,
    ) -> impl Future<Output = Result<Option<String>, BillingError>> + Send {
        std::future::ready(Ok(self(billable)))
    }
}

/// Reads the customer id from the `meta` of the billable's subscriptions: the newest
/// subscription whose `meta` has a non-empty string under the key (default
/// [`CUSTOMER_ID_META_KEY`]).
///
/// ```
/// use std::sync::Arc;
/// use ai_metering_billing::stripe::MetaCustomerLookup;
///
/// # struct MyStore;
/// let lookup = MetaCustomerLookup::new(Arc::new(MyStore)).with_key("billing_customer");
/// assert_eq!(lookup.key(), "billing_customer");
/// ```
#[derive(Debug, Clone)]
pub struct MetaCustomerLookup<H> {
    handle: H,
    key: String,
}

impl<H: StoreHandle> MetaCustomerLookup<H> {
    /// Looks up in `handle`'s store under [`CUSTOMER_ID_META_KEY`].
    pub fn new(handle: H) -> Self {
        Self {
            handle,
            key: CUSTOMER_ID_META_KEY.to_owned(),
        }
    }

    /// Uses another `meta` key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The `meta` key read.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl<H> CustomerLookup for MetaCustomerLookup<H>
where
    H: StoreHandle,
    H::Store: SubscriptionStore + ReportStore,
{
    async fn customer_id(&self, billable: &Billable) -> Result<Option<String>, BillingError> {
        let subscriptions = self.handle.store().subscriptions(billable).await?;
        // Oldest first: the newest subscription that names a customer wins.
        Ok(subscriptions.iter().rev().find_map(|(_, s)| {
            s.meta
                .get(&self.key)
                .and_then(|v| v.as_str())
                .filter(|id| !id.trim().is_empty())
                .map(str::to_owned)
        }))
    }
}
