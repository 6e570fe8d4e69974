//! Every error a client can see, and the one place it is mapped to HTTP: RFC 9457
//! `application/problem+json` with a stable `type` (`urn:ebond:problem:<code>`).
//!
//! Which error each layer returns:
//! - `store` returns [`StoreError`], already classified (conflict, transient, other): nothing
//!   above it looks at diesel;
//! - `auth` returns [`AuthError`], `contract` [`MapError`], `sync` [`SyncError`] (domain
//!   refusals, wrapping `StoreError`);
//! - handlers and extractors return [`ApiError`], built from those with `?`.
//!
//! Only this file maps errors to HTTP statuses. A transient store failure is 503 with `Retry-After` on
//! every path; an unexpected one is 500 with a generic message (its cause is logged once,
//! here, with the request id).

use crate::auth::AuthError;
use crate::contract::inbound::{FieldError, MapError};
use crate::contract::workflow::WorkflowViolation;
use crate::store::StoreError;
use crate::sync::SyncError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:ebond:problem:validation-failed`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Machine-readable code (the last segment of `type`).
    pub code: String,
    /// Every field problem in the payload, for `validation-failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Further members specific to the problem (fields, ticket, current_version, …).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson { line: usize, column: usize, message: String },
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("this endpoint needs an operator (admin) token")]
    AdminOnly,
    #[error("this operator credential is read-only: it may look, not act")]
    ReadOnlyOperator,
    #[error("this endpoint needs a partner token")]
    PartnerOnly,
    #[error("the partner may not write: {}", .0.join(", "))]
    ForbiddenFields(Vec<String>),
    #[error("the payload breaks the contract")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Sync(#[from] SyncError),
    #[error("{0}")]
    Pull(crate::pull::PullError),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("send the body as application/json, not `{got}`")]
    UnsupportedMediaType { got: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the contracts folder has errors")]
    ContractsRefused(Vec<crate::contract::ContractError>),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Sync(SyncError::Store(e))
    }
}

impl From<crate::pull::PullError> for ApiError {
    fn from(e: crate::pull::PullError) -> Self {
        match e {
            crate::pull::PullError::Store(s) => ApiError::Sync(SyncError::Store(s)),
            other => ApiError::Pull(other),
        }
    }
}

impl From<MapError> for ApiError {
    fn from(e: MapError) -> Self {
        match e {
            MapError::Invalid(errors) => ApiError::Validation(errors),
            MapError::Forbidden(fields) => ApiError::ForbiddenFields(fields),
        }
    }
}

