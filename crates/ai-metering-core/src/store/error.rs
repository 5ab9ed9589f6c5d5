use std::fmt;

/// What kind of failure a [`StoreError`] is, for callers that react differently (fail open on
/// `Unavailable`, tell the operator to migrate on `NotMigrated`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend cannot be reached or timed out (a database that is down).
    Unavailable,
    /// The schema is missing or outdated: run the migrations.
    NotMigrated,
    /// The referenced row does not exist (an unknown reservation, hold or subscription).
    NotFound,
    /// A uniqueness or state conflict the store could not resolve.
    Conflict,
    /// The values cannot be stored (out of range for the backend, say).
    Invalid,
    /// Anything else the backend reported.
    Other,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "store unavailable",
            Self::NotMigrated => "store schema missing or outdated (run the migrations)",
            Self::NotFound => "not found in the store",
            Self::Conflict => "store conflict",
            Self::Invalid => "value rejected by the store",
            Self::Other => "store error",
        })
    }
}

/// A failure of a storage backend, with its kind, a message and the backend's own error.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind` described by `message`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the backend's error as the source.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for a [`StoreErrorKind::NotFound`] error.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::NotFound, what)
    }
}
