//! Each refusal of item 8: the right status and an RFC 9457 body a partner can act on, and
//! nothing written.

use crate::backend_test;
use crate::helpers::{enovia_issue, servicenow_incident, TestApp};
use serde_json::{json, Value};

fn assert_problem(body: &Value, status: u16, code: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:ebond:problem:{code}"), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
}

backend_test!(every_contract_violation_reported_at_once, |app: TestApp| async move {
    let token = app.token(Some("servicenow")).await;
    let bad = json!({
        "number": "INC12",                 // pattern
        "short_description": 42,           // type
        "impact": "9",                     // enum
        "state": "2",
        "due_date": "tomorrow",            // datetime format
        "close_notes": "x".repeat(4001),   // max_length
        "colour": "blue"                   // unknown
    });
    let resp = app.http.post(app.api("/tickets")).bearer_auth(&token).json(&bad).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_problem(&body, 422, "validation-failed");
    let mut got: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string()))
        .collect();
    got.sort();
    let want = [
        ("close_notes", "max_length"),
        ("colour", "unknown_field"),
        ("due_date", "datetime"),
        ("impact", "enum"),
        ("number", "pattern"),
        ("short_description", "type"),
    ];
    assert_eq!(got, want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    assert!(body["errors"][0]["message"].as_str().unwrap().len() > 10);
    assert_eq!(app.ticket_count().await, 0);

    // Required on create, named as the partner names them (nested pointer for ENOVIA).
    let enovia = app.token(Some("enovia")).await;
    let (status, body) = app.post("/tickets", &enovia, &json!({"data": {"description": "no name, no title"}})).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["/data/name", "/data/title"]);
    // Not an object at all.
    let (status, body) = app.post("/tickets", &enovia, &json!([1, 2])).await;
    assert_eq!(status, 422, "{body}");
});

