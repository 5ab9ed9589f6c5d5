//! [`SubscriptionStore`] for [`SeaOrmStore`]: subscriptions and limit overrides.

use ai_metering_core::Billable;
use ai_metering_core::plan::{BillingMode, LimitOverride, LimitValue, Subscription};
use ai_metering_core::store::{StoreError, StoreResult, SubscriptionId, SubscriptionStore};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::codec::{instant, invalid, json_from_text, json_text, money_from_text, to_u64};
use crate::entity::{limit_override, subscription};
use crate::error::db_err;
use crate::store::SeaOrmStore;

impl SubscriptionStore for SeaOrmStore {
    async fn insert_subscription(&self, s: &Subscription) -> StoreResult<SubscriptionId> {
        s.validate().map_err(|e| invalid(e.to_string()))?;
        let now = Utc::now();
        let mut row = subscription_row(s)?;
        row.created_at = Set(now);
        let txn = self.begin_write().await?;
        let id = subscription::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(db_err)?
            .last_insert_id;
        txn.commit().await.map_err(db_err)?;
        Ok(SubscriptionId(id))
    }

    async fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        let at = instant(now);
        let candidates = subscription::Entity::find()
            .filter(subscription::Column::ExpiryClaimedAt.is_null())
            .filter(subscription::Column::StartedAt.lte(at))
            .filter(subscription::Column::EndsAt.lte(at))
            .filter(
                Condition::any()
                    .add(subscription::Column::GraceEndsAt.is_null())
                    .add(subscription::Column::GraceEndsAt.lte(at)),
            )
            .order_by_asc(subscription::Column::Id)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db_err)?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            // Claimed by the one caller whose conditional update changes the row.
            let result = subscription::Entity::update_many()
                .col_expr(subscription::Column::ExpiryClaimedAt, Expr::value(at))
                .filter(subscription::Column::Id.eq(candidate.id))
                .filter(subscription::Column::ExpiryClaimedAt.is_null())
                .exec(self.connection())
                .await
                .map_err(db_err)?;
            if result.rows_affected == 1 {
                claimed.push(to_subscription(candidate)?);
            }
        }
        Ok(claimed)
    }

    async fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> StoreResult<bool> {
        new.validate().map_err(|e| invalid(e.to_string()))?;
        let row = subscription_row(new)?;
        // SQLite: the write transaction (BEGIN IMMEDIATE) excludes every other writer.
        // PostgreSQL: the row is locked from the read to the commit.
        let txn = self.begin_write().await?;
        let mut query = subscription::Entity::find_by_id(id.0);
        if self.backend() == DbBackend::Postgres {
            query = query.lock_exclusive();
        }
        let Some(stored) = query.one(&txn).await.map_err(db_err)? else {
            return Err(StoreError::not_found(format!("subscription {}", id.0)));
        };
        let (_, current) = to_subscription(stored)?;
        if current != *expected {
            return Ok(false); // dropping the transaction rolls it back
        }
        subscription::Entity::update_many()
            .set(row)
            .filter(subscription::Column::Id.eq(id.0))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn current_subscription(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        let rows = subscription::Entity::find()
            .filter(subscription::Column::BillableType.eq(billable.kind.as_str()))
            .filter(subscription::Column::BillableId.eq(billable.id.as_str()))
            .filter(subscription::Column::StartedAt.lte(instant(at)))
            .order_by_desc(subscription::Column::StartedAt)
            .order_by_desc(subscription::Column::Id)
            .all(self.connection())
            .await
            .map_err(db_err)?;
        for row in rows {
            let (id, s) = to_subscription(row)?;
            if s.is_active(at) {
                return Ok(Some((id, s)));
            }
        }
        Ok(None)
    }

    async fn limit_override_at(
        &self,
        billable: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<LimitOverride>> {
        let at = instant(at);
        limit_override::Entity::find()
            .filter(limit_override::Column::BillableType.eq(billable.kind.as_str()))
            .filter(limit_override::Column::BillableId.eq(billable.id.as_str()))
            .filter(limit_override::Column::PeriodStart.lte(at))
            .filter(limit_override::Column::PeriodEnd.gt(at))
            .order_by_desc(limit_override::Column::Id)
            .one(self.connection())
            .await
            .map_err(db_err)?
            .map(to_override)
            .transpose()
    }
}

/// The columns of a subscription, without `id` and `created_at`.
pub(crate) fn subscription_row(s: &Subscription) -> StoreResult<subscription::ActiveModel> {
    Ok(subscription::ActiveModel {
        billable_type: Set(s.billable.kind.clone()),
        billable_id: Set(s.billable.id.clone()),
        plan_slug: Set(s.plan.clone()),
        billing_mode: Set(s.billing_mode.as_str().to_owned()),
        started_at: Set(instant(s.started_at)),
        renews_at: Set(s.renews_at.map(instant)),
        ends_at: Set(s.ends_at.map(instant)),
        trial_ends_at: Set(s.trial_ends_at.map(instant)),
        grace_ends_at: Set(s.grace_ends_at.map(instant)),
        previous_plan_slug: Set(s.previous_plan.clone()),
        plan_changed_at: Set(s.plan_changed_at.map(instant)),
        time_zone: Set(s.time_zone.map(|zone| zone.name().to_owned())),
        meta: Set(json_text(&s.meta)?),
        updated_at: Set(Utc::now()),
        ..Default::default()
    })
}

pub(crate) fn to_subscription(
    m: subscription::Model,
) -> StoreResult<(SubscriptionId, Subscription)> {
    let billing_mode = m
        .billing_mode
        .parse::<BillingMode>()
        .map_err(|e| invalid(e.to_string()))?;
    Ok((
        SubscriptionId(m.id),
        Subscription {
            billable: Billable::new(m.billable_type, m.billable_id),
            plan: m.plan_slug,
            billing_mode,
            started_at: m.started_at,
            renews_at: m.renews_at,
            ends_at: m.ends_at,
            trial_ends_at: m.trial_ends_at,
            grace_ends_at: m.grace_ends_at,
            previous_plan: m.previous_plan_slug,
            plan_changed_at: m.plan_changed_at,
            time_zone: m
                .time_zone
                .map(|name| {
                    name.parse::<chrono_tz::Tz>().map_err(|_| {
                        invalid(format!(
                            "subscription {} has an unknown time zone {name:?}",
                            m.id
                        ))
                    })
                })
                .transpose()?,
            meta: json_from_text("ai_subscriptions.meta", &m.meta)?,
        },
    ))
}

fn to_override(m: limit_override::Model) -> StoreResult<LimitOverride> {
    let token_limit = match (m.token_limit_mode.as_str(), m.token_limit) {
        ("inherit", _) => LimitValue::Inherit,
        ("unlimited", _) => LimitValue::Unlimited,
        ("set", Some(t)) => LimitValue::Set(to_u64("ai_usage_limit_overrides.token_limit", t)?),
        (mode, _) => return Err(bad_mode("token", mode)),
    };
    let cost_limit: LimitValue<Decimal> = match (m.cost_limit_mode.as_str(), m.cost_limit) {
        ("inherit", _) => LimitValue::Inherit,
        ("unlimited", _) => LimitValue::Unlimited,
        ("set", Some(c)) => {
            LimitValue::Set(money_from_text("ai_usage_limit_overrides.cost_limit", &c)?)
        }
        (mode, _) => return Err(bad_mode("cost", mode)),
    };
    Ok(LimitOverride {
        billable: Billable::new(m.billable_type, m.billable_id),
        starts_at: m.period_start,
        ends_at: m.period_end,
        token_limit,
        cost_limit,
    })
}

fn bad_mode(which: &str, mode: &str) -> StoreError {
    invalid(format!(
        "ai_usage_limit_overrides: {which} limit mode {mode:?} without a usable value"
    ))
}
