//! The reconciliation: do a store's usage rows, counters, wallet ledgers, holds,
//! reservations and overage rows agree, per billable?
//!
//! [`check_snapshot`] is a pure function over one billable's [`AuditSnapshot`];
//! [`reconcile`] runs it over every billable of an [`AuditStore`] (the CLI's
//! `ai-metering check`). Per billable it checks that:
//!
//! 1. each period counter's recorded tokens and cost equal the sums of the usage rows in
//!    its window ([`FindingKind::CounterMismatch`]), and, where the store keeps it, its
//!    reserved total equals the sum of its reservations
//!    ([`FindingKind::CounterReservedMismatch`]);
//! 2. each wallet's balance equals its ledger's credits minus debits
//!    ([`FindingKind::LedgerSum`]), and each entry's `balance_after` follows from the one
//!    before ([`FindingKind::LedgerChain`]);
//! 3. each wallet's held amount equals the sum of its credit holds
//!    ([`FindingKind::HeldMismatch`]); each reservation's hold exists and belongs to it alone
//!    ([`FindingKind::ReservationHoldMissing`], [`FindingKind::HoldSharedByReservations`]);
//!    and, as warnings, that no reservation or hold is left more than a grace past its expiry
//!    ([`FindingKind::StaleReservations`], [`FindingKind::StaleHolds`]: nobody sweeps);
//! 4. every overage row names an existing usage row of the same billable
//!    ([`FindingKind::OverageWithoutUsage`]), at most one per usage row
//!    ([`FindingKind::DuplicateOverage`]), never with a zero or negative amount
//!    ([`FindingKind::NonPositiveOverage`]);
//! 5. each credit grant keeps `0 <= held <= remaining <= amount`
//!    ([`FindingKind::GrantInvalid`]), its remaining amount equals what the ledger entries
//!    naming it added minus what they took ([`FindingKind::GrantLedger`]), and its held
//!    amount equals what the holds took from it ([`FindingKind::GrantHeld`]);
//! 6. optionally ([`CheckOptions::credit_debits`]), for a billable whose ledger has usage
//!    debits (credits mode): as many usage debits as usage rows with a positive cost, adding
//!    up to the same amount ([`FindingKind::UsageDebits`]): a row without its debit, or a
//!    debit without its row, is a partial settlement.
//!
//! Usage rows may be pruned (`ai-metering cleanup`) while counters and overages are kept:
//! [`CheckOptions::since`] limits checks 1, 4 and 6 to what happened after the cutoff.
//!
//! ```
//! use ai_metering_core::reconcile::{CheckOptions, reconcile};
//! use ai_metering_core::store::{CreditStore, MemoryStore};
//! use ai_metering_core::{Billable, Currency, Money};
//! use chrono::{TimeZone, Utc};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
//! let team = Billable::new("team", "acme");
//! store.add_credits(&team, Money::new(5.into(), Currency::USD), "top-up", at).await?;
//!
//! let report = reconcile(&store, &CheckOptions::at(at)).await?;
//! assert!(report.is_clean());
//! assert_eq!(report.checked.billables, 1);
//! # Ok::<_, ai_metering_core::store::StoreError>(())
//! # }).unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billable::Billable;
use crate::grants::GrantId;
use crate::limit::UsageTotals;
use crate::money::Currency;
use crate::store::{AuditSnapshot, AuditStore, Direction, HoldId, StoreResult, USAGE_DEBIT_REASON};

/// What [`reconcile`] and [`check_snapshot`] check, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// The current instant, against which expiries are judged.
    pub now: DateTime<Utc>,
    /// How long past its expiry a reservation or hold may still exist (the sweeper runs
    /// every minute by default) before it is reported.
    pub grace: Duration,
    /// Check counters whose window starts, and overages and usage debits recorded, at or
    /// after this instant only (usage rows before it may have been pruned).
    pub since: Option<DateTime<Utc>>,
    /// Check that a credits-mode billable has one usage debit per usage row with a cost.
    pub credit_debits: bool,
}

