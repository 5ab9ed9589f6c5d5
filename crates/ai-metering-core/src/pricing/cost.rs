//! [`CostBreakdown`]: the exact cost of one call, class by class.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::money::{Currency, Money};
use crate::usage::TokenUsage;

use super::exact;
use super::price::ModelPrice;

/// The cost of one call, split by token class, at full precision (no rounding; use
/// [`Money::round_to_minor_units`] for display or billing export).
///
/// The five parts are **disjoint** and add up to [`total`](Self::total): every token is
/// counted in exactly one of them. (A [`given`](Self::given) cost is the exception: it is
/// not split, its parts are zero.)
///
/// | part | tokens | price |
/// |---|---|---|
/// | `input` | uncached input: input minus cache reads minus cache writes | input |
/// | `cached_input` | cache reads | cached input (else input) |
/// | `cache_write` | cache writes, short and long together | cache write (else input); long ones at the long price (else cache write) |
/// | `output` | output minus reasoning | output |
/// | `reasoning` | reasoning | reasoning (else output) |
///
/// So `reasoning` is always the cost of the reasoning tokens, even when they are billed at
/// the output price; the model's whole output cost is `output + reasoning`.
///
/// `priced` is `false` only for a model the catalog does not know under
/// [`UnknownModelPolicy::Unpriced`](super::UnknownModelPolicy::Unpriced): every part is then
/// zero, and the call should be reviewed, not treated as free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Cost of the uncached input tokens.
    pub input: Decimal,
    /// Cost of the input tokens read from a cache.
    pub cached_input: Decimal,
    /// Cost of the input tokens written to a cache, whatever their lifetime.
    pub cache_write: Decimal,
    /// Cost of the output tokens that are not reasoning tokens.
    pub output: Decimal,
    /// Cost of the reasoning tokens.
    pub reasoning: Decimal,
    /// The sum of the five parts.
    pub total: Decimal,
    /// The currency of every amount above (the catalog's).
    pub currency: Currency,
    /// Whether a price was found (or a fallback price applied); `false` means the amounts are
    /// zero because the model is unknown.
    pub priced: bool,
    /// The [`version`](super::PriceCatalog::version) of the catalog the prices came from.
    pub catalog_version: String,
}

impl CostBreakdown {
    /// A cost given for the whole call rather than computed from the catalog: one the
    /// caller supplied ([`Meter::cost`](crate::Meter::cost)) or the provider reported
    /// ([`ReportedUsage::with_cost`](crate::ReportedUsage::with_cost)). It is not split by
    /// token class: the five parts are zero, `total` is the amount, and `catalog_version` is
    /// [`GIVEN_COST`](Self::GIVEN_COST).
    ///
    /// ```
    /// use ai_metering_core::{CostBreakdown, Currency, Money};
    /// let cost = CostBreakdown::given(Money::new(rust_decimal::Decimal::new(3, 2), Currency::USD));
    /// assert_eq!(cost.total_money().to_string(), "0.03 USD");
    /// assert_eq!(cost.catalog_version, CostBreakdown::GIVEN_COST);
    /// ```
    pub fn given(cost: Money) -> Self {
        Self {
            input: Decimal::ZERO,
            cached_input: Decimal::ZERO,
            cache_write: Decimal::ZERO,
            output: Decimal::ZERO,
            reasoning: Decimal::ZERO,
            total: cost.amount,
            currency: cost.currency,
            priced: true,
            catalog_version: Self::GIVEN_COST.to_owned(),
        }
    }

    /// The `catalog_version` of a [`given`](Self::given) cost.
    pub const GIVEN_COST: &'static str = "given";

    /// The total as [`Money`].
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use ai_metering_core::{Currency, TokenUsage};
    ///
    /// let cost = PriceCatalog::builtin().cost("openai", "gpt-4o", &TokenUsage::new(1_000_000, 0)?)?;
    /// assert_eq!(cost.total_money().to_string(), "2.5 USD");
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    pub fn total_money(&self) -> Money {
        Money::new(self.total, self.currency)
    }

