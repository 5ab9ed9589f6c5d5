//! The quota headers: the `X-Remaining-*` headers and the IETF
//! `RateLimit-Policy` / `RateLimit` fields.
//!
//! # The `X-Remaining-*` headers
//!
//! - `X-Remaining-Tokens`: an integer, or `unlimited` without a token limit;
//! - `X-Remaining-Cost`: a decimal with trailing zeros trimmed (`50`, `49.5`), or
//!   `unlimited` without a cost limit;
//! - `X-Usage-Percentage`: rounded to 2 decimals, trailing zeros trimmed (`0`, `85`,
//!   `33.33`).
//!
//! # The IETF fields (draft-ietf-httpapi-ratelimit-headers-11)
//!
//! Both are Structured Field Lists with one item per limit in force, named `"tokens"` and
//! `"cost"` (the names used in a 429 body's `violated-policies`):
//!
//! ```text
//! RateLimit-Policy: "tokens";q=10000;w=2678400;ai-metering-unit="tokens", "cost";q=50000000;w=2678400;ai-metering-unit="micro-USD"
//! RateLimit: "tokens";r=1500;t=86400, "cost";r=42000000;t=86400
//! ```
//!
//! `q` is the limit, `r` what remains, `w` the length of the period and `t` the seconds
//! until it resets, both in whole seconds (`t` rounded up, like `Retry-After`). Cost is
//! given in integer micro-units of the currency (a limit of 50 USD is `q=50000000`), named
//! by the vendor parameter `ai-metering-unit`, since the draft's registered quota units
//! (requests, bytes) fit neither tokens nor money. Integers are capped at the largest
//! Structured Field Integer (15 digits). A billable without limits gets no IETF fields.
//! No partition key (`pk`) is sent: it would disclose the billable's id.

use std::sync::{Mutex, PoisonError};

use ai_metering_core::limit::LimitCheck;
use ai_metering_core::{Currency, period::Period};
use chrono::{DateTime, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use rust_decimal::{Decimal, RoundingStrategy};

/// `X-Remaining-Tokens`.
pub const X_REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-remaining-tokens");
/// `X-Remaining-Cost`.
pub const X_REMAINING_COST: HeaderName = HeaderName::from_static("x-remaining-cost");
/// `X-Usage-Percentage`.
pub const X_USAGE_PERCENTAGE: HeaderName = HeaderName::from_static("x-usage-percentage");
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The largest Integer a Structured Field can carry (RFC 9651: at most 15 digits).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Which quota headers the layer adds to responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// The `X-Remaining-Tokens`, `X-Remaining-Cost` and `X-Usage-Percentage` headers.
    Original,
    /// The IETF `RateLimit-Policy` and `RateLimit` fields.
    Ietf,
    /// Both sets (the default).
    #[default]
    Both,
    /// No quota headers (`Retry-After` is still sent with a 429).
    None,
}

impl HeaderStyle {
    fn original(self) -> bool {
        matches!(self, Self::Original | Self::Both)
    }

    fn ietf(self) -> bool {
        matches!(self, Self::Ietf | Self::Both)
    }
}

/// The quota headers of one limit check, formatted once and copied into every response
/// that shows the check (the layer keeps them beside each cached status).
///
/// Everything but `RateLimit`'s `t` (whole seconds until the reset) is fixed by the check
/// and its period. `t` changes once a second, so the headers of a style are kept as a
/// whole map, with the instants between which its `t` holds, and rebuilt only when the
/// second changes. They are inserted into a response's map that has room for them (or that
/// already holds more headers than they are); otherwise the response starts from a copy of
/// that map (two allocations), which costs less than inserting into a map that must grow.
#[derive(Debug)]
pub(crate) struct QuotaHeaders {
    /// `X-Remaining-Tokens`, `X-Remaining-Cost` and `X-Usage-Percentage`.
    original: Vec<(HeaderName, HeaderValue)>,
    /// `RateLimit-Policy` and `RateLimit`; `None` without any limit.
    ietf: Option<IetfFields>,
    /// When the period resets, for `t` and `Retry-After`.
    reset_at: Option<DateTime<Utc>>,
    /// The last map built, for one style and one value of `t`.
    rendered: Mutex<Option<Rendered>>,
}

#[derive(Debug)]
struct IetfFields {
    policy: HeaderValue,
    /// One `RateLimit` item per limit, without its `t` parameter: `"tokens";r=1500`.
    items: Vec<String>,
}

