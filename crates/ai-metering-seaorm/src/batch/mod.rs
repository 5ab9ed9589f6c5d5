//! Many reservations, settlements and releases in one transaction (the writer's batches).
//!
//! A batch takes the locks of all its billables at once (SQLite's write lock; on
//! PostgreSQL the advisory locks, in one fixed order), reads what its operations need in a
//! few statements (their counters, the reservations they settle or release, the idempotency
//! keys they claim), applies each operation in order with the same rules as a transaction
//! of its own, and writes the counters once at the end. An operation's own refusal or invalid
//! input is decided before it writes anything, so it never leaves part of itself behind; a
//! database failure fails the whole batch, and then nothing of it is stored.
//!
//! Credits mode is batched too ([`wallets`]): holds are made (on the wallets' grants
//! first), captured and given back, and usage debited, on the wallets and grants read under
//! the same locks.

mod wallets;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ai_metering_core::limit::{Thresholds, UsageTotals, evaluate};
use ai_metering_core::overage::overage;
use ai_metering_core::period::Period;
use ai_metering_core::store::{
    HoldId, OverageRecord, PeriodUsage, Recorded, ReservationId, ReserveOutcome, ReserveRequest,
    Settled, Settlement, StoreResult, UsageEntry, UsageRecord, WalletBalance,
};
use ai_metering_core::{Billable, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, Statement,
};

use crate::aggregates::add_to_aggregates;
use crate::codec::{instant, invalid, money_text, to_i64};
use crate::counters::{
    Shift, amount_of, counter_for_update, recorded_of, reservation_row, reserved_on, shifted,
};
use crate::entity::{overage as overage_row, period_counter, reservation, usage};
use crate::error::db_err;
use crate::overages::to_record;
use crate::store::SeaOrmStore;
use crate::usage_rows::{as_stored, usage_record, usage_row};
use wallets::{Wallets, WrittenCredits};

