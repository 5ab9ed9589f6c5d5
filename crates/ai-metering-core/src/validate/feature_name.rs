//! [`FeatureName`]: the validated name of the product feature a usage is attributed to.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name of a feature ("chat", "search.rerank", "v2:summarize"): 1 to
/// [`FeatureName::MAX_LEN`] characters, each an ASCII letter, digit, `_`, `.`, `:` or `-`.
///
/// Names are case-sensitive and never trimmed or otherwise rewritten. Serialized as a plain
/// string; deserializing validates.
///
/// ```
/// use ai_metering_core::validate::FeatureName;
///
/// let name: FeatureName = "chat.summarize".parse().unwrap();
/// assert_eq!(name.to_string(), "chat.summarize");
/// assert!(FeatureName::new("chat summarize").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeatureName(String);

impl FeatureName {
    /// The longest accepted name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Validates `name`.
    ///
    /// ```
    /// use ai_metering_core::validate::FeatureName;
    /// assert_eq!(FeatureName::new("embeddings").unwrap().as_str(), "embeddings");
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidFeature`] for an empty name, one longer than [`FeatureName::MAX_LEN`]
    /// or one with any other character. The error quotes the name, cut after
    /// [`FeatureName::MAX_LEN`] characters.
    pub fn new(name: &str) -> Result<Self> {
        let reason = if name.is_empty() {
            Some("it must not be empty")
        } else if !name.bytes().all(is_allowed) {
            Some("it may only contain ASCII letters, digits, '_', '.', ':' and '-'")
        } else if name.len() > Self::MAX_LEN {
            // All bytes are ASCII here, so bytes are characters.
            Some("it must be at most 100 characters long")
        } else {
            None
        };
        match reason {
            None => Ok(Self(name.to_owned())),
            Some(reason) => Err(Error::InvalidFeature {
                name: shortened(name),
                reason,
            }),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn is_allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

/// `name` cut after `MAX_LEN` characters, so that an error never carries a huge input.
fn shortened(name: &str) -> String {
    let mut chars = name.chars();
    let mut short: String = chars.by_ref().take(FeatureName::MAX_LEN).collect();
    if chars.next().is_some() {
        short.push('…');
    }
    short
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FeatureName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for FeatureName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        // Reuse the allocation when the name is valid.
        Self::new(&s)?;
        Ok(Self(s))
    }
}

impl TryFrom<&str> for FeatureName {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl From<FeatureName> for String {
    fn from(name: FeatureName) -> Self {
        name.0
    }
}

impl AsRef<str> for FeatureName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for FeatureName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;

    fn reason(name: &str) -> &'static str {
        match FeatureName::new(name) {
            Err(Error::InvalidFeature { reason, .. }) => reason,
            other => panic!("expected InvalidFeature for {name:?}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_every_allowed_character() {
        for name in [
            "a",
            "chat",
            "Chat_2",
            "search.rerank",
            "v2:summarize",
            "image-gen",
            "A-Za-z0-9_.:-",
        ] {
            assert_eq!(FeatureName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn length_limit_is_exactly_100_characters() {
        let max = "x".repeat(FeatureName::MAX_LEN);
        assert!(FeatureName::new(&max).is_ok());
        let too_long = "x".repeat(FeatureName::MAX_LEN + 1);
        assert_eq!(reason(&too_long), "it must be at most 100 characters long");
    }

    #[test]
    fn rejects_empty_names() {
        assert_eq!(reason(""), "it must not be empty");
    }

    #[test]
    fn rejects_other_characters_including_spaces_slashes_and_non_ascii() {
        for name in [
            " chat", "chat ", "chat bot", "a/b", "a\\b", "a;b", "a\nb", "émoji", "a\u{0}b", "%20",
        ] {
            assert!(
                reason(name).contains("may only contain"),
                "{name:?} was accepted"
            );
        }
    }

    #[test]
    fn errors_quote_the_name_but_never_a_huge_one() {
        let err = FeatureName::new("bad name").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid feature name \"bad name\": it may only contain ASCII letters, digits, \
             '_', '.', ':' and '-'"
        );
        let huge = "é".repeat(10_000);
        match FeatureName::new(&huge) {
            Err(Error::InvalidFeature { name, .. }) => {
                assert_eq!(name.chars().count(), FeatureName::MAX_LEN + 1);
                assert!(name.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serde_is_a_plain_string_and_validates() {
        let name = FeatureName::new("chat").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"chat\"");
        assert_eq!(
            serde_json::from_str::<FeatureName>("\"chat\"").unwrap(),
            name
        );
        let err = serde_json::from_str::<FeatureName>("\"no spaces\"").unwrap_err();
        assert!(err.to_string().contains("may only contain"), "{err}");
        assert!(serde_json::from_str::<FeatureName>("\"\"").is_err());
    }

    #[test]
    fn conversions_and_lookup_by_str() {
        let name = FeatureName::try_from(String::from("chat")).unwrap();
        assert_eq!(name.as_ref(), "chat");
        let mut set = std::collections::HashSet::new();
        set.insert(name.clone());
        assert!(set.contains("chat"));
        assert_eq!(String::from(name.clone()), "chat");
        assert_eq!(name.into_string(), "chat");
        assert!(FeatureName::try_from("a b").is_err());
    }
}
