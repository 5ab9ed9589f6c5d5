//! API keys for a metering gateway: issued once, stored hashed, checked in constant time.
//!
//! A key reads `amk_<id>_<secret>`: `id` (16 hex digits) is public and finds the row,
//! `secret` (64 hex digits, 256 random bits) is never stored; the store keeps its SHA-256
//! digest. A random secret of that size needs no slow password hash: nobody can guess it,
//! and its digest cannot be reversed. The presented secret's digest is compared with the
//! stored one in constant time.
//!
//! Each key belongs to a billable (who pays for its calls), optionally a tenant, and may be
//! limited to some models. [`create_api_key`] issues one (the only time the full key is
//! seen); [`authenticate`] answers which key a request presented, or why it is refused.
//!
//! Keys issued elsewhere (another gateway's `sk-...` keys, when moving to this one) can be
//! kept with [`import_api_key`]: the store keeps the SHA-256 digest of the whole key, under
//! an id derived from that digest. Such a key is only as strong as its text: import keys
//! with at least 128 random bits.
//!
//! ```
//! use ai_metering_core::keys::{NewApiKey, authenticate, create_api_key};
//! use ai_metering_core::store::MemoryStore;
//! use ai_metering_core::Billable;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let now = chrono::Utc::now();
//! let new = NewApiKey::new(Billable::new("team", "acme"), "ci").with_models(["gpt-4o-mini"]);
//! let issued = create_api_key(&store, &new, now).await.unwrap();
//! // Show `issued.secret()` to the user now: it is not stored anywhere.
//! let key = authenticate(&store, issued.secret(), now).await.unwrap();
//! assert_eq!(key.billable, Billable::new("team", "acme"));
//! assert!(key.allows_model("gpt-4o-mini") && !key.allows_model("gpt-4o"));
//! assert!(authenticate(&store, "amk_0000000000000000_00", now).await.is_err());
//! # });
//! ```

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::billable::{Billable, Tenant};
use crate::store::{StoreError, StoreErrorKind, StoreResult};

/// What every key starts with.
pub const KEY_PREFIX: &str = "amk_";
/// Hex digits of a key's public id.
const ID_HEX: usize = 16;
/// Hex digits of a key's secret.
const SECRET_HEX: usize = 64;
/// The longest name a key may have.
pub const MAX_NAME_LEN: usize = 255;

/// What [`create_api_key`] stores: who the key bills and what it may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Who pays for the key's calls.
    pub billable: Billable,
    /// The tenant its calls are recorded under, if any.
    pub tenant: Option<Tenant>,
    /// The models it may call; empty for every model.
    pub allowed_models: Vec<String>,
    /// A label for people (`"ci"`, `"Alice's laptop"`).
    pub name: String,
}

impl NewApiKey {
    /// A key for `billable`, named `name`, for every model and no tenant.
    pub fn new(billable: Billable, name: impl Into<String>) -> Self {
        Self {
            billable,
            tenant: None,
            allowed_models: Vec::new(),
            name: name.into(),
        }
    }

    /// Records the key's calls under `tenant`.
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Limits the key to these models.
    pub fn with_models<I, M>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<String>,
    {
        self.allowed_models = models.into_iter().map(Into::into).collect();
        self
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The public id (the `<id>` of `amk_<id>_<secret>`): what lists show and `revoke` takes.
    pub id: String,
    /// Who pays for the key's calls.
    pub billable: Billable,
    /// The tenant its calls are recorded under, if any.
    pub tenant: Option<Tenant>,
    /// The models it may call; empty for every model.
    pub allowed_models: Vec<String>,
    /// A label for people.
    pub name: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model)
    }

    /// Whether the key was revoked at or before `at`.
    pub fn is_revoked_at(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_some_and(|r| r <= at)
    }
}

/// A key just issued: the stored key and the full secret, shown once.
#[derive(Clone)]
pub struct IssuedKey {
    /// The stored key.
    pub key: ApiKey,
    secret: String,
}