/// The headers of one style, as of the instants in `[from, until)`.
#[derive(Debug)]
struct Rendered {
    style: HeaderStyle,
    /// The first instant at which `map` holds (`None`: since ever).
    from: Option<DateTime<Utc>>,
    /// The first instant at which `map` no longer holds (`None`: never).
    until: Option<DateTime<Utc>>,
    map: HeaderMap,
}

impl Rendered {
    fn holds(&self, style: HeaderStyle, now: DateTime<Utc>) -> bool {
        self.style == style
            && self.from.is_none_or(|from| from <= now)
            && self.until.is_none_or(|until| now < until)
    }
}

/// Room in a rendered map's index for the headers a response adds after the layer's
/// (`Content-Length`, and what outer layers add): a copy keeps the index's size, so they do
/// not make it rehash. (A copy's entries are only as many as the map's, so the route's own
/// headers still grow them once; docs/PERFORMANCE.md has what that costs.)
const ROOM_AFTER: usize = 4;

impl QuotaHeaders {
    /// Formats the headers of `check`, in effect for `period`, with cost in `currency`.
    pub(crate) fn new(check: &LimitCheck, period: Option<&Period>, currency: Currency) -> Self {
        let unlimited = || HeaderValue::from_static("unlimited");
        let tokens = check
            .remaining_tokens
            .map_or_else(unlimited, HeaderValue::from);
        // Decimals print as ASCII digits, `-` and `.`: always a valid value.
        let cost = match check.remaining_cost {
            Some(cost) => HeaderValue::try_from(format_decimal(cost)).ok(),
            None => Some(unlimited()),
        };
        let percentage = HeaderValue::try_from(format_percentage(check.usage_percentage)).ok();
        let mut original = vec![(X_REMAINING_TOKENS, tokens)];
        original.extend(cost.map(|v| (X_REMAINING_COST, v)));
        original.extend(percentage.map(|v| (X_USAGE_PERCENTAGE, v)));
        Self {
            original,
            ietf: IetfFields::new(check, period, currency),
            reset_at: check.reset_at,
            rendered: Mutex::new(None),
        }
    }

    /// Adds the headers of `style` to `headers` as of `now`, replacing any already there.
    pub(crate) fn write(&self, style: HeaderStyle, now: DateTime<Utc>, headers: &mut HeaderMap) {
        if style == HeaderStyle::None {
            return;
        }
        // The guarded value is only ever replaced whole: a poisoned lock holds a valid one.
        let mut rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        let current = match rendered.take() {
            Some(current) if current.holds(style, now) => current,
            _ => self.render(style, now),
        };
        let current = rendered.insert(current);
        // Inserting ours hashes each name, and costs nothing more while the route's map has
        // room for them and one more (the `Content-Length` axum adds after the layer). A copy
        // of ours costs two allocations, and has no room to spare: it grows as soon as the
        // route's headers join it. So ours are inserted when they fit, or when the route
        // brought more headers than ours (moving all of its would cost more); otherwise the
        // route's headers move into a copy of ours.
        let ours = current.map.len();
        let room = headers.capacity().saturating_sub(headers.len());
        if room > ours || headers.len() > ours {
            for (name, value) in &current.map {
                headers.insert(name.clone(), value.clone());
            }
            return;
        }
        let theirs = std::mem::replace(headers, current.map.clone());
        drop(rendered);
        // The route's headers join ours, except those of the same names: ours replace them.
        let mut kept: Option<HeaderName> = None;
        for (name, value) in theirs {
            if let Some(name) = name {
                kept = (!headers.contains_key(&name)).then_some(name);
            }
            if let Some(name) = &kept {
                headers.append(name.clone(), value);
            }
        }
    }

    /// Adds the headers of `style` to `headers` as of `now`, replacing any already there,
    /// for headers written once: each is inserted, and no map is kept for reuse.
    pub(crate) fn write_once(
        &self,
        style: HeaderStyle,
        now: DateTime<Utc>,
        headers: &mut HeaderMap,
    ) {
        self.insert_each(style, now, headers);
    }

    /// Inserts the headers of `style` as of `now` into `map`, each on its own; returns the
    /// reset instant and the `t` counted to it.
    fn insert_each(
        &self,
        style: HeaderStyle,
        now: DateTime<Utc>,
        map: &mut HeaderMap,
    ) -> Option<(DateTime<Utc>, u64)> {
        if style.original() {
            for (name, value) in &self.original {
                map.insert(name.clone(), value.clone());
            }
        }
        let reset = self.reset_at.map(|at| (at, seconds_until(now, at)));
        if style.ietf()
            && let Some(ietf) = &self.ietf
        {
            map.insert(RATELIMIT_POLICY, ietf.policy.clone());
            if let Some(current) = ietf.current(reset.map(|(_, t)| t)) {
                map.insert(RATELIMIT, current);
            }
        }
        reset
    }

