//! `/api/ebond/v1/admin/sync/…` and `/admin/reconcile/…`: start a pull or a reconciliation
//! (it runs in the background; the answer names the run), list runs with their counts and
//! errors, read one reconciliation's report, and each pull partner's watermark and lag.

use crate::api::extract::{Body, Operator, Query};
use crate::api::problem::{ApiError, Problem};
use crate::api::AppState;
use crate::contract::inbound::FieldError;
use crate::pull::compare::FieldDrift;
use crate::pull::reconcile::ReconcileOptions;
use crate::pull::{PullError, Scope};
use crate::store::models::{ReconcileItemRow, SyncRunErrorRow, SyncRunRow};
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Errors listed with each run in a list (all of them: `GET /admin/sync/runs/{id}`).
const ERRORS_IN_LIST: i64 = 20;
/// Most errors or items one answer carries.
const MOST: i64 = 1000;

/// A pull or reconciliation run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    pub id: i64,
    /// pull or reconcile
    pub kind: String,
    pub partner: String,
    /// schedule, api:operator:<id> or cli:<user>
    pub started_by: String,
    pub dry_run: bool,
    /// Reconciliation: open or all tickets; pull: changed.
    pub scope: String,
    /// running, succeeded or failed
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Pull: where the window started (the partner's change time).
    pub since: Option<String>,
    /// Pull: the newest change time read (the next window starts there, minus the overlap).
    pub watermark: Option<String>,
    /// Pull: pages, records, applied, unchanged, rejected, conflicts. Reconciliation: tickets,
    /// compared, in_sync, drifted, one count per kind of drift, healed, capped, errors.
    #[schema(value_type = Object)]
    pub counts: Value,
    /// Why it failed, or the last partner error of a reconciliation that went on.
    pub message: Option<String>,
    /// Pull: records the contract or the workflow refused.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<RecordErrorView>,
}

/// A pulled record that was not applied.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordErrorView {
    pub partner_ticket_id: Option<String>,
    /// SHA-256 of the record as read (its JSON text).
    pub record_sha256: String,
    pub errors: Vec<FieldError>,
    pub at: String,
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(crate::util::ms_to_rfc3339)
}

pub fn run_view(r: SyncRunRow, errors: Vec<SyncRunErrorRow>) -> RunView {
    RunView {
        id: r.id,
        kind: r.kind,
        partner: r.partner,
        started_by: r.started_by,
        dry_run: r.dry_run,
        scope: r.scope,
        status: r.status,
        started_at: crate::util::ms_to_rfc3339(r.started_at),
        finished_at: opt_time(r.finished_at),
        since: opt_time(r.since),
        watermark: opt_time(r.watermark),
        counts: serde_json::from_str(&r.counts).unwrap_or(Value::Null),
        message: r.message,
        errors: errors
            .into_iter()
            .map(|e| RecordErrorView {
                partner_ticket_id: e.partner_ticket_id,
                record_sha256: e.record_sha256,
                errors: serde_json::from_str(&e.errors).unwrap_or_default(),
                at: crate::util::ms_to_rfc3339(e.at),
            })
            .collect(),
    }
}