impl ApiError {
    /// Status, stable code and title.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::MalformedJson { .. } => (S::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            ApiError::BadRequest { code, .. } => (S::BAD_REQUEST, code, "Bad request"),
            ApiError::Auth(a) => match a {
                AuthError::InvalidRequest(_) => (S::BAD_REQUEST, "invalid-request", "Invalid token request"),
                AuthError::UnsupportedGrantType => (S::BAD_REQUEST, "unsupported-grant-type", "Unsupported grant type"),
                AuthError::InvalidScope(_) => (S::BAD_REQUEST, "invalid-scope", "Invalid scope"),
                AuthError::InvalidClient => (S::UNAUTHORIZED, "invalid-client", "Client authentication failed"),
                AuthError::MissingToken => (S::UNAUTHORIZED, "missing-token", "Authentication required"),
                AuthError::InvalidToken => (S::UNAUTHORIZED, "invalid-token", "Invalid or expired token"),
                AuthError::InsufficientScope(_) => (S::FORBIDDEN, "insufficient-scope", "Insufficient scope"),
                AuthError::UnknownPartner(_) => (S::FORBIDDEN, "unknown-partner", "Unknown partner"),
                AuthError::LockedOut(_) => (S::TOO_MANY_REQUESTS, "locked-out", "Temporarily locked out"),
                AuthError::Signature(_) => (S::UNAUTHORIZED, "invalid-signature", "Invalid webhook signature"),
                AuthError::ReadOnly => (S::FORBIDDEN, "read-only-token", "Read-only token"),
                AuthError::SourceNotAllowed(_) => (S::FORBIDDEN, "source-not-allowed", "Source address not allowed"),
                AuthError::RetiredContractVersion(_) => {
                    (S::FORBIDDEN, "contract-version-retired", "Contract version no longer live")
                }
                AuthError::ClientCertificate(_) => (S::FORBIDDEN, "client-certificate", "Client certificate refused"),
                AuthError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate-limited", "Rate limit exceeded"),
                AuthError::Store(e) => store_parts(e),
                AuthError::Crypto(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
            ApiError::AdminOnly => (S::FORBIDDEN, "admin-only", "Operator endpoint"),
            ApiError::ReadOnlyOperator => (S::FORBIDDEN, "read-only-operator", "Read-only operator"),
            ApiError::PartnerOnly => (S::FORBIDDEN, "partner-only", "Partner endpoint"),
            ApiError::ForbiddenFields(_) => (S::FORBIDDEN, "forbidden-fields", "Fields not writable by this partner"),
            ApiError::Validation(_) => {
                (S::UNPROCESSABLE_ENTITY, "validation-failed", "The payload breaks the contract")
            }
            ApiError::Sync(s) => match s {
                SyncError::NotFound { .. } => (S::NOT_FOUND, "ticket-not-found", "Ticket not found"),
                SyncError::CreateForbidden => (S::FORBIDDEN, "create-forbidden", "Partner may not create tickets"),
                SyncError::Duplicate { .. } => (S::CONFLICT, "duplicate-ticket", "Ticket already exists"),
                SyncError::PartnerIdTaken { .. } => {
                    (S::CONFLICT, "partner-ticket-id-taken", "Partner ticket id in use")
                }
                SyncError::PartnerIdImmutable { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "partner-ticket-id-immutable", "Partner ticket id cannot change")
                }
                SyncError::TransitionForbidden { .. } => {
                    (S::FORBIDDEN, "transition-forbidden", "Transition not allowed for this partner")
                }
                SyncError::Workflow(WorkflowViolation::NoSuchTransition { .. }) => {
                    (S::UNPROCESSABLE_ENTITY, "invalid-transition", "Transition not in the workflow")
                }
                SyncError::Workflow(WorkflowViolation::NotInitial { .. }) => {
                    (S::UNPROCESSABLE_ENTITY, "invalid-initial-state", "Tickets cannot start in this state")
                }
                SyncError::MissingRequired { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "missing-required-fields", "Target state requires more fields")
                }
                SyncError::Replayed { .. } => (S::CONFLICT, "webhook-replayed", "Event already accepted"),
                SyncError::StaleVersion { .. } => (S::PRECONDITION_FAILED, "stale-version", "The ticket has changed"),
                SyncError::IdempotencyMismatch => {
                    (S::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused with another request")
                }
                SyncError::EditConflict { .. } => {
                    (S::CONFLICT, "edit-conflict", "Another party changed the field since you last saw it")
                }
                SyncError::ConflictNotFound { .. } => (S::NOT_FOUND, "conflict-not-found", "Conflict not found"),
                SyncError::ConflictClosed { .. } => (S::CONFLICT, "conflict-closed", "Conflict already closed"),
                SyncError::ConflictChoice { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "invalid-resolution", "The resolution cannot be applied")
                }
                SyncError::WorkNoteForbidden => {
                    (S::FORBIDDEN, "forbidden-fields", "Fields not writable by this partner")
                }
                SyncError::Store(e) => store_parts(e),
                // Answered as a report by the ticket handlers, never as a problem.
                SyncError::DryRun(_) => (S::OK, "dry-run", "Dry run"),
            },
            ApiError::Pull(p) => {
                use crate::pull::PullError as P;
                match p {
                    P::UnknownPartner(_) => (S::NOT_FOUND, "partner-not-found", "No such partner"),
                    P::NoPull(_) => (S::CONFLICT, "pull-not-configured", "The partner cannot be pulled"),
                    P::NoReader(_) => (S::CONFLICT, "read-not-configured", "The partner's tickets cannot be read"),
                    P::Running { .. } => (S::CONFLICT, "sync-running", "A run is already going on"),
                    P::RunNotFound { .. } => (S::NOT_FOUND, "run-not-found", "No such run"),
                    P::Partner(_) => (S::BAD_GATEWAY, "partner-failed", "The partner's system failed"),
                    P::Store(e) => store_parts(e),
                }
            }
            ApiError::PayloadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType { .. } => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::NotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            ApiError::ContractsRefused(_) => {
                (S::UNPROCESSABLE_ENTITY, "contracts-invalid", "The contracts folder has errors")
            }
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// Codes recorded in the audit log: the problem code plus each field error's code.
    pub fn audit_codes(&self) -> String {
        let mut codes = vec![self.code().to_string()];
        if let ApiError::Validation(errors) = self {
            codes.extend(errors.iter().map(|e| format!("{}:{}", e.field, e.code)));
        }
        codes.join(",")
    }

    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.parts();
        let mut extra = Map::new();
        let mut errors = None;
        let detail = match self {
            ApiError::Validation(list) => {
                errors = Some(list.clone());
                let n = list.len();
                format!(
                    "{n} field{} of the payload break{} the contract; see `errors`",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" }
                )
            }
            ApiError::ForbiddenFields(fields) => {
                extra.insert("fields".into(), json!(fields));
                format!("this partner may not write: {}", fields.join(", "))
            }
            ApiError::MalformedJson { line, column, .. } => {
                extra.insert("line".into(), json!(line));
                extra.insert("column".into(), json!(column));
                self.to_string()
            }
            ApiError::PayloadTooLarge { limit } => {
                extra.insert("limit_bytes".into(), json!(limit));
                self.to_string()
            }
            ApiError::ContractsRefused(list) => {
                let items: Vec<Value> = list
                    .iter()
                    .map(|e| json!({"file": e.file.display().to_string(), "line": e.line, "column": e.column, "detail": e.message}))
                    .collect();
                extra.insert("errors".into(), Value::Array(items));
                let n = list.len();
                format!(
                    "{n} error{} in the contracts folder (each in `errors`, with file, line and column); nothing was reloaded and the contracts in force stay",
                    if n == 1 { "" } else { "s" }
                )
            }
            ApiError::Sync(s) => sync_detail(s, &mut extra),
            ApiError::Pull(crate::pull::PullError::Running { run, .. }) => {
                if let Some(r) = run {
                    extra.insert("run".into(), json!(r));
                }
                self.to_string()
            }
            ApiError::Pull(crate::pull::PullError::Store(e)) => store_detail(e),
            ApiError::Auth(AuthError::Store(e)) => store_detail(e),
            ApiError::Internal(_) | ApiError::Auth(AuthError::Crypto(_)) => {
                "an internal error occurred; quote the request id to the operator".into()
            }
            other => other.to_string(),
        };
        Problem {
            type_: format!("urn:ebond:problem:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            code: code.into(),
            errors,
            extra,
        }
    }
}

