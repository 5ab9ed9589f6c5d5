//! [`AuditStore`] for [`MemoryStore`]: every snapshot is taken under the store's one lock.

use std::collections::BTreeSet;

use super::{MemoryStore, State};
use crate::billable::Billable;
use crate::money::Money;
use crate::period::Period;
use crate::store::{
    AuditCounter, AuditHold, AuditReservation, AuditSnapshot, AuditStore, AuditUsage, HoldId,
    ReservationId, StoreResult, WalletBalance, WalletGrant,
};

impl AuditStore for MemoryStore {
    async fn audited_billables(&self) -> StoreResult<Vec<Billable>> {
        let s = self.lock();
        let all: BTreeSet<(String, String)> = s
            .usage
            .iter()
            .map(|r| &r.entry.billable)
            .chain(s.counters.keys())
            .chain(s.wallets.keys().map(|(b, _)| b))
            .chain(s.holds.values().map(|h| &h.billable))
            .chain(s.overages.values().map(|o| &o.overage.billable))
            .map(|b| (b.kind.clone(), b.id.clone()))
            .collect();
        Ok(all
            .into_iter()
            .map(|(kind, id)| Billable::new(kind, id))
            .collect())
    }

    async fn audit_snapshot(&self, billable: &Billable) -> StoreResult<AuditSnapshot> {
        Ok(snapshot(&self.lock(), billable))
    }
}

fn snapshot(s: &State, billable: &Billable) -> AuditSnapshot {
    let usage = s
        .usage
        .iter()
        .filter(|r| r.entry.billable == *billable)
        .map(|r| AuditUsage {
            id: r.id,
            occurred_at: r.entry.occurred_at,
            totals: r.entry.totals(),
            cost: Money::new(r.entry.cost.total, r.entry.cost.currency),
        })
        .collect();
    let mut counters = Vec::new();
    let mut reservations = Vec::new();
    let mut periods: Vec<(&Period, _)> = s
        .counters
        .get(billable)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    periods.sort_by_key(|(p, _)| (p.start, p.end));
    for (period, counter) in periods {
        counters.push(AuditCounter {
            period: *period,
            recorded: counter.recorded,
            reserved: None,
        });
        reservations.extend(counter.reservations.iter().map(|(id, r)| AuditReservation {
            id: ReservationId(*id),
            period: *period,
            amount: r.amount,
            expires_at: r.expires_at,
            hold: r.hold.map(HoldId),
        }));
    }
    reservations.sort_by_key(|r| r.id);
    let mut wallets: Vec<WalletBalance> = s
        .wallets
        .iter()
        .filter(|((b, _), _)| b == billable)
        .map(|((b, currency), w)| WalletBalance {
            held: w.held,
            balance: w.balance,
            ..WalletBalance::empty(b.clone(), *currency)
        })
        .collect();
    wallets.sort_by_key(|w| w.currency);
    let ledger = s
        .ledger
        .iter()
        .filter(|t| t.billable == *billable)
        .cloned()
        .collect();
    let mut holds: Vec<AuditHold> = s
        .holds
        .iter()
        .filter(|(_, h)| h.billable == *billable)
        .map(|(id, h)| AuditHold {
            id: HoldId(*id),
            amount: h.amount,
            expires_at: h.expires_at,
            grants: h.takes.clone(),
        })
        .collect();
    holds.sort_by_key(|h| h.id);
    let mut grants: Vec<WalletGrant> = s
        .wallets
        .iter()
        .filter(|((b, _), _)| b == billable)
        .flat_map(|((b, currency), w)| {
            w.grants.iter().map(|g| WalletGrant {
                billable: b.clone(),
                currency: *currency,
                grant: g.clone(),
                created_at: s
                    .grant_created
                    .get(&g.id.0)
                    .copied()
                    .unwrap_or(g.effective_at),
            })
        })
        .collect();
    grants.sort_by_key(|g| g.grant.id);
    let overages = s
        .overages
        .values()
        .filter(|o| o.overage.billable == *billable)
        .cloned()
        .collect();
    AuditSnapshot {
        usage,
        counters,
        reservations,
        wallets,
        ledger,
        holds,
        grants,
        overages,
    }
}
