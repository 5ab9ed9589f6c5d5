//! [`StoreHandle`]: a shared handle on a store, as the webhook route and the customer lookup
//! hold it: an `Arc<S>`, or a [`Metering`] (which also delivers events to its sinks).

use std::sync::Arc;

use ai_metering_core::Metering;
use ai_metering_core::events::MeterEvent;
use ai_metering_core::store::Store;

/// A cheap-to-clone handle on a store, with an optional event outlet.
///
/// Implemented for `Arc<S>` (events are only logged) and for [`Metering<S>`] (events go to
/// its sinks, as every other metering event does).
///
/// ```
/// use std::sync::Arc;
/// use ai_metering_billing::StoreHandle;
///
/// struct MyStore;
/// let handle = Arc::new(MyStore);
/// let _store: &MyStore = handle.store();
/// ```
pub trait StoreHandle: Clone + Send + Sync + 'static {
    /// The store.
    type Store: Send + Sync + 'static;

    /// The store.
    fn store(&self) -> &Self::Store;

    /// Delivers an event; the default only logs it with `tracing`.
    fn emit(&self, event: MeterEvent) {
        tracing::info!(target: "ai_metering", event = event.name(), billable = %event.billable());
    }
}

impl<S: Send + Sync + 'static> StoreHandle for Arc<S> {
    type Store = S;

    fn store(&self) -> &S {
        self
    }
}

impl<S: Store> StoreHandle for Metering<S> {
    type Store = S;

    fn store(&self) -> &S {
        Metering::store(self)
    }

    fn emit(&self, event: MeterEvent) {
        Metering::emit(self, event);
    }
}
