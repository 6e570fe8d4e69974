//! Operations: Prometheus metrics, delivery-failure alerts, retention.

pub mod alerts;
pub mod metrics;
pub mod retention;
