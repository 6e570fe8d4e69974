//! Settles in batches: deliveries that finish while a settle is being written join the next
//! one, so many deliveries cost one transaction (one commit, one WAL flush) and three
//! statements instead of a transaction and three statements each. A batch that fails as a
//! whole is settled again one delivery at a time, so one bad row never holds back the others.

use super::*;
use crate::store::outbox::SettleOf;
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
        let written = db.write(move |c| apply(c, &w2)).await;
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
                    let one = db.write(move |c| apply(c, &w[i..=i])).await;
                    let _ = done.send(one.map(|held| held.first().copied().unwrap_or(false)));
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

/// Writes a batch's settles (three statements however many; see `settle_many`).
fn apply(c: &mut dyn Repos, work: &[Work]) -> Result<Vec<bool>, StoreError> {
    let batch: Vec<SettleOf<'_>> = work
        .iter()
        .map(|w| SettleOf { row: &w.row, owner: &w.owner, settle: &w.settle, attempt: &w.record, seen: w.seen })
        .collect();
    Ok(c.settle_many(&batch)?)
}
