//! Reads, lists, work notes, derived values and the audit trail.

use crate::backend_test;
use crate::helpers::{enovia_issue, servicenow_incident, TestApp};
use serde_json::{json, Value};

backend_test!(create_maps_rules_and_priority, |app: TestApp| async move {
    let (enovia, snow) = (app.token(Some("enovia")).await, app.token(Some("servicenow")).await);
    let (status, body) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000001")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "Create", "state in ENOVIA's vocabulary");
    let number = body["number"].as_str().unwrap().to_string();
    // ServiceNow got the created event and reads it in its vocabulary (by hub number).
    let (status, view, headers) = app.get(&format!("/tickets/{number}"), &snow).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(headers["etag"], "\"1\"");
    let f = &view["fields"];
    assert_eq!(f["urgency"], "1", "rule: urgent × Hardware → urgency 1");
    assert_eq!(f["impact"], "2", "default rule");
    assert_eq!(f["priority"], "1", "ENOVIA set priority explicitly (urgent → 1)");
    assert_eq!(f["state"], "1");
    assert!(f.get("number").is_some());
    assert!(f.get("work_notes").is_none(), "journal fields are not read back");

    // ServiceNow impact/urgency without priority: derived through the lookup.
    let (status, body) = app.post("/tickets", &snow, &servicenow_incident("INC0000002")).await;
    assert_eq!(status, 201, "{body}");
    let (_, view, _) = app.get("/tickets/INC0000002", &snow).await;
    assert_eq!(view["fields"]["priority"], "2", "impact 2 × urgency 1 → 2");
    assert_eq!(view["fields"]["number"], "INC0000002");
    let (_, view) = app.patch("/tickets/INC0000002", &snow, &json!({"impact": "3", "urgency": "3"})).await;
    assert_eq!(view["version"], 2);
    let (_, view, _) = app.get("/tickets/INC0000002", &snow).await;
    assert_eq!(view["fields"]["priority"], "5");
});

backend_test!(read_shows_only_readable_fields_with_etag, |app: TestApp| async move {
    let (snow, acme) = (app.token(Some("servicenow")).await, app.token(Some("acme-msp")).await);
    app.post("/tickets", &snow, &servicenow_incident("INC0000010")).await;
    app.patch("/tickets/INC0000010", &snow, &json!({"assignment_group": "Acme L2", "due_date": "2026-12-24 09:30:00"}))
        .await;
    let (status, view, headers) = app.get("/tickets/EB0000001", &acme).await;
    assert_eq!(status, 200, "{view}");
    let f = view["fields"].as_object().unwrap();
    assert_eq!(f["summary"], "Email delivery delayed");
    assert_eq!(f["queue"], "Acme L2");
    assert_eq!(f["status"], "Open");
    assert_eq!(f["sla_due"], "2026-12-24T09:30:00Z", "ServiceNow's format in, RFC 3339 out");
    assert_eq!(f["priority"], "P2");
    assert!(!f.contains_key("category") && !f.contains_key("impact"), "not readable by Acme: {view}");
    assert_eq!(view["partner_ticket_id"], Value::Null);
    // If-None-Match with the current ETag → 304.
    let etag = headers["etag"].to_str().unwrap().to_string();
    let resp = app
        .http
        .get(app.api("/tickets/EB0000001"))
        .bearer_auth(&acme)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
});

backend_test!(list_pages_through_shared_tickets, |app: TestApp| async move {
    let (snow, enovia) = (app.token(Some("servicenow")).await, app.token(Some("enovia")).await);
    for i in 0..5 {
        let (s, _) = app.post("/tickets", &snow, &servicenow_incident(&format!("INC00001{i:02}"))).await;
        assert_eq!(s, 201);
    }
    let (s, _) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000009")).await;
    assert_eq!(s, 201);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/tickets?limit=2&cursor={c}"),
            None => "/tickets?limit=2&updated_since=2000-01-01T00:00:00Z".into(),
        };
        let (status, page, _) = app.get(&path, &snow).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["number"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "5 own + 1 shared by ENOVIA's create: {seen:?}");
    let (_, page, _) = app.get("/tickets", &enovia).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "ENOVIA sees only its own");
    let (status, body, _) = app.get("/tickets?updated_since=yesterday", &snow).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = app.get("/tickets?cursor=%%%", &snow).await;
    assert_eq!(status, 400);
    let (status, _, _) = app.get("/tickets?limit=0", &snow).await;
    assert_eq!(status, 400);
});

