//! [`SeaOrmStore`]: connecting, migrating, and the transactions every write runs in.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ai_metering_core::Billable;
use ai_metering_core::store::{StoreError, StoreErrorKind, StoreResult};
use ai_metering_migration::{Migrator, MigratorTrait};
#[cfg(feature = "sqlite")]
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::error::db_err;
use crate::writer::{Writer, WriterSlot};

/// How long a SQLite connection waits for another writer (another process, say) before
/// giving up with [`StoreErrorKind::Unavailable`].
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections in the pool of a SQLite file: WAL lets readers run beside the one writer.
#[cfg(feature = "sqlite")]
const SQLITE_POOL_SIZE: u32 = 4;
/// Connections in the pool of a PostgreSQL database.
#[cfg(feature = "postgres")]
const POSTGRES_POOL_SIZE: u32 = 10;
/// How long connecting to a database may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection (and, when the database is down, keeps
/// retrying to connect) before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle at least this long is pinged before it is handed out (one
/// that a server, proxy or firewall dropped is replaced). Busy connections are not: a ping
/// on every checkout would add a round trip to every read and to every batch of writes.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);
/// The PostgreSQL advisory lock (two-key space, apart from the per-billable locks) that
/// serialises concurrent `migrate` calls of several instances.
const MIGRATION_LOCK: (i32, i32) = (0x4149_4d54, 1);

/// The SeaORM storage backend: embedded SQLite or a shared PostgreSQL.
///
/// It implements every storage trait of [`ai_metering_core::store`]: those of the money path
/// ([`Store`](ai_metering_core::store::Store)), the reconciliation's reads
/// ([`AuditStore`](ai_metering_core::store::AuditStore)), retention and privacy
/// ([`RetentionStore`](ai_metering_core::store::RetentionStore), which also rebuilds the
/// daily aggregates that only this store keeps) and webhook deduplication.
///
/// # Atomicity
///
/// Every operation that guards money (reserve, settle, usage inserts, credit deductions and
/// holds) runs in **one transaction that is serialised per billable**:
///
/// - on **PostgreSQL** the transaction first takes `pg_advisory_xact_lock(key)`, where `key`
///   is a fixed 64-bit hash of the billable; every instance sharing the database computes the
///   same key, so their operations on one billable run one after the other while different
///   billables proceed in parallel. The lock is released at commit or rollback;
/// - on **SQLite** the transaction starts with `BEGIN IMMEDIATE`, which takes the database's
///   single write lock up front (other connections and processes wait for it, up to a busy
///   timeout), so the read-check-write inside can never interleave with another writer.
///
/// Inside the transaction the store reads the counter (or wallet), applies the same pure rules
/// as every store ([`ai_metering_core::limit::evaluate`], [`ai_metering_core::store::Overdraft`])
/// and writes the result.
///
/// # Group commit
///
/// Reservations, settlements and releases (credit holds, captures and debits included) are
/// handed to the store's writer: one task on SQLite, one per core (at most four) on
/// PostgreSQL by default ([`with_writers`](SeaOrmStore::with_writers) sets another count;
/// each takes the billables whose lock key falls to it), started on first use
/// on the caller's tokio runtime. A writer runs everything queued (up to 64 operations) in
/// one such transaction, holding the locks of all their billables, and answers each caller
/// after the commit. A database failure fails every operation of the batch and stores none
/// of it; an operation refused on its own (a limit, invalid input) changes nothing. Each
/// writer uses a connection of its own, replaced after a failed write (for an in-memory
/// database, or a connection given to [`new`](Self::new), the shared pool), and stops when
/// the last clone of the store is dropped.
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
    /// How the writer tasks open connections of their own (one each), so that they never
    /// queue behind reads and can be replaced after a failure; `None` for an in-memory
    /// database or a connection given to `new` (the writers share the pool then).
    write_options: Option<Arc<ConnectOptions>>,
    /// Steps until an injected failure (0: none); see `fail_at_step`.
    fault: Arc<AtomicU64>,
    /// The group-commit writer; `None` in the writer's own copy of the store.
    writer: Option<Arc<WriterSlot>>,
}

