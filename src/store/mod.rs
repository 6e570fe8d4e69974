//! Storage: diesel over an r2d2 pool, SQLite (embedded default) or PostgreSQL.
//!
//! The store owns transactions: [`Db::write`] opens one (on a group-commit writer, a
//! savepoint of the batch) and hands its closure a [`Repos`] already inside it; [`Db::read`]
//! hands one outside any. Repositories ([`tickets`], [`audit`], [`outbox`], [`credentials`])
//! are written once for both backends; the few statements that differ per backend live behind
//! [`Dialect`]. Failures come out as a classified [`StoreError`].

pub mod audit;
pub mod auth_events;
pub mod conflicts;
pub mod console;
pub mod credentials;
pub mod listener;
pub mod models;
pub mod outbox;
pub mod pg_pool;
pub mod schema;
pub mod secrets;
pub mod shadow;
pub mod signals;
pub mod sync;
pub mod table_api;
pub mod tickets;
pub mod webhook_ids;
pub mod writer;

use crate::config::{DatabaseSettings, Durability};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Errors of the storage layer, classified here so that no layer above looks at diesel:
/// [`StoreError::Conflict`] (a unique constraint: a concurrent duplicate), the transient
/// [`StoreError::Busy`] / [`StoreError::Unavailable`] / [`StoreError::Commit`] (worth a retry:
/// the API answers 503 with `Retry-After`), and the rest (a bug or corrupt data). Domain
/// outcomes (not found, stale version, …) are not errors here: repositories return them as
/// values, and [`crate::sync`] turns them into domain errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the row: a concurrent request wrote the same data.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// SQLite gave up waiting for its lock, or PostgreSQL refused a serialization conflict.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database cannot be reached: no connection from the pool in time, a connection
    /// closed or killed mid-query, the SQLite writer gone.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The transaction holding the write did not commit: nothing of it was kept.
    #[error("the write was not kept: {0}")]
    Commit(String),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    #[error("database connection failed: {0}")]
    Connect(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("blocking task failed: {0}")]
    Join(String),
}

impl StoreError {
    /// True for failures that go away by themselves (retry later): busy, unreachable, not
    /// committed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy(_) | StoreError::Unavailable(_) | StoreError::Commit(_))
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match &e {
            E::DatabaseError(K::UniqueViolation, info) => StoreError::Conflict(info.message().to_string()),
            _ if connection_gone(&e) => StoreError::Unavailable(e.to_string()),
            E::DatabaseError(_, info) if info.message().contains("database is locked") => {
                StoreError::Busy(info.message().to_string())
            }
            E::DatabaseError(K::SerializationFailure, info) => StoreError::Busy(info.message().to_string()),
            // PostgreSQL broke a lock cycle by aborting this transaction: retrying succeeds.
            E::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                StoreError::Busy(info.message().to_string())
            }
            E::DatabaseError(K::ReadOnlyTransaction, info) => StoreError::Unavailable(info.message().to_string()),
            E::DatabaseError(_, info) if disk_trouble(info.message()) => {
                StoreError::Unavailable(info.message().to_string())
            }
            E::RollbackErrorOnCommit { commit_error, .. } => StoreError::Commit(commit_error.to_string()),
            E::BrokenTransactionManager => StoreError::Unavailable("the connection's transaction was lost".into()),
            _ => StoreError::Query(e),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(format!("no database connection: {e}"))
    }
}

/// SQLite's words for a disk that cannot take the write (full, failing) and PostgreSQL's for a
/// server out of disk: the write was not kept, retry later.
fn disk_trouble(message: &str) -> bool {
    const TROUBLE: [&str; 3] = ["database or disk is full", "disk I/O error", "could not extend file"];
    TROUBLE.iter().any(|m| message.contains(m))
}

/// The error says the connection to the server is gone (closed, killed, the server shutting
/// down): the connection is of no further use, and the pool drops it (see [`pg_pool`]).
pub(crate) fn connection_gone(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match e {
        E::DatabaseError(K::ClosedConnection, _) => true,
        E::DatabaseError(_, info) => connection_lost(info.message()),
        _ => false,
    }
}