fn sync_detail(s: &SyncError, extra: &mut Map<String, Value>) -> String {
    match s {
        SyncError::Duplicate { number, partner_ticket_id }
        | SyncError::PartnerIdTaken { number, partner_ticket_id } => {
            extra.insert("ticket".into(), json!(number));
            extra.insert("partner_ticket_id".into(), json!(partner_ticket_id));
            s.to_string()
        }
        SyncError::PartnerIdImmutable { current, field } => {
            extra.insert("fields".into(), json!([field]));
            extra.insert("partner_ticket_id".into(), json!(current));
            s.to_string()
        }
        SyncError::TransitionForbidden { from, to, allowed } => {
            extra.insert("from".into(), json!(from));
            extra.insert("to".into(), json!(to));
            extra.insert("allowed".into(), json!(allowed));
            format!("{s}; from `{from}` this partner may move to: {}", list_or_none(allowed))
        }
        SyncError::Workflow(WorkflowViolation::NoSuchTransition { from, to, allowed }) => {
            extra.insert("from".into(), json!(from));
            extra.insert("to".into(), json!(to));
            extra.insert("allowed".into(), json!(allowed));
            format!(
                "the workflow has no transition from `{from}` to `{to}`; from `{from}` it allows: {}",
                list_or_none(allowed)
            )
        }
        SyncError::Workflow(WorkflowViolation::NotInitial { state, initial }) => {
            extra.insert("allowed".into(), json!(initial));
            format!("a ticket cannot be created in state `{state}`; start it in: {}", initial.join(", "))
        }
        SyncError::MissingRequired { state, fields } => {
            extra.insert("fields".into(), json!(fields));
            format!("state `{state}` requires {}", fields.join(", "))
        }
        SyncError::StaleVersion { current, given } => {
            extra.insert("current_version".into(), json!(current));
            format!("If-Match named version {given}, but the ticket is at version {current}; re-read it and retry")
        }
        SyncError::EditConflict { fields } => {
            extra.insert("conflicts".into(), json!(fields));
            format!(
                "{s}; nothing was written: re-read the ticket and send your change again, or send If-Match to \
                 write only over the version you name"
            )
        }
        SyncError::ConflictChoice { field, .. } => {
            extra.insert("fields".into(), json!([field]));
            s.to_string()
        }
        SyncError::ConflictClosed { status, .. } => {
            extra.insert("conflict_status".into(), json!(status));
            s.to_string()
        }
        SyncError::Store(e) => store_detail(e),
        other => other.to_string(),
    }
}

