//! The store's writer: one task that takes the reservations, settlements and releases of
//! every caller and commits them in batches (group commit).
//!
//! Each call waits for the commit of the batch that holds it, so nothing is answered before
//! it is durable. While a batch is being written, the calls that arrive queue up and form
//! the next one: under load, one transaction (one `BEGIN`, one lock, one `COMMIT`) serves
//! many calls; alone, a call is a batch of one. Credits mode (holds, captures, debits) is
//! batched like the rest. SQLite has one writer task (one writer at a time is all SQLite
//! allows, so the store's own connections never wait on each other's write lock);
//! PostgreSQL has [`postgres_writers`] (one per core, at most [`MAX_POSTGRES_WRITERS`]),
//! each taking the billables whose lock key falls to it.

use std::sync::Mutex;

use ai_metering_core::Billable;
use ai_metering_core::store::{
    Recorded, ReservationId, ReserveOutcome, ReserveRequest, Settled, Settlement, StoreError,
    StoreErrorKind, StoreResult, UsageEntry,
};
use sea_orm::DbBackend;
use tokio::sync::{mpsc, oneshot};

use crate::batch::{self, Op, Outcome};
use crate::store::{SeaOrmStore, lock_key};

/// The most operations one batch takes.
const MAX_BATCH: usize = 64;
/// Calls that may wait for the writer before callers wait to hand theirs over.
const QUEUE: usize = 1024;

/// One call handed to the writer, with where its answer goes.
enum Job {
    Reserve(ReserveRequest, oneshot::Sender<StoreResult<ReserveOutcome>>),
    Settle(Box<Settlement>, oneshot::Sender<StoreResult<Settled>>),
    Release(ReservationId, Billable, oneshot::Sender<StoreResult<bool>>),
    /// Rows recorded together, all or nothing, in a transaction of their own.
    RecordAll(Vec<UsageEntry>, oneshot::Sender<StoreResult<Vec<Recorded>>>),
}

impl Job {
    /// True for a reservation whose caller stopped waiting (its request was dropped): it
    /// is not made. A settlement is recorded whoever waits for it (the money was spent),
    /// and a release is done (it only gives back).
    fn abandoned(&self) -> bool {
        match self {
            Job::Reserve(_, reply) => reply.is_closed(),
            Job::Settle(..) | Job::Release(..) | Job::RecordAll(..) => false,
        }
    }

    /// Whether a batch covers it.
    fn batchable(&self) -> bool {
        match self {
            Job::Reserve(..) | Job::Settle(..) | Job::Release(..) => true,
            Job::RecordAll(..) => false,
        }
    }

    /// The writer that takes it, of `writers`: by its billable's lock key, so that one
    /// billable's operations keep their order.
    fn shard(&self, writers: usize) -> usize {
        let billable = match self {
            Job::Reserve(req, _) => &req.billable,
            Job::Settle(s, _) => &s.entry.billable,
            Job::Release(_, owner, _) => owner,
            Job::RecordAll(entries, _) => match entries.first() {
                Some(e) => &e.billable,
                None => return 0,
            },
        };
        let key = u64::from_ne_bytes(lock_key(billable).to_ne_bytes());
        usize::try_from(key % writers.max(1) as u64).unwrap_or(0)
    }

    /// The batch operation of a batchable job.
    fn op(&self) -> Option<Op<'_>> {
        match self {
            Job::Reserve(req, _) => Some(Op::Reserve(req)),
            Job::Settle(s, _) => Some(Op::Settle(s)),
            Job::Release(id, owner, _) => Some(Op::Release(*id, owner)),
            Job::RecordAll(..) => None,
        }
    }
}

/// The most writer tasks a store has on PostgreSQL.
pub(crate) const MAX_POSTGRES_WRITERS: usize = 4;

/// Writer tasks per store on PostgreSQL: one per core of this machine, at most
/// [`MAX_POSTGRES_WRITERS`] (SQLite has one writer at a time, so one task). Each takes the
/// billables whose lock key falls to it, so batches of different billables commit in
/// parallel; but each writer also builds and sends its batches on this process's cores, and
/// more writers than cores only split the batches smaller. On 2 cores, 2 writers carried
/// 1.39x the load of 4 over 1,000 billables (docs/PERFORMANCE.md).
pub(crate) fn postgres_writers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_POSTGRES_WRITERS)
}

