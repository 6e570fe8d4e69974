//! Fake partners: real HTTP servers (wiremock) that answer like ServiceNow, ENOVIA and an MSP,
//! record every request with its arrival time, and can be scripted to fail.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Standard Webhooks secret every fake partner verifies with.
pub const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn event(&self) -> &str {
        self.header("x-ebond-event")
    }
    pub fn ticket(&self) -> &str {
        self.header("x-ebond-ticket")
    }
}

type Matcher = Box<dyn Fn(&Received) -> bool + Send + Sync>;

struct Scripted {
    matches: Matcher,
    response: ResponseTemplate,
    times: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ServiceNow,
    Enovia,
    Acme,
}

struct Inner {
    kind: Kind,
    log: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Scripted>>,
    ids: Mutex<VecDeque<String>>,
    counter: AtomicUsize,
    tokens_issued: AtomicUsize,
}

#[derive(Clone)]
struct Responder(Arc<Inner>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let inner = &self.0;
        let headers = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let rec = Received {
            at: Instant::now(),
            method: request.method.to_string(),
            path: request.url.path().to_string(),
            headers,
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
            raw: request.body.clone(),
        };
        if rec.path.ends_with("/oauth_token.do") {
            let n = inner.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
            inner.log.lock().unwrap().push(rec);
            return ResponseTemplate::new(200).set_body_json(
                json!({"access_token": format!("snow-token-{n}"), "token_type": "bearer", "expires_in": 3600}),
            );
        }
        let scripted = {
            let mut script = inner.script.lock().unwrap();
            let pos = script.iter().position(|s| s.times > 0 && (s.matches)(&rec));
            pos.map(|i| {
                script[i].times -= 1;
                script[i].response.clone()
            })
        };
        inner.log.lock().unwrap().push(rec.clone());
        if let Some(r) = scripted {
            return r;
        }
        let creates = rec.method == "POST";
        if !creates {
            return ResponseTemplate::new(200).set_body_json(json!({"ok": true}));
        }
        let n = inner.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let preset = inner.ids.lock().unwrap().pop_front();
        match inner.kind {
            Kind::ServiceNow => {
                let id = preset.unwrap_or_else(|| format!("INC90{n:05}"));
                ResponseTemplate::new(201)
                    .set_body_json(json!({"result": {"number": id, "sys_id": format!("{n:032x}")}}))
            }
            Kind::Enovia => {
                let id = preset.unwrap_or_else(|| format!("ISS-9{n:06}"));
                ResponseTemplate::new(200)
                    .set_body_json(json!({"success": true, "statusCode": 200, "data": [{"id": id}]}))
            }
            Kind::Acme => {
                let id = preset.unwrap_or_else(|| format!("ACME-{:05}", 50_000 + n));
                ResponseTemplate::new(201).set_body_json(json!({"ticket_number": id}))
            }
        }
    }
}

pub struct FakePartner {
    pub server: MockServer,
    inner: Arc<Inner>,
}

impl FakePartner {
    pub async fn start(kind: Kind) -> FakePartner {
        let server = MockServer::start().await;
        let inner = Arc::new(Inner {
            kind,
            log: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            ids: Mutex::new(VecDeque::new()),
            counter: AtomicUsize::new(0),
            tokens_issued: AtomicUsize::new(0),
        });
        Mock::given(any()).respond_with(Responder(inner.clone())).mount(&server).await;
        FakePartner { server, inner }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The next create answers with this id.
    pub fn next_id(&self, id: &str) {
        self.inner.ids.lock().unwrap().push_back(id.to_string());
    }

    /// The next `times` requests matching `matches` get `response`.
    pub fn script(
        &self,
        times: usize,
        matches: impl Fn(&Received) -> bool + Send + Sync + 'static,
        response: ResponseTemplate,
    ) {
        self.inner.script.lock().unwrap().push_back(Scripted { matches: Box::new(matches), response, times });
    }

    pub fn clear_script(&self) {
        self.inner.script.lock().unwrap().clear();
    }

    /// Ticket requests received so far (token requests excluded).
    pub fn received(&self) -> Vec<Received> {
        self.inner.log.lock().unwrap().iter().filter(|r| !r.path.ends_with("/oauth_token.do")).cloned().collect()
    }

    pub fn tokens_issued(&self) -> usize {
        self.inner.tokens_issued.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for the received requests (or fails after `secs`).
    pub async fn wait_for(&self, secs: u64, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> =
                    got.iter().map(|r| format!("{} {} {} {}", r.method, r.path, r.ticket(), r.event())).collect();
                panic!("timed out waiting for {what}; received: {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The three example partners, faked, plus the example contracts rewritten to point at them
/// (fast retry schedules, secrets from files).
pub struct Partners {
    pub snow: FakePartner,
    pub enovia: FakePartner,
    pub acme: FakePartner,
}

impl Partners {
    pub async fn start() -> Partners {
        Partners {
            snow: FakePartner::start(Kind::ServiceNow).await,
            enovia: FakePartner::start(Kind::Enovia).await,
            acme: FakePartner::start(Kind::Acme).await,
        }
    }

    /// Writes contracts (and secret files) into `dir`, retrying on `schedule`.
    pub fn write_contracts(&self, dir: &Path, schedule: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        for (name, value) in [
            ("signing", SIGNING_SECRET),
            ("snow_client_secret", "snow-client-secret"),
            ("enovia_csrf", "csrf-token-123"),
            ("acme_password", "acme-pass"),
        ] {
            std::fs::write(secrets.join(name), value).unwrap();
        }
        let file = |n: &str| format!("file:{}", secrets.join(n).display());
        let src = crate::helpers::repo_path("contracts");
        std::fs::copy(src.join("workflow.toml"), dir.join("workflow.toml")).unwrap();
        for (name, from, to) in [
            ("servicenow.toml", "https://customer.service-now.com", self.snow.uri()),
            ("enovia.toml", "https://plm.example.com", self.enovia.uri()),
            ("acme-msp.toml", "https://itsm.acme-msp.example", self.acme.uri()),
        ] {
            let mut text = std::fs::read_to_string(src.join(name)).unwrap().replace(from, &to);
            text = text
                .replace("env:EBOND_SERVICENOW_SIGNING_SECRET", &file("signing"))
                .replace("env:EBOND_ENOVIA_SIGNING_SECRET", &file("signing"))
                .replace("env:EBOND_ACME_SIGNING_SECRET", &file("signing"))
                .replace("env:EBOND_SERVICENOW_CLIENT_SECRET", &file("snow_client_secret"))
                .replace("env:EBOND_ENOVIA_CSRF_TOKEN", &file("enovia_csrf"))
                .replace("env:EBOND_ACME_PASSWORD", &file("acme_password"))
                .replace("alert_window = \"15m\"", "alert_window = \"2s\"");
            let lines: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with("retry_schedule") && !l.starts_with("rate_limit_per_minute"))
                .map(|l| {
                    if l == "[outbound]" {
                        format!("[outbound]\nretry_schedule = {schedule}\nrate_limit_per_minute = 100000")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
        }
    }
}

/// Verifies a Standard Webhooks signature with the RustCrypto `hmac` crate: an implementation
/// independent of the gateway's (OpenSSL).
pub fn verify_signature(r: &Received) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD.decode(SIGNING_SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.header("webhook-id"), r.header("webhook-timestamp")).as_bytes());
    mac.update(&r.raw);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap_or(0);
    let fresh = (chrono::Utc::now().timestamp() - ts).abs() <= 300;
    fresh && r.header("webhook-signature").split(' ').any(|s| s == format!("v1,{expected}"))
}
