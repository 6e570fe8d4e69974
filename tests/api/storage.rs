//! Storage settings as the database sees them: durable commits by default, the fast mode only
//! when asked for, on both backends.

use crate::helpers::{Backend, TestApp};
use diesel::prelude::*;
use diesel::sql_types::Text;
use ebond::config::Durability;
use ebond::store::DbConn;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// SQLite's `synchronous` (2 = FULL, 1 = NORMAL) or PostgreSQL's `synchronous_commit`, read on
/// a pooled connection of the running gateway.
async fn commit_durability(app: &TestApp) -> String {
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("conn");
        let setting = match &mut conn {
            DbConn::Sqlite(c) => diesel::sql_query("SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous")
                .get_result::<Setting>(&mut **c),
            DbConn::Postgres(c) => diesel::sql_query("SELECT current_setting('synchronous_commit') AS value")
                .get_result::<Setting>(&mut **c),
        };
        setting.expect("read the setting").value
    })
    .await
    .expect("blocking task")
}

async fn durable_by_default_fast_on_request(backend: Backend) {
    let (full, fast) = match backend {
        Backend::Sqlite => ("2", "1"),
        Backend::Postgres => ("on", "off"),
    };
    let app = TestApp::spawn(backend).await;
    assert_eq!(commit_durability(&app).await, full);
    let app = TestApp::spawn_with(backend, |s| s.database.durability = Durability::Fast).await;
    assert_eq!(commit_durability(&app).await, fast);
    // The gateway works the same in fast mode.
    let token = app.token(Some("servicenow")).await;
    let resp = app
        .http
        .post(app.api("/tickets"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"number": "INC0000042", "short_description": "fast mode", "impact": "3", "urgency": "3"}))
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status(), 201);
}

crate::per_backend!(durability, super::durable_by_default_fast_on_request);
