//! Load benchmark: starts the real gateway (`ebond serve`, release build) as its own process
//! against a fresh SQLite file or a fresh PostgreSQL database, provisions a partner
//! credential and N tickets, and drives concurrent authenticated PATCH traffic (the example
//! ServiceNow contract's fields, valid state changes, work notes) through the whole pipeline.
//!
//! Inbound mode (default) runs three phases and prints a table:
//! 1. max: C closed-loop clients for D seconds — accepted writes/s, latency, statuses;
//! 2. ceiling: the database alone (no HTTP, no gateway), C threads each committing the rows
//!    one accepted PATCH writes, one transaction per request, same durability;
//! 3. paced: an open-loop schedule at `--paced-at` (default 80 %) of the max rate — latency
//!    measured from each request's scheduled send time.
//!
//! `--outbound` mode starts the gateway with its outbox processor and one subscribed partner
//! (a fake MSP on loopback, in this process): a closed-loop max phase (writes/s, deliveries/s,
//! per-ticket order check) and a paced phase at half that rate (write-to-receipt p50/p99).
//!
//! Server peak RSS (VmHWM) and CPU (cores busy) are read from /proc for the gateway process.
//!
//!   cargo bench --bench load -- [--db sqlite|postgres://user@host:port/db] [--concurrency 64]
//!       [--seconds 10] [--tickets 10000] [--durability full|fast] [--paced-at 0.8] [--outbound]
//!       [--history 1000000]
//!
//! `--history N` (after the load, gateway stopped): the outbox claim's cost, timed through the
//! gateway's own claim, before and after N delivered rows are added to the outbox history.
//!
//! For PostgreSQL, the URL names a database to connect to; the benchmark creates a fresh
//! database beside it (`ebond_bench_<pid>`) and drops it afterwards.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serialises the ceiling's SQLite transactions in this process, as a single writer would
/// (SQLite's sleep-and-retry busy handler starves under many threads).
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `$body` in one transaction of its own on a raw connection: SQLite takes the write lock
/// up front (`BEGIN IMMEDIATE`), PostgreSQL a plain transaction. The gateway's group commit is
/// exactly what the ceiling leaves out.
macro_rules! transaction {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            ebond::store::DbConn::Sqlite(pooled) => {
                let _writer = SQLITE_WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let conn: &mut diesel::SqliteConnection = &mut *pooled;
                conn.immediate_transaction(|$c| $body)
            }
            ebond::store::DbConn::Postgres(pooled) => {
                let conn: &mut diesel::PgConnection = &mut *pooled;
                diesel::Connection::transaction(conn, |$c| $body)
            }
        }
    };
}

/// Load benchmark of the ebond gateway (see the README's Performance section).
#[derive(Clone, clap::Parser)]
#[command(name = "cargo bench --bench load --", about)]
struct Options {
    /// `sqlite`, or a PostgreSQL URL: a fresh `ebond_bench_<pid>` database is created beside the
    /// one named and dropped after.
    #[arg(long, default_value = "sqlite", value_parser = parse_db)]
    db: String,
    /// Closed-loop clients in the max phase.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    concurrency: usize,
    /// Length of each phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Tickets in the database (one made through the API, the rest copied in bulk).
    #[arg(long, default_value_t = 10_000, value_parser = positive)]
    tickets: usize,
    #[arg(long, default_value = "full", value_parser = ["full", "fast"])]
    durability: String,
    /// The paced phase's rate, as a fraction of the max phase's.
    #[arg(long, default_value_t = 0.8, value_parser = parse_fraction)]
    paced_at: f64,
    /// Deliver to a subscribed fake partner while writing.
    #[arg(long)]
    outbound: bool,
    /// Time the outbox claim before and after this many delivered rows join the history.
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Several processes on one PostgreSQL database: this many `ebond serve` behind the load
    /// generator (round robin, none delivering) …
    #[arg(long, default_value_t = 1, value_parser = positive)]
    gateways: usize,
    /// … and this many `ebond worker`s delivering (implies `--outbound`).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

impl Options {
    fn several(&self) -> bool {
        self.gateways > 1 || self.workers > 0
    }
}

fn parse_db(v: &str) -> Result<String, String> {
    if v == "sqlite" || v.starts_with("postgres://") || v.starts_with("postgresql://") {
        Ok(v.to_string())
    } else {
        Err(format!("`{v}` is neither sqlite nor a postgres:// URL"))
    }
}

fn positive(v: &str) -> Result<usize, String> {
    v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| format!("`{v}` is not a positive whole number"))
}

fn parse_fraction(v: &str) -> Result<f64, String> {
    v.parse::<f64>().ok().filter(|f| *f > 0.0 && *f <= 1.0).ok_or_else(|| format!("`{v}` is not a number in (0, 1]"))
}

/// Parses the options (clap: an unknown option, a missing or malformed value stops with the
/// usage and exit 2; a mistyped option must not silently run the defaults).
fn options() -> Options {
    use clap::Parser;
    // cargo passes `--bench` to every benchmark binary.
    let mut opts = Options::parse_from(
        std::iter::once("load".to_string()).chain(std::env::args().skip(1).filter(|a| a != "--bench")),
    );
    if opts.several() {
        if opts.db == "sqlite" {
            eprintln!("--gateways / --workers need --db postgres://…: several processes share a PostgreSQL database");
            std::process::exit(2);
        }
        opts.outbound = opts.outbound || opts.workers > 0;
    }
    opts
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(run(opts));
}

