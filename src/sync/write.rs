//! One inbound write, start to commit, as a single function over a connection.

use super::conflicts::{self, ConflictAnswer, NewConflict};
use super::fanout::{fan_out, Change};
use super::read::resolve_xref;
use super::{AuditInfo, AuditOutcome, SyncError};
use crate::contract::inbound::Mapped;
use crate::contract::workflow::derive_priority;
use crate::contract::{Contract, OnConflict, Registry};
use crate::domain::events;
use crate::domain::ids::TicketReference;
use crate::domain::{Changeset, JournalInput, JournalKind, Stamp, Ticket};
use crate::store::models::{IdempotencyRow, NewJournal, NewXref, TicketRow, XrefRow};
use crate::store::{Repos, StoreError};
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
    /// The write is a record read from the partner's system (pull sync, reconciliation), not a
    /// request: a field still holding the value the partner last saw is not a change of the
    /// partner's (the hub moved on, and its push is on the way or was lost), so it is passed
    /// over instead of conflicting with the newer value.
    pub from_record: bool,
    /// Report what the write would do and undo it (`SyncError::DryRun`): nothing is written.
    pub dry_run: bool,
}

#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

/// What an applied write did (already committed).
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The HTTP status the write is answered with: 201 created, 200 applied, 202 every field
    /// held in a conflict (see [`answer_status`]).
    pub status: u16,
    /// The ticket as the writing partner sees it now.
    pub ticket: TicketSummary,
    /// Replayed from an earlier request with the same Idempotency-Key.
    pub replayed: bool,
    /// Partners an outbox row was written for.
    pub fanned_out_to: Vec<String>,
    /// Lifecycle events the write raised.
    pub events: Vec<&'static str>,
    /// Open conflicts of the ticket this write made agree (id, partner), now superseded.
    pub superseded: Vec<(i64, String)>,
    /// The writing partner.
    pub partner: String,
    /// The ticket changed (a new version, or journal entries): false when the write repeated
    /// what the hub already holds.
    pub changed: bool,
}

impl WriteOutcome {
    /// A new ticket (or, replayed, the first answer was a create).
    pub fn created(&self) -> bool {
        self.status == answer_status(true, false)
    }
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
    /// Set when the write conflicted with another party's change made after the version you
    /// last saw: the held fields were not written (they wait for an operator), the others were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictAnswer>,
}

/// The HTTP status the API answers an applied write with: 201 for a create, 202 when every
/// field the write changes is held in a conflict (nothing of it was written but the record),
/// else 200. The audit row and the idempotency record, both written in the write's own
/// transaction, keep it.
pub fn answer_status(created: bool, held_only: bool) -> u16 {
    match (created, held_only) {
        (true, _) => 201,
        (false, true) => 202,
        (false, false) => 200,
    }
}

/// Applies `cmd` on `c`, which must already be inside a transaction.
pub fn apply<C: Repos + ?Sized>(c: &mut C, cmd: WriteCommand) -> Result<WriteOutcome, SyncError> {
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
                status: u16::try_from(prev.status).unwrap_or(200),
                ticket,
                replayed: true,
                fanned_out_to: vec![],
                events: Vec::new(),
                superseded: Vec::new(),
                partner: partner.to_string(),
                changed: false,
            });
        }
    }
    let Applied { created, before, after, journal, partner_ticket_id, xrefs, conflict, held_only, superseded } =
        match &cmd.op {
            WriteOp::Create => create(c, &cmd)?,
            WriteOp::Update { reference } => update(c, &cmd, reference)?,
        };
    let status = answer_status(created, held_only);
    let Some(after) = after else {
        // Nothing changed: no version bump, no journal, no outbox.
        let summary = TicketSummary { conflict, ..summary(cmd.contract, &before, partner_ticket_id.as_deref()) };
        if cmd.dry_run {
            let report = super::dry_run::report(c, &cmd, status, &summary, Some(&before), &before, &[], 0)?;
            return Err(SyncError::DryRun(Box::new(report)));
        }
        return finish(c, &cmd, status, summary, &before, vec![]);
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
        converge: None,
    };
    let fanned_out_to = fan_out(c, cmd.registry, &change)?;
    let summary = TicketSummary { conflict, ..summary(cmd.contract, &after, partner_ticket_id.as_deref()) };
    if cmd.dry_run {
        let evs: Vec<&'static str> = evs.iter().map(|e| e.as_str()).collect();
        let before = (!created).then_some(&before);
        let report = super::dry_run::report(c, &cmd, status, &summary, before, &after, &evs, fanned_out_to.len())?;
        // Undone by the caller's transaction, like any refusal.
        return Err(SyncError::DryRun(Box::new(report)));
    }
    let mut outcome = finish(c, &cmd, status, summary, &after, fanned_out_to)?;
    outcome.events = evs.iter().map(|e| e.as_str()).collect();
    outcome.superseded = superseded;
    outcome.changed = true;
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
    /// The conflict the write recorded, if any.
    conflict: Option<ConflictAnswer>,
    /// Every field the write would change is held in the conflict.
    held_only: bool,
    superseded: Vec<(i64, String)>,
}

