//! [`MemoryStore`]: every storage trait, in process memory, for tests and single-instance apps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod admin;
mod api_keys;
mod audit;
mod counters;
mod credits;
mod overages;
mod plans;
mod retention;
mod subscriptions;
mod usage;
mod webhooks;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{
    CounterStore, CreditOutcome, CreditStore, CreditTransaction, Direction, GroupBy, GroupedSums,
    HoldId, NewGrant, NewOverage, OverageRecord, OverageStore, Overdraft, Page, PeriodUsage,
    PlanStore, Recorded, ReservationId, ReserveOutcome, ReserveRequest, Settled, Settlement,
    StoreError, StoreErrorKind, StoreResult, SubscriptionId, SubscriptionStore, UsageEntry,
    UsageFilter, UsageRecord, UsageStore, UsageSums, WalletBalance, WalletGrant, WebhookEventStore,
};
use crate::billable::Billable;
use crate::grants::{self, CreditGrant, GrantTake};
use crate::limit::{Thresholds, UsageTotals, evaluate};
use crate::money::{Currency, Money};
use crate::period::Period;
use crate::plan::{LimitOverride, Plan, Subscription};

/// An in-memory implementation of every storage trait.
///
/// Meant for tests, examples and single-instance apps that can lose their data on restart.
/// All state sits behind one [`Mutex`], so every operation is trivially atomic; the lock is
/// never held across an `.await` (no operation awaits anything). Clones share the state.
///
/// It is also the executable reference of the semantics documented on the traits: the store
/// conformance suite (crate `ai-metering-testkit`) runs against it as it does against the
/// database stores.
///
/// ```
/// use ai_metering_core::store::{CreditOutcome, CreditStore, MemoryStore, Overdraft};
/// use ai_metering_core::{Billable, Currency, Money};
/// use chrono::{TimeZone, Utc};
/// use rust_decimal::Decimal;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let team = Billable::new("team", "acme");
/// let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
///
/// store.add_credits(&team, Money::new(Decimal::TEN, Currency::USD), "top-up", at).await?;
/// let spend = Money::new(Decimal::from(4), Currency::USD);
/// let outcome = store.deduct_credits(&team, spend, "usage", Overdraft::Disallowed, at).await?;
/// assert!(matches!(outcome, CreditOutcome::Done(ref tx) if tx.balance_after == Decimal::from(6)));
///
/// // Clones share the state.
/// let wallet = store.clone().wallet(&team, Currency::USD).await?;
/// assert_eq!(wallet.available(), Decimal::from(6));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// use ai_metering_core::store::MemoryStore;
    /// let store = MemoryStore::new();
    /// assert!(format!("{store:?}").contains("usage_rows: 0"));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the state. A panic while the lock was held cannot leave the state half-changed
    /// (no operation panics between its first and last write), so a poisoned lock is simply
    /// taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryStore");
        match self.state.try_lock() {
            Ok(s) => d
                .field("plans", &s.plans.len())
                .field("subscriptions", &s.subscriptions.len())
                .field("usage_rows", &s.usage.len())
                .field("reservations", &s.reservation_counters.len())
                .field("holds", &s.holds.len())
                .field("credit_transactions", &s.ledger.len())
                .field("overages", &s.overages.len())
                .finish(),
            Err(_) => d.finish_non_exhaustive(),
        }
    }
}

/// Everything the store holds.
#[derive(Default)]
struct State {
    plans: BTreeMap<String, Plan>,
    subscriptions: BTreeMap<i64, Subscription>,
    /// Subscriptions whose expiry was claimed.
    expiry_claimed: HashSet<i64>,
    overrides: Vec<LimitOverride>,
    /// Usage rows in insertion (id) order.
    usage: Vec<UsageRecord>,
    /// (billable, idempotency key) -> index into `usage`.
    idempotency: HashMap<(Billable, String), usize>,
    counters: HashMap<Billable, HashMap<Period, Counter>>,
    /// Reservation id -> the counter holding it.
    reservation_counters: HashMap<i64, (Billable, Period)>,
    claimed_thresholds: HashSet<(Billable, Period, Decimal)>,
    wallets: HashMap<(Billable, Currency), Wallet>,
    holds: HashMap<i64, Hold>,
    /// When each grant was added, by grant id.
    grant_created: HashMap<i64, DateTime<Utc>>,
    ledger: Vec<CreditTransaction>,
    overages: BTreeMap<i64, OverageRecord>,
    overage_by_usage: HashMap<i64, i64>,
    webhook_events: HashSet<String>,
    /// API keys by public id, with their secrets' digests.
    api_keys: BTreeMap<String, (crate::keys::ApiKey, String)>,
    last_id: i64,
}