impl CheckOptions {
    /// The default checks at `now`: a grace of 10 minutes (the default reservation TTL),
    /// every counter, no debit matching.
    ///
    /// ```
    /// use ai_metering_core::reconcile::CheckOptions;
    /// let options = CheckOptions::at(chrono::Utc::now());
    /// assert_eq!(options.grace, chrono::Duration::minutes(10));
    /// assert!(!options.credit_debits);
    /// ```
    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            now,
            grace: Duration::minutes(10),
            since: None,
            credit_debits: false,
        }
    }

    fn counts(&self, at: DateTime<Utc>) -> bool {
        self.since.is_none_or(|since| at >= since)
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The stored records disagree: money or usage was lost, doubled or made up.
    Error,
    /// Nothing disagrees, but something was left behind (nobody sweeps expired
    /// reservations or holds).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// What disagrees (see the [module docs](self) for each check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A counter's recorded usage is not the sum of the usage rows in its window.
    CounterMismatch,
    /// A counter's reserved total is not the sum of its reservations.
    CounterReservedMismatch,
    /// A wallet's balance is not its ledger's credits minus debits.
    LedgerSum,
    /// A ledger entry's `balance_after` does not follow from the entry before it.
    LedgerChain,
    /// A wallet's held amount is not the sum of its holds.
    HeldMismatch,
    /// A reservation names a credit hold that does not exist.
    ReservationHoldMissing,
    /// Several reservations name one credit hold.
    HoldSharedByReservations,
    /// Reservations left past their expiry by more than the grace (warning).
    StaleReservations,
    /// Credit holds left past their expiry by more than the grace (warning).
    StaleHolds,
    /// An overage row names no usage row of its billable.
    OverageWithoutUsage,
    /// Several overage rows name one usage row.
    DuplicateOverage,
    /// An overage row with a zero or negative amount.
    NonPositiveOverage,
    /// Usage debits and usage rows with a cost do not match one to one (credits mode).
    UsageDebits,
    /// A grant outside `0 <= held <= remaining <= amount`.
    GrantInvalid,
    /// A grant's remaining amount is not what the ledger entries naming it add up to.
    GrantLedger,
    /// A grant's held amount is not what its holds took from it.
    GrantHeld,
}

impl FindingKind {
    /// The kind's name, as in JSON.
    ///
    /// ```
    /// use ai_metering_core::reconcile::FindingKind;
    /// assert_eq!(FindingKind::CounterMismatch.as_str(), "counter_mismatch");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CounterMismatch => "counter_mismatch",
            Self::CounterReservedMismatch => "counter_reserved_mismatch",
            Self::LedgerSum => "ledger_sum",
            Self::LedgerChain => "ledger_chain",
            Self::HeldMismatch => "held_mismatch",
            Self::ReservationHoldMissing => "reservation_hold_missing",
            Self::HoldSharedByReservations => "hold_shared_by_reservations",
            Self::StaleReservations => "stale_reservations",
            Self::StaleHolds => "stale_holds",
            Self::OverageWithoutUsage => "overage_without_usage",
            Self::DuplicateOverage => "duplicate_overage",
            Self::NonPositiveOverage => "non_positive_overage",
            Self::UsageDebits => "usage_debits",
            Self::GrantInvalid => "grant_invalid",
            Self::GrantLedger => "grant_ledger",
            Self::GrantHeld => "grant_held",
        }
    }

    /// How bad this kind is.
    ///
    /// ```
    /// use ai_metering_core::reconcile::{FindingKind, Severity};
    /// assert_eq!(FindingKind::StaleHolds.severity(), Severity::Warning);
    /// assert_eq!(FindingKind::LedgerSum.severity(), Severity::Error);
    /// ```
    pub fn severity(&self) -> Severity {
        match self {
            Self::StaleReservations | Self::StaleHolds => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Whose records.
    pub billable: Billable,
    /// What disagrees.
    pub kind: FindingKind,
    /// How bad it is.
    pub severity: Severity,
    /// Which record: `counter 2024-01-01T00:00:00Z..2024-02-01T00:00:00Z`, `wallet USD`,
    /// `ledger entry 12`, `overage 7`...
    pub subject: String,
    /// What the other records say it should be.
    pub expected: String,
    /// What is stored.
    pub actual: String,
}

impl Finding {
    fn new(
        billable: &Billable,
        kind: FindingKind,
        subject: impl Into<String>,
        expected: impl fmt::Display,
        actual: impl fmt::Display,
    ) -> Self {
        Self {
            billable: billable.clone(),
            kind,
            severity: kind.severity(),
            subject: subject.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
}

/// How many records a reconciliation looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// Billables.
    pub billables: u64,
    /// Usage rows.
    pub usage_rows: u64,
    /// Period counters.
    pub counters: u64,
    /// Live reservations.
    pub reservations: u64,
    /// Wallets.
    pub wallets: u64,
    /// Ledger entries.
    pub ledger_entries: u64,
    /// Credit holds.
    pub holds: u64,
    /// Overage rows.
    pub overages: u64,
}

impl Checked {
    fn add(&mut self, s: &AuditSnapshot) {
        let n = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
        self.billables = self.billables.saturating_add(1);
        self.usage_rows = self.usage_rows.saturating_add(n(s.usage.len()));
        self.counters = self.counters.saturating_add(n(s.counters.len()));
        self.reservations = self.reservations.saturating_add(n(s.reservations.len()));
        self.wallets = self.wallets.saturating_add(n(s.wallets.len()));
        self.ledger_entries = self.ledger_entries.saturating_add(n(s.ledger.len()));
        self.holds = self.holds.saturating_add(n(s.holds.len()));
        self.overages = self.overages.saturating_add(n(s.overages.len()));
    }
}

/// The result of [`reconcile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The options it ran with.
    pub options: CheckOptions,
    /// What it looked at.
    pub checked: Checked,
    /// What disagrees, by billable.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The findings of [`Severity::Error`].
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The findings of [`Severity::Warning`].
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    /// True when no records disagree (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.errors().next().is_none()
    }
}

