//! What the operator console reads and writes beyond the other repositories: its sign-in
//! sessions, dead letters by filter (listed, counted, replayed or discarded together), the
//! per-hour delivery counts of the overview chart, and the few lookups a ticket's story needs.
//! Every query here walks an index (the console must stay fast on a large database).

use super::models::{AttemptRow, OutboxRow, ReconcileItemRow};
use super::outbox::OutboxStatus;
use super::schema::{delivery_attempts, outbox, partner_controls, reconcile_items};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

/// A console session as stored (the token itself is only in the browser's cookie).
#[derive(Debug, Clone, QueryableByName)]
pub struct SessionRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub credential_id: i64,
    #[diesel(sql_type = Text)]
    pub client_id: String,
    #[diesel(sql_type = Bool)]
    pub read_only: bool,
    #[diesel(sql_type = Text)]
    pub csrf_token: String,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub last_seen_at: i64,
    #[diesel(sql_type = BigInt)]
    pub expires_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub ended_at: Option<i64>,
    /// The credential's revocation (a revoked credential's sessions end with it).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub revoked_at: Option<i64>,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub credential_id: i64,
    pub read_only: bool,
    pub csrf_token: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Which dead letters: any of the members may be absent.
#[derive(Debug, Clone, Default)]
pub struct DeadFilter {
    pub partner: Option<String>,
    pub event: Option<String>,
    /// Only letters created before this time (epoch ms): "older than".
    pub created_before: Option<i64>,
    /// Only letters up to this id: what a confirmation counted (letters that die later are
    /// not swept up by the action confirmed before them).
    pub max_id: Option<i64>,
}

/// A partner's delivery switch and shared breaker.
#[derive(Debug, Clone, Queryable)]
pub struct ControlRow {
    pub partner: String,
    pub paused: bool,
    pub breaker_open_until: Option<i64>,
}

/// Attempts and failures of one partner in one hour.
#[derive(Debug, Clone, QueryableByName)]
pub struct HourCount {
    /// Hours since the epoch.
    #[diesel(sql_type = BigInt)]
    pub hour: i64,
    #[diesel(sql_type = BigInt)]
    pub attempts: i64,
    #[diesel(sql_type = BigInt)]
    pub failures: i64,
}

