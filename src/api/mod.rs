//! The HTTP surface (actix-web): routes, shared state, and the server itself.
//!
//! A request passes the request-id middleware ([`context`]), the audit middleware on partner
//! endpoints ([`audit`]), its handler's extractors ([`extract`]: caller, body, headers) and a
//! thin handler that calls one sync function; every refusal is an [`ApiError`] rendered in
//! [`problem`].

pub mod admin;
pub mod audit;
pub mod caller;
pub mod context;
pub mod events;
pub mod extract;
pub mod health;
pub mod json;
pub mod oauth;
pub mod ops_access;
pub mod problem;
pub mod shadow;
pub mod table;
pub mod tickets;

use crate::config::Settings;
use crate::contract::Registry;
use crate::ops::metrics::Metrics;
use crate::store::Db;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use problem::ApiError;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::Notify;

pub const BASE: &str = "/api/ebond/v1";

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    /// The contracts in force (swapped whole by a reload): take [`AppState::registry`] once per
    /// request.
    pub contracts: Arc<crate::contract::live::Live>,
    pub settings: Arc<Settings>,
    /// The generic OpenAPI document, rendered once.
    pub openapi: serde_json::Value,
    /// Each partner's document, rendered from the registry whose digest it carries (again
    /// after a reload, at the first request for one).
    partner_openapi: arc_swap::ArcSwap<PartnerDocuments>,
    pub metrics: Metrics,
    /// Wakes the in-process outbox processor after a write that fanned out.
    pub wake: Arc<Notify>,
    pub secrets: crate::secrets::Secrets,
    /// Per-partner inbound rate limits.
    pub limiter: crate::auth::limits::RateLimiter,
    /// Who may set `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where `/metrics` and the OpenAPI documents answer from (`security.ops_networks`; empty:
    /// anywhere).
    pub ops_networks: Vec<ipnet::IpNet>,
    /// The operational webhook (conflicts here; the outbox processor shares it).
    pub alerts: Arc<crate::ops::alerts::Alerts>,
    /// Pull sync and reconciliation (runs started from the admin API; the scheduler shares it).
    pub sync: Arc<crate::pull::Engine>,
    /// Table-API facade logins proven recently (HTTP Basic sends the password every time).
    pub logins: crate::auth::verified::VerifiedSecrets,
    /// Requests evaluated against shadow contracts here.
    pub shadows: shadow::ShadowCounters,
    /// Bearer tokens checked recently (emptied by every revocation, in every process).
    pub tokens: Arc<crate::auth::token_cache::TokenCache>,
    /// Hears the other processes' signals and keeps this one on their roll (none in tools that
    /// build a state without serving).
    pub listener: Option<Arc<crate::store::listener::Listener>>,
}

/// The partner OpenAPI documents of one registry.
struct PartnerDocuments {
    registry_sha256: String,
    documents: HashMap<String, Arc<serde_json::Value>>,
}

impl PartnerDocuments {
    fn of(generic: &serde_json::Value, registry: &Registry) -> PartnerDocuments {
        PartnerDocuments {
            registry_sha256: registry.sha256.clone(),
            // `id` for each partner's default version, `id@major` for every live version.
            documents: registry
                .partners()
                .map(|c| (c.id.to_string(), c))
                .chain(registry.all_versions().map(|c| (format!("{}@{}", c.id, c.major), c)))
                .map(|(key, c)| (key, Arc::new(crate::openapi::partner_document(generic, c, &registry.workflow))))
                .collect(),
        }
    }
}

impl AppState {
    /// The contracts in force now: one snapshot per request or unit of work.
    pub fn registry(&self) -> Arc<Registry> {
        self.contracts.current()
    }

    /// `partner`'s OpenAPI document under the contracts in force: of its default version, or
    /// of `partner@major`.
    pub fn partner_document(&self, partner: &str) -> Option<Arc<serde_json::Value>> {
        let registry = self.registry();
        let mut docs = self.partner_openapi.load_full();
        if docs.registry_sha256 != registry.sha256 {
            let fresh = Arc::new(PartnerDocuments::of(&self.openapi, &registry));
            self.partner_openapi.store(fresh.clone());
            docs = fresh;
        }
        docs.documents.get(partner).cloned()
    }

