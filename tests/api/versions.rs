//! Two major versions of a partner's contract live side by side: the caller picks one with
//! `Ebond-Contract-Version`, each has its own OpenAPI document, the old one announces its
//! deprecation and sunset (RFC 9745, RFC 8594), and `default = true` moves the callers that name
//! none (and the partner's pushes) to the new one.

use crate::helpers::{servicenow_incident, Backend, TestApp};
use crate::reload::copy_contracts;
use reqwest::Method;
use serde_json::{json, Value};

async fn post(
    app: &TestApp,
    token: &str,
    version: Option<&str>,
    body: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = app.http.post(app.api("/tickets")).bearer_auth(token).json(body);
    if let Some(v) = version {
        r = r.header("Ebond-Contract-Version", v);
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

async fn versions_side_by_side(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_contracts(&tmp.path().join("contracts"));
    let v1 = std::fs::read_to_string(dir.join("servicenow.toml")).unwrap();
    let dated = v1.replacen(
        "contract_version = \"1.0.0\"",
        "contract_version = \"1.0.0\"\ndeprecated = \"2026-12-01\"\nsunset = \"2027-06-30\"",
        1,
    );
    std::fs::write(dir.join("servicenow.toml"), &dated).unwrap();
    // Version 2 calls the summary `title`.
    let v2 = v1.replacen("contract_version = \"1.0.0\"", "contract_version = \"2.0.0\"", 1).replacen(
        "pointer = \"/short_description\"",
        "pointer = \"/title\"",
        1,
    );
    std::fs::write(dir.join("servicenow.v2.toml"), &v2).unwrap();
    let d2 = dir.clone();
    let app = TestApp::spawn_with(backend, move |s| s.contracts_dir = d2).await;
    let (snow, admin) = (app.token(Some("servicenow")).await, app.token(None).await);

    // No version named: the default (the lowest major), with its deprecation announced.
    let (status, body, headers) = post(&app, &snow, None, &servicenow_incident("INC0000900")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["deprecation"], "@1796083200", "2026-12-01 as RFC 9745 wants it");
    assert_eq!(headers["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    let link = headers["link"].to_str().unwrap();
    assert!(
        link.contains("/partners/servicenow/openapi.json?version=2") && link.contains("successor-version"),
        "{link}"
    );

    // Version 2 named: its field names, no deprecation.
    let mut v2_body = servicenow_incident("INC0000901");
    let summary = v2_body.as_object_mut().unwrap().remove("short_description").unwrap();
    v2_body["title"] = summary;
    let (status, body, headers) = post(&app, &snow, Some("2"), &v2_body).await;
    assert_eq!(status, 201, "{body}");
    assert!(headers.get("deprecation").is_none() && headers.get("sunset").is_none());
    let (status, body, _) = post(&app, &snow, Some("2"), &servicenow_incident("INC0000902")).await;
    assert_eq!(status, 422, "version 2 has no short_description: {body}");
    let (status, body, _) = post(&app, &snow, Some("3"), &v2_body).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("unknown-contract-version")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("1, 2"), "{body}");

    // Each version has its own document; the partner list shows both.
    let doc = |q: &'static str| app.http.get(app.api(&format!("/partners/servicenow/openapi.json{q}"))).send();
    let v: Value = doc("").await.unwrap().json().await.unwrap();
    assert_eq!(v["info"]["version"], "1.0.0");
    let v: Value = doc("?version=2").await.unwrap().json().await.unwrap();
    assert_eq!(v["info"]["version"], "2.0.0");
    assert!(v["components"]["schemas"]["TicketCreate"]["properties"].get("title").is_some(), "{v}");
    assert_eq!(doc("?version=7").await.unwrap().status(), 404);
    assert_eq!(doc("?version=latest").await.unwrap().status(), 400, "a malformed version is a clear error");
    let (_, partners, _) = app.send_json(Method::GET, "/admin/partners", &admin, &Value::Null).await;
    let snow_row = partners.as_array().unwrap().iter().find(|p| p["id"] == "servicenow").unwrap();
    assert_eq!(snow_row["versions"], json!(["1.0.0", "2.0.0"]), "{snow_row}");
    assert_eq!(snow_row["contract_version"], "1.0.0");

    // A credential bound to version 2: its tokens are served under it without the header.
    let (ok, out, err) = crate::security::cli(
        &app,
        &["partner", "credentials", "issue", "servicenow", "--contract-version", "2", "--json"],
        None,
    );
    assert!(ok, "{err}");
    let cred: Value = serde_json::from_str(&out).unwrap();
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(cred["client_id"].as_str().unwrap(), cred["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let bound: Value = resp.json().await.unwrap();
    let bound = bound["access_token"].as_str().unwrap().to_string();
    let mut b = v2_body.clone();
    b["number"] = json!("INC0000904");
    let (status, body, headers) = post(&app, &bound, None, &b).await;
    assert_eq!(status, 201, "bound to 2.0.0: {body}");
    assert!(headers.get("deprecation").is_none());
    let (ok, _, err) =
        crate::security::cli(&app, &["partner", "credentials", "issue", "servicenow", "--contract-version", "5"], None);
    assert!(!ok && err.contains("no live contract of major version 5"), "{err}");

    // Version 2 becomes the default, live.
    std::fs::write(dir.join("servicenow.v2.toml"), v2.replacen("[partner]\n", "[partner]\ndefault = true\n", 1))
        .unwrap();
    let (status, done, _) = app.send_json(Method::POST, "/admin/contracts/reload?wait=0", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{done}");
    let mut v2_body = v2_body.clone();
    v2_body["number"] = json!("INC0000903");
    let (status, body, headers) = post(&app, &snow, None, &v2_body).await;
    assert_eq!(status, 201, "no version named: now 2.0.0: {body}");
    assert!(headers.get("deprecation").is_none());

    // Past its sunset, version 1 is refused.
    std::fs::write(dir.join("servicenow.toml"), dated.replace("sunset = \"2027-06-30\"", "sunset = \"2020-01-01\""))
        .unwrap();
    let (status, done, _) = app.send_json(Method::POST, "/admin/contracts/reload?wait=0", &admin, &Value::Null).await;
    assert_eq!(status, 200, "{done}");
    let (status, body, _) = post(&app, &snow, Some("1"), &servicenow_incident("INC0000905")).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("contract-version-retired")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("version 2"), "{body}");

    // Two files of one major version are refused.
    std::fs::write(dir.join("servicenow.copy.toml"), &v1).unwrap();
    let (status, refused, _) =
        app.send_json(Method::POST, "/admin/contracts/reload?wait=0", &admin, &Value::Null).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("must differ in their major version"), "{refused}");
}
crate::per_backend!(two_major_versions_live_side_by_side, super::versions_side_by_side);
