//! `ai_credit_grants`: the blocks of credits that partition a wallet's balance (an amount,
//! what is left of it, what calls in flight hold of it, a burn-down priority, an optional
//! start and expiry, an optional rollover rule); and a `grants` column on
//! `ai_credit_holds` and `ai_credit_transactions` saying which grants a hold took from and
//! which grants a ledger entry moved (a JSON array of `{"grant": id, "amount": "1.5"}`,
//! `[]` for rows written before grants existed).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, text};

use crate::columns::{currency, id, instant, instant_null, key, money, money_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiCreditGrants {
    Table,
    Id,
    WalletId,
    BillableType,
    BillableId,
    Currency,
    Amount,
    Remaining,
    Held,
    Priority,
    EffectiveAt,
    ExpiresAt,
    RolloverMin,
    RolloverMax,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiCreditWallets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AiCreditHolds {
    Table,
    Grants,
}

#[derive(DeriveIden)]
enum AiCreditTransactions {
    Table,
    Grants,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiCreditGrants::Table)
                .col(id(AiCreditGrants::Id))
                .col(big_integer(AiCreditGrants::WalletId))
                .col(key(AiCreditGrants::BillableType))
                .col(key(AiCreditGrants::BillableId))
                .col(currency(AiCreditGrants::Currency))
                .col(money(AiCreditGrants::Amount))
                .col(money(AiCreditGrants::Remaining))
                .col(money(AiCreditGrants::Held))
                // Lower burns first.
                .col(big_integer(AiCreditGrants::Priority))
                .col(instant(AiCreditGrants::EffectiveAt))
                .col(instant_null(AiCreditGrants::ExpiresAt))
                .col(money_null(AiCreditGrants::RolloverMin))
                .col(money_null(AiCreditGrants::RolloverMax))
                .col(instant(AiCreditGrants::CreatedAt))
                .col(instant(AiCreditGrants::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ai_credit_grants_wallet")
                        .from(AiCreditGrants::Table, AiCreditGrants::WalletId)
                        .to(AiCreditWallets::Table, AiCreditWallets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_credit_grants_wallet")
                .table(AiCreditGrants::Table)
                .col(AiCreditGrants::WalletId)
                .to_owned(),
        )
        .await?;
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(AiCreditHolds::Table)
                .add_column(text(AiCreditHolds::Grants).default("[]").take())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AiCreditTransactions::Table)
                .add_column(text(AiCreditTransactions::Grants).default("[]").take())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AiCreditTransactions::Table)
                .drop_column(AiCreditTransactions::Grants)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AiCreditHolds::Table)
                .drop_column(AiCreditHolds::Grants)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(AiCreditGrants::Table).to_owned())
            .await
    }
}
