//! Ticket, cross-reference, journal, outbox and idempotency statements: everything one inbound
//! write touches. Implemented once for both backends by `impl_for_backends!`.

use super::models::*;
use super::schema::*;
use super::Dialect;
use diesel::prelude::*;

/// Statements of the inbound write path (run inside the caller's transaction).
pub trait TicketRepo: Dialect {
    /// Next human-readable ticket number (`EB0000001`…); serialises concurrent creates.
    fn next_ticket_number(&mut self) -> QueryResult<String>;
    fn insert_ticket(&mut self, row: &TicketRow) -> QueryResult<i64>;
    fn update_ticket(&mut self, row: &TicketRow) -> QueryResult<()>;
    fn ticket_by_id(&mut self, id: i64) -> QueryResult<Option<TicketRow>>;
    fn ticket_by_number(&mut self, number: &str) -> QueryResult<Option<TicketRow>>;
    fn xref_by_partner_id(&mut self, partner: &str, partner_ticket_id: &str) -> QueryResult<Option<XrefRow>>;
    fn xref_for(&mut self, partner: &str, ticket_id: i64) -> QueryResult<Option<XrefRow>>;
    fn xrefs_of_ticket(&mut self, ticket_id: i64) -> QueryResult<Vec<XrefRow>>;
    fn insert_xref(&mut self, row: &NewXref) -> QueryResult<()>;
    /// Bonds the partner's own id to a cross-reference that has none yet; false when another
    /// writer bonded one first (the column is never overwritten).
    fn bond_partner_ticket_id(&mut self, id: i64, partner_ticket_id: &str, now: i64) -> QueryResult<bool>;
    /// Shares (active) or recalls (inactive) a ticket, leaving the partner's id untouched.
    fn set_xref_active(&mut self, id: i64, active: bool, now: i64) -> QueryResult<()>;
    /// Id and number of the ticket `reference` names for `partner` (its own ticket id, or the
    /// hub number of a ticket shared with it), as `sync::read::resolve` does: what the audit row
    /// records.
    fn shared_ticket(&mut self, partner: &str, reference: &str) -> QueryResult<Option<(i64, String)>>;
    /// Raises what the partners of these cross-references have seen to the versions given (never
    /// lowers it), in one statement: a read or a list page.
    fn mark_seen_many(&mut self, seen: &[(i64, i64)]) -> QueryResult<()>;
    /// [`Self::mark_seen_many`] by partner and ticket (a delivered push).
    fn mark_seen_by(&mut self, partner: &str, ticket_id: i64, version: i64) -> QueryResult<()>;
    /// Sets the ticket's open-conflict count without touching its version.
    fn set_open_conflicts(&mut self, ticket_id: i64, open: i64) -> QueryResult<()>;
    fn journal_entry_exists(&mut self, ticket_id: i64, partner: &str, entry_id: &str) -> QueryResult<bool>;
    fn insert_journal(&mut self, row: &NewJournal) -> QueryResult<()>;
    fn journal_of_ticket(&mut self, ticket_id: i64) -> QueryResult<Vec<JournalRow>>;
    fn insert_outbox(&mut self, rows: &[NewOutbox]) -> QueryResult<()>;
    fn outbox_of_ticket(&mut self, ticket_id: i64) -> QueryResult<Vec<OutboxRow>>;
    fn idempotency_get(&mut self, partner: &str, key: &str) -> QueryResult<Option<IdempotencyRow>>;
    fn idempotency_put(&mut self, row: &IdempotencyRow) -> QueryResult<()>;
    /// Tickets bonded to `partner`, oldest change first, after the `(updated_at, id)` cursor.
    fn tickets_for_partner(
        &mut self,
        partner: &str,
        updated_since: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> QueryResult<Vec<(TicketRow, XrefRow)>>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl TicketRepo for $conn {
    fn next_ticket_number(&mut self) -> QueryResult<String> {
        diesel::update(counters::table.filter(counters::name.eq("ticket_number")))
            .set(counters::value.eq(counters::value + 1))
            .execute(self)?;
        let n: i64 = counters::table
            .filter(counters::name.eq("ticket_number"))
            .select(counters::value)
            .first(self)?;
        Ok(format!("EB{n:07}"))
    }

    fn insert_ticket(&mut self, row: &TicketRow) -> QueryResult<i64> {
        // The Table-API facade's id, given here so that no trigger (SQLite) or column default
        // (PostgreSQL) has to run for it; those stay for rows inserted by other means.
        let sys_id = uuid::Uuid::new_v4().simple().to_string();
        diesel::insert_into(tickets::table)
            .values((row, tickets::sys_id.eq(sys_id)))
            .returning(tickets::id)
            .get_result(self)
    }

    fn update_ticket(&mut self, row: &TicketRow) -> QueryResult<()> {
        diesel::update(tickets::table.find(row.id)).set(row).execute(self).map(|_| ())
    }

    fn ticket_by_id(&mut self, id: i64) -> QueryResult<Option<TicketRow>> {
        tickets::table.find(id).select(TicketRow::as_select()).first(self).optional()
    }

    fn ticket_by_number(&mut self, number: &str) -> QueryResult<Option<TicketRow>> {
        tickets::table.filter(tickets::number.eq(number)).select(TicketRow::as_select()).first(self).optional()
    }

    fn xref_by_partner_id(&mut self, partner: &str, partner_ticket_id: &str) -> QueryResult<Option<XrefRow>> {
        xrefs::table
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::partner_ticket_id.eq(partner_ticket_id))
            .select(XrefRow::as_select())
            .first(self)
            .optional()
    }

    fn xref_for(&mut self, partner: &str, ticket_id: i64) -> QueryResult<Option<XrefRow>> {
        xrefs::table
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::ticket_id.eq(ticket_id))
            .select(XrefRow::as_select())
            .first(self)
            .optional()
    }

