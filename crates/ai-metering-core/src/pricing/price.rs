//! [`ModelPrice`]: what one model charges per million tokens of each class.

use rust_decimal::Decimal;

use crate::error::{Error, Result};

use super::exact;

/// The prices of one model, per **million** tokens, in the currency of the catalog holding it.
///
/// `input` and `output` are required. Every other class is optional and falls back as the
/// providers bill it when they publish no separate price:
///
/// | class | price when not set |
/// |---|---|
/// | cached input (cache reads) | the input price |
/// | cache write (any lifetime) | the input price |
/// | long-lived (one hour) cache write | the cache-write price |
/// | reasoning | the output price |
///
/// Prices are never negative: every constructor and setter checks it, so a `ModelPrice` can
/// only produce costs of zero or more.
///
/// ```
/// use ai_metering_core::pricing::ModelPrice;
/// use rust_decimal::Decimal;
///
/// // gpt-4o-mini: $0.15 input, $0.60 output, $0.075 cached input per million tokens.
/// let price = ModelPrice::per_million(Decimal::new(15, 2), Decimal::new(60, 2))?
///     .with_cached_input(Decimal::new(75, 3))?;
/// assert_eq!(price.effective_cached_input(), Decimal::new(75, 3));
/// assert_eq!(price.effective_cache_write(), Decimal::new(15, 2)); // no own price: input's
/// assert!(ModelPrice::per_million(Decimal::NEGATIVE_ONE, Decimal::ONE).is_err());
/// # Ok::<(), ai_metering_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelPrice {
    input: Decimal,
    output: Decimal,
    cached_input: Option<Decimal>,
    cache_write: Option<Decimal>,
    cache_write_long: Option<Decimal>,
    reasoning: Option<Decimal>,
}

impl ModelPrice {
    /// A price of `input` per million input tokens and `output` per million output tokens.
    ///
    /// ```
    /// use ai_metering_core::pricing::ModelPrice;
    /// use rust_decimal::Decimal;
    ///
    /// let gpt_4o = ModelPrice::per_million(Decimal::new(250, 2), Decimal::from(10))?;
    /// assert_eq!(gpt_4o.input(), Decimal::new(250, 2));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a price is negative.
    pub fn per_million(input: Decimal, output: Decimal) -> Result<Self> {
        Ok(Self {
            input: non_negative("input", input)?,
            output: non_negative("output", output)?,
            cached_input: None,
            cache_write: None,
            cache_write_long: None,
            reasoning: None,
        })
    }

    /// A price given per **thousand** tokens, as per-1k configs write them;
    /// stored exactly as the per-million equivalent (x 1000).
    ///
    /// ```
    /// use ai_metering_core::pricing::ModelPrice;
    /// use rust_decimal::Decimal;
    ///
    /// // gpt-4o-mini at $0.00015 / $0.0006 per 1k tokens is $0.15 / $0.60 per million.
    /// let price = ModelPrice::per_thousand(Decimal::new(15, 5), Decimal::new(6, 4))?;
    /// assert_eq!(price.input(), Decimal::new(15, 2));
    /// assert_eq!(price.output(), Decimal::new(6, 1));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a price is negative, [`Error::Overflow`] when it is too
    /// large to be multiplied by 1000.
    pub fn per_thousand(input: Decimal, output: Decimal) -> Result<Self> {
        Self::per_million(
            exact::times_power_of_ten(input, 3)?,
            exact::times_power_of_ten(output, 3)?,
        )
    }

    /// Sets the price of cached input tokens (cache reads).
    ///
    /// ```
    /// # use ai_metering_core::pricing::ModelPrice;
    /// # use rust_decimal::Decimal;
    /// let price = ModelPrice::per_million(Decimal::from(3), Decimal::from(15))?
    ///     .with_cached_input(Decimal::new(3, 1))?;
    /// assert_eq!(price.cached_input(), Some(Decimal::new(3, 1)));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the price is negative.
    pub fn with_cached_input(mut self, price: Decimal) -> Result<Self> {
        self.cached_input = Some(non_negative("cached input", price)?);
        Ok(self)
    }

    /// Sets the price of cache-write tokens (for Anthropic, the five-minute write price).
    ///
    /// ```
    /// # use ai_metering_core::pricing::ModelPrice;
    /// # use rust_decimal::Decimal;
    /// let price = ModelPrice::per_million(Decimal::from(3), Decimal::from(15))?
    ///     .with_cache_write(Decimal::new(375, 2))?;
    /// assert_eq!(price.effective_cache_write_long(), Decimal::new(375, 2));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the price is negative.
    pub fn with_cache_write(mut self, price: Decimal) -> Result<Self> {
        self.cache_write = Some(non_negative("cache write", price)?);
        Ok(self)
    }

    /// Sets the price of long-lived (one hour) cache-write tokens.
    ///
    /// ```
    /// # use ai_metering_core::pricing::ModelPrice;
    /// # use rust_decimal::Decimal;
    /// let price = ModelPrice::per_million(Decimal::from(3), Decimal::from(15))?
    ///     .with_cache_write(Decimal::new(375, 2))?
    ///     .with_cache_write_long(Decimal::from(6))?;
    /// assert_eq!(price.effective_cache_write_long(), Decimal::from(6));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the price is negative.
    pub fn with_cache_write_long(mut self, price: Decimal) -> Result<Self> {
        self.cache_write_long = Some(non_negative("long cache write", price)?);
        Ok(self)
    }

