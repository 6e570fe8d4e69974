//! Group commit: one thread owns a write connection and applies whatever writes are queued
//! in one transaction, each behind its own savepoint, then answers every caller after the
//! single commit. SQLite always writes so; PostgreSQL through `database.pg_writers` writers
//! taking writes in turn (2 by default: the README's Performance section says why).
//!
//! SQLite has one writer at a time and a durable commit costs an fsync, so one commit per
//! request caps throughput at the disk's fsync rate. Queued requests share the commit instead:
//! while one batch is being synced the next one queues up, so batches grow with load and
//! stay at one request when idle (no added delay). A request that fails rolls back to its
//! savepoint and fails alone; nobody is answered before the commit that holds their write.

use super::{in_transaction, Repos, StoreError};
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::r2d2::{ConnectionManager, ManageConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};

/// A connection the writer can batch on.
pub trait BatchConnection:
    diesel::Connection<TransactionManager = AnsiTransactionManager> + Repos + Send + 'static
{
    /// Opens the batch's transaction.
    const BEGIN: &'static str;
    /// Run once on the connection the writer takes from the pool.
    fn prepare(&mut self) -> diesel::QueryResult<()> {
        Ok(())
    }
}

impl BatchConnection for SqliteConnection {
    // Takes the write lock at once: a batch never fails half-way for want of it.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    fn prepare(&mut self) -> diesel::QueryResult<()> {
        // Checkpoints are the checkpoint thread's job (see `checkpoint`); the automatic one
        // stays as a backstop for a WAL that grows past 10,000 pages anyway.
        diesel::connection::SimpleConnection::batch_execute(self, "PRAGMA wal_autocheckpoint = 10000")
    }
}

impl BatchConnection for PgConnection {
    const BEGIN: &'static str = "BEGIN";
}

/// Runs one queued write on the batch's connection (or, given the reason there is none,
/// fails it) and returns what to tell its caller once the batch's commit is known (`Ok` =
/// committed, `Err` = the commit's error).
type Job<C> = Box<dyn FnOnce(Result<&mut C, &str>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Handle to a writer thread (cheap to clone). The thread stops when every handle is gone.
pub struct Writer<C: BatchConnection> {
    queue: mpsc::Sender<Job<C>>,
    /// The SQLite checkpointer runs while any handle holds this.
    _alive: std::sync::Arc<()>,
}

impl<C: BatchConnection> Clone for Writer<C> {
    fn clone(&self) -> Self {
        Writer { queue: self.queue.clone(), _alive: self._alive.clone() }
    }
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Writer<SqliteConnection> {
    /// Starts the SQLite writer thread and its checkpointer. `max_batch` bounds how many
    /// writes share one commit.
    pub fn start_sqlite(
        pool: Pool<ConnectionManager<SqliteConnection>>,
        max_batch: usize,
    ) -> Result<Writer<SqliteConnection>, StoreError> {
        let writer = Writer::start(pool.clone(), max_batch, "ebond-sqlite-writer")?;
        let watch = std::sync::Arc::downgrade(&writer._alive);
        std::thread::Builder::new()
            .name("ebond-sqlite-checkpoint".into())
            .spawn(move || checkpoint(pool, watch))
            .map_err(|e| StoreError::Connect(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        Ok(writer)
    }
}

impl<C: BatchConnection> Writer<C> {
    /// Starts a writer thread named `name` on a connection of `pool`.
    pub fn start<M>(pool: Pool<M>, max_batch: usize, name: &str) -> Result<Writer<C>, StoreError>
    where
        M: ManageConnection<Connection = C>,
    {
        let (queue, rx) = mpsc::channel::<Job<C>>(max_batch.max(1) * 8);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(pool, rx, max_batch.max(1)))
            .map_err(|e| StoreError::Connect(format!("cannot start the writer thread {name}: {e}")))?;
        Ok(Writer { queue, _alive: std::sync::Arc::new(()) })
    }

    /// Queues `f` and waits for the commit that holds its effects. `f` runs inside the batch's
    /// transaction behind its own savepoint: returning `Err` undoes only what `f` did.
    pub async fn submit<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Repos) -> Result<T, E> + Send + 'static,
    {
        let (job, rx) = job::<C, T, E, F>(f);
        self.queue.send(job).await.map_err(|_| stopped::<E>())?;
        rx.await.map_err(|_| panicked::<E>())?
    }

    /// [`Writer::submit`] for a caller that is not an async task (it blocks the thread).
    pub fn submit_now<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Repos) -> Result<T, E> + Send + 'static,
    {
        let (job, rx) = job::<C, T, E, F>(f);
        self.queue.blocking_send(job).map_err(|_| stopped::<E>())?;
        rx.blocking_recv().map_err(|_| panicked::<E>())?
    }

    /// False once the writer thread has stopped (readiness reports it).
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }
}