    /// The headers of `style` as of `now`, with the instants between which they hold.
    fn render(&self, style: HeaderStyle, now: DateTime<Utc>) -> Rendered {
        let mut map = HeaderMap::with_capacity(self.original.len() + 2 + ROOM_AFTER);
        let reset = self.insert_each(style, now, &mut map);
        // `t` = ceil(reset - now) holds from `reset - t` (inclusive) to `reset - (t - 1)`;
        // once the reset has passed (`t` = 0), from then on.
        let (from, until) = match reset {
            None => (None, None),
            Some((at, 0)) => (Some(at), None),
            Some((at, t)) => {
                let before = |n: u64| {
                    let n = chrono::Duration::try_seconds(i64::try_from(n).ok()?)?;
                    at.checked_sub_signed(n)
                };
                match (before(t), before(t - 1)) {
                    (Some(from), Some(until)) => (Some(from), Some(until)),
                    // Beyond chrono's range: never reused.
                    _ => (Some(now), Some(now)),
                }
            }
        };
        Rendered {
            style,
            from,
            until,
            map,
        }
    }

    /// Adds `Retry-After`: whole seconds from `now` until the period resets, rounded up.
    pub(crate) fn write_retry_after(&self, now: DateTime<Utc>, headers: &mut HeaderMap) {
        if let Some(reset_at) = self.reset_at {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds_until(now, reset_at)));
        }
    }
}

impl IetfFields {
    /// The fields of `check`; `None` without any limit.
    fn new(check: &LimitCheck, period: Option<&Period>, currency: Currency) -> Option<Self> {
        let window = period.map(|p| (p.end - p.start).num_seconds().max(0).unsigned_abs());
        let mut policies = Vec::with_capacity(2);
        let mut items = Vec::with_capacity(2);
        let mut add = |name: &str, quota: u64, remaining: u64, unit: &str| {
            let quota = quota.min(SF_INTEGER_MAX);
            policies.push(match window {
                Some(w) => format!(
                    "\"{name}\";q={quota};w={};ai-metering-unit=\"{unit}\"",
                    w.min(SF_INTEGER_MAX)
                ),
                None => format!("\"{name}\";q={quota};ai-metering-unit=\"{unit}\""),
            });
            items.push(format!("\"{name}\";r={}", remaining.min(SF_INTEGER_MAX)));
        };
        if let Some(limit) = check.limits.tokens {
            add(
                "tokens",
                limit,
                check.remaining_tokens.unwrap_or(0),
                "tokens",
            );
        }
        if let Some(limit) = check.limits.cost {
            let unit = format!("micro-{}", currency.as_str());
            add(
                "cost",
                micros(limit),
                micros(check.remaining_cost.unwrap_or(Decimal::ZERO)),
                &unit,
            );
        }
        if policies.is_empty() {
            return None;
        }
        // Names, integers and currency codes (ASCII letters): always a valid value.
        let policy = HeaderValue::try_from(policies.join(", ")).ok()?;
        Some(Self { policy, items })
    }

    /// The `RateLimit` value with `t` = `reset` seconds (left out when `None`).
    fn current(&self, reset: Option<u64>) -> Option<HeaderValue> {
        let reset = reset.map(|t| t.min(SF_INTEGER_MAX));
        let mut current = String::with_capacity(self.items.iter().map(|i| i.len() + 24).sum());
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                current.push_str(", ");
            }
            current.push_str(item);
            if let Some(t) = reset {
                current.push_str(";t=");
                current.push_str(&t.to_string());
            }
        }
        HeaderValue::try_from(current).ok()
    }
}

