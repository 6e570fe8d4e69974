//! Reading partners' systems: scheduled pull sync (list what changed since the watermark, map,
//! validate, apply each record as the partner's write) and reconciliation (read each shared
//! ticket's partner copy, compare every field, classify the drift, heal it within a cap).
//!
//! ```text
//!   schedule.rs (serve / worker) ─┐   admin API / CLI ─┐
//!                                 ▼                    ▼
//!                       Engine::pull / Engine::reconcile ── lease per job and partner
//!                                 │                         (store::sync, across processes)
//!        reader.rs: GET with the contract's auth, rate limit, Retry-After, retry schedule
//!                                 │
//!   run.rs: page → records → Contract::map_record → sync::write::apply (from_record) → counts
//!   reconcile.rs: partner copy → Contract::read_record → compare.rs classify → heal:
//!                 hub ahead → sync::converge (outbox push) · partner ahead → its write
//! ```

pub mod compare;
pub mod reader;
pub mod reconcile;
pub mod run;
pub mod schedule;

use crate::config::SyncSettings;
use crate::contract::Registry;
use crate::ops::alerts::Alerts;
use crate::store::{Db, StoreError};
use crate::sync::SyncError;
use reader::Reader;
use std::sync::Arc;
use tokio::sync::Notify;

/// Why a run could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("no partner `{0}`")]
    UnknownPartner(String),
    #[error("the contract of `{0}` has no [pull] section: its system cannot be listed")]
    NoPull(String),
    #[error("the contract of `{0}` has no [outbound] read_url: its tickets cannot be read one by one")]
    NoReader(String),
    #[error("a {job} run of `{partner}` is already going on (run {run:?})")]
    Running { job: &'static str, partner: String, run: Option<i64> },
    #[error("no {kind} run {id}")]
    RunNotFound { kind: &'static str, id: i64 },
    /// The partner's system failed (after the retries the contract allows).
    #[error("partner: {0}")]
    Partner(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SyncError> for PullError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(s) => PullError::Store(s),
            other => PullError::Partner(other.to_string()),
        }
    }
}

/// Who started a run: `schedule`, `api:<operator>` or `cli:<user>`.
pub type StartedBy = String;

/// A run as stored, with its counts (the JSON of [`run::PullCounts`] or
/// [`reconcile::ReconcileCounts`]).
pub use crate::store::models::SyncRunRow as RunRow;

/// What pull sync and reconciliation share: the database, contracts, the partners' HTTP reads
/// and the process's identity for leases.
pub struct Engine {
    pub db: Db,
    pub contracts: Arc<crate::contract::live::Live>,
    pub settings: SyncSettings,
    pub reader: Reader,
    pub alerts: Arc<Alerts>,
    /// Wakes the outbox processor after a heal queued pushes.
    pub wake: Arc<Notify>,
    /// This process, as a lease owner.
    pub owner: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("owner", &self.owner).finish_non_exhaustive()
    }
}

/// Reconciliation's reach (declared with the settings, which choose it for scheduled runs).
pub use crate::config::ReconcileScope as Scope;

/// A job (`pull:servicenow`) and the run holding its lease.
#[derive(Debug, Clone)]
pub(crate) struct JobKey {
    pub(crate) job: String,
    pub(crate) holder: String,
}

/// A held job lease, renewed in the background until dropped.
struct Lease {
    lost: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Lease {
    fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Engine {
    /// The contracts in force now: one snapshot per unit of work.
    pub fn registry(&self) -> Arc<Registry> {
        self.contracts.current()
    }

    pub fn new(
        db: Db,
        contracts: Arc<crate::contract::live::Live>,
        settings: &crate::config::Settings,
        secrets: crate::secrets::Secrets,
        alerts: Arc<Alerts>,
        wake: Arc<Notify>,
    ) -> Result<Engine, reqwest::Error> {
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "ebond".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(Engine {
            reader: Reader::new(secrets, &settings.outbox)?,
            db,
            contracts,
            settings: settings.sync.clone(),
            alerts,
            wake,
            owner,
        })
    }

    /// Partners whose contract has a `read_url`: what reconciliation reaches when no partner is
    /// named.
    pub fn readable_partners(&self) -> Vec<String> {
        self.registry()
            .partners()
            .filter(|c| c.outbound.as_ref().is_some_and(|o| o.read_url.is_some()))
            .map(|c| c.id.to_string())
            .collect()
    }

    fn lease_ms(&self) -> i64 {
        (self.settings.lease_secs.max(1) * 1000) as i64
    }

    /// Takes the job's lease, or says which run holds it.
    async fn acquire(&self, job: &'static str, partner: &str) -> Result<JobKey, PullError> {
        // The holder names this run, not only this process: a run that lost its lease cannot
        // renew or release the lease of the run that took it over.
        let key = JobKey {
            job: format!("{job}:{partner}"),
            holder: format!("{}/{}", self.owner, &uuid::Uuid::new_v4().simple().to_string()[..8]),
        };
        let (k, p, owner, until) = (key.job.clone(), partner.to_string(), key.holder.clone(), self.lease_ms());
        let taken = self
            .db
            .write(move |c| {
                let now = crate::util::now_ms();
                c.acquire_job(&k, &p, &owner, now, now + until).map_err(StoreError::from)
            })
            .await?;
        if taken {
            return Ok(key);
        }
        let kind = job.to_string();
        let p = partner.to_string();
        let run = self
            .db
            .read(move |c| {
                let runs = c.list_runs(&kind, Some(&p), None, 1)?;
                Ok::<_, StoreError>(runs.into_iter().find(|r| r.status == "running").map(|r| r.id))
            })
            .await?;
        Err(PullError::Running { job, partner: partner.to_string(), run })
    }

    /// Keeps the job's lease renewed while the run goes on (a third of its length apart, so a
    /// page retried for minutes keeps it too); the run stops once [`Lease::lost`] says another
    /// process took it over.
    fn keep(&self, key: &JobKey) -> Lease {
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (db, k, owner, length, flag) =
            (self.db.clone(), key.job.clone(), key.holder.clone(), self.lease_ms(), lost.clone());
        let task = tokio::spawn(async move {
            let every = std::time::Duration::from_millis((length / 3).max(100) as u64);
            loop {
                tokio::time::sleep(every).await;
                let (k2, o2) = (k.clone(), owner.clone());
                match db
                    .write(move |c| c.renew_job(&k2, &o2, crate::util::now_ms() + length).map_err(StoreError::from))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                    // Tried again at the next beat; the lease is long enough for a few misses.
                    Err(e) => tracing::warn!(job = %k, error = %e, "could not renew the sync lease"),
                }
            }
        });
        Lease { lost, task }
    }

    async fn release(&self, key: &JobKey, run: i64, watermark: Option<i64>) {
        let (k, owner) = (key.job.clone(), key.holder.clone());
        let done = self
            .db
            .write(move |c| c.release_job(&k, &owner, run, watermark, crate::util::now_ms()).map_err(StoreError::from))
            .await;
        if let Err(e) = done {
            // The lease runs out by itself; the next run starts from the previous watermark.
            tracing::warn!(job = %key.job, error = %e, "could not release the sync lease");
        }
    }
}
