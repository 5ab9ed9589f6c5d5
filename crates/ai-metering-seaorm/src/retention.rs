//! [`RetentionStore`] for [`SeaOrmStore`]: erasure, anonymisation, pruning and the daily
//! aggregates' rebuild.
//!
//! Every operation runs in transactions serialised with the money path of the billables it
//! touches ([`SeaOrmStore::begin_for`]): it first reads which billables the doomed rows
//! belong to, locks them, and reads the rows again under the locks (retrying if a row moved
//! to another billable in between). Deleting usage rows also deletes their overage rows,
//! recounts the counters whose windows held them, and recomputes the daily aggregates of
//! their days (where aggregates were kept), in the same transaction.

use std::collections::{BTreeMap, BTreeSet};

use ai_metering_core::Billable;
use ai_metering_core::period::Period;
use ai_metering_core::store::{
    RetentionStore, RowCounts, StoreError, StoreErrorKind, StoreResult, UsageDay,
};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::aggregates::refresh_aggregates;
use crate::codec::{instant, invalid, money_from_text, money_text, nano_units, to_i64};
use crate::counters::{Shift, recorded_in_window, recorded_of, reserved_on, shifted};
use crate::entity::{credit_wallet, daily_aggregate, overage, period_counter, reservation, usage};
use crate::error::db_err;
use crate::store::SeaOrmStore;

/// How many times an operation re-reads its rows when one moved to a billable it had not
/// locked (a concurrent anonymisation) before giving up.
const LOCK_ATTEMPTS: usize = 5;
/// Usage ids per `IN (...)` list.
const ID_CHUNK: usize = 500;

/// Tables that hold a billable, in the order rows are deleted (children first).
const BILLABLE_TABLES: [&str; 13] = [
    "ai_api_keys",
    "ai_reservations",
    "ai_period_counters",
    "ai_threshold_claims",
    "ai_usages",
    "ai_subscriptions",
    "ai_usage_limit_overrides",
    "ai_credit_holds",
    "ai_credit_grants",
    "ai_credit_transactions",
    "ai_credit_wallets",
    "ai_overages",
    "ai_usage_daily_aggregates",
];

