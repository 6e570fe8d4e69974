//! Each security control, attacked: TLS and mutual TLS, source networks and proxies, the
//! inbound rate limit, lockout, credential rotation / revocation / read-only scope, secrets at
//! rest, signed inbound events (replay, stale and forged signatures), hardening, and partner
//! isolation.

use crate::fakes::SIGNING_SECRET;
use crate::helpers::{enovia_issue, repo_path, servicenow_incident, Backend, TestApp};
use crate::pki::Pki;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example contracts with extra lines in one partner's `[auth]` table.
fn contracts_with_auth(dir: &Path, partner_file: &str, auth_lines: &str) -> PathBuf {
    let out = dir.join("contracts");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["workflow.toml", "servicenow.toml", "enovia.toml", "acme-msp.toml"] {
        let mut text = std::fs::read_to_string(repo_path("contracts").join(f)).unwrap();
        if f == partner_file {
            text = text.replacen("[auth]\n", &format!("[auth]\n{auth_lines}\n"), 1);
        }
        std::fs::write(out.join(f), text).unwrap();
    }
    out
}

async fn token_with(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    http.post(format!("{base}/api/ebond/v1/oauth/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap()
}

async fn token_json(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let resp = token_with(http, base, id, secret, None).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

async fn tls_and_mutual_tls(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"));
    let pin = pki
        .client_a
        .sha256()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let dir = contracts_with_auth(
        tmp.path(),
        "acme-msp.toml",
        &format!("client_cert_sha256 = [\"{pin}\"]\nrequire_client_cert = true"),
    );
    let p = pki.dir.clone();
    let app = TestApp::spawn_with(backend, |s| {
        s.contracts_dir = dir;
        s.tls.cert_file = Some(p.join("server.pem"));
        s.tls.key_file = Some(p.join("server.key"));
        s.tls.client_ca_file = Some(p.join("ca.pem"));
    })
    .await;
    let base = app.base.replace("http://", "https://");
    // Plain HTTP is not served on a TLS port.
    let plain = reqwest::Client::new().get(format!("{}/healthz", app.base)).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // A client that does not trust the test CA refuses the server.
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(true).build().unwrap();
    assert!(untrusting.get(format!("{base}/healthz")).send().await.is_err());

    let anon = pki.client(None);
    let resp = anon.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=31536000");

    // ServiceNow pins nothing: a token is enough.
    let (id, secret) = app.credentials(Some("servicenow")).await;
    let snow = token_json(&anon, &base, &id, &secret).await;
    let resp = anon
        .post(format!("{base}/api/ebond/v1/tickets"))
        .bearer_auth(&snow)
        .json(&servicenow_incident("INC0000001"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Acme's requests must come with its pinned certificate, its token request included.
    let (id, secret) = app.credentials(Some("acme-msp")).await;
    let refused = token_with(&anon, &base, &id, &secret, None).await;
    assert_eq!(refused.status(), 403, "no token without the pinned certificate");
    let acme = token_json(&pki.client(Some(&pki.client_a)), &base, &id, &secret).await;
    let resp = anon.get(format!("{base}/api/ebond/v1/tickets")).bearer_auth(&acme).send().await.unwrap();
    assert_eq!(resp.status(), 403, "no client certificate");
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "client-certificate");
    let other = pki.client(Some(&pki.client_b));
    let resp = other.get(format!("{base}/api/ebond/v1/tickets")).bearer_auth(&acme).send().await.unwrap();
    assert_eq!(resp.status(), 403, "a valid certificate, but not Acme's");
    let rogue = pki.client(Some(&pki.rogue_client));
    let refused = rogue.get(format!("{base}/api/ebond/v1/tickets")).bearer_auth(&acme).send().await;
    assert!(
        refused.is_err() || refused.unwrap().status() != 200,
        "a certificate from an unknown CA never gets through"
    );
    let good = pki.client(Some(&pki.client_a));
    let resp = good.get(format!("{base}/api/ebond/v1/tickets")).bearer_auth(&acme).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Acme's certificate does not make another partner's token Acme's.
    let resp = good.get(format!("{base}/api/ebond/v1/tickets")).bearer_auth(&snow).send().await.unwrap();
    assert_eq!(resp.status(), 200, "ServiceNow's token still reads only ServiceNow's tickets");
    let items = resp.json::<Value>().await.unwrap()["items"].as_array().unwrap().len();
    assert_eq!(items, 1);
}
crate::per_backend!(tls_and_mutual_tls_are_enforced, super::tls_and_mutual_tls);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_minimum_version_is_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"));
    let p = pki.dir.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.tls.cert_file = Some(p.join("server.pem"));
        s.tls.key_file = Some(p.join("server.key"));
        s.tls.min_version = "1.3".into();
    })
    .await;
    let base = app.base.replace("http://", "https://");
    let old = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pki.ca.cert_pem()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(old.get(format!("{base}/healthz")).send().await.is_err(), "TLS 1.2 client refused");
    assert_eq!(pki.client(None).get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
}

async fn source_networks(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = contracts_with_auth(tmp.path(), "enovia.toml", "source_networks = [\"10.1.0.0/16\"]");
    let d2 = dir.clone();
    let token_via = |app: &TestApp, id: String, secret: String, xff: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.api("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")]);
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        req.send()
    };
    // No trusted proxies: X-Forwarded-For is ignored, the peer (127.0.0.1) is what counts.
    let app = TestApp::spawn_with(backend, |s| s.contracts_dir = d2).await;
    let (id, secret) = app.credentials(Some("enovia")).await;
    let resp = token_via(&app, id.clone(), secret.clone(), Some("10.1.2.3")).await.unwrap();
    assert_eq!(resp.status(), 403, "a spoofed X-Forwarded-For is ignored, even for a token");
    let body = resp.json::<Value>().await.unwrap();
    assert_eq!(body["code"], "source-not-allowed");
    assert_eq!(body["error"], "unauthorized_client", "RFC 6749's member for OAuth2 clients: {body}");
    // Other partners have no allowlist.
    let snow = app.token(Some("servicenow")).await;
    assert_eq!(app.get("/tickets", &snow).await.0, 200);
    drop(app);

    let app = TestApp::spawn_with(backend, |s| {
        s.contracts_dir = dir;
        s.security.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let (id, secret) = app.credentials(Some("enovia")).await;
    assert_eq!(
        token_via(&app, id.clone(), secret.clone(), None).await.unwrap().status(),
        403,
        "the proxy itself is not the partner"
    );
    let resp = token_via(&app, id, secret, Some("10.1.2.3")).await.unwrap();
    assert_eq!(resp.status(), 200, "behind a trusted proxy, from the partner's network");
    let enovia = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let via = |xff: &'static str| {
        app.http.get(app.api("/tickets")).bearer_auth(&enovia).header("x-forwarded-for", xff).send()
    };
    assert_eq!(via("10.1.2.3").await.unwrap().status(), 200);
    assert_eq!(via("10.1.2.3, 192.0.2.9").await.unwrap().status(), 403, "the last untrusted hop counts");
    assert_eq!(app.get("/tickets", &enovia).await.0, 403, "a stolen token used from elsewhere");
}
crate::per_backend!(source_networks_and_trusted_proxies, super::source_networks);

