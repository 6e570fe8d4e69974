//! Storage: diesel over an r2d2 pool, SQLite (embedded default) or PostgreSQL.
//!
//! Both backends share one schema ([`schema`]). Code that must run on either connection is
//! written once inside [`with_conn!`] or [`write_tx!`], which expand it for each backend; the
//! few statements that differ per backend live behind [`Dialect`].

pub mod audit;
pub mod credentials;
pub mod models;
pub mod outbox;
pub mod schema;
pub mod tickets;
pub mod writer;

use crate::config::DatabaseSettings;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Errors of the storage layer. Domain outcomes (not found, conflict, …) are not errors here:
/// repositories return them as values, and [`crate::sync`] turns them into domain errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection unavailable: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database connection failed: {0}")]
    Connect(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("the write was not kept: {0}")]
    Commit(String),
}

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A pooled connection to whichever backend is configured. A SQLite connection carries the
/// process-wide write lock (see [`write_tx!`]); `SqliteBatch` is the group-commit writer's
/// connection, already inside its batch transaction and a savepoint of the current write
/// (see [`writer`]).
pub enum DbConn {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>, WriteLock),
    SqliteBatch(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
}

/// Serialises this process's SQLite write transactions: waiting threads queue on a mutex
/// instead of SQLite's sleep-and-retry busy handler, which starves under load.
pub type WriteLock = Arc<Mutex<()>>;

/// Runs `$body` with `$c` bound to the concrete `&mut` connection of either backend.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite(pooled, _) | $crate::store::DbConn::SqliteBatch(pooled) => {
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

/// Runs `$body` (returning `Result<_, E>` with `E: From<diesel::result::Error>`) in one write
/// transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so a read-then-write
/// never fails half-way with SQLITE_BUSY; PostgreSQL uses row locks ([`Dialect::ticket_locked`]).
/// On the group-commit writer's connection the transaction is a savepoint of the batch.
#[macro_export]
macro_rules! write_tx {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::SqliteBatch(pooled) => {
                // Inside the writer's batch transaction, diesel makes this a savepoint.
                let conn: &mut ::diesel::SqliteConnection = &mut *pooled;
                ::diesel::Connection::transaction(conn, |$c| $body)
            }
            $crate::store::DbConn::Sqlite(pooled, lock) => {
                let _writer = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let conn: &mut ::diesel::SqliteConnection = &mut *pooled;
                conn.immediate_transaction(|$c| $body)
            }
            $crate::store::DbConn::Postgres(pooled) => {
                let conn: &mut ::diesel::PgConnection = &mut *pooled;
                ::diesel::Connection::transaction(conn, |$c| $body)
            }
        }
    };
}

/// Statements whose SQL differs between the backends.
pub trait Dialect {
    /// Reads the ticket row and locks it for the rest of the transaction, in one statement
    /// (no lock on SQLite, where the immediate transaction already holds the write lock).
    fn ticket_locked(&mut self, ticket_id: i64) -> QueryResult<Option<models::TicketRow>>;
}

impl Dialect for SqliteConnection {
    fn ticket_locked(&mut self, ticket_id: i64) -> QueryResult<Option<models::TicketRow>> {
        use schema::tickets::dsl as t;
        t::tickets.find(ticket_id).select(models::TicketRow::as_select()).first(self).optional()
    }
}

impl Dialect for PgConnection {
    fn ticket_locked(&mut self, ticket_id: i64) -> QueryResult<Option<models::TicketRow>> {
        use schema::tickets::dsl as t;
        t::tickets.find(ticket_id).select(models::TicketRow::as_select()).for_update().first(self).optional()
    }
}

/// Whether an acknowledged commit is on disk (`full`, the default) or may be lost by a power
/// cut (`fast`, an explicit opt-in). See `DatabaseSettings::durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Full,
    Fast,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Durability::Full),
            "fast" => Ok(Durability::Fast),
            other => Err(format!("`{other}` is not a durability mode (full or fast)")),
        }
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
    Sqlite(SqlitePool, WriteLock, writer::Writer),
    Postgres(PgPool),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sqlite(..) => "Db::Sqlite",
            Db::Postgres(_) => "Db::Postgres",
        })
    }
}

impl Db {
    /// Opens a pool for `url`: `postgres://` / `postgresql://` selects PostgreSQL, anything else
    /// is a SQLite path (with or without `sqlite://`). The SQLite file's folder is created.
    pub fn connect(url: &str, opts: &DatabaseSettings) -> Result<Db, StoreError> {
        let timeout = Duration::from_millis(opts.connect_timeout_ms);
        let (pool_size, busy_timeout_ms) = (opts.pool_size, opts.busy_timeout_ms);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = Pool::builder()
                .max_size(pool_size.max(1))
                .connection_timeout(timeout)
                .connection_customizer(Box::new(PgSession { durability: opts.durability }))
                .build(ConnectionManager::<PgConnection>::new(url))
                .map_err(|e| StoreError::Connect(redact_url(&e.to_string(), url)))?;
            Ok(Db::Postgres(pool))
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
                // would cost a statement per request. (Kept on PostgreSQL, where it catches
                // connections a server restart killed.)
                .test_on_check_out(false)
                .build(ConnectionManager::<SqliteConnection>::new(path))
                .map_err(|e| StoreError::Connect(e.to_string()))?;
            let lock: WriteLock = Arc::new(Mutex::new(()));
            let writer = writer::Writer::start(pool.clone(), lock.clone(), opts.max_batch)?;
            Ok(Db::Sqlite(pool, lock, writer))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub fn get(&self) -> Result<DbConn, StoreError> {
        Ok(match self {
            Db::Sqlite(p, lock, _) => DbConn::Sqlite(p.get()?, lock.clone()),
            Db::Postgres(p) => DbConn::Postgres(p.get()?),
        })
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.get()?;
        let applied = match &mut conn {
            DbConn::Sqlite(c, _) | DbConn::SqliteBatch(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
            DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions),
        };
        applied.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Runs blocking diesel work on tokio's blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        // Keep the request's span (request id, partner, ticket) on the blocking thread.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = db.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Join(e.to_string())))?
    }

    /// Runs a write: `f` wraps its work in [`write_tx!`]. On SQLite it joins the group-commit
    /// writer's next batch (answered after that batch commits); on PostgreSQL it runs on a
    /// pooled connection like [`Db::run`], where concurrent transactions already share WAL
    /// flushes.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        match self {
            Db::Sqlite(_, _, writer) => writer.submit(f).await,
            Db::Postgres(_) => self.run(f).await,
        }
    }

    /// Readiness probe: a trivial query round trip.
    pub fn ping(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(_, _, writer) = self {
            if !writer.is_running() {
                return Err(StoreError::Unavailable("the SQLite writer has stopped".into()));
            }
        }
        let mut conn = self.get()?;
        with_conn!(&mut conn, c => diesel::sql_query("SELECT 1").execute(c))?;
        Ok(())
    }
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

/// True when a diesel error is a unique-constraint violation (a concurrent duplicate).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}

/// True when SQLite gave up waiting for its lock (`database is locked`): worth a retry.
pub fn is_busy(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message().contains("database is locked"))
}
