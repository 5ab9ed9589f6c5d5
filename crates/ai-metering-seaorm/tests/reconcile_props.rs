//! Property: random interleavings of the money-path operations (credits, reservations with
//! holds, settlements with debits and overage, releases, expiries, plain holds) across a few
//! billables keep the reconciliation true, on `MemoryStore` and on SQLite. The store is
//! reconciled after every operation, so a failure names the operation that broke it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_core::limit::{Limits, UsageTotals};
use ai_metering_core::overage::OverageRule;
use ai_metering_core::period::Period;
use ai_metering_core::reconcile::{CheckOptions, check_snapshot};
use ai_metering_core::store::{
    AuditStore, CreditOutcome, HoldId, HoldRequest, MemoryStore, Overdraft, ReservationId,
    ReserveOutcome, ReserveRequest, Settlement, Store,
};
use ai_metering_core::{Billable, Currency, Money};
use ai_metering_testkit::builders::{EntryExt, entry};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

/// Billables 0 and 1 are in credits mode (holds, debits); billable 2 in plan mode.
const BILLABLES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    AddCredits {
        who: usize,
        cents: i64,
    },
    Reserve {
        who: usize,
        tokens: u64,
        cents: i64,
        daily: bool,
        exclusive: bool,
        key: Option<u8>,
    },
    Settle {
        pick: usize,
        tokens: u64,
        cents: i64,
        key: Option<u8>,
        overage: bool,
    },
    Release {
        pick: usize,
    },
    Expire {
        minutes: i64,
    },
    Hold {
        who: usize,
        cents: i64,
    },
    SettleHold {
        pick: usize,
        cents: i64,
    },
    ReleaseHold {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..BILLABLES;
    let key = proptest::option::of(0_u8..4);
    prop_oneof![
        (who.clone(), 1_i64..500).prop_map(|(who, cents)| Op::AddCredits { who, cents }),
        (
            who.clone(),
            0_u64..3_000,
            0_i64..300,
            any::<bool>(),
            proptest::bool::weighted(0.2),
            key.clone()
        )
            .prop_map(|(who, tokens, cents, daily, exclusive, key)| Op::Reserve {
                who,
                tokens,
                cents,
                daily,
                exclusive,
                key
            }),
        (any::<usize>(), 0_u64..3_000, 0_i64..300, key, any::<bool>()).prop_map(
            |(pick, tokens, cents, key, overage)| Op::Settle {
                pick,
                tokens,
                cents,
                key,
                overage
            }
        ),
        any::<usize>().prop_map(|pick| Op::Release { pick }),
        (0_i64..30).prop_map(|minutes| Op::Expire { minutes }),
        (who, 1_i64..200).prop_map(|(who, cents)| Op::Hold { who, cents }),
        (any::<usize>(), 0_i64..300).prop_map(|(pick, cents)| Op::SettleHold { pick, cents }),
        any::<usize>().prop_map(|pick| Op::ReleaseHold { pick }),
    ]
}

fn usd_cents(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::USD)
}

/// A reservation made during the run: whose, in which window.
struct Made {
    id: ReservationId,
    who: usize,
    period: Period,
}

struct Run<'a, S> {
    store: &'a S,
    billables: Vec<Billable>,
    now: DateTime<Utc>,
    reservations: Vec<Made>,
    holds: Vec<HoldId>,
    /// A per-run prefix, so that keys never collide across cases on one database.
    run: String,
}

