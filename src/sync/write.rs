//! One inbound write, start to commit, as a single function over a connection.

use super::fanout::{fan_out, Change};
use super::read::resolve_xref;
use super::{AuditInfo, AuditOutcome, SyncError};
use crate::contract::inbound::Mapped;
use crate::contract::workflow::derive_priority;
use crate::contract::{Contract, Registry};
use crate::domain::events;
use crate::domain::ids::TicketReference;
use crate::domain::{JournalInput, JournalKind, Ticket};
use crate::store::audit::AuditRepo;
use crate::store::models::{IdempotencyRow, NewJournal, NewXref, TicketRow, XrefRow};
use crate::store::tickets::TicketRepo;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What the partner asked for.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Create,
    /// Update the ticket the partner calls `reference`.
    Update {
        reference: TicketReference,
    },
}

/// A validated, mapped write ready to be applied.
pub struct WriteCommand<'a> {
    pub registry: &'a Registry,
    pub contract: &'a Contract,
    pub op: WriteOp,
    pub mapped: Mapped,
    /// Version from `If-Match`, when given.
    pub if_match: Option<i64>,
    pub idempotency: Option<IdempotencyKey>,
    pub audit: AuditInfo,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

/// What an applied write did (already committed).
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// A new ticket (or, replayed, the first answer was a create).
    pub created: bool,
    /// The ticket as the writing partner sees it now.
    pub ticket: TicketSummary,
    /// Replayed from an earlier request with the same Idempotency-Key.
    pub replayed: bool,
    /// Partners an outbox row was written for.
    pub fanned_out_to: Vec<String>,
    /// Lifecycle events the write raised.
    pub events: Vec<&'static str>,
}

/// A ticket's identity, version and state in one partner's vocabulary: what a write answers
/// (published as `TicketWriteResponse`), and what an idempotency record replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TicketWriteResponse, description = "Answer to a write.")]
pub struct TicketSummary {
    /// The hub's ticket number, e.g. `EB0000042`.
    pub number: String,
    /// Your ticket id, once bonded.
    pub partner_ticket_id: Option<String>,
    /// The state in your contract's vocabulary.
    pub state: String,
    pub version: i64,
    pub updated_at: String,
}

/// The HTTP status the API answers an applied write with. The audit row and the idempotency
/// record, both written in the write's own transaction, keep it.
pub fn answer_status(created: bool) -> u16 {
    if created {
        201
    } else {
        200
    }
}

/// Applies `cmd` on `c`, which must already be inside a transaction.
pub fn apply<C: TicketRepo + AuditRepo + ?Sized>(c: &mut C, cmd: WriteCommand) -> Result<WriteOutcome, SyncError> {
    let partner = cmd.contract.id.as_str();
    if let Some(idem) = &cmd.idempotency {
        if let Some(prev) = c.idempotency_get(partner, &idem.key)? {
            if prev.request_hash != idem.request_hash {
                return Err(SyncError::IdempotencyMismatch);
            }
            let ticket: TicketSummary = serde_json::from_str(&prev.response_body)
                .map_err(|e| StoreError::Corrupt(format!("idempotency record {} of {partner}: {e}", idem.key)))?;
            audit_row(c, &cmd, "replayed", prev.status as u16, prev.ticket_id, Some(&ticket.number))?;
            return Ok(WriteOutcome {
                created: prev.status == i32::from(answer_status(true)),
                ticket,
                replayed: true,
                fanned_out_to: vec![],
                events: Vec::new(),
            });
        }
    }
    let Applied { created, before, after, journal, partner_ticket_id, xrefs } = match &cmd.op {
        WriteOp::Create => create(c, &cmd)?,
        WriteOp::Update { reference } => update(c, &cmd, reference)?,
    };
    let Some(after) = after else {
        // Nothing changed: no version bump, no journal, no outbox.
        let summary = summary(cmd.contract, &before, partner_ticket_id.as_deref());
        return finish(c, &cmd, created, summary, &before, vec![]);
    };
    let workflow = &cmd.registry.workflow;
    // On create there is no "before": the events are `created` (plus journal entries).
    let changed: Vec<&str> = if created { Vec::new() } else { changed_fields(&before.values, &after.values) };
    let state_before = (!created).then(|| (before.state(), workflow.category(before.state())));
    let evs = events::derive(state_before, (after.state(), workflow.category(after.state())), &changed, &journal);
    let change = Change {
        origin: partner,
        request_id: &cmd.audit.request_id,
        before: (!created).then_some(&before),
        after: &after,
        changed: &changed,
        events: &evs,
        journal: &journal,
        xrefs: &xrefs,
        now: cmd.now,
    };
    let fanned_out_to = fan_out(c, cmd.registry, &change)?;
    let summary = summary(cmd.contract, &after, partner_ticket_id.as_deref());
    let mut outcome = finish(c, &cmd, created, summary, &after, fanned_out_to)?;
    outcome.events = evs.iter().map(|e| e.as_str()).collect();
    Ok(outcome)
}

