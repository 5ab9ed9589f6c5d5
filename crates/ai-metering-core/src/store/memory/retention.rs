//! [`MemoryStore`]'s RetentionStore: erasure, anonymisation and pruning.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::*;
use crate::store::{RetentionStore, RowCounts};

impl RetentionStore for MemoryStore {
    async fn delete_billable(&self, billable: &Billable) -> StoreResult<RowCounts> {
        let mut s = self.lock();
        let mut counts = s.remove_usage(|r| r.entry.billable == *billable);
        let before = s.subscriptions.len();
        s.subscriptions.retain(|_, sub| sub.billable != *billable);
        counts.subscriptions = gone(before, s.subscriptions.len());
        let before = s.overrides.len();
        s.overrides.retain(|o| o.billable != *billable);
        counts.limit_overrides = gone(before, s.overrides.len());
        if let Some(counters) = s.counters.remove(billable) {
            counts.counters = counters.len() as u64;
            counts.reservations = counters.values().map(|c| c.reservations.len() as u64).sum();
        }
        s.reservation_counters.retain(|_, (b, _)| b != billable);
        let before = s.claimed_thresholds.len();
        s.claimed_thresholds.retain(|(b, _, _)| b != billable);
        counts.threshold_claims = gone(before, s.claimed_thresholds.len());
        let before = s.api_keys.len();
        s.api_keys.retain(|_, (key, _)| key.billable != *billable);
        counts.api_keys = gone(before, s.api_keys.len());
        let before = s.wallets.len();
        let mut grants = Vec::new();
        s.wallets.retain(|(b, _), w| {
            let keep = b != billable;
            if !keep {
                grants.extend(w.grants.iter().map(|g| g.id.0));
            }
            keep
        });
        counts.wallets = gone(before, s.wallets.len());
        counts.credit_grants = grants.len() as u64;
        for id in grants {
            s.grant_created.remove(&id);
        }
        let before = s.holds.len();
        s.holds.retain(|_, h| h.billable != *billable);
        counts.credit_holds = gone(before, s.holds.len());
        let before = s.ledger.len();
        s.ledger.retain(|t| t.billable != *billable);
        counts.credit_transactions = gone(before, s.ledger.len());
        let before = s.overages.len();
        s.overages.retain(|_, o| o.overage.billable != *billable);
        counts.overages = counts
            .overages
            .saturating_add(gone(before, s.overages.len()));
        s.reindex_overages();
        Ok(counts)
    }

    async fn anonymize_billable(
        &self,
        billable: &Billable,
        tombstone: &Billable,
    ) -> StoreResult<RowCounts> {
        if billable == tombstone {
            return Err(invalid("the tombstone must differ from the billable"));
        }
        let mut s = self.lock();
        if let Some((_, currency)) = s
            .wallets
            .keys()
            .find(|(b, c)| b == billable && s.wallets.contains_key(&(tombstone.clone(), *c)))
        {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                format!(
                    "the tombstone {tombstone} already has a {currency} wallet; use a fresh tombstone"
                ),
            ));
        }
        // Every check is done: from here on nothing fails.
        let mut counts = RowCounts::default();
        let rekey = |b: &mut Billable, n: &mut u64| {
            if *b == *billable {
                *b = tombstone.clone();
                *n = n.saturating_add(1);
            }
        };
        for r in &mut s.usage {
            if r.entry.billable == *billable {
                r.entry.billable = tombstone.clone();
                r.entry.user_id = None;
                r.entry.metadata = serde_json::Map::new();
                r.entry.idempotency_key = None;
                counts.usages = counts.usages.saturating_add(1);
            }
        }
        s.reindex_usage();
        for sub in s.subscriptions.values_mut() {
            if sub.billable == *billable {
                sub.meta = serde_json::Map::new();
            }
            rekey(&mut sub.billable, &mut counts.subscriptions);
        }
        for o in &mut s.overrides {
            rekey(&mut o.billable, &mut counts.limit_overrides);
        }
        for t in &mut s.ledger {
            if t.billable == *billable {
                t.metadata = serde_json::Map::new();
            }
            rekey(&mut t.billable, &mut counts.credit_transactions);
        }
        for h in s.holds.values_mut() {
            rekey(&mut h.billable, &mut counts.credit_holds);
        }
        for o in s.overages.values_mut() {
            rekey(&mut o.overage.billable, &mut counts.overages);
        }
        let wallets: Vec<Currency> = s
            .wallets
            .keys()
            .filter(|(b, _)| b == billable)
            .map(|(_, c)| *c)
            .collect();
        for currency in wallets {
            if let Some(w) = s.wallets.remove(&(billable.clone(), currency)) {
                counts.credit_grants = counts.credit_grants.saturating_add(w.grants.len() as u64);
                s.wallets.insert((tombstone.clone(), currency), w);
                counts.wallets = counts.wallets.saturating_add(1);
            }
        }
        let before = s.claimed_thresholds.len();
        s.claimed_thresholds.retain(|(b, _, _)| b != billable);
        counts.threshold_claims = gone(before, s.claimed_thresholds.len());
        let before = s.api_keys.len();
        s.api_keys.retain(|_, (key, _)| key.billable != *billable);
        counts.api_keys = gone(before, s.api_keys.len());
        // Counters merge into the tombstone's of the same window; reservations follow.
        if let Some(ours) = s.counters.remove(billable) {
            counts.counters = ours.len() as u64;
            let theirs = s.counters.entry(tombstone.clone()).or_default();
            for (period, counter) in ours {
                counts.reservations = counts
                    .reservations
                    .saturating_add(counter.reservations.len() as u64);
                let target = theirs.entry(period).or_default();
                target.recorded = add_totals(target.recorded, counter.recorded);
                target.reservations.extend(counter.reservations);
            }
            for (b, _) in s.reservation_counters.values_mut() {
                if *b == *billable {
                    *b = tombstone.clone();
                }
            }
        }
        Ok(counts)
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<RowCounts> {
        Ok(self
            .lock()
            .remove_usage(|r| r.entry.user_id.as_deref() == Some(user_id)))
    }

    async fn anonymize_user(&self, user_id: &str) -> StoreResult<RowCounts> {
        Ok(self
            .lock()
            .anonymize_usage(|r| r.entry.user_id.as_deref() == Some(user_id)))
    }

    async fn anonymize_usage_before(&self, cutoff: DateTime<Utc>) -> StoreResult<RowCounts> {
        Ok(self
            .lock()
            .anonymize_usage(|r| r.entry.occurred_at < cutoff))
    }

    async fn prune_usage_before(
        &self,
        cutoff: DateTime<Utc>,
        batch_size: u64,
    ) -> StoreResult<RowCounts> {
        if batch_size == 0 {
            return Err(invalid("the prune batch size must be at least 1"));
        }
        // One lock holds every writer off for the whole prune: in memory it is short.
        Ok(self.lock().remove_usage(|r| r.entry.occurred_at < cutoff))
    }

    async fn rebuild_daily_aggregates(
        &self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<u64> {
        let s = self.lock();
        let groups: BTreeSet<_> = s
            .usage
            .iter()
            .filter(|r| {
                let day = r.entry.occurred_at.date_naive();
                from <= day && day < until
            })
            .map(|r| {
                let e = &r.entry;
                (
                    e.occurred_at.date_naive(),
                    &e.billable,
                    &e.tenant,
                    &e.provider,
                    &e.model,
                    &e.feature,
                    e.cost.currency,
                )
            })
            .collect();
        Ok(groups.len() as u64)
    }
}

