//! Rows as diesel reads and writes them, and their conversion to the domain model.

use super::schema::*;
use super::StoreError;
use crate::domain::Ticket;
use diesel::prelude::*;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tickets, treat_none_as_null = true)]
pub struct TicketRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub number: String,
    pub kind: String,
    pub short_description: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    pub impact: Option<i64>,
    pub urgency: Option<i64>,
    pub priority: Option<i64>,
    pub state: String,
    pub hold_reason: Option<String>,
    pub assignment_group: Option<String>,
    pub assigned_to: Option<String>,
    pub caller: Option<String>,
    pub configuration_item: Option<String>,
    pub resolution_code: Option<String>,
    pub resolution_notes: Option<String>,
    pub estimated_completion: Option<String>,
    pub sla_due: Option<String>,
    pub attributes: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub updated_by: String,
    /// Who last set each field, at which version (JSON of [`crate::domain::Stamps`]).
    pub field_stamps: String,
    pub open_conflicts: i64,
}

fn text(v: &Map<String, Value>, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn int(v: &Map<String, Value>, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

impl TicketRow {
    pub fn into_ticket(self) -> Result<Ticket, StoreError> {
        let mut values = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                values.insert(k.to_string(), v);
            }
        };
        put("kind", Some(self.kind.into()));
        put("short_description", self.short_description.map(Value::from));
        put("description", self.description.map(Value::from));
        put("category", self.category.map(Value::from));
        put("subcategory", self.subcategory.map(Value::from));
        put("impact", self.impact.map(Value::from));
        put("urgency", self.urgency.map(Value::from));
        put("priority", self.priority.map(Value::from));
        put("state", Some(self.state.into()));
        put("hold_reason", self.hold_reason.map(Value::from));
        put("assignment_group", self.assignment_group.map(Value::from));
        put("assigned_to", self.assigned_to.map(Value::from));
        put("caller", self.caller.map(Value::from));
        put("configuration_item", self.configuration_item.map(Value::from));
        put("resolution_code", self.resolution_code.map(Value::from));
        put("resolution_notes", self.resolution_notes.map(Value::from));
        put("estimated_completion", self.estimated_completion.map(Value::from));
        put("sla_due", self.sla_due.map(Value::from));
        let attrs: Map<String, Value> = serde_json::from_str(&self.attributes)
            .map_err(|e| StoreError::Corrupt(format!("ticket {} attributes: {e}", self.number)))?;
        for (k, v) in attrs {
            values.insert(format!("{}{k}", crate::domain::fields::ATTRIBUTE_PREFIX), v);
        }
        let stamps = serde_json::from_str(&self.field_stamps)
            .map_err(|e| StoreError::Corrupt(format!("ticket {} field stamps: {e}", self.number)))?;
        Ok(Ticket {
            id: self.id,
            number: self.number,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
            updated_by: self.updated_by,
            values,
            stamps,
            open_conflicts: self.open_conflicts,
        })
    }

    pub fn from_ticket(t: &Ticket) -> TicketRow {
        let v = &t.values;
        let attrs: Map<String, Value> = v
            .iter()
            .filter_map(|(k, val)| {
                let name = k.strip_prefix(crate::domain::fields::ATTRIBUTE_PREFIX)?;
                (!val.is_null()).then(|| (name.to_string(), val.clone()))
            })
            .collect();
        TicketRow {
            id: t.id,
            number: t.number.clone(),
            kind: text(v, "kind").unwrap_or_else(|| "incident".into()),
            short_description: text(v, "short_description"),
            description: text(v, "description"),
            category: text(v, "category"),
            subcategory: text(v, "subcategory"),
            impact: int(v, "impact"),
            urgency: int(v, "urgency"),
            priority: int(v, "priority"),
            state: text(v, "state").unwrap_or_default(),
            hold_reason: text(v, "hold_reason"),
            assignment_group: text(v, "assignment_group"),
            assigned_to: text(v, "assigned_to"),
            caller: text(v, "caller"),
            configuration_item: text(v, "configuration_item"),
            resolution_code: text(v, "resolution_code"),
            resolution_notes: text(v, "resolution_notes"),
            estimated_completion: text(v, "estimated_completion"),
            sla_due: text(v, "sla_due"),
            attributes: Value::Object(attrs).to_string(),
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
            created_by: t.created_by.clone(),
            updated_by: t.updated_by.clone(),
            // A map of plain values always serialises.
            field_stamps: serde_json::to_string(&t.stamps).unwrap_or_else(|_| "{}".into()),
            open_conflicts: t.open_conflicts,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = xrefs)]
pub struct XrefRow {
    pub id: i64,
    pub partner: String,
    pub partner_ticket_id: Option<String>,
    pub ticket_id: i64,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The highest ticket version the partner is known to have seen.
    pub seen_version: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = xrefs)]
