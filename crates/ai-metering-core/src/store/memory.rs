//! [`MemoryStore`]: every storage trait, in process memory, for tests and single-instance apps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod audit;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{
    CounterStore, CreditOutcome, CreditStore, CreditTransaction, Direction, GroupBy, GroupedSums,
    HoldId, NewOverage, OverageRecord, OverageStore, Overdraft, Page, PeriodUsage, PlanStore,
    Recorded, ReservationId, ReserveOutcome, ReserveRequest, Settled, Settlement, StoreError,
    StoreErrorKind, StoreResult, SubscriptionId, SubscriptionStore, UsageEntry, UsageFilter,
    UsageRecord, UsageStore, UsageSums, WalletBalance, WebhookEventStore,
};
use crate::billable::Billable;
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
    ledger: Vec<CreditTransaction>,
    overages: BTreeMap<i64, OverageRecord>,
    overage_by_usage: HashMap<i64, i64>,
    webhook_events: HashSet<String>,
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
}

struct Hold {
    billable: Billable,
    amount: Money,
    expires_at: DateTime<Utc>,
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
        true
    }

    /// The wallet's available balance, counting the hold `except` as given back.
    fn available(&self, billable: &Billable, currency: Currency, except: Option<i64>) -> Decimal {
        let available = self
            .wallets
            .get(&(billable.clone(), currency))
            .map_or(Decimal::ZERO, |w| w.balance.saturating_sub(w.held));
        let returned = except
            .and_then(|id| self.holds.get(&id))
            .filter(|h| h.amount.currency == currency)
            .map_or(Decimal::ZERO, |h| h.amount.amount);
        available.saturating_add(returned)
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
            created_at: at,
        };
        self.ledger.push(tx.clone());
        Ok(tx)
    }

    /// `Ok` when `overdraft` lets the wallet cover `amount`; otherwise the available balance.
    fn check_funds(
        &self,
        billable: &Billable,
        amount: &Money,
        overdraft: Overdraft,
    ) -> Result<(), Decimal> {
        let available = self
            .wallets
            .get(&(billable.clone(), amount.currency))
            .map_or(Decimal::ZERO, |w| w.balance.saturating_sub(w.held));
        if overdraft.permits(available, amount.amount) {
            Ok(())
        } else {
            Err(available)
        }
    }
}

impl PlanStore for MemoryStore {
    async fn upsert_plan(&self, plan: &Plan) -> StoreResult<()> {
        self.lock().plans.insert(plan.slug.clone(), plan.clone());
        Ok(())
    }

