//! `PATCH /api/ebond/v1/tickets/{partner_ticket_id}`: a partner changes its ticket (only what it
//! sends; `If-Match` guards against lost updates).

use super::{TicketUpdate, TicketWriteResponse, WriteOrDryRun};
use crate::api::extract::{Body, IdempotencyKeyHeader, IfMatch, Partner, TicketRef, WritingPartner};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::contract::inbound::Op;
use crate::sync::write::WriteOp;
use actix_web::{web, HttpRequest, HttpResponse};

#[utoipa::path(
    patch, path = "/api/ebond/v1/tickets/{partner_ticket_id}", tag = "tickets",
    request_body(content = TicketUpdate, content_type = "application/json"),
    params(
        ("partner_ticket_id" = String, Path, description = "Your ticket id, or the hub number of a ticket shared with you"),
        ("If-Match" = Option<String>, Header, description = "ETag (version) you last read; 412 if the ticket changed since"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retried request"),
        ("Prefer" = Option<String>, Header, description = "`return=dry-run`: answer what the write would do (changes, derived values, transition, events, each partner's push) and write nothing"),
        ("dry_run" = Option<bool>, Query, description = "`true`: the same as `Prefer: return=dry-run`"),
    ),
    responses(
        (status = 200, description = "Updated (or unchanged). When another party changed a field you send after the version you last saw, `conflict` lists it: held fields wait for an operator, the rest was written. A dry run answers what the update would do (or why it would be refused) and writes nothing", body = WriteOrDryRun),
        (status = 202, description = "Every field you change conflicts with another party's change made after the version you last saw: nothing was written but the conflict record in `conflict`, which an operator resolves", body = TicketWriteResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden field or transition", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown ticket", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A field your contract marks `on_conflict = \"reject\"` was changed by another party after the version you last saw (`conflicts` has the current values); nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Contract or workflow violation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    Partner(contract): WritingPartner,
    reference: Result<TicketRef, ApiError>,
    body: Body,
    if_match: Result<IfMatch, ApiError>,
    key: Result<IdempotencyKeyHeader, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let dry_run = super::dry_run_requested(&req);
    let result = async {
        let json = body.json().await?;
        let mapped = contract.map_inbound(&json, Op::Update);
        crate::api::shadow::evaluate(&state, &req, &contract, &json, Op::Update, &mapped);
        let mapped = mapped?;
        let (IfMatch(if_match), IdempotencyKeyHeader(key)) = (if_match?, key?);
        // An id no ticket can have is "not found", as an unknown one is, after every other check.
        let TicketRef(reference) = reference?;
        let op = WriteOp::Update { reference };
        super::apply(&state, &req, contract, op, mapped, if_match, key).await
    }
    .await;
    super::or_dry_run(dry_run, result)
}
