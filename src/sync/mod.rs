//! The sync engine: applies a partner's validated, mapped command to the canonical store in
//! one transaction (workflow rules, optimistic concurrency, journal, cross-reference, events,
//! outbox fan-out, audit row, idempotency record) and answers reads.
//!
//! [`write::apply`] is one function over a connection, so on SQLite the group-commit writer
//! (`store::writer`) runs many of them in one transaction, each behind a savepoint.

pub mod conflicts;
pub mod converge;
pub mod dry_run;
pub mod fanout;
pub mod read;
pub mod write;

use crate::contract::workflow::WorkflowViolation;
use crate::store::StoreError;

/// Domain refusals of a write or read, plus storage failures. Mapped to HTTP in
/// `api::problem`, and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no ticket `{reference}` is shared with this partner")]
    NotFound { reference: String },
    #[error("this partner may not create tickets")]
    CreateForbidden,
    #[error("ticket `{partner_ticket_id}` already exists as {number}")]
    Duplicate { partner_ticket_id: String, number: String },
    #[error("partner ticket id `{partner_ticket_id}` already refers to {number}")]
    PartnerIdTaken { partner_ticket_id: String, number: String },
    #[error("this ticket is already bonded as `{current}`; a partner ticket id cannot change")]
    PartnerIdImmutable { current: String, field: String },
    #[error("this partner may not move a ticket from `{from}` to `{to}`")]
    TransitionForbidden { from: String, to: String, allowed: Vec<String> },
    #[error("workflow violation")]
    Workflow(WorkflowViolation),
    #[error("state `{state}` requires {fields:?}")]
    MissingRequired { state: String, fields: Vec<String> },
    #[error("the ticket is at version {current}, not {given}")]
    StaleVersion { current: i64, given: i64 },
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("event {webhook_id} was already accepted")]
    Replayed { webhook_id: String },
    #[error("another party changed {} after the version you last saw", .fields.iter().map(|f| format!("`{}`", f.field)).collect::<Vec<_>>().join(", "))]
    EditConflict { fields: Vec<conflicts::ConflictFieldAnswer> },
    #[error("no conflict {id}")]
    ConflictNotFound { id: i64 },
    #[error("conflict {id} is {status}, not open")]
    ConflictClosed { id: i64, status: String },
    #[error("field `{field}`: {reason}")]
    ConflictChoice { field: String, reason: String },
    #[error("the work-notes endpoint needs write access to work_note")]
    WorkNoteForbidden,
    /// Not a refusal: a dry run's report, returned as an error so that its transaction is
    /// undone like a refused write's.
    #[error("dry run")]
    DryRun(Box<dry_run::DryRunReport>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        SyncError::Store(StoreError::from(e))
    }
}

/// Request facts every audit row carries.
#[derive(Debug, Clone)]
pub struct AuditInfo {
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub payload_sha256: String,
}

/// What an audit row says about the request's outcome.
#[derive(Debug, Clone, Default)]
pub struct AuditOutcome {
    pub partner: Option<String>,
    /// `accepted`, `rejected` or `replayed`.
    pub result: &'static str,
    pub status: u16,
    /// The problem code plus each field error's code, comma-separated (empty when accepted).
    pub error_codes: String,
    pub ticket: Option<(i64, String)>,
}

impl AuditInfo {
    /// The transaction-log row for this request: written in the write's transaction by the
    /// sync layer, or on its own by the API's audit middleware.
    pub fn row(&self, at: i64, outcome: AuditOutcome) -> crate::store::models::TransactionRow {
        let (ticket_id, ticket_number) = outcome.ticket.unzip();
        crate::store::models::TransactionRow {
            id: 0,
            at,
            partner: outcome.partner,
            request_id: self.request_id.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            payload_sha256: self.payload_sha256.clone(),
            result: outcome.result.to_string(),
            status: i32::from(outcome.status),
            error_codes: outcome.error_codes,
            ticket_id,
            ticket_number,
        }
    }
}
