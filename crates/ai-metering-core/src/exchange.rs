//! Currency conversion from a configured [`RateTable`].
//!
//! Rates are configured one entry per pair, keyed `from_to` (`usd_eur = 0.92` means 1 USD is 0.92 EUR). A pair that is not configured
//! is looked up the other way round and inverted (`eur_usd = 1.08` also converts USD to EUR),
//! and, when a *pivot* currency is set, through the pivot (`gbp -> usd -> eur`).
//!
//! A pair that cannot be converted is an error, [`Error::NoExchangeRate`], never a silent 1:1
//! conversion.
//!
//! # Rounding
//!
//! Conversion keeps full precision: a direct rate multiplies exactly (up to `Decimal`'s 28
//! significant digits, beyond which the product is rounded half-even by `rust_decimal`); an
//! inverted rate divides the amount by the configured rate (never by a pre-computed
//! reciprocal, so `eur_usd = 1.25` turns 10 USD into exactly 8 EUR), and a quotient that does
//! not terminate is rounded at 28 significant digits. Nothing is rounded to minor units here:
//! round with [`Money::round_to_minor_units`] or [`Money::to_minor_units`] when billing.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::money::{Currency, Money};

/// Configured exchange rates; see the [module docs](self).
///
/// ```
/// use ai_metering_core::{Currency, Money, RateTable};
/// use rust_decimal::Decimal;
///
/// let eur = Currency::EUR;
/// let rates = RateTable::new().with_rate(Currency::USD, eur, Decimal::new(92, 2)).unwrap();
/// let ten_usd = Money::new(Decimal::TEN, Currency::USD);
/// assert_eq!(rates.convert(ten_usd, eur).unwrap(), Money::new(Decimal::new(92, 1), eur));
/// // The inverse pair is derived: 9.2 EUR is 10 USD.
/// let back = rates.convert(Money::new(Decimal::new(92, 1), eur), Currency::USD).unwrap();
/// assert_eq!(back.amount, Decimal::TEN);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateTable {
    rates: BTreeMap<(Currency, Currency), Decimal>,
    pivot: Option<Currency>,
}

/// How a rate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Same,
    Direct(Decimal),
    Inverse(Decimal),
}

impl RateTable {
    /// An empty table: only same-currency conversions succeed.
    ///
    /// ```
    /// # use ai_metering_core::{Currency, RateTable};
    /// assert!(RateTable::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the rate of `from -> to`: one unit of `from` is `rate` units of `to`.
    ///
    /// ```
    /// # use ai_metering_core::{Currency, RateTable};
    /// # use rust_decimal::Decimal;
    /// let rates = RateTable::new().with_rate(Currency::USD, Currency::EUR, Decimal::ONE).unwrap();
    /// assert_eq!(rates.len(), 1);
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a rate that is not positive, or a pair of one currency.
    pub fn with_rate(mut self, from: Currency, to: Currency, rate: Decimal) -> Result<Self> {
        self.insert(from, to, rate)?;
        Ok(self)
    }

    /// Converts through `pivot` when no rate (direct or inverse) links two currencies.
    ///
    /// ```
    /// # use ai_metering_core::{Currency, RateTable};
    /// let rates = RateTable::new().with_pivot(Currency::USD);
    /// assert_eq!(rates.pivot(), Some(Currency::USD));
    /// ```
    pub fn with_pivot(mut self, pivot: Currency) -> Self {
        self.pivot = Some(pivot);
        self
    }

    /// Reads a configuration of entries keyed `from_to` (case-insensitive, such as
    /// `usd_eur`), each a rate.
    ///
    /// ```
    /// # use ai_metering_core::{Currency, RateTable};
    /// # use rust_decimal::Decimal;
    /// let rates = RateTable::from_pairs([("USD_JPY", Decimal::from(150))]).unwrap();
    /// assert_eq!(rates.rate(Currency::USD, Currency::new("jpy").unwrap()).unwrap(), Decimal::from(150));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a key that is not two currency codes joined by `_`, or a
    /// rate that is not positive.
    pub fn from_pairs<K: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, Decimal)>,
    ) -> Result<Self> {
        let mut table = Self::new();
        for (key, rate) in pairs {
            let key = key.as_ref();
            let (from, to) = key.split_once('_').ok_or_else(|| {
                Error::InvalidInput(format!(
                    "exchange rate key {key:?} is not of the form FROM_TO (such as usd_eur)"
                ))
            })?;
            table.insert(Currency::new(from)?, Currency::new(to)?, rate)?;
        }
        Ok(table)
    }

    fn insert(&mut self, from: Currency, to: Currency, rate: Decimal) -> Result<()> {
        if from == to {
            return Err(Error::InvalidInput(format!(
                "an exchange rate from {from} to itself makes no sense"
            )));
        }
        if rate <= Decimal::ZERO {
            return Err(Error::InvalidInput(format!(
                "the exchange rate {from}_{to} must be positive, not {rate}"
            )));
        }
        self.rates.insert((from, to), rate);
        Ok(())
    }

    /// The number of configured pairs.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// True when no pair is configured.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The pivot currency, if any.
    pub fn pivot(&self) -> Option<Currency> {
        self.pivot
    }

    fn leg(&self, from: Currency, to: Currency) -> Option<Leg> {
        if from == to {
            return Some(Leg::Same);
        }
        if let Some(rate) = self.rates.get(&(from, to)) {
            return Some(Leg::Direct(*rate));
        }
        self.rates.get(&(to, from)).map(|rate| Leg::Inverse(*rate))
    }

    fn legs(&self, from: Currency, to: Currency) -> Result<Vec<Leg>> {
        if let Some(leg) = self.leg(from, to) {
            return Ok(vec![leg]);
        }
        if let Some(pivot) = self.pivot
            && let (Some(first), Some(second)) = (self.leg(from, pivot), self.leg(pivot, to))
        {
            return Ok(vec![first, second]);
        }
        Err(Error::NoExchangeRate {
            from: from.to_string(),
            to: to.to_string(),
        })
    }

    /// The rate of `from -> to`: how many units of `to` one unit of `from` is worth.
    ///
    /// # Errors
    /// [`Error::NoExchangeRate`] when the pair cannot be converted; [`Error::Overflow`].
    pub fn rate(&self, from: Currency, to: Currency) -> Result<Decimal> {
        let mut rate = Decimal::ONE;
        for leg in self.legs(from, to)? {
            rate = apply(rate, leg)?;
        }
        Ok(rate)
    }

    /// `money` in currency `to`, at full precision (see [Rounding](self#rounding)).
    ///
    /// # Errors
    /// [`Error::NoExchangeRate`] when the pair cannot be converted; [`Error::Overflow`].
    pub fn convert(&self, money: Money, to: Currency) -> Result<Money> {
        let mut amount = money.amount;
        for leg in self.legs(money.currency, to)? {
            amount = apply(amount, leg)?;
        }
        Ok(Money::new(amount, to))
    }
}

