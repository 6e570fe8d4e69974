//! Outbound delivery against fake partners (real HTTP servers): mapping, auth, signatures,
//! order, retries, dead letters, replay, pause, breaker, alerts, metrics.

use crate::delivery_test;
use crate::fakes::{verify_signature, Partners, Received};
use crate::helpers::{enovia_issue, servicenow_incident, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::ResponseTemplate;

fn events(list: &[Received]) -> Vec<String> {
    list.iter().map(|r| r.event().to_string()).collect()
}

/// Polls until `path` answers 200 for `token` (the partner's id got bonded).
async fn until_readable(app: &TestApp, path: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = app.get(path, token).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never became readable");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_outbox(app: &TestApp, admin: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page, _) = app.get("/admin/outbox?limit=500", admin).await;
        if pred(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {page}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

delivery_test!(end_to_end_partners_receive_the_pushes, |_s| {}, |app: TestApp, p: Partners| async move {
    let enovia = app.token(Some("enovia")).await;
    let snow = app.token(Some("servicenow")).await;
    let acme = app.token(Some("acme-msp")).await;
    p.snow.next_id("INC0010042");
    p.acme.next_id("ACME-77001");

    // 1. ENOVIA raises a service request: ServiceNow gets a create in its own vocabulary.
    let (status, created) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000042")).await;
    assert_eq!(status, 201, "{created}");
    let got = p.snow.wait_for(10, "create at ServiceNow", |r| !r.is_empty()).await;
    let c = &got[0];
    assert_eq!((c.method.as_str(), c.path.as_str(), c.event()), ("POST", "/api/now/table/incident", "created"));
    assert_eq!(c.body["short_description"], "Press line 3 PLC not reachable from PLM");
    assert_eq!(c.body["state"], "1");
    assert_eq!(c.body["urgency"], "1");
    assert!(c.header("authorization").starts_with("Bearer snow-token-"), "OAuth2 bearer");
    until_readable(&app, "/tickets/INC0010042", &snow).await;

    // 2. ServiceNow assigns it to Acme L2 by its own number: Acme gets a create; ENOVIA, which
    // reads neither group nor assignee, nothing (the push would carry no change it can read).
    let (status, body) = app.patch("/tickets/INC0010042", &snow, &json!({"assignment_group": "Acme L2"})).await;
    assert_eq!(status, 200, "{body}");
    let got = p.acme.wait_for(10, "create at Acme", |r| !r.is_empty()).await;
    let a = &got[0];
    assert_eq!((a.method.as_str(), a.path.as_str(), a.event()), ("POST", "/api/v2/tickets", "assigned"));
    assert_eq!(a.body["queue"], "Acme L2");
    assert_eq!(a.body["summary"], "Press line 3 PLC not reachable from PLM");
    assert_eq!(a.body["priority"], "P1");
    assert!(a.header("authorization").starts_with("Basic "), "basic auth");

    // 3. Acme works it under its own number (bonded from its create response).
    until_readable(&app, "/tickets/ACME-77001", &acme).await;
    let (status, body) = app.patch("/tickets/ACME-77001", &acme, &json!({"status": "Work In Progress"})).await;
    assert_eq!(status, 200, "{body}");
    let got = p.snow.wait_for(10, "state at ServiceNow", |r| r.len() >= 2).await;
    assert_eq!((got[1].method.as_str(), got[1].path.as_str()), ("PATCH", "/api/now/table/incident/INC0010042"));
    assert_eq!(got[1].body["state"], "2");
    let got = p.enovia.wait_for(10, "state at ENOVIA", |r| !r.is_empty()).await;
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("PATCH", "/resources/v1/modeler/dsiss/issue/ISS-0000042")
    );
    assert_eq!(got[0].header("eno_csrf_token"), "csrf-token-123", "API-key header");
    assert_eq!(got[0].header("securitycontext"), "ctx::VPLMProjectLeader.Company Name.Common Space");
    assert_eq!(got[0].body["data"]["state"], "Active");

    // 4. A work note reaches ServiceNow once, as a work note.
    let (status, _) = app
        .post(
            "/tickets/ACME-77001/work-notes",
            &acme,
            &json!({"text": "Replaced the PoE injector", "entry_id": "wn-1"}),
        )
        .await;
    assert_eq!(status, 200);
    let got = p.snow.wait_for(10, "work note at ServiceNow", |r| r.len() >= 3).await;
    assert_eq!(got[2].body["work_notes"], "Replaced the PoE injector");

    // 5. Acme resolves.
    let (status, body) = app
        .patch(
            "/tickets/ACME-77001",
            &acme,
            &json!({"status": "Resolved", "resolution_code": "FIXED", "resolution_notes": "PoE injector replaced"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = p.snow.wait_for(10, "resolution at ServiceNow", |r| r.len() >= 4).await;
    assert_eq!(got[3].body["state"], "6");
    assert_eq!(got[3].body["close_code"], "Solution provided");
    assert_eq!(got[3].body["close_notes"], "PoE injector replaced");
    assert!(got[3].body.get("work_notes").is_none(), "the note travelled once");
    let got = p.enovia.wait_for(10, "resolution at ENOVIA", |r| r.len() >= 2).await;
    assert_eq!(got[1].body["data"]["state"], "Review");
    assert_eq!(got[1].body["data"]["Resolution Recommendation"], "PoE injector replaced");

    // 6. ServiceNow closes: Acme and ENOVIA hear of it. It has seen the resolution once the
    // push is settled (received is not yet settled: closing earlier would conflict, a 202).
    crate::conflicts::settled(&app, created["number"].as_str().unwrap()).await;
    let (status, _) = app.patch("/tickets/INC0010042", &snow, &json!({"state": "7"})).await;
    assert_eq!(status, 200);
    let got = p.acme.wait_for(10, "close at Acme", |r| r.len() >= 2).await;
    assert_eq!((got[1].method.as_str(), got[1].path.as_str()), ("PUT", "/api/v2/tickets/ACME-77001"));
    assert_eq!(got[1].body["status"], "Closed");
    let got = p.enovia.wait_for(10, "close at ENOVIA", |r| r.len() >= 3).await;
    assert_eq!(got[2].body["data"]["state"], "Closed");

    // Each partner heard exactly the changes of others, in order; every request is signed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(events(&p.snow.received()), ["created", "state_changed", "work_note_added", "resolved"]);
    assert_eq!(events(&p.acme.received()), ["assigned", "closed"]);
    assert_eq!(events(&p.enovia.received()), ["state_changed", "resolved", "closed"]);
    for r in p.snow.received().iter().chain(p.acme.received().iter()).chain(p.enovia.received().iter()) {
        assert!(verify_signature(r), "signature of {} {}", r.method, r.path);
        assert!(r.header("webhook-id").starts_with("msg_"));
        assert_eq!(r.ticket(), created["number"].as_str().unwrap());
    }
    assert_eq!(p.snow.tokens_issued(), 1, "one OAuth2 token, cached");
});

delivery_test!(order_kept_while_head_fails_and_other_tickets_flow, |_s| {}, |app: TestApp, p: Partners| async move {
    let snow = app.token(Some("servicenow")).await;
    // Ticket EB0000001's first three pushes to Acme fail (it succeeds on its last retry).
    p.acme.script(3, |r| r.ticket() == "EB0000001", ResponseTemplate::new(503));
    let mut inc = servicenow_incident("INC0000101");
    inc["assignment_group"] = json!("Acme L2");
    assert_eq!(app.post("/tickets", &snow, &inc).await.0, 201);
    for (i, d) in ["first", "second", "third"].iter().enumerate() {
        let (s, b) =
            app.patch("/tickets/INC0000101", &snow, &json!({"short_description": format!("update {i} {d}")})).await;
        assert_eq!(s, 200, "{b}");
    }
    let mut other = servicenow_incident("INC0000102");
    other["assignment_group"] = json!("Acme Network");
    assert_eq!(app.post("/tickets", &snow, &other).await.0, 201);

    let got = p
        .acme
        .wait_for(15, "all four pushes of EB0000001 delivered", |r| {
            r.iter().filter(|x| x.ticket() == "EB0000001").count() >= 7
        })
        .await;
    let t1: Vec<&Received> = got.iter().filter(|r| r.ticket() == "EB0000001").collect();
    // Three failed creates, then the create, then the three updates in commit order.
    assert!(t1[..4].iter().all(|r| r.method == "POST"), "retries of the head");
    assert_eq!(t1[0].header("webhook-id"), t1[3].header("webhook-id"), "same webhook-id across retries");
    let summaries: Vec<&str> = t1[4..].iter().map(|r| r.body["summary"].as_str().unwrap()).collect();
    assert_eq!(summaries, ["update 0 first", "update 1 second", "update 2 third"]);
    assert!(t1[4..].iter().all(|r| r.method == "PUT"));
    // The other ticket did not wait for the failing one.
    let first_other = got.iter().position(|r| r.ticket() == "EB0000002").expect("other ticket delivered");
    let t1_success = got.iter().enumerate().filter(|(_, r)| r.ticket() == "EB0000001").nth(3).unwrap().0;
    assert!(first_other < t1_success, "EB0000002 went out while EB0000001's head was failing");

    let admin = app.token(None).await;
    let (_, sync, _) = app.get("/admin/tickets/EB0000001/sync", &admin).await;
    let rows = sync["outbound"]["acme-msp"].as_array().unwrap();
    assert_eq!(rows[0]["history"].as_array().unwrap().len(), 4, "{sync}");
    assert_eq!(rows[0]["history"][0]["http_status"], 503);
    assert_eq!(rows[0]["history"][0]["outcome"], "retry");
    assert_eq!(rows[0]["history"][3]["outcome"], "delivered");
    assert_eq!(rows[0]["status"], "delivered");
    assert!(sync["inbound"].as_array().unwrap().len() >= 4);
});

delivery_test!(permanent_4xx_dead_letters_then_replays, |_s| {}, |app: TestApp, p: Partners| async move {
    let snow = app.token(Some("servicenow")).await;
    let admin = app.token(None).await;
    p.acme.script(1, |_| true, ResponseTemplate::new(400).set_body_string("queue Acme L2 unknown"));
    let mut inc = servicenow_incident("INC0000201");
    inc["assignment_group"] = json!("Acme L2");
    app.post("/tickets", &snow, &inc).await;
    let page = wait_outbox(&app, &admin, "dead letter", |p| {
        p["items"].as_array().is_some_and(|i| i.iter().any(|r| r["status"] == "dead"))
    })
    .await;
    let dead = page["items"].as_array().unwrap().iter().find(|r| r["status"] == "dead").unwrap().clone();
    assert_eq!(dead["partner"], "acme-msp");
    assert_eq!(dead["last_status"], 400);
    assert_eq!(dead["attempts"], 1, "no retry on a permanent 4xx");
    assert_eq!(dead["last_response"], "queue Acme L2 unknown");
    assert_eq!(dead["ticket"], "EB0000001");
    let id = dead["id"].as_i64().unwrap();
    let (status, detail, _) = app.get(&format!("/admin/outbox/{id}"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(detail["payload"]["event"], "created");
    assert_eq!(detail["history"][0]["error_class"], "http_4xx");

    // The CLI lists it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(["outbox", "list", "--partner", "acme-msp"])
        .env("EBOND_DATABASE_URL", app.settings.effective_database_url())
        .env("EBOND_CONTRACTS_DIR", &app.settings.contracts_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("EB0000001") && text.contains("dead"), "{text}");

    // Replay: delivered now that the partner accepts.
    let resp = app.http.post(app.api(&format!("/admin/outbox/{id}/replay"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    p.acme.wait_for(10, "replayed create", |r| r.len() >= 2 && r[1].method == "POST").await;
    wait_outbox(&app, &admin, "delivered", |p| p["items"][0]["status"] == "delivered").await;
    let resp = app.http.post(app.api(&format!("/admin/outbox/{id}/replay"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 404, "no longer a dead letter");
    let resp =
        app.http.post(app.api("/admin/outbox/replay?partner=acme-msp")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["replayed"], 0);
});

delivery_test!(retry_after_is_honoured, |_s| {}, |app: TestApp, p: Partners| async move {
    let snow = app.token(Some("servicenow")).await;
    p.acme.script(1, |_| true, ResponseTemplate::new(429).insert_header("retry-after", "1"));
    let mut inc = servicenow_incident("INC0000301");
    inc["assignment_group"] = json!("Acme L2");
    app.post("/tickets", &snow, &inc).await;
    let got = p.acme.wait_for(10, "retry after 429", |r| r.len() >= 2).await;
    let gap = got[1].at.duration_since(got[0].at);
    assert!(gap >= Duration::from_millis(950), "waited {gap:?}, the schedule says 100 ms but Retry-After 1 s");
});

delivery_test!(oauth2_token_cached_and_refreshed_after_401, |_s| {}, |app: TestApp, p: Partners| async move {
    let enovia = app.token(Some("enovia")).await;
    for i in 1..=3 {
        assert_eq!(app.post("/tickets", &enovia, &enovia_issue(&format!("ISS-000050{i}"))).await.0, 201);
    }
    p.snow.wait_for(10, "three creates", |r| r.len() >= 3).await;
    assert_eq!(p.snow.tokens_issued(), 1, "the token is cached");
    // ServiceNow drops our token: one 401, a fresh token, the same delivery succeeds.
    p.snow.script(1, |_| true, ResponseTemplate::new(401));
    assert_eq!(app.post("/tickets", &enovia, &enovia_issue("ISS-0000509")).await.0, 201);
    let got = p.snow.wait_for(10, "create after 401", |r| r.len() >= 5).await;
    assert_eq!(p.snow.tokens_issued(), 2);
    assert_eq!(got[3].header("webhook-id"), got[4].header("webhook-id"));
    assert_eq!(got[4].header("authorization"), "Bearer snow-token-2");
});

delivery_test!(
    pause_holds_the_backlog_and_breaker_stops_hammering,
    |s: &mut ebond::config::Settings| {
        s.outbox.breaker_threshold = 2;
        s.outbox.breaker_cooldown_ms = 60_000;
    },
    |app: TestApp, p: Partners| async move {
        let snow = app.token(Some("servicenow")).await;
        let admin = app.token(None).await;
        let resp = app.http.post(app.api("/admin/partners/acme-msp/pause")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut inc = servicenow_incident("INC0000401");
        inc["assignment_group"] = json!("Acme L2");
        app.post("/tickets", &snow, &inc).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(p.acme.received().is_empty(), "paused: nothing sent");
        let resp = app.http.post(app.api("/admin/partners/acme-msp/resume")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        p.acme.wait_for(10, "delivery after resume", |r| r.len() == 1).await;

        // Acme goes down: after two consecutive failures the breaker opens and the rest waits.
        p.acme.script(1_000, |_| true, ResponseTemplate::new(503));
        for i in 2..=6 {
            let mut inc = servicenow_incident(&format!("INC000040{i}"));
            inc["assignment_group"] = json!("Acme L2");
            app.post("/tickets", &snow, &inc).await;
        }
        // Without the breaker, five rows on a 100/200/300 ms schedule would make 20 attempts and
        // dead-letter within a second.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let reached = p.acme.received().len() - 1;
        assert!(reached <= 3, "{reached} failed attempts reached the dead partner");
        let (_, page, _) = app.get("/admin/outbox?partner=acme-msp&status=pending", &admin).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 5, "the backlog waits: {page}");
        assert!(page["items"].as_array().unwrap().iter().all(|r| r["attempts"].as_i64().unwrap() <= 1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(p.acme.received().len() - 1, reached, "nothing more while the breaker is open");
    }
);

delivery_test!(no_echo_between_bidirectional_partners, |_s| {}, |app: TestApp, p: Partners| async move {
    let snow = app.token(Some("servicenow")).await;
    let acme = app.token(Some("acme-msp")).await;
    p.acme.next_id("ACME-80001");
    let mut inc = servicenow_incident("INC0000501");
    inc["assignment_group"] = json!("Acme L2");
    app.post("/tickets", &snow, &inc).await;
    p.acme.wait_for(10, "create at Acme", |r| r.len() == 1).await;
    until_readable(&app, "/tickets/ACME-80001", &acme).await;
    app.patch("/tickets/ACME-80001", &acme, &json!({"status": "Work In Progress"})).await;
    let got = p.snow.wait_for(10, "state at ServiceNow", |r| !r.is_empty()).await;
    // ServiceNow's integration applies the change and, as such scripts do, sends it back.
    let echo = json!({"state": got[0].body["state"], "short_description": got[0].body["short_description"]});
    let (status, body) = app.patch("/tickets/INC0000501", &snow, &echo).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 2, "the echo changed nothing");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(p.acme.received().len(), 1, "no ping-pong back to Acme");
    assert_eq!(p.snow.received().len(), 1);
});

async fn alerts_case(backend: crate::helpers::Backend) {
    let p = Partners::start().await;
    let ops = crate::fakes::FakePartner::start(crate::fakes::Kind::Acme).await;
    let contracts = tempfile::tempdir().unwrap();
    p.write_contracts(contracts.path(), "[\"100ms\", \"100ms\", \"100ms\"]");
    let (dir, ops_url) = (contracts.path().to_path_buf(), format!("{}/ops-events", ops.uri()));
    let secret_file = contracts.path().join("secrets/signing");
    let app = TestApp::spawn_with(backend, |s| {
        crate::helpers::delivering(s, dir);
        s.alerts.webhook_url = Some(ops_url);
        s.alerts.webhook_secret = Some(format!("file:{}", secret_file.display()));
    })
    .await;
    let snow = app.token(Some("servicenow")).await;
    let admin = app.token(None).await;
    p.acme.script(1_000, |_| true, ResponseTemplate::new(500));
    let mut inc = servicenow_incident("INC0000601");
    inc["assignment_group"] = json!("Acme L2");
    app.post("/tickets", &snow, &inc).await;

    let got = ops
        .wait_for(15, "failing alert and dead letter", |r| {
            let types: Vec<&str> = r.iter().filter_map(|x| x.body["type"].as_str()).collect();
            types.contains(&"partner.delivery_failing") && types.contains(&"delivery.dead_lettered")
        })
        .await;
    for r in &got {
        assert!(verify_signature(r), "ops webhook signed");
    }
    let failing = got.iter().find(|r| r.body["type"] == "partner.delivery_failing").unwrap();
    assert_eq!(failing.body["data"]["partner"], "acme-msp");
    assert!(failing.body["data"]["failure_rate"].as_f64().unwrap() > 0.05);
    let dead = got.iter().find(|r| r.body["type"] == "delivery.dead_lettered").unwrap();
    assert_eq!(dead.body["data"]["ticket"], "EB0000001");
    assert_eq!(p.acme.received().len(), 4, "first try plus the three scheduled retries");

    // Prometheus text: every sample line parses, and the figures are there.
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').expect("sample line");
        assert!(value.parse::<f64>().is_ok(), "value of {line}");
        assert!(name.starts_with("ebond_"), "{line}");
    }
    assert!(text.contains("ebond_partner_delivery_alert{partner=\"acme-msp\"} 1"), "{text}");
    assert!(text.contains("ebond_dead_letters{partner=\"acme-msp\"} 1"), "{text}");
    assert!(text.contains("ebond_deliveries_total{outcome=\"retry\",partner=\"acme-msp\"} 3"), "{text}");
    assert!(text.contains("ebond_inbound_requests_total{partner=\"servicenow\",status=\"201\"} 1"), "{text}");
    assert!(text.contains("ebond_delivery_duration_seconds_bucket"), "{text}");

    // Acme recovers; its dead letters are replayed and the alert clears.
    p.acme.clear_script();
    let resp =
        app.http.post(app.api("/admin/outbox/replay?partner=acme-msp")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["replayed"], 1);
    ops.wait_for(15, "recovered alert", |r| r.iter().any(|x| x.body["type"] == "partner.delivery_recovered")).await;
}

crate::per_backend!(alerts_metrics_and_signed_ops_webhook, super::alerts_case);

crate::backend_test!(retention_purges_old_deliveries_keeps_dead_letters, |app: TestApp| async move {
    use diesel::prelude::*;
    use ebond::store::schema::outbox;
    let enovia = app.token(Some("enovia")).await;
    for i in 1..=3 {
        app.post("/tickets", &enovia, &enovia_issue(&format!("ISS-000090{i}"))).await;
    }
    // Three rows for ServiceNow: one delivered long ago, one delivered just now, one dead.
    let db = app.db.clone();
    let now = ebond::util::now_ms();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        ebond::with_conn!(&mut conn, c => {
            let ids: Vec<i64> = outbox::table.order(outbox::id).select(outbox::id).load(c).unwrap();
            let set = |c: &mut _, id: i64, status: &str, at: i64| {
                diesel::update(outbox::table.find(id))
                    .set((outbox::status.eq(status), outbox::delivered_at.eq(Some(at))))
                    .execute(c)
                    .unwrap();
            };
            set(c, ids[0], "delivered", now - 31 * 86_400_000);
            set(c, ids[1], "delivered", now - 1_000);
            set(c, ids[2], "dead", now - 90 * 86_400_000);
        })
    })
    .await
    .unwrap();
    let purged = ebond::ops::retention::purge(&app.db, 30).await.unwrap();
    assert_eq!(purged, 1);
    let admin = app.token(None).await;
    let (_, page, _) = app.get("/admin/outbox?limit=10", &admin).await;
    let statuses: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["delivered", "dead"], "{page}");
});

crate::backend_test!(retention_purges_a_long_history_in_chunks, |app: TestApp| async move {
    use diesel::prelude::*;
    use ebond::store::models::NewOutbox;
    use ebond::store::schema::outbox;
    let enovia = app.token(Some("enovia")).await;
    app.post("/tickets", &enovia, &enovia_issue("ISS-0000991")).await;
    // 2,500 deliveries 40 days old (more than two purge chunks) and the fresh rows of the create.
    let db = app.db.clone();
    let old = ebond::util::now_ms() - 40 * 86_400_000;
    let fresh = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        ebond::with_conn!(&mut conn, c => c.transaction::<_, diesel::result::Error, _>(|c| {
            let fresh: i64 = outbox::table.count().get_result(c)?;
            let ticket_id: i64 = outbox::table.select(outbox::ticket_id).first(c)?;
            for i in 0..2_500 {
                diesel::insert_into(outbox::table)
                    .values(&NewOutbox {
                        partner: "servicenow".into(),
                        ticket_id,
                        event: "updated".into(),
                        delivery_id: format!("msg_history_{i}"),
                        payload: "{}".into(),
                        status: "delivered".into(),
                        attempts: 1,
                        next_attempt_at: old,
                        created_at: old,
                        updated_at: old,
                    })
                    .execute(c)?;
            }
            diesel::update(outbox::table.filter(outbox::delivery_id.like("msg_history_%")))
                .set(outbox::delivered_at.eq(Some(old)))
                .execute(c)?;
            Ok(fresh)
        }))
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ebond::ops::retention::purge(&app.db, 30).await.unwrap(), 2_500);
    let db = app.db.clone();
    let left: i64 = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        ebond::with_conn!(&mut conn, c => outbox::table.count().get_result(c)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(left, fresh, "only the old deliveries are gone");
});

delivery_test!(dead_letter_holds_its_ticket_until_discarded, |_s| {}, |app: TestApp, p: Partners| async move {
    let snow = app.token(Some("servicenow")).await;
    let admin = app.token(None).await;
    p.acme.script(1, |_| true, ResponseTemplate::new(400).set_body_string("bad queue"));
    let mut inc = servicenow_incident("INC0000951");
    inc["assignment_group"] = json!("Acme L2");
    app.post("/tickets", &snow, &inc).await;
    let page = wait_outbox(&app, &admin, "dead letter", |p| p["items"][0]["status"] == "dead").await;
    let dead_id = page["items"][0]["id"].as_i64().unwrap();
    // A later change of the same ticket waits behind its dead letter: order is never broken.
    assert_eq!(app.patch("/tickets/INC0000951", &snow, &json!({"short_description": "later"})).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.acme.received().len(), 1, "nothing overtakes a dead letter");
    // The operator gives up on the dead letter: the later change goes out.
    let resp =
        app.http.post(app.api(&format!("/admin/outbox/{dead_id}/discard"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = p.acme.wait_for(10, "the later change", |r| r.len() >= 2).await;
    assert_eq!(got[1].body["summary"], "later");
    let (_, page, _) = app.get("/admin/outbox?status=discarded", &admin).await;
    assert_eq!(page["items"][0]["id"], dead_id);
});

/// Outbound credentials sealed in the database (`db:` references) reach the partner.
async fn sealed_outbound_secret_case(backend: crate::helpers::Backend) {
    use base64::Engine;
    let p = Partners::start().await;
    let contracts = tempfile::tempdir().unwrap();
    p.write_contracts(contracts.path(), "[\"100ms\"]");
    let acme = contracts.path().join("acme-msp.toml");
    let text = std::fs::read_to_string(&acme).unwrap();
    let text =
        text.lines()
            .map(|l| {
                if l.starts_with("password = ") {
                    "password = \"db:acme_password\"".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    std::fs::write(&acme, text).unwrap();
    let dir = contracts.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| crate::helpers::delivering(s, dir)).await;
    let secrets = ebond::secrets::Secrets::new(app.db.clone(), &app.settings);
    tokio::task::spawn_blocking(move || secrets.store("acme-msp", "acme_password", "sealed-pass"))
        .await
        .unwrap()
        .unwrap();
    let snow = app.token(Some("servicenow")).await;
    let mut inc = servicenow_incident("INC0000961");
    inc["assignment_group"] = json!("Acme L2");
    app.post("/tickets", &snow, &inc).await;
    let got = p.acme.wait_for(10, "push with sealed credentials", |r| !r.is_empty()).await;
    let basic = got[0].header("authorization").trim_start_matches("Basic ").to_string();
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(basic).unwrap()).unwrap();
    assert_eq!(decoded, "ebond:sealed-pass");
}

crate::per_backend!(sealed_outbound_secret, super::sealed_outbound_secret_case);

/// The contract's outbound rate limit spaces deliveries; the rest wait in the outbox.
async fn outbound_rate_limit_case(backend: crate::helpers::Backend) {
    let p = Partners::start().await;
    let contracts = tempfile::tempdir().unwrap();
    p.write_contracts(contracts.path(), "[\"100ms\"]");
    let acme = contracts.path().join("acme-msp.toml");
    let text =
        std::fs::read_to_string(&acme).unwrap().replace("rate_limit_per_minute = 100000", "rate_limit_per_minute = 2");
    std::fs::write(&acme, text).unwrap();
    let dir = contracts.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| crate::helpers::delivering(s, dir)).await;
    let snow = app.token(Some("servicenow")).await;
    for i in 1..=3 {
        let mut inc = servicenow_incident(&format!("INC000097{i}"));
        inc["assignment_group"] = json!("Acme L2");
        app.post("/tickets", &snow, &inc).await;
    }
    p.acme.wait_for(10, "the first two deliveries", |r| r.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(p.acme.received().len(), 2, "2 per minute: the third waits");
    let admin = app.token(None).await;
    let (_, page, _) = app.get("/admin/outbox?partner=acme-msp&status=pending", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["attempts"], 0, "waiting for the rate limit costs no attempt");
}

crate::per_backend!(outbound_rate_limit, super::outbound_rate_limit_case);
