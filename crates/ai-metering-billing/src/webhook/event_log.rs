//! [`WebhookEventStore`]: which Stripe events were already processed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use ai_metering_core::store::StoreResult;
use chrono::{DateTime, Duration, Utc};

/// Remembers processed webhook event ids, so a redelivered event changes nothing twice.
///
/// Stripe delivers an event at least once, and retries for days when it gets no 2xx. A
/// deployment with several instances needs this in the shared database (a table with the
/// event id as primary key: `claim_event` is an `INSERT ... ON CONFLICT DO NOTHING` that
/// reports whether a row was inserted). [`MemoryEventLog`] serves one instance and tests.
pub trait WebhookEventStore: Send + Sync {
    /// Claims `event_id` for processing at `at`: true only for the first caller, atomically.
    fn claim_event(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Drops a claim, after processing failed, so that Stripe's retry is processed.
    fn forget_event(&self, event_id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

impl<T: WebhookEventStore> WebhookEventStore for Arc<T> {
    fn claim_event(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        (**self).claim_event(event_id, at)
    }

    fn forget_event(&self, event_id: &str) -> impl Future<Output = StoreResult<()>> + Send {
        (**self).forget_event(event_id)
    }
}

/// An in-process [`WebhookEventStore`]. Ids older than the retention (default 30 days,
/// well past Stripe's retry window of 3 days) are forgotten as new ones arrive.
///
/// ```
/// use ai_metering_billing::webhook::MemoryEventLog;
/// let log = MemoryEventLog::new().with_retention(chrono::Duration::days(7));
/// assert!(log.is_empty());
/// ```
#[derive(Debug)]
pub struct MemoryEventLog {
    seen: Mutex<HashMap<String, DateTime<Utc>>>,
    retention: Duration,
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            retention: Duration::days(30),
        }
    }
}

impl MemoryEventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps ids for `retention`.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl WebhookEventStore for MemoryEventLog {
    async fn claim_event(&self, event_id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let horizon = at - self.retention;
        seen.retain(|_, claimed| *claimed >= horizon);
        if seen.contains_key(event_id) {
            return Ok(false);
        }
        seen.insert(event_id.to_owned(), at);
        Ok(true)
    }

    async fn forget_event(&self, event_id: &str) -> StoreResult<()> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(event_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claims_once_forgets_and_expires() {
        let log = MemoryEventLog::new().with_retention(Duration::days(1));
        let t = DateTime::UNIX_EPOCH;
        assert!(log.claim_event("evt_1", t).await.unwrap());
        assert!(!log.claim_event("evt_1", t).await.unwrap());
        log.forget_event("evt_1").await.unwrap();
        assert!(log.claim_event("evt_1", t).await.unwrap());
        // Two days later the first claim is past retention.
        assert!(
            log.claim_event("evt_2", t + Duration::days(2))
                .await
                .unwrap()
        );
        assert_eq!(log.len(), 1);
    }
}
