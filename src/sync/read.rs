//! Reads: resolving a partner's reference to a ticket it shares, and incremental listing.

use super::SyncError;
use crate::domain::Ticket;
use crate::store::models::XrefRow;
use crate::store::tickets::TicketRepo;

/// Resolves what a partner put in the path: its own ticket id, or the hub number of a ticket
/// shared with it (bonded, not recalled). Another partner's ids never resolve.
pub fn resolve<C: TicketRepo + ?Sized>(
    c: &mut C,
    partner: &str,
    reference: &str,
) -> Result<(Ticket, XrefRow), SyncError> {
    let xref = resolve_xref(c, partner, reference)?;
    let row =
        c.ticket_by_id(xref.ticket_id)?.ok_or_else(|| SyncError::NotFound { reference: reference.to_string() })?;
    Ok((row.into_ticket()?, xref))
}

/// The partner's active cross-reference for `reference` (its own ticket id, or the hub number
/// of a ticket shared with it), without reading the ticket.
pub fn resolve_xref<C: TicketRepo + ?Sized>(c: &mut C, partner: &str, reference: &str) -> Result<XrefRow, SyncError> {
    let xref = match c.xref_by_partner_id(partner, reference)? {
        Some(x) => Some(x),
        None => match c.ticket_by_number(reference)? {
            Some(t) => c.xref_for(partner, t.id)?,
            None => None,
        },
    };
    xref.filter(|x| x.active).ok_or_else(|| SyncError::NotFound { reference: reference.to_string() })
}

/// One page of tickets bonded to `partner`, oldest change first.
pub fn list<C: TicketRepo + ?Sized>(
    c: &mut C,
    partner: &str,
    updated_since: i64,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<(Ticket, XrefRow)>, SyncError> {
    c.tickets_for_partner(partner, updated_since, after, limit)?
        .into_iter()
        .map(|(t, x)| Ok((t.into_ticket()?, x)))
        .collect()
}
