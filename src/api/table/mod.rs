//! `/api/now/…` and `/oauth_token.do`: ServiceNow's Table API (and Batch API) answered from
//! ebond, so that a partner's existing ServiceNow clients work unmodified — reads of the
//! tickets shared with the partner, in its contract's vocabulary, and writes through the same
//! validation and write path as `/api/ebond/v1`. Thin HTTP handlers over [`handlers`].

pub mod auth;
pub mod batch;
pub mod error;
pub mod handlers;
pub mod oauth;

use crate::api::audit::Audited;
use crate::api::AppState;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use error::TableError;
use handlers::Reply;

/// Every facade route (each version form of the paths).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let audited = || from_fn(crate::api::audit::middleware);
    let mut scope = web::scope("/api/now").default_service(web::to(no_resource));
    for prefix in ["", "/v1", "/v2"] {
        scope = scope
            .service(
                web::resource(format!("{prefix}/table/{{table}}"))
                    .route(web::get().to(list))
                    .route(web::post().to(create))
                    .default_service(web::to(|| not_allowed("GET, POST")))
                    .wrap(audited()),
            )
            .service(
                web::resource(format!("{prefix}/table/{{table}}/{{sys_id}}"))
                    .route(web::get().to(read))
                    .route(web::patch().to(update))
                    .route(web::put().to(update))
                    .route(web::delete().to(delete))
                    .default_service(web::to(|| not_allowed("GET, PATCH, PUT, DELETE")))
                    .wrap(audited()),
            );
    }
    for path in ["/v1/batch", "/batch"] {
        scope = scope.service(
            web::resource(path)
                .route(web::post().to(batch::batch))
                .default_service(web::to(|| not_allowed("POST")))
                .wrap(audited()),
        );
    }
    cfg.service(scope).service(
        web::resource("/oauth_token.do")
            .route(web::post().to(oauth::token))
            .default_service(web::to(|| not_allowed("POST"))),
    );
}

async fn no_resource(req: HttpRequest) -> HttpResponse {
    let e = TableError::bad_request(
        "no-resource",
        "Requested URI does not represent any resource",
        format!(
            "{} {}: this Table-API facade answers /api/now/table/{{table}}[/{{sys_id}}] and /api/now/v1/batch",
            req.method(),
            req.path()
        ),
    );
    actix_web::ResponseError::error_response(&e)
}

async fn not_allowed(allow: &'static str) -> HttpResponse {
    let e = TableError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not Supported",
        Some(format!("use {allow}")),
    );
    let mut resp = actix_web::ResponseError::error_response(&e);
    resp.headers_mut().insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
    resp
}

/// `https://host:port` as the caller reached the gateway.
pub fn origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// A reply as an HTTP response.
pub fn respond(reply: Reply) -> HttpResponse {
    let mut resp = HttpResponse::build(reply.status);
    for (k, v) in &reply.headers {
        resp.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = match reply.body {
        Some(b) => resp.json(b),
        None => resp.finish(),
    };
    if reply.audited {
        resp.extensions_mut().insert(Audited);
    }
    resp
}

fn request<'a>(
    req: &'a HttpRequest,
    origin: &'a str,
    table: &'a str,
    sys_id: Option<&'a str>,
) -> handlers::Request<'a> {
    handlers::Request {
        table,
        sys_id,
        query: req.query_string(),
        origin,
        path: req.path(),
        audit: crate::api::audit::request_facts(req),
    }
}

/// Reads a JSON body (its digest goes to the audit row). None for an empty body.
async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Option<serde_json::Value>, TableError> {
    let body = crate::api::extract::read_body(req, payload.into_inner(), state.settings.limits.max_body_bytes).await?;
    req.extensions_mut().insert(crate::api::audit::BodyDigest(crate::util::sha256_hex(&body)));
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::api::extract::require_json(req)?;
    Ok(Some(crate::api::json::parse(&body, state.settings.security.max_json_depth)?))
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, TableError> {
    let caller = auth::caller(&state, &req, false).await?;
    let origin = origin(&req);
    Ok(respond(handlers::list(&state, &caller, &request(&req, &origin, &path, None)).await?))
}

async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, TableError> {
    let caller = auth::caller(&state, &req, false).await?;
    let origin = origin(&req);
    let (table, id) = path.into_inner();
    Ok(respond(handlers::read(&state, &caller, &request(&req, &origin, &table, Some(&id))).await?))
}

async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, TableError> {
    let caller = auth::caller(&state, &req, true).await?;
    let body = handlers::body_or_empty(json_body(&req, payload, &state).await?);
    let origin = origin(&req);
    Ok(respond(handlers::create(&state, &caller, &request(&req, &origin, &path, None), &body).await?))
}

async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, TableError> {
    let caller = auth::caller(&state, &req, true).await?;
    let body = handlers::body_or_empty(json_body(&req, payload, &state).await?);
    let origin = origin(&req);
    let (table, id) = path.into_inner();
    Ok(respond(handlers::update(&state, &caller, &request(&req, &origin, &table, Some(&id)), &body).await?))
}

async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, TableError> {
    let caller = auth::caller(&state, &req, true).await?;
    let origin = origin(&req);
    let (table, id) = path.into_inner();
    Ok(respond(handlers::delete(&state, &caller, &request(&req, &origin, &table, Some(&id))).await?))
}
