//! Credit grants: blocks of credits with a priority, a start and an expiry, burned down in a
//! fixed order. Pure functions on values; every store persists a wallet's grants (see
//! [`CreditStore::add_grant`](crate::store::CreditStore::add_grant)) and calls these
//! functions under the wallet's lock, so that the memory and database stores agree.
//!
//! # Grants in a wallet
//!
//! A wallet's balance stays the source of truth; its grants *partition* it: each grant's
//! `remaining` is part of the balance, and what no grant holds (plain top-ups made with
//! `add_credits`) is the wallet's *ungranted* part, spent after every grant. A call's hold
//! takes from the grants first ([`apply_hold`]: the grant's `held` grows, its `remaining`
//! stays), then from the ungranted part; the capture ([`capture_hold`]) spends what the hold
//! took, grant by grant, and the ledger entry lists the grants that paid
//! ([`GrantTake`]s). A grant that expired (or is not effective yet) stops counting at the
//! instant of the operation: its unheld remainder is [`unusable`] and is subtracted from
//! the wallet's available balance, without any job writing it off. A hold made before the
//! expiry is still captured from the grant: the credits were spent while it counted.
//!
//! # Burn-down order
//!
//! A deduction takes from the grants usable at that instant (effective, not expired, with
//! something left), in this order:
//!
//! 1. **priority**: the lower number first (0 before 1);
//! 2. then the **soonest expiry** (a grant that never expires comes last);
//! 3. then the **oldest** (earliest `effective_at`), and finally the lowest id, so the order
//!    is total and deterministic.
//!
//! A grant that expired stops counting: its remainder is never taken, nor counted as
//! available. A grant that is not effective yet does not count either. What calls in flight
//! hold of a grant (`held`) is not available either.
//!
//! # Rollover at period reset
//!
//! A grant with a [`Rollover`] is reset at each period reset ([`reset_period`]): its
//! remaining balance becomes `min(max, max(remaining, min))`. So `min` tops the grant up
//! (a recurring allowance: `min = max = amount`), and `max` caps what carries over (`max = 0`
//! loses what was not used). A grant without rollover is untouched by resets: it lasts until
//! it is used up or expires (purchased or promotional credits).
//!
//! ```
//! use ai_metering_core::grants::{CreditGrant, GrantId, apply_deduction};
//! use chrono::{Duration, TimeZone, Utc};
//! use rust_decimal::Decimal;
//!
//! let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
//! let mut grants = vec![
//!     CreditGrant::new(GrantId(1), Decimal::from(10), t0).unwrap(),
//!     CreditGrant::new(GrantId(2), Decimal::from(5), t0)
//!         .unwrap()
//!         .expiring_at(t0 + Duration::days(30)),
//! ];
//! let d = apply_deduction(&mut grants, Decimal::from(7), t0 + Duration::days(1)).unwrap();
//! // The grant that expires first is burned first.
//! assert_eq!(d.takes[0].grant, GrantId(2));
//! assert_eq!(d.takes[0].amount, Decimal::from(5));
//! assert_eq!(d.takes[1].amount, Decimal::from(2));
//! assert_eq!(d.uncovered, Decimal::ZERO);
//! ```

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The id of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(pub i64);

/// What carries over at a period reset; see the [module docs](self#rollover-at-period-reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollover {
    /// The balance after a reset is at least this (a top-up).
    pub min: Decimal,
    /// The balance after a reset is at most this (a cap on what carries over).
    pub max: Decimal,
}

impl Rollover {
    /// The balance after a reset of a grant that has `remaining` left.
    ///
    /// ```
    /// # use ai_metering_core::grants::Rollover;
    /// # use rust_decimal::Decimal;
    /// let r = Rollover { min: Decimal::from(2), max: Decimal::from(5) };
    /// assert_eq!(r.apply(Decimal::from(1)), Decimal::from(2));
    /// assert_eq!(r.apply(Decimal::from(3)), Decimal::from(3));
    /// assert_eq!(r.apply(Decimal::from(9)), Decimal::from(5));
    /// ```
    pub fn apply(&self, remaining: Decimal) -> Decimal {
        remaining.max(self.min).min(self.max)
    }
}

