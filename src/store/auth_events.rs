//! Authentication events (every token request and bearer-token refusal; never a secret) and
//! the lockout count read from them.

use super::models::*;
use super::schema::*;
use diesel::prelude::*;

pub trait AuthEventRepo {
    fn insert_auth_event(&mut self, row: &AuthEventRow) -> QueryResult<()>;
    /// Failed attempts since `since` by this client id or from this source, and the newest one.
    fn recent_failures(&mut self, client_id: Option<&str>, source: &str, since: i64)
        -> QueryResult<(i64, Option<i64>)>;
    fn list_auth_events(
        &mut self,
        client_id: Option<&str>,
        outcome: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> QueryResult<Vec<AuthEventRow>>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl AuthEventRepo for $conn {
    fn insert_auth_event(&mut self, row: &AuthEventRow) -> QueryResult<()> {
        diesel::insert_into(auth_events::table).values(row).execute(self).map(|_| ())
    }

    fn recent_failures(&mut self, client_id: Option<&str>, source: &str, since: i64) -> QueryResult<(i64, Option<i64>)> {
        let base = auth_events::table.filter(auth_events::outcome.eq("failure")).filter(auth_events::at.ge(since));
        let by_source: (i64, Option<i64>) = base
            .filter(auth_events::source.eq(source))
            .select((diesel::dsl::count_star(), diesel::dsl::max(auth_events::at)))
            .first(self)?;
        let by_client: (i64, Option<i64>) = match client_id {
            Some(id) => base
                .filter(auth_events::client_id.eq(id))
                .select((diesel::dsl::count_star(), diesel::dsl::max(auth_events::at)))
                .first(self)?,
            None => (0, None),
        };
        Ok(if by_client.0 >= by_source.0 { by_client } else { by_source })
    }

    fn list_auth_events(&mut self, client_id: Option<&str>, outcome: Option<&str>, before_id: Option<i64>, limit: i64) -> QueryResult<Vec<AuthEventRow>> {
        let mut q = auth_events::table.into_boxed();
        if let Some(c) = client_id {
            q = q.filter(auth_events::client_id.eq(c.to_string()));
        }
        if let Some(o) = outcome {
            q = q.filter(auth_events::outcome.eq(o.to_string()));
        }
        if let Some(b) = before_id {
            q = q.filter(auth_events::id.lt(b));
        }
        q.order(auth_events::id.desc()).limit(limit).select(AuthEventRow::as_select()).load(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
