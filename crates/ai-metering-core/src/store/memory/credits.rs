//! [`MemoryStore`]'s CreditStore: wallets, their grants, holds and the ledger.

use super::*;

impl CreditStore for MemoryStore {
    async fn wallet_at(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<WalletBalance> {
        let s = self.lock();
        match s.wallets.get(&(billable.clone(), currency)) {
            Some(w) => w.balance_at(billable, currency, at),
            None => Ok(WalletBalance::empty(billable.clone(), currency)),
        }
    }

    async fn add_credits_with_metadata(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        require_positive(&amount, "credits added")?;
        let mut state = self.lock();
        let mut tx = state.post(billable, amount, Direction::Credit, reason, Vec::new(), at)?;
        if !metadata.is_empty() {
            tx.metadata = metadata.clone();
            if let Some(stored) = state.ledger.last_mut() {
                stored.metadata = metadata.clone();
            }
        }
        Ok(tx)
    }

    async fn deduct_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<CreditTransaction>> {
        require_positive(&amount, "credits deducted")?;
        let mut s = self.lock();
        if let Err(available) = s.check_funds(billable, &amount, overdraft, at)? {
            return Ok(CreditOutcome::Insufficient { available });
        }
        let wallet = s.wallet(billable, amount.currency);
        wallet
            .balance
            .checked_sub(amount.amount)
            .ok_or_else(|| overflow("a wallet balance"))?;
        let mut next = wallet.grants.clone();
        let paid = grants::apply_deduction(&mut next, amount.amount, at)
            .map_err(|e| invalid(e.to_string()))?;
        wallet.grants = next;
        Ok(CreditOutcome::Done(s.post(
            billable,
            amount,
            Direction::Debit,
            reason,
            paid.takes,
            at,
        )?))
    }

    async fn hold_credits_at(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        require_positive(&amount, "credits held")?;
        let mut s = self.lock();
        if let Err(available) = s.check_funds(billable, &amount, overdraft, now)? {
            return Ok(CreditOutcome::Insufficient { available });
        }
        let id = s.hold(billable, amount, now, expires_at)?;
        Ok(CreditOutcome::Done(HoldId(id)))
    }

    async fn settle_hold(
        &self,
        hold: HoldId,
        actual: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        let mut s = self.lock();
        let Some(held) = s.holds.get(&hold.0) else {
            return Err(StoreError::not_found(format!("credit hold {}", hold.0)));
        };
        if actual.currency != held.amount.currency {
            return Err(invalid(format!(
                "credit hold {} is in {}, cannot settle it in {}",
                hold.0, held.amount.currency, actual.currency
            )));
        }
        if actual.amount.is_sign_negative() {
            return Err(invalid(format!(
                "a settled amount cannot be negative, got {actual}"
            )));
        }
        let billable = held.billable.clone();
        match s.capture(&billable, Some(hold.0), actual, true, reason, at)? {
            Some(tx) => Ok(tx),
            // `capture` debits whenever asked to.
            None => Err(StoreError::not_found(format!("credit hold {}", hold.0))),
        }
    }

    async fn release_hold(&self, hold: HoldId) -> StoreResult<bool> {
        Ok(self.lock().release_hold(hold.0))
    }

    async fn expire_credit_holds(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut s = self.lock();
        let expired: Vec<i64> = s
            .holds
            .iter()
            .filter(|(_, h)| h.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            s.release_hold(*id);
        }
        Ok(expired.len() as u64)
    }

    async fn add_grant(
        &self,
        billable: &Billable,
        grant: &NewGrant,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WalletGrant, CreditTransaction)> {
        grant.validate()?;
        let mut s = self.lock();
        let currency = grant.amount.currency;
        s.wallet(billable, currency)
            .balance
            .checked_add(grant.amount.amount)
            .ok_or_else(|| overflow("a wallet balance"))?;
        let id = grants::GrantId(s.next_id());
        let stored = grant.to_grant(id);
        let take = GrantTake {
            grant: id,
            amount: grant.amount.amount,
        };
        let tx = s.post(
            billable,
            grant.amount,
            Direction::Credit,
            reason,
            vec![take],
            at,
        )?;
        s.wallet(billable, currency).grants.push(stored.clone());
        s.grant_created.insert(id.0, at);
        Ok((
            WalletGrant {
                billable: billable.clone(),
                currency,
                grant: stored,
                created_at: at,
            },
            tx,
        ))
    }

    async fn roll_over_grants(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<CreditTransaction>> {
        let mut s = self.lock();
        let Some(wallet) = s.wallets.get_mut(&(billable.clone(), currency)) else {
            return Ok(Vec::new());
        };
        let mut next = wallet.grants.clone();
        let changes = grants::reset_period(&mut next, at);
        let mut balance = wallet.balance;
        for c in &changes {
            balance = balance
                .checked_add(c.after - c.before)
                .ok_or_else(|| overflow("a wallet balance"))?;
        }
        wallet.grants = next;
        let mut entries = Vec::with_capacity(changes.len());
        for c in changes {
            let (direction, amount) = if c.after > c.before {
                (Direction::Credit, c.after - c.before)
            } else {
                (Direction::Debit, c.before - c.after)
            };
            entries.push(s.post(
                billable,
                Money::new(amount, currency),
                direction,
                crate::store::ROLLOVER_REASON,
                vec![GrantTake {
                    grant: c.grant,
                    amount,
                }],
                at,
            )?);
        }
        Ok(entries)
    }
}
