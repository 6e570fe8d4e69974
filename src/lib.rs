//! ebond — an eBond gateway.
//!
//! The request path reads top-down through these modules:
//! [`api`] (HTTP, problem+json) → [`auth`] (who is calling) → [`contract`] (validate and map the
//! partner's payload) → [`sync`] (apply the command: workflow rules, events, fan-out) →
//! [`store`] (one database transaction). [`config`] and [`telemetry`] are set up once by `main`.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod contract;
pub mod domain;
pub mod openapi;
pub mod ops;
pub mod outbox;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod util;
pub mod webhooks;