/// Where a store's writers are found; a task starts on first use, on the caller's runtime,
/// and stops when every clone of the store is gone.
#[derive(Debug)]
pub(crate) struct WriterSlot {
    senders: Mutex<Vec<Option<mpsc::Sender<Job>>>>,
    /// SQLite: plain usage inserts go through the writer too (on PostgreSQL they run on
    /// the pool, in parallel).
    takes_usage_inserts: bool,
}

impl WriterSlot {
    /// The default writers of `backend`: one on SQLite, [`postgres_writers`] on PostgreSQL.
    pub(crate) fn new(backend: DbBackend) -> Self {
        let tasks = if backend == DbBackend::Sqlite {
            1
        } else {
            postgres_writers()
        };
        Self::with_tasks(backend, tasks)
    }

    /// `tasks` writers (at least one) for `backend`.
    pub(crate) fn with_tasks(backend: DbBackend, tasks: usize) -> Self {
        Self {
            senders: Mutex::new(vec![None; tasks.max(1)]),
            takes_usage_inserts: backend == DbBackend::Sqlite,
        }
    }

    /// How many writer tasks it has (each started on first use).
    pub(crate) fn tasks(&self) -> usize {
        // A poisoned lock only means a caller panicked while cloning a sender; the slots
        // themselves are always whole.
        self.senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// A store's writer, as its callers see it.
pub(crate) struct Writer<'a> {
    pub(crate) slot: &'a WriterSlot,
    pub(crate) store: &'a SeaOrmStore,
}

impl Writer<'_> {
    /// True when plain usage inserts go through the writer too (SQLite, where only one
    /// connection writes at a time).
    pub(crate) fn takes_usage_inserts(&self) -> bool {
        self.slot.takes_usage_inserts
    }

    pub(crate) async fn reserve(&self, req: ReserveRequest) -> StoreResult<ReserveOutcome> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Reserve(req, tx)).await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    pub(crate) async fn settle(&self, settlement: Settlement) -> StoreResult<Settled> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Settle(Box::new(settlement), tx)).await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    pub(crate) async fn release(&self, id: ReservationId, owner: Billable) -> StoreResult<bool> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Release(id, owner, tx)).await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    pub(crate) async fn record_all(&self, entries: Vec<UsageEntry>) -> StoreResult<Vec<Recorded>> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::RecordAll(entries, tx)).await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Hands `job` to the writer of its billable, starting it when it is not running (first
    /// use, or its runtime ended).
    async fn submit(&self, job: Job) -> StoreResult<()> {
        let sender = self.sender(&job, false);
        let job = match sender.send(job).await {
            Ok(()) => return Ok(()),
            Err(mpsc::error::SendError(job)) => job,
        };
        self.sender(&job, true)
            .send(job)
            .await
            .map_err(|_| stopped())
    }

    fn sender(&self, job: &Job, restart: bool) -> mpsc::Sender<Job> {
        // A poisoned lock only means a caller panicked while cloning a sender; the slots
        // themselves are always whole.
        let mut senders = self
            .slot
            .senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let shard = job.shard(senders.len());
        let slot = &mut senders[shard];
        match slot.as_ref() {
            Some(sender) if !restart || !sender.is_closed() => sender.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(self.store.without_writer(), rx));
                *slot = Some(tx.clone());
                tx
            }
        }
    }
}

fn stopped() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "the store's writer stopped (its runtime shut down) before answering",
    )
}

/// The writer task: takes what has queued up, up to [`MAX_BATCH`], and writes it.
///
/// It writes on a connection of its own, and replaces that connection after any failed
/// batch: a connection on which a write failed half-way (SQLite out of disk space, say) may
/// be left inside a transaction that its driver no longer knows about, where every later
/// "commit" would only release a savepoint and nothing would ever be durable. A fresh
/// connection cannot carry that over; closing the old one rolls back whatever it held.
async fn run(store: SeaOrmStore, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut own: Option<SeaOrmStore> = None;
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut jobs);
        let conn = match &own {
            Some(conn) => conn.clone(),
            None => match store.open_writer_connection().await {
                // The store gave no way to open connections (in-memory, or `new`): the pool.
                None => store.clone(),
                Some(Ok(conn)) => {
                    own = Some(conn.clone());
                    conn
                }
                Some(Err(e)) => {
                    for job in jobs {
                        fail(job, &e);
                    }
                    continue;
                }
            },
        };
        if !write(&conn, jobs).await
            && let Some(old) = own.take()
        {
            // Closing it rolls back whatever it still held; the next batch opens another.
            let _ = old.connection().close_by_ref().await;
        }
    }
}

