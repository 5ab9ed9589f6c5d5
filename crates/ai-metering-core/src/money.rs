//! Exact money: [`Money`] is a [`Decimal`] amount with a [`Currency`].
//!
//! Amounts keep full precision (a single token of a cheap model costs a fraction of a
//! micro-dollar). Rounding to a currency's minor unit happens only where it is asked for, with
//! [`Money::round_to_minor_units`] (half away from zero, the usual commercial rule) or
//! [`Money::to_minor_units`] for billing exports.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An ISO 4217 currency code, stored upper-case (`USD`, `EUR`, `JPY`).
///
/// ```
/// use ai_metering_core::Currency;
/// let c: Currency = "usd".parse().unwrap();
/// assert_eq!(c.as_str(), "USD");
/// assert_eq!(c.minor_unit_digits(), 2);
/// assert_eq!(Currency::new("JPY").unwrap().minor_unit_digits(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Currencies whose smallest unit is the unit itself (no cents), per ISO 4217 and the list
/// payment processors such as Stripe publish.
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];
/// Currencies with three decimal places.
const THREE_DECIMAL: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

impl Currency {
    /// The US dollar, the currency providers publish their prices in.
    pub const USD: Currency = Currency(*b"USD");
    /// The euro.
    pub const EUR: Currency = Currency(*b"EUR");

    /// A currency from its three-letter code, case-insensitive.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless the code is three ASCII letters.
    pub fn new(code: &str) -> Result<Self> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(Error::InvalidInput(format!(
                "currency {code:?} is not a three-letter ISO 4217 code"
            )));
        }
        Ok(Self([
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ]))
    }

    /// The upper-case code.
    pub fn as_str(&self) -> &str {
        // Invariant: constructed only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// The number of decimal digits of the currency's minor unit (2 for USD, 0 for JPY, 3 for
    /// KWD).
    pub fn minor_unit_digits(&self) -> u32 {
        let code = self.as_str();
        if ZERO_DECIMAL.contains(&code) {
            0
        } else if THREE_DECIMAL.contains(&code) {
            3
        } else {
            2
        }
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self::USD
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

/// An exact amount of money in one currency.
///
/// ```
/// use ai_metering_core::{Currency, Money};
/// use rust_decimal::Decimal;
///
/// let a = Money::new(Decimal::new(105, 3), Currency::USD); // $0.105
/// assert_eq!(a.round_to_minor_units().amount, Decimal::new(11, 2)); // half-up: $0.11
/// assert_eq!(a.to_minor_units().unwrap(), 11); // cents
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The exact amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// `amount` of `currency`.
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Zero of `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    /// The sum of two amounts of the same currency.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] for different currencies, [`Error::Overflow`] on overflow.
    pub fn checked_add(self, other: Money) -> Result<Money> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(Error::Overflow("a sum of money"))?;
        Ok(Money::new(amount, self.currency))
    }

    /// The difference of two amounts of the same currency.
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] for different currencies, [`Error::Overflow`] on overflow.
    pub fn checked_sub(self, other: Money) -> Result<Money> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(Error::Overflow("a difference of money"))?;
        Ok(Money::new(amount, self.currency))
    }

    fn same_currency(&self, other: &Money) -> Result<()> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(Error::CurrencyMismatch {
                left: self.currency.to_string(),
                right: other.currency.to_string(),
            })
        }
    }

    /// The amount rounded to the currency's minor unit, half away from zero.
    pub fn round_to_minor_units(self) -> Money {
        let amount = self.amount.round_dp_with_strategy(
            self.currency.minor_unit_digits(),
            RoundingStrategy::MidpointAwayFromZero,
        );
        Money::new(amount, self.currency)
    }

    /// The amount as an integer count of minor units (cents for USD, yen for JPY), rounded half
    /// away from zero, never truncated. This is what payment APIs such as Stripe expect.
    ///
    /// # Errors
    /// [`Error::Overflow`] when the amount does not fit an `i64` of minor units.
    pub fn to_minor_units(self) -> Result<i64> {
        let scale = Decimal::from(10_i64.pow(self.currency.minor_unit_digits()));
        let rounded = self.round_to_minor_units().amount;
        let minor = rounded
            .checked_mul(scale)
            .ok_or(Error::Overflow("minor units"))?;
        i64::try_from(minor).map_err(|_| Error::Overflow("minor units"))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount.normalize(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        Money::new(s.parse().unwrap(), Currency::USD)
    }

    #[test]
    fn rounding_is_half_up_and_only_on_request() {
        assert_eq!(usd("0.125").round_to_minor_units(), usd("0.13"));
        assert_eq!(usd("0.124999").round_to_minor_units(), usd("0.12"));
        assert_eq!(usd("-0.125").round_to_minor_units(), usd("-0.13"));
        // Full precision is kept until asked.
        assert_eq!(usd("0.00000015").amount.to_string(), "0.00000015");
    }

    #[test]
    fn minor_units_never_truncate() {
        // Truncating (amount * 100 cast to an integer) would make 0.299 USD 29 cents.
        assert_eq!(usd("0.299").to_minor_units().unwrap(), 30);
        let yen = Money::new("1234.5".parse().unwrap(), Currency::new("jpy").unwrap());
        assert_eq!(yen.to_minor_units().unwrap(), 1235);
        let dinar = Money::new("1.2345".parse().unwrap(), Currency::new("KWD").unwrap());
        assert_eq!(dinar.to_minor_units().unwrap(), 1235);
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let eur = Money::new(Decimal::ONE, Currency::EUR);
        assert!(matches!(
            usd("1").checked_add(eur),
            Err(Error::CurrencyMismatch { .. })
        ));
        assert_eq!(usd("1").checked_add(usd("0.5")).unwrap(), usd("1.5"));
    }

    #[test]
    fn currency_codes_are_validated() {
        assert!(Currency::new("US").is_err());
        assert!(Currency::new("U$D").is_err());
        assert_eq!(Currency::new("eur").unwrap(), Currency::EUR);
        let json = serde_json::to_string(&usd("1.50")).unwrap();
        assert_eq!(json, r#"{"amount":"1.50","currency":"USD"}"#);
    }
}