    /// Something became due in the outbox: wake this process's processor and, when another
    /// process delivers (`outbox.in_process` off), every processor on the database.
    pub fn wake_outbox(&self) {
        self.wake.notify_one();
        if !self.settings.outbox.in_process {
            if let Some(l) = &self.listener {
                l.nudge_outbox();
            }
        }
    }

    /// `trusted_proxies` are the settings' entries, already parsed (a bad one stops the start).
    pub fn new(
        db: Db,
        contracts: Arc<crate::contract::live::Live>,
        settings: Arc<Settings>,
        openapi: serde_json::Value,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Result<AppState, crate::ops::alerts::AlertsError> {
        let metrics = Metrics::new();
        let alerts = Arc::new(crate::ops::alerts::Alerts::new(&settings.alerts, metrics.clone())?);
        let secrets = crate::secrets::Secrets::new(db.clone(), &settings);
        let wake = Arc::new(Notify::new());
        let sync = Arc::new(crate::pull::Engine::new(
            db.clone(),
            contracts.clone(),
            &settings,
            secrets.clone(),
            alerts.clone(),
            wake.clone(),
        )?);
        let logins =
            crate::auth::verified::VerifiedSecrets::new(std::time::Duration::from_secs(settings.auth.basic_cache_secs));
        Ok(AppState {
            tokens: Arc::new(crate::auth::token_cache::TokenCache::new(settings.auth.token_cache_secs)),
            listener: None,
            logins,
            secrets,
            sync,
            partner_openapi: arc_swap::ArcSwap::from_pointee(PartnerDocuments::of(&openapi, &contracts.current())),
            openapi,
            db,
            contracts,
            settings,
            metrics,
            wake,
            limiter: crate::auth::limits::RateLimiter::default(),
            trusted_proxies,
            ops_networks: Vec::new(),
            shadows: shadow::ShadowCounters::default(),
            alerts,
        })
    }
}

/// Starts serving on `listener` (already bound): HTTPS when `tls` has a certificate, else
/// plain HTTP. The returned server runs when awaited.
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    server_with(web::Data::new(state), listener)
}

/// [`server`] over a state the caller shares (with a signal handler, say).
pub fn server_with(state: web::Data<AppState>, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let workers = state.settings.workers;
    let tls = crate::auth::tls::acceptor(&state.settings.tls).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(|err, req| {
                // A path segment of the wrong type names no resource: a problem+json 404.
                actix_web::error::InternalError::from_response(
                    err,
                    ApiError::NotFound(format!("no resource at {}", req.path())).error_response(),
                )
                .into()
            }))
            .wrap(from_fn(context::middleware))
            .configure(routes)
            .configure(table::routes)
            .configure(crate::console::routes)
            .default_service(web::to(not_found))
    })
    .on_connect(remember_client_cert)
    // A slow request head is cut off (header count is capped by actix at 96).
    .client_request_timeout(std::time::Duration::from_secs(10));
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = match tls {
        Some(builder) => server.listen_openssl(listener, builder)?,
        None => server.listen(listener)?,
    };
    Ok(server.shutdown_timeout(10).run())
}

/// Hands the fingerprint of a TLS client certificate to every request on the connection.
fn remember_client_cert(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    use actix_tls::accept::openssl::TlsStream;
    if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
        if let Some(cert) = tls.ssl().peer_certificate() {
            if let Ok(digest) = cert.digest(openssl::hash::MessageDigest::sha256()) {
                ext.insert(crate::auth::network::ClientCert { sha256: hex::encode(digest) });
            }
        }
    }
}

