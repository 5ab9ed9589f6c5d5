//! [`MemoryStore`]'s WebhookEventStore: claimed payment-provider events.

use super::*;

impl WebhookEventStore for MemoryStore {
    async fn claim_event(&self, event_id: &str, _at: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.lock().webhook_events.insert(event_id.to_owned()))
    }

    async fn forget_event(&self, event_id: &str) -> StoreResult<()> {
        self.lock().webhook_events.remove(event_id);
        Ok(())
    }
}
