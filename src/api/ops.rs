//! Operator endpoints for delivery: metrics, the outbox and its dead letters, partner pause,
//! and one ticket's sync timeline.

use super::admin::{transaction_view, TransactionView};
use super::inbound::require_admin;
use super::problem::{ApiError, Problem};
use super::AppState;
use crate::outbox::admin::{self as outbox_admin, OutboxDetail, OutboxView};
use crate::store::audit::TransactionFilter;
use crate::store::outbox::OutboxFilter;
use crate::store::StoreError;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

fn respond(result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(|e| e.error_response())
}

/// Prometheus text exposition (outbox gauges refreshed at each scrape).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let partners: Vec<String> = state.registry.partners().map(|c| c.id.clone()).collect();
    match state.db.read(|c| c.outbox_stats().map_err(StoreError::from)).await {
        Ok(stats) => state.metrics.set_outbox(&partners, &stats, crate::util::now_ms()),
        Err(e) => tracing::warn!(error = %e, "metrics: outbox figures unavailable"),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    pub partner: Option<String>,
    /// pending, in_flight, delivered or dead.
    pub status: Option<String>,
    /// Only rows with a larger id (paging forward).
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxPage {
    pub items: Vec<OutboxView>,
    pub next_after: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/outbox", tag = "admin", params(OutboxQuery),
    responses(
        (status = 200, description = "Outbox rows, oldest first", body = OutboxPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn outbox_list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    respond(
        async {
            require_admin(&state, &req).await?;
            let q: OutboxQuery = serde_urlencoded::from_str(req.query_string())
                .map_err(|e| ApiError::BadRequest { code: "bad-query", detail: format!("query string: {e}") })?;
            if let Some(s) = &q.status {
                if !["pending", "in_flight", "delivered", "dead", "discarded"].contains(&s.as_str()) {
                    return Err(ApiError::BadRequest {
                        code: "bad-query",
                        detail: "status must be pending, in_flight, delivered, dead or discarded".into(),
                    });
                }
            }
            let limit = q
                .limit
                .unwrap_or(state.settings.limits.default_page_size)
                .clamp(1, state.settings.limits.max_page_size);
            let filter =
                OutboxFilter { partner: q.partner, status: q.status, ticket_id: None, after_id: q.after, limit };
            let items = state.db.read(move |c| outbox_admin::list(c, &filter)).await?;
            let next_after = (items.len() as i64 == limit).then(|| items.last().map(|r| r.id)).flatten();
            Ok(HttpResponse::Ok().json(OutboxPage { items, next_after }))
        }
        .await,
    )
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/outbox/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Outbox row id")),
    responses(
        (status = 200, description = "The row, its payload and every attempt", body = OutboxDetail),
        (status = 404, description = "No such row", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn outbox_show(state: web::Data<AppState>, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let id = path.into_inner();
    respond(
        async {
            require_admin(&state, &req).await?;
            match state.db.read(move |c| outbox_admin::show(c, id)).await? {
                Some(d) => Ok(HttpResponse::Ok().json(d)),
                None => Err(ApiError::NotFound(format!("no outbox row {id}"))),
            }
        }
        .await,
    )
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    pub replayed: usize,
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/outbox/{id}/replay", tag = "admin",
    params(("id" = i64, Path, description = "Outbox row id of a dead letter")),
    responses(
        (status = 200, description = "Queued again", body = ReplayResult),
        (status = 404, description = "No dead letter with that id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn replay_one(state: web::Data<AppState>, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    on_dead_letter(state, req, path.into_inner(), outbox_admin::replay, "replayed", 1).await
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/outbox/{id}/discard", tag = "admin",
    params(("id" = i64, Path, description = "Outbox row id of a dead letter")),
    responses(
        (status = 200, description = "Discarded: never delivered; the ticket's later rows flow", body = ReplayResult),
        (status = 404, description = "No dead letter with that id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn discard_one(state: web::Data<AppState>, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    on_dead_letter(state, req, path.into_inner(), outbox_admin::discard, "discarded", 0).await
}

/// Applies an operator action to one dead letter (404 when `id` is not one).
async fn on_dead_letter(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: i64,
    action: fn(&mut dyn crate::store::Repos, i64) -> Result<bool, StoreError>,
    done: &'static str,
    replayed: usize,
) -> HttpResponse {
    respond(
        async {
            require_admin(&state, &req).await?;
            if state.db.write(move |c| action(c, id)).await? {
                tracing::info!(outbox_id = id, action = done, "dead letter handled by an operator");
                state.wake.notify_one();
                Ok(HttpResponse::Ok().json(ReplayResult { replayed }))
            } else {
                Err(ApiError::NotFound(format!("no dead letter with id {id}")))
            }
        }
        .await,
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// Replay every dead letter of this partner, in order.
    pub partner: String,
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/outbox/replay", tag = "admin", params(ReplayQuery),
    responses(
        (status = 200, description = "Dead letters queued again", body = ReplayResult),
        (status = 400, description = "No partner given", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn replay_partner(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    respond(
        async {
            require_admin(&state, &req).await?;
            let q: ReplayQuery = serde_urlencoded::from_str(req.query_string())
                .map_err(|_| ApiError::BadRequest { code: "bad-query", detail: "give ?partner=<id>".into() })?;
            if state.registry.get(&q.partner).is_none() {
                return Err(ApiError::NotFound(format!("no partner `{}`", q.partner)));
            }
            let partner = q.partner.clone();
            let n = state.db.write(move |c| outbox_admin::replay_partner(c, &partner)).await?;
            tracing::info!(partner = %q.partner, replayed = n, "dead letters replayed");
            state.wake.notify_one();
            Ok(HttpResponse::Ok().json(ReplayResult { replayed: n }))
        }
        .await,
    )
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerControl {
    pub partner: String,
    pub paused: bool,
}

async fn set_paused(state: web::Data<AppState>, req: HttpRequest, id: String, paused: bool) -> HttpResponse {
    respond(
        async {
            require_admin(&state, &req).await?;
            if state.registry.get(&id).is_none() {
                return Err(ApiError::NotFound(format!("no partner `{id}`")));
            }
            let p = id.clone();
            state.db.write(move |c| outbox_admin::set_paused(c, &p, paused)).await?;
            tracing::info!(partner = %id, paused, "partner delivery switch changed");
            state.wake.notify_one();
            Ok(HttpResponse::Ok().json(PartnerControl { partner: id, paused }))
        }
        .await,
    )
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/partners/{id}/pause", tag = "admin",
    params(("id" = String, Path, description = "Partner id")),
    responses((status = 200, description = "Deliveries to the partner stop; its backlog waits", body = PartnerControl),
              (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn pause(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    set_paused(state, req, path.into_inner(), true).await
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/partners/{id}/resume", tag = "admin",
    params(("id" = String, Path, description = "Partner id")),
    responses((status = 200, description = "Deliveries resume", body = PartnerControl),
              (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn resume(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    set_paused(state, req, path.into_inner(), false).await
}

/// One ticket's synchronisation history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncTimeline {
    pub ticket: String,
    /// Inbound requests about the ticket, oldest first.
    pub inbound: Vec<TransactionView>,
    /// Per partner, each outbound event with its attempts and state, oldest first.
    pub outbound: BTreeMap<String, Vec<OutboxDetail>>,
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/tickets/{number}/sync", tag = "admin",
    params(("number" = String, Path, description = "Hub ticket number")),
    responses(
        (status = 200, description = "Inbound transactions and outbound deliveries", body = SyncTimeline),
        (status = 404, description = "Unknown ticket", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn ticket_sync(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let number = path.into_inner();
    respond(
        async {
            require_admin(&state, &req).await?;
            let n = number.clone();
            let found = state
                .db
                .read(move |c| {
                    let Some(rows) = outbox_admin::of_ticket(c, &n)? else {
                        return Ok(None);
                    };
                    let filter =
                        TransactionFilter { ticket_number: Some(n.clone()), limit: 1000, ..Default::default() };
                    let mut tx = c.query_transactions(&filter)?;
                    tx.reverse();
                    Ok::<_, StoreError>(Some((rows, tx)))
                })
                .await?;
            let Some((rows, tx)) = found else {
                return Err(ApiError::NotFound(format!("no ticket {number}")));
            };
            let mut outbound: BTreeMap<String, Vec<OutboxDetail>> = BTreeMap::new();
            for r in rows {
                outbound.entry(r.row.partner.clone()).or_default().push(r);
            }
            Ok(HttpResponse::Ok().json(SyncTimeline {
                ticket: number,
                inbound: tx.into_iter().map(transaction_view).collect(),
                outbound,
            }))
        }
        .await,
    )
}
