//! The operator console under `/console/`: server-rendered HTML pages (maud) over the same
//! store and sync functions the admin API calls — partner health, dead letters, conflicts,
//! reconciliation, one ticket's story, the audit trail and the contracts in force.
//!
//! Every page works without JavaScript; one small inline script (allowed by a per-response
//! nonce in a strict Content-Security-Policy) only shows timestamps in the viewer's zone.
//! Sign-in makes a server-side session ([`session`]); every form carries its CSRF token
//! ([`form`]); every action is audited under the operator's credential ([`audit`]).

pub mod audit;
pub mod chart;
pub mod error;
pub mod form;
pub mod layout;
pub mod pages;
pub mod session;

use actix_web::{web, HttpResponse};

pub use error::ConsoleError;
pub use session::Viewer;

/// Where the console lives.
pub const ROOT: &str = "/console";

/// The console's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use pages::*;
    cfg.service(
        web::resource("/console").route(
            web::get().to(|| async { HttpResponse::SeeOther().insert_header(("location", "/console/")).finish() }),
        ),
    )
    .service(
        web::scope(ROOT)
            .route("/", web::get().to(overview::view))
            .route("/static/console.css", web::get().to(layout::stylesheet))
            .route("/sign-in", web::get().to(sign_in::form))
            .route("/sign-in", web::post().to(sign_in::submit))
            .route("/sign-out", web::post().to(sign_in::sign_out))
            .route("/partners/{id}", web::get().to(partner::view))
            .route("/partners/{id}/contract", web::get().to(partner::contract_document))
            .route("/partners/{id}/pause", web::post().to(partner::pause))
            .route("/partners/{id}/resume", web::post().to(partner::resume))
            .route("/partners/{id}/pull", web::post().to(partner::start_pull))
            .route("/partners/{id}/credentials/rotate", web::post().to(partner::rotate))
            .route("/partners/{id}/credentials/revoke", web::post().to(partner::revoke))
            .route("/dead-letters", web::get().to(dead_letters::list))
            .route("/dead-letters/bulk", web::get().to(dead_letters::confirm_bulk))
            .route("/dead-letters/bulk", web::post().to(dead_letters::bulk))
            .route("/dead-letters/{id}", web::get().to(dead_letters::show))
            .route("/dead-letters/{id}/replay", web::post().to(dead_letters::replay))
            .route("/dead-letters/{id}/discard", web::post().to(dead_letters::discard))
            .route("/conflicts", web::get().to(conflicts::list))
            .route("/conflicts/{id}", web::get().to(conflicts::show))
            .route("/conflicts/{id}/resolve", web::post().to(conflicts::resolve))
            .route("/reconcile", web::get().to(reconcile::runs))
            .route("/reconcile", web::post().to(reconcile::start))
            .route("/reconcile/runs/{id}", web::get().to(reconcile::run))
            .route("/tickets", web::get().to(ticket::find))
            .route("/tickets/{number}", web::get().to(ticket::story))
            .route("/audit", web::get().to(audit_pages::transactions))
            .route("/auth-events", web::get().to(audit_pages::auth_events))
            .route("/lockouts/clear", web::post().to(audit_pages::clear_lockout))
            .route("/contracts", web::get().to(contracts::view))
            .route("/contracts/reload", web::post().to(contracts::reload))
            .route("/contracts/{id}/shadow/promote", web::post().to(contracts::promote_shadow))
            .route("/contracts/{id}/shadow/drop", web::post().to(contracts::drop_shadow))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ConsoleError::NotFound("no console page here".into()))
            })),
    );
}
