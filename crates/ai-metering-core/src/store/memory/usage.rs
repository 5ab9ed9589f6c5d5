//! [`MemoryStore`]'s UsageStore: usage rows, their idempotency keys and sums.

use super::*;

impl UsageStore for MemoryStore {
    async fn insert_usage(&self, entry: &UsageEntry) -> StoreResult<Recorded> {
        Ok(self.lock().insert_usage(entry))
    }

    async fn insert_usage_batch(&self, entries: &[UsageEntry]) -> StoreResult<Vec<Recorded>> {
        // One lock for the whole batch: nothing can fail half-way, and nobody sees half of it.
        let mut s = self.lock();
        Ok(entries.iter().map(|e| s.insert_usage(e)).collect())
    }

    async fn usage_by_idempotency_key(
        &self,
        billable: &Billable,
        key: &str,
    ) -> StoreResult<Option<UsageRecord>> {
        let s = self.lock();
        Ok(s.idempotency
            .get(&(billable.clone(), key.to_owned()))
            .and_then(|i| s.usage.get(*i))
            .cloned())
    }

    async fn query_usage(&self, filter: &UsageFilter, page: Page) -> StoreResult<Vec<UsageRecord>> {
        let s = self.lock();
        let mut rows: Vec<&UsageRecord> = s
            .usage
            .iter()
            .filter(|r| filter.matches(&r.entry))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.entry.occurred_at, r.id)));
        Ok(paginate(rows.into_iter().cloned(), page))
    }
}
