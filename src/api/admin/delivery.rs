//! Operator endpoints for delivery: the outbox and its dead letters, partner pause, and one
//! ticket's sync timeline.

use super::{transaction_view, TransactionView};
use crate::api::extract::{Operator, Query};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::domain::ids::TicketNumber;
use crate::outbox::admin::{self as outbox_admin, OutboxDetail, OutboxView};
use crate::store::audit::TransactionFilter;
use crate::store::outbox::{OutboxFilter, OutboxStatus};
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

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
pub async fn outbox_list(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<OutboxQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(OutboxStatus::parse(s).ok_or_else(|| ApiError::BadRequest {
            code: "bad-query",
            detail: "status must be pending, in_flight, delivered, dead or discarded".into(),
        })?),
    };
    let limit =
        q.limit.unwrap_or(state.settings.limits.default_page_size).clamp(1, state.settings.limits.max_page_size);
    let filter = OutboxFilter {
        partner: q.partner,
        statuses: status.into_iter().collect(),
        ticket_id: None,
        after_id: q.after,
        limit,
    };
    let items = state.db.read(move |c| outbox_admin::list(c, &filter)).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|r| r.id)).flatten();
    Ok(HttpResponse::Ok().json(OutboxPage { items, next_after }))
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
pub async fn outbox_show(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    match state.db.read(move |c| outbox_admin::show(c, id)).await? {
        Some(d) => Ok(HttpResponse::Ok().json(d)),
        None => Err(ApiError::NotFound(format!("no outbox row {id}"))),
    }
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
pub async fn replay_one(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    on_dead_letter(state, path.into_inner(), outbox_admin::replay, "replayed", 1).await
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
pub async fn discard_one(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    on_dead_letter(state, path.into_inner(), outbox_admin::discard, "discarded", 0).await
}

/// Applies an operator action to one dead letter (404 when `id` is not one).
async fn on_dead_letter(
    state: web::Data<AppState>,
    id: i64,
    action: fn(&mut dyn crate::store::Repos, i64) -> Result<bool, StoreError>,
    done: &'static str,
    replayed: usize,
) -> Result<HttpResponse, ApiError> {
    if state.db.write(move |c| action(c, id)).await? {
        tracing::info!(outbox_id = id, action = done, "dead letter handled by an operator");
        state.wake_outbox();
        Ok(HttpResponse::Ok().json(ReplayResult { replayed }))
    } else {
        Err(ApiError::NotFound(format!("no dead letter with id {id}")))
    }
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
pub async fn replay_partner(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<ReplayQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) =
        query.map_err(|_| ApiError::BadRequest { code: "bad-query", detail: "give ?partner=<id>".into() })?;
    if state.registry().get(&q.partner).is_none() {
        return Err(ApiError::NotFound(format!("no partner `{}`", q.partner)));
    }
    let partner = q.partner.clone();
    let n = state.db.write(move |c| outbox_admin::replay_partner(c, &partner)).await?;
    tracing::info!(partner = %q.partner, replayed = n, "dead letters replayed");
    state.wake_outbox();
    Ok(HttpResponse::Ok().json(ReplayResult { replayed: n }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerControl {
    pub partner: String,
    pub paused: bool,
}

async fn set_paused(state: web::Data<AppState>, id: String, paused: bool) -> Result<HttpResponse, ApiError> {
    if state.registry().get(&id).is_none() {
        return Err(ApiError::NotFound(format!("no partner `{id}`")));
    }
    let p = id.clone();
    state.db.write(move |c| outbox_admin::set_paused(c, &p, paused)).await?;
    tracing::info!(partner = %id, paused, "partner delivery switch changed");
    state.wake_outbox();
    Ok(HttpResponse::Ok().json(PartnerControl { partner: id, paused }))
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/partners/{id}/pause", tag = "admin",
    params(("id" = String, Path, description = "Partner id")),
    responses((status = 200, description = "Deliveries to the partner stop; its backlog waits", body = PartnerControl),
              (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn pause(state: web::Data<AppState>, _: Operator, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    set_paused(state, path.into_inner(), true).await
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/partners/{id}/resume", tag = "admin",
    params(("id" = String, Path, description = "Partner id")),
    responses((status = 200, description = "Deliveries resume", body = PartnerControl),
              (status = 404, description = "Unknown partner", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn resume(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, path.into_inner(), false).await
}

/// One ticket's synchronisation history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncTimeline {
    pub ticket: String,
    /// Inbound requests about the ticket, oldest first.
    pub inbound: Vec<TransactionView>,
    /// Per partner, each outbound event with its attempts and state, oldest first.
    pub outbound: BTreeMap<String, Vec<OutboxDetail>>,
    /// Conflict records of the ticket, oldest first.
    pub conflicts: Vec<super::conflicts::ConflictView>,
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
pub async fn ticket_sync(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let number = TicketNumber::parse(&path.into_inner()).map_err(ApiError::NotFound)?;
    let n = number.clone();
    let found = state
        .db
        .read(move |c| {
            let Some(rows) = outbox_admin::of_ticket(c, &n)? else {
                return Ok(None);
            };
            let filter = TransactionFilter { ticket_number: Some(n.to_string()), limit: 1000, ..Default::default() };
            let mut tx = c.query_transactions(&filter)?;
            tx.reverse();
            let conflicts = match c.ticket_by_number(n.as_str())? {
                Some(t) => c.conflicts_of_ticket(t.id, false)?,
                None => Vec::new(),
            };
            Ok::<_, StoreError>(Some((rows, tx, conflicts)))
        })
        .await?;
    let Some((rows, tx, conflicts)) = found else {
        return Err(ApiError::NotFound(format!("no ticket {number}")));
    };
    let mut outbound: BTreeMap<String, Vec<OutboxDetail>> = BTreeMap::new();
    for r in rows {
        outbound.entry(r.row.partner.clone()).or_default().push(r);
    }
    Ok(HttpResponse::Ok().json(SyncTimeline {
        ticket: number.to_string(),
        inbound: tx.into_iter().map(transaction_view).collect(),
        outbound,
        conflicts: conflicts.into_iter().map(|c| super::conflicts::view(&state.registry(), c)).collect(),
    }))
}