/// Reconciliation items of a run, counted by kind and likely cause.
#[derive(Debug, Clone, QueryableByName)]
pub struct CauseCount {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub cause: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// How many dead letters a bulk action touches per transaction (a large action never holds
/// the database, on SQLite the writer every request waits for, for long).
const CHUNK: i64 = 500;

pub trait ConsoleRepo {
    fn insert_session(&mut self, s: &NewSession<'_>) -> QueryResult<()>;
    /// The session of a cookie's token hash, with its credential's client id and revocation.
    fn session_by_token(&mut self, token_hash: &str) -> QueryResult<Option<SessionRow>>;
    fn touch_session(&mut self, id: i64, now: i64) -> QueryResult<()>;
    fn end_session(&mut self, id: i64, now: i64) -> QueryResult<()>;
    /// Forgets sessions that expired before `before` (retention).
    fn purge_sessions(&mut self, before: i64) -> QueryResult<usize>;
    /// Dead letters matching `f`, newest first, older than `before_id` when given.
    fn dead_letters(&mut self, f: &DeadFilter, before_id: Option<i64>, limit: i64) -> QueryResult<Vec<OutboxRow>>;
    fn count_dead(&mut self, f: &DeadFilter) -> QueryResult<i64>;
    /// Replays (`true`) or discards the next chunk of dead letters matching `f` with an id
    /// above `after`, oldest first: how many, and the last id (`None`: nothing was left).
    fn settle_dead_chunk(
        &mut self,
        f: &DeadFilter,
        after: i64,
        replay: bool,
        now: i64,
    ) -> QueryResult<(usize, Option<i64>)>;
    /// Every partner's pause switch and shared breaker.
    fn partner_controls(&mut self) -> QueryResult<Vec<ControlRow>>;
    /// `partner`'s attempts and failures per hour since `since`.
    fn hourly_attempts(&mut self, partner: &str, since: i64) -> QueryResult<Vec<HourCount>>;
    /// `partner`'s attempts and failures since `since` (its alert window).
    fn attempts_since(&mut self, partner: &str, since: i64) -> QueryResult<(i64, i64)>;
    /// `partner`'s most recently attempted outbox rows, newest first.
    fn recent_outbox(&mut self, partner: &str, limit: i64) -> QueryResult<Vec<OutboxRow>>;
    /// Outbox rows of a ticket for the given partners (each an index range), oldest first.
    fn outbox_of_ticket_for(&mut self, ticket_id: i64, partners: &[String]) -> QueryResult<Vec<OutboxRow>>;
    /// Every attempt of the given outbox rows, in one statement (by row, oldest first).
    fn attempts_of_many(&mut self, outbox_ids: &[i64]) -> QueryResult<Vec<AttemptRow>>;
    /// Reconciliation items about a ticket, oldest first.
    fn reconcile_items_of_ticket(&mut self, ticket_id: i64, limit: i64) -> QueryResult<Vec<ReconcileItemRow>>;
    fn cause_counts(&mut self, run_id: i64) -> QueryResult<Vec<CauseCount>>;
}

/// The boxed dead-letter query for a filter (a macro: the boxed type differs per backend).
macro_rules! dead {
    ($f:expr) => {{
        let f: &DeadFilter = $f;
        let mut q = outbox::table.filter(outbox::status.eq(OutboxStatus::Dead.as_str())).into_boxed();
        if let Some(p) = &f.partner {
            q = q.filter(outbox::partner.eq(p.clone()));
        }
        if let Some(e) = &f.event {
            q = q.filter(outbox::event.eq(e.clone()));
        }
        if let Some(t) = f.created_before {
            q = q.filter(outbox::created_at.lt(t));
        }
        if let Some(m) = f.max_id {
            q = q.filter(outbox::id.le(m));
        }
        q
    }};
}

#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = BigInt)]
    failures: i64,
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl ConsoleRepo for $conn {
    fn insert_session(&mut self, s: &NewSession<'_>) -> QueryResult<()> {
        diesel::sql_query("INSERT INTO console_sessions (token_hash, credential_id, read_only, csrf_token, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)")
            .bind::<Text, _>(s.token_hash)
            .bind::<BigInt, _>(s.credential_id)
            .bind::<Bool, _>(s.read_only)
            .bind::<Text, _>(s.csrf_token)
            .bind::<BigInt, _>(s.now)
            .bind::<BigInt, _>(s.expires_at)
            .execute(self)
            .map(|_| ())
    }

    fn session_by_token(&mut self, token_hash: &str) -> QueryResult<Option<SessionRow>> {
        diesel::sql_query("SELECT s.id, s.credential_id, c.client_id, s.read_only, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, s.ended_at, c.revoked_at \
             FROM console_sessions s JOIN credentials c ON c.id = s.credential_id WHERE s.token_hash = $1")
            .bind::<Text, _>(token_hash)
            .get_result(self)
            .optional()
    }

    fn touch_session(&mut self, id: i64, now: i64) -> QueryResult<()> {
        diesel::sql_query("UPDATE console_sessions SET last_seen_at = $1 WHERE id = $2")
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(id)
            .execute(self)
            .map(|_| ())
    }

    fn end_session(&mut self, id: i64, now: i64) -> QueryResult<()> {
        diesel::sql_query("UPDATE console_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(id)
            .execute(self)
            .map(|_| ())
    }

    fn purge_sessions(&mut self, before: i64) -> QueryResult<usize> {
        diesel::sql_query("DELETE FROM console_sessions WHERE expires_at < $1").bind::<BigInt, _>(before).execute(self)
    }

    fn dead_letters(&mut self, f: &DeadFilter, before_id: Option<i64>, limit: i64) -> QueryResult<Vec<OutboxRow>> {
        let mut q = dead!(f);
        if let Some(b) = before_id {
            q = q.filter(outbox::id.lt(b));
        }
        q.order(outbox::id.desc()).limit(limit).select(OutboxRow::as_select()).load(self)
    }

    fn count_dead(&mut self, f: &DeadFilter) -> QueryResult<i64> {
        dead!(f).count().get_result(self)
    }

    fn settle_dead_chunk(&mut self, f: &DeadFilter, after: i64, replay: bool, now: i64) -> QueryResult<(usize, Option<i64>)> {
        // Oldest first: a replay keeps each ticket's order (the claim sends a ticket's rows one
        // after another whatever their due times).
        let ids: Vec<i64> = dead!(f).filter(outbox::id.gt(after)).order(outbox::id).limit(CHUNK).select(outbox::id).load(self)?;
        let Some(last) = ids.last().copied() else { return Ok((0, None)) };
        let rows = outbox::table.filter(outbox::id.eq_any(&ids)).filter(outbox::status.eq(OutboxStatus::Dead.as_str()));
        let n = if replay {
            diesel::update(rows)
                .set((outbox::status.eq(OutboxStatus::Pending.as_str()), outbox::next_attempt_at.eq(now), outbox::attempts.eq(0), outbox::updated_at.eq(now)))
                .execute(self)?
        } else {
            diesel::update(rows).set((outbox::status.eq(OutboxStatus::Discarded.as_str()), outbox::updated_at.eq(now))).execute(self)?
        };
        Ok((n, Some(last)))
    }

    fn partner_controls(&mut self) -> QueryResult<Vec<ControlRow>> {
        partner_controls::table
            .select((partner_controls::partner, partner_controls::paused, partner_controls::breaker_open_until))
            .load(self)
    }

    fn hourly_attempts(&mut self, partner: &str, since: i64) -> QueryResult<Vec<HourCount>> {
        diesel::sql_query("SELECT started_at / 3600000 AS hour, COUNT(*) AS attempts, \
             SUM(CASE WHEN outcome = 'delivered' THEN 0 ELSE 1 END) AS failures \
             FROM delivery_attempts WHERE partner = $1 AND started_at >= $2 GROUP BY started_at / 3600000 ORDER BY 1")
            .bind::<Text, _>(partner)
            .bind::<BigInt, _>(since)
            .load(self)
    }

    fn attempts_since(&mut self, partner: &str, since: i64) -> QueryResult<(i64, i64)> {
        let p: Pair = diesel::sql_query("SELECT COUNT(*) AS attempts, COALESCE(SUM(CASE WHEN outcome = 'delivered' THEN 0 ELSE 1 END), 0) AS failures \
             FROM delivery_attempts WHERE partner = $1 AND started_at >= $2")
            .bind::<Text, _>(partner)
            .bind::<BigInt, _>(since)
            .get_result(self)?;
        Ok((p.attempts, p.failures))
    }

    fn recent_outbox(&mut self, partner: &str, limit: i64) -> QueryResult<Vec<OutboxRow>> {
        // The partner's newest attempts (an index range), not the outbox walked backwards by id:
        // a partner with few rows would otherwise be looked for across the whole history.
        let ids: Vec<i64> = delivery_attempts::table
            .filter(delivery_attempts::partner.eq(partner))
            .order(delivery_attempts::started_at.desc())
            .limit(limit * 4)
            .select(delivery_attempts::outbox_id)
            .load(self)?;
        let mut rows: Vec<OutboxRow> = outbox::table.filter(outbox::id.eq_any(&ids)).select(OutboxRow::as_select()).load(self)?;
        rows.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
        rows.truncate(limit as usize);
        Ok(rows)
    }

    fn outbox_of_ticket_for(&mut self, ticket_id: i64, partners: &[String]) -> QueryResult<Vec<OutboxRow>> {
        outbox::table
            .filter(outbox::partner.eq_any(partners))
            .filter(outbox::ticket_id.eq(ticket_id))
            .order(outbox::id)
            .limit(1000)
            .select(OutboxRow::as_select())
            .load(self)
    }

    fn attempts_of_many(&mut self, outbox_ids: &[i64]) -> QueryResult<Vec<AttemptRow>> {
        delivery_attempts::table
            .filter(delivery_attempts::outbox_id.eq_any(outbox_ids))
            .order((delivery_attempts::outbox_id, delivery_attempts::id))
            .select(AttemptRow::as_select())
            .load(self)
    }

    fn reconcile_items_of_ticket(&mut self, ticket_id: i64, limit: i64) -> QueryResult<Vec<ReconcileItemRow>> {
        reconcile_items::table
            .filter(reconcile_items::ticket_id.eq(ticket_id))
            .order(reconcile_items::id)
            .limit(limit)
            .select(ReconcileItemRow::as_select())
            .load(self)
    }

    fn cause_counts(&mut self, run_id: i64) -> QueryResult<Vec<CauseCount>> {
        diesel::sql_query("SELECT kind, cause, COUNT(*) AS n FROM reconcile_items WHERE run_id = $1 GROUP BY kind, cause ORDER BY kind, cause")
            .bind::<BigInt, _>(run_id)
            .load(self)
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
