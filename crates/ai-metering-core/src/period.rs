//! TEMPORARY stub; replaced by the period module.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
/// A half-open period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
}
