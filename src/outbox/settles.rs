//! Settles in batches: deliveries that finish while a settle is being written join the next
//! one, so many deliveries cost one transaction (one commit, one WAL flush) instead of one
//! each. A batch that fails as a whole is settled again one delivery at a time, so one bad
//! row never holds back the others.

use super::*;
use crate::store::Repos;
use tokio::sync::{mpsc, oneshot};

/// Most settles written in one transaction.
const MAX_BATCH: usize = 256;

/// One delivery's settle, waiting for its batch.
pub(super) struct SettleJob {
    pub row: OutboxRow,
    pub owner: String,
    pub settle: Settle,
    pub record: AttemptRow,
    /// The version the partner has now seen (a delivered push).
    pub seen: Option<i64>,
    /// Whether the lease was still this delivery's (false: another worker re-claimed it).
    pub done: oneshot::Sender<Result<bool, StoreError>>,
}

/// Where deliveries hand their settles; the batches are written by [`run`].
pub(super) type Settler = mpsc::UnboundedSender<SettleJob>;

pub(super) fn channel() -> (Settler, mpsc::UnboundedReceiver<SettleJob>) {
    mpsc::unbounded_channel()
}

/// Writes the settles handed in, in batches, until every sender is gone.
pub(super) async fn run(db: Db, mut jobs: mpsc::UnboundedReceiver<SettleJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let work: Vec<Work> = batch.iter().map(Work::of).collect();
        let retry = (batch.len() > 1).then(|| work.clone());
        let written = db.write(move |c| work.iter().map(|w| w.apply(c)).collect::<Result<Vec<bool>, _>>()).await;
        match (written, retry) {
            (Ok(held), _) => {
                for (job, held) in batch.into_iter().zip(held) {
                    let _ = job.done.send(Ok(held));
                }
            }
            (Err(e), None) => {
                if let Some(job) = batch.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
            (Err(e), Some(work)) => {
                tracing::warn!(error = %e, settles = batch.len(), "a batch of settles failed; settling them one by one");
                for (job, w) in batch.into_iter().zip(work) {
                    let _ = job.done.send(db.write(move |c| w.apply(c)).await);
                }
            }
        }
    }
}

/// What a batch writes for one delivery.
#[derive(Clone)]
struct Work {
    row: OutboxRow,
    owner: String,
    settle: Settle,
    record: AttemptRow,
    seen: Option<i64>,
}

impl Work {
    fn of(job: &SettleJob) -> Work {
        Work {
            row: job.row.clone(),
            owner: job.owner.clone(),
            settle: job.settle.clone(),
            record: job.record.clone(),
            seen: job.seen,
        }
    }

    fn apply(&self, c: &mut dyn Repos) -> Result<bool, StoreError> {
        let held = c.settle(&self.row, &self.owner, &self.settle, &self.record)?;
        if let (true, Some(version)) = (held, self.seen) {
            c.mark_seen_by(&self.row.partner, self.row.ticket_id, version)?;
        }
        Ok(held)
    }
}
