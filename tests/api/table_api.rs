//! The ServiceNow Table-API facade over real HTTP: records in ServiceNow's shape, encoded
//! queries (each operator and joiner, paging, injection attempts), writes through the contract,
//! deletes as cancels, the batch API, Basic logins and the OAuth grants of `/oauth_token.do`.

use crate::backend_test;
use crate::helpers::TestApp;
use ebond::with_conn;
use reqwest::Method;
use serde_json::{json, Value};

/// A facade login of `partner`, issued in the store as `ebond partner credentials issue
/// --table-api` does.
pub async fn login(app: &TestApp, partner: &str, read_only: bool) -> (String, String) {
    let db = app.db.clone();
    let partner = partner.to_string();
    let iterations = app.settings.auth.pbkdf2_iterations;
    let cred = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("conn");
        with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential_scoped(
            c, Some(&partner), read_only, ebond::auth::CredentialKind::Login, None, iterations))
    })
    .await
    .expect("join")
    .expect("issue login");
    (cred.client_id, cred.client_secret)
}

struct Snow<'a> {
    app: &'a TestApp,
    user: String,
    password: String,
}

impl Snow<'_> {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut rb = self.app.http.request(method, self.app.url(path)).basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
    }

    async fn get(&self, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        self.send(Method::GET, path, None).await
    }

    async fn create(&self, fields: Value) -> Value {
        let (s, b, _) = self.send(Method::POST, "/api/now/table/incident", Some(fields)).await;
        assert_eq!(s, 201, "{b}");
        b["result"].clone()
    }

    /// The records a query selects, all pages, and the total the first page announced.
    async fn query(&self, q: &str) -> (Vec<Value>, i64) {
        let url = format!("/api/now/table/incident?sysparm_query={}", urlencode(q));
        let (s, b, h) = self.get(&url).await;
        assert_eq!(s, 200, "{q}: {b}");
        let total = h["x-total-count"].to_str().unwrap().parse().unwrap();
        (b["result"].as_array().unwrap().clone(), total)
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_string()
}

async fn snow(app: &TestApp) -> Snow<'_> {
    let (user, password) = login(app, "initech", false).await;
    Snow { app, user, password }
}

