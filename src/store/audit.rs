//! The transaction log (audit trail of every inbound request) and operator queries over it.

use super::models::TransactionRow;
use super::schema::transactions;
use diesel::prelude::*;

/// Filters for the admin transaction query.
#[derive(Debug, Default, Clone)]
pub struct TransactionFilter {
    pub partner: Option<String>,
    pub ticket_number: Option<String>,
    pub result: Option<String>,
    /// Only rows with an id below this (newest first paging).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub trait AuditRepo {
    fn insert_transaction(&mut self, row: &TransactionRow) -> QueryResult<()>;
    fn query_transactions(&mut self, filter: &TransactionFilter) -> QueryResult<Vec<TransactionRow>>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl AuditRepo for $conn {
    fn insert_transaction(&mut self, row: &TransactionRow) -> QueryResult<()> {
        diesel::insert_into(transactions::table).values(row).execute(self).map(|_| ())
    }

    fn query_transactions(&mut self, f: &TransactionFilter) -> QueryResult<Vec<TransactionRow>> {
        let mut q = transactions::table.into_boxed();
        if let Some(p) = &f.partner {
            q = q.filter(transactions::partner.eq(p.clone()));
        }
        if let Some(t) = &f.ticket_number {
            q = q.filter(transactions::ticket_number.eq(t.clone()));
        }
        if let Some(r) = &f.result {
            q = q.filter(transactions::result.eq(r.clone()));
        }
        if let Some(b) = f.before_id {
            q = q.filter(transactions::id.lt(b));
        }
        q.order(transactions::id.desc()).limit(f.limit).select(TransactionRow::as_select()).load(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
