//! Delivery alerts: a partner whose failed share of attempts over its window passes the
//! contract's threshold raises an alert (an ERROR log with context, a metric, and, when
//! configured, a signed operational webhook); it clears when the rate falls back. Dead letters
//! are announced on the same webhook.

use super::metrics::Metrics;
use crate::config::AlertSettings;
use crate::contract::{Registry, SecretRef};
use crate::store::{Db, StoreError};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The alert rule: enough attempts in the window, and a failed share above the threshold
/// (what the console shows as "alert on" too).
pub fn over_threshold(attempts: i64, failures: i64, threshold: f64, min_attempts: i64) -> bool {
    attempts > 0 && attempts >= min_attempts && failures as f64 / attempts as f64 > threshold
}

pub struct Alerts {
    http: reqwest::Client,
    url: Option<String>,
    secret: Option<SecretRef>,
    failing: Mutex<HashSet<String>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Why the alert sender cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("alerts.webhook_secret: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("the HTTP client for alerts cannot be built: {0}")]
    Http(#[from] reqwest::Error),
}

impl Alerts {
    pub fn new(settings: &AlertSettings, metrics: Metrics) -> Result<Alerts, AlertsError> {
        let secret = settings.webhook_secret.as_deref().map(crate::secrets::parse_ref).transpose()?;
        Ok(Alerts {
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
            url: settings.webhook_url.clone(),
            secret,
            failing: Mutex::new(HashSet::new()),
            metrics,
        })
    }

    /// Sends an operational event to the alert webhook, if one is configured (in the
    /// background, three tries).
    pub fn notify(self: &Arc<Self>, event_type: &'static str, data: Value) {
        let Some(url) = self.url.clone() else { return };
        let this = self.clone();
        tokio::spawn(async move {
            let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            let body = json!({"type": event_type, "timestamp": crate::util::ms_to_rfc3339(crate::util::now_ms()), "data": data});
            let body = body.to_string().into_bytes();
            for attempt in 1..=3u32 {
                let ts = chrono::Utc::now().timestamp();
                let mut req = this
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string());
                if let Some(secret) = &this.secret {
                    match crate::secrets::resolve_local(secret)
                        .map_err(|e| e.to_string())
                        .and_then(|s| crate::webhooks::sign(s.expose(), &id, ts, &body).map_err(|e| e.to_string()))
                    {
                        Ok(sig) => req = req.header("webhook-signature", sig),
                        Err(e) => {
                            tracing::error!(error = %e, "alert webhook: cannot sign; not sent");
                            return;
                        }
                    }
                }
                match req.body(body.clone()).send().await {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => tracing::warn!(status = r.status().as_u16(), attempt, event_type, "alert webhook refused"),
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, event_type, "alert webhook unreachable")
                    }
                }
                tokio::time::sleep(Duration::from_secs(u64::from(attempt) * 2)).await;
            }
        });
    }

    /// Recomputes every partner's failure rate over its window and raises or clears alerts.
    pub async fn evaluate(self: &Arc<Self>, db: &Db, registry: &Registry, min_attempts: i64) -> Result<(), StoreError> {
        let now = crate::util::now_ms();
        for contract in registry.partners() {
            let Some(out) = &contract.outbound else {
                continue;
            };
            let since = now - out.alert_window.as_millis() as i64;
            let partner = contract.id.to_string();
            let counts = db.read(move |c| c.failure_counts(since).map_err(StoreError::from)).await?;
            let (attempts, failures) =
                counts.iter().find(|c| c.partner == partner).map(|c| (c.attempts, c.failures)).unwrap_or((0, 0));
            let rate = if attempts > 0 { failures as f64 / attempts as f64 } else { 0.0 };
            self.metrics.failure_rate.with_label_values(&[&partner]).set(rate);
            let over = over_threshold(attempts, failures, out.alert_threshold, min_attempts);
            let was = {
                let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
                let was = failing.contains(&partner);
                if over {
                    failing.insert(partner.clone());
                } else {
                    failing.remove(&partner);
                }
                was
            };
            self.metrics.alerting.with_label_values(&[&partner]).set(i64::from(over));
            let data = json!({
                "partner": partner,
                "failure_rate": rate,
                "threshold": out.alert_threshold,
                "attempts": attempts,
                "failures": failures,
                "window_secs": out.alert_window.as_secs(),
            });
            if over && !was {
                tracing::error!(
                    partner = %partner,
                    failure_rate = rate,
                    threshold = out.alert_threshold,
                    attempts,
                    failures,
                    window_secs = out.alert_window.as_secs(),
                    "ALERT: delivery failure rate above threshold"
                );
                self.notify("partner.delivery_failing", data);
            } else if !over && was {
                tracing::warn!(partner = %partner, failure_rate = rate, "alert cleared: deliveries recovered");
                self.notify("partner.delivery_recovered", data);
            }
        }
        Ok(())
    }
}
