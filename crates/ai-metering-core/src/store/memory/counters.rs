//! [`MemoryStore`]'s CounterStore: counters, reservations (with their keys, exclusivity and holds) and settlements.

use super::*;

impl CounterStore for MemoryStore {
    async fn reserve(&self, request: &ReserveRequest) -> StoreResult<ReserveOutcome> {
        let mut s = self.lock();
        let billable = &request.billable;
        let now = request.now;
        if let Some(key) = &request.idempotency_key {
            if let Some(record) = s.recorded_with_key(billable, key) {
                return Ok(ReserveOutcome::AlreadyRecorded(Box::new(record.clone())));
            }
            let claimed = s.live_reservations(billable, now).any(|(id, r)| {
                Some(ReservationId(id)) != request.replaces
                    && r.idempotency_key.as_deref() == Some(key.as_str())
            });
            if claimed {
                return Ok(ReserveOutcome::KeyInFlight);
            }
        }
        if request.exclusive
            && s.live_reservations(billable, now)
                .any(|(id, r)| Some(ReservationId(id)) != request.replaces && r.exclusive)
        {
            return Ok(ReserveOutcome::Busy);
        }
        let replaced = request
            .replaces
            .and_then(|id| s.reservation(id).map(|r| (id, r.amount, r.hold)))
            .filter(|(id, _, _)| {
                s.reservation_counters.get(&id.0).map(|(b, _)| b) == Some(billable)
            });

        // Reservations of this counter that expired by now stop counting (and their holds).
        let expired: Vec<i64> = s
            .counter(billable, &request.period)
            .reservations
            .iter()
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            s.drop_reservation(ReservationId(id));
        }
        let counter = s.counter(billable, &request.period);
        let mut usage = counter.usage(now);
        if let Some((id, amount, _)) = replaced
            && counter.reservations.contains_key(&id.0)
        {
            usage.reserved = UsageTotals::new(
                usage.reserved.tokens.saturating_sub(amount.tokens),
                (usage.reserved.cost - amount.cost).max(Decimal::ZERO),
            );
        }

        let check = evaluate(
            &request.limits,
            usage.committed(),
            request.amount,
            &Thresholds::default(),
        );
        if let Some(exceeded) = check.exceeded {
            return Ok(ReserveOutcome::Rejected { exceeded, usage });
        }
        let replaced_hold = replaced.and_then(|(_, _, hold)| hold);
        if let Some(hold) = &request.hold {
            let available = s.available(billable, hold.amount.currency, replaced_hold, now)?;
            if !hold.permits(available) {
                return Ok(ReserveOutcome::InsufficientCredits { available });
            }
        }