/// A block of credits; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditGrant {
    /// The grant's id.
    pub id: GrantId,
    /// The amount granted.
    pub amount: Decimal,
    /// What is left of it (`0 <= remaining <= amount`).
    pub remaining: Decimal,
    /// What calls in flight hold of `remaining` (`0 <= held <= remaining`): not available.
    #[serde(default)]
    pub held: Decimal,
    /// Burn-down priority: lower numbers are burned first.
    pub priority: u32,
    /// From when it can be used.
    pub effective_at: DateTime<Utc>,
    /// When it stops counting; `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// What happens to it at period resets; `None` leaves it untouched.
    pub rollover: Option<Rollover>,
}

impl CreditGrant {
    /// A grant of `amount` (all of it remaining), priority 0, usable from `effective_at`,
    /// never expiring, without rollover.
    ///
    /// ```
    /// # use ai_metering_core::grants::{CreditGrant, GrantId};
    /// # use rust_decimal::Decimal;
    /// let g = CreditGrant::new(GrantId(1), Decimal::TEN, chrono::Utc::now()).unwrap();
    /// assert_eq!(g.remaining, Decimal::TEN);
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a negative amount.
    pub fn new(id: GrantId, amount: Decimal, effective_at: DateTime<Utc>) -> Result<Self> {
        let grant = Self {
            id,
            amount,
            remaining: amount,
            held: Decimal::ZERO,
            priority: 0,
            effective_at,
            expires_at: None,
            rollover: None,
        };
        grant.validate()?;
        Ok(grant)
    }

    /// Sets the priority (lower burns first).
    ///
    /// ```
    /// # use ai_metering_core::grants::{CreditGrant, GrantId};
    /// # use rust_decimal::Decimal;
    /// let g = CreditGrant::new(GrantId(1), Decimal::TEN, chrono::Utc::now()).unwrap().with_priority(3);
    /// assert_eq!(g.priority, 3);
    /// ```
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the expiry.
    ///
    /// ```
    /// # use ai_metering_core::grants::{CreditGrant, GrantId};
    /// # use rust_decimal::Decimal;
    /// let t = chrono::Utc::now();
    /// let g = CreditGrant::new(GrantId(1), Decimal::TEN, t).unwrap().expiring_at(t);
    /// assert!(!g.is_usable_at(t));
    /// ```
    pub fn expiring_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the rollover rule.
    ///
    /// ```
    /// # use ai_metering_core::grants::{CreditGrant, GrantId, Rollover};
    /// # use rust_decimal::Decimal;
    /// let g = CreditGrant::new(GrantId(1), Decimal::TEN, chrono::Utc::now())
    ///     .unwrap()
    ///     .with_rollover(Rollover { min: Decimal::ZERO, max: Decimal::TEN });
    /// assert!(g.validate().is_ok());
    /// ```
    pub fn with_rollover(mut self, rollover: Rollover) -> Self {
        self.rollover = Some(rollover);
        self
    }