pub struct NewXref<'a> {
    pub partner: &'a str,
    pub partner_ticket_id: Option<&'a str>,
    pub ticket_id: i64,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub seen_version: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = journal)]
pub struct NewJournal<'a> {
    pub ticket_id: i64,
    pub kind: &'a str,
    pub author_partner: &'a str,
    pub partner_entry_id: Option<&'a str>,
    pub body: &'a str,
    pub created_at: i64,
    /// The ticket version the entry belongs to.
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = journal)]
pub struct JournalRow {
    pub id: i64,
    pub ticket_id: i64,
    pub kind: String,
    pub author_partner: String,
    pub partner_entry_id: Option<String>,
    pub body: String,
    pub created_at: i64,
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = transactions)]
pub struct TransactionRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub at: i64,
    pub partner: Option<String>,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub payload_sha256: String,
    pub result: String,
    pub status: i32,
    pub error_codes: String,
    pub ticket_id: Option<i64>,
    pub ticket_number: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutbox {
    pub partner: String,
    pub ticket_id: i64,
    pub event: String,
    pub delivery_id: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub partner: String,
    pub ticket_id: i64,
    pub event: String,
    pub delivery_id: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub lease_owner: Option<String>,
    pub last_status: Option<i32>,
    pub last_response: Option<String>,
    pub delivered_at: Option<i64>,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = delivery_attempts)]
pub struct AttemptRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub outbox_id: i64,
    pub partner: String,
    pub attempt: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub response_excerpt: Option<String>,
    pub worker: String,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRow {
    pub partner: String,
    pub key: String,
    pub request_hash: String,
    pub status: i32,
    pub response_body: String,
    pub ticket_id: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct CredentialRow {
    pub id: i64,
    pub client_id: String,
    pub secret_hash: String,
    pub partner: Option<String>,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub previous_secret_hash: Option<String>,
    pub previous_valid_until: Option<i64>,
    /// `client` or `login` (see [`CredentialKind`](crate::auth::CredentialKind)).
    pub kind: String,
    /// The contract major version the credential is bound to (`None`: the partner's default).
    pub contract_major: Option<i64>,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = auth_events)]
pub struct AuthEventRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub at: i64,
    pub client_id: Option<String>,
    pub source: String,
    pub outcome: String,
    pub reason: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = credentials)]
pub struct NewCredential<'a> {
    pub client_id: &'a str,
    pub secret_hash: &'a str,
    pub partner: Option<&'a str>,
    pub scope: &'a str,
    pub created_at: i64,
    pub kind: &'a str,
    pub contract_major: Option<i64>,
}

/// A refresh token of the Table-API facade's OAuth grants (stored by its SHA-256 only).
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub credential_id: i64,
    pub partner: String,
    pub scope: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRow {
    pub token_hash: String,
    pub credential_id: i64,
    pub partner: Option<String>,
    pub scope: String,
    pub expires_at: i64,
    pub created_at: i64,
    /// Copied from the credential at issue.
    pub contract_major: Option<i64>,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = conflicts, treat_none_as_null = true)]
pub struct ConflictRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub ticket_id: i64,
    pub ticket_number: String,
    pub partner: String,
    pub request_id: String,
    pub status: String,
    pub seen_version: i64,
    pub ticket_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolution_comment: Option<String>,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = conflict_fields)]
pub struct ConflictFieldRow {
    pub conflict_id: i64,
    pub field: String,
    pub base: String,
    pub proposed: String,
    pub current: String,
    pub current_by: String,
    pub current_at: i64,
    pub current_version: i64,
    pub disposition: String,
    pub chosen: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sync_jobs)]
pub struct SyncJobRow {
    pub job: String,
    pub partner: String,
    pub watermark: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
    pub last_run_id: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = sync_runs)]
pub struct SyncRunRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub kind: String,
    pub partner: String,
    pub started_by: String,
    pub dry_run: bool,
    pub scope: String,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub since: Option<i64>,
    pub watermark: Option<i64>,
    pub counts: String,
    pub message: Option<String>,
    pub owner: String,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = sync_run_errors)]
pub struct SyncRunErrorRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub run_id: i64,
    pub partner_ticket_id: Option<String>,
    pub record_sha256: String,
    pub errors: String,
    pub at: i64,
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = reconcile_items)]
pub struct ReconcileItemRow {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub run_id: i64,
    pub partner: String,
    pub ticket_id: Option<i64>,
    pub ticket_number: Option<String>,
    pub partner_ticket_id: Option<String>,
    pub kind: String,
    pub fields: String,
    pub cause: String,
    pub action: String,
    pub at: i64,
}
