//! Pull sync against a stateful fake ServiceNow (a real HTTP server): incremental windows over
//! several pages with records arriving mid-run, refused records kept with their errors, 429 with
//! `Retry-After`, one run per partner across processes.

use crate::helpers::{Backend, TestApp};
use crate::table_fake::{at, TableFake};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A gateway whose only partner is the fake ServiceNow (pages of `batch`, the given overlap).
pub async fn gateway(
    backend: Backend,
    fake: &TableFake,
    batch: u32,
    overlap: &str,
    tweak: impl FnOnce(&mut ebond::config::Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    fake.write_contracts(dir.path(), batch, overlap);
    let contracts = dir.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| {
        crate::helpers::delivering(s, contracts);
        tweak(s);
    })
    .await;
    (app, dir)
}

/// Starts a pull through the admin API and waits for it to end; the finished run.
pub async fn pull(app: &TestApp, admin: &str) -> Value {
    let (status, body) = app.post("/admin/sync/servicenow", admin, &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let id = body["run"].as_i64().unwrap();
    let run = wait_run(app, admin, &format!("/admin/sync/runs/{id}")).await;
    // The run as an operator reads it (`cargo test … -- --nocapture`).
    println!(
        "pull run {id}: {} from {} to watermark {}: {}",
        run["status"], run["since"], run["watermark"], run["counts"]
    );
    run
}

pub async fn wait_run(app: &TestApp, admin: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body, _) = app.get(path, admin).await;
        assert_eq!(status, 200, "{body}");
        let run = if body.get("run").is_some() { &body["run"] } else { &body };
        if run["status"] != "running" {
            return body;
        }
        assert!(Instant::now() < deadline, "run did not finish: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ticket_versions(app: &TestApp, token: &str) -> Vec<(String, i64)> {
    let (status, body, _) = app.get("/tickets?limit=100", token).await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(String, i64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["partner_ticket_id"].as_str().unwrap().to_string(), t["version"].as_i64().unwrap()))
        .collect();
    out.sort();
    out
}

