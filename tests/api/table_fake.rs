//! A stateful fake ServiceNow: a real HTTP server (wiremock) holding an `incident` table that
//! answers the Table API as the example contract reads it — lists filtered by
//! `sys_updated_on>=…`, ordered by it, paged by `sysparm_offset` / `sysparm_limit`; one incident
//! by `number=…`; PATCH and POST change the table (so pushes converge it); the OAuth token
//! endpoint. Tests plant records, change them behind the hub's back, and script failures.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A Table-API time `secs` seconds after a fixed start.
pub fn at(secs: i64) -> String {
    chrono::DateTime::from_timestamp(1_764_000_000 + secs, 0).unwrap().format(FORMAT).to_string()
}

type Hook = Box<dyn FnMut(usize, &mut Vec<Value>) + Send>;

#[derive(Default)]
struct State {
    rows: Vec<Value>,
    /// Every list request's query, in order.
    lists: Vec<String>,
    /// Requests other than lists and tokens: (method, path, body).
    writes: Vec<(String, String, Value)>,
    /// Runs before list request N (0-based) is answered: records "arriving during the run".
    before_list: Option<Hook>,
    /// The next list requests get these answers instead.
    scripted: VecDeque<ResponseTemplate>,
    /// Incidents whose pushes are answered 500.
    failing: Vec<String>,
    /// Lists answer the first page whatever they are asked (a parameter the partner ignores).
    stuck: bool,
    clock: i64,
}

#[derive(Clone)]
pub struct TableFake {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

struct Responder(Arc<Mutex<State>>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let path = request.url.path().to_string();
        if path.ends_with("/oauth_token.do") {
            return ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "table-token", "token_type": "bearer", "expires_in": 3600}));
        }
        let query: Vec<(String, String)> =
            request.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let method = request.method.to_string();
        if method == "GET" && path.ends_with("/incident") {
            let sysparm = q("sysparm_query").unwrap_or_default();
            if let Some(number) = sysparm.strip_prefix("number=") {
                let found: Vec<Value> = st.rows.iter().filter(|r| r["number"] == number).cloned().collect();
                return ResponseTemplate::new(200).set_body_json(json!({"result": found}));
            }
            let n = st.lists.len();
            st.lists.push(request.url.query().unwrap_or_default().to_string());
            if let Some(mut hook) = st.before_list.take() {
                hook(n, &mut st.rows);
                st.before_list = Some(hook);
            }
            if let Some(r) = st.scripted.pop_front() {
                return r;
            }
            let since =
                sysparm.strip_prefix("sys_updated_on>=").and_then(|s| s.split('^').next()).unwrap_or("").to_string();
            let since = if st.stuck { String::new() } else { since };
            let mut rows: Vec<Value> = st
                .rows
                .iter()
                .filter(|r| r["sys_updated_on"].as_str().unwrap_or("") >= since.as_str())
                .cloned()
                .collect();
            rows.sort_by(|a, b| {
                (a["sys_updated_on"].as_str(), a["number"].as_str())
                    .cmp(&(b["sys_updated_on"].as_str(), b["number"].as_str()))
            });
            let offset: usize =
                if st.stuck { 0 } else { q("sysparm_offset").and_then(|o| o.parse().ok()).unwrap_or(0) };
            let limit: usize = q("sysparm_limit").and_then(|o| o.parse().ok()).unwrap_or(10_000);
            let page: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
            return ResponseTemplate::new(200).set_body_json(json!({"result": page}));
        }
        st.writes.push((method.clone(), path.clone(), body.clone()));
        if st.failing.iter().any(|n| path.ends_with(n.as_str())) {
            return ResponseTemplate::new(500).set_body_json(json!({"error": {"message": "scripted failure"}}));
        }
        st.clock += 1;
        let stamp = at(100_000 + st.clock);
        match method.as_str() {
            "PATCH" | "PUT" => {
                let number = path.rsplit('/').next().unwrap_or_default().to_string();
                let Some(row) = st.rows.iter_mut().find(|r| r["number"] == number.as_str()) else {
                    return ResponseTemplate::new(404).set_body_json(json!({"error": {"message": "No Record found"}}));
                };
                merge(row, &body);
                row["sys_updated_on"] = json!(stamp);
                ResponseTemplate::new(200).set_body_json(json!({"result": row.clone()}))
            }
            "POST" => {
                let mut row = body.clone();
                let number = format!("INC8{:06}", st.rows.len() + 1);
                row["number"] = json!(number);
                row["sys_updated_on"] = json!(stamp);
                st.rows.push(row.clone());
                ResponseTemplate::new(201).set_body_json(json!({"result": row}))
            }
            _ => ResponseTemplate::new(405),
        }
    }
}