/// How many entries a `retain` removed.
fn gone(before: usize, after: usize) -> u64 {
    before.saturating_sub(after) as u64
}

impl State {
    /// Deletes the usage rows that `doomed` picks, with their overage rows, and recounts the
    /// counters of their billables.
    fn remove_usage(&mut self, doomed: impl Fn(&UsageRecord) -> bool) -> RowCounts {
        let mut counts = RowCounts::default();
        let mut removed_ids = HashSet::new();
        let mut billables = HashSet::new();
        self.usage.retain(|r| {
            if doomed(r) {
                removed_ids.insert(r.id);
                billables.insert(r.entry.billable.clone());
                false
            } else {
                true
            }
        });
        counts.usages = removed_ids.len() as u64;
        if removed_ids.is_empty() {
            return counts;
        }
        self.reindex_usage();
        let before = self.overages.len();
        self.overages
            .retain(|_, o| !removed_ids.contains(&o.overage.usage_id));
        counts.overages = gone(before, self.overages.len());
        self.reindex_overages();
        for billable in &billables {
            counts.counters = counts.counters.saturating_add(self.recount(billable));
        }
        counts
    }

    /// Drops the user id, metadata and idempotency key of the rows `picked` picks.
    fn anonymize_usage(&mut self, picked: impl Fn(&UsageRecord) -> bool) -> RowCounts {
        let mut counts = RowCounts::default();
        for r in &mut self.usage {
            if picked(r) {
                r.entry.user_id = None;
                r.entry.metadata = serde_json::Map::new();
                r.entry.idempotency_key = None;
                counts.usages = counts.usages.saturating_add(1);
            }
        }
        self.reindex_usage();
        counts
    }

    /// Sets every counter of `billable` to the sum of its rows; returns how many changed.
    fn recount(&mut self, billable: &Billable) -> u64 {
        let periods: Vec<Period> = match self.counters.get(billable) {
            Some(counters) => counters.keys().copied().collect(),
            None => return 0,
        };
        let mut changed = 0_u64;
        for period in periods {
            let recorded = self.recorded_from_rows(billable, &period);
            if let Some(counter) = self
                .counters
                .get_mut(billable)
                .and_then(|c| c.get_mut(&period))
                && counter.recorded != recorded
            {
                counter.recorded = recorded;
                changed = changed.saturating_add(1);
            }
        }
        changed
    }

    /// Rebuilds the idempotency index after rows moved or lost their keys.
    fn reindex_usage(&mut self) {
        self.idempotency = self
            .usage
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let key = r.entry.idempotency_key.clone()?;
                Some(((r.entry.billable.clone(), key), i))
            })
            .collect();
    }

    /// Rebuilds the usage-to-overage index after overage rows were deleted.
    fn reindex_overages(&mut self) {
        self.overage_by_usage = self
            .overages
            .iter()
            .map(|(id, o)| (o.overage.usage_id, *id))
            .collect();
    }
}
