//! Test harness: the real gateway on a random port against a fresh database (a SQLite file
//! in a temporary folder, or a new PostgreSQL database on the server named by
//! `EBOND_TEST_DATABASE_URL`), talked to over HTTP.

use diesel::prelude::*;
use diesel::Connection;
use ebond::config::Settings;
use ebond::store::tickets::TicketRepo;
use ebond::store::Db;
use ebond::with_conn;
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares a test per backend for an `async fn(Backend)` case that starts what it needs itself
/// (`name::sqlite`, `name::postgres`). The PostgreSQL variant runs when the tests were built
/// with `EBOND_TEST_DATABASE_URL` set, and is reported as ignored, saying why, when not.
#[macro_export]
macro_rules! per_backend {
    ($name:ident, $case:path) => {
        mod $name {
            $crate::per_backend!(@variants $case);
        }
    };
    (@variants $case:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite() {
            $case($crate::helpers::Backend::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(not(ebond_pg_tests), ignore = "EBOND_TEST_DATABASE_URL is not set: PostgreSQL variant skipped")]
        async fn postgres() {
            if std::env::var("EBOND_TEST_DATABASE_URL").is_err() {
                panic!("built for PostgreSQL tests, but EBOND_TEST_DATABASE_URL is not set now");
            }
            $case($crate::helpers::Backend::Postgres).await;
        }
    };
}

/// Declares one test per backend (see [`per_backend!`]) for a body that gets a fresh gateway.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case(backend: $crate::helpers::Backend) {
                let app = $crate::helpers::TestApp::spawn(backend).await;
                ($body)(app).await;
            }

            $crate::per_backend!(@variants case);
        }
    };
}

/// Declares one delivery test per backend: fake partners are started, the example contracts
/// are rewritten to point at them, and the gateway runs its outbox processor with fast timing.
/// `$tweak` adjusts the settings further.
#[macro_export]
macro_rules! delivery_test {
    ($name:ident, $tweak:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case(backend: $crate::helpers::Backend) {
                let partners = $crate::fakes::Partners::start().await;
                let contracts = tempfile::tempdir().unwrap();
                partners.write_contracts(contracts.path(), "[\"100ms\", \"200ms\", \"300ms\"]");
                let dir = contracts.path().to_path_buf();
                let app = $crate::helpers::TestApp::spawn_with(backend, |s| {
                    $crate::helpers::delivering(s, dir);
                    ($tweak)(s);
                })
                .await;
                ($body)(app, partners).await;
            }

            $crate::per_backend!(@variants case);
        }
    };
}

/// Settings for a gateway that delivers to the fake partners, fast.
pub fn delivering(s: &mut Settings, contracts: PathBuf) {
    s.contracts_dir = contracts;
    s.outbox.in_process = true;
    s.outbox.poll_interval_ms = 20;
    s.outbox.lease_secs = 3;
    s.outbox.connect_timeout_ms = 500;
    s.outbox.request_timeout_ms = 1_500;
    s.outbox.breaker_threshold = 1_000;
    s.outbox.alert_interval_secs = 1;
    s.outbox.alert_min_attempts = 1;
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: Db,
    pub settings: Settings,
    // Dropped in this order: stop delivering, then drop the database, then the files.
    _processor: Option<tokio::sync::watch::Sender<bool>>,
    _pg: Option<PgTestDb>,
    _tmp: tempfile::TempDir,
}

/// A throw-away PostgreSQL database, dropped with the test.
pub struct PgTestDb {
    admin_url: String,
    name: String,
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.admin_url) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut c);
        }
    }
}

