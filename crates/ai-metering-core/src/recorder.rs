//! Write-behind recording, for usage that no limit waits on.
//!
//! A metered call ([`Meter::call`](crate::Meter::call)) reserves, runs and settles: its
//! usage is stored before the handler returns, because the next call's limit depends on it.
//! Usage that nothing enforces (background jobs, analytics-only features, billables without
//! limits) does not need to wait: a [`Recorder`] takes the rows, answers at once, and stores
//! them in batches ([`UsageStore::insert_usage_batch`](crate::store::UsageStore::insert_usage_batch):
//! multi-row inserts, one transaction each) when `batch_size` rows are buffered or
//! `flush_interval` has passed, whichever comes first.
//!
//! Nothing is dropped:
//! - a full buffer is backpressure: [`Recorder::try_record`] gives the row back
//!   ([`RecordError::Full`]) and [`Recorder::record`] waits for room;
//! - a batch the store refuses (the database is down) is kept and retried every
//!   `retry_interval`, so rows wait in memory, in order, until it is back;
//! - [`Recorder::shutdown`] stops taking rows and stores everything buffered. Call it after
//!   axum's graceful shutdown has drained the requests (the hook below); it returns the rows
//!   it could not store, if the store is still down then, for the app to keep.
//!
//! A row without a time zone gets its billable's (from the subscription current at the
//! flush's first row of that billable, one read per billable and batch), so that it counts
//! in the billable's day as a metered call's row does.
//!
//! Rows are idempotent by their key, as with every insert, so a retried batch whose commit
//! reply was lost stores nothing twice.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use ai_metering_core::recorder::{Recorder, RecorderConfig};
//! use ai_metering_core::store::{MemoryStore, ReportStore, UsageFilter};
//! use ai_metering_core::{Billable, Metering, TokenUsage};
//!
//! let metering = Metering::new(MemoryStore::new());
//! let recorder = Recorder::start(&metering, RecorderConfig::default());
//!
//! // In a handler: priced and validated now, stored in the background.
//! let entry = metering
//!     .meter()
//!     .billable(Billable::new("team", "acme"))
//!     .provider("openai", "gpt-4o-mini")
//!     .feature("summaries")
//!     .manual_usage(TokenUsage::new(1_200, 300)?)
//!     .entry()?;
//! recorder.try_record(entry)?;
//!
//! // At shutdown, after `axum::serve(..).with_graceful_shutdown(..).await`:
//! let report = recorder.shutdown().await?;
//! assert_eq!(report.stored, 1);
//! let sums = metering
//!     .store()
//!     .sum_usage(&UsageFilter::for_billable(Billable::new("team", "acme")))
//!     .await?;
//! assert_eq!(sums.total_tokens, 1_500);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::billable::Billable;
use crate::metering::Metering;
use crate::store::{Store, StoreError, StoreResult, UsageEntry};

/// How a [`Recorder`] buffers and flushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// Rows the buffer holds before [`Recorder::try_record`] refuses more (default 10,000).
    pub capacity: usize,
    /// Rows per flush, at most (default 500).
    pub batch_size: usize,
    /// How long a row may wait for its batch to fill before it is flushed anyway
    /// (default 200 ms).
    pub flush_interval: Duration,
    /// How long to wait before retrying a batch the store refused (default 1 s).
    pub retry_interval: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_millis(200),
            retry_interval: Duration::from_secs(1),
        }
    }
}

impl RecorderConfig {
    /// The buffer's capacity (at least 1).
    pub fn capacity(mut self, rows: usize) -> Self {
        self.capacity = rows.max(1);
        self
    }

    /// Rows per flush (at least 1).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The longest a row waits for its batch to fill.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The wait before a refused batch is retried.
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }
}

/// Why a row was not taken. The row is given back: nothing is dropped.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The buffer is full (the store is slow or down): backpressure. Retry later, record
    /// the row synchronously, or answer 503.
    #[error("the usage recorder's buffer is full ({0} rows waiting); the row was not taken")]
    Full(usize, Box<UsageEntry>),
    /// The recorder was shut down.
    #[error("the usage recorder is shut down; the row was not taken")]
    Closed(Box<UsageEntry>),
}

impl RecordError {
    /// The row that was not taken.
    pub fn into_entry(self) -> UsageEntry {
        match self {
            Self::Full(_, entry) | Self::Closed(entry) => *entry,
        }
    }
}

/// What [`Recorder::shutdown`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderReport {
    /// Rows stored over the recorder's life.
    pub stored: u64,
    /// Batches the store refused (each retried).
    pub failed_flushes: u64,
}

/// [`Recorder::shutdown`] could not store everything: the store still refused the last
/// batch. The rows are given back, in order, for the app to keep.
#[derive(Debug, thiserror::Error)]
#[error("the usage recorder could not store {} rows at shutdown: {error}", unstored.len())]
pub struct ShutdownError {
    /// The store's last error.
    #[source]
    pub error: StoreError,
    /// The rows not stored.
    pub unstored: Vec<UsageEntry>,
    /// What was stored.
    pub report: RecorderReport,
}