/// Writer threads that take writes in turn.
pub struct Writers<C: BatchConnection> {
    all: std::sync::Arc<Vec<Writer<C>>>,
    turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<C: BatchConnection> Clone for Writers<C> {
    fn clone(&self) -> Self {
        Writers { all: self.all.clone(), turn: self.turn.clone() }
    }
}

impl<C: BatchConnection> Writers<C> {
    pub fn new(all: Vec<Writer<C>>) -> Writers<C> {
        Writers { all: std::sync::Arc::new(all), turn: Default::default() }
    }

    /// False once any of the writer threads has stopped (readiness reports it).
    pub fn all_running(&self) -> bool {
        self.all.iter().all(Writer::is_running)
    }

    /// The writer whose turn it is; `None` when there are none.
    pub fn next(&self) -> Option<&Writer<C>> {
        let n = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.all.get(n.checked_rem(self.all.len())?)
    }
}

/// The queue is closed: the writer thread is gone.
fn stopped<E: From<StoreError>>() -> E {
    E::from(StoreError::Unavailable("the database writer has stopped".into()))
}

/// The job's answer was dropped unsent: the write panicked (its savepoint was undone).
fn panicked<E: From<StoreError>>() -> E {
    E::from(StoreError::Join("a write panicked; see the log".into()))
}

/// Wraps `f` as a job for the writer thread, and the receiver of its answer.
fn job<C, T, E, F>(f: F) -> (Job<C>, oneshot::Receiver<Result<T, E>>)
where
    C: BatchConnection,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&mut dyn Repos) -> Result<T, E> + Send + 'static,
{
    let (tx, rx) = oneshot::channel::<Result<T, E>>();
    // The request's span (request id, partner, ticket) follows the write onto the thread.
    let span = tracing::Span::current();
    let job: Job<C> = Box::new(move |conn: Result<&mut C, &str>| {
        let result = match conn {
            // Inside the batch's transaction, this is the write's own savepoint.
            Ok(conn) => span.in_scope(|| in_transaction(conn, f)),
            Err(why) => Err(E::from(StoreError::Unavailable(why.to_string()))),
        };
        Box::new(move |committed| {
            let answer = match committed {
                Ok(()) => result,
                // Rolled back with the rest of the batch: nothing of it was kept, and its own
                // answer may rest on another write that was not kept either.
                Err(e) => Err(E::from(StoreError::Commit(e))),
            };
            let _ = tx.send(answer);
        })
    });
    (job, rx)
}

/// The batch connection's transaction depth (0 = none); `None` when diesel cannot tell.
fn depth<C: BatchConnection>(c: &mut C) -> Option<u32> {
    match AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth() {
        Ok(d) => Some(d.map_or(0, |d| d.get())),
        Err(_) => None,
    }
}

