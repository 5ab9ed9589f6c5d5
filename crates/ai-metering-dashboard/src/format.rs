//! Text for people: numbers with separators, money rounded for display, dates, and
//! percent-encoded link parts. Integer and decimal arithmetic only.

use ai_metering_core::{Billable, Currency};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

/// `1234567` -> `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1234567` -> `1.2M`, for chart axes.
pub(crate) fn compact(n: u64) -> String {
    let (unit, suffix) = match n {
        0..1_000 => return n.to_string(),
        1_000..1_000_000 => (1_000, "k"),
        1_000_000..1_000_000_000 => (1_000_000, "M"),
        _ => (1_000_000_000, "B"),
    };
    let tenths = n / (unit / 10);
    if tenths.is_multiple_of(10) || tenths >= 1_000 {
        format!("{}{suffix}", tenths / 10)
    } else {
        format!("{}.{}{suffix}", tenths / 10, tenths % 10)
    }
}

/// An amount in the currency's minor units (2 decimals for USD, 0 for JPY), rounded half
/// away from zero for display only, with its currency: `12.5` -> `12.50 USD`. A non-zero
/// amount that rounds to zero reads `< 0.01 USD`, never `0.00 USD`. The JSON API and the CSV
/// export carry the exact amounts.
pub(crate) fn money(amount: Decimal, currency: Currency) -> String {
    let dp = currency.minor_unit_digits();
    let mut shown = amount.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    if shown.is_zero() && !amount.is_zero() {
        let sign = if amount.is_sign_negative() { "-" } else { "" };
        let mut unit = Decimal::new(1, dp);
        unit.rescale(dp);
        return format!("< {sign}{unit} {currency}");
    }
    shown.rescale(dp);
    format!("{shown} {currency}")
}

/// A percentage as given (already rounded to 2 places by the limit evaluation): `85.5%`.
pub(crate) fn percent(p: Decimal) -> String {
    format!("{}%", p.normalize())
}

/// `2024-05-03 14:05 UTC`.
pub(crate) fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2024-05-03`.
pub(crate) fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Percent-encodes one path segment: everything but `A-Z a-z 0-9 - . _ ~`.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of a billable's page or API document under `base` (`{prefix}` or
/// `{prefix}/api`).
pub(crate) fn billable_path(base: &str, billable: &Billable) -> String {
    format!(
        "{base}/billables/{}/{}",
        path_segment(&billable.kind),
        path_segment(&billable.id)
    )
}

/// The share of `part` in `whole` in percent, one decimal place; 0 when `whole` is 0.
pub(crate) fn share(part: u64, whole: u64) -> Decimal {
    if whole == 0 {
        return Decimal::ZERO;
    }
    Decimal::from(part)
        .checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|x| x.checked_div(Decimal::from(whole)))
        .unwrap_or(Decimal::ZERO)
        .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
}

/// A share as text with exactly one decimal place: `26.0%`.
pub(crate) fn share_text(part: u64, whole: u64) -> String {
    let mut s = share(part, whole);
    s.rescale(1);
    format!("{s}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn compact_numbers_for_axes() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(1_000), "1k");
        assert_eq!(compact(1_250), "1.2k");
        assert_eq!(compact(2_500_000), "2.5M");
        assert_eq!(compact(999_999), "999k");
        assert_eq!(compact(u64::MAX), "18446744073B");
    }

    #[test]
    fn money_is_rounded_for_display_only() {
        let usd = Currency::USD;
        assert_eq!(money(Decimal::new(125, 1), usd), "12.50 USD");
        assert_eq!(money(Decimal::new(123_456, 6), usd), "0.12 USD");
        assert_eq!(money(Decimal::new(125, 3), usd), "0.13 USD");
        assert_eq!(money(Decimal::new(3, 8), usd), "< 0.01 USD");
        assert_eq!(money(Decimal::new(-3, 8), usd), "< -0.01 USD");
        assert_eq!(money(Decimal::ZERO, usd), "0.00 USD");
        // Every amount in one currency has the same number of decimals: its minor units.
        let jpy = Currency::new("JPY").unwrap();
        assert_eq!(money(Decimal::new(12_345, 1), jpy), "1235 JPY");
        assert_eq!(money(Decimal::new(4, 1), jpy), "< 1 JPY");
        let bhd = Currency::new("BHD").unwrap();
        assert_eq!(money(Decimal::from(2), bhd), "2.000 BHD");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("acme-1"), "acme-1");
        assert_eq!(path_segment("a/b c:é"), "a%2Fb%20c%3A%C3%A9");
        assert_eq!(
            billable_path("/p", &Billable::new("team", "x/y")),
            "/p/billables/team/x%2Fy"
        );
    }

    #[test]
    fn shares_are_one_decimal_percentages() {
        assert_eq!(share(1, 3), Decimal::new(333, 1));
        assert_eq!(share(5, 0), Decimal::ZERO);
        assert_eq!(share(u64::MAX, u64::MAX), Decimal::ONE_HUNDRED);
        assert_eq!(share_text(26, 100), "26.0%");
        assert_eq!(share_text(1, 3), "33.3%");
    }
}
