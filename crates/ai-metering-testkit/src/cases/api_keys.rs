//! API keys ([`ApiKeyStore`]): issued once, stored as a digest, authenticated, listed and
//! revoked.

use std::sync::Arc;

use ai_metering_core::keys::{ApiKeyStore, KeyError, NewApiKey, authenticate, create_api_key};
use ai_metering_core::store::StoreErrorKind;
use ai_metering_core::{Billable, Tenant};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::builders::{fresh_billable, fresh_name, hour};

/// A key is issued once with its secret, stored without it, found by that secret only, and
/// carries its billable, tenant and models; malformed, unknown and wrong keys are refused
/// without telling an unknown id from a wrong secret.
pub async fn api_keys_authenticate_only_their_secret<S: ApiKeyStore>(store: Arc<S>) {
    let who = fresh_billable();
    let tenant = Tenant::new(fresh_name("tenant"));
    let new = NewApiKey::new(who.clone(), "  ci  ")
        .with_tenant(tenant.clone())
        .with_models(["gpt-4o-mini", "claude-3-5-haiku"]);
    let issued = create_api_key(&*store, &new, hour(1)).await.unwrap();
    let secret = issued.secret().to_owned();
    assert!(
        secret.starts_with(&format!("amk_{}_", issued.key.id)),
        "{secret}"
    );
    assert_eq!(issued.key.name, "ci", "the name is trimmed");

    let key = authenticate(&*store, &secret, hour(2)).await.unwrap();
    assert_eq!(key, issued.key);
    assert_eq!(key.billable, who);
    assert_eq!(key.tenant, Some(tenant));
    assert!(key.allows_model("claude-3-5-haiku"));
    assert!(!key.allows_model("gpt-4o"));
    // Upper-case hex is the same key.
    assert_eq!(
        authenticate(
            &*store,
            &secret.to_ascii_uppercase().replacen("AMK_", "amk_", 1),
            hour(2)
        )
        .await
        .unwrap()
        .id,
        key.id
    );

    // The store keeps a digest, never the secret.
    let (_, digest) = store.api_key(&key.id).await.unwrap().unwrap();
    let secret_part = secret.rsplit('_').next().unwrap();
    assert_eq!(digest.len(), 64);
    assert!(!digest.contains(secret_part) && !secret_part.contains(&digest));

    // A wrong secret and an unknown id are both "unknown".
    let mut wrong = secret.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    assert!(matches!(
        authenticate(&*store, &wrong, hour(2)).await,
        Err(KeyError::Unknown)
    ));
    let unknown = format!("amk_{}_{}", "f".repeat(16), "0".repeat(64));
    assert!(matches!(
        authenticate(&*store, &unknown, hour(2)).await,
        Err(KeyError::Unknown)
    ));
    // Text of another shape is looked up as an imported key: unknown, not malformed.
    assert!(matches!(
        authenticate(&*store, "sk-demo-alice", hour(2)).await,
        Err(KeyError::Unknown)
    ));
    for malformed in ["", "Bearer x", "amk_", &secret[..secret.len() - 1]] {
        assert!(
            matches!(
                authenticate(&*store, malformed, hour(2)).await,
                Err(KeyError::Malformed)
            ),
            "{malformed}"
        );
    }

    // Names are required; a model name cannot be blank.
    for bad in [
        NewApiKey::new(who.clone(), " "),
        NewApiKey::new(who.clone(), "x".repeat(256)),
        NewApiKey::new(who.clone(), "ok").with_models([""]),
    ] {
        let err = create_api_key(&*store, &bad, hour(1)).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid, "{err}");
    }
    assert_eq!(store.api_keys(Some(&who)).await.unwrap(), vec![key]);
}