/// Checkpoints the WAL beside the writer (PASSIVE: never blocks it, copies what readers
/// allow), so the writer's commits never pay for a checkpoint (SQLite's automatic checkpoint
/// runs inside the committing connection, stalling every write queued behind it).
fn checkpoint(pool: Pool<ConnectionManager<SqliteConnection>>, alive: std::sync::Weak<()>) {
    use diesel::connection::SimpleConnection;
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if alive.upgrade().is_none() {
            return;
        }
        let done = pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
            let c: &mut SqliteConnection = &mut c;
            c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)").map_err(|e| e.to_string())
        });
        if let Err(e) = done {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

fn run<M, C>(pool: Pool<M>, mut rx: mpsc::Receiver<Job<C>>, max_batch: usize)
where
    M: ManageConnection<Connection = C>,
    C: BatchConnection,
{
    let mut conn: Option<PooledConnection<M>> = None;
    let mut batch: Vec<Job<C>> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut pooled = match conn.take() {
            Some(c) => c,
            None => match pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
                let raw: &mut C = &mut c;
                raw.prepare().map(|_| c).map_err(|e| e.to_string())
            }) {
                Ok(c) => c,
                Err(e) => {
                    fail_unrun(&mut batch, &format!("database connection unavailable: {e}"));
                    continue;
                }
            },
        };
        let size = batch.len();
        let (outcome, healthy) = apply_batch::<C>(&mut pooled, &mut batch);
        if healthy {
            conn = Some(pooled);
        }
        match outcome {
            Ok(replies) => {
                tracing::trace!(writes = size, "batch committed");
                for reply in replies {
                    reply(Ok(()));
                }
            }
            Err((replies, error)) => {
                tracing::error!(writes = size, error = %error, "write batch rolled back");
                for reply in replies {
                    reply(Err(error.clone()));
                }
            }
        }
    }
}

type BatchError = (Vec<Reply>, String);

/// One transaction for the whole batch. Returns the replies, or the replies plus the error
/// that rolled everything back; `false` when the connection should not be reused.
fn apply_batch<C: BatchConnection>(c: &mut C, batch: &mut Vec<Job<C>>) -> (Result<Vec<Reply>, BatchError>, bool) {
    let begun = AnsiTransactionManager::begin_transaction_sql(c, C::BEGIN).map_err(|e| e.to_string());
    if let Err(e) = begun {
        let msg = format!("could not begin the write transaction: {e}");
        fail_unrun(batch, &msg);
        return (Err((Vec::new(), msg)), false);
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut jobs = std::mem::take(batch).into_iter();
    for job in jobs.by_ref() {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut *c))));
        let panicked = match outcome {
            Ok(reply) => {
                replies.push(reply);
                false
            }
            // Its caller hears of the panic (the reply sender is gone); its savepoint is undone
            // below and the others go on.
            Err(_) => true,
        };
        if panicked {
            roll_back_to(c, 1);
        }
        let depth_now = depth(c);
        // Each write must leave exactly the batch transaction open. Anything else means its
        // savepoint could not be closed, or SQLite ended the whole transaction itself (disk
        // full, I/O error): later writes would then commit one by one, outside the batch.
        if depth_now != Some(1) {
            let msg = "the batch transaction was lost; every write in it was rolled back".to_string();
            let mut rest: Vec<Job<C>> = jobs.collect();
            fail_unrun(&mut rest, &msg);
            roll_back_to(c, 0);
            return (Err((replies, msg)), false);
        }
    }
    let committed = match AnsiTransactionManager::commit_transaction(c) {
        Ok(()) if depth(c) == Some(0) => Ok(()),
        Ok(()) => Err("the batch transaction did not end at commit".to_string()),
        Err(e) => Err(format!("commit failed: {e}")),
    };
    match committed {
        Ok(()) => (Ok(replies), true),
        Err(msg) => {
            // Undo whatever is left of the batch (the connection is then not reused).
            roll_back_to(c, 0);
            (Err((replies, msg)), false)
        }
    }
}

