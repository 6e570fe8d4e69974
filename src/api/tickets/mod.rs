//! `/api/ebond/v1/tickets`: partners create, update, annotate and read their tickets — one file
//! per action; this file holds what they share: the documented request and answer types, and
//! how an applied write is answered.

pub mod create;
pub mod list;
pub mod read;
pub mod update;
pub mod work_note;

use super::audit::{request_facts, Audited};
use super::context::record_ticket;
use super::problem::ApiError;
use super::AppState;
use crate::contract::inbound::Mapped;
use crate::contract::Contract;
use crate::sync::write::{IdempotencyKey, WriteCommand, WriteOp, WriteOutcome};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Answer to a write: the sync layer's summary, published under this name.
pub use crate::sync::write::TicketSummary as TicketWriteResponse;

/// The answer to an update or a work note: applied, or, for a dry run, what it would do.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum WriteOrDryRun {
    Applied(TicketWriteResponse),
    DryRun(Box<crate::sync::dry_run::DryRunReport>),
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

/// Applies a validated, mapped write in one transaction and answers it.
pub(super) async fn apply(
    state: &AppState,
    req: &HttpRequest,
    contract: Arc<Contract>,
    op: WriteOp,
    mapped: Mapped,
    if_match: Option<i64>,
    idempotency_key: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let dry_run = dry_run_requested(req);
    match commit(state, contract, op, mapped, if_match, idempotency_key, request_facts(req), dry_run).await {
        Ok(outcome) => Ok(write_response(state, outcome)),
        Err(ApiError::Sync(crate::sync::SyncError::DryRun(mut report))) => {
            // A partner learns that other parties would be told, not who they are or what they
            // would read (the CLI's `contracts try` shows it all to an operator).
            report.other_pushes = report.pushes.len();
            report.pushes.clear();
            Ok(dry_run_response(&report, None))
        }
        Err(e) => Err(e),
    }
}

/// `Prefer: return=dry-run` or `?dry_run=true`: report what the write would do, write nothing.
pub(crate) fn dry_run_requested(req: &HttpRequest) -> bool {
    let preferred = req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|p| p.trim().eq_ignore_ascii_case("return=dry-run")));
    let asked = req.query_string().split('&').any(|kv| {
        matches!(kv.split_once('='), Some((k, v)) if k == "dry_run" && (v.eq_ignore_ascii_case("true") || v == "1"))
    });
    preferred || asked
}

/// In a dry run a refusal is reported (200, `outcome: refused`, the problem the write would
/// get) rather than answered; a gateway failure (5xx) stays what it is.
pub(super) fn or_dry_run(dry_run: bool, result: Result<HttpResponse, ApiError>) -> Result<HttpResponse, ApiError> {
    match result {
        Err(e) if dry_run && !actix_web::ResponseError::status_code(&e).is_server_error() => {
            let status = actix_web::ResponseError::status_code(&e).as_u16();
            let problem = serde_json::to_value(e.problem()).unwrap_or(Value::Null);
            Ok(dry_run_response(&crate::sync::dry_run::DryRunReport::refused(status, problem), Some(e.audit_codes())))
        }
        other => other,
    }
}

/// A dry run's answer, audited as one (and with the codes of the refusal it reports).
fn dry_run_response(report: &crate::sync::dry_run::DryRunReport, codes: Option<String>) -> HttpResponse {
    let mut resp = HttpResponse::Ok().insert_header(("Preference-Applied", "return=dry-run")).json(report);
    resp.extensions_mut().insert(super::audit::AuditResult("dry_run"));
    if let Some(codes) = codes {
        resp.extensions_mut().insert(super::audit::AuditCodes(codes));
    }
    resp
}

/// Runs a validated, mapped write through the one write path, in one transaction (its audit
/// row included): what every API that writes tickets calls, before [`committed`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn commit(
    state: &AppState,
    contract: Arc<Contract>,
    op: WriteOp,
    mapped: Mapped,
    if_match: Option<i64>,
    idempotency_key: Option<String>,
    audit: crate::sync::AuditInfo,
    dry_run: bool,
) -> Result<WriteOutcome, ApiError> {
    // A dry run neither replays an earlier answer nor records one.
    let idempotency_key = idempotency_key.filter(|_| !dry_run);
    let idempotency = idempotency_key.map(|key| IdempotencyKey {
        request_hash: crate::util::sha256_hex(
            format!("{} {}\n{}", audit.method, audit.path, audit.payload_sha256).as_bytes(),
        ),
        key,
    });
    let registry = state.registry();
    let outcome = state
        .db
        .write(move |c| {
            crate::sync::write::apply(
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
                    from_record: false,
                    dry_run,
                },
            )
        })
        .await?;
    Ok(outcome)
}