impl RetentionStore for SeaOrmStore {
    async fn delete_billable(&self, billable: &Billable) -> StoreResult<RowCounts> {
        let txn = self.begin_for([billable]).await?;
        let mut counts = RowCounts::default();
        for table in BILLABLE_TABLES {
            let stmt = Query::delete()
                .from_table(Alias::new(table))
                .and_where(of_billable(billable))
                .to_owned();
            let n = txn.execute(&stmt).await.map_err(db_err)?.rows_affected();
            *slot(&mut counts, table) = n;
        }
        txn.commit().await.map_err(db_err)?;
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
        let txn = self.begin_for([billable, tombstone]).await?;
        let mut counts = RowCounts::default();
        let empty_json = || Expr::val("{}");

        counts.wallets = rekey_wallets(&txn, billable, tombstone).await?;
        counts.credit_transactions = rekey(
            &txn,
            "ai_credit_transactions",
            billable,
            tombstone,
            vec![("metadata", empty_json())],
        )
        .await?;
        counts.credit_holds = rekey(&txn, "ai_credit_holds", billable, tombstone, vec![]).await?;
        counts.credit_grants = rekey(&txn, "ai_credit_grants", billable, tombstone, vec![]).await?;
        // A key must not outlive its owner: the tombstone gets none.
        let stmt = Query::delete()
            .from_table(Alias::new("ai_api_keys"))
            .and_where(of_billable(billable))
            .to_owned();
        counts.api_keys = txn.execute(&stmt).await.map_err(db_err)?.rows_affected();
        counts.usages = rekey(&txn, "ai_usages", billable, tombstone, personal_columns()).await?;
        counts.subscriptions = rekey(
            &txn,
            "ai_subscriptions",
            billable,
            tombstone,
            vec![("meta", empty_json())],
        )
        .await?;
        counts.limit_overrides = rekey(
            &txn,
            "ai_usage_limit_overrides",
            billable,
            tombstone,
            vec![],
        )
        .await?;
        counts.overages = rekey(&txn, "ai_overages", billable, tombstone, vec![]).await?;
        let claims = Query::delete()
            .from_table(Alias::new("ai_threshold_claims"))
            .and_where(of_billable(billable))
            .to_owned();
        counts.threshold_claims = txn.execute(&claims).await.map_err(db_err)?.rows_affected();
        counts.reservations = rekey(&txn, "ai_reservations", billable, tombstone, vec![]).await?;
        counts.counters = merge_counters(&txn, billable, tombstone).await?;
        counts.aggregates = merge_aggregates(&txn, billable, tombstone).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(counts)
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<RowCounts> {
        let picked = Condition::all().add(usage::Column::UserId.eq(user_id));
        let (txn, rows) = self.lock_rows(picked, None).await?;
        let counts = self.remove_rows(&txn, &rows).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(counts)
    }

    async fn anonymize_user(&self, user_id: &str) -> StoreResult<RowCounts> {
        self.anonymize_where(usage::Column::UserId.eq(user_id))
            .await
    }

    async fn anonymize_usage_before(&self, cutoff: DateTime<Utc>) -> StoreResult<RowCounts> {
        self.anonymize_where(usage::Column::OccurredAt.lt(instant(cutoff)))
            .await
    }

    async fn prune_usage_before(
        &self,
        cutoff: DateTime<Utc>,
        batch_size: u64,
    ) -> StoreResult<RowCounts> {
        if batch_size == 0 {
            return Err(invalid("the prune batch size must be at least 1"));
        }
        let picked = Condition::all().add(usage::Column::OccurredAt.lt(instant(cutoff)));
        let mut total = RowCounts::default();
        loop {
            let (txn, rows) = self.lock_rows(picked.clone(), Some(batch_size)).await?;
            let counts = self.remove_rows(&txn, &rows).await?;
            txn.commit().await.map_err(db_err)?;
            total.add(&counts);
            if (rows.len() as u64) < batch_size {
                return Ok(total);
            }
        }
    }

    async fn rebuild_daily_aggregates(
        &self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<u64> {
        self.rebuild_aggregates(from, until).await
    }
}

/// A usage row about to be deleted: what its deletion changes besides itself.
#[derive(Debug, Clone)]
struct Doomed {
    id: i64,
    billable: Billable,
    occurred_at: DateTime<Utc>,
    /// The billable's day the row counts in.
    day: UsageDay,
}

impl SeaOrmStore {
    /// Opens a transaction holding the locks of the billables of the usage rows `picked`
    /// picks (the first `limit` by id), and returns it with those rows as read under the
    /// locks.
    async fn lock_rows(
        &self,
        picked: Condition,
        limit: Option<u64>,
    ) -> StoreResult<(DatabaseTransaction, Vec<Doomed>)> {
        let mut billables: BTreeSet<Billable> = doomed(self.connection(), &picked, limit)
            .await?
            .into_iter()
            .map(|d| d.billable)
            .collect();
        for _ in 0..LOCK_ATTEMPTS {
            let txn = self.begin_for(&billables).await?;
            let rows = doomed(&txn, &picked, limit).await?;
            let unlocked: Vec<Billable> = rows
                .iter()
                .filter(|d| !billables.contains(&d.billable))
                .map(|d| d.billable.clone())
                .collect();
            if unlocked.is_empty() {
                return Ok((txn, rows));
            }
            // A row moved to a billable not locked (or appeared): lock that one too.
            txn.rollback().await.map_err(db_err)?;
            billables.extend(unlocked);
        }
        Err(StoreError::new(
            StoreErrorKind::Conflict,
            "the usage rows to delete kept moving between billables; try again",
        ))
    }

    /// Deletes `rows` with their overage rows, recounts the counters that held them and
    /// recomputes the aggregates of their days. In a transaction holding their billables'
    /// locks.
    async fn remove_rows(
        &self,
        txn: &DatabaseTransaction,
        rows: &[Doomed],
    ) -> StoreResult<RowCounts> {
        let mut counts = RowCounts::default();
        for chunk in rows.chunks(ID_CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|d| d.id).collect();
            counts.overages += overage::Entity::delete_many()
                .filter(overage::Column::UsageId.is_in(ids.clone()))
                .exec(txn)
                .await
                .map_err(db_err)?
                .rows_affected;
            counts.usages += usage::Entity::delete_many()
                .filter(usage::Column::Id.is_in(ids))
                .exec(txn)
                .await
                .map_err(db_err)?
                .rows_affected;
        }
        // The instants and days each billable lost rows at.
        let mut lost: BTreeMap<&Billable, (Vec<DateTime<Utc>>, Vec<UsageDay>)> = BTreeMap::new();
        for d in rows {
            let (instants, days) = lost.entry(&d.billable).or_default();
            instants.push(d.occurred_at);
            if !days.contains(&d.day) {
                days.push(d.day);
            }
        }
        for (billable, (instants, days)) in lost {
            counts.counters += recount(txn, billable, &instants).await?;
            for day in &days {
                counts.aggregates += refresh_aggregates(txn, self.backend(), billable, day).await?;
            }
        }
        Ok(counts)
    }

    /// Drops the personal columns of the usage rows `picked` picks, in one transaction that
    /// holds their billables' locks (an idempotency key must not vanish under a settlement
    /// that is checking it).
    async fn anonymize_where(&self, picked: SimpleExpr) -> StoreResult<RowCounts> {
        let (txn, _) = self
            .lock_rows(Condition::all().add(picked.clone()), None)
            .await?;
        let mut values: Vec<(Alias, SimpleExpr)> = Vec::new();
        values.extend(
            personal_columns()
                .into_iter()
                .map(|(c, v)| (Alias::new(c), v)),
        );
        let stmt = Query::update()
            .table(Alias::new("ai_usages"))
            .values(values)
            .and_where(picked)
            .to_owned();
        let usages = txn.execute(&stmt).await.map_err(db_err)?.rows_affected();
        txn.commit().await.map_err(db_err)?;
        Ok(RowCounts {
            usages,
            ..RowCounts::default()
        })
    }
}

/// The columns of a usage row that may identify a person, and what anonymisation sets them to.
fn personal_columns() -> Vec<(&'static str, SimpleExpr)> {
    let null = || SimpleExpr::Constant(sea_orm::sea_query::Value::String(None));
    vec![
        ("user_id", null()),
        ("metadata", Expr::val("{}")),
        ("idempotency_key", null()),
    ]
}

/// The usage rows matching `picked`, the first `limit` by id.
async fn doomed<C: ConnectionTrait>(
    db: &C,
    picked: &Condition,
    limit: Option<u64>,
) -> StoreResult<Vec<Doomed>> {
    let mut select = usage::Entity::find()
        .select_only()
        .column(usage::Column::Id)
        .column(usage::Column::BillableType)
        .column(usage::Column::BillableId)
        .column(usage::Column::OccurredAt)
        .column(usage::Column::LocalDay)
        .column(usage::Column::DayStart)
        .column(usage::Column::DayEnd)
        .filter(picked.clone())
        .order_by_asc(usage::Column::Id);
    if let Some(limit) = limit {
        select = select.limit(limit);
    }
    type Row = (
        i64,
        String,
        String,
        DateTime<Utc>,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = select.into_tuple().all(db).await.map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, bid, occurred_at, local_day, start, end)| {
            let day = match (local_day.parse::<NaiveDate>(), start, end) {
                (Ok(date), Some(start), Some(end)) => UsageDay {
                    date,
                    period: Period { start, end },
                },
                // A row written before days were stored counts in its UTC day.
                _ => UsageDay::at(occurred_at, None),
            };
            Doomed {
                id,
                billable: Billable::new(kind, bid),
                occurred_at,
                day,
            }
        })
        .collect())
}