/// One billable's usage in one period window.
#[derive(Default)]
struct Counter {
    recorded: UsageTotals,
    reservations: HashMap<i64, Reservation>,
}

struct Reservation {
    amount: UsageTotals,
    expires_at: DateTime<Utc>,
    hold: Option<i64>,
    idempotency_key: Option<String>,
    exclusive: bool,
}

#[derive(Default)]
struct Wallet {
    balance: Decimal,
    held: Decimal,
    /// The grants partitioning `balance` (see [`crate::grants`]), in insertion order.
    grants: Vec<CreditGrant>,
}

impl Wallet {
    /// The wallet as [`CreditStore::wallet_at`] reads it at `at`.
    fn balance_at(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<WalletBalance> {
        Ok(WalletBalance {
            billable: billable.clone(),
            currency,
            balance: self.balance,
            held: self.held,
            unusable: grants::unusable(&self.grants, at).map_err(|e| invalid(e.to_string()))?,
        })
    }
}

struct Hold {
    billable: Billable,
    amount: Money,
    expires_at: DateTime<Utc>,
    /// What it took from the wallet's grants.
    takes: Vec<GrantTake>,
}

fn add_totals(a: UsageTotals, b: UsageTotals) -> UsageTotals {
    // Saturating like `UsageSums::add`: sums of bounded per-call counts cannot realistically
    // overflow, and a saturated total still refuses further reservations.
    UsageTotals::new(
        a.tokens.saturating_add(b.tokens),
        a.cost.saturating_add(b.cost),
    )
}

fn contains(period: &Period, at: DateTime<Utc>) -> bool {
    period.start <= at && at < period.end
}

fn paginate<T>(items: impl Iterator<Item = T>, page: Page) -> Vec<T> {
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit.min(Page::MAX_LIMIT)).unwrap_or(usize::MAX);
    items.skip(offset).take(limit).collect()
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Invalid, message)
}

fn require_positive(amount: &Money, what: &str) -> StoreResult<()> {
    if amount.amount > Decimal::ZERO {
        Ok(())
    } else {
        Err(invalid(format!("{what} must be positive, got {amount}")))
    }
}

fn overflow(what: &str) -> StoreError {
    invalid(format!("arithmetic overflow computing {what}"))
}

impl Counter {
    fn reserved(&self, now: DateTime<Utc>) -> UsageTotals {
        self.reservations
            .values()
            .filter(|r| r.expires_at > now)
            .fold(UsageTotals::ZERO, |acc, r| add_totals(acc, r.amount))
    }

    fn usage(&self, now: DateTime<Utc>) -> PeriodUsage {
        PeriodUsage {
            recorded: self.recorded,
            reserved: self.reserved(now),
        }
    }
}

impl State {
    fn next_id(&mut self) -> i64 {
        self.last_id = self.last_id.saturating_add(1);
        self.last_id
    }

    /// The recorded usage of `billable` in `period`, summed from the rows.
    fn recorded_from_rows(&self, billable: &Billable, period: &Period) -> UsageTotals {
        self.usage
            .iter()
            .filter(|r| r.entry.billable == *billable && contains(period, r.entry.occurred_at))
            .fold(UsageTotals::ZERO, |acc, r| {
                add_totals(acc, r.entry.totals())
            })
    }

    /// The counter of `billable` in `period`, created from the existing rows when missing.
    fn counter(&mut self, billable: &Billable, period: &Period) -> &mut Counter {
        let seed = match self.counters.get(billable) {
            Some(c) if c.contains_key(period) => None,
            _ => Some(self.recorded_from_rows(billable, period)),
        };
        self.counters
            .entry(billable.clone())
            .or_default()
            .entry(*period)
            .or_insert_with(|| Counter {
                recorded: seed.unwrap_or_default(),
                reservations: HashMap::new(),
            })
    }

