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
    pub work: Work,
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
        let (work, done): (Vec<Work>, Vec<_>) = batch.into_iter().map(|j| (j.work, j.done)).unzip();
        // Shared with the transaction, so a failed batch can be settled again one by one.
        let work = Arc::new(work);
        let w2 = work.clone();
        let written = db.write(move |c| w2.iter().map(|w| w.apply(c)).collect::<Result<Vec<bool>, _>>()).await;
        match written {
            Ok(held) => {
                for (done, held) in done.into_iter().zip(held) {
                    let _ = done.send(Ok(held));
                }
            }
            Err(e) if done.len() == 1 => {
                let _ = done.into_iter().next().map(|d| d.send(Err(e)));
            }
            Err(e) => {
                tracing::warn!(error = %e, settles = done.len(), "a batch of settles failed; settling them one by one");
                for (i, done) in done.into_iter().enumerate() {
                    let w = work.clone();
                    let _ = done.send(db.write(move |c| w[i].apply(c)).await);
                }
            }
        }
    }
}

/// What a batch writes for one delivery.
pub(super) struct Work {
    pub row: OutboxRow,
    pub owner: String,
    pub settle: Settle,
    pub record: AttemptRow,
    /// The version the partner has now seen (a delivered push).
    pub seen: Option<i64>,
}

impl Work {
    fn apply(&self, c: &mut dyn Repos) -> Result<bool, StoreError> {
        let held = c.settle(&self.row, &self.owner, &self.settle, &self.record)?;
        if let (true, Some(version)) = (held, self.seen) {
            c.mark_seen_by(&self.row.partner, self.row.ticket_id, version)?;
        }
        Ok(held)
    }
}
