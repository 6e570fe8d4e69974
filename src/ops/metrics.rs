//! Prometheus metrics, served as text at `/metrics`.

use crate::store::outbox::OutboxStat;
use crate::store::outbox::OutboxStatus;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub inbound: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub delivery_latency: HistogramVec,
    pub outbox_depth: IntGaugeVec,
    pub outbox_oldest_age: GaugeVec,
    pub dead_letters: IntGaugeVec,
    pub failure_rate: GaugeVec,
    pub alerting: IntGaugeVec,
    pub conflicts_open: IntGaugeVec,
    pub drift_items: IntGaugeVec,
    pub reconcile_last_run: GaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let inbound = IntCounterVec::new(
            Opts::new("ebond_inbound_requests_total", "Inbound API requests by partner and HTTP status"),
            &["partner", "status"],
        )
        .expect("valid metric");
        let deliveries = IntCounterVec::new(
            Opts::new("ebond_deliveries_total", "Delivery attempts by partner and outcome (delivered, retry, dead)"),
            &["partner", "outcome"],
        )
        .expect("valid metric");
        let delivery_latency = HistogramVec::new(
            HistogramOpts::new("ebond_delivery_duration_seconds", "Duration of delivery attempts")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["partner"],
        )
        .expect("valid metric");
        let outbox_depth = IntGaugeVec::new(
            Opts::new("ebond_outbox_depth", "Undelivered outbox rows (pending or in flight)"),
            &["partner"],
        )
        .expect("valid metric");
        let outbox_oldest_age = GaugeVec::new(
            Opts::new("ebond_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered outbox row"),
            &["partner"],
        )
        .expect("valid metric");
        let dead_letters = IntGaugeVec::new(Opts::new("ebond_dead_letters", "Dead-lettered outbox rows"), &["partner"])
            .expect("valid metric");
        let failure_rate = GaugeVec::new(
            Opts::new(
                "ebond_delivery_failure_rate",
                "Failed share of delivery attempts over the partner's alert window",
            ),
            &["partner"],
        )
        .expect("valid metric");
        let alerting = IntGaugeVec::new(
            Opts::new(
                "ebond_partner_delivery_alert",
                "1 while a partner's delivery failure rate is above its threshold",
            ),
            &["partner"],
        )
        .expect("valid metric");
        let conflicts_open = IntGaugeVec::new(
            Opts::new(
                "ebond_conflicts_open",
                "Conflict records waiting for an operator, by the partner whose write conflicted",
            ),
            &["partner"],
        )
        .expect("valid metric");
        let drift_items = IntGaugeVec::new(
            Opts::new(
                "ebond_drift_items",
                "Differences the partner's last reconciliation found, by kind (dry runs excluded)",
            ),
            &["partner", "kind"],
        )
        .expect("valid metric");
        let reconcile_last_run = GaugeVec::new(
            Opts::new(
                "ebond_reconcile_last_run_timestamp",
                "When the partner's last reconciliation ended (Unix seconds; dry runs excluded)",
            ),
            &["partner"],
        )
        .expect("valid metric");
        for c in [
            Box::new(inbound.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(deliveries.clone()),
            Box::new(delivery_latency.clone()),
            Box::new(outbox_depth.clone()),
            Box::new(outbox_oldest_age.clone()),
            Box::new(dead_letters.clone()),
            Box::new(failure_rate.clone()),
            Box::new(alerting.clone()),
            Box::new(conflicts_open.clone()),
            Box::new(drift_items.clone()),
            Box::new(reconcile_last_run.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            inbound,
            deliveries,
            delivery_latency,
            outbox_depth,
            outbox_oldest_age,
            dead_letters,
            failure_rate,
            alerting,
            conflicts_open,
            drift_items,
            reconcile_last_run,
        }
    }

    /// Sets the reconciliation gauges from each partner's last run (`(partner, ended_ms)`) and
    /// its items per kind (`(partner, kind, count)`); zero for kinds it did not find.
    pub fn set_reconcile(&self, last: &[(String, i64)], items: &[(String, String, i64)]) {
        for (partner, ended) in last {
            self.reconcile_last_run.with_label_values(&[partner]).set(*ended as f64 / 1000.0);
            for kind in crate::pull::compare::DriftKind::ALL {
                let n = items.iter().find(|(p, k, _)| p == partner && k == kind.as_str()).map_or(0, |(_, _, n)| *n);
                self.drift_items.with_label_values(&[partner, kind.as_str()]).set(n);
            }
        }
    }

    /// Sets the open-conflict gauge from fresh counts (zero for partners with none).
    pub fn set_conflicts(&self, partners: &[String], open: &[(String, i64)]) {
        for p in partners {
            let n = open.iter().find(|(q, _)| q == p).map_or(0, |(_, n)| *n);
            self.conflicts_open.with_label_values(&[p]).set(n);
        }
    }

    /// Sets the outbox gauges from fresh counts (zero for partners with nothing queued).
    pub fn set_outbox(&self, partners: &[String], stats: &[OutboxStat], now_ms: i64) {
        for p in partners {
            let depth: i64 = stats
                .iter()
                .filter(|s| s.partner == *p && s.status != OutboxStatus::Dead.as_str())
                .map(|s| s.count)
                .sum();
            let oldest = stats
                .iter()
                .filter(|s| s.partner == *p && s.status != OutboxStatus::Dead.as_str())
                .map(|s| s.oldest)
                .min();
            let dead: i64 = stats
                .iter()
                .filter(|s| s.partner == *p && s.status == OutboxStatus::Dead.as_str())
                .map(|s| s.count)
                .sum();
            self.outbox_depth.with_label_values(&[p]).set(depth);
            self.outbox_oldest_age
                .with_label_values(&[p])
                .set(oldest.map_or(0.0, |o| (now_ms - o).max(0) as f64 / 1000.0));
            self.dead_letters.with_label_values(&[p]).set(dead);
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
