//! [`AuditStore`]: raw reads of everything a store keeps about one billable, for the
//! reconciliation in [`crate::reconcile`].

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    CreditTransaction, HoldId, OverageRecord, ReservationId, StoreResult, WalletBalance,
    WalletGrant,
};
use crate::billable::Billable;
use crate::grants::GrantTake;
use crate::limit::UsageTotals;
use crate::money::Money;
use crate::period::Period;

/// Raw reads for the reconciliation ([`crate::reconcile`]): the rows a store keeps about a
/// billable exactly as stored, so that they can be checked against each other.
///
/// Not part of [`Store`](super::Store): only operators' tools need it. A store implements it
/// with plain reads, and should take each snapshot in one consistent view (one transaction
/// serialised with the billable's writers), so that a check run under load never sees half
/// of a settlement.
pub trait AuditStore: Send + Sync {
    /// Every billable with a usage row, a counter, a reservation, a wallet, a credit hold or
    /// an overage row, ordered by kind then id.
    fn audited_billables(&self) -> impl Future<Output = StoreResult<Vec<Billable>>> + Send;

    /// Everything stored about `billable`, in one consistent view.
    fn audit_snapshot(
        &self,
        billable: &Billable,
    ) -> impl Future<Output = StoreResult<AuditSnapshot>> + Send;
}

impl<T: AuditStore> AuditStore for std::sync::Arc<T> {
    fn audited_billables(&self) -> impl Future<Output = StoreResult<Vec<Billable>>> + Send {
        (**self).audited_billables()
    }

    fn audit_snapshot(
        &self,
        billable: &Billable,
    ) -> impl Future<Output = StoreResult<AuditSnapshot>> + Send {
        (**self).audit_snapshot(billable)
    }
}

/// Everything a store keeps about one billable, as stored (see [`AuditStore`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSnapshot {
    /// Its usage rows, by id.
    pub usage: Vec<AuditUsage>,
    /// Its period counters (recorded usage only; reservations are listed apart).
    pub counters: Vec<AuditCounter>,
    /// Its live reservations (not yet settled, released or swept), by id.
    pub reservations: Vec<AuditReservation>,
    /// Its wallets, one per currency.
    pub wallets: Vec<WalletBalance>,
    /// The ledgers of its wallets, oldest first (by id).
    pub ledger: Vec<CreditTransaction>,
    /// Its credit holds, those of reservations and plain ones, by id.
    pub holds: Vec<AuditHold>,
    /// The grants of its wallets, by id.
    #[serde(default)]
    pub grants: Vec<WalletGrant>,
    /// Its overage rows, by id.
    pub overages: Vec<OverageRecord>,
}

/// A usage row, reduced to what the reconciliation compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditUsage {
    /// Row id.
    pub id: i64,
    /// When the call happened.
    pub occurred_at: DateTime<Utc>,
    /// Its total tokens and cost, as counted against limits.
    pub totals: UsageTotals,
    /// Its cost with currency.
    pub cost: Money,
}

/// A period counter as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCounter {
    /// Its window.
    pub period: Period,
    /// The usage it says was recorded in the window.
    pub recorded: UsageTotals,
    /// What it says its reservations add up to, for a store that keeps that total on the
    /// counter (the SeaORM store); `None` where it is only ever summed from them.
    #[serde(default)]
    pub reserved: Option<UsageTotals>,
}

/// A reservation as stored (expired or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReservation {
    /// Its id.
    pub id: ReservationId,
    /// The window of the counter it counts against.
    pub period: Period,
    /// The estimate it reserves.
    pub amount: UsageTotals,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The credit hold it owns.
    pub hold: Option<HoldId>,
}

/// A credit hold as stored (expired or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHold {
    /// Its id.
    pub id: HoldId,
    /// The amount held, in its wallet's currency.
    pub amount: Money,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// What it took from its wallet's grants.
    #[serde(default)]
    pub grants: Vec<GrantTake>,
}
