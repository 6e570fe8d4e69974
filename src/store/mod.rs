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
}

type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;
type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A pooled connection to whichever backend is configured. A SQLite connection carries the
/// process-wide write lock (see [`write_tx!`]).
pub enum DbConn {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>, WriteLock),
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
            $crate::store::DbConn::Sqlite(pooled, _) => {
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
/// never fails half-way with SQLITE_BUSY; PostgreSQL uses row locks ([`Dialect::lock_ticket`]).
#[macro_export]
macro_rules! write_tx {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
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
    /// Locks the ticket row for the rest of the transaction (no-op on SQLite, where the
    /// immediate transaction already holds the database write lock).
    fn lock_ticket(&mut self, ticket_id: i64) -> QueryResult<()>;
}

impl Dialect for SqliteConnection {
    fn lock_ticket(&mut self, _ticket_id: i64) -> QueryResult<()> {
        Ok(())
    }
}

impl Dialect for PgConnection {
    fn lock_ticket(&mut self, ticket_id: i64) -> QueryResult<()> {
        use schema::tickets::dsl as t;
        t::tickets.filter(t::id.eq(ticket_id)).select(t::id).for_update().first::<i64>(self)?;
        Ok(())
    }
}

#[derive(Debug)]
struct SqlitePragmas {
    busy_timeout_ms: u32,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers run beside the writer; synchronous=FULL makes every acknowledged
        // commit survive a power cut; foreign keys are off by default in SQLite.
        // journal_mode=WAL is persistent: it is set once when the pool is built (setting it on
        // every new connection can fail with "database is locked" while another writes).
        let sql = format!(
            "PRAGMA busy_timeout = {}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        );
        conn.batch_execute(&sql).map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug)]
struct PgSession;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for PgSession {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        // Durable commits, stated rather than assumed from the server's configuration.
        conn.batch_execute("SET synchronous_commit = on; SET TIME ZONE 'UTC';").map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The database handle shared by the whole process (cheap to clone).
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool, WriteLock),
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
    pub fn connect(
        url: &str,
        pool_size: u32,
        busy_timeout_ms: u32,
        connect_timeout: Duration,
    ) -> Result<Db, StoreError> {
        let timeout = connect_timeout;
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = Pool::builder()
                .max_size(pool_size.max(1))
                .connection_timeout(timeout)
                .connection_customizer(Box::new(PgSession))
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
                .max_size(pool_size.max(1))
                .connection_timeout(timeout)
                .connection_customizer(Box::new(SqlitePragmas { busy_timeout_ms }))
                .build(ConnectionManager::<SqliteConnection>::new(path))
                .map_err(|e| StoreError::Connect(e.to_string()))?;
            Ok(Db::Sqlite(pool, Arc::new(Mutex::new(()))))
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
            Db::Sqlite(p, lock) => DbConn::Sqlite(p.get()?, lock.clone()),
            Db::Postgres(p) => DbConn::Postgres(p.get()?),
        })
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.get()?;
        let applied = match &mut conn {
            DbConn::Sqlite(c, _) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
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

    /// Readiness probe: a trivial query round trip.
    pub fn ping(&self) -> Result<(), StoreError> {
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
