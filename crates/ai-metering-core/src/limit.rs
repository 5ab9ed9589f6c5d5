//! Limit evaluation: a pure function from limits, usage and a request to a [`LimitCheck`].
//!
//! Every quota decision (the `Meter` before a call, the `QuotaLayer` before a request) is made
//! by [`evaluate`], so it can be tested exhaustively without a store or a clock.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{LimitOverride, Plan};

/// The limits in force for a period: none, one, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Tokens allowed in the period.
    pub tokens: Option<u64>,
    /// Cost allowed in the period.
    pub cost: Option<Decimal>,
}

impl Limits {
    /// No limit at all.
    pub const UNLIMITED: Limits = Limits {
        tokens: None,
        cost: None,
    };

    /// The limits of `plan`, changed by `override_` when one applies. An inactive plan has
    /// no limits.
    ///
    /// ```
    /// use ai_metering_core::limit::Limits;
    /// use ai_metering_core::plan::Plan;
    /// let limits = Limits::effective(&Plan::new("b", "Basic").with_token_limit(10_000), None);
    /// assert_eq!(limits.tokens, Some(10_000));
    /// ```
    pub fn effective(plan: &Plan, override_: Option<&LimitOverride>) -> Limits {
        if !plan.active {
            return Limits::UNLIMITED;
        }
        let mut limits = Limits {
            tokens: plan.token_limit,
            cost: plan.cost_limit,
        };
        if let Some(o) = override_ {
            limits.tokens = o.token_limit.apply(limits.tokens);
            limits.cost = o.cost_limit.apply(limits.cost);
        }
        limits
    }

    /// True when neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.tokens.is_none() && self.cost.is_none()
    }
}

/// Tokens and cost, as used so far in a period or as requested by a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Tokens.
    pub tokens: u64,
    /// Cost in the catalog's currency.
    pub cost: Decimal,
}

impl UsageTotals {
    /// Nothing.
    pub const ZERO: UsageTotals = UsageTotals {
        tokens: 0,
        cost: Decimal::ZERO,
    };

    /// `tokens` tokens costing `cost`.
    pub fn new(tokens: u64, cost: Decimal) -> Self {
        Self { tokens, cost }
    }

    /// The sum of two totals.
    ///
    /// # Errors
    /// [`Error::Overflow`] when a sum overflows.
    pub fn checked_add(self, other: UsageTotals) -> Result<UsageTotals> {
        Ok(UsageTotals {
            tokens: self
                .tokens
                .checked_add(other.tokens)
                .ok_or(Error::Overflow("a token total"))?,
            cost: self
                .cost
                .checked_add(other.cost)
                .ok_or(Error::Overflow("a cost total"))?,
        })
    }
}

/// Usage percentages at which a billable counts as "approaching" its limit.
///
/// The default is one threshold, 80%.
///
/// ```
/// use ai_metering_core::limit::Thresholds;
/// use rust_decimal::Decimal;
/// let t = Thresholds::new([Decimal::from(90), Decimal::from(50)]).unwrap();
/// assert_eq!(t.as_slice(), &[Decimal::from(50), Decimal::from(90)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds(Vec<Decimal>);

impl Thresholds {
    /// Thresholds in percent, each above 0 and at most 100; sorted and de-duplicated.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty list or a value out of range.
    pub fn new(percentages: impl IntoIterator<Item = Decimal>) -> Result<Self> {
        let mut v: Vec<Decimal> = percentages.into_iter().collect();
        if v.is_empty() {
            return Err(Error::InvalidInput(
                "at least one approaching threshold is needed".into(),
            ));
        }
        if let Some(bad) = v
            .iter()
            .find(|p| **p <= Decimal::ZERO || **p > Decimal::ONE_HUNDRED)
        {
            return Err(Error::InvalidInput(format!(
                "approaching threshold {bad}% is not above 0 and at most 100"
            )));
        }
        v.sort();
        v.dedup();
        Ok(Self(v))
    }

    /// The thresholds, ascending.
    pub fn as_slice(&self) -> &[Decimal] {
        &self.0
    }