async fn run(opts: Options) {
    let tmp = tempfile::tempdir().expect("tempdir");
    if std::env::var_os("EBOND_BENCH_KEEP").is_some() {
        eprintln!("keeping {} (EBOND_BENCH_KEEP)", tmp.path().display());
    }
    let (url, pg_admin) = database(&opts, tmp.path());
    let receipts: Receipts = Arc::new(Mutex::new(HashMap::new()));
    let sink = if opts.outbound { Some(start_sink(receipts.clone()).await) } else { None };
    let contracts = bench_contracts(tmp.path(), sink.as_deref().unwrap_or("http://127.0.0.1:9")); // port 9: discard
    let mut server = Server::start(&opts, &url, tmp.path(), &contracts, "serve", 0).await;
    // Several processes: the other gateways and the workers (none of the gateways delivers).
    let mut others = Vec::new();
    for n in 1..opts.gateways {
        others.push(Server::start(&opts, &url, tmp.path(), &contracts, "serve", n).await);
    }
    for n in 0..opts.workers {
        others.push(Server::start(&opts, &url, tmp.path(), &contracts, "worker", n).await);
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build().expect("client");
    let base = server.base.clone();
    let bases: Vec<String> = std::iter::once(base.clone())
        .chain(others.iter().filter(|o| !o.base.is_empty()).map(|o| o.base.clone()))
        .collect();

    // Provisioning: a credential, one ticket made through the API as a template, then N-1
    // copies of it inserted in bulk (making 1,000,000 tickets through HTTP would take longer
    // than the benchmark).
    let db = ebond::store::Db::connect(&url, &ebond::config::DatabaseSettings { pool_size: 4, ..Default::default() })
        .expect("bench connection");
    let backend = db.backend_name();
    let cred = {
        let mut conn = db.get().expect("conn");
        ebond::with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, Some("servicenow"), 1000))
            .expect("credential")
    };
    let token = token(&http, &base, &cred).await;
    let created = http
        .post(format!("{base}/tickets"))
        .bearer_auth(&token)
        .json(&json!({"number": "INC0000001", "short_description": "Printer on floor 3 offline", "description": "Users on floor 3 cannot print; the queue shows the printer offline since 08:10.", "impact": "2", "urgency": "2", "assignment_group": "Acme L2", "caller_id": "abel.tuter", "cmdb_ci": "PRN-3F-01", "category": "hardware"}))
        .send()
        .await
        .expect("create");
    assert!(created.status().is_success(), "template create: {}", created.status());
    let t = Instant::now();
    eprintln!("seeding {} tickets …", opts.tickets);
    seed(&db, opts.tickets);
    eprintln!("seeded in {:.1} s", t.elapsed().as_secs_f64());
    let numbers: Vec<String> = (1..=opts.tickets).map(|n| format!("INC{n:07}")).collect();
    if opts.outbound {
        // The template's create goes out first (the fake partner answers with its id).
        wait_for(&receipts, 1, Duration::from_secs(30)).await;
    }

    println!(
        "# ebond load: backend={backend} durability={} concurrency={} seconds={} tickets={} outbound={}",
        opts.durability, opts.concurrency, opts.seconds, opts.tickets, opts.outbound
    );
    println!("# machine: {}", machine());
    let writes_per_patch;
    let load =
        Load { http: http.clone(), bases: Arc::new(bases.clone()), token: token.clone(), numbers: Arc::new(numbers) };
    if opts.several() {
        wait_for_roll(&db, opts.gateways + opts.workers).await;
        println!(
            "# processes: {} ebond serve (round robin) + {} ebond worker on one database",
            opts.gateways, opts.workers
        );
    }
    if !opts.outbound {
        let outbox_before = count(&db, "outbox");
        let trips = RoundTrips::start(&db);
        let (cpu, own) = (server.cpu_ticks(), own_cpu_ticks());
        let max = load.run(&opts, None).await;
        RoundTrips::print(&trips, &db, max.ok());
        let cores = server.cores_since(cpu, max.elapsed);
        let client_cores = (own_cpu_ticks() - own) as f64 / clock_ticks_per_second() / max.elapsed;
        let outbox_rows = count(&db, "outbox") - outbox_before;
        writes_per_patch = outbox_rows as f64 / max.ok().max(1) as f64;
        max.print("max", cores);
        println!("load generator CPU during max: {client_cores:.2} cores");
        let ceiling = ceiling(&db, &url, &opts, writes_per_patch.round() as usize);
        let ratio = max.rate() / ceiling;
        println!(
            "ceiling (database alone, 1 commit per request, {} outbox row(s) each): {ceiling:.0} commits/s",
            writes_per_patch.round()
        );
        println!("ebond / ceiling: {ratio:.2}");
        let rate = max.rate() * opts.paced_at;
        settle(&db).await;
        let cpu = server.cpu_ticks();
        let paced = load.run(&opts, Some(rate)).await;
        let cores = server.cores_since(cpu, paced.elapsed);
        paced.print(&format!("paced at {:.0} % ({rate:.0}/s)", opts.paced_at * 100.0), cores);
        println!("server peak RSS: {:.1} MB", server.peak_rss_mb());
        println!();
        println!("| backend | ceiling commits/s | ebond writes/s | ratio | p50 / p99 at max (ms) | p99 at {:.0} % (ms) | server CPU (cores) | peak RSS (MB) |", opts.paced_at * 100.0);
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {backend} | {ceiling:.0} | {:.0} | {ratio:.2} | {:.1} / {:.1} | {:.1} | {cores:.2} | {:.0} |",
            max.rate(),
            max.p(0.50),
            max.p(0.99),
            paced.p(0.99),
            server.peak_rss_mb()
        );
    } else {
        let cpu = server.cpu_ticks();
        let before = receipts.lock().expect("receipts").len();
        let trips = RoundTrips::start(&db);
        let max = load.run(&opts, None).await;
        let cores = server.cores_since(cpu, max.elapsed);
        let delivered_in_window = receipts.lock().expect("receipts").len() - before;
        RoundTrips::print(&trips, &db, max.ok());
        max.print("max (delivering)", cores);
        let drained = wait_for(&receipts, before + max.ok() as usize, Duration::from_secs(300)).await;
        let deliveries = delivered_in_window as f64 / max.elapsed;
        println!(
            "deliveries/s during the window: {deliveries:.0} ({:.2} of accepted writes/s); backlog drained: {drained}",
            deliveries / max.rate()
        );
        let order = order_violations(&receipts, &max.accepted);
        println!("per-ticket order violations: {order}");
        let (same, different) = duplicates();
        println!("changes delivered more than once: {same} with the same webhook-id, {different} with different ones");
        let rate = max.rate() * 0.5;
        let cpu = server.cpu_ticks();
        let paced = load.run(&opts, Some(rate)).await;
        let cores = server.cores_since(cpu, paced.elapsed);
        paced.print(&format!("paced at 50 % ({rate:.0}/s)"), cores);
        wait_for(&receipts, before + (max.ok() + paced.ok()) as usize, Duration::from_secs(120)).await;
        let lags = lags(&receipts, &paced.accepted);
        println!(
            "write-to-receipt at 50 %: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} deliveries)",
            pct(&lags, 0.50),
            pct(&lags, 0.99),
            lags.last().copied().unwrap_or(0.0),
            lags.len()
        );
        println!("server peak RSS: {:.1} MB", server.peak_rss_mb());
        if opts.several() {
            revocation_check(&http, &bases, &db, &url, tmp.path()).await;
            rate_limit_check(&http, &bases, &db, ENOVIA_PER_MINUTE, 5).await;
            breaker_check(&http, &bases, &db, &token, &load.numbers).await;
        }
        println!();
        println!("| backend | writes/s (delivering) | deliveries/s | ratio | order violations | write→receipt p50 / p99 at 50 % (ms) | peak RSS (MB) |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {backend} | {:.0} | {deliveries:.0} | {:.2} | {order} | {:.1} / {:.1} | {:.0} |",
            max.rate(),
            deliveries / max.rate(),
            pct(&lags, 0.50),
            pct(&lags, 0.99),
            server.peak_rss_mb()
        );
    }
    server.stop();
    if opts.history > 0 {
        claim_cost_with_history(&db, opts.history);
    }
    drop(db);
    if std::env::var_os("EBOND_BENCH_KEEP").is_some() {
        let _ = tmp.keep();
    }
    if let Some((admin, name)) = pg_admin {
        let mut c = PgConnection::establish(&admin).expect("pg admin");
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// The database URL for the gateway, plus (PostgreSQL) how to drop it afterwards.
fn database(opts: &Options, tmp: &std::path::Path) -> (String, Option<(String, String)>) {
    if opts.db == "sqlite" {
        return (tmp.join("bench.db").display().to_string(), None);
    }
    let name = format!("ebond_bench_{}", std::process::id());
    let mut c = PgConnection::establish(&opts.db).expect("connect to the PostgreSQL URL given with --db");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop database");
    c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
    let (head, _) = opts.db.rsplit_once('/').expect("a PostgreSQL URL ends with /database");
    (format!("{head}/{name}"), Some((opts.db.clone(), name)))
}

/// The gateway under test, as its own process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// `command` is `serve` or `worker`; the `n`th of its kind logs to its own file. With
    /// several processes, only workers deliver.
    async fn start(
        opts: &Options,
        url: &str,
        tmp: &std::path::Path,
        contracts: &std::path::Path,
        command: &str,
        n: usize,
    ) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let name = if n == 0 && command == "serve" { "server.log".to_string() } else { format!("{command}-{n}.log") };
        let log = std::fs::File::create(tmp.join(&name)).expect("log file");
        let deliver = opts.outbound && !opts.several();
        let child = Command::new(env!("CARGO_BIN_EXE_ebond"))
            .arg(command)
            .env("EBOND_DATABASE_URL", url)
            .env("EBOND_BIND", format!("127.0.0.1:{port}"))
            .env("EBOND_DATA_DIR", tmp.join("data"))
            .env("EBOND_CONTRACTS_DIR", contracts)
            .env("EBOND_DATABASE_DURABILITY", &opts.durability)
            .env("EBOND_OUTBOX_IN_PROCESS", deliver.to_string())
            .env("EBOND_OUTBOX_CONCURRENCY", "256")
            .env("EBOND_OUTBOX_POLL_INTERVAL_MS", "50")
            .env("EBOND_LOG_FORMAT", "json")
            // Several processes on one server: 16 connections each would pass PostgreSQL's
            // default max_connections (100) with the listeners and the bench's own.
            // Short enough for the breaker check to watch a whole cool-down.
            .env("EBOND_OUTBOX_BREAKER_COOLDOWN_MS", BREAKER_COOLDOWN_MS.to_string())
            .env("EBOND_DATABASE_POOL_SIZE", if opts.several() { "8" } else { "16" })
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ebond");
        if command == "worker" {
            return Server { child, base: String::new() };
        }
        let base = format!("http://127.0.0.1:{port}/api/ebond/v1");
        let ready = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(&ready).await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(tmp.join(&name)).unwrap_or_default();
                panic!("ebond serve did not become ready:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server { child, base }
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    /// User + system CPU time of the server so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        cpu_ticks_of(&self.proc_file("stat"))
    }

    fn cores_since(&self, ticks: u64, seconds: f64) -> f64 {
        (self.cpu_ticks().saturating_sub(ticks)) as f64 / clock_ticks_per_second() / seconds
    }

    fn peak_rss_mb(&self) -> f64 {
        let status = self.proc_file("status");
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time of this process (the load generator and the fake partner), in clock ticks.
fn own_cpu_ticks() -> u64 {
    cpu_ticks_of(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// utime + stime from a /proc/<pid>/stat line. The fields after the command name (which may
/// hold spaces) start at ") ".
fn cpu_ticks_of(stat: &str) -> u64 {
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0);
    format!("{cores} cores ({cpu}), {:.0} GiB RAM", mem / 1024.0 / 1024.0)
}

async fn token(http: &reqwest::Client, base: &str, cred: &ebond::auth::tokens::IssuedCredential) -> String {
    let v: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&cred.client_id, Some(&cred.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    v["access_token"].as_str().expect("access_token").to_string()
}

/// Copies the template ticket (id 1) into tickets 2..=n with ServiceNow and Acme
/// cross-references, as if each had been created through the API and pushed to Acme.
fn seed(db: &ebond::store::Db, n: usize) {
    if n < 2 {
        return;
    }
    let cols = "kind, short_description, description, category, subcategory, impact, urgency, priority, state, \
        hold_reason, assignment_group, assigned_to, caller, configuration_item, resolution_code, resolution_notes, \
        estimated_completion, sla_due, attributes, version, created_at, updated_at, created_by, updated_by";
    let mut conn = db.get().expect("conn");
    let sql = match db.backend_name() {
        "sqlite" => format!(
            "BEGIN IMMEDIATE; \
             WITH RECURSIVE s(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             INSERT INTO tickets (number, {cols}) SELECT printf('EB%07d', s.n), {cols} FROM tickets t, s WHERE t.id = 1; \
             INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at) \
               SELECT 'servicenow', 'INC' || substr(number, 3), id, 1, created_at, created_at FROM tickets WHERE id > 1; \
             INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at) \
               SELECT 'acme-msp', 'ACME-' || substr(number, 3), id, 1, created_at, created_at FROM tickets WHERE id > 1; \
             UPDATE counters SET value = {n} WHERE name = 'ticket_number'; \
             COMMIT;"
        ),
        _ => format!(
            "BEGIN; \
             INSERT INTO tickets (number, {cols}) SELECT 'EB' || lpad(s.n::text, 7, '0'), {cols} \
               FROM tickets t, generate_series(2, {n}) AS s(n) WHERE t.id = 1; \
             INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at) \
               SELECT 'servicenow', 'INC' || substr(number, 3), id, true, created_at, created_at FROM tickets WHERE id > 1; \
             INSERT INTO xrefs (partner, partner_ticket_id, ticket_id, active, created_at, updated_at) \
               SELECT 'acme-msp', 'ACME-' || substr(number, 3), id, true, created_at, created_at FROM tickets WHERE id > 1; \
             UPDATE counters SET value = {n} WHERE name = 'ticket_number'; \
             COMMIT; ANALYZE;"
        ),
    };
    ebond::with_conn!(&mut conn, c => c.batch_execute(&sql)).expect("seed tickets");
}

/// Lets the database write out what the phases before left dirty (a checkpoint, then a
/// pause), so the paced phase measures the gateway's latency rather than a checkpoint that
/// the max and ceiling phases' hundreds of thousands of rows forced into it.
async fn settle(db: &ebond::store::Db) {
    let sql =
        if matches!(db, ebond::store::Db::Postgres(..)) { "CHECKPOINT" } else { "PRAGMA wal_checkpoint(TRUNCATE)" };
    let mut conn = db.get().expect("conn");
    if let Err(e) = ebond::with_conn!(&mut conn, c => diesel::sql_query(sql).execute(c)) {
        eprintln!("checkpoint before the paced phase: {e}");
    }
    drop(conn);
    tokio::time::sleep(Duration::from_secs(2)).await;
}

fn count(db: &ebond::store::Db, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = db.get().expect("conn");
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    ebond::with_conn!(&mut conn, c => diesel::sql_query(&sql).get_result::<N>(c)).expect("count").n
}

/// PostgreSQL's own count of what the max phase cost it: transactions (`pg_stat_database`)
/// and, where `pg_stat_statements` is loaded (`shared_preload_libraries`), statements by text,
/// both divided by the accepted writes. Nothing on SQLite.
struct RoundTrips {
    commits: i64,
    statements: bool,
}

#[derive(QueryableByName)]
struct Calls {
    #[diesel(sql_type = Text)]
    query: String,
    #[diesel(sql_type = BigInt)]
    calls: i64,
}

impl RoundTrips {
    fn start(db: &ebond::store::Db) -> Option<RoundTrips> {
        let ebond::store::DbConn::Postgres(mut c) = db.get().expect("conn") else { return None };
        let statements = c
            .batch_execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
                 SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)",
            )
            .is_ok();
        if !statements {
            eprintln!("pg_stat_statements is not loaded (shared_preload_libraries): counting transactions only");
        }
        Some(RoundTrips { commits: xact_commits(&mut c), statements })
    }

    fn print(this: &Option<RoundTrips>, db: &ebond::store::Db, accepted: u64) {
        let (Some(t), ebond::store::DbConn::Postgres(mut c)) = (this, db.get().expect("conn")) else { return };
        let per = |n: i64| n as f64 / accepted.max(1) as f64;
        let commits = xact_commits(&mut c) - t.commits;
        println!("round trips per accepted write: {:.2} transactions", per(commits));
        if !t.statements {
            return;
        }
        let calls: Vec<Calls> = diesel::sql_query(
            "SELECT query, calls FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY calls DESC",
        )
        .load(&mut *c)
        .expect("pg_stat_statements");
        let total: i64 = calls.iter().map(|q| q.calls).sum();
        println!("round trips per accepted write: {:.2} statements (pg_stat_statements), of which:", per(total));
        for q in calls.iter().filter(|q| per(q.calls) >= 0.05) {
            let text: String = q.query.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(110).collect();
            println!("  {:>5.2}  {text}", per(q.calls));
        }
    }
}

fn xact_commits(c: &mut PgConnection) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // The statistics snapshot is per transaction: clear it so the counter is read fresh.
    let _ = c.batch_execute("SELECT pg_stat_clear_snapshot()");
    diesel::sql_query("SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()")
        .get_result::<N>(c)
        .map(|n| n.n)
        .unwrap_or(0)
}

/// The database alone: each of `concurrency` threads commits, one transaction per request,
/// the rows one accepted PATCH writes (ticket update, field-change and work-note journal
/// entries, audit row, `outbox_rows` outbox rows with a payload the size of a real one).
fn ceiling(db: &ebond::store::Db, url: &str, opts: &Options, outbox_rows: usize) -> f64 {
    #[derive(QueryableByName)]
    struct Payload {
        #[diesel(sql_type = Text)]
        payload: String,
    }
    let payload = {
        let mut conn = db.get().expect("conn");
        ebond::with_conn!(&mut conn, c => diesel::sql_query("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1").get_result::<Payload>(c))
            .map(|p| p.payload)
            .unwrap_or_else(|_| "{}".into())
    };
    let settings = ebond::config::DatabaseSettings {
        pool_size: opts.concurrency as u32,
        durability: opts.durability.parse().expect("durability"),
        ..Default::default()
    };
    // Its own pool, sized for the threads, with the gateway's connection settings.
    let pool_db = ebond::store::Db::connect(url, &settings).expect("ceiling pool");
    let pg = matches!(pool_db, ebond::store::Db::Postgres(..));
    let ph = |i: usize| if pg { format!("${i}") } else { "?".to_string() };
    let update = format!(
        "UPDATE tickets SET short_description = {}, urgency = {}, priority = {}, state = {}, hold_reason = {}, version = version + 1, updated_at = {}, updated_by = 'servicenow' WHERE id = {}",
        ph(1), ph(2), ph(3), ph(4), ph(5), ph(6), ph(7)
    );
    let journal = format!(
        "INSERT INTO journal (ticket_id, kind, author_partner, partner_entry_id, body, created_at) VALUES ({}, {}, 'servicenow', NULL, {}, {})",
        ph(1), ph(2), ph(3), ph(4)
    );
    let audit = format!(
        "INSERT INTO transactions (at, partner, request_id, method, path, payload_sha256, result, status, error_codes, ticket_id, ticket_number) \
         VALUES ({}, 'servicenow', {}, 'PATCH', {}, {}, 'accepted', 200, '', {}, {})",
        ph(1), ph(2), ph(3), ph(4), ph(5), ph(6)
    );
    let outbox = format!(
        "INSERT INTO outbox (partner, ticket_id, event, delivery_id, payload, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ('acme-msp', {}, 'updated', {}, {}, 'pending', 0, {}, {}, {})",
        ph(1), ph(2), ph(3), ph(4), ph(5), ph(6)
    );
    let tickets = opts.tickets as i64;
    let seq = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..opts.concurrency)
        .map(|_| {
            let (db, seq) = (pool_db.clone(), seq.clone());
            let (update, journal, audit, outbox, payload) =
                (update.clone(), journal.clone(), audit.clone(), outbox.clone(), payload.clone());
            std::thread::spawn(move || {
                let mut conn = db.get().expect("conn");
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let i = seq.fetch_add(1, Ordering::Relaxed) as i64;
                    let id = 2 + (i * 7) % (tickets - 1).max(1);
                    let now = ebond::util::now_ms();
                    let note = format!("ceiling note {i}");
                    let r: QueryResult<()> = transaction!(&mut conn, c => {
                        diesel::sql_query(&update)
                            .bind::<Text, _>(format!("ceiling update {i}"))
                            .bind::<BigInt, _>(1 + i % 3)
                            .bind::<BigInt, _>(3)
                            // The states the gateway's load moves tickets between.
                            .bind::<Text, _>(if i % 2 == 0 { "in_progress" } else { "on_hold" })
                            .bind::<diesel::sql_types::Nullable<Text>, _>((i % 2 == 1).then_some("awaiting_caller"))
                            .bind::<BigInt, _>(now)
                            .bind::<BigInt, _>(id)
                            .execute(c)?;
                        for (kind, body) in [("field_change", "{\"urgency\":{\"from\":2,\"to\":3}}"), ("work_note", note.as_str())] {
                            diesel::sql_query(&journal)
                                .bind::<BigInt, _>(id)
                                .bind::<Text, _>(kind)
                                .bind::<Text, _>(body)
                                .bind::<BigInt, _>(now)
                                .execute(c)?;
                        }
                        diesel::sql_query(&audit)
                            .bind::<BigInt, _>(now)
                            .bind::<Text, _>(format!("ceiling-{i}"))
                            .bind::<Text, _>(format!("/api/ebond/v1/tickets/INC{id:07}"))
                            .bind::<Text, _>("0".repeat(64))
                            .bind::<BigInt, _>(id)
                            .bind::<Text, _>(format!("EB{id:07}"))
                            .execute(c)?;
                        for k in 0..outbox_rows {
                            diesel::sql_query(&outbox)
                                .bind::<BigInt, _>(id)
                                .bind::<Text, _>(format!("ceiling_{}_{i}_{k}", std::process::id()))
                                .bind::<Text, _>(&payload)
                                .bind::<BigInt, _>(now)
                                .bind::<BigInt, _>(now)
                                .bind::<BigInt, _>(now)
                                .execute(c)?;
                        }
                        Ok(())
                    });
                    r.expect("ceiling transaction");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().expect("ceiling thread")).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

struct Load {
    http: reqwest::Client,
    /// The gateways, taken in turn.
    bases: Arc<Vec<String>>,
    token: String,
    numbers: Arc<Vec<String>>,
}

struct Outcome {
    latencies_ms: Vec<f64>,
    statuses: BTreeMap<u16, u64>,
    elapsed: f64,
    /// (ticket, version, summary, accepted at) of every 200.
    accepted: Vec<(String, i64, String, Instant)>,
}

impl Outcome {
    fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }
    fn rate(&self) -> f64 {
        self.ok() as f64 / self.elapsed
    }
    fn p(&self, q: f64) -> f64 {
        pct(&self.latencies_ms, q)
    }
    fn print(&self, name: &str, cores: f64) {
        println!(
            "{name}: {:.0} accepted writes/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms; statuses {:?} (0 = connection error); server CPU {cores:.2} cores",
            self.rate(),
            self.p(0.50),
            self.p(0.95),
            self.p(0.99),
            self.latencies_ms.last().copied().unwrap_or(0.0),
            self.statuses
        );
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Load {
    /// `rate = None`: each client sends its next request when the previous is answered.
    /// `Some(r)`: requests leave on a fixed schedule of r per second in total, and latency is
    /// counted from the scheduled time (a slow answer delays the next send, and that wait counts).
    async fn run(&self, opts: &Options, rate: Option<f64>) -> Outcome {
        let concurrency = opts.concurrency;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(opts.seconds);
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let (http, token, bases, numbers) =
                (self.http.clone(), self.token.clone(), self.bases.clone(), self.numbers.clone());
            let interval = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r));
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
                let mut accepted = Vec::new();
                let mut next =
                    started + interval.map(|i| i.mul_f64(worker as f64 / concurrency as f64)).unwrap_or_default();
                loop {
                    if interval.is_some() {
                        if next >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(next.into()).await;
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    let i = SEQ.fetch_add(1, Ordering::Relaxed);
                    // Prime stride: clients rarely write the same ticket at once.
                    let n = &numbers[(i as usize * 7919) % numbers.len()];
                    let summary = format!("update {i} from client {worker}");
                    let urgency = ["1", "2", "3"][i as usize % 3];
                    let mut body = json!({
                        "short_description": &summary,
                        "urgency": urgency,
                        "work_notes": format!("Checked the print queue again (client {worker}, step {i})."),
                    });
                    if i.is_multiple_of(4) {
                        body["state"] = json!("3");
                        body["hold_reason"] = json!("1");
                    } else if i % 4 == 2 {
                        body["state"] = json!("2");
                    }
                    let sent = if interval.is_some() { next } else { Instant::now() };
                    let base = &bases[i as usize % bases.len()];
                    let resp = http.patch(format!("{base}/tickets/{n}")).bearer_auth(&token).json(&body).send().await;
                    let status = match resp {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            if s == 200 {
                                let v: Value = r.json().await.unwrap_or(Value::Null);
                                let version = v["version"].as_i64().unwrap_or(0);
                                accepted.push((n.clone(), version, summary, Instant::now()));
                            } else {
                                let body = r.text().await.unwrap_or_default();
                                if !statuses.contains_key(&s) {
                                    eprintln!("first {s} answer: {body}");
                                }
                            }
                            s
                        }
                        Err(_) => 0,
                    };
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    *statuses.entry(status).or_default() += 1;
                    if let Some(i) = interval {
                        next += i;
                    }
                }
                (latencies, statuses, accepted)
            }));
        }
        let mut out =
            Outcome { latencies_ms: Vec::new(), statuses: BTreeMap::new(), elapsed: 0.0, accepted: Vec::new() };
        for t in tasks {
            let (l, s, a) = t.await.expect("client");
            out.latencies_ms.extend(l);
            for (k, v) in s {
                *out.statuses.entry(k).or_default() += v;
            }
            out.accepted.extend(a);
        }
        out.elapsed = started.elapsed().as_secs_f64().min(opts.seconds as f64).max(0.001);
        out.latencies_ms.sort_by(f64::total_cmp);
        out
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Receipt time and arrival sequence, by the change's summary text (unique per write).
type Receipts = Arc<Mutex<HashMap<String, (Instant, u64)>>>;

async fn wait_for(receipts: &Receipts, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if receipts.lock().expect("receipts").len() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Writes of one ticket must arrive in version order.
fn order_violations(receipts: &Receipts, accepted: &[(String, i64, String, Instant)]) -> usize {
    let receipts = receipts.lock().expect("receipts");
    let mut by_ticket: HashMap<&str, Vec<(i64, u64)>> = HashMap::new();
    for (ticket, version, summary, _) in accepted {
        if let Some((_, seq)) = receipts.get(summary) {
            by_ticket.entry(ticket).or_default().push((*version, *seq));
        }
    }
    by_ticket
        .values_mut()
        .map(|v| {
            v.sort();
            v.windows(2).filter(|w| w[1].1 < w[0].1).count()
        })
        .sum()
}

fn lags(receipts: &Receipts, accepted: &[(String, i64, String, Instant)]) -> Vec<f64> {
    let receipts = receipts.lock().expect("receipts");
    let mut lags: Vec<f64> = accepted
        .iter()
        .filter_map(|(_, _, s, at)| receipts.get(s).map(|(r, _)| r.saturating_duration_since(*at).as_secs_f64() * 1e3))
        .collect();
    lags.sort_by(f64::total_cmp);
    lags
}

/// ENOVIA's inbound limit in the benchmark's contracts (what `--gateways` checks).
const ENOVIA_PER_MINUTE: u32 = 3000;

/// Every `webhook-id` each change arrived with (more than one entry: delivered twice).
static WEBHOOK_IDS: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

/// Changes delivered more than once: (with the same `webhook-id`, with different ones).
fn duplicates() -> (usize, usize) {
    let ids = WEBHOOK_IDS.lock().expect("ids");
    let twice = ids.values().filter(|v| v.len() > 1);
    let (mut same, mut different) = (0, 0);
    for v in twice {
        if v.iter().all(|id| *id == v[0]) {
            same += 1;
        } else {
            different += 1;
        }
    }
    (same, different)
}

/// Waits until `n` processes are on the database's roll (each then knows how many gateways
/// share the partners' rate limits).
async fn wait_for_roll(db: &ebond::store::Db, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let live = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || count(&db, "processes")).await.expect("roll")
        };
        if live as usize >= n {
            // One more heartbeat, so every process has read the roll.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the processes did not all join the roll");
}

/// A credential revoked while every gateway remembers its token: each must refuse it at once.
async fn revocation_check(
    http: &reqwest::Client,
    bases: &[String],
    db: &ebond::store::Db,
    url: &str,
    tmp: &std::path::Path,
) {
    let cred = {
        let mut conn = db.get().expect("conn");
        ebond::with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, Some("servicenow"), 1000))
            .expect("credential")
    };
    let token = token(http, &bases[0], &cred).await;
    for base in bases {
        let s = http.get(format!("{base}/tickets?limit=1")).bearer_auth(&token).send().await.expect("get").status();
        assert_eq!(s.as_u16(), 200, "the new token works at {base}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ebond"))
        .args(["partner", "credentials", "revoke", "servicenow", "--client-id", &cred.client_id])
        .env("EBOND_DATABASE_URL", url)
        .env("EBOND_DATA_DIR", tmp.join("data"))
        .output()
        .expect("ebond partner credentials revoke");
    assert!(out.status.success(), "revoke: {}", String::from_utf8_lossy(&out.stderr));
    let mut refused = 0;
    for base in bases {
        let s = http.get(format!("{base}/tickets?limit=1")).bearer_auth(&token).send().await.expect("get").status();
        refused += usize::from(s.as_u16() == 401);
    }
    println!(
        "revocation: the revoked credential's token refused at once by {refused} of {} gateways{}",
        bases.len(),
        String::from_utf8_lossy(&out.stderr).trim().lines().map(|l| format!(" ({l})")).collect::<String>()
    );
}