async fn rate_limit(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = contracts_with_auth(tmp.path(), "servicenow.toml", "rate_limit_per_minute = 3");
    let app = TestApp::spawn_with(backend, |s| s.contracts_dir = dir).await;
    let snow = app.token(Some("servicenow")).await;
    for _ in 0..3 {
        assert_eq!(app.get("/tickets", &snow).await.0, 200);
    }
    let (status, body, headers) = app.get("/tickets", &snow).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate-limited");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let admin = app.token(None).await;
    let (_, page, _) = app.get("/admin/transactions?result=rejected&partner=servicenow", &admin).await;
    assert_eq!(page["items"][0]["status"], 429, "the refused request is logged");
}
crate::per_backend!(inbound_rate_limit_is_429_with_retry_after, super::rate_limit);

async fn lockout(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.security.lockout_threshold = 3;
        s.security.lockout_secs = 1;
    })
    .await;
    let admin = app.token(None).await;
    let (id, secret) = app.credentials(Some("servicenow")).await;
    for _ in 0..3 {
        assert_eq!(token_with(&app.http, &app.base, &id, "wrong-secret", None).await.status(), 401);
    }
    let resp = token_with(&app.http, &app.base, &id, &secret, None).await;
    assert_eq!(resp.status(), 429, "locked out even with the right secret");
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["code"].as_str()),
        (Some("temporarily_unavailable"), Some("locked-out")),
        "{body}"
    );
    let (_, page, _) = app.get(&format!("/admin/auth-events?client_id={id}"), &admin).await;
    let reasons: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["locked_out", "bad_secret", "bad_secret", "bad_secret"]);
    assert_eq!(page["items"][0]["source"], "127.0.0.1");
    assert!(!page.to_string().contains("wrong-secret") && !page.to_string().contains(&secret));
    // An operator clears the lockout: the client gets a token at once, and the clearing is an
    // authentication event of its own.
    let (status, body, _) = app
        .send_json(reqwest::Method::POST, "/admin/lockouts/clear", &admin, &serde_json::json!({"client_id": id}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(token_with(&app.http, &app.base, &id, &secret, None).await.status(), 200, "cleared");
    let (_, page, _) = app.get(&format!("/admin/auth-events?client_id={id}&outcome=cleared"), &admin).await;
    assert!(page["items"][0]["reason"].as_str().unwrap().starts_with("operator:"), "{page}");
    let (status, body, _) =
        app.send_json(reqwest::Method::POST, "/admin/lockouts/clear", &admin, &serde_json::json!({})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad-body")), "nothing named: {body}");
    let snow = app.token(Some("servicenow")).await;
    let (status, _, _) = app
        .send_json(reqwest::Method::POST, "/admin/lockouts/clear", &snow, &serde_json::json!({"client_id": id}))
        .await;
    assert_eq!(status, 403, "partners may not clear lockouts");
    // Locked out again, it expires by itself too.
    for _ in 0..3 {
        assert_eq!(token_with(&app.http, &app.base, &id, "wrong-secret", None).await.status(), 401);
    }
    assert_eq!(token_with(&app.http, &app.base, &id, &secret, None).await.status(), 429);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(token_with(&app.http, &app.base, &id, &secret, None).await.status(), 200, "the lockout expires");
    // Stale bearer tokens (a partner's workers after expiry) do not lock the partner out.
    for _ in 0..5 {
        assert_eq!(app.get("/tickets", "expired-or-unknown").await.0, 401);
    }
    assert_eq!(token_with(&app.http, &app.base, &id, &secret, None).await.status(), 200);
}
crate::per_backend!(lockout_engages_and_expires, super::lockout);

pub(crate) fn cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"));
    cmd.args(args)
        .env("EBOND_DATABASE_URL", app.settings.effective_database_url())
        .env("EBOND_CONTRACTS_DIR", &app.settings.contracts_dir)
        .env("EBOND_DATA_DIR", &app.settings.data_dir)
        .env("EBOND_AUTH_PBKDF2_ITERATIONS", "1000")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ok, out, err) = cli(&app, &["partner", "credentials", "issue", "servicenow", "--json"], None);
    assert!(ok, "{err}");
    let c1: Value = serde_json::from_str(&out).unwrap();
    let id = c1["client_id"].as_str().unwrap().to_string();
    let s1 = c1["client_secret"].as_str().unwrap().to_string();
    let t1 = token_json(&app.http, &app.base, &id, &s1).await;

    // Rotation with an overlap: old and new secrets both work.
    let (ok, out, err) =
        cli(&app, &["partner", "credentials", "rotate", "servicenow", "--overlap", "1h", "--json"], None);
    assert!(ok, "{err}");
    let s2 = serde_json::from_str::<Value>(&out).unwrap()["client_secret"].as_str().unwrap().to_string();
    assert_eq!(token_with(&app.http, &app.base, &id, &s1, None).await.status(), 200, "old secret during the overlap");
    assert_eq!(token_with(&app.http, &app.base, &id, &s2, None).await.status(), 200);
    // A second rotation during the overlap is refused (it would end the overlap silently)…
    let (ok, _, err) =
        cli(&app, &["partner", "credentials", "rotate", "servicenow", "--overlap", "0s", "--json"], None);
    assert!(!ok && err.contains("--force"), "{err}");
    // …unless forced: without overlap, the previous secret stops at once.
    let (ok, out, err) =
        cli(&app, &["partner", "credentials", "rotate", "servicenow", "--overlap", "0s", "--force", "--json"], None);
    assert!(ok, "{err}");
    let s3 = serde_json::from_str::<Value>(&out).unwrap()["client_secret"].as_str().unwrap().to_string();
    assert_eq!(token_with(&app.http, &app.base, &id, &s2, None).await.status(), 401, "rotated out");
    assert_eq!(token_with(&app.http, &app.base, &id, &s1, None).await.status(), 401);
    assert_eq!(token_with(&app.http, &app.base, &id, &s3, None).await.status(), 200);
    assert_eq!(app.get("/tickets", &t1).await.0, 200, "tokens issued before stay valid until revoked or expired");

    // Revocation: every token of the credential stops at once.
    let (ok, _, err) = cli(&app, &["partner", "credentials", "revoke", "servicenow"], None);
    assert!(ok, "{err}");
    assert_eq!(app.get("/tickets", &t1).await.0, 401);
    assert_eq!(token_with(&app.http, &app.base, &id, &s3, None).await.status(), 401);

    // Read-only credentials, and read-only tokens from a read-write credential.
    let (ok, out, _) = cli(&app, &["partner", "credentials", "issue", "enovia", "--read-only", "--json"], None);
    assert!(ok);
    let ro: Value = serde_json::from_str(&out).unwrap();
    let resp = token_with(
        &app.http,
        &app.base,
        ro["client_id"].as_str().unwrap(),
        ro["client_secret"].as_str().unwrap(),
        None,
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "tickets:read");
    let ro_token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/tickets", &ro_token).await.0, 200);
    let (status, body) = app.post("/tickets", &ro_token, &enovia_issue("ISS-0000001")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "read-only-token");
    let (id, secret) = app.credentials(Some("enovia")).await;
    let resp = token_with(&app.http, &app.base, &id, &secret, Some("tickets:read")).await;
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["scope"], "tickets:read");
    assert_eq!(app.post("/tickets", t["access_token"].as_str().unwrap(), &enovia_issue("ISS-0000002")).await.0, 403);
    assert_eq!(token_with(&app.http, &app.base, &id, &secret, Some("admin")).await.status(), 400, "no escalation");
}
crate::per_backend!(credential_rotation_revocation_and_read_only, super::lifecycle);

