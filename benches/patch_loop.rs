//! PATCH loop: the real gateway (in-process, release build) on a random port, N tickets, C
//! concurrent clients sending authenticated PATCHes for D seconds; prints the accepted-write
//! rate and latency percentiles. With `--outbound`, one subscribed partner (a local HTTP sink)
//! receives every change through the outbox processor, and the delivery rate and the time from
//! accepted write to partner receipt are printed too.
//!
//! cargo bench --bench patch_loop -- [--concurrency 16] [--seconds 10] [--tickets 100] [--outbound]
//! EBOND_BENCH_DATABASE_URL=postgres://… selects PostgreSQL (default: SQLite in a temp folder).

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Options {
    concurrency: usize,
    seconds: u64,
    tickets: usize,
    outbound: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        concurrency: get("--concurrency", 16) as usize,
        seconds: get("--seconds", 10),
        tickets: get("--tickets", 100) as usize,
        outbound: args.iter().any(|a| a == "--outbound"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let opts = options();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut settings = ebond::config::Settings {
        data_dir: tmp.path().join("data"),
        contracts_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts"),
        bind: "127.0.0.1:0".into(),
        ..Default::default()
    };
    if let Ok(url) = std::env::var("EBOND_BENCH_DATABASE_URL") {
        settings.database_url = url;
    }
    let receipts: Receipts = Arc::new(Mutex::new(HashMap::new()));
    settings.outbox.in_process = opts.outbound;
    if opts.outbound {
        let sink = start_sink(receipts.clone()).await;
        settings.contracts_dir = bench_contracts(tmp.path(), &sink);
        settings.outbox.concurrency = 32;
        settings.outbox.poll_interval_ms = 50;
    }
    let state = ebond::app::state(settings.clone()).expect("gateway");
    let _processor = if opts.outbound { Some(ebond::app::spawn_processor(&state).expect("processor")) } else { None };
    let backend = state.db.backend_name();
    let db = state.db.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/api/ebond/v1", listener.local_addr().expect("addr"));
    tokio::spawn(ebond::api::server(state, listener).expect("server"));

    let cred = {
        let mut conn = db.get().expect("conn");
        ebond::with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, Some("servicenow"), 1000))
            .expect("cred")
    };
    let http = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build().expect("client");
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(&cred.client_id, Some(&cred.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"].as_str().expect("access_token").to_string();
    // A run may reuse a PostgreSQL database: number tickets after what is there.
    let offset = ebond::util::now_ms() % 1_000_000;
    let numbers: Vec<String> =
        (0..opts.tickets).map(|i| format!("INC{:07}", (offset as usize * 10 + i) % 10_000_000)).collect();
    for n in &numbers {
        let resp = http
            .post(format!("{base}/tickets"))
            .bearer_auth(&token)
            .json(&json!({"number": n, "short_description": format!("created {n}"), "impact": "2", "urgency": "2", "assignment_group": "Acme L2"}))
            .send()
            .await
            .expect("create");
        assert!(resp.status().is_success(), "create {n}: {}", resp.status());
    }

    if opts.outbound {
        // Let the creates drain so the measured window holds only the updates.
        let deadline = Instant::now() + Duration::from_secs(60);
        while receipts.lock().unwrap().len() < opts.tickets && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let accepted_at: Receipts = Arc::new(Mutex::new(HashMap::new()));
    println!(
        "ebond PATCH loop: backend={backend} concurrency={} seconds={} tickets={} outbound={}",
        opts.concurrency, opts.seconds, opts.tickets, opts.outbound
    );
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..opts.concurrency {
        let (http, token, base, numbers) = (http.clone(), token.clone(), base.clone(), numbers.clone());
        let accepted_at = accepted_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut i = worker;
            while Instant::now() < deadline {
                let n = &numbers[i % numbers.len()];
                let urgency = ["1", "2", "3"][i % 3];
                let summary = format!("w{worker} update {i}");
                let body = json!({
                    "short_description": &summary,
                    "urgency": urgency,
                    "work_notes": format!("worker {worker} note {i}"),
                });
                let t = Instant::now();
                let status =
                    match http.patch(format!("{base}/tickets/{n}")).bearer_auth(&token).json(&body).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                if status == 200 {
                    accepted_at.lock().unwrap().insert(summary, Instant::now());
                }
                latencies.push(t.elapsed());
                *statuses.entry(status).or_default() += 1;
                i += STRIDE;
            }
            (latencies, statuses)
        }));
    }
    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for t in tasks {
        let (l, s) = t.await.expect("worker");
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let ok = statuses.get(&200).copied().unwrap_or(0);
    println!("accepted writes/s: {:.0}", ok as f64 / elapsed);
    println!(
        "latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("responses by status: {statuses:?} (0 = connection error)");
    if opts.outbound {
        let deadline = Instant::now() + Duration::from_secs(120);
        let want = ok as usize + opts.tickets;
        while receipts.lock().unwrap().len() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let receipts = receipts.lock().unwrap();
        let accepted = accepted_at.lock().unwrap();
        let mut lags: Vec<Duration> =
            accepted.iter().filter_map(|(k, at)| receipts.get(k).map(|r| r.saturating_duration_since(*at))).collect();
        lags.sort();
        let last = accepted.keys().filter_map(|k| receipts.get(k)).max().copied();
        let span = last.map(|l| l.duration_since(started).as_secs_f64()).unwrap_or(elapsed);
        println!(
            "deliveries/s: {:.0} ({} of {} updates received)",
            lags.len() as f64 / span,
            lags.len(),
            accepted.len()
        );
        println!(
            "write-to-receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&lags, 0.50).as_secs_f64() * 1e3,
            percentile(&lags, 0.99).as_secs_f64() * 1e3,
            lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    }
}

/// Receipt (or acceptance) time by the change's summary text, which is unique per write.
type Receipts = Arc<Mutex<HashMap<String, Instant>>>;

/// A subscribed partner on loopback: records when each change arrives and answers like an
/// MSP's ticket API.
async fn start_sink(receipts: Receipts) -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = HttpServer::new(move || {
        let (receipts, counter) = (receipts.clone(), counter.clone());
        App::new().default_service(web::to(move |req: actix_web::HttpRequest, body: web::Bytes| {
            let (receipts, counter) = (receipts.clone(), counter.clone());
            async move {
                let now = Instant::now();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(s) = v["summary"].as_str() {
                    receipts.lock().unwrap().entry(s.to_string()).or_insert(now);
                }
                if req.method() == actix_web::http::Method::POST {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    HttpResponse::Created().json(json!({"ticket_number": format!("ACME-{:07}", n)}))
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

/// The example contracts, with Acme's endpoints at the sink, no rate limit, secrets in files.
fn bench_contracts(dir: &std::path::Path, sink: &str) -> std::path::PathBuf {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts");
    let out = dir.join("contracts");
    std::fs::create_dir_all(&out).expect("contracts dir");
    let secret = dir.join("signing");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
    let pw = dir.join("password");
    std::fs::write(&pw, "bench").expect("secret");
    for f in ["workflow.toml", "servicenow.toml", "enovia.toml", "acme-msp.toml"] {
        let text = std::fs::read_to_string(src.join(f))
            .expect("example contract")
            .replace("https://itsm.acme-msp.example", sink)
            .replace("rate_limit_per_minute = 60", "rate_limit_per_minute = 1000000")
            .replace("env:EBOND_ACME_SIGNING_SECRET", &format!("file:{}", secret.display()))
            .replace("env:EBOND_ACME_PASSWORD", &format!("file:{}", pw.display()));
        std::fs::write(out.join(f), text).expect("write contract");
    }
    out
}

/// Workers step through tickets with a prime stride so they rarely hit the same ticket.
const STRIDE: usize = 7;