/// One operation of a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// A reservation (with its credit hold, in credits mode).
    Reserve(&'a ReserveRequest),
    /// A settlement (capturing the hold and debiting the cost, in credits mode).
    Settle(&'a Settlement),
    /// The release of a reservation of this billable.
    Release(ReservationId, &'a Billable),
    /// A usage row recorded without a reservation (idempotent by its key).
    Record(&'a UsageEntry),
}

impl Op<'_> {
    fn billable(&self) -> &Billable {
        match self {
            Op::Reserve(r) => &r.billable,
            Op::Settle(s) => &s.entry.billable,
            Op::Release(_, b) => b,
            Op::Record(e) => &e.billable,
        }
    }
}

/// What a committed batch did with one operation.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A reservation's outcome (or why it was not made; nothing was stored then).
    Reserved(StoreResult<ReserveOutcome>),
    /// A settlement's result (or why nothing was stored).
    Settled(Box<StoreResult<Settled>>),
    /// Whether the reservation was released.
    Released(bool),
    /// A recorded row (or why nothing was stored).
    Recorded(Box<StoreResult<Recorded>>),
    /// Not done here: it needs a transaction of its own.
    Deferred,
}

/// Records `entries` in one transaction, each idempotent by its key; when one of them is
/// refused (invalid), nothing is stored and its error is returned.
pub(crate) async fn record_all(
    store: &SeaOrmStore,
    entries: &[UsageEntry],
) -> StoreResult<Vec<Recorded>> {
    let ops: Vec<Op<'_>> = entries.iter().map(Op::Record).collect();
    run_as(store, &ops, true)
        .await?
        .into_iter()
        .map(|outcome| match outcome {
            Outcome::Recorded(recorded) => *recorded,
            _ => Err(invalid("a recorded row came back as another operation")),
        })
        .collect()
}

/// Runs `ops` in one transaction. `Err` when the database failed: nothing of the batch was
/// stored.
pub(crate) async fn run(store: &SeaOrmStore, ops: &[Op<'_>]) -> StoreResult<Vec<Outcome>> {
    run_as(store, ops, false).await
}

/// [`run`]; with `all_or_nothing`, an operation refused on its own fails the whole batch
/// (with its error) instead of only itself.
async fn run_as(
    store: &SeaOrmStore,
    ops: &[Op<'_>],
    all_or_nothing: bool,
) -> StoreResult<Vec<Outcome>> {
    let billables: BTreeSet<&Billable> = ops.iter().map(Op::billable).collect();
    let txn = store.begin_for(billables.iter().copied()).await?;
    let mut state = State::load(store, &txn, ops).await?;
    let mut drafts = Vec::with_capacity(ops.len());
    for op in ops {
        let draft = match op {
            Op::Reserve(req) => state.reserve(store, &txn, req).await?,
            Op::Settle(s) => state.settle(store, &txn, s).await?,
            Op::Release(id, owner) => Draft::Done(state.release(*id, owner)),
            Op::Record(entry) => state.record(entry),
        };
        if all_or_nothing && let Draft::Done(Outcome::Recorded(refused)) = draft {
            // Dropping `txn` rolls back the whole batch.
            return Err(match *refused {
                Err(e) => e,
                Ok(_) => invalid("a recorded row came back unfinished"),
            });
        }
        drafts.push(draft);
    }
    let written = state.write(store, &txn).await?;
    store.step("committing the batch")?;
    txn.commit().await.map_err(db_err)?;
    Ok(drafts
        .into_iter()
        .map(|draft| written.finish(draft))
        .collect())
}

/// An operation's outcome before the batch's rows are inserted (and their ids known).
enum Draft {
    Done(Outcome),
    /// Reserved: the `n`th new reservation, with the `n`th new hold.
    Reserved {
        row: usize,
        hold: Option<usize>,
        usage: PeriodUsage,
        /// In credits mode, the wallet right after its hold.
        wallet: Option<WalletBalance>,
    },
    /// Refused: the key was recorded by the `n`th new usage row.
    AlreadyRecorded(Key),
    /// Settled: the `n`th new usage row (and its overage row, if any), with the `n`th new
    /// ledger row.
    Settled {
        row: usize,
        debit: Option<usize>,
        usage: PeriodUsage,
        /// In credits mode, the wallet right after it.
        wallet: Option<WalletBalance>,
    },
    /// A retry of a recorded key.
    Replayed(Key, PeriodUsage),
    /// Recorded: the `n`th new usage row, or the row stored under its key before.
    Recorded {
        row: Key,
        created: bool,
    },
}

/// A usage row stored under an idempotency key: before the batch, or by it.
#[derive(Clone)]
enum Key {
    Stored(Box<UsageRecord>),
    New(usize),
}

/// A new usage row, with the overage row to insert with it.
struct NewUsage {
    row: usage::ActiveModel,
    record: UsageRecord,
    /// The settlement's period, and the overage's tokens and amount.
    overage: Option<(Period, i64, Decimal)>,
}

/// The ids the batch's inserts got, to finish its drafts with.
struct Written {
    credits: WrittenCredits,
    reservations: Vec<i64>,
    usage: Vec<UsageRecord>,
    overages: HashMap<usize, OverageRecord>,
}

impl Written {
    fn record(&self, key: Key) -> UsageRecord {
        match key {
            Key::Stored(record) => *record,
            Key::New(n) => self.usage[n].clone(),
        }
    }

    fn finish(&self, draft: Draft) -> Outcome {
        match draft {
            Draft::Done(outcome) => outcome,
            Draft::Reserved {
                row,
                hold,
                usage,
                wallet,
            } => Outcome::Reserved(Ok(ReserveOutcome::Reserved {
                id: ReservationId(self.reservations[row]),
                hold: hold.map(|n| HoldId(self.credits.holds[n])),
                usage,
                wallet,
            })),
            Draft::AlreadyRecorded(key) => Outcome::Reserved(Ok(ReserveOutcome::AlreadyRecorded(
                Box::new(self.record(key)),
            ))),
            Draft::Settled {
                row,
                debit,
                usage,
                wallet,
            } => Outcome::Settled(Box::new(Ok(Settled {
                recorded: Recorded {
                    record: self.usage[row].clone(),
                    created: true,
                },
                usage,
                debit: debit.map(|n| self.credits.entries[n].clone()),
                overage: self.overages.get(&row).cloned(),
                wallet,
            }))),
            Draft::Recorded { row, created } => Outcome::Recorded(Box::new(Ok(Recorded {
                record: self.record(row),
                created,
            }))),
            Draft::Replayed(key, usage) => {
                Outcome::Settled(Box::new(Ok(Settled::replayed(self.record(key), usage))))
            }
        }
    }
}

/// A counter as the batch has it: read under the lock, changed in memory, written at the end.
struct Counter {
    row: period_counter::Model,
    recorded: UsageTotals,
    reserved: UsageTotals,
    dirty: bool,
}

impl Counter {
    fn new(row: period_counter::Model) -> StoreResult<Self> {
        Ok(Self {
            recorded: recorded_of(&row)?,
            reserved: reserved_on(&row)?,
            row,
            dirty: false,
        })
    }

    fn is_of(&self, billable: &Billable) -> bool {
        self.row.billable_type == billable.kind && self.row.billable_id == billable.id
    }

    fn usage(&self) -> PeriodUsage {
        PeriodUsage {
            recorded: self.recorded,
            reserved: self.reserved,
        }
    }
}

/// Everything a batch reads, and what it changed so far.
#[derive(Default)]
struct State {
    counters: Vec<Counter>,
    /// Counter index by id.
    by_id: HashMap<i64, usize>,
    /// The reservations the batch settles or releases, by id.
    reservations: HashMap<i64, reservation::Model>,
    /// Live reservations claiming an idempotency key, or exclusive, of reserving billables
    /// (those made by this batch included).
    claims: Vec<reservation::Model>,
    /// Reservations dropped by this batch.
    dropped: Vec<i64>,
    dropped_set: HashSet<i64>,
    /// Usage rows stored under the keys the batch names (those it inserts included).
    keys: HashMap<(Billable, String), Key>,
    /// Reservations to insert at the end, in order.
    new_reservations: Vec<(reservation::ActiveModel, Option<usize>)>,
    /// Wallets and holds (credits mode).
    wallets: Wallets,
    /// Usage rows to insert at the end, in order.
    new_usage: Vec<NewUsage>,
}

fn of_billables<'a, C: ColumnTrait>(
    kind: C,
    id: C,
    billables: impl IntoIterator<Item = &'a Billable>,
) -> Condition {
    billables.into_iter().fold(Condition::any(), |any, b| {
        any.add(
            Condition::all()
                .add(kind.eq(b.kind.as_str()))
                .add(id.eq(b.id.as_str())),
        )
    })
}

impl State {
    async fn load(
        store: &SeaOrmStore,
        txn: &DatabaseTransaction,
        ops: &[Op<'_>],
    ) -> StoreResult<Self> {
        let mut state = State::default();

        // The latest instant of a reservation of each reserving billable.
        let mut expiry: HashMap<&Billable, DateTime<Utc>> = HashMap::new();
        for op in ops {
            if let Op::Reserve(r) = op {
                let now = expiry.entry(&r.billable).or_insert(r.now);
                *now = (*now).max(r.now);
            }
        }
        let ids: Vec<i64> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Settle(s) => Some(s.reservation.0),
                Op::Release(id, _) => Some(id.0),
                Op::Reserve(r) => r.replaces.map(|id| id.0),
                Op::Record(_) => None,
            })
            .collect();
        // The reservations the batch settles, releases or replaces, and those that expired by
        // the time of a reservation of their billable (dropped first, as in a transaction of
        // its own; nearly always none): one indexed read for both.
        let mut expired = Vec::new();
        if !expiry.is_empty() || !ids.is_empty() {
            store.step("reading the reservations")?;
            let expired_of = expiry.iter().fold(Condition::any(), |any, (b, now)| {
                any.add(
                    Condition::all()
                        .add(reservation::Column::BillableType.eq(b.kind.as_str()))
                        .add(reservation::Column::BillableId.eq(b.id.as_str()))
                        .add(reservation::Column::ExpiresAt.lte(instant(*now))),
                )
            });
            let named: HashSet<i64> = ids.iter().copied().collect();
            let expires: HashMap<(&str, &str), DateTime<Utc>> = expiry
                .iter()
                .map(|(b, now)| ((b.kind.as_str(), b.id.as_str()), instant(*now)))
                .collect();
            let mut wanted = Condition::any();
            if !expiry.is_empty() {
                wanted = wanted.add(expired_of);
            }
            if !ids.is_empty() {
                wanted = wanted.add(reservation::Column::Id.is_in(ids));
            }
            for r in reservation::Entity::find()
                .filter(wanted)
                .all(txn)
                .await
                .map_err(db_err)?
            {
                let is_expired = expires
                    .get(&(r.billable_type.as_str(), r.billable_id.as_str()))
                    .is_some_and(|now| r.expires_at <= *now);
                if named.contains(&r.id) {
                    if is_expired {
                        expired.push(r.clone());
                    }
                    state.reservations.insert(r.id, r);
                } else if is_expired {
                    expired.push(r);
                }
            }
        }

        // Keys and exclusive calls claimed by live reservations of reserving billables.
        let claim_keys: Vec<&str> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Reserve(r) => r.idempotency_key.as_deref(),
                _ => None,
            })
            .collect();
        let exclusive = ops
            .iter()
            .any(|op| matches!(op, Op::Reserve(r) if r.exclusive));
        if !claim_keys.is_empty() || exclusive {
            store.step("reading the claims")?;
            let expired_ids: HashSet<i64> = expired.iter().map(|r| r.id).collect();
            let mut claimed = Condition::any().add(reservation::Column::Exclusive.eq(true));
            if !claim_keys.is_empty() {
                claimed = claimed.add(reservation::Column::IdempotencyKey.is_in(claim_keys));
            }
            state.claims = reservation::Entity::find()
                .filter(of_billables(
                    reservation::Column::BillableType,
                    reservation::Column::BillableId,
                    expiry.keys().copied(),
                ))
                .filter(claimed)
                .all(txn)
                .await
                .map_err(db_err)?
                .into_iter()
                .filter(|r| !expired_ids.contains(&r.id))
                .collect();
        }

        // Usage rows already stored under the keys the batch names; by billables, a few at a
        // time (each is a term of one `OR`).
        let mut by_billable: BTreeMap<&Billable, Vec<&str>> = BTreeMap::new();
        for op in ops {
            let key = match op {
                Op::Reserve(r) => r.idempotency_key.as_deref(),
                Op::Settle(s) => s.entry.idempotency_key.as_deref(),
                Op::Record(e) => e.idempotency_key.as_deref(),
                Op::Release(..) => None,
            };
            if let Some(key) = key {
                by_billable.entry(op.billable()).or_default().push(key);
            }
        }
        let by_billable: Vec<(&Billable, Vec<&str>)> = by_billable.into_iter().collect();
        for chunk in by_billable.chunks(BILLABLES_PER_READ) {
            store.step("reading the idempotency keys")?;
            let keys: Vec<&str> = chunk.iter().flat_map(|(_, k)| k.iter().copied()).collect();
            for row in usage::Entity::find()
                .filter(of_billables(
                    usage::Column::BillableType,
                    usage::Column::BillableId,
                    chunk.iter().map(|(b, _)| *b),
                ))
                .filter(usage::Column::IdempotencyKey.is_in(keys))
                .all(txn)
                .await
                .map_err(db_err)?
            {
                let record = usage_record(row)?;
                if let Some(key) = record.entry.idempotency_key.clone() {
                    state.keys.insert(
                        (record.entry.billable.clone(), key),
                        Key::Stored(Box::new(record)),
                    );
                }
            }
        }

        // The counters: those of the batch's windows and every one a settlement adds to
        // (they end after the earliest instant involved), plus those the dropped
        // reservations count against.
        let since = ops
            .iter()
            .filter_map(|op| match op {
                Op::Reserve(r) => Some(r.period.start),
                Op::Settle(s) => Some(s.period.start.min(s.entry.occurred_at)),
                Op::Record(e) => Some(e.occurred_at),
                Op::Release(..) => None,
            })
            .min();
        let counter_ids: Vec<i64> = expired
            .iter()
            .chain(state.reservations.values())
            .map(|r| r.counter_id)
            .collect();
        let mut reads = Vec::new();
        if let Some(since) = since {
            let billables: Vec<&Billable> = ops
                .iter()
                .filter(|op| !matches!(op, Op::Release(..)))
                .map(Op::billable)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            // A few billables at a time: each is a term of one `OR`.
            for chunk in billables.chunks(BILLABLES_PER_READ) {
                reads.push(
                    Condition::all()
                        .add(of_billables(
                            period_counter::Column::BillableType,
                            period_counter::Column::BillableId,
                            chunk.iter().copied(),
                        ))
                        .add(period_counter::Column::PeriodEnd.gt(instant(since))),
                );
            }
        }
        if !counter_ids.is_empty() {
            reads.push(Condition::all().add(period_counter::Column::Id.is_in(counter_ids)));
        }
        for wanted in reads {
            store.step("reading the counters")?;
            for row in period_counter::Entity::find()
                .filter(wanted)
                .all(txn)
                .await
                .map_err(db_err)?
            {
                if !state.by_id.contains_key(&row.id) {
                    state.add_counter(Counter::new(row)?);
                }
            }
        }

        // Wallets and holds, when credits are involved at all.
        let hold_ids: Vec<i64> = expired
            .iter()
            .chain(state.reservations.values())
            .filter_map(|r| r.hold_id)
            .collect();
        let credits = ops.iter().any(|op| match op {
            Op::Reserve(r) => r.hold.is_some(),
            Op::Settle(s) => s.debit_credits,
            _ => false,
        });
        if credits || !hold_ids.is_empty() {
            store.step("reading the wallets")?;
            let billables: BTreeSet<&Billable> = ops.iter().map(Op::billable).collect();
            state.wallets = Wallets::load(txn, billables, hold_ids).await?;
        }

        for r in expired {
            state.drop_reservation(&r)?;
        }
        Ok(state)
    }

    fn add_counter(&mut self, counter: Counter) -> usize {
        let index = self.counters.len();
        self.by_id.insert(counter.row.id, index);
        self.counters.push(counter);
        index
    }

    /// The counter of `billable` for `period`, created (seeded from the usage rows already in
    /// its window) when there is none.
    async fn counter(
        &mut self,
        store: &SeaOrmStore,
        txn: &DatabaseTransaction,
        billable: &Billable,
        period: &Period,
    ) -> StoreResult<usize> {
        let (start, end) = (instant(period.start), instant(period.end));
        let found = self.counters.iter().position(|c| {
            c.is_of(billable) && c.row.period_start == start && c.row.period_end == end
        });
        if let Some(index) = found {
            return Ok(index);
        }
        store.step("creating a counter")?;
        let row = counter_for_update(txn, billable, period).await?;
        Ok(self.add_counter(Counter::new(row)?))
    }

    fn is_live(&self, r: &reservation::Model) -> bool {
        !self.dropped_set.contains(&r.id)
    }

    /// Drops a reservation (its row goes at the end) and takes it off its counter.
    fn drop_reservation(&mut self, r: &reservation::Model) -> StoreResult<()> {
        if !self.dropped_set.insert(r.id) {
            return Ok(());
        }
        self.dropped.push(r.id);
        if let Some(hold) = r.hold_id {
            self.wallets.release(hold)?;
        }
        if let Some(&index) = self.by_id.get(&r.counter_id) {
            let counter = &mut self.counters[index];
            counter.reserved = shifted(counter.reserved, amount_of(r)?, Shift::Remove)?;
            counter.dirty = true;
        }
        Ok(())
    }

    /// The live reservation `id` of `billable` the batch read.
    fn reservation_of(&self, id: ReservationId, billable: &Billable) -> Option<reservation::Model> {
        self.reservations
            .get(&id.0)
            .filter(|r| r.billable_type == billable.kind && r.billable_id == billable.id)
            .filter(|r| self.is_live(r))
            .cloned()
    }

    async fn reserve(
        &mut self,
        store: &SeaOrmStore,
        txn: &DatabaseTransaction,
        req: &ReserveRequest,
    ) -> StoreResult<Draft> {
        let refuse = |e| Ok(Draft::Done(Outcome::Reserved(Err(e))));
        let tokens = match to_i64("reserved tokens", req.amount.tokens) {
            Ok(tokens) => tokens,
            Err(e) => return refuse(e),
        };
        if req.amount.cost.is_sign_negative() {
            return refuse(invalid("a reservation's cost must not be negative"));
        }
        let billable = &req.billable;
        let replaced = req
            .replaces
            .and_then(|id| self.reservation_of(id, billable));
        let replaced_id = replaced.as_ref().map(|r| r.id);
        let claimed = |r: &reservation::Model| {
            self.is_live(r)
                && Some(r.id) != replaced_id
                && r.billable_type == billable.kind
                && r.billable_id == billable.id
        };
        let done = |outcome| Ok(Draft::Done(Outcome::Reserved(Ok(outcome))));
        if let Some(key) = &req.idempotency_key {
            if let Some(stored) = self.keys.get(&(billable.clone(), key.clone())) {
                return Ok(Draft::AlreadyRecorded(stored.clone()));
            }
            let in_flight = self
                .claims
                .iter()
                .any(|r| claimed(r) && r.idempotency_key.as_deref() == Some(key.as_str()));
            if in_flight {
                return done(ReserveOutcome::KeyInFlight);
            }
        }
        if req.exclusive && self.claims.iter().any(|r| claimed(r) && r.exclusive) {
            return done(ReserveOutcome::Busy);
        }

        let index = self.counter(store, txn, billable, &req.period).await?;
        let mut usage = self.counters[index].usage();
        let counter_id = self.counters[index].row.id;
        if let Some(r) = replaced.as_ref().filter(|r| r.counter_id == counter_id) {
            // What it replaces does not count against it.
            match amount_of(r).and_then(|a| shifted(usage.reserved, a, Shift::Remove)) {
                Ok(reserved) => usage.reserved = reserved,
                Err(e) => return refuse(e),
            }
        }
        let check = evaluate(
            &req.limits,
            usage.committed(),
            req.amount,
            &Thresholds::default(),
        );
        if let Some(exceeded) = check.exceeded {
            return done(ReserveOutcome::Rejected { exceeded, usage });
        }
        let reserved = match shifted(usage.reserved, req.amount, Shift::Add) {
            Ok(reserved) => reserved,
            Err(e) => return refuse(e),
        };

        // Credits mode: the wallet must have room for the hold (what the replaced
        // reservation holds counts as room).
        let wallet = match &req.hold {
            Some(hold) => {
                store.step("checking the wallet")?;
                let wallet = self
                    .wallets
                    .wallet(txn, billable, hold.amount.currency)
                    .await?;
                let except = replaced.as_ref().and_then(|r| r.hold_id);
                let available = match self.wallets.available(wallet, req.now, except) {
                    Ok(available) => available,
                    Err(e) => return refuse(e),
                };
                if !hold.permits(available) {
                    return done(ReserveOutcome::InsufficientCredits { available });
                }
                Some(wallet)
            }
            None => None,
        };

        if let Some(r) = &replaced {
            self.drop_reservation(r)?;
        }
        let new_hold = match (&req.hold, wallet) {
            (Some(hold), Some(wallet)) if hold.amount.amount > Decimal::ZERO => Some(
                self.wallets
                    .hold(wallet, hold.amount, req.now, req.expires_at)?,
            ),
            _ => None,
        };
        // Its hold's id is set once the new holds are inserted.
        let row = reservation_row(req, counter_id, tokens, None);
        if req.idempotency_key.is_some() || req.exclusive {
            // Its id is not known yet; it is never dropped by the batch that makes it.
            self.claims.push(reservation::Model {
                id: NEW_ROW,
                counter_id,
                billable_type: billable.kind.clone(),
                billable_id: billable.id.clone(),
                tokens,
                cost: money_text(req.amount.cost),
                created_at: instant(req.now),
                expires_at: instant(req.expires_at),
                hold_id: None,
                idempotency_key: req.idempotency_key.clone(),
                exclusive: req.exclusive,
            });
        }
        self.new_reservations.push((row, new_hold));
        let wallet = req.hold.as_ref().and_then(|hold| {
            self.wallets
                .snapshot(billable, hold.amount.currency, req.now)
        });
        let counter = &mut self.counters[index];
        counter.reserved = reserved;
        counter.dirty = true;
        Ok(Draft::Reserved {
            row: self.new_reservations.len() - 1,
            hold: new_hold,
            usage: counter.usage(),
            wallet,
        })
    }

    async fn settle(
        &mut self,
        store: &SeaOrmStore,
        txn: &DatabaseTransaction,
        settlement: &Settlement,
    ) -> StoreResult<Draft> {
        let refuse = |e| Ok(Draft::Done(Outcome::Settled(Box::new(Err(e)))));
        let entry = &settlement.entry;
        let billable = &entry.billable;
        let period = &settlement.period;
        if entry.cost.total.is_sign_negative() {
            return refuse(invalid(format!(
                "a usage cost cannot be negative, got {} {}",
                entry.cost.total, entry.cost.currency
            )));
        }
        let reserved = self.reservation_of(settlement.reservation, billable);
        let cost = Money::new(entry.cost.total, entry.cost.currency);
        let debit = settlement.debit_credits && cost.amount > Decimal::ZERO;
        if debit
            && let Some(currency) = reserved
                .as_ref()
                .and_then(|r| r.hold_id)
                .and_then(|h| self.wallets.hold_currency(h))
            && currency != cost.currency.as_str()
        {
            return refuse(invalid(format!(
                "the credit hold is in {currency}, the usage cost in {}",
                cost.currency
            )));
        }
        let index = self.counter(store, txn, billable, period).await?;

        if let Some(key) = &entry.idempotency_key
            && let Some(stored) = self.keys.get(&(billable.clone(), key.clone())).cloned()
        {
            // Recorded before (a retry): only the reservation goes.
            if let Some(r) = &reserved {
                self.drop_reservation(r)?;
            }
            return Ok(Draft::Replayed(stored, self.counters[index].usage()));
        }

        // Everything that can refuse the settlement is decided before anything changes.
        let row = match usage_row(entry) {
            Ok(row) => row,
            Err(e) => return refuse(e),
        };
        let totals = entry.totals();
        let before = self.counters[index].recorded;
        let overage = match &settlement.overage {
            Some(rule) if period.start <= entry.occurred_at && entry.occurred_at < period.end => {
                match overage(rule, before, totals) {
                    Ok(o) => o,
                    Err(e) => return refuse(invalid(e.to_string())),
                }
            }
            _ => None,
        };
        let overage = match overage {
            Some(o) => match to_i64("overage tokens", o.tokens) {
                Ok(tokens) => Some((tokens, o.amount)),
                Err(e) => return refuse(e),
            },
            None => None,
        };
        let added = match self.counters_adding(entry) {
            Ok(added) => added,
            Err(e) => return refuse(e),
        };

        let wallet = if debit {
            store.step("reading the wallet to debit")?;
            Some(self.wallets.wallet(txn, billable, cost.currency).await?)
        } else {
            None
        };

        if let Some(r) = &reserved {
            self.drop_reservation(r)?;
        }
        let n = self.add_usage(
            entry,
            row,
            added,
            overage.map(|(tokens, amount)| (*period, tokens, amount)),
        );
        // The capture of the hold: it was given back above, and the actual cost is debited.
        let hold = reserved.as_ref().and_then(|r| r.hold_id);
        let debit = match wallet {
            Some(wallet) => Some(self.wallets.debit(wallet, cost, hold, entry.occurred_at)?),
            None => None,
        };
        let wallet = if settlement.debit_credits {
            self.wallets
                .snapshot(billable, cost.currency, entry.occurred_at)
        } else {
            None
        };
        Ok(Draft::Settled {
            row: n,
            debit,
            usage: self.counters[index].usage(),
            wallet,
        })
    }

    /// A row recorded without a reservation: as a settlement without reservation, overage or
    /// counter of its own (it adds to the counters whose window contains it).
    fn record(&mut self, entry: &UsageEntry) -> Draft {
        let refuse = |e| Draft::Done(Outcome::Recorded(Box::new(Err(e))));
        if entry.cost.total.is_sign_negative() {
            return refuse(invalid(format!(
                "a usage cost cannot be negative, got {} {}",
                entry.cost.total, entry.cost.currency
            )));
        }
        if let Some(key) = &entry.idempotency_key
            && let Some(stored) = self.keys.get(&(entry.billable.clone(), key.clone()))
        {
            return Draft::Recorded {
                row: stored.clone(),
                created: false,
            };
        }
        let row = match usage_row(entry) {
            Ok(row) => row,
            Err(e) => return refuse(e),
        };
        let added = match self.counters_adding(entry) {
            Ok(added) => added,
            Err(e) => return refuse(e),
        };
        let n = self.add_usage(entry, row, added, None);
        Draft::Recorded {
            row: Key::New(n),
            created: true,
        }
    }

    /// The counters of `entry`'s billable whose window contains it, with their recorded
    /// totals once it is added.
    fn counters_adding(&self, entry: &UsageEntry) -> StoreResult<Vec<(usize, UsageTotals)>> {
        let at = instant(entry.occurred_at);
        let totals = entry.totals();
        let mut added = Vec::new();
        for (i, c) in self.counters.iter().enumerate() {
            if c.is_of(&entry.billable) && c.row.period_start <= at && at < c.row.period_end {
                let recorded = c
                    .recorded
                    .checked_add(totals)
                    .map_err(|_| invalid("a counter's recorded usage overflows"))?;
                added.push((i, recorded));
            }
        }
        Ok(added)
    }

    /// Queues the usage row (inserted at the end) and applies `added` to the counters;
    /// returns the row's place among the new ones.
    fn add_usage(
        &mut self,
        entry: &UsageEntry,
        row: usage::ActiveModel,
        added: Vec<(usize, UsageTotals)>,
        overage: Option<(Period, i64, Decimal)>,
    ) -> usize {
        for (i, recorded) in added {
            let counter = &mut self.counters[i];
            counter.recorded = recorded;
            counter.dirty = true;
        }
        let n = self.new_usage.len();
        self.new_usage.push(NewUsage {
            row,
            record: UsageRecord {
                id: NEW_ROW,
                entry: as_stored(entry),
            },
            overage,
        });
        if let Some(key) = &entry.idempotency_key {
            self.keys
                .insert((entry.billable.clone(), key.clone()), Key::New(n));
        }
        n
    }

    fn release(&mut self, id: ReservationId, owner: &Billable) -> Outcome {
        match self.reservation_of(id, owner) {
            Some(r) => match self.drop_reservation(&r) {
                Ok(()) => Outcome::Released(true),
                // Only a corrupt stored amount gets here; a transaction of its own says so.
                Err(_) => Outcome::Deferred,
            },
            None => Outcome::Released(false),
        }
    }

    /// Inserts the new rows (a few multi-row statements), deletes the dropped reservations
    /// and writes the changed counters.
    async fn write(self, store: &SeaOrmStore, txn: &DatabaseTransaction) -> StoreResult<Written> {
        // Holds first: the new reservations name them.
        store.step("writing the wallets")?;
        let credits = self.wallets.write(txn).await?;
        let mut written = Written {
            credits,
            reservations: Vec::new(),
            usage: Vec::new(),
            overages: HashMap::new(),
        };
        if !self.new_reservations.is_empty() {
            store.step("inserting the reservations")?;
            let mut rows = Vec::with_capacity(self.new_reservations.len());
            for (mut row, hold) in self.new_reservations {
                if let Some(n) = hold {
                    let id = written.credits.holds.get(n).copied().ok_or_else(|| {
                        invalid("a reservation names a hold the batch did not insert")
                    })?;
                    row.hold_id = Set(Some(id));
                }
                rows.push(row);
            }
            written.reservations = insert_rows(txn, rows).await?;
        }
        if !self.new_usage.is_empty() {
            store.step("inserting the usage rows")?;
            let (rows, rest): (Vec<_>, Vec<_>) = self
                .new_usage
                .into_iter()
                .map(|u| (u.row, (u.record, u.overage)))
                .unzip();
            let ids = insert_rows(txn, rows).await?;
            let mut overages = Vec::new();
            let mut by_usage = HashMap::new();
            for (n, (id, (mut record, overage))) in ids.into_iter().zip(rest).enumerate() {
                record.id = id;
                if let Some((period, tokens, amount)) = overage {
                    overages.push(overage_model(&record, &period, tokens, amount));
                    by_usage.insert(id, n);
                }
                written.usage.push(record);
            }
            if !overages.is_empty() {
                store.step("inserting the overages")?;
                for chunk in in_chunks(overages, ROWS_PER_INSERT) {
                    for stored in overage_row::Entity::insert_many(chunk)
                        .exec_with_returning(txn)
                        .await
                        .map_err(db_err)?
                    {
                        if let Some(&n) = by_usage.get(&stored.usage_id) {
                            written.overages.insert(n, to_record(stored)?);
                        }
                    }
                }
            }
        }
        if !self.dropped.is_empty() {
            store.step("deleting reservations")?;
            reservation::Entity::delete_many()
                .filter(reservation::Column::Id.is_in(self.dropped.iter().copied()))
                .exec(txn)
                .await
                .map_err(db_err)?;
        }
        if !written.usage.is_empty() {
            store.step("adding to the daily aggregates")?;
            let entries: Vec<&UsageEntry> = written.usage.iter().map(|r| &r.entry).collect();
            add_to_aggregates(txn, &entries).await?;
        }
        let dirty: Vec<&Counter> = self.counters.iter().filter(|c| c.dirty).collect();
        if !dirty.is_empty() {
            store.step("writing the counters")?;
            write_counters(txn, &dirty).await?;
        }
        Ok(written)
    }
}

