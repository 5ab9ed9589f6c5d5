//! Turning sea-orm's [`DbErr`] into the typed [`StoreError`] of the core crate.

use ai_metering_core::store::{StoreError, StoreErrorKind};
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// Classifies a database error: a database that cannot be reached is
/// [`StoreErrorKind::Unavailable`], a missing table or column is
/// [`StoreErrorKind::NotMigrated`], a uniqueness violation is [`StoreErrorKind::Conflict`], a
/// value the database rejects is [`StoreErrorKind::Invalid`].
pub(crate) fn db_err(err: DbErr) -> StoreError {
    let kind = kind_of(&err);
    let message = match kind {
        StoreErrorKind::NotMigrated => {
            format!("{err} (run the ai-metering migrations, e.g. `SeaOrmStore::migrate`)")
        }
        _ => err.to_string(),
    };
    StoreError::new(kind, message).with_source(err)
}

/// Whether the database itself refused a statement behind `err`, rather than the driver
/// failing to decode a value it returned. On PostgreSQL such a refusal aborts the
/// transaction it happened in, whatever its kind (a data exception is
/// [`StoreErrorKind::Invalid`]): nothing more can be written in that transaction.
pub(crate) fn refused_by_database(err: &StoreError) -> bool {
    let Some(db) = std::error::Error::source(err).and_then(|s| s.downcast_ref::<DbErr>()) else {
        return false;
    };
    matches!(db, DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
        if matches!(**e, sqlx::Error::Database(_)))
}

fn kind_of(err: &DbErr) -> StoreErrorKind {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return StoreErrorKind::Conflict;
    }
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreErrorKind::Unavailable,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime_kind(runtime),
        DbErr::RecordNotFound(_) => StoreErrorKind::NotFound,
        DbErr::TryIntoErr { .. } | DbErr::Type(_) | DbErr::Json(_) => StoreErrorKind::Invalid,
        DbErr::Migration(_) => StoreErrorKind::NotMigrated,
        _ => StoreErrorKind::Other,
    }
}

fn runtime_kind(err: &RuntimeErr) -> StoreErrorKind {
    match err {
        RuntimeErr::SqlxError(e) => sqlx_kind(e),
        _ => StoreErrorKind::Other,
    }
}

fn sqlx_kind(err: &sqlx::Error) -> StoreErrorKind {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreErrorKind::Unavailable,
        sqlx::Error::Database(db) => database_kind(db.code().as_deref(), db.message()),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::Encode(_) => {
            StoreErrorKind::Invalid
        }
        sqlx::Error::ColumnNotFound(_) => StoreErrorKind::NotMigrated,
        _ => StoreErrorKind::Other,
    }
}

/// Classifies an error the database itself reported, by SQLSTATE (PostgreSQL) or result code
/// and message (SQLite).
fn database_kind(code: Option<&str>, message: &str) -> StoreErrorKind {
    let message = message.to_ascii_lowercase();
    match code {
        // PostgreSQL: undefined table / column / schema.
        Some("42P01" | "42703" | "3F000") => StoreErrorKind::NotMigrated,
        // PostgreSQL: unique violation.
        Some("23505") => StoreErrorKind::Conflict,
        // PostgreSQL: connection exceptions, shutdown, too many connections.
        Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
            StoreErrorKind::Unavailable
        }
        // PostgreSQL: data exceptions (out of range, too long...), check violations.
        Some(c) if c.starts_with("22") || c == "23514" || c == "23502" => StoreErrorKind::Invalid,
        // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_CANTOPEN (14) and their extended codes.
        Some(c) if sqlite_primary(c).is_some_and(|p| matches!(p, 5 | 6 | 14)) => {
            StoreErrorKind::Unavailable
        }
        _ if message.contains("no such table") || message.contains("no such column") => {
            StoreErrorKind::NotMigrated
        }
        _ if message.contains("unique constraint") => StoreErrorKind::Conflict,
        _ => StoreErrorKind::Other,
    }
}

/// The primary SQLite result code of a (possibly extended) numeric code.
fn sqlite_primary(code: &str) -> Option<i64> {
    code.parse::<i64>().ok().map(|c| c & 0xff)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn postgres_codes_are_classified() {
        assert_eq!(
            database_kind(Some("42P01"), "relation \"ai_usages\" does not exist"),
            StoreErrorKind::NotMigrated
        );
        assert_eq!(
            database_kind(Some("23505"), "dup"),
            StoreErrorKind::Conflict
        );
        assert_eq!(
            database_kind(Some("57P01"), "shutdown"),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            database_kind(Some("22003"), "out of range"),
            StoreErrorKind::Invalid
        );
    }

    #[test]
    fn sqlite_codes_and_messages_are_classified() {
        assert_eq!(
            database_kind(Some("1"), "no such table: ai_plans"),
            StoreErrorKind::NotMigrated
        );
        assert_eq!(
            database_kind(Some("5"), "database is locked"),
            StoreErrorKind::Unavailable
        );
        // SQLITE_BUSY_SNAPSHOT = 517 is an extended code of SQLITE_BUSY.
        assert_eq!(
            database_kind(Some("517"), "busy"),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            database_kind(Some("14"), "unable to open database file"),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            database_kind(Some("1"), "syntax error"),
            StoreErrorKind::Other
        );
    }
}
