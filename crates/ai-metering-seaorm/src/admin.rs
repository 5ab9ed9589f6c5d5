//! [`SeaOrmStore`]'s ReportStore and AdminStore: listings, sums and operator writes, outside
//! the request path.

use ai_metering_core::Billable;
use ai_metering_core::Currency;
use ai_metering_core::plan::{LimitOverride, LimitValue, Plan, Subscription};
use ai_metering_core::store::{
    AdminStore, CreditTransaction, GroupBy, GroupedSums, Page, ReportStore, StoreError,
    StoreResult, SubscriptionId, UsageFilter, UsageSums, WalletGrant,
};
use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::aggregates::sums;
use crate::codec::{instant, invalid, money_text, to_i64};
use crate::credits::to_transaction;
use crate::entity::{credit_transaction, limit_override, plan, subscription};
use crate::error::db_err;
use crate::grants::grants_of;
use crate::plans::to_plan;
use crate::store::SeaOrmStore;
use crate::subscriptions::{subscription_row, to_subscription};

impl ReportStore for SeaOrmStore {
    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        let rows = plan::Entity::find()
            .all(self.connection())
            .await
            .map_err(db_err)?;
        let mut plans = rows
            .into_iter()
            .map(to_plan)
            .collect::<StoreResult<Vec<_>>>()?;
        // Byte order, whatever the database's collation.
        plans.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(plans)
    }

    async fn subscriptions(
        &self,
        billable: &Billable,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        subscription::Entity::find()
            .filter(subscription::Column::BillableType.eq(billable.kind.as_str()))
            .filter(subscription::Column::BillableId.eq(billable.id.as_str()))
            .order_by_asc(subscription::Column::StartedAt)
            .order_by_asc(subscription::Column::Id)
            .all(self.connection())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(to_subscription)
            .collect()
    }

    async fn sum_usage(&self, filter: &UsageFilter) -> StoreResult<UsageSums> {
        let groups = sums(self.connection(), filter, None).await?;
        Ok(groups
            .into_iter()
            .next()
            .map(|(_, s)| s)
            .unwrap_or_default())
    }

    async fn sum_usage_grouped(
        &self,
        filter: &UsageFilter,
        group_by: GroupBy,
    ) -> StoreResult<Vec<GroupedSums>> {
        let mut out: Vec<GroupedSums> = sums(self.connection(), filter, Some(group_by))
            .await?
            .into_iter()
            .map(|(key, sums)| GroupedSums { key, sums })
            .collect();
        // Ordered here, not in SQL: byte order of keys whatever the database's collation.
        out.sort_by(|a, b| {
            b.sums
                .total_tokens
                .cmp(&a.sums.total_tokens)
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(out)
    }

    async fn credit_transactions(
        &self,
        billable: &Billable,
        cur: Currency,
        page: Page,
    ) -> StoreResult<Vec<CreditTransaction>> {
        credit_transaction::Entity::find()
            .filter(credit_transaction::Column::BillableType.eq(billable.kind.as_str()))
            .filter(credit_transaction::Column::BillableId.eq(billable.id.as_str()))
            .filter(credit_transaction::Column::Currency.eq(cur.as_str()))
            .order_by_desc(credit_transaction::Column::Id)
            .offset(page.offset)
            .limit(page.limit.min(Page::MAX_LIMIT))
            .all(self.connection())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(to_transaction)
            .collect()
    }

    async fn grants(&self, billable: &Billable, cur: Currency) -> StoreResult<Vec<WalletGrant>> {
        grants_of(self.connection(), billable, cur).await
    }
}

impl AdminStore for SeaOrmStore {
    async fn update_subscription(&self, id: SubscriptionId, s: &Subscription) -> StoreResult<()> {
        s.validate().map_err(|e| invalid(e.to_string()))?;
        let row = subscription_row(s)?;
        let txn = self.begin_write().await?;
        let result = subscription::Entity::update_many()
            .set(row)
            .filter(subscription::Column::Id.eq(id.0))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(StoreError::not_found(format!("subscription {}", id.0)));
        }
        txn.commit().await.map_err(db_err)
    }

    async fn find_subscription_by_meta(
        &self,
        key: &str,
        value: &str,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        // `meta` is JSON text on both backends. A LIKE on the value's JSON spelling narrows
        // the rows portably (it can only over-match: `%` and `_` are wildcards), and the
        // exact key/value check happens on the decoded map.
        let needle = serde_json::Value::String(value.to_owned()).to_string();
        let rows = subscription::Entity::find()
            .filter(subscription::Column::Meta.contains(needle.as_str()))
            .order_by_desc(subscription::Column::StartedAt)
            .order_by_desc(subscription::Column::Id)
            .all(self.connection())
            .await
            .map_err(db_err)?;
        for row in rows {
            let (id, s) = to_subscription(row)?;
            if s.meta.get(key).and_then(|v| v.as_str()) == Some(value) {
                return Ok(Some((id, s)));
            }
        }
        Ok(None)
    }

    async fn insert_limit_override(&self, o: &LimitOverride) -> StoreResult<()> {
        o.validate().map_err(|e| invalid(e.to_string()))?;
        let (token_mode, token_limit) = match o.token_limit {
            LimitValue::Inherit => ("inherit", None),
            LimitValue::Unlimited => ("unlimited", None),
            LimitValue::Set(t) => ("set", Some(to_i64("token limit", t)?)),
        };
        let (cost_mode, cost_limit) = match o.cost_limit {
            LimitValue::Inherit => ("inherit", None),
            LimitValue::Unlimited => ("unlimited", None),
            LimitValue::Set(c) => ("set", Some(money_text(c))),
        };
        let row = limit_override::ActiveModel {
            billable_type: Set(o.billable.kind.clone()),
            billable_id: Set(o.billable.id.clone()),
            period_start: Set(instant(o.starts_at)),
            period_end: Set(instant(o.ends_at)),
            token_limit_mode: Set(token_mode.to_owned()),
            token_limit: Set(token_limit),
            cost_limit_mode: Set(cost_mode.to_owned()),
            cost_limit: Set(cost_limit),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        let txn = self.begin_write().await?;
        limit_override::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }
}