    async fn plan(&self, slug: &str) -> StoreResult<Option<Plan>> {
        Ok(self.lock().plans.get(slug).cloned())
    }

    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        Ok(self.lock().plans.values().cloned().collect())
    }
}

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

    async fn insert_limit_override(&self, limit_override: &LimitOverride) -> StoreResult<()> {
        self.lock().overrides.push(limit_override.clone());
        Ok(())
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

impl CounterStore for MemoryStore {
    async fn reserve(&self, request: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        let mut s = self.lock();
        let billable = &request.billable;
        let now = request.now;
        if let Some(key) = &request.idempotency_key {
            if let Some(record) = s.recorded_with_key(billable, key) {
                return Ok(ReserveOutcome::AlreadyRecorded(Box::new(record.clone())));
            }
            let claimed = s.live_reservations(billable, now).any(|(id, r)| {
                Some(ReservationId(id)) != request.replaces
                    && r.idempotency_key.as_deref() == Some(key.as_str())
            });
            if claimed {
                return Ok(ReserveOutcome::KeyInFlight);
            }
        }
        if request.exclusive
            && s.live_reservations(billable, now)
                .any(|(id, r)| Some(ReservationId(id)) != request.replaces && r.exclusive)
        {
            return Ok(ReserveOutcome::Busy);
        }
        let replaced = request
            .replaces
            .and_then(|id| s.reservation(id).map(|r| (id, r.amount, r.hold)))
            .filter(|(id, _, _)| {
                s.reservation_counters.get(&id.0).map(|(b, _)| b) == Some(billable)
            });

        // Reservations of this counter that expired by now stop counting (and their holds).
        let expired: Vec<i64> = s
            .counter(billable, &request.period)
            .reservations
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            s.drop_reservation(ReservationId(id));
        }
        let counter = s.counter(billable, &request.period);
        let mut usage = counter.usage(now);
        if let Some((id, amount, _)) = replaced
            && counter.reservations.contains_key(&id.0)
        {
            usage.reserved = UsageTotals::new(
                usage.reserved.tokens.saturating_sub(amount.tokens),
                (usage.reserved.cost - amount.cost).max(Decimal::ZERO),
            );
        }

        let check = evaluate(
            &request.limits,
            usage.committed(),
            request.amount,
            &Thresholds::default(),
        );
        if let Some(exceeded) = check.exceeded {
            return Ok(ReserveOutcome::Rejected { exceeded, usage });
        }
        let replaced_hold = replaced.and_then(|(_, _, hold)| hold);
        if let Some(hold) = &request.hold {
            let available = s.available(billable, hold.amount.currency, replaced_hold);
            if !hold.permits(available) {
                return Ok(ReserveOutcome::InsufficientCredits { available });
            }
        }

        // Everything is checked: apply.
        if let Some((id, _, _)) = replaced {
            s.drop_reservation(id);
        }
        let hold = match &request.hold {
            Some(h) if h.amount.amount > Decimal::ZERO => {
                let wallet = s.wallet(billable, h.amount.currency);
                wallet.held = wallet
                    .held
                    .checked_add(h.amount.amount)
                    .ok_or_else(|| overflow("the held amount"))?;
                let id = s.next_id();
                s.holds.insert(
                    id,
                    Hold {
                        billable: billable.clone(),
                        amount: h.amount,
                        expires_at: request.expires_at,
                    },
                );
                Some(id)
            }
            _ => None,
        };
        let id = s.next_id();
        let counter = s.counter(billable, &request.period);
        counter.reservations.insert(
            id,
            Reservation {
                amount: request.amount,
                expires_at: request.expires_at,
                hold,
                idempotency_key: request.idempotency_key.clone(),
                exclusive: request.exclusive,
            },
        );
        let usage = counter.usage(now);
        s.reservation_counters
            .insert(id, (billable.clone(), request.period));
        Ok(ReserveOutcome::Reserved {
            id: ReservationId(id),
            hold: hold.map(HoldId),
            usage,
        })
    }

    async fn settle(&self, settlement: &Settlement) -> StoreResult<Settled> {
        let mut s = self.lock();
        let entry = &settlement.entry;
        let period = &settlement.period;
        let hold = s
            .reservation(settlement.reservation)
            .and_then(|r| r.hold)
            .and_then(|id| s.holds.get(&id).map(|h| (id, h.amount)));

        if let Some(key) = &entry.idempotency_key
            && let Some(record) = s.recorded_with_key(&entry.billable, key).cloned()
        {
            s.drop_reservation(settlement.reservation);
            let usage = s.counter(&entry.billable, period).usage(entry.occurred_at);
            return Ok(Settled::replayed(record, usage));
        }

        // Everything that can fail is computed before anything changes.
        let call = entry.totals();
        let before = s.counter(&entry.billable, period).recorded;
        let overage = match &settlement.overage {
            Some(rule) if contains(period, entry.occurred_at) => {
                crate::overage::overage(rule, before, call).map_err(|e| invalid(e.to_string()))?
            }
            _ => None,
        };
        let cost = Money::new(entry.cost.total, entry.cost.currency);
        let debit = settlement.debit_credits && cost.amount > Decimal::ZERO;
        if cost.amount.is_sign_negative() {
            return Err(invalid(format!(
                "a usage cost cannot be negative, got {cost}"
            )));
        }
        if let Some((id, held)) = hold
            && settlement.debit_credits
            && held.currency != cost.currency
        {
            return Err(invalid(format!(
                "credit hold {id} is in {}, cannot settle it in {}",
                held.currency, cost.currency
            )));
        }
        if debit {
            s.wallets
                .get(&(entry.billable.clone(), cost.currency))
                .map_or(Decimal::ZERO, |w| w.balance)
                .checked_sub(cost.amount)
                .ok_or_else(|| overflow("a wallet balance"))?;
        }

        s.drop_reservation(settlement.reservation);
        let recorded = s.insert_usage(entry);
        let debit = if debit {
            Some(s.post(
                &entry.billable,
                cost,
                Direction::Debit,
                super::USAGE_DEBIT_REASON,
                entry.occurred_at,
            )?)
        } else {
            None
        };
        let overage = overage.map(|o| {
            let new = NewOverage {
                billable: entry.billable.clone(),
                usage_id: recorded.record.id,
                period: *period,
                tokens: o.tokens,
                amount: Money::new(o.amount, cost.currency),
                created_at: entry.occurred_at,
            };
            s.insert_overage_row(&new)
        });
        let usage = s.counter(&entry.billable, period).usage(entry.occurred_at);
        Ok(Settled {
            recorded,
            usage,
            debit,
            overage,
        })
    }

    async fn release(&self, reservation: ReservationId) -> StoreResult<bool> {
        Ok(self.lock().drop_reservation(reservation))
    }

    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut s = self.lock();
        let expired: Vec<i64> = s
            .counters
            .values()
            .flat_map(|c| c.values())
            .flat_map(|c| c.reservations.iter())
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            s.drop_reservation(ReservationId(*id));
        }
        Ok(expired.len() as u64)
    }

    async fn period_usage(
        &self,
        billable: &Billable,
        period: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        let s = self.lock();
        match s.counters.get(billable).and_then(|c| c.get(period)) {
            Some(counter) => Ok(counter.usage(now)),
            None => Ok(PeriodUsage {
                recorded: s.recorded_from_rows(billable, period),
                reserved: UsageTotals::ZERO,
            }),
        }
    }

    async fn claim_threshold(
        &self,
        billable: &Billable,
        period: &Period,
        threshold: Decimal,
    ) -> StoreResult<bool> {
        Ok(self.lock().claimed_thresholds.insert((
            billable.clone(),
            *period,
            threshold.normalize(),
        )))
    }
}

