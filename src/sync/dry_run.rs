//! A write's dry run: the write is applied in its transaction as it would be, what it did is
//! read back into a [`DryRunReport`] (canonical changes, derived values, the transition and
//! what its target state requires, events, each partner's push as that partner would receive
//! it, any conflict), and the transaction is then undone, so nothing is written.

use super::write::{TicketSummary, WriteCommand};
use super::SyncError;
use crate::domain::payload::OutboxPayload;
use crate::domain::{JournalInput, Ticket};
use crate::store::Repos;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What a write would do. Nothing of it was written.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DryRunReport {
    /// Always `true`: nothing was written.
    pub dry_run: bool,
    /// `accepted` (the write would be applied) or `refused` (see `problem`).
    pub outcome: String,
    /// The status the real request would be answered with.
    pub status: u16,
    /// The answer the real request would get.
    #[schema(value_type = Option<crate::api::tickets::TicketWriteResponse>)]
    pub answer: Option<TicketSummary>,
    /// The RFC 9457 problem the real request would get, when refused.
    #[schema(value_type = Option<Object>)]
    pub problem: Option<Value>,
    /// Every canonical field the write would change, from → to.
    #[schema(value_type = Object)]
    pub changes: BTreeMap<String, FieldChangeView>,
    /// Of those, the ones the payload did not send (derived by rules or the priority matrix).
    pub derived: Vec<String>,
    /// The state change, in the partner's values and canonical, with what the target requires.
    pub transition: Option<TransitionView>,
    /// Journal entries the write would add.
    #[schema(value_type = Vec<Object>)]
    pub journal: Vec<JournalInput>,
    /// Lifecycle events the write would raise.
    pub events: Vec<String>,
    /// Each push the write would queue, as the partner would receive it (to an operator:
    /// `ebond contracts try`).
    pub pushes: Vec<PushView>,
    /// Over the API, to a partner: how many other parties would be pushed the change (who they
    /// are and what they read is theirs).
    pub other_pushes: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldChangeView {
    pub from: Value,
    pub to: Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransitionView {
    /// The partner's state values.
    pub from: String,
    pub to: String,
    pub from_canonical: String,
    pub to_canonical: String,
    /// Fields the target state requires, under the partner's names.
    pub requires: Vec<String>,
}

/// One push, as its partner would receive it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PushView {
    pub partner: String,
    /// The headline event (`webhook-id` and the signature are made at delivery).
    pub event: String,
    pub method: String,
    pub url: String,
    /// `true` for the partner's first push (its create endpoint).
    pub creates: bool,
    #[schema(value_type = Object)]
    pub body: Value,
}

impl DryRunReport {
    /// The report of a write that would be refused with `problem` (answered `status`).
    pub fn refused(status: u16, problem: Value) -> DryRunReport {
        DryRunReport {
            dry_run: true,
            outcome: "refused".into(),
            status,
            answer: None,
            problem: Some(problem),
            changes: BTreeMap::new(),
            derived: Vec::new(),
            transition: None,
            journal: Vec::new(),
            events: Vec::new(),
            pushes: Vec::new(),
            other_pushes: 0,
        }
    }
}

/// What a write that has been applied on `c` (not yet committed) did: read back from the
/// transaction, including the outbox rows it queued (the last `pushes` of the ticket's).
#[allow(clippy::too_many_arguments)]
pub(super) fn report<C: Repos + ?Sized>(
    c: &mut C,
    cmd: &WriteCommand,
    status: u16,
    answer: &TicketSummary,
    before: Option<&Ticket>,
    after: &Ticket,
    events: &[&'static str],
    pushes: usize,
) -> Result<DryRunReport, SyncError> {
    let contract = cmd.contract;
    let empty = serde_json::Map::new();
    let before_values = before.map_or(&empty, |b| &b.values);
    let changes: BTreeMap<String, FieldChangeView> = super::write::changed_fields(before_values, &after.values)
        .into_iter()
        .map(|k| {
            let view = FieldChangeView {
                from: before_values.get(k).cloned().unwrap_or(Value::Null),
                to: after.values.get(k).cloned().unwrap_or(Value::Null),
            };
            (k.to_string(), view)
        })
        .collect();
    let derived = changes.keys().filter(|k| !cmd.mapped.changes.contains_key(*k)).cloned().collect();
    let workflow = &cmd.registry.workflow;
    let to = after.state();
    let from = before.map(|b| b.state());
    let transition = (from != Some(to)).then(|| TransitionView {
        from: from.map(|f| contract.state_text(f)).unwrap_or_default(),
        to: contract.state_text(to),
        from_canonical: from.unwrap_or_default().to_string(),
        to_canonical: to.to_string(),
        requires: workflow
            .states
            .iter()
            .find(|s| s.name == to)
            .map(|s| s.requires.iter().map(|f| contract.partner_name_of(f)).collect())
            .unwrap_or_default(),
    });
    let rows = if pushes > 0 { c.outbox_of_ticket(after.id)? } else { Vec::new() };
    let xrefs = if pushes > 0 { c.xrefs_of_ticket(after.id)? } else { Vec::new() };
    let mut views = Vec::new();
    for row in rows.iter().skip(rows.len().saturating_sub(pushes)) {
        let Some(partner) = cmd.registry.get(&row.partner) else { continue };
        let Some(outbound) = partner.outbound.as_ref() else { continue };
        let payload: OutboxPayload = serde_json::from_str(&row.payload)
            .map_err(|e| crate::store::StoreError::Corrupt(format!("outbox payload of a dry run: {e}")))?;
        let pid = xrefs.iter().find(|x| x.partner == row.partner).and_then(|x| x.partner_ticket_id.clone());
        let view = match crate::outbox::request::build(partner, outbound, &payload, pid.as_deref()) {
            Ok(req) => PushView {
                partner: row.partner.clone(),
                event: row.event.clone(),
                method: req.method.to_string(),
                url: req.url,
                creates: req.creates,
                body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
            },
            // What delivery would dead-letter at once: shown, not hidden.
            Err(e) => PushView {
                partner: row.partner.clone(),
                event: row.event.clone(),
                method: String::new(),
                url: String::new(),
                creates: false,
                body: Value::String(format!("would not be sent: {e}")),
            },
        };
        views.push(view);
    }
    Ok(DryRunReport {
        dry_run: true,
        outcome: "accepted".into(),
        status,
        answer: Some(answer.clone()),
        problem: None,
        changes,
        derived,
        transition,
        journal: cmd.mapped.journal.clone(),
        events: events.iter().map(|e| e.to_string()).collect(),
        pushes: views,
        other_pushes: 0,
    })
}
