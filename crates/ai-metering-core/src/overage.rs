//! Overage: what part of one call falls beyond a period's limits, and what it costs.
//!
//! A pure function, like [`crate::limit::evaluate`]: a store calls [`overage`] inside the
//! transaction that records the call, with the period's totals as they stood just before it,
//! so that concurrent calls each bill only their own excess and the overage rows of a period
//! add up to exactly what was recorded beyond the limit.
//!
//! The excess of a call is the part of it past the limit: `min(call, after - limit)` where
//! `after = before + call`, and zero while `after` is within the limit. A call that crosses
//! the limit bills only the part beyond it; every call after it bills all of itself.
//!
//! - **Token limit**: the excess tokens.
//! - **Cost limit**: the excess cost, and the share of the call's tokens it stands for
//!   (`tokens × excess cost / cost`, rounded up).
//! - **Both**: the larger of the two excesses in tokens (a call is never billed twice for
//!   crossing two limits).
//!
//! Priced at the plan's per-1k-token overage price when it has one, else *pro rata* at the
//! call's own cost (`cost × excess tokens / tokens`; with only a cost limit, the excess cost
//! itself). No excess, or an excess that prices at zero, is no overage: never a zero row.
//!
//! ```
//! use ai_metering_core::limit::{Limits, UsageTotals};
//! use ai_metering_core::overage::{OverageRule, overage};
//! use rust_decimal::Decimal;
//!
//! // 1,000 tokens a period, $1 per 1k beyond. 900 used, a call of 200: 100 tokens over.
//! let rule = OverageRule::new(Limits { tokens: Some(1_000), cost: None }, Some(Decimal::ONE));
//! let excess = overage(&rule, UsageTotals::new(900, Decimal::ZERO), UsageTotals::new(200, Decimal::ZERO))
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(excess.tokens, 100);
//! assert_eq!(excess.amount, Decimal::new(10, 2)); // $0.10
//! ```

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limit::{Limits, UsageTotals};

/// How overage is computed for a period: its limits and the plan's price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverageRule {
    /// The limits beyond which usage is overage.
    pub limits: Limits,
    /// The price of 1,000 overage tokens; `None` prices overage at the call's own cost.
    pub price_per_1k_tokens: Option<Decimal>,
}

impl OverageRule {
    /// The rule for `limits`, priced per 1k tokens or (with `None`) at the call's own cost.
    pub fn new(limits: Limits, price_per_1k_tokens: Option<Decimal>) -> Self {
        Self {
            limits,
            price_per_1k_tokens,
        }
    }
}

/// The part of one call beyond the limits, and its price (in the call's currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overage {
    /// Tokens beyond the limit.
    pub tokens: u64,
    /// What they cost.
    pub amount: Decimal,
}