/// A run that has begun.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartedRun {
    pub run: i64,
    pub partner: String,
    pub kind: String,
    /// Where its progress and outcome are read.
    pub href: String,
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/sync/{partner}", tag = "admin", operation_id = "sync_run",
    params(("partner" = String, Path, description = "A partner whose contract has [pull]")),
    responses(
        (status = 202, description = "The run began; it goes on in the background", body = StartedRun),
        (status = 404, description = "No such partner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The partner has no [pull], or a run of it is going on (`run`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn start_pull(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let partner = path.into_inner();
    let engine = state.sync.clone();
    let started = engine.begin_pull(&partner, &format!("api:{}", operator.label())).await?;
    let run = started.run.id;
    tokio::spawn(async move {
        if let Err(e) = engine.complete_pull(started, |_| {}).await {
            tracing::warn!(run, error = %e, "pull run ended badly");
        }
    });
    tracing::info!(run, partner = %partner, operator = %operator.label(), "pull run started");
    Ok(HttpResponse::Accepted().json(StartedRun {
        run,
        partner,
        kind: "pull".into(),
        href: format!("/api/ebond/v1/admin/sync/runs/{run}"),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    pub partner: Option<String>,
    /// Only runs older than this id (paging back).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunView>,
    /// Pass as `before` for older runs.
    pub next_before: Option<i64>,
}

async fn list_runs(state: &AppState, kind: &'static str, q: RunQuery, errors: i64) -> Result<RunPage, ApiError> {
    let limit =
        q.limit.unwrap_or(state.settings.limits.default_page_size).clamp(1, state.settings.limits.max_page_size);
    let rows = state
        .db
        .read(move |c| {
            let runs = c.list_runs(kind, q.partner.as_deref(), q.before, limit)?;
            let mut out = Vec::with_capacity(runs.len());
            for r in runs {
                let errs = if errors > 0 { c.run_errors(r.id, errors)? } else { Vec::new() };
                out.push((r, errs));
            }
            Ok::<_, StoreError>(out)
        })
        .await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|(r, _)| r.id)).flatten();
    Ok(RunPage { items: rows.into_iter().map(|(r, e)| run_view(r, e)).collect(), next_before })
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/sync/runs", tag = "admin", operation_id = "sync_runs",
    params(RunQuery),
    responses((status = 200, description = "Pull runs, newest first, with counts and (the first) refused records", body = RunPage)),
    security(("bearer" = []))
)]
pub async fn pull_runs(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<RunQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    Ok(HttpResponse::Ok().json(list_runs(&state, "pull", q, ERRORS_IN_LIST).await?))
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/sync/runs/{id}", tag = "admin", operation_id = "sync_run_show",
    params(("id" = i64, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run with every refused record (up to 1,000)", body = RunView),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn pull_run(state: web::Data<AppState>, _: Operator, path: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found = state
        .db
        .read(move |c| {
            let run = c.run(id)?.filter(|r| r.kind == "pull");
            let errors = match &run {
                Some(_) => c.run_errors(id, MOST)?,
                None => Vec::new(),
            };
            Ok::<_, StoreError>(run.map(|r| (r, errors)))
        })
        .await?;
    let (run, errors) = found.ok_or(PullError::RunNotFound { kind: "pull", id })?;
    Ok(HttpResponse::Ok().json(run_view(run, errors)))
}

/// One pull partner's position.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PullStatus {
    pub partner: String,
    /// The newest change time read by a complete run (the next window starts there, minus the
    /// overlap); none before the first.
    pub watermark: Option<String>,
    /// Seconds from the watermark to now: how far behind the hub may be.
    pub lag_seconds: Option<f64>,
    /// A run holds the partner's lease now.
    pub running: bool,
    pub interval_seconds: u64,
    pub overlap_seconds: u64,
    pub last_run: Option<RunView>,
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/sync/status", tag = "admin", operation_id = "sync_status",
    responses((status = 200, description = "Each [pull] partner's watermark, lag and last run", body = Vec<PullStatus>)),
    security(("bearer" = []))
)]
pub async fn pull_status(state: web::Data<AppState>, _: Operator) -> Result<HttpResponse, ApiError> {
    let partners: Vec<(String, u64, u64)> = state
        .registry()
        .partners()
        .filter_map(|c| c.pull.as_ref().map(|p| (c.id.to_string(), p.interval.as_secs(), p.overlap.as_secs())))
        .collect();
    let now = crate::util::now_ms();
    let rows = state
        .db
        .read(move |c| {
            let mut out = Vec::new();
            for (p, interval, overlap) in partners {
                let job = c.sync_job(&format!("pull:{p}"))?;
                let last = c.list_runs("pull", Some(&p), None, 1)?.into_iter().next();
                out.push((p, interval, overlap, job, last));
            }
            Ok::<_, StoreError>(out)
        })
        .await?;
    let status: Vec<PullStatus> = rows
        .into_iter()
        .map(|(partner, interval, overlap, job, last)| {
            let watermark = job.as_ref().and_then(|j| j.watermark);
            PullStatus {
                partner,
                watermark: opt_time(watermark),
                lag_seconds: watermark.map(|w| (now - w).max(0) as f64 / 1000.0),
                running: job.as_ref().is_some_and(|j| j.lease_until > now),
                interval_seconds: interval,
                overlap_seconds: overlap,
                last_run: last.map(|r| run_view(r, Vec::new())),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(status))
}

/// What to reconcile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// One partner; absent: every partner whose contract has a `read_url`.
    pub partner: Option<String>,
    /// Compare and report only: no push, no write (the report is kept).
    #[serde(default)]
    pub dry_run: bool,
    /// `open` (default) or `all` shared tickets.
    pub scope: Option<Scope>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconcileStarted {
    pub runs: Vec<StartedRun>,
}

#[utoipa::path(
    post, path = "/api/ebond/v1/admin/reconcile", tag = "admin", operation_id = "reconcile_run",
    request_body(content = ReconcileRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "One run per partner began; they go on in the background", body = ReconcileStarted),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The partner has no read_url, or a reconciliation of it is going on", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn start_reconcile(
    state: web::Data<AppState>,
    operator: Operator,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let body: ReconcileRequest = serde_json::from_value(body.json().await?).map_err(super::conflicts::invalid_body)?;
    let partners: Vec<String> = match &body.partner {
        Some(p) => vec![p.clone()],
        None => state.sync.readable_partners(),
    };
    let options = ReconcileOptions {
        scope: body.scope.unwrap_or(Scope::Open),
        dry_run: body.dry_run,
        started_by: format!("api:{}", operator.label()),
    };
    let mut runs = Vec::new();
    for partner in partners {
        let engine = state.sync.clone();
        let started = match engine.begin_reconcile(&partner, &options).await {
            Ok(s) => s,
            // One partner's run going on does not stop the others when all were asked for.
            Err(PullError::Running { .. }) if body.partner.is_none() => continue,
            Err(e) => return Err(e.into()),
        };
        let run = started.run.id;
        let opts = options.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.complete_reconcile(started, &opts, |_| {}).await {
                tracing::warn!(run, error = %e, "reconciliation ended badly");
            }
        });
        runs.push(StartedRun {
            run,
            partner,
            kind: "reconcile".into(),
            href: format!("/api/ebond/v1/admin/reconcile/runs/{run}"),
        });
    }
    Ok(HttpResponse::Accepted().json(ReconcileStarted { runs }))
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/reconcile/runs", tag = "admin", operation_id = "reconcile_runs",
    params(RunQuery),
    responses((status = 200, description = "Reconciliation runs, newest first, with counts", body = RunPage)),
    security(("bearer" = []))
)]
pub async fn reconcile_runs(
    state: web::Data<AppState>,
    _: Operator,
    query: Result<Query<RunQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let Query(q) = query?;
    Ok(HttpResponse::Ok().json(list_runs(&state, "reconcile", q, 0).await?))
}