    /// Checks the grant's own consistency.
    ///
    /// # Errors
    /// [`Error::InvalidInput`]: a negative amount, a remainder outside `0..=amount`, a held
    /// amount outside `0..=remaining`, an expiry not after the start, or a rollover outside
    /// `0 <= min <= max <= amount`.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidInput(format!("grant {}: {why}", self.id.0)));
        if self.amount < Decimal::ZERO {
            return bad(format!("amount {} is negative", self.amount));
        }
        if self.remaining < Decimal::ZERO || self.remaining > self.amount {
            return bad(format!(
                "remaining {} is outside 0..={}",
                self.remaining, self.amount
            ));
        }
        if self.held < Decimal::ZERO || self.held > self.remaining {
            return bad(format!(
                "held {} is outside 0..={}",
                self.held, self.remaining
            ));
        }
        if self.expires_at.is_some_and(|e| e <= self.effective_at) {
            return bad("it expires before it starts".into());
        }
        if let Some(r) = self.rollover
            && !(Decimal::ZERO <= r.min && r.min <= r.max && r.max <= self.amount)
        {
            return bad(format!(
                "rollover min {} and max {} must satisfy 0 <= min <= max <= amount",
                r.min, r.max
            ));
        }
        Ok(())
    }

    /// True when the grant counts at `at`: effective and not expired (whatever is left).
    pub fn is_usable_at(&self, at: DateTime<Utc>) -> bool {
        self.effective_at <= at && self.expires_at.is_none_or(|e| at < e)
    }

    /// What the grant can give at `at`: its unheld remainder while usable, else zero.
    pub fn available_at(&self, at: DateTime<Utc>) -> Decimal {
        if self.is_usable_at(at) {
            self.free()
        } else {
            Decimal::ZERO
        }
    }

    /// The remainder no call holds, usable or not.
    pub fn free(&self) -> Decimal {
        // held <= remaining for a valid grant; saturating for one that is not.
        self.remaining.saturating_sub(self.held).max(Decimal::ZERO)
    }

    /// The burn-down order of two grants (see the [module docs](self#burn-down-order)).
    pub fn burn_cmp(&self, other: &Self) -> Ordering {
        let expiry = |g: &Self| (g.expires_at.is_none(), g.expires_at);
        self.priority
            .cmp(&other.priority)
            .then_with(|| expiry(self).cmp(&expiry(other)))
            .then_with(|| self.effective_at.cmp(&other.effective_at))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// The total available at `at` across `grants`.
///
/// # Errors
/// [`Error::Overflow`] when the sum does not fit a `Decimal`.
pub fn available(grants: &[CreditGrant], at: DateTime<Utc>) -> Result<Decimal> {
    grants.iter().try_fold(Decimal::ZERO, |sum, g| {
        sum.checked_add(g.available_at(at))
            .ok_or(Error::Overflow("the credits available"))
    })
}

/// The indexes of the grants usable at `at` with something left, in burn-down order.
pub fn burn_order(grants: &[CreditGrant], at: DateTime<Utc>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..grants.len())
        .filter(|&i| {
            grants
                .get(i)
                .is_some_and(|g| g.available_at(at) > Decimal::ZERO)
        })
        .collect();
    order.sort_by(|&a, &b| match (grants.get(a), grants.get(b)) {
        (Some(a), Some(b)) => a.burn_cmp(b),
        _ => Ordering::Equal,
    });
    order
}

/// What one grant gave to a deduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTake {
    /// The grant.
    pub grant: GrantId,
    /// How much it gave (positive).
    pub amount: Decimal,
}

/// The result of [`apply_deduction`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deduction {
    /// What each grant gave, in burn-down order; grants that gave nothing are not listed.
    pub takes: Vec<GrantTake>,
    /// The part of the deduction no grant could cover (to charge elsewhere: a wallet balance,
    /// an overdraft, or a refusal).
    pub uncovered: Decimal,
}

impl Deduction {
    /// The total the grants gave.
    pub fn covered(&self) -> Decimal {
        // Each take is at most the requested amount, and they sum to at most it: no overflow.
        self.takes
            .iter()
            .fold(Decimal::ZERO, |sum, t| sum.saturating_add(t.amount))
    }
}

/// Deducts `amount` from `grants` at `at`, in burn-down order, and returns what each grant
/// gave. Takes as much as the usable grants hold; what they cannot cover is reported as
/// [`Deduction::uncovered`] (check [`available`] first for all-or-nothing semantics).
///
/// # Errors
/// [`Error::InvalidInput`] for a negative amount or an invalid grant (nothing changes then).
pub fn apply_deduction(
    grants: &mut [CreditGrant],
    amount: Decimal,
    at: DateTime<Utc>,
) -> Result<Deduction> {
    if amount < Decimal::ZERO {
        return Err(Error::InvalidInput(format!(
            "a deduction must not be negative, not {amount}"
        )));
    }
    for g in grants.iter() {
        g.validate()?;
    }
    let mut left = amount;
    let mut takes = Vec::new();
    for i in burn_order(grants, at) {
        if left <= Decimal::ZERO {
            break;
        }
        let Some(grant) = grants.get_mut(i) else {
            continue;
        };
        let take = grant.free().min(left);
        // take <= remaining - held and take <= left: both subtractions stay >= 0.
        grant.remaining -= take;
        left -= take;
        takes.push(GrantTake {
            grant: grant.id,
            amount: take,
        });
    }
    Ok(Deduction {
        takes,
        uncovered: left,
    })
}

