//! Client credentials (secret stored only as a slow hash) and access tokens (stored only as a
//! SHA-256 hash).

use super::models::*;
use super::schema::*;
use diesel::prelude::*;

pub trait CredentialRepo {
    fn insert_credential(&mut self, row: &NewCredential) -> QueryResult<()>;
    fn credential_by_client_id(&mut self, client_id: &str) -> QueryResult<Option<CredentialRow>>;
    fn insert_token(&mut self, row: &AccessTokenRow) -> QueryResult<()>;
    /// The live token with this hash whose credential is not revoked.
    fn live_token(&mut self, token_hash: &str, now: i64) -> QueryResult<Option<AccessTokenRow>>;
    fn purge_expired_tokens(&mut self, now: i64) -> QueryResult<usize>;
    fn list_credentials(&mut self) -> QueryResult<Vec<CredentialRow>>;
    /// New secret hash for a credential; the old one stays valid until `previous_valid_until`.
    fn rotate_secret(
        &mut self,
        id: i64,
        new_hash: &str,
        previous_hash: &str,
        previous_valid_until: i64,
    ) -> QueryResult<()>;
    /// Revokes the partner's credentials (or one by client id), and tells every process (see
    /// [`super::signals`]); returns how many.
    /// Revokes `partner`'s credentials (operators' when `None`), or only `client_id`.
    fn revoke(&mut self, partner: Option<&str>, client_id: Option<&str>, now: i64) -> QueryResult<usize>;
    fn credential_by_id(&mut self, id: i64) -> QueryResult<Option<CredentialRow>>;
    fn insert_refresh_token(&mut self, row: &RefreshTokenRow) -> QueryResult<()>;
    /// Uses up the live, unused refresh token with this hash (one statement, so two requests
    /// racing with the same token cannot both succeed); `None` when there is none.
    fn take_refresh_token(&mut self, token_hash: &str, now: i64) -> QueryResult<Option<RefreshTokenRow>>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl CredentialRepo for $conn {
    fn insert_credential(&mut self, row: &NewCredential) -> QueryResult<()> {
        diesel::insert_into(credentials::table).values(row).execute(self).map(|_| ())
    }

    fn credential_by_client_id(&mut self, client_id: &str) -> QueryResult<Option<CredentialRow>> {
        credentials::table
            .filter(credentials::client_id.eq(client_id))
            .select(CredentialRow::as_select())
            .first(self)
            .optional()
    }

    fn insert_token(&mut self, row: &AccessTokenRow) -> QueryResult<()> {
        diesel::insert_into(access_tokens::table).values(row).execute(self).map(|_| ())
    }

    fn live_token(&mut self, token_hash: &str, now: i64) -> QueryResult<Option<AccessTokenRow>> {
        access_tokens::table
            .inner_join(credentials::table)
            .filter(access_tokens::token_hash.eq(token_hash))
            .filter(access_tokens::expires_at.gt(now))
            .filter(credentials::revoked_at.is_null())
            .select(AccessTokenRow::as_select())
            .first(self)
            .optional()
    }

    fn purge_expired_tokens(&mut self, now: i64) -> QueryResult<usize> {
        diesel::delete(access_tokens::table.filter(access_tokens::expires_at.le(now))).execute(self)
    }

    fn list_credentials(&mut self) -> QueryResult<Vec<CredentialRow>> {
        credentials::table.order(credentials::id).select(CredentialRow::as_select()).load(self)
    }

    fn rotate_secret(&mut self, id: i64, new_hash: &str, previous_hash: &str, previous_valid_until: i64) -> QueryResult<()> {
        diesel::update(credentials::table.find(id))
            .set((
                credentials::secret_hash.eq(new_hash),
                credentials::previous_secret_hash.eq(Some(previous_hash)),
                credentials::previous_valid_until.eq(Some(previous_valid_until)),
            ))
            .execute(self)
            .map(|_| ())
    }

    fn revoke(&mut self, partner: Option<&str>, client_id: Option<&str>, now: i64) -> QueryResult<usize> {
        let q = diesel::update(credentials::table).filter(credentials::revoked_at.is_null()).into_boxed();
        let mut q = match partner {
            Some(p) => q.filter(credentials::partner.eq(p.to_string())),
            None => q.filter(credentials::partner.is_null()),
        };
        if let Some(id) = client_id {
            q = q.filter(credentials::client_id.eq(id));
        }
        let revoked = q.set(credentials::revoked_at.eq(Some(now))).execute(self)?;
        // Every process remembers checked tokens for a while: tell them all, with the commit.
        if revoked > 0 {
            super::signals::SignalRepo::raise_revoked(self)?;
        }
        Ok(revoked)
    }

    fn credential_by_id(&mut self, id: i64) -> QueryResult<Option<CredentialRow>> {
        credentials::table.find(id).select(CredentialRow::as_select()).first(self).optional()
    }

    fn insert_refresh_token(&mut self, row: &RefreshTokenRow) -> QueryResult<()> {
        diesel::insert_into(refresh_tokens::table).values(row).execute(self).map(|_| ())
    }

    fn take_refresh_token(&mut self, token_hash: &str, now: i64) -> QueryResult<Option<RefreshTokenRow>> {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(token_hash))
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set(refresh_tokens::used_at.eq(Some(now)))
        .returning(RefreshTokenRow::as_returning())
        .get_result(self)
        .optional()
    }





}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