/// Keys are listed per billable or all together, oldest first; a revoked key stops
/// authenticating from its revocation on, stays listed with the instant, and is revoked once.
pub async fn api_keys_are_listed_and_revoked<S: ApiKeyStore>(store: Arc<S>) {
    let (who, other) = (fresh_billable(), fresh_billable());
    let first = create_api_key(&*store, &NewApiKey::new(who.clone(), "first"), hour(1))
        .await
        .unwrap();
    let second = create_api_key(&*store, &NewApiKey::new(who.clone(), "second"), hour(2))
        .await
        .unwrap();
    let theirs = create_api_key(&*store, &NewApiKey::new(other.clone(), "theirs"), hour(1))
        .await
        .unwrap();
    assert_ne!(first.key.id, second.key.id);
    let ids = |keys: Vec<ai_metering_core::keys::ApiKey>| -> Vec<String> {
        keys.into_iter().map(|k| k.id).collect()
    };
    assert_eq!(
        ids(store.api_keys(Some(&who)).await.unwrap()),
        vec![first.key.id.clone(), second.key.id.clone()]
    );
    let all = ids(store.api_keys(None).await.unwrap());
    for id in [&first.key.id, &second.key.id, &theirs.key.id] {
        assert!(all.contains(id), "{id} missing from {all:?}");
    }

    assert!(store.revoke_api_key(&first.key.id, hour(5)).await.unwrap());
    assert!(!store.revoke_api_key(&first.key.id, hour(6)).await.unwrap());
    assert!(
        !store
            .revoke_api_key("0000000000000000", hour(6))
            .await
            .unwrap()
    );
    match authenticate(&*store, first.secret(), hour(5)).await {
        Err(KeyError::Revoked { id, at }) => assert_eq!((id, at), (first.key.id.clone(), hour(5))),
        other => panic!("a revoked key authenticated: {other:?}"),
    }
    // Before its revocation (a request stamped earlier) it still counted.
    assert!(authenticate(&*store, first.secret(), hour(4)).await.is_ok());
    assert!(
        authenticate(&*store, second.secret(), hour(6))
            .await
            .is_ok()
    );
    let listed = store.api_keys(Some(&who)).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(hour(5)));
    assert!(listed[0].is_revoked_at(hour(5)) && !listed[0].is_revoked_at(hour(4)));
    assert_eq!(listed[1].revoked_at, None);
    assert_eq!(
        store
            .api_keys(Some(&Billable::new("nobody", fresh_name("n"))))
            .await
            .unwrap(),
        vec![]
    );
}

/// 20 concurrent revocations of one key: exactly one revokes it.
pub async fn concurrent_revocations_revoke_once<S: ApiKeyStore + 'static>(store: Arc<S>) {
    const TASKS: usize = 20;
    let issued = create_api_key(&*store, &NewApiKey::new(fresh_billable(), "k"), hour(1))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let (store, barrier, id) = (store.clone(), barrier.clone(), issued.key.id.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store.revoke_api_key(&id, hour(2 + i as i64)).await.unwrap()
        });
    }
    let revoked = tasks.join_all().await.into_iter().filter(|r| *r).count();
    assert_eq!(revoked, 1);
}

/// A key issued elsewhere and imported authenticates as written (case included), under an id
/// derived from its digest; the store keeps no trace of its text; it is revoked like any key.
pub async fn imported_api_keys_authenticate_as_written<S: ApiKeyStore>(store: Arc<S>) {
    use ai_metering_core::keys::import_api_key;
    let who = fresh_billable();
    let text = format!("sk-{}-Legacy", fresh_name("imported"));
    let new = NewApiKey::new(who.clone(), "moved").with_models(["gpt-4o-mini"]);
    let key = import_api_key(&*store, &text, &new, hour(1)).await.unwrap();
    let found = authenticate(&*store, &text, hour(2)).await.unwrap();
    assert_eq!(found, key);
    assert_eq!(found.billable, who);
    let (_, stored) = store.api_key(&key.id).await.unwrap().unwrap();
    assert!(!stored.contains("Legacy") && stored.len() == 64, "{stored}");
    assert!(matches!(
        authenticate(&*store, &text.to_ascii_lowercase(), hour(2)).await,
        Err(KeyError::Unknown)
    ));
    let again = import_api_key(&*store, &text, &new, hour(1)).await;
    assert_eq!(again.unwrap_err().kind(), StoreErrorKind::Conflict);
    assert!(store.revoke_api_key(&key.id, hour(3)).await.unwrap());
    assert!(matches!(
        authenticate(&*store, &text, hour(4)).await,
        Err(KeyError::Revoked { .. })
    ));
}