backend_test!(update_changing_nothing_writes_nothing, |app: TestApp| async move {
    let snow = app.token(Some("servicenow")).await;
    app.post("/tickets", &snow, &servicenow_incident("INC0000020")).await;
    let before = app.outbox("EB0000001").await;
    let (status, body) = app
        .patch("/tickets/INC0000020", &snow, &json!({"short_description": "Email delivery delayed", "state": "1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(app.outbox("EB0000001").await, before);
});

backend_test!(work_notes_endpoint_validates_and_dedupes, |app: TestApp| async move {
    let (snow, enovia) = (app.token(Some("servicenow")).await, app.token(Some("enovia")).await);
    let (_, created) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000030")).await;
    let number = created["number"].as_str().unwrap().to_string();
    let path = format!("/tickets/{number}/work-notes");
    let (status, body) =
        app.post(&path, &snow, &json!({"text": "Checked the PLC switch port", "entry_id": "wn-1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
    let (status, body) =
        app.post(&path, &snow, &json!({"text": "Checked the PLC switch port", "entry_id": "wn-1"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 2, "same entry id: nothing added");
    let (status, body) = app.post(&path, &snow, &json!({"text": ""})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "text");
    let (status, body) = app.post(&path, &snow, &json!({"text": 5})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app.post(&path, &snow, &json!({"text": "x", "colour": 1})).await;
    assert_eq!(status, 422, "{body}");
    // ENOVIA may not write work notes (internal).
    let (status, body) = app.post("/tickets/ISS-0000030/work-notes", &enovia, &json!({"text": "hi"})).await;
    assert_eq!(status, 403, "{body}");
    // Work notes go to ServiceNow's partners but not back to ServiceNow, and not to ENOVIA
    // (not subscribed to internal notes).
    let rows = app.outbox(&number).await;
    assert_eq!(rows, vec![("servicenow".to_string(), "created".to_string())]);
});

backend_test!(every_request_is_audited, |app: TestApp| async move {
    let (snow, admin) = (app.token(Some("servicenow")).await, app.token(None).await);
    let resp = app
        .http
        .post(app.api("/tickets"))
        .bearer_auth(&snow)
        .header("x-request-id", "audit-ok-1")
        .json(&servicenow_incident("INC0000040"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (status, _) = app.patch("/tickets/INC0000040", &snow, &json!({"impact": "7"})).await;
    assert_eq!(status, 422);
    let resp = app.http.get(app.api("/tickets/INC0000040")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    let (status, page, _) = app.get("/admin/transactions?partner=servicenow", &admin).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let created = items.iter().find(|t| t["request_id"] == "audit-ok-1").expect("create audited");
    assert_eq!(created["result"], "accepted");
    assert_eq!(created["status"], 201);
    assert_eq!(created["ticket"], "EB0000001");
    assert_eq!(created["method"], "POST");
    let sha = ebond::util::sha256_hex(serde_json::to_string(&servicenow_incident("INC0000040")).unwrap().as_bytes());
    assert_eq!(created["payload_sha256"], sha);

    let (_, page, _) = app.get("/admin/transactions?result=rejected&ticket=EB0000001", &admin).await;
    let rejected = &page["items"].as_array().unwrap()[0];
    assert_eq!(rejected["status"], 422);
    assert_eq!(rejected["partner"], "servicenow");
    assert!(rejected["error_codes"].as_array().unwrap().contains(&json!("validation-failed")));
    assert!(rejected["error_codes"].as_array().unwrap().contains(&json!("impact:enum")));

    let (_, page, _) = app.get("/admin/transactions?result=rejected", &admin).await;
    assert!(page["items"].as_array().unwrap().iter().any(|t| t["status"] == 401 && t["partner"].is_null()));
    let (status, _, _) = app.get("/admin/transactions?result=bogus", &admin).await;
    assert_eq!(status, 400);
});