/// Sets the recorded totals of `billable`'s counters whose windows contain one of `instants`
/// to the sum of the rows left in them; returns how many changed.
async fn recount(
    txn: &DatabaseTransaction,
    billable: &Billable,
    instants: &[DateTime<Utc>],
) -> StoreResult<u64> {
    let (Some(first), Some(last)) = (instants.iter().min(), instants.iter().max()) else {
        return Ok(0);
    };
    let counters = period_counter::Entity::find()
        .filter(period_counter::Column::BillableType.eq(billable.kind.as_str()))
        .filter(period_counter::Column::BillableId.eq(billable.id.as_str()))
        .filter(period_counter::Column::PeriodStart.lte(instant(*last)))
        .filter(period_counter::Column::PeriodEnd.gt(instant(*first)))
        .all(txn)
        .await
        .map_err(db_err)?;
    let mut changed = 0;
    for c in counters {
        let period = Period::new(c.period_start, c.period_end)
            .map_err(|e| invalid(format!("counter {}: {e}", c.id)))?;
        if !instants
            .iter()
            .any(|at| period.start <= *at && *at < period.end)
        {
            continue;
        }
        let recorded = recorded_in_window(txn, billable, &period).await?;
        if recorded == recorded_of(&c)? {
            continue;
        }
        period_counter::Entity::update_many()
            .col_expr(
                period_counter::Column::RecordedTokens,
                Expr::value(to_i64("recorded tokens", recorded.tokens)?),
            )
            .col_expr(
                period_counter::Column::RecordedCost,
                Expr::value(money_text(recorded.cost)),
            )
            .col_expr(period_counter::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(period_counter::Column::Id.eq(c.id))
            .exec(txn)
            .await
            .map_err(db_err)?;
        changed += 1;
    }
    Ok(changed)
}

/// `billable_type = kind AND billable_id = id`.
fn of_billable(b: &Billable) -> SimpleExpr {
    Expr::col(Alias::new("billable_type"))
        .eq(b.kind.as_str())
        .and(Expr::col(Alias::new("billable_id")).eq(b.id.as_str()))
}

fn slot<'a>(counts: &'a mut RowCounts, table: &str) -> &'a mut u64 {
    match table {
        "ai_reservations" => &mut counts.reservations,
        "ai_period_counters" => &mut counts.counters,
        "ai_threshold_claims" => &mut counts.threshold_claims,
        "ai_usages" => &mut counts.usages,
        "ai_subscriptions" => &mut counts.subscriptions,
        "ai_usage_limit_overrides" => &mut counts.limit_overrides,
        "ai_credit_holds" => &mut counts.credit_holds,
        "ai_credit_grants" => &mut counts.credit_grants,
        "ai_api_keys" => &mut counts.api_keys,
        "ai_credit_transactions" => &mut counts.credit_transactions,
        "ai_credit_wallets" => &mut counts.wallets,
        "ai_overages" => &mut counts.overages,
        _ => &mut counts.aggregates,
    }
}

