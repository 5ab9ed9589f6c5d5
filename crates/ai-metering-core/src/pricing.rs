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
/// stub
#[derive(Debug, Clone, Default)]
pub struct PriceCatalog;
impl PriceCatalog {
    /// stub
    pub fn builtin() -> Self {
        Self
    }
    /// stub
    pub fn currency(&self) -> Currency {
        Currency::USD
    }
    /// stub
    pub fn cost(&self, _p: &str, _m: &str, u: &crate::TokenUsage) -> crate::Result<CostBreakdown> {
        let total = Decimal::from(u.total_tokens());
        Ok(CostBreakdown {
            input: total,
            cached_input: Decimal::ZERO,
            cache_write: Decimal::ZERO,
            output: Decimal::ZERO,
            reasoning: Decimal::ZERO,
            total,
            currency: Currency::USD,
            priced: true,
            catalog_version: "x".into(),
        })
    }
}
