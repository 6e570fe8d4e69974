//! The processor's loop: wake on a commit that fanned out or on the poll interval, claim due
//! rows in batches up to the free delivery slots (skipping paused partners and those whose
//! breaker or rate limit holds them back), and run each delivery in its own task.

use super::*;

impl Processor {
    /// Delivers until `shutdown` turns true, then waits (bounded) for deliveries in flight.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.worker, concurrency = self.settings.concurrency, "outbox processor started");
        let jobs = self.settle_jobs.lock().ok().and_then(|mut j| j.take());
        if let Some(jobs) = jobs {
            tokio::spawn(super::settles::run(self.db.clone(), jobs));
        }
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
                    if let Err(e) = self.alerts.evaluate(&self.db, &self.registry(), self.settings.alert_min_attempts).await {
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
            .registry()
            .partners()
            .filter_map(|c| c.outbound.as_ref().map(|o| (c.id.to_string(), o.rate_limit_per_minute)))
            .collect();
        // Paused partners, and those whose breaker another processor (or this one) opened.
        let held_at = crate::util::now_ms();
        let mut exclude = self.db.read(move |c| c.held_partners(held_at).map_err(StoreError::from)).await?;
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
        for Claimed { outbox: row, partner_ticket_id } in rows {
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
                    this.deliver(row, partner_ticket_id, per_minute, claim).await;
                    drop(permit);
                    this.wake.notify_one();
                }
                .instrument(span),
            );
        }
        Ok(n)
    }
}