async fn incremental_pull_over_pages(backend: Backend) {
    let fake = TableFake::start().await;
    for (i, n) in ["INC0000001", "INC0000002", "INC0000003", "INC0000004", "INC0000005"].iter().enumerate() {
        fake.plant(n, 10 * i as i64, json!({}));
    }
    // While the run reads, two incidents arrive: one with the newest change time (it lands on a
    // later page of this run), and one committed late with an older time than what the run had
    // already read when it arrived (only the next run's overlap finds it).
    fake.before_list(|n, rows| {
        if n == 2 {
            rows.push(crate::table_fake::incident("INC0000006", 100));
        }
        if n == 3 {
            rows.push(crate::table_fake::incident("INC0000007", 95));
        }
    });
    let (app, _dir) = gateway(backend, &fake, 2, "60s", |_| {}).await;
    let admin = app.token(None).await;
    let first = pull(&app, &admin).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["counts"]["applied"], 6, "{first}");
    assert_eq!(first["counts"]["rejected"], 0, "{first}");
    assert!(first["counts"]["pages"].as_u64().unwrap() >= 3, "{first}");
    assert_eq!(
        first["watermark"],
        json!(ebond::util::ms_to_rfc3339(
            chrono::NaiveDateTime::parse_from_str(&at(100), crate::table_fake::FORMAT)
                .unwrap()
                .and_utc()
                .timestamp_millis()
        ))
    );
    let snow = app.token(Some("servicenow")).await;
    let seen: Vec<String> = ticket_versions(&app, &snow).await.into_iter().map(|(p, _)| p).collect();
    assert!(!seen.contains(&"INC0000007".to_string()), "the late record is not in this window: {seen:?}");

    // Later pages asked from the last change time read, not a bare offset.
    let lists = fake.lists();
    assert!(
        lists[1].contains(&format!("sys_updated_on%3E%3D{}", at(10).replace(' ', "%20").replace(':', "%3A"))),
        "{lists:?}"
    );
    assert!(lists[1].ends_with("sysparm_offset=1"), "{lists:?}");

    // The next run starts an overlap before the watermark: it finds the late record, and what
    // it reads again changes nothing.
    fake.before_list(|_, _| {});
    let second = pull(&app, &admin).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["counts"]["applied"], 1, "{second}");
    assert!(second["counts"]["unchanged"].as_u64().unwrap() >= 1, "{second}");
    let third = pull(&app, &admin).await;
    assert_eq!(third["counts"]["applied"], 0, "{third}");

    // Seven tickets, each created once and never rewritten.
    let versions = ticket_versions(&app, &snow).await;
    assert_eq!(versions.len(), 7, "{versions:?}");
    assert!(versions.iter().all(|(_, v)| *v == 1), "{versions:?}");

    // A change at the partner is applied as its write, once.
    fake.edit("INC0000003", 200, json!({"short_description": "Core switch down", "state": "2"}));
    let fourth = pull(&app, &admin).await;
    assert_eq!(fourth["counts"]["applied"], 1, "{fourth}");
    let (_, t, _) = app.get("/tickets/INC0000003", &snow).await;
    assert_eq!(
        (t["fields"]["short_description"].as_str(), t["fields"]["state"].as_str(), t["version"].as_i64()),
        (Some("Core switch down"), Some("2"), Some(2)),
        "{t}"
    );

    // Status shows the watermark and the lag; the audit trail names the run.
    let (_, status, _) = app.get("/admin/sync/status", &admin).await;
    assert_eq!(status[0]["partner"], "servicenow");
    assert!(status[0]["lag_seconds"].as_f64().unwrap() > 0.0, "{status}");
    assert_eq!(status[0]["last_run"]["id"], fourth["id"]);
    let (_, started, _) = app.get("/admin/transactions?partner=operator:1", &admin).await;
    assert!(
        started["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "POST" && r["path"] == "/api/ebond/v1/admin/sync/servicenow" && r["status"] == 202),
        "operators' runs are audited: {started}"
    );
    let (_, log, _) = app.get("/admin/transactions?partner=servicenow", &admin).await;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "PULL"
                && r["path"].as_str().unwrap().ends_with(&format!("/sync/runs/{}", fourth["id"]))),
        "{log}"
    );
}
crate::per_backend!(incremental_pull_over_pages_test, super::incremental_pull_over_pages);

async fn refused_records_are_kept_with_their_errors(backend: Backend) {
    let fake = TableFake::start().await;
    fake.plant("INC0000001", 0, json!({}));
    fake.plant("INC0000002", 1, json!({"impact": "9", "short_description": ""}));
    fake.plant("BAD-1", 2, json!({}));
    let (app, _dir) = gateway(backend, &fake, 10, "60s", |_| {}).await;
    let admin = app.token(None).await;
    let run = pull(&app, &admin).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!((run["counts"]["applied"].as_u64(), run["counts"]["rejected"].as_u64()), (Some(1), Some(2)), "{run}");
    let errors = run["errors"].as_array().unwrap();
    let bad = errors.iter().find(|e| e["partner_ticket_id"] == "INC0000002").expect("INC0000002 kept");
    let codes: Vec<(&str, &str)> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert!(codes.contains(&("impact", "enum")), "{codes:?}");
    assert!(codes.contains(&("short_description", "required")), "{codes:?}");
    assert_eq!(bad["record_sha256"].as_str().unwrap().len(), 64);
    let other = errors.iter().find(|e| e["partner_ticket_id"] == "BAD-1").expect("BAD-1 kept");
    assert_eq!(other["errors"][0]["code"], "pattern", "{other}");
    // The list of runs carries them too; the transaction log has the refusals.
    let (_, runs, _) = app.get("/admin/sync/runs?partner=servicenow", &admin).await;
    assert_eq!(runs["items"][0]["errors"].as_array().unwrap().len(), 2, "{runs}");
    let (_, log, _) = app.get("/admin/transactions?partner=servicenow&result=rejected", &admin).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 2, "{log}");
    // Fixed at the partner, the record is applied by the next run.
    fake.edit("INC0000002", 3, json!({"impact": "1", "short_description": "Fixed"}));
    let again = pull(&app, &admin).await;
    assert_eq!(again["counts"]["applied"], 1, "{again}");
}
crate::per_backend!(refused_records_are_kept_with_their_errors_test, super::refused_records_are_kept_with_their_errors);

