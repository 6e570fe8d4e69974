//! Conflicts: found on a partner's write from what that partner last saw, held in a record for
//! people instead of overwriting, closed when a later write makes the values agree, and
//! resolved by an operator with a write that converges every partner's copy.
//!
//! Detection reads only the ticket row it already holds: each field's [`Stamp`] (who set it at
//! which version) against the writer's `seen_version` on its cross-reference. The history is
//! read only once a conflict is found, for the base value the partner last saw.

use super::fanout::{fan_out, Change, Converge};
use super::write::{changed_fields, record_changes, with_changes};
use super::{AuditInfo, AuditOutcome, SyncError};
use crate::contract::{Contract, OnConflict, Registry};
use crate::domain::events;
use crate::domain::payload::FieldChange;
use crate::domain::{Changeset, Stamp, Ticket};
use crate::store::conflicts::{Conflict, ConflictFilter};
use crate::store::models::{ConflictFieldRow, ConflictRow, TicketRow};
use crate::store::{Db, Repos, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Status of a conflict record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictStatus {
    /// Held fields wait for an operator.
    Open,
    /// An operator chose the values.
    Resolved,
    /// A later write made the values agree.
    Superseded,
    /// The contract said `accept`: the partner's value was written over the other change.
    Overwritten,
}

impl ConflictStatus {
    pub const ALL: [ConflictStatus; 4] =
        [ConflictStatus::Open, ConflictStatus::Resolved, ConflictStatus::Superseded, ConflictStatus::Overwritten];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStatus::Open => "open",
            ConflictStatus::Resolved => "resolved",
            ConflictStatus::Superseded => "superseded",
            ConflictStatus::Overwritten => "overwritten",
        }
    }

    pub fn parse(s: &str) -> Option<ConflictStatus> {
        ConflictStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A field's disposition in a record.
pub const HELD: &str = "held";
pub const OVERWRITTEN: &str = "overwritten";

/// One conflicting field of a write.
#[derive(Debug, Clone)]
pub struct Detected {
    pub field: String,
    pub proposed: Value,
    pub current: Value,
    pub stamp: Stamp,
    pub mode: OnConflict,
}

/// The fields of `changes` that conflict: set to a value other than the current one, when the
/// current one was set by someone else after the version `partner` last saw (`seen`).
pub fn detect(contract: &Contract, seen: i64, before: &Ticket, changes: &Changeset) -> Vec<Detected> {
    changes
        .iter()
        .filter_map(|(field, proposed)| {
            let current = before.get(field);
            if current == proposed {
                return None;
            }
            let stamp = before.stamps.get(field)?;
            (stamp.v > seen && stamp.by != contract.id.as_str()).then(|| Detected {
                field: field.clone(),
                proposed: proposed.clone(),
                current: current.clone(),
                stamp: stamp.clone(),
                mode: contract.on_conflict_for(field),
            })
        })
        .collect()
}

/// A conflict as the writing partner is told about it, in its vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConflictAnswer {
    /// The conflict record's id (what operators resolve: `/admin/conflicts/{id}`).
    pub id: i64,
    /// `open`: the fields marked `held` were not written and wait for an operator, the rest of
    /// the write was applied; `overwritten`: your values were written over another party's
    /// change (your contract says `on_conflict = "accept"`), recorded for the record.
    pub status: String,
    pub fields: Vec<ConflictFieldAnswer>,
}

/// One conflicting field, in your names and values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConflictFieldAnswer {
    /// Your field name.
    pub field: String,
    /// The value you sent.
    pub yours: Value,
    /// The value the other party set after the version you last saw (`null` when your contract
    /// does not let you read the field).
    pub current: Value,
    /// Who set it: a partner id, or `operator`.
    pub set_by: String,
    /// When (RFC 3339).
    pub set_at: String,
    /// The ticket version that change made.
    pub set_in_version: i64,
    /// True when your value was held (not written).
    pub held: bool,
}

