//! One reconciliation run of one partner: every ticket shared with it (open ones by default) is
//! read from its system and compared field by field; each difference is classified, given its
//! likely cause from what the hub knows, and healed within the run's cap (hub ahead: a push
//! through the outbox; partner ahead or both changed: the partner's value as its write, which
//! may open a conflict). Records the partner has and the hub does not are reported too.

use super::compare::{classify, differing, DriftKind, FieldDrift};
use super::run::{Started, FAILED, RUNNING, SUCCEEDED};
use super::{Engine, PullError, RunRow, Scope};
use crate::contract::Contract;
use crate::domain::events::StateCategory;
use crate::domain::ids::TicketReference;
use crate::domain::Ticket;
use crate::store::models::{ReconcileItemRow, SyncRunRow, XrefRow};
use crate::store::outbox::OutboxStatus;
use crate::store::sync::RunEnd;
use crate::store::StoreError;
use crate::sync::converge::Repush;
use crate::sync::write::WriteOp;
use crate::sync::AuditInfo;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Shared tickets read per database page.
const PAGE: i64 = 500;

/// Partner reads failing in a row (each after the contract's retries) that stop a run.
const GIVE_UP_AFTER: u32 = 10;

/// What a reconciliation run found and did, as it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReconcileCounts {
    /// Shared tickets in the run's scope.
    pub tickets: u64,
    /// Tickets whose partner copy was read (or found missing).
    pub compared: u64,
    pub in_sync: u64,
    /// Tickets with at least one difference.
    pub drifted: u64,
    pub missing_at_partner: u64,
    pub missing_at_hub: u64,
    pub hub_ahead: u64,
    pub partner_ahead: u64,
    pub both_changed: u64,
    /// Tickets healed (a push queued, or the partner's values written).
    pub healed: u64,
    /// Drifted tickets left as they are because the run's heal cap was reached.
    pub capped: u64,
    /// Partner records read from its list (looking for tickets the hub does not have).
    pub partner_records: u64,
    /// Tickets whose partner copy could not be read (the last error is the run's message).
    pub errors: u64,
    /// Fields of partner copies that did not convert to canonical values (not compared).
    pub unreadable_fields: u64,
}

impl ReconcileCounts {
    fn count(&mut self, kind: DriftKind) {
        match kind {
            DriftKind::MissingAtPartner => self.missing_at_partner += 1,
            DriftKind::MissingAtHub => self.missing_at_hub += 1,
            DriftKind::HubAhead => self.hub_ahead += 1,
            DriftKind::PartnerAhead => self.partner_ahead += 1,
            DriftKind::BothChanged => self.both_changed += 1,
        }
    }
}

/// How to run a reconciliation.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub scope: Scope,
    /// Compare and report; write nothing but the report.
    pub dry_run: bool,
    pub started_by: String,
}

/// What was done about an item.
pub mod action {
    pub const REPUSHED: &str = "repushed";
    pub const APPLIED: &str = "applied";
    pub const CONFLICT: &str = "conflict";
    pub const CAPPED: &str = "capped";
    /// Dry run, nothing to do, or nothing the hub can do (e.g. no push endpoint).
    pub const NONE: &str = "none";
}

/// One ticket's differences, grouped by kind.
struct Finding {
    ticket: Ticket,
    xref: XrefRow,
    /// The partner's values (canonical) of the fields it returned.
    theirs: Map<String, Value>,
    by_kind: BTreeMap<DriftKind, Vec<FieldDrift>>,
}

impl Engine {
    /// Reconciles `partner` to the end of its shared tickets; `progress` hears the counts after
    /// every page.
    pub async fn reconcile(
        self: &Arc<Self>,
        partner: &str,
        options: &ReconcileOptions,
        progress: impl Fn(&ReconcileCounts),
    ) -> Result<RunRow, PullError> {
        let started = self.begin_reconcile(partner, options).await?;
        self.complete_reconcile(started, options, progress).await
    }