async fn throttled_pages_wait_for_retry_after(backend: Backend) {
    let fake = TableFake::start().await;
    fake.plant("INC0000001", 0, json!({}));
    fake.script_list(
        wiremock::ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({"error": {"message": "Rate limit exceeded"}})),
    );
    let (app, _dir) = gateway(backend, &fake, 10, "60s", |_| {}).await;
    let admin = app.token(None).await;
    let started = Instant::now();
    let run = pull(&app, &admin).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["applied"], 1, "{run}");
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After was not honoured: {:?}", started.elapsed());
    assert_eq!(fake.lists().len(), 2, "one throttled request, one retry");

    // A partner that keeps failing ends the run failed, and the watermark stays.
    for _ in 0..4 {
        fake.script_list(wiremock::ResponseTemplate::new(503));
    }
    let failed = pull(&app, &admin).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("503"), "{failed}");
    let (_, status, _) = app.get("/admin/sync/status", &admin).await;
    assert_eq!(status[0]["watermark"], run["watermark"], "{status}");
}
crate::per_backend!(throttled_pages_wait_for_retry_after_test, super::throttled_pages_wait_for_retry_after);

/// Runs the `ebond` binary on the test gateway's database and contracts.
fn cli(app: &TestApp, contracts: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(args)
        .env("EBOND_DATABASE_URL", app.settings.effective_database_url())
        .env("EBOND_DATA_DIR", &app.settings.data_dir)
        .env("EBOND_CONTRACTS_DIR", contracts)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

async fn one_run_per_partner_across_processes(backend: Backend) {
    let fake = TableFake::start().await;
    for i in 0..4 {
        fake.plant(&format!("INC000000{i}"), i, json!({}));
    }
    // Slow pages keep the first run going while another process tries.
    fake.before_list(|_, _| std::thread::sleep(Duration::from_millis(400)));
    let (app, dir) = gateway(backend, &fake, 1, "60s", |_| {}).await;
    let admin = app.token(None).await;
    let (status, body) = app.post("/admin/sync/servicenow", &admin, &json!({})).await;
    assert_eq!(status, 202, "{body}");
    // The same gateway refuses a second run…
    let (status, again) = app.post("/admin/sync/servicenow", &admin, &json!({})).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("sync-running")), "{again}");
    assert_eq!(again["run"], body["run"]);
    // … and so does another process (the CLI) on the same database.
    let out = cli(&app, dir.path(), &["sync", "run", "servicenow"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("already going on"), "{stderr}");
    let done = wait_run(&app, &admin, &format!("/admin/sync/runs/{}", body["run"])).await;
    assert_eq!(done["counts"]["applied"], 4, "{done}");
    // Once it ended, the other process may run it (nothing new: all unchanged).
    fake.before_list(|_, _| {});
    let out = cli(&app, dir.path(), &["sync", "run", "servicenow", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((run["counts"]["applied"].as_u64(), run["counts"]["unchanged"].as_u64()), (Some(0), Some(4)), "{run}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("records 4"), "progress is shown");
}
crate::per_backend!(one_run_per_partner_across_processes_test, super::one_run_per_partner_across_processes);

async fn pulls_are_refused_for_partners_without_pull(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(None).await;
    let (status, body) = app.post("/admin/sync/acme-msp", &admin, &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("pull-not-configured")), "{body}");
    let (status, body) = app.post("/admin/sync/nobody", &admin, &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("partner-not-found")), "{body}");
    let (status, body, _) = app.get("/admin/sync/runs/999", &admin).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("run-not-found")), "{body}");
    let partner = app.token(Some("servicenow")).await;
    let (status, _) = app.post("/admin/sync/servicenow", &partner, &json!({})).await;
    assert_eq!(status, 403);
}
crate::per_backend!(
    pulls_are_refused_for_partners_without_pull_test,
    super::pulls_are_refused_for_partners_without_pull
);

