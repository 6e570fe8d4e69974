//! The end-to-end scenario: ENOVIA raises a service request → ServiceNow assigns it to an
//! Acme group → Acme reads it, bonds its own number, works it, adds a work note and resolves
//! it → ServiceNow closes it. At each step the right outbox rows exist for the right partners
//! and none for the originator.

use crate::backend_test;
use crate::helpers::{enovia_issue, TestApp};
use serde_json::json;

fn rows(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(p, e)| (p.to_string(), e.to_string())).collect()
}

backend_test!(enovia_to_acme_to_servicenow, |app: TestApp| async move {
    let enovia = app.token(Some("enovia")).await;
    let snow = app.token(Some("servicenow")).await;
    let acme = app.token(Some("acme-msp")).await;

    // 1. ENOVIA raises a service request.
    let (status, created) = app.post("/tickets", &enovia, &enovia_issue("ISS-0000042")).await;
    assert_eq!(status, 201, "{created}");
    let number = created["number"].as_str().unwrap().to_string();
    let mut expected = rows(&[("servicenow", "created")]);
    assert_eq!(app.outbox(&number).await, expected, "only ServiceNow mirrors new tickets");

    // Acme cannot see it yet: not assigned to its groups.
    let (status, _, _) = app.get(&format!("/tickets/{number}"), &acme).await;
    assert_eq!(status, 404);

    // 2. ServiceNow bonds its incident number and assigns the ticket to Acme L2.
    let (status, body) = app
        .patch(&format!("/tickets/{number}"), &snow, &json!({"number": "INC0010042", "assignment_group": "Acme L2"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partner_ticket_id"], "INC0010042");
    // ENOVIA reads neither group nor assignee: a push would carry nothing it can read.
    expected.extend(rows(&[("acme-msp", "assigned")]));
    let mut got = app.outbox(&number).await;
    got[1..].sort();
    let mut want = expected.clone();
    want[1..].sort();
    assert_eq!(got, want, "Acme (its group) hears of it; not ServiceNow, nor ENOVIA");

    // 3. Acme reads it (by hub number), bonds its own ticket number, starts work.
    let (status, view, _) = app.get(&format!("/tickets/{number}"), &acme).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["fields"]["summary"], "Press line 3 PLC not reachable from PLM");
    assert_eq!(view["fields"]["queue"], "Acme L2");
    assert_eq!(view["fields"]["status"], "Open");
    let (status, body) = app
        .patch(
            &format!("/tickets/{number}"),
            &acme,
            &json!({"ticket_number": "ACME-77001", "status": "Work In Progress"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "Work In Progress");
    assert_eq!(body["partner_ticket_id"], "ACME-77001");
    let step3 = app.outbox(&number).await;
    let new: Vec<_> = step3[expected.len()..].to_vec();
    let mut new_sorted = new.clone();
    new_sorted.sort();
    assert_eq!(new_sorted, rows(&[("enovia", "state_changed"), ("servicenow", "state_changed")]));
    expected = step3;

    // 4. Acme adds a work note, by its own number now.
    let (status, body) = app
        .post(
            "/tickets/ACME-77001/work-notes",
            &acme,
            &json!({"text": "Replaced the PoE injector", "entry_id": "acme-wn-1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let step4 = app.outbox(&number).await;
    assert_eq!(
        step4[expected.len()..].to_vec(),
        rows(&[("servicenow", "work_note_added")]),
        "internal note: not to ENOVIA"
    );
    expected = step4;

    // 5. Acme resolves with resolution fields.
    let (status, body) = app
        .patch(
            "/tickets/ACME-77001",
            &acme,
            &json!({"status": "Resolved", "resolution_code": "FIXED", "resolution_notes": "PoE injector replaced; PLC reachable"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let step5 = app.outbox(&number).await;
    let mut new: Vec<_> = step5[expected.len()..].to_vec();
    new.sort();
    assert_eq!(new, rows(&[("enovia", "resolved"), ("servicenow", "resolved")]));
    expected = step5;
    let payloads = app.outbox_payloads(&number).await;
    let last = payloads.last().unwrap();
    assert_eq!(last["origin"]["partner"], "acme-msp");
    assert_eq!(last["ticket"]["resolution_code"], "solution_provided");
    assert_eq!(last["changes"]["state"], json!({"from": "in_progress", "to": "resolved"}));
    assert!(last["events"].as_array().unwrap().contains(&json!("state_changed")));

    // ENOVIA sees the resolution recommendation in its own vocabulary.
    let (_, view, _) = app.get("/tickets/ISS-0000042", &enovia).await;
    assert_eq!(view["fields"]["data"]["state"], "Review");
    assert_eq!(view["fields"]["data"]["Resolution Recommendation"], "PoE injector replaced; PLC reachable");

    // 6. ServiceNow reads the resolution (no delivery runs here) and closes it. Without that
    // read its close would conflict with Acme's resolution, made after what it last saw.
    let (status, _, _) = app.get("/tickets/INC0010042", &snow).await;
    assert_eq!(status, 200);
    let (status, body) = app.patch("/tickets/INC0010042", &snow, &json!({"state": "7"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "7");
    let step6 = app.outbox(&number).await;
    let mut new: Vec<_> = step6[expected.len()..].to_vec();
    new.sort();
    assert_eq!(new, rows(&[("acme-msp", "closed"), ("enovia", "closed")]));

    // Never an echo to the originator of a step, and Acme cannot reopen a closed ticket.
    let (status, _) = app.patch("/tickets/ACME-77001", &acme, &json!({"status": "Work In Progress"})).await;
    assert_eq!(status, 422);
});

backend_test!(reassigning_away_recalls_the_msp, |app: TestApp| async move {
    let snow = app.token(Some("servicenow")).await;
    let acme = app.token(Some("acme-msp")).await;
    let mut inc = crate::helpers::servicenow_incident("INC0010050");
    inc["assignment_group"] = json!("Acme Network");
    let (status, created) = app.post("/tickets", &snow, &inc).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(app.outbox("EB0000001").await, rows(&[("acme-msp", "created")]));
    let (status, _, _) = app.get("/tickets/EB0000001", &acme).await;
    assert_eq!(status, 200);
    let (status, _) = app.patch("/tickets/INC0010050", &snow, &json!({"assignment_group": "Service Desk"})).await;
    assert_eq!(status, 200);
    assert_eq!(app.outbox("EB0000001").await, rows(&[("acme-msp", "created"), ("acme-msp", "recalled")]));
    let (status, _, _) = app.get("/tickets/EB0000001", &acme).await;
    assert_eq!(status, 404, "recalled: no longer shared");
    // Assigned back: shared again.
    app.patch("/tickets/INC0010050", &snow, &json!({"assignment_group": "Acme L2"})).await;
    let (status, _, _) = app.get("/tickets/EB0000001", &acme).await;
    assert_eq!(status, 200);
});
