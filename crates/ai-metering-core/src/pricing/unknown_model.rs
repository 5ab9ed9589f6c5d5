//! [`UnknownModelPolicy`]: what a catalog does with a model it has no price for.

use super::price::ModelPrice;

/// What [`PriceCatalog::cost`](super::PriceCatalog::cost) does when neither the model nor any
/// of its aliases or snapshot bases has a price.
///
/// ```
/// use ai_metering_core::pricing::{PriceCatalog, UnknownModelPolicy};
/// use ai_metering_core::{Error, TokenUsage};
///
/// let usage = TokenUsage::new(100, 10)?;
/// let strict = PriceCatalog::builtin();
/// assert!(matches!(
///     strict.cost("openai", "my-finetune", &usage),
///     Err(Error::UnknownModel { .. })
/// ));
///
/// let lenient = PriceCatalog::builtin().with_unknown_model_policy(UnknownModelPolicy::Unpriced);
/// let cost = lenient.cost("openai", "my-finetune", &usage)?;
/// assert!(!cost.priced);
/// # Ok::<(), ai_metering_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UnknownModelPolicy {
    /// Fail with [`Error::UnknownModel`](crate::Error::UnknownModel): a call whose price is
    /// unknown is never silently free. The default.
    #[default]
    Reject,
    /// Bill at this price instead (in the catalog's currency); the breakdown says
    /// `priced: true`.
    Fallback(ModelPrice),
    /// Cost zero, with `priced: false` in the breakdown so the call can be found and reviewed.
    Unpriced,
}
