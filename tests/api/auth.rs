//! OAuth 2.0 client credentials, bearer checks, scopes.

use crate::backend_test;
use crate::helpers::TestApp;
use ebond::store::credentials::CredentialRepo;
use ebond::store::models::AccessTokenRow;
use ebond::with_conn;
use serde_json::{json, Value};

backend_test!(token_by_basic_and_by_form, |app: TestApp| async move {
    let (id, secret) = app.credentials(Some("servicenow")).await;
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600, "servicenow contract lifetime");
    assert_eq!(body["scope"], "tickets");
    assert!(body["access_token"].as_str().unwrap().len() >= 40);

    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "tickets"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let (status, body, _) = app.get("/tickets", &token).await;
    assert_eq!(status, 200, "{body}");
});

backend_test!(token_errors_follow_rfc6749, |app: TestApp| async move {
    let (id, secret) = app.credentials(Some("acme-msp")).await;
    // Wrong secret → 401 invalid_client with a challenge.
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some("nope"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(!body.to_string().contains("nope"), "secret echoed");

    // Unknown client id.
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "ghost"), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Other grant type.
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");

    // Missing grant_type; JSON instead of a form.
    let resp =
        app.http.post(app.api("/oauth/token")).basic_auth(&id, Some(&secret)).form(&[("x", "y")]).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // A partner asking for the admin scope.
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_scope");
});

backend_test!(bearer_required_missing_bad_and_expired, |app: TestApp| async move {
    let resp = app.http.get(app.api("/tickets")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

    let resp = app.http.post(app.api("/tickets")).bearer_auth("not-a-token").json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "urn:ebond:problem:invalid-token");

    // An expired token (stored directly, as if issued an hour ago).
    let (id, _) = app.credentials(Some("servicenow")).await;
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        with_conn!(&mut conn, c => {
            let cred = c.credential_by_client_id(&id).unwrap().unwrap();
            let now = ebond::util::now_ms();
            c.insert_token(&AccessTokenRow {
                token_hash: ebond::util::sha256_hex(b"expired-token"),
                credential_id: cred.id,
                partner: Some("servicenow".into()),
                scope: "tickets".into(),
                expires_at: now - 1,
                created_at: now - 3_600_000,
                contract_major: None,
            })
            .unwrap()
        })
    })
    .await
    .unwrap();
    let (status, body, _) = app.get("/tickets", "expired-token").await;
    assert_eq!(status, 401, "{body}");
});

backend_test!(partner_and_admin_scopes_are_separate, |app: TestApp| async move {
    let partner = app.token(Some("servicenow")).await;
    let admin = app.token(None).await;
    let (status, body, _) = app.get("/admin/transactions", &partner).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "admin-only");
    let (status, body, _) = app.get("/tickets", &admin).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "partner-only");
    let (status, body, _) = app.get("/admin/transactions", &admin).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = app.get("/admin/partners", &admin).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["acme-msp", "enovia", "fieldops", "initech", "servicenow"]);
});

backend_test!(request_id_is_echoed_or_made, |app: TestApp| async move {
    let resp = app.http.get(app.url("/healthz")).header("x-request-id", "trace-123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-123");
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 36);
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
});
