//! The served OpenAPI documents match the checked-in ones and carry each partner's contract.

use crate::backend_test;
use crate::helpers::{repo_path, TestApp};
use serde_json::Value;

#[test]
fn checked_in_documents_are_current() {
    let settings = ebond::config::Settings { contracts_dir: repo_path("contracts"), ..Default::default() };
    let registry = ebond::app::load_contracts(&settings).expect("contracts");
    let stale = ebond::openapi::stale_documents(&repo_path("openapi"), &registry);
    assert!(stale.is_empty(), "stale OpenAPI documents {stale:?}: run `cargo run -- openapi` and commit");
}

backend_test!(served_documents, |app: TestApp| async move {
    let generic: Value = app.http.get(app.api("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(repo_path("openapi/ebond.json")).unwrap()).unwrap();
    assert_eq!(generic, file);
    assert!(generic["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/ebond/v1/tickets",
        "/api/ebond/v1/tickets/{partner_ticket_id}",
        "/api/ebond/v1/oauth/token",
        "/api/ebond/v1/admin/transactions",
    ] {
        assert!(generic["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(generic["components"]["schemas"]["Problem"].is_object());

    let resp = app.http.get(app.api("/partners/enovia/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    let create = &doc["components"]["schemas"]["TicketCreate"];
    let data = &create["properties"]["data"];
    assert_eq!(data["required"], serde_json::json!(["name", "title"]));
    assert_eq!(data["properties"]["title"]["maxLength"], 128);
    assert_eq!(data["properties"]["Priority"]["enum"], serde_json::json!(["urgent", "high", "medium", "low"]));
    assert!(data["properties"]["Estimated End Date"].is_object());
    assert_eq!(data["additionalProperties"], false);
    // A partner's document shows only what a partner may call.
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(paths.iter().all(|p| !p.contains("/admin")), "{paths:?}");
    assert!(doc["paths"].get("/api/ebond/v1/tickets").is_some());
    assert!(doc["components"]["schemas"].get("TransactionPage").is_none(), "operator-only schemas are left out");
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["tags"].as_array().unwrap().iter().all(|t| t["name"] != "admin"));

    let acme: Value =
        app.http.get(app.api("/partners/acme-msp/openapi.json")).send().await.unwrap().json().await.unwrap();
    let update = &acme["components"]["schemas"]["TicketUpdate"]["properties"];
    assert!(update.get("status").is_some() && update.get("work_note").is_some());
    assert!(update.get("summary").is_none(), "read-only fields are not in the write schema");
    assert!(acme["components"]["schemas"]["TicketFields"]["properties"].get("summary").is_some());

    let resp = app.http.get(app.api("/partners/nobody/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
});

/// Checks `value` against the subset of JSON Schema the generated documents use for answers
/// (`type`, possibly with `null`; `required`; `properties`; `$ref` into the same document).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let errors: Vec<String> = options.iter().filter_map(|o| conforms(doc, o, value, at).err()).collect();
        return match errors.len() < options.len() {
            true => Ok(()),
            false => Err(errors.join("; ")),
        };
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        conforms(doc, part, value, at)?;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed = types.is_empty() || types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !allowed {
        return Err(format!("{at}: {value} is {kind}, the document says {types:?}"));
    }
    for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if value.get(name).is_none() {
            return Err(format!("{at}: required member `{name}` missing"));
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (name, v) in obj {
            match props.get(name) {
                Some(s) => conforms(doc, s, v, &format!("{at}/{name}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}: member `{name}` is not in the document"))
                }
                None => {}
            }
        }
    }
    Ok(())
}

backend_test!(write_answers_match_the_published_schema, |app: TestApp| async move {
    for (partner, create, path, update) in [
        (
            "servicenow",
            crate::helpers::servicenow_incident("INC0000301"),
            "/tickets/INC0000301",
            serde_json::json!({"state": "2"}),
        ),
        (
            "enovia",
            crate::helpers::enovia_issue("ISS-0000301"),
            "/tickets/ISS-0000301",
            serde_json::json!({"data": {"description": "more"}}),
        ),
    ] {
        let doc: Value = app
            .http
            .get(app.api(&format!("/partners/{partner}/openapi.json")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = app.token(Some(partner)).await;
        let (status, created) = app.post("/tickets", &token, &create).await;
        assert_eq!(status, 201, "{created}");
        let (status, updated) = app.patch(path, &token, &update).await;
        assert_eq!(status, 200, "{updated}");
        for (op, answer, method, code) in [
            ("/api/ebond/v1/tickets", &created, "post", "201"),
            ("/api/ebond/v1/tickets/{partner_ticket_id}", &updated, "patch", "200"),
        ] {
            let schema = &doc["paths"][op][method]["responses"][code]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{partner}: {method} {op} {code} documented");
            conforms(&doc, schema, answer, partner).unwrap_or_else(|e| panic!("{partner} {method}: {e}"));
        }
        assert!(created["state"].is_string(), "{created}");
    }
});

backend_test!(conflict_answers_match_the_published_schema, |app: TestApp| async move {
    let doc: Value =
        app.http.get(app.api("/partners/acme-msp/openapi.json")).send().await.unwrap().json().await.unwrap();
    let snow = app.token(Some("servicenow")).await;
    let acme = app.token(Some("acme-msp")).await;
    let mut inc = crate::helpers::servicenow_incident("INC0000302");
    inc["assignment_group"] = serde_json::json!("Acme L2");
    assert_eq!(app.post("/tickets", &snow, &inc).await.0, 201);
    assert_eq!(app.get("/tickets/EB0000001", &acme).await.0, 200);
    let (s, _) = app.patch("/tickets/EB0000001", &acme, &serde_json::json!({"status": "Work In Progress"})).await;
    assert_eq!(s, 200);
    assert_eq!(app.get("/tickets/INC0000302", &snow).await.0, 200);
    let (s, _) = app.patch("/tickets/INC0000302", &snow, &serde_json::json!({"state": "3", "hold_reason": "1"})).await;
    assert_eq!(s, 200);
    let resolve = serde_json::json!({"status": "Resolved", "resolution_code": "FIXED", "resolution_notes": "n"});
    let (s, mixed) = app.patch("/tickets/EB0000001", &acme, &resolve).await;
    assert_eq!(s, 200, "{mixed}");
    let (s, held) = app.patch("/tickets/EB0000001", &acme, &serde_json::json!({"status": "Resolved"})).await;
    assert_eq!(s, 202, "{held}");
    let op = &doc["paths"]["/api/ebond/v1/tickets/{partner_ticket_id}"]["patch"]["responses"];
    for (code, answer) in [("200", &mixed), ("202", &held)] {
        assert!(answer["conflict"]["fields"][0]["held"] == true, "{answer}");
        let schema = &op[code]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{code} documented");
        conforms(&doc, schema, answer, "acme-msp").unwrap_or_else(|e| panic!("{code}: {e}"));
        let fields = &doc["components"]["schemas"]["ConflictFieldAnswer"];
        conforms(&doc, fields, &answer["conflict"]["fields"][0], "field").unwrap_or_else(|e| panic!("{code}: {e}"));
    }
});
