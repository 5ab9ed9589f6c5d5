//! One billable's standing: plan, limits and how much of them is used, and its wallet.

use ai_metering_core::limit::{LimitCheck, Limits, UsageTotals};
use ai_metering_core::period::Period;
use ai_metering_core::plan::{BillingMode, OveragePolicy};
use ai_metering_core::store::{ReportStore, Store, UsageSums};
use ai_metering_core::{Billable, Currency, Metering};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::DashboardError;

/// Where a billable stands against its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LimitState {
    /// A limit is reached.
    Over,
    /// The usage reached an approaching threshold.
    Approaching,
    /// Within its limits.
    Ok,
    /// No limit applies.
    Unlimited,
    /// The status could not be computed (see `error`).
    Unknown,
}

impl LimitState {
    fn of(check: &LimitCheck) -> Self {
        if check.limits.is_unlimited() {
            Self::Unlimited
        } else if check.exceeded.is_some() {
            Self::Over
        } else if check.approaching {
            Self::Approaching
        } else {
            Self::Ok
        }
    }

    /// A word for people.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Over => "Over limit",
            Self::Approaching => "Approaching",
            Self::Ok => "OK",
            Self::Unlimited => "Unlimited",
            Self::Unknown => "Unknown",
        }
    }

    /// True for the states the overview warns about.
    pub(crate) fn needs_attention(&self) -> bool {
        matches!(self, Self::Over | Self::Approaching)
    }
}

/// A plan, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlanSummary {
    /// Its slug.
    pub(crate) slug: String,
    /// Its name.
    pub(crate) name: String,
}

/// A wallet, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct WalletView {
    /// Its currency.
    pub(crate) currency: Currency,
    /// The ledger balance.
    pub(crate) balance: Decimal,
    /// Held by calls in flight.
    pub(crate) held: Decimal,
    /// What can still be spent.
    pub(crate) available: Decimal,
}

/// A billable's standing.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BillableStatus {
    /// Who.
    pub(crate) billable: Billable,
    /// Usage in the view's window (the viewer's tenant only).
    pub(crate) usage: UsageSums,
    /// The plan in force.
    pub(crate) plan: Option<PlanSummary>,
    /// How usage is paid for (plan limits or credits).
    pub(crate) billing_mode: Option<BillingMode>,
    /// What happens beyond the limits.
    pub(crate) overage_policy: Option<OveragePolicy>,
    /// The current period of its limits.
    pub(crate) period: Option<Period>,
    /// Where it stands.
    pub(crate) state: LimitState,
    /// The limit evaluation of its current period (usage recorded and reserved, all
    /// tenants), with limits, remainders, percentage and reset instant.
    pub(crate) limit: Option<LimitCheck>,
    /// Its wallet in the catalog's currency.
    pub(crate) wallet: Option<WalletView>,
    /// Why part of the status is missing.
    pub(crate) error: Option<String>,
}

impl BillableStatus {
    /// The limits in force (none when unknown).
    pub(crate) fn limits(&self) -> Limits {
        self.limit.as_ref().map(|c| c.limits).unwrap_or_default()
    }

    /// The usage the limits counted.
    pub(crate) fn used(&self) -> UsageTotals {
        self.limit.as_ref().map(|c| c.used).unwrap_or_default()
    }
}

/// The standing of `billable`, whose usage in the view's window is `usage`. A failure of the
/// limit check or the wallet is reported in the status, not as an error, so that one broken
/// subscription does not hide every other billable.
pub(crate) async fn status_of<S: Store + ReportStore>(
    metering: &Metering<S>,
    billable: Billable,
    usage: UsageSums,
) -> BillableStatus {
    let mut errors = Vec::new();
    let mut status = BillableStatus {
        billable,
        usage,
        plan: None,
        billing_mode: None,
        overage_policy: None,
        period: None,
        state: LimitState::Unknown,
        limit: None,
        wallet: None,
        error: None,
    };
    match metering.check(&status.billable, UsageTotals::ZERO).await {
        Ok(q) => {
            let e = q.entitlement;
            status.plan = e.plan.map(|p| PlanSummary {
                slug: p.slug,
                name: p.name,
            });
            status.billing_mode = Some(e.billing_mode);
            status.overage_policy = Some(e.overage_policy);
            status.period = e.period;
            status.state = LimitState::of(&q.check);
            status.limit = Some(q.check);
        }
        Err(e) => errors.push(DashboardError::from(e).to_string()),
    }
    let currency = metering.catalog().currency();
    match metering
        .store()
        .wallet_at(&status.billable, currency, metering.now())
        .await
    {
        // A plan-mode billable that never had credits has no wallet to show.
        Ok(w)
            if status.billing_mode == Some(BillingMode::Credits)
                || !w.balance.is_zero()
                || !w.held.is_zero() =>
        {
            status.wallet = Some(WalletView {
                available: w.available(),
                currency: w.currency,
                balance: w.balance,
                held: w.held,
            });
        }
        Ok(_) => {}
        Err(e) => errors.push(DashboardError::from(e).to_string()),
    }
    if !errors.is_empty() {
        status.error = Some(errors.join("; "));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(limits: Limits, used: u64) -> LimitCheck {
        ai_metering_core::limit::evaluate(
            &limits,
            UsageTotals::new(used, Decimal::ZERO),
            UsageTotals::ZERO,
            &Default::default(),
        )
    }

    #[test]
    fn states_follow_the_limit_check() {
        let limits = Limits {
            tokens: Some(100),
            cost: None,
        };
        assert_eq!(LimitState::of(&check(limits, 10)), LimitState::Ok);
        assert_eq!(LimitState::of(&check(limits, 85)), LimitState::Approaching);
        assert_eq!(LimitState::of(&check(limits, 100)), LimitState::Over);
        assert_eq!(
            LimitState::of(&LimitCheck::unlimited()),
            LimitState::Unlimited
        );
        assert!(LimitState::Over.needs_attention() && !LimitState::Ok.needs_attention());
        // Sorting puts the most urgent first.
        assert!(LimitState::Over < LimitState::Approaching);
    }
}