/// Checks every billable of `store` (see the [module docs](self)).
///
/// # Errors
/// A [`StoreError`](crate::store::StoreError) when the store cannot be read.
pub async fn reconcile<S: AuditStore>(store: &S, options: &CheckOptions) -> StoreResult<Report> {
    let billables = store.audited_billables().await?;
    reconcile_billables(store, &billables, options).await
}

/// Checks the given billables of `store` only (see the [module docs](self)).
///
/// # Errors
/// A [`StoreError`](crate::store::StoreError) when the store cannot be read.
pub async fn reconcile_billables<S: AuditStore>(
    store: &S,
    billables: &[Billable],
    options: &CheckOptions,
) -> StoreResult<Report> {
    let mut checked = Checked::default();
    let mut findings = Vec::new();
    for billable in billables {
        let billable = billable.clone();
        let snapshot = store.audit_snapshot(&billable).await?;
        checked.add(&snapshot);
        findings.extend(check_snapshot(&billable, &snapshot, options));
    }
    Ok(Report {
        options: options.clone(),
        checked,
        findings,
    })
}

/// Checks one billable's records against each other (see the [module docs](self)): the
/// findings, none when they agree.
pub fn check_snapshot(
    billable: &Billable,
    snapshot: &AuditSnapshot,
    options: &CheckOptions,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    check_counters(billable, snapshot, options, &mut findings);
    check_wallets(billable, snapshot, &mut findings);
    check_holds(billable, snapshot, options, &mut findings);
    check_grants(billable, snapshot, &mut findings);
    check_overages(billable, snapshot, options, &mut findings);
    if options.credit_debits {
        check_usage_debits(billable, snapshot, options, &mut findings);
    }
    findings
}

fn totals_text(t: UsageTotals) -> String {
    format!("{} tokens, cost {}", t.tokens, t.cost.normalize())
}