impl CreditStore for MemoryStore {
    async fn wallet(&self, billable: &Billable, currency: Currency) -> StoreResult<WalletBalance> {
        let s = self.lock();
        let (balance, held) = s
            .wallets
            .get(&(billable.clone(), currency))
            .map_or((Decimal::ZERO, Decimal::ZERO), |w| (w.balance, w.held));
        Ok(WalletBalance {
            billable: billable.clone(),
            currency,
            balance,
            held,
        })
    }

    async fn add_credits_with_metadata(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        require_positive(&amount, "credits added")?;
        let mut state = self.lock();
        let mut tx = state.post(billable, amount, Direction::Credit, reason, at)?;
        if !metadata.is_empty() {
            tx.metadata = metadata.clone();
            if let Some(stored) = state.ledger.last_mut() {
                stored.metadata = metadata.clone();
            }
        }
        Ok(tx)
    }

    async fn deduct_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<CreditTransaction>> {
        require_positive(&amount, "credits deducted")?;
        let mut s = self.lock();
        if let Err(available) = s.check_funds(billable, &amount, overdraft) {
            return Ok(CreditOutcome::Insufficient { available });
        }
        Ok(CreditOutcome::Done(s.post(
            billable,
            amount,
            Direction::Debit,
            reason,
            at,
        )?))
    }

    async fn hold_credits(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        require_positive(&amount, "credits held")?;
        let mut s = self.lock();
        if let Err(available) = s.check_funds(billable, &amount, overdraft) {
            return Ok(CreditOutcome::Insufficient { available });
        }
        let wallet = s.wallet(billable, amount.currency);
        wallet.held = wallet
            .held
            .checked_add(amount.amount)
            .ok_or_else(|| overflow("the held amount"))?;
        let id = s.next_id();
        s.holds.insert(
            id,
            Hold {
                billable: billable.clone(),
                amount,
                expires_at,
            },
        );
        Ok(CreditOutcome::Done(HoldId(id)))
    }

    async fn settle_hold(
        &self,
        hold: HoldId,
        actual: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        let mut s = self.lock();
        let Some(held) = s.holds.get(&hold.0) else {
            return Err(StoreError::not_found(format!("credit hold {}", hold.0)));
        };
        if actual.currency != held.amount.currency {
            return Err(invalid(format!(
                "credit hold {} is in {}, cannot settle it in {}",
                hold.0, held.amount.currency, actual.currency
            )));
        }
        if actual.amount.is_sign_negative() {
            return Err(invalid(format!(
                "a settled amount cannot be negative, got {actual}"
            )));
        }
        let (billable, amount) = (held.billable.clone(), held.amount);
        // Checked before anything changes, so that an error leaves the state untouched.
        let wallet = s.wallet(&billable, amount.currency);
        let held_after = wallet
            .held
            .checked_sub(amount.amount)
            .ok_or_else(|| overflow("the held amount"))?;
        wallet
            .balance
            .checked_sub(actual.amount)
            .ok_or_else(|| overflow("a wallet balance"))?;
        wallet.held = held_after;
        s.holds.remove(&hold.0);
        s.post(&billable, actual, Direction::Debit, reason, at)
    }

    async fn release_hold(&self, hold: HoldId) -> StoreResult<bool> {
        Ok(self.lock().release_hold(hold.0))
    }

    async fn expire_credit_holds(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut s = self.lock();
        let expired: Vec<i64> = s
            .holds
            .iter()
            .filter(|(_, h)| h.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            s.release_hold(*id);
        }
        Ok(expired.len() as u64)
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
}

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

impl WebhookEventStore for MemoryStore {
    async fn claim_event(&self, event_id: &str, _at: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.lock().webhook_events.insert(event_id.to_owned()))
    }

    async fn forget_event(&self, event_id: &str) -> StoreResult<()> {
        self.lock().webhook_events.remove(event_id);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
