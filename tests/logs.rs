//! A log capture (DEBUG, every crate) over a run that handles every kind of secret: partner
//! client secrets and tokens, outbound OAuth2 / Basic / API-key credentials, signing secrets,
//! secrets sealed in the database. None of them may appear in the logs.

#[allow(dead_code)]
#[path = "api/fakes.rs"]
mod fakes;
#[allow(dead_code, unused_macros)]
#[path = "api/helpers.rs"]
mod helpers;

use helpers::{enovia_issue, servicenow_incident, Backend, TestApp};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let partners = fakes::Partners::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let contracts = tmp.path().join("contracts");
    partners.write_contracts(&contracts, "[\"100ms\"]");
    // ENOVIA also signs its inbound events, with a secret sealed in the database.
    let enovia = contracts.join("enovia.toml");
    let text =
        std::fs::read_to_string(&enovia).unwrap().replacen("[auth]\n", "[auth]\nwebhook_secret = \"db:webhook\"\n", 1);
    std::fs::write(&enovia, text).unwrap();
    let dir = contracts.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| helpers::delivering(s, dir)).await;
    let secrets = ebond::secrets::Secrets::new(app.db.clone(), &app.settings);
    let sealed_secret = "whsec_c2VhbGVkLXNlY3JldC1mb3ItbG9nLXRlc3Q=";
    tokio::task::spawn_blocking(move || secrets.store("enovia", "webhook", sealed_secret)).await.unwrap().unwrap();

    let mut secrets_seen: Vec<String> = vec![
        fakes::SIGNING_SECRET.into(),
        fakes::SIGNING_SECRET.trim_start_matches("whsec_").into(),
        "snow-client-secret".into(),
        "acme-pass".into(),
        "csrf-token-123".into(),
        sealed_secret.into(),
        "snow-token-1".into(),
    ];
    let (id, secret) = app.credentials(Some("servicenow")).await;
    secrets_seen.push(secret.clone());
    // A failed attempt with a wrong secret, then the right one.
    let wrong = "wrong-but-secret-looking-value";
    secrets_seen.push(wrong.into());
    let _ = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(wrong))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    let token: serde_json::Value = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let snow = token["access_token"].as_str().unwrap().to_string();
    secrets_seen.push(snow.clone());
    let _ = app.get("/tickets", "forged-token-value").await;
    secrets_seen.push("forged-token-value".into());

    // Pushes to all three partners: OAuth2 (ServiceNow), Basic (Acme), API key (ENOVIA), signed.
    let enovia_token = app.token(Some("enovia")).await;
    secrets_seen.push(enovia_token.clone());
    assert_eq!(app.post("/tickets", &enovia_token, &enovia_issue("ISS-0000001")).await.0, 201);
    let mut inc = servicenow_incident("INC0000001");
    inc["assignment_group"] = json!("Acme L2");
    assert_eq!(app.post("/tickets", &snow, &inc).await.0, 201);
    partners.snow.wait_for(10, "ServiceNow push", |r| !r.is_empty()).await;
    partners.acme.wait_for(10, "Acme push", |r| !r.is_empty()).await;
    app.patch("/tickets/ISS-0000001", &enovia_token, &json!({"data": {"title": "changed"}})).await;
    partners.snow.wait_for(10, "second ServiceNow push", |r| r.len() >= 2).await;

    // A signed inbound event verified with the sealed secret.
    let body = serde_json::to_vec(&enovia_issue("ISS-0000002")).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let sig = {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let key = base64::engine::general_purpose::STANDARD.decode(sealed_secret.trim_start_matches("whsec_")).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("evt_log.{ts}.").as_bytes());
        mac.update(&body);
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
    };
    let resp = app
        .http
        .post(app.api("/events"))
        .header("content-type", "application/json")
        .header("webhook-id", "evt_log")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(logs.contains("token issued") && logs.contains("delivered"), "the capture saw the run");
    for s in &secrets_seen {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs: {s}");
    }
    let key = std::fs::read_to_string(app.settings.data_dir.join("master.key")).unwrap();
    assert!(!logs.contains(key.trim()), "the master key reached the logs");
}
