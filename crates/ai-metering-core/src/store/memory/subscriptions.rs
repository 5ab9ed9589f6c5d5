//! [`MemoryStore`]'s SubscriptionStore: subscriptions, limit overrides and expiry claims.

use super::*;

impl SubscriptionStore for MemoryStore {
    async fn insert_subscription(
        &self,
        subscription: &Subscription,
    ) -> StoreResult<SubscriptionId> {
        let mut s = self.lock();
        let id = s.next_id();
        s.subscriptions.insert(id, subscription.clone());
        Ok(SubscriptionId(id))
    }

    async fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> StoreResult<bool> {
        match self.lock().subscriptions.get_mut(&id.0) {
            Some(stored) if stored == expected => {
                *stored = new.clone();
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(StoreError::not_found(format!("subscription {}", id.0))),
        }
    }

    async fn current_subscription(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        Ok(self
            .lock()
            .subscriptions
            .iter()
            .filter(|(_, s)| s.billable == *billable && s.is_active(at))
            .max_by_key(|(id, s)| (s.started_at, **id))
            .map(|(id, s)| (SubscriptionId(*id), s.clone())))
    }

    async fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        let mut s = self.lock();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let expired: Vec<(SubscriptionId, Subscription)> = s
            .subscriptions
            .iter()
            .filter(|(id, sub)| sub.is_expired(now) && !s.expiry_claimed.contains(*id))
            .take(limit)
            .map(|(id, sub)| (SubscriptionId(*id), sub.clone()))
            .collect();
        s.expiry_claimed.extend(expired.iter().map(|(id, _)| id.0));
        Ok(expired)
    }

    async fn limit_override_at(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<LimitOverride>> {
        Ok(self
            .lock()
            .overrides
            .iter()
            .rev()
            .find(|o| o.billable == *billable && o.applies_at(at))
            .cloned())
    }
}
