//! [`Metadata`]: a bounded JSON object attached to a usage record, with secrets redacted.

use std::io;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Free-form JSON attached to a usage record: a JSON object of bounded size and depth, whose
/// secret-looking values are redacted on construction.
///
/// # Limits
/// - the value must be a JSON object;
/// - nesting depth at most [`Metadata::MAX_DEPTH`]: the object itself is level 1, and every
///   object or array inside it adds a level;
/// - at most [`Metadata::MAX_BYTES`] bytes as compact JSON, measured after redaction (what is
///   stored).
///
/// # Redaction
/// The value under a key that names a secret is replaced, whatever it is (string, number,
/// object...), by the string `"[REDACTED]"`. Objects and arrays under other keys are searched
/// recursively, so `{"headers": {"Authorization": "Bearer ..."}}` is redacted too.
///
/// To decide, a key is *normalised*: ASCII letters are lower-cased, every character that is
/// not an ASCII letter or digit is dropped (`API-Key`, `api_key`, `apiKey` and `api.key` all
/// become `apikey`), and trailing digits are dropped (`password2` becomes `password`). The key
/// names a secret when its normalised form
/// - is one of `auth`, `bearer`, `session`, `jwt`, `pwd`; or
/// - **ends with** one of `apikey`, `apikeys`, `password`, `passwords`, `passwd`,
///   `passphrase`, `secret`, `secrets`, `token`, `privatekey`, `privatekeys`, `secretkey`,
///   `accesskey`, `authorization`, `cookie`, `cookies`, `credential`, `credentials`,
///   `sessionid`.
///
/// So `client_secret`, `x-api-key`, `OPENAI_API_KEY`, `access_token`, `refreshToken`,
/// `Set-Cookie` and `Proxy-Authorization` are redacted. Token *counts* are not: `tokens`,
/// `input_tokens`, `max_tokens`, `token_count` and `token_type` do not end with `token` once
/// normalised. Only the end of a key counts, so `password_hint` or `secret_name` are kept; and
/// a singular `…_token` key is always redacted, even one holding a number.
///
/// Serialized as the object itself; deserializing validates and redacts.
///
/// ```
/// use ai_metering_core::validate::Metadata;
/// use serde_json::json;
///
/// let metadata = Metadata::new(json!({
///     "input_tokens": 1200,
///     "headers": {"Authorization": "Bearer abc", "x-request-id": "r-1"},
/// }))
/// .unwrap();
/// assert_eq!(
///     metadata.into_value(),
///     json!({
///         "input_tokens": 1200,
///         "headers": {"Authorization": "[REDACTED]", "x-request-id": "r-1"},
///     })
/// );
/// assert!(Metadata::new(json!(["not", "an", "object"])).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Metadata(Map<String, Value>);

/// What replaces a secret value.
const REDACTED: &str = "[REDACTED]";

/// Normalised keys that name a secret only as a whole word.
const SECRET_WORDS: &[&str] = &["auth", "bearer", "session", "jwt", "pwd"];

/// Normalised key endings that name a secret. `token` is here but not `tokens`: in metering
/// metadata, `tokens` keys hold counts.
const SECRET_SUFFIXES: &[&str] = &[
    "apikey",
    "apikeys",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "privatekey",
    "privatekeys",
    "secretkey",
    "accesskey",
    "authorization",
    "cookie",
    "cookies",
    "credential",
    "credentials",
    "sessionid",
];

impl Metadata {
    /// The largest accepted size, in bytes of compact JSON: 16 KiB.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// The deepest accepted nesting: the object itself is level 1.
    pub const MAX_DEPTH: usize = 16;

    /// Validates `value` and redacts its secrets (see the type's docs).
    ///
    /// ```
    /// use ai_metering_core::validate::Metadata;
    /// use serde_json::json;
    ///
    /// let m = Metadata::new(json!({"password": "hunter2", "max_tokens": 512})).unwrap();
    /// assert_eq!(m.get("password"), Some(&json!("[REDACTED]")));
    /// assert_eq!(m.get("max_tokens"), Some(&json!(512)));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidMetadata`] when `value` is not an object, is nested deeper than
    /// [`Metadata::MAX_DEPTH`] or is larger than [`Metadata::MAX_BYTES`] once redacted.
    pub fn new(value: Value) -> Result<Self> {
        let Value::Object(mut map) = value else {
            return Err(Error::InvalidMetadata(format!(
                "metadata must be a JSON object, got {}",
                describe(&value)
            )));
        };
        if nested_deeper_than(&map, Self::MAX_DEPTH) {
            drop_without_recursion(map);
            return Err(Error::InvalidMetadata(format!(
                "metadata must not be nested more than {} levels deep",
                Self::MAX_DEPTH
            )));
        }
        redact_object(&mut map);
        check_size(&map)?;
        Ok(Self(map))
    }

