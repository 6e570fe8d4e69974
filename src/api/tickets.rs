//! `/api/ebond/v1/tickets`: partners create, update, annotate and read their tickets.

use super::context::record_ticket;
use super::inbound::{audit, audit_info, authenticate, parse_json_limited, partner_of, read_body, require_json};
use super::problem::{ApiError, Problem};
use super::AppState;
use crate::contract::inbound::{FieldError, Mapped, Op};
use crate::domain::{JournalInput, JournalKind};
use crate::sync::write::{apply, IdempotencyKey, WriteCommand, WriteOp};
use crate::sync::AuditInfo;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Answer to a write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketWriteResponse {
    /// The hub's ticket number, e.g. `EB0000042`.
    pub number: String,
    /// Your ticket id, once bonded.
    pub partner_ticket_id: Option<String>,
    /// The state in your contract's vocabulary.
    #[schema(value_type = Object)]
    pub state: Value,
    pub version: i64,
    pub updated_at: String,
}

/// A ticket as you may read it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub number: String,
    pub partner_ticket_id: Option<String>,
    pub version: i64,
    pub updated_at: String,
    /// The fields your contract lets you read, under your names and values.
    #[schema(value_type = TicketFields)]
    pub fields: Value,
}

/// The readable fields of a ticket (shape per partner: see `/partners/{id}/openapi.json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketFields(pub std::collections::HashMap<String, Value>);

/// A new ticket in your vocabulary (shape per partner: see `/partners/{id}/openapi.json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketCreate(pub std::collections::HashMap<String, Value>);

/// Changed fields in your vocabulary (shape per partner: see `/partners/{id}/openapi.json`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketUpdate(pub std::collections::HashMap<String, Value>);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A work note (internal journal entry).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkNoteBody {
    #[validate(length(min = 1, max = 32000))]
    pub text: String,
    /// Your id for the note: a retried request with the same id adds nothing.
    #[validate(length(min = 1, max = 128))]
    pub entry_id: Option<String>,
}

#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only tickets changed at or after this RFC 3339 time.
    #[param(format = DateTime)]
    pub updated_since: Option<String>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// Page size (1 to the configured maximum, default 100).
    #[validate(range(min = 1))]
    #[param(minimum = 1)]
    pub limit: Option<i64>,
}

enum Kind {
    Create,
    Update(String),
    WorkNote(String),
}