fn check_counters(b: &Billable, s: &AuditSnapshot, o: &CheckOptions, out: &mut Vec<Finding>) {
    for counter in &s.counters {
        let p = counter.period;
        if let Some(stored) = counter.reserved {
            // Reservations are never pruned: checked whatever the cutoff.
            let reservations = s.reservations.iter().filter(|r| r.period == p).fold(
                UsageTotals::ZERO,
                |acc, r| {
                    UsageTotals::new(
                        acc.tokens.saturating_add(r.amount.tokens),
                        acc.cost.saturating_add(r.amount.cost),
                    )
                },
            );
            if reservations != stored {
                out.push(Finding::new(
                    b,
                    FindingKind::CounterReservedMismatch,
                    format!("counter {}..{}", p.start.to_rfc3339(), p.end.to_rfc3339()),
                    totals_text(reservations),
                    totals_text(stored),
                ));
            }
        }
        if !o.counts(p.start) {
            continue;
        }
        let rows = s
            .usage
            .iter()
            .filter(|u| p.start <= u.occurred_at && u.occurred_at < p.end)
            .fold(UsageTotals::ZERO, |acc, u| {
                UsageTotals::new(
                    acc.tokens.saturating_add(u.totals.tokens),
                    acc.cost.saturating_add(u.totals.cost),
                )
            });
        if rows != counter.recorded {
            out.push(Finding::new(
                b,
                FindingKind::CounterMismatch,
                format!("counter {}..{}", p.start.to_rfc3339(), p.end.to_rfc3339()),
                totals_text(rows),
                totals_text(counter.recorded),
            ));
        }
    }
}

/// The currencies of a billable's wallets, ledger entries and holds.
fn currencies(s: &AuditSnapshot) -> BTreeSet<Currency> {
    s.wallets
        .iter()
        .map(|w| w.currency)
        .chain(s.ledger.iter().map(|t| t.amount.currency))
        .chain(s.holds.iter().map(|h| h.amount.currency))
        .collect()
}

fn check_wallets(b: &Billable, s: &AuditSnapshot, out: &mut Vec<Finding>) {
    for code in currencies(s) {
        let in_currency = |c: Currency| c == code;
        let wallet = s.wallets.iter().find(|w| in_currency(w.currency));
        let (balance, held) =
            wallet.map_or((Decimal::ZERO, Decimal::ZERO), |w| (w.balance, w.held));
        let mut entries: Vec<_> = s
            .ledger
            .iter()
            .filter(|t| in_currency(t.amount.currency))
            .collect();
        entries.sort_by_key(|t| t.id);
        let mut running = Decimal::ZERO;
        for t in entries {
            let next = match t.direction {
                Direction::Credit => running.checked_add(t.amount.amount),
                Direction::Debit => running.checked_sub(t.amount.amount),
            };
            match next {
                Some(next) if next == t.balance_after => {}
                next => out.push(Finding::new(
                    b,
                    FindingKind::LedgerChain,
                    format!("ledger entry {}", t.id),
                    next.map_or_else(|| "an overflow".to_owned(), |n| n.normalize().to_string()),
                    t.balance_after.normalize(),
                )),
            }
            // Continue from what is stored, so one broken link is reported once.
            running = t.balance_after;
        }
        let ledger_sum = s
            .ledger
            .iter()
            .filter(|t| in_currency(t.amount.currency))
            .fold(Decimal::ZERO, |acc, t| match t.direction {
                Direction::Credit => acc.saturating_add(t.amount.amount),
                Direction::Debit => acc.saturating_sub(t.amount.amount),
            });
        if ledger_sum != balance {
            out.push(Finding::new(
                b,
                FindingKind::LedgerSum,
                format!("wallet {code} balance"),
                ledger_sum.normalize(),
                balance.normalize(),
            ));
        }
        let holds = s
            .holds
            .iter()
            .filter(|h| in_currency(h.amount.currency))
            .fold(Decimal::ZERO, |acc, h| acc.saturating_add(h.amount.amount));
        if holds != held {
            out.push(Finding::new(
                b,
                FindingKind::HeldMismatch,
                format!("wallet {code} held"),
                holds.normalize(),
                held.normalize(),
            ));
        }
    }
}

