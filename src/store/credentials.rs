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
    /// Revokes the partner's credentials (or one by client id); returns how many.
    fn revoke(&mut self, partner: &str, client_id: Option<&str>, now: i64) -> QueryResult<usize>;
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
    fn put_secret(&mut self, partner: &str, name: &str, sealed: &str, now: i64) -> QueryResult<()>;
    fn get_secret(&mut self, partner: &str, name: &str) -> QueryResult<Option<String>>;
    /// Remembers a signed event's id; false when it was seen before (a replay).
    fn remember_webhook(&mut self, partner: &str, webhook_id: &str, now: i64) -> QueryResult<bool>;
    fn forget_webhooks_before(&mut self, before: i64) -> QueryResult<usize>;
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

    fn revoke(&mut self, partner: &str, client_id: Option<&str>, now: i64) -> QueryResult<usize> {
        let mut q = diesel::update(credentials::table)
            .filter(credentials::partner.eq(partner))
            .filter(credentials::revoked_at.is_null())
            .into_boxed();
        if let Some(id) = client_id {
            q = q.filter(credentials::client_id.eq(id));
        }
        q.set(credentials::revoked_at.eq(Some(now))).execute(self)
    }

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

    fn put_secret(&mut self, partner: &str, name: &str, sealed: &str, now: i64) -> QueryResult<()> {
        diesel::insert_into(partner_secrets::table)
            .values((
                partner_secrets::partner.eq(partner),
                partner_secrets::name.eq(name),
                partner_secrets::sealed.eq(sealed),
                partner_secrets::created_at.eq(now),
                partner_secrets::updated_at.eq(now),
            ))
            .on_conflict((partner_secrets::partner, partner_secrets::name))
            .do_update()
            .set((partner_secrets::sealed.eq(sealed), partner_secrets::updated_at.eq(now)))
            .execute(self)
            .map(|_| ())
    }

    fn get_secret(&mut self, partner: &str, name: &str) -> QueryResult<Option<String>> {
        partner_secrets::table
            .filter(partner_secrets::partner.eq(partner))
            .filter(partner_secrets::name.eq(name))
            .select(partner_secrets::sealed)
            .first(self)
            .optional()
    }

    fn remember_webhook(&mut self, partner: &str, webhook_id: &str, now: i64) -> QueryResult<bool> {
        let n = diesel::insert_into(inbound_webhooks::table)
            .values((
                inbound_webhooks::partner.eq(partner),
                inbound_webhooks::webhook_id.eq(webhook_id),
                inbound_webhooks::received_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(self)?;
        Ok(n == 1)
    }

    fn forget_webhooks_before(&mut self, before: i64) -> QueryResult<usize> {
        diesel::delete(inbound_webhooks::table.filter(inbound_webhooks::received_at.lt(before))).execute(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
