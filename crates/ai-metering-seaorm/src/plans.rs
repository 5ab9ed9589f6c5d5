//! [`PlanStore`] for [`SeaOrmStore`].

use ai_metering_core::plan::{OveragePolicy, Plan};
use ai_metering_core::store::{PlanStore, StoreResult};
use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::codec::{invalid, money_from_text, money_text, to_i64, to_u64};
use crate::entity::plan;
use crate::error::db_err;
use crate::store::SeaOrmStore;

impl PlanStore for SeaOrmStore {
    async fn upsert_plan(&self, p: &Plan) -> StoreResult<()> {
        p.validate().map_err(|e| invalid(e.to_string()))?;
        let now = Utc::now();
        let row = plan::ActiveModel {
            slug: Set(p.slug.clone()),
            name: Set(p.name.clone()),
            token_limit: Set(p
                .token_limit
                .map(|t| to_i64("token limit", t))
                .transpose()?),
            cost_limit: Set(p.cost_limit.map(money_text)),
            overage_price_per_1k_tokens: Set(p.overage_price_per_1k_tokens.map(money_text)),
            overage_policy: Set(p.overage_policy.map(|o| o.as_str().to_owned())),
            active: Set(p.active),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let txn = self.begin_write().await?;
        plan::Entity::insert(row)
            .on_conflict(
                OnConflict::column(plan::Column::Slug)
                    .update_columns([
                        plan::Column::Name,
                        plan::Column::TokenLimit,
                        plan::Column::CostLimit,
                        plan::Column::OveragePricePer1kTokens,
                        plan::Column::OveragePolicy,
                        plan::Column::Active,
                        plan::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn plan(&self, slug: &str) -> StoreResult<Option<Plan>> {
        plan::Entity::find()
            .filter(plan::Column::Slug.eq(slug))
            .one(self.connection())
            .await
            .map_err(db_err)?
            .map(to_plan)
            .transpose()
    }
}

pub(crate) fn to_plan(m: plan::Model) -> StoreResult<Plan> {
    Ok(Plan {
        token_limit: m
            .token_limit
            .map(|t| to_u64("ai_plans.token_limit", t))
            .transpose()?,
        cost_limit: m
            .cost_limit
            .as_deref()
            .map(|c| money_from_text("ai_plans.cost_limit", c))
            .transpose()?,
        overage_price_per_1k_tokens: m
            .overage_price_per_1k_tokens
            .as_deref()
            .map(|c| money_from_text("ai_plans.overage_price_per_1k_tokens", c))
            .transpose()?,
        overage_policy: m
            .overage_policy
            .as_deref()
            .map(|p| {
                p.parse::<OveragePolicy>()
                    .map_err(|e| invalid(e.to_string()))
            })
            .transpose()?,
        active: m.active,
        slug: m.slug,
        name: m.name,
    })
}
