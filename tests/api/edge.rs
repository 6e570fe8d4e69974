//! What an outside attack on every control found, each closed: NUL characters (which
//! PostgreSQL cannot store) refused at the edge naming where, with the rejection still audited;
//! an oversized token request answered as RFC 6749 JSON; a token in the query string never
//! readable in the audit trail; duplicate JSON members refused.

use crate::backend_test;
use crate::helpers::{servicenow_incident, TestApp};
use serde_json::{json, Value};

/// The newest audit rows of `partner`, newest first.
async fn audit_rows(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (status, body, _) = app.get(&format!("/admin/transactions?{query}"), admin).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn send_raw(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: &str) -> (u16, Value) {
    let resp = app
        .http
        .request(method, app.api(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

backend_test!(nul_characters_are_refused_at_the_edge_and_audited, |app: TestApp| async move {
    let sn = app.token(Some("servicenow")).await;
    let admin = app.token(None).await;
    let (status, created) = app.post("/tickets", &sn, &servicenow_incident("INC0000101")).await;
    assert_eq!(status, 201, "{created}");

    // In a path id: no such ticket can exist.
    let (status, body, _) = app.get("/tickets/INC%000000101", &sn).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("ticket-not-found")), "{body}");
    let (status, body) = app.patch("/tickets/INC%00", &sn, &json!({"short_description": "x"})).await;
    assert_eq!(status, 404, "{body}");

    // In a JSON value, on create and on update: 400 naming the member.
    let mut incident = servicenow_incident("INC0000102");
    incident["short_description"] = json!("Printer\u{0000}jam");
    let (status, body) = app.post("/tickets", &sn, &incident).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("nul-character")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("`/short_description`"), "{body}");
    let (status, body) = app.patch("/tickets/INC0000101", &sn, &json!({"description": "a\u{0000}b"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("nul-character")), "{body}");
    assert_eq!(app.ticket_count().await, 1, "nothing written");

    // In a work note.
    let (status, body) =
        app.post("/tickets/INC0000101/work-notes", &sn, &json!({"text": "see\u{0000}log", "entry_id": "n1"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("nul-character")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("`/text`"), "{body}");

    // Every one of those rejections is in the audit trail, with its code and, where the path
    // names one, its ticket.
    let rows = audit_rows(&app, &admin, "partner=servicenow&result=rejected").await;
    let codes: Vec<&str> = rows.iter().map(|r| r["error_codes"][0].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["nul-character", "nul-character", "nul-character", "ticket-not-found", "ticket-not-found"],
        "{rows:?}"
    );
    for row in &rows[..2] {
        assert_eq!(row["ticket"], created["number"], "the row names its ticket: {row}");
        assert_eq!(row["status"], 400);
    }
    assert!(rows[2]["ticket"].is_null() && rows[3]["ticket"].is_null(), "{rows:?}");

    // In the token request's client id, by form and by Basic.
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "acme\u{0}"), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("client_id"), "{body}");
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth("acme\u{0}", Some("x"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // In an operator's filter.
    let (status, body, _) = app.get("/admin/transactions?partner=servicenow%00", &admin).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad-query")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("`partner`"), "{body}");
    let (status, _, _) = app.get("/admin/tickets/EB%00/sync", &admin).await;
    assert_eq!(status, 404);
    let (status, _, _) = app.get("/admin/auth-events?client_id=%00", &admin).await;
    assert_eq!(status, 400);
});

backend_test!(duplicate_json_members_are_refused_naming_them, |app: TestApp| async move {
    let enovia = app.token(Some("enovia")).await;
    let body = r#"{"data": {"name": "ISS-0000201", "title": "Looks harmless", "title": "Something else",
                   "Priority": "high", "category": "Hardware"}}"#;
    let (status, problem) = send_raw(&app, reqwest::Method::POST, "/tickets", &enovia, body).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("duplicate-key")), "{problem}");
    assert_eq!(problem["type"], "urn:ebond:problem:duplicate-key");
    assert!(problem["detail"].as_str().unwrap().contains("`/data/title`"), "{problem}");
    assert_eq!(app.ticket_count().await, 0);
    // The same body without the duplicate is accepted.
    let body = body.replace(r#""title": "Something else","#, "");
    let (status, created) = send_raw(&app, reqwest::Method::POST, "/tickets", &enovia, &body).await;
    assert_eq!(status, 201, "{created}");
    let (status, problem) =
        send_raw(&app, reqwest::Method::PATCH, "/tickets/ISS-0000201", &enovia, r#"{"data": {}, "data": {}}"#).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("duplicate-key")), "{problem}");
});

backend_test!(an_oversized_token_request_is_rfc6749_json, |app: TestApp| async move {
    let limit = app.settings.limits.max_body_bytes;
    let padding = "x".repeat(limit + 1);
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "a"), ("client_secret", padding.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert_eq!(body["status"], 413, "{body}");
    assert_eq!(body["type"], "urn:ebond:problem:payload-too-large", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains(&limit.to_string()), "{body}");
});

backend_test!(a_token_in_the_query_string_never_reaches_the_audit_trail, |app: TestApp| async move {
    let sn = app.token(Some("servicenow")).await;
    let admin = app.token(None).await;
    // Sent where it does not belong: refused, and not kept.
    let resp = app.http.get(app.api(&format!("/tickets?access_token={sn}&limit=5"))).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let rows = audit_rows(&app, &admin, "result=rejected").await;
    let path = rows[0]["path"].as_str().unwrap();
    assert_eq!(path, "/api/ebond/v1/tickets?access_token=***&limit=5", "{rows:?}");
    let all = serde_json::to_string(&audit_rows(&app, &admin, "limit=1000").await).unwrap();
    assert!(!all.contains(&sn), "the token is not in the audit trail");
});

/// The example contracts, with ENOVIA's ticket-id pattern dropped (ids of any shape).
fn contracts_with_free_ids() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(crate::helpers::repo_path("contracts")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().replace("pattern = \"^ISS-[0-9]{7}$\"\n", "");
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

async fn ticket_ids_of_any_shape(backend: crate::helpers::Backend) {
    let contracts = contracts_with_free_ids();
    let dir = contracts.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| s.contracts_dir = dir).await;
    let enovia = app.token(Some("enovia")).await;
    let mut issue = crate::helpers::enovia_issue("x");
    // Reserved characters travel percent-encoded and come back decoded.
    issue["data"]["name"] = json!("ISS 7/8+9%");
    let resp = app.http.post(app.api("/tickets")).bearer_auth(&enovia).json(&issue).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/api/ebond/v1/tickets/ISS%207%2F8%2B9%25");
    let resp = app.http.get(app.url(&location)).bearer_auth(&enovia).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the Location the gateway handed out reads the ticket");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["partner_ticket_id"], "ISS 7/8+9%");
    let resp = app
        .http
        .patch(app.url(&location))
        .bearer_auth(&enovia)
        .json(&json!({"data": {"description": "via the encoded id"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // An id no path could carry back is refused when it is first sent, naming the field.
    issue["data"]["name"] = json!("ISS\t8");
    let (status, problem) = app.post("/tickets", &enovia, &issue).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "/data/name", "{problem}");
}

crate::per_backend!(ticket_ids_with_reserved_characters_round_trip, super::ticket_ids_of_any_shape);

backend_test!(work_notes_honour_if_match, |app: TestApp| async move {
    let sn = app.token(Some("servicenow")).await;
    let (status, created) = app.post("/tickets", &sn, &servicenow_incident("INC0000501")).await;
    assert_eq!(status, 201, "{created}");
    let note = |tag: &str| {
        app.http
            .post(app.api("/tickets/INC0000501/work-notes"))
            .bearer_auth(&sn)
            .header("if-match", tag)
            .json(&json!({"text": "checked the relay"}))
            .send()
    };
    let resp = note("\"99\"").await.unwrap();
    assert_eq!(resp.status(), 412, "a stale ETag is refused");
    let resp = note("nonsense").await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = note(&format!("\"{}\"", created["version"])).await.unwrap();
    assert_eq!(resp.status(), 200);
});