    /// The highest threshold that `percentage` has reached, if any.
    pub fn reached(&self, percentage: Decimal) -> Option<Decimal> {
        self.0.iter().rev().find(|t| percentage >= **t).copied()
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self(vec![Decimal::from(80)])
    }
}

/// Which limit a check hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    /// The token limit.
    Tokens,
    /// The cost limit.
    Cost,
}

impl LimitKind {
    /// `tokens` or `cost`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Cost => "cost",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a limit evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitCheck {
    /// False when a limit is reached or the request would exceed one.
    pub allowed: bool,
    /// The usage percentage is at or above the lowest approaching threshold.
    pub approaching: bool,
    /// The highest approaching threshold reached, if any.
    pub threshold_reached: Option<Decimal>,
    /// The limit that was reached or would be exceeded (tokens are checked first).
    pub exceeded: Option<LimitKind>,
    /// Tokens left in the period; `None` without a token limit.
    pub remaining_tokens: Option<u64>,
    /// Cost left in the period; `None` without a cost limit.
    pub remaining_cost: Option<Decimal>,
    /// The highest of the token and cost percentages used, rounded half-up to 2 decimals;
    /// 0 without limits.
    pub usage_percentage: Decimal,
    /// When the period resets, if known.
    pub reset_at: Option<DateTime<Utc>>,
    /// The limits evaluated.
    pub limits: Limits,
    /// The usage the evaluation counted (recorded plus reserved).
    pub used: UsageTotals,
}

impl LimitCheck {
    /// The result for a billable without limits.
    pub fn unlimited() -> Self {
        Self {
            allowed: true,
            approaching: false,
            threshold_reached: None,
            exceeded: None,
            remaining_tokens: None,
            remaining_cost: None,
            usage_percentage: Decimal::ZERO,
            reset_at: None,
            limits: Limits::UNLIMITED,
            used: UsageTotals::ZERO,
        }
    }

    /// Sets when the period resets.
    pub fn with_reset_at(mut self, reset_at: DateTime<Utc>) -> Self {
        self.reset_at = Some(reset_at);
        self
    }

    /// True when a hard limit was reached or would be exceeded.
    pub fn hard_limit_reached(&self) -> bool {
        self.exceeded.is_some()
    }
}