impl<S: Store + AuditStore> Run<'_, S> {
    fn credits(&self, who: usize) -> bool {
        who < 2
    }

    async fn apply(&mut self, op: &Op) {
        self.now += Duration::minutes(1);
        let now = self.now;
        match *op {
            Op::AddCredits { who, cents } => {
                self.store
                    .add_credits(&self.billables[who], usd_cents(cents), "top-up", now)
                    .await
                    .unwrap();
            }
            Op::Reserve {
                who,
                tokens,
                cents,
                daily,
                exclusive,
                key,
            } => {
                let period = if daily {
                    let day = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
                    Period::new(day, day + Duration::days(1)).unwrap()
                } else {
                    Period::new(at(2024, 3, 1), at(2024, 4, 1)).unwrap()
                };
                let mut request = ReserveRequest::new(
                    self.billables[who].clone(),
                    period,
                    Limits {
                        tokens: Some(20_000),
                        cost: None,
                    },
                    UsageTotals::new(tokens, Decimal::new(cents, 2)),
                    now,
                    now + Duration::minutes(10),
                );
                request.exclusive = exclusive;
                request.idempotency_key = key.map(|k| format!("{}-{k}", self.run));
                if self.credits(who) {
                    request.hold = Some(HoldRequest {
                        amount: usd_cents(cents),
                        overdraft: Overdraft::Disallowed,
                    });
                }
                if let ReserveOutcome::Reserved { id, .. } =
                    self.store.reserve(&request).await.unwrap()
                {
                    self.reservations.push(Made { id, who, period });
                }
            }
            Op::Settle {
                pick,
                tokens,
                cents,
                key,
                overage,
            } => {
                if self.reservations.is_empty() {
                    return;
                }
                // Any reservation made so far: settling one that was released, expired or
                // settled already still records the call (the money was spent).
                let made = &self.reservations[pick % self.reservations.len()];
                let who = made.who;
                let mut row = entry(
                    &self.billables[who],
                    tokens.max(1),
                    Decimal::new(cents, 2),
                    now,
                );
                if let Some(k) = key {
                    row = row.with_key(format!("{}-{k}", self.run));
                }
                self.store
                    .settle(&Settlement {
                        reservation: made.id,
                        entry: row,
                        period: made.period,
                        overage: overage.then(|| {
                            OverageRule::new(
                                Limits {
                                    tokens: Some(2_000),
                                    cost: None,
                                },
                                Some(Decimal::new(5, 1)),
                            )
                        }),
                        debit_credits: self.credits(who),
                    })
                    .await
                    .unwrap();
            }
            Op::Release { pick } => {
                if !self.reservations.is_empty() {
                    let id = self.reservations[pick % self.reservations.len()].id;
                    self.store.release(id).await.unwrap();
                }
            }
            Op::Expire { minutes } => {
                self.now += Duration::minutes(minutes);
                self.store.expire_reservations(self.now).await.unwrap();
                self.store.expire_credit_holds(self.now).await.unwrap();
            }
            Op::Hold { who, cents } => {
                let outcome = self
                    .store
                    .hold_credits(
                        &self.billables[who],
                        usd_cents(cents),
                        Overdraft::Disallowed,
                        now + Duration::minutes(10),
                    )
                    .await
                    .unwrap();
                if let CreditOutcome::Done(id) = outcome {
                    self.holds.push(id);
                }
            }
            Op::SettleHold { pick, cents } => {
                if !self.holds.is_empty() {
                    let id = self.holds.remove(pick % self.holds.len());
                    // A hold that expired meanwhile is gone: an error, and nothing changes.
                    let _ = self
                        .store
                        .settle_hold(id, usd_cents(cents.max(1)), "purchase", now)
                        .await;
                }
            }
            Op::ReleaseHold { pick } => {
                if !self.holds.is_empty() {
                    let id = self.holds.remove(pick % self.holds.len());
                    self.store.release_hold(id).await.unwrap();
                }
            }
        }
    }

    async fn reconciles(&self, after: &Op) {
        let options = CheckOptions {
            credit_debits: true,
            ..CheckOptions::at(self.now)
        };
        for b in &self.billables {
            let snapshot = self.store.audit_snapshot(b).await.unwrap();
            let errors: Vec<_> = check_snapshot(b, &snapshot, &options)
                .into_iter()
                .filter(|f| f.severity == ai_metering_core::reconcile::Severity::Error)
                .collect();
            assert!(
                errors.is_empty(),
                "after {after:?}: {errors:#?}\n{snapshot:#?}"
            );
        }
    }
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

async fn run_ops<S: Store + AuditStore>(store: &S, ops: &[Op]) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let run = format!("run{n}-{}", std::process::id());
    let mut r = Run {
        store,
        billables: (0..BILLABLES)
            .map(|i| Billable::new("prop", format!("{run}-{i}")))
            .collect(),
        now: at(2024, 3, 1) + Duration::hours(1),
        reservations: Vec::new(),
        holds: Vec::new(),
        run,
    };
    for op in ops {
        r.apply(op).await;
        r.reconciles(op).await;
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_reconciles(ops in proptest::collection::vec(op(), 1..60)) {
        block_on(run_ops(&MemoryStore::new(), &ops));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_reconciles(ops in proptest::collection::vec(op(), 1..40)) {
        block_on(async {
            let store = common::fresh_sqlite().await;
            run_ops(&store, &ops).await;
        });
    }
}
