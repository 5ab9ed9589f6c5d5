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
/// stub
#[derive(Debug, Clone, Default)]
pub struct PeriodSpec;
impl PeriodSpec {
    /// stub
    pub fn period_at(&self, t: DateTime<Utc>) -> crate::Result<Period> {
        Ok(Period { start: t, end: t })
    }
    /// stub
    pub fn anchored_at(self, _t: DateTime<Utc>) -> Self {
        self
    }
}
