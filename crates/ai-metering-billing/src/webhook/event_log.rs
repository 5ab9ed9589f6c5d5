//! [`MemoryEventLog`]: an in-process [`WebhookEventStore`] (the trait lives in
//! `ai_metering_core::store`; `SeaOrmStore` implements it with a table, for several
//! instances).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use ai_metering_core::store::{StoreResult, WebhookEventStore};
use chrono::{DateTime, Duration, Utc};

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