/// Rolls back savepoints (and, for `target` 0, the transaction) until the depth is `target`.
fn roll_back_to<C: BatchConnection>(c: &mut C, target: u32) {
    while depth(c).is_some_and(|d| d > target) {
        if AnsiTransactionManager::rollback_transaction(c).is_err() {
            break;
        }
    }
}

/// Answers jobs that never ran: each gets the error without touching the database.
fn fail_unrun<C>(batch: &mut Vec<Job<C>>, msg: &str) {
    if batch.is_empty() {
        return;
    }
    tracing::error!(writes = batch.len(), error = msg, "write batch could not run");
    for job in batch.drain(..) {
        job(Err(msg))(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::DatabaseSettings;
    use crate::store::models::NewCredential;
    use crate::store::{Db, Repos, StoreError};

    fn db(dir: &tempfile::TempDir) -> Db {
        let db = Db::connect(&dir.path().join("w.db").display().to_string(), &DatabaseSettings::default()).unwrap();
        db.migrate().unwrap();
        db
    }

    /// Inserts a credential row whose client id is `n` (client ids are unique).
    fn insert(c: &mut dyn Repos, n: i64) -> diesel::QueryResult<()> {
        let id = n.to_string();
        c.insert_credential(&NewCredential {
            client_id: &id,
            secret_hash: "x",
            partner: None,
            scope: "admin",
            created_at: 0,
            kind: "client",
            contract_major: None,
        })
    }

    fn rows(db: &Db) -> Vec<i64> {
        let creds = db.read_now(|c| c.list_credentials().map_err(StoreError::from)).unwrap();
        let mut ids: Vec<i64> = creds.iter().map(|c| c.client_id.parse().unwrap()).collect();
        ids.sort_unstable();
        ids
    }

    /// Each write inserts two rows; odd writes then fail. Sent at once they share batches, yet
    /// every odd write is undone alone and every even one is kept whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_undone_alone_within_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir);
        let tasks: Vec<_> = (0..200i64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| {
                        insert(c, i * 2)?;
                        insert(c, i * 2 + 1)?;
                        if i % 2 == 1 {
                            // A unique violation, like a concurrent duplicate would raise.
                            insert(c, i * 2)?;
                        }
                        Ok::<_, StoreError>(i)
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.is_ok(), i % 2 == 0, "write {i}: {r:?}");
            if i % 2 == 1 {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "classified as a conflict: {r:?}");
            }
        }
        let expected: Vec<i64> = (0..200i64).filter(|i| i % 2 == 0).flat_map(|i| [i * 2, i * 2 + 1]).collect();
        assert_eq!(rows(&db), expected);
    }

    /// A write that panics among others fails alone: the writes batched with it are kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir);
        let tasks: Vec<_> = (0..60i64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| {
                        insert(c, i)?;
                        if i % 20 == 7 {
                            panic!("write {i} panics after inserting");
                        }
                        Ok::<_, StoreError>(())
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.is_ok(), i % 20 != 7, "write {i}: {r:?}");
        }
        let expected: Vec<i64> = (0..60i64).filter(|i| i % 20 != 7).collect();
        assert_eq!(rows(&db), expected);
    }

    /// A panic inside a write answers its caller with an error and the writer keeps serving.
    #[tokio::test]
    async fn a_panicking_write_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir);
        let r: Result<(), StoreError> = db.write(|_c| panic!("boom")).await;
        assert!(matches!(r, Err(StoreError::Join(_))), "{r:?}");
        let ok: Result<(), StoreError> = db.write(|c| insert(c, 7).map_err(StoreError::from)).await;
        ok.unwrap();
        assert_eq!(rows(&db), vec![7]);
    }

    /// The blocking entry point (the CLI's) commits through the same writer.
    #[test]
    fn write_now_commits_outside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir);
        db.write_now(|c| insert(c, 3).map_err(StoreError::from)).unwrap();
        assert_eq!(rows(&db), vec![3]);
    }
}