fn apply(amount: Decimal, leg: Leg) -> Result<Decimal> {
    match leg {
        Leg::Same => Some(amount),
        Leg::Direct(rate) => amount.checked_mul(rate),
        // A configured rate is positive (checked on insert), so the division is defined.
        Leg::Inverse(rate) => amount.checked_div(rate),
    }
    .ok_or(Error::Overflow("a currency conversion"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::new(code).unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn same_currency_needs_no_rate() {
        let m = Money::new(d("1.2345678"), Currency::USD);
        assert_eq!(RateTable::new().convert(m, Currency::USD).unwrap(), m);
    }

    #[test]
    fn a_missing_rate_is_an_error_never_one_to_one() {
        let rates = RateTable::from_pairs([("usd_eur", d("0.9"))]).unwrap();
        let err = rates
            .convert(Money::new(Decimal::TEN, Currency::USD), c("GBP"))
            .unwrap_err();
        match err {
            Error::NoExchangeRate { from, to } => {
                assert_eq!((from.as_str(), to.as_str()), ("USD", "GBP"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err_text(&rates, "GBP", "EUR").contains("GBP to EUR"));
    }

    fn err_text(rates: &RateTable, from: &str, to: &str) -> String {
        rates.rate(c(from), c(to)).unwrap_err().to_string()
    }

    #[test]
    fn direct_rates_multiply_exactly() {
        let rates = RateTable::from_pairs([("USD_EUR", d("0.923456"))]).unwrap();
        let out = rates
            .convert(Money::new(d("0.000123"), Currency::USD), Currency::EUR)
            .unwrap();
        assert_eq!(out, Money::new(d("0.000113585088"), Currency::EUR));
    }

    #[test]
    fn inverse_rates_divide_by_the_configured_rate() {
        let rates = RateTable::from_pairs([("eur_usd", d("1.25"))]).unwrap();
        let out = rates
            .convert(Money::new(Decimal::TEN, Currency::USD), Currency::EUR)
            .unwrap();
        assert_eq!(out.amount, d("8"));
        assert_eq!(rates.rate(Currency::USD, Currency::EUR).unwrap(), d("0.8"));
        // A direct entry wins over the inverse of the other direction.
        let both = rates
            .with_rate(Currency::USD, Currency::EUR, d("0.81"))
            .unwrap();
        assert_eq!(both.rate(Currency::USD, Currency::EUR).unwrap(), d("0.81"));
    }

    #[test]
    fn non_terminating_inverse_keeps_28_significant_digits() {
        let rates = RateTable::from_pairs([("eur_usd", d("3"))]).unwrap();
        let out = rates
            .convert(Money::new(Decimal::ONE, Currency::USD), Currency::EUR)
            .unwrap();
        assert_eq!(out.amount.to_string(), "0.3333333333333333333333333333");
    }

    #[test]
    fn pivot_converts_through_a_third_currency_only_when_asked() {
        let rates = RateTable::from_pairs([("gbp_usd", d("1.25")), ("usd_jpy", d("150"))]).unwrap();
        assert!(matches!(
            rates.rate(c("GBP"), c("JPY")),
            Err(Error::NoExchangeRate { .. })
        ));
        let rates = rates.with_pivot(Currency::USD);
        let out = rates
            .convert(Money::new(d("2"), c("GBP")), c("JPY"))
            .unwrap();
        assert_eq!(out, Money::new(d("375"), c("JPY")));
        // And back, through both inverses.
        let back = rates
            .convert(Money::new(d("375"), c("JPY")), c("GBP"))
            .unwrap();
        assert_eq!(back.amount, d("2"));
    }

    #[test]
    fn bad_configuration_is_rejected() {
        for (key, rate) in [
            ("usdeur", "1"),
            ("usd_eu", "1"),
            ("usd_usd", "1"),
            ("usd_eur", "0"),
            ("usd_eur", "-1"),
        ] {
            assert!(
                RateTable::from_pairs([(key, d(rate))]).is_err(),
                "{key} = {rate}"
            );
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let rates = RateTable::from_pairs([("usd_eur", Decimal::MAX)]).unwrap();
        assert!(matches!(
            rates.convert(Money::new(Decimal::MAX, Currency::USD), Currency::EUR),
            Err(Error::Overflow(_))
        ));
    }
}