fn percentage(used: Decimal, limit: Decimal) -> Decimal {
    if limit <= Decimal::ZERO {
        // A zero limit is exhausted from the start.
        return Decimal::ONE_HUNDRED;
    }
    // Ratios of u64s and bounded decimals; checked to stay panic-free on extreme values.
    used.checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|x| x.checked_div(limit))
        .unwrap_or(Decimal::MAX)
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Evaluates `limits` against the usage so far and the usage a request asks for.
///
/// Rules, in order: with a token limit, the request is refused when
/// `used + requested > limit` or nothing is left (`used >= limit`); then the same for cost.
/// Landing exactly on a limit is allowed. The percentage is the higher of the two, and
/// "approaching" means it reached the lowest threshold.
///
/// ```
/// use ai_metering_core::limit::{evaluate, Limits, Thresholds, UsageTotals};
/// use rust_decimal::Decimal;
///
/// let limits = Limits { tokens: Some(10_000), cost: None };
/// let check = evaluate(&limits, UsageTotals::new(8_500, Decimal::ZERO), UsageTotals::ZERO, &Thresholds::default());
/// assert!(check.allowed && check.approaching);
/// assert_eq!(check.usage_percentage, Decimal::from(85));
/// assert_eq!(check.remaining_tokens, Some(1_500));
/// ```
pub fn evaluate(
    limits: &Limits,
    used: UsageTotals,
    requested: UsageTotals,
    thresholds: &Thresholds,
) -> LimitCheck {
    let mut exceeded = None;
    let mut pct = Decimal::ZERO;

    let remaining_tokens = limits.tokens.map(|limit| {
        let over_request = used.tokens.saturating_add(requested.tokens) > limit;
        if exceeded.is_none() && (used.tokens >= limit || over_request) {
            exceeded = Some(LimitKind::Tokens);
        }
        pct = pct.max(percentage(Decimal::from(used.tokens), Decimal::from(limit)));
        limit.saturating_sub(used.tokens)
    });

    let remaining_cost = limits.cost.map(|limit| {
        let over_request = used
            .cost
            .checked_add(requested.cost)
            .is_none_or(|total| total > limit);
        if exceeded.is_none() && (used.cost >= limit || over_request) {
            exceeded = Some(LimitKind::Cost);
        }
        pct = pct.max(percentage(used.cost, limit));
        (limit - used.cost.min(limit)).max(Decimal::ZERO)
    });

    let threshold_reached = if limits.is_unlimited() {
        None
    } else {
        thresholds.reached(pct)
    };
    LimitCheck {
        allowed: exceeded.is_none(),
        approaching: threshold_reached.is_some(),
        threshold_reached,
        exceeded,
        remaining_tokens,
        remaining_cost,
        usage_percentage: pct,
        reset_at: None,
        limits: *limits,
        used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LimitValue;
    use crate::{Billable, plan::LimitOverride};
    use chrono::TimeZone;

    fn tokens(limit: u64) -> Limits {
        Limits {
            tokens: Some(limit),
            cost: None,
        }
    }

    fn cost(limit: i64) -> Limits {
        Limits {
            tokens: None,
            cost: Some(Decimal::from(limit)),
        }
    }

    fn used(t: u64) -> UsageTotals {
        UsageTotals::new(t, Decimal::ZERO)
    }

    fn check(limits: Limits, u: UsageTotals, r: UsageTotals) -> LimitCheck {
        evaluate(&limits, u, r, &Thresholds::default())
    }

    #[test]
    fn half_used_leaves_half() {
        let c = check(tokens(10_000), used(5_000), UsageTotals::ZERO);
        assert!(c.allowed && !c.approaching);
        assert_eq!(c.remaining_tokens, Some(5_000));
        assert_eq!(c.usage_percentage, Decimal::from(50));
    }

    #[test]
    fn eighty_five_percent_is_approaching() {
        let c = check(tokens(10_000), used(8_500), UsageTotals::ZERO);
        assert!(c.allowed && c.approaching);
        assert_eq!(c.threshold_reached, Some(Decimal::from(80)));
        assert_eq!(c.usage_percentage, Decimal::from(85));
    }

    #[test]
    fn exhausted_is_blocked_with_nothing_left() {
        let c = check(tokens(10_000), used(10_000), UsageTotals::ZERO);
        assert!(!c.allowed);
        assert_eq!(c.exceeded, Some(LimitKind::Tokens));
        assert_eq!(c.remaining_tokens, Some(0));
        assert_eq!(c.usage_percentage, Decimal::from(100));
    }

    #[test]
    fn request_that_would_exceed_is_blocked() {
        let c = check(tokens(10_000), used(9_500), used(1_000));
        assert!(!c.allowed);
        assert_eq!(c.exceeded, Some(LimitKind::Tokens));
        // A refusal still reports the real remainder, not 0.
        assert_eq!(c.remaining_tokens, Some(500));
    }

    #[test]
    fn request_landing_exactly_on_the_limit_is_allowed() {
        let c = check(tokens(10_000), used(9_000), used(1_000));
        assert!(c.allowed);
    }

    #[test]
    fn cost_half_used() {
        let c = check(
            cost(100),
            UsageTotals::new(0, Decimal::from(50)),
            UsageTotals::ZERO,
        );
        assert!(c.allowed);
        assert_eq!(c.remaining_cost, Some(Decimal::from(50)));
        assert_eq!(c.remaining_tokens, None);
        assert_eq!(c.usage_percentage, Decimal::from(50));
    }

    #[test]
    fn cost_request_over_limit_names_cost() {
        let c = check(
            cost(100),
            UsageTotals::new(0, Decimal::from(99)),
            UsageTotals::new(0, Decimal::new(101, 2)),
        );
        assert_eq!(c.exceeded, Some(LimitKind::Cost));
    }

    #[test]
    fn override_raises_the_limit() {
        let plan = Plan::new("basic", "Basic").with_token_limit(10_000);
        let o = LimitOverride {
            billable: Billable::new("user", 1),
            starts_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
            token_limit: LimitValue::Set(20_000),
            cost_limit: LimitValue::Inherit,
        };
        let limits = Limits::effective(&plan, Some(&o));
        let c = check(limits, UsageTotals::ZERO, UsageTotals::ZERO);
        assert_eq!(c.remaining_tokens, Some(20_000));
    }

    #[test]
    fn override_can_remove_a_limit() {
        let plan = Plan::new("basic", "Basic")
            .with_token_limit(10)
            .with_cost_limit(Decimal::ONE);
        let o = LimitOverride {
            billable: Billable::new("user", 1),
            starts_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
            token_limit: LimitValue::Unlimited,
            cost_limit: LimitValue::Set(Decimal::TWO),
        };
        let limits = Limits::effective(&plan, Some(&o));
        assert_eq!(limits.tokens, None);
        assert_eq!(limits.cost, Some(Decimal::TWO));
    }

    #[test]
    fn inactive_plan_is_unlimited() {
        let plan = Plan::new("basic", "Basic").with_token_limit(1).inactive();
        assert!(Limits::effective(&plan, None).is_unlimited());
    }

    #[test]
    fn both_limits_report_the_higher_percentage_and_tokens_first() {
        let limits = Limits {
            tokens: Some(1_000),
            cost: Some(Decimal::from(10)),
        };
        let c = check(
            limits,
            UsageTotals::new(300, Decimal::from(9)),
            UsageTotals::ZERO,
        );
        assert_eq!(c.usage_percentage, Decimal::from(90));
        assert!(c.approaching && c.allowed);
        let c = check(
            limits,
            UsageTotals::new(1_000, Decimal::from(10)),
            UsageTotals::ZERO,
        );
        assert_eq!(c.exceeded, Some(LimitKind::Tokens));
        let c = check(
            limits,
            UsageTotals::new(10, Decimal::from(10)),
            UsageTotals::ZERO,
        );
        assert_eq!(c.exceeded, Some(LimitKind::Cost));
    }

    #[test]
    fn no_limits_means_unlimited() {
        let c = check(Limits::UNLIMITED, used(u64::MAX), used(u64::MAX));
        assert!(c.allowed && !c.approaching);
        assert_eq!(c.usage_percentage, Decimal::ZERO);
    }

    #[test]
    fn zero_limit_blocks_at_once() {
        let c = check(tokens(0), UsageTotals::ZERO, UsageTotals::ZERO);
        assert!(!c.allowed);
        assert_eq!(c.usage_percentage, Decimal::ONE_HUNDRED);
    }

    #[test]
    fn percentages_round_half_up_to_two_places() {
        let c = check(tokens(3), used(1), UsageTotals::ZERO);
        assert_eq!(c.usage_percentage, Decimal::new(3333, 2));
        let c = check(tokens(8), used(1), UsageTotals::ZERO);
        assert_eq!(c.usage_percentage, Decimal::new(1250, 2));
    }

    #[test]
    fn several_thresholds_report_the_highest_reached() {
        let t = Thresholds::new([50, 75, 90].map(Decimal::from)).unwrap();
        let c = evaluate(&tokens(100), used(80), UsageTotals::ZERO, &t);
        assert_eq!(c.threshold_reached, Some(Decimal::from(75)));
        assert!(Thresholds::new([Decimal::ZERO]).is_err());
        assert!(Thresholds::new([Decimal::from(101)]).is_err());
        assert!(Thresholds::new([]).is_err());
    }

    #[test]
    fn huge_values_do_not_panic() {
        let limits = Limits {
            tokens: Some(u64::MAX),
            cost: Some(Decimal::MAX),
        };
        let c = check(
            limits,
            UsageTotals::new(u64::MAX, Decimal::MAX),
            UsageTotals::new(u64::MAX, Decimal::MAX),
        );
        assert!(!c.allowed);
    }
}