/// Writes the counters' totals in one statement.
async fn write_counters(txn: &DatabaseTransaction, counters: &[&Counter]) -> StoreResult<()> {
    let mut rows = Vec::with_capacity(counters.len());
    for c in counters {
        rows.push(vec![
            c.row.id.into(),
            to_i64("recorded tokens", c.recorded.tokens)?.into(),
            money_text(c.recorded.cost).into(),
            to_i64("reserved tokens", c.reserved.tokens)?.into(),
            money_text(c.reserved.cost).into(),
        ]);
    }
    update_rows(
        txn,
        "ai_period_counters",
        &[
            ("recorded_tokens", "BIGINT"),
            ("recorded_cost", "TEXT"),
            ("reserved_tokens", "BIGINT"),
            ("reserved_cost", "TEXT"),
        ],
        rows,
    )
    .await
}

/// Sets `columns` (name and SQL type) of the rows of `table` whose ids lead each of `rows`,
/// and their `updated_at`, by `UPDATE ... FROM (VALUES ...)` (one statement for up to
/// thousands of rows): PostgreSQL and SQLite (3.33 and later) both take it, and both name
/// the `VALUES` columns `column1`, `column2`...
/// Every row must exist: the batch read them under its locks, so one missing means a write
/// outside the locks, and nothing of the batch is kept.
pub(crate) async fn update_rows<C: ConnectionTrait>(
    txn: &C,
    table: &str,
    columns: &[(&str, &str)],
    rows: Vec<Vec<sea_orm::Value>>,
) -> StoreResult<()> {
    // A statement takes at most 32,766 parameters on SQLite and 65,535 on PostgreSQL.
    const PARAMETERS: usize = 30_000;
    for chunk in in_chunks(rows, PARAMETERS / (columns.len() + 1)) {
        update_chunk(txn, table, columns, chunk).await?;
    }
    Ok(())
}

