//! TEMPORARY stub; replaced by the pricing module.
use crate::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
/// Cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// x
    pub input: Decimal,
    /// x
    pub cached_input: Decimal,
    /// x
    pub cache_write: Decimal,
    /// x
    pub output: Decimal,
    /// x
    pub reasoning: Decimal,
    /// x
    pub total: Decimal,
    /// x
    pub currency: Currency,
    /// x
    pub priced: bool,
    /// x
    pub catalog_version: String,
}
