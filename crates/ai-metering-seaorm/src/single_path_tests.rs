//! The store conformance suite on the single-operation path: a store without its writer,
//! where every reservation, settlement and release is a transaction of its own. The writer
//! falls back to this path for the calls a batch does not cover, so it must keep every
//! guarantee the batch keeps (the integration tests run the suite through the writer).
//! The credit grants' cases ran here alone before; the whole suite does now.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::SeaOrmStore;

/// A migrated store on `url`, without its writer.
async fn single_path(url: &str) -> SeaOrmStore {
    let store = SeaOrmStore::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let single = store.without_writer();
    assert!(single.writer().is_none());
    single
}

mod sqlite {
    /// A fresh store on a new SQLite file (WAL, a pool of connections).
    async fn store() -> crate::SeaOrmStore {
        let dir = tempfile::Builder::new()
            .prefix("ai-metering-single-path-")
            .tempdir()
            .unwrap()
            // A store may outlive any guard the test could hold.
            .keep();
        super::single_path(&format!("sqlite://{}", dir.join("store.db").display())).await
    }

    ai_metering_testkit::store_conformance_tests!(async { store().await });
}

mod postgres {
    use super::*;

    /// One database for the suite, recreated once per run (every case uses billables of its
    /// own); `None` when no PostgreSQL server is configured and the test may skip.
    async fn store() -> Option<SeaOrmStore> {
        static URL: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
        let url = URL
            .get_or_init(|| async {
                let server = ai_metering_test_env::postgres_url("single_path_conformance")?;
                let admin = Database::connect(server.as_str()).await.unwrap();
                for sql in [
                    r#"DROP DATABASE IF EXISTS "aim_single_path" WITH (FORCE)"#,
                    r#"CREATE DATABASE "aim_single_path""#,
                ] {
                    admin
                        .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
                        .await
                        .unwrap();
                }
                admin.close().await.unwrap();
                let (base, _) = server.rsplit_once('/').unwrap();
                Some(format!("{base}/aim_single_path"))
            })
            .await
            .clone()?;
        Some(single_path(&url).await)
    }

    ai_metering_testkit::store_conformance_tests!(optional: store());
}
