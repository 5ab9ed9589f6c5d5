//! `ai_reservations` gains what makes a reservation one atomic claim: the credit hold made
//! with it, the idempotency key it claims, and whether it is a billable's one unestimated
//! call in flight.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema;

use crate::columns::key_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiReservations {
    Table,
    BillableType,
    BillableId,
    HoldId,
    IdempotencyKey,
    Exclusive,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(AiReservations::Table)
                .add_column(schema::big_integer_null(AiReservations::HoldId))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AiReservations::Table)
                .add_column(key_null(AiReservations::IdempotencyKey))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(AiReservations::Table)
                .add_column(schema::boolean(AiReservations::Exclusive).default(false))
                .to_owned(),
        )
        .await?;
        // Key and exclusivity checks look up a billable's reservations.
        m.create_index(
            Index::create()
                .name("idx_ai_reservations_billable")
                .table(AiReservations::Table)
                .col(AiReservations::BillableType)
                .col(AiReservations::BillableId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_ai_reservations_billable")
                .table(AiReservations::Table)
                .to_owned(),
        )
        .await?;
        for column in [
            AiReservations::Exclusive,
            AiReservations::IdempotencyKey,
            AiReservations::HoldId,
        ] {
            m.alter_table(
                Table::alter()
                    .table(AiReservations::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
