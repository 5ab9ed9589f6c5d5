//! A COMMIT that SQLite refuses while keeping the transaction open (a deferred foreign key,
//! like a full disk, can do that) must not leave the pooled connection inside it: the next
//! transaction on that connection must really commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

fn sql(text: &str) -> Statement {
    Statement::from_string(DbBackend::Sqlite, text.to_owned())
}

#[tokio::test]
async fn a_refused_commit_does_not_swallow_the_next_transaction() {
    let path = common::unique_sqlite_path();
    let url = common::sqlite_url(&path);
    let mut options = ai_metering_seaorm::SeaOrmStore::default_options(&url).unwrap();
    // One connection: the next transaction reuses the one whose COMMIT failed.
    options.max_connections(1);
    let db = sea_orm::Database::connect(options).await.unwrap();
    db.execute_raw(sql("CREATE TABLE parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) \
         DEFERRABLE INITIALLY DEFERRED)"))
        .await
        .unwrap();

    let txn = db.begin().await.unwrap();
    txn.execute_raw(sql("INSERT INTO child (id, parent_id) VALUES (1, 42)"))
        .await
        .unwrap();
    assert!(
        txn.commit().await.is_err(),
        "the deferred foreign key refuses the COMMIT"
    );

    let txn = db.begin().await.unwrap();
    txn.execute_raw(sql("INSERT INTO parent (id) VALUES (7)"))
        .await
        .unwrap();
    txn.commit().await.unwrap();
    db.close().await.unwrap();

    // Read back through a connection of its own.
    let reader = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let rows = reader
        .query_all_raw(sql("SELECT id FROM parent"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the second transaction was committed");
    let children = reader
        .query_all_raw(sql("SELECT id FROM child"))
        .await
        .unwrap();
    assert!(children.is_empty(), "the refused one was not");
}

/// The same after a statement fails with `SQLITE_FULL` inside a transaction (a database at
/// its size limit, as a full disk makes it): the transaction is given up, and the next one
/// on the connection really commits.
#[tokio::test]
async fn a_full_database_does_not_swallow_the_next_transaction() {
    let path = common::unique_sqlite_path();
    let url = common::sqlite_url(&path);
    let mut options = ai_metering_seaorm::SeaOrmStore::default_options(&url).unwrap();
    options.max_connections(1);
    let db = sea_orm::Database::connect(options).await.unwrap();
    db.execute_raw(sql("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)"))
        .await
        .unwrap();
    let pages: i64 = {
        let row = db
            .query_one_raw(sql("PRAGMA page_count"))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    };
    db.execute_raw(sql(&format!("PRAGMA max_page_count = {}", pages + 8)))
        .await
        .unwrap();

    let txn = db.begin().await.unwrap();
    let mut full = None;
    for i in 0..100 {
        if let Err(e) = txn
            .execute_raw(sql(&format!(
                "INSERT INTO t (id, data) VALUES ({i}, zeroblob(4000))"
            )))
            .await
        {
            full = Some(e);
            break;
        }
    }
    assert!(full.is_some(), "the database filled up");
    drop(txn);

    db.execute_raw(sql("PRAGMA max_page_count = 1000000"))
        .await
        .unwrap();
    let txn = db.begin().await.unwrap();
    txn.execute_raw(sql("INSERT INTO t (id, data) VALUES (1000, x'00')"))
        .await
        .unwrap();
    txn.commit().await.unwrap();
    db.close().await.unwrap();

    let reader = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let rows = reader.query_all_raw(sql("SELECT id FROM t")).await.unwrap();
    assert_eq!(rows.len(), 1, "only the second transaction's row is stored");
}
