//! What shadow contracts would have done differently: one row per partner request that
//! differed (see `api::shadow`), until the shadow is promoted or dropped.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// One request a shadow contract would have treated differently.
#[derive(Debug, Clone, QueryableByName, serde::Serialize, utoipa::ToSchema)]
pub struct ShadowDiff {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    #[diesel(sql_type = Text)]
    pub request_id: String,
    /// `would_refuse`, `would_accept`, `refuses_differently` or `maps_differently`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// JSON: what differs (the problem either side gives, or each differing field).
    #[diesel(sql_type = Text)]
    pub detail: String,
}

#[derive(QueryableByName)]
struct KindCount {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub trait ShadowRepo {
    fn insert_shadow_diff(
        &mut self,
        partner: &str,
        shadow_sha256: &str,
        at: i64,
        request_id: &str,
        kind: &str,
        detail: &str,
    ) -> QueryResult<()>;
    /// The newest `limit` differences of this shadow, newest first.
    fn shadow_diffs(&mut self, partner: &str, shadow_sha256: &str, limit: i64) -> QueryResult<Vec<ShadowDiff>>;
    /// How many differences of each kind.
    fn shadow_counts(&mut self, partner: &str, shadow_sha256: &str) -> QueryResult<Vec<(String, i64)>>;
    /// Forgets every difference of `partner`'s shadows (promoted or dropped).
    fn clear_shadow_diffs(&mut self, partner: &str) -> QueryResult<usize>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl ShadowRepo for $conn {
    fn insert_shadow_diff(&mut self, partner: &str, shadow_sha256: &str, at: i64, request_id: &str, kind: &str, detail: &str) -> QueryResult<()> {
        diesel::sql_query("INSERT INTO shadow_diffs (partner, shadow_sha256, at, request_id, kind, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind::<Text, _>(partner)
            .bind::<Text, _>(shadow_sha256)
            .bind::<BigInt, _>(at)
            .bind::<Text, _>(request_id)
            .bind::<Text, _>(kind)
            .bind::<Text, _>(detail)
            .execute(self)
            .map(|_| ())
    }

    fn shadow_diffs(&mut self, partner: &str, shadow_sha256: &str, limit: i64) -> QueryResult<Vec<ShadowDiff>> {
        diesel::sql_query("SELECT id, at, request_id, kind, detail FROM shadow_diffs WHERE partner = $1 AND shadow_sha256 = $2 ORDER BY id DESC LIMIT $3")
            .bind::<Text, _>(partner)
            .bind::<Text, _>(shadow_sha256)
            .bind::<BigInt, _>(limit)
            .load(self)
    }

    fn shadow_counts(&mut self, partner: &str, shadow_sha256: &str) -> QueryResult<Vec<(String, i64)>> {
        diesel::sql_query("SELECT kind, COUNT(*) AS n FROM shadow_diffs WHERE partner = $1 AND shadow_sha256 = $2 GROUP BY kind ORDER BY kind")
            .bind::<Text, _>(partner)
            .bind::<Text, _>(shadow_sha256)
            .load::<KindCount>(self)
            .map(|rows| rows.into_iter().map(|r| (r.kind, r.n)).collect())
    }

    fn clear_shadow_diffs(&mut self, partner: &str) -> QueryResult<usize> {
        diesel::sql_query("DELETE FROM shadow_diffs WHERE partner = $1").bind::<Text, _>(partner).execute(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
