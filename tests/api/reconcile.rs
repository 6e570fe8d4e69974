//! Reconciliation against a stateful fake ServiceNow with drift planted behind the hub's back:
//! every kind is found with its likely cause, the dry run writes nothing, the heal run converges
//! the partner's copy to the hub (and the hub to the partner where the partner owns the field)
//! within its cap, the metrics and the operational webhook hear of it.

use crate::fakes::{FakePartner, Kind, Received};
use crate::helpers::{Backend, TestApp};
use crate::sync::{gateway, pull, wait_run};
use crate::table_fake::TableFake;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Copies the Acme contract beside the fake ServiceNow's, pointing at a fake Acme.
fn acme_contract(dir: &std::path::Path, acme: &FakePartner) {
    let src = crate::helpers::repo_path("contracts");
    std::fs::write(dir.join("secrets/acme"), "acme-pass").unwrap();
    let text = std::fs::read_to_string(src.join("acme-msp.toml"))
        .unwrap()
        .replace("https://itsm.acme-msp.example", &acme.uri())
        .replace("env:EBOND_ACME_PASSWORD", &format!("file:{}", dir.join("secrets/acme").display()))
        .replace("env:EBOND_ACME_SIGNING_SECRET", &format!("file:{}", dir.join("secrets/signing").display()))
        .replace("retry_schedule = [\"1m\", \"5m\", \"15m\", \"1h\"]", "retry_schedule = [\"100ms\", \"200ms\"]")
        .replace("rate_limit_per_minute = 60", "rate_limit_per_minute = 100000");
    std::fs::write(dir.join("acme-msp.toml"), text).unwrap();
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A canonical value of a hub ticket, read from the store (a partner's read would count as seen).
async fn hub_value(app: &TestApp, number: &str, field: &str) -> Value {
    let (db, number, field) = (app.db.clone(), number.to_string(), field.to_string());
    tokio::task::spawn_blocking(move || {
        db.read_now(|c| {
            let t = c.ticket_by_number(&number).map_err(ebond::store::StoreError::from)?.expect("ticket");
            Ok::<_, ebond::store::StoreError>(t.into_ticket()?.get(&field).clone())
        })
    })
    .await
    .unwrap()
    .unwrap()
}

async fn reconcile(app: &TestApp, admin: &str, dry_run: bool) -> Value {
    let (status, body) =
        app.post("/admin/reconcile", admin, &json!({"partner": "servicenow", "dry_run": dry_run})).await;
    assert_eq!(status, 202, "{body}");
    let id = body["runs"][0]["run"].as_i64().unwrap();
    let report = wait_run(app, admin, &format!("/admin/reconcile/runs/{id}")).await;
    // The report as an operator reads it (`cargo test … -- --nocapture`).
    println!("reconciliation {id} (dry run: {dry_run}): {}", report["run"]["counts"]);
    for i in report["items"].as_array().unwrap() {
        let fields: Vec<String> = i["fields"]
            .as_array()
            .unwrap()
            .iter()
            .take(2)
            .map(|f| format!("{} hub {} / partner {}", f["field"], f["hub"], f["partner"]))
            .collect();
        println!(
            "  {:<18} {:<10} {:<11} cause {:<14} action {:<9} {}",
            i["kind"].as_str().unwrap(),
            i["ticket"].as_str().unwrap_or("-"),
            i["partner_ticket_id"].as_str().unwrap_or("-"),
            i["cause"].as_str().unwrap(),
            i["action"].as_str().unwrap(),
            fields.join("; ")
        );
    }
    report
}

/// kind → (partner ticket id, cause, action), sorted.
fn items(report: &Value) -> BTreeMap<String, Vec<(String, String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for i in report["items"].as_array().unwrap() {
        out.entry(i["kind"].as_str().unwrap().to_string()).or_default().push((
            i["partner_ticket_id"].as_str().unwrap_or("").to_string(),
            i["cause"].as_str().unwrap().to_string(),
            i["action"].as_str().unwrap().to_string(),
        ));
    }
    out
}

async fn drift_is_found_reported_and_healed(backend: Backend) {
    let fake = TableFake::start().await;
    let acme = FakePartner::start(Kind::Acme).await;
    let ops = FakePartner::start(Kind::Acme).await;
    for i in 1..=5 {
        let group = if i == 3 || i == 4 { "Acme Network" } else { "Service Desk" };
        fake.plant(&format!("INC000000{i}"), i, json!({"assignment_group": group}));
    }
    let dir = tempfile::tempdir().unwrap();
    // Pages of one record: the tickets are created in the incidents' order (the cap below
    // heals the first two in ticket order).
    fake.write_contracts(dir.path(), 1, "60s");
    acme_contract(dir.path(), &acme);
    let secret = dir.path().join("secrets/signing");
    let ops_url = format!("{}/ops-events", ops.uri());
    let contracts = dir.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| {
        crate::helpers::delivering(s, contracts);
        s.sync.heal_cap = 2;
        s.alerts.webhook_url = Some(ops_url);
        s.alerts.webhook_secret = Some(format!("file:{}", secret.display()));
    })
    .await;
    let admin = app.token(None).await;
    let snow = app.token(Some("servicenow")).await;
    let acme_token = app.token(Some("acme-msp")).await;

    // The hub learns the five incidents by pulling them; Acme gets the two in its groups.
    assert_eq!(pull(&app, &admin).await["counts"]["applied"], 5);
    let number = |pid: &'static str| {
        let (app, snow) = (&app, &snow);
        async move { app.get(&format!("/tickets/{pid}"), snow).await.1["number"].as_str().unwrap().to_string() }
    };
    // (Read before Acme writes: a read raises what ServiceNow has seen.)
    let (n2, n3, n4) = (number("INC0000002").await, number("INC0000003").await, number("INC0000004").await);
    acme.wait_for(10, "Acme's creates", |r: &[Received]| r.iter().filter(|x| x.method == "POST").count() == 2).await;

    // Acme's resolution notes on INC3 reach ServiceNow; on INC4 they never do (dead letter).
    fake.fail_writes("INC0000004");
    assert_eq!(
        app.patch(&format!("/tickets/{n3}"), &acme_token, &json!({"resolution_notes": "Fixed by Acme"})).await.0,
        200
    );
    assert_eq!(
        app.patch(&format!("/tickets/{n4}"), &acme_token, &json!({"resolution_notes": "Acme notes"})).await.0,
        200
    );
    until("INC3 delivered", async || fake.row("INC0000003").unwrap()["close_notes"] == "Fixed by Acme").await;
    until("INC4 dead", async || {
        app.outbox_rows(&n4).await.iter().any(|r| r.partner == "servicenow" && r.status == "dead")
    })
    .await;

    // Drift behind the hub's back.
    fake.edit("INC0000002", 10, json!({"short_description": "Changed in ServiceNow"})); // partner ahead
    fake.edit("INC0000003", 11, json!({"close_notes": ""})); // a 2xx push not kept: hub ahead
    fake.edit("INC0000004", 12, json!({"close_notes": "ServiceNow notes"})); // both changed
    fake.remove("INC0000005"); // missing at the partner
    fake.plant("INC0000009", 13, json!({})); // missing at the hub

    // The dry run reports each kind with its cause, and writes nothing.
    let writes_before = fake.writes().len();
    let mut outbox_before = Vec::new();
    for n in [&n2, &n3, &n4] {
        outbox_before.push(app.outbox(n).await.len());
    }
    let dry = reconcile(&app, &admin, true).await;
    assert_eq!(dry["run"]["status"], "succeeded", "{dry}");
    assert_eq!(dry["run"]["dry_run"], true);
    let found = items(&dry);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(found["partner_ahead"], [s("INC0000002", "no_event", "none")], "{dry}");
    assert_eq!(found["hub_ahead"], [s("INC0000003", "delivered_2xx", "none")], "{dry}");
    assert_eq!(found["both_changed"], [s("INC0000004", "no_event", "none")], "{dry}");
    assert_eq!(found["missing_at_partner"], [s("INC0000005", "no_event", "none")], "{dry}");
    assert_eq!(found["missing_at_hub"], [s("INC0000009", "no_event", "none")], "{dry}");
    let counts = &dry["run"]["counts"];
    assert_eq!(
        (counts["tickets"].as_u64(), counts["in_sync"].as_u64(), counts["drifted"].as_u64()),
        (Some(5), Some(1), Some(4)),
        "{counts}"
    );
    let both = dry["items"].as_array().unwrap().iter().find(|i| i["kind"] == "both_changed").unwrap();
    assert_eq!(
        both["fields"],
        json!([{"field": "resolution_notes", "hub": "Acme notes", "partner": "ServiceNow notes", "base": null}])
    );
    assert_eq!(fake.writes().len(), writes_before, "the dry run pushed nothing");
    for (i, n) in [&n2, &n3, &n4].iter().enumerate() {
        assert_eq!(app.outbox(n).await.len(), outbox_before[i], "no outbox row for {n}");
    }
    assert_eq!(hub_value(&app, &n2, "short_description").await, json!("Incident INC0000002"));
    let (_, conflicts, _) = app.get("/admin/conflicts", &admin).await;
    assert_eq!(conflicts["items"].as_array().unwrap().len(), 0, "{conflicts}");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        !metrics.contains("ebond_reconcile_last_run_timestamp{partner=\"servicenow\"}"),
        "dry runs stay out of the gauges"
    );

    // The heal run heals two drifted tickets (the cap) and reports the others capped.
    let healed = reconcile(&app, &admin, false).await;
    let found = items(&healed);
    assert_eq!(found["partner_ahead"], [s("INC0000002", "no_event", "applied")], "{healed}");
    assert_eq!(found["hub_ahead"], [s("INC0000003", "delivered_2xx", "repushed")], "{healed}");
    assert_eq!(found["both_changed"], [s("INC0000004", "no_event", "capped")], "{healed}");
    assert_eq!(found["missing_at_partner"], [s("INC0000005", "no_event", "capped")], "{healed}");
    assert_eq!(
        (healed["run"]["counts"]["healed"].as_u64(), healed["run"]["counts"]["capped"].as_u64()),
        (Some(2), Some(2))
    );
    // The hub took ServiceNow's own change; ServiceNow's copy got the hub's value back.
    let (_, t2, _) = app.get("/tickets/INC0000002", &snow).await;
    assert_eq!(t2["fields"]["short_description"], "Changed in ServiceNow", "{t2}");
    until("INC3 converged", async || fake.row("INC0000003").unwrap()["close_notes"] == "Fixed by Acme").await;

    // The next run heals what was capped: both changed → a conflict for people.
    let next = reconcile(&app, &admin, false).await;
    let found = items(&next);
    assert!(!found.contains_key("partner_ahead") && !found.contains_key("hub_ahead"), "converged: {next}");
    assert_eq!(found["both_changed"], [s("INC0000004", "no_event", "conflict")], "{next}");
    assert_eq!(found["missing_at_partner"], [s("INC0000005", "no_event", "none")], "{next}");
    let (_, conflicts, _) = app.get(&format!("/admin/conflicts?ticket={n4}"), &admin).await;
    assert_eq!(conflicts["items"][0]["status"], "open", "{conflicts}");
    assert_eq!(conflicts["items"][0]["fields"][0]["proposed"], "ServiceNow notes", "{conflicts}");

    // Metrics show the last run's items per kind; the operational webhook heard of the drift.
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ebond_drift_items{kind=\"both_changed\",partner=\"servicenow\"} 1"), "{metrics}");
    assert!(metrics.contains("ebond_drift_items{kind=\"hub_ahead\",partner=\"servicenow\"} 0"), "{metrics}");
    assert!(metrics.contains("ebond_reconcile_last_run_timestamp{partner=\"servicenow\"}"), "{metrics}");
    let got = ops
        .wait_for(10, "drift events", |r| r.iter().filter(|x| x.body["type"] == "reconcile.drift_found").count() >= 3)
        .await;
    let event =
        got.iter().find(|x| x.body["type"] == "reconcile.drift_found" && x.body["data"]["dry_run"] == false).unwrap();
    assert!(crate::fakes::verify_signature(event), "signed");
    assert_eq!(event.body["data"]["partner"], "servicenow");
    let (_, runs, _) = app.get("/admin/reconcile/runs?partner=servicenow", &admin).await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 3, "{runs}");
}
crate::per_backend!(drift_is_found_reported_and_healed_test, super::drift_is_found_reported_and_healed);

