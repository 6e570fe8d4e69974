//! `store/schema.rs` and the migrated database agree — every table, column, type and
//! nullability — and both kinds of database end with the same indexes, however old the
//! database was when it was migrated.

use crate::helpers::{repo_path, Backend, TestApp};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ebond::store::DbConn;
use std::collections::BTreeMap;

/// table → column → (diesel type without `Nullable`, nullable), read from `schema.rs`.
type Columns = BTreeMap<String, BTreeMap<String, (String, bool)>>;

fn declared() -> Columns {
    let text = std::fs::read_to_string(repo_path("src/store/schema.rs")).expect("schema.rs");
    let mut tables = Columns::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some((name, _)) = line.split_once(" (").filter(|_| line.ends_with(") {")) {
            current = Some(name.to_string());
            tables.insert(name.to_string(), BTreeMap::new());
        } else if line == "}" {
            current = None;
        } else if let (Some(t), Some((col, ty))) = (&current, line.trim_end_matches(',').split_once(" -> ")) {
            let nullable = ty.starts_with("Nullable<");
            let ty = ty.trim_start_matches("Nullable<").trim_end_matches('>').to_string();
            tables.get_mut(t).unwrap().insert(col.to_string(), (ty, nullable));
        }
    }
    assert!(tables.len() > 10, "schema.rs parsed: {tables:?}");
    tables
}

/// Does the database's column type `db` hold what diesel's `ty` reads?
fn type_matches(backend: Backend, ty: &str, db: &str) -> bool {
    let db = db.to_ascii_lowercase();
    match (backend, ty) {
        (Backend::Sqlite, "BigInt") => db == "bigint" || db == "integer",
        (Backend::Sqlite, "Integer") => db == "integer",
        (Backend::Sqlite, "Bool") => db == "boolean",
        (Backend::Sqlite, "Text") => db == "text",
        (Backend::Postgres, "BigInt") => db == "bigint",
        (Backend::Postgres, "Integer") => db == "integer",
        (Backend::Postgres, "Bool") => db == "boolean",
        (Backend::Postgres, "Text") => db == "text",
        _ => false,
    }
}

#[derive(QueryableByName, Debug)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = BigInt)]
    nullable: i64,
}

#[derive(QueryableByName, Debug)]
struct Index {
    #[diesel(sql_type = Text)]
    name: String,
}

const SQLITE_COLUMNS: &str = "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
     CASE WHEN p.\"notnull\" = 1 OR p.pk = 1 THEN 0 ELSE 1 END AS nullable \
     FROM sqlite_master m JOIN pragma_table_info(m.name) p \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'";
const PG_COLUMNS: &str = "SELECT table_name::text AS table_name, column_name::text AS column_name, \
     data_type::text AS data_type, CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END::bigint AS nullable \
     FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'";
const SQLITE_INDEXES: &str = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name";
const PG_INDEXES: &str = "SELECT indexname::text AS name FROM pg_indexes WHERE schemaname = 'public' \
     AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key' ORDER BY indexname";

fn query<T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static>(
    conn: &mut DbConn,
    sqlite: &str,
    pg: &str,
) -> Vec<T> {
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sqlite).load(&mut **c),
        DbConn::Postgres(c) => diesel::sql_query(pg).load(&mut **c),
    }
    .expect("introspection query")
}

fn execute(conn: &mut DbConn, sql: &str) -> usize {
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sql).execute(&mut **c),
        DbConn::Postgres(c) => diesel::sql_query(sql).execute(&mut **c),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The indexes every migrated database has (besides primary keys and unique constraints).
const INDEXES: [&str; 30] = [
    "access_tokens_expiry",
    "auth_events_client",
    "auth_events_source",
    "conflicts_partner",
    "conflicts_status",
    "conflicts_ticket",
    "console_sessions_expiry",
    "delivery_attempts_outbox",
    "delivery_attempts_partner_time",
    "inbound_webhooks_age",
    "journal_partner_entry",
    "journal_ticket",
    "outbox_dead",
    "outbox_dead_partner",
    "outbox_delivered_at",
    "outbox_due",
    "outbox_partner_ticket",
    "outbox_unsettled",
    "reconcile_items_run",
    "reconcile_items_ticket",
    "refresh_tokens_credential",
    "shadow_diffs_partner",
    "sync_run_errors_run",
    "sync_runs_partner",
    "tickets_created_at",
    "tickets_sys_id",
    "tickets_updated_at",
    "transactions_partner",
    "transactions_ticket",
    "xrefs_ticket",
];

