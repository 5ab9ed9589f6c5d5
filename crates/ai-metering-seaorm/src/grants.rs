//! Credit grants for [`SeaOrmStore`]: the rows of `ai_credit_grants`, and the wallet's grants
//! as the pure functions of [`ai_metering_core::grants`] take them.
//!
//! A wallet's grants are read and written inside the transaction that holds the billable's
//! lock (see [`SeaOrmStore`]), with the wallet row itself: holds, captures, debits and
//! rollovers change a grant's `remaining` and `held` in the same transaction as the wallet's
//! balance and held amount, and the ledger row names the grants it moved.
//!
//! [`SeaOrmStore`]: crate::SeaOrmStore

use ai_metering_core::grants::{CreditGrant, GrantId, GrantTake, Rollover};
use ai_metering_core::store::{StoreResult, WalletGrant};
use ai_metering_core::{Billable, Currency};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};

use crate::codec::{currency, invalid, money_from_text, money_text, to_i64, to_u64};
use crate::entity::{credit_grant, credit_hold, credit_wallet};
use crate::error::db_err;

/// The grant a row holds.
pub(crate) fn grant_of(row: &credit_grant::Model) -> StoreResult<CreditGrant> {
    let rollover = match (&row.rollover_min, &row.rollover_max) {
        (Some(min), Some(max)) => Some(Rollover {
            min: money_from_text("ai_credit_grants.rollover_min", min)?,
            max: money_from_text("ai_credit_grants.rollover_max", max)?,
        }),
        _ => None,
    };
    let priority =
        u32::try_from(to_u64("ai_credit_grants.priority", row.priority)?).map_err(|_| {
            invalid(format!(
                "ai_credit_grants.priority {} is out of range",
                row.priority
            ))
        })?;
    Ok(CreditGrant {
        id: GrantId(row.id),
        amount: money_from_text("ai_credit_grants.amount", &row.amount)?,
        remaining: money_from_text("ai_credit_grants.remaining", &row.remaining)?,
        held: money_from_text("ai_credit_grants.held", &row.held)?,
        priority,
        effective_at: row.effective_at,
        expires_at: row.expires_at,
        rollover,
    })
}

/// The grant a row holds, with its wallet.
pub(crate) fn wallet_grant_of(row: &credit_grant::Model) -> StoreResult<WalletGrant> {
    Ok(WalletGrant {
        billable: Billable::new(row.billable_type.clone(), row.billable_id.clone()),
        currency: currency(&row.currency)?,
        grant: grant_of(row)?,
        created_at: row.created_at,
    })
}

/// The priority column of a grant.
pub(crate) fn priority_value(priority: u32) -> StoreResult<i64> {
    to_i64("a grant's priority", u64::from(priority))
}

/// The `grants` text of a hold or ledger row.
pub(crate) fn takes_text(takes: &[GrantTake]) -> StoreResult<String> {
    serde_json::to_string(takes).map_err(|e| invalid(format!("grant takes do not serialise: {e}")))
}

/// The takes a hold or ledger row's `grants` text lists.
pub(crate) fn takes_from_text(column: &str, text: &str) -> StoreResult<Vec<GrantTake>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "{column} {text:?} is not a list of grant takes: {e}"
        ))
    })
}

/// The grants of one wallet, as read in a transaction, and what they were when read (to
/// write only the changed ones).
pub(crate) struct Book {
    before: Vec<CreditGrant>,
    /// The grants, changed by the pure functions of [`ai_metering_core::grants`].
    pub(crate) grants: Vec<CreditGrant>,
}

impl Book {
    /// The grants of wallet `wallet`. Call with the billable's lock held to change them.
    pub(crate) async fn load<C: ConnectionTrait>(db: &C, wallet: i64) -> StoreResult<Self> {
        let grants = credit_grant::Entity::find()
            .filter(credit_grant::Column::WalletId.eq(wallet))
            .order_by_asc(credit_grant::Column::Id)
            .all(db)
            .await
            .map_err(db_err)?
            .iter()
            .map(grant_of)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            before: grants.clone(),
            grants,
        })
    }

    /// The unheld remainder of the grants that do not count at `at`.
    pub(crate) fn unusable(&self, at: DateTime<Utc>) -> StoreResult<Decimal> {
        ai_metering_core::grants::unusable(&self.grants, at).map_err(|e| invalid(e.to_string()))
    }

    /// The grants changed since they were read.
    pub(crate) fn changed(&self) -> impl Iterator<Item = &CreditGrant> {
        self.grants
            .iter()
            .zip(&self.before)
            .filter(|(now, then)| now.remaining != then.remaining || now.held != then.held)
            .map(|(now, _)| now)
    }

    /// Writes the changed grants, one statement each (a single operation changes a few).
    pub(crate) async fn save(self, txn: &DatabaseTransaction) -> StoreResult<()> {
        for g in self.changed() {
            credit_grant::Entity::update_many()
                .col_expr(
                    credit_grant::Column::Remaining,
                    Expr::value(money_text(g.remaining.normalize())),
                )
                .col_expr(
                    credit_grant::Column::Held,
                    Expr::value(money_text(g.held.normalize())),
                )
                .col_expr(credit_grant::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(credit_grant::Column::Id.eq(g.id.0))
                .exec(txn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

/// The available balance of `wallet` at `at`, counting the hold `except` (when it is one of
/// this wallet's) as given back: balance, minus what is held, minus what the grants that do
/// not count at `at` keep. Call with the billable's lock held.
pub(crate) async fn available_in(
    txn: &DatabaseTransaction,
    wallet: &credit_wallet::Model,
    at: DateTime<Utc>,
    except: Option<i64>,
) -> StoreResult<Decimal> {
    let balance = money_from_text("ai_credit_wallets.balance", &wallet.balance)?;
    let mut held = money_from_text("ai_credit_wallets.held", &wallet.held)?;
    let mut book = Book::load(txn, wallet.id).await?;
    if let Some(id) = except {
        let hold = credit_hold::Entity::find_by_id(id)
            .one(txn)
            .await
            .map_err(db_err)?
            .filter(|h| h.wallet_id == wallet.id);
        if let Some(h) = hold {
            held = held.saturating_sub(money_from_text("ai_credit_holds.amount", &h.amount)?);
            let takes = takes_from_text("ai_credit_holds.grants", &h.grants)?;
            ai_metering_core::grants::release_hold(&mut book.grants, &takes);
        }
    }
    Ok(balance
        .saturating_sub(held)
        .saturating_sub(book.unusable(at)?))
}

/// Every grant of the wallet of `billable` in `cur`, in burn-down order.
pub(crate) async fn grants_of<C: ConnectionTrait>(
    db: &C,
    billable: &Billable,
    cur: Currency,
) -> StoreResult<Vec<WalletGrant>> {
    let mut grants = credit_grant::Entity::find()
        .filter(credit_grant::Column::BillableType.eq(billable.kind.as_str()))
        .filter(credit_grant::Column::BillableId.eq(billable.id.as_str()))
        .filter(credit_grant::Column::Currency.eq(cur.as_str()))
        .all(db)
        .await
        .map_err(db_err)?
        .iter()
        .map(wallet_grant_of)
        .collect::<StoreResult<Vec<_>>>()?;
    grants.sort_by(|a, b| a.grant.burn_cmp(&b.grant));
    Ok(grants)
}