/// The partner value of a canonical value of `field` (the canonical value when the contract has
/// no partner form for it).
pub fn outward(contract: &Contract, field: &str, v: &Value) -> Value {
    contract.field_for(field).and_then(|spec| contract.outward(spec, v)).unwrap_or_else(|| v.clone())
}

/// Who set a value, as a partner is told: partner ids as they are, operators as `operator`.
fn setter(by: &str) -> String {
    if by.starts_with("operator:") || by.starts_with("cli:") {
        "operator".into()
    } else {
        by.to_string()
    }
}

fn answer_field(contract: &Contract, d: &Detected) -> ConflictFieldAnswer {
    let readable = contract.may_read(&d.field);
    ConflictFieldAnswer {
        field: contract.partner_name_of(&d.field),
        yours: outward(contract, &d.field, &d.proposed),
        current: if readable { outward(contract, &d.field, &d.current) } else { Value::Null },
        set_by: setter(&d.stamp.by),
        set_at: crate::util::ms_to_rfc3339(d.stamp.at),
        set_in_version: d.stamp.v,
        held: d.mode == OnConflict::Queue,
    }
}

/// The refusal for fields whose contract says `on_conflict = "reject"`.
pub fn rejection(contract: &Contract, detected: &[Detected]) -> Option<SyncError> {
    let fields: Vec<ConflictFieldAnswer> =
        detected.iter().filter(|d| d.mode == OnConflict::Reject).map(|d| answer_field(contract, d)).collect();
    (!fields.is_empty()).then_some(SyncError::EditConflict { fields })
}

/// What the write path needs to record a conflict.
pub struct NewConflict<'a> {
    pub contract: &'a Contract,
    pub ticket: &'a Ticket,
    pub request_id: &'a str,
    pub seen: i64,
    /// Held and overwritten fields (never rejected ones: those refuse the write).
    pub detected: &'a [Detected],
    pub now: i64,
}

/// Writes the record of one conflicting write (inside its transaction); answers it in the
/// partner's vocabulary.
pub fn record<C: Repos + ?Sized>(c: &mut C, n: &NewConflict) -> Result<ConflictAnswer, SyncError> {
    let held = n.detected.iter().any(|d| d.mode == OnConflict::Queue);
    let status = if held { ConflictStatus::Open } else { ConflictStatus::Overwritten };
    let bases = base_values(c, n.ticket.id, n.contract.id.as_str(), n.seen, n.detected)?;
    let row = ConflictRow {
        id: 0,
        ticket_id: n.ticket.id,
        ticket_number: n.ticket.number.clone(),
        partner: n.contract.id.to_string(),
        request_id: n.request_id.to_string(),
        status: status.as_str().into(),
        seen_version: n.seen,
        ticket_version: n.ticket.version,
        created_at: n.now,
        updated_at: n.now,
        resolved_by: None,
        resolved_at: None,
        resolution_comment: None,
    };
    let fields: Vec<ConflictFieldRow> = n
        .detected
        .iter()
        .map(|d| ConflictFieldRow {
            conflict_id: 0,
            field: d.field.clone(),
            base: bases.get(&d.field).unwrap_or(&Value::Null).to_string(),
            proposed: d.proposed.to_string(),
            current: d.current.to_string(),
            current_by: d.stamp.by.clone(),
            current_at: d.stamp.at,
            current_version: d.stamp.v,
            disposition: if d.mode == OnConflict::Queue { HELD } else { OVERWRITTEN }.into(),
            chosen: None,
        })
        .collect();
    let id = c.insert_conflict(&row, &fields)?;
    tracing::info!(conflict = id, status = status.as_str(), fields = ?n.detected.iter().map(|d| &d.field).collect::<Vec<_>>(), "conflict recorded");
    Ok(ConflictAnswer {
        id,
        status: status.as_str().into(),
        fields: n.detected.iter().map(|d| answer_field(n.contract, d)).collect(),
    })
}