/// ENOVIA's inbound limit (`per_minute`), hit through every gateway in turn for `seconds`: the
/// 200s must stay within 10 % of what one gateway alone would let through (a full bucket,
/// then the refill).
async fn rate_limit_check(
    http: &reqwest::Client,
    bases: &[String],
    db: &ebond::store::Db,
    per_minute: u32,
    seconds: u64,
) {
    let cred = {
        let mut conn = db.get().expect("conn");
        ebond::with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, Some("enovia"), 1000))
            .expect("credential")
    };
    let token = token(http, &bases[0], &cred).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let seq = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, token, bases, seq) = (http.clone(), token.clone(), bases.to_vec(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut limited) = (0u64, 0u64);
            while Instant::now() < deadline {
                let i = seq.fetch_add(1, Ordering::Relaxed) as usize;
                let base = &bases[i % bases.len()];
                match http
                    .get(format!("{base}/tickets?limit=1"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                {
                    Ok(200) => ok += 1,
                    Ok(429) => limited += 1,
                    _ => {}
                }
            }
            (ok, limited)
        }));
    }
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        let (o, l) = t.await.expect("client");
        ok += o;
        limited += l;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = f64::from(per_minute) * (1.0 + elapsed / 60.0);
    println!(
        "inbound rate limit {per_minute}/min across {} gateways: {ok} accepted and {limited} refused (429) in {elapsed:.1} s; one gateway alone would accept {allowed:.0}: {:+.1} %",
        bases.len(),
        (ok as f64 / allowed - 1.0) * 100.0
    );
}