/// Writes one batch, then the calls it does not cover, each in a transaction of its own.
/// False when the database failed (the connection is suspect).
async fn write(store: &SeaOrmStore, jobs: Vec<Job>) -> bool {
    let mut healthy = true;
    let (batched, mut single): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .filter(|job| !job.abandoned())
        .partition(Job::batchable);
    if !batched.is_empty() {
        let ops: Vec<Op<'_>> = batched.iter().filter_map(Job::op).collect();
        let outcomes = batch::run(store, &ops).await;
        drop(ops);
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in batched.into_iter().zip(outcomes) {
                    if let Some(job) = answer(store, job, outcome).await {
                        single.push(job);
                    }
                }
            }
            Err(e) => {
                healthy = false;
                for job in batched {
                    fail(job, &e);
                }
            }
        }
    }
    for job in single {
        match job {
            Job::Reserve(req, reply) => {
                let outcome = store.reserve_single(&req).await;
                healthy &= !suspect(&outcome);
                if let Err(Ok(ReserveOutcome::Reserved { id, .. })) = reply.send(outcome) {
                    let _ = store.release_single(id, &req.billable).await;
                }
            }
            Job::Settle(s, reply) => {
                let outcome = store.settle_single(&s).await;
                healthy &= !suspect(&outcome);
                let _ = reply.send(outcome);
            }
            Job::Release(id, owner, reply) => {
                let outcome = store.release_single(id, &owner).await;
                healthy &= !suspect(&outcome);
                let _ = reply.send(outcome);
            }
            Job::RecordAll(entries, reply) => {
                let outcome = batch::record_all(store, &entries).await;
                healthy &= !suspect(&outcome);
                let _ = reply.send(outcome);
            }
        }
    }
    healthy
}

/// True for an error that may have come from the database half-way through a write (not a
/// refusal decided before writing).
fn suspect<T>(outcome: &StoreResult<T>) -> bool {
    matches!(outcome, Err(e) if !matches!(e.kind(), StoreErrorKind::Invalid | StoreErrorKind::NotFound))
}

/// Sends a committed batch's outcome to its caller; gives the job back when it was deferred.
/// A reservation whose caller is gone is released at once rather than left to expire.
async fn answer(store: &SeaOrmStore, job: Job, outcome: Outcome) -> Option<Job> {
    match (job, outcome) {
        (job, Outcome::Deferred) => Some(job),
        (Job::Reserve(req, reply), Outcome::Reserved(outcome)) => {
            if let Err(Ok(ReserveOutcome::Reserved { id, .. })) = reply.send(outcome) {
                // If this fails too, the reservation expires by itself.
                let _ = store.release_single(id, &req.billable).await;
            }
            None
        }
        (Job::Settle(_, reply), Outcome::Settled(outcome)) => {
            let _ = reply.send(*outcome);
            None
        }
        (Job::Release(_, _, reply), Outcome::Released(released)) => {
            let _ = reply.send(Ok(released));
            None
        }
        // The batch answers each operation with its own kind of outcome.
        (job, _) => Some(job),
    }
}

/// Tells a caller that its batch failed (rolled back, or its commit was not confirmed).
fn fail(job: Job, e: &StoreError) {
    let error = || StoreError::new(e.kind(), e.message());
    match job {
        Job::Reserve(_, reply) => {
            let _ = reply.send(Err(error()));
        }
        Job::Settle(_, reply) => {
            let _ = reply.send(Err(error()));
        }
        Job::Release(_, _, reply) => {
            let _ = reply.send(Err(error()));
        }
        Job::RecordAll(_, reply) => {
            let _ = reply.send(Err(error()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_writers_follow_the_cores_up_to_the_cap() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(postgres_writers(), cores.min(MAX_POSTGRES_WRITERS));
        assert!((1..=MAX_POSTGRES_WRITERS).contains(&postgres_writers()));
        let sqlite = WriterSlot::new(DbBackend::Sqlite);
        let postgres = WriterSlot::new(DbBackend::Postgres);
        assert_eq!((sqlite.tasks(), postgres.tasks()), (1, postgres_writers()));
        assert_eq!(WriterSlot::with_tasks(DbBackend::Postgres, 9).tasks(), 9);
        assert_eq!(WriterSlot::with_tasks(DbBackend::Postgres, 0).tasks(), 1);
    }
}