    /// Sets the price of reasoning tokens, for models that bill them apart from other output.
    ///
    /// ```
    /// # use ai_metering_core::pricing::ModelPrice;
    /// # use rust_decimal::Decimal;
    /// let price = ModelPrice::per_million(Decimal::ONE, Decimal::from(4))?
    ///     .with_reasoning(Decimal::from(3))?;
    /// assert_eq!(price.effective_reasoning(), Decimal::from(3));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the price is negative.
    pub fn with_reasoning(mut self, price: Decimal) -> Result<Self> {
        self.reasoning = Some(non_negative("reasoning", price)?);
        Ok(self)
    }

    /// Price per million input tokens that are neither cache reads nor cache writes.
    pub fn input(&self) -> Decimal {
        self.input
    }

    /// Price per million output tokens.
    pub fn output(&self) -> Decimal {
        self.output
    }

    /// The model's own cached-input price, if it has one.
    pub fn cached_input(&self) -> Option<Decimal> {
        self.cached_input
    }

    /// The model's own cache-write price, if it has one.
    pub fn cache_write(&self) -> Option<Decimal> {
        self.cache_write
    }

    /// The model's own long-lived cache-write price, if it has one.
    pub fn cache_write_long(&self) -> Option<Decimal> {
        self.cache_write_long
    }

    /// The model's own reasoning price, if it has one.
    pub fn reasoning(&self) -> Option<Decimal> {
        self.reasoning
    }

    /// The price cached input tokens are billed at: their own, else the input price.
    pub fn effective_cached_input(&self) -> Decimal {
        self.cached_input.unwrap_or(self.input)
    }

    /// The price cache writes are billed at: their own, else the input price.
    pub fn effective_cache_write(&self) -> Decimal {
        self.cache_write.unwrap_or(self.input)
    }

    /// The price long-lived cache writes are billed at: their own, else the cache-write price.
    pub fn effective_cache_write_long(&self) -> Decimal {
        self.cache_write_long
            .unwrap_or_else(|| self.effective_cache_write())
    }

    /// The price reasoning tokens are billed at: their own, else the output price.
    pub fn effective_reasoning(&self) -> Decimal {
        self.reasoning.unwrap_or(self.output)
    }

    /// A price from values already known to be non-negative (the built-in table, whose
    /// literals cannot carry a sign).
    pub(crate) fn from_trusted_parts(
        input: Decimal,
        output: Decimal,
        cached_input: Option<Decimal>,
        cache_write: Option<Decimal>,
        cache_write_long: Option<Decimal>,
    ) -> Self {
        Self {
            input,
            output,
            cached_input,
            cache_write,
            cache_write_long,
            reasoning: None,
        }
    }
}

fn non_negative(class: &str, price: Decimal) -> Result<Decimal> {
    if price.is_sign_negative() && !price.is_zero() {
        Err(Error::InvalidInput(format!(
            "the {class} price cannot be negative, got {price}"
        )))
    } else {
        Ok(price)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn unset_classes_fall_back_as_documented() {
        let bare = ModelPrice::per_million(d("3"), d("15")).unwrap();
        assert_eq!(bare.effective_cached_input(), d("3"));
        assert_eq!(bare.effective_cache_write(), d("3"));
        assert_eq!(bare.effective_cache_write_long(), d("3"));
        assert_eq!(bare.effective_reasoning(), d("15"));
        assert_eq!(bare.cached_input(), None);

        let full = bare
            .with_cached_input(d("0.3"))
            .unwrap()
            .with_cache_write(d("3.75"))
            .unwrap()
            .with_cache_write_long(d("6"))
            .unwrap()
            .with_reasoning(d("20"))
            .unwrap();
        assert_eq!(full.effective_cached_input(), d("0.3"));
        assert_eq!(full.effective_cache_write(), d("3.75"));
        assert_eq!(full.effective_cache_write_long(), d("6"));
        assert_eq!(full.effective_reasoning(), d("20"));
    }

    #[test]
    fn negative_prices_are_rejected_everywhere() {
        let base = ModelPrice::per_million(d("1"), d("2")).unwrap();
        let minus = d("-0.01");
        assert!(ModelPrice::per_million(minus, d("1")).is_err());
        assert!(ModelPrice::per_million(d("1"), minus).is_err());
        assert!(ModelPrice::per_thousand(minus, d("1")).is_err());
        assert!(base.clone().with_cached_input(minus).is_err());
        assert!(base.clone().with_cache_write(minus).is_err());
        assert!(base.clone().with_cache_write_long(minus).is_err());
        let err = base.clone().with_reasoning(minus).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
        assert!(err.to_string().contains("reasoning"), "{err}");
        // Zero (even a negative zero) is a valid, free price.
        assert!(ModelPrice::per_million(d("-0"), Decimal::ZERO).is_ok());
    }

    #[test]
    fn per_thousand_is_exactly_a_thousandth() {
        let p = ModelPrice::per_thousand(d("0.00015"), d("0.0006")).unwrap();
        assert_eq!(p.input().to_string(), "0.15");
        assert_eq!(p.output().to_string(), "0.6");
        assert!(ModelPrice::per_thousand(Decimal::MAX, Decimal::ONE).is_err());
    }
}
