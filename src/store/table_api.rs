//! The Table-API facade's list statements: a query compiled by `facade::plan` (whitelisted
//! columns, every value a bound parameter) run as one page and one count.

use super::models::TicketRow;
use crate::facade::plan::{Bind, Sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

/// A ticket row with its facade id and the partner's cross-reference.
#[derive(Debug, QueryableByName)]
pub struct FacadeRow {
    #[diesel(embed)]
    pub ticket: TicketRow,
    #[diesel(sql_type = Text)]
    pub sys_id: String,
    #[diesel(sql_type = BigInt)]
    pub xref_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub xref_pid: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub xref_seen: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub trait TableApiRepo {
    /// One page of `sql`'s rows in its order.
    fn facade_page(&mut self, sql: &Sql, limit: i64, offset: i64) -> QueryResult<Vec<FacadeRow>>;
    /// How many rows `sql` selects in all (`X-Total-Count`).
    fn facade_count(&mut self, sql: &Sql) -> QueryResult<i64>;
    fn sys_id_of(&mut self, ticket_id: i64) -> QueryResult<Option<String>>;
}

macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind::<Text, _>(s.clone()),
                Bind::Int(i) => q.bind::<BigInt, _>(*i),
            };
        }
        q
    }};
}

macro_rules! impl_for_backends {
    ($($conn:ty => $backend:ty);*) => {$(
impl TableApiRepo for $conn {
    fn facade_page(&mut self, sql: &Sql, limit: i64, offset: i64) -> QueryResult<Vec<FacadeRow>> {
        // limit and offset are integers the facade parsed, not text of the caller's.
        let text = format!(
            "SELECT t.*, x.id AS xref_id, x.partner_ticket_id AS xref_pid, x.seen_version AS xref_seen {} {} LIMIT {} OFFSET {}",
            sql.from_where, sql.order_by, limit.max(0), offset.max(0)
        );
        let q = diesel::sql_query(text).into_boxed::<$backend>();
        let q = bind_all!(q, sql.binds.iter().chain(sql.order_binds.iter()));
        q.load::<FacadeRow>(self)
    }

    fn facade_count(&mut self, sql: &Sql) -> QueryResult<i64> {
        let q = diesel::sql_query(format!("SELECT COUNT(*) AS n {}", sql.from_where)).into_boxed::<$backend>();
        let q = bind_all!(q, sql.binds.iter());
        Ok(q.get_result::<Count>(self)?.n)
    }

    fn sys_id_of(&mut self, ticket_id: i64) -> QueryResult<Option<String>> {
        use super::schema::tickets;
        tickets::table.find(ticket_id).select(tickets::sys_id).first(self).optional()
    }
}
    )*};
}

impl_for_backends!(
    diesel::SqliteConnection => diesel::sqlite::Sqlite;
    diesel::PgConnection => diesel::pg::Pg
);