/// The workers' breaker cool-down in the benchmark (the default, 30 s, would outlast it).
const BREAKER_COOLDOWN_MS: i64 = 3000;

/// While set, the fake partner answers every push with 503.
static SINK_FAILING: AtomicBool = AtomicBool::new(false);

/// The fake partner goes down while changes keep coming through every gateway. Once a
/// worker's breaker opens it is shared through the database: during its cool-down no worker
/// may attempt a delivery to that partner (attempts already on the wire when it opened
/// excepted: those that started within 250 ms of it are not counted).
async fn breaker_check(
    http: &reqwest::Client,
    bases: &[String],
    db: &ebond::store::Db,
    token: &str,
    numbers: &[String],
) {
    SINK_FAILING.store(true, Ordering::SeqCst);
    let started = ebond::util::now_ms();
    let mut opened = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0usize;
    while opened.is_none() && Instant::now() < deadline {
        // A change to a fresh ticket each time, so no ticket's order holds the next one back.
        let (base, n) = (&bases[i % bases.len()], &numbers[(i * 104_729 + 17) % numbers.len()]);
        i += 1;
        let body = json!({"short_description": format!("while the partner is down {i}")});
        let _ = http.patch(format!("{base}/tickets/{n}")).bearer_auth(token).json(&body).send().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        opened = sql_i64(db, "SELECT breaker_open_until AS v FROM partner_controls WHERE partner = 'acme-msp' AND breaker_open_until IS NOT NULL");
    }
    let Some(open_until) = opened else {
        SINK_FAILING.store(false, Ordering::SeqCst);
        println!("breaker: never opened in 30 s of failures (FAILED)");
        return;
    };
    let opened_at = open_until - BREAKER_COOLDOWN_MS;
    // Keep writing through the cool-down: every worker has work it must hold back.
    while ebond::util::now_ms() < open_until - 200 {
        let (base, n) = (&bases[i % bases.len()], &numbers[(i * 104_729 + 17) % numbers.len()]);
        i += 1;
        let body = json!({"short_description": format!("while the breaker is open {i}")});
        let _ = http.patch(format!("{base}/tickets/{n}")).bearer_auth(token).json(&body).send().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    SINK_FAILING.store(false, Ordering::SeqCst);
    let by_worker = |from: i64, to: i64| -> String {
        let sql = format!(
            "SELECT worker, COUNT(*) AS n FROM delivery_attempts WHERE partner = 'acme-msp' \
             AND started_at >= {from} AND started_at < {to} AND outcome <> 'delivered' GROUP BY worker ORDER BY worker"
        );
        let rows = sql_rows(db, &sql);
        if rows.is_empty() {
            "none".to_string()
        } else {
            rows.join(", ")
        }
    };
    let during = sql_i64(
        db,
        &format!(
            "SELECT COUNT(*) AS v FROM delivery_attempts WHERE partner = 'acme-msp' AND started_at >= {} AND started_at < {}",
            opened_at + 250,
            open_until - 200
        ),
    )
    .unwrap_or(-1);
    println!(
        "breaker: opened {} ms after the partner went down (failed attempts before by worker: {}); attempts by any worker during its {BREAKER_COOLDOWN_MS} ms cool-down: {during}{}",
        opened_at - started,
        by_worker(started, opened_at + 250),
        if during == 0 { "" } else { " (FAILED: a worker did not see the open breaker)" }
    );
}

/// One BIGINT column `v` of the first row, if any.
fn sql_i64(db: &ebond::store::Db, sql: &str) -> Option<i64> {
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        v: i64,
    }
    let mut conn = db.get().expect("conn");
    ebond::with_conn!(&mut conn, c => diesel::sql_query(sql).load::<V>(c)).expect("query").first().map(|r| r.v)
}