    /// Drops a reservation and gives its credit hold back; false when it did not exist.
    fn drop_reservation(&mut self, id: ReservationId) -> bool {
        let Some((billable, period)) = self.reservation_counters.remove(&id.0) else {
            return false;
        };
        let dropped = self
            .counters
            .get_mut(&billable)
            .and_then(|c| c.get_mut(&period))
            .and_then(|c| c.reservations.remove(&id.0));
        match dropped {
            Some(reservation) => {
                if let Some(hold) = reservation.hold {
                    self.release_hold(hold);
                }
                true
            }
            None => false,
        }
    }

    /// A reservation, by id.
    fn reservation(&self, id: ReservationId) -> Option<&Reservation> {
        let (billable, period) = self.reservation_counters.get(&id.0)?;
        self.counters
            .get(billable)?
            .get(period)?
            .reservations
            .get(&id.0)
    }

    /// The live reservations of `billable` at `now`, with their ids.
    fn live_reservations<'a>(
        &'a self,
        billable: &Billable,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (i64, &'a Reservation)> + 'a {
        self.counters
            .get(billable)
            .into_iter()
            .flat_map(|c| c.values())
            .flat_map(|c| c.reservations.iter())
            .filter(move |(_, r)| r.expires_at > now)
            .map(|(id, r)| (*id, r))
    }

    /// Drops a credit hold, giving its amount back to the available balance.
    fn release_hold(&mut self, id: i64) -> bool {
        let Some(held) = self.holds.remove(&id) else {
            return false;
        };
        let wallet = self.wallet(&held.billable, held.amount.currency);
        // Cannot overflow: `held` includes this hold's amount.
        wallet.held = wallet.held.saturating_sub(held.amount.amount).normalize();
        grants::release_hold(&mut wallet.grants, &held.takes);
        true
    }

    /// Holds `amount` (positive) in the wallet until `expires_at`, taking it from the grants
    /// usable at `now` first; returns the hold's id. The caller checked the funds.
    fn hold(
        &mut self,
        billable: &Billable,
        amount: Money,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let wallet = self.wallet(billable, amount.currency);
        let held = wallet
            .held
            .checked_add(amount.amount)
            .ok_or_else(|| overflow("the held amount"))?;
        let taken = grants::apply_hold(&mut wallet.grants, amount.amount, now)
            .map_err(|e| invalid(e.to_string()))?;
        wallet.held = held;
        let id = self.next_id();
        self.holds.insert(
            id,
            Hold {
                billable: billable.clone(),
                amount,
                expires_at,
                takes: taken.takes,
            },
        );
        Ok(id)
    }

    /// Captures the hold `hold` (when it still exists) for `cost`: the hold is dropped, and
    /// when `debit`, `cost` is debited from the grants the hold took, then as
    /// [`grants::capture_hold`] says. Nothing changes on error.
    fn capture(
        &mut self,
        billable: &Billable,
        hold: Option<i64>,
        cost: Money,
        debit: bool,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<CreditTransaction>> {
        let hold = hold.and_then(|id| self.holds.get(&id).map(|h| (id, h.amount, h.takes.clone())));
        let (held, takes) = match &hold {
            Some((_, amount, takes)) if amount.currency == cost.currency => {
                (amount.amount, takes.clone())
            }
            _ => (Decimal::ZERO, Vec::new()),
        };
        if !debit {
            if let Some((id, _, _)) = hold {
                self.release_hold(id);
            }
            return Ok(None);
        }
        let wallet = self.wallet(billable, cost.currency);
        // Checked before anything changes, so that an error leaves the state untouched.
        wallet
            .balance
            .checked_sub(cost.amount)
            .ok_or_else(|| overflow("a wallet balance"))?;
        let mut next = wallet.grants.clone();
        let paid = grants::capture_hold(&mut next, &takes, held, cost.amount, at)
            .map_err(|e| invalid(e.to_string()))?;
        // Everything is checked: apply (capture_hold gave the hold's grants back).
        if let Some((id, amount, _)) = hold {
            self.holds.remove(&id);
            let w = self.wallet(billable, amount.currency);
            w.held = w.held.saturating_sub(amount.amount).normalize();
        }
        self.wallet(billable, cost.currency).grants = next;
        self.post(billable, cost, Direction::Debit, reason, paid.takes, at)
            .map(Some)
    }

    /// The wallet of `billable` in `currency` as [`CreditStore::wallet_at`] reads it at
    /// `at` (an empty one when it has none); `None` when it cannot be told (its grants
    /// overflow), for reports that are informational.
    fn wallet_now(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Option<WalletBalance> {
        match self.wallets.get(&(billable.clone(), currency)) {
            Some(w) => w.balance_at(billable, currency, at).ok(),
            None => Some(WalletBalance::empty(billable.clone(), currency)),
        }
    }

    /// The wallet's available balance at `now`, counting the hold `except` as given back.
    fn available(
        &self,
        billable: &Billable,
        currency: Currency,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Decimal> {
        let Some(wallet) = self.wallets.get(&(billable.clone(), currency)) else {
            return Ok(Decimal::ZERO);
        };
        let mut grants = wallet.grants.clone();
        let mut held = wallet.held;
        if let Some(h) = except
            .and_then(|id| self.holds.get(&id))
            .filter(|h| h.amount.currency == currency)
        {
            held = held.saturating_sub(h.amount.amount);
            grants::release_hold(&mut grants, &h.takes);
        }
        let unusable = grants::unusable(&grants, now).map_err(|e| invalid(e.to_string()))?;
        Ok(wallet.balance.saturating_sub(held).saturating_sub(unusable))
    }

    /// The usage row stored under `billable`'s `key`.
    fn recorded_with_key(&self, billable: &Billable, key: &str) -> Option<&UsageRecord> {
        self.idempotency
            .get(&(billable.clone(), key.to_owned()))
            .and_then(|i| self.usage.get(*i))
    }

    fn insert_usage(&mut self, entry: &UsageEntry) -> Recorded {
        if let Some(key) = &entry.idempotency_key {
            let existing = self
                .idempotency
                .get(&(entry.billable.clone(), key.clone()))
                .and_then(|i| self.usage.get(*i));
            if let Some(record) = existing {
                return Recorded {
                    record: record.clone(),
                    created: false,
                };
            }
        }
        let record = UsageRecord {
            id: self.next_id(),
            entry: entry.clone(),
        };
        if let Some(key) = &entry.idempotency_key {
            self.idempotency
                .insert((entry.billable.clone(), key.clone()), self.usage.len());
        }
        if let Some(counters) = self.counters.get_mut(&entry.billable) {
            let totals = entry.totals();
            for (period, counter) in counters.iter_mut() {
                if contains(period, entry.occurred_at) {
                    counter.recorded = add_totals(counter.recorded, totals);
                }
            }
        }
        self.usage.push(record.clone());
        Recorded {
            record,
            created: true,
        }
    }

    /// Stores an overage, or returns the one already stored for its usage row.
    fn insert_overage_row(&mut self, overage: &NewOverage) -> OverageRecord {
        let existing = self
            .overage_by_usage
            .get(&overage.usage_id)
            .and_then(|id| self.overages.get(id));
        if let Some(record) = existing {
            return record.clone();
        }
        let record = OverageRecord {
            id: self.next_id(),
            overage: overage.clone(),
            synced_at: None,
            external_id: None,
        };
        self.overage_by_usage.insert(overage.usage_id, record.id);
        self.overages.insert(record.id, record.clone());
        record
    }

    fn wallet(&mut self, billable: &Billable, currency: Currency) -> &mut Wallet {
        self.wallets
            .entry((billable.clone(), currency))
            .or_default()
    }

    /// Appends a ledger entry moving `amount` in `direction`, and returns it.
    fn post(
        &mut self,
        billable: &Billable,
        amount: Money,
        direction: Direction,
        reason: &str,
        grants: Vec<GrantTake>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        let wallet = self.wallet(billable, amount.currency);
        let balance_after = match direction {
            Direction::Credit => wallet.balance.checked_add(amount.amount),
            Direction::Debit => wallet.balance.checked_sub(amount.amount),
        }
        .ok_or_else(|| overflow("a wallet balance"))?;
        wallet.balance = balance_after;
        let tx = CreditTransaction {
            id: self.next_id(),
            billable: billable.clone(),
            amount,
            direction,
            reason: reason.to_owned(),
            balance_after,
            metadata: serde_json::Map::new(),
            grants,
            created_at: at,
        };
        self.ledger.push(tx.clone());
        Ok(tx)
    }

    /// `Ok(Ok(()))` when `overdraft` lets the wallet cover `amount` at `now`; otherwise
    /// `Ok(Err(available))`.
    fn check_funds(
        &self,
        billable: &Billable,
        amount: &Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<(), Decimal>> {
        let available = self.available(billable, amount.currency, None, now)?;
        if overdraft.permits(available, amount.amount) {
            Ok(Ok(()))
        } else {
            Ok(Err(available))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::store::ReportStore;
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()
    }

    fn usd(amount: i64) -> Money {
        Money::new(Decimal::from(amount), Currency::USD)
    }

    #[tokio::test]
    async fn clones_share_one_state() {
        let a = MemoryStore::new();
        let b = a.clone();
        a.upsert_plan(&Plan::new("pro", "Pro")).await.unwrap();
        assert!(b.plan("pro").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_poisoned_lock_is_taken_over() {
        let store = MemoryStore::new();
        let poisoner = store.clone();
        let result = std::thread::spawn(move || {
            let _guard = poisoner.state.lock().unwrap();
            panic!("poison the lock on purpose");
        })
        .join();
        assert!(result.is_err() && store.state.is_poisoned());
        store.upsert_plan(&Plan::new("pro", "Pro")).await.unwrap();
        assert_eq!(store.plans().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn debug_shows_sizes_not_contents() {
        let store = MemoryStore::new();
        store
            .upsert_plan(&Plan::new("secret-plan", "P"))
            .await
            .unwrap();
        let text = format!("{store:?}");
        assert!(text.contains("plans: 1"), "{text}");
        assert!(!text.contains("secret-plan"), "{text}");
        // While the lock is held elsewhere, Debug does not block.
        let _guard = store.state.lock().unwrap();
        assert_eq!(format!("{store:?}"), "MemoryStore { .. }");
    }

    #[tokio::test]
    async fn settling_a_hold_in_another_currency_changes_nothing() {
        let store = MemoryStore::new();
        let b = Billable::new("user", 1);
        store
            .add_credits(&b, usd(10), "top-up", at(1))
            .await
            .unwrap();
        let CreditOutcome::Done(hold) = store
            .hold_credits(&b, usd(4), Overdraft::Disallowed, at(2))
            .await
            .unwrap()
        else {
            panic!("the hold fits");
        };
        let eur = Money::new(Decimal::ONE, Currency::EUR);
        let err = store
            .settle_hold(hold, eur, "usage", at(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid);
        let wallet = store.wallet(&b, Currency::USD).await.unwrap();
        assert_eq!(
            (wallet.balance, wallet.held),
            (Decimal::TEN, Decimal::from(4))
        );
        // The hold is still there and settles normally.
        let tx = store
            .settle_hold(hold, usd(3), "usage", at(1))
            .await
            .unwrap();
        assert_eq!(tx.balance_after, Decimal::from(7));
    }

    #[tokio::test]
    async fn a_balance_that_would_overflow_is_refused_unchanged() {
        let store = MemoryStore::new();
        let b = Billable::new("user", 1);
        let max = Money::new(Decimal::MAX, Currency::USD);
        store.add_credits(&b, max, "top-up", at(1)).await.unwrap();
        let err = store
            .add_credits(&b, usd(1), "top-up", at(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid);
        assert_eq!(
            store.wallet(&b, Currency::USD).await.unwrap().balance,
            Decimal::MAX
        );
        let page = Page::first(10);
        assert_eq!(
            store
                .credit_transactions(&b, Currency::USD, page)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn unknown_overage_cannot_be_marked_synced() {
        let store = MemoryStore::new();
        let err = store
            .mark_overage_synced(42, "ii_1", at(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::NotFound);
    }
}
