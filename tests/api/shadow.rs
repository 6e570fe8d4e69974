//! Shadow mode: the next version of a partner's contract (`<partner>.shadow.toml`) is evaluated
//! on the partner's live requests while the current one is enforced; what it would do
//! differently is counted and listed until it is promoted (it becomes the live contract, in
//! every process, without a restart) or dropped.

use crate::helpers::{servicenow_incident, Backend, TestApp};
use crate::reload::{copy_contracts, set_version};
use crate::security::cli;
use reqwest::Method;
use serde_json::{json, Value};

async fn wait_differing(app: &TestApp, admin: &str, n: i64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, report, _) =
            app.send_json(Method::GET, "/admin/partners/servicenow/shadow", admin, &Value::Null).await;
        assert_eq!(status, 200, "{report}");
        if report["differing"] == n {
            return report;
        }
        assert!(std::time::Instant::now() < deadline, "still {report}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn shadow_then_promote(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_contracts(&tmp.path().join("contracts"));
    let d2 = dir.clone();
    let app = TestApp::spawn_with(backend, move |s| {
        s.contracts_dir = d2;
        s.database.signal_poll_ms = 20;
        s.database.heartbeat_ms = 200;
    })
    .await;
    let (admin, snow) = (app.token(None).await, app.token(Some("servicenow")).await);
    let (status, body, _) = app.send_json(Method::GET, "/admin/partners/servicenow/shadow", &admin, &Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not-found")), "no shadow yet: {body}");

    // Version 2 would allow only short summaries.
    let live = std::fs::read_to_string(dir.join("servicenow.toml")).unwrap();
    let next = live.replacen("max_length = 160", "max_length = 12", 1);
    std::fs::write(dir.join("servicenow.shadow.toml"), &next).unwrap();
    set_version(&dir, "servicenow.shadow", "2.0.0");
    let (status, done, _) = app.send_json(Method::POST, "/admin/contracts/reload", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{done}");

    // Live traffic: enforced by 1.0.0, evaluated against 2.0.0.
    let (status, body) = app.post("/tickets", &snow, &servicenow_incident("INC0000800")).await;
    assert_eq!(status, 201, "the live contract accepts it: {body}");
    let mut short = servicenow_incident("INC0000801");
    short["short_description"] = json!("Mail down");
    let (status, _) = app.post("/tickets", &snow, &short).await;
    assert_eq!(status, 201);
    let report = wait_differing(&app, &admin, 1).await;
    assert_eq!((report["live_version"].as_str(), report["shadow_version"].as_str()), (Some("1.0.0"), Some("2.0.0")));
    assert_eq!(report["evaluated_here"], 2, "{report}");
    assert_eq!(report["by_kind"], json!({"would_refuse": 1}), "{report}");
    let item = &report["items"][0];
    assert_eq!(item["kind"], "would_refuse");
    assert_eq!(item["detail"]["shadow"]["code"], "validation-failed", "{item}");
    assert!(item["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    // Promoted over HTTP: 2.0.0 is enforced at once, without a restart.
    let (status, promoted, _) =
        app.send_json(Method::POST, "/admin/partners/servicenow/shadow/promote", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!((promoted["action"].as_str(), promoted["contract_version"].as_str()), (Some("promoted"), Some("2.0.0")));
    assert!(dir.join("servicenow.toml.previous").exists() && !dir.join("servicenow.shadow.toml").exists());
    let (status, body) = app.post("/tickets", &snow, &servicenow_incident("INC0000802")).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("validation-failed")), "{body}");
    let (status, _, _) = app.send_json(Method::GET, "/admin/partners/servicenow/shadow", &admin, &Value::Null).await;
    assert_eq!(status, 404, "no shadow any more");

    // A new shadow, dropped from the CLI.
    std::fs::write(dir.join("servicenow.shadow.toml"), &live).unwrap();
    let (ok, out, err) = cli(&app, &["contracts", "reload", "--wait", "5"], None);
    assert!(ok, "{out}{err}");
    let (status, _, _) = app.send_json(Method::GET, "/admin/partners/servicenow/shadow", &admin, &Value::Null).await;
    assert_eq!(status, 200);
    let (ok, out, err) = cli(&app, &["contracts", "drop-shadow", "servicenow", "--wait", "5"], None);
    assert!(ok, "{out}{err}");
    assert!(dir.join("servicenow.shadow.toml.dropped").exists());
    let (status, _, _) = app.send_json(Method::GET, "/admin/partners/servicenow/shadow", &admin, &Value::Null).await;
    assert_eq!(status, 404, "dropped");

    // A shadow must shadow a live partner.
    std::fs::write(dir.join("nobody.shadow.toml"), live.replace("id = \"servicenow\"", "id = \"nobody\"")).unwrap();
    let (status, refused, _) = app.send_json(Method::POST, "/admin/contracts/reload", &admin, &Value::Null).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["errors"][0]["detail"].as_str().unwrap().contains("no live contract has that id"), "{refused}");
}
crate::per_backend!(shadow_evaluated_then_promoted_without_restart, super::shadow_then_promote);
