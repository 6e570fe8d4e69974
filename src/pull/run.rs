//! One pull run of one partner: the window from the watermark minus the overlap, page by page;
//! each record applied as the partner's write (the API's validation, ownership, workflow,
//! conflict detection and one transaction), counted, and — when refused — kept with its errors.

use super::reader::NextPage;
use super::{Engine, PullError, RunRow};
use crate::contract::inbound::{FieldError, MapError, Op};
use crate::contract::{Contract, Paging, Pull};
use crate::domain::ids::TicketReference;
use crate::store::models::{SyncRunErrorRow, SyncRunRow, TransactionRow};
use crate::store::sync::RunEnd;
use crate::store::StoreError;
use crate::sync::write::{WriteCommand, WriteOp};
use crate::sync::{AuditInfo, SyncError};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What a pull run did, as it goes (saved after every page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullCounts {
    pub pages: u64,
    pub records: u64,
    /// Records that changed the hub's ticket (created or updated it).
    pub applied: u64,
    /// Records the hub already held as they are (read again in the overlap, or its own pushes
    /// coming back).
    pub unchanged: u64,
    /// Records the contract or the workflow refused: in the run's error list.
    pub rejected: u64,
    /// Records whose write met another party's change (held for people, or overwritten as the
    /// contract says).
    pub conflicts: u64,
}

/// A run whose lease is taken and whose row is written.
#[derive(Debug)]
pub struct Started {
    pub(super) key: super::JobKey,
    pub run: SyncRunRow,
    pub(super) contract: Arc<Contract>,
}

/// How a run ended.
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const RUNNING: &str = "running";

/// Transient store failures a record's write is retried after, before the run gives up.
const WRITE_RETRIES: u32 = 5;

/// How far ahead of this machine's clock a partner's change time may be and still move the
/// watermark.
const FUTURE_SKEW_MS: i64 = 3_600_000;

/// Records of a page written at once.
const WRITE_CONCURRENCY: usize = 32;

impl Engine {
    /// Runs one pull of `partner` to its end; `progress` hears the counts after every page.
    /// Fails at once when the partner cannot be pulled or another run holds the job.
    pub async fn pull(
        self: &Arc<Self>,
        partner: &str,
        started_by: &str,
        progress: impl Fn(&PullCounts),
    ) -> Result<RunRow, PullError> {
        let started = self.begin_pull(partner, started_by).await?;
        self.complete_pull(started, progress).await
    }

    /// Takes the partner's pull lease and records the run (what the admin API answers with
    /// before the run goes on in the background).
    pub async fn begin_pull(&self, partner: &str, started_by: &str) -> Result<Started, PullError> {
        let contract =
            self.registry().get(partner).cloned().ok_or_else(|| PullError::UnknownPartner(partner.into()))?;
        if contract.pull.is_none() {
            return Err(PullError::NoPull(partner.into()));
        }
        let (key, run) = self.start_pull(&contract, started_by).await?;
        Ok(Started { key, run, contract })
    }

    /// Runs a begun pull to its end.
    pub async fn complete_pull(&self, started: Started, progress: impl Fn(&PullCounts)) -> Result<RunRow, PullError> {
        let Started { key, run, contract } = started;
        let partner = contract.id.as_str();
        let outcome = self.pull_pages(&contract, &key, &run, &progress).await;
        let (status, watermark, counts, message) = match outcome {
            Ok((counts, watermark)) => (SUCCEEDED, watermark, counts, None),
            Err((counts, e)) => (FAILED, None, counts, Some(e.to_string())),
        };
        let text = serde_json::to_string(&counts).unwrap_or_default();
        let (id, m) = (run.id, message.clone());
        let now = crate::util::now_ms();
        let end = self
            .db
            .write(move |c| {
                let end = RunEnd { status, finished_at: now, watermark, counts: &text, message: m.as_deref() };
                c.finish_run(id, &end).map_err(StoreError::from)?;
                c.run(id).map_err(StoreError::from)
            })
            .await;
        // The watermark moves only with a run that read the whole window.
        self.release(&key, run.id, watermark).await;
        tracing::info!(
            partner,
            run = run.id,
            status,
            pages = counts.pages,
            records = counts.records,
            applied = counts.applied,
            unchanged = counts.unchanged,
            rejected = counts.rejected,
            conflicts = counts.conflicts,
            message = message.as_deref().unwrap_or(""),
            "pull run finished"
        );
        Ok(end?.unwrap_or(run))
    }

    /// Takes the lease and records the run.
    async fn start_pull(
        &self,
        contract: &Contract,
        started_by: &str,
    ) -> Result<(super::JobKey, SyncRunRow), PullError> {
        let key = self.acquire("pull", &contract.id).await?;
        let overlap = contract.pull.as_ref().map_or(0, |p| p.overlap.as_millis() as i64);
        let backfill = contract.pull.as_ref().and_then(|p| p.backfill).map(|b| b.as_millis() as i64);
        let (k, partner, owner, by) =
            (key.job.clone(), contract.id.to_string(), key.holder.clone(), started_by.to_string());
        let started = self
            .db
            .write(move |c| {
                let watermark = c.sync_job(&k)?.and_then(|j| j.watermark);
                let mut row = SyncRunRow {
                    id: 0,
                    kind: "pull".into(),
                    partner,
                    started_by: by,
                    dry_run: false,
                    scope: "changed".into(),
                    status: RUNNING.into(),
                    started_at: crate::util::now_ms(),
                    finished_at: None,
                    since: Some(match watermark {
                        Some(w) => (w - overlap).max(0),
                        None => backfill.map_or(0, |b| (crate::util::now_ms() - b).max(0)),
                    }),
                    watermark,
                    counts: serde_json::to_string(&PullCounts::default()).unwrap_or_default(),
                    message: None,
                    owner,
                };
                row.id = c.insert_run(&row)?;
                Ok::<_, StoreError>(row)
            })
            .await;
        match started {
            Ok(row) => Ok((key, row)),
            Err(e) => {
                self.release(&key, 0, None).await;
                Err(e.into())
            }
        }
    }

    /// Reads and applies every page of the window; the watermark reached, or the counts so far
    /// and why it stopped.
    async fn pull_pages(
        &self,
        contract: &Arc<Contract>,
        key: &super::JobKey,
        run: &SyncRunRow,
        progress: &impl Fn(&PullCounts),
    ) -> Result<(PullCounts, Option<i64>), (PullCounts, PullError)> {
        let Some(pull) = contract.pull.as_ref() else {
            return Err((PullCounts::default(), PullError::NoPull(contract.id.to_string())));
        };
        let mut counts = PullCounts::default();
        // The window's start as the partner reads it (a time format may drop the milliseconds):
        // what every later page is compared with.
        let since = as_asked(pull, run.since.unwrap_or(0));
        let mut watermark = run.watermark;
        let mut window = Window { since, next: None, ties: 0 };
        let lease = self.keep(key);
        let mut last_ids: Vec<String> = Vec::new();
        loop {
            let page = match self.reader.list(contract, pull, window.since, window.next.as_ref()).await {
                Ok(p) => p,
                Err(e) => return Err((counts, e)),
            };
            counts.pages += 1;
            let mut newest_in_page = None;
            let page_len = page.records.len();
            if let Err(e) =
                self.apply_page(contract, pull, run.id, &page.records, &mut counts, &mut newest_in_page).await
            {
                return Err((counts, e));
            }
            if let Some(n) = newest_in_page {
                watermark = Some(watermark.map_or(n, |w: i64| w.max(n)));
            }
            let saved = serde_json::to_string(&counts).unwrap_or_default();
            let id = run.id;
            if let Err(e) = self.db.write(move |c| c.run_progress(id, &saved).map_err(StoreError::from)).await {
                tracing::warn!(run = id, error = %e, "could not save the run's progress");
            }
            progress(&counts);
            if lease.lost() {
                return Err((counts, PullError::Partner("the run's lease was lost to another process".into())));
            }
            let Some(next) = page.next else { break };
            let asked = (window.since, window.next.clone());
            window.advance(pull, &page.records, page_len, next);
            // A list that ignores the window (a parameter it does not know, a cursor that does
            // not move) would be read forever: the run stops and says so.
            let ids = page_ids(contract, &page.records);
            let stuck = (window.since, window.next.clone()) == asked || window.since < asked.0 || ids == last_ids;
            if stuck {
                let why = "the partner's list does not move on from one page to the next: check [pull] since_param, paging and the parameters' names";
                return Err((counts, PullError::Partner(why.into())));
            }
            last_ids = ids;
        }
        Ok((counts, watermark))
    }

    /// Applies one page's records in order.
    async fn apply_page(
        &self,
        contract: &Arc<Contract>,
        pull: &Pull,
        run: i64,
        records: &[Value],
        counts: &mut PullCounts,
        newest: &mut Option<i64>,
    ) -> Result<(), PullError> {
        // One read tells which records the hub already holds as they are.
        let pid_spec = contract.field_for(crate::domain::fields::PARTNER_TICKET_ID);
        let pids: Vec<String> =
            records.iter().filter_map(|r| pid_spec.and_then(|s| s.pointer.get(r)).and_then(plain_id)).collect();
        let partner = contract.id.to_string();
        let known = self.db.read(move |c| c.tickets_by_partner_ids(&partner, &pids).map_err(StoreError::from)).await?;
        let mut by_pid: HashMap<String, crate::domain::Ticket> = HashMap::new();
        for (t, x) in known {
            if let Some(pid) = x.partner_ticket_id {
                by_pid.insert(pid, t.into_ticket()?);
            }
        }
        // Mapped and checked one by one; written concurrently, so the store commits them
        // together (SQLite's group commit, PostgreSQL's pool): the records of a page are
        // different tickets, whose order does not matter to each other.
        let mut writes = Vec::new();
        // A partner id twice in one page (a list that repeats itself): its last record wins.
        let mut last_of: HashMap<String, usize> = HashMap::new();
        for (n, r) in records.iter().enumerate() {
            if let Some(p) = pid_spec.and_then(|s| s.pointer.get(r)).and_then(plain_id) {
                last_of.insert(p, n);
            }
        }
        for (n, record) in records.iter().enumerate() {
            counts.records += 1;
            let repeated = pid_spec
                .and_then(|s| s.pointer.get(record))
                .and_then(plain_id)
                .is_some_and(|p| last_of.get(&p) != Some(&n));
            if repeated {
                counts.unchanged += 1;
                continue;
            }
            if let Some(t) = pull.updated_pointer.get(record).and_then(|v| pull.updated_format.read(v)) {
                // A change time far in the future (a bad clock, a wrong zone) would freeze the
                // window there: it does not move the watermark.
                if t <= crate::util::now_ms() + FUTURE_SKEW_MS {
                    *newest = Some(newest.map_or(t, |w: i64| w.max(t)));
                } else {
                    tracing::warn!(partner = %contract.id, run, change_time = t, "a pulled record changed in the future: not used as watermark");
                }
            }
            let pid = pid_spec.and_then(|s| s.pointer.get(record)).and_then(plain_id);
            let existing = pid.as_ref().and_then(|p| by_pid.get(p));
            let op = if existing.is_some() { Op::Update } else { Op::Create };
            let mapped = match contract.map_record(record, op) {
                Ok(m) => m,
                Err(MapError::Invalid(errors)) => {
                    counts.rejected += 1;
                    self.reject(contract, run, pid.as_deref(), record, errors, None).await?;
                    continue;
                }
                Err(MapError::Forbidden(fields)) => {
                    counts.rejected += 1;
                    let errors = fields.iter().map(|f| FieldError::new(f, "forbidden", "not writable")).collect();
                    self.reject(contract, run, pid.as_deref(), record, errors, None).await?;
                    continue;
                }
            };
            // Unchanged at a glance: nothing to write, not even a log row.
            if let Some(t) = existing {
                if mapped.journal.is_empty() && mapped.changes.iter().all(|(k, v)| t.get(k) == v) {
                    counts.unchanged += 1;
                    continue;
                }
            }
            let op = match (&existing, &pid) {
                (Some(_), Some(p)) => match TicketReference::parse(p) {
                    Ok(r) => WriteOp::Update { reference: r },
                    Err(_) => WriteOp::Create,
                },
                _ => WriteOp::Create,
            };
            let audit = AuditInfo {
                request_id: format!("pull-{run}-{}-{n}", counts.pages),
                method: "PULL".into(),
                path: format!("/api/ebond/v1/admin/sync/runs/{run}"),
                payload_sha256: crate::util::sha256_hex(record.to_string().as_bytes()),
            };
            let ticket = existing.map(|t| (t.id, t.number.clone()));
            writes.push((n, pid, ticket, op, mapped, audit));
        }
        let futures: Vec<_> = writes.into_iter().map(|w| self.write_pending(contract.clone(), w)).collect();
        let results: Vec<Written> = stream::iter(futures).buffered(WRITE_CONCURRENCY).collect().await;
        for (n, pid, ticket, result) in results {
            let record = &records[n];
            match result {
                Ok(outcome) => {
                    if outcome.ticket.conflict.is_some() {
                        counts.conflicts += 1;
                    }
                    if outcome.changed {
                        counts.applied += 1;
                        if !outcome.fanned_out_to.is_empty() {
                            self.wake.notify_one();
                        }
                        self.announce(&outcome);
                    } else {
                        counts.unchanged += 1;
                    }
                }
                Err(SyncError::Store(e)) => return Err(PullError::Store(e)),
                Err(refusal) => {
                    counts.rejected += 1;
                    let errors = vec![FieldError::new("", "refused", refusal.to_string())];
                    self.reject(contract, run, pid.as_deref(), record, errors, ticket).await?;
                }
            }
        }
        Ok(())
    }

    async fn write_pending(&self, contract: Arc<Contract>, w: Pending) -> Written {
        let (record, pid, ticket, op, mapped, audit) = w;
        let result = self.write_record(&contract, op, mapped, audit).await;
        (record, pid, ticket, result)
    }

    /// Applies a record's write, retrying a busy database a few times.
    pub(super) async fn write_record(
        &self,
        contract: &Arc<Contract>,
        op: WriteOp,
        mapped: crate::contract::inbound::Mapped,
        audit: AuditInfo,
    ) -> Result<crate::sync::write::WriteOutcome, SyncError> {
        let mut tries = 0;
        loop {
            let (registry, contract, op, mapped, audit) =
                (self.registry(), contract.clone(), op.clone(), mapped.clone(), audit.clone());
            let result = self
                .db
                .write(move |c| {
                    crate::sync::write::apply(
                        c,
                        WriteCommand {
                            registry: &registry,
                            contract: &contract,
                            op,
                            mapped,
                            if_match: None,
                            idempotency: None,
                            audit,
                            now: crate::util::now_ms(),
                            from_record: true,
                            dry_run: false,
                        },
                    )
                })
                .await;
            match result {
                Err(SyncError::Store(e)) if e.is_transient() && tries < WRITE_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
                }
                other => return other,
            }
        }
    }

    /// The operational webhook hears of conflicts a record's write opened.
    pub(super) fn announce(&self, outcome: &crate::sync::write::WriteOutcome) {
        if let Some(c) = outcome.ticket.conflict.as_ref().filter(|c| c.status == "open") {
            let fields: Vec<&str> = c.fields.iter().filter(|f| f.held).map(|f| f.field.as_str()).collect();
            self.alerts.notify(
                "conflict.opened",
                serde_json::json!({"conflict": c.id, "ticket": outcome.ticket.number, "partner": outcome.partner, "fields": fields}),
            );
        }
    }

    /// Keeps a refused record in the run's error list (with the hash of the record as read) and
    /// in the transaction log as the partner's rejected write.
    async fn reject(
        &self,
        contract: &Contract,
        run: i64,
        pid: Option<&str>,
        record: &Value,
        errors: Vec<FieldError>,
        ticket: Option<(i64, String)>,
    ) -> Result<(), PullError> {
        let hash = crate::util::sha256_hex(record.to_string().as_bytes());
        tracing::info!(partner = %contract.id, run, partner_ticket_id = pid.unwrap_or(""), errors = errors.len(), "pulled record refused");
        let codes: Vec<String> = errors.iter().map(|e| e.code.clone()).collect();
        let row = SyncRunErrorRow {
            id: 0,
            run_id: run,
            partner_ticket_id: pid.map(str::to_string),
            record_sha256: hash.clone(),
            errors: serde_json::to_string(&errors).unwrap_or_default(),
            at: crate::util::now_ms(),
        };
        let (ticket_id, ticket_number) = ticket.unzip();
        let log = TransactionRow {
            id: 0,
            at: row.at,
            partner: Some(contract.id.to_string()),
            request_id: format!("pull-{run}"),
            method: "PULL".into(),
            path: format!("/api/ebond/v1/admin/sync/runs/{run}"),
            payload_sha256: hash,
            result: "rejected".into(),
            status: 422,
            error_codes: codes.join(","),
            ticket_id,
            ticket_number,
        };
        self.db
            .write(move |c| {
                c.insert_run_error(&row)?;
                c.insert_transaction(&log)?;
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(())
    }
}

/// A record ready to be written: the record, its partner id, the hub's ticket (id, number)
/// when known, the write.
type Pending = (usize, Option<String>, Option<(i64, String)>, WriteOp, crate::contract::inbound::Mapped, AuditInfo);
type Written = (usize, Option<String>, Option<(i64, String)>, Result<crate::sync::write::WriteOutcome, SyncError>);

/// Where the next page of a window starts.
struct Window {
    since: i64,
    next: Option<NextPage>,
    /// Offset paging: records read so far that carry the newest change time of the window.
    ties: u64,
}

impl Window {
    /// Offset paging moves the window's start up to the last record's change time and skips
    /// only the records read at that exact time: a record changed during the run moves to the
    /// end of the list, which with plain offsets would shift an unread record onto a page
    /// already read. Cursor and link paging go where the partner says.
    fn advance(&mut self, pull: &Pull, records: &[Value], page_len: usize, next: NextPage) {
        // Times as the partner compares them: at the precision it is asked with.
        let at = |r: &Value| {
            pull.updated_pointer.get(r).and_then(|v| pull.updated_format.read(v)).map(|t| as_asked(pull, t))
        };
        match (&pull.paging, records.last().and_then(at)) {
            (Paging::Offset { .. }, Some(last)) => {
                let at_last = records.iter().filter(|r| at(r) == Some(last)).count() as u64;
                // Records are oldest first: a whole page at one time adds to the ties before it.
                self.ties =
                    if last == self.since && at_last == page_len as u64 { self.ties + at_last } else { at_last };
                self.since = last;
                self.next = Some(NextPage::Offset(self.ties));
            }
            _ => self.next = Some(next),
        }
    }
}

/// A time at the precision the list is asked with (`since_format`), never later than it was.
fn as_asked(pull: &Pull, t: i64) -> i64 {
    pull.since_format.read(&Value::String(pull.since_format.format(t))).unwrap_or(t).min(t)
}

/// The partner ids of a page's records, in order.
fn page_ids(contract: &Contract, records: &[Value]) -> Vec<String> {
    let spec = contract.field_for(crate::domain::fields::PARTNER_TICKET_ID);
    records.iter().filter_map(|r| spec.and_then(|s| s.pointer.get(r)).and_then(plain_id)).collect()
}

/// A partner ticket id as text (some systems send numbers).
fn plain_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_compared_at_the_precision_the_list_is_asked_with() {
        let registry =
            crate::contract::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")).unwrap();
        let pull = registry.get("servicenow").unwrap().pull.as_ref().unwrap();
        // ServiceNow is asked in whole seconds: 12:00:00.789 is asked as 12:00:00.
        assert_eq!(as_asked(pull, 1_764_576_000_789), 1_764_576_000_000);
        let mut w = Window { since: as_asked(pull, 1_764_576_000_789), next: None, ties: 0 };
        let page = vec![
            serde_json::json!({"number": "INC0000001", "sys_updated_on": "2025-12-01 08:00:00"}),
            serde_json::json!({"number": "INC0000002", "sys_updated_on": "2025-12-01 08:00:00"}),
        ];
        // A full page at the window's own second: the next page skips both ties.
        w.advance(pull, &page, 2, NextPage::Offset(2));
        assert_eq!((w.since, w.next.clone()), (1_764_576_000_000, Some(NextPage::Offset(2))));
        w.advance(pull, &page, 2, NextPage::Offset(4));
        assert_eq!(w.next, Some(NextPage::Offset(4)), "ties add up while whole pages share one time");
    }
}