/// The detected fields whose proposed value is the one the partner last saw: read from the
/// partner's system, they show it has not changed them since (not a write of its own).
pub fn unchanged_since_seen<C: Repos + ?Sized>(
    c: &mut C,
    contract: &Contract,
    seen: i64,
    ticket: &Ticket,
    detected: &[Detected],
) -> Result<Vec<String>, SyncError> {
    let bases = base_values(c, ticket.id, contract.id.as_str(), seen, detected)?;
    Ok(detected.iter().filter(|d| bases.get(&d.field) == Some(&d.proposed)).map(|d| d.field.clone()).collect())
}

/// What the hub's history says about one field of a ticket, for one partner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldHistory {
    /// The value the partner last saw, when another party changed the field after that (`None`:
    /// nobody else changed it since the partner saw it).
    pub base: Option<Value>,
    /// The value before the field's last change, when another party made that change: where a
    /// partner whose push was lost still stands.
    pub before_last: Option<Value>,
}

/// [`FieldHistory`] of each of `fields` for `partner`, which has seen version `seen`.
pub fn histories<C: Repos + ?Sized>(
    c: &mut C,
    ticket: &Ticket,
    partner: &str,
    seen: i64,
    fields: &[String],
) -> Result<BTreeMap<String, FieldHistory>, SyncError> {
    let mut out: BTreeMap<String, FieldHistory> = fields.iter().map(|f| (f.clone(), FieldHistory::default())).collect();
    // The last change of a field is at its stamp's version: read from the oldest one needed.
    let from = fields
        .iter()
        .filter_map(|f| ticket.stamps.get(f).filter(|s| s.by != partner).map(|s| s.v - 1))
        .chain(std::iter::once(seen))
        .min()
        .unwrap_or(seen);
    for row in c.field_changes_after(ticket.id, from.max(0))? {
        if row.author_partner == partner {
            continue;
        }
        let body: Map<String, Value> = serde_json::from_str(&row.body)
            .map_err(|e| StoreError::Corrupt(format!("journal entry {}: {e}", row.id)))?;
        let version = row.version.unwrap_or(0);
        for (field, h) in out.iter_mut() {
            let Some(change) = body.get(field) else { continue };
            let was = change.get("from").cloned().unwrap_or(Value::Null);
            if version > seen && h.base.is_none() {
                h.base = Some(was.clone());
            }
            if ticket.stamps.get(field).is_some_and(|s| s.v == version) {
                h.before_last = Some(was);
            }
        }
    }
    Ok(out)
}

/// Each field's value as the partner last knew it: the `from` of the first change another
/// party made to it after `seen` (the partner's own changes after `seen` are what it knows).
/// `null` when the partner had seen nothing.
fn base_values<C: Repos + ?Sized>(
    c: &mut C,
    ticket_id: i64,
    partner: &str,
    seen: i64,
    detected: &[Detected],
) -> Result<BTreeMap<String, Value>, SyncError> {
    let mut bases = BTreeMap::new();
    if seen == 0 {
        return Ok(bases);
    }
    for row in c.field_changes_after(ticket_id, seen)? {
        if row.author_partner == partner {
            continue;
        }
        let body: Map<String, Value> = serde_json::from_str(&row.body)
            .map_err(|e| StoreError::Corrupt(format!("journal entry {}: {e}", row.id)))?;
        for d in detected {
            if let Some(change) = body.get(&d.field) {
                bases.entry(d.field.clone()).or_insert_with(|| change.get("from").cloned().unwrap_or(Value::Null));
            }
        }
        if bases.len() == detected.len() {
            break;
        }
    }
    Ok(bases)
}

/// Closes the ticket's open records whose every held field now has the proposed value (a later
/// write made them agree); returns their ids. Called only when the ticket has open records.
pub fn supersede<C: Repos + ?Sized>(
    c: &mut C,
    after: &Ticket,
    except: Option<i64>,
    now: i64,
) -> Result<Vec<(i64, String)>, SyncError> {
    let mut closed = Vec::new();
    for (mut row, fields) in c.conflicts_of_ticket(after.id, true)? {
        if Some(row.id) == except {
            continue;
        }
        let agreed =
            fields.iter().filter(|f| f.disposition == HELD).all(|f| stored(&f.proposed) == *after.get(&f.field));
        if agreed {
            row.status = ConflictStatus::Superseded.as_str().into();
            row.updated_at = now;
            c.update_conflict(&row)?;
            closed.push((row.id, row.partner));
        }
    }
    Ok(closed)
}

