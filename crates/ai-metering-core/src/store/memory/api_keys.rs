//! [`MemoryStore`]'s ApiKeyStore: issued API keys by public id.

use super::*;
use crate::keys::{ApiKey, ApiKeyStore};

impl ApiKeyStore for MemoryStore {
    async fn insert_api_key(&self, key: &ApiKey, secret_digest: &str) -> StoreResult<()> {
        let mut s = self.lock();
        if s.api_keys.contains_key(&key.id) {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                format!("an API key with id {} exists", key.id),
            ));
        }
        s.api_keys
            .insert(key.id.clone(), (key.clone(), secret_digest.to_owned()));
        Ok(())
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<(ApiKey, String)>> {
        Ok(self.lock().api_keys.get(id).cloned())
    }

    async fn api_keys(&self, billable: Option<&Billable>) -> StoreResult<Vec<ApiKey>> {
        let s = self.lock();
        let mut keys: Vec<ApiKey> = s
            .api_keys
            .values()
            .map(|(k, _)| k)
            .filter(|k| billable.is_none_or(|b| k.billable == *b))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let mut s = self.lock();
        match s.api_keys.get_mut(id) {
            Some((key, _)) if key.revoked_at.is_none() => {
                key.revoked_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
