//! Reconciliation: the runs, one run's items counted by kind and likely cause and listed,
//! and a form to start a dry run or a healing run for one partner or every readable one.

use super::{number, param, Params};
use crate::api::admin::sync::item_view;
use crate::api::AppState;
use crate::console::layout::{badge, count, csrf, page, pager, query, select, when, when_opt, Nav};
use crate::console::{audit, form, ConsoleError, Viewer};
use crate::pull::reconcile::ReconcileOptions;
use crate::pull::{PullError, Scope};
use crate::store::models::SyncRunRow;
use crate::store::StoreError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

/// Runs (pull or reconciliation) as a table.
pub fn runs_table(rows: &[SyncRunRow]) -> Markup {
    html! {
        @if rows.is_empty() { p.muted { "None yet." } } @else {
            div.table-wrap { table {
                thead { tr { th.num { "Run" } th { "Partner" } th { "Kind" } th { "Started by" } th { "Status" } th { "Started" } th { "Finished" } th { "Counts" } } }
                tbody {
                    @for r in rows {
                        tr data-run-id=(r.id) {
                            td.num { @if r.kind == "reconcile" { a href=(format!("/console/reconcile/runs/{}", r.id)) { (r.id) } } @else { (r.id) } }
                            td { (r.partner) }
                            td { (r.kind) @if r.dry_run { " (dry run)" } }
                            td { (r.started_by) }
                            td { (badge(&r.status)) }
                            td { (when(r.started_at)) }
                            td { (when_opt(r.finished_at)) }
                            td { code { (r.counts) } }
                        }
                    }
                }
            } }
        }
    }
}

pub async fn runs(state: web::Data<AppState>, viewer: Viewer, q: Params) -> Result<HttpResponse, ConsoleError> {
    let before = number(&q, "before")?;
    let partner = param(&q, "partner");
    let limit = 50;
    let p = partner.clone();
    let rows =
        state.db.read(move |c| c.list_runs("reconcile", p.as_deref(), before, limit).map_err(StoreError::from)).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten()
        .map(|b| query(&[("partner", partner.clone()), ("before", Some(b.to_string()))]));
    let mut readable: Vec<(String, String)> = vec![(String::new(), "every readable partner".into())];
    readable.extend(state.sync.readable_partners().into_iter().map(|p| (p.clone(), p)));
    let scopes =
        vec![("open".to_string(), "open tickets".to_string()), ("all".to_string(), "all shared tickets".to_string())];
    let body = html! {
        div.card {
            h2 { "Start a run" }
            form.filters method="post" action="/console/reconcile" {
                (csrf(&viewer))
                div { (select("partner", "Partner", &readable, None)) }
                div { (select("scope", "Tickets", &scopes, Some("open"))) }
                div { button type="submit" name="mode" value="dry_run" class="secondary" { "Dry run (report only)" } }
                div { button type="submit" name="mode" value="heal" { "Heal (re-push and apply)" } }
            }
        }
        h2 { "Runs" }
        (runs_table(&rows))
        (pager("/console/reconcile", next))
    };
    Ok(page(&viewer, Nav::Reconcile, "Reconciliation", body))
}

pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: Viewer,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    audit::audited(&state, &req, Some(&viewer), 303, async {
        let fields = form::action(&req, &viewer, &body)?;
        let dry_run = match fields.get("mode") {
            Some("dry_run") => true,
            Some("heal") => false,
            _ => return Err(ConsoleError::BadRequest("choose a dry run or a healing run".into())),
        };
        let scope = match fields.get("scope") {
            None | Some("open") => Scope::Open,
            Some("all") => Scope::All,
            Some(other) => return Err(ConsoleError::BadRequest(format!("`{other}` is not a scope (open or all)"))),
        };
        let one = fields.get("partner").map(str::to_string);
        let partners = match &one {
            Some(p) => vec![p.clone()],
            None => state.sync.readable_partners(),
        };
        let options = ReconcileOptions { scope, dry_run, started_by: format!("console:{}", viewer.label()) };
        let mut first = None;
        for partner in partners {
            let engine = state.sync.clone();
            let started = match engine.begin_reconcile(&partner, &options).await {
                Ok(s) => s,
                Err(PullError::Running { .. }) if one.is_none() => continue,
                Err(e) => return Err(ConsoleError::Api(e.into())),
            };
            let run = started.run.id;
            first.get_or_insert(run);
            let opts = options.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.complete_reconcile(started, &opts, |_| {}).await {
                    tracing::warn!(run, error = %e, "reconciliation ended badly");
                }
            });
        }
        let to = match (first, one.is_some()) {
            (Some(run), true) => format!("/console/reconcile/runs/{run}"),
            _ => "/console/reconcile".to_string(),
        };
        Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish())
    })
    .await
}

pub async fn run(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    q: Params,
) -> Result<HttpResponse, ConsoleError> {
    let id = path.into_inner();
    let after = number(&q, "after")?;
    let limit = 100;
    let found = state
        .db
        .read(move |c| {
            let Some(run) = c.run(id)?.filter(|r| r.kind == "reconcile") else { return Ok(None) };
            Ok::<_, StoreError>(Some((run, c.cause_counts(id)?, c.reconcile_items(id, after, limit)?)))
        })
        .await?;
    let (run, causes, items) = found.ok_or_else(|| ConsoleError::NotFound(format!("no reconciliation run {id}")))?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten()
        .map(|a| query(&[("after", Some(a.to_string()))]));
    let counts: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&run.counts).unwrap_or_default();
    let items: Vec<_> = items.into_iter().map(item_view).collect();
    let body = html! {
        div.card {
            dl.facts {
                dt { "Partner" } dd { a href=(format!("/console/partners/{}", run.partner)) { (run.partner) } }
                dt { "Status" } dd data-status=(run.status) { (badge(&run.status)) @if run.dry_run { " dry run" } }
                dt { "Started" } dd { (when(run.started_at)) " by " (run.started_by) }
                dt { "Finished" } dd { (when_opt(run.finished_at)) }
                @if let Some(m) = &run.message { dt { "Message" } dd { (m) } }
                @for (k, v) in &counts { dt { (k) } dd { (v) } }
            }
        }
        h2 { "Items by kind and likely cause" }
        @if causes.is_empty() { p.muted { "No drift found." } } @else {
            table { thead { tr { th { "Kind" } th { "Likely cause" } th.num { "Items" } } }
                tbody { @for c in &causes { tr { td { (c.kind) } td { (c.cause) } td.num { (count(c.n)) } } } } }
        }
        h2 { "Items" }
        div.table-wrap { table {
            thead { tr { th.num { "Id" } th { "Ticket" } th { "Partner's id" } th { "Kind" } th { "Fields (hub / partner)" } th { "Cause" } th { "Action" } } }
            tbody {
                @for i in &items {
                    tr {
                        td.num { (i.id) }
                        td { @if let Some(t) = &i.ticket { a href=(format!("/console/tickets/{t}")) { (t) } } }
                        td { (i.partner_ticket_id.clone().unwrap_or_default()) }
                        td { (i.kind) }
                        td { @for f in &i.fields { code { (f.field) } ": " (f.hub) " / " (f.partner) br; } }
                        td { (i.cause) }
                        td { (i.action) }
                    }
                }
            }
        } }
        (pager(&format!("/console/reconcile/runs/{id}"), next))
    };
    Ok(page(&viewer, Nav::Reconcile, &format!("Reconciliation run {id}"), body))
}
