//! `GET /api/ebond/v1/tickets/{partner_ticket_id}`: a ticket as the partner may read it (only
//! readable fields, in its vocabulary), with an ETag.

use super::{etag, view, TicketView};
use crate::api::audit::AuditTicket;
use crate::api::context::record_ticket;
use crate::api::extract::{Partner, ReadingPartner, TicketRef};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

#[utoipa::path(
    get, path = "/api/ebond/v1/tickets/{partner_ticket_id}", tag = "tickets",
    params(
        ("partner_ticket_id" = String, Path, description = "Your ticket id, or the hub number of a ticket shared with you"),
        ("If-None-Match" = Option<String>, Header, description = "304 when the ETag still matches"),
    ),
    responses(
        (status = 200, description = "The ticket in your vocabulary", body = TicketView),
        (status = 304, description = "Not modified"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown ticket", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    Partner(contract): ReadingPartner,
    reference: Result<TicketRef, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let TicketRef(reference) = reference?;
    let p = contract.id.clone();
    let (ticket, xref) = state.db.read(move |c| crate::sync::read::resolve(c, &p, &reference)).await?;
    record_ticket(&ticket.number);
    req.extensions_mut().insert(AuditTicket { id: ticket.id, number: ticket.number.clone() });
    super::mark_seen(&state, vec![(xref.clone(), ticket.version)]).await;
    let tag = etag(ticket.version);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*"));
    if unchanged {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, tag)).finish());
    }
    let view = view(&contract, &ticket, xref.partner_ticket_id.as_deref());
    Ok(HttpResponse::Ok().insert_header((header::ETAG, tag)).json(view))
}
