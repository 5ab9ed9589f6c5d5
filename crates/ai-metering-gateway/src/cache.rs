//! What every call of a key reads, kept for a few seconds (`[gateway] cache_ttl_secs`, 5 by
//! default, 0 for none): the key itself, and its billable's entitlement (subscription, plan,
//! limit override, period). A cached call goes to the store only for its reservation and its
//! settlement, which decide atomically whether it fits: the cache never lets a call past a
//! limit, it only decides which limits apply.
//!
//! What a short TTL costs: a key revoked, or a plan changed, by another process takes effect
//! in this gateway up to `cache_ttl_secs` later. An entitlement is never used past its
//! period's end (the `Meter` ignores it then), nor a key past its revocation instant.
//! Only keys that authenticated are kept, so unknown keys cannot fill the cache.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use ai_metering_core::keys::ApiKey;
use ai_metering_core::{Billable, Entitlement};
use chrono::{DateTime, Duration, Utc};

/// Entries beyond which expired ones are swept on insert.
const SWEEP_AT: usize = 10_000;

/// A map of values that expire `ttl` after they were put.
#[derive(Debug)]
struct Expiring<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, DateTime<Utc>)>>,
}

impl<K: Eq + Hash, V: Clone> Expiring<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, DateTime<Utc>)>> {
        // Every operation is one insert, lookup or removal: a poisoned map is still whole.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, if put less than the TTL before `now`.
    fn get<Q>(&self, key: &Q, now: DateTime<Utc>) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if self.ttl <= Duration::zero() {
            return None;
        }
        let entries = self.lock();
        let (value, expires) = entries.get(key)?;
        (now < *expires).then(|| value.clone())
    }

    fn put(&self, key: K, value: V, now: DateTime<Utc>) {
        if self.ttl <= Duration::zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (_, expires)| now < *expires);
        }
        entries.insert(key, (value, now + self.ttl));
    }
}

/// The gateway's caches of keys and entitlements.
#[derive(Debug)]
pub(crate) struct Cache {
    /// Authenticated keys by the text presented.
    keys: Expiring<String, ApiKey>,
    /// Entitlements by billable.
    entitlements: Expiring<Billable, Entitlement>,
}

impl Cache {
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        let ttl = Duration::from_std(ttl).unwrap_or(Duration::MAX);
        Self {
            keys: Expiring::new(ttl),
            entitlements: Expiring::new(ttl),
        }
    }

    /// The key `presented` authenticated as, if cached and not revoked at `now`.
    pub(crate) fn key(&self, presented: &str, now: DateTime<Utc>) -> Option<ApiKey> {
        self.keys
            .get(presented, now)
            .filter(|key| !key.is_revoked_at(now))
    }

    pub(crate) fn put_key(&self, presented: &str, key: ApiKey, now: DateTime<Utc>) {
        self.keys.put(presented.to_owned(), key, now);
    }

    /// `billable`'s cached entitlement.
    pub(crate) fn entitlement(
        &self,
        billable: &Billable,
        now: DateTime<Utc>,
    ) -> Option<Entitlement> {
        self.entitlements.get(billable, now)
    }

    pub(crate) fn put_entitlement(&self, entitlement: Entitlement, now: DateTime<Utc>) {
        self.entitlements
            .put(entitlement.billable.clone(), entitlement, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(revoked_at: Option<DateTime<Utc>>) -> ApiKey {
        ApiKey {
            id: "0123456789abcdef".into(),
            billable: Billable::new("team", "acme"),
            tenant: None,
            allowed_models: vec![],
            name: "k".into(),
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            revoked_at,
        }
    }

    #[test]
    fn keys_expire_after_the_ttl_and_at_their_revocation() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let cache = Cache::new(std::time::Duration::from_secs(5));
        cache.put_key("sk-a", key(None), t0);
        assert!(cache.key("sk-a", t0 + Duration::seconds(4)).is_some());
        assert!(cache.key("sk-a", t0 + Duration::seconds(5)).is_none());
        assert!(cache.key("sk-b", t0).is_none());
        let revoked = t0 + Duration::seconds(2);
        cache.put_key("sk-r", key(Some(revoked)), t0);
        assert!(cache.key("sk-r", t0 + Duration::seconds(1)).is_some());
        assert!(cache.key("sk-r", revoked).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let cache = Cache::new(std::time::Duration::ZERO);
        cache.put_key("sk-a", key(None), t0);
        assert!(cache.key("sk-a", t0).is_none());
    }
}
