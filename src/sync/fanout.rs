//! Which partners hear about a change: one outbox row for every other partner whose
//! subscription matches, never for the originator; `recalled` for a partner a ticket moved
//! away from.

use crate::contract::{Contract, Registry};
use crate::domain::events::Event;
use crate::domain::payload::{FieldChange, Origin, OutboxPayload, TicketSnapshot};
use crate::domain::{JournalInput, Ticket};
use crate::store::models::{NewOutbox, NewXref, XrefRow};
use crate::store::outbox::OutboxStatus;
use crate::store::tickets::TicketRepo;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What changed in one write, as fan-out sees it.
pub struct Change<'a> {
    pub origin: &'a str,
    pub request_id: &'a str,
    pub before: Option<&'a Ticket>,
    pub after: &'a Ticket,
    /// Canonical fields whose value differs between `before` and `after` (none on create).
    pub changed: &'a [&'a str],
    pub events: &'a [Event],
    pub journal: &'a [JournalInput],
    /// The ticket's cross-references, read under its lock by the caller.
    pub xrefs: &'a [XrefRow],
    pub now: i64,
    /// A partner whose copy differs from the hub although the ticket may not have changed (the
    /// loser of a resolved conflict): it gets a push with these changes in any case.
    pub converge: Option<Converge<'a>>,
}

/// Field changes one partner must hear to converge on the hub's values.
pub struct Converge<'a> {
    pub partner: &'a str,
    pub changes: &'a BTreeMap<String, FieldChange>,
}

/// Is `partner` interested in a ticket with these values (ignoring event types)?
fn interested(contract: &Contract, values: &Map<String, Value>, bonded: bool) -> bool {
    contract
        .outbound
        .as_ref()
        .is_some_and(|o| o.subscriptions.iter().any(|s| s.filter_matches(values) && (!s.only_bonded || bonded)))
}

/// Writes the outbox rows (and pending cross-references) for one change; returns the rows'
/// partners in order, for logging.
pub fn fan_out<C: TicketRepo + ?Sized>(
    c: &mut C,
    registry: &Registry,
    change: &Change,
) -> Result<Vec<String>, diesel::result::Error> {
    // The same field changes go to every partner: built once per write.
    let changes: BTreeMap<String, FieldChange> = match change.before {
        Some(before) => change
            .changed
            .iter()
            .map(|k| (k.to_string(), FieldChange { from: before.get(k).clone(), to: change.after.get(k).clone() }))
            // A field absent on one side and null on the other is no change to report.
            .filter(|(_, c)| c.from != c.to)
            .collect(),
        None => BTreeMap::new(),
    };
    let mut rows = Vec::new();
    for partner in registry.partners() {
        if partner.id == change.origin {
            continue;
        }
        let Some(outbound) = &partner.outbound else {
            continue;
        };
        let xref = change.xrefs.iter().find(|x| x.partner == partner.id);
        let bonded = xref.as_ref().is_some_and(|x| x.active);
        let mut events: Vec<Event> = change
            .events
            .iter()
            .copied()
            .filter(|e| {
                outbound.subscriptions.iter().any(|s| {
                    s.events.contains(e) && s.filter_matches(&change.after.values) && (!s.only_bonded || bonded)
                })
            })
            .collect();
        let recalled = match change.before {
            Some(before) => {
                bonded
                    && interested(partner, &before.values, bonded)
                    && !interested(partner, &change.after.values, bonded)
            }
            None => false,
        };
        if recalled {
            if let Some(x) = &xref {
                c.set_xref_active(x.id, false, change.now)?;
            }
            if !outbound.subscriptions.iter().any(|s| s.events.contains(&Event::Recalled)) {
                continue;
            }
            events = vec![Event::Recalled];
        }
        let converging = change.converge.as_ref().filter(|c| c.partner == partner.id.as_str() && !recalled);
        if events.is_empty() && converging.is_some() && interested(partner, &change.after.values, bonded) {
            events = vec![Event::Updated];
        }
        if events.is_empty() {
            continue;
        }
        // An update whose every change is one the partner cannot read would reach it with an
        // unchanged body (a comment for a partner that reads no comments): nothing to send.
        if change.before.is_some()
            && !recalled
            && converging.is_none()
            && !carries_news(partner, &changes, change.journal)
        {
            continue;
        }
        if !recalled {
            // The partner now shares the ticket: it may read it and address it by number
            // until its own id arrives (from the first push, or from the partner itself).
            match &xref {
                None => c.insert_xref(&NewXref {
                    partner: &partner.id,
                    partner_ticket_id: None,
                    ticket_id: change.after.id,
                    active: true,
                    created_at: change.now,
                    updated_at: change.now,
                    seen_version: 0,
                })?,
                Some(x) if !x.active => c.set_xref_active(x.id, true, change.now)?,
                Some(_) => {}
            }
        }
        match converging {
            Some(c) => {
                let mut own = changes.clone();
                own.extend(c.changes.iter().map(|(k, v)| (k.clone(), v.clone())));
                rows.push(outbox_row(&partner.id, change, &own, &events)?);
            }
            None => rows.push(outbox_row(&partner.id, change, &changes, &events)?),
        }
    }
    let partners = rows.iter().map(|r| r.partner.clone()).collect();
    c.insert_outbox(&rows)?;
    Ok(partners)
}

/// Does an update carry anything `partner` reads: a changed field or a journal entry of a kind
/// its contract lets it read?
fn carries_news(partner: &Contract, changes: &BTreeMap<String, FieldChange>, journal: &[JournalInput]) -> bool {
    changes.keys().any(|k| partner.may_read(k))
        || journal
            .iter()
            .any(|j| j.kind != crate::domain::JournalKind::FieldChange && partner.may_read(j.kind.as_str()))
}

fn outbox_row(
    partner: &str,
    change: &Change,
    changes: &BTreeMap<String, FieldChange>,
    events: &[Event],
) -> Result<NewOutbox, diesel::result::Error> {
    let delivery_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let headline = events.iter().min().copied().unwrap_or(Event::Updated);
    let payload = OutboxPayload {
        delivery_id: delivery_id.clone(),
        event: headline.as_str().to_string(),
        events: events.iter().map(|e| e.as_str().to_string()).collect(),
        origin: Origin { partner: change.origin.to_string(), request_id: change.request_id.to_string() },
        ticket: TicketSnapshot::of(change.after),
        changes: changes.clone(),
        journal: change.journal.to_vec(),
    };
    Ok(NewOutbox {
        partner: partner.to_string(),
        ticket_id: change.after.id,
        event: headline.as_str().to_string(),
        delivery_id,
        payload: serde_json::to_string(&payload).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?,
        status: OutboxStatus::Pending.as_str().into(),
        attempts: 0,
        next_attempt_at: change.now,
        created_at: change.now,
        updated_at: change.now,
    })
}
