//! What a new user ran into while onboarding, each fixed: the outbox list shows what is not yet
//! delivered, one delivering process per SQLite database, a missing PostgreSQL database named
//! with `createdb`, logs without colour codes in files and pipes, credentials that can be listed
//! and (for operators) revoked, and `/metrics` and the partner documents behind a token or a
//! network.

use crate::helpers::{servicenow_incident, Backend, TestApp};
use crate::processes::{database, ebond, free_port, gateway_env, wait_healthy, Proc};
use crate::security::cli;
use serde_json::{json, Value};

async fn outbox_list_shows_what_is_undelivered(backend: Backend) {
    // Delivery is off in TestApp: the creation's pushes stay pending.
    let app = TestApp::spawn(backend).await;
    let snow = app.token(Some("servicenow")).await;
    let (status, body) = app.post("/tickets", &snow, &servicenow_incident("INC0000900")).await;
    assert_eq!(status, 201, "{body}");
    // Acme subscribes to its own group's tickets.
    let (status, body) = app.patch("/tickets/INC0000900", &snow, &json!({"assignment_group": "Acme L2"})).await;
    assert_eq!(status, 200, "{body}");
    let (ok, out, err) = cli(&app, &["outbox", "list"], None);
    assert!(ok, "{err}");
    assert!(out.lines().skip(1).any(|l| l.contains("pending")), "pending rows listed by default:\n{out}");
    assert!(err.contains("(undelivered)"), "{err}");
    let (ok, out, _) = cli(&app, &["outbox", "list", "--status", "dead"], None);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "only the header: no dead letters\n{out}");
    let (ok, _, err) = cli(&app, &["outbox", "list", "--status", "bogus"], None);
    assert!(!ok);
    assert!(err.contains("--status `bogus`") && err.contains("undelivered"), "{err}");
}
crate::per_backend!(outbox_list_defaults_to_undelivered, super::outbox_list_shows_what_is_undelivered);

async fn credentials_listed_and_operators_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (snow_id, _) = app.credentials(Some("servicenow")).await;
    let (ok, out, err) = cli(&app, &["partner", "credentials", "list", "servicenow"], None);
    assert!(ok, "{err}");
    assert!(out.contains(&snow_id) && out.contains("tickets"), "{out}");
    assert!(out.lines().next().unwrap().contains("CREATED"), "{out}");
    let (ok, _, err) = cli(&app, &["partner", "credentials", "list", "nobody"], None);
    assert!(!ok && err.contains("nobody"), "{err}");

    let (ok, out, err) = cli(&app, &["admin", "credentials", "issue", "--json"], None);
    assert!(ok, "{err}");
    let cred: Value = serde_json::from_str(&out).unwrap();
    let id = cred["client_id"].as_str().unwrap();
    let (ok, out, _) = cli(&app, &["admin", "credentials", "list", "--json"], None);
    assert!(ok);
    let listed: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mine = listed.iter().find(|c| c["client_id"] == id).expect("listed");
    assert_eq!(mine["scope"], "admin");
    assert!(mine["revoked_at"].is_null());
    assert!(!out.contains(cred["client_secret"].as_str().unwrap()), "never a secret");
    assert!(!listed.iter().any(|c| c["client_id"] == snow_id.as_str()), "partners' credentials are not operators'");

    let token = |secret: &str| {
        app.http
            .post(app.api("/oauth/token"))
            .basic_auth(id, Some(secret.to_string()))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let secret = cred["client_secret"].as_str().unwrap();
    assert_eq!(token(secret).await.unwrap().status(), 200);
    let (ok, out, err) = cli(&app, &["admin", "credentials", "revoke", id], None);
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 credential"), "{out}");
    assert_eq!(token(secret).await.unwrap().status(), 401, "revoked");
    let (ok, _, err) = cli(&app, &["admin", "credentials", "revoke", id], None);
    assert!(!ok && err.contains("no live credential"), "{err}");
}
crate::per_backend!(credentials_list_and_operator_revoke, super::credentials_listed_and_operators_revoked);