async fn reconcile_needs_a_read_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(None).await;
    let (status, body) = app.post("/admin/reconcile", &admin, &json!({"partner": "acme-msp"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("read-not-configured")), "{body}");
    let (status, body) = app.post("/admin/reconcile", &admin, &json!({"partner": "acme-msp", "dryrun": true})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad-body")), "{body}");
    let (status, body, _) = app.get("/admin/reconcile/runs/12", &admin).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("run-not-found")), "{body}");
}
crate::per_backend!(reconcile_needs_a_read_url_test, super::reconcile_needs_a_read_url);

async fn open_tickets_only_by_default(backend: Backend) {
    let fake = TableFake::start().await;
    fake.plant("INC0000001", 1, json!({}));
    fake.plant("INC0000002", 2, json!({}));
    let (app, _dir) = gateway(backend, &fake, 50, "60s", |_| {}).await;
    let admin = app.token(None).await;
    assert_eq!(pull(&app, &admin).await["counts"]["applied"], 2);
    // Resolved, then closed at ServiceNow: both pulled.
    fake.edit("INC0000002", 3, json!({"state": "6", "close_code": "Solution provided", "close_notes": "done"}));
    assert_eq!(pull(&app, &admin).await["counts"]["applied"], 1);
    fake.edit("INC0000002", 4, json!({"state": "7"}));
    assert_eq!(pull(&app, &admin).await["counts"]["applied"], 1);
    fake.edit("INC0000002", 5, json!({"short_description": "Edited after closing"}));
    let open = reconcile(&app, &admin, true).await;
    assert_eq!(
        (open["run"]["scope"].as_str(), open["run"]["counts"]["tickets"].as_u64()),
        (Some("open"), Some(1)),
        "{open}"
    );
    let (_, body) =
        app.post("/admin/reconcile", &admin, &json!({"partner": "servicenow", "dry_run": true, "scope": "all"})).await;
    let all = wait_run(&app, &admin, &format!("/admin/reconcile/runs/{}", body["runs"][0]["run"])).await;
    assert_eq!(all["run"]["counts"]["tickets"], 2, "{all}");
    assert_eq!(items(&all)["partner_ahead"][0].0, "INC0000002", "{all}");
}
crate::per_backend!(open_tickets_only_by_default_test, super::open_tickets_only_by_default);
