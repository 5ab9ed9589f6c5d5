//! The wallets, their grants and the credit holds of a batch: read under the batch's locks,
//! changed in memory by its operations (with the pure functions of
//! [`ai_metering_core::grants`], as the single-operation path), written at the end (a
//! multi-row insert of the new holds and of the ledger rows, one delete of the dropped
//! holds, one update of the changed wallets, one of the changed grants).

use std::collections::{HashMap, HashSet};

use ai_metering_core::grants::{self, CreditGrant, GrantTake};
use ai_metering_core::store::{
    CreditTransaction, Direction, StoreResult, USAGE_DEBIT_REASON, WalletBalance,
};
use ai_metering_core::{Billable, Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use super::{insert_rows, of_billables, update_rows};
use crate::codec::{instant, invalid, money_from_text, money_text};
use crate::credits::{direction_text, wallet_for_update};
use crate::entity::{credit_grant, credit_hold, credit_transaction, credit_wallet};
use crate::error::db_err;
use crate::grants::{Book, grant_of, takes_from_text, takes_text};

/// A wallet as the batch has it.
struct Wallet {
    row: credit_wallet::Model,
    balance: Decimal,
    held: Decimal,
    dirty: bool,
    /// Its grants, and what they were when read.
    grants: Vec<CreditGrant>,
    grants_before: Vec<CreditGrant>,
}

impl Wallet {
    /// Balance minus holds minus what the grants that do not count at `at` keep.
    fn available(
        &self,
        grants: &[CreditGrant],
        held: Decimal,
        at: DateTime<Utc>,
    ) -> StoreResult<Decimal> {
        let unusable = grants::unusable(grants, at).map_err(|e| invalid(e.to_string()))?;
        Ok(self.balance.saturating_sub(held).saturating_sub(unusable))
    }
}

/// A ledger row to insert, and the entry it becomes once its id is known.
struct NewEntry {
    row: credit_transaction::ActiveModel,
    entry: CreditTransaction,
}

#[derive(Default)]
pub(super) struct Wallets {
    wallets: Vec<Wallet>,
    /// The holds of the reservations the batch read, by id.
    holds: HashMap<i64, credit_hold::Model>,
    dropped: HashSet<i64>,
    /// What the holds given back by the batch had taken (amount and grants), for a capture.
    released: HashMap<i64, (Decimal, Vec<GrantTake>)>,
    new_holds: Vec<credit_hold::ActiveModel>,
    new_entries: Vec<NewEntry>,
}

/// The ids the batch's new holds and ledger rows got, in order.
#[derive(Default)]
pub(super) struct WrittenCredits {
    pub(super) holds: Vec<i64>,
    pub(super) entries: Vec<CreditTransaction>,
}

impl Wallets {
    /// Reads the wallets of `billables` and the holds `hold_ids`.
    pub(super) async fn load<'a>(
        txn: &DatabaseTransaction,
        billables: impl IntoIterator<Item = &'a Billable>,
        hold_ids: Vec<i64>,
    ) -> StoreResult<Self> {
        let mut wallets = Wallets::default();
        for row in credit_wallet::Entity::find()
            .filter(of_billables(
                credit_wallet::Column::BillableType,
                credit_wallet::Column::BillableId,
                billables,
            ))
            .all(txn)
            .await
            .map_err(db_err)?
        {
            wallets.add(row, Vec::new())?;
        }
        if !wallets.wallets.is_empty() {
            let ids: Vec<i64> = wallets.wallets.iter().map(|w| w.row.id).collect();
            for row in credit_grant::Entity::find()
                .filter(credit_grant::Column::WalletId.is_in(ids))
                .all(txn)
                .await
                .map_err(db_err)?
            {
                let grant = grant_of(&row)?;
                if let Some(w) = wallets
                    .wallets
                    .iter_mut()
                    .find(|w| w.row.id == row.wallet_id)
                {
                    w.grants.push(grant.clone());
                    w.grants_before.push(grant);
                }
            }
        }
        if !hold_ids.is_empty() {
            for hold in credit_hold::Entity::find()
                .filter(credit_hold::Column::Id.is_in(hold_ids))
                .all(txn)
                .await
                .map_err(db_err)?
            {
                wallets.holds.insert(hold.id, hold);
            }
        }
        Ok(wallets)
    }

    fn add(&mut self, row: credit_wallet::Model, grants: Vec<CreditGrant>) -> StoreResult<usize> {
        self.wallets.push(Wallet {
            balance: money_from_text("ai_credit_wallets.balance", &row.balance)?,
            held: money_from_text("ai_credit_wallets.held", &row.held)?,
            row,
            dirty: false,
            grants_before: grants.clone(),
            grants,
        });
        Ok(self.wallets.len() - 1)
    }

    /// The wallet of `billable` in `currency`, created empty when missing.
    pub(super) async fn wallet(
        &mut self,
        txn: &DatabaseTransaction,
        billable: &Billable,
        currency: Currency,
    ) -> StoreResult<usize> {
        let found = self.wallets.iter().position(|w| {
            w.row.billable_type == billable.kind
                && w.row.billable_id == billable.id
                && w.row.currency == currency.as_str()
        });
        match found {
            Some(index) => Ok(index),
            None => {
                let row = wallet_for_update(txn, billable, currency).await?;
                let grants = Book::load(txn, row.id).await?.grants;
                self.add(row, grants)
            }
        }
    }

    /// The balance available at `now` (as
    /// [`WalletBalance::available`](ai_metering_core::store::WalletBalance::available)),
    /// counting the hold `except` as given back when it is a live hold of this wallet.
    pub(super) fn available(
        &self,
        wallet: usize,
        now: DateTime<Utc>,
        except: Option<i64>,
    ) -> StoreResult<Decimal> {
        let w = &self.wallets[wallet];
        let hold = except
            .filter(|h| !self.dropped.contains(h))
            .and_then(|h| self.holds.get(&h))
            .filter(|h| h.wallet_id == w.row.id);
        match hold {
            Some(h) => {
                let mut grants = w.grants.clone();
                grants::release_hold(
                    &mut grants,
                    &takes_from_text("ai_credit_holds.grants", &h.grants)?,
                );
                let held = w
                    .held
                    .saturating_sub(money_from_text("ai_credit_holds.amount", &h.amount)?);
                w.available(&grants, held, now)
            }
            None => w.available(&w.grants, w.held, now),
        }
    }

    /// The wallet of `billable` in `currency` as the batch has it now (its balance, its
    /// holds, and what its grants keep unusable at `at`), if the batch read it.
    pub(super) fn snapshot(
        &self,
        billable: &Billable,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Option<WalletBalance> {
        let w = self.wallets.iter().find(|w| {
            w.row.billable_type == billable.kind
                && w.row.billable_id == billable.id
                && w.row.currency == currency.as_str()
        })?;
        Some(WalletBalance {
            billable: billable.clone(),
            currency,
            balance: w.balance,
            held: w.held,
            unusable: grants::unusable(&w.grants, at).ok()?,
        })
    }

    /// The currency of a live hold's wallet.
    pub(super) fn hold_currency(&self, hold: i64) -> Option<&str> {
        self.holds
            .get(&hold)
            .filter(|_| !self.dropped.contains(&hold))
            .map(|h| h.currency.as_str())
    }

    /// Holds `amount` (positive) in `wallet` until `expires_at`; the hold's place among the
    /// new ones. The caller checked that the wallet permits it.
    pub(super) fn hold(
        &mut self,
        wallet: usize,
        amount: Money,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let w = &mut self.wallets[wallet];
        let held = w
            .held
            .checked_add(amount.amount)
            .ok_or_else(|| invalid("the held amount overflows"))?;
        let taken = grants::apply_hold(&mut w.grants, amount.amount, now)
            .map_err(|e| invalid(e.to_string()))?;
        w.held = held;
        w.dirty = true;
        self.new_holds.push(credit_hold::ActiveModel {
            wallet_id: Set(w.row.id),
            billable_type: Set(w.row.billable_type.clone()),
            billable_id: Set(w.row.billable_id.clone()),
            currency: Set(amount.currency.as_str().to_owned()),
            amount: Set(money_text(amount.amount)),
            grants: Set(takes_text(&taken.takes)?),
            created_at: Set(Utc::now()),
            expires_at: Set(instant(expires_at)),
            ..Default::default()
        });
        Ok(self.new_holds.len() - 1)
    }

    /// Drops a hold the batch read and gives its amount back to its wallet's available
    /// balance; nothing when it is gone.
    pub(super) fn release(&mut self, hold: i64) -> StoreResult<()> {
        let Some(h) = self.holds.get(&hold) else {
            return Ok(());
        };
        if !self.dropped.insert(hold) {
            return Ok(());
        }
        let amount = money_from_text("ai_credit_holds.amount", &h.amount)?;
        let takes = takes_from_text("ai_credit_holds.grants", &h.grants)?;
        if let Some(w) = self.wallets.iter_mut().find(|w| w.row.id == h.wallet_id) {
            w.held = w
                .held
                .checked_sub(amount)
                .unwrap_or(Decimal::ZERO)
                .max(Decimal::ZERO);
            grants::release_hold(&mut w.grants, &takes);
            w.dirty = true;
        }
        self.released.insert(hold, (amount, takes));
        Ok(())
    }

    /// The debit of a settled call's `cost` (never refused: the money was spent), paid by
    /// the grants its `hold` (given back by the batch already) took from, then as
    /// [`grants::spend_hold`] says; the ledger row's place among the new ones.
    pub(super) fn debit(
        &mut self,
        wallet: usize,
        cost: Money,
        hold: Option<i64>,
        at: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let row_id = self.wallets[wallet].row.id;
        let (held, takes) = hold
            .filter(|h| self.holds.get(h).is_some_and(|h| h.wallet_id == row_id))
            .and_then(|h| self.released.get(&h).cloned())
            .unwrap_or_default();
        let w = &mut self.wallets[wallet];
        let balance = w
            .balance
            .checked_sub(cost.amount)
            .ok_or_else(|| invalid("the wallet balance overflows"))?;
        let mut next = w.grants.clone();
        let paid = grants::spend_hold(&mut next, &takes, held, cost.amount, at)
            .map_err(|e| invalid(e.to_string()))?;
        w.grants = next;
        w.balance = balance;
        w.dirty = true;
        let at = instant(at);
        let billable = Billable::new(w.row.billable_type.clone(), w.row.billable_id.clone());
        self.new_entries.push(NewEntry {
            row: credit_transaction::ActiveModel {
                wallet_id: Set(w.row.id),
                billable_type: Set(w.row.billable_type.clone()),
                billable_id: Set(w.row.billable_id.clone()),
                currency: Set(w.row.currency.clone()),
                amount: Set(money_text(cost.amount)),
                direction: Set(direction_text(Direction::Debit).to_owned()),
                reason: Set(USAGE_DEBIT_REASON.to_owned()),
                balance_after: Set(money_text(balance)),
                metadata: Set("{}".to_owned()),
                grants: Set(takes_text(&paid.takes)?),
                created_at: Set(at),
                ..Default::default()
            },
            entry: CreditTransaction {
                id: super::NEW_ROW,
                billable,
                amount: cost,
                direction: Direction::Debit,
                reason: USAGE_DEBIT_REASON.to_owned(),
                balance_after: balance,
                metadata: serde_json::Map::new(),
                grants: paid.takes,
                created_at: at,
            },
        });
        Ok(self.new_entries.len() - 1)
    }

    /// Inserts the new holds (their ids, in order, are the first part of the result), the
    /// ledger rows, deletes the dropped holds and writes the changed wallets.
    pub(super) async fn write(self, txn: &DatabaseTransaction) -> StoreResult<WrittenCredits> {
        let mut written = WrittenCredits::default();
        if !self.new_holds.is_empty() {
            written.holds = insert_rows(txn, self.new_holds).await?;
        }
        if !self.new_entries.is_empty() {
            let (rows, entries): (Vec<_>, Vec<_>) = self
                .new_entries
                .into_iter()
                .map(|e| (e.row, e.entry))
                .unzip();
            let ids = insert_rows(txn, rows).await?;
            written.entries = ids
                .into_iter()
                .zip(entries)
                .map(|(id, entry)| CreditTransaction { id, ..entry })
                .collect();
        }
        if !self.dropped.is_empty() {
            credit_hold::Entity::delete_many()
                .filter(credit_hold::Column::Id.is_in(self.dropped.iter().copied()))
                .exec(txn)
                .await
                .map_err(db_err)?;
        }
        let dirty: Vec<&Wallet> = self.wallets.iter().filter(|w| w.dirty).collect();
        if !dirty.is_empty() {
            write_wallets(txn, &dirty).await?;
        }
        let grants: Vec<&CreditGrant> = self
            .wallets
            .iter()
            .flat_map(|w| {
                w.grants
                    .iter()
                    .zip(&w.grants_before)
                    .filter(|(now, then)| now.remaining != then.remaining || now.held != then.held)
                    .map(|(now, _)| now)
            })
            .collect();
        if !grants.is_empty() {
            write_grants(txn, &grants).await?;
        }
        Ok(written)
    }
}

/// Writes the wallets' balances in one statement, normalised as every write of a wallet
/// (no trailing zeros pile up).
async fn write_wallets(txn: &DatabaseTransaction, wallets: &[&Wallet]) -> StoreResult<()> {
    let rows = wallets
        .iter()
        .map(|w| {
            vec![
                w.row.id.into(),
                money_text(w.balance.normalize()).into(),
                money_text(w.held.normalize()).into(),
            ]
        })
        .collect();
    update_rows(
        txn,
        "ai_credit_wallets",
        &[("balance", "TEXT"), ("held", "TEXT")],
        rows,
    )
    .await
}

/// Writes the grants' remaining and held amounts in one statement, normalised.
async fn write_grants(txn: &DatabaseTransaction, grants: &[&CreditGrant]) -> StoreResult<()> {
    let rows = grants
        .iter()
        .map(|g| {
            vec![
                g.id.0.into(),
                money_text(g.remaining.normalize()).into(),
                money_text(g.held.normalize()).into(),
            ]
        })
        .collect();
    update_rows(
        txn,
        "ai_credit_grants",
        &[("remaining", "TEXT"), ("held", "TEXT")],
        rows,
    )
    .await
}
