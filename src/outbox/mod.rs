//! The outbox processor: claims due rows under a lease (oldest first per partner and ticket),
//! maps them to each partner's vocabulary, calls the partner with its auth and a Standard
//! Webhooks signature, and records every attempt; retries on the contract's schedule, dead
//! letters what cannot be delivered, and keeps per-partner breakers and rate limits.
//!
//! Runs inside `ebond serve` by default, or alone as `ebond worker`. On PostgreSQL several
//! processes share the queue (`FOR UPDATE SKIP LOCKED` plus leases); on SQLite one process
//! delivers.

pub mod admin;
pub mod credentials;
pub mod health;
pub mod request;
pub mod retry;
pub mod signing;

use crate::config::OutboxSettings;
use crate::contract::{Contract, OutboundAuth, Registry};
use crate::domain::payload::OutboxPayload;
use crate::ops::alerts::Alerts;
use crate::ops::metrics::Metrics;
use crate::store::models::{AttemptRow, OutboxRow};
use crate::store::outbox::{OutboxStatus, Settle};
use crate::store::{Db, StoreError};
use credentials::TokenCache;
use health::Health;
use retry::Verdict;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument;

/// The result of one attempt, before it is written down.
#[derive(Debug)]
struct Attempt {
    verdict: Verdict,
    http_status: Option<u16>,
    excerpt: Option<String>,
    error: Option<String>,
    /// The partner's id from a create response.
    created_id: Option<String>,
    /// Nothing was sent (a recall for a partner that never had the ticket).
    skipped: bool,
}

impl Attempt {
    fn failed(verdict: Verdict, error: impl Into<String>) -> Attempt {
        Attempt {
            verdict,
            http_status: None,
            excerpt: None,
            error: Some(error.into()),
            created_id: None,
            skipped: false,
        }
    }
}

pub struct Processor {
    db: Db,
    registry: Arc<Registry>,
    settings: OutboxSettings,
    worker: String,
    http: reqwest::Client,
    tokens: TokenCache,
    health: Health,
    metrics: Metrics,
    alerts: Arc<Alerts>,
    secrets: crate::secrets::Secrets,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    claims: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("worker", &self.worker).finish_non_exhaustive()
    }
}

