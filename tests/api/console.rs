//! The operator console over plain HTTP: sign-in (operators only, lockout, auth events),
//! the session cookie and the security headers, CSRF on every form, read-only operators,
//! expiry and sign-out, every page answering, and actions audited under the operator. The
//! browser itself drives the console in `console_browser`. Both databases.

use crate::helpers::*;
use crate::{backend_test, delivery_test};
use ebond::with_conn;
use serde_json::json;

/// A signed-in console session, driven by hand: its cookie and its CSRF token.
pub(crate) struct Console {
    pub cookie: String,
    pub csrf: String,
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(header: &str) -> String {
    header.split(';').next().unwrap_or("").split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default()
}

/// The hidden CSRF field of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// Posts the sign-in form as a browser would (cookie and hidden field from the form's page).
async fn sign_in_response(app: &TestApp, client_id: &str, secret: &str) -> reqwest::Response {
    let form = app.http.get(app.url("/console/sign-in")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let token_cookie = cookie_value(&set_cookie(&form, "ebond_console_sign_in").expect("the sign-in cookie"));
    let html = form.text().await.unwrap();
    app.http
        .post(app.url("/console/sign-in"))
        .header("cookie", format!("ebond_console_sign_in={token_cookie}"))
        .form(&[("csrf", csrf_of(&html).as_str()), ("client_id", client_id), ("client_secret", secret)])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn sign_in(app: &TestApp, client_id: &str, secret: &str) -> Console {
    let resp = sign_in_response(app, client_id, secret).await;
    assert_eq!(resp.status(), 303, "signed in");
    let cookie = cookie_value(&set_cookie(&resp, "ebond_console").expect("a session cookie"));
    let page =
        app.http.get(app.url("/console/")).header("cookie", format!("ebond_console={cookie}")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    Console { cookie, csrf }
}

impl Console {
    pub async fn get(&self, app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let resp = app
            .http
            .get(app.url(path))
            .header("cookie", format!("ebond_console={}", self.cookie))
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, resp.text().await.unwrap(), headers)
    }

    /// Posts a form with the session's CSRF token (or without any, `csrf: false`).
    pub async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)], csrf: bool) -> (u16, String, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            form.push(("csrf", &self.csrf));
        }
        let resp = app
            .http
            .post(app.url(path))
            .header("cookie", format!("ebond_console={}", self.cookie))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (status, resp.text().await.unwrap(), location)
    }
}

/// A read-only operator credential (`ebond admin credentials issue --read-only`).
pub(crate) async fn read_only_operator(app: &TestApp) -> (String, String) {
    let db = app.db.clone();
    let iterations = app.settings.auth.pbkdf2_iterations;
    let cred = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential_scoped(
            c, None, true, ebond::auth::CredentialKind::Client, None, iterations))
    })
    .await
    .unwrap()
    .unwrap();
    (cred.client_id, cred.client_secret)
}

/// Runs SQL on the test database (to age a session past its limits).
pub(crate) async fn sql(app: &TestApp, statement: &str) {
    let db = app.db.clone();
    let statement = statement.to_string();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = db.get().unwrap();
        with_conn!(&mut conn, c => diesel::sql_query(&statement).execute(c)).unwrap();
    })
    .await
    .unwrap();
}

/// The newest authentication event's outcome and reason (read from the store: the token
/// endpoint may be locked out for this address).
async fn last_auth_event(app: &TestApp) -> (String, String) {
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        let rows = with_conn!(&mut conn, c => ebond::store::auth_events::AuthEventRepo::list_auth_events(c, None, None, None, 1))
            .unwrap();
        let e = rows.into_iter().next().expect("an authentication event");
        (e.outcome, e.reason)
    })
    .await
    .unwrap()
}