/// `values` with `changes` applied (`null` clears a field).
pub(super) fn with_changes<'a>(
    mut values: Map<String, Value>,
    changes: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> Map<String, Value> {
    for (k, v) in changes {
        if v.is_null() {
            values.remove(k);
        } else {
            values.insert(k.clone(), v.clone());
        }
    }
    values
}

/// Stamps the fields `after` changed with its version and `by` (what conflict detection
/// compares with), and journals them as one field-change entry of that version (what a
/// conflict's base value is read from). `after.updated_at` is the stamps' time.
pub(super) fn record_changes<C: Repos + ?Sized>(
    c: &mut C,
    before: &Ticket,
    after: &mut Ticket,
    by: &str,
    now: i64,
) -> Result<(), SyncError> {
    let entry = stamp_changes(before, after, by);
    insert_entries(c, after.id, by, now, &[entry])
}

/// [`record_changes`] without the insert: stamps `after` and returns its field-change entry.
fn stamp_changes(before: &Ticket, after: &mut Ticket, by: &str) -> Entry {
    let changed = changed_fields(&before.values, &after.values);
    let body: Map<String, Value> =
        changed.iter().map(|k| (k.to_string(), json!({"from": before.get(k), "to": after.get(k)}))).collect();
    let stamp = Stamp { v: after.version, by: by.to_string(), at: after.updated_at };
    for k in changed {
        after.stamps.insert(k.to_string(), stamp.clone());
    }
    Entry {
        kind: JournalKind::FieldChange,
        entry_id: None,
        body: Value::Object(body).to_string(),
        version: after.version,
    }
}

/// A journal entry of the write, kept until the write's one journal statement.
struct Entry {
    kind: JournalKind,
    entry_id: Option<String>,
    body: String,
    version: i64,
}

/// Appends the write's journal entries, in one statement.
fn insert_entries<C: Repos + ?Sized>(
    c: &mut C,
    ticket_id: i64,
    by: &str,
    now: i64,
    entries: &[Entry],
) -> Result<(), SyncError> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewJournal> = entries
        .iter()
        .map(|e| NewJournal {
            ticket_id,
            kind: e.kind.as_str(),
            author_partner: by,
            partner_entry_id: e.entry_id.as_deref(),
            body: &e.body,
            created_at: now,
            version: Some(e.version),
        })
        .collect();
    c.insert_journals(&rows)?;
    Ok(())
}

/// Canonical fields whose value differs, in name order.
pub(crate) fn changed_fields<'a>(before: &'a Map<String, Value>, after: &'a Map<String, Value>) -> Vec<&'a str> {
    let keys: std::collections::BTreeSet<&str> = before.keys().chain(after.keys()).map(String::as_str).collect();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).collect()
}