/// Messages libpq and PostgreSQL give when the server went away or ended the session
/// (`pg_terminate_backend`, a restart, a network cut): diesel reports most as `Unknown`.
fn connection_lost(message: &str) -> bool {
    const LOST: [&str; 9] = [
        "SSL SYSCALL error",
        "server closed the connection",
        "terminating connection",
        "connection to server",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "SSL connection has been closed",
        "the database system is shutting down",
    ];
    LOST.iter().any(|m| message.contains(m))
}

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type PgPool = Pool<pg_pool::PgManager>;

/// A pooled connection of either backend, for tests and tools that run raw SQL through
/// [`with_conn!`]. Gateway code never holds one: it hands closures to [`Db::read`] and
/// [`Db::write`], which pass them a [`Repos`] already inside the right transaction.
pub enum DbConn {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<pg_pool::PgManager>),
}

/// Runs `$body` with `$c` bound to the concrete `&mut` connection of either backend (tests,
/// benchmarks: raw SQL). Not for gateway code, which goes through [`Db::read`] / [`Db::write`].
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite(pooled) => {
                let $c: &mut ::diesel::SqliteConnection = &mut *pooled;
                $body
            }
            $crate::store::DbConn::Postgres(pooled) => {
                let $c: &mut ::diesel::PgConnection = &mut *pooled;
                $body
            }
        }
    };
}

/// Every repository, on a connection of either backend: what [`Db::read`] and [`Db::write`]
/// hand their closures (`&mut dyn Repos`), so code above the store is written once for both.
pub trait Repos:
    tickets::TicketRepo
    + audit::AuditRepo
    + outbox::OutboxRepo
    + credentials::CredentialRepo
    + auth_events::AuthEventRepo
    + secrets::SecretRepo
    + webhook_ids::WebhookIdRepo
    + conflicts::ConflictRepo
    + sync::SyncRepo
    + table_api::TableApiRepo
    + signals::SignalRepo
    + shadow::ShadowRepo
    + console::ConsoleRepo
{
}

impl Repos for SqliteConnection {}
impl Repos for PgConnection {}