/// Every route of the gateway. Each path answers other methods with 405 and `Allow`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let audited = || from_fn(audit::middleware);
    cfg.service(resource("/healthz", "GET").route(web::get().to(health::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)))
        .service(
            web::scope(BASE)
                .service(resource("/oauth/token", "POST").route(web::post().to(oauth::token)))
                .service(resource("/events", "POST").route(web::post().to(events::receive)).wrap(audited()))
                .service(resource("/openapi.json", "GET").route(web::get().to(openapi_generic)))
                .service(resource("/partners/{id}/openapi.json", "GET").route(web::get().to(openapi_partner)))
                .service(resource("/partners/{id}/contract", "GET").route(web::get().to(contract_document)))
                .service(
                    resource("/tickets", "GET, POST")
                        .route(web::post().to(tickets::create::create))
                        .route(web::get().to(tickets::list::list))
                        .wrap(audited()),
                )
                .service(
                    resource("/tickets/{partner_ticket_id}", "GET, PATCH")
                        .route(web::patch().to(tickets::update::update))
                        .route(web::get().to(tickets::read::read))
                        .wrap(audited()),
                )
                .service(
                    resource("/tickets/{partner_ticket_id}/work-notes", "POST")
                        .route(web::post().to(tickets::work_note::add_work_note))
                        .wrap(audited()),
                )
                .service(resource("/admin/auth-events", "GET").route(web::get().to(admin::auth_events)))
                .service(
                    resource("/admin/lockouts/clear", "POST")
                        .route(web::post().to(admin::lockout_clear))
                        .wrap(audited()),
                )
                .service(resource("/admin/transactions", "GET").route(web::get().to(admin::transactions)))
                .service(resource("/admin/partners", "GET").route(web::get().to(admin::partners)))
                .service(resource("/admin/contracts", "GET").route(web::get().to(admin::contracts::show)))
                .service(
                    resource("/admin/contracts/reload", "POST")
                        .route(web::post().to(admin::contracts::reload))
                        .wrap(audited()),
                )
                .service(resource("/admin/partners/{id}/shadow", "GET").route(web::get().to(shadow::report)))
                .service(
                    resource("/admin/partners/{id}/shadow/promote", "POST")
                        .route(web::post().to(shadow::promote))
                        .wrap(audited()),
                )
                .service(
                    resource("/admin/partners/{id}/shadow/drop", "POST")
                        .route(web::post().to(shadow::drop))
                        .wrap(audited()),
                )
                .service(resource("/admin/partners/{id}/pause", "POST").route(web::post().to(admin::delivery::pause)))
                .service(resource("/admin/partners/{id}/resume", "POST").route(web::post().to(admin::delivery::resume)))
                .service(resource("/admin/outbox", "GET").route(web::get().to(admin::delivery::outbox_list)))
                .service(
                    resource("/admin/outbox/replay", "POST").route(web::post().to(admin::delivery::replay_partner)),
                )
                .service(resource("/admin/outbox/{id}", "GET").route(web::get().to(admin::delivery::outbox_show)))
                .service(
                    resource("/admin/outbox/{id}/replay", "POST").route(web::post().to(admin::delivery::replay_one)),
                )
                .service(
                    resource("/admin/outbox/{id}/discard", "POST").route(web::post().to(admin::delivery::discard_one)),
                )
                .service(
                    resource("/admin/tickets/{number}/sync", "GET").route(web::get().to(admin::delivery::ticket_sync)),
                )
                .service(resource("/admin/conflicts", "GET").route(web::get().to(admin::conflicts::list)))
                .service(
                    resource("/admin/conflicts/resolve", "POST")
                        .route(web::post().to(admin::conflicts::resolve_many))
                        .wrap(audited()),
                )
                .service(resource("/admin/sync/status", "GET").route(web::get().to(admin::sync::pull_status)))
                .service(resource("/admin/sync/runs", "GET").route(web::get().to(admin::sync::pull_runs)))
                .service(resource("/admin/sync/runs/{id}", "GET").route(web::get().to(admin::sync::pull_run)))
                // Operators starting runs are in the transaction log, as their resolutions are.
                .service(
                    resource("/admin/sync/{partner}", "POST")
                        .route(web::post().to(admin::sync::start_pull))
                        .wrap(audited()),
                )
                .service(
                    resource("/admin/reconcile", "POST")
                        .route(web::post().to(admin::sync::start_reconcile))
                        .wrap(audited()),
                )
                .service(resource("/admin/reconcile/runs", "GET").route(web::get().to(admin::sync::reconcile_runs)))
                .service(
                    resource("/admin/reconcile/runs/{id}", "GET").route(web::get().to(admin::sync::reconcile_report)),
                )
                .service(resource("/admin/conflicts/{id}", "GET").route(web::get().to(admin::conflicts::show)))
                // Resolutions are operators' writes: in the transaction log like partners' writes.
                .service(
                    resource("/admin/conflicts/{id}/resolve", "POST")
                        .route(web::post().to(admin::conflicts::resolve))
                        .wrap(audited()),
                ),
        );
}