/// Writes the quota headers of `check` (the limits in force for `period`, cost in
/// `currency`) in `style` to `headers`, as of `now`: what [`QuotaLayer`](crate::QuotaLayer)
/// adds to its responses, for a service that meters without the layer (a gateway that
/// reserves each call itself).
///
/// ```
/// use ai_metering_core::Currency;
/// use ai_metering_core::limit::{Limits, Thresholds, UsageTotals, evaluate};
/// use ai_metering_tower::{HeaderStyle, write_quota_headers};
/// let limits = Limits { tokens: Some(1_000), cost: None };
/// let used = UsageTotals::new(250, Default::default());
/// let check = evaluate(&limits, used, UsageTotals::ZERO, &Thresholds::default());
/// let mut headers = http::HeaderMap::new();
/// write_quota_headers(&check, None, Currency::USD, HeaderStyle::Original, chrono::Utc::now(), &mut headers);
/// assert_eq!(headers["x-remaining-tokens"], "750");
/// assert_eq!(headers["x-remaining-cost"], "unlimited");
/// ```
pub fn write_quota_headers(
    check: &LimitCheck,
    period: Option<&Period>,
    currency: Currency,
    style: HeaderStyle,
    now: DateTime<Utc>,
    headers: &mut HeaderMap,
) {
    QuotaHeaders::new(check, period, currency).write_once(style, now, headers);
}

/// A decimal with trailing zeros trimmed: `50`, `49.5`, `0.000125`.
///
/// ```
/// # use ai_metering_tower::headers::format_decimal;
/// use rust_decimal::Decimal;
/// assert_eq!(format_decimal(Decimal::new(49_500, 3)), "49.5");
/// assert_eq!(format_decimal(Decimal::new(5_000, 2)), "50");
/// ```
pub fn format_decimal(value: Decimal) -> String {
    value.normalize().to_string()
}