    /// Takes the partner's reconciliation lease and records the run.
    pub async fn begin_reconcile(&self, partner: &str, options: &ReconcileOptions) -> Result<Started, PullError> {
        let contract =
            self.registry().get(partner).cloned().ok_or_else(|| PullError::UnknownPartner(partner.into()))?;
        if contract.outbound.as_ref().and_then(|o| o.read_url.as_ref()).is_none() {
            return Err(PullError::NoReader(partner.into()));
        }
        let key = self.acquire("reconcile", partner).await?;
        let row = SyncRunRow {
            id: 0,
            kind: "reconcile".into(),
            partner: partner.to_string(),
            started_by: options.started_by.clone(),
            dry_run: options.dry_run,
            scope: options.scope.as_str().into(),
            status: RUNNING.into(),
            started_at: crate::util::now_ms(),
            finished_at: None,
            since: None,
            watermark: None,
            counts: serde_json::to_string(&ReconcileCounts::default()).unwrap_or_default(),
            message: None,
            owner: key.holder.clone(),
        };
        let run = match self
            .db
            .write(move |c| c.insert_run(&row).map(|id| SyncRunRow { id, ..row }).map_err(StoreError::from))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.release(&key, 0, None).await;
                return Err(e.into());
            }
        };
        Ok(Started { key, run, contract })
    }

    /// Runs a begun reconciliation to its end.
    pub async fn complete_reconcile(
        &self,
        started: Started,
        options: &ReconcileOptions,
        progress: impl Fn(&ReconcileCounts),
    ) -> Result<RunRow, PullError> {
        let Started { key, run, contract } = started;
        let partner = contract.id.as_str();
        let mut counts = ReconcileCounts::default();
        let outcome = self.reconcile_all(&contract, &key, &run, options, &mut counts, &progress).await;
        let (status, message) = match outcome {
            Ok(last_error) if counts.errors > 0 && counts.compared == 0 => (FAILED, last_error),
            Ok(last_error) => (SUCCEEDED, last_error),
            Err(e) => (FAILED, Some(e.to_string())),
        };
        let text = serde_json::to_string(&counts).unwrap_or_default();
        let (id, m) = (run.id, message.clone());
        let end = self
            .db
            .write(move |c| {
                let end = RunEnd {
                    status,
                    finished_at: crate::util::now_ms(),
                    watermark: None,
                    counts: &text,
                    message: m.as_deref(),
                };
                c.finish_run(id, &end).map_err(StoreError::from)?;
                c.run(id).map_err(StoreError::from)
            })
            .await;
        self.release(&key, run.id, None).await;
        let items = counts.missing_at_partner
            + counts.missing_at_hub
            + counts.hub_ahead
            + counts.partner_ahead
            + counts.both_changed;
        tracing::info!(
            partner,
            run = run.id,
            status,
            dry_run = options.dry_run,
            tickets = counts.tickets,
            drifted = counts.drifted,
            items,
            healed = counts.healed,
            capped = counts.capped,
            errors = counts.errors,
            "reconciliation finished"
        );
        if items > 0 {
            self.alerts.notify(
                "reconcile.drift_found",
                serde_json::json!({
                    "run": run.id, "partner": partner, "dry_run": options.dry_run, "drifted_tickets": counts.drifted,
                    "items": items, "missing_at_partner": counts.missing_at_partner, "missing_at_hub": counts.missing_at_hub,
                    "hub_ahead": counts.hub_ahead, "partner_ahead": counts.partner_ahead, "both_changed": counts.both_changed,
                    "healed": counts.healed, "capped": counts.capped,
                }),
            );
        }
        Ok(end?.unwrap_or(run))
    }

    /// Every page of shared tickets, then the partner's list; the last read error, if any.
    async fn reconcile_all(
        &self,
        contract: &Arc<Contract>,
        key: &super::JobKey,
        run: &SyncRunRow,
        options: &ReconcileOptions,
        counts: &mut ReconcileCounts,
        progress: &impl Fn(&ReconcileCounts),
    ) -> Result<Option<String>, PullError> {
        let mut after = 0;
        let mut last_error = None;
        let mut failing = 0;
        let lease = self.keep(key);
        let workflow = &self.registry().workflow;
        loop {
            let partner = contract.id.to_string();
            let page = self.db.read(move |c| c.shared_tickets(&partner, after, PAGE).map_err(StoreError::from)).await?;
            let Some(last) = page.last() else { break };
            after = last.0.id;
            let mut tickets = Vec::with_capacity(page.len());
            for (t, x) in page {
                let t = t.into_ticket()?;
                let open = workflow.category(t.state()) != StateCategory::Closed;
                if options.scope == Scope::All || open {
                    tickets.push((t, x));
                }
            }
            counts.tickets += tickets.len() as u64;
            // Reads in parallel (the contract's rate limit paces them); heals one by one.
            let found: Vec<Result<(Option<Finding>, u64), PullError>> = stream::iter(tickets)
                .map(|(t, x)| self.examine(contract, t, x))
                .buffered(self.settings.read_concurrency.max(1))
                .collect()
                .await;
            for f in found {
                match f {
                    Ok((None, unreadable)) => {
                        failing = 0;
                        counts.unreadable_fields += unreadable;
                        counts.compared += 1;
                        counts.in_sync += 1;
                    }
                    Ok((Some(finding), unreadable)) => {
                        failing = 0;
                        counts.unreadable_fields += unreadable;
                        counts.compared += 1;
                        counts.drifted += 1;
                        self.settle(contract, run, options, finding, counts).await?;
                    }
                    Err(PullError::Store(e)) => return Err(PullError::Store(e)),
                    Err(e) => {
                        counts.errors += 1;
                        failing += 1;
                        last_error = Some(e.to_string());
                        // Each read already went through the contract's retry schedule: a
                        // partner failing this often in a row is down, not flaky.
                        if failing >= GIVE_UP_AFTER {
                            return Err(PullError::Partner(format!(
                                "{failing} reads in a row failed, the run stops: {}",
                                last_error.unwrap_or_default()
                            )));
                        }
                        continue;
                    }
                }
            }
            self.save_progress(run.id, counts).await;
            progress(counts);
            if lease.lost() {
                return Err(PullError::Partner("the run's lease was lost to another process".into()));
            }
        }
        if contract.pull.is_some() {
            self.missing_at_hub(contract, run, counts, progress).await?;
        }
        Ok(last_error)
    }

    async fn save_progress(&self, run: i64, counts: &ReconcileCounts) {
        let text = serde_json::to_string(counts).unwrap_or_default();
        if let Err(e) = self.db.write(move |c| c.run_progress(run, &text).map_err(StoreError::from)).await {
            tracing::warn!(run, error = %e, "could not save the run's progress");
        }
    }

    /// Reads the partner's copy of one ticket and compares it: `None` when it agrees.
    async fn examine(
        &self,
        contract: &Arc<Contract>,
        ticket: Ticket,
        xref: XrefRow,
    ) -> Result<(Option<Finding>, u64), PullError> {
        let missing = |ticket: Ticket, xref: XrefRow| {
            let mut by_kind = BTreeMap::new();
            by_kind.insert(DriftKind::MissingAtPartner, Vec::new());
            Some(Finding { ticket, xref, theirs: Map::new(), by_kind })
        };
        let Some(pid) = xref.partner_ticket_id.clone() else { return Ok((missing(ticket, xref), 0)) };
        let Some(record) = self.reader.read(contract, &pid).await? else { return Ok((missing(ticket, xref), 0)) };
        let (_, theirs, errors) = contract.read_record(&record);
        if !errors.is_empty() {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            tracing::info!(partner = %contract.id, ticket = %ticket.number, ?fields, "partner copy has fields that do not convert: not compared");
        }
        let unreadable = errors.len() as u64;
        let fields = differing(contract, &ticket, &theirs);
        if fields.is_empty() {
            return Ok((None, unreadable));
        }
        let (t, partner, seen, f) = (ticket.clone(), contract.id.to_string(), xref.seen_version, fields.clone());
        let histories = self
            .db
            .read(move |c| crate::sync::conflicts::histories(c, &t, &partner, seen, &f))
            .await
            .map_err(PullError::from)?;
        let mut by_kind: BTreeMap<DriftKind, Vec<FieldDrift>> = BTreeMap::new();
        for field in fields {
            let p = theirs.get(&field).cloned().unwrap_or(Value::Null);
            let h = histories.get(&field).cloned().unwrap_or_default();
            let kind = classify(contract, &field, &p, &h);
            by_kind.entry(kind).or_default().push(FieldDrift {
                hub: ticket.get(&field).clone(),
                partner: p,
                base: h.base,
                field,
            });
        }
        Ok((Some(Finding { ticket, xref, theirs, by_kind }), unreadable))
    }

    /// Heals one drifted ticket (unless dry or capped) and stores its items.
    async fn settle(
        &self,
        contract: &Arc<Contract>,
        run: &SyncRunRow,
        options: &ReconcileOptions,
        finding: Finding,
        counts: &mut ReconcileCounts,
    ) -> Result<(), PullError> {
        for kind in finding.by_kind.keys() {
            counts.count(*kind);
        }
        // What the hub knew before this run did anything about it.
        let causes = self.causes(contract, &finding).await?;
        let capped = counts.healed >= self.settings.heal_cap;
        let mut actions: BTreeMap<DriftKind, &'static str> = BTreeMap::new();
        if options.dry_run {
            // Reported only.
        } else if capped {
            counts.capped += 1;
            actions = finding.by_kind.keys().map(|k| (*k, action::CAPPED)).collect();
        } else {
            actions = self.heal(contract, run.id, &finding).await?;
            if actions.values().any(|a| *a != action::NONE) {
                counts.healed += 1;
            }
        }
        let now = crate::util::now_ms();
        let rows: Vec<ReconcileItemRow> = finding
            .by_kind
            .iter()
            .map(|(kind, fields)| ReconcileItemRow {
                id: 0,
                run_id: run.id,
                partner: contract.id.to_string(),
                ticket_id: Some(finding.ticket.id),
                ticket_number: Some(finding.ticket.number.clone()),
                partner_ticket_id: finding.xref.partner_ticket_id.clone(),
                kind: kind.as_str().into(),
                fields: serde_json::to_string(fields).unwrap_or_default(),
                cause: causes.get(kind).copied().unwrap_or("no_event").into(),
                action: actions.get(kind).copied().unwrap_or(action::NONE).into(),
                at: now,
            })
            .collect();
        self.store_items(rows).await
    }

    /// Stores a run's items in one write.
    async fn store_items(&self, rows: Vec<ReconcileItemRow>) -> Result<(), PullError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |c| {
                for r in &rows {
                    c.insert_reconcile_item(r)?;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(())
    }

    /// The partner's owned values as its write first (it may open a conflict), then one push of
    /// the hub's values for what the partner has wrong.
    async fn heal(
        &self,
        contract: &Arc<Contract>,
        run: i64,
        finding: &Finding,
    ) -> Result<BTreeMap<DriftKind, &'static str>, PullError> {
        let mut actions = BTreeMap::new();
        let theirs_fields: Vec<&FieldDrift> = [DriftKind::PartnerAhead, DriftKind::BothChanged]
            .iter()
            .filter_map(|k| finding.by_kind.get(k))
            .flatten()
            .collect();
        if !theirs_fields.is_empty() {
            let mut mapped = crate::contract::inbound::Mapped::default();
            for f in &theirs_fields {
                mapped.changes.insert(f.field.clone(), f.partner.clone());
            }
            let reference = TicketReference::parse(&finding.ticket.number)
                .map_err(|e| PullError::Partner(format!("ticket number {}: {e}", finding.ticket.number)))?;
            let audit = AuditInfo {
                request_id: format!("reconcile-{run}"),
                method: "RECONCILE".into(),
                path: format!("/api/ebond/v1/admin/reconcile/runs/{run}"),
                payload_sha256: crate::util::sha256_hex(
                    serde_json::to_string(&mapped.changes).unwrap_or_default().as_bytes(),
                ),
            };
            match self.write_record(contract, WriteOp::Update { reference }, mapped, audit).await {
                Ok(outcome) => {
                    let done = if outcome.ticket.conflict.is_some() { action::CONFLICT } else { action::APPLIED };
                    for k in [DriftKind::PartnerAhead, DriftKind::BothChanged] {
                        if finding.by_kind.contains_key(&k) {
                            actions.insert(k, done);
                        }
                    }
                    if !outcome.fanned_out_to.is_empty() {
                        self.wake.notify_one();
                    }
                    self.announce(&outcome);
                }
                Err(crate::sync::SyncError::Store(e)) => return Err(PullError::Store(e)),
                Err(refused) => {
                    tracing::info!(partner = %contract.id, ticket = %finding.ticket.number, error = %refused, "reconciliation could not apply the partner's values");
                }
            }
        }
        let ours: Vec<String> = finding
            .by_kind
            .get(&DriftKind::HubAhead)
            .map(|fs| fs.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default();
        let missing = finding.by_kind.contains_key(&DriftKind::MissingAtPartner);
        // A record the partner lost under its own id cannot be re-created by an update: reported.
        let pushable = !missing || finding.xref.partner_ticket_id.is_none();
        if (missing || !ours.is_empty()) && pushable {
            let (registry, partner, id, theirs) =
                (self.registry(), contract.id.to_string(), finding.ticket.id, finding.theirs.clone());
            let origin = format!("reconcile:{run}");
            let queued = self
                .db
                .write(move |c| {
                    let push = Repush {
                        partner: &partner,
                        ticket_id: id,
                        theirs: &theirs,
                        fields: &ours,
                        origin: &origin,
                        now: crate::util::now_ms(),
                    };
                    crate::sync::converge::repush(c, &registry, &push)
                })
                .await
                .map_err(PullError::from)?;
            if queued {
                self.wake.notify_one();
                for k in [DriftKind::HubAhead, DriftKind::MissingAtPartner] {
                    if finding.by_kind.contains_key(&k) {
                        actions.insert(k, action::REPUSHED);
                    }
                }
            }
        }
        Ok(actions)
    }

    /// Each kind's likely cause, from what the hub knows of the ticket and the partner.
    async fn causes(
        &self,
        contract: &Contract,
        finding: &Finding,
    ) -> Result<BTreeMap<DriftKind, &'static str>, PullError> {
        let (partner, id) = (contract.id.to_string(), finding.ticket.id);
        let (delivery, inbound) = self
            .db
            .read(move |c| Ok::<_, StoreError>((c.latest_delivery(&partner, id)?, c.latest_inbound(&partner, id)?)))
            .await?;
        let outward = match delivery.as_ref().and_then(|d| OutboxStatus::parse(&d.status)) {
            None => "no_event",
            Some(OutboxStatus::Dead) => "dead_letter",
            Some(OutboxStatus::Discarded) => "discarded_delivery",
            Some(OutboxStatus::Pending | OutboxStatus::InFlight) => "delivery_pending",
            Some(OutboxStatus::Delivered) => "delivered_2xx",
        };
        let inward = match inbound {
            Some(t) if t.result == "rejected" => "rejected_inbound_write",
            _ => "no_event",
        };
        Ok(finding
            .by_kind
            .keys()
            .map(|k| {
                let cause = match k {
                    DriftKind::HubAhead | DriftKind::MissingAtPartner => outward,
                    DriftKind::PartnerAhead | DriftKind::BothChanged => inward,
                    DriftKind::MissingAtHub => "no_event",
                };
                (*k, cause)
            })
            .collect())
    }

    /// Pages through the partner's whole list for records the hub has no ticket for.
    async fn missing_at_hub(
        &self,
        contract: &Arc<Contract>,
        run: &SyncRunRow,
        counts: &mut ReconcileCounts,
        progress: &impl Fn(&ReconcileCounts),
    ) -> Result<(), PullError> {
        let Some(pull) = contract.pull.as_ref() else { return Ok(()) };
        let pid_spec = contract.field_for(crate::domain::fields::PARTNER_TICKET_ID);
        let mut next = None;
        loop {
            let page = self.reader.list(contract, pull, 0, next.as_ref()).await?;
            counts.partner_records += page.records.len() as u64;
            let ids: Vec<(String, &Value)> = page
                .records
                .iter()
                .filter_map(|r| {
                    let id = pid_spec.and_then(|s| s.pointer.get(r))?;
                    let id = match id {
                        Value::String(s) if !s.is_empty() => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((id, r))
                })
                .collect();
            let (partner, wanted) = (contract.id.to_string(), ids.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>());
            let known =
                self.db.read(move |c| c.tickets_by_partner_ids(&partner, &wanted).map_err(StoreError::from)).await?;
            let known: std::collections::HashSet<String> =
                known.into_iter().filter_map(|(_, x)| x.partner_ticket_id).collect();
            let now = crate::util::now_ms();
            let rows: Vec<ReconcileItemRow> = ids
                .iter()
                .filter(|(id, _)| !known.contains(id))
                .map(|(id, record)| {
                    let (_, values, _) = contract.read_record(record);
                    let fields: Vec<FieldDrift> = values
                        .into_iter()
                        .map(|(field, partner)| FieldDrift { field, hub: Value::Null, partner, base: None })
                        .collect();
                    ReconcileItemRow {
                        id: 0,
                        run_id: run.id,
                        partner: contract.id.to_string(),
                        ticket_id: None,
                        ticket_number: None,
                        partner_ticket_id: Some(id.clone()),
                        kind: DriftKind::MissingAtHub.as_str().into(),
                        fields: serde_json::to_string(&fields).unwrap_or_default(),
                        cause: "no_event".into(),
                        action: action::NONE.into(),
                        at: now,
                    }
                })
                .collect();
            counts.missing_at_hub += rows.len() as u64;
            self.store_items(rows).await?;
            progress(counts);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        Ok(())
    }
}