/// Runs `f` in a transaction of `c` — a savepoint when `c` is already inside one (the SQLite
/// writer's batch): `Err` from `f`, or a statement that fails, undoes only what `f` did.
fn in_transaction<C, T, E, F>(c: &mut C, f: F) -> Result<T, E>
where
    C: diesel::Connection + Repos,
    E: From<StoreError>,
    F: FnOnce(&mut dyn Repos) -> Result<T, E>,
{
    /// diesel's `transaction` needs an error it can build from its own; the caller's comes
    /// back unchanged.
    enum Failed<E> {
        Caller(E),
        Db(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for Failed<E> {
        fn from(e: diesel::result::Error) -> Self {
            Failed::Db(e)
        }
    }
    c.transaction(|c| f(c).map_err(Failed::Caller)).map_err(|e| match e {
        Failed::Caller(e) => e,
        Failed::Db(e) => E::from(StoreError::from(e)),
    })
}

/// Statements whose SQL differs between the backends.
pub trait Dialect {
    /// Reads the ticket row and locks it for the rest of the transaction, in one statement
    /// (no lock on SQLite, where the immediate transaction already holds the write lock).
    fn ticket_locked(&mut self, ticket_id: i64) -> QueryResult<Option<models::TicketRow>>;
    /// [`Dialect::ticket_locked`] with the ticket's cross-references (oldest first), in one
    /// statement: what an update reads first. PostgreSQL locks the cross-reference rows too,
    /// which only makes a delivery's settle of this ticket wait for the write's commit.
    fn ticket_and_xrefs_locked(
        &mut self,
        ticket_id: i64,
    ) -> QueryResult<Option<(models::TicketRow, Vec<models::XrefRow>)>>;
    /// Appends journal entries in one statement (PostgreSQL; on SQLite, in process, one each).
    fn insert_journals(&mut self, rows: &[models::NewJournal]) -> QueryResult<()>;
}

/// Splits the rows of a ticket joined with its cross-references.
fn ticket_with_xrefs(
    rows: Vec<(models::TicketRow, models::XrefRow)>,
) -> Option<(models::TicketRow, Vec<models::XrefRow>)> {
    let mut rows = rows.into_iter();
    let (ticket, first) = rows.next()?;
    Some((ticket, std::iter::once(first).chain(rows.map(|(_, x)| x)).collect()))
}

impl Dialect for SqliteConnection {
    fn ticket_locked(&mut self, ticket_id: i64) -> QueryResult<Option<models::TicketRow>> {
        use schema::tickets::dsl as t;
        t::tickets.find(ticket_id).select(models::TicketRow::as_select()).first(self).optional()
    }

    fn ticket_and_xrefs_locked(
        &mut self,
        ticket_id: i64,
    ) -> QueryResult<Option<(models::TicketRow, Vec<models::XrefRow>)>> {
        use schema::{tickets, xrefs};
        tickets::table
            .inner_join(xrefs::table)
            .filter(tickets::id.eq(ticket_id))
            .order(xrefs::id)
            .select((models::TicketRow::as_select(), models::XrefRow::as_select()))
            .load(self)
            .map(ticket_with_xrefs)
    }

    fn insert_journals(&mut self, rows: &[models::NewJournal]) -> QueryResult<()> {
        for row in rows {
            diesel::insert_into(schema::journal::table).values(row).execute(self)?;
        }
        Ok(())
    }
}

impl Dialect for PgConnection {
    fn ticket_locked(&mut self, ticket_id: i64) -> QueryResult<Option<models::TicketRow>> {
        use schema::tickets::dsl as t;
        t::tickets.find(ticket_id).select(models::TicketRow::as_select()).for_update().first(self).optional()
    }

    fn ticket_and_xrefs_locked(
        &mut self,
        ticket_id: i64,
    ) -> QueryResult<Option<(models::TicketRow, Vec<models::XrefRow>)>> {
        use schema::{tickets, xrefs};
        tickets::table
            .inner_join(xrefs::table)
            .filter(tickets::id.eq(ticket_id))
            .order(xrefs::id)
            .select((models::TicketRow::as_select(), models::XrefRow::as_select()))
            .for_update()
            .load(self)
            .map(ticket_with_xrefs)
    }

    fn insert_journals(&mut self, rows: &[models::NewJournal]) -> QueryResult<()> {
        diesel::insert_into(schema::journal::table).values(rows).execute(self).map(|_| ())
    }
}

#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u32,
    durability: Durability,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers run beside the writer; synchronous=FULL makes every acknowledged
        // commit survive a power cut; foreign keys are off by default in SQLite.
        // journal_mode=WAL is persistent: it is set once when the pool is built (setting it on
        // every new connection can fail with "database is locked" while another writes).
        let synchronous = match self.durability {
            Durability::Full => "FULL",
            Durability::Fast => "NORMAL",
        };
        let sql = format!(
            "PRAGMA busy_timeout = {}; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        );
        conn.batch_execute(&sql).map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug)]
struct PgSession {
    durability: Durability,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for PgSession {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        // Durable commits, stated rather than assumed from the server's configuration.
        let sql = match self.durability {
            Durability::Full => "SET synchronous_commit = on; SET TIME ZONE 'UTC';",
            Durability::Fast => "SET synchronous_commit = off; SET TIME ZONE 'UTC';",
        };
        conn.batch_execute(sql).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The database handle shared by the whole process (cheap to clone). SQLite writes made with
/// [`Db::write`] go through the group-commit [`writer::Writer`].
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool, writer::Writer<SqliteConnection>),
    /// With `database.pg_writers` > 0, writes go through that many group-commit writers.
    Postgres(PgPool, writer::Writers<PgConnection>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sqlite(..) => "Db::Sqlite",
            Db::Postgres(..) => "Db::Postgres",
        })
    }
}

/// The kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `postgres://` / `postgresql://` is PostgreSQL; `sqlite://PATH` or a plain path (no
    /// scheme) is a SQLite file. Any other scheme (`mysql://…`) is refused rather than taken
    /// for a file name.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres);
        }
        if url.starts_with("sqlite://") {
            return Ok(Backend::Sqlite);
        }
        match url.split_once("://") {
            Some((scheme, _)) => Err(StoreError::Connect(format!(
                "database URL scheme `{scheme}://` is not supported: use postgres://… or a SQLite file path (sqlite://PATH)"
            ))),
            None if url.trim().is_empty() => Err(StoreError::Connect("the database URL is empty".into())),
            None => Ok(Backend::Sqlite),
        }
    }
}

