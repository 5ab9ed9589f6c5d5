//! Reading token counts out of JSON without ever guessing.
//!
//! Every count must be a JSON integer between 0 and [`MAX_TOKENS_PER_CALL`]. Absent and
//! `null` mean "not reported" (which the provider modules turn into 0 where the provider
//! documents that). Anything else is a [`Error::MalformedResponse`] naming the field:
//! negative numbers, fractions (`3.5`), integers written as floats (`12.0`: the providers
//! never send them, so a float means something rewrote the body and the count cannot be
//! trusted), strings (`"12"`), booleans, arrays and objects. Counts are never carried in
//! floating point.

use serde_json::{Map, Value};

use super::Provider;
use crate::error::{Error, Result};
use crate::usage::MAX_TOKENS_PER_CALL;

/// A JSON object of a provider response, with the dotted path that led to it (for messages).
#[derive(Clone)]
pub(crate) struct Fields<'a> {
    provider: Provider,
    path: String,
    object: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Wraps `value`, which must be a JSON object.
    pub(crate) fn new(
        provider: Provider,
        path: impl Into<String>,
        value: &'a Value,
    ) -> Result<Self> {
        let path = path.into();
        match value {
            Value::Object(object) => Ok(Self {
                provider,
                path,
                object,
            }),
            other => Err(malformed(
                provider,
                format!("{path} is {}, not an object", describe(other)),
            )),
        }
    }

    /// The raw value of `key`, `None` when absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key)
    }

    /// Whether `key` is present (even as `null`).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    /// The nested object `key`; `None` when absent or `null`, an error for any other non-object.
    pub(crate) fn child(&self, key: &str) -> Result<Option<Fields<'a>>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => {
                Fields::new(self.provider, format!("{}.{key}", self.path), value).map(Some)
            }
        }
    }

    /// The dotted path of this object, such as `usage.prompt_tokens_details`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The count `key`; `None` when absent or `null`.
    pub(crate) fn optional(&self, key: &str) -> Result<Option<u64>> {
        match self.object.get(key) {
            None => Ok(None),
            Some(value) => count(self.provider, &self.path, key, value),
        }
    }

    /// The count `key`, 0 when absent or `null`.
    pub(crate) fn or_zero(&self, key: &str) -> Result<u64> {
        Ok(self.optional(key)?.unwrap_or(0))
    }

    /// The count `key`, which the provider always sends.
    pub(crate) fn required(&self, key: &str) -> Result<u64> {
        match self.object.get(key) {
            None => Err(malformed(
                self.provider,
                format!("{}.{key} is missing", self.path),
            )),
            Some(value) => count(self.provider, &self.path, key, value)?
                .ok_or_else(|| malformed(self.provider, format!("{}.{key} is null", self.path))),
        }
    }
}

/// Checks one count. `Ok(None)` for `null`.
fn count(provider: Provider, path: &str, key: &str, value: &Value) -> Result<Option<u64>> {
    let problem = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                if v <= MAX_TOKENS_PER_CALL {
                    return Ok(Some(v));
                }
                format!("is {v}, above the per-call maximum of {MAX_TOKENS_PER_CALL} tokens")
            } else if n.is_i64() {
                format!("is negative ({n})")
            } else {
                format!("is {n}: token counts must be JSON integers")
            }
        }
        other => format!("is {}, not a number", describe(other)),
    };
    Err(malformed(provider, format!("{path}.{key} {problem}")))
}

/// A short description of a JSON value for error messages (never the whole value).
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) if s.chars().count() <= 24 => format!("a string ({s:?})"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The usage object `key` of a response body.
///
/// A body that is not a JSON object, or whose `key` is absent or `null`, has no usage
/// ([`Error::NoUsage`]); a `key` of any other non-object type is malformed.
pub(crate) fn usage_object<'a>(
    provider: Provider,
    body: &'a Value,
    key: &str,
) -> Result<Fields<'a>> {
    let Value::Object(object) = body else {
        return Err(no_usage(
            provider,
            format!("the body is {}, not a JSON object", describe(body)),
        ));
    };
    match object.get(key) {
        None => Err(no_usage(provider, format!("the body has no `{key}` field"))),
        Some(Value::Null) => Err(no_usage(provider, format!("`{key}` is null"))),
        Some(value) => Fields::new(provider, key, value),
    }
}

