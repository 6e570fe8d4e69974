//! Console benchmark: how long each operator-console page takes on a big database. Seeds a
//! fresh SQLite file or PostgreSQL database with bulk SQL — by default 1,000,000 tickets (two
//! cross-references, a journal entry, an audit row and a delivered outbox row with its attempt
//! each, spread over 23 days), 100,000 dead letters with three attempts each, 10,000 open
//! conflicts and a reconciliation run of 10,000 items — then serves the gateway in this
//! process, signs in over HTTP, and fetches every page `--rounds` times, printing the median,
//! p95 and worst time per page.
//!
//!   cargo bench --bench console -- [--db sqlite|postgres://user@host:port/db]
//!       [--tickets 1000000] [--dead 100000] [--conflicts 10000] [--rounds 20]
//!
//! For PostgreSQL the benchmark creates a database beside the one named (`ebond_console_<pid>`)
//! and drops it afterwards.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::time::{Duration, Instant};

struct Options {
    db: String,
    tickets: i64,
    dead: i64,
    conflicts: i64,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options { db: "sqlite".into(), tickets: 1_000_000, dead: 100_000, conflicts: 10_000, rounds: 20 };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--db" => o.db = value(),
            "--tickets" => o.tickets = value().parse().expect("--tickets N"),
            "--dead" => o.dead = value().parse().expect("--dead N"),
            "--conflicts" => o.conflicts = value().parse().expect("--conflicts N"),
            "--rounds" => o.rounds = value().parse().expect("--rounds N"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(o.dead <= o.tickets && o.conflicts <= o.tickets, "dead letters and conflicts are of seeded tickets");
    o
}

/// SQL that differs between the backends: a series `s(i)` of 1..=n, a zero-padded number, hex.
struct Dialect {
    postgres: bool,
}

impl Dialect {
    fn series(&self, n: i64) -> String {
        if self.postgres {
            format!("WITH s(i) AS (SELECT generate_series(1, {n})::BIGINT)")
        } else {
            format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})")
        }
    }

    fn padded(&self, expr: &str, width: usize) -> String {
        if self.postgres {
            format!("lpad(({expr})::TEXT, {width}, '0')")
        } else {
            format!("printf('%0{width}d', {expr})")
        }
    }

    fn hex32(&self, expr: &str) -> String {
        if self.postgres {
            format!("lpad(to_hex({expr}), 32, '0')")
        } else {
            format!("printf('%032x', {expr})")
        }
    }
}

