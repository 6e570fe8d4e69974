//! The scheduler inside `serve` and `worker`: starts each `[pull]` partner's pull when its
//! contract's interval has passed since the job's last run, and reconciliation on the settings'
//! interval. The job's row in the database says when it last ran, so several processes keep
//! one schedule (and the lease keeps one run at a time).

use super::reconcile::ReconcileOptions;
use super::{Engine, PullError};
use crate::store::StoreError;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Runs until `stop` turns true.
pub async fn run(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let tick = Duration::from_millis(engine.settings.tick_ms.max(50));
    loop {
        for (job, partner, every) in due_candidates(&engine) {
            let key = format!("{job}:{partner}");
            if busy.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
                continue;
            }
            match is_due(&engine, &key, every).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(job = %key, error = %e, "scheduler: cannot read the job");
                    continue;
                }
            }
            busy.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone());
            let (engine, busy) = (engine.clone(), busy.clone());
            tokio::spawn(async move {
                let result = match job {
                    "pull" => engine.pull(&partner, "schedule", |_| {}).await.map(|_| ()),
                    _ => {
                        let options = ReconcileOptions {
                            scope: engine.settings.reconcile_scope,
                            dry_run: false,
                            started_by: "schedule".into(),
                        };
                        engine.reconcile(&partner, &options, |_| {}).await.map(|_| ())
                    }
                };
                match result {
                    Ok(()) | Err(PullError::Running { .. }) => {}
                    Err(e) => tracing::warn!(job = %key, error = %e, "scheduled run could not start"),
                }
                busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Every scheduled job: `(job, partner, interval)`.
fn due_candidates(engine: &Engine) -> Vec<(&'static str, String, Duration)> {
    let mut out = Vec::new();
    for c in engine.registry().partners() {
        if let Some(p) = &c.pull {
            out.push(("pull", c.id.to_string(), p.interval));
        }
        let reads = c.outbound.as_ref().is_some_and(|o| o.read_url.is_some());
        if reads && engine.settings.reconcile_interval_secs > 0 {
            out.push(("reconcile", c.id.to_string(), Duration::from_secs(engine.settings.reconcile_interval_secs)));
        }
    }
    out
}

/// Has `every` passed since the job last ended (and is nobody running it)?
async fn is_due(engine: &Engine, key: &str, every: Duration) -> Result<bool, StoreError> {
    let k = key.to_string();
    let job = engine.db.read(move |c| c.sync_job(&k).map_err(StoreError::from)).await?;
    let now = crate::util::now_ms();
    Ok(match job {
        None => true,
        Some(j) => j.lease_until < now && j.updated_at + every.as_millis() as i64 <= now,
    })
}
