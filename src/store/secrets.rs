//! Partners' secrets sealed with the master key (AES-256-GCM, see `crate::secrets`): stored and
//! read as sealed text only.

use super::schema::*;
use diesel::prelude::*;

pub trait SecretRepo {
    fn put_secret(&mut self, partner: &str, name: &str, sealed: &str, now: i64) -> QueryResult<()>;
    fn get_secret(&mut self, partner: &str, name: &str) -> QueryResult<Option<String>>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl SecretRepo for $conn {
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
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