/// An [`Error::MalformedResponse`] for `provider`.
pub(crate) fn malformed(provider: Provider, reason: impl Into<String>) -> Error {
    Error::MalformedResponse {
        provider: provider.as_str(),
        reason: reason.into(),
    }
}

/// An [`Error::NoUsage`] for `provider`.
pub(crate) fn no_usage(provider: Provider, reason: impl Into<String>) -> Error {
    Error::NoUsage {
        provider: provider.as_str(),
        reason: reason.into(),
    }
}

/// An [`Error::InvalidUsage`] for a provider part that exceeds its provider whole, naming both.
pub(crate) fn part_exceeds(
    provider: Provider,
    part: (&str, u64),
    whole: (&str, u64),
) -> Result<()> {
    if part.1 > whole.1 {
        return Err(Error::usage(format!(
            "{provider} response: {} ({}) exceeds {} ({}) it is part of",
            part.0, part.1, whole.0, whole.1
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: Value) -> Result<Option<u64>> {
        let object = json!({ "n": value });
        Fields::new(Provider::OpenAi, "usage", &object)?.optional("n")
    }

    fn reason(err: Error) -> String {
        match err {
            Error::MalformedResponse { reason, .. } => reason,
            other => panic!("expected MalformedResponse, got {other:?}"),
        }
    }

    #[test]
    fn integers_in_range_are_read_and_null_is_none() {
        assert_eq!(read(json!(0)).unwrap(), Some(0));
        assert_eq!(
            read(json!(MAX_TOKENS_PER_CALL)).unwrap(),
            Some(MAX_TOKENS_PER_CALL)
        );
        assert_eq!(read(Value::Null).unwrap(), None);
    }

    #[test]
    fn every_non_count_is_malformed_and_names_the_field() {
        for (value, expected) in [
            (json!(-1), "usage.n is negative (-1)"),
            (json!(3.5), "usage.n is 3.5"),
            (json!(12.0), "usage.n is 12.0"),
            (json!("12"), "usage.n is a string (\"12\")"),
            (json!(true), "usage.n is a boolean"),
            (json!([1]), "usage.n is an array"),
            (json!({"a": 1}), "usage.n is an object"),
            (json!(MAX_TOKENS_PER_CALL + 1), "above the per-call maximum"),
            (json!(u64::MAX), "above the per-call maximum"),
        ] {
            let message = reason(read(value.clone()).unwrap_err());
            assert!(message.contains(expected), "{value}: {message}");
        }
    }

    #[test]
    fn huge_integers_beyond_u64_are_rejected() {
        let value: Value = serde_json::from_str("123456789012345678901234567890").unwrap();
        let message = reason(read(value).unwrap_err());
        assert!(message.contains("must be JSON integers"), "{message}");
    }

    #[test]
    fn required_distinguishes_missing_and_null() {
        let object = json!({ "a": null });
        let fields = Fields::new(Provider::Gemini, "usageMetadata", &object).unwrap();
        assert!(reason(fields.required("a").unwrap_err()).contains("usageMetadata.a is null"));
        assert!(reason(fields.required("b").unwrap_err()).contains("usageMetadata.b is missing"));
        assert_eq!(fields.or_zero("a").unwrap(), 0);
    }

    #[test]
    fn child_objects_must_be_objects() {
        let object = json!({ "d": null, "e": "x", "f": {"k": 1} });
        let fields = Fields::new(Provider::OpenAi, "usage", &object).unwrap();
        assert!(fields.child("d").unwrap().is_none());
        assert!(fields.child("missing").unwrap().is_none());
        assert!(reason(fields.child("e").err().unwrap()).contains("usage.e is a string"));
        let f = fields.child("f").unwrap().unwrap();
        assert_eq!(f.path(), "usage.f");
        assert_eq!(f.required("k").unwrap(), 1);
    }
}