fn seed(c: &mut dyn SimpleConnection, d: &Dialect, o: &Options, now: i64) {
    let n = o.tickets;
    // Ticket i was created (n - i) * 2 s ago: a million tickets span 23 days.
    let at = format!("({now} - ({n} - i) * 2000)");
    let number = format!("'EB' || {}", d.padded("i", 7));
    let steps: Vec<(&str, String)> = vec![
        ("tickets", format!(
            "{} INSERT INTO tickets (id, number, kind, short_description, state, priority, attributes, version, created_at, updated_at, \
             created_by, updated_by, field_stamps, open_conflicts, sys_id) {} \
             SELECT i, {number}, 'incident', 'Seeded ticket ' || i, 'in_progress', 3, '{{}}', 2, {at}, {at} + 1000, 'servicenow', 'acme-msp', '{{}}', 0, {} FROM s",
            d.series(n), if d.postgres { "OVERRIDING SYSTEM VALUE" } else { "" }, d.hex32("i"))),
        ("cross-references", format!(
            "{} INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at, seen_version) \
             SELECT 'servicenow', 'INC' || {}, i, TRUE, {at}, {at}, 2 FROM s \
             UNION ALL SELECT 'acme-msp', 'ACME-' || i, i, TRUE, {at}, {at}, 2 FROM s",
            d.series(n), d.padded("i", 7))),
        ("journal", format!(
            "{} INSERT INTO journal (ticket_id, kind, author_partner, body, created_at, version) \
             SELECT i, 'field_change', 'acme-msp', '{{\"state\":{{\"from\":\"new\",\"to\":\"in_progress\"}}}}', {at} + 1000, 2 FROM s",
            d.series(n))),
        ("audit rows", format!(
            "{} INSERT INTO transactions (at, partner, request_id, method, path, payload_sha256, result, status, error_codes, ticket_id, ticket_number) \
             SELECT {at}, 'servicenow', 'req-' || i, 'POST', '/api/ebond/v1/tickets', 'e3b0', 'accepted', 201, '', i, {number} FROM s",
            d.series(n))),
        ("delivered outbox rows", format!(
            "{} INSERT INTO outbox (partner, ticket_id, event, delivery_id, payload, status, attempts, next_attempt_at, created_at, updated_at, last_status, delivered_at) \
             SELECT 'acme-msp', i, 'created', 'msg_d' || i, '{{}}', 'delivered', 1, {at}, {at}, {at} + 50, 201, {at} + 50 FROM s",
            d.series(n))),
        ("dead letters", format!(
            "{} INSERT INTO outbox (partner, ticket_id, event, delivery_id, payload, status, attempts, next_attempt_at, last_error, created_at, updated_at, last_status, last_response) \
             SELECT CASE WHEN i % 2 = 0 THEN 'acme-msp' ELSE 'enovia' END, i, CASE WHEN i % 3 = 0 THEN 'state_changed' ELSE 'updated' END, \
             'msg_x' || i, '{{}}', 'dead', 4, {at}, 'HTTP 500', {at} + 2000, {at} + 9000, 500, 'partner down' FROM s",
            d.series(o.dead))),
        ("delivery attempts", 
            "INSERT INTO delivery_attempts (outbox_id, partner, attempt, started_at, duration_ms, http_status, outcome, worker) \
             SELECT id, partner, 1, created_at + 10, 40, 201, 'delivered', 'seed' FROM outbox WHERE status = 'delivered'".to_string()),
        ("dead letters' attempts", 
            "INSERT INTO delivery_attempts (outbox_id, partner, attempt, started_at, duration_ms, http_status, outcome, error_class, response_excerpt, worker) \
             SELECT o.id, o.partner, a.n, o.created_at + a.n * 1000, 60, 500, 'failed', 'http_5xx', 'partner down', 'seed' \
             FROM outbox o CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) a WHERE o.status = 'dead'".to_string()),
        ("conflicts", format!(
            "{} INSERT INTO conflicts (ticket_id, ticket_number, partner, request_id, status, seen_version, ticket_version, created_at, updated_at) \
             SELECT {n} - i + 1, 'EB' || {}, 'acme-msp', 'req-c' || i, 'open', 1, 2, {now} - i * 1000, {now} - i * 1000 FROM s",
            d.series(o.conflicts), d.padded(&format!("{n} - i + 1"), 7))),
        ("conflict fields", 
            "INSERT INTO conflict_fields (conflict_id, field, base, proposed, current, current_by, current_at, current_version, disposition) \
             SELECT id, 'state', '\"new\"', '\"resolved\"', '\"on_hold\"', 'servicenow', created_at, 2, 'held' FROM conflicts".to_string()),
        ("reconciliation run", format!(
            "INSERT INTO sync_runs (kind, partner, started_by, dry_run, scope, status, started_at, finished_at, counts, owner) \
             VALUES ('reconcile', 'acme-msp', 'bench', TRUE, 'open', 'succeeded', {now} - 60000, {now} - 1000, '{{\"tickets\":{n}}}', 'bench')")),
        ("reconciliation items", format!(
            "{} INSERT INTO reconcile_items (run_id, partner, ticket_id, ticket_number, partner_ticket_id, kind, fields, cause, action, at) \
             SELECT (SELECT MAX(id) FROM sync_runs), 'acme-msp', i, 'EB' || {}, 'ACME-' || i, 'hub_ahead', '[]', \
             CASE WHEN i % 2 = 0 THEN 'dead_letter' ELSE 'delivered_2xx' END, 'none', {now} - 2000 FROM s",
            d.series(o.conflicts), d.padded("i", 7))),
    ];
    for (what, sql) in steps {
        let t = Instant::now();
        c.batch_execute(&sql).unwrap_or_else(|e| panic!("seeding {what}: {e}\n{sql}"));
        eprintln!("seeded {what} in {:.1} s", t.elapsed().as_secs_f64());
    }
    if d.postgres {
        // The sequences behind the explicit ids, and fresh planner statistics.
        c.batch_execute(&format!("SELECT setval(pg_get_serial_sequence('tickets', 'id'), {n}); ANALYZE")).unwrap();
    } else {
        c.batch_execute("ANALYZE").unwrap();
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = options();
    let tmp = tempfile::tempdir().unwrap();
    let (url, pg_admin) = if o.db == "sqlite" {
        (tmp.path().join("console.db").display().to_string(), None)
    } else {
        let name = format!("ebond_console_{}", std::process::id());
        let mut c = PgConnection::establish(&o.db).expect("connect to the PostgreSQL URL given with --db");
        // Two statements: PostgreSQL runs a multi-statement string as one transaction.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop database");
        c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        let (head, _) = o.db.rsplit_once('/').expect("a PostgreSQL URL ends with /database");
        (format!("{head}/{name}"), Some((o.db.clone(), name)))
    };
    let mut settings = ebond::config::Settings {
        data_dir: tmp.path().join("data"),
        contracts_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts"),
        database_url: url.clone().into(),
        bind: "127.0.0.1:0".into(),
        workers: 2,
        ..Default::default()
    };
    settings.auth.pbkdf2_iterations = 1_000;
    settings.outbox.in_process = false;
    settings.sync.schedule = false;
    let state = ebond::app::state(settings.clone()).expect("gateway state");
    let db = state.db.clone();
    let now = ebond::util::now_ms();
    let t = Instant::now();
    {
        let mut conn = db.get().unwrap();
        let (c, d): (&mut dyn SimpleConnection, Dialect) = match &mut conn {
            ebond::store::DbConn::Sqlite(p) => (&mut **p, Dialect { postgres: false }),
            ebond::store::DbConn::Postgres(p) => (&mut **p, Dialect { postgres: true }),
        };
        seed(c, &d, &o, now);
    }
    eprintln!("seeded in {:.0} s", t.elapsed().as_secs_f64());
    let cred = {
        let mut conn = db.get().unwrap();
        ebond::with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, None, 1_000)).unwrap()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ebond::api::server(state, listener).unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Sign in as a browser would.
    let form = http.get(format!("{base}/console/sign-in")).send().await.unwrap();
    let sign_in_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("ebond_console_sign_in="))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
        .unwrap();
    let html = form.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let resp = http
        .post(format!("{base}/console/sign-in"))
        .header("cookie", format!("ebond_console_sign_in={sign_in_cookie}"))
        .form(&[("csrf", csrf.as_str()), ("client_id", &cred.client_id), ("client_secret", &cred.client_secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "signed in");
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("ebond_console="))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
        .unwrap();

    let n = o.tickets;
    let dead_id: i64 = {
        let mut conn = db.get().unwrap();
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let q = "SELECT MAX(id) AS id FROM outbox WHERE status = 'dead'";
        ebond::with_conn!(&mut conn, c => diesel::sql_query(q).get_result::<Id>(c)).unwrap().id
    };
    let conflict_id = 1;
    let half = format!("EB{:07}", n / 2);
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/console/".into()),
        ("partner acme-msp", "/console/partners/acme-msp".into()),
        ("dead letters (all)", "/console/dead-letters".into()),
        ("dead letters, partner", "/console/dead-letters?partner=enovia".into()),
        (
            "dead letters, partner+event+age",
            "/console/dead-letters?partner=acme-msp&event=state_changed&older_than=7d".into(),
        ),
        ("dead letters, page 2", format!("/console/dead-letters?before={}", dead_id - 50)),
        ("dead letter", format!("/console/dead-letters/{dead_id}")),
        ("bulk confirmation (count)", "/console/dead-letters/bulk?action=replay&partner=acme-msp".into()),
        ("conflicts", "/console/conflicts".into()),
        ("conflict", format!("/console/conflicts/{conflict_id}")),
        ("reconciliation", "/console/reconcile".into()),
        ("reconciliation run", "/console/reconcile/runs/1".into()),
        ("ticket by partner id", format!("/console/tickets?q=ACME-{}", n / 2)),
        ("ticket story", format!("/console/tickets/{half}")),
        ("audit", "/console/audit".into()),
        ("audit, partner", "/console/audit?partner=servicenow".into()),
        ("audit, ticket", format!("/console/audit?ticket={half}")),
        ("auth events", "/console/auth-events".into()),
        ("contracts", "/console/contracts".into()),
    ];
    println!(
        "\n{} tickets, {} dead letters, {} open conflicts on {} ({} rounds each)\n",
        o.tickets,
        o.dead,
        o.conflicts,
        if pg_admin.is_some() { "PostgreSQL" } else { "SQLite" },
        o.rounds
    );
    println!("| page | status | bytes | median ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, path) in &pages {
        let mut times = Vec::new();
        let (mut status, mut bytes) = (0, 0);
        // One warm-up fetch (the first read of an index from disk is the page cache's cost).
        for round in 0..=o.rounds {
            let t = Instant::now();
            let resp = http
                .get(format!("{base}{path}"))
                .header("cookie", format!("ebond_console={session}"))
                .send()
                .await
                .unwrap();
            status = resp.status().as_u16();
            bytes = resp.bytes().await.unwrap().len();
            if round > 0 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {name} | {status} | {bytes} | {:.1} | {:.1} | {:.1} |",
            pct(&times, 0.5),
            pct(&times, 0.95),
            times.last().copied().unwrap_or(0.0)
        );
    }
    drop(db);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some((admin, name)) = pg_admin {
        let mut c = PgConnection::establish(&admin).expect("pg admin");
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}
