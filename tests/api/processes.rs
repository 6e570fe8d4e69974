//! The gateway as separate processes: killed with SIGKILL mid-delivery and restarted, and two
//! `ebond worker` processes sharing one PostgreSQL queue.

use crate::fakes::{Partners, Received};
use crate::helpers::{pg_database, servicenow_incident, Backend, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::ResponseTemplate;

/// A child process killed when dropped (a failing test leaves nothing running).
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn ebond(args: &[&str], env: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebond"));
    cmd.args(args).envs(env).env("RUST_LOG", "warn").stdin(Stdio::null());
    cmd
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn gateway_env(contracts: &Path, data: &Path, database_url: &str, port: u16) -> HashMap<String, String> {
    [
        ("EBOND_BIND", format!("127.0.0.1:{port}")),
        ("EBOND_DATABASE_URL", database_url.to_string()),
        ("EBOND_CONTRACTS_DIR", contracts.display().to_string()),
        ("EBOND_DATA_DIR", data.display().to_string()),
        ("EBOND_AUTH_PBKDF2_ITERATIONS", "1000".into()),
        ("EBOND_OUTBOX_POLL_INTERVAL_MS", "20".into()),
        ("EBOND_OUTBOX_LEASE_SECS", "3".into()),
        ("EBOND_OUTBOX_CONNECT_TIMEOUT_MS", "500".into()),
        ("EBOND_OUTBOX_REQUEST_TIMEOUT_MS", "2000".into()),
        ("EBOND_WORKERS", "1".into()),
        // The fake ServiceNow answers deliveries, not Table-API lists: no scheduled pulls here.
        ("EBOND_SYNC_SCHEDULE", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub(crate) async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway at {base} never became ready");
}

/// A fresh database of `backend` (a file in `dir`, or a PostgreSQL database dropped with the
/// guard).
pub(crate) async fn database(backend: Backend, dir: &Path) -> (String, Option<crate::helpers::PgTestDb>) {
    match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("ebond.db").display()), None),
        Backend::Postgres => {
            let admin = std::env::var("EBOND_TEST_DATABASE_URL").unwrap();
            let (url, guard) = tokio::task::spawn_blocking(move || pg_database(&admin)).await.unwrap();
            (url, Some(guard))
        }
    }
}

/// A token for the credential the CLI printed (`--json`), from the gateway at `base`.
pub(crate) async fn token_of(http: &reqwest::Client, base: &str, cred: &Value) -> String {
    let token: Value = http
        .post(format!("{base}/api/ebond/v1/oauth/token"))
        .basic_auth(cred["client_id"].as_str().unwrap(), cred["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"].as_str().unwrap().to_string()
}

/// Collapses immediate repeats of one webhook-id (a redelivery) into one entry.
fn collapse(list: &[Received]) -> Vec<Received> {
    let mut out: Vec<Received> = Vec::new();
    for r in list {
        if out.last().is_none_or(|l| l.header("webhook-id") != r.header("webhook-id")) {
            out.push(r.clone());
        }
    }
    out
}

async fn crash_case(backend: Backend) {
    let partners = Partners::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let contracts = tmp.path().join("contracts");
    partners.write_contracts(&contracts, "[\"200ms\", \"200ms\", \"200ms\", \"200ms\"]");
    let (database_url, _pg) = database(backend, tmp.path()).await;
    let port = free_port();
    let env = gateway_env(&contracts, &tmp.path().join("data"), &database_url, port);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut gateway = Proc(ebond(&["serve"], &env).spawn().unwrap());
    wait_healthy(&http, &base).await;

    // Credentials through the CLI, a token through the API: a newcomer's path.
    let out = ebond(&["partner", "credentials", "issue", "servicenow", "--json"], &env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token_of(&http, &base, &cred).await;

    // Acme answers slowly, so a delivery is in flight when the gateway dies.
    partners.acme.script(
        1_000,
        |_| true,
        ResponseTemplate::new(200)
            .set_body_json(json!({"ticket_number": "ACME-60001"}))
            .set_delay(Duration::from_millis(700)),
    );
    let mut inc = servicenow_incident("INC0000701");
    inc["assignment_group"] = json!("Acme L2");
    let post = http.post(format!("{base}/api/ebond/v1/tickets")).bearer_auth(&token).json(&inc).send().await.unwrap();
    assert_eq!(post.status(), 201);
    for i in 1..=4 {
        let r = http
            .patch(format!("{base}/api/ebond/v1/tickets/INC0000701"))
            .bearer_auth(&token)
            .json(&json!({"short_description": format!("update {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    partners.acme.wait_for(20, "two deliveries started", |r| r.len() >= 2).await;
    gateway.0.kill().unwrap(); // SIGKILL
    gateway.0.wait().unwrap();
    let at_crash = partners.acme.received().len();

    let _gateway = Proc(ebond(&["serve"], &env).spawn().unwrap());
    wait_healthy(&http, &base).await;
    let got = partners
        .acme
        .wait_for(30, "every event after the restart", |r| {
            let ids: std::collections::HashSet<&str> = r.iter().map(|x| x.header("webhook-id")).collect();
            ids.len() >= 5
        })
        .await;
    assert!(got.len() > at_crash);
    let collapsed = collapse(&got);
    let summaries: Vec<&str> = collapsed.iter().map(|r| r.body["summary"].as_str().unwrap_or("")).collect();
    assert_eq!(
        summaries,
        ["Email delivery delayed", "update 1", "update 2", "update 3", "update 4"],
        "in order, each at least once"
    );
    assert!(got.len() > collapsed.len(), "the delivery cut by the crash was made again (same webhook-id)");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        *seen.entry(r.header("webhook-id").to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), 5);
}

crate::per_backend!(crash_mid_delivery_loses_nothing, super::crash_case);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(ebond_pg_tests), ignore = "EBOND_TEST_DATABASE_URL is not set: this test needs PostgreSQL")]
async fn two_workers_on_postgres_never_deliver_twice() {
    let partners = Partners::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let contracts = tmp.path().join("contracts");
    partners.write_contracts(&contracts, "[\"200ms\"]");
    let dir = contracts.clone();
    // The API in this process (not delivering); two worker processes deliver.
    let app = TestApp::spawn_with(Backend::Postgres, |s| {
        s.contracts_dir = dir;
        s.outbox.in_process = false;
    })
    .await;
    let mut env = gateway_env(&contracts, &tmp.path().join("data"), &app.settings.effective_database_url(), 0);
    env.insert("EBOND_OUTBOX_CONCURRENCY".into(), "2".into());
    partners.acme.script(
        10_000,
        |r| r.method == "PUT",
        ResponseTemplate::new(200).set_delay(Duration::from_millis(30)),
    );
    let _w1 = Proc(ebond(&["worker"], &env).spawn().unwrap());
    let _w2 = Proc(ebond(&["worker"], &env).spawn().unwrap());

    let snow = app.token(Some("servicenow")).await;
    for t in 0..12 {
        let n = format!("INC00008{t:02}");
        let mut inc = servicenow_incident(&n);
        inc["assignment_group"] = json!("Acme L2");
        assert_eq!(app.post("/tickets", &snow, &inc).await.0, 201);
        for u in 1..=2 {
            let (s, _) = app
                .patch(&format!("/tickets/{n}"), &snow, &json!({"short_description": format!("{n} update {u}")}))
                .await;
            assert_eq!(s, 200);
        }
    }
    let got = partners.acme.wait_for(40, "36 deliveries", |r| r.len() >= 36).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if partners.acme.received().len() > got.len() { partners.acme.received() } else { got };
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.header("webhook-id").to_string()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 36);
    assert!(per_id.values().all(|n| *n == 1), "a delivery was made twice");
    // Per ticket, in commit order.
    let mut per_ticket: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &got {
        per_ticket
            .entry(r.ticket().to_string())
            .or_default()
            .push(r.body["summary"].as_str().unwrap_or("").to_string());
    }
    for (ticket, list) in &per_ticket {
        assert_eq!(list[0], "Email delivery delayed", "{ticket}");
        assert!(list[1].ends_with("update 1") && list[2].ends_with("update 2"), "{ticket}: {list:?}");
    }
    // Both workers took part.
    let admin = app.token(None).await;
    let mut workers = std::collections::HashSet::new();
    for t in 1..=12 {
        let (_, sync, _) = app.get(&format!("/admin/tickets/EB{t:07}/sync"), &admin).await;
        for row in sync["outbound"]["acme-msp"].as_array().unwrap() {
            for a in row["history"].as_array().unwrap() {
                workers.insert(a["worker"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(workers.len(), 2, "{workers:?}");
}

/// Two `ebond serve` processes on one database, each remembering a token it checked: a
/// revocation through the CLI is refused by both at once (the command waits until every live
/// process has heard it), and each takes its share of the partner's inbound rate limit.
async fn two_gateways_case(backend: Backend) {
    let partners = Partners::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let contracts = tmp.path().join("contracts");
    partners.write_contracts(&contracts, "[\"200ms\"]");
    let (database_url, _pg) = database(backend, tmp.path()).await;
    let http = reqwest::Client::new();
    let mut gateways = Vec::new();
    let mut bases = Vec::new();
    let mut env = HashMap::new();
    for _ in 0..2 {
        let port = free_port();
        env = gateway_env(&contracts, &tmp.path().join("data"), &database_url, port);
        env.insert("EBOND_OUTBOX_IN_PROCESS".into(), "false".into());
        // Short, so both are on the roll soon; long enough that a loaded machine does not
        // drop one from it (three heartbeats missed).
        env.insert("EBOND_DATABASE_HEARTBEAT_MS".into(), "400".into());
        gateways.push(Proc(ebond(&["serve"], &env).spawn().unwrap()));
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&http, &base).await;
        bases.push(base);
    }
    let out = ebond(&["partner", "credentials", "issue", "servicenow", "--json"], &env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token_of(&http, &bases[0], &cred).await;
    let get = |base: &str| http.get(format!("{base}/api/ebond/v1/tickets?limit=1")).bearer_auth(&token).send();
    // Both gateways have checked (and now remember) the token.
    for base in &bases {
        assert_eq!(get(base).await.unwrap().status(), 200);
        assert_eq!(get(base).await.unwrap().status(), 200);
    }
    // Both are on the roll (a few heartbeats): each takes half of ServiceNow's limit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut accepted = 0;
    let burst = std::time::Instant::now();
    for i in 0..700 {
        match get(&bases[i % 2]).await.unwrap().status().as_u16() {
            200 => accepted += 1,
            429 => {}
            s => panic!("unexpected {s}"),
        }
    }
    // A full bucket of 300 each (less the 4 spent above), plus the refill of 10/s in all while
    // the burst lasted (long on a loaded machine), within 10 %.
    let allowed = 596.0 + 10.0 * burst.elapsed().as_secs_f64();
    assert!(
        (accepted as f64) >= allowed * 0.9 && (accepted as f64) <= allowed * 1.1,
        "{accepted} accepted of 600/min across two gateways, {allowed:.0} allowed in {:?}",
        burst.elapsed()
    );

    let out = ebond(&["partner", "credentials", "revoke", "servicenow"], &env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "every process confirmed: {}", String::from_utf8_lossy(&out.stderr));
    for base in &bases {
        assert_eq!(get(base).await.unwrap().status(), 401, "{base} refuses the revoked token at once");
    }
    drop(gateways);
}

crate::per_backend!(two_gateways_share_revocations_and_rate_limits, super::two_gateways_case);
