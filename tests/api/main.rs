//! Black-box tests: the real gateway on a random port, real HTTP, a fresh database per test,
//! on SQLite always and on PostgreSQL when `EBOND_TEST_DATABASE_URL` is set.

mod fakes;
mod helpers;
mod table_fake;

mod auth;
mod conflicts;
mod console;
mod console_browser;
mod contracts;
mod delivery;
mod dry_run;
mod e2e;
mod edge;
mod onboarding;
mod openapi;
mod outage;
mod pki;
mod processes;
mod reconcile;
mod reload;
mod schema;
mod security;
mod shadow;
mod startup;
mod storage;
mod sync;
mod table_api;
mod table_clients;
mod tickets;
mod validation;
mod versions;
