//! [`MemoryStore`]'s CreditStore: wallets, holds and the ledger.

use super::*;

impl CreditStore for MemoryStore {
    async fn wallet(&self, billable: &Billable, currency: Currency) -> StoreResult<WalletBalance> {
        let s = self.lock();
        let (balance, held) = s
            .wallets
            .get(&(billable.clone(), currency))
            .map_or((Decimal::ZERO, Decimal::ZERO), |w| (w.balance, w.held));
        Ok(WalletBalance {
            billable: billable.clone(),
            currency,
            balance,
            held,
        })
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
        let mut tx = state.post(billable, amount, Direction::Credit, reason, at)?;
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
        if let Err(available) = s.check_funds(billable, &amount, overdraft) {
            return Ok(CreditOutcome::Insufficient { available });
        }
        Ok(CreditOutcome::Done(s.post(
            billable,
            amount,
            Direction::Debit,
            reason,
            at,
        )?))
    }

    async fn hold_credits(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        require_positive(&amount, "credits held")?;
        let mut s = self.lock();
        if let Err(available) = s.check_funds(billable, &amount, overdraft) {
            return Ok(CreditOutcome::Insufficient { available });
        }
        let wallet = s.wallet(billable, amount.currency);
        wallet.held = wallet
            .held
            .checked_add(amount.amount)
            .ok_or_else(|| overflow("the held amount"))?;
        let id = s.next_id();
        s.holds.insert(
            id,
            Hold {
                billable: billable.clone(),
                amount,
                expires_at,
            },
        );
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
        let (billable, amount) = (held.billable.clone(), held.amount);
        // Checked before anything changes, so that an error leaves the state untouched.
        let wallet = s.wallet(&billable, amount.currency);
        let held_after = wallet
            .held
            .checked_sub(amount.amount)
            .ok_or_else(|| overflow("the held amount"))?;
        wallet
            .balance
            .checked_sub(actual.amount)
            .ok_or_else(|| overflow("a wallet balance"))?;
        wallet.held = held_after;
        s.holds.remove(&hold.0);
        s.post(&billable, actual, Direction::Debit, reason, at)
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

    async fn credit_transactions(
        &self,
        billable: &Billable,
        currency: Currency,
        page: Page,
    ) -> StoreResult<Vec<CreditTransaction>> {
        let s = self.lock();
        let mut txs: Vec<&CreditTransaction> = s
            .ledger
            .iter()
            .filter(|t| t.billable == *billable && t.amount.currency == currency)
            .collect();
        txs.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
        Ok(paginate(txs.into_iter().cloned(), page))
    }
}
