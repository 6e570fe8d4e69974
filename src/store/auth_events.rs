//! Authentication events (every token request and bearer-token refusal; never a secret) and
//! the lockout count read from them.

use super::models::*;
use super::schema::*;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// The outcome of an operator's clearing of a lockout: failures before it stop counting.
pub const CLEARED: &str = "cleared";

#[derive(QueryableByName)]
struct Failures {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    last: Option<i64>,
}

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
        // A failure stops counting once an operator cleared its source, or its client id, after it.
        let by_source = diesel::sql_query(
            "SELECT COUNT(*) AS n, MAX(f.at) AS last FROM auth_events f \
             WHERE f.outcome = 'failure' AND f.at >= $1 AND f.source = $2 \
             AND NOT EXISTS (SELECT 1 FROM auth_events c WHERE c.outcome = 'cleared' AND c.at >= f.at \
                             AND (c.source = f.source OR (f.client_id IS NOT NULL AND c.client_id = f.client_id)))",
        )
        .bind::<BigInt, _>(since)
        .bind::<Text, _>(source)
        .get_result::<Failures>(self)
        .map(|f| (f.n, f.last))?;
        let by_client = match client_id {
            Some(id) => diesel::sql_query(
                "SELECT COUNT(*) AS n, MAX(f.at) AS last FROM auth_events f \
                 WHERE f.outcome = 'failure' AND f.at >= $1 AND f.client_id = $2 \
                 AND NOT EXISTS (SELECT 1 FROM auth_events c WHERE c.outcome = 'cleared' AND c.at >= f.at \
                                 AND c.client_id = f.client_id)",
            )
            .bind::<BigInt, _>(since)
            .bind::<Text, _>(id)
            .get_result::<Failures>(self)
            .map(|f| (f.n, f.last))?,
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
