//! Contracts reloaded on a running gateway: over HTTP (audited, refused whole when any file is
//! broken), a partner added live, and across processes (`ebond contracts reload` reaches every
//! process on the database; `SIGHUP` reloads one).

use crate::helpers::{Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A copy of the example contracts that a test may change.
pub fn copy_contracts(to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    to.to_path_buf()
}

/// Rewrites `partner`'s `contract_version`.
pub fn set_version(dir: &Path, partner: &str, version: &str) {
    let file = dir.join(format!("{partner}.toml"));
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().find(|l| l.starts_with("contract_version")).expect("a contract_version line").to_string();
    std::fs::write(&file, text.replacen(&line, &format!("contract_version = \"{version}\""), 1)).unwrap();
}

/// A fourth partner that may create tickets.
pub const GLOBEX: &str = r#"
[partner]
id = "globex"
name = "Globex field service"
contract_version = "1.0.0"

[[fields]]
pointer = "/job_id"
canonical = "partner_ticket_id"
type = "string"
required_on_create = true

[[fields]]
pointer = "/summary"
canonical = "short_description"
type = "string"
max_length = 160
required_on_create = true

[access]
create = true
write = ["partner_ticket_id", "short_description"]
read = ["partner_ticket_id", "short_description"]
"#;

fn version_of(partners: &Value, id: &str) -> Option<String> {
    partners
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| p["contract_version"].as_str().unwrap_or("").to_string())
}

