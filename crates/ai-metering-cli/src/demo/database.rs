//! The demo's database: recreated on every run, but only when the demo created it.
//!
//! The demo marks its databases with a table of its own, [`MARKER_TABLE`]. It recreates a
//! database only when it is missing, empty (no tables at all) or marked; anything else is
//! refused, so a mistyped `--db` or `--database-url` never deletes someone's data.

use std::path::Path;

use ai_metering_migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::commands::{CliStore, connect, redact_url, sqlite_file};
use crate::error::{CliError, CliResult};

/// The table that marks a database as the demo's.
pub const MARKER_TABLE: &str = "ai_metering_demo";

/// What a database holds, as far as the demo is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contents {
    /// No tables: free to use.
    Empty,
    /// A database the demo created.
    Demo,
    /// Someone else's tables.
    Foreign,
}

/// Opens `url` as a fresh demo database: recreated when it is missing, empty or a previous
/// demo's, refused otherwise. Migrated and marked on return.
///
/// # Errors
/// When the database holds data the demo did not create, or cannot be reset.
pub async fn recreate(url: &str) -> CliResult<CliStore> {
    match sqlite_file(url) {
        Some(path) => recreate_file(url, &path).await,
        None => recreate_in_place(url).await,
    }
}

/// A SQLite file: checked without creating it, then deleted with its WAL files.
async fn recreate_file(url: &str, path: &Path) -> CliResult<CliStore> {
    if path.exists() {
        let contents = if std::fs::metadata(path)?.len() == 0 {
            Ok(Contents::Empty)
        } else {
            // Read-only and without the store's settings (such as WAL): looking must not
            // change anything. A file SQLite cannot read is not a demo database either.
            let base = url.split_once('?').map_or(url, |(base, _)| base);
            match sea_orm::Database::connect(format!("{base}?mode=ro")).await {
                Ok(db) => {
                    let contents = contents(&db).await;
                    db.close().await.ok();
                    contents
                }
                Err(e) => Err(CliError::failure(e.to_string())),
            }
        };
        match contents {
            Ok(Contents::Empty | Contents::Demo) => remove_sqlite_files(path)?,
            Ok(Contents::Foreign) | Err(_) => return Err(refusal(url)),
        }
    }
    let store = connect(url).await?;
    prepare(&store).await?;
    Ok(store)
}

/// Another database (PostgreSQL): a previous demo's tables are dropped by the migrations.
async fn recreate_in_place(url: &str) -> CliResult<CliStore> {
    let store = connect(url).await?;
    match contents(store.connection()).await? {
        Contents::Empty => {}
        Contents::Demo => {
            Migrator::reset(store.connection())
                .await
                .map_err(|e| reset_failed(url, &e))?;
            execute(&store, &format!("DROP TABLE {MARKER_TABLE}")).await?;
        }
        Contents::Foreign => return Err(refusal(url)),
    }
    prepare(&store).await?;
    Ok(store)
}

/// Migrates and marks.
async fn prepare(store: &CliStore) -> CliResult {
    store.migrate().await?;
    execute(
        store,
        &format!("CREATE TABLE {MARKER_TABLE} (note VARCHAR(200) NOT NULL)"),
    )
    .await?;
    execute(
        store,
        &format!(
            "INSERT INTO {MARKER_TABLE} (note) VALUES ('created by ai-metering demo; recreated on every run')"
        ),
    )
    .await
}

async fn contents(db: &DatabaseConnection) -> CliResult<Contents> {
    let backend = db.get_database_backend();
    let tables = match backend {
        DbBackend::Sqlite => {
            "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        _ => {
            "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema()"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, tables))
        .await
        .map_err(|e| CliError::failure(format!("cannot read the database's tables: {e}")))?;
    let names: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<String>("", "t").ok())
        .collect();
    Ok(if names.is_empty() {
        Contents::Empty
    } else if names.iter().any(|n| n == MARKER_TABLE) {
        Contents::Demo
    } else {
        Contents::Foreign
    })
}

async fn execute(store: &CliStore, sql: &str) -> CliResult {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
        .map_err(|e| CliError::failure(format!("cannot prepare the demo database: {e}")))
}

fn refusal(url: &str) -> CliError {
    CliError::failure(format!(
        "{} is not a demo database: it holds data the demo did not create, and the demo only \
         recreates databases it made. Pick another one with `--db FILE` or `--database-url URL`",
        redact_url(url)
    ))
}

fn reset_failed(url: &str, e: &sea_orm::DbErr) -> CliError {
    CliError::failure(format!(
        "cannot reset the demo database at {}: {e}",
        redact_url(url)
    ))
}

/// Deletes a demo SQLite file and its WAL files.
fn remove_sqlite_files(db: &Path) -> CliResult {
    let mut paths = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        paths.push(name.into());
    }
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CliError::failure(format!(
                    "cannot remove the old demo database {}: {e}",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}
