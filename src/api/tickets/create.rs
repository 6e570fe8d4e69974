//! `POST /api/ebond/v1/tickets`: a partner creates a ticket, carrying its own ticket id.

use super::{TicketCreate, TicketWriteResponse};
use crate::api::extract::{Body, IdempotencyKeyHeader, IfMatch, Partner, WritingPartner};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::contract::inbound::Op;
use crate::sync::dry_run::DryRunReport;
use crate::sync::write::WriteOp;
use actix_web::{web, HttpRequest, HttpResponse};

#[utoipa::path(
    post, path = "/api/ebond/v1/tickets", tag = "tickets",
    request_body(content = TicketCreate, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retried request"),
        ("Prefer" = Option<String>, Header, description = "`return=dry-run`: answer what the write would do (changes, derived values, transition, events, each partner's push) and write nothing"),
        ("dry_run" = Option<bool>, Query, description = "`true`: the same as `Prefer: return=dry-run`"),
    ),
    responses(
        (status = 201, description = "Created", body = TicketWriteResponse),
        (status = 200, description = "Dry run: what the create would do (or why it would be refused); nothing was written", body = DryRunReport),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden field or operation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Ticket already exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Contract violation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Partner(contract): WritingPartner,
    body: Body,
    if_match: Result<IfMatch, ApiError>,
    key: Result<IdempotencyKeyHeader, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let dry_run = super::dry_run_requested(&req);
    let result = async {
        let json = body.json().await?;
        let mapped = contract.map_inbound(&json, Op::Create);
        crate::api::shadow::evaluate(&state, &req, &contract, &json, Op::Create, &mapped);
        let mapped = mapped?;
        // A create has no version to match, but a malformed header is still refused.
        let IfMatch(_) = if_match?;
        super::apply(&state, &req, contract, WriteOp::Create, mapped, None, key?.0).await
    }
    .await;
    super::or_dry_run(dry_run, result)
}