async fn reload_over_http(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_contracts(&tmp.path().join("contracts"));
    let d2 = dir.clone();
    let app = TestApp::spawn_with(backend, move |s| {
        s.contracts_dir = d2;
        s.database.signal_poll_ms = 20;
        s.database.heartbeat_ms = 200;
    })
    .await;
    let admin = app.token(None).await;
    let (status, partners, _) = app.send_json(Method::GET, "/admin/partners", &admin, &Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(version_of(&partners, "servicenow").as_deref(), Some("1.0.0"));
    let snow = partners.as_array().unwrap().iter().find(|p| p["id"] == "servicenow").unwrap();
    assert_eq!(snow["file_sha256"].as_str().unwrap().len(), 64, "{snow}");

    // A partner token may not reload.
    let partner = app.token(Some("servicenow")).await;
    let (status, body, _) = app.send_json(Method::POST, "/admin/contracts/reload", &partner, &Value::Null).await;
    assert_eq!(status, 403, "{body}");

    // Nothing changed: a reload says so.
    let (status, same, _) = app.send_json(Method::POST, "/admin/contracts/reload", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["changed"], false, "{same}");

    // A new version and a new partner, live.
    set_version(&dir, "servicenow", "1.1.0");
    std::fs::write(dir.join("globex.toml"), GLOBEX).unwrap();
    let (status, _, _) = app.send_json(Method::GET, "/partners/globex/openapi.json", &admin, &Value::Null).await;
    assert_eq!(status, 404, "not yet loaded");
    let (status, done, _) = app.send_json(Method::POST, "/admin/contracts/reload", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["changed"], true, "{done}");
    let change = |id: &str| done["partners"].as_array().unwrap().iter().find(|p| p["partner"] == id).cloned().unwrap();
    assert_eq!(change("servicenow")["change"], "changed", "{done}");
    assert_eq!(change("servicenow")["previous_version"], "1.0.0");
    assert_eq!(change("servicenow")["contract_version"], "1.1.0");
    assert_eq!(change("globex")["change"], "added");
    assert_eq!(change("enovia")["change"], "unchanged");
    // This process is on the roll and acted on the reload.
    assert_eq!(done["in_step"], true, "{done}");
    assert!(done["processes"].as_array().unwrap().iter().any(|p| p["contracts_sha256"] == done["sha256"]), "{done}");

    let (_, partners, _) = app.send_json(Method::GET, "/admin/partners", &admin, &Value::Null).await;
    assert_eq!(version_of(&partners, "servicenow").as_deref(), Some("1.1.0"));
    let (status, doc, _) = app.send_json(Method::GET, "/partners/servicenow/openapi.json", &admin, &Value::Null).await;
    assert_eq!((status, doc["info"]["version"].as_str()), (200, Some("1.1.0")), "the document follows the swap");
    let (status, doc, _) = app.send_json(Method::GET, "/partners/globex/openapi.json", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{doc}");

    // The partner added live works at once: a token and a ticket.
    let globex = app.token(Some("globex")).await;
    let (status, created, _) = app
        .send_json(Method::POST, "/tickets", &globex, &json!({"job_id": "GX-1", "summary": "Replace the badge reader"}))
        .await;
    assert_eq!(status, 201, "{created}");

    // A broken file refuses the whole folder; every error is listed; what is in force stays.
    let file = dir.join("enovia.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n[partner_typo]\nx = 1\n")).unwrap();
    set_version(&dir, "servicenow", "1.2.0");
    std::fs::write(dir.join("broken.toml"), "[partner\nid = ").unwrap();
    let (status, refused, headers) = app.send_json(Method::POST, "/admin/contracts/reload", &admin, &Value::Null).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(refused["code"], "contracts-invalid");
    let errors = refused["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["file"].as_str().unwrap().ends_with("enovia.toml")), "{refused}");
    assert!(errors.iter().any(|e| e["file"].as_str().unwrap().ends_with("broken.toml")), "{refused}");
    assert!(errors.iter().all(|e| e["line"].as_u64().is_some() && e["detail"].is_string()), "{refused}");
    let (_, partners, _) = app.send_json(Method::GET, "/admin/partners", &admin, &Value::Null).await;
    assert_eq!(version_of(&partners, "servicenow").as_deref(), Some("1.1.0"), "the old registry stays");

    // Both reload requests are in the audit log, with the operator.
    let (_, audit, _) = app.send_json(Method::GET, "/admin/transactions?limit=50", &admin, &Value::Null).await;
    let reloads: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["path"].as_str().is_some_and(|p| p.ends_with("/admin/contracts/reload")))
        .collect();
    assert!(reloads.iter().any(|t| t["status"] == 422 && t["result"] == "rejected"), "{audit}");
    assert!(
        reloads.iter().any(|t| t["status"] == 200 && t["partner"].as_str().unwrap_or("").starts_with("operator:")),
        "{audit}"
    );

    // What is loaded, here and on the roll.
    let (status, view, _) = app.send_json(Method::GET, "/admin/contracts", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["sha256"], done["sha256"]);
    assert!(view["partners"].as_array().unwrap().iter().any(|p| p["partner"] == "globex"));
}

crate::per_backend!(reload_over_http_is_atomic_audited_and_refused_whole, super::reload_over_http);

async fn versions_at(http: &reqwest::Client, base: &str, token: &str) -> Value {
    http.get(format!("{base}/api/ebond/v1/admin/partners"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the gateway at `base` enforces `version` for servicenow.
async fn wait_version(http: &reqwest::Client, base: &str, token: &str, version: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = version_of(&versions_at(http, base, token).await, "servicenow");
        if now.as_deref() == Some(version) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{base} still enforces {now:?}, not {version}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn reload_across_processes(backend: Backend) {
    use crate::processes::{database, ebond, free_port, gateway_env, token_of, wait_healthy, Proc};
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_contracts(&tmp.path().join("contracts"));
    let (database_url, _pg) = database(backend, tmp.path()).await;
    let http = reqwest::Client::new();
    let mut gateways = Vec::new();
    let mut env = Default::default();
    for _ in 0..2 {
        let port = free_port();
        let mut e = gateway_env(&dir, &tmp.path().join("data"), &database_url, port);
        e.insert("EBOND_OUTBOX_IN_PROCESS".into(), "false".into());
        e.insert("EBOND_DATABASE_SIGNAL_POLL_MS".into(), "20".into());
        e.insert("EBOND_DATABASE_HEARTBEAT_MS".into(), "200".into());
        let child = Proc(ebond(&["serve"], &e).spawn().unwrap());
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&http, &base).await;
        gateways.push((child, base));
        env = e;
    }
    let out = ebond(&["admin", "credentials", "issue", "--json"], &env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token_of(&http, &gateways[0].1, &cred).await;

    // SIGHUP reloads the process it is sent to, and only that one.
    set_version(&dir, "servicenow", "1.1.0");
    let pid = gateways[0].0 .0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_version(&http, &gateways[0].1, &token, "1.1.0").await;
    assert_eq!(version_of(&versions_at(&http, &gateways[1].1, &token).await, "servicenow").as_deref(), Some("1.0.0"));

    // A broken folder: the CLI refuses before any process sees it.
    std::fs::write(dir.join("broken.toml"), "[partner]\nid = \"x\"\nnope = 1\n").unwrap();
    let out = ebond(&["contracts", "reload", "--wait", "5"], &env).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml") && stderr.contains("nothing was reloaded"), "{stderr}");
    std::fs::remove_file(dir.join("broken.toml")).unwrap();

    // The CLI reaches every process through the database and shows what each enforces.
    set_version(&dir, "servicenow", "1.2.0");
    let out = ebond(&["contracts", "reload", "--wait", "10"], &env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("reloaded: ").count(), 2, "{stdout}");
    for (_, base) in &gateways {
        wait_version(&http, base, &token, "1.2.0").await;
    }
}

crate::per_backend!(cli_reload_reaches_every_process_and_sighup_one, super::reload_across_processes);