/// A fake FieldOps: jobs listed by change time with cursor paging, one job by id, HTTP Basic.
struct FieldOps {
    jobs: std::sync::Mutex<Vec<Value>>,
    auth: std::sync::Mutex<Vec<String>>,
}

struct FieldOpsResponder(std::sync::Arc<FieldOps>);

impl wiremock::Respond for FieldOpsResponder {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let f = &self.0;
        let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        f.auth.lock().unwrap().push(auth.clone());
        // ebond:field-secret
        if auth != "Basic ZWJvbmQ6ZmllbGQtc2VjcmV0" {
            return wiremock::ResponseTemplate::new(401);
        }
        let path = request.url.path();
        let q = |name: &str| request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let mut jobs = f.jobs.lock().unwrap().clone();
        if let Some(id) = path.strip_prefix("/v2/jobs/") {
            return match jobs.into_iter().find(|j| j["job_id"] == id) {
                Some(j) => wiremock::ResponseTemplate::new(200).set_body_json(j),
                None => wiremock::ResponseTemplate::new(404),
            };
        }
        let since = q("changed_since").unwrap_or_default();
        jobs.retain(|j| j["updated_at"].as_str().unwrap() >= since.as_str());
        jobs.sort_by(|a, b| a["updated_at"].as_str().cmp(&b["updated_at"].as_str()));
        let from: usize = q("cursor").and_then(|c| c.strip_prefix('c').and_then(|n| n.parse().ok())).unwrap_or(0);
        let limit: usize = q("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
        let page: Vec<Value> = jobs.iter().skip(from).take(limit).cloned().collect();
        let next = (from + limit < jobs.len()).then(|| format!("c{}", from + limit));
        wiremock::ResponseTemplate::new(200).set_body_json(json!({"jobs": page, "next_cursor": next}))
    }
}

fn job(id: &str, minute: u32, status: &str, technician: &str) -> Value {
    json!({"job_id": id, "summary": format!("Replace PSU at site {id}"), "status": status, "technician": technician,
           "eta": "2026-12-03T10:00:00Z", "report": null, "updated_at": format!("2026-12-01T10:{minute:02}:00Z"), "site": "Lyon"})
}

async fn poll_only_partner_with_cursor_paging(backend: Backend) {
    let fieldops = std::sync::Arc::new(FieldOps { jobs: Default::default(), auth: Default::default() });
    *fieldops.jobs.lock().unwrap() = vec![
        job("FO-000001", 1, "open", ""),
        job("FO-000002", 2, "dispatched", "Kim"),
        job("FO-000003", 3, "open", ""),
    ];
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(FieldOpsResponder(fieldops.clone()))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let src = crate::helpers::repo_path("contracts");
    std::fs::copy(src.join("workflow.toml"), dir.path().join("workflow.toml")).unwrap();
    std::fs::write(dir.path().join("password"), "field-secret").unwrap();
    let text = std::fs::read_to_string(src.join("fieldops.toml"))
        .unwrap()
        .replace("https://api.fieldops.example", &server.uri())
        .replace("env:EBOND_FIELDOPS_PASSWORD", &format!("file:{}", dir.path().join("password").display()))
        .replace("batch_size = 200", "batch_size = 2");
    std::fs::write(dir.path().join("fieldops.toml"), text).unwrap();
    let contracts = dir.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| crate::helpers::delivering(s, contracts)).await;
    let admin = app.token(None).await;
    let (status, body) = app.post("/admin/sync/fieldops", &admin, &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let run = wait_run(&app, &admin, &format!("/admin/sync/runs/{}", body["run"])).await;
    assert_eq!(
        (run["status"].as_str(), run["counts"]["applied"].as_u64(), run["counts"]["pages"].as_u64()),
        (Some("succeeded"), Some(3), Some(2)),
        "{run}"
    );
    assert!(fieldops.auth.lock().unwrap().iter().all(|a| a.starts_with("Basic ")), "every read authenticated");

    // The technician changes at FieldOps: the next pull applies it (the cursor starts over).
    fieldops.jobs.lock().unwrap()[0] = job("FO-000001", 9, "dispatched", "Noor");
    let (_, body) = app.post("/admin/sync/fieldops", &admin, &json!({})).await;
    let run = wait_run(&app, &admin, &format!("/admin/sync/runs/{}", body["run"])).await;
    assert_eq!(run["counts"]["applied"], 1, "{run}");

    // Reconciliation reads single jobs: FieldOps owns its fields, so its value wins.
    fieldops.jobs.lock().unwrap()[1]["technician"] = json!("Ada");
    let (_, body) = app.post("/admin/reconcile", &admin, &json!({"partner": "fieldops"})).await;
    let report = wait_run(&app, &admin, &format!("/admin/reconcile/runs/{}", body["runs"][0]["run"])).await;
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{report}");
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["action"].as_str()),
        (Some("partner_ahead"), Some("applied")),
        "{report}"
    );
    assert_eq!(items[0]["fields"][0], json!({"field": "assigned_to", "hub": "Kim", "partner": "Ada"}));
}
crate::per_backend!(poll_only_partner_with_cursor_paging_test, super::poll_only_partner_with_cursor_paging);

