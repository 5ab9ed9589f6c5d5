//! [`MemoryStore`]'s ReportStore and AdminStore: listings, sums and operator writes.

use super::*;
use crate::store::{AdminStore, ReportStore};

impl ReportStore for MemoryStore {
    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        Ok(self.lock().plans.values().cloned().collect())
    }

    async fn subscriptions(
        &self,
        billable: &Billable,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        let mut subs: Vec<_> = self
            .lock()
            .subscriptions
            .iter()
            .filter(|(_, s)| s.billable == *billable)
            .map(|(id, s)| (SubscriptionId(*id), s.clone()))
            .collect();
        subs.sort_by_key(|(id, s)| (s.started_at, *id));
        Ok(subs)
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

    async fn credit_transactions(
        &self,
        billable: &Billable,
        currency: Currency,
        page: Page,
    ) -> StoreResult<Vec<CreditTransaction>> {
        let s = self.lock();
        let mut txs: Vec<&CreditTransaction> = s
            .ledger
            .iter()
            .filter(|t| t.billable == *billable && t.amount.currency == currency)
            .collect();
        txs.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
        Ok(paginate(txs.into_iter().cloned(), page))
    }

    async fn grants(
        &self,
        billable: &Billable,
        currency: Currency,
    ) -> StoreResult<Vec<WalletGrant>> {
        let s = self.lock();
        let mut grants: Vec<WalletGrant> = s
            .wallets
            .get(&(billable.clone(), currency))
            .map(|w| w.grants.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|g| WalletGrant {
                billable: billable.clone(),
                currency,
                grant: g.clone(),
                created_at: s
                    .grant_created
                    .get(&g.id.0)
                    .copied()
                    .unwrap_or(g.effective_at),
            })
            .collect();
        grants.sort_by(|a, b| a.grant.burn_cmp(&b.grant));
        Ok(grants)
    }
}

impl AdminStore for MemoryStore {
    async fn update_subscription(
        &self,
        id: SubscriptionId,
        subscription: &Subscription,
    ) -> StoreResult<()> {
        match self.lock().subscriptions.get_mut(&id.0) {
            Some(stored) => {
                *stored = subscription.clone();
                Ok(())
            }
            None => Err(StoreError::not_found(format!("subscription {}", id.0))),
        }
    }

    async fn find_subscription_by_meta(
        &self,
        key: &str,
        value: &str,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        Ok(self
            .lock()
            .subscriptions
            .iter()
            .filter(|(_, s)| s.meta.get(key).and_then(|v| v.as_str()) == Some(value))
            .max_by_key(|(id, s)| (s.started_at, **id))
            .map(|(id, s)| (SubscriptionId(*id), s.clone())))
    }

    async fn insert_limit_override(&self, limit_override: &LimitOverride) -> StoreResult<()> {
        self.lock().overrides.push(limit_override.clone());
        Ok(())
    }
}
