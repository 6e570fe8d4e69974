//! Signals between the processes sharing one database, and their roll: a credential revoked
//! (every process forgets the tokens it remembers, then says so on the roll), a contracts
//! reload (every process loads its contracts folder anew, then says which digest it enforces)
//! and, on
//! PostgreSQL, a write that fanned out (every outbox processor looks for due rows now instead
//! of at its next poll).
//!
//! PostgreSQL carries them with `NOTIFY`, heard through `LISTEN` on one connection per process
//! ([`super::listener`]); SQLite, which has no such thing, keeps a counter that the listener
//! reads. A revocation is raised inside the transaction that revokes, so it is heard exactly
//! when the revocation is visible. The outbox nudge is never sent from a write's own
//! transaction: PostgreSQL serialises the commits of notifying transactions on one lock, which
//! would undo the sharing of WAL flushes between concurrent writes.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// `NOTIFY` channel of a revocation.
pub const REVOKED: &str = "ebond_revoked";
/// `NOTIFY` channel of the outbox nudge.
pub const OUTBOX: &str = "ebond_outbox";
/// `NOTIFY` channel of a contracts reload.
pub const CONTRACTS: &str = "ebond_contracts";

pub trait SignalRepo {
    /// Tells every process that a credential was revoked, when the current transaction commits.
    fn raise_revoked(&mut self) -> QueryResult<()>;
    /// How many revocations were raised so far.
    fn revoked_generation(&mut self) -> QueryResult<i64>;
    /// Puts a process on the roll (and drops rows of processes not seen for `stale_before`).
    fn join_roll(&mut self, member: &Member, now: i64, heard: i64, stale_before: i64) -> QueryResult<()>;
    /// The process is alive; `false` when its row is gone (then it joins again).
    fn heartbeat(&mut self, id: &str, now: i64) -> QueryResult<bool>;
    /// The process has forgotten every token remembered before revocation `generation`.
    fn ack_revoked(&mut self, id: &str, generation: i64) -> QueryResult<()>;
    fn leave_roll(&mut self, id: &str) -> QueryResult<()>;
    /// `serve` processes seen since `since`.
    fn live_gateways(&mut self, since: i64) -> QueryResult<i64>;
    /// Processes other than `id` seen since `since` that run an outbox processor.
    fn live_deliverers_besides(&mut self, id: &str, since: i64) -> QueryResult<i64>;
    /// Processes seen since `since` that have not yet heard revocation `generation`.
    fn unheard(&mut self, generation: i64, since: i64) -> QueryResult<Vec<String>>;
    /// Tells every process to reload its contracts (when the current transaction commits);
    /// the reload's generation.
    fn raise_contracts(&mut self) -> QueryResult<i64>;
    /// How many contract reloads were raised so far.
    fn contracts_generation(&mut self) -> QueryResult<i64>;
    /// The process has acted on reload `generation` and now enforces contracts `sha256`.
    fn ack_contracts(&mut self, id: &str, generation: i64, sha256: &str) -> QueryResult<()>;
    /// Each process seen since `since`: which reload it heard and what it enforces.
    fn contracts_roll(&mut self, since: i64) -> QueryResult<Vec<ContractsHeard>>;
}

/// A live process's contracts, on the roll.
#[derive(Debug, Clone, QueryableByName, serde::Serialize, utoipa::ToSchema)]
pub struct ContractsHeard {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The last reload it acted on.
    #[diesel(sql_type = BigInt)]
    pub contracts_heard: i64,
    /// Digest of the contracts it enforces (see `Registry::sha256`).
    #[diesel(sql_type = Text)]
    pub contracts_sha256: String,
}

/// A process on the roll.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    /// `serve` or `worker`.
    pub kind: &'static str,
    /// It runs an outbox processor.
    pub delivers: bool,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

