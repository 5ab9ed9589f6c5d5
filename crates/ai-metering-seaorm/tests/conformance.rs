//! The shared store conformance suite and money-path scenarios of `ai-metering-testkit`, run
//! against this store on SQLite (always) and PostgreSQL (when `AI_METERING_TEST_POSTGRES_URL`
//! is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod sqlite {
    use super::common;

    ai_metering_testkit::store_conformance_tests!(async { common::fresh_sqlite().await });
    ai_metering_testkit::money_path_tests!(async { common::fresh_sqlite().await });
}

mod postgres {
    use ai_metering_seaorm::SeaOrmStore;

    use super::common;

    /// One database for the whole suite, recreated once per test run; every case uses
    /// billables of its own, so the cases can share it.
    async fn store() -> Option<SeaOrmStore> {
        static URL: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
        let url = URL
            .get_or_init(|| common::fresh_postgres_url("conformance"))
            .await
            .clone()?;
        let store = SeaOrmStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Some(store)
    }

    ai_metering_testkit::store_conformance_tests!(optional: store());

    /// A database of its own for each scenario: they sweep expired reservations, which is
    /// global, by clocks of their own.
    async fn own_store() -> Option<SeaOrmStore> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        common::fresh_postgres(&format!("money_path_{n}")).await
    }

    ai_metering_testkit::money_path_tests!(optional: own_store());
}