/// The unheld remainder of the grants that do not count at `at` (expired, or not effective
/// yet): a wallet's available balance is its balance, minus what is held, minus this.
///
/// ```
/// # use ai_metering_core::grants::{CreditGrant, GrantId, unusable};
/// # use chrono::{Duration, TimeZone, Utc};
/// # use rust_decimal::Decimal;
/// let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// let g = CreditGrant::new(GrantId(1), Decimal::TEN, t0).unwrap().expiring_at(t0 + Duration::days(1));
/// assert_eq!(unusable(&[g.clone()], t0).unwrap(), Decimal::ZERO);
/// assert_eq!(unusable(&[g], t0 + Duration::days(1)).unwrap(), Decimal::TEN);
/// ```
///
/// # Errors
/// [`Error::Overflow`] when the sum does not fit a `Decimal`.
pub fn unusable(grants: &[CreditGrant], at: DateTime<Utc>) -> Result<Decimal> {
    grants
        .iter()
        .filter(|g| !g.is_usable_at(at))
        .try_fold(Decimal::ZERO, |sum, g| {
            sum.checked_add(g.free())
                .ok_or(Error::Overflow("the credits of expired grants"))
        })
}

/// Holds `amount` on `grants` at `at`, in burn-down order: each grant's `held` grows by what
/// it gives (its `remaining` stays until the capture). What the usable grants cannot cover is
/// [`Deduction::uncovered`]: the part of the hold on the wallet's ungranted balance.
///
/// ```
/// # use ai_metering_core::grants::{CreditGrant, GrantId, apply_hold};
/// # use rust_decimal::Decimal;
/// let t = chrono::Utc::now();
/// let mut grants = vec![CreditGrant::new(GrantId(1), Decimal::from(3), t).unwrap()];
/// let d = apply_hold(&mut grants, Decimal::from(5), t).unwrap();
/// assert_eq!((grants[0].held, d.uncovered), (Decimal::from(3), Decimal::from(2)));
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for a negative amount or an invalid grant (nothing changes then).
pub fn apply_hold(
    grants: &mut [CreditGrant],
    amount: Decimal,
    at: DateTime<Utc>,
) -> Result<Deduction> {
    let mut scratch = grants.to_vec();
    let d = apply_deduction(&mut scratch, amount, at)?;
    for take in &d.takes {
        if let Some(g) = grants.iter_mut().find(|g| g.id == take.grant) {
            // take <= remaining - held: held stays <= remaining.
            g.held += take.amount;
        }
    }
    Ok(d)
}

/// Gives back what a hold took from each grant (`takes`, as [`apply_hold`] returned them).
/// A grant no longer listed is skipped; a held amount never goes below zero.
pub fn release_hold(grants: &mut [CreditGrant], takes: &[GrantTake]) {
    for take in takes {
        if let Some(g) = grants.iter_mut().find(|g| g.id == take.grant) {
            g.held = g.held.saturating_sub(take.amount).max(Decimal::ZERO);
        }
    }
}

/// Captures a hold of `held` (which took `takes` from the grants) for an `actual` cost at
/// `at`: [`release_hold`], then [`spend_hold`]. The returned [`Deduction`] lists what each
/// grant paid; its `uncovered` is what the ungranted balance pays.
///
/// ```
/// # use ai_metering_core::grants::{CreditGrant, GrantId, apply_hold, capture_hold};
/// # use rust_decimal::Decimal;
/// let t = chrono::Utc::now();
/// let mut grants = vec![CreditGrant::new(GrantId(1), Decimal::TEN, t).unwrap()];
/// let hold = apply_hold(&mut grants, Decimal::from(4), t).unwrap();
/// let paid = capture_hold(&mut grants, &hold.takes, Decimal::from(4), Decimal::from(3), t).unwrap();
/// assert_eq!(paid.covered(), Decimal::from(3));
/// assert_eq!((grants[0].remaining, grants[0].held), (Decimal::from(7), Decimal::ZERO));
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for a negative amount or an invalid grant (nothing changes then).
pub fn capture_hold(
    grants: &mut [CreditGrant],
    takes: &[GrantTake],
    held: Decimal,
    actual: Decimal,
    at: DateTime<Utc>,
) -> Result<Deduction> {
    let mut next = grants.to_vec();
    release_hold(&mut next, takes);
    let paid = spend_hold(&mut next, takes, held, actual, at)?;
    grants.clone_from_slice(&next);
    Ok(paid)
}

