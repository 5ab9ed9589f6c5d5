//! `ai_credit_wallets`, `ai_credit_transactions` and `ai_credit_holds`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string_len};

use crate::columns::{currency, id, instant, json_text, key, money};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiCreditWallets {
    Table,
    Id,
    BillableType,
    BillableId,
    Currency,
    Balance,
    Held,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiCreditTransactions {
    Table,
    Id,
    WalletId,
    BillableType,
    BillableId,
    Currency,
    Amount,
    Direction,
    Reason,
    BalanceAfter,
    Metadata,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AiCreditHolds {
    Table,
    Id,
    WalletId,
    BillableType,
    BillableId,
    Currency,
    Amount,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiCreditWallets::Table)
                .col(id(AiCreditWallets::Id))
                .col(key(AiCreditWallets::BillableType))
                .col(key(AiCreditWallets::BillableId))
                .col(currency(AiCreditWallets::Currency))
                .col(money(AiCreditWallets::Balance))
                .col(money(AiCreditWallets::Held))
                .col(instant(AiCreditWallets::CreatedAt))
                .col(instant(AiCreditWallets::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_ai_credit_wallets_billable_currency")
                .table(AiCreditWallets::Table)
                .col(AiCreditWallets::BillableType)
                .col(AiCreditWallets::BillableId)
                .col(AiCreditWallets::Currency)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AiCreditTransactions::Table)
                .col(id(AiCreditTransactions::Id))
                .col(big_integer(AiCreditTransactions::WalletId))
                .col(key(AiCreditTransactions::BillableType))
                .col(key(AiCreditTransactions::BillableId))
                .col(currency(AiCreditTransactions::Currency))
                // Always positive; `direction` (`credit` / `debit`) carries the sign.
                .col(money(AiCreditTransactions::Amount))
                .col(string_len(AiCreditTransactions::Direction, 8))
                .col(string_len(AiCreditTransactions::Reason, 255))
                .col(money(AiCreditTransactions::BalanceAfter))
                .col(json_text(AiCreditTransactions::Metadata))
                .col(instant(AiCreditTransactions::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ai_credit_transactions_wallet")
                        .from(AiCreditTransactions::Table, AiCreditTransactions::WalletId)
                        .to(AiCreditWallets::Table, AiCreditWallets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_credit_transactions_wallet_created")
                .table(AiCreditTransactions::Table)
                .col(AiCreditTransactions::WalletId)
                .col(AiCreditTransactions::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AiCreditHolds::Table)
                .col(id(AiCreditHolds::Id))
                .col(big_integer(AiCreditHolds::WalletId))
                .col(key(AiCreditHolds::BillableType))
                .col(key(AiCreditHolds::BillableId))
                .col(currency(AiCreditHolds::Currency))
                .col(money(AiCreditHolds::Amount))
                .col(instant(AiCreditHolds::CreatedAt))
                .col(instant(AiCreditHolds::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ai_credit_holds_wallet")
                        .from(AiCreditHolds::Table, AiCreditHolds::WalletId)
                        .to(AiCreditWallets::Table, AiCreditWallets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_credit_holds_wallet")
                .table(AiCreditHolds::Table)
                .col(AiCreditHolds::WalletId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_credit_holds_expires")
                .table(AiCreditHolds::Table)
                .col(AiCreditHolds::ExpiresAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AiCreditHolds::Table.into_iden(),
            AiCreditTransactions::Table.into_iden(),
            AiCreditWallets::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