async fn ops_endpoints_behind_token_and_network(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.security.metrics_require_token = true;
        s.security.documents_require_token = true;
    })
    .await;
    let (admin, snow) = (app.token(None).await, app.token(Some("servicenow")).await);
    let get = |path: &str, token: Option<&str>| {
        let mut r = app.http.get(app.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
    assert_eq!(get("/metrics", Some(&snow)).await.unwrap().status(), 403);
    let ok = get("/metrics", Some(&admin)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("ebond_"));
    let doc = "/api/ebond/v1/partners/servicenow/openapi.json";
    let resp = get(doc, None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(get(doc, Some(&snow)).await.unwrap().status(), 200, "a partner reads its own document");
    assert_eq!(get(doc, Some(&admin)).await.unwrap().status(), 200);
    let other = get("/api/ebond/v1/partners/enovia/openapi.json", Some(&snow)).await.unwrap();
    assert_eq!(other.status(), 404, "another partner's document is as if there were none");
    assert_eq!(
        get("/api/ebond/v1/openapi.json", None).await.unwrap().status(),
        200,
        "the generic one names no partner"
    );
    assert_eq!(
        get("/api/ebond/v1/partners/servicenow/contract", None).await.unwrap().status(),
        401,
        "nor the contract"
    );
    assert_eq!(get("/api/ebond/v1/partners/servicenow/contract", Some(&snow)).await.unwrap().status(), 200);
    drop(app);

    let app = TestApp::spawn_with(backend, |s| s.security.ops_networks = vec!["10.0.0.0/8".into()]).await;
    for path in ["/metrics", "/api/ebond/v1/openapi.json", "/api/ebond/v1/partners/servicenow/openapi.json"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path} from outside security.ops_networks");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "source-not-allowed");
    }
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200, "probes stay open");
}
crate::per_backend!(metrics_and_documents_behind_token_or_network, super::ops_endpoints_behind_token_and_network);

/// A second `ebond serve` on the same SQLite file refuses to deliver too, and serves the API
/// with `outbox.in_process = false`.
#[tokio::test]
async fn second_sqlite_gateway_refuses_to_deliver() {
    let tmp = tempfile::tempdir().unwrap();
    let contracts = crate::reload::copy_contracts(&tmp.path().join("contracts"));
    let (url, _) = database(Backend::Sqlite, tmp.path()).await;
    let http = reqwest::Client::new();
    let port = free_port();
    let env = gateway_env(&contracts, &tmp.path().join("data"), &url, port);
    let _first = Proc(ebond(&["serve"], &env).spawn().unwrap());
    wait_healthy(&http, &format!("http://127.0.0.1:{port}")).await;

    let second = gateway_env(&contracts, &tmp.path().join("data"), &url, free_port());
    let out = ebond(&["serve"], &second).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already delivers") && err.contains("EBOND_OUTBOX_IN_PROCESS=false"), "{err}");

    let port = free_port();
    let mut api_only = gateway_env(&contracts, &tmp.path().join("data"), &url, port);
    api_only.insert("EBOND_OUTBOX_IN_PROCESS".into(), "false".into());
    let _second = Proc(ebond(&["serve"], &api_only).spawn().unwrap());
    wait_healthy(&http, &format!("http://127.0.0.1:{port}")).await;
}

/// Logs to a pipe (or a file) carry no terminal colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let contracts = crate::reload::copy_contracts(&tmp.path().join("contracts"));
    let url = format!("sqlite://{}", tmp.path().join("ebond.db").display());
    let env = gateway_env(&contracts, &tmp.path().join("data"), &url, 0);
    let out = ebond(&["migrate"], &env).env("RUST_LOG", "info").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("migrated"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in {err:?}");
}

/// A PostgreSQL database that does not exist is one clear error naming `createdb`.
#[test]
#[cfg_attr(not(ebond_pg_tests), ignore = "EBOND_TEST_DATABASE_URL is not set: PostgreSQL variant skipped")]
fn missing_postgres_database_names_createdb() {
    let admin = std::env::var("EBOND_TEST_DATABASE_URL").unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    let url = format!("{base}/ebond_never_created_{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let contracts = crate::reload::copy_contracts(&tmp.path().join("contracts"));
    let env = gateway_env(&contracts, &tmp.path().join("data"), &url, 0);
    let out = ebond(&["migrate"], &env).env("RUST_LOG", "info").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("createdb") && err.contains("ebond_never_created_"), "{err}");
    assert!(err.lines().count() <= 4, "one error, not a pool's retries:\n{err}");
}