impl SeaOrmStore {
    /// Connects to `sqlite://path/to/file.db` (created if missing; WAL mode, a busy timeout,
    /// foreign keys on), `sqlite::memory:`, or `postgres://user@host:port/database`.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`] when the database cannot be reached or opened,
    /// [`StoreErrorKind::Invalid`] for a URL of another kind.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ai_metering_seaorm::SeaOrmStore;
    /// let store = SeaOrmStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// # Ok::<(), ai_metering_core::store::StoreError>(()) }).unwrap();
    /// ```
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(Self::default_options(url)?).await
    }

    /// The connection options [`connect`](Self::connect) uses for `url`, to adjust (pool size,
    /// timeouts) before [`connect_with`](Self::connect_with).
    ///
    /// A pooled connection is pinged before it is handed out only when it was idle for 30
    /// seconds or more, so a busy store pays no extra round trip per checkout.
    ///
    /// A connection that goes back to the pool still inside a transaction (its rollback
    /// failed, say on a full disk) is closed rather than reused, which rolls the transaction
    /// back: reused, every later transaction on it would be a savepoint inside it, and nothing
    /// written on it would ever be committed. (Not for an in-memory SQLite database, whose
    /// only connection is the database.)
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`] for a URL that is neither SQLite nor PostgreSQL.
    ///
    /// ```
    /// use ai_metering_seaorm::SeaOrmStore;
    /// let mut options = SeaOrmStore::default_options("postgres://app@db/metering").unwrap();
    /// options.max_connections(32);
    /// assert_eq!(options.get_max_connections(), Some(32));
    /// ```
    pub fn default_options(url: &str) -> StoreResult<ConnectOptions> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(CONNECT_TIMEOUT)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
        if url.starts_with("sqlite:") {
            #[cfg(feature = "sqlite")]
            {
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                // Each connection to `:memory:` would open its own empty database.
                options.max_connections(if in_memory { 1 } else { SQLITE_POOL_SIZE });
                options.map_sqlx_sqlite_opts(|o| {
                    o.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
                if !in_memory {
                    // (A new connection to `:memory:` would be an empty database.)
                    options.map_sqlx_sqlite_pool_opts(|o| {
                        o.after_release(|conn, _| {
                            Box::pin(async move {
                                Ok(!sea_orm::sqlx::Connection::is_in_transaction(conn))
                            })
                        })
                    });
                }
            }
            #[cfg(not(feature = "sqlite"))]
            return Err(backend_not_built("sqlite", url));
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                options.max_connections(POSTGRES_POOL_SIZE);
                options.map_sqlx_postgres_pool_opts(|o| {
                    o.after_release(|conn, _| {
                        Box::pin(
                            async move { Ok(!sea_orm::sqlx::Connection::is_in_transaction(conn)) },
                        )
                    })
                });
            }
            #[cfg(not(feature = "postgres"))]
            return Err(backend_not_built("postgres", url));
        } else {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!(
                    "unsupported database URL {:?}: use sqlite://... or postgres://...",
                    redact(url)
                ),
            ));
        }
        Ok(options)
    }

    /// Connects with explicit options.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`] when the database cannot be reached or opened.
    pub async fn connect_with(options: ConnectOptions) -> StoreResult<Self> {
        let url = options.get_url();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut writer = options.clone();
        writer.max_connections(1).min_connections(0);
        let db = Database::connect(options).await.map_err(db_err)?;
        let mut store = Self::new(db);
        if !in_memory {
            store.write_options = Some(Arc::new(writer));
        }
        Ok(store)
    }

    /// Wraps a connection the application already has. For SQLite, configure WAL mode and a
    /// busy timeout yourself (or use [`connect`](Self::connect)).
    ///
    /// Prefer [`connect_with`](Self::connect_with) with [`default_options`](Self::default_options):
    /// with a pool it did not open, the store's writer shares that pool and cannot replace a
    /// connection a failed write left inside a transaction, and the pool lacks the guard that
    /// closes such connections (see `default_options`). After a full disk, writes on such a
    /// connection would be acknowledged and never committed.
    pub fn new(db: DatabaseConnection) -> Self {
        let writer = WriterSlot::new(db.get_database_backend());
        Self {
            write_options: None,
            db,
            fault: Arc::new(AtomicU64::new(0)),
            writer: Some(Arc::new(writer)),
        }
    }

    /// Sets how many writer tasks commit this store's batches (see "Group commit" above).
    ///
    /// On PostgreSQL the default is one per core of this machine, at most four: each
    /// writer builds and sends its batches on the application's cores, so more writers
    /// than cores only split the same work into smaller transactions (on 2 cores, 2 writers
    /// carried 1.39x the load of 4). Set it when the machine's core count is not the
    /// application's share of it (a container limited to fewer cores than it sees), or
    /// when measurements on your database say otherwise. Writers split the billables by
    /// their lock key, so each billable's operations keep their order whatever the count,
    /// and limits hold across writers and processes alike (the database locks each
    /// billable).
    ///
    /// Set it right after connecting: clones made before keep the writers they had.
    ///
    /// # Errors
    /// [`StoreErrorKind::Invalid`] for more than one writer on SQLite, which lets one
    /// connection write at a time (more writers would only wait on its lock).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::num::NonZeroUsize;
    /// use ai_metering_seaorm::SeaOrmStore;
    /// let store = SeaOrmStore::connect("sqlite::memory:").await?;
    /// assert_eq!(store.writers(), 1);
    /// let two = NonZeroUsize::new(2).unwrap();
    /// assert!(store.clone().with_writers(two).is_err(), "SQLite has one writer");
    /// // On PostgreSQL: SeaOrmStore::connect(url).await?.with_writers(two)?
    /// # Ok::<(), ai_metering_core::store::StoreError>(()) }).unwrap();
    /// ```
    pub fn with_writers(mut self, writers: NonZeroUsize) -> StoreResult<Self> {
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Sqlite && writers.get() > 1 {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!(
                    "SQLite allows one writer at a time: a store on it has 1 writer task, not {writers}"
                ),
            ));
        }
        self.writer = Some(Arc::new(WriterSlot::with_tasks(backend, writers.get())));
        Ok(self)
    }

    /// How many writer tasks commit this store's batches: 1 on SQLite; on PostgreSQL one
    /// per core, at most four, unless set with [`with_writers`](Self::with_writers).
    pub fn writers(&self) -> usize {
        self.writer.as_deref().map_or(0, WriterSlot::tasks)
    }

    /// The writer that batches this store's reservations, settlements and releases.
    pub(crate) fn writer(&self) -> Option<Writer<'_>> {
        self.writer
            .as_deref()
            .map(|slot| Writer { slot, store: self })
    }

    /// The store as its writer task uses it: writes run in transactions of their own, and
    /// the task holds no handle on itself (it stops when the last store is dropped).
    pub(crate) fn without_writer(&self) -> Self {
        Self {
            db: self.db.clone(),
            write_options: self.write_options.clone(),
            fault: Arc::clone(&self.fault),
            writer: None,
        }
    }

    /// A writer's own connection, when the store knows how to open one.
    pub(crate) async fn open_writer_connection(&self) -> Option<StoreResult<Self>> {
        let options = self.write_options.as_deref()?.clone();
        Some(
            Database::connect(options)
                .await
                .map_err(db_err)
                .map(|db| Self {
                    db,
                    write_options: self.write_options.clone(),
                    fault: Arc::clone(&self.fault),
                    writer: None,
                }),
        )
    }

    /// Makes the `n`th statement-level step of the money-guarding writes (`reserve` and
    /// `settle`) from now fail with [`StoreErrorKind::Unavailable`], inside its transaction,
    /// as a database that goes away mid-transaction would; `0` turns it off. For tests that
    /// prove a failure between any two statements stores nothing. Clones share it.
    #[cfg(feature = "fault-injection")]
    pub fn fail_at_step(&self, n: u64) {
        self.fault.store(n, Ordering::SeqCst);
    }

    /// Steps left before the injected failure set by `fail_at_step` (0 once it fired, or
    /// when none is set): a test that sees a non-zero value knows the operation finished
    /// before the failure was due.
    #[cfg(feature = "fault-injection")]
    pub fn steps_before_fault(&self) -> u64 {
        self.fault.load(Ordering::SeqCst)
    }

    /// One step of a money-guarding write: fails when an injected failure is due.
    pub(crate) fn step(&self, what: &str) -> StoreResult<()> {
        if self.fault.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let previous = self
            .fault
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .unwrap_or(0);
        if previous == 1 {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("injected failure before {what}"),
            ));
        }
        Ok(())
    }

    /// The underlying connection, for the application's own queries.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Applies the pending migrations of [`ai_metering_migration::Migrator`]. Safe to call
    /// from several instances at once: on PostgreSQL they take turns under an advisory lock,
    /// on SQLite under the write lock.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`] when the database is down; other kinds when a migration
    /// fails (nothing of that migration is applied).
    pub async fn migrate(&self) -> StoreResult<()> {
        let txn = self.begin_write().await?;
        if self.backend() == DbBackend::Postgres {
            let (a, b) = MIGRATION_LOCK;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1, $2)",
                [a.into(), b.into()],
            ))
            .await
            .map_err(db_err)?;
        }
        Migrator::up(&txn, None).await.map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    /// True when every migration has been applied.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`] when the database is down.
    pub async fn is_migrated(&self) -> StoreResult<bool> {
        match Migrator::get_pending_migrations_read_only(&self.db).await {
            Ok(pending) => Ok(pending.is_empty()),
            Err(e) => {
                let err = db_err(e);
                if err.kind() == StoreErrorKind::NotMigrated {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock at
    /// once), a plain `BEGIN` on PostgreSQL (callers then lock their billables).
    pub(crate) async fn begin_write(&self) -> StoreResult<DatabaseTransaction> {
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.backend() == DbBackend::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.db.begin_with_options(options).await.map_err(db_err)
    }

    /// Starts a write transaction serialised with every other one touching `billables`.
    pub(crate) async fn begin_for<'a>(
        &self,
        billables: impl IntoIterator<Item = &'a Billable>,
    ) -> StoreResult<DatabaseTransaction> {
        let txn = self.begin_write().await?;
        if self.backend() == DbBackend::Postgres {
            let mut keys: Vec<i64> = billables.into_iter().map(lock_key).collect();
            // One order for every transaction, so that two of them never wait on each other.
            keys.sort_unstable();
            keys.dedup();
            if !keys.is_empty() {
                // One statement for all of them, taken in the order of the sorted list.
                let values = (1..=keys.len())
                    .map(|i| format!("(${i}::bigint)"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT pg_advisory_xact_lock(k) FROM (VALUES {values}) AS locks(k) ORDER BY k"
                );
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    keys.into_iter().map(Into::into),
                ))
                .await
                .map_err(db_err)?;
            }
        }
        Ok(txn)
    }
}

/// The advisory-lock key of a billable: FNV-1a (64 bits) of `kind`, a NUL byte and `id`. A
/// fixed function, so every instance (whatever its Rust version) derives the same key;
/// collisions only make two billables take turns.
pub(crate) fn lock_key(billable: &Billable) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = billable
        .kind
        .bytes()
        .chain(std::iter::once(0))
        .chain(billable.id.bytes());
    let hash = bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A URL without its password, for error messages.
/// The error for a URL whose backend was left out of the build.
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn backend_not_built(feature: &str, url: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Invalid,
        format!(
            "database URL {:?} needs the `{feature}` feature of ai-metering-seaorm (or of ai-metering), which this build leaves out",
            redact(url)
        ),
    )
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_fixed_and_distinct() {
        // A fixed value: changing the function would split the locks of instances running
        // different versions.
        assert_eq!(
            lock_key(&Billable::new("user", 1)),
            lock_key(&Billable::new("user", 1))
        );
        assert_ne!(
            lock_key(&Billable::new("user", 1)),
            lock_key(&Billable::new("user", 2))
        );
        assert_ne!(
            lock_key(&Billable::new("us", "er1")),
            lock_key(&Billable::new("user", 1))
        );
        assert_eq!(lock_key(&Billable::new("", "")), {
            // Only the NUL separator is hashed.
            let h = 0xcbf2_9ce4_8422_2325_u64.wrapping_mul(0x0000_0100_0000_01b3);
            i64::from_ne_bytes(h.to_ne_bytes())
        });
    }

    #[test]
    fn unsupported_urls_are_invalid_and_redacted() {
        let err = SeaOrmStore::default_options("mysql://u:secret@h/db").unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Invalid);
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("mysql://u@h/db"), "{err}");
    }
}
