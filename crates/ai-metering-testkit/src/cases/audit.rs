//! The audit reads behind the reconciliation: a snapshot shows every row of a billable as
//! stored, and the records of the money path reconcile.

use crate::ConformanceStore;
use std::sync::Arc;

use ai_metering_core::Currency;
use ai_metering_core::limit::Limits;
use ai_metering_core::overage::OverageRule;
use ai_metering_core::reconcile::{CheckOptions, FindingKind, check_snapshot};
use ai_metering_core::store::{
    AuditStore, Direction, HoldRequest, Overdraft, Settlement, USAGE_DEBIT_REASON,
};
use chrono::Duration;
use rust_decimal::Decimal;

use super::reserved;
use crate::builders::{
    dec, entry, fresh_billable, hour, month, reserve_request, token_limit, totals, usd,
};

/// A snapshot lists the billable's rows, counters, live reservations with their holds,
/// wallet, ledger and overage, and they reconcile, with debits matched.
pub async fn audit_snapshot_shows_the_money_path<S: ConformanceStore + AuditStore>(store: Arc<S>) {
    let who = fresh_billable();
    let march = month(2024, 3);
    store
        .add_credits(&who, usd("5"), "top-up", hour(0))
        .await
        .unwrap();
    store
        .insert_usage(&entry(&who, 90, dec("0.9"), hour(1)))
        .await
        .unwrap();
    let mut request = reserve_request(&who, march, Limits::UNLIMITED, totals(50, "2"), hour(1));
    request.hold = Some(HoldRequest {
        amount: usd("2"),
        overdraft: Overdraft::Disallowed,
    });
    let settled_id = reserved(store.reserve(&request).await.unwrap());
    let settled = store
        .settle(&Settlement {
            reservation: settled_id,
            entry: entry(&who, 40, dec("1.25"), hour(1)),
            period: march,
            overage: Some(OverageRule::new(token_limit(100), Some(dec("1")))),
            debit_credits: true,
        })
        .await
        .unwrap();
    let live = reserved(store.reserve(&request).await.unwrap());

    assert!(store.audited_billables().await.unwrap().contains(&who));
    let s = store.audit_snapshot(&who).await.unwrap();
    assert_eq!(s.usage.len(), 2);
    assert_eq!(s.usage[1].id, settled.recorded.record.id);
    assert_eq!(s.usage[1].totals, totals(40, "1.25"));
    assert_eq!(s.usage[1].cost, usd("1.25"));
    assert_eq!(s.counters.len(), 1);
    assert_eq!(s.counters[0].period, march);
    assert_eq!(s.counters[0].recorded, totals(130, "2.15"));
    assert_eq!(s.reservations.len(), 1);
    assert_eq!(s.reservations[0].id, live);
    assert_eq!(s.reservations[0].amount, totals(50, "2"));
    let hold = s.reservations[0]
        .hold
        .expect("the live reservation holds credits");
    assert_eq!(s.holds.len(), 1);
    assert_eq!((s.holds[0].id, s.holds[0].amount), (hold, usd("2")));
    assert_eq!(s.wallets.len(), 1);
    assert_eq!(s.wallets[0].currency, Currency::USD);
    assert_eq!(
        (s.wallets[0].balance, s.wallets[0].held),
        (dec("3.75"), dec("2"))
    );
    let ledger: Vec<_> = s
        .ledger
        .iter()
        .map(|t| (t.direction, t.reason.as_str(), t.amount, t.balance_after))
        .collect();
    assert_eq!(
        ledger,
        vec![
            (Direction::Credit, "top-up", usd("5"), dec("5")),
            (
                Direction::Debit,
                USAGE_DEBIT_REASON,
                usd("1.25"),
                dec("3.75")
            ),
        ]
    );
    assert_eq!(s.overages.len(), 1);
    assert_eq!(s.overages[0].overage.usage_id, settled.recorded.record.id);

    // The row inserted without a debit is the partial-settlement bug class, when debits
    // are matched; everything else agrees.
    let options = CheckOptions {
        credit_debits: true,
        ..CheckOptions::at(hour(1))
    };
    let kinds: Vec<_> = check_snapshot(&who, &s, &options)
        .into_iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, vec![FindingKind::UsageDebits]);
    assert_eq!(check_snapshot(&who, &s, &CheckOptions::at(hour(1))), vec![]);

    // Left unswept, the reservation and its hold are reported a grace after their expiry.
    let late = CheckOptions::at(request.expires_at + Duration::hours(1));
    let kinds: Vec<_> = check_snapshot(&who, &s, &late)
        .into_iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![FindingKind::StaleReservations, FindingKind::StaleHolds]
    );
    assert!(store.release(live).await.unwrap());
    let s = store.audit_snapshot(&who).await.unwrap();
    assert!(s.reservations.is_empty() && s.holds.is_empty());
    assert_eq!(s.wallets[0].held, Decimal::ZERO);
}