/// A push carrying nothing the partner reads is not sent: Acme reads work notes but not
/// comments.
async fn pushes_only_what_the_partner_reads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let snow = app.token(Some("servicenow")).await;
    let (_, created) = app.post("/tickets", &snow, &servicenow_incident("INC0000910")).await;
    let hub = created["number"].as_str().unwrap().to_string();
    let (status, body) = app.patch("/tickets/INC0000910", &snow, &json!({"assignment_group": "Acme L2"})).await;
    assert_eq!(status, 200, "{body}");
    let acme = |rows: &[ebond::store::models::OutboxRow]| rows.iter().filter(|r| r.partner == "acme-msp").count();
    let before = acme(&app.outbox_rows(&hub).await);
    assert!(before >= 1, "Acme hears of the ticket");
    let (status, body) =
        app.patch("/tickets/INC0000910", &snow, &json!({"comments": "Called the user back, no answer."})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(acme(&app.outbox_rows(&hub).await), before, "a comment alone is nothing Acme can read");
    let (status, body) =
        app.patch("/tickets/INC0000910", &snow, &json!({"work_notes": "Escalating to the network team."})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(acme(&app.outbox_rows(&hub).await), before + 1, "a work note is");
}
crate::per_backend!(no_push_without_a_field_the_partner_reads, super::pushes_only_what_the_partner_reads);

/// `ebond contracts check` looks `db:` secrets up in the database when there is one.
async fn check_finds_db_secrets(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::reload::copy_contracts(&tmp.path().join("contracts"));
    let minimal = include_str!("../fixtures/minimal_contract.toml");
    std::fs::write(
        dir.join("p1.toml"),
        minimal.replace("[access]", "[auth]\nwebhook_secret = \"db:p1-hook\"\n\n[access]"),
    )
    .unwrap();
    let d2 = dir.clone();
    let app = TestApp::spawn_with(backend, move |s| s.contracts_dir = d2).await;
    let file = dir.join("p1.toml").display().to_string();
    let (ok, _, err) = cli(&app, &["contracts", "check", &file], None);
    assert!(!ok);
    assert!(err.contains("[auth] webhook_secret `db:p1-hook`") && err.contains("p1-hook"), "{err}");
    let (ok, _, err) =
        cli(&app, &["partner", "secret", "set", "p1", "p1-hook"], Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&app, &["contracts", "check", &file], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 partner contract OK"), "{out}");
}
crate::per_backend!(contracts_check_reads_db_secrets, super::check_finds_db_secrets);

/// The data-contract document, from the contract in force: Markdown or HTML by `Accept`.
async fn contract_document(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let get = |path: &str, accept: &str| app.http.get(app.api(path)).header("accept", accept.to_string()).send();
    let resp = get("/partners/enovia/contract", "text/html,application/xhtml+xml,*/*;q=0.8").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("<h2>Fields</h2>") && html.contains("<table>") && html.contains("Review"), "{html}");
    let resp = get("/partners/enovia/contract", "text/markdown").await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let md = resp.text().await.unwrap();
    assert!(md.starts_with("# Data contract: ENOVIA"), "{md}");
    assert!(md.contains("| `/data/Estimated End Date` |") || md.contains("`/data/Estimated End Date`"), "{md}");
    assert!(md.contains("Transitions this partner may perform"), "{md}");
    assert!(!md.contains("EBOND_ENOVIA"), "no secret references");
    assert_eq!(get("/partners/enovia/contract?format=pdf", "*/*").await.unwrap().status(), 400);
    assert_eq!(get("/partners/nobody/contract", "*/*").await.unwrap().status(), 404);

    let (ok, out, err) = cli(&app, &["contracts", "doc", "acme-msp"], None);
    assert!(ok, "{err}");
    assert!(out.starts_with("# Data contract: ") && out.contains("`acme-msp`"), "{out}");
    let (ok, out, _) = cli(&app, &["contracts", "doc", "acme-msp", "--format", "html"], None);
    assert!(ok && out.starts_with("<!doctype html>"), "{out}");
}
crate::per_backend!(data_contract_document_in_markdown_and_html, super::contract_document);
