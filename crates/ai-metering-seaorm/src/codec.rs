//! Converting core values to column values and back: exact money text, nano-units, UTC
//! instants, token counts, JSON objects.

use std::str::FromStr;

use ai_metering_core::Currency;
use ai_metering_core::store::{StoreError, StoreErrorKind, StoreResult};
use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;

/// Nano-units per currency unit.
const NANOS_PER_UNIT: u32 = 9;

/// The exact text of an amount: `Decimal`'s own rendering, scale included, so it reads back
/// identical (`0.00000015` stays `0.00000015`).
pub(crate) fn money_text(amount: Decimal) -> String {
    amount.to_string()
}

/// Parses a money column.
pub(crate) fn money_from_text(column: &str, text: &str) -> StoreResult<Decimal> {
    Decimal::from_str(text).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("column {column} holds {text:?}, which is not an exact decimal: {e}"),
        )
    })
}

/// The amount in nano-units, when that is exact and fits an `i64`.
///
/// ```text
/// 0.00000015 -> Some(150); 0.0000000375 -> None (sub-nano); 1e12 -> None (too large)
/// ```
pub(crate) fn nano_units(amount: Decimal) -> Option<i64> {
    let n = amount.normalize();
    let scale = n.scale();
    if scale > NANOS_PER_UNIT {
        return None;
    }
    let factor = 10_i128.checked_pow(NANOS_PER_UNIT - scale)?;
    n.mantissa()
        .checked_mul(factor)
        .and_then(|v| i64::try_from(v).ok())
}

/// An amount from the text of an SQL sum of nano-units (an integer of any size).
pub(crate) fn from_nano_sum_text(text: &str) -> StoreResult<Decimal> {
    let trimmed = text.trim();
    // PostgreSQL may render a NUMERIC sum as `123` or `123.0`: drop a zero fraction.
    let integer = trimmed.split_once('.').map_or(trimmed, |(int, frac)| {
        if frac.bytes().all(|b| b == b'0') {
            int
        } else {
            trimmed
        }
    });
    let nanos: i128 = integer.parse().map_err(|e| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("the database returned the sum {text:?}, not an integer: {e}"),
        )
    })?;
    Decimal::try_from_i128_with_scale(nanos, NANOS_PER_UNIT).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("a cost sum of {nanos} nano-units does not fit a decimal: {e}"),
        )
    })
}

/// An instant as stored: UTC, truncated to microseconds (PostgreSQL's precision), so that
/// both backends store and compare the same value.
pub(crate) fn instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A token count or limit as a `BIGINT`.
pub(crate) fn to_i64(what: &str, value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("{what} {value} does not fit a BIGINT column"),
        )
    })
}

/// A `BIGINT` column holding a count.
pub(crate) fn to_u64(column: &str, value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("column {column} holds the negative count {value}"),
        )
    })
}

/// A currency column.
pub(crate) fn currency(text: &str) -> StoreResult<Currency> {
    Currency::new(text).map_err(|e| StoreError::new(StoreErrorKind::Invalid, e.to_string()))
}

/// A JSON object as text.
pub(crate) fn json_text(map: &serde_json::Map<String, serde_json::Value>) -> StoreResult<String> {
    serde_json::to_string(map).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("metadata cannot be stored: {e}"),
        )
    })
}

/// A JSON object column; an empty text reads as an empty object.
pub(crate) fn json_from_text(
    column: &str,
    text: &str,
) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    serde_json::from_str(text).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("column {column} does not hold a JSON object: {e}"),
        )
    })
}

/// An error for a value the store refuses before it reaches the database.
pub(crate) fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Invalid, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn money_text_round_trips_with_its_scale() {
        for s in [
            "0.00000015",
            "12345678901234.123456789012",
            "0",
            "-3.50",
            "79228162514264337593543950335",
        ] {
            let back = money_from_text("x", &money_text(d(s))).unwrap();
            assert_eq!(back.to_string(), s);
        }
        assert!(money_from_text("x", "1e-3x").is_err());
    }

    #[test]
    fn nano_units_are_exact_or_absent() {
        assert_eq!(nano_units(d("0.00000015")), Some(150));
        assert_eq!(nano_units(d("1.5")), Some(1_500_000_000));
        assert_eq!(nano_units(d("-0.000000001")), Some(-1));
        assert_eq!(nano_units(d("0.0000000375")), None);
        assert_eq!(nano_units(d("10000000000")), None);
        assert_eq!(nano_units(d("9223372036.854775807")), Some(i64::MAX));
    }

    #[test]
    fn nano_sums_parse_from_either_backend() {
        assert_eq!(from_nano_sum_text("150").unwrap(), d("0.00000015"));
        assert_eq!(from_nano_sum_text("150.000").unwrap(), d("0.00000015"));
        assert_eq!(
            from_nano_sum_text("92233720368547758070").unwrap(),
            d("92233720368.54775807")
        );
        assert!(from_nano_sum_text("1.5").is_err());
    }

    #[test]
    fn instants_keep_microseconds() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(instant(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