/// One statement of [`update_rows`].
async fn update_chunk<C: ConnectionTrait>(
    txn: &C,
    table: &str,
    columns: &[(&str, &str)],
    rows: Vec<Vec<sea_orm::Value>>,
) -> StoreResult<()> {
    let backend = txn.get_database_backend();
    let count = rows.len();
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(count * (columns.len() + 1) + 1);
    let mut param = |v: sea_orm::Value, ty: &str| {
        values.push(v);
        match backend {
            DbBackend::Postgres => format!("CAST(${} AS {ty})", values.len()),
            _ => format!("CAST(? AS {ty})"),
        }
    };
    let now = param(Utc::now().into(), "TIMESTAMPTZ");
    let now = match backend {
        // SQLite stores instants as text; a cast to an unknown type name would mangle it.
        DbBackend::Postgres => now,
        _ => "?".to_owned(),
    };
    let types: Vec<&str> = std::iter::once("BIGINT")
        .chain(columns.iter().map(|(_, ty)| *ty))
        .collect();
    let tuples: Vec<String> = rows
        .into_iter()
        .map(|row| {
            let cells: Vec<String> = row
                .into_iter()
                .zip(&types)
                .map(|(value, ty)| param(value, ty))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = v.column{}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE {table} SET {}, updated_at = {now} FROM (VALUES {}) AS v \
         WHERE {table}.id = v.column1",
        sets.join(", "),
        tuples.join(", ")
    );
    let done = txn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(db_err)?;
    if done.rows_affected() != count as u64 {
        return Err(invalid(format!(
            "{} of {count} rows of {table} were written",
            done.rows_affected()
        )));
    }
    Ok(())
}

/// `items` moved out in `Vec`s of at most `size` (the last one shorter): the statements of
/// one large write, each under the database's limit of parameters.
pub(crate) fn in_chunks<T>(items: Vec<T>, size: usize) -> impl Iterator<Item = Vec<T>> {
    let mut items = items.into_iter().peekable();
    std::iter::from_fn(move || {
        items.peek()?;
        Some(items.by_ref().take(size.max(1)).collect())
    })
}

/// The most billables one read of a batch names: each is a term of one `OR`, which the
/// query builder renders recursively (thousands of terms overflow a thread's stack).
const BILLABLES_PER_READ: usize = 100;

/// The id of a row the batch has not inserted yet.
const NEW_ROW: i64 = -1;

/// The most rows one `INSERT` of a batch carries: a statement takes at most 32,766
/// parameters on SQLite and 65,535 on PostgreSQL, and a usage row (the widest) has fewer
/// than 40 columns. More rows are inserted by several statements in the same transaction.
const ROWS_PER_INSERT: usize = 500;

/// Inserts `rows` (multi-row statements of [`ROWS_PER_INSERT`]) and returns their ids in
/// the order of `rows`.
///
/// Both databases number the rows of one multi-row `INSERT` in the order of its `VALUES`
/// (SQLite under its write lock; PostgreSQL takes each row's `nextval` in turn), and the
/// statements run one after the other in one transaction, so the returned ids, sorted, are
/// the rows' ids in order, whatever order `RETURNING` lists them in.
async fn insert_rows<A>(txn: &DatabaseTransaction, rows: Vec<A>) -> StoreResult<Vec<i64>>
where
    A: sea_orm::ActiveModelTrait,
{
    use sea_orm::{EntityName, Iden, IdenStatic, Iterable, PrimaryKeyToColumn};
    let count = rows.len();
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    // The columns the rows set (built alike, they all set the same ones), written by hand:
    // the same statement as sea-orm's `insert_many`, without its per-value copies (a batch
    // of usage rows carries tens of thousands of values).
    let columns: Vec<<A::Entity as EntityTrait>::Column> =
        <A::Entity as EntityTrait>::Column::iter()
            .filter(|c| first.get(*c).is_set())
            .collect();
    let Some(key) = <A::Entity as EntityTrait>::PrimaryKey::iter().next() else {
        return Err(invalid("a table without a primary key"));
    };
    let backend = txn.get_database_backend();
    let table = A::Entity::default().table_name().to_owned();
    let names: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect();
    let head = format!("INSERT INTO \"{table}\" ({}) VALUES ", names.join(", "));
    let tail = format!(" RETURNING \"{}\"", key.into_column().to_string());
    let mut ids: Vec<i64> = Vec::with_capacity(count);
    for chunk in in_chunks(rows, ROWS_PER_INSERT) {
        let mut sql = head.clone();
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * columns.len());
        for (n, mut row) in chunk.into_iter().enumerate() {
            sql.push_str(if n == 0 { "(" } else { ", (" });
            for (i, column) in columns.iter().enumerate() {
                match row.take(*column).into_value() {
                    Some(value) => values.push(value),
                    None => return Err(invalid("the rows of one insert set different columns")),
                }
                if i > 0 {
                    sql.push_str(", ");
                }
                match backend {
                    DbBackend::Postgres => sql.push_str(&format!("${}", values.len())),
                    _ => sql.push('?'),
                }
            }
            sql.push(')');
        }
        sql.push_str(&tail);
        for row in txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(db_err)?
        {
            ids.push(row.try_get_by_index::<i64>(0).map_err(db_err)?);
        }
    }
    if ids.len() != count {
        return Err(invalid(format!(
            "a multi-row insert of {count} rows returned {} ids",
            ids.len()
        )));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The overage row of the new usage row `record`, in the settlement's `period`.
fn overage_model(
    record: &UsageRecord,
    period: &Period,
    tokens: i64,
    amount: Decimal,
) -> overage_row::ActiveModel {
    let entry = &record.entry;
    overage_row::ActiveModel {
        billable_type: Set(entry.billable.kind.clone()),
        billable_id: Set(entry.billable.id.clone()),
        usage_id: Set(record.id),
        period_start: Set(instant(period.start)),
        period_end: Set(instant(period.end)),
        tokens: Set(tokens),
        amount: Set(money_text(amount)),
        currency: Set(entry.cost.currency.as_str().to_owned()),
        created_at: Set(instant(entry.occurred_at)),
        synced_at: Set(None),
        external_id: Set(None),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::in_chunks;

    #[test]
    fn chunks_move_every_item_once_in_order() {
        let chunks: Vec<Vec<u32>> = in_chunks((0..7).collect(), 3).collect();
        assert_eq!(chunks, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(in_chunks(Vec::<u32>::new(), 3).count(), 0);
        // A size of 0 still makes progress.
        assert_eq!(in_chunks(vec![1, 2], 0).count(), 2);
    }
}
