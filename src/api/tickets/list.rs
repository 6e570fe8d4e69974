//! `GET /api/ebond/v1/tickets`: incremental read of the tickets shared with the partner, oldest
//! change first, with an opaque cursor.

use super::{view, ListQuery, TicketPage};
use crate::api::extract::{Cursor, Partner, Query, ReadingPartner};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use actix_web::{web, HttpResponse};
use validator::Validate;

#[utoipa::path(
    get, path = "/api/ebond/v1/tickets", tag = "tickets",
    params(ListQuery),
    responses(
        (status = 200, description = "Tickets shared with you, oldest change first", body = TicketPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    Partner(contract): ReadingPartner,
    query: Result<Query<ListQuery>, ApiError>,
    cursor: Result<Cursor, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    q.validate().map_err(|_| ApiError::BadRequest { code: "bad-query", detail: "limit must be at least 1".into() })?;
    let max = state.settings.limits.max_page_size;
    let limit = q.limit.unwrap_or(state.settings.limits.default_page_size).min(max);
    let since = match &q.updated_since {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| ApiError::BadRequest {
                code: "bad-query",
                detail: format!("updated_since must be an RFC 3339 time such as 2026-11-22T10:00:00Z, got `{s}`"),
            })?
            .timestamp_millis(),
        None => i64::MIN,
    };
    let Cursor(after) = cursor?;
    let p = contract.id.clone();
    let rows = state.db.read(move |c| crate::sync::read::list(c, &p, since, after, limit)).await?;
    super::mark_seen(&state, rows.iter().map(|(t, x)| (x.clone(), t.version)).collect()).await;
    let next_cursor =
        (rows.len() as i64 == limit).then(|| rows.last().map(|(t, _)| Cursor::encode(t.updated_at, t.id))).flatten();
    let items = rows.iter().map(|(t, x)| view(&contract, t, x.partner_ticket_id.as_deref())).collect();
    Ok(HttpResponse::Ok().json(TicketPage { items, next_cursor }))
}