/// One connection before the pool is built, so a database that cannot be reached is one clear
/// error (the pool would retry and log every failed attempt until its timeout) and a missing
/// one names the command that creates it.
fn probe_postgres(url: &str) -> Result<(), StoreError> {
    match PgConnection::establish(url) {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = redact_url(&e.to_string(), url);
            if let Some(name) = message
                .split("database \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .filter(|_| message.contains("does not exist"))
            {
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                let (user, host) = match rest.rsplit_once('@') {
                    Some((creds, host)) => (creds.split(':').next().unwrap_or(""), host),
                    None => ("", rest),
                };
                let host = host.split(['/', '?']).next().unwrap_or("");
                let (host, port) = host.rsplit_once(':').unwrap_or((host, "5432"));
                let user = if user.is_empty() { String::new() } else { format!(" -U {user}") };
                return Err(StoreError::Connect(format!(
                    "the PostgreSQL database `{name}` does not exist on {host}:{port}: create it with `createdb -h {host} -p {port}{user} {name}` \
                     (or `CREATE DATABASE {name}` as a user allowed to), then start again; ebond creates its tables itself"
                )));
            }
            Err(StoreError::Connect(message))
        }
    }
}

impl Db {
    /// Opens a pool for `url` (see [`Backend::of_url`]). The SQLite file's folder is created.
    pub fn connect(url: &str, opts: &DatabaseSettings) -> Result<Db, StoreError> {
        let timeout = Duration::from_millis(opts.connect_timeout_ms);
        let (pool_size, busy_timeout_ms) = (opts.pool_size, opts.busy_timeout_ms);
        if Backend::of_url(url)? == Backend::Postgres {
            probe_postgres(url)?;
            let pool = Pool::builder()
                // Each writer keeps a connection of its own, on top of `pool_size` for the rest.
                .max_size(pool_size.max(1).saturating_add(u32::try_from(opts.pg_writers).unwrap_or(u32::MAX)))
                .connection_timeout(timeout)
                .connection_customizer(Box::new(PgSession { durability: opts.durability }))
                // Checked at check-out without a round trip (see `pg_pool`).
                .test_on_check_out(true)
                .build(pg_pool::PgManager::new(url))
                .map_err(|e| StoreError::Connect(redact_url(&e.to_string(), url)))?;
            let writers = (0..opts.pg_writers)
                .map(|n| writer::Writer::start(pool.clone(), opts.max_batch, &format!("ebond-pg-writer-{n}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Db::Postgres(pool, writer::Writers::new(writers)))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Connect(format!("cannot create {}: {e}", dir.display())))?;
                }
            }
            {
                let mut first = SqliteConnection::establish(path).map_err(|e| StoreError::Connect(e.to_string()))?;
                first
                    .batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL;"))
                    .map_err(|e| StoreError::Connect(format!("enabling WAL: {e}")))?;
            }
            let pool = Pool::builder()
                // The writer keeps one connection and the checkpointer borrows one: leave at
                // least one for reads.
                .max_size(pool_size.max(3))
                .connection_timeout(timeout)
                .connection_customizer(Box::new(SqlitePragmas { busy_timeout_ms, durability: opts.durability }))
                // A local file connection does not go stale; the check-out ping (`SELECT 1`)
                // would cost a statement per request. (PostgreSQL's is replaced by a check
                // without a round trip: see `pg_pool`.)
                .test_on_check_out(false)
                .build(ConnectionManager::<SqliteConnection>::new(path))
                .map_err(|e| StoreError::Connect(e.to_string()))?;
            let writer = writer::Writer::start_sqlite(pool.clone(), opts.max_batch)?;
            Ok(Db::Sqlite(pool, writer))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "sqlite",
            Db::Postgres(..) => "postgres",
        }
    }

    /// A pooled connection for raw SQL (tests, benchmarks; see [`DbConn`]).
    pub fn get(&self) -> Result<DbConn, StoreError> {
        Ok(match self {
            Db::Sqlite(p, _) => DbConn::Sqlite(p.get()?),
            Db::Postgres(p, _) => DbConn::Postgres(p.get()?),
        })
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let applied = match self.get()? {
            DbConn::Sqlite(mut c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
            DbConn::Postgres(mut c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions),
        };
        applied.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Migrations embedded in this binary that the database has not applied yet.
    pub fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let pending = match self.get()? {
            DbConn::Sqlite(mut c) => {
                c.pending_migrations(SQLITE_MIGRATIONS).map(|m| m.iter().map(|m| m.name().to_string()).collect())
            }
            DbConn::Postgres(mut c) => {
                c.pending_migrations(POSTGRES_MIGRATIONS).map(|m| m.iter().map(|m| m.name().to_string()).collect())
            }
        };
        pending.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Runs `f` (reads, no transaction) on a pooled connection, on tokio's blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Repos) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        // Keep the request's span (request id, partner, ticket) on the blocking thread.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| db.read_now(f)))
            .await
            .map_err(|e| E::from(StoreError::Join(e.to_string())))?
    }