backend_test!(sign_in_makes_a_strict_session_and_sign_out_ends_it_everywhere, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let resp = sign_in_response(&app, &id, &secret).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console/");
    let cookie = set_cookie(&resp, "ebond_console").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    assert_eq!(last_auth_event(&app).await, ("success".into(), "console_sign_in".into()));

    let console = sign_in(&app, &id, &secret).await;
    let (status, html, headers) = console.get(&app, "/console/").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")), "the one script carries this response's nonce");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!html.contains(&secret), "no secret on a page");

    let (status, _, location) = console.post(&app, "/console/sign-out", &[], true).await;
    assert_eq!((status, location.as_str()), (303, "/console/sign-in?reason=signed-out"));
    let (status, _, headers) = console.get(&app, "/console/").await;
    assert_eq!(status, 303, "the session is over in the database, not only in the browser");
    assert_eq!(headers["location"], "/console/sign-in?reason=signed-out");
});

backend_test!(only_operators_sign_in_and_failures_count_towards_lockout, |app: TestApp| async move {
    let (partner_id, partner_secret) = app.credentials(Some("servicenow")).await;
    let resp = sign_in_response(&app, &partner_id, &partner_secret).await;
    assert_eq!(resp.status(), 403, "partner credentials never open the console");
    assert!(resp.text().await.unwrap().contains("operator"), "and the page says why");
    assert_eq!(last_auth_event(&app).await, ("refused".into(), "not_operator".into()));

    let (id, _) = app.credentials(None).await;
    let resp = sign_in_response(&app, &id, "ebs_wrong").await;
    assert_eq!(resp.status(), 401);
    let html = resp.text().await.unwrap();
    assert!(html.contains("client authentication failed") && html.contains(&id), "the form again, with the id kept");
    assert_eq!(last_auth_event(&app).await, ("failure".into(), "bad_secret".into()));
    assert_eq!(sign_in_response(&app, "admin.x\0y", "ebs_x").await.status(), 400, "a NUL is a bad request");

    // The form without the token its page set: refused before any secret is checked.
    let resp = app
        .http
        .post(app.url("/console/sign-in"))
        .form(&[("client_id", id.as_str()), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
});

backend_test!(sign_in_is_locked_out_like_the_token_endpoint, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let threshold = app.settings.security.lockout_threshold;
    for _ in 0..threshold {
        assert_eq!(sign_in_response(&app, &id, "ebs_wrong").await.status(), 401);
    }
    let resp = sign_in_response(&app, &id, &secret).await;
    assert_eq!(resp.status(), 429, "even the right secret waits out the lockout");
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(last_auth_event(&app).await, ("refused".into(), "locked_out".into()));
});

backend_test!(every_page_answers_and_unknown_ones_are_404, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    for path in [
        "/console/",
        "/console/partners/servicenow",
        "/console/partners/servicenow/contract",
        "/console/dead-letters",
        "/console/dead-letters?partner=acme-msp&event=created&older_than=1h",
        "/console/dead-letters/bulk?action=replay",
        "/console/conflicts",
        "/console/reconcile",
        "/console/tickets",
        "/console/audit?result=rejected",
        "/console/auth-events",
        "/console/contracts",
    ] {
        let (status, html, _) = console.get(&app, path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
    }
    for (path, status) in [
        ("/console/partners/nobody", 404),
        ("/console/dead-letters/999999", 404),
        ("/console/conflicts/999999", 404),
        ("/console/tickets/EB9999999", 404),
        ("/console/tickets?q=NOPE-1", 404),
        ("/console/dead-letters?older_than=soon", 400),
        ("/console/dead-letters?older_than=99999999999999999d", 400),
        // A NUL reaches no query (PostgreSQL could not even look it up): a clear 400.
        ("/console/tickets?q=ACME%00-1", 400),
        ("/console/audit?partner=servicenow%00", 400),
        ("/console/dead-letters?partner=nobody", 400),
        ("/console/nothing-here", 404),
    ] {
        assert_eq!(console.get(&app, path).await.0, status, "{path}");
    }
    // Without a session every page sends the browser to sign in.
    let resp = app.http.get(app.url("/console/conflicts")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console/sign-in?reason=signed-out");
});

backend_test!(forms_need_the_session_token_and_a_writing_operator, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let admin = sign_in(&app, &id, &secret).await;
    let (status, html, _) = admin.post(&app, "/console/partners/acme-msp/pause", &[], false).await;
    assert_eq!(status, 403, "no CSRF token: refused");
    assert!(html.contains("CSRF"), "{html}");
    let (status, _, _) = admin.post(&app, "/console/partners/acme-msp/pause", &[("csrf", "forged")], false).await;
    assert_eq!(status, 403, "a wrong one too");
    let (_, page, _) = admin.get(&app, "/console/partners/acme-msp").await;
    assert!(page.contains("Pause deliveries"), "still running");

    let (ro_id, ro_secret) = read_only_operator(&app).await;
    let reader = sign_in(&app, &ro_id, &ro_secret).await;
    let (status, page, _) = reader.get(&app, "/console/partners/acme-msp").await;
    assert_eq!(status, 200, "a read-only operator reads every page");
    assert!(page.contains("(read-only)"));
    let (status, html, _) = reader.post(&app, "/console/partners/acme-msp/pause", &[], true).await;
    assert_eq!(status, 403, "but acts on none, even with a valid token");
    assert!(html.contains("read-only"), "{html}");
    assert_eq!(reader.post(&app, "/console/sign-out", &[], true).await.0, 303, "it may sign out");

    let (status, _, location) = admin.post(&app, "/console/partners/acme-msp/pause", &[], true).await;
    assert_eq!((status, location.as_str()), (303, "/console/partners/acme-msp"));
    let (_, page, _) = admin.get(&app, "/console/partners/acme-msp").await;
    assert!(page.contains("Resume deliveries"), "paused");

    // Each attempt is in the audit trail under the operator's credential.
    let token = app.token(None).await;
    let (_, rows, _) = app.get("/admin/transactions?limit=50", &token).await;
    let rows: Vec<(String, String, String)> = rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/console/partners/acme-msp/pause")
        .map(|r| {
            (
                r["partner"].as_str().unwrap_or("").to_string(),
                r["result"].as_str().unwrap().to_string(),
                r["error_codes"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 4, "no token, a forged one, the read-only operator, the admin: {rows:?}");
    assert!(rows.iter().any(|(_, res, code)| res == "rejected" && code == "csrf"), "{rows:?}");
    assert!(rows
        .iter()
        .any(|(who, res, code)| who.starts_with("operator:") && res == "rejected" && code == "read-only-operator"));
    assert!(rows.iter().any(|(who, res, _)| who.starts_with("operator:") && res == "accepted"));
});

backend_test!(an_expired_or_idle_session_is_refused, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    sql(&app, "UPDATE console_sessions SET expires_at = 1").await;
    let (status, _, location) = console.post(&app, "/console/partners/acme-msp/pause", &[], true).await;
    assert_eq!((status, location.as_str()), (303, "/console/sign-in?reason=expired"));
    let page = app.http.get(app.url("/console/sign-in?reason=expired")).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("Your session expired"));

    let console = sign_in(&app, &id, &secret).await;
    sql(&app, "UPDATE console_sessions SET last_seen_at = 1 WHERE ended_at IS NULL AND expires_at > 1").await;
    assert_eq!(console.get(&app, "/console/").await.0, 303, "idle past auth.console_idle_secs");

    let fresh = sign_in(&app, &id, &secret).await;
    let (_, page, _) = fresh.get(&app, "/console/partners/acme-msp").await;
    assert!(page.contains("Pause deliveries"), "the refused action did nothing");
});

backend_test!(a_read_only_operator_token_reads_the_admin_api_and_changes_nothing, |app: TestApp| async move {
    let (id, secret) = read_only_operator(&app).await;
    assert!(id.starts_with("operator."), "{id}");
    let resp = app
        .http
        .post(app.api("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "admin:read");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/admin/partners", token).await.0, 200);
    let (status, problem) = app.post("/admin/partners/acme-msp/pause", token, &json!({})).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("read-only-operator")), "{problem}");
    let (status, _) = app.post("/tickets", token, &servicenow_incident("INC0090001")).await;
    assert_eq!(status, 403, "no partner endpoint either");
});