/// A resource whose unsupported methods get 405 with the `Allow` header.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        let mut resp =
            ApiError::MethodNotAllowed(format!("{} is not supported on {}; use {allow}", req.method(), req.path()))
                .error_response();
        resp.headers_mut()
            .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
        resp
    }))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no endpoint at {} {}", req.method(), req.path())).error_response()
}

async fn openapi_generic(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    ops_access::check(&state, &req, ops_access::Needs::Network).await?;
    Ok(HttpResponse::Ok().json(&state.openapi))
}

/// The partner's data-contract document: HTML when the client asks for it (a browser), else
/// Markdown; `?format=md|html` decides too.
async fn contract_document(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ops_access::check(&state, &req, ops_access::Needs::Document(path.as_str())).await?;
    let registry = state.registry();
    let contract = match version_param(&req)? {
        None => registry.get(path.as_str()),
        Some(major) => registry.version(path.as_str(), major),
    };
    let Some(contract) = contract else {
        return Err(ApiError::NotFound(format!("no partner `{path}` has a contract of that version here")));
    };
    let format = req.query_string().split('&').find_map(|kv| kv.strip_prefix("format="));
    let accept = req.headers().get(actix_web::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let html = match format {
        Some("html") => true,
        Some("md") | Some("markdown") => false,
        Some(other) => {
            return Err(ApiError::BadRequest {
                code: "bad-format",
                detail: format!("format `{other}`: use md or html"),
            })
        }
        None => prefers_html(accept),
    };
    let ttl = state.settings.auth.default_token_ttl_secs;
    Ok(if html {
        HttpResponse::Ok().content_type("text/html; charset=utf-8").body(crate::contract::document::html(
            &registry,
            contract,
            ttl,
            crate::contract::document::Audience::Partner,
        ))
    } else {
        HttpResponse::Ok().content_type("text/markdown; charset=utf-8").body(crate::contract::document::markdown(
            &registry,
            contract,
            ttl,
            crate::contract::document::Audience::Partner,
        ))
    })
}

/// `text/html` is asked for before (or instead of) `text/markdown`.
fn prefers_html(accept: &str) -> bool {
    let position = |t: &str| accept.to_ascii_lowercase().find(t);
    match (position("text/html"), position("text/markdown")) {
        (Some(h), Some(m)) => h < m,
        (Some(_), None) => true,
        _ => false,
    }
}

/// `?version=2` on a partner's documents: a major version, or a clear 400.
fn version_param(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    match req.query_string().split('&').find_map(|kv| kv.strip_prefix("version=")) {
        None => Ok(None),
        Some(v) => crate::contract::parse_major(v).map(Some).ok_or_else(|| ApiError::BadRequest {
            code: "bad-version",
            detail: format!("version `{v}`: name the contract's major version, e.g. version=2"),
        }),
    }
}

async fn openapi_partner(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    ops_access::check(&state, &req, ops_access::Needs::Document(path.as_str())).await?;
    let key = match version_param(&req)? {
        Some(major) => format!("{path}@{major}"),
        None => path.to_string(),
    };
    match state.partner_document(&key) {
        Some(doc) => Ok(HttpResponse::Ok().json(&*doc)),
        None => Err(ApiError::NotFound(format!("no partner `{path}` has a contract here"))),
    }
}
