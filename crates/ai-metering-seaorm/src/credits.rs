//! [`CreditStore`] for [`SeaOrmStore`]: wallets, holds and the ledger.
//!
//! Every change runs in one transaction serialised per billable (see [`SeaOrmStore`]): the
//! wallet and its grants are read, checked with [`Overdraft::permits`] against the balance
//! available at the operation's instant (expired grants excluded), and written back with the
//! ledger entry, which names the grants it moved (see [`crate::grants`]).

use ai_metering_core::grants::{self, GrantId, GrantTake};
use ai_metering_core::store::{
    CreditOutcome, CreditStore, CreditTransaction, Direction, HoldId, NewGrant, Overdraft,
    ROLLOVER_REASON, StoreError, StoreResult, WalletBalance, WalletGrant,
};
use ai_metering_core::{Billable, Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};

use crate::codec::{currency, instant, invalid, json_from_text, money_from_text, money_text};
use crate::entity::{credit_grant, credit_hold, credit_transaction, credit_wallet};
use crate::error::db_err;
use crate::grants::{
    Book, available_in, priority_value, takes_from_text, takes_text, wallet_grant_of,
};
use crate::store::SeaOrmStore;

impl CreditStore for SeaOrmStore {
    async fn wallet_at(
        &self,
        billable: &Billable,
        cur: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<WalletBalance> {
        wallet_in(self.connection(), billable, cur, at).await
    }

    async fn add_credits_with_metadata(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        positive(amount.amount)?;
        let txn = self.begin_for([billable]).await?;
        let wallet = wallet_for_update(&txn, billable, amount.currency).await?;
        let balance = money_from_text("ai_credit_wallets.balance", &wallet.balance)?
            .checked_add(amount.amount)
            .ok_or_else(|| invalid("the wallet balance overflows"))?;
        set_wallet(&txn, wallet.id, Some(balance), None).await?;
        let entry = ledger_with_metadata(
            &txn,
            &wallet,
            amount,
            Direction::Credit,
            reason,
            balance,
            metadata,
            &[],
            at,
        )
        .await?;
        txn.commit().await.map_err(db_err)?;
        Ok(entry)
    }

    async fn deduct_credits(
        &self,
        billable: &Billable,
        amount: Money,
        reason: &str,
        overdraft: Overdraft,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<CreditTransaction>> {
        positive(amount.amount)?;
        let txn = self.begin_for([billable]).await?;
        let wallet = wallet_for_update(&txn, billable, amount.currency).await?;
        let state = balance_of(&wallet)?;
        let mut book = Book::load(&txn, wallet.id).await?;
        let available = state.available().saturating_sub(book.unusable(at)?);
        if !overdraft.permits(available, amount.amount) {
            txn.rollback().await.map_err(db_err)?;
            return Ok(CreditOutcome::Insufficient { available });
        }
        let balance = state
            .balance
            .checked_sub(amount.amount)
            .ok_or_else(|| invalid("the wallet balance overflows"))?;
        let paid = grants::apply_deduction(&mut book.grants, amount.amount, at)
            .map_err(|e| invalid(e.to_string()))?;
        book.save(&txn).await?;
        set_wallet(&txn, wallet.id, Some(balance), None).await?;
        let entry = ledger(
            &txn,
            &wallet,
            amount,
            Direction::Debit,
            reason,
            balance,
            &paid.takes,
            at,
        )
        .await?;
        txn.commit().await.map_err(db_err)?;
        Ok(CreditOutcome::Done(entry))
    }

    async fn hold_credits_at(
        &self,
        billable: &Billable,
        amount: Money,
        overdraft: Overdraft,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<CreditOutcome<HoldId>> {
        positive(amount.amount)?;
        let txn = self.begin_for([billable]).await?;
        let wallet = wallet_for_update(&txn, billable, amount.currency).await?;
        let available = available_in(&txn, &wallet, now, None).await?;
        if !overdraft.permits(available, amount.amount) {
            txn.rollback().await.map_err(db_err)?;
            return Ok(CreditOutcome::Insufficient { available });
        }
        let id = hold_in(&txn, &wallet, amount, now, expires_at).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(CreditOutcome::Done(HoldId(id)))
    }

    async fn settle_hold(
        &self,
        hold: HoldId,
        actual: Money,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<CreditTransaction> {
        if actual.amount.is_sign_negative() {
            return Err(invalid("a settled amount must not be negative"));
        }
        let not_found = || StoreError::not_found(format!("credit hold {}", hold.0));
        let billable = hold_owner(self.connection(), hold)
            .await?
            .ok_or_else(not_found)?;
        let txn = self.begin_for([&billable]).await?;
        let taken = take_hold(&txn, hold).await?.ok_or_else(not_found)?;
        let wallet = &taken.wallet;
        if actual.currency.as_str() != wallet.currency {
            return Err(invalid(format!(
                "hold {} is in {}, the settled amount in {}",
                hold.0, wallet.currency, actual.currency
            )));
        }
        let state = balance_of(wallet)?;
        let held = state
            .held
            .checked_sub(taken.amount)
            .unwrap_or(Decimal::ZERO)
            .max(Decimal::ZERO);
        let balance = state
            .balance
            .checked_sub(actual.amount)
            .ok_or_else(|| invalid("the wallet balance overflows"))?;
        let mut book = Book::load(&txn, wallet.id).await?;
        let paid = grants::capture_hold(
            &mut book.grants,
            &taken.takes,
            taken.amount,
            actual.amount,
            at,
        )
        .map_err(|e| invalid(e.to_string()))?;
        book.save(&txn).await?;
        set_wallet(&txn, wallet.id, Some(balance), Some(held)).await?;
        let entry = ledger(
            &txn,
            wallet,
            actual,
            Direction::Debit,
            reason,
            balance,
            &paid.takes,
            at,
        )
        .await?;
        txn.commit().await.map_err(db_err)?;
        Ok(entry)
    }

    async fn release_hold(&self, hold: HoldId) -> StoreResult<bool> {
        let Some(billable) = hold_owner(self.connection(), hold).await? else {
            return Ok(false);
        };
        let txn = self.begin_for([&billable]).await?;
        let released = release_hold_in(&txn, hold.0).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(released)
    }

    async fn expire_credit_holds(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let expired = credit_hold::Entity::find()
            .filter(credit_hold::Column::ExpiresAt.lte(instant(now)))
            .all(self.connection())
            .await
            .map_err(db_err)?;
        let mut dropped = 0;
        for hold in expired {
            // Each release is its own atomic step; a hold settled meanwhile is skipped.
            if self.release_hold(HoldId(hold.id)).await? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    async fn add_grant(
        &self,
        billable: &Billable,
        grant: &NewGrant,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(WalletGrant, CreditTransaction)> {
        grant.validate()?;
        let amount = grant.amount;
        let txn = self.begin_for([billable]).await?;
        let wallet = wallet_for_update(&txn, billable, amount.currency).await?;
        let balance = money_from_text("ai_credit_wallets.balance", &wallet.balance)?
            .checked_add(amount.amount)
            .ok_or_else(|| invalid("the wallet balance overflows"))?;
        let now = Utc::now();
        let row = credit_grant::ActiveModel {
            wallet_id: Set(wallet.id),
            billable_type: Set(wallet.billable_type.clone()),
            billable_id: Set(wallet.billable_id.clone()),
            currency: Set(wallet.currency.clone()),
            amount: Set(money_text(amount.amount)),
            remaining: Set(money_text(amount.amount)),
            held: Set(money_text(Decimal::ZERO)),
            priority: Set(priority_value(grant.priority)?),
            effective_at: Set(instant(grant.effective_at)),
            expires_at: Set(grant.expires_at.map(instant)),
            rollover_min: Set(grant.rollover.map(|r| money_text(r.min))),
            rollover_max: Set(grant.rollover.map(|r| money_text(r.max))),
            created_at: Set(instant(at)),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = credit_grant::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(db_err)?
            .last_insert_id;
        set_wallet(&txn, wallet.id, Some(balance), None).await?;
        let take = GrantTake {
            grant: GrantId(id),
            amount: amount.amount,
        };
        let entry = ledger(
            &txn,
            &wallet,
            amount,
            Direction::Credit,
            reason,
            balance,
            &[take],
            at,
        )
        .await?;
        let stored = credit_grant::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::not_found(format!("credit grant {id}, just added")))?;
        txn.commit().await.map_err(db_err)?;
        Ok((wallet_grant_of(&stored)?, entry))
    }

    async fn roll_over_grants(
        &self,
        billable: &Billable,
        cur: Currency,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<CreditTransaction>> {
        let txn = self.begin_for([billable]).await?;
        let Some(wallet) = find_wallet(&txn, billable, cur).await? else {
            txn.rollback().await.map_err(db_err)?;
            return Ok(Vec::new());
        };
        let mut book = Book::load(&txn, wallet.id).await?;
        let changes = grants::reset_period(&mut book.grants, at);
        let mut balance = money_from_text("ai_credit_wallets.balance", &wallet.balance)?;
        let mut entries = Vec::with_capacity(changes.len());
        book.save(&txn).await?;
        for c in changes {
            let (direction, amount) = if c.after > c.before {
                (Direction::Credit, c.after - c.before)
            } else {
                (Direction::Debit, c.before - c.after)
            };
            balance = match direction {
                Direction::Credit => balance.checked_add(amount),
                Direction::Debit => balance.checked_sub(amount),
            }
            .ok_or_else(|| invalid("the wallet balance overflows"))?;
            let take = GrantTake {
                grant: c.grant,
                amount,
            };
            entries.push(
                ledger(
                    &txn,
                    &wallet,
                    Money::new(amount, cur),
                    direction,
                    ROLLOVER_REASON,
                    balance,
                    &[take],
                    at,
                )
                .await?,
            );
        }
        if !entries.is_empty() {
            set_wallet(&txn, wallet.id, Some(balance), None).await?;
        }
        txn.commit().await.map_err(db_err)?;
        Ok(entries)
    }
}

fn positive(amount: Decimal) -> StoreResult<()> {
    if amount > Decimal::ZERO {
        Ok(())
    } else {
        Err(invalid(format!(
            "credit amounts must be positive, got {amount}"
        )))
    }
}

pub(crate) async fn find_wallet<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    cur: Currency,
) -> StoreResult<Option<credit_wallet::Model>> {
    credit_wallet::Entity::find()
        .filter(credit_wallet::Column::BillableType.eq(billable.kind.as_str()))
        .filter(credit_wallet::Column::BillableId.eq(billable.id.as_str()))
        .filter(credit_wallet::Column::Currency.eq(cur.as_str()))
        .one(db)
        .await
        .map_err(db_err)
}

/// The wallet of `billable` in `cur` as of `at` (an empty one when it has none), read on
/// `db`: the connection, or a transaction that has just changed it.
pub(crate) async fn wallet_in<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    cur: Currency,
    at: DateTime<Utc>,
) -> StoreResult<WalletBalance> {
    match find_wallet(db, billable, cur).await? {
        Some(w) => {
            let unusable = Book::load(db, w.id).await?.unusable(at)?;
            Ok(WalletBalance {
                unusable,
                ..balance_of(&w)?
            })
        }
        None => Ok(WalletBalance::empty(billable.clone(), cur)),
    }
}

/// The wallet, created empty when missing. Call with the billable's lock held.
pub(crate) async fn wallet_for_update(
    txn: &DatabaseTransaction,
    billable: &Billable,
    cur: Currency,
) -> StoreResult<credit_wallet::Model> {
    if let Some(w) = find_wallet(txn, billable, cur).await? {
        return Ok(w);
    }
    let now = Utc::now();
    let row = credit_wallet::ActiveModel {
        billable_type: Set(billable.kind.clone()),
        billable_id: Set(billable.id.clone()),
        currency: Set(cur.as_str().to_owned()),
        balance: Set(money_text(Decimal::ZERO)),
        held: Set(money_text(Decimal::ZERO)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    credit_wallet::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(db_err)?;
    find_wallet(txn, billable, cur)
        .await?
        .ok_or_else(|| StoreError::not_found("the wallet just created"))
}

pub(crate) fn balance_of(w: &credit_wallet::Model) -> StoreResult<WalletBalance> {
    Ok(WalletBalance {
        billable: Billable::new(w.billable_type.clone(), w.billable_id.clone()),
        currency: currency(&w.currency)?,
        balance: money_from_text("ai_credit_wallets.balance", &w.balance)?,
        held: money_from_text("ai_credit_wallets.held", &w.held)?,
        unusable: Decimal::ZERO,
    })
}

pub(crate) async fn set_wallet(
    txn: &DatabaseTransaction,
    id: i64,
    balance: Option<Decimal>,
    held: Option<Decimal>,
) -> StoreResult<()> {
    let mut update = credit_wallet::Entity::update_many()
        .col_expr(credit_wallet::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(credit_wallet::Column::Id.eq(id));
    // Normalised: a balance that went through many operations keeps no trailing zeros
    // (a held amount back at zero reads `0`, not `0.00000000`).
    if let Some(b) = balance {
        update = update.col_expr(
            credit_wallet::Column::Balance,
            Expr::value(money_text(b.normalize())),
        );
    }
    if let Some(h) = held {
        update = update.col_expr(
            credit_wallet::Column::Held,
            Expr::value(money_text(h.normalize())),
        );
    }
    update.exec(txn).await.map_err(db_err)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn ledger(
    txn: &DatabaseTransaction,
    wallet: &credit_wallet::Model,
    amount: Money,
    direction: Direction,
    reason: &str,
    balance_after: Decimal,
    grants: &[GrantTake],
    at: DateTime<Utc>,
) -> StoreResult<CreditTransaction> {
    let none = serde_json::Map::new();
    ledger_with_metadata(
        txn,
        wallet,
        amount,
        direction,
        reason,
        balance_after,
        &none,
        grants,
        at,
    )
    .await
}

/// [`ledger`], keeping `metadata` with the entry.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn ledger_with_metadata(
    txn: &DatabaseTransaction,
    wallet: &credit_wallet::Model,
    amount: Money,
    direction: Direction,
    reason: &str,
    balance_after: Decimal,
    metadata: &serde_json::Map<String, serde_json::Value>,
    grants: &[GrantTake],
    at: DateTime<Utc>,
) -> StoreResult<CreditTransaction> {
    let at = instant(at);
    let metadata_text = serde_json::to_string(metadata)
        .map_err(|e| invalid(format!("credit metadata does not serialise: {e}")))?;
    let row = credit_transaction::ActiveModel {
        wallet_id: Set(wallet.id),
        billable_type: Set(wallet.billable_type.clone()),
        billable_id: Set(wallet.billable_id.clone()),
        currency: Set(wallet.currency.clone()),
        amount: Set(money_text(amount.amount)),
        direction: Set(direction_text(direction).to_owned()),
        reason: Set(reason.to_owned()),
        balance_after: Set(money_text(balance_after)),
        metadata: Set(metadata_text),
        grants: Set(takes_text(grants)?),
        created_at: Set(at),
        ..Default::default()
    };
    let id = credit_transaction::Entity::insert(row)
        .exec(txn)
        .await
        .map_err(db_err)?
        .last_insert_id;
    Ok(CreditTransaction {
        id,
        billable: Billable::new(wallet.billable_type.clone(), wallet.billable_id.clone()),
        amount,
        direction,
        reason: reason.to_owned(),
        balance_after,
        metadata: metadata.clone(),
        grants: grants.to_vec(),
        created_at: at,
    })
}

/// Who owns a hold, read without a lock (to know which lock to take).
async fn hold_owner<C: ConnectionTrait>(db: &C, hold: HoldId) -> StoreResult<Option<Billable>> {
    Ok(credit_hold::Entity::find_by_id(hold.0)
        .one(db)
        .await
        .map_err(db_err)?
        .map(|h| Billable::new(h.billable_type, h.billable_id)))
}

/// A hold deleted under the lock: its amount, the grants it took from, and its wallet.
pub(crate) struct TakenHold {
    /// The amount held.
    pub(crate) amount: Decimal,
    /// What it took from the wallet's grants.
    pub(crate) takes: Vec<GrantTake>,
    /// The wallet, as it was before the hold was given back.
    pub(crate) wallet: credit_wallet::Model,
}

/// Deletes a hold under the lock and returns it; `None` if it is gone. The wallet's held
/// amount and the grants are the caller's to update.
pub(crate) async fn take_hold(
    txn: &DatabaseTransaction,
    hold: HoldId,
) -> StoreResult<Option<TakenHold>> {
    let Some(h) = credit_hold::Entity::find_by_id(hold.0)
        .one(txn)
        .await
        .map_err(db_err)?
    else {
        return Ok(None);
    };
    credit_hold::Entity::delete_by_id(h.id)
        .exec(txn)
        .await
        .map_err(db_err)?;
    let wallet = credit_wallet::Entity::find_by_id(h.wallet_id)
        .one(txn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::not_found(format!("the wallet of credit hold {}", h.id)))?;
    Ok(Some(TakenHold {
        amount: money_from_text("ai_credit_holds.amount", &h.amount)?,
        takes: takes_from_text("ai_credit_holds.grants", &h.grants)?,
        wallet,
    }))
}

/// Drops a hold and gives its amount back to the wallet's available balance (and to the
/// grants it took from); false when it is gone. Call with the billable's lock held.
pub(crate) async fn release_hold_in(txn: &DatabaseTransaction, hold: i64) -> StoreResult<bool> {
    let Some(taken) = take_hold(txn, HoldId(hold)).await? else {
        return Ok(false);
    };
    let held = money_from_text("ai_credit_wallets.held", &taken.wallet.held)?
        .checked_sub(taken.amount)
        .unwrap_or(Decimal::ZERO)
        .max(Decimal::ZERO);
    if !taken.takes.is_empty() {
        let mut book = Book::load(txn, taken.wallet.id).await?;
        grants::release_hold(&mut book.grants, &taken.takes);
        book.save(txn).await?;
    }
    set_wallet(txn, taken.wallet.id, None, Some(held)).await?;
    Ok(true)
}

/// Holds `amount` (positive) in `billable`'s wallet until `expires_at`, taking it from the
/// grants usable at `now` first; returns the hold's id. The caller checked that the wallet
/// permits it. Call with the billable's lock held.
pub(crate) async fn hold_in(
    txn: &DatabaseTransaction,
    wallet: &credit_wallet::Model,
    amount: Money,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<i64> {
    let held = money_from_text("ai_credit_wallets.held", &wallet.held)?
        .checked_add(amount.amount)
        .ok_or_else(|| invalid("the held amount overflows"))?;
    let mut book = Book::load(txn, wallet.id).await?;
    let taken = grants::apply_hold(&mut book.grants, amount.amount, now)
        .map_err(|e| invalid(e.to_string()))?;
    book.save(txn).await?;
    set_wallet(txn, wallet.id, None, Some(held)).await?;
    let row = credit_hold::ActiveModel {
        wallet_id: Set(wallet.id),
        billable_type: Set(wallet.billable_type.clone()),
        billable_id: Set(wallet.billable_id.clone()),
        currency: Set(amount.currency.as_str().to_owned()),
        amount: Set(money_text(amount.amount)),
        grants: Set(takes_text(&taken.takes)?),
        created_at: Set(Utc::now()),
        expires_at: Set(instant(expires_at)),
        ..Default::default()
    };
    Ok(credit_hold::Entity::insert(row)
        .exec(txn)
        .await
        .map_err(db_err)?
        .last_insert_id)
}

pub(crate) fn direction_text(d: Direction) -> &'static str {
    match d {
        Direction::Credit => "credit",
        Direction::Debit => "debit",
    }
}

pub(crate) fn to_transaction(m: credit_transaction::Model) -> StoreResult<CreditTransaction> {
    let direction = match m.direction.as_str() {
        "credit" => Direction::Credit,
        "debit" => Direction::Debit,
        other => {
            return Err(invalid(format!(
                "ai_credit_transactions row {} has direction {other:?}",
                m.id
            )));
        }
    };
    Ok(CreditTransaction {
        id: m.id,
        billable: Billable::new(m.billable_type, m.billable_id),
        amount: Money::new(
            money_from_text("ai_credit_transactions.amount", &m.amount)?,
            currency(&m.currency)?,
        ),
        direction,
        reason: m.reason,
        balance_after: money_from_text("ai_credit_transactions.balance_after", &m.balance_after)?,
        metadata: json_from_text("ai_credit_transactions.metadata", &m.metadata)?,
        grants: takes_from_text("ai_credit_transactions.grants", &m.grants)?,
        created_at: m.created_at,
    })
}
