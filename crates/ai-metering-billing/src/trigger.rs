//! [`SyncTrigger`]: immediate reporting, driven by `OverageCharged` events.

use std::sync::Arc;

use ai_metering_core::events::{EventSink, MeterEvent};
use tokio::sync::Notify;

/// An event sink that wakes a sync loop whenever overage is recorded, so overage is
/// reported right away instead of at the next scheduled batch.
///
/// Register it on the [`Metering`](ai_metering_core::Metering) and run a loop in a task:
///
/// ```no_run
/// # use ai_metering_core::store::{OverageStore, Store};
/// # async fn run<S: Store + OverageStore>(
/// #     metering: ai_metering_core::Metering<S>,
/// #     driver: ai_metering_billing::NullBillingDriver,
/// #     trigger: ai_metering_billing::SyncTrigger,
/// # ) {
/// loop {
///     trigger.notified().await;
///     let now = metering.now();
///     let _ = ai_metering_billing::sync_overages(metering.store(), &driver, 100, now).await;
/// }
/// # }
/// ```
///
/// Notifications coalesce: overage recorded while a sync runs wakes the loop once more.
#[derive(Debug, Clone, Default)]
pub struct SyncTrigger(Arc<Notify>);

impl SyncTrigger {
    /// A trigger nobody waits on yet.
    ///
    /// ```
    /// let trigger = ai_metering_billing::SyncTrigger::new();
    /// # drop(trigger);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the next overage (returns at once if one was recorded since the last wait).
    pub async fn notified(&self) {
        self.0.notified().await;
    }

    /// Wakes the waiting loop, as an `OverageCharged` event does.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

impl EventSink for SyncTrigger {
    fn handle(&self, event: &MeterEvent) {
        if matches!(event, MeterEvent::OverageCharged { .. }) {
            self.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::{Billable, Currency, Money};

    #[tokio::test]
    async fn only_overage_wakes_the_loop() {
        let trigger = SyncTrigger::new();
        let billable = Billable::new("user", 1);
        trigger.handle(&MeterEvent::SubscriptionExpired {
            billable: billable.clone(),
            ended_at: chrono::DateTime::UNIX_EPOCH,
        });
        let waiter = trigger.clone();
        let wait = tokio::spawn(async move { waiter.notified().await });
        tokio::task::yield_now().await;
        assert!(!wait.is_finished());
        trigger.handle(&MeterEvent::OverageCharged {
            billable,
            usage_id: 1,
            tokens: 10,
            amount: Money::zero(Currency::USD),
        });
        wait.await.unwrap();
    }
}
