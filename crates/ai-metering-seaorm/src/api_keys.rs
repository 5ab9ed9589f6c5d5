//! [`ApiKeyStore`] for [`SeaOrmStore`]: one row per issued key, unique by its public id.

use ai_metering_core::keys::{ApiKey, ApiKeyStore};
use ai_metering_core::store::{StoreError, StoreErrorKind, StoreResult};
use ai_metering_core::{Billable, Tenant};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::codec::{instant, invalid};
use crate::entity::api_key;
use crate::error::db_err;
use crate::store::SeaOrmStore;

impl ApiKeyStore for SeaOrmStore {
    async fn insert_api_key(&self, key: &ApiKey, secret_digest: &str) -> StoreResult<()> {
        let models = serde_json::to_string(&key.allowed_models)
            .map_err(|e| invalid(format!("allowed models do not serialise: {e}")))?;
        let row = api_key::ActiveModel {
            key_id: Set(key.id.clone()),
            secret_digest: Set(secret_digest.to_owned()),
            billable_type: Set(key.billable.kind.clone()),
            billable_id: Set(key.billable.id.clone()),
            tenant_id: Set(key.tenant.as_ref().map(|t| t.as_str().to_owned())),
            allowed_models: Set(models),
            name: Set(key.name.clone()),
            created_at: Set(instant(key.created_at)),
            revoked_at: Set(key.revoked_at.map(instant)),
            ..Default::default()
        };
        let inserted = api_key::Entity::insert(row)
            .on_conflict(
                OnConflict::column(api_key::Column::KeyId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.connection())
            .await
            .map_err(db_err)?;
        if inserted == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                format!("an API key with id {} exists", key.id),
            ));
        }
        Ok(())
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<(ApiKey, String)>> {
        api_key::Entity::find()
            .filter(api_key::Column::KeyId.eq(id))
            .one(self.connection())
            .await
            .map_err(db_err)?
            .map(|row| {
                let digest = row.secret_digest.clone();
                Ok((to_key(row)?, digest))
            })
            .transpose()
    }

    async fn api_keys(&self, billable: Option<&Billable>) -> StoreResult<Vec<ApiKey>> {
        let mut query = api_key::Entity::find();
        if let Some(b) = billable {
            query = query
                .filter(api_key::Column::BillableType.eq(b.kind.as_str()))
                .filter(api_key::Column::BillableId.eq(b.id.as_str()));
        }
        query
            .order_by_asc(api_key::Column::CreatedAt)
            .order_by_asc(api_key::Column::KeyId)
            .all(self.connection())
            .await
            .map_err(db_err)?
            .into_iter()
            .map(to_key)
            .collect()
    }

    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        // One conditional UPDATE: of concurrent revocations exactly one changes the row.
        let changed = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(instant(at)))
            .filter(api_key::Column::KeyId.eq(id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(self.connection())
            .await
            .map_err(db_err)?
            .rows_affected;
        Ok(changed == 1)
    }
}

/// The key a row holds.
fn to_key(row: api_key::Model) -> StoreResult<ApiKey> {
    let allowed_models: Vec<String> = serde_json::from_str(&row.allowed_models).map_err(|e| {
        invalid(format!(
            "ai_api_keys.allowed_models {:?} is not a JSON array of strings: {e}",
            row.allowed_models
        ))
    })?;
    Ok(ApiKey {
        id: row.key_id,
        billable: Billable::new(row.billable_type, row.billable_id),
        tenant: row.tenant_id.map(Tenant::new),
        allowed_models,
        name: row.name,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    })
}