fn descriptions(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r["short_description"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

backend_test!(records_are_created_read_updated_and_canceled, |app: TestApp| async move {
    let snow = snow(&app).await;
    let (s, b, h) = snow
        .send(
            Method::POST,
            "/api/now/table/incident?sysparm_query=ignored%3D1&sysparm_limit=1",
            Some(json!({"short_description": "VPN down", "impact": "2", "urgency": "2", "work_notes": "first look",
                        "sys_id": "ffffffffffffffffffffffffffffffff", "number": "INC9999999"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let r = &b["result"];
    let sys_id = r["sys_id"].as_str().unwrap().to_string();
    assert!(ebond::facade::is_sys_id(&sys_id) && sys_id != "ffffffffffffffffffffffffffffffff", "ebond's sys_id: {r}");
    assert!(r["number"].as_str().unwrap().starts_with("EB"), "ebond's number: {r}");
    assert_eq!(
        (r["state"].as_str(), r["priority"].as_str(), r["sys_mod_count"].as_str()),
        (Some("1"), Some("3"), Some("0"))
    );
    assert_eq!(r["description"], "", "empty fields are empty strings");
    assert!(r.as_object().unwrap().values().all(Value::is_string), "every value a string: {r}");
    assert!(chrono::NaiveDateTime::parse_from_str(r["sys_created_on"].as_str().unwrap(), "%Y-%m-%d %H:%M:%S").is_ok());
    assert_eq!(h["location"].to_str().unwrap(), format!("{}/api/now/table/incident/{sys_id}", app.base));

    for prefix in ["/api/now", "/api/now/v1", "/api/now/v2"] {
        let (s, b, _) = snow.get(&format!("{prefix}/table/incident/{sys_id}")).await;
        assert_eq!((s, b["result"]["sys_id"].as_str()), (200, Some(sys_id.as_str())), "{prefix}: {b}");
    }
    let (s, b, _) = snow.get(&format!("/api/now/table/incident/{sys_id}?sysparm_display_value=true")).await;
    assert_eq!(
        (s, b["result"]["state"].as_str(), b["result"]["impact"].as_str()),
        (200, Some("New"), Some("2 - Medium")),
        "{b}"
    );
    let (_, b, _) = snow
        .get(&format!("/api/now/table/incident/{sys_id}?sysparm_display_value=ALL&sysparm_fields=state,sys_id,nope"))
        .await;
    assert_eq!(b["result"]["state"], json!({"display_value": "New", "value": "1"}));
    assert_eq!(b["result"].as_object().unwrap().len(), 2, "{b}");

    let path = format!("/api/now/table/incident/{sys_id}");
    let (s, b, _) = snow.send(Method::PATCH, &path, Some(json!({"state": "2", "assigned_to": "m.bolton"}))).await;
    assert_eq!(
        (s, b["result"]["state"].as_str(), b["result"]["sys_mod_count"].as_str()),
        (200, Some("2"), Some("1")),
        "{b}"
    );
    let (s, b, _) = snow.send(Method::PUT, &path, Some(json!({"category": "network"}))).await;
    assert_eq!(
        (s, b["result"]["category"].as_str(), b["result"]["assigned_to"].as_str()),
        (200, Some("network"), Some("m.bolton")),
        "PUT merges: {b}"
    );
    // Another table does not hold it.
    let (s, b, _) = snow.get(&format!("/api/now/table/change_request/{sys_id}")).await;
    assert_eq!(
        (s, b["error"]["message"].as_str(), b["status"].as_str()),
        (404, Some("No Record found"), Some("failure")),
        "{b}"
    );

    let (s, b, _) = snow.send(Method::DELETE, &path, None).await;
    assert_eq!((s, b), (204, Value::String(String::new())));
    let (s, b, _) = snow.get(&path).await;
    assert_eq!((s, b["result"]["state"].as_str()), (200, Some("8")), "a delete cancels; the record stays: {b}");
    let (s, _, _) = snow.send(Method::DELETE, &path, None).await;
    assert_eq!(s, 204, "deleting a canceled record again is no error");

    // The writes are in the transaction log under the partner.
    let admin = app.token(None).await;
    let (_, log, _) = app.get("/admin/transactions?partner=initech", &admin).await;
    assert!(log.to_string().contains("/api/now/table/incident"), "{log}");
});

backend_test!(bad_input_gets_servicenow_errors, |app: TestApp| async move {
    let snow = snow(&app).await;
    let (s, b, _) = snow.get("/api/now/table/sys_user").await;
    assert_eq!((s, b["error"]["message"].as_str()), (400, Some("Invalid table sys_user")), "{b}");
    let (s, b, _) = snow.get("/api/now/table/incident/not-a-sys-id").await;
    assert_eq!((s, b["error"]["message"].as_str()), (404, Some("No Record found")), "{b}");
    assert!(b["error"]["detail"].as_str().unwrap().contains("32 hexadecimal digits"), "{b}");
    let (s, b, _) = snow.get("/api/now/table/incident/0123456789abcdef0123456789abcdef").await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["detail"], "Record doesn't exist or ACL restricts the record retrieval");
    let (s, b, _) = snow.get("/api/now/table/incident?sysparm_offset=-1").await;
    assert_eq!(s, 400, "{b}");
    let (s, b, _) = snow.get("/api/now/table/incident?sysparm_limit=ten").await;
    assert_eq!(s, 400, "{b}");
    for (q, says) in [
        ("subcategory=x", "names no field"),
        ("short_description=a^JOINincident.sys_id=task.sys_id!active=true", "JOIN"),
        ("short_description=javascript:gs.getUserID()", "javascript"),
        ("caller_id.name=x", "dot-walked"),
        ("sys_updated_on>yesterday", "date-time"),
        ("work_notesLIKEx", "journal"),
        ("bogus", "condition is field, operator and value"),
        ("short_description;DROP TABLE tickets=1", "names no field"),
    ] {
        let (s, b, _) = snow.get(&format!("/api/now/table/incident?sysparm_query={}", urlencode(q))).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert!(b["error"]["detail"].as_str().unwrap().contains(says), "{q}: {b}");
    }
    // A create the contract refuses: the contract's field names and codes in the detail.
    let (s, b, _) =
        snow.send(Method::POST, "/api/now/table/incident", Some(json!({"impact": "9", "colour": "red"}))).await;
    assert_eq!(s, 422, "{b}");
    let detail = b["error"]["detail"].as_str().unwrap();
    for part in ["short_description (required)", "impact (enum)", "colour (unknown_field)"] {
        assert!(detail.contains(part), "{part} in {detail}");
    }
    // A delete the workflow does not allow from where the ticket is.
    let r = snow.create(json!({"short_description": "printer jam"})).await;
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    let (s, b, _) = snow.send(Method::PATCH, &path, Some(json!({"state": "2"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b, _) = snow
        .send(
            Method::PATCH,
            &path,
            Some(json!({"state": "6", "close_code": "Solution provided", "close_notes": "cleared"})),
        )
        .await;
    assert_eq!((s, b["result"]["state"].as_str()), (200, Some("6")), "{b}");
    let (s, b, _) = snow.send(Method::DELETE, &path, None).await;
    assert_eq!((s, b["error"]["message"].as_str()), (403, Some("Insufficient rights to delete record")), "{b}");
    assert!(b["error"]["detail"].as_str().unwrap().contains("state 6"), "in the partner's values: {b}");
    // Plain junk in the body.
    let resp = app
        .http
        .post(app.url("/api/now/table/incident"))
        .basic_auth(&snow.user, Some(&snow.password))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "failure", "{b}");
});

backend_test!(encoded_queries_select_and_page, |app: TestApp| async move {
    let snow = snow(&app).await;
    let rows = [
        ("alpha disk full", "1", "1", "ops", Some("INC0001001")),
        ("beta vpn", "2", "2", "net", None),
        ("gamma 100%_off", "3", "2", "", None),
        ("delta printer", "1", "3", "ops", Some("INC0001004")),
        ("epsilon disk slow", "2", "3", "net", None),
        ("zeta mail", "3", "1", "mail", None),
        ("eta phone", "2", "1", "ops", None),
    ];
    for (d, impact, urgency, cat, corr) in rows {
        let mut body = json!({"short_description": d, "impact": impact, "urgency": urgency, "category": cat});
        if let Some(c) = corr {
            body["correlation_id"] = c.into();
        }
        snow.create(body).await;
    }
    let cases: &[(&str, &[&str])] = &[
        ("impact=1", &["alpha disk full", "delta printer"]),
        ("impact!=1", &["beta vpn", "epsilon disk slow", "eta phone", "gamma 100%_off", "zeta mail"]),
        ("impact>2", &["gamma 100%_off", "zeta mail"]),
        ("impact>=2^urgency<2", &["eta phone", "zeta mail"]),
        ("urgency<=1", &["alpha disk full", "eta phone", "zeta mail"]),
        ("short_descriptionLIKEDISK", &["alpha disk full", "epsilon disk slow"]),
        ("short_descriptionNOT LIKEdisk^impact=2", &["beta vpn", "eta phone"]),
        ("short_descriptionSTARTSWITHe", &["epsilon disk slow", "eta phone"]),
        ("short_descriptionENDSWITHslow", &["epsilon disk slow"]),
        ("short_descriptionLIKE100%_", &["gamma 100%_off"]),
        ("short_descriptionLIKE%", &["gamma 100%_off"]),
        ("categoryINops,mail", &["alpha disk full", "delta printer", "eta phone", "zeta mail"]),
        ("categoryNOT INops,mail", &["beta vpn", "epsilon disk slow", "gamma 100%_off"]),
        ("categoryISEMPTY", &["gamma 100%_off"]),
        ("categoryISNOTEMPTY^impact=3", &["zeta mail"]),
        ("correlation_idISNOTEMPTY", &["alpha disk full", "delta printer"]),
        ("correlation_id=INC0001004", &["delta printer"]),
        ("category=", &["gamma 100%_off"]),
        ("categoryEMPTYSTRING", &[]),
        ("impactBETWEEN2@3^urgency=3", &["epsilon disk slow"]),
        ("impact=1^ORimpact=3^urgency=1", &["alpha disk full", "zeta mail"]),
        ("impact=1^urgency=3^NQcategory=mail", &["delta printer", "zeta mail"]),
        ("impactANYTHING^category=net", &["beta vpn", "epsilon disk slow"]),
        ("short_description=x' OR '1'='1", &[]),
        ("short_description=alpha disk full^EQ", &["alpha disk full"]),
        ("sys_created_on>2000-01-01 00:00:00^sys_updated_on<2999-01-01", &["alpha disk full", "beta vpn", "delta printer", "epsilon disk slow", "eta phone", "gamma 100%_off", "zeta mail"]),
        ("sys_created_onBETWEENjavascript:gs.dateGenerate('2000-01-01','start')@javascript:gs.dateGenerate('2001-01-01','end')", &[]),
        ("sys_mod_count=0^numberSTARTSWITHEB^sys_created_by=initech^impact=3", &["gamma 100%_off", "zeta mail"]),
    ];
    for (q, want) in cases {
        let (rows, total) = snow.query(q).await;
        assert_eq!(descriptions(&rows), *want, "{q}");
        assert_eq!(total as usize, want.len(), "X-Total-Count of {q}");
    }
    // Ordering by the partner's values, descending, then pages that do not overlap.
    let (rows, _) = snow.query("ORDERBYDESCimpact^ORDERBYshort_description").await;
    let first: Vec<&str> = rows.iter().take(2).map(|r| r["short_description"].as_str().unwrap()).collect();
    assert_eq!(first, ["gamma 100%_off", "zeta mail"]);
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let url =
            format!("/api/now/table/incident?sysparm_query=ORDERBYsys_id&sysparm_limit=3&sysparm_offset={offset}");
        let (s, b, h) = snow.get(&url).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-total-count"], "7");
        let link = h["link"].to_str().unwrap();
        assert!(link.contains("rel=\"first\"") && link.contains("rel=\"last\""), "{link}");
        assert_eq!(link.contains("rel=\"next\""), offset + 3 < 7, "{link}");
        assert!(link.contains("sysparm_query=ORDERBYsys_id"), "links keep the parameters: {link}");
        let page = b["result"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|r| r["sys_id"].as_str().unwrap().to_string()));
        offset += 3;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by sys_id");
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "every record once across pages");
    // Suppressed headers, and the tickets the partner does not share stay out.
    let (_, _, h) = snow.get("/api/now/table/incident?sysparm_suppress_pagination_header=true&sysparm_limit=1").await;
    assert!(h.get("link").is_none() && h.get("x-total-count").is_some());
    let servicenow = app.token(Some("servicenow")).await;
    let (s, _) =
        app.post("/tickets", &servicenow, &json!({"number": "INC0000901", "short_description": "not Initech's"})).await;
    assert_eq!(s, 201);
    let (_, total) = snow.query("short_descriptionLIKEInitech").await;
    assert_eq!(total, 0, "a ticket not shared with the partner is not listed");
    let (_, b, _) = snow.get("/api/now/table/problem").await;
    assert_eq!(b["result"], json!([]), "an empty list is [], not 404");
});

backend_test!(logins_tokens_and_their_refusals, |app: TestApp| async move {
    let (user, password) = login(&app, "initech", false).await;
    // No credentials, a wrong password, a v1 client credential: 401 in ServiceNow's shape.
    let resp = app.http.get(app.url("/api/now/table/incident")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["message"], "User Not Authenticated");
    let (client_id, client_secret) = app.credentials(Some("initech")).await;
    for (u, p) in [(user.as_str(), "wrong"), (client_id.as_str(), client_secret.as_str())] {
        let resp = app.http.get(app.url("/api/now/table/incident")).basic_auth(u, Some(p)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{u}");
    }
    // A partner whose contract does not enable the facade.
    let (su, sp) = login(&app, "servicenow", false).await;
    let resp = app.http.get(app.url("/api/now/table/incident")).basic_auth(&su, Some(&sp)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // A read-only login reads but does not write.
    let (ru, rp) = login(&app, "initech", true).await;
    let resp = app.http.get(app.url("/api/now/table/incident")).basic_auth(&ru, Some(&rp)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .http
        .post(app.url("/api/now/table/incident"))
        .basic_auth(&ru, Some(&rp))
        .json(&json!({"short_description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // The password grant: the OAuth client in Basic, the login in the form.
    let token = |form: Vec<(&'static str, String)>| {
        let (app, id, secret) = (&app, client_id.clone(), client_secret.clone());
        async move {
            let resp = app
                .http
                .post(app.url("/oauth_token.do"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            let s = resp.status().as_u16();
            (s, resp.json::<Value>().await.unwrap())
        }
    };
    let (s, t) =
        token(vec![("grant_type", "password".into()), ("username", user.clone()), ("password", password.clone())])
            .await;
    assert_eq!(s, 200, "{t}");
    for k in ["access_token", "refresh_token", "scope", "token_type", "expires_in"] {
        assert!(!t[k].is_null(), "{k} in {t}");
    }
    assert_eq!(t["token_type"], "Bearer");
    let bearer = t["access_token"].as_str().unwrap().to_string();
    let resp = app.http.get(app.url("/api/now/table/incident")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (s, b) =
        token(vec![("grant_type", "password".into()), ("username", user.clone()), ("password", "nope".into())]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "{b}");
    // Refresh: once.
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let (s, t2) = token(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh.clone())]).await;
    assert_eq!(s, 200, "{t2}");
    assert_ne!(t2["access_token"], t["access_token"]);
    let (s, b) = token(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh)]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")), "a refresh token is used once: {b}");
    let (s, b) = token(vec![("grant_type", "authorization_code".into())]).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unsupported_grant_type")));

    // Revoking the login stops its Basic use and its tokens at once (the cache vouches for the
    // password only, never for the credential).
    let resp =
        app.http.get(app.url("/api/now/table/incident")).basic_auth(&user, Some(&password)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let db = app.db.clone();
    let u2 = user.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        with_conn!(&mut conn, c => ebond::store::credentials::CredentialRepo::revoke(c, Some("initech"), Some(&u2), 1).unwrap())
    })
    .await
    .unwrap();
    let resp =
        app.http.get(app.url("/api/now/table/incident")).basic_auth(&user, Some(&password)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let bearer2 = t2["access_token"].as_str().unwrap();
    let resp = app.http.get(app.url("/api/now/table/incident")).bearer_auth(bearer2).send().await.unwrap();
    assert_eq!(resp.status(), 401);
});

backend_test!(repeated_bad_logins_lock_out, |app: TestApp| async move {
    let (user, _) = login(&app, "initech", false).await;
    let mut statuses = Vec::new();
    for _ in 0..(app.settings.security.lockout_threshold + 1) {
        let resp =
            app.http.get(app.url("/api/now/table/incident")).basic_auth(&user, Some("guess")).send().await.unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
});

backend_test!(batches_run_each_sub_request, |app: TestApp| async move {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let snow = snow(&app).await;
    let a = snow.create(json!({"short_description": "batch a"})).await;
    let b = snow.create(json!({"short_description": "batch b"})).await;
    let url = |r: &Value| format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    let body = json!({"batch_request_id": 1, "rest_requests": [
        {"id": "1", "method": "PATCH", "url": url(&a), "headers": [{"name": "Content-Type", "value": "application/json"}], "body": b64(json!({"state": "2"}))},
        {"id": "2", "method": "PATCH", "url": url(&b), "headers": [], "body": b64(json!({"state": "99"}))},
        {"id": "3", "method": "GET", "url": "/api/now/table/incident?sysparm_query=short_descriptionSTARTSWITHbatch", "headers": []},
        {"id": "4", "method": "GET", "url": "/api/now/table/nope", "headers": []},
    ]});
    let (s, out, _) = snow.send(Method::POST, "/api/now/v1/batch", Some(body)).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["batch_request_id"], "1");
    let subs = out["serviced_requests"].as_array().unwrap();
    let status: Vec<u64> = subs.iter().map(|s| s["status_code"].as_u64().unwrap()).collect();
    assert_eq!(status, [200, 422, 200, 400], "{out}");
    let decode = |s: &Value| -> Value {
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(s["body"].as_str().unwrap()).unwrap())
            .unwrap()
    };
    assert_eq!(decode(&subs[0])["result"]["state"], "2");
    assert!(decode(&subs[1])["error"]["detail"].as_str().unwrap().contains("state (enum)"));
    assert!(
        subs[2]["headers"].as_array().unwrap().iter().any(|h| h["name"] == "X-Total-Count" && h["value"] == "2"),
        "{out}"
    );
    let (_, b2, _) = snow.get(&url(&b)).await;
    assert_eq!(b2["result"]["state"], "1", "the failed sub-request changed nothing");
});

backend_test!(facade_writes_get_conflict_detection, |app: TestApp| async move {
    let snow = snow(&app).await;
    let r = snow.create(json!({"short_description": "conflicting", "category": "net"})).await;
    let number = r["number"].as_str().unwrap().to_string();
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    // ServiceNow (subscribed to everything, so the ticket is shared with it) changes the
    // category after the version Initech last saw.
    let servicenow = app.token(Some("servicenow")).await;
    let (s, _, _) = app.get(&format!("/tickets/{number}"), &servicenow).await;
    assert_eq!(s, 200);
    let (s, b) = app.patch(&format!("/tickets/{number}"), &servicenow, &json!({"category": "hardware"})).await;
    assert_eq!(s, 200, "{b}");
    // Initech, from its stale view, sets the category too: held for an operator.
    let (s, b, h) =
        snow.send(Method::PATCH, &path, Some(json!({"category": "software", "assigned_to": "p.gibbons"}))).await;
    assert_eq!(s, 200, "{b}");
    assert!(h["ebond-conflict"].to_str().unwrap().ends_with("status=open"), "{h:?}");
    assert_eq!(b["result"]["category"], "hardware", "the held field is not written: {b}");
    assert_eq!(b["result"]["assigned_to"], "p.gibbons", "the rest is: {b}");
    let admin = app.token(None).await;
    let (_, list, _) = app.get(&format!("/admin/conflicts?ticket={number}"), &admin).await;
    assert_eq!(list["items"][0]["partner"], "initech", "{list}");
});

backend_test!(read_only_clients_and_edge_values, |app: TestApp| async move {
    let (user, password) = login(&app, "initech", false).await;
    // A read-only OAuth client gives a read-only token, even for a read-write login.
    let db = app.db.clone();
    let iterations = app.settings.auth.pbkdf2_iterations;
    let ro = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential_scoped(
            c, Some("initech"), true, ebond::auth::CredentialKind::Client, None, iterations))
    })
    .await
    .unwrap()
    .unwrap();
    let resp = app
        .http
        .post(app.url("/oauth_token.do"))
        .basic_auth(&ro.client_id, Some(&ro.client_secret))
        .form(&[("grant_type", "password"), ("username", &user), ("password", &password)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.unwrap();
    let token = t["access_token"].as_str().unwrap();
    let resp = app
        .http
        .post(app.url("/api/now/table/incident"))
        .bearer_auth(token)
        .json(&json!({"short_description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a read-only client's token does not write");
    // A refresh keeps the chain's expiry.
    let resp = app
        .http
        .post(app.url("/oauth_token.do"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("client_id", &ro.client_id),
            ("client_secret", &ro.client_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let db = app.db.clone();
    let expiries: Vec<i64> = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use ebond::store::schema::refresh_tokens::dsl as r;
        let mut conn = db.get().unwrap();
        with_conn!(&mut conn, c => r::refresh_tokens.select(r::expires_at).load::<i64>(c).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(expiries.len(), 2);
    assert_eq!(expiries[0], expiries[1], "refreshing does not extend the lifetime");
    // Offsets at the edge of the integers are no crash.
    let snow = Snow { app: &app, user, password };
    let (s, b, _) = snow.get(&format!("/api/now/table/incident?sysparm_offset={}", i64::MAX)).await;
    assert_eq!((s, b["result"].clone()), (200, json!([])), "{b}");
});
