//! `POST /api/ebond/v1/tickets/{partner_ticket_id}/work-notes`: a partner appends a work note
//! (its entry id makes a retry add nothing).

use super::{WorkNoteBody, WriteOrDryRun};
use crate::api::extract::{Body, IdempotencyKeyHeader, IfMatch, Partner, TicketRef, WritingPartner};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::contract::inbound::{FieldError, Mapped};
use crate::domain::{JournalInput, JournalKind};
use crate::sync::write::WriteOp;
use crate::sync::SyncError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use validator::Validate;

#[utoipa::path(
    post, path = "/api/ebond/v1/tickets/{partner_ticket_id}/work-notes", tag = "tickets",
    request_body(content = WorkNoteBody, content_type = "application/json"),
    params(
        ("partner_ticket_id" = String, Path, description = "Your ticket id, or the hub number of a ticket shared with you"),
        ("If-Match" = Option<String>, Header, description = "ETag (version) you last read; 412 if the ticket changed since"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retried request"),
        ("Prefer" = Option<String>, Header, description = "`return=dry-run`: answer what the write would do (changes, derived values, transition, events, each partner's push) and write nothing"),
        ("dry_run" = Option<bool>, Query, description = "`true`: the same as `Prefer: return=dry-run`"),
    ),
    responses(
        (status = 200, description = "Note added (or already there); a dry run answers what it would do and writes nothing", body = WriteOrDryRun),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Partner may not write work notes", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown ticket", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid note", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_work_note(
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
        if !contract.may_write(crate::domain::fields::WORK_NOTE) {
            return Err(SyncError::WorkNoteForbidden.into());
        }
        let mapped = work_note(json)?;
        let (IfMatch(if_match), IdempotencyKeyHeader(key)) = (if_match?, key?);
        let TicketRef(reference) = reference?;
        let op = WriteOp::Update { reference };
        super::apply(&state, &req, contract, op, mapped, if_match, key).await
    }
    .await;
    super::or_dry_run(dry_run, result)
}

/// The work-notes body, checked by serde (types, unknown members) and validator (lengths).
fn work_note(json: Value) -> Result<Mapped, ApiError> {
    let body: WorkNoteBody = serde_path_to_error::deserialize(json).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ApiError::Validation(vec![FieldError::new(field, "type", e.inner().to_string())])
    })?;
    body.validate().map_err(|errs| {
        ApiError::Validation(
            errs.field_errors()
                .iter()
                .flat_map(|(field, list)| {
                    list.iter().map(move |e| {
                        let msg = match (e.params.get("min"), e.params.get("max")) {
                            (Some(min), Some(max)) => format!("`{field}` must be {min} to {max} characters"),
                            _ => format!("`{field}` is invalid"),
                        };
                        FieldError::new(field.to_string(), "length", msg)
                    })
                })
                .collect(),
        )
    })?;
    Ok(Mapped {
        journal: vec![JournalInput { kind: JournalKind::WorkNote, body: body.text, entry_id: body.entry_id }],
        ..Mapped::default()
    })
}