/// Moves the rows of `table` from `from` to `to`, also setting `extra` columns.
async fn rekey(
    txn: &DatabaseTransaction,
    table: &str,
    from: &Billable,
    to: &Billable,
    extra: Vec<(&str, SimpleExpr)>,
) -> StoreResult<u64> {
    let mut values: Vec<(Alias, SimpleExpr)> = vec![
        (Alias::new("billable_type"), Expr::val(to.kind.as_str())),
        (Alias::new("billable_id"), Expr::val(to.id.as_str())),
    ];
    values.extend(extra.into_iter().map(|(c, v)| (Alias::new(c), v)));
    let stmt = Query::update()
        .table(Alias::new(table))
        .values(values)
        .and_where(of_billable(from))
        .to_owned();
    Ok(txn.execute(&stmt).await.map_err(db_err)?.rows_affected())
}

async fn rekey_wallets(
    txn: &DatabaseTransaction,
    from: &Billable,
    to: &Billable,
) -> StoreResult<u64> {
    let wallets = |b: &Billable| {
        credit_wallet::Entity::find()
            .filter(credit_wallet::Column::BillableType.eq(b.kind.clone()))
            .filter(credit_wallet::Column::BillableId.eq(b.id.clone()))
    };
    let theirs = wallets(to).all(txn).await.map_err(db_err)?;
    let ours = wallets(from).all(txn).await.map_err(db_err)?;
    if let Some(w) = ours
        .iter()
        .find(|w| theirs.iter().any(|t| t.currency == w.currency))
    {
        return Err(StoreError::new(
            StoreErrorKind::Conflict,
            format!(
                "the tombstone {to} already has a {} wallet; use a fresh tombstone",
                w.currency
            ),
        ));
    }
    rekey(txn, "ai_credit_wallets", from, to, vec![]).await
}

