//! `ai_period_counters`, `ai_reservations` and `ai_threshold_claims`: what atomic
//! reservations work on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_len;

use crate::columns::{count, id, instant, key, money};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AiPeriodCounters {
    Table,
    Id,
    BillableType,
    BillableId,
    PeriodStart,
    PeriodEnd,
    RecordedTokens,
    RecordedCost,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AiReservations {
    Table,
    Id,
    CounterId,
    BillableType,
    BillableId,
    Tokens,
    Cost,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AiThresholdClaims {
    Table,
    Id,
    BillableType,
    BillableId,
    PeriodStart,
    PeriodEnd,
    Threshold,
    ClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AiPeriodCounters::Table)
                .col(id(AiPeriodCounters::Id))
                .col(key(AiPeriodCounters::BillableType))
                .col(key(AiPeriodCounters::BillableId))
                .col(instant(AiPeriodCounters::PeriodStart))
                .col(instant(AiPeriodCounters::PeriodEnd))
                .col(count(AiPeriodCounters::RecordedTokens))
                .col(money(AiPeriodCounters::RecordedCost))
                .col(instant(AiPeriodCounters::CreatedAt))
                .col(instant(AiPeriodCounters::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_ai_period_counters_billable_period")
                .table(AiPeriodCounters::Table)
                .col(AiPeriodCounters::BillableType)
                .col(AiPeriodCounters::BillableId)
                .col(AiPeriodCounters::PeriodStart)
                .col(AiPeriodCounters::PeriodEnd)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AiReservations::Table)
                .col(id(AiReservations::Id))
                .col(sea_orm_migration::schema::big_integer(
                    AiReservations::CounterId,
                ))
                .col(key(AiReservations::BillableType))
                .col(key(AiReservations::BillableId))
                .col(count(AiReservations::Tokens))
                .col(money(AiReservations::Cost))
                .col(instant(AiReservations::CreatedAt))
                .col(instant(AiReservations::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_ai_reservations_counter")
                        .from(AiReservations::Table, AiReservations::CounterId)
                        .to(AiPeriodCounters::Table, AiPeriodCounters::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_reservations_counter_expires")
                .table(AiReservations::Table)
                .col(AiReservations::CounterId)
                .col(AiReservations::ExpiresAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ai_reservations_expires")
                .table(AiReservations::Table)
                .col(AiReservations::ExpiresAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AiThresholdClaims::Table)
                .col(id(AiThresholdClaims::Id))
                .col(key(AiThresholdClaims::BillableType))
                .col(key(AiThresholdClaims::BillableId))
                .col(instant(AiThresholdClaims::PeriodStart))
                .col(instant(AiThresholdClaims::PeriodEnd))
                // The normalised decimal text of the percentage (`80`, `92.5`).
                .col(string_len(AiThresholdClaims::Threshold, 40))
                .col(instant(AiThresholdClaims::ClaimedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_ai_threshold_claims")
                .table(AiThresholdClaims::Table)
                .col(AiThresholdClaims::BillableType)
                .col(AiThresholdClaims::BillableId)
                .col(AiThresholdClaims::PeriodStart)
                .col(AiThresholdClaims::PeriodEnd)
                .col(AiThresholdClaims::Threshold)
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AiThresholdClaims::Table.into_iden(),
            AiReservations::Table.into_iden(),
            AiPeriodCounters::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
