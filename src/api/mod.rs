//! The HTTP surface (actix-web): routes, shared state, and the server itself.

pub mod admin;
pub mod context;
pub mod inbound;
pub mod oauth;
pub mod ops;
pub mod problem;
pub mod tickets;

use crate::config::Settings;
use crate::contract::Registry;
use crate::ops::metrics::Metrics;
use crate::store::Db;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use problem::ApiError;
use serde::{Deserialize, Serialize};
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::Notify;
use utoipa::ToSchema;

pub const BASE: &str = "/api/ebond/v1";

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    /// The generic OpenAPI document, rendered once.
    pub openapi: serde_json::Value,
    pub metrics: Metrics,
    /// Wakes the in-process outbox processor after a write that fanned out.
    pub wake: Arc<Notify>,
}

impl AppState {
    pub fn new(db: Db, registry: Arc<Registry>, settings: Arc<Settings>) -> AppState {
        AppState {
            db,
            registry,
            settings,
            openapi: crate::openapi::generic_document(),
            metrics: Metrics::new(),
            wake: Arc::new(Notify::new()),
        }
    }
}

/// Starts serving on `listener` (already bound). The returned server runs when awaited.
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let workers = state.settings.workers;
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(context::middleware))
            .configure(routes)
            .default_service(web::to(not_found))
    });
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.shutdown_timeout(10).run())
}

/// Every route of the gateway.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::scope(BASE)
                .route("/oauth/token", web::post().to(oauth::token))
                .route("/openapi.json", web::get().to(openapi_generic))
                .route(
                    "/partners/{id}/openapi.json",
                    web::get().to(openapi_partner),
                )
                .service(
                    web::resource("/tickets")
                        .route(web::post().to(tickets::create))
                        .route(web::get().to(tickets::list))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/tickets/{partner_ticket_id}")
                        .route(web::patch().to(tickets::update))
                        .route(web::get().to(tickets::read))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/tickets/{partner_ticket_id}/work-notes")
                        .route(web::post().to(tickets::add_work_note))
                        .default_service(web::to(method_not_allowed)),
                )
                .route("/admin/transactions", web::get().to(admin::transactions))
                .route("/admin/partners", web::get().to(admin::partners))
                .route("/admin/partners/{id}/pause", web::post().to(ops::pause))
                .route("/admin/partners/{id}/resume", web::post().to(ops::resume))
                .route("/admin/outbox", web::get().to(ops::outbox_list))
                .route("/admin/outbox/replay", web::post().to(ops::replay_partner))
                .route("/admin/outbox/{id}", web::get().to(ops::outbox_show))
                .route("/admin/outbox/{id}/replay", web::post().to(ops::replay_one))
                .route(
                    "/admin/tickets/{number}/sync",
                    web::get().to(ops::ticket_sync),
                ),
        );
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no endpoint at {} {}", req.method(), req.path())).error_response()
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed(format!(
        "{} is not supported on {}",
        req.method(),
        req.path()
    ))
    .error_response()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` with the reasons in `checks`.
    pub status: String,
    pub checks: Vec<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        checks: vec![],
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Database reachable and contracts loaded", body = Health),
        (status = 503, description = "Not ready", body = Health),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let ping = tokio::task::spawn_blocking(move || db.ping()).await;
    let mut checks = vec![format!(
        "contracts: {} partners",
        state.registry.partners().count()
    )];
    let ok = match ping {
        Ok(Ok(())) => {
            checks.push(format!("database: {} reachable", state.db.backend_name()));
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            checks.push("database: unreachable".into());
            false
        }
        Err(_) => false,
    };
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        checks,
    };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn openapi_generic(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.openapi)
}

async fn openapi_partner(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    match state.registry.get(&path) {
        Some(contract) => HttpResponse::Ok().json(crate::openapi::partner_document(
            &state.openapi,
            contract,
            &state.registry.workflow,
        )),
        None => {
            ApiError::NotFound(format!("no partner `{path}` has a contract here")).error_response()
        }
    }
}