async fn a_list_that_does_not_move_on_stops_the_run(backend: Backend) {
    let fake = TableFake::start().await;
    for i in 0..5 {
        fake.plant(&format!("INC000000{i}"), i, json!({}));
    }
    fake.ignore_window();
    let (app, _dir) = gateway(backend, &fake, 2, "60s", |_| {}).await;
    let admin = app.token(None).await;
    let run = pull(&app, &admin).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["message"].as_str().unwrap().contains("does not move on"), "{run}");
    assert!(fake.lists().len() <= 3, "stopped at once: {:?}", fake.lists());
    let (_, status, _) = app.get("/admin/sync/status", &admin).await;
    assert_eq!(status[0]["watermark"], Value::Null, "a failed run moves no watermark: {status}");
}
crate::per_backend!(a_list_that_does_not_move_on_stops_the_run_test, super::a_list_that_does_not_move_on_stops_the_run);

/// Kills the process when the test ends, however it ends.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve_runs_scheduled_pulls(backend: Backend) {
    let fake = TableFake::start().await;
    fake.plant("INC0000001", 1, json!({}));
    fake.plant("INC0000002", 2, json!({}));
    let (app, dir) = gateway(backend, &fake, 10, "60s", |_| {}).await;
    let text = std::fs::read_to_string(dir.path().join("servicenow.toml"))
        .unwrap()
        .replace("interval = \"5m\"", "interval = \"1s\"");
    std::fs::write(dir.path().join("servicenow.toml"), text).unwrap();
    // `ebond serve` as its own process on the test gateway's database, with its scheduler.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _serving = Serving(
        std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
            .arg("serve")
            .env("EBOND_BIND", format!("127.0.0.1:{port}"))
            .env("EBOND_DATABASE_URL", app.settings.effective_database_url())
            .env("EBOND_DATA_DIR", &app.settings.data_dir)
            .env("EBOND_CONTRACTS_DIR", dir.path())
            .env("EBOND_OUTBOX_IN_PROCESS", "false")
            .env("EBOND_SYNC_TICK_MS", "100")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin = app.token(None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Two scheduled runs: the first creates both tickets, the next finds them unchanged.
    loop {
        let (_, runs, _) = app.get("/admin/sync/runs?partner=servicenow", &admin).await;
        let done: Vec<&Value> =
            runs["items"].as_array().unwrap().iter().filter(|r| r["status"] == "succeeded").collect();
        if done.len() >= 2 {
            assert!(done.iter().all(|r| r["started_by"] == "schedule"), "{runs}");
            let oldest = done.last().unwrap();
            assert_eq!(oldest["counts"]["applied"], 2, "{runs}");
            assert_eq!(done[0]["counts"]["applied"], 0, "{runs}");
            break;
        }
        assert!(Instant::now() < deadline, "no scheduled runs: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
crate::per_backend!(serve_runs_scheduled_pulls_test, super::serve_runs_scheduled_pulls);
