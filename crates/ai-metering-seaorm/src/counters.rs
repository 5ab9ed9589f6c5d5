//! [`CounterStore`] for [`SeaOrmStore`]: period counters and atomic reservations.
//!
//! A counter row holds what was *recorded* in one billable's period window and what its
//! `ai_reservations` rows *reserve* (their sum, kept on the row by every write that adds or
//! drops a reservation). Reservations, settlements and releases go through the store's
//! writer ([`crate::writer`]), which runs many of them in one transaction ([`crate::batch`]).
//! The functions here run one operation in a transaction of its own, serialised per
//! billable (see [`SeaOrmStore`]), for a store without a writer and for what a batch gives
//! back: create the counter if needed (seeded from the usage rows already in its window),
//! drop the billable's expired reservations, evaluate the limits with [`evaluate`] against
//! recorded + reserved, and insert the reservation only if it fits.

use ai_metering_core::grants;
use ai_metering_core::limit::{Thresholds, UsageTotals, evaluate};
use ai_metering_core::overage::overage;
use ai_metering_core::period::Period;
use ai_metering_core::store::{
    CounterStore, CreditTransaction, Direction, HoldId, NewOverage, PeriodUsage, ReservationId,
    ReserveOutcome, ReserveRequest, Settled, Settlement, StoreErrorKind, StoreResult,
    USAGE_DEBIT_REASON, UsageEntry, UsageFilter,
};
use ai_metering_core::{Billable, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QuerySelect, Select, TransactionTrait,
};

use crate::codec::{instant, invalid, money_from_text, money_text, to_i64, to_u64};
use crate::credits::{
    TakenHold, balance_of, hold_in, ledger, release_hold_in, set_wallet, take_hold,
    wallet_for_update, wallet_in,
};
use crate::entity::{period_counter, reservation, threshold_claim};
use crate::error::{db_err, refused_by_database};
use crate::filter::condition;
use crate::grants::{Book, available_in};
use crate::overages::insert_overage_in;
use crate::store::SeaOrmStore;
use crate::sums::grouped_sums;
use crate::usage::{find_by_key, insert_usage_in};

impl CounterStore for SeaOrmStore {
    async fn reserve(&self, req: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        match self.writer() {
            Some(writer) => writer.reserve(req.clone()).await,
            None => self.reserve_single(req).await,
        }
    }

    async fn settle(&self, settlement: &Settlement) -> StoreResult<Settled> {
        match self.writer() {
            Some(writer) => writer.settle(settlement.clone()).await,
            None => self.settle_single(settlement).await,
        }
    }

