//! Conflict records (one per conflicting write, with one row per field) and the queries the
//! operators' queue runs over them. Implemented once for both backends by `impl_for_backends!`.

use super::models::{ConflictFieldRow, ConflictRow, JournalRow};
use super::schema::{conflict_fields, conflicts, journal};
use diesel::prelude::*;

/// A conflict record with its fields.
pub type Conflict = (ConflictRow, Vec<ConflictFieldRow>);

/// Filters of the operators' conflict list.
#[derive(Debug, Default, Clone)]
pub struct ConflictFilter {
    pub status: Option<String>,
    pub partner: Option<String>,
    /// Hub ticket number.
    pub ticket: Option<String>,
    /// Only records with a larger id (oldest first paging).
    pub after_id: Option<i64>,
    pub limit: i64,
}

pub trait ConflictRepo {
    /// Writes the record and its fields; returns its id.
    fn insert_conflict(&mut self, row: &ConflictRow, fields: &[ConflictFieldRow]) -> QueryResult<i64>;
    fn conflict(&mut self, id: i64) -> QueryResult<Option<Conflict>>;
    /// The records of one ticket, oldest first (`open_only`: only those still open).
    fn conflicts_of_ticket(&mut self, ticket_id: i64, open_only: bool) -> QueryResult<Vec<Conflict>>;
    fn list_conflicts(&mut self, filter: &ConflictFilter) -> QueryResult<Vec<Conflict>>;
    /// Ids of the records a filter matches (for bulk resolution), oldest first, at most `limit`.
    fn conflict_ids(&mut self, filter: &ConflictFilter) -> QueryResult<Vec<i64>>;
    /// Saves a record's status and resolution (its fields' `chosen` with [`Self::set_chosen`]).
    fn update_conflict(&mut self, row: &ConflictRow) -> QueryResult<()>;
    fn set_chosen(&mut self, conflict_id: i64, field: &str, chosen: &str) -> QueryResult<()>;
    /// The fields of the given records, in record and field order.
    fn fields_of(&mut self, ids: &[i64]) -> QueryResult<Vec<ConflictFieldRow>>;
    /// Open records per partner.
    fn open_conflict_counts(&mut self) -> QueryResult<Vec<(String, i64)>>;
    /// The ticket's field-change journal rows after `version`, oldest first: the history a
    /// conflict's base value is read from (only when a conflict was found).
    fn field_changes_after(&mut self, ticket_id: i64, version: i64) -> QueryResult<Vec<JournalRow>>;
}

/// The boxed conflict query for a filter (a macro: the boxed type differs per backend).
macro_rules! filtered {
    ($f:expr) => {{
        let f: &ConflictFilter = $f;
        let mut q = conflicts::table.into_boxed();
        if let Some(s) = &f.status {
            q = q.filter(conflicts::status.eq(s.clone()));
        }
        if let Some(p) = &f.partner {
            q = q.filter(conflicts::partner.eq(p.clone()));
        }
        if let Some(t) = &f.ticket {
            q = q.filter(conflicts::ticket_number.eq(t.clone()));
        }
        if let Some(a) = f.after_id {
            q = q.filter(conflicts::id.gt(a));
        }
        q
    }};
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl ConflictRepo for $conn {
    fn insert_conflict(&mut self, row: &ConflictRow, fields: &[ConflictFieldRow]) -> QueryResult<i64> {
        let id: i64 = diesel::insert_into(conflicts::table).values(row).returning(conflicts::id).get_result(self)?;
        let fields: Vec<ConflictFieldRow> =
            fields.iter().cloned().map(|f| ConflictFieldRow { conflict_id: id, ..f }).collect();
        diesel::insert_into(conflict_fields::table).values(&fields).execute(self)?;
        Ok(id)
    }

    fn conflict(&mut self, id: i64) -> QueryResult<Option<Conflict>> {
        let Some(row) = conflicts::table.find(id).select(ConflictRow::as_select()).first(self).optional()? else {
            return Ok(None);
        };
        let fields = self.fields_of(&[row.id])?;
        Ok(attach(vec![row], fields).pop())
    }

    fn conflicts_of_ticket(&mut self, ticket_id: i64, open_only: bool) -> QueryResult<Vec<Conflict>> {
        let mut q = conflicts::table.filter(conflicts::ticket_id.eq(ticket_id)).into_boxed();
        if open_only {
            q = q.filter(conflicts::status.eq("open"));
        }
        let rows = q.order(conflicts::id).select(ConflictRow::as_select()).load(self)?;
        let fields = self.fields_of(&rows.iter().map(|r| r.id).collect::<Vec<_>>())?;
        Ok(attach(rows, fields))
    }

    fn list_conflicts(&mut self, f: &ConflictFilter) -> QueryResult<Vec<Conflict>> {
        let rows = filtered!(f).order(conflicts::id).limit(f.limit).select(ConflictRow::as_select()).load(self)?;
        let fields = self.fields_of(&rows.iter().map(|r| r.id).collect::<Vec<_>>())?;
        Ok(attach(rows, fields))
    }

    fn conflict_ids(&mut self, f: &ConflictFilter) -> QueryResult<Vec<i64>> {
        filtered!(f).order(conflicts::id).limit(f.limit).select(conflicts::id).load(self)
    }

    fn update_conflict(&mut self, row: &ConflictRow) -> QueryResult<()> {
        diesel::update(conflicts::table.find(row.id)).set(row).execute(self).map(|_| ())
    }

    fn set_chosen(&mut self, conflict_id: i64, field: &str, chosen: &str) -> QueryResult<()> {
        diesel::update(conflict_fields::table.find((conflict_id, field)))
            .set(conflict_fields::chosen.eq(chosen))
            .execute(self)
            .map(|_| ())
    }

    fn fields_of(&mut self, ids: &[i64]) -> QueryResult<Vec<ConflictFieldRow>> {
        conflict_fields::table
            .filter(conflict_fields::conflict_id.eq_any(ids))
            .order((conflict_fields::conflict_id, conflict_fields::field))
            .select(ConflictFieldRow::as_select())
            .load(self)
    }

    fn open_conflict_counts(&mut self) -> QueryResult<Vec<(String, i64)>> {
        conflicts::table
            .filter(conflicts::status.eq("open"))
            .group_by(conflicts::partner)
            .select((conflicts::partner, diesel::dsl::count_star()))
            .load(self)
    }

    fn field_changes_after(&mut self, ticket_id: i64, version: i64) -> QueryResult<Vec<JournalRow>> {
        journal::table
            .filter(journal::ticket_id.eq(ticket_id))
            .filter(journal::version.gt(version))
            .filter(journal::kind.eq(crate::domain::JournalKind::FieldChange.as_str()))
            // Entries are appended in version order: the ticket's own index (ticket_id, id)
            // serves this without an index of its own that every journal insert would pay for.
            .order(journal::id)
            .select(JournalRow::as_select())
            .load(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);

/// Each record with its own fields (`fields` holds the fields of all of them).
fn attach(rows: Vec<ConflictRow>, fields: Vec<ConflictFieldRow>) -> Vec<Conflict> {
    let mut by_id: std::collections::BTreeMap<i64, Vec<ConflictFieldRow>> = std::collections::BTreeMap::new();
    for f in fields {
        by_id.entry(f.conflict_id).or_default().push(f);
    }
    rows.into_iter()
        .map(|r| {
            let mine = by_id.remove(&r.id).unwrap_or_default();
            (r, mine)
        })
        .collect()
}
