//! [`MemoryStore`]'s OverageStore: overage rows and their sync state.

use super::*;

impl OverageStore for MemoryStore {
    async fn insert_overage(&self, overage: &NewOverage) -> StoreResult<OverageRecord> {
        Ok(self.lock().insert_overage_row(overage))
    }

    async fn pending_overages(
        &self,
        after: Option<&OverageRecord>,
        limit: u64,
    ) -> StoreResult<Vec<OverageRecord>> {
        let s = self.lock();
        let cursor = after.map(|o| (o.overage.created_at, o.id));
        let mut pending: Vec<&OverageRecord> = s
            .overages
            .values()
            .filter(|o| o.synced_at.is_none())
            .filter(|o| cursor.is_none_or(|c| (o.overage.created_at, o.id) > c))
            .collect();
        pending.sort_by_key(|o| (o.overage.created_at, o.id));
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(pending.into_iter().take(limit).cloned().collect())
    }

    async fn mark_overage_synced(
        &self,
        id: i64,
        external_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut s = self.lock();
        let Some(record) = s.overages.get_mut(&id) else {
            return Err(StoreError::not_found(format!("overage {id}")));
        };
        if record.synced_at.is_some() {
            return Ok(false);
        }
        record.synced_at = Some(at);
        record.external_id = Some(external_id.to_owned());
        Ok(true)
    }
}
