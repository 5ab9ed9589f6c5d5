//! [`CounterStore`] for [`SeaOrmStore`]: period counters and atomic reservations.
//!
//! A counter row holds what was *recorded* in one billable's period window; what is
//! *reserved* is the sum of its live `ai_reservations` rows. `reserve` runs in one transaction
//! serialised per billable (see [`SeaOrmStore`]): it creates the counter if needed (seeded from
//! the usage rows already in its window), drops the counter's expired reservations, adds up
//! the live ones, evaluates the limits with [`evaluate`], and inserts the reservation only if
//! it fits.

use ai_metering_core::Billable;
use ai_metering_core::limit::{Thresholds, UsageTotals, evaluate};
use ai_metering_core::period::Period;
use ai_metering_core::store::{
    CounterStore, PeriodUsage, Recorded, ReservationId, ReserveOutcome, ReserveRequest,
    StoreResult, UsageEntry, UsageFilter,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};

use crate::codec::{instant, invalid, money_from_text, money_text, to_i64, to_u64};
use crate::entity::{period_counter, reservation, threshold_claim};
use crate::error::db_err;
use crate::filter::condition;
use crate::store::SeaOrmStore;
use crate::sums::grouped_sums;
use crate::usage::insert_usage_in;

impl CounterStore for SeaOrmStore {
    async fn reserve(&self, req: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        let tokens = to_i64("reserved tokens", req.amount.tokens)?;
        if req.amount.cost.is_sign_negative() {
            return Err(invalid("a reservation's cost must not be negative"));
        }
        let txn = self.begin_for([&req.billable]).await?;
        let counter = counter_for_update(&txn, &req.billable, &req.period).await?;
        reservation::Entity::delete_many()
            .filter(reservation::Column::CounterId.eq(counter.id))
            .filter(reservation::Column::ExpiresAt.lte(instant(req.now)))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        let usage = PeriodUsage {
            recorded: recorded_of(&counter)?,
            reserved: reserved_of(&txn, counter.id, None).await?,
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
        let row = reservation::ActiveModel {
            counter_id: Set(counter.id),
            billable_type: Set(req.billable.kind.clone()),
            billable_id: Set(req.billable.id.clone()),
            tokens: Set(tokens),
            cost: Set(money_text(req.amount.cost)),
            created_at: Set(instant(req.now)),
            expires_at: Set(instant(req.expires_at)),
            ..Default::default()
        };
        let id = reservation::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(db_err)?
            .last_insert_id;
        txn.commit().await.map_err(db_err)?;
        let reserved = usage
            .reserved
            .checked_add(req.amount)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(ReserveOutcome::Reserved {
            id: ReservationId(id),
            usage: PeriodUsage { reserved, ..usage },
        })
    }

    async fn settle(&self, id: ReservationId, entry: &UsageEntry) -> StoreResult<Recorded> {
        let txn = self.begin_for([&entry.billable]).await?;
        reservation::Entity::delete_by_id(id.0)
            .exec(&txn)
            .await
            .map_err(db_err)?;
        let recorded = insert_usage_in(&txn, entry).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(recorded)
    }

    async fn release(&self, id: ReservationId) -> StoreResult<bool> {
        let result = reservation::Entity::delete_by_id(id.0)
            .exec(self.connection())
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected > 0)
    }

    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let result = reservation::Entity::delete_many()
            .filter(reservation::Column::ExpiresAt.lte(instant(now)))
            .exec(self.connection())
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected)
    }

    async fn period_usage(
        &self,
        billable: &Billable,
        period: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        let db = self.connection();
        match find_counter(db, billable, period).await? {
            Some(counter) => Ok(PeriodUsage {
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

/// The counter of `billable` for `period`, created from the usage rows already in its window
/// when missing. Call with the billable's lock held.
async fn counter_for_update<C>(
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
        created_at: now,
        updated_at: now,
    })
}

/// The usage rows of `billable` in `period`, summed.
async fn recorded_in_window<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    period: &Period,
) -> StoreResult<UsageTotals> {
    let filter = UsageFilter::for_billable(billable.clone()).in_period(period);
    let sums = grouped_sums(db, condition(&filter), &[]).await?;
    let sums = sums.into_iter().next().map(|(_, s)| s).unwrap_or_default();
    Ok(UsageTotals::new(sums.total_tokens, sums.cost))
}

fn recorded_of(counter: &period_counter::Model) -> StoreResult<UsageTotals> {
    Ok(UsageTotals::new(
        to_u64(
            "ai_period_counters.recorded_tokens",
            counter.recorded_tokens,
        )?,
        money_from_text("ai_period_counters.recorded_cost", &counter.recorded_cost)?,
    ))
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