    /// [`Db::read`] on the calling thread (the CLI, or code already on a blocking thread).
    pub fn read_now<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Repos) -> Result<T, E>,
    {
        match self.get()? {
            DbConn::Sqlite(mut c) => f(&mut *c),
            DbConn::Postgres(mut c) => f(&mut *c),
        }
    }

    /// Runs `f` as one write transaction, committed when `f` returns `Ok` and undone when it
    /// returns `Err`. It joins a group-commit writer's next batch behind its own savepoint
    /// (answered after that batch commits): SQLite's one writer, or PostgreSQL's writers in
    /// turn (`database.pg_writers`; with 0, a transaction of its own on a pooled connection).
    ///
    /// On PostgreSQL two writers' batches can lock the same rows in opposite orders; the
    /// server then breaks the cycle after `deadlock_timeout` by failing one write, which
    /// answers 503 and is undone alone (its savepoint).
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Repos) -> Result<T, E> + Send + 'static,
    {
        match self {
            Db::Sqlite(_, writer) => writer.submit(f).await,
            Db::Postgres(pool, writers) => match writers.next() {
                Some(writer) => writer.submit(f).await,
                None => {
                    let pool = pool.clone();
                    let span = tracing::Span::current();
                    tokio::task::spawn_blocking(move || span.in_scope(|| postgres_write(&pool, f)))
                        .await
                        .map_err(|e| E::from(StoreError::Join(e.to_string())))?
                }
            },
        }
    }

    /// [`Db::write`] on the calling thread, which must not be an async task's (the CLI, or a
    /// blocking thread).
    pub fn write_now<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Repos) -> Result<T, E> + Send + 'static,
    {
        match self {
            Db::Sqlite(_, writer) => writer.submit_now(f),
            Db::Postgres(pool, writers) => match writers.next() {
                Some(writer) => writer.submit_now(f),
                None => postgres_write(pool, f),
            },
        }
    }

    /// Readiness probe: a trivial query round trip.
    pub fn ping(&self) -> Result<(), StoreError> {
        let writers_running = match self {
            Db::Sqlite(_, writer) => writer.is_running(),
            Db::Postgres(_, writers) => writers.all_running(),
        };
        if !writers_running {
            return Err(StoreError::Unavailable("a database writer thread has stopped".into()));
        }
        let mut conn = self.get()?;
        with_conn!(&mut conn, c => diesel::sql_query("SELECT 1").execute(c))?;
        Ok(())
    }
}

fn postgres_write<T, E, F>(pool: &PgPool, f: F) -> Result<T, E>
where
    E: From<StoreError>,
    F: FnOnce(&mut dyn Repos) -> Result<T, E>,
{
    let mut conn = pool.get().map_err(StoreError::from)?;
    in_transaction(&mut *conn, f)
}

fn versions(v: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}

/// Removes a password from a connection URL echoed inside an error message.
fn redact_url(message: &str, url: &str) -> String {
    match url.split_once("://").and_then(|(_, rest)| rest.split_once('@')) {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((_, password)) if !password.is_empty() => message.replace(password, "***"),
            _ => message.to_string(),
        },
        None => message.to_string(),
    }
}
