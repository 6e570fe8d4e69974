//! The replay guard of signed inbound events: each `webhook-id` is accepted once per partner.

use super::schema::*;
use diesel::prelude::*;

pub trait WebhookIdRepo {
    /// Remembers a signed event's id; false when it was seen before (a replay).
    fn remember_webhook(&mut self, partner: &str, webhook_id: &str, now: i64) -> QueryResult<bool>;
    fn forget_webhooks_before(&mut self, before: i64) -> QueryResult<usize>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl WebhookIdRepo for $conn {
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