/// A stored JSON value (written by this module; unreadable text reads as `null`).
pub fn stored(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// What an operator chooses for a held field.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// Keep the value the ticket has now.
    KeepCurrent,
    /// Take the value the partner proposed.
    TakePartner,
    /// A value of the operator's own (canonical vocabulary).
    Custom(Value),
}

/// An operator's resolution of one conflict.
pub struct Resolution<'a> {
    pub registry: &'a Registry,
    pub id: i64,
    /// Canonical field → choice; `default` for held fields not named.
    pub choices: BTreeMap<String, Choice>,
    pub default: Option<Choice>,
    /// `operator:<credential id>` or `cli:<user>`.
    pub operator: String,
    pub comment: Option<String>,
    pub audit: AuditInfo,
    pub now: i64,
}

/// What a resolution did (committed).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub conflict: Conflict,
    pub version: i64,
    pub fanned_out_to: Vec<String>,
    /// Other open records of the ticket the resolution made agree.
    pub superseded: Vec<(i64, String)>,
}

/// Applies an operator's resolution in one transaction: the chosen values go through the
/// workflow (a held transition that is no longer legal is refused), the record is closed, and
/// the change is fanned out to every partner that reads the fields — the one whose value lost
/// included, so every copy converges.
pub fn resolve<C: Repos + ?Sized>(c: &mut C, r: Resolution) -> Result<Resolved, SyncError> {
    let (found, _) = c.conflict(r.id)?.ok_or(SyncError::ConflictNotFound { id: r.id })?;
    // Every change of a ticket's records happens under the ticket's lock: take it, then read the
    // record again, so two resolutions (or a resolution and a superseding write) never both
    // close it.
    let before = c
        .ticket_locked(found.ticket_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("conflict {} names a missing ticket", found.id)))?
        .into_ticket()?;
    let (mut row, fields) = c.conflict(r.id)?.ok_or(SyncError::ConflictNotFound { id: r.id })?;
    if row.status != ConflictStatus::Open.as_str() {
        return Err(SyncError::ConflictClosed { id: r.id, status: row.status });
    }
    let workflow = &r.registry.workflow;
    let held: Vec<&ConflictFieldRow> = fields.iter().filter(|f| f.disposition == HELD).collect();
    for named in r.choices.keys() {
        if !held.iter().any(|f| f.field == *named) {
            return Err(SyncError::ConflictChoice {
                field: named.clone(),
                reason: format!("conflict {} holds no field `{named}`", row.id),
            });
        }
    }
    let mut chosen: Vec<(String, Value)> = Vec::new();
    for f in &held {
        let choice = r.choices.get(&f.field).or(r.default.as_ref()).ok_or_else(|| SyncError::ConflictChoice {
            field: f.field.clone(),
            reason: "choose keep_current, take_partner or a custom value for it".into(),
        })?;
        let value = match choice {
            Choice::KeepCurrent => before.get(&f.field).clone(),
            Choice::TakePartner => stored(&f.proposed),
            Choice::Custom(v) => {
                crate::contract::check_value(workflow, &f.field, v)
                    .map_err(|reason| SyncError::ConflictChoice { field: f.field.clone(), reason })?;
                v.clone()
            }
        };
        chosen.push((f.field.clone(), value));
    }

    let values = with_changes(before.values.clone(), chosen.iter().map(|(k, v)| (k, v)));
    let (from, to) = (before.state().to_string(), values.get("state").and_then(Value::as_str).unwrap_or_default());
    if from != to {
        workflow.check_transition(&from, to).map_err(SyncError::Workflow)?;
    }
    let missing = workflow.missing_required(to, &values);
    if !missing.is_empty() && (from != to || values != before.values) {
        return Err(SyncError::MissingRequired { state: to.to_string(), fields: missing });
    }

    let changed: Vec<String> = changed_fields(&before.values, &values).into_iter().map(str::to_string).collect();
    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    let mut after = before.clone();
    after.open_conflicts = before.open_conflicts - 1;
    if !changed.is_empty() {
        after.version += 1;
        after.updated_at = crate::util::now_ms().max(before.updated_at + 1);
        after.updated_by = r.operator.clone();
        after.values = values;
        record_changes(c, &before, &mut after, &r.operator, r.now)?;
    }
    let superseded = supersede(c, &after, Some(row.id), r.now)?;
    after.open_conflicts -= superseded.len() as i64;
    if changed.is_empty() {
        c.set_open_conflicts(after.id, after.open_conflicts)?;
    } else {
        c.update_ticket(&TicketRow::from_ticket(&after))?;
    }

    // The partner whose value lost hears the value that won, even when the ticket kept it.
    let converge: BTreeMap<String, FieldChange> = held
        .iter()
        .filter_map(|f| {
            let won = after.get(&f.field).clone();
            let proposed = stored(&f.proposed);
            (won != proposed).then(|| (f.field.clone(), FieldChange { from: proposed, to: won }))
        })
        .collect();
    let xrefs = c.xrefs_of_ticket(after.id)?;
    let state_before = Some((before.state(), workflow.category(before.state())));
    let evs = events::derive(state_before, (after.state(), workflow.category(after.state())), &changed, &[]);
    let change = Change {
        origin: &r.operator,
        request_id: &r.audit.request_id,
        before: Some(&before),
        after: &after,
        changed: &changed,
        events: &evs,
        journal: &[],
        xrefs: &xrefs,
        now: r.now,
        converge: (!converge.is_empty()).then_some(Converge { partner: &row.partner, changes: &converge }),
    };
    let fanned_out_to = fan_out(c, r.registry, &change)?;

    for (k, v) in &chosen {
        c.set_chosen(row.id, k, &v.to_string())?;
    }
    row.status = ConflictStatus::Resolved.as_str().into();
    row.updated_at = r.now;
    row.resolved_by = Some(r.operator.clone());
    row.resolved_at = Some(r.now);
    row.resolution_comment = r.comment.clone();
    c.update_conflict(&row)?;
    let outcome = AuditOutcome {
        partner: Some(r.operator.clone()),
        result: "accepted",
        status: 200,
        error_codes: String::new(),
        ticket: Some((after.id, after.number.clone())),
    };
    c.insert_transaction(&r.audit.row(r.now, outcome))?;
    let conflict = c.conflict(row.id)?.ok_or(SyncError::ConflictNotFound { id: row.id })?;
    Ok(Resolved { conflict, version: after.version, fanned_out_to, superseded })
}