impl IssuedKey {
    /// The full key (`amk_<id>_<secret>`) to hand to its user: it is not stored, and cannot
    /// be shown again.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a presented key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Starts with `amk_` but is not of the form `amk_<id>_<secret>`, or is not a key at all
    /// (empty, too long, or with spaces or control characters).
    #[error("malformed API key: expected amk_<16 hex digits>_<64 hex digits>")]
    Malformed,
    /// No key with that id, or the secret does not match.
    #[error("unknown API key")]
    Unknown,
    /// The key was revoked.
    #[error("API key {id} was revoked at {at}")]
    Revoked {
        /// The key's public id.
        id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The store failed; nothing is known about the key.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stored API keys. Not part of [`Store`](crate::store::Store): only a gateway needs them.
pub trait ApiKeyStore: Send + Sync {
    /// Stores `key` with the SHA-256 digest (hex) of its secret;
    /// [`StoreErrorKind::Conflict`] when its id is taken.
    fn insert_api_key(
        &self,
        key: &ApiKey,
        secret_digest: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The key with this public id, with its secret's digest.
    fn api_key(
        &self,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<(ApiKey, String)>>> + Send;

    /// Every key, or those of `billable`, oldest first (revoked ones included).
    fn api_keys(
        &self,
        billable: Option<&Billable>,
    ) -> impl Future<Output = StoreResult<Vec<ApiKey>>> + Send;

    /// Revokes the key at `at`; false when there is no such key or it was already revoked.
    fn revoke_api_key(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Issues a key for `new` at `at`: stores it with its secret's digest and returns the full
/// key, the only time it is seen.
///
/// # Errors
/// [`StoreErrorKind::Invalid`] for an empty or too long name or an empty model name; the
/// store's error when it fails (nothing is stored then).
pub async fn create_api_key<S: ApiKeyStore>(
    store: &S,
    new: &NewApiKey,
    at: DateTime<Utc>,
) -> StoreResult<IssuedKey> {
    let key = new.key(random_hex(ID_HEX / 2)?, at)?;
    let secret = random_hex(SECRET_HEX / 2)?;
    store.insert_api_key(&key, &digest(&secret)).await?;
    let secret = format!("{KEY_PREFIX}{}_{secret}", key.id);
    Ok(IssuedKey { key, secret })
}

/// The shortest and longest keys [`import_api_key`] takes.
pub const IMPORTED_KEY_LEN: std::ops::RangeInclusive<usize> = 8..=255;

/// Keeps a key issued elsewhere (`sk-...` of another gateway) for `new`, at `at`: the store
/// keeps the SHA-256 digest of the whole key under an id derived from it (shown by lists and
/// taken by `revoke`), and [`authenticate`] accepts the key as it is written. Returns the
/// stored key.
///
/// ```
/// use ai_metering_core::keys::{NewApiKey, authenticate, import_api_key};
/// use ai_metering_core::store::MemoryStore;
/// use ai_metering_core::Billable;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let now = chrono::Utc::now();
/// let old = "sk-legacy-4f9c2d7e8a1b3c5d7e9f";
/// let new = NewApiKey::new(Billable::new("team", "acme"), "moved from the old proxy");
/// let key = import_api_key(&store, old, &new, now).await.unwrap();
/// assert_eq!(authenticate(&store, old, now).await.unwrap().id, key.id);
/// assert!(authenticate(&store, "sk-legacy-4f9c2d7e8a1b3c5d7e9F", now).await.is_err());
/// # });
/// ```
///
/// # Errors
/// [`StoreErrorKind::Invalid`] for a key outside [`IMPORTED_KEY_LEN`], with whitespace or
/// control characters, or starting with `amk_` (those are issued by [`create_api_key`]);
/// the errors of [`create_api_key`] for the name and models; [`StoreErrorKind::Conflict`]
/// when the key is already stored.
pub async fn import_api_key<S: ApiKeyStore>(
    store: &S,
    presented: &str,
    new: &NewApiKey,
    at: DateTime<Utc>,
) -> StoreResult<ApiKey> {
    if presented.starts_with(KEY_PREFIX) {
        return Err(StoreError::new(
            StoreErrorKind::Invalid,
            format!(
                "an imported key must not start with {KEY_PREFIX}, which marks keys issued here"
            ),
        ));
    }
    if !IMPORTED_KEY_LEN.contains(&presented.len()) || !is_key_text(presented) {
        return Err(StoreError::new(
            StoreErrorKind::Invalid,
            format!(
                "an imported key must be {} to {} printable characters without spaces",
                IMPORTED_KEY_LEN.start(),
                IMPORTED_KEY_LEN.end()
            ),
        ));
    }
    let whole = hex_of(&Sha256::digest(presented.as_bytes()));
    let key = new.key(imported_id(&whole), at)?;
    store.insert_api_key(&key, &whole).await?;
    Ok(key)
}

/// The id of an imported key: the first 16 hex digits of its digest.
fn imported_id(digest: &str) -> String {
    digest[..ID_HEX].to_owned()
}

/// Printable ASCII without spaces: what a key presented in a header can be.
fn is_key_text(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

/// The key `presented` (an `Authorization: Bearer` value) names, if its secret matches and it
/// is not revoked at `at`. A key issued here (`amk_...`) is found by its id; any other text
/// is looked up as an [imported](import_api_key) key.
///
/// # Errors
/// [`KeyError::Malformed`], [`KeyError::Unknown`] (no such id, or a wrong secret: the two are
/// not told apart), [`KeyError::Revoked`], or [`KeyError::Store`].
pub async fn authenticate<S: ApiKeyStore>(
    store: &S,
    presented: &str,
    at: DateTime<Utc>,
) -> Result<ApiKey, KeyError> {
    let presented = presented.trim();
    let (id, wanted) = if presented.starts_with(KEY_PREFIX) {
        let (id, secret) = parse(presented).ok_or(KeyError::Malformed)?;
        (id.to_ascii_lowercase(), digest(secret))
    } else if IMPORTED_KEY_LEN.contains(&presented.len()) && is_key_text(presented) {
        let whole = hex_of(&Sha256::digest(presented.as_bytes()));
        (imported_id(&whole), whole)
    } else {
        return Err(KeyError::Malformed);
    };
    let Some((key, stored)) = store.api_key(&id).await? else {
        return Err(KeyError::Unknown);
    };
    let matches: bool = wanted.as_bytes().ct_eq(stored.as_bytes()).into();
    if !matches {
        return Err(KeyError::Unknown);
    }
    match key.revoked_at {
        Some(revoked) if revoked <= at => Err(KeyError::Revoked {
            id: key.id,
            at: revoked,
        }),
        _ => Ok(key),
    }
}

impl NewApiKey {
    /// The stored key `id` for this, issued at `at`, its name trimmed; checked.
    fn key(&self, id: String, at: DateTime<Utc>) -> StoreResult<ApiKey> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!("an API key needs a name of 1 to {MAX_NAME_LEN} bytes"),
            ));
        }
        if self.allowed_models.iter().any(|m| m.trim().is_empty()) {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "an allowed model name is empty",
            ));
        }
        Ok(ApiKey {
            id,
            billable: self.billable.clone(),
            tenant: self.tenant.clone(),
            allowed_models: self.allowed_models.clone(),
            name: name.to_owned(),
            created_at: at,
            revoked_at: None,
        })
    }
}

/// The id and secret of `amk_<id>_<secret>`.
fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.trim().strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some((id, secret))
}

