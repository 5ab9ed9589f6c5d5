//! Who pays: [`Billable`], and the optional [`Tenant`] it belongs to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The entity usage is charged to: a user, a team, an organisation...
///
/// A kind and an id; the id is a string so that integer keys, UUIDs and slugs all fit. The textual form is `KIND:ID`
/// (`user:42`, `team:acme`), which [`FromStr`] parses and [`fmt::Display`] writes.
///
/// ```
/// use ai_metering_core::Billable;
///
/// let b = Billable::new("user", 42);
/// assert_eq!(b.to_string(), "user:42");
/// assert_eq!("user:42".parse::<Billable>().unwrap(), b);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Billable {
    /// The kind of entity, such as `user` or `team`.
    pub kind: String,
    /// The entity's id within its kind.
    pub id: String,
}

impl Billable {
    /// A billable of the given kind and id; the id may be anything displayable.
    pub fn new(kind: impl Into<String>, id: impl ToString) -> Self {
        Self {
            kind: kind.into(),
            id: id.to_string(),
        }
    }
}

impl fmt::Display for Billable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl FromStr for Billable {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((kind, id)) if !kind.is_empty() && !id.is_empty() => Ok(Self::new(kind, id)),
            _ => Err(Error::InvalidInput(format!(
                "billable {s:?} is not of the form TYPE:ID (for example user:42)"
            ))),
        }
    }
}

/// The tenant a request or usage belongs to, in multi-tenant apps.
///
/// ```
/// use ai_metering_core::Tenant;
/// assert_eq!(Tenant::new("acme").as_str(), "acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tenant(String);

impl Tenant {
    /// A tenant with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The tenant's id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billable_round_trips_through_text() {
        let b: Billable = "team:acme-corp".parse().unwrap();
        assert_eq!(b, Billable::new("team", "acme-corp"));
        // Ids may themselves contain colons (URNs); only the first colon separates.
        let urn: Billable = "org:urn:x:1".parse().unwrap();
        assert_eq!(urn.id, "urn:x:1");
    }

    #[test]
    fn malformed_billable_is_rejected() {
        for bad in ["", "user", ":42", "user:"] {
            let err = bad.parse::<Billable>().unwrap_err();
            assert!(err.to_string().contains("TYPE:ID"), "{err}");
        }
    }
}
