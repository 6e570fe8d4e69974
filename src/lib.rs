//! ebond — an eBond gateway.
//!
//! The request path reads top-down through these modules:
//! [`api`] (HTTP: extractors, thin handlers, the audit middleware, problem+json) → [`auth`] (who
//! is calling) → [`contract`] (validate and map the partner's payload) → [`sync`] (apply the
//! command: workflow rules, events, fan-out) → [`store`] (which owns the one database
//! transaction). [`outbox`] delivers what fan-out queued, signing with [`webhooks`]; [`domain`]
//! holds the types every layer shares; [`config`] and [`telemetry`] are set up once by `main`
//! through [`app`].

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod contract;
pub mod domain;
pub mod facade;
pub mod openapi;
pub mod ops;
pub mod outbox;
pub mod pull;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod util;
pub mod webhooks;