    async fn release(&self, id: ReservationId) -> StoreResult<bool> {
        let Some(owner) = reservation::Entity::find_by_id(id.0)
            .one(self.connection())
            .await
            .map_err(db_err)?
        else {
            return Ok(false);
        };
        let owner = Billable::new(owner.billable_type, owner.billable_id);
        match self.writer() {
            Some(writer) => writer.release(id, owner).await,
            None => self.release_single(id, &owner).await,
        }
    }

    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let expired = reservation::Entity::find()
            .filter(reservation::Column::ExpiresAt.lte(instant(now)))
            .all(self.connection())
            .await
            .map_err(db_err)?;
        let mut billables: Vec<Billable> = expired
            .into_iter()
            .map(|r| Billable::new(r.billable_type, r.billable_id))
            .collect();
        billables.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        billables.dedup();
        let mut dropped = 0;
        for billable in billables {
            // One billable at a time, under its lock, with the holds given back.
            let txn = self.begin_for([&billable]).await?;
            dropped += expire_in(&txn, Some(&billable), now).await?;
            txn.commit().await.map_err(db_err)?;
        }
        Ok(dropped)
    }

    async fn period_usage(
        &self,
        billable: &Billable,
        period: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        let db = self.connection();
        match counter_at(db, billable, period, now).await? {
            // One read in the common case: the counter row carries both totals, unless a
            // reservation of it expired and was not swept yet.
            Some((counter, false)) => Ok(PeriodUsage {
                recorded: recorded_of(&counter)?,
                reserved: reserved_on(&counter)?,
            }),
            Some((counter, true)) => Ok(PeriodUsage {
                recorded: recorded_of(&counter)?,
                reserved: reserved_of(db, counter.id, Some(now)).await?,
            }),
            None => Ok(PeriodUsage {
                recorded: recorded_in_window(db, billable, period).await?,
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
        let row = threshold_claim::ActiveModel {
            billable_type: Set(billable.kind.clone()),
            billable_id: Set(billable.id.clone()),
            period_start: Set(instant(period.start)),
            period_end: Set(instant(period.end)),
            threshold: Set(threshold.normalize().to_string()),
            claimed_at: Set(Utc::now()),
            ..Default::default()
        };
        let inserted = threshold_claim::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    threshold_claim::Column::BillableType,
                    threshold_claim::Column::BillableId,
                    threshold_claim::Column::PeriodStart,
                    threshold_claim::Column::PeriodEnd,
                    threshold_claim::Column::Threshold,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(self.connection())
            .await
            .map_err(db_err)?;
        Ok(inserted == 1)
    }
}

impl SeaOrmStore {
    /// A reservation in a transaction of its own.
    pub(crate) async fn reserve_single(&self, req: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        let tokens = to_i64("reserved tokens", req.amount.tokens)?;
        if req.amount.cost.is_sign_negative() {
            return Err(invalid("a reservation's cost must not be negative"));
        }
        let billable = &req.billable;
        let txn = self.begin_for([billable]).await?;
        self.step("expiring reservations")?;
        expire_in(&txn, Some(billable), req.now).await?;

        self.step("checking the idempotency key")?;
        if let Some(key) = &req.idempotency_key {
            if let Some(record) = find_by_key(&txn, billable, key).await? {
                txn.commit().await.map_err(db_err)?;
                return Ok(ReserveOutcome::AlreadyRecorded(Box::new(record)));
            }
            let claimed = of_billable(billable)
                .filter(reservation::Column::IdempotencyKey.eq(key.as_str()))
                .filter(others(req.replaces))
                .one(&txn)
                .await
                .map_err(db_err)?;
            if claimed.is_some() {
                txn.commit().await.map_err(db_err)?;
                return Ok(ReserveOutcome::KeyInFlight);
            }
        }
        if req.exclusive {
            let busy = of_billable(billable)
                .filter(reservation::Column::Exclusive.eq(true))
                .filter(others(req.replaces))
                .one(&txn)
                .await
                .map_err(db_err)?;
            if busy.is_some() {
                txn.commit().await.map_err(db_err)?;
                return Ok(ReserveOutcome::Busy);
            }
        }

        self.step("reading the counter")?;
        let counter = counter_for_update(&txn, billable, &req.period).await?;
        let replaced = match req.replaces {
            Some(id) => of_billable(billable)
                .filter(reservation::Column::Id.eq(id.0))
                .one(&txn)
                .await
                .map_err(db_err)?,
            None => None,
        };
        let mut reserved = reserved_on(&counter)?;
        if let Some(r) = replaced.as_ref().filter(|r| r.counter_id == counter.id) {
            let amount = amount_of(r)?;
            reserved = UsageTotals::new(
                reserved.tokens.saturating_sub(amount.tokens),
                (reserved.cost - amount.cost).max(Decimal::ZERO),
            );
        }
        let usage = PeriodUsage {
            recorded: recorded_of(&counter)?,
            reserved,
        };
        let check = evaluate(
            &req.limits,
            usage.committed(),
            req.amount,
            &Thresholds::default(),
        );
        if let Some(exceeded) = check.exceeded {
            // Committed, not rolled back: the counter and the dropped expired reservations
            // are right either way.
            txn.commit().await.map_err(db_err)?;
            return Ok(ReserveOutcome::Rejected { exceeded, usage });
        }

        let mut hold_id = None;
        if let Some(hold) = &req.hold {
            self.step("checking the wallet")?;
            let wallet = wallet_for_update(&txn, billable, hold.amount.currency).await?;
            // What the replaced reservation holds counts as room.
            let except = replaced.as_ref().and_then(|r| r.hold_id);
            let available = available_in(&txn, &wallet, req.now, except).await?;
            if !hold.permits(available) {
                txn.rollback().await.map_err(db_err)?;
                return Ok(ReserveOutcome::InsufficientCredits { available });
            }
            if let Some(r) = &replaced {
                self.step("dropping the replaced reservation")?;
                drop_reservation_in(&txn, r).await?;
            }
            if hold.amount.amount > Decimal::ZERO {
                self.step("holding credits")?;
                let wallet = wallet_for_update(&txn, billable, hold.amount.currency).await?;
                hold_id = Some(hold_in(&txn, &wallet, hold.amount, req.now, req.expires_at).await?);
            }
        } else if let Some(r) = &replaced {
            self.step("dropping the replaced reservation")?;
            drop_reservation_in(&txn, r).await?;
        }

        self.step("inserting the reservation")?;
        let row = reservation_row(req, counter.id, tokens, hold_id);
        let id = reservation::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(db_err)?
            .last_insert_id;
        self.step("counting the reservation")?;
        shift_reserved(&txn, counter.id, req.amount, Shift::Add).await?;
        let wallet = match &req.hold {
            Some(hold) => reported(wallet_in(&txn, billable, hold.amount.currency, req.now).await)?,
            None => None,
        };
        self.step("committing the reservation")?;
        txn.commit().await.map_err(db_err)?;
        let reserved = usage
            .reserved
            .checked_add(req.amount)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(ReserveOutcome::Reserved {
            id: ReservationId(id),
            hold: hold_id.map(HoldId),
            usage: PeriodUsage { reserved, ..usage },
            wallet,
        })
    }

    /// A settlement in a transaction of its own.
    pub(crate) async fn settle_single(&self, settlement: &Settlement) -> StoreResult<Settled> {
        let entry = &settlement.entry;
        let billable = &entry.billable;
        let period = &settlement.period;
        let cost = Money::new(entry.cost.total, entry.cost.currency);
        if cost.amount.is_sign_negative() {
            return Err(invalid(format!(
                "a usage cost cannot be negative, got {cost}"
            )));
        }
        let txn = self.begin_for([billable]).await?;
        self.step("reading the reservation")?;
        let reserved = reservation::Entity::find_by_id(settlement.reservation.0)
            .one(&txn)
            .await
            .map_err(db_err)?
            .filter(|r| r.billable_type == billable.kind && r.billable_id == billable.id);

        if let Some(key) = &entry.idempotency_key
            && let Some(record) = find_by_key(&txn, billable, key).await?
        {
            // Recorded before (a retry): only the reservation goes.
            if let Some(r) = &reserved {
                drop_reservation_in(&txn, r).await?;
            }
            let usage = usage_in(&txn, billable, period).await?;
            txn.commit().await.map_err(db_err)?;
            return Ok(Settled::replayed(record, usage));
        }

        self.step("dropping the reservation")?;
        let hold = match &reserved {
            Some(r) => {
                reservation::Entity::delete_by_id(r.id)
                    .exec(&txn)
                    .await
                    .map_err(db_err)?;
                shift_reserved(&txn, r.counter_id, amount_of(r)?, Shift::Remove).await?;
                match r.hold_id {
                    Some(h) => take_hold(&txn, HoldId(h)).await?,
                    None => None,
                }
            }
            None => None,
        };

        self.step("reading the period's totals")?;
        let counter = counter_for_update(&txn, billable, period).await?;
        let before = recorded_of(&counter)?;

        self.step("inserting the usage row")?;
        let recorded = insert_usage_in(&txn, entry).await?;

        let overage = match &settlement.overage {
            Some(rule) if period.start <= entry.occurred_at && entry.occurred_at < period.end => {
                overage(rule, before, entry.totals()).map_err(|e| invalid(e.to_string()))?
            }
            _ => None,
        };
        let overage = match overage {
            Some(o) => {
                self.step("inserting the overage")?;
                Some(
                    insert_overage_in(
                        &txn,
                        &NewOverage {
                            billable: billable.clone(),
                            usage_id: recorded.record.id,
                            period: *period,
                            tokens: o.tokens,
                            amount: Money::new(o.amount, cost.currency),
                            created_at: entry.occurred_at,
                        },
                    )
                    .await?,
                )
            }
            None => None,
        };

        let debit = settlement.debit_credits && cost.amount > Decimal::ZERO;
        let debit = if debit || hold.is_some() {
            self.step("capturing the credit hold")?;
            capture(&txn, billable, cost, debit, hold, entry.occurred_at).await?
        } else {
            None
        };

        let usage = usage_in(&txn, billable, period).await?;
        let wallet = if settlement.debit_credits {
            reported(wallet_in(&txn, billable, cost.currency, entry.occurred_at).await)?
        } else {
            None
        };
        self.step("committing the settlement")?;
        txn.commit().await.map_err(db_err)?;
        Ok(Settled {
            recorded,
            usage,
            debit,
            overage,
            wallet,
        })
    }

    /// A release in a transaction of its own.
    pub(crate) async fn release_single(
        &self,
        id: ReservationId,
        billable: &Billable,
    ) -> StoreResult<bool> {
        let txn = self.begin_for([billable]).await?;
        let reserved = reservation::Entity::find_by_id(id.0)
            .one(&txn)
            .await
            .map_err(db_err)?;
        let released = match &reserved {
            Some(r) => {
                drop_reservation_in(&txn, r).await?;
                true
            }
            None => false,
        };
        txn.commit().await.map_err(db_err)?;
        Ok(released)
    }
}

async fn find_counter<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    period: &Period,
) -> StoreResult<Option<period_counter::Model>> {
    period_counter::Entity::find()
        .filter(period_counter::Column::BillableType.eq(billable.kind.as_str()))
        .filter(period_counter::Column::BillableId.eq(billable.id.as_str()))
        .filter(period_counter::Column::PeriodStart.eq(instant(period.start)))
        .filter(period_counter::Column::PeriodEnd.eq(instant(period.end)))
        .one(db)
        .await
        .map_err(db_err)
}

/// The counter of `billable` for `period`, and whether one of its reservations expired by
/// `now` (and still counts on the row), in one read.
async fn counter_at<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    period: &Period,
    now: DateTime<Utc>,
) -> StoreResult<Option<(period_counter::Model, bool)>> {
    let stale = Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(reservation::Entity)
            .and_where(
                Expr::col((reservation::Entity, reservation::Column::CounterId))
                    .equals((period_counter::Entity, period_counter::Column::Id)),
            )
            .and_where(reservation::Column::ExpiresAt.lte(instant(now)))
            .to_owned(),
    );
    let row = period_counter::Entity::find()
        .filter(period_counter::Column::BillableType.eq(billable.kind.as_str()))
        .filter(period_counter::Column::BillableId.eq(billable.id.as_str()))
        .filter(period_counter::Column::PeriodStart.eq(instant(period.start)))
        .filter(period_counter::Column::PeriodEnd.eq(instant(period.end)))
        .expr_as(stale, "stale")
        .into_model::<CounterAt>()
        .one(db)
        .await
        .map_err(db_err)?;
    Ok(row.map(|r| {
        let stale = r.stale;
        (r.into_counter(), stale)
    }))
}