    /// Metadata with no entries.
    ///
    /// ```
    /// use ai_metering_core::validate::Metadata;
    /// assert!(Metadata::empty().is_empty());
    /// assert_eq!(Metadata::empty(), Metadata::default());
    /// ```
    pub fn empty() -> Self {
        Self::default()
    }

    /// The entries.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The entries as a JSON object value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Value> for Metadata {
    type Error = Error;
    fn try_from(value: Value) -> Result<Self> {
        Self::new(value)
    }
}

impl From<Metadata> for Value {
    fn from(metadata: Metadata) -> Self {
        metadata.into_value()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// Whether `key` names a secret (see [`Metadata`]'s docs for the rule).
fn is_secret_key(key: &str) -> bool {
    let normalised: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let word = normalised.trim_end_matches(|c: char| c.is_ascii_digit());
    SECRET_WORDS.contains(&word) || SECRET_SUFFIXES.iter().any(|s| word.ends_with(s))
}

fn redact_object(map: &mut Map<String, Value>) {
    for (key, value) in map.iter_mut() {
        if is_secret_key(key) {
            *value = Value::String(REDACTED.to_owned());
        } else {
            redact_value(value);
        }
    }
}

fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => redact_object(map),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// Whether the object `map` (level 1) holds objects or arrays deeper than `max` levels. The
/// recursion stops at `max + 1` levels, so it is bounded however deep the input is.
fn nested_deeper_than(map: &Map<String, Value>, max: usize) -> bool {
    fn deeper(value: &Value, level: usize, max: usize) -> bool {
        match value {
            Value::Object(map) => level > max || map.values().any(|v| deeper(v, level + 1, max)),
            Value::Array(items) => level > max || items.iter().any(|v| deeper(v, level + 1, max)),
            _ => false,
        }
    }
    1 > max || map.values().any(|value| deeper(value, 2, max))
}

/// Drops a value of any depth with a heap stack: `serde_json::Value`'s own drop recurses and
/// would overflow the thread's stack on a value nested a hundred thousand levels deep.
fn drop_without_recursion(map: Map<String, Value>) {
    let mut pending: Vec<Value> = map.into_iter().map(|(_, value)| value).collect();
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => pending.extend(map.into_iter().map(|(_, value)| value)),
            _ => {}
        }
    }
}