backend_test!(forbidden_fields_are_403_and_named, |app: TestApp| async move {
    let (snow, acme) = (app.token(Some("servicenow")).await, app.token(Some("acme-msp")).await);
    let (status, _) = app.post("/tickets", &snow, &servicenow_incident("INC0000100")).await;
    assert_eq!(status, 201);
    let (status, _) = app.patch("/tickets/INC0000100", &snow, &json!({"assignment_group": "Acme L2"})).await;
    assert_eq!(status, 200);
    let (status, body) = app
        .patch("/tickets/EB0000001", &acme, &json!({"summary": "renamed", "queue": "Other", "work_note": "ok"}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_problem(&body, 403, "forbidden-fields");
    assert_eq!(body["fields"], json!(["summary", "queue"]));
    let (_, view, _) = app.get("/tickets/INC0000100", &snow).await;
    assert_eq!(view["fields"]["short_description"], "Email delivery delayed", "nothing written");

    // A partner without create rights.
    let (status, body) = app.post("/tickets", &acme, &json!({"ticket_number": "ACME-1000", "status": "Open"})).await;
    assert_eq!(status, 403, "{body}");
    assert_problem(&body, 403, "create-forbidden");
});

backend_test!(transitions_forbidden_for_partner_or_missing_from_workflow, |app: TestApp| async move {
    let (snow, acme) = (app.token(Some("servicenow")).await, app.token(Some("acme-msp")).await);
    app.post("/tickets", &snow, &servicenow_incident("INC0000200")).await;
    app.patch("/tickets/INC0000200", &snow, &json!({"assignment_group": "Acme L2"})).await;
    // Workflow has no new -> closed: 422 naming the allowed targets.
    let (status, body) =
        app.patch("/tickets/INC0000200", &snow, &json!({"state": "7", "close_code": "Duplicate"})).await;
    assert_eq!(status, 422, "{body}");
    assert_problem(&body, 422, "invalid-transition");
    // In ServiceNow's own values, and only the moves ServiceNow itself may make.
    assert_eq!((body["from"].as_str(), body["to"].as_str()), (Some("1"), Some("7")), "{body}");
    assert!(body["allowed"].as_array().unwrap().contains(&json!("2")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("`1`"), "{body}");
    // Acme may not cancel (the workflow allows new -> canceled, its contract does not).
    let (status, body) = app.patch("/tickets/EB0000001", &acme, &json!({"status": "Cancelled"})).await;
    assert_eq!(status, 403, "{body}");
    assert_problem(&body, 403, "transition-forbidden");
    assert_eq!(body["allowed"], json!(["Work In Progress"]), "Acme's own value");
    assert_eq!((body["from"].as_str(), body["to"].as_str()), (Some("Open"), Some("Cancelled")), "{body}");
    // Creating in a state that is not initial.
    let mut inc = servicenow_incident("INC0000201");
    inc["state"] = json!("6");
    let (status, body) = app.post("/tickets", &snow, &inc).await;
    assert_eq!(status, 422, "{body}");
    assert_problem(&body, 422, "invalid-initial-state");
    assert_eq!(body["allowed"], json!(["1", "2"]), "ServiceNow's values of the initial states: {body}");
    assert!(body["detail"].as_str().unwrap().contains("`6`"), "{body}");
});

backend_test!(target_state_requires_fields, |app: TestApp| async move {
    let snow = app.token(Some("servicenow")).await;
    app.post("/tickets", &snow, &servicenow_incident("INC0000300")).await;
    let (status, body) = app.patch("/tickets/INC0000300", &snow, &json!({"state": "6"})).await;
    assert_eq!(status, 422, "{body}");
    assert_problem(&body, 422, "missing-required-fields");
    assert_eq!(body["fields"], json!(["close_code", "close_notes"]));
    let (status, body) = app
        .patch(
            "/tickets/INC0000300",
            &snow,
            &json!({"state": "6", "close_code": "Solution provided", "close_notes": "Queue drained"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "6");
    // Clearing a field the current state requires is refused too.
    let (status, body) = app.patch("/tickets/INC0000300", &snow, &json!({"close_notes": null})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"], json!(["close_notes"]));
    // On hold needs a reason.
    app.post("/tickets", &snow, &servicenow_incident("INC0000301")).await;
    let (status, body) = app.patch("/tickets/INC0000301", &snow, &json!({"state": "3"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["fields"], json!(["hold_reason"]));
});

backend_test!(stale_if_match_is_412, |app: TestApp| async move {
    let snow = app.token(Some("servicenow")).await;
    let (status, _, headers) =
        app.send_json(reqwest::Method::POST, "/tickets", &snow, &servicenow_incident("INC0000400")).await;
    assert_eq!(status, 201);
    assert_eq!(headers["etag"], "\"1\"");
    let send = |etag: &'static str, desc: &'static str| {
        app.http
            .patch(app.api("/tickets/INC0000400"))
            .bearer_auth(&snow)
            .header("if-match", etag)
            .json(&json!({"short_description": desc}))
            .send()
    };
    let resp = send("\"1\"", "first").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let resp = send("\"1\"", "second").await.unwrap();
    assert_eq!(resp.status(), 412);
    let body: Value = resp.json().await.unwrap();
    assert_problem(&body, 412, "stale-version");
    assert_eq!(body["current_version"], 2);
    let (_, view, _) = app.get("/tickets/INC0000400", &snow).await;
    assert_eq!(view["fields"]["short_description"], "first");
    let resp = send("garbage", "x").await.unwrap();
    assert_eq!(resp.status(), 400);
});

backend_test!(malformed_json_wrong_type_and_oversized, |app: TestApp| async move {
    let snow = app.token(Some("servicenow")).await;
    let resp = app
        .http
        .post(app.api("/tickets"))
        .bearer_auth(&snow)
        .header("content-type", "application/json")
        .body("{\n  \"number\": \"INC0000500\",\n  \"short_description\": oops\n}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_problem(&body, 400, "malformed-json");
    assert_eq!((body["line"].as_u64(), body["column"].as_u64()), (Some(3), Some(24)), "{body}");

    let resp = app
        .http
        .post(app.api("/tickets"))
        .bearer_auth(&snow)
        .header("content-type", "text/plain")
        .body(servicenow_incident("INC0000501").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_problem(&resp.json().await.unwrap(), 415, "unsupported-media-type");

    let mut big = servicenow_incident("INC0000502");
    big["description"] = json!("x".repeat(300 * 1024));
    let resp = app.http.post(app.api("/tickets")).bearer_auth(&snow).json(&big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_problem(&body, 413, "payload-too-large");
    assert_eq!(body["limit_bytes"], 256 * 1024);
    assert_eq!(app.ticket_count().await, 0);
});

backend_test!(unknown_and_other_partners_tickets_are_404, |app: TestApp| async move {
    let (snow, enovia) = (app.token(Some("servicenow")).await, app.token(Some("enovia")).await);
    let (status, body) = app.patch("/tickets/INC9999999", &snow, &json!({"short_description": "x"})).await;
    assert_eq!(status, 404);
    assert_problem(&body, 404, "ticket-not-found");
    // ENOVIA's id is not ServiceNow's, and an unshared hub number does not resolve either.
    app.post("/tickets", &snow, &servicenow_incident("INC0000600")).await;
    let (status, _, _) = app.get("/tickets/INC0000600", &enovia).await;
    assert_eq!(status, 404);
    let (status, _, _) = app.get("/tickets/EB0000001", &enovia).await;
    assert_eq!(status, 404);
    let (status, _) = app.patch("/tickets/EB0000001", &enovia, &json!({"data": {"title": "hijack"}})).await;
    assert_eq!(status, 404);
    let (status, _) = app.post("/tickets/INC0000600/work-notes", &enovia, &json!({"text": "x"})).await;
    assert!(status == 403 || status == 404, "{status}");
});

backend_test!(duplicate_create_is_409_naming_the_ticket, |app: TestApp| async move {
    let enovia = app.token(Some("enovia")).await;
    let (status, first) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000700")).await;
    assert_eq!(status, 201);
    let (status, body) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000700")).await;
    assert_eq!(status, 409, "{body}");
    assert_problem(&body, 409, "duplicate-ticket");
    assert_eq!(body["ticket"], first["number"]);
    assert_eq!(app.ticket_count().await, 1);
});

backend_test!(idempotency_key_replays_or_refuses, |app: TestApp| async move {
    let enovia = app.token(Some("enovia")).await;
    let send = |body: Value| {
        app.http
            .post(app.api("/tickets"))
            .bearer_auth(&enovia)
            .header("idempotency-key", "create-800")
            .json(&body)
            .send()
    };
    let first = send(enovia_issue("ISS-0000800")).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(enovia_issue("ISS-0000800")).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.ticket_count().await, 1);
    assert_eq!(app.outbox(first["number"].as_str().unwrap()).await.len(), 1, "one fan-out only");
    let other = send(enovia_issue("ISS-0000801")).await.unwrap();
    assert_eq!(other.status(), 422);
    assert_problem(&other.json().await.unwrap(), 422, "idempotency-key-reused");
    assert_eq!(app.ticket_count().await, 1);
    // The replay is audited as such.
    let admin = app.token(None).await;
    let (_, page, _) = app.get("/admin/transactions?result=replayed", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
});

backend_test!(partner_ticket_id_cannot_change, |app: TestApp| async move {
    let (snow, acme) = (app.token(Some("servicenow")).await, app.token(Some("acme-msp")).await);
    app.post("/tickets", &snow, &servicenow_incident("INC0000900")).await;
    app.patch("/tickets/INC0000900", &snow, &json!({"assignment_group": "Acme L2"})).await;
    let (status, _) = app.patch("/tickets/EB0000001", &acme, &json!({"ticket_number": "ACME-9000"})).await;
    assert_eq!(status, 200);
    let (status, body) = app.patch("/tickets/ACME-9000", &acme, &json!({"ticket_number": "ACME-9001"})).await;
    assert_eq!(status, 422, "{body}");
    assert_problem(&body, 422, "partner-ticket-id-immutable");
});

backend_test!(unknown_routes_and_methods_are_problems, |app: TestApp| async move {
    let resp = app.http.get(app.api("/nothing-here")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = app.http.delete(app.api("/tickets/INC0000001")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, PATCH");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = app.http.request(reqwest::Method::TRACE, app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    // A path segment of the wrong type is a problem+json 404, not a plain-text error.
    let admin = app.token(None).await;
    let resp = app.http.get(app.api("/admin/outbox/not-a-number")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
});