/// Spends `actual` for a hold of `held` that took `takes` and was given back already
/// ([`release_hold`]): first from the grants the hold took from (in the hold's order, up to
/// what it took: even from a grant that expired since, as the credits were spent while it
/// counted), then from the hold's ungranted part, and what goes beyond the hold from the
/// grants usable at `at` in burn-down order. The returned [`Deduction`] lists what each
/// grant paid; its `uncovered` is what the ungranted balance pays (never refused: the money
/// was spent). Without a hold, pass no takes and a zero `held`: a plain deduction.
///
/// # Errors
/// [`Error::InvalidInput`] for a negative amount or an invalid grant (nothing changes then).
pub fn spend_hold(
    grants: &mut [CreditGrant],
    takes: &[GrantTake],
    held: Decimal,
    actual: Decimal,
    at: DateTime<Utc>,
) -> Result<Deduction> {
    if actual < Decimal::ZERO {
        return Err(Error::InvalidInput(format!(
            "a captured amount must not be negative, not {actual}"
        )));
    }
    let mut next = grants.to_vec();
    let mut left = actual;
    let mut paid: Vec<GrantTake> = Vec::new();
    for take in takes {
        if left <= Decimal::ZERO {
            break;
        }
        let Some(g) = next.iter_mut().find(|g| g.id == take.grant) else {
            continue;
        };
        let amount = take.amount.min(left).min(g.free());
        if amount <= Decimal::ZERO {
            continue;
        }
        // amount <= remaining - held and amount <= left: both stay >= 0.
        g.remaining -= amount;
        left -= amount;
        paid.push(GrantTake {
            grant: g.id,
            amount,
        });
    }
    let on_grants = takes
        .iter()
        .fold(Decimal::ZERO, |sum, t| sum.saturating_add(t.amount));
    let ungranted_hold = held.saturating_sub(on_grants).max(Decimal::ZERO);
    let from_ungranted = ungranted_hold.min(left).max(Decimal::ZERO);
    left -= from_ungranted;
    let beyond = apply_deduction(&mut next, left, at)?;
    for take in beyond.takes {
        match paid.iter_mut().find(|t| t.grant == take.grant) {
            Some(t) => t.amount = t.amount.saturating_add(take.amount),
            None => paid.push(take),
        }
    }
    grants.clone_from_slice(&next);
    Ok(Deduction {
        takes: paid,
        uncovered: from_ungranted.saturating_add(beyond.uncovered),
    })
}

/// How a reset changed one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloverChange {
    /// The grant.
    pub grant: GrantId,
    /// Its remainder before the reset.
    pub before: Decimal,
    /// Its remainder after.
    pub after: Decimal,
}