async fn schema_matches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db.clone();
    let (columns, indexes) = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("conn");
        let columns: Vec<Column> = query(&mut conn, SQLITE_COLUMNS, PG_COLUMNS);
        let indexes: Vec<Index> = query(&mut conn, SQLITE_INDEXES, PG_INDEXES);
        (columns, indexes)
    })
    .await
    .unwrap();
    let mut found = Columns::new();
    for c in &columns {
        found
            .entry(c.table_name.clone())
            .or_default()
            .insert(c.column_name.clone(), (c.data_type.clone(), c.nullable == 1));
    }
    let declared = declared();
    assert_eq!(
        declared.keys().collect::<Vec<_>>(),
        found.keys().collect::<Vec<_>>(),
        "tables in schema.rs and in the migrated database"
    );
    let mut problems = Vec::new();
    for (table, cols) in &declared {
        let have = &found[table];
        if cols.keys().ne(have.keys()) {
            problems.push(format!("{table}: schema.rs has {:?}, the database {:?}", cols.keys(), have.keys()));
            continue;
        }
        for (col, (ty, nullable)) in cols {
            let (db_ty, db_nullable) = &have[col];
            if !type_matches(backend, ty, db_ty) {
                problems.push(format!("{table}.{col}: schema.rs {ty}, database {db_ty}"));
            }
            if nullable != db_nullable {
                problems.push(format!("{table}.{col}: schema.rs nullable={nullable}, database nullable={db_nullable}"));
            }
        }
    }
    assert!(problems.is_empty(), "schema.rs and the {backend:?} database disagree:\n{}", problems.join("\n"));
    let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).filter(|n| !n.starts_with("sqlite_")).collect();
    assert_eq!(names, INDEXES, "indexes on {backend:?}");
}

/// A database migrated before `…000004_outbox_scale` gained its `DROP INDEX outbox_open`
/// (simulated: the index put back, migration 5 marked as not applied) ends like a new one.
async fn an_old_database_reaches_the_same_schema(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.db.clone();
    let indexes = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("conn");
        let _ = execute(&mut conn, "CREATE INDEX outbox_open ON outbox (id) WHERE status IN ('pending', 'in_flight')");
        let n = execute(&mut conn, "DELETE FROM __diesel_schema_migrations WHERE version = '20261201000005'");
        assert_eq!(n, 1, "migration 5 marked as not applied");
        drop(conn);
        let applied = db.migrate().expect("migrate");
        assert_eq!(applied, vec!["20261201000005".to_string()]);
        let mut conn = db.get().expect("conn");
        query::<Index>(&mut conn, SQLITE_INDEXES, PG_INDEXES)
    })
    .await
    .unwrap();
    assert!(indexes.iter().all(|i| i.name != "outbox_open"), "{indexes:?}");
}

crate::per_backend!(schema_rs_matches_the_migrated_database, super::schema_matches);
crate::per_backend!(old_databases_are_brought_to_the_same_schema, super::an_old_database_reaches_the_same_schema);

/// Runs the `ebond` binary on `database_url`; (success, stdout, stderr).
fn ebond(database_url: &str, data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(args)
        .env("EBOND_DATABASE_URL", database_url)
        .env("EBOND_DATA_DIR", data_dir)
        .env("EBOND_CONTRACTS_DIR", repo_path("contracts"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ebond");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Only `serve`, `worker` and `migrate` change the schema; `migrate` says which database it
/// migrated. Every other command refuses a database that is missing or behind.
async fn only_migrate_serve_and_worker_migrate(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let (url, _guard) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", tmp.path().join("new/ebond.db").display()), None),
        Backend::Postgres => {
            let admin = std::env::var("EBOND_TEST_DATABASE_URL").unwrap();
            let (url, guard) = crate::helpers::pg_database(&admin);
            (url, Some(guard))
        }
    };
    for args in [&["partner", "list"][..], &["outbox", "list"][..], &["partner", "credentials", "issue", "enovia"][..]]
    {
        let (ok, _, err) = ebond(&url, tmp.path(), args);
        assert!(!ok, "{args:?} on a database that is not migrated");
        assert!(err.contains("ebond migrate"), "{args:?} says what to do: {err}");
    }
    if backend == Backend::Sqlite {
        assert!(!tmp.path().join("new").exists(), "a reading command creates no database");
    }
    let (ok, out, err) = ebond(&url, tmp.path(), &["migrate"]);
    assert!(ok, "{err}");
    let kind = if backend == Backend::Sqlite { "SQLite" } else { "PostgreSQL" };
    assert!(out.starts_with(&format!("migrated the {kind} database ")), "{out}");
    assert!(out.contains("applied 13 migrations"), "{out}");
    assert!(!out.contains("password") && !out.contains("postgres://"), "no URL with credentials: {out}");
    let (ok, out, err) = ebond(&url, tmp.path(), &["migrate"]);
    assert!(ok && out.contains("is up to date"), "{out} {err}");
    let (ok, out, err) = ebond(&url, tmp.path(), &["partner", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("servicenow"), "{out}");
}

crate::per_backend!(reading_commands_do_not_migrate, super::only_migrate_serve_and_worker_migrate);
