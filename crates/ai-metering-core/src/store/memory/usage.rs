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

    async fn sum_usage(&self, filter: &UsageFilter) -> StoreResult<UsageSums> {
        let mut sums = UsageSums::default();
        for r in self
            .lock()
            .usage
            .iter()
            .filter(|r| filter.matches(&r.entry))
        {
            sums.add(&r.entry);
        }
        Ok(sums)
    }

    async fn sum_usage_grouped(
        &self,
        filter: &UsageFilter,
        group_by: GroupBy,
    ) -> StoreResult<Vec<GroupedSums>> {
        let mut groups: HashMap<String, UsageSums> = HashMap::new();
        for r in self
            .lock()
            .usage
            .iter()
            .filter(|r| filter.matches(&r.entry))
        {
            groups
                .entry(group_by.key_of(&r.entry))
                .or_default()
                .add(&r.entry);
        }
        let mut groups: Vec<GroupedSums> = groups
            .into_iter()
            .map(|(key, sums)| GroupedSums { key, sums })
            .collect();
        groups.sort_by(|a, b| {
            b.sums
                .total_tokens
                .cmp(&a.sums.total_tokens)
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(groups)
    }
}