/// A write-behind usage recorder: see the [module docs](self). Cheap to clone; every clone
/// feeds the same buffer and task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<UsageEntry>,
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    stored: AtomicU64,
    failed_flushes: AtomicU64,
    stop: Notify,
    task: Mutex<Option<JoinHandle<TaskOutcome>>>,
}

/// How the task ended: `Err` with the store's last error and the rows it could not store.
type TaskOutcome = Result<(), (StoreError, Vec<UsageEntry>)>;

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("buffered", &self.buffered())
            .field("capacity", &self.shared.capacity)
            .field("stored", &self.shared.stored.load(Ordering::Relaxed))
            .finish()
    }
}

impl Recorder {
    /// Starts a recorder over `metering`'s store, on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn start<S: Store>(metering: &Metering<S>, config: RecorderConfig) -> Self {
        let config = RecorderConfig {
            capacity: config.capacity.max(1),
            batch_size: config.batch_size.max(1),
            ..config
        };
        let (tx, rx) = mpsc::channel(config.capacity);
        let shared = Arc::new(Shared {
            capacity: config.capacity,
            stored: AtomicU64::new(0),
            failed_flushes: AtomicU64::new(0),
            stop: Notify::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(metering.clone(), config, rx, Arc::clone(&shared)));
        *lock(&shared.task) = Some(task);
        Self { tx, shared }
    }

    /// Takes `entry` if the buffer has room.
    ///
    /// # Errors
    /// [`RecordError::Full`] when the buffer is full, [`RecordError::Closed`] after
    /// [`shutdown`](Self::shutdown); the row is given back in both.
    pub fn try_record(&self, entry: UsageEntry) -> Result<(), RecordError> {
        self.tx.try_send(entry).map_err(|e| match e {
            mpsc::error::TrySendError::Full(entry) => {
                RecordError::Full(self.shared.capacity, Box::new(entry))
            }
            mpsc::error::TrySendError::Closed(entry) => RecordError::Closed(Box::new(entry)),
        })
    }

    /// Takes `entry`, waiting for room when the buffer is full.
    ///
    /// # Errors
    /// [`RecordError::Closed`] after [`shutdown`](Self::shutdown), with the row.
    pub async fn record(&self, entry: UsageEntry) -> Result<(), RecordError> {
        self.tx
            .send(entry)
            .await
            .map_err(|e| RecordError::Closed(Box::new(e.0)))
    }

    /// Rows waiting in the buffer (not yet handed to the store).
    pub fn buffered(&self) -> usize {
        self.shared.capacity - self.tx.capacity()
    }

    /// Rows stored so far.
    pub fn stored(&self) -> u64 {
        self.shared.stored.load(Ordering::Relaxed)
    }

    /// Flushes the store refused so far (each is retried).
    pub fn failed_flushes(&self) -> u64 {
        self.shared.failed_flushes.load(Ordering::Relaxed)
    }