/// Moves the counters of `from` to `to`, adding into the tombstone's counter of the same
/// window when there is one (its reservations follow).
async fn merge_counters(
    txn: &DatabaseTransaction,
    from: &Billable,
    to: &Billable,
) -> StoreResult<u64> {
    let ours = period_counter::Entity::find()
        .filter(period_counter::Column::BillableType.eq(from.kind.clone()))
        .filter(period_counter::Column::BillableId.eq(from.id.clone()))
        .all(txn)
        .await
        .map_err(db_err)?;
    for c in &ours {
        let target = period_counter::Entity::find()
            .filter(period_counter::Column::BillableType.eq(to.kind.clone()))
            .filter(period_counter::Column::BillableId.eq(to.id.clone()))
            .filter(period_counter::Column::PeriodStart.eq(c.period_start))
            .filter(period_counter::Column::PeriodEnd.eq(c.period_end))
            .one(txn)
            .await
            .map_err(db_err)?;
        match target {
            Some(t) => {
                let cost = money_from_text("ai_period_counters.recorded_cost", &t.recorded_cost)?
                    .checked_add(money_from_text(
                        "ai_period_counters.recorded_cost",
                        &c.recorded_cost,
                    )?)
                    .ok_or_else(|| invalid("a merged counter overflows"))?;
                let reserved = shifted(reserved_on(&t)?, reserved_on(c)?, Shift::Add)?;
                period_counter::Entity::update_many()
                    .col_expr(
                        period_counter::Column::RecordedTokens,
                        Expr::col(period_counter::Column::RecordedTokens).add(c.recorded_tokens),
                    )
                    .col_expr(
                        period_counter::Column::RecordedCost,
                        Expr::value(money_text(cost)),
                    )
                    .col_expr(
                        period_counter::Column::ReservedTokens,
                        Expr::value(to_i64("reserved tokens", reserved.tokens)?),
                    )
                    .col_expr(
                        period_counter::Column::ReservedCost,
                        Expr::value(money_text(reserved.cost)),
                    )
                    .filter(period_counter::Column::Id.eq(t.id))
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
                reservation::Entity::update_many()
                    .col_expr(reservation::Column::CounterId, Expr::value(t.id))
                    .filter(reservation::Column::CounterId.eq(c.id))
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
                period_counter::Entity::delete_by_id(c.id)
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
            }
            None => {
                period_counter::Entity::update_many()
                    .col_expr(
                        period_counter::Column::BillableType,
                        Expr::value(to.kind.clone()),
                    )
                    .col_expr(
                        period_counter::Column::BillableId,
                        Expr::value(to.id.clone()),
                    )
                    .filter(period_counter::Column::Id.eq(c.id))
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
            }
        }
    }
    Ok(ours.len() as u64)
}

/// Moves the daily aggregates of `from` to `to`, adding into the tombstone's row of the same
/// key when there is one.
async fn merge_aggregates(
    txn: &DatabaseTransaction,
    from: &Billable,
    to: &Billable,
) -> StoreResult<u64> {
    use daily_aggregate::Column as A;
    let ours = daily_aggregate::Entity::find()
        .filter(A::BillableType.eq(from.kind.clone()))
        .filter(A::BillableId.eq(from.id.clone()))
        .order_by_asc(A::Id)
        .all(txn)
        .await
        .map_err(db_err)?;
    for a in &ours {
        let target = daily_aggregate::Entity::find()
            .filter(A::BillableType.eq(to.kind.clone()))
            .filter(A::BillableId.eq(to.id.clone()))
            .filter(A::Day.eq(a.day.clone()))
            .filter(match a.day_start {
                Some(start) => A::DayStart.eq(start),
                None => A::DayStart.is_null(),
            })
            .filter(match a.day_end {
                Some(end) => A::DayEnd.eq(end),
                None => A::DayEnd.is_null(),
            })
            .filter(A::TenantId.eq(a.tenant_id.clone()))
            .filter(A::Provider.eq(a.provider.clone()))
            .filter(A::Model.eq(a.model.clone()))
            .filter(A::Feature.eq(a.feature.clone()))
            .filter(A::Currency.eq(a.currency.clone()))
            .one(txn)
            .await
            .map_err(db_err)?;
        match target {
            Some(t) => {
                let cost = money_from_text("ai_usage_daily_aggregates.total_cost", &t.total_cost)?
                    .checked_add(money_from_text(
                        "ai_usage_daily_aggregates.total_cost",
                        &a.total_cost,
                    )?)
                    .ok_or_else(|| invalid("a merged aggregate overflows"))?;
                let add = |col: A, v: i64| (col, Expr::col(col).add(v));
                let mut update = daily_aggregate::Entity::update_many();
                for (col, expr) in [
                    add(A::Calls, a.calls),
                    add(A::InputTokens, a.input_tokens),
                    add(A::CachedInputTokens, a.cached_input_tokens),
                    add(A::CacheWriteTokens, a.cache_write_tokens),
                    add(A::OutputTokens, a.output_tokens),
                    add(A::ReasoningTokens, a.reasoning_tokens),
                    add(A::TotalTokens, a.total_tokens),
                ] {
                    update = update.col_expr(col, expr);
                }
                update
                    .col_expr(A::TotalCost, Expr::value(money_text(cost)))
                    .col_expr(A::TotalCostNano, Expr::value(nano_units(cost)))
                    .filter(A::Id.eq(t.id))
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
                daily_aggregate::Entity::delete_by_id(a.id)
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
            }
            None => {
                daily_aggregate::Entity::update_many()
                    .col_expr(A::BillableType, Expr::value(to.kind.clone()))
                    .col_expr(A::BillableId, Expr::value(to.id.clone()))
                    .filter(A::Id.eq(a.id))
                    .exec(txn)
                    .await
                    .map_err(db_err)?;
            }
        }
    }
    Ok(ours.len() as u64)
}