pub fn pg_database(admin_url: &str) -> (String, PgTestDb) {
    let name = format!("ebond_test_{}", uuid::Uuid::new_v4().simple());
    let mut c = PgConnection::establish(admin_url).expect("connect to EBOND_TEST_DATABASE_URL");
    diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut c).expect("create test database");
    // Replace the database name (last path segment) of the URL.
    let (base, query) = admin_url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((admin_url, None));
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    let mut url = format!("{root}/{name}");
    if let Some(q) = query {
        url = format!("{url}?{q}");
    }
    (url, PgTestDb { admin_url: admin_url.to_string(), name })
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings {
            data_dir: tmp.path().join("data"),
            contracts_dir: repo_path("contracts"),
            bind: "127.0.0.1:0".into(),
            workers: 1,
            ..Default::default()
        };
        settings.database.pool_size = 4;
        settings.database.connect_timeout_ms = 2_000;
        // Fast secret hashing in tests; production keeps the default.
        settings.auth.pbkdf2_iterations = 1_000;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = std::env::var("EBOND_TEST_DATABASE_URL").expect("EBOND_TEST_DATABASE_URL");
                let (url, guard) = tokio::task::spawn_blocking(move || pg_database(&admin)).await.expect("pg setup");
                settings.database_url = url.into();
                Some(guard)
            }
        };
        // Delivery is off unless a test turns it on (the example partners are not reachable).
        settings.outbox.in_process = false;
        tweak(&mut settings);
        let state = ebond::app::state(settings.clone()).expect("gateway state");
        let db = state.db.clone();
        let processor = if settings.outbox.in_process {
            Some(ebond::app::spawn_processor(&state).expect("processor").0)
        } else {
            None
        };
        let listener = TcpListener::bind(&settings.bind).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = ebond::api::server(state, listener).expect("server");
        tokio::spawn(server);
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            db,
            settings,
            _tmp: tmp,
            _pg: pg,
            _processor: processor,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/ebond/v1{path}", self.base)
    }

    /// Issues a credential directly in the store (as `ebond partner credentials issue` does).
    pub async fn credentials(&self, partner: Option<&str>) -> (String, String) {
        let db = self.db.clone();
        let partner = partner.map(str::to_string);
        let iterations = self.settings.auth.pbkdf2_iterations;
        let cred = tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("conn");
            with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, partner.as_deref(), iterations))
        })
        .await
        .expect("join")
        .expect("issue credential");
        (cred.client_id, cred.client_secret)
    }

    /// A bearer token for `partner` (or an operator when `None`) through the token endpoint.
    pub async fn token(&self, partner: Option<&str>) -> String {
        let (id, secret) = self.credentials(partner).await;
        let resp = self
            .http
            .post(self.api("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        assert_eq!(resp.status(), 200, "token endpoint");
        let body: Value = resp.json().await.expect("token json");
        body["access_token"].as_str().expect("access_token").to_string()
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp =
            self.http.request(method, self.api(path)).bearer_auth(token).json(body).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json, headers)
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let (s, b, _) = self.send_json(reqwest::Method::POST, path, token, body).await;
        (s, b)
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let (s, b, _) = self.send_json(reqwest::Method::PATCH, path, token, body).await;
        (s, b)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp = self.http.get(self.api(path)).bearer_auth(token).send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
    }

    /// Every outbox row of ticket `number`, oldest first.
    pub async fn outbox_rows(&self, number: &str) -> Vec<ebond::store::models::OutboxRow> {
        let db = self.db.clone();
        let number = number.to_string();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("conn");
            with_conn!(&mut conn, c => {
                let t = c.ticket_by_number(&number).expect("query").expect("ticket exists");
                c.outbox_of_ticket(t.id).expect("outbox")
            })
        })
        .await
        .expect("join")
    }

    /// `(partner, event)` of every outbox row of ticket `number`, oldest first.
    pub async fn outbox(&self, number: &str) -> Vec<(String, String)> {
        self.outbox_rows(number).await.into_iter().map(|r| (r.partner, r.event)).collect()
    }

    /// Full outbox payloads of ticket `number`.
    pub async fn outbox_payloads(&self, number: &str) -> Vec<Value> {
        self.outbox_rows(number)
            .await
            .into_iter()
            .map(|r| serde_json::from_str(&r.payload).expect("payload json"))
            .collect()
    }

    pub async fn ticket_count(&self) -> i64 {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("conn");
            with_conn!(&mut conn, c => ebond::store::schema::tickets::table.count().get_result::<i64>(c).expect("count"))
        })
        .await
        .expect("join")
    }
}

/// A valid ENOVIA create payload.
pub fn enovia_issue(name: &str) -> Value {
    serde_json::json!({
        "data": {
            "name": name,
            "title": "Press line 3 PLC not reachable from PLM",
            "description": "Design data sync fails since the firmware update.",
            "Priority": "urgent",
            "category": "Hardware",
            "owner": "j.doe",
            "Estimated End Date": "2026-12-01T17:00:00Z",
            "Escalation Required": true
        }
    })
}

/// A valid ServiceNow create payload.
pub fn servicenow_incident(number: &str) -> Value {
    serde_json::json!({
        "number": number,
        "short_description": "Email delivery delayed",
        "description": "Outbound mail queues for 20 minutes.",
        "impact": "2",
        "urgency": "1",
        "state": "1",
        "caller_id": "abel.tuter",
        "category": "network"
    })
}