macro_rules! impl_for_backends {
    ($($conn:ty => $notify:expr),*) => {$(
impl SignalRepo for $conn {
    fn raise_revoked(&mut self) -> QueryResult<()> {
        diesel::sql_query("UPDATE signals SET generation = generation + 1 WHERE name = 'revoked'").execute(self)?;
        let notify: fn(&mut $conn, &str) -> QueryResult<()> = $notify;
        notify(self, REVOKED)
    }

    fn raise_contracts(&mut self) -> QueryResult<i64> {
        diesel::sql_query("UPDATE signals SET generation = generation + 1 WHERE name = 'contracts'").execute(self)?;
        let notify: fn(&mut $conn, &str) -> QueryResult<()> = $notify;
        notify(self, CONTRACTS)?;
        self.contracts_generation()
    }

    fn contracts_generation(&mut self) -> QueryResult<i64> {
        diesel::sql_query("SELECT generation AS n FROM signals WHERE name = 'contracts'").get_result::<Number>(self).map(|g| g.n)
    }

    fn ack_contracts(&mut self, id: &str, generation: i64, sha256: &str) -> QueryResult<()> {
        diesel::sql_query("UPDATE processes SET contracts_heard = $1, contracts_sha256 = $2 WHERE id = $3")
            .bind::<BigInt, _>(generation)
            .bind::<Text, _>(sha256)
            .bind::<Text, _>(id)
            .execute(self)
            .map(|_| ())
    }

    fn contracts_roll(&mut self, since: i64) -> QueryResult<Vec<ContractsHeard>> {
        diesel::sql_query("SELECT id, kind, contracts_heard, contracts_sha256 FROM processes WHERE seen_at >= $1 ORDER BY id")
            .bind::<BigInt, _>(since)
            .load::<ContractsHeard>(self)
    }

    fn revoked_generation(&mut self) -> QueryResult<i64> {
        diesel::sql_query("SELECT generation AS n FROM signals WHERE name = 'revoked'").get_result::<Number>(self).map(|g| g.n)
    }

    fn join_roll(&mut self, member: &Member, now: i64, heard: i64, stale_before: i64) -> QueryResult<()> {
        diesel::sql_query("DELETE FROM processes WHERE seen_at < $1").bind::<BigInt, _>(stale_before).execute(self)?;
        diesel::sql_query(
            "INSERT INTO processes (id, kind, delivers, started_at, seen_at, revoked_heard) VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind::<Text, _>(&member.id)
        .bind::<Text, _>(member.kind)
        .bind::<diesel::sql_types::Bool, _>(member.delivers)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(heard)
        .execute(self)
        .map(|_| ())
    }

    fn heartbeat(&mut self, id: &str, now: i64) -> QueryResult<bool> {
        diesel::sql_query("UPDATE processes SET seen_at = $1 WHERE id = $2")
            .bind::<BigInt, _>(now)
            .bind::<Text, _>(id)
            .execute(self)
            .map(|n| n > 0)
    }

    fn ack_revoked(&mut self, id: &str, generation: i64) -> QueryResult<()> {
        diesel::sql_query("UPDATE processes SET revoked_heard = $1 WHERE id = $2")
            .bind::<BigInt, _>(generation)
            .bind::<Text, _>(id)
            .execute(self)
            .map(|_| ())
    }

    fn leave_roll(&mut self, id: &str) -> QueryResult<()> {
        diesel::sql_query("DELETE FROM processes WHERE id = $1").bind::<Text, _>(id).execute(self).map(|_| ())
    }

    fn live_gateways(&mut self, since: i64) -> QueryResult<i64> {
        diesel::sql_query("SELECT COUNT(*) AS n FROM processes WHERE kind = 'serve' AND seen_at >= $1")
            .bind::<BigInt, _>(since)
            .get_result::<Number>(self)
            .map(|n| n.n)
    }

    fn live_deliverers_besides(&mut self, id: &str, since: i64) -> QueryResult<i64> {
        diesel::sql_query("SELECT COUNT(*) AS n FROM processes WHERE delivers AND id <> $1 AND seen_at >= $2")
            .bind::<Text, _>(id)
            .bind::<BigInt, _>(since)
            .get_result::<Number>(self)
            .map(|n| n.n)
    }

    fn unheard(&mut self, generation: i64, since: i64) -> QueryResult<Vec<String>> {
        diesel::sql_query("SELECT id FROM processes WHERE seen_at >= $1 AND revoked_heard < $2 ORDER BY id")
            .bind::<BigInt, _>(since)
            .bind::<BigInt, _>(generation)
            .load::<Id>(self)
            .map(|ids| ids.into_iter().map(|i| i.id).collect())
    }
}
    )*};
}

impl_for_backends!(
    diesel::SqliteConnection => |_, _| Ok(()),
    diesel::PgConnection => |c, channel| {
        diesel::sql_query("SELECT pg_notify($1, '')").bind::<Text, _>(channel).execute(c).map(|_| ())
    }
);
