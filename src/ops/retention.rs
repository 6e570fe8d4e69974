//! Retention: delivered outbox rows and their attempts are purged after a configurable age.
//! Dead letters stay until replayed or purged on purpose. Expired console sessions go too.

use crate::store::{Db, StoreError};

/// Rows deleted per transaction: a large purge never holds the database (on SQLite, the
/// writer every request waits for) for long.
const PURGE_CHUNK: i64 = 1000;

/// Deletes delivered rows older than `days`; returns how many.
pub async fn purge(db: &Db, days: u64) -> Result<usize, StoreError> {
    let before = crate::util::now_ms() - (days as i64) * 86_400_000;
    let mut n = 0;
    loop {
        let chunk = db.write(move |c| c.purge_delivered(before, PURGE_CHUNK).map_err(StoreError::from)).await?;
        n += chunk;
        if (chunk as i64) < PURGE_CHUNK {
            break;
        }
    }
    if n > 0 {
        tracing::info!(rows = n, days, "retention: purged delivered outbox rows");
    }
    // Signed events older than a day can no longer be replayed (their timestamps are stale).
    let day_ago = crate::util::now_ms() - 86_400_000;
    db.write(move |c| c.forget_webhooks_before(day_ago).map_err(StoreError::from)).await?;
    // Console sessions past their absolute limit open nothing; kept a day for the curious.
    db.write(move |c| c.purge_sessions(day_ago).map_err(StoreError::from)).await?;
    Ok(n)
}
