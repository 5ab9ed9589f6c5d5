//! The limit-check cache: recent [`QuotaStatus`] values per billable, so that the common
//! request (a billable well within its limits) costs no store round trip. Each status is
//! kept with its quota headers already formatted, so a cached request only copies them.
//!
//! An entry is served until its TTL passes or its period ends, whichever comes first. The
//! layer drops a billable's entry as soon as usage is recorded through this layer (a
//! [`RemainingQuota::meter`](crate::RemainingQuota::meter) was used, or a reservation was
//! made) and stores the fresh status it reads afterwards. Usage recorded elsewhere (another
//! app instance, a background job) is seen when the entry expires: the TTL bounds how
//! stale a decision can be. The atomic reservation, when the route has an estimate, is
//! never served from the cache, so limits hold exactly whatever the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ai_metering_core::{Billable, Currency, QuotaStatus};
use chrono::{DateTime, Duration, Utc};

use crate::headers::QuotaHeaders;

/// Entries beyond which expired ones are swept on insert.
const SWEEP_AT: usize = 10_000;

/// A billable's status with its quota headers, formatted once for every response that
/// shows it.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) status: QuotaStatus,
    pub(crate) headers: QuotaHeaders,
}

impl Checked {
    /// Formats the headers of `status`, with cost in `currency`.
    pub(crate) fn new(status: QuotaStatus, currency: Currency) -> Arc<Self> {
        let period = status.entitlement.period;
        let headers = QuotaHeaders::new(&status.check, period.as_ref(), currency);
        Arc::new(Self { status, headers })
    }
}

#[derive(Debug)]
struct Entry {
    checked: Arc<Checked>,
    expires_at: DateTime<Utc>,
}

/// A TTL cache of limit checks, shared by every clone of a layer.
#[derive(Debug)]
pub(crate) struct CheckCache {
    ttl: Duration,
    /// foldhash, seeded at random per map: resistant to chosen keys, and several times
    /// cheaper than SipHash for a billable's two short strings.
    entries: Mutex<HashMap<Billable, Entry, foldhash::fast::RandomState>>,
}

impl CheckCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::default()),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    fn enabled(&self) -> bool {
        self.ttl > Duration::zero()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Billable, Entry, foldhash::fast::RandomState>> {
        // A panic while holding the lock cannot leave a map half-updated in a way that
        // matters: every operation is a single insert or remove.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached status of `billable`, if still fresh at `now`.
    pub(crate) fn get(&self, billable: &Billable, now: DateTime<Utc>) -> Option<Arc<Checked>> {
        if !self.enabled() {
            return None;
        }
        let entries = self.lock();
        let entry = entries.get(billable)?;
        (now < entry.expires_at).then(|| Arc::clone(&entry.checked))
    }

    /// Stores `checked` for `billable`, read at `now`.
    pub(crate) fn put(&self, billable: &Billable, checked: Arc<Checked>, now: DateTime<Utc>) {
        if !self.enabled() {
            return;
        }
        let mut expires_at = now.checked_add_signed(self.ttl).unwrap_or(now);
        let status = &checked.status;
        if let Some(reset_at) = status.check.reset_at {
            expires_at = expires_at.min(reset_at);
        }
        if let Some(period) = &status.entitlement.period {
            expires_at = expires_at.min(period.end);
        }
        let mut entries = self.lock();
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, e| now < e.expires_at);
        }
        entries.insert(
            billable.clone(),
            Entry {
                checked,
                expires_at,
            },
        );
    }

    /// Forgets `billable`'s entry (after a local write).
    pub(crate) fn invalidate(&self, billable: &Billable) {
        if self.enabled() {
            self.lock().remove(billable);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::Entitlement;
    use ai_metering_core::limit::{LimitCheck, Limits};
    use ai_metering_core::period::Period;
    use ai_metering_core::plan::{BillingMode, OveragePolicy};
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 31, h, 0, 0).unwrap()
    }

    fn status(period_end: DateTime<Utc>) -> Arc<Checked> {
        let status = QuotaStatus {
            entitlement: Entitlement {
                billable: Billable::new("user", 1),
                subscription: None,
                plan: None,
                limits: Limits::UNLIMITED,
                period: Some(Period {
                    start: at(0),
                    end: period_end,
                }),
                overage_policy: OveragePolicy::Block,
                billing_mode: BillingMode::Plan,
            },
            check: LimitCheck::unlimited(),
        };
        Checked::new(status, Currency::USD)
    }

    #[test]
    fn entries_live_until_the_ttl_or_the_period_end() {
        let cache = CheckCache::new(Duration::hours(2));
        let b = Billable::new("user", 1);
        cache.put(&b, status(at(23)), at(1));
        assert!(cache.get(&b, at(2)).is_some());
        assert!(cache.get(&b, at(3)).is_none(), "TTL passed");
        // The period ends before the TTL: the entry ends with it.
        cache.put(&b, status(at(4)), at(3));
        assert!(cache.get(&b, at(4)).is_none());
    }

    #[test]
    fn invalidation_and_a_zero_ttl_bypass_the_cache() {
        let b = Billable::new("user", 1);
        let cache = CheckCache::new(Duration::hours(1));
        cache.put(&b, status(at(23)), at(1));
        cache.invalidate(&b);
        assert!(cache.get(&b, at(1)).is_none());
        let off = CheckCache::new(Duration::zero());
        off.put(&b, status(at(23)), at(1));
        assert!(off.get(&b, at(1)).is_none());
    }
}
