//! Prices and costs: what a call cost, exactly, and which prices said so.
//!
//! - [`ModelPrice`]: one model's prices per million tokens for each token class (input,
//!   cached input, cache write with a long-lived variant, output, reasoning), never negative;
//! - [`PriceCatalog`]: prices by provider and model, resolving aliases, path prefixes and
//!   dated snapshot names, with an [`UnknownModelPolicy`] for the rest. It comes
//!   [built in](PriceCatalog::builtin) (current OpenAI, Anthropic and Gemini prices, sources
//!   documented row by row), or [from TOML](PriceCatalog::from_toml_str),
//!   [from LiteLLM's price map](PriceCatalog::from_litellm_json) or
//!   [from a per-1k price config](PriceCatalog::from_per_1k_config), and
//!   catalogs [merge](PriceCatalog::merge);
//! - [`CostBreakdown`]: the cost of one [`TokenUsage`](crate::TokenUsage), class by class,
//!   with the catalog version that priced it.
//!
//! All arithmetic is exact [`Decimal`](rust_decimal::Decimal) arithmetic: nothing is rounded
//! (a single gpt-4o-mini input token costs exactly $0.00000015), a result that cannot be
//! represented exactly is [`Error::Overflow`](crate::Error::Overflow), and no price passes
//! through a binary float, not even when read from a TOML or JSON number.
//!
//! ```
//! use ai_metering_core::pricing::PriceCatalog;
//! use ai_metering_core::{TokenCounts, TokenUsage};
//! use rust_decimal::Decimal;
//!
//! // gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens.
//! let usage = TokenUsage::try_from(TokenCounts {
//!     input: 1000,
//!     cached_input: 400,
//!     output: 500,
//!     ..TokenCounts::default()
//! })?;
//! let cost = PriceCatalog::builtin().cost("openai", "gpt-4o-mini-2024-07-18", &usage)?;
//! assert_eq!(cost.input, Decimal::new(9, 5)); //         600 uncached tokens: $0.00009
//! assert_eq!(cost.cached_input, Decimal::new(3, 5)); //  400 cached tokens:   $0.00003
//! assert_eq!(cost.output, Decimal::new(3, 4)); //        500 output tokens:   $0.0003
//! assert_eq!(cost.total, Decimal::new(42, 5)); //                       total $0.00042
//! assert_eq!(cost.catalog_version, "builtin-2026-12");
//! # Ok::<(), ai_metering_core::Error>(())
//! ```

mod builtin;
mod catalog;
mod config;
mod cost;
mod exact;
mod litellm;
mod model_name;
mod per_1k;
mod price;
mod source_tree;
mod unknown_model;

pub use catalog::PriceCatalog;

/// The provider name of usage counted by the app itself (a self-hosted model, a tool billed
/// per token...): `meter().provider(MANUAL_PROVIDER, "custom-model")`. Its calls need no
/// catalog entry: they cost what [`Meter::cost`](crate::Meter::cost) says, else the
/// catalog's `manual` price for the model if it has one, else nothing (tokens are still
/// counted against token limits). Usage comes from
/// [`Meter::manual_usage`](crate::Meter::manual_usage) or an extractor.
pub const MANUAL_PROVIDER: &str = "manual";
pub use cost::CostBreakdown;
pub use price::ModelPrice;
pub use unknown_model::UnknownModelPolicy;
