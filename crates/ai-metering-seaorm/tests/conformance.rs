//! The shared store conformance suite of `ai-metering-testkit`, run against this store on
//! SQLite (always) and PostgreSQL (when `AI_METERING_TEST_POSTGRES_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod sqlite {
    use super::common;

    ai_metering_testkit::store_conformance_tests!(async { common::fresh_sqlite().await });
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
}