/// The SHA-256 digest of a secret, in lowercase hex (what the store keeps).
fn digest(secret: &str) -> String {
    hex_of(&Sha256::digest(secret.to_ascii_lowercase().as_bytes()))
}

/// `bytes` random bytes from the operating system, in lowercase hex.
fn random_hex(bytes: usize) -> StoreResult<String> {
    let mut buf = vec![0_u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("the operating system gave no random bytes for an API key: {e}"),
        )
    })?;
    Ok(hex_of(&buf))
}

fn hex_of(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_in_their_exact_form() {
        let id = "0123456789abcdef";
        let secret = "a".repeat(SECRET_HEX);
        let key = format!("amk_{id}_{secret}");
        assert_eq!(parse(&key), Some((id, secret.as_str())));
        assert_eq!(parse(&format!(" {key} ")), Some((id, secret.as_str())));
        for bad in [
            String::new(),
            format!("sk_{id}_{secret}"),
            format!("amk_{id}{secret}"),
            format!("amk_{id}_{}", &secret[1..]),
            format!("amk_{}_{secret}", &id[1..]),
            format!("amk_{id}_{}g", &secret[1..]),
            format!("amk_{id}_{secret}_x"),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn digests_are_sha256_hex_and_ignore_hex_case() {
        // SHA-256 of "abc".
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest("ABC"), digest("abc"));
        let r = random_hex(8).unwrap();
        assert_eq!(r.len(), 16);
        assert_ne!(r, random_hex(8).unwrap());
    }

    #[tokio::test]
    async fn imported_keys_authenticate_as_written_and_nothing_else() {
        use crate::store::MemoryStore;
        let store = MemoryStore::new();
        let now = Utc::now();
        let new = NewApiKey::new(Billable::new("user", "alice"), "demo");
        let key = import_api_key(&store, "sk-demo-alice", &new, now)
            .await
            .unwrap();
        assert_eq!(key.id.len(), ID_HEX);
        let found = authenticate(&store, " sk-demo-alice ", now).await.unwrap();
        assert_eq!(found.billable, Billable::new("user", "alice"));
        for wrong in ["sk-demo-Alice", "sk-demo-alicE", "sk-demo-alic"] {
            assert!(matches!(
                authenticate(&store, wrong, now).await,
                Err(KeyError::Unknown)
            ));
        }
        for refused in [
            "amk_sk-demo-alice",
            "short",
            "sk demo alice",
            "sk-demo-\u{7f}x",
        ] {
            let e = import_api_key(&store, refused, &new, now)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), StoreErrorKind::Invalid, "{refused}");
        }
        let again = import_api_key(&store, "sk-demo-alice", &new, now).await;
        assert_eq!(again.unwrap_err().kind(), StoreErrorKind::Conflict);
        assert!(store.revoke_api_key(&key.id, now).await.unwrap());
        assert!(matches!(
            authenticate(&store, "sk-demo-alice", now).await,
            Err(KeyError::Revoked { .. })
        ));
        // Not a key at all.
        for junk in ["", "a b", &"x".repeat(300)] {
            assert!(matches!(
                authenticate(&store, junk, now).await,
                Err(KeyError::Malformed)
            ));
        }
    }

    #[test]
    fn issued_keys_do_not_print_their_secret() {
        let key = ApiKey {
            id: "0123456789abcdef".into(),
            billable: Billable::new("team", "acme"),
            tenant: None,
            allowed_models: vec![],
            name: "ci".into(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        let issued = IssuedKey {
            key,
            secret: "amk_0123456789abcdef_secret".into(),
        };
        assert!(!format!("{issued:?}").contains("secret\""));
        assert!(!format!("{issued:?}").contains("_secret"));
        assert!(issued.key.allows_model("anything"));
    }
}