/// One difference found, in canonical values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriftItemView {
    pub id: i64,
    /// The hub's ticket (none for `missing_at_hub`).
    pub ticket: Option<String>,
    pub partner_ticket_id: Option<String>,
    /// missing_at_partner, missing_at_hub, hub_ahead, partner_ahead or both_changed
    pub kind: String,
    pub fields: Vec<FieldDrift>,
    /// What the hub knows that explains it: dead_letter, discarded_delivery, delivery_pending,
    /// delivered_2xx (the partner answered 2xx), rejected_inbound_write, or no_event.
    pub cause: String,
    /// repushed, applied, conflict, capped or none.
    pub action: String,
    pub at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconcileReport {
    pub run: RunView,
    pub items: Vec<DriftItemView>,
    /// Pass as `after` for the next items.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// Only items with a larger id.
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

pub fn item_view(i: ReconcileItemRow) -> DriftItemView {
    DriftItemView {
        id: i.id,
        ticket: i.ticket_number,
        partner_ticket_id: i.partner_ticket_id,
        kind: i.kind,
        fields: serde_json::from_str(&i.fields).unwrap_or_default(),
        cause: i.cause,
        action: i.action,
        at: crate::util::ms_to_rfc3339(i.at),
    }
}

#[utoipa::path(
    get, path = "/api/ebond/v1/admin/reconcile/runs/{id}", tag = "admin", operation_id = "reconcile_report",
    params(("id" = i64, Path, description = "Run id"), ItemQuery),
    responses(
        (status = 200, description = "The run and its items, oldest first", body = ReconcileReport),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn reconcile_report(
    state: web::Data<AppState>,
    _: Operator,
    path: web::Path<i64>,
    query: Result<Query<ItemQuery>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(MOST).clamp(1, MOST);
    let found = state
        .db
        .read(move |c| {
            let Some(run) = c.run(id)?.filter(|r| r.kind == "reconcile") else { return Ok(None) };
            let items = c.reconcile_items(id, q.after, limit)?;
            Ok::<_, StoreError>(Some((run, items)))
        })
        .await?;
    let (run, items) = found.ok_or(PullError::RunNotFound { kind: "reconcile", id })?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|i| i.id)).flatten();
    Ok(HttpResponse::Ok().json(ReconcileReport {
        run: run_view(run, Vec::new()),
        items: items.into_iter().map(item_view).collect(),
        next_after,
    }))
}