    /// The cost of `usage` at `price`.
    pub(crate) fn compute(
        price: &ModelPrice,
        usage: &TokenUsage,
        currency: Currency,
        catalog_version: &str,
    ) -> Result<Self> {
        // TokenUsage guarantees cache_write_long <= cache_write and reasoning <= output; the
        // checked subtractions only keep that promise visible.
        let short_writes = usage
            .cache_write_tokens()
            .checked_sub(usage.cache_write_long_tokens())
            .ok_or_else(|| Error::usage("long cache writes exceed cache writes"))?;
        let plain_output = usage
            .output_tokens()
            .checked_sub(usage.reasoning_tokens())
            .ok_or_else(|| Error::usage("reasoning tokens exceed output tokens"))?;

        let input = exact::cost_of_tokens(usage.uncached_input_tokens(), price.input())?;
        let cached_input =
            exact::cost_of_tokens(usage.cached_input_tokens(), price.effective_cached_input())?;
        let cache_write = exact::sum(&[
            exact::cost_of_tokens(short_writes, price.effective_cache_write())?,
            exact::cost_of_tokens(
                usage.cache_write_long_tokens(),
                price.effective_cache_write_long(),
            )?,
        ])?;
        let output = exact::cost_of_tokens(plain_output, price.output())?;
        let reasoning =
            exact::cost_of_tokens(usage.reasoning_tokens(), price.effective_reasoning())?;
        let total = exact::sum(&[input, cached_input, cache_write, output, reasoning])?;
        Ok(Self {
            input,
            cached_input,
            cache_write,
            output,
            reasoning,
            total,
            currency,
            priced: true,
            catalog_version: catalog_version.to_owned(),
        })
    }

    /// The all-zero, `priced: false` breakdown of an unknown model.
    pub(crate) fn unpriced(currency: Currency, catalog_version: &str) -> Self {
        Self {
            input: Decimal::ZERO,
            cached_input: Decimal::ZERO,
            cache_write: Decimal::ZERO,
            output: Decimal::ZERO,
            reasoning: Decimal::ZERO,
            total: Decimal::ZERO,
            currency,
            priced: false,
            catalog_version: catalog_version.to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::usage::TokenCounts;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn usage(counts: TokenCounts) -> TokenUsage {
        TokenUsage::try_from(counts).unwrap()
    }

    #[test]
    fn every_token_lands_in_exactly_one_part() {
        // Distinct powers of ten make each part identify its tokens and price.
        let price = ModelPrice::per_million(d("1"), d("100"))
            .unwrap()
            .with_cached_input(d("0.1"))
            .unwrap()
            .with_cache_write(d("10"))
            .unwrap()
            .with_cache_write_long(d("1000"))
            .unwrap()
            .with_reasoning(d("10000"))
            .unwrap();
        let u = usage(TokenCounts {
            input: 1_000_000,
            cached_input: 200_000,
            cache_write: 300_000,
            cache_write_long: 100_000,
            output: 50_000,
            reasoning: 20_000,
        });
        let c = CostBreakdown::compute(&price, &u, Currency::USD, "v1").unwrap();
        assert_eq!(c.input, d("0.5")); // 500k uncached at 1
        assert_eq!(c.cached_input, d("0.02")); // 200k at 0.1
        assert_eq!(c.cache_write, d("102")); // 200k at 10 + 100k at 1000
        assert_eq!(c.output, d("3")); // 30k at 100
        assert_eq!(c.reasoning, d("200")); // 20k at 10000
        assert_eq!(c.total, d("305.52"));
        assert!(c.priced);
        assert_eq!(c.catalog_version, "v1");
    }

    #[test]
    fn reasoning_without_own_price_is_billed_as_output_but_reported_apart() {
        let price = ModelPrice::per_million(d("1"), d("8")).unwrap();
        let u = usage(TokenCounts {
            output: 1000,
            reasoning: 600,
            ..TokenCounts::default()
        });
        let c = CostBreakdown::compute(&price, &u, Currency::USD, "v").unwrap();
        assert_eq!(c.output, d("0.0032"));
        assert_eq!(c.reasoning, d("0.0048"));
        assert_eq!(c.total, d("0.008")); // 1000 output tokens at 8 per million
    }

    #[test]
    fn overflow_is_an_error_not_a_rounded_cost() {
        let price = ModelPrice::per_million(Decimal::MAX, Decimal::ZERO).unwrap();
        let u = TokenUsage::new(1_000_000_000, 0).unwrap();
        let err = CostBreakdown::compute(&price, &u, Currency::USD, "v").unwrap_err();
        assert!(matches!(err, Error::Overflow(_)), "{err}");
    }

    #[test]
    fn serialises_amounts_as_strings() {
        let c = CostBreakdown::unpriced(Currency::EUR, "v");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["total"], "0");
        assert_eq!(json["currency"], "EUR");
        assert_eq!(json["priced"], false);
        let back: CostBreakdown = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
