//! One delivery, start to end: parse the payload once, make the attempt, decide (delivered,
//! retry when, or dead letter), settle the claim with its attempt row in one write, then tell
//! the breaker, the metrics and — for a dead letter — the alerts.

use super::*;

impl Processor {
    /// `pid` is the partner's own id for the ticket, as the claim read it.
    pub(super) async fn deliver(&self, row: OutboxRow, pid: Option<String>, per_minute: u32, claim: String) {
        let started_at = crate::util::now_ms();
        let clock = Instant::now();
        // Parsed once: the attempt maps it, logs and alerts name its ticket.
        let payload = serde_json::from_str::<OutboxPayload>(&row.payload).map_err(|e| e.to_string());
        let ticket = payload.as_ref().ok().map(|p| p.ticket.number.clone());
        let version = payload.as_ref().ok().map(|p| p.ticket.version);
        if let Some(n) = &ticket {
            tracing::Span::current().record("ticket", n.as_str());
        }
        let attempt = self.attempt(&row, pid, payload).await;
        let duration = clock.elapsed();
        let attempts_done = row.attempts as usize + 1;
        let now = crate::util::now_ms();
        let (status, next_at, outcome) = match &attempt.verdict {
            Verdict::Delivered => (OutboxStatus::Delivered, now, if attempt.skipped { "skipped" } else { "delivered" }),
            Verdict::Permanent { .. } => (OutboxStatus::Dead, now, "dead"),
            Verdict::Retry { retry_after, .. } => {
                let schedule = self
                    .registry()
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
        // A push the partner took means it has seen that version (conflict detection).
        let seen = version.filter(|_| status == OutboxStatus::Delivered && !attempt.skipped);
        let result = self.settle(&row, &claim, settle, record, attempt.created_id.clone(), seen).await;
        if let Err(e) = result {
            // The lease expires and another attempt follows: at-least-once, nothing lost.
            tracing::error!(error = %e, "could not record the delivery attempt");
            self.health.cancel(&row.partner, per_minute);
            return;
        }
        let success = !matches!(attempt.verdict, Verdict::Retry { .. });
        let was = self.health.position(&row.partner, per_minute);
        let breaker = self.health.record(&row.partner, per_minute, success);
        if breaker != was && (breaker == Breaker::Open || was != Breaker::Closed) {
            self.share_breaker(&row.partner, breaker).await;
        }
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

    /// Tells every processor on the database that this partner's breaker opened (none claims
    /// its deliveries until the cool-down ends) or closed again.
    async fn share_breaker(&self, partner: &str, breaker: Breaker) {
        let now = crate::util::now_ms();
        let open_until = (breaker == Breaker::Open)
            .then(|| now + i64::try_from(self.health.cooldown().as_millis()).unwrap_or(i64::MAX / 2));
        let p = partner.to_string();
        let shared = self.db.write(move |c| c.set_breaker(&p, open_until, now).map_err(StoreError::from)).await;
        if let Err(e) = shared {
            // This process still holds its own breaker; the others learn at the next change.
            tracing::warn!(error = %e, "could not share the breaker position");
        }
    }

    async fn settle(
        &self,
        row: &OutboxRow,
        claim: &str,
        settle: Settle,
        record: AttemptRow,
        created_id: Option<String>,
        seen: Option<i64>,
    ) -> Result<(), StoreError> {
        if created_id.is_none() {
            // The common case joins the next batch of settles (see `settles`).
            let (done, answer) = tokio::sync::oneshot::channel();
            let work = super::settles::Work { row: row.clone(), owner: claim.to_string(), settle, record, seen };
            let job = super::settles::SettleJob { work, done };
            let gone = || StoreError::Unavailable("the settle writer has stopped".into());
            self.settler.send(job).map_err(|_| gone())?;
            if !answer.await.map_err(|_| gone())?? {
                tracing::warn!("lease lost to another worker before the attempt was recorded");
            }
            return Ok(());
        }
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
                if let (true, Some(version)) = (held, seen) {
                    c.mark_seen_by(&row2.partner, row2.ticket_id, version)?;
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
}
