//! Exact decimal arithmetic for prices and costs: every result is exact, or an error.
//!
//! `rust_decimal`'s own `checked_mul` and `checked_add` quietly round when a result needs
//! more than 28 decimal places or 96 bits of mantissa. A cost must never be rounded behind the
//! caller's back, so the few operations pricing needs are done here on the raw `i128` mantissa
//! and scale, and only turned back into a [`Decimal`] when that loses nothing.

use rust_decimal::Decimal;

use crate::error::{Error, Result};

/// The cost of `tokens` tokens at `price_per_million`, exactly.
///
/// # Errors
/// [`Error::Overflow`] when the exact result cannot be represented as a [`Decimal`].
pub(crate) fn cost_of_tokens(tokens: u64, price_per_million: Decimal) -> Result<Decimal> {
    let mantissa = price_per_million
        .mantissa()
        .checked_mul(i128::from(tokens))
        .ok_or(Error::Overflow("a cost"))?;
    // Dividing by one million is adding 6 to the scale.
    to_decimal(mantissa, price_per_million.scale() + 6).ok_or(Error::Overflow("a cost"))
}

/// `value` multiplied by `10^power`, exactly (per token to per million, per 1k to per million).
///
/// # Errors
/// [`Error::Overflow`] when the result does not fit a [`Decimal`].
pub(crate) fn times_power_of_ten(value: Decimal, power: u32) -> Result<Decimal> {
    let scale = value.scale();
    let (mantissa, scale) = if scale >= power {
        (value.mantissa(), scale - power)
    } else {
        let factor = pow10(power - scale).ok_or(Error::Overflow("a price"))?;
        let mantissa = value
            .mantissa()
            .checked_mul(factor)
            .ok_or(Error::Overflow("a price"))?;
        (mantissa, 0)
    };
    to_decimal(mantissa, scale).ok_or(Error::Overflow("a price"))
}

/// The exact sum of `values`.
///
/// # Errors
/// [`Error::Overflow`] when the exact sum cannot be represented as a [`Decimal`].
pub(crate) fn sum(values: &[Decimal]) -> Result<Decimal> {
    let scale = values.iter().map(Decimal::scale).max().unwrap_or(0);
    let mut total: i128 = 0;
    for value in values {
        let factor = pow10(scale - value.scale()).ok_or(Error::Overflow("a sum of costs"))?;
        let aligned = value
            .mantissa()
            .checked_mul(factor)
            .ok_or(Error::Overflow("a sum of costs"))?;
        total = total
            .checked_add(aligned)
            .ok_or(Error::Overflow("a sum of costs"))?;
    }
    to_decimal(total, scale).ok_or(Error::Overflow("a sum of costs"))
}

/// `10^power` as an `i128`, or `None` when it does not fit.
fn pow10(power: u32) -> Option<i128> {
    10_i128.checked_pow(power)
}

/// `mantissa * 10^-scale` as a normalised [`Decimal`], dropping only trailing zeros; `None`
/// when that is not enough to fit Decimal's 96-bit mantissa and 28-digit scale.
fn to_decimal(mut mantissa: i128, mut scale: u32) -> Option<Decimal> {
    loop {
        if scale <= Decimal::MAX_SCALE
            && let Ok(value) = Decimal::try_from_i128_with_scale(mantissa, scale)
        {
            return Some(value.normalize());
        }
        if scale == 0 || mantissa % 10 != 0 {
            return None;
        }
        mantissa /= 10;
        scale -= 1;
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
    fn one_token_is_exact() {
        assert_eq!(
            cost_of_tokens(1, d("0.15")).unwrap().to_string(),
            "0.00000015"
        );
        assert_eq!(cost_of_tokens(0, d("0.15")).unwrap(), Decimal::ZERO);
        assert_eq!(
            cost_of_tokens(400, d("0.075")).unwrap().to_string(),
            "0.00003"
        );
    }

    #[test]
    fn results_that_would_round_are_errors() {
        // 28 decimal places per million would need 34 per token: not representable exactly.
        let tiny = Decimal::new(1, 28);
        assert!(matches!(cost_of_tokens(1, tiny), Err(Error::Overflow(_))));
        // Enough trailing zeros make it exact again: 10^6 tokens at 1e-28 per million.
        assert_eq!(cost_of_tokens(1_000_000, tiny).unwrap(), tiny);
        assert!(cost_of_tokens(1_000_000_000, Decimal::MAX).is_err());
    }

    #[test]
    fn scaling_by_powers_of_ten() {
        assert_eq!(times_power_of_ten(d("0.00000015"), 6).unwrap(), d("0.15"));
        assert_eq!(
            times_power_of_ten(d("0.00015"), 3).unwrap().to_string(),
            "0.15"
        );
        assert_eq!(
            times_power_of_ten(d("2"), 6).unwrap().to_string(),
            "2000000"
        );
        assert!(times_power_of_ten(Decimal::MAX, 3).is_err());
    }

    #[test]
    fn sums_are_exact_across_scales() {
        let total = sum(&[d("0.00009"), d("0.00003"), d("0.0003"), Decimal::ZERO]).unwrap();
        assert_eq!(total.to_string(), "0.00042");
        assert_eq!(sum(&[]).unwrap(), Decimal::ZERO);
        // Decimal's own addition would round this sum to 28 significant digits.
        let big = Decimal::from(10_000_000_000_i64);
        let small = Decimal::new(1, 28);
        assert!(sum(&[big, small]).is_err());
        assert!(sum(&[Decimal::MAX, Decimal::ONE]).is_err());
    }
}