/// A counter row with whether one of its reservations expired.
#[derive(Debug, sea_orm::FromQueryResult)]
struct CounterAt {
    id: i64,
    billable_type: String,
    billable_id: String,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    recorded_tokens: i64,
    recorded_cost: String,
    reserved_tokens: i64,
    reserved_cost: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    stale: bool,
}

impl CounterAt {
    fn into_counter(self) -> period_counter::Model {
        period_counter::Model {
            id: self.id,
            billable_type: self.billable_type,
            billable_id: self.billable_id,
            period_start: self.period_start,
            period_end: self.period_end,
            recorded_tokens: self.recorded_tokens,
            recorded_cost: self.recorded_cost,
            reserved_tokens: self.reserved_tokens,
            reserved_cost: self.reserved_cost,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The counter of `billable` for `period`, created from the usage rows already in its window
/// when missing. Call with the billable's lock held.
pub(crate) async fn counter_for_update<C>(
    txn: &C,
    billable: &Billable,
    period: &Period,
) -> StoreResult<period_counter::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    if let Some(counter) = find_counter(txn, billable, period).await? {
        return Ok(counter);
    }
    let seed = recorded_in_window(txn, billable, period).await?;
    let now = Utc::now();
    let row = period_counter::ActiveModel {
        billable_type: Set(billable.kind.clone()),
        billable_id: Set(billable.id.clone()),
        period_start: Set(instant(period.start)),
        period_end: Set(instant(period.end)),
        recorded_tokens: Set(to_i64("recorded tokens", seed.tokens)?),
        recorded_cost: Set(money_text(seed.cost)),
        reserved_tokens: Set(0),
        reserved_cost: Set(money_text(Decimal::ZERO)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let id = period_counter::Entity::insert(row)
        .exec(txn)
        .await
        .map_err(db_err)?
        .last_insert_id;
    Ok(period_counter::Model {
        id,
        billable_type: billable.kind.clone(),
        billable_id: billable.id.clone(),
        period_start: instant(period.start),
        period_end: instant(period.end),
        recorded_tokens: to_i64("recorded tokens", seed.tokens)?,
        recorded_cost: money_text(seed.cost),
        reserved_tokens: 0,
        reserved_cost: money_text(Decimal::ZERO),
        created_at: now,
        updated_at: now,
    })
}

/// The usage rows of `billable` in `period`, summed.
pub(crate) async fn recorded_in_window<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    period: &Period,
) -> StoreResult<UsageTotals> {
    let filter = UsageFilter::for_billable(billable.clone()).in_period(period);
    let sums = grouped_sums(db, condition(&filter), &[]).await?;
    let sums = sums.into_iter().next().map(|(_, s)| s).unwrap_or_default();
    Ok(UsageTotals::new(sums.total_tokens, sums.cost))
}

pub(crate) fn recorded_of(counter: &period_counter::Model) -> StoreResult<UsageTotals> {
    Ok(UsageTotals::new(
        to_u64(
            "ai_period_counters.recorded_tokens",
            counter.recorded_tokens,
        )?,
        money_from_text("ai_period_counters.recorded_cost", &counter.recorded_cost)?,
    ))
}

/// The row of reservation `req` (of `tokens` tokens) against counter `counter_id`.
pub(crate) fn reservation_row(
    req: &ReserveRequest,
    counter_id: i64,
    tokens: i64,
    hold_id: Option<i64>,
) -> reservation::ActiveModel {
    reservation::ActiveModel {
        counter_id: Set(counter_id),
        billable_type: Set(req.billable.kind.clone()),
        billable_id: Set(req.billable.id.clone()),
        tokens: Set(tokens),
        cost: Set(money_text(req.amount.cost)),
        created_at: Set(instant(req.now)),
        expires_at: Set(instant(req.expires_at)),
        hold_id: Set(hold_id),
        idempotency_key: Set(req.idempotency_key.clone()),
        exclusive: Set(req.exclusive),
        ..Default::default()
    }
}

/// What the counter's reservations add up to, as kept on its row.
pub(crate) fn reserved_on(counter: &period_counter::Model) -> StoreResult<UsageTotals> {
    Ok(UsageTotals::new(
        to_u64(
            "ai_period_counters.reserved_tokens",
            counter.reserved_tokens,
        )?,
        money_from_text("ai_period_counters.reserved_cost", &counter.reserved_cost)?,
    ))
}

/// Which way [`shift_reserved`] moves a counter's reserved totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shift {
    /// A reservation was made.
    Add,
    /// A reservation was settled, released or swept.
    Remove,
}

/// `reserved` after a reservation of `amount` is added or removed (never below zero).
pub(crate) fn shifted(
    reserved: UsageTotals,
    amount: UsageTotals,
    shift: Shift,
) -> StoreResult<UsageTotals> {
    match shift {
        Shift::Add => reserved
            .checked_add(amount)
            .map_err(|e| invalid(e.to_string())),
        Shift::Remove => Ok(UsageTotals::new(
            reserved.tokens.saturating_sub(amount.tokens),
            (reserved.cost - amount.cost).max(Decimal::ZERO),
        )),
    }
}

/// Adds a reservation's amount to its counter's reserved totals, or takes it off. Call with
/// the billable's lock held.
pub(crate) async fn shift_reserved<C: ConnectionTrait>(
    db: &C,
    counter_id: i64,
    amount: UsageTotals,
    shift: Shift,
) -> StoreResult<()> {
    let Some(counter) = period_counter::Entity::find_by_id(counter_id)
        .one(db)
        .await
        .map_err(db_err)?
    else {
        // The counter went with its billable (a GDPR deletion): nothing to count.
        return Ok(());
    };
    let reserved = shifted(reserved_on(&counter)?, amount, shift)?;
    period_counter::Entity::update_many()
        .col_expr(
            period_counter::Column::ReservedTokens,
            Expr::value(to_i64("reserved tokens", reserved.tokens)?),
        )
        .col_expr(
            period_counter::Column::ReservedCost,
            Expr::value(money_text(reserved.cost)),
        )
        .filter(period_counter::Column::Id.eq(counter_id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The reservations of a counter (those still live at `now`, when given), summed.
async fn reserved_of<C: ConnectionTrait>(
    db: &C,
    counter_id: i64,
    now: Option<DateTime<Utc>>,
) -> StoreResult<UsageTotals> {
    let mut query =
        reservation::Entity::find().filter(reservation::Column::CounterId.eq(counter_id));
    if let Some(now) = now {
        query = query.filter(reservation::Column::ExpiresAt.gt(instant(now)));
    }
    let rows = query.all(db).await.map_err(db_err)?;
    let mut total = UsageTotals::ZERO;
    for r in rows {
        let amount = UsageTotals::new(
            to_u64("ai_reservations.tokens", r.tokens)?,
            money_from_text("ai_reservations.cost", &r.cost)?,
        );
        total = total
            .checked_add(amount)
            .map_err(|e| invalid(e.to_string()))?;
    }
    Ok(total)
}

/// Adds a just-inserted usage row to every counter of its billable whose window contains it.
/// Call with the billable's lock held.
pub(crate) async fn add_to_counters<C: ConnectionTrait>(
    db: &C,
    entry: &UsageEntry,
) -> StoreResult<()> {
    let at = instant(entry.occurred_at);
    let counters = period_counter::Entity::find()
        .filter(period_counter::Column::BillableType.eq(entry.billable.kind.as_str()))
        .filter(period_counter::Column::BillableId.eq(entry.billable.id.as_str()))
        .filter(period_counter::Column::PeriodStart.lte(at))
        .filter(period_counter::Column::PeriodEnd.gt(at))
        .all(db)
        .await
        .map_err(db_err)?;
    let totals = entry.totals();
    let tokens = to_i64("recorded tokens", totals.tokens)?;
    for counter in counters {
        let cost = money_from_text("ai_period_counters.recorded_cost", &counter.recorded_cost)?
            .checked_add(totals.cost)
            .ok_or_else(|| invalid("a counter's recorded cost overflows"))?;
        period_counter::Entity::update_many()
            .col_expr(
                period_counter::Column::RecordedTokens,
                Expr::col(period_counter::Column::RecordedTokens).add(tokens),
            )
            .col_expr(
                period_counter::Column::RecordedCost,
                Expr::value(money_text(cost)),
            )
            .col_expr(period_counter::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(period_counter::Column::Id.eq(counter.id))
            .exec(db)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// The reservations of `billable`.
fn of_billable(billable: &Billable) -> Select<reservation::Entity> {
    reservation::Entity::find()
        .filter(reservation::Column::BillableType.eq(billable.kind.as_str()))
        .filter(reservation::Column::BillableId.eq(billable.id.as_str()))
}

/// Every reservation but `replaced`.
fn others(replaced: Option<ReservationId>) -> Condition {
    match replaced {
        Some(id) => Condition::all().add(reservation::Column::Id.ne(id.0)),
        None => Condition::all(),
    }
}

pub(crate) fn amount_of(r: &reservation::Model) -> StoreResult<UsageTotals> {
    Ok(UsageTotals::new(
        to_u64("ai_reservations.tokens", r.tokens)?,
        money_from_text("ai_reservations.cost", &r.cost)?,
    ))
}

/// Deletes a reservation and gives its credit hold back. Call with the billable's lock held.
async fn drop_reservation_in(txn: &DatabaseTransaction, r: &reservation::Model) -> StoreResult<()> {
    reservation::Entity::delete_by_id(r.id)
        .exec(txn)
        .await
        .map_err(db_err)?;
    shift_reserved(txn, r.counter_id, amount_of(r)?, Shift::Remove).await?;
    if let Some(hold) = r.hold_id {
        release_hold_in(txn, hold).await?;
    }
    Ok(())
}

/// Drops the reservations (of `billable`, or all) that expired by `now`, giving their holds
/// back; returns how many. Call with the billable's lock held.
async fn expire_in(
    txn: &DatabaseTransaction,
    billable: Option<&Billable>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let query = match billable {
        Some(b) => of_billable(b),
        None => reservation::Entity::find(),
    };
    let expired = query
        .filter(reservation::Column::ExpiresAt.lte(instant(now)))
        .all(txn)
        .await
        .map_err(db_err)?;
    for r in &expired {
        drop_reservation_in(txn, r).await?;
    }
    Ok(expired.len() as u64)
}

/// The usage of `billable` in `period` inside `txn`, as its counter says (reservations not
/// yet swept included).
async fn usage_in(
    txn: &DatabaseTransaction,
    billable: &Billable,
    period: &Period,
) -> StoreResult<PeriodUsage> {
    match find_counter(txn, billable, period).await? {
        Some(counter) => Ok(PeriodUsage {
            recorded: recorded_of(&counter)?,
            reserved: reserved_on(&counter)?,
        }),
        None => Ok(PeriodUsage {
            recorded: recorded_in_window(txn, billable, period).await?,
            reserved: UsageTotals::ZERO,
        }),
    }
}

/// Debits `cost` from the wallet when `debit`, and drops the taken `hold` from its held
/// amount: the capture of a credit hold. The debit is paid by the grants the hold took from,
/// then as [`grants::spend_hold`] says; without a debit the hold's grants are given back.
/// Never refused (the money was spent).
async fn capture(
    txn: &DatabaseTransaction,
    billable: &Billable,
    cost: Money,
    debit: bool,
    hold: Option<TakenHold>,
    at: DateTime<Utc>,
) -> StoreResult<Option<CreditTransaction>> {
    let mut released = None;
    if let Some(taken) = &hold {
        let wallet = &taken.wallet;
        if debit && wallet.currency != cost.currency.as_str() {
            return Err(invalid(format!(
                "the credit hold is in {}, the usage cost in {}",
                wallet.currency, cost.currency
            )));
        }
        let held = money_from_text("ai_credit_wallets.held", &wallet.held)?
            .checked_sub(taken.amount)
            .unwrap_or(Decimal::ZERO)
            .max(Decimal::ZERO);
        set_wallet(txn, wallet.id, None, Some(held)).await?;
        let mut book = Book::load(txn, wallet.id).await?;
        grants::release_hold(&mut book.grants, &taken.takes);
        if debit {
            // Spent below, from the same book.
            released = Some((book, taken.takes.clone(), taken.amount));
        } else {
            book.save(txn).await?;
        }
    }
    if !debit {
        return Ok(None);
    }
    let wallet = wallet_for_update(txn, billable, cost.currency).await?;
    let balance = balance_of(&wallet)?
        .balance
        .checked_sub(cost.amount)
        .ok_or_else(|| invalid("the wallet balance overflows"))?;
    let (mut book, takes, held) = match released {
        Some(released) => released,
        None => (Book::load(txn, wallet.id).await?, Vec::new(), Decimal::ZERO),
    };
    let paid = grants::spend_hold(&mut book.grants, &takes, held, cost.amount, at)
        .map_err(|e| invalid(e.to_string()))?;
    book.save(txn).await?;
    set_wallet(txn, wallet.id, Some(balance), None).await?;
    let tx = ledger(
        txn,
        &wallet,
        cost,
        Direction::Debit,
        USAGE_DEBIT_REASON,
        balance,
        &paid.takes,
        at,
    )
    .await?;
    Ok(Some(tx))
}

/// A read made inside a write's transaction only to report on it (the wallet after a hold
/// or a settlement): a value it cannot make sense of (an overflowing grant) is left out, and
/// the caller reads it itself; but a database error fails the write, even one classed as
/// invalid (a PostgreSQL data exception). Such an error may have aborted the transaction,
/// and PostgreSQL answers the `COMMIT` of an aborted transaction with a rollback, not an
/// error: the write would be reported done and never stored.
fn reported<T>(read: StoreResult<T>) -> StoreResult<Option<T>> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == StoreErrorKind::Invalid && !refused_by_database(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod reported_tests {
    use super::*;
    use ai_metering_core::store::StoreError;

    #[test]
    fn a_report_leaves_out_what_it_cannot_read_but_not_a_database_error() {
        assert_eq!(reported(Ok::<_, StoreError>(7)).unwrap(), Some(7));
        let odd = StoreError::new(StoreErrorKind::Invalid, "grants overflow");
        assert_eq!(reported::<u8>(Err(odd)).unwrap(), None);
        let down = StoreError::new(StoreErrorKind::Unavailable, "connection reset");
        let err = reported::<u8>(Err(down)).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        // A value the driver could not decode did not reach the database: left out too.
        let undecodable = db_err(sea_orm::DbErr::Type("not a number".into()));
        assert_eq!(undecodable.kind(), StoreErrorKind::Invalid);
        assert_eq!(reported::<u8>(Err(undecodable)).unwrap(), None);
    }

    /// A data exception is classed as invalid, yet PostgreSQL aborts the transaction for it
    /// and turns its `COMMIT` into a rollback: a report that met one must fail the write.
    #[tokio::test]
    async fn a_data_exception_from_postgres_fails_the_write_it_reports_on() {
        use sea_orm::{Database, DbBackend, Statement, TransactionTrait};

        let Some(url) = ai_metering_test_env::fresh_postgres_database(
            "reported_data_exception",
            "aim_reported_data_exception",
        )
        .await
        else {
            return;
        };
        let db = Database::connect(url.as_str()).await.unwrap();
        db.execute_unprepared("CREATE TABLE written (n int)")
            .await
            .unwrap();
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared("INSERT INTO written VALUES (1)")
            .await
            .unwrap();
        let divide = Statement::from_string(DbBackend::Postgres, "SELECT 1 / 0");
        let refused = txn.query_one_raw(divide).await.map_err(db_err).unwrap_err();
        assert_eq!(refused.kind(), StoreErrorKind::Invalid, "{refused}");
        assert!(refused_by_database(&refused));
        let err = reported::<u8>(Err(refused)).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid);

        // Why: the transaction is gone, and its COMMIT says nothing.
        txn.commit().await.unwrap();
        let count =
            Statement::from_string(DbBackend::Postgres, "SELECT count(*) AS n FROM written");
        let row = db.query_one_raw(count).await.unwrap().unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
    }
}