fn sign(id: &str, ts: i64, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD.decode(SIGNING_SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

async fn signed_events(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = contracts_with_auth(tmp.path(), "enovia.toml", "webhook_secret = \"db:webhook\"");
    let app = TestApp::spawn_with(backend, |s| s.contracts_dir = dir).await;
    // The secret goes into the database encrypted, from standard input.
    let (ok, out, err) =
        cli(&app, &["partner", "secret", "set", "enovia", "webhook"], Some(&format!("{SIGNING_SECRET}\n")));
    assert!(ok, "{err}");
    assert!(out.contains("db:webhook") && !out.contains(SIGNING_SECRET) && !err.contains(SIGNING_SECRET));
    let key_file = app.settings.data_dir.join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let db = app.db.clone();
    let sealed = tokio::task::spawn_blocking(move || {
        db.read_now(|c| c.get_secret("enovia", "webhook").map_err(ebond::store::StoreError::from)).unwrap().unwrap()
    })
    .await
    .unwrap();
    assert!(sealed.starts_with("v1:") && !sealed.contains(SIGNING_SECRET.trim_start_matches("whsec_")));

    let send = |id: String, ts: i64, body: Vec<u8>, signature: Option<String>| {
        let mut req = app
            .http
            .post(app.api("/events"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(sig) = signature {
            req = req.header("webhook-signature", sig);
        }
        req.body(body).send()
    };
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::to_vec(&enovia_issue("ISS-0000777")).unwrap();
    let resp = send("evt_1".into(), now, body.clone(), Some(sign("evt_1", now, &body))).await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    // The same event again: refused as a replay.
    let resp = send("evt_1".into(), now, body.clone(), Some(sign("evt_1", now, &body))).await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "webhook-replayed");
    // Re-signed with an old timestamp.
    let old = now - 6 * 60;
    let resp = send("evt_2".into(), old, body.clone(), Some(sign("evt_2", old, &body))).await.unwrap();
    assert_eq!(resp.status(), 401);
    // Tampered body, wrong secret, no signature.
    let tampered = serde_json::to_vec(&json!({"data": {"name": "ISS-0000777", "title": "hijacked"}})).unwrap();
    assert_eq!(
        send("evt_3".into(), now, tampered.clone(), Some(sign("evt_3", now, &body))).await.unwrap().status(),
        401
    );
    assert_eq!(send("evt_4".into(), now, body.clone(), Some("v1,AAAA".into())).await.unwrap().status(), 401);
    assert_eq!(send("evt_5".into(), now, body.clone(), None).await.unwrap().status(), 401);
    let long_id = "x".repeat(300);
    let resp = send(long_id.clone(), now, body.clone(), Some(sign(&long_id, now, &body))).await.unwrap();
    assert_eq!(resp.status(), 401, "an oversized webhook-id never reaches the database");
    let overflow = send("evt_8".into(), i64::MIN, body.clone(), Some("v1,AAAA".into())).await.unwrap();
    assert_eq!(overflow.status(), 401, "an absurd timestamp is refused, not a crash");
    // A signed update of the same issue goes through the contract and the workflow.
    let update = serde_json::to_vec(&json!({"data": {"name": "ISS-0000777", "title": "PLC reachable again"}})).unwrap();
    let resp = send("evt_6".into(), now, update.clone(), Some(sign("evt_6", now, &update))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["version"], 2);
    let bad = serde_json::to_vec(&json!({"data": {"name": "ISS-0000777", "Priority": "asap"}})).unwrap();
    let resp = send("evt_7".into(), now, bad.clone(), Some(sign("evt_7", now, &bad))).await.unwrap();
    assert_eq!(resp.status(), 422);
    let enovia = app.token(Some("enovia")).await;
    let (_, view, _) = app.get("/tickets/ISS-0000777", &enovia).await;
    assert_eq!(view["fields"]["data"]["title"], "PLC reachable again");
}
crate::per_backend!(signed_events_secrets_at_rest_replay_and_forgery, super::signed_events);

async fn isolation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let snow = app.token(Some("servicenow")).await;
    let enovia = app.token(Some("enovia")).await;
    let send = |token: &str, key: &str, body: &Value| {
        app.http.post(app.api("/tickets")).bearer_auth(token).header("idempotency-key", key).json(body).send()
    };
    assert_eq!(send(&snow, "same-key", &servicenow_incident("INC0000001")).await.unwrap().status(), 201);
    let resp = send(&enovia, "same-key", &enovia_issue("ISS-0000001")).await.unwrap();
    assert_eq!(resp.status(), 201, "idempotency keys are per partner");
    assert!(!resp.headers().contains_key("idempotency-replayed"));
    // ServiceNow's ticket EB0000001 is not shared with ENOVIA: no path reaches it.
    for path in ["/tickets/INC0000001", "/tickets/EB0000001"] {
        assert_eq!(app.get(path, &enovia).await.0, 404, "read {path}");
        assert_eq!(app.patch(path, &enovia, &json!({"data": {"title": "x"}})).await.0, 404, "write {path}");
        let (s, _) = app.post(&format!("{path}/work-notes"), &enovia, &json!({"text": "x"})).await;
        assert!(s == 403 || s == 404, "work note {path}: {s}");
    }
    let (_, page, _) = app.get("/tickets", &enovia).await;
    let numbers: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["EB0000002"]);
    // ServiceNow shares ENOVIA's ticket (it subscribes to everything) but not by ENOVIA's id.
    assert_eq!(app.get("/tickets/ISS-0000001", &snow).await.0, 404);
    assert_eq!(app.get("/tickets/EB0000002", &snow).await.0, 200);
    // Partner tokens never reach operator endpoints.
    for path in ["/admin/transactions", "/admin/outbox", "/admin/auth-events", "/admin/tickets/EB0000001/sync"] {
        assert_eq!(app.get(path, &snow).await.0, 403, "{path}");
    }
}
crate::per_backend!(partners_are_isolated_by_every_path, super::isolation);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardening_headers_depth_and_clean_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let snow = app.token(Some("servicenow")).await;
    let resp = app.http.get(app.api("/tickets")).bearer_auth(&snow).send().await.unwrap();
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));

    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let resp = app
        .http
        .post(app.api("/tickets"))
        .bearer_auth(&snow)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "json-too-deep");

    // Its own client: the server drops that connection, which must not be reused below.
    let flood = reqwest::Client::new();
    let mut req = flood.get(app.api("/tickets")).bearer_auth(&snow);
    for i in 0..120 {
        req = req.header(format!("x-filler-{i}"), "x");
    }
    let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    assert!(status == 431 || status == 400 || status == 0, "too many headers: {status}");

    // Problem bodies carry no internals.
    let (_, body) = app.patch("/tickets/INC9", &snow, &json!({"short_description": 1})).await;
    let allowed: std::collections::HashSet<&str> =
        ["type", "title", "status", "detail", "code", "errors"].into_iter().collect();
    let keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    assert!(keys.iter().all(|k| allowed.contains(k.as_str())), "{body}");
    let text = body.to_string().to_lowercase();
    for leak in ["select ", "diesel", "sqlite", "postgres", "/src/", "panicked", "backtrace"] {
        assert!(!text.contains(leak), "{leak} in {body}");
    }
    let _ = HashMap::<u8, u8>::new();
}