fn check_grants(b: &Billable, s: &AuditSnapshot, out: &mut Vec<Finding>) {
    let mut ledger: BTreeMap<GrantId, Decimal> = BTreeMap::new();
    for t in &s.ledger {
        for take in &t.grants {
            let sum = ledger.entry(take.grant).or_default();
            *sum = match t.direction {
                Direction::Credit => sum.saturating_add(take.amount),
                Direction::Debit => sum.saturating_sub(take.amount),
            };
        }
    }
    let mut held: BTreeMap<GrantId, Decimal> = BTreeMap::new();
    for take in s.holds.iter().flat_map(|h| &h.grants) {
        let sum = held.entry(take.grant).or_default();
        *sum = sum.saturating_add(take.amount);
    }
    for w in &s.grants {
        let g = &w.grant;
        let subject = |what: &str| format!("grant {} {what}", g.id.0);
        if g.validate().is_err() || g.amount < g.remaining {
            out.push(Finding::new(
                b,
                FindingKind::GrantInvalid,
                subject("amounts"),
                "0 <= held <= remaining <= amount",
                format!(
                    "held {}, remaining {}, amount {}",
                    g.held.normalize(),
                    g.remaining.normalize(),
                    g.amount.normalize()
                ),
            ));
        }
        let from_ledger = ledger.get(&g.id).copied().unwrap_or_default();
        if from_ledger != g.remaining {
            out.push(Finding::new(
                b,
                FindingKind::GrantLedger,
                subject("remaining"),
                from_ledger.normalize(),
                g.remaining.normalize(),
            ));
        }
        let from_holds = held.get(&g.id).copied().unwrap_or_default();
        if from_holds != g.held {
            out.push(Finding::new(
                b,
                FindingKind::GrantHeld,
                subject("held"),
                from_holds.normalize(),
                g.held.normalize(),
            ));
        }
    }
}

fn check_holds(b: &Billable, s: &AuditSnapshot, o: &CheckOptions, out: &mut Vec<Finding>) {
    let holds: BTreeSet<HoldId> = s.holds.iter().map(|h| h.id).collect();
    let mut owners: BTreeMap<HoldId, Vec<i64>> = BTreeMap::new();
    for r in &s.reservations {
        if let Some(hold) = r.hold {
            owners.entry(hold).or_default().push(r.id.0);
            if !holds.contains(&hold) {
                out.push(Finding::new(
                    b,
                    FindingKind::ReservationHoldMissing,
                    format!("reservation {}", r.id.0),
                    format!("hold {}", hold.0),
                    "no such hold",
                ));
            }
        }
    }
    for (hold, reservations) in owners {
        if reservations.len() > 1 {
            out.push(Finding::new(
                b,
                FindingKind::HoldSharedByReservations,
                format!("hold {}", hold.0),
                "1 reservation",
                format!("reservations {reservations:?}"),
            ));
        }
    }
    let stale = |expires_at: DateTime<Utc>| {
        expires_at
            .checked_add_signed(o.grace)
            .is_some_and(|limit| limit < o.now)
    };
    let stale_reservations = s
        .reservations
        .iter()
        .filter(|r| stale(r.expires_at))
        .count();
    if stale_reservations > 0 {
        out.push(Finding::new(
            b,
            FindingKind::StaleReservations,
            "reservations",
            "0 expired",
            format!(
                "{stale_reservations} expired over {} s ago",
                o.grace.num_seconds()
            ),
        ));
    }
    let stale_holds = s.holds.iter().filter(|h| stale(h.expires_at)).count();
    if stale_holds > 0 {
        out.push(Finding::new(
            b,
            FindingKind::StaleHolds,
            "credit holds",
            "0 expired",
            format!("{stale_holds} expired over {} s ago", o.grace.num_seconds()),
        ));
    }
}

fn check_overages(b: &Billable, s: &AuditSnapshot, o: &CheckOptions, out: &mut Vec<Finding>) {
    let rows: BTreeSet<i64> = s.usage.iter().map(|u| u.id).collect();
    let mut per_row: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in &s.overages {
        if !o.counts(r.overage.created_at) {
            continue;
        }
        let usage_id = r.overage.usage_id;
        per_row.entry(usage_id).or_default().push(r.id);
        if r.overage.billable != *b || !rows.contains(&usage_id) {
            out.push(Finding::new(
                b,
                FindingKind::OverageWithoutUsage,
                format!("overage {}", r.id),
                format!("usage row {usage_id} of {b}"),
                "no such usage row",
            ));
        }
        if r.overage.amount.amount <= Decimal::ZERO {
            out.push(Finding::new(
                b,
                FindingKind::NonPositiveOverage,
                format!("overage {}", r.id),
                "a positive amount",
                r.overage.amount,
            ));
        }
    }
    for (usage_id, overages) in per_row {
        if overages.len() > 1 {
            out.push(Finding::new(
                b,
                FindingKind::DuplicateOverage,
                format!("usage row {usage_id}"),
                "at most 1 overage",
                format!("overages {overages:?}"),
            ));
        }
    }
}