    /// Stops taking rows, stores everything buffered, and ends the task. The graceful-
    /// shutdown hook: call it once the server stopped taking requests. Later calls (from
    /// any clone) return at once.
    ///
    /// # Errors
    /// [`ShutdownError`] with the rows the store still refused.
    pub async fn shutdown(&self) -> Result<RecorderReport, ShutdownError> {
        self.shared.stop.notify_one();
        let task = lock(&self.shared.task).take();
        let outcome = match task {
            Some(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only a runtime shutting down cancels it; what it held is lost with it.
                Err(_) => Err((
                    StoreError::new(
                        crate::store::StoreErrorKind::Unavailable,
                        "the recorder's task was cancelled (its runtime shut down)",
                    ),
                    Vec::new(),
                )),
            },
            None => Ok(()),
        };
        let report = RecorderReport {
            stored: self.shared.stored.load(Ordering::Relaxed),
            failed_flushes: self.shared.failed_flushes.load(Ordering::Relaxed),
        };
        outcome
            .map(|()| report)
            .map_err(|(error, unstored)| ShutdownError {
                error,
                unstored,
                report,
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned lock still holds a whole value.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The task: fill a batch (up to `batch_size`, or what came within `flush_interval` of its
/// first row), store it, retrying until the store takes it.
async fn run<S: Store>(
    metering: Metering<S>,
    config: RecorderConfig,
    mut rx: mpsc::Receiver<UsageEntry>,
    shared: Arc<Shared>,
) -> TaskOutcome {
    let mut batch: Vec<UsageEntry> = Vec::with_capacity(config.batch_size);
    let mut stopping = false;
    loop {
        if stopping {
            // Everything still in the channel joins the last batches.
            while let Ok(entry) = rx.try_recv() {
                batch.push(entry);
            }
        }
        if batch.is_empty() {
            if stopping {
                return Ok(());
            }
            tokio::select! {
                n = rx.recv_many(&mut batch, config.batch_size) => {
                    if n == 0 {
                        return Ok(());
                    }
                }
                () = shared.stop.notified() => {
                    stopping = true;
                    rx.close();
                    continue;
                }
            }
        }
        if !stopping {
            let deadline = tokio::time::sleep(config.flush_interval);
            tokio::pin!(deadline);
            while batch.len() < config.batch_size {
                let room = config.batch_size - batch.len();
                tokio::select! {
                    n = rx.recv_many(&mut batch, room) => {
                        if n == 0 {
                            break;
                        }
                    }
                    () = &mut deadline => break,
                    () = shared.stop.notified() => {
                        stopping = true;
                        rx.close();
                        break;
                    }
                }
            }
        }
        if stopping {
            while let Ok(entry) = rx.try_recv() {
                batch.push(entry);
            }
        }
        let take = batch.len().min(config.batch_size);
        let stored = match fill_time_zones(metering.store(), &mut batch[..take]).await {
            Ok(()) => metering.store().insert_usage_batch(&batch[..take]).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(_) => {
                shared.stored.fetch_add(take as u64, Ordering::Relaxed);
                batch.drain(..take);
            }
            Err(error) => {
                shared.failed_flushes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "ai_metering", %error, rows = batch.len(), "could not store recorded usage; retrying");
                if stopping {
                    return Err((error, batch));
                }
                tokio::select! {
                    () = tokio::time::sleep(config.retry_interval) => {}
                    () = shared.stop.notified() => {
                        stopping = true;
                        rx.close();
                    }
                }
            }
        }
    }
}

/// Gives each entry without a time zone its billable's, as the [`Meter`](crate::Meter) does
/// for the calls it settles: the zone of the subscription current at that billable's first
/// entry in `entries`.
async fn fill_time_zones<S: Store>(store: &S, entries: &mut [UsageEntry]) -> StoreResult<()> {
    let mut zones: HashMap<Billable, Option<chrono_tz::Tz>> = HashMap::new();
    for entry in entries.iter_mut().filter(|e| e.time_zone.is_none()) {
        let zone = match zones.get(&entry.billable) {
            Some(zone) => *zone,
            None => {
                let zone = store
                    .current_subscription(&entry.billable, entry.occurred_at)
                    .await?
                    .and_then(|(_, sub)| sub.time_zone);
                zones.insert(entry.billable.clone(), zone);
                zone
            }
        };
        entry.time_zone = zone;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, ReportStore, UsageFilter};
    use crate::{Billable, Error, TokenUsage};

    fn entry(metering: &Metering<MemoryStore>, i: u64) -> UsageEntry {
        metering
            .meter()
            .user(7)
            .provider("openai", "gpt-4o-mini")
            .manual_usage(TokenUsage::new(10 + i, 1).unwrap())
            .entry()
            .unwrap()
    }

    async fn calls(metering: &Metering<MemoryStore>) -> u64 {
        metering
            .store()
            .sum_usage(&UsageFilter::for_billable(Billable::new("user", 7)))
            .await
            .unwrap()
            .calls
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_batch_is_flushed_after_the_interval() {
        let metering = Metering::new(MemoryStore::new());
        let config = RecorderConfig::default().flush_interval(Duration::from_secs(5));
        let recorder = Recorder::start(&metering, config);
        for i in 0..3 {
            recorder.record(entry(&metering, i)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(calls(&metering).await, 0, "the batch waits to fill");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            calls(&metering).await,
            3,
            "flushed when the interval passed"
        );
        assert_eq!(recorder.stored(), 3);
        assert_eq!(recorder.buffered(), 0);
        recorder.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_full_buffer_gives_the_row_back() {
        // On this single-threaded runtime the task does not run before the test yields.
        let metering = Metering::new(MemoryStore::new());
        let recorder = Recorder::start(&metering, RecorderConfig::default().capacity(2));
        recorder.try_record(entry(&metering, 0)).unwrap();
        recorder.try_record(entry(&metering, 1)).unwrap();
        let refused = recorder.try_record(entry(&metering, 2)).unwrap_err();
        assert!(matches!(refused, RecordError::Full(2, _)), "{refused}");
        assert_eq!(refused.into_entry().usage.input_tokens(), 12);
        let report = recorder.shutdown().await.unwrap();
        assert_eq!(report.stored, 2);
        assert_eq!(calls(&metering).await, 2);
    }

    #[test]
    fn an_entry_needs_usage_a_provider_and_a_price() {
        let metering = Metering::new(MemoryStore::new());
        let no_usage = metering
            .meter()
            .user(1)
            .provider("openai", "gpt-4o-mini")
            .entry();
        assert!(matches!(no_usage, Err(Error::InvalidInput(_))));
        let no_provider = metering
            .meter()
            .user(1)
            .manual_usage(TokenUsage::new(1, 1).unwrap())
            .entry();
        assert!(matches!(no_provider, Err(Error::InvalidInput(_))));
        let unknown = metering
            .meter()
            .user(1)
            .provider("openai", "no-such-model")
            .manual_usage(TokenUsage::new(1, 1).unwrap())
            .entry();
        assert!(
            matches!(unknown, Err(Error::UnknownModel { .. })),
            "{unknown:?}"
        );
    }
}