fn create<C: Repos + ?Sized>(c: &mut C, cmd: &WriteCommand) -> Result<Applied, SyncError> {
    let contract = cmd.contract;
    if !contract.access.create {
        return Err(SyncError::CreateForbidden);
    }
    let workflow = &cmd.registry.workflow;
    // The v1 contracts require it on create; a Table-API facade record may be created without
    // one, as a ServiceNow record is (its number is ebond's), and bond its id later.
    let pid = cmd.mapped.partner_ticket_id.clone();
    if let Some(pid) = &pid {
        if let Some(existing) = c.xref_by_partner_id(&contract.id, pid)? {
            let number = c.ticket_by_id(existing.ticket_id)?.map(|t| t.number).unwrap_or_default();
            return Err(SyncError::Duplicate { partner_ticket_id: pid.clone(), number });
        }
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
    workflow.check_initial(&state).map_err(|v| in_partner_terms(contract, workflow, v))?;
    derive_priority_if_needed(contract, cmd.registry, &cmd.mapped.changes, &mut values);
    check_required(contract, workflow, &state, &values)?;

    let number = c.next_ticket_number()?;
    let stamp = Stamp { v: 1, by: contract.id.to_string(), at: cmd.now };
    let stamps = values.keys().map(|k| (k.clone(), stamp.clone())).collect();
    let mut ticket = Ticket {
        id: 0,
        number,
        version: 1,
        created_at: cmd.now,
        updated_at: cmd.now,
        created_by: contract.id.to_string(),
        updated_by: contract.id.to_string(),
        values,
        stamps,
        open_conflicts: 0,
    };
    ticket.id = c.insert_ticket(&TicketRow::from_ticket(&ticket))?;
    let xref = NewXref {
        partner: &contract.id,
        partner_ticket_id: pid.as_deref(),
        ticket_id: ticket.id,
        active: true,
        created_at: cmd.now,
        updated_at: cmd.now,
        // The creator is answered version 1: it has seen it.
        seen_version: 1,
    };
    c.insert_xref(&xref).map_err(|e| duplicate_or(e, pid.as_deref().unwrap_or_default(), &ticket.number))?;
    let (journal, entries) = new_entries(c, cmd, &ticket, 1, &cmd.mapped.journal)?;
    insert_entries(c, ticket.id, &contract.id, cmd.now, &entries)?;
    Ok(Applied {
        created: true,
        before: ticket.clone(),
        after: Some(ticket),
        journal,
        partner_ticket_id: pid,
        xrefs: Vec::new(),
        conflict: None,
        held_only: false,
        superseded: Vec::new(),
    })
}

fn update<C: Repos + ?Sized>(c: &mut C, cmd: &WriteCommand, reference: &str) -> Result<Applied, SyncError> {
    let contract = cmd.contract;
    let workflow = &cmd.registry.workflow;
    let not_found = || SyncError::NotFound { reference: reference.to_string() };
    let resolved = resolve_xref(c, &contract.id, reference)?;
    // The cross-references are read under the lock, in the same statement (a recall or a bond
    // may have committed since the reference was resolved); fan-out reuses them.
    let (row, xrefs) = c.ticket_and_xrefs_locked(resolved.ticket_id)?.ok_or_else(not_found)?;
    let before = row.into_ticket()?;
    let xref = xrefs.iter().find(|x| x.partner == contract.id && x.active).cloned().ok_or_else(not_found)?;
    if let Some(given) = cmd.if_match {
        if given != before.version {
            return Err(SyncError::StaleVersion { current: before.version, given });
        }
    }

    // Conflicts are looked for only without If-Match, which keeps its strict meaning (412).
    let mut detected = match cmd.if_match {
        None => conflicts::detect(contract, xref.seen_version, &before, &cmd.mapped.changes),
        Some(_) => Vec::new(),
    };
    // What the write asks for: the request's changes as they are (no copy on the API's path),
    // less, for a record read from the partner's system, the fields it still holds at what it
    // last saw.
    let mut requested = std::borrow::Cow::Borrowed(&cmd.mapped.changes);
    if cmd.from_record && !detected.is_empty() {
        let stale = conflicts::unchanged_since_seen(c, contract, xref.seen_version, &before, &detected)?;
        detected.retain(|d| !stale.contains(&d.field));
        for f in &stale {
            requested.to_mut().remove(f);
        }
    }
    if let Some(refusal) = conflicts::rejection(contract, &detected) {
        return Err(refusal);
    }
    let held = detected.iter().any(|d| d.mode == OnConflict::Queue);
    // What the writer has seen is not raised by its own write: its own changes are known to it
    // through the field stamps (detection never counts them), and every other party's change
    // made after this write has a higher version anyway — so raising it would change no
    // detection, and would cost a statement per write. (Raising it to the answered version
    // would be wrong when others had changed fields the answer does not show.)
    // A held state change is not run until it is resolved, but one that could not be run from
    // the state the ticket is in now is refused now: queueing it would help nobody.
    if let Some(to) = detected.iter().find(|d| d.field == "state" && d.mode == OnConflict::Queue) {
        check_transition(contract, workflow, before.state(), to.proposed.as_str().unwrap_or_default())?;
    }
    // Held fields are not written; everything else of the write is.
    let mut changes = requested.clone().into_owned();
    for d in detected.iter().filter(|d| d.mode == OnConflict::Queue) {
        changes.remove(&d.field);
    }

    let mut values = with_changes(before.values.clone(), &changes);
    // A derived priority never replaces one another party set after what this partner saw (nor
    // a priority the partner sent that is held): the explicit change wins over the derivation.
    let priority_guarded = requested.contains_key("priority")
        || before.stamps.get("priority").is_some_and(|s| s.v > xref.seen_version && s.by != contract.id.as_str());
    if !priority_guarded {
        derive_priority_if_needed(contract, cmd.registry, &changes, &mut values);
    }
    let from = before.state().to_string();
    let to = values.get("state").and_then(Value::as_str).unwrap_or_default().to_string();
    if from == to && values != before.values {
        // Clearing a field the current state requires is refused like a transition would be.
        check_required(contract, workflow, &to, &values)?;
    }
    if from != to {
        check_transition(contract, workflow, &from, &to)?;
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

    let (journal, mut entries) = new_entries(c, cmd, &before, before.version + 1, &cmd.mapped.journal)?;
    let fields_changed = values != before.values;
    let conflict = match detected.is_empty() {
        true => None,
        false => Some(conflicts::record(
            c,
            &NewConflict {
                contract,
                ticket: &before,
                request_id: &cmd.audit.request_id,
                seen: xref.seen_version,
                detected: &detected,
                now: cmd.now,
            },
        )?),
    };
    let open_conflicts = before.open_conflicts + i64::from(held);
    if !fields_changed && journal.is_empty() {
        // (No entries: nothing to insert.)
        if held {
            c.set_open_conflicts(before.id, open_conflicts)?;
        }
        return Ok(Applied {
            created: false,
            before,
            after: None,
            journal,
            partner_ticket_id: pid,
            xrefs,
            conflict,
            held_only: held,
            superseded: Vec::new(),
        });
    }
    // Taken under the row lock and never behind the previous change, so one ticket's
    // updated_at follows its commit order (the list cursor relies on it).
    let now = crate::util::now_ms().max(before.updated_at + 1);
    let mut after = Ticket {
        version: before.version + 1,
        updated_at: now,
        updated_by: contract.id.to_string(),
        values,
        open_conflicts,
        ..before.clone()
    };
    if fields_changed {
        entries.push(stamp_changes(&before, &mut after, &contract.id));
    }
    // The work notes first, then the field change: one statement for all.
    insert_entries(c, after.id, &contract.id, cmd.now, &entries)?;
    // The queue is looked at only when the ticket has open records.
    let superseded = match before.open_conflicts > 0 && fields_changed {
        true => conflicts::supersede(c, &after, conflict.as_ref().map(|c| c.id), cmd.now)?,
        false => Vec::new(),
    };
    after.open_conflicts -= superseded.len() as i64;
    c.update_ticket(&TicketRow::from_ticket(&after))?;
    let held_only = held && !fields_changed && journal.is_empty();
    Ok(Applied {
        created: false,
        before,
        after: Some(after),
        journal,
        partner_ticket_id: pid,
        xrefs,
        conflict,
        held_only,
        superseded,
    })
}

/// The work notes and comments to append, less entries the partner already sent (same entry
/// id): what the answer and the events count, and the rows for [`insert_entries`].
fn new_entries<C: Repos + ?Sized>(
    c: &mut C,
    cmd: &WriteCommand,
    ticket: &Ticket,
    version: i64,
    entries: &[JournalInput],
) -> Result<(Vec<JournalInput>, Vec<Entry>), SyncError> {
    let mut written = Vec::new();
    let mut rows = Vec::new();
    for e in entries {
        if let Some(id) = &e.entry_id {
            // Sent before, or twice in this request.
            if rows.iter().any(|r: &Entry| r.entry_id.as_ref() == Some(id))
                || c.journal_entry_exists(ticket.id, &cmd.contract.id, id)?
            {
                continue;
            }
        }
        rows.push(Entry { kind: e.kind, entry_id: e.entry_id.clone(), body: e.body.clone(), version });
        written.push(e.clone());
    }
    Ok((written, rows))
}

/// Priority follows impact × urgency unless the writer set it explicitly.
fn derive_priority_if_needed(
    contract: &Contract,
    registry: &Registry,
    changes: &Changeset,
    values: &mut Map<String, Value>,
) {
    let touched = changes.contains_key("impact") || changes.contains_key("urgency");
    if !touched || changes.contains_key("priority") {
        return;
    }
    let matrix = contract.priority_matrix.unwrap_or(registry.workflow.priority_matrix);
    let impact = values.get("impact").and_then(Value::as_i64);
    let urgency = values.get("urgency").and_then(Value::as_i64);
    if let (Some(i), Some(u)) = (impact, urgency) {
        if let Some(p) = derive_priority(&matrix, i, u) {
            values.insert("priority".into(), p.into());
        }
    }
}

/// Is `from → to` in the workflow and allowed to this partner?
fn check_transition(
    contract: &Contract,
    workflow: &crate::contract::Workflow,
    from: &str,
    to: &str,
) -> Result<(), SyncError> {
    workflow.check_transition(from, to).map_err(|v| in_partner_terms(contract, workflow, v))?;
    if !contract.may_transition(from, to) {
        return Err(SyncError::TransitionForbidden {
            from: contract.state_text(from),
            to: contract.state_text(to),
            allowed: allowed_from(contract, workflow, from),
        });
    }
    Ok(())
}

/// The states this partner may move a ticket to from `from`, in its own values.
fn allowed_from(contract: &Contract, workflow: &crate::contract::Workflow, from: &str) -> Vec<String> {
    workflow
        .transitions
        .iter()
        .filter(|(f, t)| f == from && contract.may_transition(f, t))
        .map(|(_, t)| contract.state_text(t))
        .collect()
}

/// A workflow refusal told in the partner's vocabulary: its state values, and only the moves it
/// may make itself (listing another party's transitions would only invite a second refusal).
fn in_partner_terms(
    contract: &Contract,
    workflow: &crate::contract::Workflow,
    v: crate::contract::workflow::WorkflowViolation,
) -> SyncError {
    use crate::contract::workflow::WorkflowViolation as W;
    SyncError::Workflow(match v {
        W::NotInitial { state, initial } => W::NotInitial {
            state: contract.state_text(&state),
            initial: initial.iter().map(|s| contract.state_text(s)).collect(),
        },
        W::NoSuchTransition { from, to, .. } => W::NoSuchTransition {
            allowed: allowed_from(contract, workflow, &from),
            from: contract.state_text(&from),
            to: contract.state_text(&to),
        },
    })
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
        state: contract.state_text(state),
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
        conflict: None,
    }
}

fn finish<C: Repos + ?Sized>(
    c: &mut C,
    cmd: &WriteCommand,
    status: u16,
    summary: TicketSummary,
    ticket: &Ticket,
    fanned_out_to: Vec<String>,
) -> Result<WriteOutcome, SyncError> {
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
    Ok(WriteOutcome {
        status,
        ticket: summary,
        replayed: false,
        fanned_out_to,
        events: Vec::new(),
        superseded: Vec::new(),
        partner: cmd.contract.id.to_string(),
        changed: false,
    })
}

fn audit_row<C: Repos + ?Sized>(
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
    fn applied_writes_answer_201_on_create_202_when_all_held_else_200() {
        assert_eq!(
            (answer_status(true, false), answer_status(false, false), answer_status(false, true)),
            (201, 200, 202)
        );
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
            stamps: Default::default(),
            open_conflicts: 0,
        };
        let s = summary(snow, &t, Some("INC0000001"));
        assert_eq!((s.state.as_str(), s.version, s.partner_ticket_id.as_deref()), ("2", 2, Some("INC0000001")));
    }
}