impl Processor {
    pub fn new(
        db: Db,
        registry: Arc<Registry>,
        settings: OutboxSettings,
        metrics: Metrics,
        alerts: Arc<Alerts>,
        secrets: crate::secrets::Secrets,
        wake: Arc<Notify>,
    ) -> Processor {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ebond/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let worker = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "ebond".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Processor {
            tokens: TokenCache::new(Duration::from_millis(settings.request_timeout_ms)),
            health: Health::new(settings.breaker_threshold, Duration::from_millis(settings.breaker_cooldown_ms)),
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            db,
            registry,
            settings,
            worker,
            http,
            metrics,
            alerts,
            secrets,
            wake,
            claims: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// Delivers until `shutdown` turns true, then waits (bounded) for deliveries in flight.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.worker, concurrency = self.settings.concurrency, "outbox processor started");
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        let mut housekeeping = tokio::time::interval(Duration::from_secs(self.settings.alert_interval_secs.max(1)));
        let mut retention = tokio::time::interval(Duration::from_secs(self.settings.retention_interval_secs.max(1)));
        // After a delivery finished (a wake), claim only once a batch's worth of slots is free;
        // after a poll interval, claim whatever is free (a slow partner holding most slots
        // must not leave the rest idle).
        let mut woken = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let min_free = if woken { (self.settings.concurrency / 4).max(1) } else { 1 };
            woken = false;
            let claimed = match self.tick(min_free).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "outbox claim failed");
                    0
                }
            };
            if claimed > 0 {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => woken = true,
                _ = tokio::time::sleep(poll) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break; // the owner is gone
                    }
                }
                _ = housekeeping.tick() => {
                    if let Err(e) = self.alerts.evaluate(&self.db, &self.registry, self.settings.alert_min_attempts).await {
                        tracing::error!(error = %e, "alert evaluation failed");
                    }
                }
                _ = retention.tick() => {
                    if let Err(e) = crate::ops::retention::purge(&self.db, self.settings.retention_days).await {
                        tracing::error!(error = %e, "retention purge failed");
                    }
                }
            }
        }
        let all = self.settings.concurrency.max(1) as u32;
        let drained = tokio::time::timeout(Duration::from_secs(10), self.slots.acquire_many(all)).await;
        tracing::info!(drained = drained.is_ok(), "outbox processor stopped");
    }

    /// One claim round: leases as many due rows as there are free slots and starts them, when
    /// at least `min_free` slots are free (under load, claims come in batches rather than one
    /// transaction per finished delivery).
    async fn tick(self: &Arc<Self>, min_free: usize) -> Result<usize, StoreError> {
        let free = self.slots.available_permits();
        if free == 0 || free < min_free {
            return Ok(0);
        }
        let limits: HashMap<String, u32> = self
            .registry
            .partners()
            .filter_map(|c| c.outbound.as_ref().map(|o| (c.id.clone(), o.rate_limit_per_minute)))
            .collect();
        let mut exclude = self.db.read(|c| c.paused_partners().map_err(StoreError::from)).await?;
        exclude.extend(self.health.blocked(&limits));
        let now = crate::util::now_ms();
        let lease_until = now + (self.settings.lease_secs as i64) * 1000;
        // A fresh lease token per claim: a task whose lease expired (and was re-claimed, even
        // by this process) can no longer settle the row.
        let claim = format!("{}#{}", self.worker, self.claims.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let owner = claim.clone();
        let rows = self
            .db
            .write(move |c| c.claim_due(now, lease_until, &owner, &exclude, free as i64).map_err(StoreError::from))
            .await?;
        let n = rows.len();
        for row in rows {
            let per_minute = limits.get(&row.partner).copied().unwrap_or(60);
            let permit = match self.slots.clone().try_acquire_owned() {
                Ok(p) if self.health.admit(&row.partner, per_minute) => p,
                _ => {
                    // Not now (no slot, rate limit, or breaker): back to the queue untouched.
                    let (id, owner) = (row.id, claim.clone());
                    let released = self.db.write(move |c| c.release(id, &owner).map_err(StoreError::from)).await;
                    if let Err(e) = released {
                        // Its lease expires and it is claimed again: late, never lost.
                        tracing::error!(error = %e, outbox_id = id, "could not release a claimed row");
                    }
                    continue;
                }
            };
            let this = self.clone();
            let claim = claim.clone();
            let span = tracing::info_span!("delivery", partner = %row.partner, delivery_id = %row.delivery_id, event = %row.event, ticket = tracing::field::Empty);
            tokio::spawn(
                async move {
                    this.deliver(row, per_minute, claim).await;
                    drop(permit);
                    this.wake.notify_one();
                }
                .instrument(span),
            );
        }
        Ok(n)
    }

    async fn deliver(&self, row: OutboxRow, per_minute: u32, claim: String) {
        let started_at = crate::util::now_ms();
        let clock = Instant::now();
        // Parsed once: the attempt maps it, logs and alerts name its ticket.
        let payload = serde_json::from_str::<OutboxPayload>(&row.payload).map_err(|e| e.to_string());
        let ticket = payload.as_ref().ok().map(|p| p.ticket.number.clone());
        if let Some(n) = &ticket {
            tracing::Span::current().record("ticket", n.as_str());
        }
        let attempt = self.attempt(&row, payload).await;
        let duration = clock.elapsed();
        let attempts_done = row.attempts as usize + 1;
        let now = crate::util::now_ms();
        let (status, next_at, outcome) = match &attempt.verdict {
            Verdict::Delivered => (OutboxStatus::Delivered, now, if attempt.skipped { "skipped" } else { "delivered" }),
            Verdict::Permanent { .. } => (OutboxStatus::Dead, now, "dead"),
            Verdict::Retry { retry_after, .. } => {
                let schedule = self
                    .registry
                    .get(&row.partner)
                    .and_then(|c| c.outbound.as_ref())
                    .map(|o| o.retry_schedule.clone())
                    .unwrap_or_default();
                let max = Duration::from_secs(self.settings.retry_after_max_secs);
                match retry::next_delay(&schedule, attempts_done, *retry_after, max) {
                    Some(d) => (OutboxStatus::Pending, now + d.as_millis() as i64, "retry"),
                    None => (OutboxStatus::Dead, now, "dead"),
                }
            }
        };
        let class = match &attempt.verdict {
            Verdict::Delivered => None,
            Verdict::Retry { class, .. } | Verdict::Permanent { class } => Some(class.to_string()),
        };
        let settle = Settle {
            status,
            next_attempt_at: next_at,
            last_status: attempt.http_status.map(i32::from),
            last_response: attempt.excerpt.clone(),
            last_error: attempt.error.clone(),
            now,
        };
        let record = AttemptRow {
            id: 0,
            outbox_id: row.id,
            partner: row.partner.clone(),
            attempt: attempts_done as i32,
            started_at,
            duration_ms: duration.as_millis() as i64,
            http_status: attempt.http_status.map(i32::from),
            outcome: outcome.to_string(),
            error_class: class.clone(),
            response_excerpt: attempt.excerpt.clone(),
            worker: self.worker.clone(),
        };
        let result = self.settle(&row, &claim, settle, record, attempt.created_id.clone()).await;
        if let Err(e) = result {
            // The lease expires and another attempt follows: at-least-once, nothing lost.
            tracing::error!(error = %e, "could not record the delivery attempt");
            self.health.cancel(&row.partner, per_minute);
            return;
        }
        let success = !matches!(attempt.verdict, Verdict::Retry { .. });
        let breaker = self.health.record(&row.partner, per_minute, success);
        self.metrics.deliveries.with_label_values(&[&row.partner, outcome]).inc();
        self.metrics.delivery_latency.with_label_values(&[&row.partner]).observe(duration.as_secs_f64());
        match status {
            OutboxStatus::Delivered => {
                tracing::info!(attempt = attempts_done, status = ?attempt.http_status, ms = duration.as_millis() as u64, "delivered")
            }
            OutboxStatus::Pending => tracing::warn!(
                attempt = attempts_done,
                status = ?attempt.http_status,
                class = ?class,
                error = ?attempt.error,
                retry_in_ms = next_at - now,
                breaker = ?breaker,
                "delivery failed; will retry"
            ),
            _ => {
                tracing::error!(attempt = attempts_done, status = ?attempt.http_status, class = ?class, error = ?attempt.error, "delivery dead-lettered");
                self.alerts.notify(
                    "delivery.dead_lettered",
                    json!({
                        "partner": row.partner,
                        "outbox_id": row.id,
                        "delivery_id": row.delivery_id,
                        "event": row.event,
                        "ticket": ticket,
                        "last_status": attempt.http_status,
                        "error_class": class,
                    }),
                );
            }
        }
    }

    async fn settle(
        &self,
        row: &OutboxRow,
        claim: &str,
        settle: Settle,
        record: AttemptRow,
        created_id: Option<String>,
    ) -> Result<(), StoreError> {
        let (row2, owner) = (row.clone(), claim.to_string());
        let (s2, r2, id2) = (settle.clone(), record.clone(), created_id.clone());
        let first = self
            .db
            .write(move |c| {
                let held = c.settle(&row2, &owner, &s2, &r2)?;
                if let (true, Some(pid)) = (held, &id2) {
                    if let Some(x) = c.xref_for(&row2.partner, row2.ticket_id)? {
                        // Never overwrites an id bonded meanwhile (e.g. by the partner itself).
                        c.bond_partner_ticket_id(x.id, pid, s2.now)?;
                    }
                }
                if !held {
                    tracing::warn!("lease lost to another worker before the attempt was recorded");
                }
                Ok::<_, StoreError>(())
            })
            .await;
        match first {
            Err(StoreError::Conflict(_)) => {
                // The partner answered a create with an id already bonded to another ticket.
                let (row3, owner) = (row.clone(), claim.to_string());
                let dead = Settle {
                    status: OutboxStatus::Dead,
                    last_error: Some(format!(
                        "create returned id {:?}, already bonded to another ticket",
                        created_id.unwrap_or_default()
                    )),
                    ..settle
                };
                let rec =
                    AttemptRow { outcome: "dead".into(), error_class: Some("duplicate_partner_id".into()), ..record };
                self.db.write(move |c| c.settle(&row3, &owner, &dead, &rec).map(|_| ()).map_err(StoreError::from)).await
            }
            other => other,
        }
    }

    /// Makes one HTTP attempt for `row`.
    async fn attempt(&self, row: &OutboxRow, payload: Result<OutboxPayload, String>) -> Attempt {
        let Some(contract) = self.registry.get(&row.partner).cloned() else {
            return Attempt::failed(
                Verdict::Permanent { class: "unknown_partner" },
                "no contract loaded for this partner",
            );
        };
        let Some(outbound) = contract.outbound.as_ref() else {
            return Attempt::failed(
                Verdict::Permanent { class: "no_outbound" },
                "the contract has no [outbound] section",
            );
        };
        let payload = match payload {
            Ok(v) => v,
            Err(e) => return Attempt::failed(Verdict::Permanent { class: "bad_payload" }, e),
        };
        let (partner, ticket_id) = (row.partner.clone(), row.ticket_id);
        let pid = match self.db.read(move |c| c.xref_for(&partner, ticket_id).map_err(StoreError::from)).await {
            Ok(x) => x.and_then(|x| x.partner_ticket_id),
            Err(e) => return Attempt::failed(Verdict::Retry { class: "database", retry_after: None }, e.to_string()),
        };
        if row.event == "recalled" && pid.is_none() {
            return Attempt {
                skipped: true,
                ..Attempt::failed(Verdict::Delivered, "never bonded at the partner: nothing to recall")
            };
        }
        let req = match request::build(&contract, outbound, &payload, pid.as_deref()) {
            Ok(r) => r,
            Err(e) => return Attempt::failed(Verdict::Permanent { class: "no_endpoint" }, e.to_string()),
        };
        let mut refreshed = false;
        loop {
            match self.send(&contract, row, &req).await {
                Ok((status, retry_after, body)) => {
                    let oauth = matches!(outbound.auth, OutboundAuth::OAuth2ClientCredentials { .. });
                    if status == 401 && oauth && !refreshed {
                        // The partner may have revoked our token early: fetch a new one, once.
                        self.tokens.invalidate(&row.partner).await;
                        refreshed = true;
                        continue;
                    }
                    let mut verdict = retry::classify(status, retry_after);
                    let excerpt = Some(excerpt(&body, self.settings.response_excerpt_bytes));
                    let mut created_id = None;
                    let mut error = None;
                    if verdict == Verdict::Delivered && req.creates {
                        created_id = request::created_id(outbound, &body);
                        if created_id.is_none() {
                            verdict = Verdict::Permanent { class: "create_without_id" };
                            error = Some(
                                "the create response has no partner ticket id at the contract's id_pointer".into(),
                            );
                        }
                    }
                    return Attempt { verdict, http_status: Some(status), excerpt, error, created_id, skipped: false };
                }
                Err(a) => return a,
            }
        }
    }

    /// Sends the request with auth, signature and ebond headers; reads a bounded answer.
    async fn send(
        &self,
        contract: &Contract,
        row: &OutboxRow,
        req: &request::PartnerRequest,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Attempt> {
        let Some(outbound) = contract.outbound.as_ref() else {
            return Err(Attempt::failed(Verdict::Permanent { class: "no_outbound" }, "no [outbound]"));
        };
        let ts = chrono::Utc::now().timestamp();
        let mut builder = self
            .http
            .request(req.method.clone(), &req.url)
            .header("content-type", "application/json")
            .header("webhook-id", &row.delivery_id)
            .header("webhook-timestamp", ts.to_string())
            .header("x-ebond-event", &row.event)
            .header("x-ebond-delivery", &row.delivery_id);
        if !req.ticket.is_empty() {
            builder = builder.header("x-ebond-ticket", req.ticket.as_str());
        }
        for (k, v) in &outbound.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(secret_ref) = &outbound.signing_secret {
            let signed =
                self.secrets.resolve(&row.partner, secret_ref).await.map_err(|e| e.to_string()).and_then(|s| {
                    signing::sign(s.expose(), &row.delivery_id, ts, &req.body).map_err(|e| e.to_string())
                });
            match signed {
                Ok(sig) => builder = builder.header("webhook-signature", sig),
                Err(e) => {
                    return Err(Attempt::failed(Verdict::Retry { class: "signing_config", retry_after: None }, e))
                }
            }
        }
        let builder = match self.tokens.authorize(&self.secrets, &row.partner, &outbound.auth, builder).await {
            Ok(b) => b,
            Err(e) => return Err(Attempt::failed(Verdict::Retry { class: "auth", retry_after: None }, e.to_string())),
        };
        let response = match builder.body(req.body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                let class = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                return Err(Attempt::failed(Verdict::Retry { class, retry_after: None }, e.to_string()));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now()));
        let body = match read_bounded(response, 64 * 1024).await {
            Ok(b) => b,
            Err(e) => {
                let class = if e.is_timeout() { "timeout" } else { "transport" };
                return Err(Attempt::failed(Verdict::Retry { class, retry_after: None }, e.to_string()));
            }
        };
        Ok((status, retry_after, body))
    }
}

/// Reads at most `limit` bytes of a response body (the rest is dropped).
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn excerpt(body: &[u8], limit: usize) -> String {
    let cut = &body[..body.len().min(limit)];
    String::from_utf8_lossy(cut).into_owned()
}