delivery_test!(
    dead_letters_replay_in_bulk_after_a_count,
    |_s| {},
    |app: TestApp, f: crate::fakes::Partners| async move {
        let snow = app.token(Some("servicenow")).await;
        f.acme.script(1_000, |_| true, wiremock::ResponseTemplate::new(500).set_body_string("acme is down"));
        let mut numbers = Vec::new();
        for i in 0..3 {
            let mut body = servicenow_incident(&format!("INC009100{i}"));
            body["assignment_group"] = json!("Acme L2");
            let (s, created) = app.post("/tickets", &snow, &body).await;
            assert_eq!(s, 201, "{created}");
            numbers.push(created["number"].as_str().unwrap().to_string());
        }
        for n in &numbers {
            wait_dead(&app, n).await;
        }
        let (id, secret) = app.credentials(None).await;
        let console = sign_in(&app, &id, &secret).await;
        let (_, page, _) = console.get(&app, "/console/dead-letters/bulk?action=replay&partner=acme-msp").await;
        assert!(page.contains("data-confirm-count=\"3\""), "the confirmation says how many: {page}");
        let (_, page, _) =
            console.get(&app, "/console/dead-letters/bulk?action=replay&partner=acme-msp&event=updated").await;
        assert!(page.contains("data-confirm-count=\"0\""), "only what the filter matches");
        f.acme.clear_script();
        // The action replays what the confirmation counted, not what died since.
        let (_, page, _) = console.get(&app, "/console/dead-letters/bulk?action=replay&partner=acme-msp").await;
        let max_id = page.split("name=\"max_id\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let (status, _, _) = console
            .post(&app, "/console/dead-letters/bulk", &[("action", "replay"), ("partner", "acme-msp")], true)
            .await;
        assert_eq!(status, 400, "not without a confirmation");
        let (status, page, _) = console
            .post(
                &app,
                "/console/dead-letters/bulk",
                &[("action", "replay"), ("partner", "acme-msp"), ("max_id", &max_id)],
                true,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("data-done-count=\"3\""), "{page}");
        for n in &numbers {
            crate::conflicts::settled(&app, n).await;
        }
    }
);

/// Waits until ticket `number`'s delivery to Acme is a dead letter.
pub(crate) async fn wait_dead(app: &TestApp, number: &str) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(r) =
            app.outbox_rows(number).await.into_iter().find(|r| r.partner == "acme-msp" && r.status == "dead")
        {
            return r.id;
        }
        assert!(std::time::Instant::now() < deadline, "{number} never became a dead letter");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

crate::per_backend!(cookies_are_secure_behind_a_trusted_tls_proxy, super::behind_a_tls_proxy);

async fn behind_a_tls_proxy(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.security.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let (id, secret) = app.credentials(None).await;
    let form = app.http.get(app.url("/console/sign-in")).header("x-forwarded-proto", "https").send().await.unwrap();
    let token_cookie = set_cookie(&form, "ebond_console_sign_in").unwrap();
    assert!(token_cookie.contains("Secure"), "{token_cookie}");
    let html = form.text().await.unwrap();
    let resp = app
        .http
        .post(app.url("/console/sign-in"))
        .header("x-forwarded-proto", "https")
        .header("cookie", format!("ebond_console_sign_in={}", cookie_value(&token_cookie)))
        .form(&[("csrf", csrf_of(&html).as_str()), ("client_id", id.as_str()), ("client_secret", secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = set_cookie(&resp, "ebond_console").unwrap();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
}

backend_test!(a_reconciliation_starts_from_the_console, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    let (status, _, location) = console
        .post(&app, "/console/reconcile", &[("partner", "servicenow"), ("scope", "open"), ("mode", "dry_run")], true)
        .await;
    assert_eq!(status, 303);
    assert!(location.starts_with("/console/reconcile/runs/"), "{location}");
    let (status, page, _) = console.get(&app, &location).await;
    assert_eq!(status, 200);
    assert!(page.contains("dry run") && page.contains("servicenow"), "{page}");
    let (_, runs, _) = console.get(&app, "/console/reconcile").await;
    assert!(runs.contains("console:operator:"), "the run names who started it: {runs}");
    let (status, page, _) =
        console.post(&app, "/console/reconcile", &[("partner", "acme-msp"), ("mode", "dry_run")], true).await;
    assert_eq!(status, 409, "Acme's contract has no read_url: {page}");
    let (status, _, _) = console.post(&app, "/console/reconcile", &[("partner", "servicenow")], true).await;
    assert_eq!(status, 400, "a dry run or a heal, said");
});

backend_test!(credentials_rotate_and_revoke_from_the_partner_page, |app: TestApp| async move {
    let (partner_id, old_secret) = app.credentials(Some("servicenow")).await;
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    let (status, page, _) = console
        .post(
            &app,
            "/console/partners/servicenow/credentials/rotate",
            &[("client_id", &partner_id), ("overlap", "0s")],
            true,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let new_secret = page.split("data-secret>").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(new_secret.starts_with("ebs_"), "shown once: {new_secret}");
    let token = |s: String| {
        let (app, partner_id) = (&app, partner_id.clone());
        async move {
            app.http
                .post(app.api("/oauth/token"))
                .basic_auth(&partner_id, Some(&s))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(token(new_secret.clone()).await, 200, "the new secret works");
    assert_eq!(token(old_secret).await, 401, "the old one stopped (no overlap asked for)");
    let (_, partner_page, _) = console.get(&app, "/console/partners/servicenow").await;
    assert!(!partner_page.contains(&new_secret), "the secret is shown once, never again");
    let (status, _, location) = console
        .post(&app, "/console/partners/servicenow/credentials/revoke", &[("client_id", &partner_id)], true)
        .await;
    assert_eq!((status, location.as_str()), (303, "/console/partners/servicenow"));
    assert_eq!(token(new_secret).await, 401, "revoked");
    let (status, _, _) = console
        .post(&app, "/console/partners/servicenow/credentials/revoke", &[("client_id", &partner_id)], true)
        .await;
    assert_eq!(status, 404, "nothing live to revoke any more");
});

backend_test!(contracts_reload_from_the_console, |app: TestApp| async move {
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    let (status, page, _) = console.post(&app, "/console/contracts/reload", &[], true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Reloaded: the folder holds what was in force."), "{page}");
    // The check's findings are shown: here the example contracts' secrets from unset variables.
    let check = page.split("<h2>Check</h2>").nth(1).unwrap_or("");
    assert!(check.contains("badge bad") && check.contains("EBOND_"), "{check}");
    let (ro_id, ro_secret) = read_only_operator(&app).await;
    let reader = sign_in(&app, &ro_id, &ro_secret).await;
    assert_eq!(reader.post(&app, "/console/contracts/reload", &[], true).await.0, 403);
});

backend_test!(a_lockout_is_cleared_from_the_auth_events_page, |app: TestApp| async move {
    let (locked, locked_secret) = app.credentials(None).await;
    for _ in 0..app.settings.security.lockout_threshold {
        assert_eq!(sign_in_response(&app, &locked, "ebs_wrong").await.status(), 401);
    }
    assert_eq!(sign_in_response(&app, &locked, &locked_secret).await.status(), 429, "locked out");
    // Another operator, from another address as far as the lockout knows: the client id is locked.
    let (id, secret) = app.credentials(None).await;
    sql(&app, "UPDATE auth_events SET source = '192.0.2.1'").await;
    let console = sign_in(&app, &id, &secret).await;
    let (status, _, location) = console.post(&app, "/console/lockouts/clear", &[("client_id", &locked)], true).await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/console/auth-events?client_id={locked}"));
    let (_, page, _) = console.get(&app, &location).await;
    assert!(page.contains("cleared"), "the clearing is an authentication event: {page}");
    assert_eq!(sign_in_response(&app, &locked, &locked_secret).await.status(), 303, "signs in again");
    let (status, _, _) = console.post(&app, "/console/lockouts/clear", &[], true).await;
    assert_eq!(status, 400, "a client id or an address, said");
});

crate::per_backend!(a_pull_run_starts_from_the_partner_page, super::pull_from_the_console);

async fn pull_from_the_console(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.sync.schedule = false).await;
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    let (_, page, _) = console.get(&app, "/console/partners/servicenow").await;
    assert!(page.contains("Start a pull run"), "ServiceNow's contract has [pull]");
    let (_, page, _) = console.get(&app, "/console/partners/acme-msp").await;
    assert!(!page.contains("Start a pull run"), "Acme's has none");
    let (status, _, location) = console.post(&app, "/console/partners/servicenow/pull", &[], true).await;
    assert_eq!((status, location.as_str()), (303, "/console/partners/servicenow"));
    let (_, page, _) = console.get(&app, "/console/partners/servicenow").await;
    assert!(page.contains("data-run-id=") && page.contains("console:operator:"), "the run is listed: {page}");
    let (status, _, _) = console.post(&app, "/console/partners/acme-msp/pull", &[], true).await;
    assert_eq!(status, 409, "no [pull] in Acme's contract");
}

crate::per_backend!(a_shadow_contract_is_promoted_and_dropped_from_the_console, super::shadow_from_the_console);

async fn shadow_from_the_console(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = crate::reload::copy_contracts(&tmp.path().join("contracts"));
    let live = std::fs::read_to_string(dir.join("servicenow.toml")).unwrap();
    std::fs::write(dir.join("servicenow.shadow.toml"), &live).unwrap();
    crate::reload::set_version(&dir, "servicenow.shadow", "2.0.0");
    let d2 = dir.clone();
    let app = TestApp::spawn_with(backend, move |s| s.contracts_dir = d2).await;
    let (id, secret) = app.credentials(None).await;
    let console = sign_in(&app, &id, &secret).await;
    let (_, page, _) = console.get(&app, "/console/contracts").await;
    assert!(page.contains("data-shadow=\"servicenow\""), "the shadow is listed: {page}");

    let (status, page, _) = console.post(&app, "/console/contracts/servicenow/shadow/promote", &[], true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-shadow-outcome=\"promoted\"") && page.contains("version 2.0.0 is in force"), "{page}");
    assert!(!page.contains("data-shadow=\"servicenow\""), "no shadow any more");

    // A next one, loaded by a reload from the console, then dropped: 2.0.0 stays.
    std::fs::write(dir.join("servicenow.shadow.toml"), std::fs::read_to_string(dir.join("servicenow.toml")).unwrap())
        .unwrap();
    crate::reload::set_version(&dir, "servicenow.shadow", "3.0.0");
    assert_eq!(console.post(&app, "/console/contracts/reload", &[], true).await.0, 200);
    let (status, page, _) = console.post(&app, "/console/contracts/servicenow/shadow/drop", &[], true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-shadow-outcome=\"dropped\"") && page.contains("version 2.0.0 is in force"), "{page}");
    let (status, _, _) = console.post(&app, "/console/contracts/servicenow/shadow/drop", &[], true).await;
    assert_eq!(status, 404, "no shadow left to drop");
}
