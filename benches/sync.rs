//! Pull and reconciliation at scale: a fake ServiceNow Table API (in this process, on loopback)
//! serves N incidents generated from their index (no table in memory), and the release `ebond`
//! binary runs, as its own process against a fresh database:
//! 1. `ebond sync run servicenow`: a pull of all N records (pages of `--batch`);
//! 2. `ebond reconcile --partner servicenow`: reading each of the N shared tickets back one by
//!    one, with every `--drift-every`-th incident changed at the partner, plus the partner's
//!    whole list (for records the hub lacks); heals up to the default cap.
//!
//! It prints records (tickets) per second and each process's peak RSS (VmHWM, from /proc).
//!
//!   cargo bench --bench sync -- [--records 100000] [--batch 1000] [--drift-every 1000]
//!       [--db sqlite|postgres://user@host:port/db]

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
const START: i64 = 1_764_000_000;

struct Table {
    records: u64,
    drift_every: u64,
    /// Once set, every `drift_every`-th incident reads back changed.
    drifted: AtomicBool,
    requests: AtomicU64,
}

impl Table {
    fn record(&self, i: u64) -> Value {
        let drift = self.drifted.load(Ordering::Relaxed) && i.is_multiple_of(self.drift_every);
        let time = chrono::DateTime::from_timestamp(START + i as i64, 0).unwrap().format(FORMAT).to_string();
        json!({
            "sys_id": format!("{i:032x}"),
            "number": format!("INC{i:07}"),
            "short_description": if drift { format!("Changed at the partner {i}") } else { format!("Incident {i}") },
            "description": "Generated for the pull benchmark",
            "category": "network",
            "impact": "2",
            "urgency": "2",
            "priority": "3",
            "state": "1",
            "assignment_group": "Service Desk",
            "caller_id": "alice",
            "work_notes": "",
            "comments": "",
            "sys_updated_on": time,
        })
    }
}

struct Responder(Arc<Table>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let t = &self.0;
        t.requests.fetch_add(1, Ordering::Relaxed);
        if request.url.path().ends_with("/oauth_token.do") {
            return ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "bench", "token_type": "bearer", "expires_in": 3600}));
        }
        let q = |name: &str| request.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let query = q("sysparm_query").unwrap_or_default();
        if let Some(number) = query.strip_prefix("number=") {
            let found: Vec<Value> = number
                .strip_prefix("INC")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|i| *i < t.records)
                .map(|i| t.record(i))
                .into_iter()
                .collect();
            return ResponseTemplate::new(200).set_body_json(json!({"result": found}));
        }
        let since = query.strip_prefix("sys_updated_on>=").and_then(|s| s.split('^').next()).unwrap_or("");
        let first = chrono::NaiveDateTime::parse_from_str(since, FORMAT)
            .map(|d| (d.and_utc().timestamp() - START).max(0) as u64)
            .unwrap_or(0);
        let offset: u64 = q("sysparm_offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let limit: u64 = q("sysparm_limit").and_then(|o| o.parse().ok()).unwrap_or(100);
        let from = first + offset;
        let page: Vec<Value> = (from..(from + limit).min(t.records)).map(|i| t.record(i)).collect();
        ResponseTemplate::new(200).set_body_json(json!({"result": page}))
    }
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

/// Peak RSS (VmHWM) of a process, in MiB, from /proc.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs `ebond <args>`, watching its peak RSS; (seconds, peak MiB, stdout, stderr).
fn run(env: &[(String, String)], args: &[&str]) -> (f64, f64, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(args)
        .envs(env.iter().cloned())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("start ebond");
    let mut peak: f64 = 0.0;
    loop {
        if let Some(p) = peak_rss_mib(child.id()) {
            peak = peak.max(p);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    (secs, peak, std::fs::read_to_string(out).unwrap_or_default(), std::fs::read_to_string(err).unwrap_or_default())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: u64 = arg(&args, "--records", "100000").parse().expect("--records");
    let batch: u64 = arg(&args, "--batch", "1000").parse().expect("--batch");
    let drift_every: u64 = arg(&args, "--drift-every", "1000").parse().expect("--drift-every");
    let db = arg(&args, "--db", "sqlite");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = Arc::new(Table { records, drift_every, drifted: AtomicBool::new(false), requests: AtomicU64::new(0) });
    let server = runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any()).respond_with(Responder(table.clone())).mount(&server).await;
        server
    });

    let tmp = tempfile::tempdir().unwrap();
    let contracts = tmp.path().join("contracts");
    std::fs::create_dir_all(&contracts).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
    std::fs::copy(root.join("workflow.toml"), contracts.join("workflow.toml")).unwrap();
    std::fs::write(tmp.path().join("secret"), "bench-secret").unwrap();
    let secret = format!("file:{}", tmp.path().join("secret").display());
    let text = std::fs::read_to_string(root.join("servicenow.toml"))
        .unwrap()
        .replace("https://customer.service-now.com", &server.uri())
        .replace("env:EBOND_SERVICENOW_CLIENT_SECRET", &secret)
        .replace("env:EBOND_SERVICENOW_SIGNING_SECRET", &secret)
        .replace("backfill = \"1d\"", "backfill = \"all\"")
        .replace("batch_size = 500", &format!("batch_size = {batch}"))
        .replace("rate_limit_per_minute = 120", "rate_limit_per_minute = 1000000");
    std::fs::write(contracts.join("servicenow.toml"), text).unwrap();
    let (url, pg) = match db.as_str() {
        "sqlite" => (String::new(), None),
        admin => {
            let name = format!("ebond_sync_bench_{}", std::process::id());
            let (head, _) = admin.rsplit_once('/').expect("a PostgreSQL URL ends with /database");
            let mut c = diesel::PgConnection::establish(admin).expect("connect to PostgreSQL");
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop database");
            c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
            (format!("{head}/{name}"), Some((admin.to_string(), name)))
        }
    };
    let env: Vec<(String, String)> = vec![
        ("EBOND_DATABASE_URL".into(), url),
        ("EBOND_DATA_DIR".into(), tmp.path().join("data").display().to_string()),
        ("EBOND_CONTRACTS_DIR".into(), contracts.display().to_string()),
        ("EBOND_LOG_FORMAT".into(), "json".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    let (_, _, _, err) = run(&env, &["migrate"]);
    assert!(err.is_empty() || !err.contains("error"), "{err}");

    println!("pull and reconciliation of {records} records (pages of {batch}), database {db}");
    let (secs, rss, out, err) = run(&env, &["sync", "run", "servicenow", "--json"]);
    let pulled: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("pull output: {out}\n{err}"));
    assert_eq!(pulled["status"], "succeeded", "{pulled}");
    println!(
        "pull:       {:>8.1} s  {:>8.0} records/s  peak RSS {:>6.1} MiB  {}",
        secs,
        records as f64 / secs,
        rss,
        pulled["counts"]
    );

    table.drifted.store(true, Ordering::Relaxed);
    let (secs, rss, out, err) = run(&env, &["reconcile", "--partner", "servicenow", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("reconcile output: {out}\n{err}"));
    assert_eq!(report["run"]["status"], "succeeded", "{report}");
    println!(
        "reconcile:  {:>8.1} s  {:>8.0} tickets/s  peak RSS {:>6.1} MiB  {}",
        secs,
        records as f64 / secs,
        rss,
        report["run"]["counts"]
    );
    println!("partner requests served: {}", table.requests.load(Ordering::Relaxed));
    if let Some((admin, name)) = pg {
        if let Ok(mut c) = diesel::PgConnection::establish(&admin) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
