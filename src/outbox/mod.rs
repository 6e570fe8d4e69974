//! The outbox processor: claims due rows under a lease (oldest first per partner and ticket),
//! maps them to each partner's vocabulary, calls the partner with its auth and a Standard
//! Webhooks signature, and records every attempt; retries on the contract's schedule, dead
//! letters what cannot be delivered, and keeps per-partner breakers and rate limits.
//!
//! Runs inside `ebond serve` by default, or alone as `ebond worker`. On PostgreSQL several
//! processes share the queue (`FOR UPDATE SKIP LOCKED` plus leases); on SQLite one process
//! delivers.
//!
//! ```text
//!   sync::fanout ──(same transaction as the write)──▶ outbox rows: pending
//!        │ wake (Notify)                                   │
//!        ▼                                                 │ claim_due: oldest open row per
//!   claims.rs  run ─▶ tick ── poll interval ──────────────▶│ (partner, ticket), lease_until,
//!        │              │  skips: paused partners,         │ status in_flight
//!        │              │  breaker open / rate limited     │ (health.rs: PartnerHealth)
//!        │              ▼                                  │
//!        │       one task per row (semaphore = concurrency)
//!        ▼
//!   deliver.rs  deliver ─▶ attempt.rs  attempt ─▶ request.rs (payload → partner's body)
//!        │                     │                  partner_auth.rs (OAuth2 / Basic / API key)
//!        │                     │                  crate::webhooks (signature)
//!        │                     └─▶ HTTP ─▶ retry.rs verdict: delivered | retry at | dead
//!        ▼
//!   settle: row → delivered / pending (next_attempt_at) / dead, plus one attempt row, in one
//!   write; a lease that expired meanwhile is another worker's (the attempt is still kept)
//! ```
pub mod admin;
mod attempt;
mod claims;
mod deliver;
pub mod health;
pub mod partner_auth;
pub mod request;
pub mod retry;
mod settles;

use crate::config::OutboxSettings;
use crate::contract::{Contract, OutboundAuth, Registry};
use crate::domain::payload::OutboxPayload;
use crate::ops::alerts::Alerts;
use crate::ops::metrics::Metrics;
use crate::store::models::{AttemptRow, OutboxRow};
use crate::store::outbox::{Claimed, OutboxStatus, Settle};
use crate::store::{Db, StoreError};
use health::{Breaker, PartnerHealth};
use partner_auth::TokenCache;
use retry::Verdict;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument;

pub struct Processor {
    db: Db,
    contracts: Arc<crate::contract::live::Live>,
    settings: OutboxSettings,
    worker: String,
    http: reqwest::Client,
    tokens: TokenCache,
    health: PartnerHealth,
    metrics: Metrics,
    alerts: Arc<Alerts>,
    secrets: crate::secrets::Secrets,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    claims: std::sync::atomic::AtomicU64,
    /// Where deliveries hand their settles (written in batches: see `settles`).
    settler: settles::Settler,
    /// The batch writer's end, taken when the processor starts.
    settle_jobs: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<settles::SettleJob>>>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("worker", &self.worker).finish_non_exhaustive()
    }
}

impl Processor {
    /// The contracts in force now: one snapshot per unit of work.
    pub fn registry(&self) -> Arc<Registry> {
        self.contracts.current()
    }

    pub fn new(
        db: Db,
        contracts: Arc<crate::contract::live::Live>,
        settings: OutboxSettings,
        metrics: Metrics,
        alerts: Arc<Alerts>,
        secrets: crate::secrets::Secrets,
        wake: Arc<Notify>,
    ) -> Result<Processor, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ebond/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let worker = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "ebond".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (settler, settle_jobs) = settles::channel();
        Ok(Processor {
            settler,
            settle_jobs: std::sync::Mutex::new(Some(settle_jobs)),
            tokens: TokenCache::new(Duration::from_millis(settings.request_timeout_ms))?,
            health: PartnerHealth::new(settings.breaker_threshold, Duration::from_millis(settings.breaker_cooldown_ms)),
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            db,
            contracts,
            settings,
            worker,
            http,
            metrics,
            alerts,
            secrets,
            wake,
            claims: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn worker_id(&self) -> &str {
        &self.worker
    }
}
