//! Pushing the hub's current values to one partner whose copy drifted, without changing the
//! ticket: a converge push through the outbox, in order behind the ticket's other pushes.

use super::fanout::{fan_out, Change, Converge};
use super::SyncError;
use crate::contract::Registry;
use crate::domain::payload::FieldChange;
use crate::store::Repos;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A push of a ticket's current values to one partner.
pub struct Repush<'a> {
    pub partner: &'a str,
    pub ticket_id: i64,
    /// The partner's values (canonical) of the `fields` its copy has wrong.
    pub theirs: &'a Map<String, Value>,
    pub fields: &'a [String],
    /// Who asks (`reconcile:<run>`), as the push's origin.
    pub origin: &'a str,
    pub now: i64,
}

/// Queues the push. True when a row was queued (false: the partner's subscriptions do not
/// cover the ticket, or it has no outbound endpoints).
pub fn repush<C: Repos + ?Sized>(c: &mut C, registry: &Registry, r: &Repush) -> Result<bool, SyncError> {
    let Repush { partner, ticket_id, theirs, fields, origin, now } = *r;
    let Some(row) = c.ticket_locked(ticket_id)? else {
        return Err(SyncError::NotFound { reference: ticket_id.to_string() });
    };
    let ticket = row.into_ticket()?;
    let xrefs = c.xrefs_of_ticket(ticket.id)?;
    let changes: BTreeMap<String, FieldChange> = fields
        .iter()
        .map(|f| {
            (f.clone(), FieldChange { from: theirs.get(f).cloned().unwrap_or(Value::Null), to: ticket.get(f).clone() })
        })
        .collect();
    let change = Change {
        origin,
        request_id: origin,
        before: Some(&ticket),
        after: &ticket,
        changed: &[],
        events: &[],
        journal: &[],
        xrefs: &xrefs,
        now,
        converge: Some(Converge { partner, changes: &changes }),
    };
    let queued = fan_out(c, registry, &change)?;
    Ok(queued.iter().any(|p| p == partner))
}
