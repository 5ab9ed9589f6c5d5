//! Retention and privacy: pruning old usage, deleting or anonymising one billable.

use ai_metering_core::Billable;
use ai_metering_core::store::{StoreError, StoreErrorKind, StoreResult};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};

use crate::codec::{instant, invalid, money_from_text, money_text, nano_units, to_i64};
use crate::counters::{Shift, reserved_on, shifted};
use crate::entity::{credit_wallet, daily_aggregate, period_counter, reservation, usage};
use crate::error::db_err;
use crate::store::SeaOrmStore;

/// How many rows of each table an operation deleted or changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// `ai_usages`.
    pub usages: u64,
    /// `ai_subscriptions`.
    pub subscriptions: u64,
    /// `ai_usage_limit_overrides`.
    pub limit_overrides: u64,
    /// `ai_period_counters`.
    pub counters: u64,
    /// `ai_reservations`.
    pub reservations: u64,
    /// `ai_threshold_claims`.
    pub threshold_claims: u64,
    /// `ai_credit_wallets`.
    pub wallets: u64,
    /// `ai_credit_transactions`.
    pub credit_transactions: u64,
    /// `ai_credit_holds`.
    pub credit_holds: u64,
    /// `ai_credit_grants`.
    pub credit_grants: u64,
    /// `ai_overages`.
    pub overages: u64,
    /// `ai_usage_daily_aggregates`.
    pub aggregates: u64,
}

impl RowCounts {
    /// Rows of every table together.
    ///
    /// ```
    /// use ai_metering_seaorm::RowCounts;
    /// let counts = RowCounts { usages: 3, wallets: 1, ..RowCounts::default() };
    /// assert_eq!(counts.total(), 4);
    /// ```
    pub fn total(&self) -> u64 {
        [
            self.usages,
            self.subscriptions,
            self.limit_overrides,
            self.counters,
            self.reservations,
            self.threshold_claims,
            self.wallets,
            self.credit_transactions,
            self.credit_holds,
            self.credit_grants,
            self.overages,
            self.aggregates,
        ]
        .iter()
        .fold(0_u64, |a, b| a.saturating_add(*b))
    }
}

/// Tables that hold a billable, in the order rows are deleted (children first).
const BILLABLE_TABLES: [&str; 12] = [
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

impl SeaOrmStore {
    /// Deletes the usage rows that occurred before `cutoff`, `batch_size` rows per
    /// transaction (so that writers are never blocked for long); returns how many.
    ///
    /// Counters, overages and daily aggregates are kept: run
    /// [`rebuild_daily_aggregates`](Self::rebuild_daily_aggregates) before pruning to keep
    /// the history of the pruned days.
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`] for a batch size of 0; a [`StoreError`] when the database
    /// fails (the batches already deleted stay deleted).
    pub async fn prune_usage_before(
        &self,
        cutoff: DateTime<Utc>,
        batch_size: u64,
    ) -> StoreResult<u64> {
        if batch_size == 0 {
            return Err(invalid("the prune batch size must be at least 1"));
        }
        let mut total = 0_u64;
        loop {
            let batch = Query::select()
                .column(usage::Column::Id)
                .from(usage::Entity)
                .and_where(Expr::col(usage::Column::OccurredAt).lt(instant(cutoff)))
                .order_by(usage::Column::Id, sea_orm::Order::Asc)
                .limit(batch_size)
                .to_owned();
            let txn = self.begin_write().await?;
            let deleted = usage::Entity::delete_many()
                .filter(usage::Column::Id.in_subquery(batch))
                .exec(&txn)
                .await
                .map_err(db_err)?
                .rows_affected;
            txn.commit().await.map_err(db_err)?;
            total = total.saturating_add(deleted);
            if deleted < batch_size {
                return Ok(total);
            }
        }
    }

    /// Deletes everything stored about `billable` (usage, counters, reservations,
    /// subscriptions, overrides, wallets with their grants and ledgers, overages, aggregates) in one
    /// transaction; returns the rows deleted per table.
    ///
    /// # Errors
    /// A [`StoreError`] when the database fails; nothing is deleted then.
    pub async fn delete_billable(&self, billable: &Billable) -> StoreResult<RowCounts> {
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

    /// Replaces `billable` by `tombstone` everywhere and drops what identifies a person
    /// (acting user ids, metadata, idempotency keys), in one transaction. Usage rows stay,
    /// so every total (per period, tenant, provider, model, feature, day) is unchanged; the
    /// billable's counters and daily aggregates are merged into the tombstone's.
    ///
    /// Use one tombstone per erased billable (say `deleted`/`<random id>`) when the billable
    /// has credit wallets: two wallets in one currency are not merged.
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`] when `tombstone` is `billable`;
    /// [`StoreErrorKind::Conflict`] when the tombstone already has a wallet in a currency the
    /// billable has one in; a [`StoreError`] when the database fails. Nothing changes then.
    pub async fn anonymize_billable(
        &self,
        billable: &Billable,
        tombstone: &Billable,
    ) -> StoreResult<RowCounts> {
        if billable == tombstone {
            return Err(invalid("the tombstone must differ from the billable"));
        }
        let txn = self.begin_for([billable, tombstone]).await?;
        let mut counts = RowCounts::default();
        let null = || SimpleExpr::Constant(sea_orm::sea_query::Value::String(None));
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
        counts.usages = rekey(
            &txn,
            "ai_usages",
            billable,
            tombstone,
            vec![
                ("user_id", null()),
                ("metadata", empty_json()),
                ("idempotency_key", null()),
            ],
        )
        .await?;
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