/// Applies each rollover rule at a period reset at `at`: every grant that has one and is
/// usable at `at` gets `remaining = min(max, max(remaining, min))`. Returns the grants whose
/// remainder changed. Expired and future grants are left alone.
pub fn reset_period(grants: &mut [CreditGrant], at: DateTime<Utc>) -> Vec<RolloverChange> {
    let mut changes = Vec::new();
    for g in grants.iter_mut() {
        let Some(rule) = g.rollover else { continue };
        if !g.is_usable_at(at) {
            continue;
        }
        // Keep the invariants held <= remaining <= amount even for a rule validate() would
        // refuse: what calls in flight hold is never taken away.
        let after = rule.apply(g.remaining).min(g.amount).max(g.held);
        if after != g.remaining {
            changes.push(RolloverChange {
                grant: g.id,
                before: g.remaining,
                after,
            });
            g.remaining = after;
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
    }

    fn grant(id: i64, amount: i64) -> CreditGrant {
        CreditGrant::new(GrantId(id), Decimal::from(amount), t0()).unwrap()
    }

    fn ids(d: &Deduction) -> Vec<i64> {
        d.takes.iter().map(|t| t.grant.0).collect()
    }

    #[test]
    fn priority_beats_expiry_which_beats_age() {
        let now = t0() + Duration::days(1);
        let mut grants = vec![
            grant(1, 10)
                .expiring_at(t0() + Duration::days(2))
                .with_priority(5),
            grant(2, 10).with_priority(1), // never expires, but higher priority
            grant(3, 10)
                .expiring_at(t0() + Duration::days(9))
                .with_priority(1),
            grant(4, 10)
                .expiring_at(t0() + Duration::days(9))
                .with_priority(1),
        ];
        // Grant 4 is older than 3.
        grants[3].effective_at = t0() - Duration::days(3);
        let d = apply_deduction(&mut grants, Decimal::from(35), now).unwrap();
        assert_eq!(ids(&d), vec![4, 3, 2, 1]);
        assert_eq!(d.takes[3].amount, Decimal::from(5));
        assert_eq!(grants[0].remaining, Decimal::from(5));
    }

    #[test]
    fn expired_and_future_grants_do_not_count() {
        let now = t0() + Duration::days(10);
        let mut grants = vec![
            grant(1, 10).expiring_at(now), // expires exactly now: gone
            grant(2, 10),
            CreditGrant::new(GrantId(3), Decimal::TEN, now + Duration::seconds(1)).unwrap(),
        ];
        assert_eq!(available(&grants, now).unwrap(), Decimal::TEN);
        let d = apply_deduction(&mut grants, Decimal::from(25), now).unwrap();
        assert_eq!(ids(&d), vec![2]);
        assert_eq!(d.uncovered, Decimal::from(15));
        assert_eq!(grants[0].remaining, Decimal::TEN);
        assert_eq!(grants[2].remaining, Decimal::TEN);
    }

    #[test]
    fn fractional_amounts_are_exact() {
        let mut grants = vec![grant(1, 1)];
        let d = apply_deduction(&mut grants, "0.000000123".parse().unwrap(), t0()).unwrap();
        assert_eq!(d.covered(), "0.000000123".parse().unwrap());
        assert_eq!(grants[0].remaining, "0.999999877".parse().unwrap());
    }

    #[test]
    fn invalid_input_changes_nothing() {
        let mut grants = vec![grant(1, 10)];
        assert!(apply_deduction(&mut grants, Decimal::NEGATIVE_ONE, t0()).is_err());
        grants.push(CreditGrant {
            remaining: Decimal::from(11),
            ..grant(2, 10)
        });
        assert!(apply_deduction(&mut grants, Decimal::ONE, t0()).is_err());
        assert_eq!(grants[0].remaining, Decimal::TEN);
        assert!(CreditGrant::new(GrantId(1), Decimal::NEGATIVE_ONE, t0()).is_err());
        assert!(grant(1, 10).expiring_at(t0()).validate().is_err());
        let bad = Rollover {
            min: Decimal::from(5),
            max: Decimal::from(2),
        };
        assert!(grant(1, 10).with_rollover(bad).validate().is_err());
    }

    #[test]
    fn rollover_tops_up_and_caps_at_reset() {
        let now = t0() + Duration::days(31);
        let mut grants = vec![
            // A monthly allowance: refilled to its amount.
            grant(1, 100).with_rollover(Rollover {
                min: Decimal::from(100),
                max: Decimal::from(100),
            }),
            // Carry over at most 20.
            grant(2, 100).with_rollover(Rollover {
                min: Decimal::ZERO,
                max: Decimal::from(20),
            }),
            // No rollover: untouched.
            grant(3, 100),
            // Expired: untouched.
            grant(4, 100)
                .expiring_at(t0() + Duration::days(1))
                .with_rollover(Rollover {
                    min: Decimal::ZERO,
                    max: Decimal::ZERO,
                }),
        ];
        for g in &mut grants {
            g.remaining = Decimal::from(60);
        }
        let changes = reset_period(&mut grants, now);
        assert_eq!(changes.len(), 2);
        let left: Vec<_> = grants.iter().map(|g| g.remaining).collect();
        assert_eq!(
            left,
            [100, 20, 60, 60].map(Decimal::from).to_vec(),
            "{changes:?}"
        );
    }

    #[test]
    fn holds_take_in_burn_order_and_expired_grants_are_unusable() {
        let now = t0() + Duration::days(1);
        let mut grants = vec![
            grant(1, 10).with_priority(1),
            grant(2, 4).expiring_at(t0() + Duration::days(2)),
            grant(3, 5).expiring_at(now), // expired at `now`
        ];
        assert_eq!(unusable(&grants, now).unwrap(), Decimal::from(5));
        let hold = apply_hold(&mut grants, Decimal::from(6), now).unwrap();
        assert_eq!(ids(&hold), vec![2, 1]);
        assert_eq!(hold.uncovered, Decimal::ZERO);
        assert_eq!(
            (grants[0].held, grants[1].held, grants[2].held),
            (Decimal::from(2), Decimal::from(4), Decimal::ZERO)
        );
        // Held credits are neither available nor unusable.
        assert_eq!(available(&grants, now).unwrap(), Decimal::from(8));
        let later = t0() + Duration::days(3);
        assert_eq!(unusable(&grants, later).unwrap(), Decimal::from(5));
        // A second hold cannot take what the first holds.
        let more = apply_hold(&mut grants, Decimal::from(9), now).unwrap();
        assert_eq!(ids(&more), vec![1]);
        assert_eq!(more.uncovered, Decimal::ONE);
        release_hold(&mut grants, &more.takes);
        assert_eq!(grants[0].held, Decimal::from(2));
    }

    #[test]
    fn a_capture_spends_what_the_hold_took_even_after_expiry() {
        let mut grants = vec![
            grant(1, 4).expiring_at(t0() + Duration::days(1)),
            grant(2, 10).with_priority(1),
        ];
        // 4 from grant 1, 1 from grant 2, 2 from the ungranted balance.
        let hold = apply_hold(&mut grants, Decimal::from(7), t0()).unwrap();
        assert_eq!(hold.uncovered, Decimal::ZERO);
        let held = Decimal::from(7);
        let after_expiry = t0() + Duration::days(2);
        let paid = capture_hold(
            &mut grants,
            &hold.takes,
            held,
            Decimal::from(5),
            after_expiry,
        )
        .unwrap();
        assert_eq!(ids(&paid), vec![1, 2]);
        assert_eq!(paid.uncovered, Decimal::ZERO);
        assert_eq!(grants[0].remaining, Decimal::ZERO);
        assert_eq!(
            (grants[1].remaining, grants[1].held),
            (Decimal::from(9), Decimal::ZERO)
        );
        // Beyond the hold: the hold's ungranted part, then the usable grants.
        let hold = apply_hold(&mut grants, Decimal::ONE, after_expiry).unwrap();
        let paid = capture_hold(
            &mut grants,
            &hold.takes,
            Decimal::ONE,
            Decimal::from(12),
            after_expiry,
        )
        .unwrap();
        assert_eq!(
            paid.takes,
            vec![GrantTake {
                grant: GrantId(2),
                amount: Decimal::from(9)
            }]
        );
        assert_eq!(paid.uncovered, Decimal::from(3));
        assert!(
            capture_hold(&mut grants, &[], Decimal::ZERO, Decimal::NEGATIVE_ONE, t0()).is_err()
        );
    }

    #[test]
    fn a_reset_never_takes_what_is_held() {
        let mut grants = vec![grant(1, 10).with_rollover(Rollover {
            min: Decimal::ZERO,
            max: Decimal::ONE,
        })];
        apply_hold(&mut grants, Decimal::from(4), t0()).unwrap();
        let changes = reset_period(&mut grants, t0());
        assert_eq!(changes[0].after, Decimal::from(4));
        assert_eq!(grants[0].remaining, Decimal::from(4));
        assert!(grants[0].validate().is_ok());
    }

    fn arb_grants() -> impl Strategy<Value = Vec<CreditGrant>> {
        let one = (
            0u32..3,
            0i64..10_000,
            0i64..=10_000,
            -5i64..5,
            proptest::option::of(-3i64..8),
        )
            .prop_map(|(priority, cents, left_pct, start, expiry)| {
                let amount = Decimal::new(cents, 2);
                let remaining = amount * Decimal::new(left_pct, 4);
                let effective_at = t0() + Duration::days(start);
                CreditGrant {
                    id: GrantId(0),
                    amount,
                    remaining,
                    held: Decimal::ZERO,
                    priority,
                    effective_at,
                    expires_at: expiry.map(|e| effective_at + Duration::days(e.max(1))),
                    rollover: None,
                }
            });
        proptest::collection::vec(one, 0..8).prop_map(|mut gs| {
            for (i, g) in gs.iter_mut().enumerate() {
                g.id = GrantId(i as i64);
            }
            gs
        })
    }

    proptest! {
        #[test]
        fn holds_and_captures_conserve_the_grants(
            mut grants in arb_grants(),
            hold_cents in 0i64..30_000,
            actual_cents in 0i64..30_000,
            day in -6i64..12,
        ) {
            let at = t0() + Duration::days(day);
            let before = grants.clone();
            let total = |gs: &[CreditGrant]| gs.iter().map(|g| g.remaining).sum::<Decimal>();
            let held = Decimal::new(hold_cents, 2);
            let hold = apply_hold(&mut grants, held, at).unwrap();
            prop_assert_eq!(hold.covered() + hold.uncovered, held);
            for g in &grants {
                prop_assert!(g.validate().is_ok(), "{:?}", g);
            }
            // A hold changes no remainder.
            prop_assert_eq!(total(&grants), total(&before));
            let actual = Decimal::new(actual_cents, 2);
            let paid = capture_hold(&mut grants, &hold.takes, held, actual, at).unwrap();
            prop_assert_eq!(paid.covered() + paid.uncovered, actual);
            prop_assert_eq!(total(&before) - total(&grants), paid.covered());
            for (old, new) in before.iter().zip(&grants) {
                prop_assert_eq!(new.held, Decimal::ZERO);
                prop_assert!(new.validate().is_ok());
                let taken: Decimal = paid.takes.iter().filter(|t| t.grant == old.id).map(|t| t.amount).sum();
                prop_assert_eq!(old.remaining - new.remaining, taken);
                // Only grants usable at `at` give anything (the hold was made at `at` too).
                if !old.is_usable_at(at) {
                    prop_assert_eq!(taken, Decimal::ZERO);
                }
            }
        }

        #[test]
        fn deductions_balance_and_respect_validity(
            mut grants in arb_grants(),
            cents in 0i64..30_000,
            day in -6i64..12,
        ) {
            let at = t0() + Duration::days(day);
            let amount = Decimal::new(cents, 2);
            let before = grants.clone();
            let avail = available(&grants, at).unwrap();
            let d = apply_deduction(&mut grants, amount, at).unwrap();

            // The total deducted is the sum taken from grants, plus what none covered.
            prop_assert_eq!(d.covered() + d.uncovered, amount);
            prop_assert_eq!(d.covered(), amount.min(avail));
            prop_assert!(d.uncovered >= Decimal::ZERO);
            for (old, new) in before.iter().zip(&grants) {
                let taken: Decimal = d.takes.iter().filter(|t| t.grant == old.id).map(|t| t.amount).sum();
                prop_assert_eq!(old.remaining - new.remaining, taken);
                prop_assert!(new.remaining >= Decimal::ZERO);
                // Never takes from expired or future grants.
                if !old.is_usable_at(at) {
                    prop_assert_eq!(taken, Decimal::ZERO);
                }
            }
            // Burn-down order: a grant gives only when every earlier usable grant is empty.
            for pair in d.takes.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let ga = &grants[a.grant.0 as usize];
                let gb = &grants[b.grant.0 as usize];
                prop_assert_eq!(ga.remaining, Decimal::ZERO);
                prop_assert_eq!(ga.burn_cmp(gb), Ordering::Less);
            }
            for g in &grants {
                if g.available_at(at) > Decimal::ZERO {
                    // A grant with something left: nothing later in the order gave anything.
                    for t in &d.takes {
                        let other = &grants[t.grant.0 as usize];
                        prop_assert!(other.burn_cmp(g) != Ordering::Greater || other.id == g.id);
                    }
                }
            }
        }
    }
}
