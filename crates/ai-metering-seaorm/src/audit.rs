//! [`AuditStore`] for [`SeaOrmStore`]: plain reads of one billable's rows, taken in one
//! transaction serialised with the billable's writers, so that a snapshot never sees half of
//! a settlement.

use std::collections::HashMap;

use ai_metering_core::period::Period;
use ai_metering_core::store::{
    AuditCounter, AuditHold, AuditReservation, AuditSnapshot, AuditStore, AuditUsage, HoldId,
    ReservationId, StoreResult,
};
use ai_metering_core::{Billable, Money, UsageTotals};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};

use crate::codec::{currency, invalid, money_from_text, to_u64};
use crate::counters::{amount_of, recorded_of, reserved_on};
use crate::credits::{balance_of, to_transaction};
use crate::entity::{
    credit_grant, credit_hold, credit_transaction, credit_wallet, overage, period_counter,
    reservation, usage,
};
use crate::error::db_err;
use crate::grants::{takes_from_text, wallet_grant_of};
use crate::overages::to_record;
use crate::store::SeaOrmStore;

/// Every table that names billables.
const BILLABLES: &str = "SELECT billable_type, billable_id FROM ai_usages \
    UNION SELECT billable_type, billable_id FROM ai_period_counters \
    UNION SELECT billable_type, billable_id FROM ai_reservations \
    UNION SELECT billable_type, billable_id FROM ai_credit_wallets \
    UNION SELECT billable_type, billable_id FROM ai_credit_holds \
    UNION SELECT billable_type, billable_id FROM ai_overages \
    ORDER BY 1, 2";

impl AuditStore for SeaOrmStore {
    async fn audited_billables(&self) -> StoreResult<Vec<Billable>> {
        let rows = self
            .connection()
            .query_all_raw(Statement::from_string(self.backend(), BILLABLES))
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|row| {
                let kind: String = row.try_get("", "billable_type").map_err(db_err)?;
                let id: String = row.try_get("", "billable_id").map_err(db_err)?;
                Ok(Billable::new(kind, id))
            })
            .collect()
    }

    async fn audit_snapshot(&self, billable: &Billable) -> StoreResult<AuditSnapshot> {
        let txn = self.begin_for([billable]).await?;
        let snapshot = read_snapshot(&txn, billable).await;
        // Read only: nothing to commit, whatever happened.
        txn.rollback().await.map_err(db_err)?;
        snapshot
    }
}

async fn read_snapshot<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    b: &Billable,
) -> StoreResult<AuditSnapshot> {
    let usage = usage::Entity::find()
        .select_only()
        .columns([
            usage::Column::Id,
            usage::Column::OccurredAt,
            usage::Column::TotalTokens,
            usage::Column::TotalCost,
            usage::Column::Currency,
        ])
        .filter(usage::Column::BillableType.eq(b.kind.as_str()))
        .filter(usage::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(usage::Column::Id)
        .into_tuple::<(i64, chrono::DateTime<chrono::Utc>, i64, String, String)>()
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|(id, occurred_at, tokens, cost, cur)| {
            let cost = money_from_text("ai_usages.total_cost", &cost)?;
            Ok(AuditUsage {
                id,
                occurred_at,
                totals: UsageTotals::new(to_u64("ai_usages.total_tokens", tokens)?, cost),
                cost: Money::new(cost, currency(&cur)?),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

    let counter_rows = period_counter::Entity::find()
        .filter(period_counter::Column::BillableType.eq(b.kind.as_str()))
        .filter(period_counter::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(period_counter::Column::PeriodStart)
        .order_by_asc(period_counter::Column::PeriodEnd)
        .all(db)
        .await
        .map_err(db_err)?;
    let mut periods = HashMap::new();
    let mut counters = Vec::with_capacity(counter_rows.len());
    for c in &counter_rows {
        let period = Period::new(c.period_start, c.period_end)
            .map_err(|e| invalid(format!("ai_period_counters row {}: {e}", c.id)))?;
        periods.insert(c.id, period);
        counters.push(AuditCounter {
            period,
            recorded: recorded_of(c)?,
            reserved: Some(reserved_on(c)?),
        });
    }

    let reservations = reservation::Entity::find()
        .filter(reservation::Column::BillableType.eq(b.kind.as_str()))
        .filter(reservation::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(reservation::Column::Id)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|r| {
            let period = periods.get(&r.counter_id).copied().ok_or_else(|| {
                invalid(format!(
                    "ai_reservations row {} names counter {}, not one of its billable",
                    r.id, r.counter_id
                ))
            })?;
            Ok(AuditReservation {
                id: ReservationId(r.id),
                period,
                amount: amount_of(&r)?,
                expires_at: r.expires_at,
                hold: r.hold_id.map(HoldId),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

    let wallets = credit_wallet::Entity::find()
        .filter(credit_wallet::Column::BillableType.eq(b.kind.as_str()))
        .filter(credit_wallet::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(credit_wallet::Column::Currency)
        .all(db)
        .await
        .map_err(db_err)?
        .iter()
        .map(balance_of)
        .collect::<StoreResult<Vec<_>>>()?;

    let ledger = credit_transaction::Entity::find()
        .filter(credit_transaction::Column::BillableType.eq(b.kind.as_str()))
        .filter(credit_transaction::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(credit_transaction::Column::Id)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(to_transaction)
        .collect::<StoreResult<Vec<_>>>()?;

    let holds = credit_hold::Entity::find()
        .filter(credit_hold::Column::BillableType.eq(b.kind.as_str()))
        .filter(credit_hold::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(credit_hold::Column::Id)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|h| {
            Ok(AuditHold {
                id: HoldId(h.id),
                amount: Money::new(
                    money_from_text("ai_credit_holds.amount", &h.amount)?,
                    currency(&h.currency)?,
                ),
                expires_at: h.expires_at,
                grants: takes_from_text("ai_credit_holds.grants", &h.grants)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

    let grants = credit_grant::Entity::find()
        .filter(credit_grant::Column::BillableType.eq(b.kind.as_str()))
        .filter(credit_grant::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(credit_grant::Column::Id)
        .all(db)
        .await
        .map_err(db_err)?
        .iter()
        .map(wallet_grant_of)
        .collect::<StoreResult<Vec<_>>>()?;

    let overages = overage::Entity::find()
        .filter(overage::Column::BillableType.eq(b.kind.as_str()))
        .filter(overage::Column::BillableId.eq(b.id.as_str()))
        .order_by_asc(overage::Column::Id)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(to_record)
        .collect::<StoreResult<Vec<_>>>()?;

    Ok(AuditSnapshot {
        usage,
        counters,
        reservations,
        wallets,
        ledger,
        holds,
        grants,
        overages,
    })
}