/// Outcome of a bulk resolution.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    /// Open conflicts the filter matched.
    pub matched: usize,
    /// Resolved (0 on a dry run).
    pub resolved: usize,
    /// Conflicts that could not be resolved, with the reason (each left open).
    pub refused: Vec<BulkRefusal>,
    pub dry_run: bool,
    /// Why the run stopped before the end (the database became unavailable): what is listed
    /// was done; run it again for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// True when a resolution wrote outbox rows (the processor is woken).
    #[serde(skip)]
    pub fanned_out: bool,
    /// What each resolution did, for alerts.
    #[serde(skip)]
    pub done: Vec<Resolved>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkRefusal {
    pub id: i64,
    pub reason: String,
}

/// At most this many conflicts per bulk request.
pub const BULK_LIMIT: i64 = 10_000;

/// A resolution of every open conflict a filter matches, with one choice for all their fields.
pub struct BulkResolution {
    pub filter: ConflictFilter,
    pub choice: Choice,
    pub operator: String,
    pub comment: Option<String>,
    pub audit: AuditInfo,
    /// Only count what the filter matches.
    pub dry_run: bool,
}

/// Resolves every open conflict the filter matches, each in a transaction of its own (one that
/// cannot be resolved stays open and is listed); a dry run only counts them.
pub async fn resolve_matching(
    db: &Db,
    registry: std::sync::Arc<Registry>,
    bulk: BulkResolution,
) -> Result<BulkOutcome, SyncError> {
    let BulkResolution { mut filter, choice, operator, comment, audit, dry_run } = bulk;
    filter.status = Some(ConflictStatus::Open.as_str().into());
    filter.limit = BULK_LIMIT;
    let f = filter.clone();
    let ids = db.read(move |c| c.conflict_ids(&f).map_err(StoreError::from)).await?;
    let mut out = BulkOutcome { matched: ids.len(), dry_run, ..Default::default() };
    if dry_run {
        return Ok(out);
    }
    for id in ids {
        let (reg, ch, op, com, aud) =
            (registry.clone(), choice.clone(), operator.clone(), comment.clone(), audit.clone());
        let done = db
            .write(move |c| {
                let resolution = Resolution {
                    registry: &reg,
                    id,
                    choices: BTreeMap::new(),
                    default: Some(ch),
                    operator: op,
                    comment: com,
                    audit: aud,
                    now: crate::util::now_ms(),
                };
                resolve(c, resolution)
            })
            .await;
        match done {
            Ok(r) => {
                out.resolved += 1;
                out.fanned_out |= !r.fanned_out_to.is_empty();
                out.done.push(r);
            }
            Err(SyncError::Store(e)) if e.is_transient() => {
                out.stopped = Some(format!("the database became unavailable at conflict {id}: {e}"));
                break;
            }
            Err(e) => out.refused.push(BulkRefusal { id, reason: e.to_string() }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acme() -> std::sync::Arc<Contract> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
        crate::contract::load_dir(&dir).unwrap().get("acme-msp").unwrap().clone()
    }

    fn ticket(stamps: &[(&str, i64, &str)]) -> Ticket {
        let mut values = Map::new();
        values.insert("state".into(), json!("on_hold"));
        values.insert("resolution_notes".into(), json!("from the desk"));
        Ticket {
            id: 1,
            number: "EB0000001".into(),
            version: 5,
            created_at: 0,
            updated_at: 0,
            created_by: "servicenow".into(),
            updated_by: "servicenow".into(),
            values,
            stamps: stamps
                .iter()
                .map(|(f, v, by)| (f.to_string(), Stamp { v: *v, by: by.to_string(), at: 0 }))
                .collect(),
            open_conflicts: 0,
        }
    }

    fn changes(pairs: &[(&str, Value)]) -> Changeset {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn a_field_another_party_changed_after_what_the_writer_saw_conflicts() {
        let c = acme();
        let t = ticket(&[("state", 5, "servicenow"), ("resolution_notes", 2, "servicenow")]);
        let found = detect(&c, 3, &t, &changes(&[("state", json!("resolved")), ("resolution_notes", json!("mine"))]));
        let fields: Vec<&str> = found.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["state"], "resolution_notes was changed before version 3, which Acme saw");
        assert_eq!((found[0].current.clone(), found[0].mode), (json!("on_hold"), OnConflict::Queue));
    }

    #[test]
    fn own_changes_equal_values_and_unstamped_fields_never_conflict() {
        let c = acme();
        let t = ticket(&[("state", 5, "acme-msp"), ("resolution_notes", 5, "servicenow")]);
        let none = detect(
            &c,
            1,
            &t,
            &changes(&[
                ("state", json!("resolved")),
                ("resolution_notes", json!("from the desk")),
                ("estimated_completion", json!("2026-12-03T10:00:00Z")),
            ]),
        );
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn an_operator_change_conflicts_like_a_partner_one() {
        let c = acme();
        let t = ticket(&[("state", 5, "operator:3")]);
        let found = detect(&c, 4, &t, &changes(&[("state", json!("in_progress"))]));
        assert_eq!(found.len(), 1);
        assert_eq!(answer_field(&c, &found[0]).set_by, "operator", "partners are not told credential ids");
        assert_eq!(answer_field(&c, &found[0]).yours, json!("Work In Progress"), "in Acme's vocabulary");
    }

    #[test]
    fn statuses_round_trip() {
        for s in ConflictStatus::ALL {
            assert_eq!(ConflictStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ConflictStatus::parse("pending"), None);
    }
}