/// A percentage rounded half away from zero to 2 decimals, trailing zeros trimmed, as the
/// original printed it: `0`, `85`, `33.33`, `100`.
///
/// ```
/// # use ai_metering_tower::headers::format_percentage;
/// use rust_decimal::Decimal;
/// assert_eq!(format_percentage(Decimal::new(333_333, 4)), "33.33");
/// assert_eq!(format_percentage(Decimal::new(8_500, 2)), "85");
/// ```
pub fn format_percentage(value: Decimal) -> String {
    format_decimal(value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
}

/// Whole seconds from `now` until `at`, rounded up; 0 once `at` has passed.
pub(crate) fn seconds_until(now: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    let delta = at - now;
    let secs = delta.num_seconds();
    let extra = delta - chrono::Duration::seconds(secs);
    let rounded_up = if extra > chrono::Duration::zero() {
        secs.saturating_add(1)
    } else {
        secs
    };
    u64::try_from(rounded_up).unwrap_or(0)
}

/// Integer micro-units of an amount, rounded down (never advertising more than there is),
/// capped at the largest Structured Field Integer; negative amounts count as 0.
fn micros(amount: Decimal) -> u64 {
    if amount <= Decimal::ZERO {
        return 0;
    }
    amount
        .checked_mul(Decimal::from(1_000_000))
        .map(|m| m.trunc())
        .and_then(|m| u64::try_from(m).ok())
        .map_or(SF_INTEGER_MAX, |m| m.min(SF_INTEGER_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::limit::{Limits, Thresholds, UsageTotals, evaluate};
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, d, h, 0, 0).unwrap()
    }

    #[test]
    fn decimals_and_percentages_print_like_the_original() {
        assert_eq!(format_decimal(Decimal::ZERO), "0");
        assert_eq!(format_decimal(Decimal::new(4_950, 2)), "49.5");
        assert_eq!(format_percentage(Decimal::ZERO), "0");
        assert_eq!(format_percentage(Decimal::new(10_000, 2)), "100");
        assert_eq!(format_percentage(Decimal::new(33_335, 3)), "33.34");
    }

    #[test]
    fn seconds_round_up_and_stop_at_zero() {
        let now = at(1, 0);
        assert_eq!(seconds_until(now, at(1, 1)), 3600);
        assert_eq!(
            seconds_until(now, now + chrono::Duration::milliseconds(1500)),
            2
        );
        assert_eq!(seconds_until(at(1, 1), now), 0);
    }

    #[test]
    fn micros_truncate_and_cap() {
        assert_eq!(micros(Decimal::new(50, 0)), 50_000_000);
        assert_eq!(micros(Decimal::new(12_345_679, 7)), 1_234_567);
        assert_eq!(micros(Decimal::new(-1, 0)), 0);
        assert_eq!(micros(Decimal::MAX), SF_INTEGER_MAX);
    }

    #[test]
    fn writes_both_header_styles_for_both_limits() {
        let limits = Limits {
            tokens: Some(10_000),
            cost: Some(Decimal::from(50)),
        };
        let check = evaluate(
            &limits,
            UsageTotals::new(8_500, Decimal::new(125, 1)),
            UsageTotals::ZERO,
            &Thresholds::default(),
        )
        .with_reset_at(at(31, 0));
        let period = Period {
            start: at(1, 0),
            end: at(31, 0),
        };
        let prepared = QuotaHeaders::new(&check, Some(&period), Currency::USD);
        let mut headers = HeaderMap::new();
        prepared.write(HeaderStyle::Both, at(30, 0), &mut headers);
        assert_eq!(headers[&X_REMAINING_TOKENS], "1500");
        assert_eq!(headers[&X_REMAINING_COST], "37.5");
        assert_eq!(headers[&X_USAGE_PERCENTAGE], "85");
        assert_eq!(
            headers[&RATELIMIT_POLICY],
            "\"tokens\";q=10000;w=2592000;ai-metering-unit=\"tokens\", \
             \"cost\";q=50000000;w=2592000;ai-metering-unit=\"micro-USD\""
        );
        assert_eq!(
            headers[&RATELIMIT],
            "\"tokens\";r=1500;t=86400, \"cost\";r=37500000;t=86400"
        );
        prepared.write_retry_after(at(30, 0), &mut headers);
        assert_eq!(headers[&RETRY_AFTER], "86400");

        // Written again later, only the clock-dependent `t` and `Retry-After` move.
        let later = at(30, 0) + chrono::Duration::milliseconds(1_500);
        let mut again = HeaderMap::new();
        prepared.write(HeaderStyle::Both, later, &mut again);
        prepared.write_retry_after(later, &mut again);
        assert_eq!(
            again[&RATELIMIT],
            "\"tokens\";r=1500;t=86399, \"cost\";r=37500000;t=86399"
        );
        assert_eq!(again[&RETRY_AFTER], "86399");
        for name in [
            X_REMAINING_TOKENS,
            X_REMAINING_COST,
            X_USAGE_PERCENTAGE,
            RATELIMIT_POLICY,
        ] {
            assert_eq!(again[&name], headers[&name]);
        }
        // And back in the first second, the first value again.
        let mut first = HeaderMap::new();
        prepared.write(HeaderStyle::Ietf, at(30, 0), &mut first);
        assert_eq!(first[&RATELIMIT], headers[&RATELIMIT]);
    }

    #[test]
    fn unlimited_billables_get_unlimited_and_no_ietf_fields() {
        let check = LimitCheck::unlimited();
        let prepared = QuotaHeaders::new(&check, None, Currency::USD);
        let mut headers = HeaderMap::new();
        prepared.write(HeaderStyle::Both, at(1, 0), &mut headers);
        assert_eq!(headers[&X_REMAINING_TOKENS], "unlimited");
        assert_eq!(headers[&X_REMAINING_COST], "unlimited");
        assert_eq!(headers[&X_USAGE_PERCENTAGE], "0");
        assert!(!headers.contains_key(&RATELIMIT_POLICY));
        assert!(!headers.contains_key(&RATELIMIT));
    }

    #[test]
    fn styles_select_the_header_sets() {
        let prepared = QuotaHeaders::new(&hundred_tokens_unused(), None, Currency::USD);
        let mut original = HeaderMap::new();
        prepared.write(HeaderStyle::Original, at(1, 0), &mut original);
        assert!(original.contains_key(&X_REMAINING_TOKENS) && !original.contains_key(&RATELIMIT));
        let mut ietf = HeaderMap::new();
        prepared.write(HeaderStyle::Ietf, at(1, 0), &mut ietf);
        assert!(!ietf.contains_key(&X_REMAINING_TOKENS));
        // Without a period or reset instant, `w` and `t` are left out.
        assert_eq!(ietf[&RATELIMIT], "\"tokens\";r=100");
        let mut none = HeaderMap::new();
        prepared.write(HeaderStyle::None, at(1, 0), &mut none);
        assert!(none.is_empty());
        let mut retry = HeaderMap::new();
        prepared.write_retry_after(at(1, 0), &mut retry);
        assert!(retry.is_empty(), "no reset instant, no Retry-After");
    }

    /// A token limit of 100, none used, no reset instant.
    fn hundred_tokens_unused() -> LimitCheck {
        evaluate(
            &Limits {
                tokens: Some(100),
                cost: None,
            },
            UsageTotals::ZERO,
            UsageTotals::ZERO,
            &Thresholds::default(),
        )
    }

    fn token_headers(reset_at: DateTime<Utc>) -> QuotaHeaders {
        let check = hundred_tokens_unused().with_reset_at(reset_at);
        QuotaHeaders::new(&check, None, Currency::USD)
    }

    fn ratelimit_at(prepared: &QuotaHeaders, now: DateTime<Utc>) -> String {
        let mut headers = HeaderMap::new();
        prepared.write(HeaderStyle::Ietf, now, &mut headers);
        headers[&RATELIMIT].to_str().unwrap().to_owned()
    }

    #[test]
    fn the_reused_headers_carry_the_right_t_at_every_instant() {
        let reset = at(2, 0);
        let prepared = token_headers(reset);
        let ms = chrono::Duration::milliseconds;
        // Each instant is written right after one with another `t`, in both directions, so
        // a reused map that no longer holds would show.
        let cases = [
            (reset - ms(2_000), 2),
            (reset - ms(1_001), 2),
            (reset - ms(1_000), 1),
            (reset - ms(1_999), 2),
            (reset - ms(1), 1),
            (reset, 0),
            (reset + ms(5_000), 0),
            (reset - ms(999), 1),
        ];
        for (now, t) in cases {
            assert_eq!(
                ratelimit_at(&prepared, now),
                format!("\"tokens\";r=100;t={t}"),
                "at {now}"
            );
        }
    }

    #[test]
    fn ours_are_the_same_whether_inserted_or_copied() {
        let prepared = token_headers(at(2, 0));
        let route = |capacity: usize| {
            let mut headers = HeaderMap::with_capacity(capacity);
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            headers.insert(X_REMAINING_TOKENS, HeaderValue::from_static("forged"));
            headers
        };
        let sorted = |headers: &HeaderMap| {
            let mut all: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            all.sort();
            all
        };
        for style in [HeaderStyle::Original, HeaderStyle::Ietf, HeaderStyle::Both] {
            // Room for ours: they are inserted. None: the route's move into a copy of ours.
            let (mut roomy, mut full) = (route(32), route(2));
            assert!(roomy.capacity() - roomy.len() > 5);
            assert_eq!(full.capacity(), full.len());
            prepared.write(style, at(1, 0), &mut roomy);
            prepared.write(style, at(1, 0), &mut full);
            let first = |headers: &HeaderMap| headers.keys().next().cloned();
            assert_eq!(
                first(&roomy),
                Some(http::header::CONTENT_TYPE),
                "ours after"
            );
            assert_ne!(first(&full), Some(http::header::CONTENT_TYPE), "ours first");
            assert_eq!(sorted(&roomy), sorted(&full), "{style:?}");
            assert_eq!(roomy[http::header::CONTENT_TYPE], "text/plain");
            let tokens: Vec<_> = roomy.get_all(&X_REMAINING_TOKENS).iter().collect();
            let expected = if style == HeaderStyle::Ietf {
                "forged"
            } else {
                "100"
            };
            assert_eq!(tokens, [expected], "{style:?}");
        }
    }

    #[test]
    fn a_routes_own_headers_are_kept_and_ours_replace_those_of_the_same_name() {
        let prepared = token_headers(at(2, 0));
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        headers.append(http::header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(http::header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.insert(X_REMAINING_TOKENS, HeaderValue::from_static("forged"));
        prepared.write(HeaderStyle::Both, at(1, 0), &mut headers);
        assert_eq!(headers[http::header::CONTENT_TYPE], "text/plain");
        let cookies: Vec<_> = headers.get_all(http::header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(
            headers
                .get_all(&X_REMAINING_TOKENS)
                .iter()
                .collect::<Vec<_>>(),
            ["100"]
        );
        assert_eq!(headers[&RATELIMIT], "\"tokens\";r=100;t=86400");
        assert_eq!(headers.len(), 5 + 3, "{headers:?}");

        // A response with more headers of its own than ours gets ours inserted.
        let mut many = HeaderMap::new();
        for i in 0..8 {
            many.insert(
                HeaderName::try_from(format!("x-route-{i}")).unwrap(),
                HeaderValue::from(i),
            );
        }
        many.insert(X_USAGE_PERCENTAGE, HeaderValue::from_static("forged"));
        prepared.write(HeaderStyle::Both, at(1, 0), &mut many);
        assert_eq!(many.len(), 8 + 5, "{many:?}");
        assert_eq!(many["x-route-7"], "7");
        assert_eq!(
            many.get_all(&X_USAGE_PERCENTAGE).iter().collect::<Vec<_>>(),
            ["0"]
        );
    }
}
