//! Conflicts: detected from what each partner last saw (its writes' answers, pushes delivered
//! to it, its reads), held in a record for people, the `on_conflict` modes, supersession, and
//! resolutions that converge every partner's copy. Both databases.

use crate::fakes::{Partners, Received};
use crate::helpers::*;
use crate::{backend_test, delivery_test, per_backend};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) struct Parties {
    pub snow: String,
    pub acme: String,
    pub admin: String,
}

pub(crate) async fn parties(app: &TestApp) -> Parties {
    Parties {
        snow: app.token(Some("servicenow")).await,
        acme: app.token(Some("acme-msp")).await,
        admin: app.token(None).await,
    }
}

/// ServiceNow raises `inc` for Acme L2; Acme reads it and starts work (version 2, bonded as
/// `acme_id`); ServiceNow reads that. Both have seen version 2. Returns the hub number.
async fn worked_ticket(app: &TestApp, p: &Parties, inc: &str, acme_id: &str) -> String {
    let mut body = servicenow_incident(inc);
    body["assignment_group"] = json!("Acme L2");
    let (status, created) = app.post("/tickets", &p.snow, &body).await;
    assert_eq!(status, 201, "{created}");
    let number = created["number"].as_str().unwrap().to_string();
    assert_eq!(app.get(&format!("/tickets/{number}"), &p.acme).await.0, 200);
    let (status, b) = app
        .patch(&format!("/tickets/{number}"), &p.acme, &json!({"status": "Work In Progress", "ticket_number": acme_id}))
        .await;
    assert_eq!((status, b["version"].as_i64()), (200, Some(2)), "{b}");
    assert!(b.get("conflict").is_none(), "a write from the current version does not conflict: {b}");
    assert_eq!(app.get(&format!("/tickets/{inc}"), &p.snow).await.0, 200);
    number
}

/// ServiceNow puts the ticket on hold (version 3): Acme has not seen that.
async fn snow_holds(app: &TestApp, p: &Parties, inc: &str) {
    let (status, b) = app.patch(&format!("/tickets/{inc}"), &p.snow, &json!({"state": "3", "hold_reason": "1"})).await;
    assert_eq!(status, 200, "{b}");
    assert!(b.get("conflict").is_none(), "{b}");
}

fn resolve_payload() -> Value {
    json!({"status": "Resolved", "resolution_code": "FIXED", "resolution_notes": "Replaced the switch"})
}