/// The overage of a call of `call` made when the period had used `before`; `None` when the
/// call stays within the limits, or its excess prices at zero.
///
/// # Errors
/// [`Error::Overflow`] when an amount overflows; [`Error::InvalidInput`] for a negative cost
/// or price.
pub fn overage(
    rule: &OverageRule,
    before: UsageTotals,
    call: UsageTotals,
) -> Result<Option<Overage>> {
    if call.cost.is_sign_negative() || before.cost.is_sign_negative() {
        return Err(Error::InvalidInput(
            "usage costs must not be negative".into(),
        ));
    }
    if rule
        .price_per_1k_tokens
        .is_some_and(|p| p.is_sign_negative())
    {
        return Err(Error::InvalidInput(
            "an overage price must not be negative".into(),
        ));
    }
    let limits = &rule.limits;

    // Excess in tokens beyond a token limit.
    let by_tokens = limits.tokens.map_or(0, |limit| {
        let after = before.tokens.saturating_add(call.tokens);
        after
            .saturating_sub(limit.max(before.tokens))
            .min(call.tokens)
    });
    // Excess cost beyond a cost limit, and the share of the call's tokens it stands for.
    let excess_cost = match limits.cost {
        Some(limit) => {
            let after = before
                .cost
                .checked_add(call.cost)
                .ok_or(Error::Overflow("a period's cost"))?;
            (after - limit.max(before.cost))
                .max(Decimal::ZERO)
                .min(call.cost)
        }
        None => Decimal::ZERO,
    };
    let by_cost = if excess_cost > Decimal::ZERO && call.cost > Decimal::ZERO {
        let share = Decimal::from(call.tokens)
            .checked_mul(excess_cost)
            .and_then(|x| x.checked_div(call.cost))
            .ok_or(Error::Overflow("an overage token share"))?
            .round_dp_with_strategy(0, RoundingStrategy::AwayFromZero);
        share.to_u64().unwrap_or(u64::MAX).min(call.tokens)
    } else {
        0
    };
    let tokens = by_tokens.max(by_cost);

    let amount = match rule.price_per_1k_tokens {
        Some(per_1k) => Decimal::from(tokens)
            .checked_mul(per_1k)
            .and_then(|x| x.checked_div(Decimal::ONE_THOUSAND))
            .ok_or(Error::Overflow("an overage amount"))?,
        None if by_tokens >= by_cost && tokens > 0 => call
            .cost
            .checked_mul(Decimal::from(tokens))
            .and_then(|x| x.checked_div(Decimal::from(call.tokens)))
            .ok_or(Error::Overflow("an overage amount"))?,
        // The cost limit is the one crossed furthest: its excess is the price.
        None => excess_cost,
    };
    if amount <= Decimal::ZERO {
        return Ok(None);
    }
    Ok(Some(Overage { tokens, amount }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn tokens(limit: u64, per_1k: Option<&str>) -> OverageRule {
        OverageRule::new(
            Limits {
                tokens: Some(limit),
                cost: None,
            },
            per_1k.map(d),
        )
    }

    fn cost(limit: &str, per_1k: Option<&str>) -> OverageRule {
        OverageRule::new(
            Limits {
                tokens: None,
                cost: Some(d(limit)),
            },
            per_1k.map(d),
        )
    }

    fn used(tokens: u64, cost: &str) -> UsageTotals {
        UsageTotals::new(tokens, d(cost))
    }

    #[test]
    fn within_the_limit_is_no_overage() {
        let rule = tokens(1_000, Some("1"));
        assert_eq!(
            overage(&rule, used(0, "0"), used(1_000, "0")).unwrap(),
            None
        );
        assert_eq!(
            overage(&rule, used(800, "0"), used(200, "0")).unwrap(),
            None
        );
    }

    #[test]
    fn the_crossing_call_bills_only_its_excess() {
        let rule = tokens(1_000, Some("1"));
        let o = overage(&rule, used(900, "0"), used(200, "0"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (100, d("0.1")));
    }

    #[test]
    fn calls_past_the_limit_bill_all_of_themselves() {
        let rule = tokens(1_000, Some("1"));
        let o = overage(&rule, used(5_000, "0"), used(200, "0"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (200, d("0.2")));
    }

    #[test]
    fn without_a_plan_price_overage_is_pro_rata_at_the_calls_cost() {
        let rule = tokens(1_000, None);
        let o = overage(&rule, used(900, "0.9"), used(200, "0.5"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (100, d("0.25")));
    }

    #[test]
    fn a_cost_limit_with_a_per_1k_price_bills_the_tokens_past_it() {
        // The seed README's Pro plan shape: a cost limit, the charge policy, $/1k beyond.
        let rule = cost("10", Some("2"));
        // $9.50 used; a call of 1,000 tokens costing $1.00 crosses by $0.50 = 500 tokens.
        let o = overage(&rule, used(0, "9.5"), used(1_000, "1"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (500, d("1")));
    }

    #[test]
    fn a_cost_limit_without_a_price_bills_the_excess_cost() {
        let rule = cost("10", None);
        let o = overage(&rule, used(0, "9.5"), used(1_000, "1"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (500, d("0.5")));
    }

    #[test]
    fn with_both_limits_the_larger_excess_is_billed_once() {
        let rule = OverageRule::new(
            Limits {
                tokens: Some(1_000),
                cost: Some(d("10")),
            },
            Some(d("1")),
        );
        // 100 tokens past the token limit, 300 tokens' worth past the cost limit.
        let o = overage(&rule, used(500, "9.5"), used(600, "1"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (300, d("0.3")));
        let o = overage(&rule, used(900, "8"), used(200, "0.2"))
            .unwrap()
            .unwrap();
        assert_eq!((o.tokens, o.amount), (100, d("0.1")));
    }

    #[test]
    fn an_excess_that_prices_at_zero_is_no_row() {
        let rule = tokens(1_000, None);
        assert_eq!(
            overage(&rule, used(1_000, "0"), used(200, "0")).unwrap(),
            None
        );
        assert_eq!(
            overage(&tokens(1_000, Some("0")), used(1_000, "0"), used(200, "0")).unwrap(),
            None
        );
    }

    #[test]
    fn negative_inputs_are_refused() {
        assert!(overage(&tokens(1, None), used(0, "0"), used(1, "-1")).is_err());
        assert!(overage(&tokens(1, Some("-1")), used(0, "0"), used(1, "1")).is_err());
    }

    proptest! {
        /// Calls in any sizes, one after another: their overage tokens add up to exactly
        /// what was recorded beyond the token limit.
        #[test]
        fn token_overage_telescopes(limit in 0u64..5_000, calls in prop::collection::vec(0u64..800, 0..40)) {
            let rule = tokens(limit, Some("1"));
            let mut before = UsageTotals::ZERO;
            let mut billed = 0u64;
            for c in calls {
                let call = UsageTotals::new(c, Decimal::ZERO);
                if let Some(o) = overage(&rule, before, call).unwrap() {
                    prop_assert!(o.tokens <= c);
                    prop_assert_eq!(o.amount, Decimal::from(o.tokens) / Decimal::ONE_THOUSAND);
                    billed += o.tokens;
                }
                before = before.checked_add(call).unwrap();
            }
            prop_assert_eq!(billed, before.tokens.saturating_sub(limit));
        }

        /// The same for a cost limit priced pro rata: the amounts add up to the cost beyond it.
        #[test]
        fn cost_overage_telescopes(limit_cents in 0i64..5_000, calls in prop::collection::vec((1u64..800, 0i64..300), 0..40)) {
            let rule = OverageRule::new(Limits { tokens: None, cost: Some(Decimal::new(limit_cents, 2)) }, None);
            let mut before = UsageTotals::ZERO;
            let mut billed = Decimal::ZERO;
            for (t, cents) in calls {
                let call = UsageTotals::new(t, Decimal::new(cents, 2));
                if let Some(o) = overage(&rule, before, call).unwrap() {
                    prop_assert!(o.amount <= call.cost);
                    prop_assert!(o.tokens <= t);
                    billed += o.amount;
                }
                before = before.checked_add(call).unwrap();
            }
            prop_assert_eq!(billed, (before.cost - Decimal::new(limit_cents, 2)).max(Decimal::ZERO));
        }
    }
}
