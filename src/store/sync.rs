//! Pull sync and reconciliation: job leases and watermarks, runs with their counts, the records
//! a run could not apply, the differences reconciliation found, and the reads both make of the
//! hub's side. Implemented once for both backends by `impl_for_backends!`.

use super::models::{
    OutboxRow, ReconcileItemRow, SyncJobRow, SyncRunErrorRow, SyncRunRow, TicketRow, TransactionRow, XrefRow,
};
use super::schema::{outbox, reconcile_items, sync_jobs, sync_run_errors, sync_runs, tickets, transactions, xrefs};
use diesel::prelude::*;

/// What a finished run changes in its row.
#[derive(Debug, Clone)]
pub struct RunEnd<'a> {
    pub status: &'a str,
    pub finished_at: i64,
    pub watermark: Option<i64>,
    pub counts: &'a str,
    pub message: Option<&'a str>,
}

pub trait SyncRepo {
    /// Takes the job's lease for `owner` until `until` when nobody holds it; false when another
    /// run (of this process or another) holds it. Creates the job's row on first use.
    fn acquire_job(&mut self, job: &str, partner: &str, owner: &str, now: i64, until: i64) -> QueryResult<bool>;
    /// Extends a lease `owner` holds; false when it was lost (expired and taken).
    fn renew_job(&mut self, job: &str, owner: &str, until: i64) -> QueryResult<bool>;
    /// Gives the lease up, recording the run and (for a pull that completed) its watermark.
    fn release_job(&mut self, job: &str, owner: &str, run_id: i64, watermark: Option<i64>, now: i64)
        -> QueryResult<()>;
    fn sync_job(&mut self, job: &str) -> QueryResult<Option<SyncJobRow>>;
    fn insert_run(&mut self, row: &SyncRunRow) -> QueryResult<i64>;
    /// Saves a running run's counts (progress) without finishing it.
    fn run_progress(&mut self, id: i64, counts: &str) -> QueryResult<()>;
    fn finish_run(&mut self, id: i64, end: &RunEnd) -> QueryResult<()>;
    fn run(&mut self, id: i64) -> QueryResult<Option<SyncRunRow>>;
    /// Runs of a kind, newest first, before the id given.
    fn list_runs(
        &mut self,
        kind: &str,
        partner: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> QueryResult<Vec<SyncRunRow>>;
    /// The newest run of each partner of a kind (dry runs too when `with_dry`).
    fn last_runs(&mut self, kind: &str, with_dry: bool) -> QueryResult<Vec<SyncRunRow>>;
    fn insert_run_error(&mut self, row: &SyncRunErrorRow) -> QueryResult<()>;
    fn run_errors(&mut self, run_id: i64, limit: i64) -> QueryResult<Vec<SyncRunErrorRow>>;
    fn insert_reconcile_item(&mut self, row: &ReconcileItemRow) -> QueryResult<()>;
    fn reconcile_items(&mut self, run_id: i64, after: Option<i64>, limit: i64) -> QueryResult<Vec<ReconcileItemRow>>;
    /// Items per kind of the given runs: `(run, kind, count)`.
    fn item_counts(&mut self, runs: &[i64]) -> QueryResult<Vec<(i64, String, i64)>>;
    /// The tickets `partner` has cross-references for among `partner_ids` (active or not).
    fn tickets_by_partner_ids(
        &mut self,
        partner: &str,
        partner_ids: &[String],
    ) -> QueryResult<Vec<(TicketRow, XrefRow)>>;
    /// Tickets shared with `partner` (active cross-references), by ticket id after `after`.
    fn shared_tickets(&mut self, partner: &str, after: i64, limit: i64) -> QueryResult<Vec<(TicketRow, XrefRow)>>;
    /// The newest outbox row for `partner` and the ticket.
    fn latest_delivery(&mut self, partner: &str, ticket_id: i64) -> QueryResult<Option<OutboxRow>>;
    /// The newest transaction-log row of `partner` about the ticket.
    fn latest_inbound(&mut self, partner: &str, ticket_id: i64) -> QueryResult<Option<TransactionRow>>;
}

macro_rules! impl_for_backends {
    ($($conn:ty),*) => {$(
impl SyncRepo for $conn {
    fn acquire_job(&mut self, job: &str, partner: &str, owner: &str, now: i64, until: i64) -> QueryResult<bool> {
        diesel::insert_into(sync_jobs::table)
            .values((
                sync_jobs::job.eq(job),
                sync_jobs::partner.eq(partner),
                sync_jobs::lease_until.eq(0_i64),
                sync_jobs::updated_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(self)?;
        // One statement decides: of two runs racing (in one process or two), the row lets only
        // one through; a lease runs out only when its holder stopped renewing it.
        let taken = diesel::update(sync_jobs::table.filter(sync_jobs::job.eq(job)).filter(sync_jobs::lease_until.lt(now)))
        .set((sync_jobs::lease_owner.eq(owner), sync_jobs::lease_until.eq(until), sync_jobs::updated_at.eq(now)))
        .execute(self)?;
        Ok(taken == 1)
    }

    fn renew_job(&mut self, job: &str, owner: &str, until: i64) -> QueryResult<bool> {
        let n = diesel::update(sync_jobs::table.filter(sync_jobs::job.eq(job)).filter(sync_jobs::lease_owner.eq(owner)))
            .set(sync_jobs::lease_until.eq(until))
            .execute(self)?;
        Ok(n == 1)
    }

    fn release_job(&mut self, job: &str, owner: &str, run_id: i64, watermark: Option<i64>, now: i64) -> QueryResult<()> {
        let mine = sync_jobs::table.filter(sync_jobs::job.eq(job)).filter(sync_jobs::lease_owner.eq(owner));
        match watermark {
            Some(w) => diesel::update(mine)
                .set((
                    sync_jobs::lease_owner.eq(None::<String>),
                    sync_jobs::lease_until.eq(0_i64),
                    sync_jobs::last_run_id.eq(run_id),
                    sync_jobs::watermark.eq(w),
                    sync_jobs::updated_at.eq(now),
                ))
                .execute(self)?,
            None => diesel::update(mine)
                .set((
                    sync_jobs::lease_owner.eq(None::<String>),
                    sync_jobs::lease_until.eq(0_i64),
                    sync_jobs::last_run_id.eq(run_id),
                    sync_jobs::updated_at.eq(now),
                ))
                .execute(self)?,
        };
        Ok(())
    }

    fn sync_job(&mut self, job: &str) -> QueryResult<Option<SyncJobRow>> {
        sync_jobs::table.find(job).select(SyncJobRow::as_select()).first(self).optional()
    }

    fn insert_run(&mut self, row: &SyncRunRow) -> QueryResult<i64> {
        diesel::insert_into(sync_runs::table).values(row).returning(sync_runs::id).get_result(self)
    }

    fn run_progress(&mut self, id: i64, counts: &str) -> QueryResult<()> {
        diesel::update(sync_runs::table.find(id)).set(sync_runs::counts.eq(counts)).execute(self).map(|_| ())
    }

    fn finish_run(&mut self, id: i64, end: &RunEnd) -> QueryResult<()> {
        diesel::update(sync_runs::table.find(id))
            .set((
                sync_runs::status.eq(end.status),
                sync_runs::finished_at.eq(end.finished_at),
                sync_runs::watermark.eq(end.watermark),
                sync_runs::counts.eq(end.counts),
                sync_runs::message.eq(end.message),
            ))
            .execute(self)
            .map(|_| ())
    }

    fn run(&mut self, id: i64) -> QueryResult<Option<SyncRunRow>> {
        sync_runs::table.find(id).select(SyncRunRow::as_select()).first(self).optional()
    }

    fn list_runs(&mut self, kind: &str, partner: Option<&str>, before: Option<i64>, limit: i64) -> QueryResult<Vec<SyncRunRow>> {
        let mut q = sync_runs::table.filter(sync_runs::kind.eq(kind)).into_boxed();
        if let Some(p) = partner {
            q = q.filter(sync_runs::partner.eq(p.to_string()));
        }
        if let Some(b) = before {
            q = q.filter(sync_runs::id.lt(b));
        }
        q.order(sync_runs::id.desc()).limit(limit).select(SyncRunRow::as_select()).load(self)
    }

    fn last_runs(&mut self, kind: &str, with_dry: bool) -> QueryResult<Vec<SyncRunRow>> {
        let mut q = sync_runs::table
            .filter(sync_runs::kind.eq(kind))
            .filter(sync_runs::finished_at.is_not_null())
            .group_by(sync_runs::partner)
            .select(diesel::dsl::max(sync_runs::id))
            .into_boxed();
        if !with_dry {
            q = q.filter(sync_runs::dry_run.eq(false));
        }
        let ids: Vec<Option<i64>> = q.load(self)?;
        let ids: Vec<i64> = ids.into_iter().flatten().collect();
        sync_runs::table.filter(sync_runs::id.eq_any(ids)).order(sync_runs::partner).select(SyncRunRow::as_select()).load(self)
    }

    fn insert_run_error(&mut self, row: &SyncRunErrorRow) -> QueryResult<()> {
        diesel::insert_into(sync_run_errors::table).values(row).execute(self).map(|_| ())
    }

    fn run_errors(&mut self, run_id: i64, limit: i64) -> QueryResult<Vec<SyncRunErrorRow>> {
        sync_run_errors::table
            .filter(sync_run_errors::run_id.eq(run_id))
            .order(sync_run_errors::id)
            .limit(limit)
            .select(SyncRunErrorRow::as_select())
            .load(self)
    }

    fn insert_reconcile_item(&mut self, row: &ReconcileItemRow) -> QueryResult<()> {
        diesel::insert_into(reconcile_items::table).values(row).execute(self).map(|_| ())
    }

    fn reconcile_items(&mut self, run_id: i64, after: Option<i64>, limit: i64) -> QueryResult<Vec<ReconcileItemRow>> {
        reconcile_items::table
            .filter(reconcile_items::run_id.eq(run_id))
            .filter(reconcile_items::id.gt(after.unwrap_or(0)))
            .order(reconcile_items::id)
            .limit(limit)
            .select(ReconcileItemRow::as_select())
            .load(self)
    }

    fn item_counts(&mut self, runs: &[i64]) -> QueryResult<Vec<(i64, String, i64)>> {
        reconcile_items::table
            .filter(reconcile_items::run_id.eq_any(runs))
            .group_by((reconcile_items::run_id, reconcile_items::kind))
            .select((reconcile_items::run_id, reconcile_items::kind, diesel::dsl::count_star()))
            .load(self)
    }

    fn tickets_by_partner_ids(&mut self, partner: &str, partner_ids: &[String]) -> QueryResult<Vec<(TicketRow, XrefRow)>> {
        tickets::table
            .inner_join(xrefs::table)
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::partner_ticket_id.eq_any(partner_ids))
            .select((TicketRow::as_select(), XrefRow::as_select()))
            .load(self)
    }

    fn shared_tickets(&mut self, partner: &str, after: i64, limit: i64) -> QueryResult<Vec<(TicketRow, XrefRow)>> {
        tickets::table
            .inner_join(xrefs::table)
            .filter(xrefs::partner.eq(partner))
            .filter(xrefs::active.eq(true))
            .filter(tickets::id.gt(after))
            .order(tickets::id)
            .limit(limit)
            .select((TicketRow::as_select(), XrefRow::as_select()))
            .load(self)
    }

    fn latest_delivery(&mut self, partner: &str, ticket_id: i64) -> QueryResult<Option<OutboxRow>> {
        outbox::table
            .filter(outbox::partner.eq(partner))
            .filter(outbox::ticket_id.eq(ticket_id))
            .order(outbox::id.desc())
            .select(OutboxRow::as_select())
            .first(self)
            .optional()
    }

    fn latest_inbound(&mut self, partner: &str, ticket_id: i64) -> QueryResult<Option<TransactionRow>> {
        transactions::table
            .filter(transactions::ticket_id.eq(ticket_id))
            .filter(transactions::partner.eq(partner))
            .order(transactions::id.desc())
            .select(TransactionRow::as_select())
            .first(self)
            .optional()
    }
}
    )*};
}

impl_for_backends!(diesel::SqliteConnection, diesel::PgConnection);