#[utoipa::path(
    post, path = "/api/ebond/v1/tickets", tag = "tickets",
    request_body(content = TicketCreate, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retried request")),
    responses(
        (status = 201, description = "Created", body = TicketWriteResponse),
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
pub async fn create(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    write(&state, req, payload, Kind::Create).await
}

#[utoipa::path(
    patch, path = "/api/ebond/v1/tickets/{partner_ticket_id}", tag = "tickets",
    request_body(content = TicketUpdate, content_type = "application/json"),
    params(
        ("partner_ticket_id" = String, Path, description = "Your ticket id, or the hub number of a ticket shared with you"),
        ("If-Match" = Option<String>, Header, description = "ETag (version) you last read; 412 if the ticket changed since"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retried request"),
    ),
    responses(
        (status = 200, description = "Updated (or unchanged)", body = TicketWriteResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Forbidden field or transition", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown ticket", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Contract or workflow violation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    write(&state, req, payload, Kind::Update(path.into_inner())).await
}

#[utoipa::path(
    post, path = "/api/ebond/v1/tickets/{partner_ticket_id}/work-notes", tag = "tickets",
    request_body(content = WorkNoteBody, content_type = "application/json"),
    params(
        ("partner_ticket_id" = String, Path, description = "Your ticket id, or the hub number of a ticket shared with you"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retried request"),
    ),
    responses(
        (status = 200, description = "Note added (or already there)", body = TicketWriteResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Partner may not write work notes", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown ticket", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid note", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_work_note(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    write(&state, req, payload, Kind::WorkNote(path.into_inner())).await
}

/// The write pipeline: auth → content type → bounded body → JSON → contract → one
/// transaction. Rejections are audited here; accepted writes inside their transaction.
async fn write(state: &AppState, req: HttpRequest, payload: web::Payload, kind: Kind) -> HttpResponse {
    let mut partner = None;
    let mut info = audit_info(&req, b"");
    let reference = match &kind {
        Kind::Create => None,
        Kind::Update(r) | Kind::WorkNote(r) => Some(r.clone()),
    };
    let result: Result<_, ApiError> = async {
        let principal = authenticate(state, &req).await?;
        partner = principal.partner.clone();
        let contract = partner_of(state, &req, &principal, true)?;
        partner = Some(contract.id.clone());
        require_json(&req)?;
        let body = read_body(&req, payload, state.settings.limits.max_body_bytes).await?;
        info = audit_info(&req, &body);
        let json = parse_json_limited(&body, state.settings.security.max_json_depth)?;
        let (op, mapped) = match &kind {
            Kind::Create => (WriteOp::Create, contract.map_inbound(&json, Op::Create)?),
            Kind::Update(r) => (WriteOp::Update { reference: r.clone() }, contract.map_inbound(&json, Op::Update)?),
            Kind::WorkNote(r) => {
                if !contract.may_write(crate::domain::fields::WORK_NOTE) {
                    return Err(ApiError::Sync(crate::sync::SyncError::WorkNoteForbidden));
                }
                (WriteOp::Update { reference: r.clone() }, work_note(json)?)
            }
        };
        let if_match = if_match(&req)?;
        let idempotency = idempotency_key(&req, &info)?;
        let registry = state.registry.clone();
        let audit = info.clone();
        let outcome = state
            .db
            .write(move |c| {
                apply(
                    c,
                    WriteCommand {
                        registry: &registry,
                        contract: &contract,
                        op,
                        mapped,
                        if_match,
                        idempotency,
                        audit,
                        now: crate::util::now_ms(),
                    },
                )
            })
            .await?;
        Ok(outcome)
    }
    .await;
    match result {
        Ok(outcome) => write_response(state, outcome),
        Err(e) => {
            let status = e.status_code().as_u16();
            audit(state, info, partner, reference, "rejected", status, e.audit_codes()).await;
            e.error_response()
        }
    }
}

/// The answer to an applied write: status, ETag, `Location` on create, the replay marker; and
/// a nudge to the outbox processor when the write fanned out.
pub(super) fn write_response(state: &AppState, outcome: crate::sync::write::WriteOutcome) -> HttpResponse {
    record_ticket(&outcome.ticket_number);
    // Logged here, after the commit, and off the database writer's thread.
    if !outcome.replayed {
        tracing::info!(
            ticket = %outcome.ticket_number,
            version = outcome.version,
            events = ?outcome.events,
            outbox = ?outcome.fanned_out_to,
            "write committed"
        );
    }
    if !outcome.fanned_out_to.is_empty() {
        state.wake.notify_one();
    }
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::ETAG, etag(outcome.version)));
    if status == StatusCode::CREATED {
        if let Some(pid) = outcome.body.get("partner_ticket_id").and_then(Value::as_str) {
            resp.insert_header((
                header::LOCATION,
                format!("/api/ebond/v1/tickets/{}", crate::util::encode_path_segment(pid)),
            ));
        }
    }
    if outcome.replayed {
        resp.insert_header(("Idempotency-Replayed", "true"));
    }
    resp.json(outcome.body)
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
                            (Some(min), Some(max)) => {
                                format!("`{field}` must be {min} to {max} characters")
                            }
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

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match: "3"` (or `W/"3"`, or `*` for any version).
fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest {
        code: "bad-if-match",
        detail: "If-Match must be the ETag from a read or write, e.g. \"3\"".into(),
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s == "*" {
        return Ok(None);
    }
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"').parse::<i64>().map(Some).map_err(|_| bad())
}

fn idempotency_key(req: &HttpRequest, info: &AuditInfo) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().ok().map(|k| k.trim().trim_matches('"').to_string()).filter(|k| (1..=255).contains(&k.len()));
    let key = key.ok_or_else(|| ApiError::BadRequest {
        code: "bad-idempotency-key",
        detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
    })?;
    let request_hash =
        crate::util::sha256_hex(format!("{} {}\n{}", info.method, info.path, info.payload_sha256).as_bytes());
    Ok(Some(IdempotencyKey { key, request_hash }))
}

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
pub async fn read(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let reference = path.into_inner();
    let info = audit_info(&req, b"");
    let mut partner = None;
    let result: Result<HttpResponse, ApiError> = async {
        let principal = authenticate(&state, &req).await?;
        partner = principal.partner.clone();
        let contract = partner_of(&state, &req, &principal, false)?;
        partner = Some(contract.id.clone());
        let (p, r) = (contract.id.clone(), reference.clone());
        let (ticket, xref) = state.db.read(move |c| crate::sync::read::resolve(c, &p, &r)).await?;
        record_ticket(&ticket.number);
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
    .await;
    finish_read(&state, info, partner, Some(reference), result).await
}

fn view(contract: &crate::contract::Contract, ticket: &crate::domain::Ticket, pid: Option<&str>) -> TicketView {
    TicketView {
        number: ticket.number.clone(),
        partner_ticket_id: pid.map(str::to_string),
        version: ticket.version,
        updated_at: crate::util::ms_to_rfc3339(ticket.updated_at),
        fields: contract.render(ticket, pid),
    }
}

async fn finish_read(
    state: &AppState,
    info: AuditInfo,
    partner: Option<String>,
    reference: Option<String>,
    result: Result<HttpResponse, ApiError>,
) -> HttpResponse {
    match result {
        Ok(resp) => {
            audit(state, info, partner, reference, "accepted", resp.status().as_u16(), String::new()).await;
            resp
        }
        Err(e) => {
            audit(state, info, partner, reference, "rejected", e.status_code().as_u16(), e.audit_codes()).await;
            e.error_response()
        }
    }
}

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
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let info = audit_info(&req, b"");
    let mut partner = None;
    let result: Result<HttpResponse, ApiError> = async {
        let principal = authenticate(&state, &req).await?;
        partner = principal.partner.clone();
        let contract = partner_of(&state, &req, &principal, false)?;
        partner = Some(contract.id.clone());
        let q: ListQuery = serde_urlencoded::from_str(req.query_string())
            .map_err(|e| ApiError::BadRequest { code: "bad-query", detail: format!("query string: {e}") })?;
        q.validate()
            .map_err(|_| ApiError::BadRequest { code: "bad-query", detail: "limit must be at least 1".into() })?;
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
        let after = q.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let p = contract.id.clone();
        let rows = state.db.read(move |c| crate::sync::read::list(c, &p, since, after, limit)).await?;
        let next_cursor = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|(t, _)| B64URL.encode(format!("{}:{}", t.updated_at, t.id))))
            .flatten();
        let items = rows.iter().map(|(t, x)| view(&contract, t, x.partner_ticket_id.as_deref())).collect();
        Ok(HttpResponse::Ok().json(TicketPage { items, next_cursor }))
    }
    .await;
    finish_read(&state, info, partner, None, result).await
}

fn decode_cursor(s: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::BadRequest { code: "bad-cursor", detail: "cursor is not one this server issued".into() };
    let raw = B64URL.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}