/// `worker: n` for each row of a (worker, n) query.
fn sql_rows(db: &ebond::store::Db, sql: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct W {
        #[diesel(sql_type = diesel::sql_types::Text)]
        worker: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.get().expect("conn");
    ebond::with_conn!(&mut conn, c => diesel::sql_query(sql).load::<W>(c))
        .expect("query")
        .into_iter()
        .map(|r| format!("{}: {}", r.worker, r.n))
        .collect()
}

/// A subscribed partner on loopback: records when each change arrives and answers like an
/// MSP's ticket API.
async fn start_sink(receipts: Receipts) -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let counter = Arc::new(AtomicU64::new(0));
    let server = HttpServer::new(move || {
        let (receipts, counter) = (receipts.clone(), counter.clone());
        App::new().default_service(web::to(move |req: actix_web::HttpRequest, body: web::Bytes| {
            let (receipts, counter) = (receipts.clone(), counter.clone());
            async move {
                let now = Instant::now();
                let seq = counter.fetch_add(1, Ordering::Relaxed);
                if SINK_FAILING.load(Ordering::SeqCst) {
                    return HttpResponse::ServiceUnavailable().finish();
                }
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(s) = v["summary"].as_str() {
                    receipts.lock().expect("receipts").entry(s.to_string()).or_insert((now, seq));
                    let id = req.headers().get("webhook-id").and_then(|h| h.to_str().ok()).unwrap_or_default();
                    WEBHOOK_IDS.lock().expect("ids").entry(s.to_string()).or_default().push(id.to_string());
                }
                if req.method() == actix_web::http::Method::POST {
                    HttpResponse::Created().json(json!({"ticket_number": format!("ACME-{:07}", seq)}))
                } else {
                    HttpResponse::Ok().finish()
                }
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    url
}

/// The example contracts, with Acme's endpoints at the fake partner, no outbound rate limit,
/// and its secrets in files.
fn bench_contracts(dir: &std::path::Path, sink: &str) -> std::path::PathBuf {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts");
    let out = dir.join("contracts");
    std::fs::create_dir_all(&out).expect("contracts dir");
    let secret = dir.join("signing");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
    let pw = dir.join("password");
    std::fs::write(&pw, "bench").expect("secret");
    for f in ["workflow.toml", "servicenow.toml", "enovia.toml", "acme-msp.toml"] {
        let mut text = std::fs::read_to_string(src.join(f))
            .expect("example contract")
            .replace("https://itsm.acme-msp.example", sink)
            .replace("rate_limit_per_minute = 60", "rate_limit_per_minute = 1000000")
            .replace("env:EBOND_ACME_SIGNING_SECRET", &format!("file:{}", secret.display()))
            .replace("env:EBOND_ACME_PASSWORD", &format!("file:{}", pw.display()));
        if f == "enovia.toml" {
            text = text.replacen("[auth]\n", &format!("[auth]\nrate_limit_per_minute = {ENOVIA_PER_MINUTE}\n"), 1);
        }
        if f == "servicenow.toml" {
            // ServiceNow's inbound limit (default 600/min) would turn the load into 429s.
            text = text.replacen("[auth]\n", "[auth]\nrate_limit_per_minute = 1000000\n", 1);
        }
        std::fs::write(out.join(f), text).expect("write contract");
    }
    out
}

/// Times the gateway's claim (`claim_due`, 64 rows, then released) over 1,000 pending rows,
/// before and after `history` delivered rows of the same tickets are inserted ahead of them.
fn claim_cost_with_history(db: &ebond::store::Db, history: usize) {
    use ebond::store::outbox::OutboxRepo as _;
    let pending = |conn: &mut ebond::store::DbConn, tag: &str| {
        let sql = format!(
            "INSERT INTO outbox (partner, ticket_id, event, delivery_id, payload, status, attempts, next_attempt_at, created_at, updated_at) \
             SELECT 'acme-msp', id, 'updated', '{tag}_' || id, '{{}}', 'pending', 0, 0, 0, 0 FROM tickets WHERE id <= 1001"
        );
        ebond::with_conn!(conn, c => c.batch_execute(&sql)).expect("pending rows");
    };
    let time_claims = |conn: &mut ebond::store::DbConn| -> f64 {
        let rounds = 200;
        let mut spent = Duration::ZERO;
        for _ in 0..rounds {
            let now = ebond::util::now_ms();
            let t = Instant::now();
            let rows = transaction!(conn, c => c.claim_due(now, now + 60_000, "bench", &[], 64)).expect("claim");
            spent += t.elapsed();
            assert!(!rows.is_empty(), "nothing to claim");
            transaction!(conn, c => {
                for r in &rows {
                    c.release(r.outbox.id, "bench")?;
                }
                Ok::<_, diesel::result::Error>(())
            })
            .expect("release");
        }
        spent.as_secs_f64() * 1e6 / rounds as f64
    };
    let mut conn = db.get().expect("conn");
    ebond::with_conn!(&mut conn, c => c.batch_execute("DELETE FROM delivery_attempts; DELETE FROM outbox WHERE status <> 'delivered'"))
        .expect("clear open rows");
    let before_rows = count(db, "outbox");
    pending(&mut conn, "before");
    let before = time_claims(&mut conn);
    ebond::with_conn!(&mut conn, c => c.batch_execute("DELETE FROM outbox WHERE status <> 'delivered'"))
        .expect("clear");
    let t = Instant::now();
    let series = match db.backend_name() {
        "sqlite" => format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {history}) \
             INSERT INTO outbox (partner, ticket_id, event, delivery_id, payload, status, attempts, next_attempt_at, created_at, updated_at, delivered_at) \
             SELECT 'acme-msp', 2 + (n % 1000), 'updated', 'history_' || n, '{{}}', 'delivered', 1, 0, 0, 0, 0 FROM s"
        ),
        _ => format!(
            "INSERT INTO outbox (partner, ticket_id, event, delivery_id, payload, status, attempts, next_attempt_at, created_at, updated_at, delivered_at) \
             SELECT 'acme-msp', 2 + (n % 1000), 'updated', 'history_' || n, '{{}}', 'delivered', 1, 0, 0, 0, 0 FROM generate_series(1, {history}) AS s(n); ANALYZE outbox"
        ),
    };
    ebond::with_conn!(&mut conn, c => c.batch_execute(&series)).expect("history rows");
    eprintln!("inserted {history} delivered rows in {:.1} s", t.elapsed().as_secs_f64());
    pending(&mut conn, "after");
    let after = time_claims(&mut conn);
    println!(
        "outbox claim (64 of 1,000 due rows): {before:.0} µs with {before_rows} delivered rows in the history, {after:.0} µs with {}",
        before_rows + history as i64
    );
}
