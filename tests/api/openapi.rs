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

    let acme: Value =
        app.http.get(app.api("/partners/acme-msp/openapi.json")).send().await.unwrap().json().await.unwrap();
    let update = &acme["components"]["schemas"]["TicketUpdate"]["properties"];
    assert!(update.get("status").is_some() && update.get("work_note").is_some());
    assert!(update.get("summary").is_none(), "read-only fields are not in the write schema");
    assert!(acme["components"]["schemas"]["TicketFields"]["properties"].get("summary").is_some());

    let resp = app.http.get(app.api("/partners/nobody/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
});
