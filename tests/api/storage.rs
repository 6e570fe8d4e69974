//! Storage settings as the database sees them: durable commits by default, the fast mode only
//! when asked for, on both backends.

use crate::helpers::{Backend, TestApp};
use diesel::prelude::*;
use diesel::sql_types::Text;
use ebond::config::Durability;
use ebond::store::DbConn;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// SQLite's `synchronous` (2 = FULL, 1 = NORMAL) or PostgreSQL's `synchronous_commit`, read on
/// a pooled connection of the running gateway.
async fn commit_durability(app: &TestApp) -> String {
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("conn");
        let setting = match &mut conn {
            DbConn::Sqlite(c) => diesel::sql_query("SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous")
                .get_result::<Setting>(&mut **c),
            DbConn::Postgres(c) => diesel::sql_query("SELECT current_setting('synchronous_commit') AS value")
                .get_result::<Setting>(&mut **c),
        };
        setting.expect("read the setting").value
    })
    .await
    .expect("blocking task")
}

async fn durable_by_default_fast_on_request(backend: Backend) {
    let (full, fast) = match backend {
        Backend::Sqlite => ("2", "1"),
        Backend::Postgres => ("on", "off"),
    };
    let app = TestApp::spawn(backend).await;
    assert_eq!(commit_durability(&app).await, full);
    let app = TestApp::spawn_with(backend, |s| s.database.durability = Durability::Fast).await;
    assert_eq!(commit_durability(&app).await, fast);
    // The gateway works the same in fast mode.
    let token = app.token(Some("servicenow")).await;
    let resp = app
        .http
        .post(app.api("/tickets"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"number": "INC0000042", "short_description": "fast mode", "impact": "3", "urgency": "3"}))
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status(), 201);
}

crate::per_backend!(durability, super::durable_by_default_fast_on_request);

/// A claim reads the partner's own id with the rows it leases, and a batch of settles is
/// three statements whatever its size: each row settled only while its lease is still the
/// settling claim's, every attempt recorded, and the version a partner has now seen kept on
/// its cross-reference for the held rows only.
async fn claims_and_settles_in_batches(backend: Backend) {
    use ebond::store::models::AttemptRow;
    use ebond::store::outbox::{OutboxStatus, Settle, SettleOf};
    use ebond::store::StoreError;
    let app = TestApp::spawn(backend).await;
    let token = app.token(Some("servicenow")).await;
    let mut hub = Vec::new();
    for n in ["INC0000101", "INC0000102"] {
        let mut incident = crate::helpers::servicenow_incident(n);
        incident["assignment_group"] = "Acme L2".into(); // Acme subscribes to its groups' tickets
        let (status, body) = app.post("/tickets", &token, &incident).await;
        assert_eq!(status, 201);
        hub.push(body["number"].as_str().expect("the hub's number").to_string());
    }
    let db = app.db.clone();
    let (claimed, settled, rows, attempts, seen) = tokio::task::spawn_blocking(move || {
        // The Acme cross-reference of the first ticket is bonded; the second's is not.
        let first = db.read_now(move |c| c.ticket_by_number(&hub[0]).map_err(StoreError::from)).unwrap().unwrap();
        let xref = db
            .read_now(|c| c.xref_for("acme-msp", first.id).map_err(StoreError::from))
            .unwrap()
            .expect("Acme subscribes to ServiceNow's tickets");
        db.write_now(move |c| c.bond_partner_ticket_id(xref.id, "ACME-77", 1).map_err(StoreError::from)).unwrap();
        let now = ebond::util::now_ms();
        let claimed =
            db.write_now(move |c| c.claim_due(now, now + 60_000, "w#1", &[], 10).map_err(StoreError::from)).unwrap();
        let acme: Vec<_> = claimed.iter().filter(|c| c.outbox.partner == "acme-msp").cloned().collect();
        assert_eq!(acme.len(), 2, "both tickets' Acme rows are due: {claimed:?}");
        let settle = |status| Settle {
            status,
            next_attempt_at: now,
            last_status: Some(200),
            last_response: Some("{}".into()),
            last_error: None,
            now,
        };
        let attempt = |outbox_id| AttemptRow {
            id: 0,
            outbox_id,
            partner: "acme-msp".into(),
            attempt: 1,
            started_at: now,
            duration_ms: 3,
            http_status: Some(200),
            outcome: "delivered".into(),
            error_class: None,
            response_excerpt: None,
            worker: "w".into(),
        };
        let (a, b) = (acme[0].outbox.clone(), acme[1].outbox.clone());
        let (ra, rb) = (attempt(a.id), attempt(b.id));
        let delivered = settle(OutboxStatus::Delivered);
        let (a2, b2) = (a.clone(), b.clone());
        let settled = db
            .write_now(move |c| {
                c.settle_many(&[
                    SettleOf { row: &a2, owner: "w#1", settle: &delivered, attempt: &ra, seen: Some(5) },
                    // A claim that has lost its lease (another worker holds the row now).
                    SettleOf { row: &b2, owner: "w#0", settle: &delivered, attempt: &rb, seen: Some(5) },
                ])
                .map_err(StoreError::from)
            })
            .unwrap();
        let rows = db
            .read_now(move |c| Ok::<_, StoreError>((c.outbox_row(a.id)?.unwrap(), c.outbox_row(b.id)?.unwrap())))
            .unwrap();
        let (ia, ib) = (rows.0.id, rows.1.id);
        let attempts =
            db.read_now(move |c| Ok::<_, StoreError>((c.attempts_of(ia)?.len(), c.attempts_of(ib)?.len()))).unwrap();
        let (ta, tb) = (rows.0.ticket_id, rows.1.ticket_id);
        let seen = db
            .read_now(move |c| {
                Ok::<_, StoreError>((
                    c.xref_for("acme-msp", ta)?.unwrap().seen_version,
                    c.xref_for("acme-msp", tb)?.unwrap().seen_version,
                ))
            })
            .unwrap();
        (acme, settled, rows, attempts, seen)
    })
    .await
    .unwrap();
    let ids: Vec<Option<&str>> = claimed.iter().map(|c| c.partner_ticket_id.as_deref()).collect();
    assert_eq!(ids, vec![Some("ACME-77"), None], "the claim read each row's partner id");
    assert_eq!(settled, vec![true, false]);
    assert_eq!((rows.0.status.as_str(), rows.0.attempts, rows.0.delivered_at.is_some()), ("delivered", 1, true));
    assert_eq!((rows.1.status.as_str(), rows.1.attempts), ("in_flight", 0), "the lost lease left the row alone");
    assert_eq!(attempts, (1, 1), "both attempts are recorded");
    assert_eq!(seen.0, 5);
    assert!(seen.1 < 5, "only a held row records what the partner saw: {}", seen.1);
}

crate::per_backend!(batched_claims_and_settles, super::claims_and_settles_in_batches);