fn check_usage_debits(b: &Billable, s: &AuditSnapshot, o: &CheckOptions, out: &mut Vec<Finding>) {
    let debits: Vec<_> = s
        .ledger
        .iter()
        .filter(|t| {
            t.direction == Direction::Debit
                && t.reason == USAGE_DEBIT_REASON
                && o.counts(t.created_at)
        })
        .collect();
    if debits.is_empty() {
        // Not in credits mode (or nothing charged since the cutoff).
        return;
    }
    let mut by_currency: BTreeMap<Currency, [(u64, Decimal); 2]> = BTreeMap::new();
    for t in debits {
        let e = by_currency.entry(t.amount.currency).or_default();
        e[1].0 = e[1].0.saturating_add(1);
        e[1].1 = e[1].1.saturating_add(t.amount.amount);
    }
    for u in s
        .usage
        .iter()
        .filter(|u| u.cost.amount > Decimal::ZERO && o.counts(u.occurred_at))
    {
        let e = by_currency.entry(u.cost.currency).or_default();
        e[0].0 = e[0].0.saturating_add(1);
        e[0].1 = e[0].1.saturating_add(u.cost.amount);
    }
    for (code, [(rows, cost), (debits, debited)]) in by_currency {
        if rows != debits || cost != debited {
            out.push(Finding::new(
                b,
                FindingKind::UsageDebits,
                format!("wallet {code} usage debits"),
                format!(
                    "{rows} debits, {} (usage rows with a cost)",
                    cost.normalize()
                ),
                format!("{debits} debits, {}", debited.normalize()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;
    use crate::money::Money;
    use crate::period::Period;
    use crate::store::{
        AuditCounter, AuditHold, AuditReservation, AuditUsage, CreditTransaction, NewOverage,
        OverageRecord, ReservationId, WalletBalance,
    };

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()
    }

    fn usd(n: i64) -> Money {
        Money::new(Decimal::from(n), Currency::USD)
    }

    fn team() -> Billable {
        Billable::new("team", "a")
    }

    fn tx(
        id: i64,
        amount: i64,
        direction: Direction,
        reason: &str,
        after: i64,
    ) -> CreditTransaction {
        CreditTransaction {
            id,
            billable: team(),
            amount: usd(amount),
            direction,
            reason: reason.into(),
            balance_after: Decimal::from(after),
            metadata: serde_json::Map::new(),
            grants: Vec::new(),
            created_at: at(2),
        }
    }

    /// A consistent snapshot: two rows, a counter, a wallet (10 in, 3 out, 2 held by a
    /// reservation), an overage.
    fn clean() -> AuditSnapshot {
        let row = |id, day, tokens, cost| AuditUsage {
            id,
            occurred_at: at(day),
            totals: UsageTotals::new(tokens, Decimal::from(cost)),
            cost: usd(cost),
        };
        let month = Period::new(at(1), Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap()).unwrap();
        AuditSnapshot {
            usage: vec![row(1, 2, 100, 1), row(2, 3, 50, 2)],
            counters: vec![AuditCounter {
                period: month,
                recorded: UsageTotals::new(150, Decimal::from(3)),
                reserved: Some(UsageTotals::new(10, Decimal::from(2))),
            }],
            reservations: vec![AuditReservation {
                id: ReservationId(9),
                period: month,
                amount: UsageTotals::new(10, Decimal::from(2)),
                expires_at: at(4),
                hold: Some(HoldId(8)),
            }],
            wallets: vec![WalletBalance {
                billable: team(),
                currency: Currency::USD,
                balance: Decimal::from(7),
                held: Decimal::from(2),
                unusable: Decimal::ZERO,
            }],
            ledger: vec![
                tx(3, 10, Direction::Credit, "top-up", 10),
                tx(4, 1, Direction::Debit, USAGE_DEBIT_REASON, 9),
                tx(5, 2, Direction::Debit, USAGE_DEBIT_REASON, 7),
            ],
            holds: vec![AuditHold {
                id: HoldId(8),
                amount: usd(2),
                expires_at: at(4),
                grants: Vec::new(),
            }],
            grants: Vec::new(),
            overages: vec![OverageRecord {
                id: 6,
                overage: NewOverage {
                    billable: team(),
                    usage_id: 2,
                    period: month,
                    tokens: 50,
                    amount: usd(1),
                    created_at: at(3),
                },
                synced_at: None,
                external_id: None,
            }],
        }
    }

    fn options() -> CheckOptions {
        CheckOptions {
            credit_debits: true,
            ..CheckOptions::at(at(4))
        }
    }

    fn kinds(s: &AuditSnapshot, o: &CheckOptions) -> Vec<FindingKind> {
        check_snapshot(&team(), s, o)
            .iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn a_consistent_snapshot_has_no_findings() {
        assert_eq!(check_snapshot(&team(), &clean(), &options()), vec![]);
        assert_eq!(check_snapshot(&team(), &with_grant(), &options()), vec![]);
    }

    /// [`clean`] with its top-up made by a grant (id 20) that paid the first debit and
    /// holds the reservation's 2.
    fn with_grant() -> AuditSnapshot {
        use crate::grants::{CreditGrant, GrantId, GrantTake};
        let take = |amount| GrantTake {
            grant: GrantId(20),
            amount: Decimal::from(amount),
        };
        let mut s = clean();
        s.ledger[0].grants = vec![take(10)];
        s.ledger[1].grants = vec![take(1)];
        s.holds[0].grants = vec![take(2)];
        let mut grant = CreditGrant::new(GrantId(20), Decimal::TEN, at(1)).unwrap();
        grant.remaining = Decimal::from(9);
        grant.held = Decimal::from(2);
        s.grants = vec![crate::store::WalletGrant {
            billable: team(),
            currency: Currency::USD,
            grant,
            created_at: at(1),
        }];
        s
    }

    #[test]
    fn grants_off_their_ledger_or_holds_are_found() {
        let mut s = with_grant();
        s.grants[0].grant.remaining = Decimal::from(8);
        assert_eq!(kinds(&s, &options()), vec![FindingKind::GrantLedger]);
        let mut s = with_grant();
        s.holds[0].grants.clear();
        assert_eq!(kinds(&s, &options()), vec![FindingKind::GrantHeld]);
        let mut s = with_grant();
        s.grants[0].grant.held = Decimal::TEN;
        let found = check_snapshot(&team(), &s, &options());
        let found: Vec<_> = found.iter().map(|f| f.kind).collect();
        assert_eq!(
            found,
            vec![FindingKind::GrantInvalid, FindingKind::GrantHeld]
        );
        assert_eq!(FindingKind::GrantLedger.as_str(), "grant_ledger");
    }

    #[test]
    fn a_reserved_total_off_its_reservations_is_found() {
        let mut s = clean();
        s.counters[0].reserved = Some(UsageTotals::new(11, Decimal::from(2)));
        let findings = check_snapshot(&team(), &s, &options());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, FindingKind::CounterReservedMismatch);
        assert_eq!(findings[0].expected, "10 tokens, cost 2");
        assert_eq!(findings[0].actual, "11 tokens, cost 2");
        // A released reservation whose total stayed on the counter.
        let mut s = clean();
        s.reservations.clear();
        assert_eq!(
            kinds(&s, &options()),
            vec![FindingKind::CounterReservedMismatch]
        );
        // Stores that do not keep the total are not held to it.
        s.counters[0].reserved = None;
        assert_eq!(kinds(&s, &options()), vec![]);
    }

    #[test]
    fn a_row_the_counter_missed_is_found() {
        let mut s = clean();
        s.usage.push(AuditUsage {
            id: 10,
            occurred_at: at(5),
            totals: UsageTotals::new(1, Decimal::ZERO),
            cost: usd(0),
        });
        let findings = check_snapshot(&team(), &s, &options());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::CounterMismatch);
        assert_eq!(findings[0].expected, "151 tokens, cost 3");
        assert_eq!(findings[0].actual, "150 tokens, cost 3");
        // A counter whose window starts before the cutoff is not checked.
        let since = CheckOptions {
            since: Some(at(1)),
            ..options()
        };
        assert_eq!(kinds(&s, &since), vec![FindingKind::CounterMismatch]);
        let after = CheckOptions {
            since: Some(at(1) + Duration::seconds(1)),
            ..options()
        };
        assert_eq!(kinds(&s, &after), vec![]);
    }

    #[test]
    fn ledger_sum_and_chain_are_checked() {
        let mut s = clean();
        s.wallets[0].balance = Decimal::from(8);
        assert_eq!(kinds(&s, &options()), vec![FindingKind::LedgerSum]);

        let mut s = clean();
        s.ledger[1].balance_after = Decimal::from(8);
        // Entry 4 is off by one; entry 5 follows from what entry 4 stored, also broken.
        assert_eq!(
            kinds(&s, &options()),
            vec![FindingKind::LedgerChain, FindingKind::LedgerChain]
        );
    }

    #[test]
    fn an_orphan_debit_is_found_when_debits_are_matched() {
        let mut s = clean();
        s.ledger
            .push(tx(7, 1, Direction::Debit, USAGE_DEBIT_REASON, 6));
        s.wallets[0].balance = Decimal::from(6);
        assert_eq!(kinds(&s, &options()), vec![FindingKind::UsageDebits]);
        let lenient = CheckOptions {
            credit_debits: false,
            ..options()
        };
        assert_eq!(kinds(&s, &lenient), vec![]);
    }

    #[test]
    fn held_without_holds_and_missing_or_shared_holds_are_found() {
        let mut s = clean();
        s.wallets[0].held = Decimal::from(5);
        assert_eq!(kinds(&s, &options()), vec![FindingKind::HeldMismatch]);

        let mut s = clean();
        s.holds.clear();
        s.wallets[0].held = Decimal::ZERO;
        assert_eq!(
            kinds(&s, &options()),
            vec![FindingKind::ReservationHoldMissing]
        );

        let mut s = clean();
        let mut twin = s.reservations[0].clone();
        twin.id = ReservationId(11);
        s.reservations.push(twin);
        // The counter counts both.
        s.counters[0].reserved = Some(UsageTotals::new(20, Decimal::from(4)));
        assert_eq!(
            kinds(&s, &options()),
            vec![FindingKind::HoldSharedByReservations]
        );
    }

    #[test]
    fn stale_reservations_and_holds_are_warnings_after_the_grace() {
        let s = clean();
        let within = CheckOptions::at(at(4) + Duration::minutes(10));
        assert_eq!(kinds(&s, &within), vec![]);
        let past = CheckOptions::at(at(4) + Duration::minutes(11));
        let findings = check_snapshot(&team(), &s, &past);
        assert_eq!(
            findings.iter().map(|f| f.kind).collect::<Vec<_>>(),
            vec![FindingKind::StaleReservations, FindingKind::StaleHolds]
        );
        assert!(findings.iter().all(|f| f.severity == Severity::Warning));
        assert_eq!(findings[0].actual, "1 expired over 600 s ago");
    }

    #[test]
    fn overages_need_their_row_once_and_a_positive_amount() {
        let mut s = clean();
        s.overages[0].overage.usage_id = 42;
        assert_eq!(
            kinds(&s, &options()),
            vec![FindingKind::OverageWithoutUsage]
        );

        let mut s = clean();
        let mut twin = s.overages[0].clone();
        twin.id = 12;
        twin.overage.amount = usd(0);
        s.overages.push(twin);
        assert_eq!(
            kinds(&s, &options()),
            vec![
                FindingKind::NonPositiveOverage,
                FindingKind::DuplicateOverage
            ]
        );
    }

    #[test]
    fn a_report_is_clean_with_warnings_only() {
        let report = Report {
            options: options(),
            checked: Checked::default(),
            findings: check_snapshot(&team(), &clean(), &CheckOptions::at(at(9))),
        };
        assert_eq!(report.warnings().count(), 2);
        assert!(report.is_clean());
    }
}