        // Everything is checked: apply.
        if let Some((id, _, _)) = replaced {
            s.drop_reservation(id);
        }
        let hold = match &request.hold {
            Some(h) if h.amount.amount > Decimal::ZERO => {
                let id = s.hold(billable, h.amount, now, request.expires_at)?;
                Some(id)
            }
            _ => None,
        };
        let id = s.next_id();
        let counter = s.counter(billable, &request.period);
        counter.reservations.insert(
            id,
            Reservation {
                amount: request.amount,
                expires_at: request.expires_at,
                hold,
                idempotency_key: request.idempotency_key.clone(),
                exclusive: request.exclusive,
            },
        );
        let usage = counter.usage(now);
        s.reservation_counters
            .insert(id, (billable.clone(), request.period));
        // Informational: a wallet that cannot be told (its grants overflow) is read later.
        let wallet = request
            .hold
            .as_ref()
            .and_then(|h| s.wallet_now(billable, h.amount.currency, now));
        Ok(ReserveOutcome::Reserved {
            id: ReservationId(id),
            hold: hold.map(HoldId),
            usage,
            wallet,
        })
    }

    async fn settle(&self, settlement: &Settlement) -> StoreResult<Settled> {
        let mut s = self.lock();
        let entry = &settlement.entry;
        let period = &settlement.period;
        let hold = s
            .reservation(settlement.reservation)
            .and_then(|r| r.hold)
            .and_then(|id| s.holds.get(&id).map(|h| (id, h.amount)));

        if let Some(key) = &entry.idempotency_key
            && let Some(record) = s.recorded_with_key(&entry.billable, key).cloned()
        {
            s.drop_reservation(settlement.reservation);
            let usage = s.counter(&entry.billable, period).usage(entry.occurred_at);
            return Ok(Settled::replayed(record, usage));
        }

        // Everything that can fail is computed before anything changes.
        let call = entry.totals();
        let before = s.counter(&entry.billable, period).recorded;
        let overage = match &settlement.overage {
            Some(rule) if contains(period, entry.occurred_at) => {
                crate::overage::overage(rule, before, call).map_err(|e| invalid(e.to_string()))?
            }
            _ => None,
        };
        let cost = Money::new(entry.cost.total, entry.cost.currency);
        let debit = settlement.debit_credits && cost.amount > Decimal::ZERO;
        if cost.amount.is_sign_negative() {
            return Err(invalid(format!(
                "a usage cost cannot be negative, got {cost}"
            )));
        }
        if let Some((id, held)) = hold
            && settlement.debit_credits
            && held.currency != cost.currency
        {
            return Err(invalid(format!(
                "credit hold {id} is in {}, cannot settle it in {}",
                held.currency, cost.currency
            )));
        }
        if debit {
            s.wallets
                .get(&(entry.billable.clone(), cost.currency))
                .map_or(Decimal::ZERO, |w| w.balance)
                .checked_sub(cost.amount)
                .ok_or_else(|| overflow("a wallet balance"))?;
        }

        // The capture of the hold (or its release when nothing is debited) comes first, so
        // that dropping the reservation finds its hold gone.
        let debit = s.capture(
            &entry.billable,
            hold.map(|(id, _)| id),
            cost,
            debit,
            crate::store::USAGE_DEBIT_REASON,
            entry.occurred_at,
        )?;
        s.drop_reservation(settlement.reservation);
        let recorded = s.insert_usage(entry);
        let overage = overage.map(|o| {
            let new = NewOverage {
                billable: entry.billable.clone(),
                usage_id: recorded.record.id,
                period: *period,
                tokens: o.tokens,
                amount: Money::new(o.amount, cost.currency),
                created_at: entry.occurred_at,
            };
            s.insert_overage_row(&new)
        });
        let usage = s.counter(&entry.billable, period).usage(entry.occurred_at);
        // Informational: a wallet that cannot be told (its grants overflow) is read later.
        let wallet = if settlement.debit_credits {
            s.wallet_now(&entry.billable, cost.currency, entry.occurred_at)
        } else {
            None
        };
        Ok(Settled {
            recorded,
            usage,
            debit,
            overage,
            wallet,
        })
    }

    async fn release(&self, reservation: ReservationId) -> StoreResult<bool> {
        Ok(self.lock().drop_reservation(reservation))
    }

    async fn expire_reservations(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut s = self.lock();
        let expired: Vec<i64> = s
            .counters
            .values()
            .flat_map(|c| c.values())
            .flat_map(|c| c.reservations.iter())
            .filter(|(_, r)| r.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            s.drop_reservation(ReservationId(*id));
        }
        Ok(expired.len() as u64)
    }

    async fn period_usage(
        &self,
        billable: &Billable,
        period: &Period,
        now: DateTime<Utc>,
    ) -> StoreResult<PeriodUsage> {
        let s = self.lock();
        match s.counters.get(billable).and_then(|c| c.get(period)) {
            Some(counter) => Ok(counter.usage(now)),
            None => Ok(PeriodUsage {
                recorded: s.recorded_from_rows(billable, period),
                reserved: UsageTotals::ZERO,
            }),
        }
    }

    async fn claim_threshold(
        &self,
        billable: &Billable,
        period: &Period,
        threshold: Decimal,
    ) -> StoreResult<bool> {
        Ok(self.lock().claimed_thresholds.insert((
            billable.clone(),
            *period,
            threshold.normalize(),
        )))
    }
}