/// After a write committed: the log line, a nudge to the outbox processor when the write fanned
/// out, and the operational webhook for conflicts.
pub(crate) fn committed(state: &AppState, outcome: &WriteOutcome) {
    record_ticket(&outcome.ticket.number);
    // Logged here, after the commit, and off the database writer's thread.
    if !outcome.replayed {
        tracing::info!(
            ticket = %outcome.ticket.number,
            version = outcome.ticket.version,
            events = ?outcome.events,
            outbox = ?outcome.fanned_out_to,
            "write committed"
        );
    }
    if !outcome.fanned_out_to.is_empty() {
        state.wake_outbox();
    }
    if !outcome.replayed {
        announce_conflicts(state, outcome);
    }
}

/// The answer to an applied write (after [`committed`]): status, ETag, `Location` on create,
/// the replay marker. Its audit row was written in the write's transaction.
pub(super) fn write_response(state: &AppState, outcome: WriteOutcome) -> HttpResponse {
    committed(state, &outcome);
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::ETAG, etag(outcome.ticket.version)));
    if outcome.created() {
        if let Some(pid) = &outcome.ticket.partner_ticket_id {
            resp.insert_header((
                header::LOCATION,
                format!("/api/ebond/v1/tickets/{}", crate::util::encode_path_segment(pid)),
            ));
        }
    }
    if outcome.replayed {
        resp.insert_header(("Idempotency-Replayed", "true"));
    }
    let mut resp = resp.json(outcome.ticket);
    resp.extensions_mut().insert(Audited);
    resp
}

/// Records that the partner has now seen these ticket versions (what conflict detection
/// compares with): one write for the whole answer, none when it had seen them all.
///
/// A failure is logged, not answered: the read itself succeeded, and a version not recorded
/// as seen only makes a later write of the partner conflict where it need not.
async fn mark_seen(state: &AppState, read: Vec<(crate::store::models::XrefRow, i64)>) {
    let behind = read.into_iter().filter(|(x, version)| x.seen_version < *version).map(|(x, v)| (x.id, v));
    record_seen(state, behind.collect()).await
}

/// [`mark_seen`] for cross-references already known to be behind: `(xref id, version)`.
pub(crate) async fn record_seen(state: &AppState, behind: Vec<(i64, i64)>) {
    if behind.is_empty() {
        return;
    }
    let n = behind.len();
    if let Err(e) = state.db.write(move |c| c.mark_seen_many(&behind).map_err(crate::store::StoreError::from)).await {
        tracing::warn!(error = %e, tickets = n, "could not record what the partner has seen");
    }
}

/// The operational webhook hears of a conflict the write opened and of those it superseded.
fn announce_conflicts(state: &AppState, outcome: &WriteOutcome) {
    let ticket = &outcome.ticket.number;
    if let Some(c) = outcome.ticket.conflict.as_ref().filter(|c| c.status == "open") {
        let fields: Vec<&str> = c.fields.iter().filter(|f| f.held).map(|f| f.field.as_str()).collect();
        let partner = &outcome.partner;
        state.alerts.notify(
            "conflict.opened",
            serde_json::json!({"conflict": c.id, "ticket": ticket, "partner": partner, "fields": fields}),
        );
    }
    for (id, partner) in &outcome.superseded {
        state.alerts.notify(
            "conflict.resolved",
            serde_json::json!({"conflict": id, "ticket": ticket, "partner": partner, "status": "superseded"}),
        );
    }
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A ticket as `contract`'s partner may read it.
fn view(contract: &Contract, ticket: &crate::domain::Ticket, pid: Option<&str>) -> TicketView {
    TicketView {
        number: ticket.number.clone(),
        partner_ticket_id: pid.map(str::to_string),
        version: ticket.version,
        updated_at: crate::util::ms_to_rfc3339(ticket.updated_at),
        fields: contract.render(ticket, pid),
    }
}
