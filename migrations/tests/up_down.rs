//! The migrations create every table on a fresh database and drop them all again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering_migration::{Migrator, MigratorTrait, SchemaManager, TABLES};
use sea_orm_migration::sea_orm::Database;

#[tokio::test]
async fn up_creates_every_table_and_down_drops_them() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let manager = SchemaManager::new(&db);
    for table in TABLES {
        assert!(manager.has_table(*table).await.unwrap(), "{table} missing");
    }
    for (table, column) in [
        ("ai_plans", "overage_price_per_1k_tokens"),
        ("ai_usages", "total_cost_nano"),
        ("ai_usages", "cache_write_long_tokens"),
        ("ai_credit_transactions", "balance_after"),
        ("ai_overages", "external_id"),
        ("ai_credit_grants", "remaining"),
        ("ai_credit_holds", "grants"),
        ("ai_credit_transactions", "grants"),
    ] {
        assert!(
            manager.has_column(table, column).await.unwrap(),
            "{table}.{column}"
        );
    }
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::down(&db, None).await.unwrap();
    for table in TABLES {
        assert!(
            !manager.has_table(*table).await.unwrap(),
            "{table} left behind"
        );
    }
}