const UNAVAILABLE: &str = "the database is unavailable or busy and the request was not applied (if the connection \
     was lost while committing, its outcome is unknown): retry after `Retry-After` seconds, with the same \
     Idempotency-Key for a write";

/// A storage failure as the client sees it: the store has already classified it.
fn store_parts(e: &StoreError) -> (StatusCode, &'static str, &'static str) {
    match e {
        StoreError::Conflict(_) => {
            (StatusCode::CONFLICT, "concurrent-write", "A concurrent request wrote the same data")
        }
        e if e.is_transient() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
    }
}

fn store_detail(e: &StoreError) -> String {
    match e {
        StoreError::Conflict(_) => {
            "a concurrent request (for instance a retry with the same Idempotency-Key) wrote the same data; retry"
                .into()
        }
        e if e.is_transient() => UNAVAILABLE.into(),
        _ => "an internal error occurred; quote the request id to the operator".into(),
    }
}

fn list_or_none(list: &[String]) -> String {
    if list.is_empty() {
        "nothing".into()
    } else {
        list.join(", ")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The cause is logged here, once; the client only sees a generic message.
            tracing::error!(error = %self, cause = ?self, "request failed");
        }
        let mut resp = HttpResponse::build(status);
        resp.content_type(PROBLEM_JSON);
        if status == StatusCode::UNAUTHORIZED {
            let err = match self {
                ApiError::Auth(AuthError::MissingToken) => String::new(),
                _ => ", error=\"invalid_token\"".into(),
            };
            resp.insert_header((header::WWW_AUTHENTICATE, format!("Bearer realm=\"ebond\"{err}")));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.insert_header((header::RETRY_AFTER, "1"));
        }
        match self {
            ApiError::Auth(AuthError::RateLimited { retry_after_secs, .. }) => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Auth(AuthError::LockedOut(secs)) => {
                resp.insert_header((header::RETRY_AFTER, secs.max(&1).to_string()));
            }
            _ => {}
        }
        let mut resp = resp.json(self.problem());
        // For the audit middleware, which records rejected requests with these codes.
        resp.extensions_mut().insert(super::audit::AuditCodes(self.audit_codes()));
        resp
    }
}