/// What `create` / `update` did, for fan-out and the answer.
struct Applied {
    created: bool,
    before: Ticket,
    /// `None` when nothing changed.
    after: Option<Ticket>,
    journal: Vec<JournalInput>,
    partner_ticket_id: Option<String>,
    /// The ticket's cross-references as read under its lock (none yet on create).
    xrefs: Vec<XrefRow>,
}

fn changed_fields<'a>(before: &'a Map<String, Value>, after: &'a Map<String, Value>) -> Vec<&'a str> {
    let keys: std::collections::BTreeSet<&str> = before.keys().chain(after.keys()).map(String::as_str).collect();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).collect()
}

fn create<C: TicketRepo + ?Sized>(c: &mut C, cmd: &WriteCommand) -> Result<Applied, SyncError> {
    let contract = cmd.contract;
    if !contract.access.create {
        return Err(SyncError::CreateForbidden);
    }
    let workflow = &cmd.registry.workflow;
    // Validation guarantees it on create (the contract requires the field).
    let pid = cmd.mapped.partner_ticket_id.clone().unwrap_or_default();
    if let Some(existing) = c.xref_by_partner_id(&contract.id, &pid)? {
        let number = c.ticket_by_id(existing.ticket_id)?.map(|t| t.number).unwrap_or_default();
        return Err(SyncError::Duplicate { partner_ticket_id: pid, number });
    }
    let mut values: Map<String, Value> = Map::new();
    values.insert("kind".into(), contract.default_kind.clone().into());
    let initial = workflow.initial.first().cloned().unwrap_or_default();
    values.insert("state".into(), initial.into());
    for (k, v) in &cmd.mapped.changes {
        if !v.is_null() {
            values.insert(k.clone(), v.clone());
        }
    }
    let state = values.get("state").and_then(Value::as_str).unwrap_or_default().to_string();
    workflow.check_initial(&state).map_err(SyncError::Workflow)?;
    derive_priority_if_needed(contract, cmd, &mut values);
    check_required(contract, workflow, &state, &values)?;

    let number = c.next_ticket_number()?;
    let mut ticket = Ticket {
        id: 0,
        number,
        version: 1,
        created_at: cmd.now,
        updated_at: cmd.now,
        created_by: contract.id.to_string(),
        updated_by: contract.id.to_string(),
        values,
    };
    ticket.id = c.insert_ticket(&TicketRow::from_ticket(&ticket))?;
    let xref = NewXref {
        partner: &contract.id,
        partner_ticket_id: Some(&pid),
        ticket_id: ticket.id,
        active: true,
        created_at: cmd.now,
        updated_at: cmd.now,
    };
    c.insert_xref(&xref).map_err(|e| duplicate_or(e, &pid, &ticket.number))?;
    let journal = write_journal(c, cmd, &ticket, &cmd.mapped.journal)?;
    Ok(Applied {
        created: true,
        before: ticket.clone(),
        after: Some(ticket),
        journal,
        partner_ticket_id: Some(pid),
        xrefs: Vec::new(),
    })
}