    fn xrefs_of_ticket(&mut self, ticket_id: i64) -> QueryResult<Vec<XrefRow>> {
        xrefs::table.filter(xrefs::ticket_id.eq(ticket_id)).order(xrefs::id).select(XrefRow::as_select()).load(self)
    }

    fn insert_xref(&mut self, row: &NewXref) -> QueryResult<()> {
        diesel::insert_into(xrefs::table).values(row).execute(self).map(|_| ())
    }

    fn bond_partner_ticket_id(&mut self, id: i64, partner_ticket_id: &str, now: i64) -> QueryResult<bool> {
        diesel::update(xrefs::table.find(id).filter(xrefs::partner_ticket_id.is_null()))
            .set((xrefs::partner_ticket_id.eq(partner_ticket_id), xrefs::updated_at.eq(now)))
            .execute(self)
            .map(|n| n == 1)
    }

    fn set_xref_active(&mut self, id: i64, active: bool, now: i64) -> QueryResult<()> {
        diesel::update(xrefs::table.find(id)).set((xrefs::active.eq(active), xrefs::updated_at.eq(now))).execute(self).map(|_| ())
    }

    fn shared_ticket(&mut self, partner: &str, reference: &str) -> QueryResult<Option<(i64, String)>> {
        // As `sync::read::resolve`: the partner's own id first (a recalled one hides the
        // ticket), else a hub number the partner shares.
        let by_partner_id = xrefs::table
            .inner_join(tickets::table)
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::partner_ticket_id.eq(reference))
            .select((xrefs::active, tickets::id, tickets::number))
            .first::<(bool, i64, String)>(self)
            .optional()?;
        if let Some((active, id, number)) = by_partner_id {
            return Ok(active.then_some((id, number)));
        }
        xrefs::table
            .inner_join(tickets::table)
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::active.eq(true))
            .filter(tickets::number.eq(reference))
            .select((tickets::id, tickets::number))
            .first(self)
            .optional()
    }

    fn mark_seen_many(&mut self, seen: &[(i64, i64)]) -> QueryResult<()> {
        if seen.is_empty() {
            return Ok(());
        }
        // One statement for the page; the values are integers from the database itself.
        let case: String = seen.iter().map(|(id, v)| format!(" WHEN {id} THEN {v}")).collect();
        let ids: Vec<String> = seen.iter().map(|(id, _)| id.to_string()).collect();
        let sql = format!(
            "UPDATE xrefs SET seen_version = CASE id{case} END WHERE id IN ({}) AND seen_version < CASE id{case} END",
            ids.join(", ")
        );
        diesel::sql_query(sql).execute(self).map(|_| ())
    }

    fn mark_seen_by(&mut self, partner: &str, ticket_id: i64, version: i64) -> QueryResult<()> {
        diesel::update(
            xrefs::table
                .filter(xrefs::partner.eq(partner))
                .filter(xrefs::ticket_id.eq(ticket_id))
                .filter(xrefs::seen_version.lt(version)),
        )
        .set(xrefs::seen_version.eq(version))
        .execute(self)
        .map(|_| ())
    }

    fn set_open_conflicts(&mut self, ticket_id: i64, open: i64) -> QueryResult<()> {
        diesel::update(tickets::table.find(ticket_id)).set(tickets::open_conflicts.eq(open)).execute(self).map(|_| ())
    }

    fn journal_entry_exists(&mut self, ticket_id: i64, partner: &str, entry_id: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            journal::table
                .filter(journal::ticket_id.eq(ticket_id))
                .filter(journal::author_partner.eq(partner))
                .filter(journal::partner_entry_id.eq(entry_id)),
        ))
        .get_result(self)
    }

    fn insert_journal(&mut self, row: &NewJournal) -> QueryResult<()> {
        diesel::insert_into(journal::table).values(row).execute(self).map(|_| ())
    }

    fn journal_of_ticket(&mut self, ticket_id: i64) -> QueryResult<Vec<JournalRow>> {
        journal::table.filter(journal::ticket_id.eq(ticket_id)).order(journal::id).select(JournalRow::as_select()).load(self)
    }

    fn insert_outbox(&mut self, rows: &[NewOutbox]) -> QueryResult<()> {
        // One statement per row keeps ids in commit order on both backends.
        for row in rows {
            diesel::insert_into(outbox::table).values(row).execute(self)?;
        }
        Ok(())
    }

    fn outbox_of_ticket(&mut self, ticket_id: i64) -> QueryResult<Vec<OutboxRow>> {
        outbox::table.filter(outbox::ticket_id.eq(ticket_id)).order(outbox::id).select(OutboxRow::as_select()).load(self)
    }

    fn idempotency_get(&mut self, partner: &str, key: &str) -> QueryResult<Option<IdempotencyRow>> {
        idempotency_keys::table
            .filter(idempotency_keys::partner.eq(partner))
            .filter(idempotency_keys::key.eq(key))
            .select(IdempotencyRow::as_select())
            .first(self)
            .optional()
    }

    fn idempotency_put(&mut self, row: &IdempotencyRow) -> QueryResult<()> {
        diesel::insert_into(idempotency_keys::table).values(row).execute(self).map(|_| ())
    }

    fn tickets_for_partner(
        &mut self,
        partner: &str,
        updated_since: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> QueryResult<Vec<(TicketRow, XrefRow)>> {
        let mut q = tickets::table
            .inner_join(xrefs::table)
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::active.eq(true))
            .filter(tickets::updated_at.ge(updated_since))
            .into_boxed();
        if let Some((at, id)) = after {
            q = q.filter(tickets::updated_at.gt(at).or(tickets::updated_at.eq(at).and(tickets::id.gt(id))));
        }
        q.order((tickets::updated_at, tickets::id))
            .limit(limit)
            .select((TicketRow::as_select(), XrefRow::as_select()))
            .load(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
