//! The database cut away from a running gateway (PostgreSQL behind a loopback TCP proxy that
//! the test closes, and `pg_terminate_backend` on every connection the gateway holds): while it
//! is away every request is 503 problem+json with `Retry-After`, none is 500; once it is back,
//! the same gateway serves again without a restart. (SQLite is a file inside the process:
//! there is no server to cut away.)

use crate::helpers::{servicenow_incident, Backend, TestApp};
use diesel::prelude::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy on loopback in front of `upstream`. `cut` drops every connection through it
/// and refuses new ones (accepted, then closed at once) until `restore`.
struct Proxy {
    addr: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (o, l) = (open.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Proxy { addr, open, links, accept }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

/// Ends every session on `database` but the caller's, from outside the gateway.
fn terminate_backends(admin_url: &str, database: &str) -> usize {
    #[derive(QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = PgConnection::establish(admin_url).expect("admin connection");
    let killed: Killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<diesel::sql_types::Text, _>(database)
    .get_result(&mut c)
    .expect("terminate");
    killed.n as usize
}

/// (sent while the database was away, status, body, `Retry-After`).
type Answer = (bool, u16, Value, Option<String>);

/// One request of the mix the load sends: a token request, a read, a write.
async fn one_request(app: &TestApp, token: &str, id: &str, secret: &str, i: usize) -> (u16, Value, Option<String>) {
    let resp = match i % 3 {
        0 => app
            .http
            .post(app.api("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
        1 => app.http.get(app.api("/tickets/INC0000401")).bearer_auth(token).send().await.unwrap(),
        _ => app
            .http
            .patch(app.api("/tickets/INC0000401"))
            .bearer_auth(token)
            .json(&json!({"short_description": format!("outage {i}")}))
            .send()
            .await
            .unwrap(),
    };
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(ebond_pg_tests), ignore = "EBOND_TEST_DATABASE_URL is not set: this test needs PostgreSQL")]
async fn a_database_outage_is_503_and_the_gateway_recovers() {
    let admin_url = std::env::var("EBOND_TEST_DATABASE_URL").expect("EBOND_TEST_DATABASE_URL");
    let proxy = Proxy::start(authority(&admin_url)).await;
    let via = proxy.addr.to_string();
    let mut database = String::new();
    let app = TestApp::spawn_with(Backend::Postgres, |s| {
        let url = s.effective_database_url();
        database = url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().into();
        s.database_url = url.replacen(&authority(&url), &via, 1).into();
        s.database.pool_size = 8;
        s.database.connect_timeout_ms = 1_000;
    })
    .await;
    let token = app.token(Some("servicenow")).await;
    let (id, secret) = app.credentials(Some("servicenow")).await;
    let (status, body) = app.post("/tickets", &token, &servicenow_incident("INC0000401")).await;
    assert_eq!(status, 201, "{body}");
    let (operator, operator_secret) = app.credentials(None).await;
    let console = crate::console::sign_in(&app, &operator, &operator_secret).await;
    assert!(terminate_backends(&admin_url, &database) > 0, "the gateway's sessions are found by database name");

    // Under load (eight clients), the database goes away: the proxy drops every connection
    // and the server ends every session the gateway had.
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let away = Arc::new(AtomicBool::new(false));
    let statuses: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let clients: Vec<_> = (0..8)
        .map(|k| {
            let (app, token, id, secret) = (app.clone(), token.clone(), id.clone(), secret.clone());
            let (stop, away, statuses) = (stop.clone(), away.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut i = k;
                while !stop.load(Ordering::SeqCst) {
                    // Sent after the cut was complete (not in flight across it).
                    let after_cut = away.load(Ordering::SeqCst);
                    let (status, body, retry) = one_request(&app, &token, &id, &secret, i).await;
                    statuses.lock().unwrap().push((after_cut && away.load(Ordering::SeqCst), status, body, retry));
                    i += 8;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // First the sessions die under the gateway's pooled connections (the server restarting,
    // an operator killing them), then the network to the server goes.
    let killed = tokio::task::spawn_blocking({
        let (admin_url, database) = (admin_url.clone(), database.clone());
        move || terminate_backends(&admin_url, &database)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut();
    away.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The console too: a page the database cannot answer is 503 with Retry-After, and says
    // so without the driver's words.
    let (status, page, headers) = console.get(&app, "/console/dead-letters").await;
    assert_eq!(status, 503, "{page}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(page.contains("the database is unavailable"), "{page}");
    assert!(
        !page.contains(&via) && !page.contains("refused") && !page.contains("server closed"),
        "no driver text: {page}"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    away.store(false, Ordering::SeqCst);
    proxy.restore();

    // Back: the same gateway answers again, within a few seconds and without a restart.
    let back = Instant::now();
    loop {
        let (status, body) = app.patch("/tickets/INC0000401", &token, &json!({"description": "back"})).await;
        if status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(15), "no recovery: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let statuses = statuses.lock().unwrap();
    let during: Vec<_> = statuses.iter().filter(|s| s.0).collect();
    assert!(during.len() >= 4, "requests were sent while the database was away: {}", during.len());
    for (_, status, body, retry) in &during {
        assert_eq!(*status, 503, "while the database is away: {body}");
        assert!(retry.is_some(), "503 carries Retry-After: {body}");
        assert!(body["status"] == 503 || body["error"] == "temporarily_unavailable", "{body}");
    }
    let errors: Vec<_> = statuses.iter().filter(|s| s.1 >= 500 && s.1 != 503).collect();
    assert!(errors.is_empty(), "no 500s at any time, even across the cut: {errors:?}");
    let ok = statuses.iter().filter(|s| s.1 < 300).count();
    assert!(ok > 0, "the load was served before and after the outage");
    eprintln!("outage: {killed} sessions terminated, {} requests while away, {ok} served", during.len());
}
