//! PATCH loop: the real gateway (in-process, release build) on a random port, N tickets, C
//! concurrent clients sending authenticated PATCHes for D seconds; prints the accepted-write
//! rate and latency percentiles.
//!
//! cargo bench --bench patch_loop -- [--concurrency 16] [--seconds 10] [--tickets 100]
//! EBOND_BENCH_DATABASE_URL=postgres://… selects PostgreSQL (default: SQLite in a temp folder).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

struct Options {
    concurrency: usize,
    seconds: u64,
    tickets: usize,
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
    let state = ebond::app::state(settings.clone()).expect("gateway");
    let backend = state.db.backend_name();
    let db = state.db.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!(
        "http://{}/api/ebond/v1",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(ebond::api::server(state, listener).expect("server"));

    let cred = {
        let mut conn = db.get().expect("conn");
        ebond::with_conn!(&mut conn, c => ebond::auth::tokens::issue_credential(c, Some("servicenow"), 1000)).expect("cred")
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .build()
        .expect("client");
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
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    // A run may reuse a PostgreSQL database: number tickets after what is there.
    let offset = ebond::util::now_ms() % 1_000_000;
    let numbers: Vec<String> = (0..opts.tickets)
        .map(|i| format!("INC{:07}", (offset as usize * 10 + i) % 10_000_000))
        .collect();
    for n in &numbers {
        let resp = http
            .post(format!("{base}/tickets"))
            .bearer_auth(&token)
            .json(&json!({"number": n, "short_description": "Benchmark incident", "impact": "2", "urgency": "2"}))
            .send()
            .await
            .expect("create");
        assert!(resp.status().is_success(), "create {n}: {}", resp.status());
    }

    println!(
        "ebond PATCH loop: backend={backend} concurrency={} seconds={} tickets={}",
        opts.concurrency, opts.seconds, opts.tickets
    );
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..opts.concurrency {
        let (http, token, base, numbers) =
            (http.clone(), token.clone(), base.clone(), numbers.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut i = worker;
            while Instant::now() < deadline {
                let n = &numbers[i % numbers.len()];
                let urgency = ["1", "2", "3"][i % 3];
                let body = json!({
                    "short_description": format!("Benchmark incident, update {i}"),
                    "urgency": urgency,
                    "work_notes": format!("worker {worker} note {i}"),
                });
                let t = Instant::now();
                let status = match http
                    .patch(format!("{base}/tickets/{n}"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
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
}

/// Workers step through tickets with a prime stride so they rarely hit the same ticket.
const STRIDE: usize = 7;