fn update<C: TicketRepo + ?Sized>(c: &mut C, cmd: &WriteCommand, reference: &str) -> Result<Applied, SyncError> {
    let contract = cmd.contract;
    let workflow = &cmd.registry.workflow;
    let not_found = || SyncError::NotFound { reference: reference.to_string() };
    let resolved = resolve_xref(c, &contract.id, reference)?;
    let before = c.ticket_locked(resolved.ticket_id)?.ok_or_else(not_found)?.into_ticket()?;
    // Read under the lock (a recall or a bond may have committed since the reference was
    // resolved); fan-out reuses them.
    let xrefs = c.xrefs_of_ticket(before.id)?;
    let xref = xrefs.iter().find(|x| x.partner == contract.id && x.active).cloned().ok_or_else(not_found)?;
    if let Some(given) = cmd.if_match {
        if given != before.version {
            return Err(SyncError::StaleVersion { current: before.version, given });
        }
    }

    let mut values = before.values.clone();
    for (k, v) in &cmd.mapped.changes {
        if v.is_null() {
            values.remove(k);
        } else {
            values.insert(k.clone(), v.clone());
        }
    }
    derive_priority_if_needed(contract, cmd, &mut values);
    let from = before.state().to_string();
    let to = values.get("state").and_then(Value::as_str).unwrap_or_default().to_string();
    if from == to && values != before.values {
        // Clearing a field the current state requires is refused like a transition would be.
        check_required(contract, workflow, &to, &values)?;
    }
    if from != to {
        workflow.check_transition(&from, &to).map_err(SyncError::Workflow)?;
        if !contract.may_transition(&from, &to) {
            let allowed = workflow
                .transitions
                .iter()
                .filter(|(f, t)| *f == from && contract.may_transition(f, t))
                .map(|(_, t)| t.clone())
                .collect();
            return Err(SyncError::TransitionForbidden { from, to, allowed });
        }
        check_required(contract, workflow, &to, &values)?;
    }

    // Bond the partner's own ticket id when it tells us (e.g. an MSP's ticket number).
    let mut pid = xref.partner_ticket_id.clone();
    if let Some(new_pid) = &cmd.mapped.partner_ticket_id {
        match &xref.partner_ticket_id {
            Some(current) if current != new_pid => {
                return Err(SyncError::PartnerIdImmutable {
                    current: current.clone(),
                    field: contract.partner_name_of(crate::domain::fields::PARTNER_TICKET_ID),
                })
            }
            Some(_) => {}
            None => {
                if let Some(other) = c.xref_by_partner_id(&contract.id, new_pid)? {
                    let number = c.ticket_by_id(other.ticket_id)?.map(|t| t.number).unwrap_or_default();
                    return Err(SyncError::PartnerIdTaken { partner_ticket_id: new_pid.clone(), number });
                }
                if !c
                    .bond_partner_ticket_id(xref.id, new_pid, cmd.now)
                    .map_err(|e| duplicate_or(e, new_pid, &before.number))?
                {
                    let current =
                        c.xref_for(&contract.id, xref.ticket_id)?.and_then(|x| x.partner_ticket_id).unwrap_or_default();
                    if current != *new_pid {
                        return Err(SyncError::PartnerIdImmutable {
                            current,
                            field: contract.partner_name_of(crate::domain::fields::PARTNER_TICKET_ID),
                        });
                    }
                }
                pid = Some(new_pid.clone());
            }
        }
    }

    let journal = write_journal(c, cmd, &before, &cmd.mapped.journal)?;
    let fields_changed = values != before.values;
    if !fields_changed && journal.is_empty() {
        return Ok(Applied { created: false, before, after: None, journal, partner_ticket_id: pid, xrefs });
    }
    // Taken under the row lock and never behind the previous change, so one ticket's
    // updated_at follows its commit order (the list cursor relies on it).
    let now = crate::util::now_ms().max(before.updated_at + 1);
    let after = Ticket {
        version: before.version + 1,
        updated_at: now,
        updated_by: contract.id.to_string(),
        values,
        ..before.clone()
    };
    c.update_ticket(&TicketRow::from_ticket(&after))?;
    if fields_changed {
        let changes: Map<String, Value> = changed_fields(&before.values, &after.values)
            .into_iter()
            .map(|k| (k.to_string(), json!({"from": before.get(k), "to": after.get(k)})))
            .collect();
        c.insert_journal(&NewJournal {
            ticket_id: after.id,
            kind: JournalKind::FieldChange.as_str(),
            author_partner: &contract.id,
            partner_entry_id: None,
            body: &Value::Object(changes).to_string(),
            created_at: cmd.now,
        })?;
    }
    Ok(Applied { created: false, before, after: Some(after), journal, partner_ticket_id: pid, xrefs })
}

/// Appends work notes and comments, dropping entries the partner already sent (same entry id).
fn write_journal<C: TicketRepo + ?Sized>(
    c: &mut C,
    cmd: &WriteCommand,
    ticket: &Ticket,
    entries: &[JournalInput],
) -> Result<Vec<JournalInput>, SyncError> {
    let mut written = Vec::new();
    for e in entries {
        if let Some(id) = &e.entry_id {
            if c.journal_entry_exists(ticket.id, &cmd.contract.id, id)? {
                continue;
            }
        }
        c.insert_journal(&NewJournal {
            ticket_id: ticket.id,
            kind: e.kind.as_str(),
            author_partner: &cmd.contract.id,
            partner_entry_id: e.entry_id.as_deref(),
            body: &e.body,
            created_at: cmd.now,
        })?;
        written.push(e.clone());
    }
    Ok(written)
}