/// Checks the compact JSON size of `map`, stopping the serialization as soon as it exceeds
/// the limit.
fn check_size(map: &Map<String, Value>) -> Result<()> {
    struct Budget(usize);
    impl io::Write for Budget {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            if self.0 > Metadata::MAX_BYTES {
                Err(io::Error::other("metadata too large"))
            } else {
                Ok(buf.len())
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut budget = Budget(0);
    match serde_json::to_writer(&mut budget, map) {
        Ok(()) => Ok(()),
        Err(_) if budget.0 > Metadata::MAX_BYTES => Err(Error::InvalidMetadata(format!(
            "metadata must take at most {} bytes as JSON",
            Metadata::MAX_BYTES
        ))),
        Err(e) => Err(Error::InvalidMetadata(format!(
            "metadata cannot be written as JSON: {e}"
        ))),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;
    use serde_json::json;

    fn redacted(key: &str) -> bool {
        let m = Metadata::new(json!({ key: "value" })).unwrap();
        m.get(key) == Some(&json!(REDACTED))
    }

    #[test]
    fn redacts_secret_keys_whatever_their_spelling() {
        for key in [
            "api_key",
            "apikey",
            "api-key",
            "API_KEY",
            "apiKey",
            "x-api-key",
            "OPENAI_API_KEY",
            "api_keys",
            "password",
            "Password",
            "db_password",
            "passwd",
            "pwd",
            "passphrase",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "refreshToken",
            "id_token",
            "X-Auth-Token",
            "authorization",
            "Proxy-Authorization",
            "auth",
            "bearer",
            "private_key",
            "privateKey",
            "aws_secret_access_key",
            "cookie",
            "Set-Cookie",
            "session",
            "session_id",
            "sessionId",
            "credentials",
            "jwt",
            "password2",
            "api_key_2",
        ] {
            assert!(redacted(key), "{key} was kept");
        }
    }

    #[test]
    fn keeps_token_counts_and_other_harmless_keys() {
        for key in [
            "tokens",
            "input_tokens",
            "output_tokens",
            "max_tokens",
            "total_tokens",
            "cache_read_input_tokens",
            "token_count",
            "tokenCount",
            "token_type",
            "tokenizer",
            "tokens_per_second",
            "author",
            "authority",
            "password_hint",
            "secret_name",
            "keyboard",
            "key",
            "model",
            "user_id",
            "sessions_count",
        ] {
            assert!(!redacted(key), "{key} was redacted");
        }
    }

    #[test]
    fn redacts_recursively_in_objects_and_arrays() {
        let m = Metadata::new(json!({
            "request": {
                "headers": {"Authorization": "Bearer abc", "Accept": "json"},
                "attempts": [
                    {"api_key": "sk-1", "status": 500},
                    {"api_key": "sk-2", "status": 200},
                    [{"refresh_token": "r"}]
                ]
            },
            "usage": {"input_tokens": 10, "output_tokens": 20}
        }))
        .unwrap();
        assert_eq!(
            m.into_value(),
            json!({
                "request": {
                    "headers": {"Authorization": REDACTED, "Accept": "json"},
                    "attempts": [
                        {"api_key": REDACTED, "status": 500},
                        {"api_key": REDACTED, "status": 200},
                        [{"refresh_token": REDACTED}]
                    ]
                },
                "usage": {"input_tokens": 10, "output_tokens": 20}
            })
        );
    }

    #[test]
    fn replaces_whole_values_of_any_type_under_secret_keys() {
        let m = Metadata::new(json!({
            "credentials": {"user": "u", "pass": "p"},
            "secrets": ["a", "b"],
            "token": 12345,
            "auth": null
        }))
        .unwrap();
        for key in ["credentials", "secrets", "token", "auth"] {
            assert_eq!(m.get(key), Some(&json!(REDACTED)), "{key}");
        }
    }

    #[test]
    fn rejects_values_that_are_not_objects() {
        for (value, kind) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(1), "a number"),
            (json!("text"), "a string"),
            (json!([1, 2]), "an array"),
        ] {
            let err = Metadata::new(value).unwrap_err();
            assert!(matches!(err, Error::InvalidMetadata(_)));
            assert_eq!(
                err.to_string(),
                format!("invalid metadata: metadata must be a JSON object, got {kind}")
            );
        }
    }

    #[test]
    fn depth_limit_counts_the_object_itself_as_level_one() {
        fn nested(levels: usize) -> Value {
            let mut value = json!({});
            for i in 1..levels {
                value = if i % 2 == 0 {
                    json!({ "inner": value })
                } else {
                    json!([value])
                };
            }
            json!({ "root": value })
        }
        // nested(n) has n + 1 levels: the root object, then n alternating containers.
        assert!(Metadata::new(nested(Metadata::MAX_DEPTH - 1)).is_ok());
        let err = Metadata::new(nested(Metadata::MAX_DEPTH))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested more than 16 levels"), "{err}");
        // Scalars do not add a level.
        let mut flat = Map::new();
        flat.insert("a".into(), json!(1));
        assert!(!nested_deeper_than(&flat, 1));
    }

    #[test]
    fn a_very_deep_value_is_rejected_without_exhausting_the_stack() {
        let mut value = json!(1);
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        // Not `json!`, which would clone the value through a recursive serialization.
        let mut map = Map::new();
        map.insert("deep".into(), value);
        let err = Metadata::new(Value::Object(map)).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn size_limit_is_measured_on_the_compact_json() {
        // {"k":"xxx..."} is 8 bytes plus the string.
        let fits = json!({ "k": "x".repeat(Metadata::MAX_BYTES - 8) });
        assert_eq!(
            serde_json::to_vec(&fits).unwrap().len(),
            Metadata::MAX_BYTES
        );
        assert!(Metadata::new(fits).is_ok());
        let too_big = json!({ "k": "x".repeat(Metadata::MAX_BYTES - 7) });
        let err = Metadata::new(too_big).unwrap_err().to_string();
        assert!(err.contains("at most 16384 bytes"), "{err}");
    }

    #[test]
    fn size_is_measured_after_redaction() {
        // A huge secret is replaced by a short marker, so the stored metadata fits.
        let m = Metadata::new(json!({ "private_key": "k".repeat(100_000) })).unwrap();
        assert_eq!(m.get("private_key"), Some(&json!(REDACTED)));
    }

    #[test]
    fn serde_is_the_plain_object_and_deserializing_validates_and_redacts() {
        let m: Metadata = serde_json::from_str(r#"{"a":1,"password":"p"}"#).unwrap();
        assert_eq!(m.get("password"), Some(&json!(REDACTED)));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"a":1,"password":"[REDACTED]"}"#
        );
        assert!(serde_json::from_str::<Metadata>("[1]").is_err());
        let err = serde_json::from_str::<Metadata>("42")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be a JSON object"), "{err}");
    }

    #[test]
    fn empty_default_and_conversions() {
        assert!(Metadata::empty().is_empty());
        assert_eq!(Metadata::default().into_value(), json!({}));
        let m = Metadata::try_from(json!({"a": 1})).unwrap();
        assert_eq!(m.as_map().len(), 1);
        assert_eq!(Value::from(m), json!({"a": 1}));
    }
}