async fn conflicts(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (status, page, _) = app.get(&format!("/admin/conflicts?{query}"), admin).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

backend_test!(a_stale_write_holds_the_conflicting_field_and_applies_the_rest, |app: TestApp| async move {
    let p = parties(&app).await;
    let number = worked_ticket(&app, &p, "INC0020001", "ACME-2001").await;
    snow_holds(&app, &p, "INC0020001").await;

    // Acme resolves from its stale view (version 2): state conflicts, the rest is applied.
    let (status, b) = app.patch("/tickets/ACME-2001", &p.acme, &resolve_payload()).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["version"], 4, "{b}");
    assert_eq!(b["state"], "Pending", "the held state is not written: {b}");
    let c = &b["conflict"];
    assert_eq!(c["status"], "open");
    assert_eq!(
        c["fields"],
        json!([{"field": "status", "yours": "Resolved", "current": "Pending", "set_by": "servicenow",
                "set_at": c["fields"][0]["set_at"], "set_in_version": 3, "held": true}]),
        "in Acme's vocabulary: {b}"
    );
    let (_, view, _) = app.get("/tickets/INC0020001", &p.snow).await;
    assert_eq!(view["fields"]["state"], "3");
    assert_eq!(view["fields"]["close_code"], "Solution provided", "non-conflicting fields applied: {view}");

    // The record: three-way values, canonical and in each side's vocabulary.
    let items = conflicts(&app, &p.admin, "status=open").await;
    assert_eq!(items.len(), 1, "{items:?}");
    let rec = &items[0];
    assert_eq!((rec["ticket"].as_str(), rec["partner"].as_str()), (Some(number.as_str()), Some("acme-msp")));
    // Acme read version 1; version 2 is its own write.
    assert_eq!((rec["seen_version"].as_i64(), rec["ticket_version"].as_i64()), (Some(1), Some(3)));
    let f = &rec["fields"][0];
    assert_eq!((&f["field"], &f["disposition"]), (&json!("state"), &json!("held")));
    assert_eq!(
        (&f["base"], &f["proposed"], &f["current"]),
        (&json!("in_progress"), &json!("resolved"), &json!("on_hold"))
    );
    assert_eq!((&f["current_by"], f["current_version"].as_i64()), (&json!("servicenow"), Some(3)));
    assert_eq!(
        f["sides"]["acme-msp"],
        json!({"field": "status", "base": "Work In Progress", "proposed": "Resolved", "current": "Pending", "chosen": null})
    );
    assert_eq!(f["sides"]["servicenow"]["field"], "state");
    assert_eq!((&f["sides"]["servicenow"]["base"], &f["sides"]["servicenow"]["current"]), (&json!("2"), &json!("3")));
    let id = rec["id"].as_i64().unwrap();
    let (status, one, _) = app.get(&format!("/admin/conflicts/{id}"), &p.admin).await;
    assert_eq!((status, &one["id"]), (200, &json!(id)));
    assert_eq!(conflicts(&app, &p.admin, "partner=servicenow").await.len(), 0);
    assert_eq!(conflicts(&app, &p.admin, &format!("ticket={number}")).await.len(), 1);

    // Visible on /metrics and on the ticket's sync timeline.
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ebond_conflicts_open{partner=\"acme-msp\"} 1"), "{metrics}");
    assert!(metrics.contains("ebond_conflicts_open{partner=\"servicenow\"} 0"), "{metrics}");
    let (_, timeline, _) = app.get(&format!("/admin/tickets/{number}/sync"), &p.admin).await;
    assert_eq!(timeline["conflicts"][0]["id"], id, "{timeline}");

    // Acme writing the same value again conflicts again (it still has not seen version 3)...
    let (status, again) = app.patch("/tickets/ACME-2001", &p.acme, &json!({"status": "Resolved"})).await;
    assert_eq!(status, 202, "every field held: {again}");
    assert_eq!(again["version"], 4, "{again}");
    // ...until it reads the ticket: then it decides knowing the current value.
    assert_eq!(app.get("/tickets/ACME-2001", &p.acme).await.0, 200);
    let (status, b) = app.patch("/tickets/ACME-2001", &p.acme, &json!({"status": "Resolved"})).await;
    assert_eq!(status, 200, "{b}");
    assert!(b.get("conflict").is_none(), "{b}");
    // The value both records proposed is now current: both are superseded.
    let items = conflicts(&app, &p.admin, "status=superseded").await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(conflicts(&app, &p.admin, "status=open").await.is_empty());

    // Bad filters are refused clearly.
    let (status, problem, _) = app.get("/admin/conflicts?status=pending", &p.admin).await;
    assert_eq!((status, &problem["code"]), (400, &json!("bad-query")), "{problem}");
    let (status, _, _) = app.get("/admin/conflicts", &p.acme).await;
    assert_eq!(status, 403, "operators only");
});

backend_test!(every_field_held_answers_202_and_replays_the_same, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020002", "ACME-2002").await;
    snow_holds(&app, &p, "INC0020002").await;
    let send = || {
        app.http
            .patch(app.api("/tickets/ACME-2002"))
            .bearer_auth(&p.acme)
            .header("Idempotency-Key", "acme-retry-1")
            .json(&json!({"status": "Resolved"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["conflict"]["status"], "open", "{first}");
    let again = send().await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the replay answers what the first request was answered");
    assert_eq!(conflicts(&app, &p.admin, "").await.len(), 1, "a replay records nothing new");
});

backend_test!(if_match_keeps_its_strict_meaning, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020003", "ACME-2003").await;
    snow_holds(&app, &p, "INC0020003").await;
    let resp = app
        .http
        .patch(app.api("/tickets/ACME-2003"))
        .bearer_auth(&p.acme)
        .header("If-Match", "\"2\"")
        .json(&resolve_payload())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    let resp = app
        .http
        .patch(app.api("/tickets/ACME-2003"))
        .bearer_auth(&p.acme)
        .header("If-Match", "\"3\"")
        .json(&resolve_payload())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "If-Match on the current version writes over the change it names");
    assert!(conflicts(&app, &p.admin, "").await.is_empty());
});