/// Priority follows impact × urgency unless the writer set it explicitly.
fn derive_priority_if_needed(contract: &Contract, cmd: &WriteCommand, values: &mut Map<String, Value>) {
    let touched = cmd.mapped.changes.contains_key("impact") || cmd.mapped.changes.contains_key("urgency");
    if !touched || cmd.mapped.changes.contains_key("priority") {
        return;
    }
    let matrix = contract.priority_matrix.unwrap_or(cmd.registry.workflow.priority_matrix);
    let impact = values.get("impact").and_then(Value::as_i64);
    let urgency = values.get("urgency").and_then(Value::as_i64);
    if let (Some(i), Some(u)) = (impact, urgency) {
        if let Some(p) = derive_priority(&matrix, i, u) {
            values.insert("priority".into(), p.into());
        }
    }
}

fn check_required(
    contract: &Contract,
    workflow: &crate::contract::Workflow,
    state: &str,
    values: &Map<String, Value>,
) -> Result<(), SyncError> {
    let missing = workflow.missing_required(state, values);
    if missing.is_empty() {
        return Ok(());
    }
    Err(SyncError::MissingRequired {
        state: state.to_string(),
        fields: missing.iter().map(|f| contract.partner_name_of(f)).collect(),
    })
}

fn duplicate_or(e: diesel::result::Error, pid: &str, number: &str) -> SyncError {
    match StoreError::from(e) {
        StoreError::Conflict(_) => {
            SyncError::PartnerIdTaken { partner_ticket_id: pid.to_string(), number: number.to_string() }
        }
        other => SyncError::Store(other),
    }
}

fn summary(contract: &Contract, t: &Ticket, partner_ticket_id: Option<&str>) -> TicketSummary {
    TicketSummary {
        number: t.number.clone(),
        partner_ticket_id: partner_ticket_id.map(str::to_string),
        state: match contract.state_outward(t.state()) {
            Value::String(s) => s,
            other => other.to_string(),
        },
        version: t.version,
        updated_at: crate::util::ms_to_rfc3339(t.updated_at),
    }
}

fn finish<C: TicketRepo + AuditRepo + ?Sized>(
    c: &mut C,
    cmd: &WriteCommand,
    created: bool,
    summary: TicketSummary,
    ticket: &Ticket,
    fanned_out_to: Vec<String>,
) -> Result<WriteOutcome, SyncError> {
    let status = answer_status(created);
    audit_row(c, cmd, "accepted", status, Some(ticket.id), Some(&ticket.number))?;
    if let Some(idem) = &cmd.idempotency {
        c.idempotency_put(&IdempotencyRow {
            partner: cmd.contract.id.to_string(),
            key: idem.key.clone(),
            request_hash: idem.request_hash.clone(),
            status: i32::from(status),
            response_body: serde_json::to_string(&summary)
                .map_err(|e| StoreError::Corrupt(format!("idempotency record: {e}")))?,
            ticket_id: Some(ticket.id),
            created_at: cmd.now,
        })?;
    }
    Ok(WriteOutcome { created, ticket: summary, replayed: false, fanned_out_to, events: Vec::new() })
}

fn audit_row<C: AuditRepo + ?Sized>(
    c: &mut C,
    cmd: &WriteCommand,
    result: &'static str,
    status: u16,
    ticket_id: Option<i64>,
    number: Option<&str>,
) -> Result<(), SyncError> {
    let outcome = AuditOutcome {
        partner: Some(cmd.contract.id.to_string()),
        result,
        status,
        error_codes: String::new(),
        ticket: ticket_id.zip(number.map(str::to_string)),
    };
    c.insert_transaction(&cmd.audit.row(cmd.now, outcome))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_lists_each_difference_once_in_name_order() {
        let before: Map<String, Value> = serde_json::from_value(json!({"a": 1, "b": "x", "c": null})).unwrap();
        let after: Map<String, Value> = serde_json::from_value(json!({"a": 1, "b": "y", "d": true})).unwrap();
        assert_eq!(changed_fields(&before, &after), ["b", "c", "d"]);
        assert!(changed_fields(&before, &before).is_empty());
    }

    #[test]
    fn applied_writes_answer_201_on_create_else_200() {
        assert_eq!((answer_status(true), answer_status(false)), (201, 200));
    }

    #[test]
    fn the_summary_shows_the_state_in_the_partner_vocabulary() {
        let registry =
            crate::contract::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")).unwrap();
        let snow = registry.get("servicenow").unwrap();
        let mut values = Map::new();
        values.insert("state".into(), json!("in_progress"));
        let t = Ticket {
            id: 1,
            number: "EB0000001".into(),
            version: 2,
            created_at: 0,
            updated_at: 0,
            created_by: "servicenow".into(),
            updated_by: "servicenow".into(),
            values,
        };
        let s = summary(snow, &t, Some("INC0000001"));
        assert_eq!((s.state.as_str(), s.version, s.partner_ticket_id.as_deref()), ("2", 2, Some("INC0000001")));
    }
}