/// Copies the members of a pushed body over the record (journal fields are not stored).
fn merge(row: &mut Value, body: &Value) {
    let Some(obj) = body.as_object() else { return };
    for (k, v) in obj {
        if k == "work_notes" || k == "comments" {
            continue;
        }
        row[k] = v.clone();
    }
}

impl TableFake {
    pub async fn start() -> TableFake {
        let server = MockServer::start().await;
        let state: Arc<Mutex<State>> = Arc::default();
        Mock::given(any()).respond_with(Responder(state.clone())).mount(&server).await;
        TableFake { server: Arc::new(server), state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Adds an incident updated at `at(secs)`; `extra` sets further fields.
    pub fn plant(&self, number: &str, secs: i64, extra: Value) {
        let mut row = incident(number, secs);
        merge(&mut row, &extra);
        self.state.lock().unwrap().rows.push(row);
    }

    /// Changes fields of a planted incident, behind the hub's back (its change time too).
    pub fn edit(&self, number: &str, secs: i64, fields: Value) {
        let mut st = self.state.lock().unwrap();
        let row = st.rows.iter_mut().find(|r| r["number"] == number).expect("planted incident");
        merge(row, &fields);
        row["sys_updated_on"] = json!(at(secs));
    }

    pub fn remove(&self, number: &str) {
        self.state.lock().unwrap().rows.retain(|r| r["number"] != number);
    }

    pub fn row(&self, number: &str) -> Option<Value> {
        self.state.lock().unwrap().rows.iter().find(|r| r["number"] == number).cloned()
    }

    pub fn lists(&self) -> Vec<String> {
        self.state.lock().unwrap().lists.clone()
    }

    pub fn writes(&self) -> Vec<(String, String, Value)> {
        self.state.lock().unwrap().writes.clone()
    }

    pub fn before_list(&self, hook: impl FnMut(usize, &mut Vec<Value>) + Send + 'static) {
        self.state.lock().unwrap().before_list = Some(Box::new(hook));
    }

    pub fn ignore_window(&self) {
        self.state.lock().unwrap().stuck = true;
    }

    pub fn fail_writes(&self, number: &str) {
        self.state.lock().unwrap().failing.push(number.to_string());
    }

    pub fn script_list(&self, response: ResponseTemplate) {
        self.state.lock().unwrap().scripted.push_back(response);
    }

    /// Writes `workflow.toml` and a ServiceNow contract pointing at this fake into `dir`: pages of
    /// `batch` records, the given overlap, fast retries, secrets from files.
    pub fn write_contracts(&self, dir: &std::path::Path, batch: u32, overlap: &str) {
        let src = crate::helpers::repo_path("contracts");
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/client"), "snow-client-secret").unwrap();
        std::fs::write(dir.join("secrets/signing"), crate::fakes::SIGNING_SECRET).unwrap();
        std::fs::copy(src.join("workflow.toml"), dir.join("workflow.toml")).unwrap();
        let text = std::fs::read_to_string(src.join("servicenow.toml"))
            .unwrap()
            .replace("https://customer.service-now.com", &self.uri())
            .replace("env:EBOND_SERVICENOW_CLIENT_SECRET", &format!("file:{}", dir.join("secrets/client").display()))
            .replace("env:EBOND_SERVICENOW_SIGNING_SECRET", &format!("file:{}", dir.join("secrets/signing").display()))
            .replace("backfill = \"1d\"", "backfill = \"all\"")
            .replace("batch_size = 500", &format!("batch_size = {batch}"))
            .replace("overlap = \"60s\"", &format!("overlap = \"{overlap}\""))
            .replace(
                "retry_schedule = [\"1m\", \"5m\", \"15m\", \"1h\"]",
                "retry_schedule = [\"100ms\", \"200ms\", \"300ms\"]",
            )
            .replace("rate_limit_per_minute = 120", "rate_limit_per_minute = 100000");
        std::fs::write(dir.join("servicenow.toml"), text).unwrap();
    }
}

/// An incident as the Table API returns it: the contract's fields plus system fields the
/// contract does not declare (a pull passes over them).
pub fn incident(number: &str, secs: i64) -> Value {
    json!({
        "sys_id": format!("{:032x}", number.bytes().map(u64::from).sum::<u64>()),
        "number": number,
        "short_description": format!("Incident {number}"),
        "description": "",
        "category": "network",
        "subcategory": "",
        "impact": "2",
        "urgency": "2",
        "priority": "3",
        "state": "1",
        "hold_reason": "",
        "assignment_group": "Service Desk",
        "assigned_to": "",
        "caller_id": "alice",
        "cmdb_ci": "",
        "close_code": "",
        "close_notes": "",
        "due_date": "",
        "work_notes": "",
        "comments": "",
        "sys_updated_on": at(secs),
        "sys_created_on": at(secs),
    })
}