backend_test!(appends_never_conflict_and_single_writer_fields_only_with_operators, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020004", "ACME-2004").await;
    snow_holds(&app, &p, "INC0020004").await;
    let (s, b) = app.post("/tickets/ACME-2004/work-notes", &p.acme, &json!({"text": "still on it"})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.get("conflict").is_none(), "{b}");
    // Only Acme writes estimated_completion: nobody else can have changed it.
    let (s, b) =
        app.patch("/tickets/ACME-2004", &p.acme, &json!({"estimated_completion": "2026-12-03T10:00:00Z"})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.get("conflict").is_none(), "{b}");
    // A state Acme could never reach from the current one is refused now, not queued.
    let (s, b) = app.patch("/tickets/ACME-2004", &p.acme, &json!({"status": "Cancelled"})).await;
    assert_eq!(s, 403, "{b}");
    assert!(conflicts(&app, &p.admin, "").await.is_empty());
});

/// A contracts folder where Acme refuses conflicting writes by default and accepts them on
/// `resolution_notes` (last write wins, recorded).
fn modes_contracts(dir: &std::path::Path) {
    let src = repo_path("contracts");
    for f in ["workflow.toml", "servicenow.toml", "enovia.toml"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let acme = std::fs::read_to_string(src.join("acme-msp.toml"))
        .unwrap()
        .replace("unknown_fields = \"reject\"", "unknown_fields = \"reject\"\non_conflict = \"reject\"")
        .replace(
            "pointer = \"/resolution_notes\"\ncanonical = \"resolution_notes\"",
            "pointer = \"/resolution_notes\"\ncanonical = \"resolution_notes\"\non_conflict = \"accept\"",
        );
    assert!(acme.contains("on_conflict = \"accept\""));
    std::fs::write(dir.join("acme-msp.toml"), acme).unwrap();
}

async fn on_conflict_modes(backend: Backend) {
    let contracts = tempfile::tempdir().unwrap();
    modes_contracts(contracts.path());
    let dir = contracts.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| s.contracts_dir = dir).await;
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020005", "ACME-2005").await;
    let (s, b) = app
        .patch(
            "/tickets/INC0020005",
            &p.snow,
            &json!({"state": "3", "hold_reason": "1", "close_notes": "from the desk"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // reject: 409 with the current value, nothing written.
    let (s, problem) = app.patch("/tickets/ACME-2005", &p.acme, &resolve_payload()).await;
    assert_eq!(s, 409, "{problem}");
    assert_eq!(problem["code"], "edit-conflict", "{problem}");
    let fields: Vec<&str> =
        problem["conflicts"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["status"], "only the rejecting field is reported: {problem}");
    assert_eq!(problem["conflicts"][0]["current"], "Pending");
    let (_, view, _) = app.get("/tickets/INC0020005", &p.snow).await;
    assert_eq!((view["version"].as_i64(), &view["fields"]["close_notes"]), (Some(3), &json!("from the desk")));

    // accept: written over the other change, and recorded as overwritten.
    let (s, b) = app.patch("/tickets/ACME-2005", &p.acme, &json!({"resolution_notes": "from Acme"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["conflict"]["status"], "overwritten", "{b}");
    assert_eq!(b["conflict"]["fields"][0]["held"], false);
    let (_, view, _) = app.get("/tickets/INC0020005", &p.snow).await;
    assert_eq!(view["fields"]["close_notes"], "from Acme");
    let items = conflicts(&app, &p.admin, "status=overwritten").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["fields"][0]["current"], "from the desk", "the overwritten value is kept: {items:?}");
    assert!(conflicts(&app, &p.admin, "status=open").await.is_empty());
}
per_backend!(each_on_conflict_mode, super::on_conflict_modes);

#[test]
fn a_bad_on_conflict_value_is_a_contract_error() {
    let dir = tempfile::tempdir().unwrap();
    modes_contracts(dir.path());
    let path = dir.path().join("acme-msp.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("on_conflict = \"accept\"", "on_conflict = \"merge\"");
    std::fs::write(&path, text).unwrap();
    let errors = ebond::contract::load_dir(dir.path()).unwrap_err();
    assert!(
        errors.iter().any(|e| e.message.contains("on_conflict must be `queue`, `accept` or `reject`, not `merge`")),
        "{errors:?}"
    );
    // The version is read-only.
    let text =
        std::fs::read_to_string(&path).unwrap().replace("write = [\"state\",", "write = [\"version\", \"state\",");
    assert!(text.contains("\"version\", \"state\""));
    std::fs::write(&path, text).unwrap();
    let errors = ebond::contract::load_dir(dir.path()).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("`version` is read-only")), "{errors:?}");
}

backend_test!(two_partners_changing_the_state_at_once_make_one_conflict, |app: TestApp| async move {
    let p = parties(&app).await;
    // From on hold, both orders are legal: Acme resolves, ServiceNow resumes work.
    for i in 0..4 {
        let inc = format!("INC003000{i}");
        worked_ticket(&app, &p, &inc, &format!("ACME-300{i}")).await;
        snow_holds(&app, &p, &inc).await;
        assert_eq!(app.get(&format!("/tickets/ACME-300{i}"), &p.acme).await.0, 200);
        let (snow_path, acme_path) = (format!("/tickets/{inc}"), format!("/tickets/ACME-300{i}"));
        let (resume, resolve) = (json!({"state": "2"}), resolve_payload());
        let (a, b) = tokio::join!(app.patch(&snow_path, &p.snow, &resume), app.patch(&acme_path, &p.acme, &resolve));
        assert!([a.0, b.0].iter().all(|s| [200, 202].contains(s)), "{a:?} {b:?}");
        let held = [&a, &b].iter().filter(|(_, body)| body.get("conflict").is_some()).count();
        assert_eq!(held, 1, "exactly one of the two writes conflicts: {a:?} {b:?}");
    }
    assert_eq!(conflicts(&app, &p.admin, "limit=100").await.len(), 4);
});

backend_test!(resolution_errors_are_clear, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020006", "ACME-2006").await;
    snow_holds(&app, &p, "INC0020006").await;
    let (_, b) = app.patch("/tickets/ACME-2006", &p.acme, &resolve_payload()).await;
    let id = b["conflict"]["id"].as_i64().unwrap();
    let path = format!("/admin/conflicts/{id}/resolve");
    let cases = [
        (json!({}), 422, "invalid-resolution"),
        (json!({"fields": {"priority": {"choice": "keep_current"}}}), 422, "invalid-resolution"),
        (json!({"fields": {"state": {"choice": "custom", "value": "bogus"}}}), 422, "invalid-resolution"),
        (json!({"fields": {"state": {"choice": "custom"}}}), 422, "invalid-resolution"),
        (json!({"choice": "maybe"}), 400, "bad-body"),
        (json!({"choice": "keep_current", "extra": 1}), 400, "bad-body"),
    ];
    for (body, status, code) in cases {
        let (s, problem) = app.post(&path, &p.admin, &body).await;
        assert_eq!((s, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }
    let (s, problem) = app.post("/admin/conflicts/999999/resolve", &p.admin, &json!({"choice": "keep_current"})).await;
    assert_eq!((s, problem["code"].as_str()), (404, Some("conflict-not-found")), "{problem}");
    let (s, _) = app.post(&path, &p.acme, &json!({"choice": "keep_current"})).await;
    assert_eq!(s, 403, "partners cannot resolve");
    let (s, done) = app.post(&path, &p.admin, &json!({"choice": "keep_current", "comment": "desk wins"})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["conflict"]["status"], "resolved");
    assert_eq!(done["conflict"]["comment"], "desk wins");
    assert!(done["conflict"]["resolved_by"].as_str().unwrap().starts_with("operator:"), "{done}");
    assert_eq!(done["conflict"]["fields"][0]["chosen"], "on_hold");
    let (s, problem) = app.post(&path, &p.admin, &json!({"choice": "keep_current"})).await;
    assert_eq!((s, problem["code"].as_str()), (409, Some("conflict-closed")), "{problem}");
    // Refusals are in the transaction log too, under the operator.
    let (_, tx, _) = app.get("/admin/transactions?result=rejected&limit=50", &p.admin).await;
    let refused: Vec<&Value> = tx["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|x| x.ends_with(&path)))
        .collect();
    let by_operator = refused.iter().filter(|r| r["partner"].as_str().is_some_and(|p| p.starts_with("operator:")));
    assert_eq!(by_operator.count(), 7, "six bad requests and one on a closed conflict: {tx}");
    assert!(refused.iter().any(|r| r["error_codes"][0] == "conflict-closed"), "{tx}");
    // Audited with the operator's credential.
    let (_, tx, _) = app.get("/admin/transactions?limit=5", &p.admin).await;
    let row = tx["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|x| x.ends_with(&path)))
        .cloned()
        .unwrap();
    assert!(row["partner"].as_str().unwrap().starts_with("operator:"), "{row}");
});

backend_test!(an_illegal_held_transition_is_refused_at_resolution, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020007", "ACME-2007").await;
    snow_holds(&app, &p, "INC0020007").await;
    let (s, b) = app.patch("/tickets/ACME-2007", &p.acme, &resolve_payload()).await;
    assert_eq!(s, 200, "{b}");
    let id = b["conflict"]["id"].as_i64().unwrap();
    // ServiceNow cancels the ticket meanwhile: canceled → resolved is no transition.
    let (s, b) = app.patch("/tickets/INC0020007", &p.snow, &json!({"state": "8"})).await;
    assert_eq!(s, 200, "{b}");
    let (s, problem) =
        app.post(&format!("/admin/conflicts/{id}/resolve"), &p.admin, &json!({"choice": "take_partner"})).await;
    assert_eq!((s, problem["code"].as_str()), (422, Some("invalid-transition")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("from `canceled` to `resolved`"), "{problem}");
    assert_eq!(conflicts(&app, &p.admin, "status=open").await.len(), 1, "still open");
});

async fn a_burst_of_conflicting_writes_loses_none(backend: Backend) {
    // Acme's inbound rate limit (600 a minute by default) raised for the burst.
    let contracts = tempfile::tempdir().unwrap();
    let src = repo_path("contracts");
    for f in ["workflow.toml", "servicenow.toml", "enovia.toml"] {
        std::fs::copy(src.join(f), contracts.path().join(f)).unwrap();
    }
    let acme = std::fs::read_to_string(src.join("acme-msp.toml"))
        .unwrap()
        .replace("token_lifetime_secs = 3600", "token_lifetime_secs = 3600\nrate_limit_per_minute = 100000");
    std::fs::write(contracts.path().join("acme-msp.toml"), acme).unwrap();
    let dir = contracts.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| s.contracts_dir = dir).await;
    let p = parties(&app).await;
    let number = worked_ticket(&app, &p, "INC0020008", "ACME-2008").await;
    snow_holds(&app, &p, "INC0020008").await;
    const N: usize = 1000;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (http, url, token, sem) = (app.http.clone(), app.api("/tickets/ACME-2008"), p.acme.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let body = if i % 2 == 0 { json!({"status": "Resolved"}) } else { json!({"status": "Work In Progress"}) };
            let r = http.patch(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let b: Value = r.json().await.unwrap();
            (status, b["conflict"]["id"].as_i64(), b)
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, id, body) = t.await.unwrap();
        assert_eq!(status, 202, "{body}");
        assert!(ids.insert(id.unwrap()), "one record per write");
    }
    assert_eq!(ids.len(), N);
    let (_, view, _) = app.get("/tickets/INC0020008", &p.snow).await;
    assert_eq!((view["version"].as_i64(), &view["fields"]["state"]), (Some(3), &json!("3")), "nothing overwritten");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("ebond_conflicts_open{{partner=\"acme-msp\"}} {N}")), "{metrics}");

    // Bulk: a dry run counts, then every one is resolved keeping the current value.
    let dry_run = json!({"ticket": number, "choice": "keep_current", "dry_run": true});
    let (s, dry) = app.post("/admin/conflicts/resolve", &p.admin, &dry_run).await;
    assert_eq!((s, dry["matched"].as_u64(), dry["resolved"].as_u64()), (200, Some(N as u64), Some(0)), "{dry}");
    assert_eq!(conflicts(&app, &p.admin, "status=open&limit=1").await.len(), 1, "a dry run resolves nothing");
    let all = json!({"partner": "acme-msp", "choice": "keep_current", "comment": "desk wins"});
    let (s, done) = app.post("/admin/conflicts/resolve", &p.admin, &all).await;
    assert_eq!((s, done["resolved"].as_u64()), (200, Some(N as u64)), "{done}");
    assert!(conflicts(&app, &p.admin, "status=open").await.is_empty());
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ebond_conflicts_open{partner=\"acme-msp\"} 0"), "{metrics}");
}
per_backend!(a_burst_of_1000_conflicting_writes_loses_none, super::a_burst_of_conflicting_writes_loses_none);

// ---- with delivery: pushes count as seen, resolutions converge the copies ----

/// Waits until every outbox row of `number` is delivered.
pub(crate) async fn settled(app: &TestApp, number: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = app.outbox_rows(number).await;
        if !rows.is_empty() && rows.iter().all(|r| r.status == "delivered") {
            return;
        }
        assert!(Instant::now() < deadline, "deliveries of {number} never settled: {rows:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) fn last_for<'a>(got: &'a [Received], number: &str) -> &'a Received {
    got.iter().rev().find(|r| r.ticket() == number).expect("a push for the ticket")
}

delivery_test!(a_write_after_the_other_sides_push_does_not_conflict, |_s| {}, |app: TestApp, f: Partners| async move {
    let p = parties(&app).await;
    f.acme.next_id("ACME-4001");
    let mut body = servicenow_incident("INC0040001");
    body["assignment_group"] = json!("Acme L2");
    let (s, created) = app.post("/tickets", &p.snow, &body).await;
    assert_eq!(s, 201);
    let number = created["number"].as_str().unwrap().to_string();
    settled(&app, &number).await;
    let got = f.acme.received();
    let create = last_for(&got, &number);
    assert_eq!((create.header("x-ebond-version"), &create.body["hub_version"]), ("1", &json!(1)), "{:?}", create.body);
    // No reads here: what each side has seen comes from the pushes delivered to it.
    let (s, b) = app.patch("/tickets/ACME-4001", &p.acme, &json!({"status": "Work In Progress"})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.get("conflict").is_none(), "Acme saw version 1 in the create push: {b}");
    settled(&app, &number).await;
    let got = f.snow.wait_for(10, "Acme's change at ServiceNow", |r| r.iter().any(|x| x.body["state"] == "2")).await;
    assert_eq!(last_for(&got, &number).header("x-ebond-version"), "2", "pushes carry the version");
    let (s, b) = app.patch("/tickets/INC0040001", &p.snow, &json!({"state": "3", "hold_reason": "1"})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.get("conflict").is_none(), "ServiceNow saw version 2 in the push: {b}");
    assert!(conflicts(&app, &p.admin, "").await.is_empty());
});

/// Acme resolves while ServiceNow's hold is still on its way (deliveries to Acme paused): one
/// open conflict on the state. Returns the conflict id.
pub(crate) async fn conflicting_resolution(
    app: &TestApp,
    p: &Parties,
    f: &Partners,
    inc: &str,
    acme_id: &str,
) -> (String, i64) {
    f.acme.next_id(acme_id);
    let mut body = servicenow_incident(inc);
    body["assignment_group"] = json!("Acme L2");
    let (s, created) = app.post("/tickets", &p.snow, &body).await;
    assert_eq!(s, 201);
    let number = created["number"].as_str().unwrap().to_string();
    settled(app, &number).await;
    let (s, b) = app.patch(&format!("/tickets/{acme_id}"), &p.acme, &json!({"status": "Work In Progress"})).await;
    assert_eq!(s, 200, "{b}");
    settled(app, &number).await;
    assert_eq!(app.post("/admin/partners/acme-msp/pause", &p.admin, &json!({})).await.0, 200);
    // A claim cycle that read the switch just before it changed ends within a poll interval.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, b) = app.patch(&format!("/tickets/{inc}"), &p.snow, &json!({"state": "3", "hold_reason": "4"})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.patch(&format!("/tickets/{acme_id}"), &p.acme, &resolve_payload()).await;
    assert_eq!(s, 200, "{b}");
    let id = b["conflict"]["id"].as_i64().expect("a conflict");
    assert_eq!(app.post("/admin/partners/acme-msp/resume", &p.admin, &json!({})).await.0, 200);
    (number, id)
}

/// Every fake partner's last push of `number` shows the hub's values of the fields it reads.
async fn converged(app: &TestApp, p: &Parties, f: &Partners, number: &str) {
    settled(app, number).await;
    let (_, acme_view, _) = app.get(&format!("/tickets/{number}"), &p.acme).await;
    let got = f.acme.received();
    let last = last_for(&got, number);
    for field in ["status", "resolution_code", "resolution_notes", "pending_reason"] {
        assert_eq!(last.body[field], acme_view["fields"][field], "Acme's {field}: {:?}", last.body);
    }
    let (_, snow_view, _) = app.get(&format!("/tickets/{number}"), &p.snow).await;
    let got = f.snow.received();
    let last = last_for(&got, number);
    for field in ["state", "close_code", "close_notes", "hold_reason"] {
        assert_eq!(last.body[field], snow_view["fields"][field], "ServiceNow's {field}: {:?}", last.body);
    }
}

delivery_test!(resolving_for_the_current_value_converges_every_copy, |_s| {}, |app: TestApp, f: Partners| async move {
    let p = parties(&app).await;
    let (number, id) = conflicting_resolution(&app, &p, &f, "INC0040002", "ACME-4002").await;
    let (s, done) =
        app.post(&format!("/admin/conflicts/{id}/resolve"), &p.admin, &json!({"choice": "keep_current"})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["pushed_to"], json!(["acme-msp"]), "the ticket kept its value: only the loser hears it");
    let version = done["version"].to_string();
    let got = f
        .acme
        .wait_for(10, "the resolution at Acme", |r| r.iter().any(|x| x.header("x-ebond-version") == version))
        .await;
    let last = last_for(&got, &number);
    assert_eq!(last.header("x-ebond-version"), version);
    assert_eq!(last.body["status"], "Pending", "Acme's copy goes back to the hub's state: {:?}", last.body);
    converged(&app, &p, &f, &number).await;
});

delivery_test!(resolving_for_the_partner_value_converges_every_copy, |_s| {}, |app: TestApp, f: Partners| async move {
    let p = parties(&app).await;
    let (number, id) = conflicting_resolution(&app, &p, &f, "INC0040003", "ACME-4003").await;
    let (s, done) = app
        .post(
            &format!("/admin/conflicts/{id}/resolve"),
            &p.admin,
            &json!({"fields": {"state": {"choice": "take_partner"}}}),
        )
        .await;
    assert_eq!(s, 200, "{done}");
    let mut pushed: Vec<String> =
        done["pushed_to"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    pushed.sort();
    assert!(pushed.contains(&"servicenow".to_string()), "{done}");
    let got = f.snow.wait_for(10, "the resolution at ServiceNow", |r| r.iter().any(|x| x.body["state"] == "6")).await;
    assert_eq!(last_for(&got, &number).body["state"], "6");
    let (_, view, _) = app.get("/tickets/INC0040003", &p.snow).await;
    assert_eq!(view["fields"]["state"], "6");
    converged(&app, &p, &f, &number).await;
});

backend_test!(the_cli_lists_shows_and_resolves, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020009", "ACME-2009").await;
    snow_holds(&app, &p, "INC0020009").await;
    let (_, b) = app.patch("/tickets/ACME-2009", &p.acme, &resolve_payload()).await;
    let id = b["conflict"]["id"].as_i64().unwrap().to_string();
    let settings = app.settings.clone();
    let run = move |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ebond"))
            .args(args)
            .env("EBOND_DATABASE_URL", settings.effective_database_url())
            .env("EBOND_DATA_DIR", &settings.data_dir)
            .env("EBOND_CONTRACTS_DIR", &settings.contracts_dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["conflicts", "list"]);
    assert!(ok && out.contains("acme-msp") && out.contains("state (held)"), "{out} {err}");
    let (ok, out, err) = run(&["conflicts", "show", &id]);
    assert!(ok && out.contains("base (last seen): \"in_progress\"") && out.contains("Pending"), "{out} {err}");
    let (ok, _, err) = run(&["conflicts", "resolve", &id, "--field", "state=custom:\"bogus\""]);
    assert!(!ok && err.contains("state"), "{err}");
    let (ok, out, err) =
        run(&["conflicts", "resolve", "--all", "--partner", "acme-msp", "--choice", "take_partner", "--dry-run"]);
    assert!(ok && out.contains("1 open conflict match"), "{out} {err}");
    let (ok, out, err) = run(&["conflicts", "resolve", &id, "--choice", "take_partner", "--comment", "MSP was right"]);
    assert!(ok && out.contains("resolved conflict"), "{out} {err}");
    let (_, view, _) = app.get("/tickets/INC0020009", &p.snow).await;
    assert_eq!(view["fields"]["state"], "6", "{view}");
    let items = conflicts(&app, &p.admin, "status=resolved").await;
    assert!(items[0]["resolved_by"].as_str().unwrap().starts_with("cli:"), "{items:?}");
});

backend_test!(a_write_that_holds_nothing_does_not_count_as_having_seen_the_others, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020010", "ACME-2010").await;
    snow_holds(&app, &p, "INC0020010").await;
    // Acme adds a note from its stale view: its answer shows no field, so the hold stays unseen.
    let (s, b) = app.post("/tickets/ACME-2010/work-notes", &p.acme, &json!({"text": "on site tomorrow"})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.patch("/tickets/ACME-2010", &p.acme, &resolve_payload()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["conflict"]["fields"][0]["field"], "status", "the hold is not silently overwritten: {b}");
    // A list read counts as having seen each ticket on the page.
    let (s, page, _) = app.get("/tickets?limit=10", &p.acme).await;
    assert_eq!(s, 200, "{page}");
    let (s, b) = app.patch("/tickets/ACME-2010", &p.acme, &json!({"status": "Resolved"})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.get("conflict").is_none(), "{b}");
});

backend_test!(a_derived_priority_never_replaces_another_partys_priority, |app: TestApp| async move {
    let enovia = app.token(Some("enovia")).await;
    let snow = app.token(Some("servicenow")).await;
    let (s, created) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000077")).await;
    assert_eq!(s, 201, "{created}");
    let number = created["number"].as_str().unwrap().to_string();
    assert_eq!(app.get(&format!("/tickets/{number}"), &snow).await.0, 200);
    // ENOVIA lowers the priority explicitly; ServiceNow has not seen that.
    let (s, b) = app.patch("/tickets/ISS-0000077", &enovia, &json!({"data": {"Priority": "low"}})).await;
    assert_eq!(s, 200, "{b}");
    // ServiceNow raises the impact: priority would be derived from impact × urgency.
    let (s, b) = app.patch(&format!("/tickets/{number}"), &snow, &json!({"impact": "1"})).await;
    assert_eq!(s, 200, "{b}");
    let (_, view, _) = app.get(&format!("/tickets/{number}"), &snow).await;
    assert_eq!((&view["fields"]["impact"], &view["fields"]["priority"]), (&json!("1"), &json!("4")), "{view}");
});

backend_test!(a_custom_null_clears_a_held_field, |app: TestApp| async move {
    let p = parties(&app).await;
    worked_ticket(&app, &p, "INC0020011", "ACME-2011").await;
    let (s, b) = app.patch("/tickets/INC0020011", &p.snow, &json!({"close_notes": "desk notes"})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.patch("/tickets/ACME-2011", &p.acme, &json!({"resolution_notes": "acme notes"})).await;
    assert_eq!(s, 202, "{b}");
    let id = b["conflict"]["id"].as_i64().unwrap();
    let body = json!({"fields": {"resolution_notes": {"choice": "custom", "value": null}}});
    let (s, done) = app.post(&format!("/admin/conflicts/{id}/resolve"), &p.admin, &body).await;
    assert_eq!(s, 200, "{done}");
    let (_, view, _) = app.get("/tickets/INC0020011", &p.snow).await;
    assert!(view["fields"]["close_notes"].is_null(), "{view}");
    let body = json!({"fields": {"state": {"choice": "custom", "value": null}}});
    let (s, _) = app.post(&format!("/admin/conflicts/{id}/resolve"), &p.admin, &body).await;
    assert_eq!(s, 409, "already resolved");
});

async fn conflict_events_case(backend: Backend) {
    let ops = crate::fakes::FakePartner::start(crate::fakes::Kind::Acme).await;
    let secret = tempfile::tempdir().unwrap();
    let secret_file = secret.path().join("signing");
    std::fs::write(&secret_file, crate::fakes::SIGNING_SECRET).unwrap();
    let ops_url = format!("{}/ops-events", ops.uri());
    let app = TestApp::spawn_with(backend, |s| {
        s.alerts.webhook_url = Some(ops_url);
        s.alerts.webhook_secret = Some(format!("file:{}", secret_file.display()));
    })
    .await;
    let p = parties(&app).await;
    let number = worked_ticket(&app, &p, "INC0020012", "ACME-2012").await;
    snow_holds(&app, &p, "INC0020012").await;
    let (_, b) = app.patch("/tickets/ACME-2012", &p.acme, &resolve_payload()).await;
    let id = b["conflict"]["id"].as_i64().unwrap();
    let got = ops.wait_for(10, "conflict.opened", |r| r.iter().any(|x| x.body["type"] == "conflict.opened")).await;
    let opened = got.iter().find(|x| x.body["type"] == "conflict.opened").unwrap();
    assert!(crate::fakes::verify_signature(opened), "signed");
    assert_eq!(
        opened.body["data"],
        json!({"conflict": id, "ticket": number, "partner": "acme-msp", "fields": ["status"]}),
        "{:?}",
        opened.body
    );
    let (s, _) =
        app.post(&format!("/admin/conflicts/{id}/resolve"), &p.admin, &json!({"choice": "keep_current"})).await;
    assert_eq!(s, 200);
    let got = ops.wait_for(10, "conflict.resolved", |r| r.iter().any(|x| x.body["type"] == "conflict.resolved")).await;
    let resolved = got.iter().find(|x| x.body["type"] == "conflict.resolved").unwrap();
    assert_eq!(
        (&resolved.body["data"]["conflict"], &resolved.body["data"]["status"]),
        (&json!(id), &json!("resolved"))
    );
    assert!(resolved.body["data"]["resolved_by"].as_str().unwrap().starts_with("operator:"));
}
per_backend!(conflicts_are_announced_on_the_signed_ops_webhook, super::conflict_events_case);
