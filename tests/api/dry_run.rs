//! Dry runs: `Prefer: return=dry-run` or `?dry_run=true` on the ticket endpoints, and `ebond
//! contracts try`, answer what a write would do — changes, derived values, the transition, events,
//! each partner's push as it would receive it, or the refusal — and write nothing but the audit
//! row that says a dry run was made.

use crate::helpers::{servicenow_incident, Backend, TestApp};
use crate::security::cli;
use serde_json::{json, Value};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &Value,
    prefer: bool,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = app.http.request(method, app.api(path)).bearer_auth(token).json(body);
    if prefer {
        r = r.header("Prefer", "return=dry-run");
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

async fn dry_runs_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (snow, admin) = (app.token(Some("servicenow")).await, app.token(None).await);

    // A create, tried: what it would answer, and Acme's create as Acme would receive it.
    let mut incident = servicenow_incident("INC0000700");
    incident["assignment_group"] = json!("Acme L2");
    let (status, report, headers) = send(&app, reqwest::Method::POST, "/tickets", &snow, &incident, true).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(headers["preference-applied"], "return=dry-run");
    assert_eq!((report["dry_run"].as_bool(), report["outcome"].as_str()), (Some(true), Some("accepted")), "{report}");
    assert_eq!(report["status"], 201);
    assert_eq!(report["events"], json!(["created"]));
    assert_eq!(report["changes"]["short_description"]["to"], "Email delivery delayed");
    assert!(
        report["derived"].as_array().unwrap().contains(&json!("priority")),
        "priority from impact × urgency: {report}"
    );
    // A partner learns that another party would be told, not who or what it reads.
    assert_eq!(
        (report["pushes"].as_array().map(Vec::len), report["other_pushes"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert!(!report.to_string().contains("acme"), "{report}");
    // Nothing was written.
    let (status, _, _) = app.get("/tickets/INC0000700", &snow).await;
    assert_eq!(status, 404, "no ticket");

    // The real create, then an update tried with ?dry_run=true.
    let (status, created) = app.post("/tickets", &snow, &servicenow_incident("INC0000701")).await;
    assert_eq!(status, 201, "{created}");
    let (status, report, _) = send(
        &app,
        reqwest::Method::PATCH,
        "/tickets/INC0000701?dry_run=true",
        &snow,
        &json!({"state": "2", "urgency": "3"}),
        false,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcome"], "accepted", "{report}");
    let t = &report["transition"];
    assert_eq!((t["from"].as_str(), t["to"].as_str()), (Some("1"), Some("2")), "ServiceNow's values: {report}");
    assert_eq!((t["from_canonical"].as_str(), t["to_canonical"].as_str()), (Some("new"), Some("in_progress")));
    assert!(report["events"].as_array().unwrap().contains(&json!("state_changed")), "{report}");
    assert_eq!(report["changes"]["urgency"], json!({"from": 1, "to": 3}));
    assert!(report["derived"].as_array().unwrap().contains(&json!("priority")), "{report}");
    assert_eq!(report["answer"]["version"], 2, "what the write would answer");
    let (_, view, _) = app.get("/tickets/INC0000701", &snow).await;
    assert_eq!(view["version"], 1, "nothing was written: {view}");
    assert_eq!(view["fields"]["state"], "1");

    // A refusal, tried: reported with the problem the write would get.
    let (status, report, _) =
        send(&app, reqwest::Method::PATCH, "/tickets/INC0000701", &snow, &json!({"state": "7"}), true).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["outcome"].as_str(), report["status"].as_u64()), (Some("refused"), Some(422)), "{report}");
    assert_eq!(report["problem"]["code"], "invalid-transition");
    let (status, report, _) =
        send(&app, reqwest::Method::PATCH, "/tickets/INC0000701", &snow, &json!({"nonsense": 1}), true).await;
    assert_eq!((status, report["outcome"].as_str()), (200, Some("refused")), "{report}");
    assert_eq!(report["problem"]["code"], "validation-failed", "{report}");

    // Each dry run is in the audit log as one; no ticket change is.
    let (_, page, _) = app.get("/admin/transactions?partner=servicenow&limit=50", &admin).await;
    let results: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["method"] != "GET")
        .map(|t| {
            let codes = t["error_codes"].as_array().is_some_and(|c| !c.is_empty());
            (t["result"].as_str().unwrap(), if codes { "codes" } else { "" })
        })
        .collect();
    assert_eq!(results.iter().filter(|(r, _)| *r == "dry_run").count(), 4, "{page}");
    assert!(results.contains(&("dry_run", "codes")), "a refused dry run keeps the codes: {page}");
    assert_eq!(results.iter().filter(|(r, _)| *r == "accepted").count(), 1, "only the real create: {page}");
    assert_eq!(app.outbox_rows(created["number"].as_str().unwrap()).await.len(), 0, "no push queued by a dry run");
}
crate::per_backend!(dry_run_over_http_writes_nothing, super::dry_runs_over_http);

async fn contracts_try_from_the_cli(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let snow = app.token(Some("servicenow")).await;
    let (status, _) = app.post("/tickets", &snow, &servicenow_incident("INC0000710")).await;
    assert_eq!(status, 201);
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, v: Value| {
        let p = tmp.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    };
    let create = file("create.json", servicenow_incident("INC0000711"));
    let (ok, out, err) = cli(&app, &["contracts", "try", "servicenow", &create], None);
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["outcome"].as_str(), report["status"].as_u64()), (Some("accepted"), Some(201)), "{report}");
    let mut acme_group = servicenow_incident("INC0000712");
    acme_group["assignment_group"] = json!("Acme L2");
    let grouped = file("grouped.json", acme_group);
    let (ok, out, err) = cli(&app, &["contracts", "try", "servicenow", &grouped], None);
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let acme =
        report["pushes"].as_array().unwrap().iter().find(|p| p["partner"] == "acme-msp").expect("a push to Acme");
    assert_eq!((acme["method"].as_str(), acme["creates"].as_bool()), (Some("POST"), Some(true)), "{acme}");
    assert_eq!(acme["body"]["queue"], "Acme L2", "the operator sees the body Acme would receive");
    assert_eq!(acme["body"]["summary"], "Email delivery delayed");

    let resolve = file("resolve.json", json!({"state": "6"}));
    let (ok, out, _) = cli(&app, &["contracts", "try", "servicenow", &resolve, "--from", "2"], None);
    assert!(!ok, "resolving needs the close fields");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["problem"]["code"], "missing-required-fields", "{report}");
    let resolve = file(
        "resolve2.json",
        json!({"state": "6", "close_code": "Solution provided", "close_notes": "Cleared the queue"}),
    );
    let (ok, out, err) = cli(&app, &["contracts", "try", "servicenow", &resolve, "--from", "in_progress"], None);
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["transition"]["to"], "6", "{report}");
    assert!(report["events"].as_array().unwrap().contains(&json!("resolved")), "{report}");

    let update = file("update.json", json!({"short_description": "Mail delayed for everyone"}));
    let (ok, out, err) = cli(&app, &["contracts", "try", "servicenow", &update, "--update", "INC0000710"], None);
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["changes"]["short_description"]["from"], "Email delivery delayed", "{report}");
    let (_, view, _) = app.get("/tickets/INC0000710", &snow).await;
    assert_eq!(view["fields"]["short_description"], "Email delivery delayed", "nothing written");
    let (_, view, _) = app.get("/tickets/INC0000711", &snow).await;
    assert!(view.get("number").is_none(), "nothing created: {view}");

    let (ok, _, err) = cli(&app, &["contracts", "try", "nobody", &update], None);
    assert!(!ok && err.contains("no contract for `nobody`"), "{err}");
    let (ok, _, err) = cli(&app, &["contracts", "try", "servicenow", &update, "--from", "limbo"], None);
    assert!(!ok, "{err}");
}
crate::per_backend!(contracts_try_runs_a_payload_as_a_dry_run, super::contracts_try_from_the_cli);
